use crate::helpers::spawn_app;

#[tokio::test]
async fn metrics_are_served_on_the_metrics_port_only() {
    let app = spawn_app().await;
    for _ in 0..3 {
        assert_eq!(app.get("/").await.status(), 200);
    }
    assert_eq!(app.get("/missing").await.status(), 404);

    let response = reqwest::get(format!("{}/metrics", app.metrics_address))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    let requests_to_root = text
        .lines()
        .find(|l| {
            l.starts_with("http_requests_total{")
                && l.contains("route=\"/\"")
                && l.contains("method=\"GET\"")
                && l.contains("status=\"200\"")
        })
        .unwrap_or_else(|| panic!("no request counter for /:\n{text}"));
    let count: f64 = requests_to_root
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(count >= 3.0, "{requests_to_root}");
    assert!(
        text.contains("route=\"unmatched\""),
        "unknown paths share one label"
    );
    assert!(
        text.contains("http_request_duration_seconds_bucket{"),
        "histogram buckets"
    );
    assert!(text.contains("db_pool_max_connections"));
    assert!(text.contains("greeter_build_info{version=\""));

    // The public port does not expose metrics.
    assert_eq!(app.get("/metrics").await.status(), 404);
    app.shutdown().await;
}
