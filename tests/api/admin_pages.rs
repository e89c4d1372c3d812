//! The index, settings, audit log, flash messages, static files, security headers, and
//! that admin pages render completely under concurrent clients.

use greeter::config::AppEnv;
use secrecy::SecretString;

use crate::admin_support::*;
use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn the_index_lists_models_with_counts_and_recent_actions() {
    let app = spawn_app().await;
    let client = logged_in_admin(&app).await;
    add_greeting(&app, &client, &[("message", "Ciao mondo")]).await;
    let (status, html) = get(&app, &client, "/admin/").await;
    assert_eq!(status, 200);
    assert!(
        html.contains(r#"<a href="/admin/greetings/">Greetings</a></th><td>2</td>"#),
        "{html}"
    );
    assert!(html.contains(r#"<a href="/admin/users/">Users</a></th><td>1</td>"#));
    assert!(html.contains(r#"<a href="/admin/audit/">Audit log</a>"#));
    assert!(html.contains("Recent actions"));
    assert!(html.contains(">Ciao mondo</a>"));
    app.shutdown().await;
}

#[tokio::test]
async fn settings_show_the_environment_version_and_only_a_fingerprint() {
    let key = "pk_live_very-secret-payment-key-0123456789";
    let app = spawn_app_with(|s| {
        s.app_env = AppEnv::Production;
        s.payment_api_key = Some(SecretString::from(key.to_owned()));
    })
    .await;
    app.create_user(ADMIN, ADMIN_PASSWORD, true, false).await;
    // Production cookies are Secure: carry the session by hand over plain HTTP.
    let (_, r) = login_without_jar(&app, "").await;
    let client = reqwest::Client::new();
    let session = set_cookies(&r)
        .into_iter()
        .find(|c| c.contains("session="))
        .unwrap();
    let html = client
        .get(app.url("/admin/settings/"))
        .header("cookie", &session[..session.find(';').unwrap()])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("<title>Settings | Greeter administration</title>"));
    assert!(html.contains(r#"<dd id="app-env">production</dd>"#));
    assert!(html.contains(&format!(
        r#"<dd id="version">{}</dd>"#,
        env!("CARGO_PKG_VERSION")
    )));
    let fingerprint = greeter::admin::fingerprint(key);
    assert_eq!(fingerprint.len(), 12);
    assert!(html.contains(&format!("<code>{fingerprint}</code>")));
    assert!(!html.contains(key) && !html.contains("very-secret"));
    app.shutdown().await;

    let app = spawn_app().await;
    let client = logged_in_admin(&app).await;
    let (_, html) = get(&app, &client, "/admin/settings/").await;
    assert!(html.contains(r#"<dd id="app-env">local</dd>"#));
    assert!(html.contains(r#"<dd id="payment-fingerprint">not set</dd>"#));
    app.shutdown().await;
}

#[tokio::test]
async fn the_audit_log_records_changes_filters_and_is_read_only() {
    let app = spawn_app().await;
    let client = logged_in_admin(&app).await;
    add_greeting(&app, &client, &[("message", "Hola mundo")]).await;
    submit(
        &app,
        &client,
        "/admin/users/add/",
        "/admin/users/add/",
        &[
            ("username", "hugo"),
            ("password1", "hugos passphrase"),
            ("password2", "hugos passphrase"),
        ],
    )
    .await;

    let (status, html) = get(&app, &client, "/admin/audit/").await;
    assert_eq!(status, 200);
    assert!(html.contains("<title>Audit log | Greeter administration</title>"));
    assert!(html.contains(r#"<label for="id_action">Action</label>"#));
    assert!(html.contains("Hola mundo") && html.contains("hugo"));

    let (_, html) = get(&app, &client, "/admin/audit/?object_type=greeting").await;
    assert!(html.contains("Hola mundo") && !html.contains(">hugo</a>"));
    assert!(html.contains(r#"<option value="greeting" selected>"#));
    let (_, html) = get(&app, &client, "/admin/audit/?action=login&user=ADMIN").await;
    assert!(html.contains("<td>login</td>") && !html.contains("<td>create</td>"));
    let (_, html) = get(&app, &client, "/admin/audit/?user=nobody").await;
    assert!(html.contains("No entries."));
    // Unknown filter values are ignored, not an error.
    assert_eq!(
        get(&app, &client, "/admin/audit/?action=%27%3Bdrop")
            .await
            .0,
        200
    );

    // Details show who, when, from where, and the before/after summary.
    let id = app
        .query_i64(
            "SELECT id FROM admin_audit_log WHERE action = 'create' AND object_type = 'user'",
        )
        .await;
    let (status, html) = get(&app, &client, &format!("/admin/audit/{id}/")).await;
    assert_eq!(status, 200);
    assert!(html.contains("127.0.0.1"));
    assert!(html.contains("&quot;username&quot;: &quot;hugo&quot;"));
    assert!(
        !html.contains("argon2"),
        "no password hash in the audit log"
    );
    assert_eq!(get(&app, &client, "/admin/audit/999999/").await.0, 404);

    // No way to change it: no POST routes, and the database refuses.
    let (_, any) = get(&app, &client, "/admin/").await;
    for path in [
        format!("/admin/audit/{id}/"),
        format!("/admin/audit/{id}/delete/"),
        "/admin/audit/".into(),
    ] {
        let r = client
            .post(app.url(&path))
            .form(&[("csrf_token", csrf_token(&any))])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    let db = app.db().await;
    let err = db
        .execute("UPDATE admin_audit_log SET username = 'x'", &[])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only") || format!("{err:?}").contains("append-only"));
    assert!(
        db.execute("DELETE FROM admin_audit_log", &[])
            .await
            .is_err()
    );
    app.shutdown().await;
}

#[tokio::test]
async fn flash_messages_show_once() {
    let app = spawn_app().await;
    let client = logged_in_admin(&app).await;
    let r = add_greeting(&app, &client, &[("message", "Once")]).await;
    let r2 = client.get(app.url(location(&r))).send().await.unwrap();
    assert!(
        set_cookies(&r2)
            .iter()
            .any(|c| c.starts_with("greeter_flash=;"))
    );
    let html = r2.text().await.unwrap();
    assert!(html.contains(r#"<p class="message message-success" role="status">"#));
    let (_, again) = get(&app, &client, "/admin/greetings/").await;
    assert!(!again.contains("was added successfully"));
    // A forged flash cookie is ignored.
    let (_, html) = get_with_cookie(
        &app,
        &client,
        "/admin/greetings/",
        "greeter_flash=6572726f720a68656c6c6f.00",
    )
    .await;
    assert!(!html.contains("role=\"status\""));
    app.shutdown().await;
}

async fn get_with_cookie(
    app: &crate::helpers::TestApp,
    client: &reqwest::Client,
    path: &str,
    cookie: &str,
) -> (u16, String) {
    let r = client
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn assert_security_headers(r: &reqwest::Response, what: &str) {
    let h = r.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{what}");
    assert!(csp.contains("style-src 'self'"), "{what}");
    assert!(!csp.contains("unsafe-inline"), "{what}");
    assert!(!csp.contains("script-src"), "{what}: no script at all");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}");
    assert_eq!(h["x-frame-options"], "DENY", "{what}");
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(h["referrer-policy"], "same-origin", "{what}");
}

#[tokio::test]
async fn every_admin_response_has_the_security_headers() {
    let app = spawn_app().await;
    let anonymous = browser();
    for path in ["/admin/login/", "/admin/", "/admin/users/", "/admin"] {
        let r = anonymous.get(app.url(path)).send().await.unwrap();
        assert_security_headers(&r, path);
        assert_eq!(r.headers()["cache-control"], "no-store", "{path}");
    }
    let client = logged_in_admin(&app).await;
    for path in [
        "/admin/",
        "/admin/users/",
        "/admin/users/1/",
        "/admin/users/add/",
        "/admin/greetings/",
        "/admin/greetings/1/",
        "/admin/greetings/add/",
        "/admin/audit/",
        "/admin/settings/",
        "/admin/password_change/",
        "/admin/nope/",
        "/admin/users/abc/",
    ] {
        let r = client.get(app.url(path)).send().await.unwrap();
        assert_security_headers(&r, path);
        assert_eq!(r.headers()["cache-control"], "no-store", "{path}");
        let status = r.status();
        let html = r.text().await.unwrap();
        // No inline script or style anywhere, one external stylesheet.
        assert!(
            !html.contains("<script") && !html.contains("<style") && !html.contains(" style="),
            "{path}"
        );
        if status == 200 {
            assert!(html.contains(r#"<html lang="en">"#), "{path}");
            assert!(
                // handlebars escapes `=` in values too (`&#x3D;`); a browser reads it as `=`.
                html.contains(r#"<link rel="stylesheet" href="/admin/static/admin.css?v&#x3D;"#),
                "{path}"
            );
            // Every form control has a label or is hidden.
            for id in html.split(r#" id="id_"#).skip(1) {
                let id = &id[..id.find('"').unwrap()];
                if !id.ends_with("-errors") && !id.ends_with("-help") {
                    assert!(
                        html.contains(&format!(r#"for="id_{id}""#)),
                        "{path}: no label for id_{id}"
                    );
                }
            }
        }
    }
    let r = client
        .post(app.url("/admin/greetings/add/"))
        .form(&[("message", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_security_headers(&r, "CSRF failure");
    app.shutdown().await;
}

#[tokio::test]
async fn the_stylesheet_is_served_from_the_binary() {
    let app = spawn_app().await;
    let (_, html) = get(&app, &browser(), "/admin/login/").await;
    let start = html.find("/admin/static/admin.css?v").unwrap();
    // The attribute as a browser reads it: handlebars writes `=` as `&#x3D;`.
    let href = html[start..start + html[start..].find('"').unwrap()].replace("&#x3D;", "=");
    let r = reqwest::get(app.url(&href)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/css; charset=utf-8");
    assert!(
        r.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert!(r.text().await.unwrap().contains(".login-box"));
    assert_eq!(
        reqwest::get(app.url("/admin/static/nope.css"))
            .await
            .unwrap()
            .status(),
        404
    );
    // Only embedded files exist: no path leads to the file system.
    for path in [
        "/admin/static/..%2fCargo.toml",
        "/admin/static/%2e%2e/%2e%2e/Cargo.toml",
    ] {
        let r = reqwest::get(app.url(path)).await.unwrap();
        assert_ne!(r.status(), 200, "{path}");
        assert!(!r.text().await.unwrap().contains("[package]"), "{path}");
    }
    app.shutdown().await;
}

/// The heaviest pages under 4 concurrent clients (50 requests each) all render in full:
/// every answer is a 200 with the page's own heading, none an error page. Latency is
/// measured by `scripts/bench.sh admin`, not asserted here (a timed test fails on a
/// loaded machine, not on slow code).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_pages_render_under_concurrent_clients() {
    let app = spawn_app().await;
    let client = logged_in_admin(&app).await;
    for i in 0..30 {
        add_greeting(&app, &client, &[("message", &format!("greeting {i}"))]).await;
    }
    for path in [
        "/admin/",
        "/admin/greetings/",
        "/admin/users/",
        "/admin/audit/",
    ] {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let client = client.clone();
                let url = app.url(path);
                tokio::spawn(async move {
                    let mut bodies = Vec::new();
                    for _ in 0..50 {
                        let r = client.get(&url).send().await.unwrap();
                        assert_eq!(r.status(), 200);
                        bodies.push(r.text().await.unwrap());
                    }
                    bodies
                })
            })
            .collect();
        let mut bodies = Vec::new();
        for w in workers {
            bodies.extend(w.await.unwrap());
        }
        assert_eq!(bodies.len(), 200, "{path}");
        // Every concurrent render is the same complete page (its title), none an
        // error page or cut short. (Bodies differ in per-request details such as
        // relative times, so they are not compared whole.)
        let title = |b: &str| {
            let start = b.find("<title>").expect("a title") + "<title>".len();
            b[start..start + b[start..].find("</title>").expect("title end")].to_owned()
        };
        let first = title(&bodies[0]);
        assert!(!first.to_lowercase().contains("error"), "{path}: {first}");
        for b in &bodies {
            assert_eq!(title(b), first, "{path}");
            assert!(b.trim_end().ends_with("</html>"), "{path}: truncated page");
        }
    }
    app.shutdown().await;
}
