//! SIGTERM: readiness fails, new connections are refused, in-flight requests finish, exit 0.

use std::time::{Duration, Instant};

use secrecy::SecretString;

use crate::admin_support::{ADMIN_PASSWORD, browser, form_post};
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
    let login = format!("http://{address}/admin/login/");
    let logged_in = form_post(
        &browser,
        &login,
        &login,
        &[("username", "admin"), ("password", ADMIN_PASSWORD)],
    )
    .await
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
    // The request has reached the database once its query waits for our lock.
    let watcher = greeter::db::connect(&server.settings(&db_name))
        .await
        .unwrap();
    wait_for(
        "the admin request to wait for the lock",
        Duration::from_secs(30),
        || async {
            let row = watcher
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE datname = current_database() AND wait_event_type = 'Lock'",
                    &[],
                )
                .await
                .unwrap();
            row.get::<_, i64>(0) > 0
        },
    )
    .await;
    let blocked_at = Instant::now();
    assert!(
        !in_flight.is_finished(),
        "the request should be blocked on the lock"
    );

    process.signal(libc::SIGTERM);
    wait_for(
        "new connections to be refused",
        Duration::from_secs(30),
        || async { tokio::net::TcpStream::connect(address).await.is_err() },
    )
    .await;
    assert!(
        !in_flight.is_finished(),
        "the in-flight request is still being served"
    );

    let held = blocked_at.elapsed();
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
        assert!(started.elapsed() < Duration::from_secs(60), "did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");

    // One JSON access-log line per request, with the request id.
    let line = process
        .logs
        .wait_for_json("the access log line", |l| {
            l["request_id"] == "in-flight-request"
        })
        .await;
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "/admin/");
    assert!(line["status"].is_u64());
    assert!(line["latency_ms"].as_f64().unwrap() >= held.as_secs_f64() * 1000.0);
    process
        .logs
        .wait_for_json("the shutdown line", |l| {
            l["message"] == "shutdown requested: draining in-flight requests"
        })
        .await;
}
