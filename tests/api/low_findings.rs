//! Pen-test low findings: `nosniff` on JSON, NUL bytes in forms, a throttled
//! old-password check.

use std::time::Duration;

use greeter::admin::Policy;

use crate::admin_support::*;
use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn json_responses_carry_nosniff() {
    let app = spawn_app().await;
    for path in ["/", "/healthz", "/no-such-page"] {
        let r = app.get(path).await;
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
    }
    app.shutdown().await;
}

/// PostgreSQL text cannot hold NUL: the form is refused with 400, not a 500.
#[tokio::test]
async fn a_nul_byte_in_a_form_is_a_bad_request() {
    let app = spawn_app().await;
    let client = logged_in_admin(&app).await;
    let r = submit(
        &app,
        &client,
        "/admin/greetings/add/",
        "/admin/greetings/add/",
        &[("message", "hello\0world"), ("is_active", "on")],
    )
    .await;
    assert_eq!(r.status(), 400);
    let r = login_as(&app, &browser(), "adm\0in", "wrong guess").await;
    assert_eq!(r.status(), 400);
    app.shutdown().await;
}

/// The old-password field of the password change is throttled like the login form.
#[tokio::test]
async fn the_old_password_check_is_throttled() {
    let app = spawn_app_with(|s| {
        s.admin_policy = Policy {
            pair_failure_limit: 2,
            slowdown_step: Duration::ZERO,
            ..Policy::default()
        }
    })
    .await;
    let client = logged_in_admin(&app).await;
    let change = |old: &'static str| {
        let client = client.clone();
        let app = &app;
        async move {
            let r = submit(
                app,
                &client,
                "/admin/password_change/",
                "/admin/password_change/",
                &[
                    ("old_password", old),
                    ("new_password1", "a much newer passphrase 42"),
                    ("new_password2", "a much newer passphrase 42"),
                ],
            )
            .await;
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    for _ in 0..2 {
        let (status, body) = change("wrong old password").await;
        assert_eq!(status, 200);
        assert!(body.contains("entered incorrectly"));
    }
    let (status, body) = change(ADMIN_PASSWORD).await;
    assert_eq!(status, 200, "refused, not changed");
    assert!(body.contains("Too many failed login attempts"), "{body}");
    app.shutdown().await;
}

/// A lockout's audit entry names what was typed, marked unverified and truncated.
#[tokio::test]
async fn anonymous_usernames_in_the_audit_log_are_marked_and_truncated() {
    let app = spawn_app_with(|s| {
        s.admin_policy = Policy {
            pair_failure_limit: 2,
            slowdown_step: Duration::ZERO,
            ..Policy::default()
        }
    })
    .await;
    let typed = "x".repeat(150);
    for _ in 0..2 {
        assert_eq!(
            login_as(&app, &browser(), &typed, "guess").await.status(),
            200
        );
    }
    let locked: Vec<String> = audit_actions(&app)
        .await
        .into_iter()
        .filter(|(_, action, _)| action == "login_locked")
        .map(|(username, _, _)| username)
        .collect();
    assert_eq!(locked.len(), 1, "{locked:?}");
    assert_eq!(locked[0], format!("{}… (unverified)", "x".repeat(64)));
    app.shutdown().await;
}
