//! The HTTP API under abuse: the key checked before the body is read, the bearer scheme in any
//! case, payloads bounded by the clients' own message limit, bodies and batches bounded,
//! `/metrics` on another address or behind the key.

mod common;

use std::time::Duration;

use common::{Client, KEY, api, http, start_with};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends only the head of a request announcing a `length`-byte body and reads the answer
/// without sending the body.
async fn head_only(addr: std::net::SocketAddr, path: &str, auth: &str, length: usize) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n{{\"topic\":"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut answer))
        .await
        .expect("answered without the body")
        .unwrap();
    String::from_utf8_lossy(&answer[..n]).into_owned()
}

#[tokio::test]
async fn the_key_is_checked_before_the_body_is_read() {
    let server = start_with(&common::config("anonymous", ""), &[], &[]).await;
    let two_mib = 2 * 1024 * 1024;
    let answer = head_only(server.addr, "/api/publish", "Authorization: Bearer wrong\r\n", two_mib).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    let answer = head_only(server.addr, "/api/batch", "", two_mib).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    // With the key, a body over api.max_body_bytes (1 MiB) is refused from its Content-Length.
    let answer =
        head_only(server.addr, "/api/publish", &format!("Authorization: Bearer {KEY}\r\n"), two_mib).await;
    assert!(answer.starts_with("HTTP/1.1 413") && answer.contains("max_body_bytes"), "{answer}");
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let server = start_with(&common::config("anonymous", ""), &[], &[]).await;
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        let request = format!(
            "GET /api/info HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: {scheme} {KEY}\r\n\r\n"
        );
        s.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{scheme}: {answer}");
    }
}

#[tokio::test]
async fn payloads_bodies_and_batches_are_bounded() {
    let extra = "[limits]\nmax_message_size = 4096\n[api]\nmax_batch_commands = 10\nmax_body_bytes = 65536\n";
    let server = start_with(&common::config("anonymous", extra), &[], &[]).await;
    let addr = server.addr;
    let mut c = Client::connect(addr).await;
    c.call("~hello", json!({})).await.unwrap();
    c.call("~sub", json!({"topic": "room/big"})).await.unwrap();

    // Over the clients' own limit: 413, nothing delivered.
    let big = "x".repeat(5000);
    for (path, body) in [
        ("/api/publish", json!({"topic": "room/big", "data": big})),
        ("/api/broadcast", json!({"type": "t", "payload": big})),
    ] {
        let (status, text) = http(addr, "POST", path, Some(KEY), Some(&body)).await;
        assert_eq!(status, 413, "{path}: {text}");
        let err: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(err["error"]["code"], "LIMIT", "{text}");
        assert!(err["error"]["message"].as_str().unwrap().contains("max_message_size"), "{text}");
    }
    // Under it: delivered.
    api(addr, "POST", "/api/publish", Some(json!({"topic": "room/big", "data": "x".repeat(3000)}))).await;
    assert_eq!(c.expect("~msg").await[1]["data"].as_str().unwrap().len(), 3000);

    // Batches: at most 10 commands; a batch's publications are checked one by one.
    let commands = |n: usize| -> Value {
        json!({"commands": (0..n).map(|_| json!({"op": "publish", "topic": "room/big", "data": 1})).collect::<Vec<_>>()})
    };
    let (status, text) = http(addr, "POST", "/api/batch", Some(KEY), Some(&commands(11))).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("max_batch_commands"), "{text}");
    let results = api(addr, "POST", "/api/batch", Some(commands(10))).await;
    assert_eq!(results["results"].as_array().unwrap().len(), 10);
    let mixed = json!({"commands": [
        {"op": "publish", "topic": "room/big", "data": big},
        {"op": "publish", "topic": "room/big", "data": "ok"},
    ]});
    let results = api(addr, "POST", "/api/batch", Some(mixed)).await;
    assert_eq!(results["results"][0]["error"]["code"], "LIMIT", "{results}");
    assert!(results["results"][1]["ok"]["seq"].is_u64(), "{results}");

    // A body over max_body_bytes (64 KiB here), sent chunked (no Content-Length): 413.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let chunk = "y".repeat(70_000);
    let request = format!(
        "POST /api/publish HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {KEY}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    let _ = s.write_all(request.as_bytes()).await;
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[tokio::test]
async fn metrics_on_another_address() {
    let extra = "[metrics]\nlisten = \"127.0.0.1:0\"\n";
    let server = start_with(&common::config("anonymous", extra), &[], &[]).await;
    let metrics = server.metrics_addr().await;
    let (status, page) = http(metrics, "GET", "/metrics", None, None).await;
    assert_eq!(status, 200);
    assert!(page.contains("switchboard_connections"), "{page}");
    assert_eq!(http(server.addr, "GET", "/metrics", None, None).await.0, 404, "not on the main listener");
    assert_eq!(http(metrics, "GET", "/api/info", Some(KEY), None).await.0, 404, "only /metrics there");
}

#[tokio::test]
async fn metrics_behind_the_key() {
    let extra = "[metrics]\nrequire_key = true\n";
    let server = start_with(&common::config("anonymous", extra), &[], &[]).await;
    assert_eq!(http(server.addr, "GET", "/metrics", None, None).await.0, 401);
    assert_eq!(http(server.addr, "GET", "/metrics", Some("wrong"), None).await.0, 401);
    let (status, page) = http(server.addr, "GET", "/metrics", Some(KEY), None).await;
    assert_eq!(status, 200);
    assert!(page.contains("switchboard_connections"), "{page}");
    // Health checks stay open: load balancers have no key.
    assert_eq!(http(server.addr, "GET", "/healthz", None, None).await.0, 200);
}
