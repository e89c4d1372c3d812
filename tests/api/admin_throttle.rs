//! Login throttling: slowed, then locked out, per username and per client address;
//! reset by a successful login; and a login flood does not stall `GET /`.

use std::time::{Duration, Instant};

use greeter::admin::Policy;

use crate::admin_support::*;
use crate::helpers::{spawn_app_with, wait_for};

/// Lock a username after 3 failures, an address after 6, both for `lockout`.
fn strict(lockout: Duration) -> Policy {
    Policy {
        username_failure_limit: 3,
        address_failure_limit: 6,
        lockout,
        slowdown_after: 1,
        slowdown_step: Duration::from_millis(200),
        slowdown_max: Duration::from_millis(400),
        ..Policy::default()
    }
}

#[tokio::test]
async fn repeated_failures_lock_a_username_even_for_the_right_password() {
    let app = spawn_app_with(|s| s.admin_policy = strict(Duration::from_secs(60))).await;
    app.create_user(ADMIN, ADMIN_PASSWORD, true, true).await;
    let client = browser();
    let mut took = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let r = login_as(&app, &client, ADMIN, "wrong guess").await;
        took.push(started.elapsed());
        assert_eq!(r.status(), 200);
    }
    // Slowed down after the first failure: the answers take longer.
    assert!(took[1] >= Duration::from_millis(200), "{took:?}");
    assert!(took[2] >= Duration::from_millis(400), "{took:?}");

    let r = login_as(&app, &client, ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(r.status(), 429);
    let body = r.text().await.unwrap();
    assert!(body.contains("Too many failed login attempts. Please try again later."));
    // Another case of the same name is the same account, and the same lock.
    assert_eq!(
        login_as(&app, &browser(), "AdMiN", ADMIN_PASSWORD)
            .await
            .status(),
        429
    );
    // Logged, once, in the audit log.
    let locked: Vec<_> = audit_actions(&app)
        .await
        .into_iter()
        .filter(|(_, action, _)| action == "login_locked")
        .collect();
    assert_eq!(locked.len(), 1, "{locked:?}");
    app.shutdown().await;
}

#[tokio::test]
async fn unknown_usernames_are_locked_out_the_same_way() {
    let app = spawn_app_with(|s| s.admin_policy = strict(Duration::from_secs(60))).await;
    let client = browser();
    for _ in 0..3 {
        assert_eq!(
            login_as(&app, &client, "ghost", "whatever1").await.status(),
            200
        );
    }
    assert_eq!(
        login_as(&app, &client, "ghost", "whatever1").await.status(),
        429
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_lockout_expires_and_a_success_resets_the_count() {
    let app = spawn_app_with(|s| {
        s.admin_policy = Policy {
            address_failure_limit: 20,
            ..strict(Duration::from_secs(3600))
        }
    })
    .await;
    app.create_user(ADMIN, ADMIN_PASSWORD, true, true).await;
    let client = browser();
    for _ in 0..3 {
        login_as(&app, &client, ADMIN, "wrong guess").await;
    }
    assert_eq!(
        login_as(&app, &client, ADMIN, ADMIN_PASSWORD)
            .await
            .status(),
        429
    );
    // An hour passes, as far as the lock is concerned (the database's clock decides).
    let expired = app
        .db()
        .await
        .execute(
            "UPDATE admin_login_failures SET locked_until = now() - interval '1 second'
             WHERE locked_until IS NOT NULL",
            &[],
        )
        .await
        .unwrap();
    assert!(expired > 0, "something was locked");
    assert_eq!(
        login_as(&app, &client, ADMIN, ADMIN_PASSWORD)
            .await
            .status(),
        302
    );
    // The count starts again from zero: two failures do not lock, and a success
    // forgives them, so two more do not either.
    for _ in 0..2 {
        for _ in 0..2 {
            login_as(&app, &browser(), ADMIN, "wrong guess").await;
        }
        let r = login_as(&app, &browser(), ADMIN, ADMIN_PASSWORD).await;
        assert_eq!(r.status(), 302);
    }
    let keys: Vec<String> = app
        .db()
        .await
        .query("SELECT key FROM admin_login_failures", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    // A success clears the username's counters, never the address's (password spraying).
    assert_eq!(keys, vec!["addr:127.0.0.1".to_owned()]);
    app.shutdown().await;
}

#[tokio::test]
async fn one_address_trying_many_usernames_is_locked_out() {
    let app = spawn_app_with(|s| {
        s.admin_policy = Policy {
            slowdown_step: Duration::ZERO,
            ..strict(Duration::from_secs(60))
        }
    })
    .await;
    app.create_user(ADMIN, ADMIN_PASSWORD, true, true).await;
    let client = browser();
    for i in 0..6 {
        let r = login_as(&app, &client, &format!("user{i}"), "wrong guess").await;
        assert_eq!(r.status(), 200);
    }
    // Each username failed only once, but this address is now locked for everyone.
    assert_eq!(
        login_as(&app, &client, ADMIN, ADMIN_PASSWORD)
            .await
            .status(),
        429
    );
    let keys: Vec<String> = app
        .db()
        .await
        .query(
            "SELECT key FROM admin_login_failures WHERE locked_until > now()",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(keys, vec!["addr:127.0.0.1".to_owned()]);
    app.shutdown().await;
}

/// A flood of concurrent wrong logins (argon2 each): `GET /` keeps answering while they are still
/// being hashed, because hashing runs on threads of its own. How fast it answers is the
/// benchmark's business (`scripts/bench.sh`, "GET / during login flood"), not this test's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_does_not_stall_the_greeting() {
    let app = spawn_app_with(|s| {
        s.admin_policy = Policy {
            username_failure_limit: 1000,
            address_failure_limit: 1000,
            slowdown_step: Duration::ZERO,
            max_pending_logins: 1000,
            ..Policy::default()
        };
        // The hashes queue for the hashing threads; however slow the machine, none of
        // them may time out.
        s.network.request_timeout = Duration::from_secs(3600);
    })
    .await;
    app.create_user(ADMIN, ADMIN_PASSWORD, true, true).await;
    let (_, html) = get(&app, &browser(), "/admin/login/").await;
    assert!(html.contains("csrf_token"));
    // Enough hashes to keep every hashing thread busy for a while on any machine.
    let logins = 20 * greeter::auth::password::hash_threads() + 20;
    let flood: Vec<_> = (0..logins)
        .map(|i| {
            let url = app.url("/admin/login/");
            tokio::spawn(async move {
                let client = browser();
                let page = client.get(&url).send().await.unwrap().text().await.unwrap();
                let token = csrf_token(&page);
                client
                    .post(&url)
                    .form(&[
                        ("username", format!("user{i}").as_str()),
                        ("password", "wrong guess"),
                        ("csrf_token", &token),
                    ])
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    // A login has reserved its attempt (the step just before argon2) once its key exists.
    let db = app.db().await;
    wait_for(
        "the flood to reach its password checks",
        Duration::from_secs(600),
        || async {
            db.query_one(
                "SELECT count(*) FROM admin_login_failures WHERE key LIKE 'user:user%'",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
                > 0
        },
    )
    .await;
    let plain = reqwest::Client::new();
    let mut answered_during_flood = 0;
    while !flood.iter().all(|t| t.is_finished()) {
        let r = plain.get(app.url("/")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        if !flood.iter().all(|t| t.is_finished()) {
            answered_during_flood += 1;
        }
    }
    for task in flood {
        assert_eq!(task.await.unwrap(), 200);
    }
    assert!(
        answered_during_flood > 0,
        "GET / answered only once every login had been hashed"
    );
    app.shutdown().await;
}
