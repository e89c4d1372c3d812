//! The HTTP server loop: hyper connections with timeouts, graceful shutdown, and the
//! per-request middleware (request id, access log, metrics, request timeout, panic guard).
//!
//! warp's own `serve` offers no header-read timeout (slowloris) and no bound on the drain,
//! so we drive hyper directly and hand each request to `warp::service`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use http::{HeaderValue, Request};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower_service::Service;
use tracing::Instrument;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use crate::config::NetworkSettings;
use crate::error::{Fault, FaultResponder};

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The client's address, through `warp::ext::get::<ClientAddr>()`: the TCP peer's, or,
/// when the peer is a trusted proxy, the one its forwarding headers name.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// A request path's metric label, from a small fixed set (see `routes::route_label`).
pub type RouteLabel = fn(&str) -> &'static str;

/// Whether a server logs and measures its requests (the metrics port does not), how it
/// names their routes in metrics and log spans, and which routes are served from memory.
#[derive(Debug, Clone, Copy)]
pub enum Observe {
    Requests {
        label: RouteLabel,
        /// Route labels whose handlers only read memory: they await nothing that can
        /// hang and log nothing, so they get neither the request timeout's timer nor a
        /// span. Both cost throughput (scripts/bench.sh: the span's bookkeeping
        /// ~10-15 %); the only line such a request can produce, a panic's, names the
        /// request id itself.
        from_memory: &'static [&'static str],
    },
    Nothing,
}

/// Serve `routes` on `listener` until `shutdown` resolves, then stop accepting (new
/// connections are refused) and let in-flight requests finish for at most `grace`.
/// `faults` answers a request whose handler panicked or timed out.
/// Returns whether every connection finished within the grace period.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    listener: TcpListener,
    routes: BoxedFilter<(Response,)>,
    faults: FaultResponder,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    observe: Observe,
    network: NetworkSettings,
) -> bool {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(network.header_read_timeout)
        // Request line and headers: 16 KiB is plenty for this app, and bounds what an
        // unterminated header block can pin (hyper's default is ~400 KB per connection).
        .max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .max_concurrent_streams(64)
        // Pings find dead peers; the idle watchdog below closes quiet live ones.
        .keep_alive_interval(Some(network.idle_timeout / 2))
        .keep_alive_timeout(Duration::from_secs(20));
    // HTTP/1.1 only unless h2c is wanted (HTTP2_CLEARTEXT): then the first bytes decide.
    if !network.http2_cleartext {
        builder = builder.http1_only();
    }
    let network = Arc::new(network);
    let limits = Arc::new(ConnectionLimits::new(&network));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut accept_backoff = Duration::from_millis(10);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => {
                    accept_backoff = Duration::from_millis(10);
                    pair
                }
                Err(e) => {
                    // EMFILE/ENFILE (or ENOBUFS...): back off, growing to 1 s, instead of
                    // spinning on an error that only a closed connection can clear.
                    tracing::warn!(error = %e, backoff_ms = accept_backoff.as_millis() as u64,
                        "accept failed");
                    // A connection closing frees a descriptor: try again at once then.
                    tokio::select! {
                        () = tokio::time::sleep(accept_backoff) => {}
                        () = limits.closed.notified() => {}
                        () = &mut shutdown => break,
                    }
                    accept_backoff = (accept_backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let trusted = is_trusted(&network, peer.ip());
        let Some(slot) = limits.admit(peer.ip(), trusted) else {
            tracing::debug!(peer = %peer, "connection refused: too many open connections");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let warp_service = warp::service(routes.clone());
        let service = {
            let activity = activity.clone();
            let network = network.clone();
            let faults = faults.clone();
            hyper::service::service_fn(move |request: Request<Incoming>| {
                let client = client_addr(&network, peer, trusted, request.headers());
                let busy = activity.start();
                let call = handle(
                    request,
                    client,
                    warp_service.clone(),
                    observe,
                    faults.clone(),
                    network.request_timeout,
                );
                async move {
                    let response = call.await;
                    drop(busy);
                    response
                }
            })
        };
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let (first, idle) = (network.header_read_timeout, network.idle_timeout);
        tokio::spawn(async move {
            let _slot = slot;
            // No upgrades: nothing here speaks WebSocket, and with them hyper-util would
            // ignore http1_only.
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                result = watcher.watch(connection) => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                () = activity.idle(first, idle) => {
                    tracing::debug!(peer = %peer, "closing an idle connection");
                }
            }
        });
    }
    drop(listener);
    tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_ok()
}

/// The largest request head (HTTP/1 buffer, HTTP/2 header list) accepted.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// When a connection last did something, and how many of its requests are in flight.
struct Activity {
    state: Mutex<(usize, Instant, bool)>,
}

/// One request in flight on its connection; ends on drop.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let mut s = self.0.state.lock().expect("activity lock");
        s.0 -= 1;
        s.1 = Instant::now();
    }
}

