//! Control frames are bounded by construction (issue 16): connections that send pings without
//! ever reading make the server hold at most one unwritten control frame each — it stops
//! reading them (TCP pushes back) — on both socket paths, `serve()` and the axum `router()`.
//! One test in this file: it reads the process's resident memory.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::raw::{frame, push_until_stalled, resident_bytes, upgraded};
use common::{Client, simple_server};
use serde_json::json;
use switchboard::Config;

/// Connections flooding at once.
const FLOODERS: usize = 4;
/// Pings each sends (at most; it stops once the server stops taking them).
const PINGS: usize = 1_000_000;
/// What the server may hold for all the flooders together (documented in docs/deploying.md:
/// one control frame and one read buffer per connection, far under this).
const BOUND: u64 = 48 * 1024 * 1024;

/// Floods `addr` from [`FLOODERS`] connections; returns the bytes they got the server to take.
async fn flood(addr: SocketAddr) -> usize {
    // A ping with the largest control payload: 131 bytes on the wire, a 127-byte pong to answer.
    let ping = frame(0x89, &[b'p'; 125]);
    let chunk: Vec<u8> = ping.iter().copied().cycle().take(ping.len() * 512).collect();
    let tasks: Vec<_> = (0..FLOODERS)
        .map(|_| {
            let chunk = chunk.clone();
            let total = ping.len() * PINGS;
            tokio::spawn(async move {
                let mut tcp = upgraded(addr).await;
                let sent = push_until_stalled(&mut tcp, &chunk, total, Duration::from_secs(2)).await;
                (tcp, sent)
            })
        })
        .collect();
    let mut sent = 0;
    let mut sockets = Vec::new();
    for t in tasks {
        let (tcp, n) = t.await.unwrap();
        sent += n;
        sockets.push(tcp);
    }
    // Held open (unread) while the caller measures.
    std::mem::forget(sockets);
    sent
}

async fn check(addr: SocketAddr, path: &str) {
    let mut bystander = Client::connect(addr).await;
    bystander.call("~hello", json!({"identity": "user:calm"})).await.unwrap();
    let before = resident_bytes();
    let sent = flood(addr).await;
    let grown = resident_bytes().saturating_sub(before);
    println!("{path}: flooders got {} MB in, the server grew by {} MB", sent >> 20, grown >> 20);
    assert!(grown < BOUND, "{path}: the server grew by {grown} bytes under a ping flood");
    assert!(sent < FLOODERS * 131 * PINGS, "{path}: the server read every ping without answering them");
    // The well-behaved connection beside them is served.
    assert_eq!(bystander.call("~ping", json!(null)).await, Ok(json!(null)), "{path}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_from_connections_that_never_read_do_not_grow_the_server() {
    let (board, addr) = simple_server(Config::default()).await;
    check(addr, "serve()").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let router_addr = listener.local_addr().unwrap();
    let app = board.router().into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    check(router_addr, "router()").await;
}
