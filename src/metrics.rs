//! Prometheus metrics, served on `METRICS_ADDR` only (never on the public port).

use std::sync::OnceLock;

use deadpool_postgres::Pool;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const REQUESTS_TOTAL: &str = "http_requests_total";
pub const REQUEST_DURATION: &str = "http_request_duration_seconds";

/// Latency buckets in seconds, dense below 10 ms where `GET /` lives.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide recorder, installed on first use (metrics are global by design).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.to_owned()), LATENCY_BUCKETS)
            .expect("non-empty bucket list")
            .install_recorder()
            .expect("no other metrics recorder is installed");
        metrics::describe_counter!(REQUESTS_TOTAL, "HTTP requests by route, method and status");
        metrics::describe_histogram!(
            REQUEST_DURATION,
            metrics::Unit::Seconds,
            "HTTP request latency by route, method and status"
        );
        metrics::gauge!("greeter_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        handle
    })
}

/// Record one finished request.
pub fn record_request(route: &'static str, method: &str, status: u16, seconds: f64) {
    let labels = [
        ("route", route.to_owned()),
        ("method", method.to_owned()),
        ("status", status.to_string()),
    ];
    metrics::counter!(REQUESTS_TOTAL, &labels).increment(1);
    metrics::histogram!(REQUEST_DURATION, &labels).record(seconds);
}

/// Render the exposition text, with the pool gauges sampled at scrape time.
pub fn render(pool: &Pool) -> String {
    let status = pool.status();
    metrics::gauge!("db_pool_connections").set(status.size as f64);
    metrics::gauge!("db_pool_available_connections").set(status.available as f64);
    metrics::gauge!("db_pool_waiting_requests").set(status.waiting as f64);
    metrics::gauge!("db_pool_max_connections").set(status.max_size as f64);
    handle().render()
}