impl Activity {
    fn new() -> Self {
        Self {
            state: Mutex::new((0, Instant::now(), false)),
        }
    }

    fn start(self: &Arc<Self>) -> Busy {
        let mut s = self.state.lock().expect("activity lock");
        s.0 += 1;
        s.1 = Instant::now();
        s.2 = true;
        Busy(self.clone())
    }

    /// Resolves when the connection has had no request in flight for `idle` (or, before
    /// its first request, for `first`: silence, a partial preface, partial headers).
    async fn idle(&self, first: Duration, idle: Duration) {
        loop {
            let (in_flight, last, served) = *self.state.lock().expect("activity lock");
            let limit = if served { idle } else { first };
            if in_flight > 0 {
                tokio::time::sleep(limit).await;
                continue;
            }
            let deadline = last + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

/// Open connections, per process and per client address (IPv6: per /64).
struct ConnectionLimits {
    total: Arc<tokio::sync::Semaphore>,
    per_address: Mutex<HashMap<IpAddr, usize>>,
    max_per_address: usize,
    /// Told whenever a connection closes (the accept loop waits for it after EMFILE).
    closed: tokio::sync::Notify,
}

/// A connection's place in [`ConnectionLimits`], given back on drop.
struct Slot {
    _total: tokio::sync::OwnedSemaphorePermit,
    limits: Arc<ConnectionLimits>,
    /// The address group counted, None for a trusted proxy.
    address: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(group) = &self.address {
            let mut map = self.limits.per_address.lock().expect("limits lock");
            if let Some(n) = map.get_mut(group) {
                *n -= 1;
                if *n == 0 {
                    map.remove(group);
                }
            }
        }
        self.limits.closed.notify_one();
    }
}

/// The address a connection counts against: IPv4 as is, IPv6 per /64 (one client
/// usually holds a whole /64, like the login throttle assumes), IPv4-mapped as IPv4.
fn address_group(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => IpAddr::V6(
            ipnet::Ipv6Net::new(v6, 64)
                .expect("64 is a valid prefix")
                .network(),
        ),
    }
}

impl ConnectionLimits {
    fn new(network: &NetworkSettings) -> Self {
        // Stay below the file limit, keeping descriptors for the pool, logs and the
        // probes' connections: at the limit itself accept() would fail with EMFILE.
        let max = match file_limit() {
            Some(limit) if limit < network.max_connections + 128 => {
                let max = limit.saturating_sub(128).max(16);
                tracing::warn!(
                    max_connections = network.max_connections,
                    file_limit = limit,
                    using = max,
                    "MAX_CONNECTIONS lowered to fit the file descriptor limit"
                );
                max
            }
            _ => network.max_connections,
        };
        Self {
            total: Arc::new(tokio::sync::Semaphore::new(max)),
            per_address: Mutex::new(HashMap::new()),
            max_per_address: network.max_connections_per_address,
            closed: tokio::sync::Notify::new(),
        }
    }

