//! Pen-test findings 1, 5, 7 and the low "successful login resets the address counter",
//! "IPv6 per /128": attempts are reserved atomically before argon2, so no burst of any
//! size gets more than the limit's checks; usernames the schema cannot hold are refused
//! before hashing; throttle keys have one canonical form.

use std::time::Duration;

use greeter::admin::Policy;

use crate::admin_support::*;
use crate::helpers::spawn_app_with;

/// Each client gets a fresh CSRF cookie and token first, then all POSTs go at once.
async fn burst(app: &crate::helpers::TestApp, attempts: &[(&str, &str)]) -> Vec<u16> {
    let url = app.url("/admin/login/");
    let mut prepared = Vec::new();
    for (username, password) in attempts {
        let fields = [("username", *username), ("password", *password)];
        prepared.push(form_post(&browser(), &url, &url, &fields).await);
    }
    let tasks: Vec<_> = prepared
        .into_iter()
        .map(|post| tokio::spawn(async move { post.send().await.unwrap().status().as_u16() }))
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses
}

async fn failure_count(app: &crate::helpers::TestApp, key: &str) -> i32 {
    app.db()
        .await
        .query_opt(
            "SELECT failures FROM admin_login_failures WHERE key = $1",
            &[&key],
        )
        .await
        .unwrap()
        .map_or(0, |r| r.get(0))
}

/// How many throttle keys (addresses, usernames, pairs) hold a count.
pub(crate) async fn counted_keys(app: &crate::helpers::TestApp) -> i64 {
    app.db()
        .await
        .query_one("SELECT count(*) FROM admin_login_failures", &[])
        .await
        .unwrap()
        .get(0)
}

fn no_delays(p: Policy) -> Policy {
    Policy {
        slowdown_step: Duration::ZERO,
        slowdown_max: Duration::ZERO,
        ..p
    }
}

/// 60 concurrent wrong guesses and the right password sent last: at most the limit's
/// passwords are checked (the rest get 429 at once), and the right one does not log in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_concurrent_burst_gets_at_most_the_limit_of_checks() {
    let app = spawn_app_with(|s| {
        s.admin_policy = no_delays(Policy {
            username_failure_limit: 5,
            pair_failure_limit: 5,
            address_failure_limit: 1000,
            // The throttle, not the argon2 queue, is under test here.
            max_pending_logins: 1000,
            ..Policy::default()
        })
    })
    .await;
    app.create_user(ADMIN, ADMIN_PASSWORD, true, true).await;
    let mut attempts = vec![(ADMIN, "wrong guess"); 59];
    attempts.push((ADMIN, ADMIN_PASSWORD));
    let statuses = burst(&app, &attempts).await;
    let checked = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    println!("burst of 60: {checked} checked, {refused} refused");
    assert_eq!(
        statuses[59], 429,
        "the right password, sent last, must not log in"
    );
    assert!(checked <= 5, "{checked} passwords checked: {statuses:?}");
    assert_eq!(checked + refused, 60, "{statuses:?}");
    app.shutdown().await;
}

/// A username the schema cannot hold (too long, or outside its ASCII alphabet) is refused
/// without hashing, and still counts against the address.
#[tokio::test]
async fn impossible_usernames_are_refused_early_and_count_against_the_address() {
    let app = spawn_app_with(|s| {
        s.admin_policy = no_delays(Policy {
            address_failure_limit: 3,
            ..Policy::default()
        })
    })
    .await;
    app.create_user(ADMIN, ADMIN_PASSWORD, true, true).await;
    let long = "a".repeat(3000);
    for username in [long.as_str(), "İadmin", "adm in"] {
        let r = login_as(&app, &browser(), username, "wrong guess").await;
        assert_eq!(r.status(), 200, "{}", &username[..10.min(username.len())]);
        assert!(
            r.text()
                .await
                .unwrap()
                .contains("Please enter the correct username")
        );
    }
    assert_eq!(failure_count(&app, "addr:127.0.0.1").await, 3);
    // Nothing but the address was counted: no key for the impossible names.
    let keys = counted_keys(&app).await;
    assert_eq!(keys, 1);
    let r = login_as(&app, &browser(), ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(r.status(), 429, "the address is locked after 3 attempts");
    app.shutdown().await;
}

/// Keys are ASCII-lowercased: `ADMIN` and `admin` share one counter.
#[tokio::test]
async fn one_counter_per_username_whatever_its_case() {
    let app = spawn_app_with(|s| {
        s.admin_policy = no_delays(Policy {
            username_failure_limit: 2,
            ..Policy::default()
        })
    })
    .await;
    app.create_user(ADMIN, ADMIN_PASSWORD, true, true).await;
    login_as(&app, &browser(), "ADMIN", "wrong guess").await;
    login_as(&app, &browser(), "Admin", "wrong guess").await;
    assert_eq!(failure_count(&app, "user:admin").await, 2);
    let r = login_as(&app, &browser(), ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(r.status(), 429);
    app.shutdown().await;
}

/// Password spraying: a successful login does not forgive the address's failures.
#[tokio::test]
async fn a_success_does_not_reset_the_address_counter() {
    let app = spawn_app_with(|s| {
        s.admin_policy = no_delays(Policy {
            address_failure_limit: 4,
            ..Policy::default()
        })
    })
    .await;
    app.create_user(ADMIN, ADMIN_PASSWORD, true, true).await;
    for i in 0..3 {
        login_as(&app, &browser(), &format!("user{i}"), "wrong guess").await;
    }
    assert_eq!(
        login_as(&app, &browser(), ADMIN, ADMIN_PASSWORD)
            .await
            .status(),
        302
    );
    assert_eq!(failure_count(&app, "addr:127.0.0.1").await, 3);
    assert_eq!(
        login_as(&app, &browser(), "user9", "wrong guess")
            .await
            .status(),
        200
    );
    assert_eq!(
        login_as(&app, &browser(), ADMIN, ADMIN_PASSWORD)
            .await
            .status(),
        429
    );
    app.shutdown().await;
}

/// Finding 6: an attacker's failures lock only their (username, address) pair; the
/// owner, from another address, still logs in. The username's hard lock needs far more.
#[tokio::test]
async fn an_attacker_cannot_lock_the_owner_out_from_elsewhere() {
    let app = spawn_app_with(|s| {
        s.network.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        s.admin_policy = no_delays(Policy::default());
    })
    .await;
    app.create_user(ADMIN, ADMIN_PASSWORD, true, true).await;
    let from = |address: &'static str, password: &'static str| {
        let app = &app;
        async move {
            let client = browser();
            let (_, html) = get(app, &client, "/admin/login/").await;
            let token = csrf_token(&html);
            client
                .post(app.url("/admin/login/"))
                .header("x-forwarded-for", address)
                .form(&[
                    ("username", ADMIN),
                    ("password", password),
                    ("csrf_token", token.as_str()),
                ])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let limit = Policy::default().pair_failure_limit;
    for _ in 0..limit {
        assert_eq!(from("203.0.113.66", "wrong guess").await, 200);
    }
    assert_eq!(from("203.0.113.66", ADMIN_PASSWORD).await, 429);
    assert_eq!(from("198.51.100.5", ADMIN_PASSWORD).await, 302);
    app.shutdown().await;
}
