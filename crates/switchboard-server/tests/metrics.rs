//! `/metrics`, `/healthz`, `/readyz`.

mod common;

use common::{Client, config, http, start_with};
use serde_json::{Value, json};

fn series(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok())
    })
}

#[tokio::test]
async fn metrics_are_present_and_move() {
    let server = start_with(&config("dev", "dev = true"), &[], &[]).await;
    let addr = server.addr;
    assert_eq!(http(addr, "GET", "/healthz", None, None).await.0, 200);
    assert_eq!(http(addr, "GET", "/readyz", None, None).await.0, 200);

    let (status, before) = http(addr, "GET", "/metrics", None, None).await;
    assert_eq!(status, 200);
    for name in [
        "switchboard_connections",
        "switchboard_users",
        "switchboard_topics",
        "switchboard_messages_in_total",
        "switchboard_messages_out_total",
        "switchboard_bytes_in_total",
        "switchboard_bytes_out_total",
        "switchboard_slow_consumer_closes_total",
        "switchboard_connections_total",
    ] {
        assert!(series(&before, name).is_some(), "{name} missing in:\n{before}");
    }
    assert_eq!(series(&before, "switchboard_connections"), Some(0.0), "{before}");
    let in_before = series(&before, "switchboard_messages_in_total").unwrap();

    let (mut ada, _) = Client::identified(addr, json!({"name": "ada"})).await;
    ada.call("~sub", json!({"topic": "room/a"})).await.unwrap();
    for _ in 0..5 {
        ada.call("~ping", Value::Null).await.unwrap();
    }
    let (_, after) = http(addr, "GET", "/metrics", None, None).await;
    assert_eq!(series(&after, "switchboard_connections"), Some(1.0), "{after}");
    assert_eq!(series(&after, "switchboard_users"), Some(1.0), "{after}");
    assert_eq!(series(&after, "switchboard_topics"), Some(1.0), "{after}");
    let in_after = series(&after, "switchboard_messages_in_total").unwrap();
    assert!(in_after >= in_before + 7.0, "{in_before} -> {in_after}");
    assert!(
        series(&after, "switchboard_messages_out_total").unwrap()
            > series(&before, "switchboard_messages_out_total").unwrap()
    );
    // Seven messages of at least 10 bytes each came in (`["~ping",null,N]` alone is 16).
    let bytes_in = series(&after, "switchboard_bytes_in_total").unwrap()
        - series(&before, "switchboard_bytes_in_total").unwrap();
    assert!(bytes_in >= 70.0, "{bytes_in}");
    assert!(
        after.contains("switchboard_request_duration_seconds_count{type=\"~sub\",outcome=\"ok\"} 1")
            || after.contains("switchboard_request_duration_seconds_count{outcome=\"ok\",type=\"~sub\"} 1"),
        "the ~sub request timed:\n{after}"
    );
    assert!(
        series(&after, "switchboard_bytes_out_total").unwrap()
            > series(&before, "switchboard_bytes_out_total").unwrap()
    );
}

#[tokio::test]
async fn slow_consumer_closes_are_counted() {
    let toml = config("dev", "dev = true\n[limits]\nmax_queue_bytes = 65536");
    let server = start_with(&toml, &[], &[]).await;
    let addr = server.addr;
    let (mut sleepy, _) = Client::identified(addr, json!({"name": "sleepy"})).await;
    sleepy.call("~sub", json!({"topic": "room/flood"})).await.unwrap();
    // The client stops reading; 60 KB publications pile up beyond the socket buffers (15 per
    // batch: under api.max_body_bytes).
    let chunk = "x".repeat(60_000);
    let mut counted = None;
    for _ in 0..60 {
        let commands: Vec<Value> =
            (0..15).map(|_| json!({"op": "publish", "topic": "room/flood", "data": chunk})).collect();
        common::api(addr, "POST", "/api/batch", Some(json!({ "commands": commands }))).await;
        let (_, text) = http(addr, "GET", "/metrics", None, None).await;
        if let Some(n) = series(&text, "switchboard_slow_consumer_closes_total").filter(|n| *n >= 1.0) {
            counted = Some(n);
            break;
        }
    }
    assert_eq!(counted, Some(1.0));
    drop(sleepy);
}
