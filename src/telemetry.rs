//! Logging: one JSON object per line on stdout in production, readable lines when debugging.

mod writer;

use std::io::IsTerminal;
use std::net::IpAddr;
use std::sync::OnceLock;

use serde::Serialize;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

use self::writer::{LineWriter, WriterGuard};
use crate::config::LogFormat;
use crate::timestamp::Timestamp;

/// Keeps the log writer alive; dropping it writes what is still buffered.
#[must_use = "logs are lost unless the guard lives until the program ends"]
pub struct LogGuard {
    _writer: Option<WriterGuard>,
}

/// Install the global subscriber. `RUST_LOG` overrides the default `info` level.
///
/// Lines are written by a thread of their own in batches ([`writer`]), so a request
/// never waits for a `write` system call: the access log costs a copy per request.
pub fn init(format: LogFormat) -> LogGuard {
    let (writer, guard) = match writer::spawn(std::io::stdout()) {
        Ok(spawned) => spawned,
        // No thread for the writer (out of threads or memory at start-up): log anyway,
        // each line a `write` of its own.
        Err(e) => {
            eprintln!("greeter: no log-writer thread ({e}); logging synchronously");
            init_with(format, std::io::stdout);
            return LogGuard { _writer: None };
        }
    };
    if !init_with(format, writer.clone()) {
        return LogGuard { _writer: None };
    }
    if format == LogFormat::Json {
        let _ = ACCESS_LOG.set(writer);
    }
    LogGuard {
        _writer: Some(guard),
    }
}

/// Install the subscriber for `format` over `writer`; false if one was installed already
/// (several apps in one test).
fn init_with<W>(format: LogFormat, writer: W) -> bool
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    match format {
        LogFormat::Json => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(writer)
            .json()
            .flatten_event(true)
            // The request's span (request_id, method, route) under "span" on every line
            // logged while it is handled; its parents add nothing.
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
            .is_ok(),
        // Colours only for a terminal: piped or redirected logs are plain text.
        LogFormat::Pretty => pretty_subscriber(writer, filter, std::io::stdout().is_terminal())
            .try_init()
            .is_ok(),
    }
}

/// The human-readable format: one line per event, every field and message with its
/// control characters escaped (`\n`, `\u{1b}`...), so a logged value cannot start a
/// forged line or send the terminal escape sequences.
fn pretty_subscriber<W>(writer: W, filter: EnvFilter, ansi: bool) -> impl tracing::Subscriber
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let fields = tracing_subscriber::fmt::format::debug_fn(|out, field, value| {
        let text = format!("{value:?}");
        if field.name() != "message" {
            write!(out, "{field}=")?;
        }
        for c in text.chars() {
            if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
                write!(out, "{}", c.escape_default())?;
            } else {
                out.write_char(c)?;
            }
        }
        Ok(())
    })
    .delimited(" ");
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        .fmt_fields(fields)
        .finish()
}

/// Where JSON access-log lines go once [`init`] ran with JSON logs.
static ACCESS_LOG: OnceLock<LineWriter> = OnceLock::new();

/// One access-log line: the same shape as every other JSON log line.
pub struct AccessRecord<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub latency_ms: f64,
    pub request_id: &'a str,
    pub remote_addr: IpAddr,
}

/// The line as written: every field named, in the order tracing's JSON lines use.
#[derive(Serialize)]
struct AccessLine<'a> {
    timestamp: Timestamp,
    level: &'static str,
    message: &'static str,
    method: &'a str,
    path: &'a str,
    status: u16,
    latency_ms: f64,
    request_id: &'a str,
    remote_addr: IpAddr,
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
        timestamp: Timestamp::now(),
        level: "INFO",
        message: "request",
        method: record.method,
        path: record.path,
        status: record.status,
        latency_ms: record.latency_ms,
        request_id: record.request_id,
        remote_addr: record.remote_addr,
        target: "access",
    };
    // Each worker thread reuses its buffer: no allocation per line.
    LINE.with_borrow_mut(|buffer| {
        buffer.clear();
        if serde_json::to_writer(&mut *buffer, &line).is_ok() {
            buffer.push(b'\n');
            writer.write_lines(buffer);
        }
        // One huge path must not keep its memory on the thread.
        if buffer.capacity() > 64 * 1024 {
            *buffer = Vec::new();
        }
    });
}

thread_local! {
    static LINE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    /// Output kept in memory, for the tests here and in `writer`.
    #[derive(Clone, Default)]
    pub(super) struct Buffer(pub(super) Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'w self) -> Buffer {
            self.clone()
        }
    }

    #[test]
    fn pretty_logs_cannot_be_forged_with_control_characters() {
        let buffer = Buffer::default();
        let subscriber = pretty_subscriber(buffer.clone(), EnvFilter::new("info"), false);
        let hostile = "bob\n2026-01-01T00:00:00Z  INFO admin login username=admin\x1b[2J\r\u{9b}";
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", request_id = %hostile);
            let _entered = span.enter();
            tracing::info!(display = %hostile, debug = ?hostile, text = hostile, "typed {hostile}");
        });
        let out = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(out.lines().count(), 1, "one event, one line: {out}");
        assert!(
            !out.chars().any(|c| c.is_control() && c != '\n'),
            "raw control characters: {out:?}"
        );
        assert!(out.ends_with('\n'));
        // Escaped, not dropped: the reader still sees what was sent.
        assert!(out.contains(r"bob\n2026"), "{out}");
        assert!(out.contains(r"\u{1b}[2J"), "{out}");
        assert_eq!(out.matches("display=").count(), 1, "{out}");
    }
}
