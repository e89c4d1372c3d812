//! Helpers for the API tests: an app whose token list is loaded, tokens, requests.

use std::time::Duration;

use greeter::api::tokens::{self, NewToken, Scope, Scopes};
use serde_json::Value;

use crate::helpers::{TestApp, spawn_app, spawn_app_on, wait_for};

pub const OWNER: &str = "owner";

/// An app with a staff owner for tokens, once its token list is loaded.
pub async fn spawn_api_app() -> TestApp {
    let app = spawn_app().await;
    app.create_user(OWNER, "owner-password-123", true, false)
        .await;
    wait_tokens_loaded(&app).await;
    app
}

/// A second replica of `app`'s database, its token list loaded.
pub async fn second_replica(app: &TestApp) -> TestApp {
    let second = spawn_app_on(
        app.server.clone(),
        app.db_name.clone(),
        app.settings.clone(),
    )
    .await;
    wait_tokens_loaded(&second).await;
    second
}

pub async fn wait_tokens_loaded(app: &TestApp) {
    wait_for(
        "the token list to load",
        Duration::from_secs(10),
        || async { app.state.api.tokens.is_loaded() },
    )
    .await;
}

/// Create a token for [`OWNER`] and wait until `apps` accept it.
pub async fn token(apps: &[&TestApp], scopes: &[Scope], expires_in_days: Option<u32>) -> String {
    let created = tokens::create(
        &apps[0].db().await,
        OWNER,
        &NewToken {
            name: "test token",
            scopes: Scopes::from_list(scopes),
            expires_in_days,
        },
    )
    .await
    .expect("create a token");
    for app in apps {
        wait_accepted(app, &created.token).await;
    }
    created.token
}

pub async fn write_token(app: &TestApp) -> String {
    token(&[app], &[Scope::GreetingsWrite], None).await
}

pub async fn read_token(app: &TestApp) -> String {
    token(&[app], &[Scope::GreetingsRead], None).await
}

/// Wait until `app` has loaded `token` (the NOTIFY of its creation arrived).
pub async fn wait_accepted(app: &TestApp, token: &str) {
    wait_for(
        "the new token to be accepted",
        Duration::from_secs(10),
        || async {
            api(
                app,
                reqwest::Method::GET,
                "/api/v1/greetings",
                Some(token),
                None,
            )
            .await
            .status()
                != 401
        },
    )
    .await;
}

/// One API request with an optional bearer token and JSON body.
pub async fn api(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app.client.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("request")
}

/// Assert a problem+json response with `status` and `type` slug; returns the body.
pub async fn problem(response: reqwest::Response, status: u16, slug: &str) -> Value {
    assert_eq!(response.status(), status, "{:?}", response.headers());
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], format!("/api/v1/problems/{slug}"), "{body}");
    assert_eq!(body["status"], status);
    assert!(body["title"].is_string() && body["detail"].is_string());
    body
}

/// Create a greeting through the API; returns its JSON.
pub async fn create_greeting(app: &TestApp, token: &str, message: &str) -> Value {
    let response = api(
        app,
        reqwest::Method::POST,
        "/api/v1/greetings",
        Some(token),
        Some(serde_json::json!({"message": message})),
    )
    .await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}
