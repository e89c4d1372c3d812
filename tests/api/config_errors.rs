//! Bad configuration: exit status 2, one line naming the variable, never its value.

use std::collections::HashMap;

use crate::helpers::{binary, server_env};
use crate::postgres;

fn run(name: &str, env: &HashMap<String, String>) -> (i32, String) {
    let output = binary(name, env).output().expect("run the binary");
    (
        output.status.code().expect("exited normally"),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn valid_env() -> HashMap<String, String> {
    server_env(&postgres::shared().clone(), "unused")
}

#[test]
fn missing_variables_are_named() {
    for variable in ["SECRET_KEY", "DEBUG", "DATABASE_HOST", "DATABASE_PASSWORD"] {
        let mut env = valid_env();
        env.remove(variable);
        let (code, stderr) = run("greeter", &env);
        assert_eq!(code, 2, "{variable}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(variable), "{stderr}");
    }
}

#[test]
fn invalid_values_are_named_but_never_printed() {
    for (variable, value) in [
        ("SECRET_KEY", "short-but-secret-value"),
        ("DATABASE_PORT", "70000"),
        ("DEBUG", "maybe-later"),
        ("DATABASE_SSLMODE", "sometimes"),
    ] {
        let mut env = valid_env();
        env.insert(variable.into(), value.into());
        let (code, stderr) = run("greeter", &env);
        assert_eq!(code, 2, "{variable}: {stderr}");
        assert!(stderr.contains(variable), "{stderr}");
        assert!(!stderr.contains(value), "the value leaked: {stderr}");
    }
}

#[test]
fn the_migrator_names_its_missing_variables_too() {
    let mut env = valid_env();
    env.remove("DATABASE_NAME");
    let (code, stderr) = run("greeter-migrate", &env);
    assert_eq!(code, 2);
    assert!(stderr.contains("DATABASE_NAME"), "{stderr}");

    let mut env = valid_env();
    env.insert("ADMIN_USERNAME".into(), "admin".into());
    let (code, stderr) = run("greeter-migrate", &env);
    assert_eq!(code, 2);
    assert!(stderr.contains("ADMIN_PASSWORD"), "{stderr}");

    env.insert("ADMIN_PASSWORD".into(), "password".into());
    let (code, stderr) = run("greeter-migrate", &env);
    assert_eq!(code, 2, "weak bootstrap passwords are refused");
    assert!(
        stderr.contains("ADMIN_PASSWORD") && !stderr.contains(": password"),
        "{stderr}"
    );
}

#[test]
fn secret_files_are_read_and_their_errors_named() {
    let mut env = valid_env();
    env.remove("SECRET_KEY");
    env.insert("SECRET_KEY_FILE".into(), "/nonexistent/secret".into());
    let (code, stderr) = run("greeter", &env);
    assert_eq!(code, 2);
    assert!(stderr.contains("SECRET_KEY_FILE"), "{stderr}");
}

#[test]
fn values_that_are_not_utf8_are_named_not_mangled() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::time::{Duration, Instant};
    // Each would be accepted if its bad byte were replaced by U+FFFD: the server would
    // start with a value nobody configured.
    for (variable, value) in [
        (
            "SECRET_KEY",
            &b"a-long-enough-secret-key-with-a-bad-byte-\xff-0123"[..],
        ),
        ("DATABASE_HOST", &b"127.0.0.1\xff"[..]),
        ("DATABASE_NAME", &b"greeter\xfe"[..]),
    ] {
        let env = valid_env();
        let mut child = binary("greeter", &env)
            .env(variable, OsStr::from_bytes(value))
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("METRICS_ADDR", "127.0.0.1:0")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run greeter");
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{variable}: the server started with a mangled value");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert_eq!(status.code(), Some(2), "{variable}: {stderr}");
        assert!(stderr.contains(variable), "{stderr}");
        assert!(stderr.contains("UTF-8"), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    }
}
