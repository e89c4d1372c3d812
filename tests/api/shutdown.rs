//! SIGTERM: readiness fails, new connections are refused, in-flight requests finish, exit 0.

use std::io::Read;
use std::time::{Duration, Instant};

use secrecy::SecretString;

use crate::admin_support::{ADMIN_PASSWORD, browser, csrf_token};
use crate::helpers::{ServerProcess, wait_for};
use crate::postgres::{self, TEMPLATE_DB};

#[tokio::test]
async fn an_in_flight_request_completes_after_sigterm() {
    let server = postgres::shared().clone();
    let db_name = server.create_database(Some(TEMPLATE_DB)).await;
    let mut process = ServerProcess::start(&server, &db_name).await;
    let address = process.address;

    // Make a request slow for real: a logged-in admin page reads the session (joined with
    // `users`), and we lock `users`. (Readiness no longer touches the database.)
    let mut blocker = greeter::db::connect(&server.settings(&db_name))
        .await
        .unwrap();
    let hash = greeter::auth::password::hash(&SecretString::from(ADMIN_PASSWORD.to_owned()));
    blocker
        .execute(
            "INSERT INTO users (username, password_hash, is_staff, is_superuser)
             VALUES ('admin', $1, true, true)",
            &[&hash],
        )
        .await
        .unwrap();
    let browser = browser();
    let login = browser
        .get(format!("http://{address}/admin/login/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = csrf_token(&login);
    let logged_in = browser
        .post(format!("http://{address}/admin/login/"))
        .form(&[
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
            ("csrf_token", token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(logged_in.status(), 302, "login");
    let lock = blocker.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let in_flight = tokio::spawn(async move {
        browser
            .get(format!("http://{address}/admin/"))
            .header("X-Request-Id", "in-flight-request")
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !in_flight.is_finished(),
        "the request should be blocked on the lock"
    );

    process.signal(libc::SIGTERM);
    wait_for(
        "new connections to be refused",
        Duration::from_secs(5),
        || async { tokio::net::TcpStream::connect(address).await.is_err() },
    )
    .await;
    assert!(
        !in_flight.is_finished(),
        "the in-flight request is still being served"
    );

    lock.rollback().await.unwrap();
    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight request got a complete response");
    assert_eq!(response.headers()["x-request-id"], "in-flight-request");
    response.text().await.expect("a complete body");

    let started = Instant::now();
    let status = loop {
        if let Some(status) = process.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");

    // One JSON access-log line per request, with the request id.
    let mut stdout = String::new();
    process
        .child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let line = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["request_id"] == "in-flight-request")
        .unwrap_or_else(|| panic!("no access log line:\n{stdout}"));
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "/admin/");
    assert!(line["status"].is_u64());
    assert!(line["latency_ms"].as_f64().unwrap() >= 300.0);
    assert!(stdout.contains("shutdown requested"));
}
