use greeter::config::AppEnv;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn root_returns_the_greeting_as_json() {
    let app = spawn_app_with(|s| s.app_env = AppEnv::Production).await;
    let response = app.get("/").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["message"], "Hello, World!");
    assert_eq!(body["environment"], "production");
    let time = OffsetDateTime::parse(body["time"].as_str().unwrap(), &Rfc3339).unwrap();
    assert!((OffsetDateTime::now_utc() - time).whole_seconds().abs() < 60);
    app.shutdown().await;
}

#[tokio::test]
async fn root_reports_the_local_environment() {
    let app = spawn_app().await;
    let body: serde_json::Value = app.get("/").await.json().await.unwrap();
    assert_eq!(body["environment"], "local");
    app.shutdown().await;
}

#[tokio::test]
async fn head_is_answered_without_a_body() {
    let app = spawn_app().await;
    let response = app.client.head(app.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.unwrap().is_empty());
    app.shutdown().await;
}
