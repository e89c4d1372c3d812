//! Logging: one JSON object per line on stdout in production, readable lines when debugging.

use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::sync::OnceLock;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Lines that may wait for the writer thread before logging callers block (~256 KiB);
/// blocking rather than dropping, because an access log with holes is worse than a stall.
const BUFFERED_LINES: usize = 1024;

/// Keeps the log writer alive; dropping it flushes what is still buffered.
#[must_use = "logs are lost unless the guard lives until the program ends"]
pub struct LogGuard {
    _writer: Option<WorkerGuard>,
}

/// Install the global subscriber. `RUST_LOG` overrides the default `info` level.
///
/// Lines are written by a thread of their own through a buffer, so a request never
/// waits for a `write` system call: the access log costs one channel send per request.
pub fn init(format: LogFormat) -> LogGuard {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(BUFFERED_LINES)
        .thread_name("log-writer")
        .finish(BufWriter::new(std::io::stdout()));
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer.clone());
    // `try_init` fails only if a subscriber exists already (several apps in one test).
    let installed = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    if installed.is_err() {
        return LogGuard { _writer: None };
    }
    if format == LogFormat::Json {
        let _ = ACCESS_LOG.set(writer);
    }
    LogGuard {
        _writer: Some(guard),
    }
}

/// Where JSON access-log lines go once [`init`] ran with JSON logs.
static ACCESS_LOG: OnceLock<NonBlocking> = OnceLock::new();

/// One access-log line: the same shape as every other JSON log line.
#[derive(Serialize)]
pub struct AccessRecord<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub latency_ms: f64,
    pub request_id: &'a str,
    pub remote_addr: IpAddr,
}

#[derive(Serialize)]
struct AccessLine<'a> {
    timestamp: String,
    level: &'static str,
    message: &'static str,
    #[serde(flatten)]
    record: &'a AccessRecord<'a>,
    target: &'static str,
}

/// Log one finished request at INFO with target `access`.
///
/// In JSON mode the line is serialised straight to the log writer: tracing's generic
/// JSON formatter cost ~20 % of `GET /` throughput, and this is the one line written
/// for every request. Otherwise (pretty logs, tests) it is an ordinary tracing event.
pub fn access(record: &AccessRecord<'_>) {
    if !tracing::enabled!(target: "access", tracing::Level::INFO) {
        return;
    }
    let Some(writer) = ACCESS_LOG.get() else {
        tracing::info!(
            target: "access",
            method = record.method,
            path = record.path,
            status = record.status,
            latency_ms = record.latency_ms,
            request_id = record.request_id,
            remote_addr = %record.remote_addr,
            "request"
        );
        return;
    };
    let line = AccessLine {
        timestamp: OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default(),
        level: "INFO",
        message: "request",
        record,
        target: "access",
    };
    let mut buffer = Vec::with_capacity(256);
    if serde_json::to_writer(&mut buffer, &line).is_ok() {
        buffer.push(b'\n');
        // One write_all = one line on the writer thread, never interleaved.
        let _ = writer.clone().write_all(&buffer);
    }
}
