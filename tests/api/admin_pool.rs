//! Pen-test finding 2: a login burst must not exhaust the database pool. No pooled
//! connection is held across the slowdown sleep or argon2, anonymous `/admin/` requests
//! take none at all, and the argon2 queue is bounded (503 with `Retry-After` beyond it).

use std::time::Duration;

use greeter::admin::Policy;

use crate::admin_support::*;
use crate::helpers::{spawn_app, spawn_app_with, wait_for};

/// With every pooled connection taken, cookie-less admin requests still get their
/// redirect to the login page (and the login page itself), not a 3 s wait and a 503.
#[tokio::test]
async fn anonymous_admin_requests_take_no_database_connection() {
    let app = spawn_app().await;
    let max = app.state.pool.status().max_size;
    let mut held = Vec::new();
    for _ in 0..max {
        held.push(app.state.pool.get().await.unwrap());
    }
    for path in ["/admin/", "/admin/users/", "/admin/greetings/"] {
        let r = browser().get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 302, "{path}");
        assert!(location(&r).starts_with("/admin/login/"), "{path}");
    }
    let (status, _) = get(&app, &browser(), "/admin/login/").await;
    assert_eq!(status, 200);
    drop(held);
    app.shutdown().await;
}

/// More failed logins than the pool has connections, all in their slowdown sleep at
/// once: a logged-in admin's pages still answer, because none of them holds a connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_sleeping_in_their_slowdown_hold_no_connection() {
    let app = spawn_app_with(|s| {
        s.admin_policy = Policy {
            slowdown_after: 0,
            slowdown_step: Duration::from_secs(30),
            slowdown_max: Duration::from_secs(30),
            address_failure_limit: 1000,
            // Each attempt locks its (new) username: the lock is written just before the sleep.
            username_failure_limit: 1,
            ..Policy::default()
        }
    })
    .await;
    let admin = logged_in_admin(&app).await;
    let n = app.state.pool.status().max_size + 4;
    let mut tasks = Vec::new();
    for i in 0..n {
        let client = browser();
        let (_, html) = get(&app, &client, "/admin/login/").await;
        let token = csrf_token(&html);
        let url = app.url("/admin/login/");
        tasks.push(tokio::spawn(async move {
            let username = format!("sleeper{i}");
            let _ = client
                .post(&url)
                .form(&[
                    ("username", username.as_str()),
                    ("password", "wrong guess"),
                    ("csrf_token", token.as_str()),
                ])
                .send()
                .await;
        }));
    }
    // Each lock is recorded just before its sleep: once all are, all are sleeping.
    let db = app.db().await;
    wait_for("every login to fail", Duration::from_secs(60), || async {
        let row = db
            .query_one(
                "SELECT count(*) FROM admin_login_failures WHERE key LIKE 'user:sleeper%' AND locked_until IS NOT NULL",
                &[],
            )
            .await
            .unwrap();
        row.get::<_, i64>(0) == n as i64
    })
    .await;
    let (status, _) = get(&app, &admin, "/admin/users/").await;
    assert_eq!(status, 200, "a logged-in page while {n} logins sleep");
    for t in &tasks {
        t.abort();
    }
    app.shutdown().await;
}

/// Past `max_pending_logins`, a login is answered at once with 503 and `Retry-After`,
/// and nothing is counted against anyone.
#[tokio::test]
async fn a_full_login_queue_answers_503_with_retry_after() {
    let app = spawn_app_with(|s| {
        s.admin_policy = Policy {
            max_pending_logins: 0,
            ..Policy::default()
        }
    })
    .await;
    app.create_user(ADMIN, ADMIN_PASSWORD, true, true).await;
    let r = login_as(&app, &browser(), ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let counted = crate::login_burst::counted_keys(&app).await;
    assert_eq!(counted, 0);
    // A replica with room in its queue logs the same user in: nothing was held against them.
    let replica = crate::helpers::spawn_app_on(
        app.server.clone(),
        app.db_name.clone(),
        greeter::config::Settings {
            admin_policy: Policy::default(),
            ..app.settings.clone()
        },
    )
    .await;
    assert_eq!(
        login_as(&replica, &browser(), ADMIN, ADMIN_PASSWORD)
            .await
            .status(),
        302
    );
    replica.shutdown().await;
    app.shutdown().await;
}
