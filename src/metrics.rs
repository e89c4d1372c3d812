//! Prometheus metrics, served on `METRICS_ADDR` only (never on the public port).

use std::collections::HashMap;
use std::sync::OnceLock;

use deadpool_postgres::Pool;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const REQUESTS_TOTAL: &str = "http_requests_total";
pub const REQUEST_DURATION: &str = "http_request_duration_seconds";

const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

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
        metrics::describe_gauge!(
            "greeter_database_up",
            "1 while this replica's LISTEN connection to PostgreSQL works, else 0 (readiness ignores it)"
        );
        metrics::gauge!("greeter_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        // Histogram samples pile up in memory until upkeep folds them into buckets; a
        // scrape does it too, but nobody may scrape (local mode, no Prometheus): without
        // this, memory grew by ~8 bytes per request.
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_INTERVAL);
                    upkeep.run_upkeep();
                }
            })
            .expect("the metrics upkeep thread starts");
        handle
    })
}

/// Record one finished request. Every label is a `&'static str`, so the hot path
/// allocates nothing for them.
pub fn record_request(route: &'static str, method: &http::Method, status: u16, seconds: f64) {
    let method = method_label(method);
    // Looking a series up in the registry hashes its labels; each worker thread keeps
    // the handles it has used, so a request costs two atomic updates.
    HANDLES.with_borrow_mut(|handles| {
        let (counter, histogram) = handles.entry((route, method, status)).or_insert_with(|| {
            let labels = [
                ("route", route),
                ("method", method),
                ("status", status_label(status)),
            ];
            (
                metrics::counter!(REQUESTS_TOTAL, &labels),
                metrics::histogram!(REQUEST_DURATION, &labels),
            )
        });
        counter.increment(1);
        histogram.record(seconds);
    });
}

type SeriesKey = (&'static str, &'static str, u16);
type SeriesHandles =
    HashMap<SeriesKey, (metrics::Counter, metrics::Histogram), foldhash::fast::FixedState>;

thread_local! {
    /// Bounded: routes, methods and statuses are each a small fixed set, none of them
    /// chosen by clients, so a fast hash with a fixed seed (not SipHash's per-request
    /// cost against hash flooding) is safe here.
    static HANDLES: std::cell::RefCell<SeriesHandles> =
        std::cell::RefCell::new(HashMap::with_hasher(foldhash::fast::FixedState::default()));
}

/// Standard methods by name; anything else is one label, so clients cannot add series.
fn method_label(method: &http::Method) -> &'static str {
    use http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// "100".."599" as static strings, made once.
fn status_label(status: u16) -> &'static str {
    static LABELS: OnceLock<Vec<String>> = OnceLock::new();
    let labels = LABELS.get_or_init(|| (100..600).map(|code| code.to_string()).collect());
    match status {
        100..=599 => &labels[usize::from(status - 100)],
        _ => "other",
    }
}

/// Render the exposition text, with the pool gauges sampled at scrape time.
/// `database_up`: whether the greeting listener holds a working connection.
pub fn render(pool: &Pool, database_up: bool) -> String {
    metrics::gauge!("greeter_database_up").set(if database_up { 1.0 } else { 0.0 });
    let status = pool.status();
    metrics::gauge!("db_pool_connections").set(status.size as f64);
    metrics::gauge!("db_pool_available_connections").set(status.available as f64);
    metrics::gauge!("db_pool_waiting_requests").set(status.waiting as f64);
    metrics::gauge!("db_pool_max_connections").set(status.max_size as f64);
    handle().render()
}
