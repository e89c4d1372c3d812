//! A PostgreSQL outage: `GET /` keeps serving from memory, readiness stays 200 (the
//! Service keeps its endpoints), the admin answers its 503 page at once, the operator's
//! signals (`greeter_database_up`, `/dbz` on the metrics port) show the outage, and all
//! recovers without a restart. A replica started during an outage is not ready until it
//! has loaded the greeting.

use std::time::{Duration, Instant};

use crate::admin_support::logged_in_admin;
use crate::helpers::{TestApp, spawn_app_on, test_settings, wait_for};
use crate::postgres::{PgCluster, TEMPLATE_DB};

/// A cluster of its own (these tests stop it) with a migrated database.
async fn cluster_with_database() -> PgCluster {
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
    cluster
}

async fn database_up_gauge(app: &TestApp) -> f64 {
    let text = reqwest::get(format!("{}/metrics", app.metrics_address))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("greeter_database_up "))
        .unwrap_or_else(|| panic!("no greeter_database_up gauge:\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

async fn dbz_status(app: &TestApp) -> u16 {
    reqwest::get(format!("{}/dbz", app.metrics_address))
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_database_outage_keeps_serving_and_recovers_without_a_restart() {
    let cluster = cluster_with_database().await;
    let server = cluster.server();
    let settings = test_settings(&server, TEMPLATE_DB);
    let app = spawn_app_on(server, TEMPLATE_DB.into(), settings).await;
    let admin = logged_in_admin(&app).await;
    let message = app.served_message().await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    assert_eq!(
        admin.get(app.url("/admin/")).send().await.unwrap().status(),
        200
    );
    wait_for(
        "the database gauge to read 1",
        Duration::from_secs(10),
        || async { database_up_gauge(&app).await == 1.0 },
    )
    .await;
    assert_eq!(dbz_status(&app).await, 200);

    cluster.stop_server();
    // The operator's signals show the outage ...
    wait_for(
        "the database gauge to read 0",
        Duration::from_secs(10),
        || async { database_up_gauge(&app).await == 0.0 },
    )
    .await;
    assert_eq!(dbz_status(&app).await, 503);
    // ... for a while (the 10 s), while the users see no difference on `/`.
    let outage = Instant::now();
    let mut rounds = 0;
    while outage.elapsed() < Duration::from_secs(10) || rounds < 3 {
        rounds += 1;
        let root = app.get("/").await;
        assert_eq!(root.status(), 200, "GET / during the outage");
        let body: serde_json::Value = root.json().await.unwrap();
        assert_eq!(body["message"], message.as_str());
        assert_eq!(
            app.get("/readyz").await.status(),
            200,
            "readiness during the outage"
        );
        assert_eq!(app.get("/healthz").await.status(), 200);

        let started = Instant::now();
        let page = admin.get(app.url("/admin/")).send().await.unwrap();
        let took = started.elapsed();
        assert_eq!(page.status(), 503, "the admin during the outage");
        assert!(
            page.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "an HTML error page"
        );
        let html = page.text().await.unwrap();
        assert!(
            html.contains("database is unavailable, try again"),
            "{html}"
        );
        assert!(
            took < Duration::from_millis(1500),
            "the admin took {took:?}"
        );
        // Paces the loop; the assertions above are what the test waits on.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    cluster.start_server();
    wait_for("the admin to recover", Duration::from_secs(20), || async {
        admin.get(app.url("/admin/")).send().await.unwrap().status() == 200
    })
    .await;
    wait_for(
        "the database gauge to read 1 again",
        Duration::from_secs(20),
        || async { database_up_gauge(&app).await == 1.0 },
    )
    .await;
    assert_eq!(dbz_status(&app).await, 200);
    // The listener is back: a change reaches `/` again.
    app.db()
        .await
        .execute(
            "UPDATE greetings SET message = 'after the outage' WHERE is_active",
            &[],
        )
        .await
        .unwrap();
    wait_for(
        "the greeting to follow again",
        Duration::from_secs(10),
        || async { app.served_message().await == "after the outage" },
    )
    .await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    app.shutdown().await;
}

#[tokio::test]
async fn a_replica_started_during_an_outage_is_ready_once_it_loaded_the_greeting() {
    let cluster = cluster_with_database().await;
    let server = cluster.server();
    cluster.stop_server();

    let settings = test_settings(&server, TEMPLATE_DB);
    let app = greeter::startup::Application::build(settings)
        .await
        .expect("the application builds without the database");
    let address = format!("http://{}", app.http_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let get = |path: &'static str| {
        let client = client.clone();
        let url = format!("{address}{path}");
        async move { client.get(url).send().await.unwrap() }
    };
    // Serving HTTP (live), but not ready: there is no greeting to serve.
    wait_for("the server to listen", Duration::from_secs(10), || async {
        get("/healthz").await.status() == 200
    })
    .await;
    let readyz = get("/readyz").await;
    assert_eq!(readyz.status(), 503);
    let body: serde_json::Value = readyz.json().await.unwrap();
    assert_eq!(body["reason"], "greeting not loaded yet");
    assert_eq!(get("/").await.status(), 503);

    cluster.start_server();
    wait_for(
        "readiness once the greeting loaded",
        Duration::from_secs(20),
        || async { get("/readyz").await.status() == 200 },
    )
    .await;
    assert_eq!(get("/").await.status(), 200);
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