    fn admit(self: &Arc<Self>, ip: IpAddr, trusted: bool) -> Option<Slot> {
        let total = self.total.clone().try_acquire_owned().ok()?;
        if trusted {
            return Some(Slot {
                _total: total,
                limits: self.clone(),
                address: None,
            });
        }
        let group = address_group(ip);
        let mut map = self.per_address.lock().expect("limits lock");
        let n = map.entry(group).or_insert(0);
        if *n >= self.max_per_address {
            return None;
        }
        *n += 1;
        Some(Slot {
            _total: total,
            limits: self.clone(),
            address: Some(group),
        })
    }
}

/// The soft limit on open file descriptors (`ulimit -n`), if known.
fn file_limit() -> Option<usize> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    (ok && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur as usize)
}

fn is_trusted(network: &NetworkSettings, ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    network.trusted_proxies.iter().any(|net| net.contains(&ip))
}

/// The client's address: the peer's, unless the peer is a trusted proxy; then the
/// right-most address in `X-Forwarded-For` (or `Forwarded`) that is not a trusted proxy.
fn client_addr(
    network: &NetworkSettings,
    peer: SocketAddr,
    trusted: bool,
    headers: &http::HeaderMap,
) -> SocketAddr {
    if !trusted {
        return peer;
    }
    let mut chain: Vec<Option<IpAddr>> = Vec::new();
    let xff: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if !xff.is_empty() {
        for v in xff {
            chain.extend(v.split(',').map(|a| parse_forwarded_addr(a.trim())));
        }
    } else {
        for v in headers
            .get_all(http::header::FORWARDED)
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            for element in v.split(',') {
                let addr = element
                    .split(';')
                    .filter_map(|pair| pair.trim().split_once('='))
                    .find(|(k, _)| k.eq_ignore_ascii_case("for"))
                    .and_then(|(_, value)| parse_forwarded_addr(value.trim()));
                chain.push(addr);
            }
        }
    }
    let mut client = peer.ip();
    for hop in chain.into_iter().rev() {
        match hop {
            Some(ip) => {
                client = ip;
                if !is_trusted(network, ip) {
                    break;
                }
            }
            // Unparseable (or "unknown"): believe nothing further to the left.
            None => break,
        }
    }
    SocketAddr::new(client, 0)
}

/// `192.0.2.1`, `192.0.2.1:4711`, `"[2001:db8::1]:4711"`, `2001:db8::1`.
fn parse_forwarded_addr(raw: &str) -> Option<IpAddr> {
    let v = raw.trim_matches('"');
    if let Ok(ip) = v.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = v.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    v.strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .and_then(|(ip, _)| ip.parse().ok())
}

