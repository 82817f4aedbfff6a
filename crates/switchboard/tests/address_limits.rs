//! Connections per source address (issue 16: nothing limited them): how many are open at once,
//! and how many new ones per second, on `serve()` and on the router path; `Forwarded` /
//! `X-Forwarded-For` believed only from trusted proxies.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::raw::request;
use common::{main_ns, serve};
use switchboard::{Config, ConnectionLimits, LimitStats, Rate, Server, Switchboard};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn server(limits: ConnectionLimits) -> (Switchboard, SocketAddr, SocketAddr) {
    let mut config = Config::default();
    config.connection_limits = limits;
    let board = Server::new().config(config).namespace(main_ns()).build().await.unwrap();
    let serve_addr = serve(&board).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let router_addr = listener.local_addr().unwrap();
    let app = board.router().into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (board, serve_addr, router_addr)
}

/// Opens a connection and upgrades it (with `extra` headers): the socket if upgraded, else the
/// status of the answer.
async fn open(addr: SocketAddr, extra: &str) -> Result<TcpStream, u16> {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let _ = tcp.write_all(request("/ws", extra).as_bytes()).await;
    let mut head = Vec::new();
    let mut byte = [0];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    match head.get(9..12).and_then(|s| s.parse().ok()) {
        Some(101) => Ok(tcp),
        Some(status) => {
            if status == 429 {
                assert!(head.to_ascii_lowercase().contains("retry-after: "), "{head}");
            }
            Err(status)
        }
        None => Err(0),
    }
}

fn per_address(n: usize) -> ConnectionLimits {
    let mut limits = ConnectionLimits::default();
    limits.per_address = Some(n);
    limits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_open_at_once_from_one_address_are_limited_on_both_paths() {
    // One server per path: the places the first path held come back only when the server has
    // seen those sockets close.
    for path in ["serve", "router"] {
        let (board, serve_addr, router_addr) = server(per_address(3)).await;
        let addr = if path == "serve" { serve_addr } else { router_addr };
        let mut open_now = Vec::new();
        for _ in 0..3 {
            open_now.push(open(addr, "").await.expect("under the limit"));
        }
        assert_eq!(open(addr, "").await.err(), Some(429), "{addr}: one more from the same address");
        // Once one closes, the address may open another.
        drop(open_now.pop());
        let mut again = None;
        for _ in 0..100 {
            if let Ok(tcp) = open(addr, "").await {
                again = Some(tcp);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(again.is_some(), "{addr}: a place came back");
        assert!(LimitStats::of(&board.hub()).address_too_many >= 1, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_connections_per_second_from_one_address_are_limited() {
    let mut limits = ConnectionLimits::default();
    limits.new_per_address = Some(Rate::new(1, 4));
    let (board, serve_addr, _) = server(limits).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(open(serve_addr, "").await.expect("the burst"));
    }
    assert_eq!(open(serve_addr, "").await.err(), Some(429));
    assert_eq!(LimitStats::of(&board.hub()).address_too_often, 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(open(serve_addr, "").await.is_ok(), "one more a second later");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    // Not trusted: X-Forwarded-For is ignored, every connection is 127.0.0.1's.
    let (_board, serve_addr, _) = server(per_address(2)).await;
    let mut held = Vec::new();
    for client in ["203.0.113.1", "203.0.113.2"] {
        held.push(open(serve_addr, &format!("X-Forwarded-For: {client}\r\n")).await.unwrap());
    }
    assert_eq!(open(serve_addr, "X-Forwarded-For: 203.0.113.3\r\n").await.err(), Some(429));
    drop(held);

    // Trusted: each client named counts for itself, on both paths. One server per path: the
    // places the first path held come back only when the server has seen those sockets close.
    for path in ["serve", "router"] {
        let mut limits = per_address(2);
        limits.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        let (_board, serve_addr, router_addr) = server(limits).await;
        let addr = if path == "serve" { serve_addr } else { router_addr };
        let mut held = Vec::new();
        for _ in 0..2 {
            held.push(open(addr, "X-Forwarded-For: 198.51.100.7, 203.0.113.1\r\n").await.unwrap());
        }
        let third = open(addr, "Forwarded: for=203.0.113.1\r\n").await;
        assert_eq!(third.err(), Some(429), "{path}: the client behind the proxy has its two");
        assert!(open(addr, "X-Forwarded-For: 203.0.113.2\r\n").await.is_ok(), "{path}: another client");
        assert!(open(addr, "").await.is_ok(), "{path}: the proxy itself, for no one");
    }
}
