//! The HTTP server loop: hyper connections with timeouts, graceful shutdown, and the
//! per-request middleware (request id, access log, metrics, request timeout, panic guard).
//!
//! warp's own `serve` offers no header-read timeout (slowloris) and no bound on the drain,
//! so we drive hyper directly and hand each request to `warp::service`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use http::{HeaderValue, Request, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower_service::Service;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use crate::error::json_error;

/// A client must send its request headers within this time (slowloris protection).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// No request may take longer than this; the client gets a 503.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The request id, available to handlers through `warp::ext::get::<RequestId>()`.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The peer address of the TCP connection, through `warp::ext::get::<ClientAddr>()`.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// Whether a server logs and measures its requests (the metrics port does not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observe {
    Requests,
    Nothing,
}

/// Serve `routes` on `listener` until `shutdown` resolves, then stop accepting (new
/// connections are refused) and let in-flight requests finish for at most `grace`.
/// Returns whether every connection finished within the grace period.
pub async fn serve(
    listener: TcpListener,
    routes: BoxedFilter<(Response,)>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    observe: Observe,
) -> bool {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let warp_service = warp::service(routes.clone());
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            handle(request, peer, warp_service.clone(), observe)
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_ok()
}

async fn handle<S>(
    mut request: Request<Incoming>,
    peer: SocketAddr,
    mut service: S,
    observe: Observe,
) -> Result<Response, Infallible>
where
    S: Service<Request<Incoming>, Response = Response, Error = Infallible>,
{
    let started = Instant::now();
    let request_id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_safe_request_id(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    request
        .extensions_mut()
        .insert(RequestId(request_id.clone()));
    request.extensions_mut().insert(ClientAddr(peer));
    let method = request.method().clone();
    let path = request.uri().path().to_owned();

    let call = AssertUnwindSafe(service.call(request)).catch_unwind();
    let mut response = match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
        Ok(Ok(Ok(response))) => response,
        Ok(Ok(Err(never))) => match never {},
        Ok(Err(_panic)) => {
            tracing::error!(request_id = %request_id, path = %path, "handler panicked");
            json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
        Err(_) => json_error(StatusCode::SERVICE_UNAVAILABLE, "request timed out"),
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    if observe == Observe::Requests {
        let status = response.status().as_u16();
        let elapsed = started.elapsed();
        crate::metrics::record_request(route_label(&path), &method, status, elapsed.as_secs_f64());
        crate::telemetry::access(&crate::telemetry::AccessRecord {
            method: method.as_str(),
            path: &path,
            status,
            // Microsecond precision is plenty, and keeps the line short.
            latency_ms: (elapsed.as_secs_f64() * 1e6).round() / 1000.0,
            request_id: &request_id,
            remote_addr: peer.ip(),
        });
    }
    Ok(response)
}

/// Echo a client's id only if it cannot forge log lines or headers.
fn is_safe_request_id(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// A bounded set of metric labels: unknown paths must not create new time series.
pub fn route_label(path: &str) -> &'static str {
    match path {
        "/" => "/",
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        p if p.starts_with("/admin/static/") => "/admin/static",
        p if p == "/admin" || p.starts_with("/admin/") => "/admin",
        _ => "unmatched",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_sanitised() {
        assert!(is_safe_request_id("abc-123_X.y:z"));
        assert!(!is_safe_request_id(""));
        assert!(!is_safe_request_id("a b"));
        assert!(!is_safe_request_id("evil\"} {\"x"));
        assert!(!is_safe_request_id(&"a".repeat(129)));
    }

    #[test]
    fn route_labels_are_bounded() {
        assert_eq!(route_label("/"), "/");
        assert_eq!(route_label("/admin/users/3/"), "/admin");
        assert_eq!(route_label("/admin/static/admin.css"), "/admin/static");
        assert_eq!(route_label("/wp-login.php"), "unmatched");
    }
}
