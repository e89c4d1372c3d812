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
async fn a_missing_migration_shows_on_the_internal_check_only() {
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
    // Readiness does not query the database (the init gate waits for migrations), and
    // the public port names no migration.
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    assert!(!response.text().await.unwrap().contains("__"));
    // The operator's check on the metrics port names it.
    let response = reqwest::get(format!("{}/dbz", app.metrics_address))
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["reason"].as_str().unwrap().contains("not applied"),
        "{body}"
    );
    assert_eq!(
        app.get("/dbz").await.status(),
        404,
        "not on the public port"
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
