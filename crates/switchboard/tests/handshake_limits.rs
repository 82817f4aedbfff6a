//! What a connection may cost `serve()` before it is upgraded (issue 16): a deadline for the
//! request head (slow handshakes were kept 30 s), a header-size limit (431), and a cap on
//! connections still in their handshake — while a normal client is served beside them.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::raw::request;
use common::{Client, simple_server};
use serde_json::json;
use switchboard::{Config, LimitStats};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Whether the server closed `tcp` (EOF or reset) within `within`.
async fn closed_within(tcp: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 512];
    loop {
        match tokio::time::timeout(within, tcp.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

/// A connection that sends the start of an upgrade request, one byte at a time.
async fn trickle(addr: SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&request("/ws", "").as_bytes()[..3]).await.unwrap();
    tcp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_handshakes_are_closed_at_the_deadline() {
    let mut config = Config::default();
    config.handshake_timeout = Duration::from_millis(800);
    let (board, addr) = simple_server(config).await;
    let mut slow = Vec::new();
    for _ in 0..20 {
        slow.push(trickle(addr).await);
    }
    // A client beside them is served.
    let (mut calm, _) = Client::identified(addr, "calm").await;
    assert_eq!(calm.call("~ping", json!(null)).await, Ok(json!(null)));
    for tcp in &mut slow {
        assert!(closed_within(tcp, Duration::from_secs(3)).await, "a slow handshake outlived its deadline");
    }
    assert!(LimitStats::of(&board.hub()).handshake_timeouts >= 20);
    assert_eq!(LimitStats::of(&board.hub()).handshakes_pending, 0);
    assert_eq!(calm.call("~ping", json!(null)).await, Ok(json!(null)), "still served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_handshake_cap_are_closed_at_once() {
    let mut config = Config::default();
    config.handshake_timeout = Duration::from_secs(30);
    config.max_handshakes = 3;
    let (board, addr) = simple_server(config).await;
    let hub = board.hub();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(trickle(addr).await);
    }
    for _ in 0..100 {
        if LimitStats::of(&hub).handshakes_pending == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(LimitStats::of(&hub).handshakes_pending, 3);
    let mut beyond = TcpStream::connect(addr).await.unwrap();
    assert!(closed_within(&mut beyond, Duration::from_secs(5)).await, "not closed at once");
    assert_eq!(LimitStats::of(&hub).handshake_cap, 1);
    // Once a place frees up, connections are upgraded again.
    drop(held.pop());
    let mut freed = false;
    for _ in 0..500 {
        if LimitStats::of(&hub).handshakes_pending < 3 {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(freed, "the dropped handshake gave its place back");
    let (mut calm, _) = Client::identified(addr, "calm").await;
    assert_eq!(calm.call("~ping", json!(null)).await, Ok(json!(null)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_over_the_limit_is_answered_431() {
    let mut config = Config::default();
    config.max_header_bytes = 4096;
    let (board, addr) = simple_server(config).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let long = format!("X-Padding: {}\r\n", "a".repeat(5000));
    let _ = tcp.write_all(request("/ws", &long).as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer)).await;
    assert!(answer.starts_with(b"HTTP/1.1 431"), "{}", String::from_utf8_lossy(&answer));
    assert_eq!(LimitStats::of(&board.hub()).handshake_too_large, 1);
    // Under the limit, the same request is upgraded.
    let short = format!("X-Padding: {}\r\n", "a".repeat(3000));
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request("/ws", &short).as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    tcp.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
}
