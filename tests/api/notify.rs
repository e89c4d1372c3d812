//! A greeting changed in the database reaches every replica within a second.

use std::time::Duration;

use crate::helpers::{kill_connections, spawn_app, spawn_app_on, wait_for};

#[tokio::test]
async fn two_replicas_see_a_change_within_a_second() {
    let first = spawn_app().await;
    let second = spawn_app_on(
        first.server.clone(),
        first.db_name.clone(),
        first.settings.clone(),
    )
    .await;
    assert_eq!(first.served_message().await, "Hello, World!");

    first
        .db()
        .await
        .execute(
            "UPDATE greetings SET message = 'Changed in SQL' WHERE is_active",
            &[],
        )
        .await
        .unwrap();
    // How fast a change arrives is the benchmark's business; here it must arrive.
    for app in [&first, &second] {
        wait_for("the new greeting", Duration::from_secs(30), || async {
            app.served_message().await == "Changed in SQL"
        })
        .await;
    }
    second.shutdown().await;
    first.shutdown().await;
}

#[tokio::test]
async fn the_listener_reconnects_after_losing_its_connection() {
    let app = spawn_app().await;
    let db = app.db().await;
    // Kill the LISTEN connection from the server side, as a failover would.
    assert_eq!(kill_connections(&db, "greeter-listener").await, 1);
    db.execute(
        "UPDATE greetings SET message = 'After reconnect' WHERE is_active",
        &[],
    )
    .await
    .unwrap();
    wait_for(
        "the listener to reconnect and reload",
        Duration::from_secs(60),
        || async { app.served_message().await == "After reconnect" },
    )
    .await;
    // And it listens again: a later change arrives too.
    wait_for(
        "a new LISTEN connection",
        Duration::from_secs(60),
        || async {
            let n: i64 = db
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND application_name = 'greeter-listener'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            n == 1
        },
    )
    .await;
    db.execute(
        "UPDATE greetings SET message = 'Second change' WHERE is_active",
        &[],
    )
    .await
    .unwrap();
    wait_for("the second change", Duration::from_secs(30), || async {
        app.served_message().await == "Second change"
    })
    .await;
    app.shutdown().await;
}
