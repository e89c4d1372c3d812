//! The log writer: lines from every thread gather in one buffer, and a thread of its own
//! writes them out in batches.
//!
//! tracing-appender's non-blocking writer sends every line through a channel and wakes
//! its thread for it: at ~100,000 requests/s that was one futex wake-up and one `write`
//! per access-log line, ~5 % of `GET /` (perf). Here a line is a copy into the buffer
//! under an uncontended lock; the first line of a batch wakes the writer, which waits up
//! to [`GATHER`] for more before one `write` takes them all.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long the writer lets a batch gather after its first line: lines reach stdout at
/// most this late, and the writer wakes at most 1/GATHER times a second.
const GATHER: Duration = Duration::from_millis(5);

/// Bytes that may wait for the writer (~2,000 access lines). A caller finding this much
/// waiting waits for the writer rather than drop its line: a log with holes is worse than
/// a stall. Any one line still gets in (the buffer may pass the limit by one line).
const LIMIT: usize = 512 * 1024;

/// How long dropping the guard waits for the last lines to be written. A stdout nobody
/// reads (a stalled log collector) must not keep the process from exiting after SIGTERM.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);

struct Shared {
    state: Mutex<State>,
    /// The writer waits here for the first line of a batch, and for the batch to fill.
    ready: Condvar,
    /// Callers wait here while the buffer is full.
    room: Condvar,
    /// The guard waits here for the writer thread to finish.
    exited: Condvar,
}

#[derive(Default)]
struct State {
    pending: Vec<u8>,
    /// The guard was dropped: write what is left, then end.
    closed: bool,
    /// The writer thread has ended: lines are discarded from now on.
    done: bool,
    /// Callers waiting for room: the writer writes at once instead of gathering.
    blocked: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A thread that panicked while holding the lock left whole lines behind (one
        // `extend_from_slice`): the buffer is still good.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A handle to queue lines; cheap to clone.
#[derive(Clone)]
pub struct LineWriter(Arc<Shared>);

/// Keeps the writer thread; dropping it writes what is still buffered and ends the thread.
pub struct WriterGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Start the writer thread over `out`.
pub fn spawn<W: Write + Send + 'static>(out: W) -> std::io::Result<(LineWriter, WriterGuard)> {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        ready: Condvar::new(),
        room: Condvar::new(),
        exited: Condvar::new(),
    });
    let thread = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn({
            let shared = shared.clone();
            move || run(&shared, out)
        })?;
    Ok((
        LineWriter(shared.clone()),
        WriterGuard {
            shared,
            thread: Some(thread),
        },
    ))
}

impl LineWriter {
    /// Queue whole lines. One call's bytes stay together: they are never split or
    /// interleaved with another call's. Once the writer thread has ended, lines are
    /// discarded.
    pub fn write_lines(&self, bytes: &[u8]) {
        let shared = &self.0;
        let mut state = shared.lock();
        while !state.done && state.pending.len() >= LIMIT {
            // Tell the writer not to wait for more: someone is waiting for room.
            state.blocked += 1;
            shared.ready.notify_one();
            state = shared
                .room
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            state.blocked -= 1;
        }
        if state.done {
            return;
        }
        let before = state.pending.len();
        state.pending.extend_from_slice(bytes);
        let after = state.pending.len();
        drop(state);
        // Wake the writer for a batch's first line, and early when the batch is half full;
        // a line in between costs no system call.
        if before == 0 || (before < LIMIT / 2 && after >= LIMIT / 2) {
            shared.ready.notify_one();
        }
    }
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.closed = true;
        self.shared.ready.notify_one();
        let (state, _) = self
            .shared
            .exited
            .wait_timeout_while(state, SHUTDOWN_WAIT, |s| !s.done)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let done = state.done;
        drop(state);
        // Not done: the thread is stuck in a `write` to a stdout nobody reads. It is left
        // behind, and ends with the process.
        if let Some(thread) = self.thread.take()
            && done
        {
            let _ = thread.join();
        }
    }
}

