//! The three ways to run a server (own listener, axum router, already-upgraded IO) and the
//! upgrade hook.

mod common;

use std::sync::Arc;

use common::{Client, main_ns};
use serde_json::json;
use switchboard::{Conn, Error, Format, Payload, Rejection, Server, UpgradeRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn cookie(conn: Conn, req: Arc<UpgradeRequest>) -> Result<serde_json::Value, Error> {
    Ok(json!({ "sid": req.cookie("sid"), "remote": req.remote_addr.is_some(), "conn": conn.id() }))
}

#[tokio::test]
async fn mounted_in_an_axum_router_next_to_other_routes() {
    let board = Server::new().namespace(main_ns()).build().await.unwrap();
    let app =
        axum::Router::new().route("/health", axum::routing::get(|| async { "ok" })).merge(board.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
    let mut body = String::new();
    tcp.read_to_string(&mut body).await.unwrap();
    assert!(body.starts_with("HTTP/1.1 200") && body.ends_with("ok"), "{body}");

    let (mut c, welcome) = Client::identified(addr, "ada").await;
    assert_eq!(welcome["user"], "ada");
    assert_eq!(c.call("~ping", json!(null)).await, Ok(json!(null)));
}

#[tokio::test]
async fn upgrade_hook_allows_or_refuses_and_handlers_see_the_request() {
    let board = Server::new()
        .on_upgrade(|req| async move {
            if req.origin() == Some("https://evil.example") {
                Err(Rejection::forbidden("origin not allowed"))
            } else {
                Ok(())
            }
        })
        .namespace(main_ns().on("cookie", cookie))
        .build()
        .await
        .unwrap();
    let addr = common::serve(&board).await;

    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
        "ws://{addr}/ws"
    ))
    .unwrap();
    req.headers_mut().insert("origin", "https://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("expected 403, got {other:?}"),
    }

    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
        "ws://{addr}/ws"
    ))
    .unwrap();
    req.headers_mut().insert("cookie", "theme=dark; sid=s3cr3t".parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let mut c = Client::from_ws(ws);
    c.call("~hello", json!({"identity": "user:ada"})).await.unwrap();
    let seen = c.call("cookie", json!(null)).await.unwrap();
    assert_eq!(seen["sid"], "s3cr3t");
    assert_eq!(seen["remote"], true, "serve() records the remote address");
}

#[tokio::test]
async fn unknown_subprotocol_is_refused_with_400() {
    let board = Server::new().namespace(main_ns()).build().await.unwrap();
    let addr = common::serve(&board).await;
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
        "ws://{addr}/ws"
    ))
    .unwrap();
    req.headers_mut().insert("sec-websocket-protocol", "graphql-ws, mqtt".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 400),
        other => panic!("expected 400, got {other:?}"),
    }
}

/// A server that does the HTTP handshake itself and hands the upgraded socket over.
#[tokio::test]
async fn accepts_connections_upgraded_by_another_stack() {
    let board = Server::new().namespace(main_ns()).build().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = board.clone();
    tokio::spawn(async move {
        let (mut tcp, remote) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            tcp.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let mut headers = http::HeaderMap::new();
        for line in head.lines().skip(1).filter(|l| !l.is_empty()) {
            let (k, v) = line.split_once(':').unwrap();
            headers.append(
                http::HeaderName::from_bytes(k.trim().as_bytes()).unwrap(),
                v.trim().parse().unwrap(),
            );
        }
        let format = switchboard::subprotocol(&headers).unwrap();
        let key = headers["sec-websocket-key"].as_bytes();
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key);
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-accept: {accept}\r\n\r\n"
        );
        tcp.write_all(response.as_bytes()).await.unwrap();
        let request = UpgradeRequest::new(headers, "/ws".parse().unwrap(), Some(remote));
        server.accept(tcp, request, format).await;
    });
    let (mut c, welcome) = Client::identified(addr, "bob").await;
    assert_eq!(welcome["ns"], "main");
    assert_eq!(c.call("~ping", json!(null)).await, Ok(json!(null)));
    assert_eq!(Format::Json, Format::default());
}

/// Handlers may return plain values: a `String`, a `&'static str`, numbers, `bool`, `Option`
/// (`None` is `null`), `Vec`; each is the `~ok` result as it serializes.
#[tokio::test]
async fn handlers_reply_plain_values() {
    async fn greet(Payload(name): Payload<String>) -> String {
        format!("hello, {name}")
    }
    async fn version() -> &'static str {
        "1.0"
    }
    async fn add(Payload((a, b)): Payload<(i64, i64)>) -> i64 {
        a + b
    }
    async fn half(Payload(n): Payload<f64>) -> f64 {
        n / 2.0
    }
    async fn even(Payload(n): Payload<u32>) -> bool {
        n % 2 == 0
    }
    async fn find(Payload(n): Payload<u32>) -> Option<u32> {
        (n < 10).then_some(n)
    }
    async fn range(Payload(n): Payload<u8>) -> Vec<u8> {
        (0..n).collect()
    }
    let ns = main_ns()
        .on("greet", greet)
        .on("version", version)
        .on("add", add)
        .on("half", half)
        .on("even", even)
        .on("find", find)
        .on("range", range);
    let board = Server::new().namespace(ns).build().await.unwrap();
    let addr = common::serve(&board).await;
    let (mut c, _) = Client::identified(addr, "ann").await;
    assert_eq!(c.call("greet", json!("ann")).await, Ok(json!("hello, ann")));
    assert_eq!(c.call("version", json!(null)).await, Ok(json!("1.0")));
    assert_eq!(c.call("add", json!([2, 40])).await, Ok(json!(42)));
    assert_eq!(c.call("half", json!(5)).await, Ok(json!(2.5)));
    assert_eq!(c.call("even", json!(3)).await, Ok(json!(false)));
    assert_eq!(c.call("find", json!(7)).await, Ok(json!(7)));
    assert_eq!(c.call("find", json!(70)).await, Ok(json!(null)));
    assert_eq!(c.call("range", json!(3)).await, Ok(json!([0, 1, 2])));
}
