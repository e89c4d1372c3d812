//! Helpers for the admin tests: a browser-like client (own cookie jar, no redirects),
//! logging in, and reading CSRF tokens out of forms.

use crate::helpers::TestApp;

pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

/// A client with its own cookie jar that, like the tests, inspects redirects itself.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap()
}

/// The value of `<input ... name="csrf_token" value="...">` in a page.
pub fn csrf_token(html: &str) -> String {
    let marker = r#"name="csrf_token" value=""#;
    let start = html.find(marker).expect("the page has a CSRF token") + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}

/// GET a page and return (status, body).
pub async fn get(app: &TestApp, client: &reqwest::Client, path: &str) -> (u16, String) {
    let r = client.get(app.url(path)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// GET `form_page`, then POST `fields` plus its CSRF token to `action`.
pub async fn submit(
    app: &TestApp,
    client: &reqwest::Client,
    form_page: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    form_post(client, &app.url(form_page), &app.url(action), fields)
        .await
        .send()
        .await
        .unwrap()
}

/// GET the form at `form_url` and build the POST of `fields` plus its CSRF token to
/// `action_url`, for the caller to send (after adding headers, if it likes).
pub async fn form_post(
    client: &reqwest::Client,
    form_url: &str,
    action_url: &str,
    fields: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    let r = client.get(form_url).send().await.unwrap();
    let status = r.status().as_u16();
    let html = r.text().await.unwrap();
    assert_eq!(status, 200, "GET {form_url}: {html}");
    let token = csrf_token(&html);
    let mut form: Vec<(&str, &str)> = fields.to_vec();
    form.push(("csrf_token", &token));
    client.post(action_url).form(&form)
}

/// Log in through the form; returns the POST's response (302 on success).
pub async fn login_as(
    app: &TestApp,
    client: &reqwest::Client,
    username: &str,
    password: &str,
) -> reqwest::Response {
    submit(
        app,
        client,
        "/admin/login/",
        "/admin/login/",
        &[("username", username), ("password", password)],
    )
    .await
}

/// A fresh client logged in as an existing user (a second device, say).
pub async fn session_as(app: &TestApp, username: &str, password: &str) -> reqwest::Client {
    let client = browser();
    let r = login_as(app, &client, username, password).await;
    assert_eq!(r.status(), 302, "login failed");
    client
}

/// A superuser `name` (password `ADMIN_PASSWORD`) and a client logged in as them.
pub async fn logged_in_admin_named(app: &TestApp, name: &str) -> reqwest::Client {
    app.create_user(name, ADMIN_PASSWORD, true, true).await;
    session_as(app, name, ADMIN_PASSWORD).await
}

/// A superuser `admin` and a client logged in as them.
pub async fn logged_in_admin(app: &TestApp) -> reqwest::Client {
    logged_in_admin_named(app, ADMIN).await
}

pub fn location(r: &reqwest::Response) -> &str {
    r.headers()["location"].to_str().unwrap()
}

/// Every `Set-Cookie` header of a response.
pub fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// Follow a redirect with a GET and return the page it leads to.
pub async fn follow(app: &TestApp, client: &reqwest::Client, r: &reqwest::Response) -> String {
    let (status, body) = get(app, client, location(r)).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The audit log's actions, newest first.
pub async fn audit_actions(app: &TestApp) -> Vec<(String, String, String)> {
    app.db()
        .await
        .query(
            "SELECT username, action, object_type FROM admin_audit_log ORDER BY id DESC",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// Log in as `admin` without a cookie jar, sending the login page's CSRF cookie plus
/// `extra_cookie` by hand (a planted session, or `Secure` cookies over plain HTTP).
/// Returns the CSRF cookie's `Set-Cookie` and the POST's response.
pub async fn login_without_jar(app: &TestApp, extra_cookie: &str) -> (String, reqwest::Response) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = client.get(app.url("/admin/login/")).send().await.unwrap();
    let csrf = set_cookies(&page)
        .into_iter()
        .find(|c| c.contains("greeter_csrf="))
        .expect("a CSRF cookie");
    let token = csrf_token(&page.text().await.unwrap());
    let mut cookie = cookie_pair(&csrf).to_owned();
    if !extra_cookie.is_empty() {
        cookie = format!("{cookie}; {extra_cookie}");
    }
    let r = client
        .post(app.url("/admin/login/"))
        .header("cookie", cookie)
        .form(&[
            ("username", ADMIN),
            ("password", ADMIN_PASSWORD),
            ("csrf_token", &token),
        ])
        .send()
        .await
        .unwrap();
    (csrf, r)
}

/// `name=value` of a `Set-Cookie` header.
pub fn cookie_pair(set_cookie: &str) -> &str {
    set_cookie.split(';').next().unwrap()
}

/// The `after` summary of the newest audit entry with `action`.
pub async fn audit_after(app: &TestApp, action: &str) -> serde_json::Value {
    app.db()
        .await
        .query_one(
            "SELECT after FROM admin_audit_log WHERE action = $1 ORDER BY id DESC LIMIT 1",
            &[&action],
        )
        .await
        .unwrap()
        .get(0)
}

/// Add a greeting through the admin form; returns the POST's response.
pub async fn add_greeting(
    app: &TestApp,
    client: &reqwest::Client,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let page = "/admin/greetings/add/";
    submit(app, client, page, page, fields).await
}
