//! Every failure of an admin request is the admin's HTML error page, with the security
//! headers: a form lacking a field, a body too large or of unknown length, a wrong
//! method; and the error pages say what is wrong.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::admin_support::*;
use crate::helpers::{TestApp, spawn_app};

/// Send a raw request (with `Connection: close`) and return the whole answer as text.
async fn raw(app: &TestApp, request: &str) -> String {
    let host = app.address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// A raw answer is the admin's HTML error page with `status` and its headers.
fn assert_raw_error_page(answer: &str, status: u16, what: &str) {
    let head = answer
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        head.starts_with(&format!("http/1.1 {status} ")),
        "{what}: {answer}"
    );
    assert!(head.contains("content-type: text/html"), "{what}: {head}");
    assert!(
        head.contains("content-security-policy: default-src 'none'"),
        "{what}: {head}"
    );
    assert!(head.contains("x-frame-options: deny"), "{what}: {head}");
    assert!(answer.contains(r#"<html lang="en">"#), "{what}: {answer}");
}

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

/// Larger than any admin form: 413, answered before the body is read.
#[tokio::test]
async fn an_oversized_admin_post_is_a_413_page() {
    let app = spawn_app().await;
    let answer = raw(
        &app,
        "POST /admin/login/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n",
    )
    .await;
    assert_raw_error_page(&answer, 413, "oversized");
    assert!(answer.contains("Request too large"), "{answer}");
    app.shutdown().await;
}

/// A chunked POST gives no length to check before reading: 411 (it used to be 405).
#[tokio::test]
async fn a_chunked_admin_post_is_a_411_page() {
    let app = spawn_app().await;
    let answer = raw(
        &app,
        "POST /admin/login/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\na=b&c\r\n0\r\n\r\n",
    )
    .await;
    assert_raw_error_page(&answer, 411, "chunked");
    app.shutdown().await;
}

/// Another method is the admin's 405 page, not the JSON API's.
#[tokio::test]
async fn other_methods_on_the_admin_are_a_405_page() {
    let app = spawn_app().await;
    for method in [reqwest::Method::PUT, reqwest::Method::DELETE] {
        let r = app
            .client
            .request(method.clone(), app.url("/admin/login/"))
            .body("x=1")
            .send()
            .await
            .unwrap();
        assert_error_page(r, 405, method.as_str()).await;
    }
    // The JSON API keeps JSON.
    let r = app.client.put(app.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("json")
    );
    app.shutdown().await;
}

/// A request that outlives the server's request timeout (30 s) gets the admin's 503
/// page, not the JSON API's: here the greetings table is locked, so the list waits.
#[tokio::test]
async fn a_timed_out_admin_request_is_a_503_page() {
    let app = spawn_app().await;
    let client = logged_in_admin(&app).await;
    let mut locker = app.db().await;
    let tx = locker.transaction().await.unwrap();
    tx.execute("LOCK TABLE greetings IN ACCESS EXCLUSIVE MODE", &[])
        .await
        .unwrap();
    let r = client
        .get(app.url("/admin/greetings/"))
        .send()
        .await
        .unwrap();
    let html = assert_error_page(r, 503, "timed out").await;
    assert!(html.contains("Request timed out"), "{html}");
    tx.rollback().await.unwrap();
    app.shutdown().await;
}
