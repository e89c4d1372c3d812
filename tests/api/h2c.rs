//! Pen-test low finding "h2c only where it is wanted": the HTTP port speaks HTTP/2 over
//! plain TCP (prior knowledge) only with HTTP2_CLEARTEXT=true; the metrics port never.

use std::time::Duration;

use greeter::config::NetworkSettings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::spawn_app_with;

/// The client connection preface and an empty SETTINGS frame: how an h2c client starts.
const H2C_START: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// What a server answers to an h2c start, up to its first 9 bytes or its closing.
async fn answer_to_h2c(address: &str) -> Vec<u8> {
    let mut stream = TcpStream::connect(address.trim_start_matches("http://"))
        .await
        .unwrap();
    stream.write_all(H2C_START).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while got.len() < 9 {
        match tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf)).await {
            Err(_) => panic!("no answer to an h2c start"),
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

/// An HTTP/2 frame header whose type is SETTINGS (4): the server speaks HTTP/2.
fn is_http2_settings(bytes: &[u8]) -> bool {
    bytes.len() >= 9 && bytes[3] == 4
}

#[tokio::test]
async fn h2c_is_off_by_default() {
    assert!(!NetworkSettings::default().http2_cleartext);
    let app = spawn_app_with(|_| {}).await;
    for address in [&app.address, &app.metrics_address] {
        let got = answer_to_h2c(address).await;
        assert!(!is_http2_settings(&got), "{address} speaks h2c: {got:?}");
        // hyper's HTTP/1 parser recognises the preface and closes the connection.
        assert!(
            got.is_empty() || got.starts_with(b"HTTP/1.1 "),
            "{address}: {:?}",
            String::from_utf8_lossy(&got)
        );
    }
    // HTTP/1.1 itself is unaffected.
    assert_eq!(app.get("/").await.status(), 200);
    app.shutdown().await;
}

#[tokio::test]
async fn h2c_when_enabled_on_the_http_port_only() {
    let app = spawn_app_with(|s| s.network.http2_cleartext = true).await;
    let got = answer_to_h2c(&app.address).await;
    assert!(is_http2_settings(&got), "{got:?}");
    let got = answer_to_h2c(&app.metrics_address).await;
    assert!(!is_http2_settings(&got), "the metrics port: {got:?}");
    assert_eq!(app.get("/").await.status(), 200);
    app.shutdown().await;
}
