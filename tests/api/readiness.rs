//! Readiness follows the database: 503 while PostgreSQL is down, 200 again by itself.

use std::time::Duration;

use crate::helpers::{spawn_app_on, test_settings, wait_for};
use crate::postgres::{PgCluster, TEMPLATE_DB};

#[tokio::test]
async fn readiness_follows_the_database_without_a_restart() {
    // A cluster of its own, because this test stops it.
    let cluster = PgCluster::start();
    let server = cluster.server();
    let admin = greeter::db::connect(&server.settings("postgres"))
        .await
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {TEMPLATE_DB}"))
        .await
        .unwrap();
    let mut client = greeter::db::connect(&server.settings(TEMPLATE_DB))
        .await
        .unwrap();
    greeter::migrations::apply(&mut client, Duration::from_secs(10))
        .await
        .unwrap();
    drop((admin, client));

    let settings = test_settings(&server, TEMPLATE_DB);
    let app = spawn_app_on(server, TEMPLATE_DB.into(), settings).await;
    assert_eq!(app.get("/readyz").await.status(), 200);

    cluster.stop_server();
    wait_for("readiness to fail", Duration::from_secs(10), || async {
        app.get("/readyz").await.status() == 503
    })
    .await;
    // The greeting is served from memory while the database is away.
    assert_eq!(app.get("/").await.status(), 200);
    assert_eq!(app.get("/healthz").await.status(), 200);

    cluster.start_server();
    wait_for("readiness to recover", Duration::from_secs(20), || async {
        app.get("/readyz").await.status() == 200
    })
    .await;
    app.shutdown().await;
}
