//! A raw WebSocket echo over Switchboard's own handshakes and WebSocket, for
//! Autobahn|Testsuite (run by `scripts/autobahn.sh`):
//!
//! ```text
//! cargo run --release -p switchboard --features autobahn --example autobahn_echo
//! ```
//!
//! Prints `serve ADDR` (the HTTP/1.1 upgrade of `Switchboard::serve`) and `router ADDR` (axum
//! and hyper, as `Switchboard::router`), both on free loopback ports, then echoes until killed.

use std::net::SocketAddr;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let serve = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let router = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("serve {}", serve.local_addr()?);
    println!("router {}", router.local_addr()?);
    tokio::spawn(switchboard::autobahn::serve_echo(serve));
    let app = switchboard::autobahn::echo_router().into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(router, app).await
}
