//! Pen-test finding 3, the accept loop: at the file-descriptor limit `accept()` fails
//! with EMFILE for as long as no descriptor is freed. The server backs off (10 ms,
//! doubling to 1 s, or until a connection closes) instead of spinning on the error, and
//! accepts again as soon as connections close.

use std::time::{Duration, Instant};

use crate::helpers::{LogLines, ServerProcess, wait_for};
use crate::postgres::{self, TEMPLATE_DB};

const NEVER: Duration = Duration::from_secs(60);

/// How long the accept loop is watched at the limit.
const WINDOW: Duration = Duration::from_secs(2);

/// User plus system CPU time of a process so far, from /proc/<pid>/stat.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) in parentheses: utime and
    // stime are the 14th and 15th fields of the line, 12th and 13th after it.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}

fn open_descriptors(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count() as u64
}

/// Lower the soft RLIMIT_NOFILE of a running process (the hard limit stays).
fn set_file_limit(pid: u32, soft: u64) {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit reads `new` and writes `old`, both valid for the call.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            std::ptr::null(),
            &mut old,
        )
    };
    assert_eq!(rc, 0, "read the limit");
    let new = libc::rlimit {
        rlim_cur: soft,
        rlim_max: old.rlim_max,
    };
    // SAFETY: as above.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            &new,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(
        rc,
        0,
        "lower the limit: {}",
        std::io::Error::last_os_error()
    );
}

#[tokio::test]
async fn at_the_file_limit_accept_backs_off_and_recovers() {
    let server = postgres::shared().clone();
    let db = server.create_database(Some(TEMPLATE_DB)).await;
    let mut process = ServerProcess::start_with(
        &server,
        &db,
        &[
            // Only the file limit may stop these connections.
            ("MAX_CONNECTIONS_PER_ADDRESS", "1000000"),
            ("HEADER_READ_TIMEOUT_SECS", "3600"),
            ("IDLE_TIMEOUT_SECS", "3600"),
        ],
    )
    .await;
    let pid = process.child.id();
    let log = LogLines::follow(process.child.stdout.take().unwrap());
    // Room for four more descriptors: the fifth connection cannot be accepted.
    set_file_limit(pid, open_descriptors(pid) + 4);
    let mut held = Vec::new();
    for _ in 0..8 {
        // The kernel completes these handshakes (the backlog) whether or not the
        // server can accept them.
        held.push(
            tokio::net::TcpStream::connect(process.address)
                .await
                .unwrap(),
        );
    }
    wait_for("accept to fail with EMFILE", NEVER, || async {
        log.count(r#""accept failed""#) >= 1
    })
    .await;
    let (failures_at_start, cpu_at_start, started) = (
        log.count(r#""accept failed""#),
        cpu_time(pid),
        Instant::now(),
    );
    // A sampling window, not a wait for something to happen: what the server does at
    // EMFILE over it is measured (a backoff is idle whatever the machine's speed).
    tokio::time::sleep(WINDOW).await;
    let window = started.elapsed();
    let cpu = cpu_time(pid).saturating_sub(cpu_at_start);
    let attempts = log.count(r#""accept failed""#) - failures_at_start;
    println!("at EMFILE: {attempts} accept attempts and {cpu:?} of CPU in {window:?} of backoff");
    // 20, 40, ... 640 ms, then 1 s: a loop retrying at once makes thousands.
    assert!(attempts <= 12, "{attempts} accept attempts: spinning");
    assert!(
        cpu < window / 2,
        "{cpu:?} of CPU in {window:?}: the accept loop spins"
    );
    // Closing the connections frees descriptors: new ones are served again.
    drop(held);
    let url = format!("http://{}/", process.address);
    wait_for("a request to be served again", NEVER, || async {
        matches!(reqwest::get(&url).await, Ok(r) if r.status() == 200)
    })
    .await;
}
