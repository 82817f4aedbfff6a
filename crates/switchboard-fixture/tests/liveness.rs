//! Conformance: liveness — `~ping`, WebSocket heartbeat pings, heartbeat timeout 4001
//! (protocol.md §7, appendix A: heartbeat 5 s).
//!
//! Readings of protocol.md used here:
//! - "closes with 4001 a connection from which nothing arrived for two intervals": with a
//!   5 s heartbeat, a client that stays completely silent (it reads, but sends no pong and no
//!   message) is closed with 4001. Depending on when the server checks, that is 10–15 s after
//!   the last frame; the test allows 30 s. The silent client is a hand-written WebSocket over
//!   TCP, because tokio-tungstenite answers pings by itself.
//! - A client that answers pings (tungstenite does) but sends nothing else is NOT closed:
//!   pongs are something that arrived.
//! - In 12.5 s at least two pings arrive (one every 5 s).

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn ping_is_answered_ok_null() {
    let fx = Fixture::start();
    let mut anon = Client::connect(&fx).await;
    anon.send(&json!(["~ping", null, 11])).await;
    assert_eq!(anon.reply(11).await, json!(["~ok", null, 11]));
    let mut c = Client::user(&fx, "alice").await;
    c.send(&json!(["~ping", null, MAX_ID])).await;
    assert_eq!(c.reply(MAX_ID).await, json!(["~ok", null, MAX_ID]));
}

#[tokio::test]
async fn heartbeat_pings_are_sent_and_answering_them_keeps_the_connection() {
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    c.sync().await;
    let before = c.pings();
    // Only pongs (sent by tungstenite) go out during this time.
    let _ = c.collect_for(Duration::from_millis(12_500), |_| false).await;
    let pings = c.pings() - before;
    assert!(pings >= 2, "{pings} heartbeat pings in 12.5 s with a 5 s heartbeat");
    // Still open after more than two intervals of sending nothing but pongs.
    assert_eq!(c.ok("echo", json!("alive")).await, json!("alive"));
}

#[tokio::test]
async fn silent_client_is_closed_with_4001() {
    let fx = Fixture::start();
    let (status, head, mut raw) = RawWs::connect(fx.addr(), "/ws", &[]).await;
    assert_eq!(status, 101, "upgrade response: {head}");
    raw.send_text(r#"["~hello",{"identity":{"user":"alice","password":"pw-alice"}},1]"#).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut welcomed = false;
    let mut pings = 0;
    let close = loop {
        let Some((op, data)) = raw.read_frame(deadline).await else {
            panic!("connection ended without a close frame (welcomed {welcomed}, {pings} pings)");
        };
        match op {
            OP_TEXT => {
                let v: Value = serde_json::from_slice(&data).expect("JSON text frame");
                if is_reply(&v, 1) {
                    assert_eq!(v[0], "~ok", "hello refused: {v}");
                    welcomed = true;
                }
            }
            OP_PING => pings += 1,
            OP_CLOSE => break data,
            other => panic!("unexpected opcode {other}"),
        }
    };
    assert!(welcomed, "no welcome before the close");
    assert!(pings >= 1, "closed without ever pinging");
    assert!(close.len() >= 2, "close frame without a code");
    let code = u16::from_be_bytes([close[0], close[1]]);
    let reason = String::from_utf8_lossy(&close[2..]);
    assert_eq!(code, 4001, "close code (reason {reason:?})");
}

#[tokio::test]
async fn ping_request_counts_as_traffic_for_browsers() {
    // A browser cannot answer pings, but its `~ping` requests are traffic: a raw client that
    // never answers WebSocket pings but sends `~ping` every 2 s stays open for 14 s.
    let fx = Fixture::start();
    let (status, head, mut raw) = RawWs::connect(fx.addr(), "/ws", &[]).await;
    assert_eq!(status, 101, "upgrade response: {head}");
    raw.send_text(r#"["~hello",{"identity":{"user":"alice","password":"pw-alice"}},1]"#).await;
    let mut next_id = 2u64;
    let mut answered = 0;
    let end = tokio::time::Instant::now() + Duration::from_secs(14);
    while tokio::time::Instant::now() < end {
        raw.send_text(&format!(r#"["~ping",null,{next_id}]"#)).await;
        let want = next_id;
        next_id += 1;
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let Some((op, data)) = raw.read_frame(deadline).await else {
                panic!("connection ended after {answered} ~ping replies");
            };
            match op {
                OP_TEXT => {
                    let v: Value = serde_json::from_slice(&data).expect("JSON");
                    if is_reply(&v, want) {
                        assert_eq!(v, json!(["~ok", null, want]));
                        answered += 1;
                        break;
                    }
                }
                OP_PING => {}
                OP_CLOSE => panic!(
                    "closed with {:?} although ~ping requests kept arriving",
                    data.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]))
                ),
                other => panic!("unexpected opcode {other}"),
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert!(answered >= 5, "{answered} ~ping replies");
}
