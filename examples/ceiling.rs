//! The benchmark's ceiling: the fastest a warp server on this machine answers a constant
//! JSON body of the same shape as `GET /`. `scripts/bench.sh` loads it side by side with
//! greeter, so greeter's figures read as a fraction of what the framework allows.
//!
//!     cargo run --release --example ceiling -- 127.0.0.1:8099

use std::net::SocketAddr;

use warp::Filter;

// The allocator greeter runs with, so that the ratio compares the work and not two
// allocators.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8099".into())
        .parse()
        .expect("usage: ceiling ADDR:PORT");
    let body = serde_json::json!({
        "message": "Hello, World!",
        "environment": "production",
        "time": "2026-01-01T00:00:00Z",
    });
    let route = warp::path::end()
        .and(warp::get())
        .map(move || warp::reply::json(&body));
    warp::serve(route).run(addr).await;
}
