//! Proxy identification and forwarding to an application over HTTP.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Client, http, start_with};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The application's answer to one call: status and JSON.
async fn decide(call: &Value, path: &str) -> (u16, Value) {
    if path == "/identify" {
        let id = &call["identity"];
        if id["password"] == "ok" {
            let user = id["user"].as_str().unwrap();
            return (
                200,
                json!({
                    "user": user,
                    "alias": user,
                    "public": {"role": "tester"},
                    "welcome": {
                        "hi": user,
                        "header": call["headers"]["x-app"],
                        "remote": call["remote_addr"].is_string(),
                        "meta": call["meta"],
                        "ns": call["ns"],
                    },
                    "groups": ["group/g1"],
                }),
            );
        }
        return (403, json!({"error": {"message": "go away"}}));
    }
    if path == "/authorize" {
        let allowed = match call["op"].as_str() {
            Some("subscribe") => call["user"] == "ada" && call["topic"] == "vip/lounge",
            Some("publish") => call["payload"]["data"] != "spam",
            _ => false,
        };
        return if allowed {
            (204, Value::Null)
        } else {
            (403, json!({"error": {"message": "not for you"}}))
        };
    }
    match call["type"].as_str() {
        Some("add") => {
            (200, json!(call["payload"]["a"].as_f64().unwrap() + call["payload"]["b"].as_f64().unwrap()))
        }
        Some("whoami") => (200, json!({"user": call["user"], "conn": call["conn"]})),
        Some("slow") => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            (200, Value::Null)
        }
        _ => (422, json!({"error": {"code": "TEAPOT", "message": "I'm a teapot"}})),
    }
}

async fn serve_one(mut stream: TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_end, length) = loop {
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
            break (i + 4, length);
        }
    };
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
    let call: Value = serde_json::from_slice(&buf[head_end..head_end + length]).unwrap_or(Value::Null);
    let (status, answer) = decide(&call, &path).await;
    let body = answer.to_string();
    let response = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

async fn application() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_one(stream));
        }
    });
    addr
}

async fn server() -> common::Server {
    let app = application().await;
    let toml = format!(
        r#"
api_key = "{key}"
[proxy]
identify_url = "http://{app}/identify"
forward_url = "http://{app}/forward"
authorize_url = "http://{app}/authorize"
headers = ["X-App"]
timeout_ms = 2000

[namespaces.main]
identify = "proxy"
forward = ["add", "whoami", "slow", "boom"]

[namespaces.main.topics."group/{{g}}"]
subscribe = "nobody"

[namespaces.main.topics."vip/{{room}}"]
subscribe = "proxy"
publish = "proxy"
"#,
        key = common::KEY
    );
    start_with(&toml, &[], &[]).await
}

#[tokio::test]
async fn the_application_identifies_and_answers_forwarded_requests() {
    let server = server().await;
    let addr = server.addr;
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    request.headers_mut().insert("x-app", "hello-app".parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut ada = Client { ws, next_id: 0, conn: String::new(), backlog: Vec::new() };
    let welcome = ada
        .call("~hello", json!({"identity": {"user": "ada", "password": "ok"}, "meta": {"device": "test"}}))
        .await
        .unwrap();
    assert_eq!(welcome["user"], "ada");
    assert_eq!(welcome["data"]["hi"], "ada");
    assert_eq!(welcome["data"]["header"], "hello-app");
    assert_eq!(welcome["data"]["remote"], true);
    assert_eq!(welcome["data"]["meta"]["device"], "test");
    assert_eq!(welcome["data"]["ns"], "main");
    let conn = welcome["conn"].as_str().unwrap().to_owned();

    assert_eq!(ada.call("add", json!({"a": 2, "b": 3})).await.unwrap(), 5.0);
    let me = ada.call("whoami", Value::Null).await.unwrap();
    assert_eq!(me, json!({"user": "ada", "conn": conn}));
    let err = ada.call("boom", Value::Null).await.unwrap_err();
    assert_eq!(err["code"], "TEAPOT");
    assert_eq!(err["message"], "I'm a teapot");
    let err = ada.call("slow", Value::Null).await.unwrap_err();
    assert_eq!(err["code"], "TIMEOUT");

    // The groups the application named are joined.
    let mut joined = false;
    for _ in 0..100 {
        let info = common::api(addr, "GET", "/api/info", None).await;
        if info["topics"].as_u64() == Some(1) {
            joined = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(joined);

    let (_, metrics) = http(addr, "GET", "/metrics", None, None).await;
    assert!(
        metrics.contains("switchboard_proxy_request_duration_seconds_bucket{kind=\"forward\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("switchboard_proxy_request_duration_seconds_count{kind=\"identify\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("outcome=\"timeout\""), "{metrics}");
}

#[tokio::test]
async fn the_application_refuses() {
    let server = server().await;
    let mut c = Client::connect(server.addr).await;
    let err = c.call("~hello", json!({"identity": {"user": "eve", "password": "guess"}})).await.unwrap_err();
    assert_eq!(err["code"], "NOT_AUTHORIZED");
    assert_eq!(err["message"], "go away");
    assert_eq!(c.closed().await, Some(4500));
}

#[tokio::test]
async fn the_application_authorizes_subscriptions_and_publications() {
    let server = server().await;
    let addr = server.addr;
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.unwrap();
    let mut ada = Client { ws, next_id: 0, conn: String::new(), backlog: Vec::new() };
    ada.call("~hello", json!({"identity": {"user": "ada", "password": "ok"}})).await.unwrap();
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.unwrap();
    let mut bob = Client { ws, next_id: 0, conn: String::new(), backlog: Vec::new() };
    bob.call("~hello", json!({"identity": {"user": "bob", "password": "ok"}})).await.unwrap();

    ada.call("~sub", json!({"topic": "vip/lounge"})).await.unwrap();
    let refused = bob.call("~sub", json!({"topic": "vip/lounge"})).await.unwrap_err();
    assert_eq!(
        (refused["code"].as_str(), refused["message"].as_str()),
        (Some("FORBIDDEN"), Some("not for you"))
    );
    let refused = ada.call("~sub", json!({"topic": "vip/other"})).await.unwrap_err();
    assert_eq!(refused["code"], "FORBIDDEN");

    assert_eq!(bob.call("~pub", json!({"topic": "vip/lounge", "data": "hello"})).await.unwrap()["seq"], 1);
    let refused = bob.call("~pub", json!({"topic": "vip/lounge", "data": "spam"})).await.unwrap_err();
    assert_eq!(refused["code"], "FORBIDDEN");
}
