//! Admin login, logout, password change, sessions, cookies and CSRF.

use std::time::Duration;

use greeter::admin::Policy;
use greeter::config::AppEnv;

use crate::admin_support::*;
use crate::helpers::{TestApp, spawn_app, spawn_app_with};

#[tokio::test]
async fn the_login_page_has_the_contracted_form() {
    let app = spawn_app().await;
    let client = browser();
    let (status, html) = get(&app, &client, "/admin/login/").await;
    assert_eq!(status, 200);
    assert!(html.contains("<title>Log in | Greeter administration</title>"));
    for needle in [
        r#"<form method="post" action="/admin/login/">"#,
        r#"name="username""#,
        r#"name="password""#,
        r#"name="next""#,
        r#"type="hidden" name="csrf_token" value=""#,
        r#"<label for="id_username">Username</label>"#,
        r#"<label for="id_password">Password</label>"#,
    ] {
        assert!(html.contains(needle), "missing {needle}");
    }
    assert_eq!(csrf_token(&html).len(), 64);
    app.shutdown().await;
}

/// What `nix run .#smoke` does: cookie jar, parse the token, post, follow.
#[tokio::test]
async fn a_staff_user_logs_in_and_sees_the_index() {
    let app = spawn_app().await;
    app.create_user(ADMIN, ADMIN_PASSWORD, true, true).await;
    let client = browser();
    let r = login_as(&app, &client, ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(r.status(), 302);
    assert_eq!(location(&r), "/admin/");
    let (status, html) = get(&app, &client, "/admin/").await;
    assert_eq!(status, 200);
    assert!(html.contains("<title>Site administration | Greeter administration</title>"));
    assert!(html.contains("Welcome, <strong>admin</strong>."));
    // The username is case-insensitive, as the unique index is.
    let other = browser();
    assert_eq!(
        login_as(&app, &other, "ADMIN", ADMIN_PASSWORD)
            .await
            .status(),
        302
    );
    let last_login: Option<std::time::SystemTime> = app
        .db()
        .await
        .query_one("SELECT last_login FROM users WHERE username = 'admin'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(last_login.is_some());
    app.shutdown().await;
}

#[tokio::test]
async fn failed_logins_look_the_same_whatever_the_reason() {
    let app = spawn_app().await;
    app.create_user("staff", ADMIN_PASSWORD, true, false).await;
    app.create_user("nonstaff", ADMIN_PASSWORD, false, false)
        .await;
    let inactive = app
        .create_user("inactive", ADMIN_PASSWORD, true, false)
        .await;
    app.db()
        .await
        .execute(
            "UPDATE users SET is_active = FALSE WHERE id = $1",
            &[&inactive],
        )
        .await
        .unwrap();
    let mut bodies = Vec::new();
    for (user, password) in [
        ("staff", "wrong password here"),
        ("nobody-by-that-name", ADMIN_PASSWORD),
        ("nonstaff", ADMIN_PASSWORD),
        ("inactive", ADMIN_PASSWORD),
    ] {
        let client = browser();
        let r = login_as(&app, &client, user, password).await;
        assert_eq!(r.status(), 200, "{user}");
        assert!(set_cookies(&r).iter().all(|c| !c.contains("session=")));
        let body = r.text().await.unwrap();
        assert!(
            body.contains("Please enter the correct username and password for a staff account.")
        );
        // Apart from the echoed username and the token, the pages are identical.
        bodies.push(
            body.replace(&format!(r#"value="{user}""#), "value=USER")
                .replace(&csrf_token(&body), "TOKEN"),
        );
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "pages differ");
    app.shutdown().await;
}

#[tokio::test]
async fn empty_login_fields_get_errors_next_to_them() {
    let app = spawn_app().await;
    let client = browser();
    let r = login_as(&app, &client, "", "").await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains(
        r#"<ul class="errorlist" id="id_username-errors"><li>This field is required.</li></ul>"#
    ));
    assert!(html.contains(
        r#"<ul class="errorlist" id="id_password-errors"><li>This field is required.</li></ul>"#
    ));
    assert!(html.contains(r#"aria-invalid="true" aria-describedby="id_username-errors""#));
    app.shutdown().await;
}

#[tokio::test]
async fn every_admin_url_redirects_to_login_when_logged_out() {
    let app = spawn_app().await;
    let client = browser();
    for (path, next) in [
        ("/admin/", "/admin/"),
        ("/admin/users/", "/admin/users/"),
        ("/admin/users/1/", "/admin/users/1/"),
        ("/admin/greetings/?p=2", "/admin/greetings/?p=2"),
        ("/admin/audit/", "/admin/audit/"),
        ("/admin/settings/", "/admin/settings/"),
        ("/admin/password_change/", "/admin/password_change/"),
        ("/admin/no-such-page/", "/admin/no-such-page/"),
    ] {
        let r = client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 302, "{path}");
        let expected = format!("/admin/login/?next={}", url_encode(next));
        assert_eq!(location(&r), expected, "{path}");
    }
    // A POST is not replayed: back to the page after login, and nothing happened.
    let r = client
        .post(app.url("/admin/greetings/add/"))
        .form(&[("message", "sneaky")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        location(&r),
        "/admin/login/?next=%2Fadmin%2Fgreetings%2Fadd%2F"
    );
    let count = app.query_i64("SELECT count(*) FROM greetings").await;
    assert_eq!(count, 1);
    // Without the trailing slash: first the slash, then the login.
    let r = client.get(app.url("/admin")).send().await.unwrap();
    assert_eq!(r.status(), 301);
    assert_eq!(location(&r), "/admin/");
    app.shutdown().await;
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn login_follows_only_safe_next_paths() {
    let app = spawn_app().await;
    app.create_user(ADMIN, ADMIN_PASSWORD, true, true).await;
    for (next, expected) in [
        ("/admin/greetings/", "/admin/greetings/"),
        (
            "/admin/users/?q=a&o=-username",
            "/admin/users/?q=a&o=-username",
        ),
        ("https://evil.example/", "/admin/"),
        ("//evil.example/", "/admin/"),
        ("/\\evil.example/", "/admin/"),
        ("javascript:alert(1)", "/admin/"),
        ("/admin/\r\nSet-Cookie:x=1", "/admin/"),
        ("", "/admin/"),
    ] {
        let client = browser();
        let r = submit(
            &app,
            &client,
            &format!("/admin/login/?next={}", url_encode(next)),
            "/admin/login/",
            &[
                ("username", ADMIN),
                ("password", ADMIN_PASSWORD),
                ("next", next),
            ],
        )
        .await;
        assert_eq!(r.status(), 302, "{next}");
        assert_eq!(location(&r), expected, "{next:?}");
    }
    // The login page carries `next` into its form, escaped.
    let (_, html) = get(&app, &browser(), "/admin/login/?next=%2Fadmin%2Fusers%2F").await;
    assert!(html.contains(r#"name="next" value="/admin/users/""#));
    let (_, html) = get(&app, &browser(), "/admin/login/?next=%2F%2Fevil").await;
    assert!(html.contains(r#"name="next" value="/admin/""#));
    app.shutdown().await;
}

#[tokio::test]
async fn a_logged_in_user_visiting_login_goes_to_next() {
    let app = spawn_app().await;
    let client = logged_in_admin(&app).await;
    let r = client
        .get(app.url("/admin/login/?next=/admin/greetings/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(location(&r), "/admin/greetings/");
    app.shutdown().await;
}

#[tokio::test]
async fn logout_is_a_post_with_csrf_and_ends_the_session() {
    let app = spawn_app().await;
    let client = logged_in_admin(&app).await;
    // GET does not log out.
    let r = client.get(app.url("/admin/logout/")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(get(&app, &client, "/admin/").await.0, 200);
    // POST without the token is refused.
    let r = client.post(app.url("/admin/logout/")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(get(&app, &client, "/admin/").await.0, 200);

    let r = submit(&app, &client, "/admin/", "/admin/logout/", &[]).await;
    assert_eq!(r.status(), 302);
    assert_eq!(location(&r), "/admin/login/");
    assert!(
        set_cookies(&r)
            .iter()
            .any(|c| c.starts_with("greeter_session=;") && c.contains("Max-Age=0"))
    );
    let html = follow(&app, &client, &r).await;
    assert!(html.contains("You have been logged out."));
    assert_eq!(get(&app, &client, "/admin/").await.0, 302);
    let sessions = app.query_i64("SELECT count(*) FROM admin_sessions").await;
    assert_eq!(sessions, 0);
    let actions = audit_actions(&app).await;
    assert_eq!(
        actions[0],
        ("admin".into(), "logout".into(), "session".into())
    );
    assert_eq!(
        actions[1],
        ("admin".into(), "login".into(), "session".into())
    );
    app.shutdown().await;
}

#[tokio::test]
async fn the_session_id_changes_at_login() {
    let app = spawn_app().await;
    app.create_user(ADMIN, ADMIN_PASSWORD, true, true).await;
    let client = browser();
    assert_eq!(
        login_as(&app, &client, ADMIN, ADMIN_PASSWORD)
            .await
            .status(),
        302
    );
    // An attacker plants a session id they know (fixation): logging in replaces it.
    let planted = "a".repeat(64);
    let (_, r) = login_without_jar(&app, &format!("greeter_session={planted}")).await;
    assert_eq!(r.status(), 302);
    let cookie = set_cookies(&r)
        .into_iter()
        .find(|c| c.starts_with("greeter_session="))
        .unwrap();
    let token = &cookie["greeter_session=".len()..cookie.find(';').unwrap()];
    assert_eq!(token.len(), 64);
    assert_ne!(token, planted);
    // Two logins, two different sessions, both stored only as hashes.
    let rows = app
        .db()
        .await
        .query("SELECT token_hash FROM admin_sessions", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    use sha2::Digest;
    let hashes: Vec<Vec<u8>> = rows.iter().map(|r| r.get(0)).collect();
    // The new session is stored as its token's SHA-256, never as the token itself ...
    assert!(
        hashes.contains(&sha2::Sha256::digest(token.as_bytes()).to_vec()),
        "no stored hash matches the new session's token"
    );
    assert!(!hashes.iter().any(|h| h == token.as_bytes()));
    // ... and the planted id was never stored.
    assert!(!hashes.contains(&sha2::Sha256::digest(planted.as_bytes()).to_vec()));
    app.shutdown().await;
}

/// Time, as far as sessions are concerned, is the database's `now()`: the tests move a
/// session's timestamps back instead of sleeping through the timeouts.
async fn age_session(app: &TestApp, column: &str, by: Duration) {
    let n = app
        .db()
        .await
        .execute(
            &format!("UPDATE admin_sessions SET {column} = now() - make_interval(secs => $1)"),
            &[&by.as_secs_f64()],
        )
        .await
        .unwrap();
    assert_eq!(n, 1, "one session");
}

#[tokio::test]
async fn sessions_end_after_the_idle_timeout() {
    let idle = Duration::from_secs(30 * 60);
    let app = spawn_app_with(|s| {
        s.admin_policy = Policy {
            idle_timeout: idle,
            ..Policy::default()
        }
    })
    .await;
    let client = logged_in_admin(&app).await;
    // Activity keeps it alive past the idle timeout: each request just inside it renews it.
    for _ in 0..3 {
        age_session(&app, "last_seen_at", idle - Duration::from_secs(60)).await;
        assert_eq!(get(&app, &client, "/admin/").await.0, 200);
    }
    let renewed: bool = app
        .db()
        .await
        .query_one(
            "SELECT last_seen_at > now() - interval '5 minutes' FROM admin_sessions",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(renewed, "a request renews the session");
    // ...idleness ends it.
    age_session(&app, "last_seen_at", idle + Duration::from_secs(60)).await;
    let r = client.get(app.url("/admin/")).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert!(location(&r).starts_with("/admin/login/"));
    // The stale cookie is cleared.
    assert!(
        set_cookies(&r)
            .iter()
            .any(|c| c.starts_with("greeter_session=;"))
    );
    app.shutdown().await;
}

#[tokio::test]
async fn sessions_end_after_the_absolute_timeout_however_active() {
    let absolute = Duration::from_secs(12 * 60 * 60);
    let app = spawn_app_with(|s| {
        s.admin_policy = Policy {
            absolute_timeout: absolute,
            ..Policy::default()
        }
    })
    .await;
    let client = logged_in_admin(&app).await;
    age_session(&app, "created_at", absolute - Duration::from_secs(60)).await;
    assert_eq!(get(&app, &client, "/admin/").await.0, 200);
    // Active a moment ago, but logged in too long ago.
    age_session(&app, "created_at", absolute + Duration::from_secs(60)).await;
    age_session(&app, "last_seen_at", Duration::ZERO).await;
    let r = client.get(app.url("/admin/")).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert!(location(&r).starts_with("/admin/login/"));
    app.shutdown().await;
}

#[tokio::test]
async fn a_user_who_loses_staff_status_is_logged_out() {
    let app = spawn_app().await;
    let client = logged_in_admin(&app).await;
    // Another superuser remains (the database refuses to lose the last one, see V3).
    app.create_user("keeper", ADMIN_PASSWORD, true, true).await;
    app.db()
        .await
        .execute(
            "UPDATE users SET is_staff = FALSE WHERE username = 'admin'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(get(&app, &client, "/admin/").await.0, 302);
    app.shutdown().await;
}

#[tokio::test]
async fn local_cookies_are_httponly_lax_and_not_secure() {
    let app = spawn_app().await;
    app.create_user(ADMIN, ADMIN_PASSWORD, true, true).await;
    let r = login_as(&app, &browser(), ADMIN, ADMIN_PASSWORD).await;
    let session = set_cookies(&r)
        .into_iter()
        .find(|c| c.starts_with("greeter_session="))
        .expect("a session cookie");
    assert!(session.contains("; Path=/"));
    assert!(session.contains("; HttpOnly"));
    assert!(session.contains("; SameSite=Lax"));
    assert!(session.contains("; Max-Age=43200"));
    assert!(!session.contains("Secure"));
    assert!(!session.contains("Domain"));
    app.shutdown().await;
}

#[tokio::test]
async fn production_cookies_are_secure_with_the_host_prefix() {
    let app = spawn_app_with(|s| s.app_env = AppEnv::Production).await;
    app.create_user(ADMIN, ADMIN_PASSWORD, true, true).await;
    // reqwest keeps Secure cookies off plain HTTP, so carry them by hand.
    let (csrf, r) = login_without_jar(&app, "").await;
    assert!(csrf.starts_with("__Host-greeter_csrf="), "{csrf}");
    assert!(csrf.contains("; Secure") && csrf.contains("; Path=/") && csrf.contains("; HttpOnly"));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    assert_eq!(r.status(), 302);
    let session = set_cookies(&r)
        .into_iter()
        .find(|c| c.starts_with("__Host-greeter_session="))
        .expect("a __Host- session cookie");
    for attribute in ["; Path=/", "; HttpOnly", "; SameSite=Lax", "; Secure"] {
        assert!(session.contains(attribute), "{session} lacks {attribute}");
    }
    assert!(!session.contains("Domain"));
    let cookie = &session[..session.find(';').unwrap()];
    let page = client
        .get(app.url("/admin/"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    // The unprefixed local name is not accepted in production.
    let plain = cookie.replace("__Host-greeter_session", "greeter_session");
    let page = client
        .get(app.url("/admin/"))
        .header("cookie", plain)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 302);
    app.shutdown().await;
}

#[tokio::test]
async fn posts_without_a_valid_csrf_token_are_403() {
    let app = spawn_app().await;
    app.create_user(ADMIN, ADMIN_PASSWORD, true, true).await;
    // Login: no token, a wrong token, or a token without its cookie.
    let client = browser();
    let (_, html) = get(&app, &client, "/admin/login/").await;
    let token = csrf_token(&html);
    for form in [
        vec![("username", ADMIN), ("password", ADMIN_PASSWORD)],
        vec![
            ("username", ADMIN),
            ("password", ADMIN_PASSWORD),
            ("csrf_token", "0000"),
        ],
    ] {
        let r = client
            .post(app.url("/admin/login/"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        assert!(r.text().await.unwrap().contains("CSRF verification failed"));
    }
    let cookieless = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = cookieless
        .post(app.url("/admin/login/"))
        .form(&[
            ("username", ADMIN),
            ("password", ADMIN_PASSWORD),
            ("csrf_token", token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Logged in: a token from the login page, or from another session, is not valid.
    let alice = logged_in_admin_named(&app, "alice").await;
    let bob = logged_in_admin_named(&app, "bob").await;
    let (_, bobs_page) = get(&app, &bob, "/admin/greetings/add/").await;
    let bobs_token = csrf_token(&bobs_page);
    for token in ["", token.as_str(), bobs_token.as_str()] {
        let r = alice
            .post(app.url("/admin/greetings/add/"))
            .form(&[("message", "forged"), ("csrf_token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "token {token:?}");
    }
    // A browser that says the POST came from another site is refused even with a token.
    let (_, page) = get(&app, &alice, "/admin/greetings/add/").await;
    let r = alice
        .post(app.url("/admin/greetings/add/"))
        .header("sec-fetch-site", "cross-site")
        .form(&[("message", "forged"), ("csrf_token", &csrf_token(&page))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let count = app
        .query_i64("SELECT count(*) FROM greetings WHERE message = 'forged'")
        .await;
    assert_eq!(count, 0);
    app.shutdown().await;
}

#[tokio::test]
async fn password_change_validates_and_ends_other_sessions() {
    let app = spawn_app().await;
    let client = logged_in_admin(&app).await;
    let other_device = session_as(&app, ADMIN, ADMIN_PASSWORD).await;

    let (status, html) = get(&app, &client, "/admin/password_change/").await;
    assert_eq!(status, 200);
    assert!(html.contains("<title>Password change | Greeter administration</title>"));
    for label in ["Old password", "New password", "New password confirmation"] {
        assert!(html.contains(&format!(">{label}</label>")), "{label}");
    }
    for (old, new1, new2, error) in [
        (
            "wrong old password",
            "a brand new passphrase",
            "a brand new passphrase",
            "Your old password was entered incorrectly.",
        ),
        (
            ADMIN_PASSWORD,
            "a brand new passphrase",
            "a different passphrase",
            "didn’t match",
        ),
        (ADMIN_PASSWORD, "short", "short", "too short"),
        (
            ADMIN_PASSWORD,
            "Password12345!",
            "Password12345!",
            "too easy to guess",
        ),
        (
            ADMIN_PASSWORD,
            "1234567890123",
            "1234567890123",
            "too easy to guess",
        ),
        ("", "", "", "This field is required."),
    ] {
        let r = submit(
            &app,
            &client,
            "/admin/password_change/",
            "/admin/password_change/",
            &[
                ("old_password", old),
                ("new_password1", new1),
                ("new_password2", new2),
            ],
        )
        .await;
        assert_eq!(r.status(), 200);
        let body = r.text().await.unwrap();
        assert!(body.contains(error), "expected {error:?}");
        assert!(body.contains(r#"class="errorlist""#));
    }

    let r = submit(
        &app,
        &client,
        "/admin/password_change/",
        "/admin/password_change/",
        &[
            ("old_password", ADMIN_PASSWORD),
            ("new_password1", "a brand new passphrase"),
            ("new_password2", "a brand new passphrase"),
        ],
    )
    .await;
    assert_eq!(r.status(), 302);
    assert_eq!(location(&r), "/admin/");
    // This browser got a fresh session and stays logged in; the other device is out.
    assert!(
        set_cookies(&r)
            .iter()
            .any(|c| c.starts_with("greeter_session="))
    );
    let html = follow(&app, &client, &r).await;
    assert!(html.contains("Your password was changed."));
    assert_eq!(get(&app, &other_device, "/admin/").await.0, 302);
    // The old password no longer works, the new one does.
    assert_eq!(
        login_as(&app, &browser(), ADMIN, ADMIN_PASSWORD)
            .await
            .status(),
        200
    );
    assert_eq!(
        login_as(&app, &browser(), ADMIN, "a brand new passphrase")
            .await
            .status(),
        302
    );
    let actions = audit_actions(&app).await;
    assert!(
        actions
            .iter()
            .any(|(_, a, t)| a == "password_change" && t == "user")
    );
    let after = audit_after(&app, "password_change").await;
    assert_eq!(after, serde_json::json!({"password": "changed"}));
    app.shutdown().await;
}
