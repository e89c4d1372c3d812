//! Pen-test findings 3 and 4 (connections) and 6 (trusted proxies): a connection that
//! says nothing, or only part of an HTTP/2 preface, or the preface and then nothing, is
//! closed; an idle connection is closed; open connections are capped per client address;
//! request heads are bounded to 16 KiB; forwarding headers are believed only from
//! `TRUSTED_PROXIES`.

use std::time::{Duration, Instant};

use greeter::config::NetworkSettings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::admin_support::*;
use crate::helpers::{TestApp, spawn_app_with, wait_for};

/// Generous: only a server that never closes the connection hits it.
const NEVER: Duration = Duration::from_secs(30);

async fn app_with(network: NetworkSettings) -> TestApp {
    spawn_app_with(|s| s.network = network).await
}

fn short_timeouts() -> NetworkSettings {
    NetworkSettings {
        header_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
        ..NetworkSettings::default()
    }
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Read until the server closes the connection; returns what it sent and how long that
/// took. Panics if it is still open after [`NEVER`].
async fn read_until_closed(stream: &mut TcpStream) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(NEVER, stream.read(&mut buf)).await {
            Err(_) => panic!("the server left the connection open for {NEVER:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return (got, started.elapsed()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_silent_connection_is_closed() {
    let app = app_with(short_timeouts()).await;
    let mut stream = connect(&app).await;
    let (_, took) = read_until_closed(&mut stream).await;
    println!("silent TCP connection closed after {took:?}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_partial_http2_preface_is_closed() {
    let app = app_with(NetworkSettings {
        http2_cleartext: true,
        ..short_timeouts()
    })
    .await;
    let mut stream = connect(&app).await;
    stream.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    let (_, took) = read_until_closed(&mut stream).await;
    println!("partial HTTP/2 preface closed after {took:?}");
    app.shutdown().await;
}

#[tokio::test]
async fn an_h2c_preface_and_then_nothing_is_closed() {
    let app = app_with(NetworkSettings {
        http2_cleartext: true,
        ..short_timeouts()
    })
    .await;
    let mut stream = connect(&app).await;
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    // An empty SETTINGS frame: a complete, valid HTTP/2 connection start.
    stream
        .write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
        .await
        .unwrap();
    let (_, took) = read_until_closed(&mut stream).await;
    println!("h2c preface + SETTINGS, then silence: closed after {took:?}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_keep_alive_connection_is_closed_when_idle() {
    let app = app_with(NetworkSettings {
        header_read_timeout: Duration::from_secs(20),
        idle_timeout: Duration::from_secs(1),
        ..NetworkSettings::default()
    })
    .await;
    let mut stream = connect(&app).await;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (got, took) = read_until_closed(&mut stream).await;
    assert!(got.starts_with(b"HTTP/1.1 200"));
    println!("idle keep-alive connection closed after {took:?}");
    app.shutdown().await;
}

/// An unterminated 64 KB header block gets 431 as soon as it passes 16 KiB, instead of
/// being buffered (hyper's default: ~400 KB per connection).
#[tokio::test]
async fn an_oversized_header_block_is_refused() {
    let app = app_with(NetworkSettings::default()).await;
    let mut stream = connect(&app).await;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ")
        .await
        .unwrap();
    // The server may close while we are still writing; that is fine.
    let _ = stream.write_all(&vec![b'a'; 64 * 1024]).await;
    let (got, _) = read_until_closed(&mut stream).await;
    let head = String::from_utf8_lossy(&got[..got.len().min(40)]).to_string();
    assert!(head.starts_with("HTTP/1.1 431"), "{head:?}");
    app.shutdown().await;
}

/// Past `max_connections_per_address` open connections from one address, further ones
/// are closed at once; closing one makes room again.
#[tokio::test]
async fn open_connections_are_capped_per_address() {
    let app = app_with(NetworkSettings {
        max_connections_per_address: 3,
        header_read_timeout: Duration::from_secs(60),
        ..NetworkSettings::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect(&app).await);
    }
    // The server counts a connection once it accepted it: wait until a 4th is refused.
    wait_for("a 4th connection to be refused", NEVER, || async {
        let mut extra = connect(&app).await;
        let _ = extra.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let (got, _) = read_until_closed(&mut extra).await;
        got.is_empty()
    })
    .await;
    held.pop();
    wait_for("room for a new connection", NEVER, || async {
        let r = reqwest::Client::new().get(app.url("/")).send().await;
        r.is_ok_and(|r| r.status() == 200)
    })
    .await;
    app.shutdown().await;
}

async fn address_keys(app: &TestApp) -> Vec<String> {
    app.db()
        .await
        .query(
            "SELECT key FROM admin_login_failures WHERE key LIKE 'addr:%' ORDER BY key",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn fail_login_forwarded_for(app: &TestApp, forwarded_for: &str) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    let (_, html) = get(app, &client, "/admin/login/").await;
    let token = csrf_token(&html);
    let r = client
        .post(app.url("/admin/login/"))
        .header("x-forwarded-for", forwarded_for)
        .form(&[
            ("username", "ghost"),
            ("password", "wrong guess"),
            ("csrf_token", token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Behind a trusted proxy the forwarded client address is counted; from anyone else
/// `X-Forwarded-For` is ignored (it could be forged).
#[tokio::test]
async fn forwarded_addresses_count_only_behind_trusted_proxies() {
    let app = app_with(NetworkSettings::default()).await;
    fail_login_forwarded_for(&app, "203.0.113.7").await;
    assert_eq!(address_keys(&app).await, vec!["addr:127.0.0.1"]);
    app.shutdown().await;

    let app = app_with(NetworkSettings {
        trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
        ..NetworkSettings::default()
    })
    .await;
    fail_login_forwarded_for(&app, "198.51.100.1, 203.0.113.7").await;
    fail_login_forwarded_for(&app, "2001:db8:1:2::99").await;
    assert_eq!(
        address_keys(&app).await,
        vec!["addr:2001:db8:1:2::/64", "addr:203.0.113.7"]
    );
    app.shutdown().await;
}