fn run<W: Write>(shared: &Shared, mut out: W) {
    let mut batch = Vec::new();
    loop {
        let mut state = shared.lock();
        while state.pending.is_empty() {
            if state.closed {
                state.done = true;
                drop(state);
                shared.exited.notify_all();
                // Callers still waiting for room see `done` and give up.
                shared.room.notify_all();
                return;
            }
            state = shared
                .ready
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        if !state.closed {
            state = shared
                .ready
                .wait_timeout_while(state, GATHER, |s| {
                    !s.closed && s.blocked == 0 && s.pending.len() < LIMIT / 2
                })
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        std::mem::swap(&mut state.pending, &mut batch);
        drop(state);
        shared.room.notify_all();
        // Nowhere to report a failed write of the log itself; the next batch tries again.
        let _ = out.write_all(&batch);
        let _ = out.flush();
        batch.clear();
        // A burst must not keep its buffer's memory for the rest of the process's life.
        if batch.capacity() > LIMIT * 2 {
            batch = Vec::new();
        }
    }
}

/// What tracing's formatter writes an event through: it formats each event into a
/// buffer of its own and hands it over with one `write_all`, so each event is one line.
pub struct Line<'a>(&'a LineWriter);

impl Write for Line<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.write_lines(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LineWriter {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::tests::Buffer as Sink;

    #[test]
    fn every_line_from_every_thread_is_written_whole_and_in_order() {
        let sink = Sink::default();
        let (writer, guard) = spawn(sink.clone()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    // Enough to fill the buffer several times over, so callers wait for room.
                    for i in 0..20_000 {
                        writer.write_lines(
                            format!("thread {t} line {i} {}\n", "x".repeat(60)).as_bytes(),
                        );
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        drop(guard);
        let out = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let mut next = [0usize; 4];
        for line in out.lines() {
            let mut words = line.split(' ');
            assert_eq!(words.next(), Some("thread"), "{line}");
            let t: usize = words.next().unwrap().parse().unwrap();
            assert_eq!(words.next(), Some("line"), "{line}");
            let i: usize = words.next().unwrap().parse().unwrap();
            assert_eq!(words.next().map(str::len), Some(60), "torn line: {line}");
            assert_eq!(i, next[t], "thread {t}'s lines out of order");
            next[t] += 1;
        }
        assert_eq!(
            next, [20_000; 4],
            "every line is written before the guard returns"
        );
    }

    #[test]
    fn a_line_is_written_without_waiting_for_more() {
        let sink = Sink::default();
        let (writer, _guard) = spawn(sink.clone()).unwrap();
        writer.write_lines(b"alone\n");
        // Waits for the event, with a generous bound: the batch is written after GATHER.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while sink.0.lock().unwrap().as_slice() != b"alone\n" {
            assert!(
                std::time::Instant::now() < deadline,
                "the line was never written"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn lines_after_the_writer_ended_are_discarded_not_blocked_on() {
        let sink = Sink::default();
        let (writer, guard) = spawn(sink.clone()).unwrap();
        drop(guard);
        writer.write_lines(&vec![b'x'; LIMIT * 2]);
        assert!(sink.0.lock().unwrap().is_empty());
    }

    /// Output that never accepts a byte: a stdout whose reader stopped reading.
    struct Stuck;

    impl Write for Stuck {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            loop {
                std::thread::park();
            }
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Runs `f` on a thread of its own; whether it returned within `bound`.
    fn returns_within(bound: Duration, f: impl FnOnce() + Send + 'static) -> bool {
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            f();
            let _ = done.send(());
        });
        finished.recv_timeout(bound).is_ok()
    }

    #[test]
    fn shutdown_does_not_hang_on_a_stdout_that_never_drains() {
        let (writer, guard) = spawn(Stuck).unwrap();
        writer.write_lines(b"never written\n");
        // Generous bound: the guard gives up after SHUTDOWN_WAIT.
        assert!(
            returns_within(Duration::from_secs(60), move || drop(guard)),
            "dropping the guard waited forever for a blocked stdout"
        );
    }

    #[test]
    fn a_line_longer_than_the_buffer_gets_in_while_others_keep_writing() {
        let sink = Sink::default();
        let (writer, guard) = spawn(sink.clone()).unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let busy: Vec<_> = (0..3)
            .map(|_| {
                let (writer, stop) = (writer.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut line = vec![b'x'; 255];
                    line.push(b'\n');
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        writer.write_lines(&line);
                    }
                })
            })
            .collect();
        let big = {
            let writer = writer.clone();
            move || {
                let mut line = vec![b'b'; LIMIT * 2];
                line.push(b'\n');
                writer.write_lines(&line);
            }
        };
        let got_in = returns_within(Duration::from_secs(60), big);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for thread in busy {
            thread.join().unwrap();
        }
        assert!(got_in, "the long line waited forever for room");
        drop(guard);
        let out = sink.0.lock().unwrap();
        assert!(
            out.split(|&b| b == b'\n')
                .any(|line| line.len() == LIMIT * 2 && line.iter().all(|&b| b == b'b')),
            "the long line was not written whole"
        );
    }
}
