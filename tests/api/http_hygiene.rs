//! Malformed or unexpected HTTP gets a 4xx (JSON for the API), never a 500 or a panic.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::spawn_app;

/// Send raw bytes and return the status line of the answer.
async fn raw(address: &str, bytes: &[u8]) -> String {
    let host = address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn unknown_paths_are_json_404() {
    let app = spawn_app().await;
    let response = app.get("/no/such/thing").await;
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], 404);
    app.shutdown().await;
}

#[tokio::test]
async fn wrong_methods_are_json_405() {
    let app = spawn_app().await;
    for method in [
        reqwest::Method::POST,
        reqwest::Method::DELETE,
        reqwest::Method::PUT,
    ] {
        let response = app
            .client
            .request(method.clone(), app.url("/"))
            .body("x".repeat(10_000))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "method not allowed");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn malformed_requests_get_4xx_and_the_server_keeps_serving() {
    let app = spawn_app().await;
    let cases: &[&[u8]] = &[
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /\x00\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header Without Colon\r\n\r\n",
    ];
    for case in cases {
        let status = raw(&app.address, case).await;
        let code: u16 = status
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status for {case:?}: {status:?}"));
        assert!((400..500).contains(&code), "{case:?} got {status}");
    }
    let huge_header = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(2_000_000)
    );
    let status = raw(&app.address, huge_header.as_bytes()).await;
    assert!(
        status.contains(" 431 ") || status.contains(" 400 "),
        "{status}"
    );
    assert_eq!(app.get("/").await.status(), 200);
    app.shutdown().await;
}

#[tokio::test]
async fn request_ids_are_echoed_or_created() {
    let app = spawn_app().await;
    let echoed = app
        .client
        .get(app.url("/"))
        .header("X-Request-Id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-abc-123");

    let created = app.get("/healthz").await;
    let id = created.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 4);

    // An id that could forge log lines is replaced, not echoed.
    let forged = app
        .client
        .get(app.url("/"))
        .header("X-Request-Id", "x\" injected=\"1")
        .send()
        .await
        .unwrap();
    assert_ne!(forged.headers()["x-request-id"], "x\" injected=\"1");
    app.shutdown().await;
}