async fn handle<S>(
    mut request: Request<Incoming>,
    client: SocketAddr,
    mut service: S,
    observe: Observe,
    faults: FaultResponder,
    timeout: Duration,
) -> Result<Response, Infallible>
where
    S: Service<Request<Incoming>, Response = Response, Error = Infallible>,
{
    let started = Instant::now();
    let request_id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .filter(|v| v.to_str().is_ok_and(is_safe_request_id))
        .cloned()
        .unwrap_or_else(new_request_id);
    let id = request_id.to_str().unwrap_or_default();
    request.extensions_mut().insert(ClientAddr(client));
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let (route, from_memory) = match observe {
        Observe::Requests { label, from_memory } => {
            let route = label(&path);
            (route, from_memory.contains(&route))
        }
        Observe::Nothing => ("internal", false),
    };

    let call = AssertUnwindSafe(service.call(request)).catch_unwind();
    let settle = |outcome| settle(outcome, id, &path, &faults, timeout);
    let mut response = if from_memory {
        settle(Ok(call.await))
    } else {
        // Every line logged while the request is handled carries its id, method and
        // route (JSON: under "span"), so one id finds the whole story. Plain strings:
        // recorded as they are, without a Display round trip per field.
        let span =
            tracing::info_span!("request", request_id = id, method = method.as_str(), route,);
        async { settle(tokio::time::timeout(timeout, call).await) }
            .instrument(span)
            .await
    };
    if let Observe::Requests { .. } = observe {
        let status = response.status().as_u16();
        let elapsed = started.elapsed();
        crate::metrics::record_request(route, &method, status, elapsed.as_secs_f64());
        crate::telemetry::access(&crate::telemetry::AccessRecord {
            method: method.as_str(),
            path: &path,
            status,
            // Microsecond precision is plenty, and keeps the line short.
            latency_ms: (elapsed.as_secs_f64() * 1e6).round() / 1000.0,
            request_id: id,
            remote_addr: client.ip(),
        });
    }
    let headers = response.headers_mut();
    headers.insert(REQUEST_ID_HEADER, request_id);
    // Every response, JSON included: browsers must not sniff another type into it.
    headers
        .entry(http::header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    Ok(response)
}

/// The handler's response, or the fault response (and its log line) for a handler that
/// panicked or ran out of time.
fn settle(
    outcome: Result<std::thread::Result<Result<Response, Infallible>>, tokio::time::error::Elapsed>,
    id: &str,
    path: &str,
    faults: &FaultResponder,
    timeout: Duration,
) -> Response {
    match outcome {
        Ok(Ok(Ok(response))) => response,
        Ok(Ok(Err(never))) => match never {},
        Ok(Err(_panic)) => {
            tracing::error!(request_id = id, path, "handler panicked");
            faults(path, Fault::Panic)
        }
        Err(_) => {
            tracing::warn!(
                request_id = id,
                path,
                timeout_s = timeout.as_secs(),
                "request timed out"
            );
            faults(path, Fault::Timeout)
        }
    }
}

/// A new request id: a random UUID, formatted without a `String` in between.
fn new_request_id() -> HeaderValue {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
    HeaderValue::from_str(text).expect("a UUID is a valid header value")
}

/// Echo a client's id only if it cannot forge log lines or headers.
fn is_safe_request_id(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
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
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let network = NetworkSettings {
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
            ..NetworkSettings::default()
        };
        let proxy: SocketAddr = "10.1.2.3:5000".parse().unwrap();
        let headers = |name: &str, value: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
            h
        };
        let ip = |name, value, trusted| {
            client_addr(&network, proxy, trusted, &headers(name, value)).ip()
        };
        // The right-most untrusted hop; a client cannot prepend a fake one.
        let xff = "198.51.100.9, 203.0.113.7, 10.9.9.9";
        assert_eq!(ip("x-forwarded-for", xff, true).to_string(), "203.0.113.7");
        assert_eq!(ip("x-forwarded-for", xff, false), proxy.ip());
        let fwd = r#"for=198.51.100.9, for="[2001:db8::1]:4711";proto=https"#;
        assert_eq!(ip("forwarded", fwd, true).to_string(), "2001:db8::1");
        // Garbage: believe nothing beyond the proxy.
        assert_eq!(ip("x-forwarded-for", "not-an-ip", true), proxy.ip());
    }

    /// Pen-test low finding: IPv6 clients counted per /128 got a fresh cap with every
    /// address of their /64. (The live test, tests/api/connections.rs, runs on 127.0.0.1:
    /// a test cannot own a /64 without root.)
    #[tokio::test]
    async fn the_per_address_cap_counts_ipv6_per_64() {
        let limits = Arc::new(ConnectionLimits::new(&NetworkSettings {
            max_connections_per_address: 2,
            ..NetworkSettings::default()
        }));
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let a = limits.admit(ip("2001:db8:1:2::1"), false).unwrap();
        let _b = limits
            .admit(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"), false)
            .unwrap();
        assert!(
            limits.admit(ip("2001:db8:1:2::3"), false).is_none(),
            "same /64"
        );
        assert!(
            limits.admit(ip("2001:db8:1:3::1"), false).is_some(),
            "next /64"
        );
        assert!(
            limits.admit(ip("2001:db8:1:2::4"), true).is_some(),
            "trusted proxy"
        );
        drop(a);
        assert!(
            limits.admit(ip("2001:db8:1:2::5"), false).is_some(),
            "room again"
        );
        // IPv4 (and IPv4-mapped IPv6) per address.
        let _c = limits.admit(ip("192.0.2.1"), false).unwrap();
        let _d = limits.admit(ip("::ffff:192.0.2.1"), false).unwrap();
        assert!(limits.admit(ip("192.0.2.1"), false).is_none());
        assert!(limits.admit(ip("192.0.2.2"), false).is_some());
    }
}
