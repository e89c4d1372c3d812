//! `/admin/tokens/`: create (shown once), list (superusers all, staff their own), revoke
//! (the API refuses the token at once), audit entries, and the form's validation.

use std::time::Duration;

use reqwest::Method;

use crate::admin_support::{browser, get, location, logged_in_admin, login_as, submit};
use crate::api_support::{api, wait_accepted, wait_tokens_loaded};
use crate::helpers::{spawn_app, wait_for};

const PAGE: &str = "/admin/tokens/";

/// The token shown once on the page after creating it.
fn shown_token(html: &str) -> String {
    let marker = r#"<code id="new-token">"#;
    let start = html.find(marker).expect("the new token is shown") + marker.len();
    let end = html[start..].find('<').unwrap() + start;
    html[start..end].to_owned()
}

#[tokio::test]
async fn create_show_once_list_and_revoke_a_token_in_the_admin() {
    let app = spawn_app().await;
    let admin = logged_in_admin(&app).await;
    wait_tokens_loaded(&app).await;

    let created = submit(
        &app,
        &admin,
        PAGE,
        "/admin/tokens/add/",
        &[
            ("name", "deploy bot"),
            ("scope_write", "on"),
            ("expiry", "30"),
        ],
    )
    .await;
    assert_eq!(created.status(), 200);
    assert_eq!(created.headers()["cache-control"], "no-store");
    let html = created.text().await.unwrap();
    let token = shown_token(&html);
    assert!(greeter::api::tokens::looks_like_token(&token), "{token}");
    assert!(html.contains("shown only this once"));

    // It works against the API, and is never shown again.
    wait_accepted(&app, &token).await;
    let response = api(
        &app,
        Method::POST,
        "/api/v1/greetings",
        Some(&token),
        Some(serde_json::json!({"message": "From the admin's token"})),
    )
    .await;
    assert_eq!(response.status(), 201);
    let (status, list) = get(&app, &admin, PAGE).await;
    assert_eq!(status, 200);
    assert!(list.contains("deploy bot") && list.contains("greetings:write"));
    assert!(
        !list.contains(&token),
        "the list never shows the token again"
    );
    assert!(
        list.contains(&token[..10]),
        "but its first characters, to tell it apart"
    );

    let id = app
        .query_i64("SELECT id FROM api_tokens WHERE name = 'deploy bot'")
        .await;
    let revoked = submit(
        &app,
        &admin,
        PAGE,
        &format!("/admin/tokens/{id}/revoke/"),
        &[],
    )
    .await;
    assert_eq!(revoked.status(), 302);
    assert_eq!(location(&revoked), PAGE);
    wait_for(
        "the revoked token to be refused",
        Duration::from_secs(1),
        || async {
            api(&app, Method::GET, "/api/v1/greetings", Some(&token), None)
                .await
                .status()
                == 401
        },
    )
    .await;
    let (_, list) = get(&app, &admin, PAGE).await;
    assert!(list.contains("Revoked"));

    let actions: Vec<(String, String, String)> = app
        .db()
        .await
        .query(
            "SELECT action, object_type, object_repr FROM admin_audit_log
             WHERE object_type = 'api_token' ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        actions,
        [
            ("create".into(), "api_token".into(), "deploy bot".into()),
            ("revoke".into(), "api_token".into(), "deploy bot".into())
        ]
    );
    let after: serde_json::Value = app
        .db()
        .await
        .query_one(
            "SELECT after::text FROM admin_audit_log WHERE action = 'create' AND object_type = 'api_token'",
            &[],
        )
        .await
        .map(|r| serde_json::from_str(r.get::<_, &str>(0)).unwrap())
        .unwrap();
    assert!(
        !after.to_string().contains(&token[4..]),
        "the audit log never holds the token"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn staff_see_and_revoke_only_their_own_tokens_superusers_all() {
    let app = spawn_app().await;
    let admin = logged_in_admin(&app).await;
    app.create_user("staffer", "staffer-password-123", true, false)
        .await;
    let staffer = browser();
    assert_eq!(
        login_as(&app, &staffer, "staffer", "staffer-password-123")
            .await
            .status(),
        302
    );

    for (client, name) in [(&admin, "admin's token"), (&staffer, "staffer's token")] {
        let r = submit(
            &app,
            client,
            PAGE,
            "/admin/tokens/add/",
            &[("name", name), ("scope_read", "on"), ("expiry", "never")],
        )
        .await;
        assert_eq!(r.status(), 200);
    }
    let (_, mine) = get(&app, &staffer, PAGE).await;
    assert!(mine.contains("staffer&#x27;s token") || mine.contains("staffer's token"));
    assert!(!mine.contains("admin&#x27;s token") && !mine.contains("admin's token"));
    let (_, all) = get(&app, &admin, PAGE).await;
    assert!(all.contains("admin&#x27;s token") || all.contains("admin's token"));
    assert!(all.contains("staffer&#x27;s token") || all.contains("staffer's token"));

    let admins_token = app.query_i64("SELECT t.id FROM api_tokens t JOIN users u ON u.id = t.owner_id WHERE u.username = 'admin'").await;
    let refused = submit(
        &app,
        &staffer,
        PAGE,
        &format!("/admin/tokens/{admins_token}/revoke/"),
        &[],
    )
    .await;
    assert_eq!(refused.status(), 404);
    let still: bool = app
        .db()
        .await
        .query_one(
            "SELECT revoked_at IS NULL FROM api_tokens WHERE id = $1",
            &[&admins_token],
        )
        .await
        .unwrap()
        .get(0);
    assert!(still, "a staff user cannot revoke someone else's token");
    let allowed = submit(
        &app,
        &admin,
        PAGE,
        &format!("/admin/tokens/{admins_token}/revoke/"),
        &[],
    )
    .await;
    assert_eq!(allowed.status(), 302);
    app.shutdown().await;
}

#[tokio::test]
async fn the_form_refuses_a_missing_name_scope_or_expiry_and_needs_csrf() {
    let app = spawn_app().await;
    let admin = logged_in_admin(&app).await;
    for (fields, error) in [
        (
            &[("name", ""), ("scope_read", "on"), ("expiry", "30")][..],
            "Give the token a name",
        ),
        (
            &[("name", "x"), ("expiry", "30")],
            "Select at least one scope",
        ),
        (
            &[("name", "x"), ("scope_read", "on"), ("expiry", "forever")],
            "Select a valid choice",
        ),
    ] {
        let r = submit(&app, &admin, PAGE, "/admin/tokens/add/", fields).await;
        assert_eq!(r.status(), 200);
        let html = r.text().await.unwrap();
        assert!(html.contains(error), "{error}");
        assert!(!html.contains("new-token"));
    }
    let no_csrf = admin
        .post(app.url("/admin/tokens/add/"))
        .form(&[("name", "x"), ("scope_read", "on"), ("expiry", "30")])
        .send()
        .await
        .unwrap();
    assert_eq!(no_csrf.status(), 403);
    let count = app.query_i64("SELECT count(*) FROM api_tokens").await;
    assert_eq!(count, 0);
    // Logged out: to the login page.
    let anonymous = browser().get(app.url(PAGE)).send().await.unwrap();
    assert_eq!(anonymous.status(), 302);
    app.shutdown().await;
}
