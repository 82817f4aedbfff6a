//! The accept loop under slow or many handshakes (issue 16): a deadline for the TLS handshake
//! and the request head, a cap on connections still in handshake, a header-size limit — and a
//! normal client served meanwhile. Raw sockets, real server.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::pki::Pki;
use common::{Client, http, metric, start_with};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const UPGRADE: &[u8] =
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// Sends `bytes` one per second and returns how many were sent when the server closed the
/// connection (`None`: it never did, all were sent and 5 more seconds passed).
async fn trickle(addr: SocketAddr, bytes: &'static [u8]) -> Option<usize> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 256];
    for (i, b) in bytes.iter().enumerate() {
        if s.write_all(&[*b]).await.is_err() {
            return Some(i);
        }
        // Wait a second for the server to answer or close.
        match tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return Some(i + 1),
            Ok(Ok(_)) => panic!("an answer to a partial request head"),
            Err(_) => {}
        }
    }
    match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
        Ok(Ok(0) | Err(_)) => Some(bytes.len()),
        _ => None,
    }
}

fn limits(extra: &str) -> String {
    common::config("anonymous", &format!("[metrics]\nlisten = \"127.0.0.1:0\"\n[http]\n{extra}"))
}

#[tokio::test]
async fn slow_handshakes_are_closed_by_the_deadline_while_others_are_served() {
    let server = start_with(&limits("handshake_timeout_ms = 3000\n"), &[], &[]).await;
    let addr = server.addr;
    let slow: Vec<_> = (0..4).map(|_| tokio::spawn(trickle(addr, UPGRADE))).collect();
    // Meanwhile a normal client connects, identifies and talks.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut c = Client::connect(addr).await;
    c.call("~hello", json!({})).await.unwrap();
    assert_eq!(c.call("~ping", json!(null)).await, Ok(json!(null)));
    for s in slow {
        let sent = s.await.unwrap().expect("closed by the server");
        assert!(sent < UPGRADE.len(), "closed before the head was complete ({sent} bytes sent)");
    }
    let page = http(server.metrics_addr().await, "GET", "/metrics", None, None).await.1;
    let timeouts =
        metric(&page, "switchboard_handshake_failures_total{listener=\"main\",reason=\"timeout\"}").unwrap();
    assert!(timeouts >= 4.0, "{page}");
    assert_eq!(c.call("~ping", json!(null)).await, Ok(json!(null)), "still served");
}

#[tokio::test]
async fn slow_tls_handshakes_are_closed_by_the_deadline_too() {
    let pki = Pki::new("slow");
    let (cert, key) = pki.server("server");
    let tls = format!(
        "handshake_timeout_ms = 3000\n[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        cert.display(),
        key.display()
    );
    // `[tls]` after `[http]`: a table of its own.
    let server = start_with(&limits(&tls), &[], &[]).await;
    // The start of a TLS ClientHello, one byte a second.
    let hello: &'static [u8] =
        &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let slow = tokio::spawn(trickle(server.addr, hello));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut c = Client::connect_tls(server.addr, pki.client_config()).await;
    c.call("~hello", json!({})).await.unwrap();
    let sent = slow.await.unwrap().expect("closed by the server");
    assert!(sent < hello.len(), "{sent}");
    let page = http(server.metrics_addr().await, "GET", "/metrics", None, None).await.1;
    assert!(
        metric(&page, "switchboard_handshake_failures_total{listener=\"main\",reason=\"timeout\"}").unwrap()
            >= 1.0,
        "{page}"
    );
}

#[tokio::test]
async fn connections_beyond_the_handshake_cap_are_closed_at_once() {
    let server = start_with(&limits("handshake_timeout_ms = 20000\nmax_handshakes = 2\n"), &[], &[]).await;
    let addr = server.addr;
    let metrics = server.metrics_addr().await;
    // Two connections that say nothing hold both places.
    let mut idle = vec![TcpStream::connect(addr).await.unwrap(), TcpStream::connect(addr).await.unwrap()];
    let mut pending = 0.0;
    for _ in 0..100 {
        let page = http(metrics, "GET", "/metrics", None, None).await.1;
        pending = metric(&page, "switchboard_handshakes_pending{listener=\"main\"}").unwrap_or(0.0);
        if pending >= 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(pending, 2.0);
    // A third is closed at once: EOF long before the 20 s deadline.
    let mut third = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n =
        tokio::time::timeout(Duration::from_secs(10), third.read(&mut buf)).await.expect("closed at once");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    let page = http(metrics, "GET", "/metrics", None, None).await.1;
    assert!(
        metric(&page, "switchboard_handshake_failures_total{listener=\"main\",reason=\"cap\"}").unwrap()
            >= 1.0,
        "{page}"
    );
    // The two idle ones are still open (not closed by the deadline yet).
    for s in &mut idle {
        assert!(tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await.is_err());
    }
    // Once they send a request, their places are free again and a client gets in.
    for s in &mut idle {
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let n = s.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    }
    let mut c = Client::connect(addr).await;
    c.call("~hello", json!({})).await.unwrap();
}

#[tokio::test]
async fn request_heads_over_the_limit_are_refused_with_431() {
    let server = start_with(&limits("max_header_bytes = 8192\n"), &[], &[]).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let big = "a".repeat(20_000);
    let request = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\nConnection: close\r\n\r\n");
    let _ = s.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer)).await.unwrap();
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // A normal request still works.
    assert_eq!(http(server.addr, "GET", "/healthz", None, None).await.0, 200);
}
