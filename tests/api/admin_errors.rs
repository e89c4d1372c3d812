//! Every failure of an admin request is the admin's HTML error page, with the security
//! headers: a form lacking a field, a body too large or of unknown length, a wrong
//! method; and the error pages say what is wrong.

use crate::admin_support::*;
use crate::helpers::{TestApp, spawn_app};

/// The response is the admin's HTML error page with `status`, carrying the headers of
/// every admin page.
async fn assert_error_page(r: reqwest::Response, status: u16, what: &str) -> String {
    assert_eq!(r.status(), status, "{what}");
    let h = r.headers();
    assert!(
        h["content-type"].to_str().unwrap().starts_with("text/html"),
        "{what}: {:?}",
        h["content-type"]
    );
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'"),
        "{what}"
    );
    assert_eq!(h["x-frame-options"], "DENY", "{what}");
    assert_eq!(h["cache-control"], "no-store", "{what}");
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"<html lang="en">"#), "{what}: {html}");
    html
}

async fn logged_in_non_superuser(app: &TestApp) -> reqwest::Client {
    app.create_user("staff", ADMIN_PASSWORD, true, false).await;
    let client = browser();
    let r = login_as(app, &client, "staff", ADMIN_PASSWORD).await;
    assert_eq!(r.status(), 302);
    client
}

/// A missing field used to read as "" (a form with "This field is required."); a
/// browser never leaves a field out, so it is a malformed request: 400.
#[tokio::test]
async fn a_form_without_a_required_field_is_a_400_page() {
    let app = spawn_app().await;
    let client = logged_in_admin(&app).await;
    let page = "/admin/greetings/add/";
    let r = submit(&app, &client, page, page, &[("is_active", "on")]).await;
    let html = assert_error_page(r, 400, "greeting without message").await;
    assert!(html.contains("incomplete or malformed"), "{html}");
    // The login form too, once its CSRF token is right.
    let r = submit(
        &app,
        &browser(),
        "/admin/login/",
        "/admin/login/",
        &[("username", ADMIN)],
    )
    .await;
    assert_error_page(r, 400, "login without password").await;
    app.shutdown().await;
}

#[tokio::test]
async fn the_audit_log_refuses_non_superusers_in_its_own_words() {
    let app = spawn_app().await;
    let client = logged_in_non_superuser(&app).await;
    for path in ["/admin/audit/", "/admin/audit/1/"] {
        let (status, html) = get(&app, &client, path).await;
        assert_eq!(status, 403, "{path}");
        assert!(
            html.contains("Only superusers may read the audit log."),
            "{path}: {html}"
        );
        assert!(!html.contains("manage users"), "{path}");
    }
    let (status, html) = get(&app, &client, "/admin/users/").await;
    assert_eq!(status, 403);
    assert!(html.contains("Only superusers may manage users."), "{html}");
    app.shutdown().await;
}
