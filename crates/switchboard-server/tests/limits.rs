//! The standalone server's rate and connection limits (issue 16): configured under
//! `[limits.rate]`, `[namespaces.NAME.rate]` and `[http]`, on by default with the values of a
//! public endpoint, refused with their documented answers and counted in `/metrics`.

mod common;

use std::time::Duration;

use common::{Client, http, metric, start_with};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config(extra: &str) -> String {
    common::config("anonymous", &format!("[metrics]\nlisten = \"127.0.0.1:0\"\n{extra}"))
}

#[tokio::test]
async fn messages_beyond_the_rate_are_refused_and_counted() {
    // One token a second: the ten pings below get at most one or two back on a slow machine.
    let toml = config("[limits.rate]\nmessages = { per_second = 1, burst = 4 }\nclose_after = 0\n");
    let server = start_with(&toml, &[], &[]).await;
    let (mut c, _) = Client::identified(server.addr, json!({})).await;
    let mut refused = 0;
    for _ in 0..10 {
        if let Err(e) = c.call("~ping", json!(null)).await {
            assert_eq!(e["code"], "RATE_LIMITED", "{e}");
            assert!(e["data"]["retry_after_ms"].as_u64().unwrap() > 0, "{e}");
            refused += 1;
        }
    }
    assert!(refused >= 5, "{refused} refused");
    let page = http(server.metrics_addr().await, "GET", "/metrics", None, None).await.1;
    let counted = metric(&page, "switchboard_rate_limited_total{kind=\"message\"}").unwrap();
    assert!(counted >= 5.0, "{page}");
    assert_eq!(metric(&page, "switchboard_rate_limited_total{kind=\"publication\"}"), Some(0.0));
}

#[tokio::test]
async fn a_namespace_may_have_limits_of_its_own() {
    let toml = config(
        "[limits.rate]\nmessages = { per_second = 1, burst = 2 }\nclose_after = 0\n\
         [namespaces.main.rate]\nmessages = { per_second = 0 }\n",
    );
    let server = start_with(&toml, &[], &[]).await;
    let (mut c, _) = Client::identified(server.addr, json!({})).await;
    for _ in 0..20 {
        assert_eq!(c.call("~ping", json!(null)).await, Ok(json!(null)), "main has no limit of messages");
    }
}

#[tokio::test]
async fn connections_per_address_are_limited_and_counted() {
    let toml = config("[http]\nmax_connections_per_address = 2\n");
    let server = start_with(&toml, &[], &[]).await;
    let (_one, _) = Client::identified(server.addr, json!({})).await;
    let (_two, _) = Client::identified(server.addr, json!({})).await;
    // A third from the same address: 429 at once, and closed.
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    let _ = third.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), third.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 429 "), "{answer}");
    let page = http(server.metrics_addr().await, "GET", "/metrics", None, None).await.1;
    assert_eq!(
        metric(&page, "switchboard_connections_refused_total{reason=\"too_many\"}"),
        Some(1.0),
        "{page}"
    );
}

#[tokio::test]
async fn a_trusted_proxy_that_is_not_an_address_is_refused_at_start() {
    let toml = config("[http]\ntrusted_proxies = [\"10.0.0.0/8\", \"proxy.internal\"]\n");
    let dir = std::env::temp_dir().join(format!("switchboard-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(&path, toml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["checkconfig", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("http.trusted_proxies") && err.contains("proxy.internal"), "{err}");
}
