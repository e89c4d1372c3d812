use crate::helpers::spawn_app;

#[tokio::test]
async fn healthz_answers_without_the_database() {
    let app = spawn_app().await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    app.shutdown().await;
}

#[tokio::test]
async fn readyz_is_ok_when_the_schema_is_current() {
    let app = spawn_app().await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    app.shutdown().await;
}

#[tokio::test]
async fn readyz_fails_while_a_migration_is_missing() {
    let app = spawn_app().await;
    // Pretend the newest migration was never applied.
    app.db()
        .await
        .execute(
            "DELETE FROM refinery_schema_history WHERE version = (SELECT max(version) FROM refinery_schema_history)",
            &[],
        )
        .await
        .unwrap();
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["reason"].as_str().unwrap().contains("not applied"),
        "{body}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn readyz_turns_503_once_draining() {
    let app = spawn_app().await;
    app.state.start_draining();
    assert_eq!(app.get("/readyz").await.status(), 503);
    // Liveness stays green: a draining pod must not be restarted.
    assert_eq!(app.get("/healthz").await.status(), 200);
    app.shutdown().await;
}
