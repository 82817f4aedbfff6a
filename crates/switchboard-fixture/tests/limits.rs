//! Conformance: limits (protocol.md §2, §3.5, §4, §9; appendix A: message 64 KiB,
//! identification timeout 2 s; defaults: 64 in-flight requests, 128 subscriptions).
//!
//! Readings of protocol.md used here:
//! - "message 64 KiB" = 65,536 bytes of frame payload: a frame of exactly 65,536 bytes is
//!   allowed, one of 65,537 bytes is "over the size limit" → close 1009.
//! - In-flight: with 64 `sleep` requests running, the server stops reading, so an `echo`
//!   sent 65th is answered only after at least one sleep finished; sent 64th it is answered
//!   before any of them. Both are ordering checks (sleeps of 2 s), not timing checks. The
//!   65th request is delayed, not refused: it gets `~ok`.
//! - Subscriptions: the 129th `~sub` of a connection is refused with `LIMIT` (§4 table:
//!   "a per-connection limit was reached (subscriptions, …)").
//! - A frame far over the limit (1 MiB) must still be answered with the 1009 close frame,
//!   even though the server will not read it all; the client's write may fail part-way.
//! - Identification timeout: no successful `~hello` within 2 s → 4504 even if the client
//!   keeps sending `~ping`; the test allows 8 s for it to happen.

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// An `echo` request frame of exactly `len` bytes with id 1.
fn echo_frame(len: usize) -> String {
    let overhead = r#"["echo","",1]"#.len();
    let s = format!(r#"["echo","{}",1]"#, "x".repeat(len - overhead));
    assert_eq!(s.len(), len);
    s
}

#[tokio::test]
async fn message_of_64_kib_is_accepted() {
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    c.send_text(&echo_frame(65_536)).await;
    let r = c.reply(1).await;
    assert_eq!(r[0], "~ok");
    assert_eq!(r[1].as_str().map(str::len), Some(65_536 - 13));
}

#[tokio::test]
async fn message_over_64_kib_closes_1009() {
    let fx = Fixture::start();
    let mut other = Client::user(&fx, "bob").await;
    let mut c = Client::user(&fx, "alice").await;
    c.send_frame_lossy(Message::Text(echo_frame(65_537).into())).await;
    let (code, reason) = c.expect_close().await;
    assert_eq!(code, 1009, "close code (reason {reason:?})");
    assert!(!reason.is_empty(), "the reason says what was wrong");
    assert!(
        c.unread().iter().all(|m| !is_reply(m, 1)),
        "the oversized request was answered: {:?}",
        c.unread()
    );
    assert_eq!(other.ok("echo", json!(1)).await, json!(1));
}

#[tokio::test]
async fn much_larger_message_closes_1009_even_when_anonymous() {
    let fx = Fixture::start();
    let mut c = Client::connect(&fx).await;
    // The server may stop reading part-way through: a failed write is not the failure here,
    // a missing close frame is.
    c.send_frame_lossy(Message::Text(echo_frame(1 << 20).into())).await;
    let (code, reason) = c.expect_close().await;
    assert_eq!(code, 1009, "close code (reason {reason:?})");
}

#[tokio::test]
async fn identification_timeout_closes_4504() {
    let fx = Fixture::start();
    let mut c = Client::connect(&fx).await;
    let (code, reason) = c.expect_close_within(Duration::from_secs(8)).await;
    assert_eq!(code, 4504, "close code (reason {reason:?})");
}

#[tokio::test]
async fn pinging_does_not_stop_the_identification_timeout() {
    let fx = Fixture::start();
    let mut c = Client::connect(&fx).await;
    let start = tokio::time::Instant::now();
    // Ping every 300 ms for 1.5 s (well inside the 2 s), then wait for the close.
    while start.elapsed() < Duration::from_millis(1500) {
        c.sync().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (code, reason) = c.expect_close_within(Duration::from_secs(8)).await;
    assert_eq!(code, 4504, "close code (reason {reason:?})");
}

#[tokio::test]
async fn refused_namespace_does_not_stop_the_identification_timeout() {
    let fx = Fixture::start();
    let mut c = Client::connect(&fx).await;
    let e = c
        .hello(json!({"ns": "nope", "identity": password_identity("alice")}))
        .await
        .expect_err("unknown namespace");
    assert_code(&e, "NOT_FOUND");
    let (code, _) = c.expect_close_within(Duration::from_secs(8)).await;
    assert_eq!(code, 4504);
}

#[tokio::test]
async fn identified_connection_outlives_the_identification_timeout() {
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    let _ = c.collect_for(Duration::from_secs(3), |_| false).await;
    assert_eq!(c.ok("echo", json!("still here")).await, json!("still here"));
}

async fn inflight_then_echo(sleeps: usize) -> (usize, Vec<Value>) {
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    let mut sleep_ids = Vec::new();
    for _ in 0..sleeps {
        sleep_ids.push(c.request("sleep", json!({"ms": 2000})).await);
    }
    let echo = c.request("echo", json!("late")).await;
    // Collect replies in arrival order until all are in.
    let mut order = Vec::new();
    let mut echo_pos = None;
    while order.len() < sleeps + 1 {
        let m =
            c.wait_for_within("a reply", Duration::from_secs(10), |m| matches!(ty(m), "~ok" | "~err")).await;
        if is_reply(&m, echo) {
            assert_eq!(m, json!(["~ok", "late", echo]), "the delayed echo");
            echo_pos = Some(order.len());
        } else {
            let id = msg_id(&m).expect("id");
            assert!(sleep_ids.contains(&id), "unexpected reply {m}");
            assert_eq!(m, json!(["~ok", null, id]), "a sleep reply");
        }
        order.push(m);
    }
    (echo_pos.expect("echo answered"), order)
}

#[tokio::test]
async fn sixty_fifth_request_waits_for_a_free_slot() {
    let (pos, order) = inflight_then_echo(64).await;
    assert!(
        pos >= 1,
        "with 64 requests in flight the 65th must wait for one to finish; reply order: {order:?}"
    );
}

#[tokio::test]
async fn sixty_fourth_request_runs_at_once() {
    let (pos, order) = inflight_then_echo(63).await;
    assert_eq!(pos, 0, "with 63 requests in flight the 64th runs at once; reply order: {order:?}");
}

#[tokio::test]
async fn subscriptions_are_capped_at_128() {
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    for i in 0..128 {
        c.ok("~sub", json!({"topic": format!("chat/room{i}")})).await;
    }
    c.err_code("~sub", json!({"topic": "chat/one-too-many"}), "LIMIT").await;
    // Leaving one frees a slot.
    let left = c.ok("~unsub", json!({"topic": "chat/room0"})).await;
    assert_eq!(left, json!({"topics": ["chat/room0"]}));
    c.ok("~sub", json!({"topic": "chat/one-too-many"})).await;
    c.err_code("~sub", json!({"topic": "chat/room0"}), "LIMIT").await;
}
