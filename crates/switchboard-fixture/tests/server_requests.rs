//! Conformance: requests from the server to the client (protocol.md §4, appendix A `ask`).
//!
//! Readings of protocol.md used here:
//! - The server request is exactly `[type, payload, sid]` with 1 ≤ sid ≤ 2^53−1, in the
//!   server's own id space (it may equal a client id).
//! - "replies with the client's answer, or its error": the error object the client sent
//!   (`code` and `message`) comes back unchanged.
//! - An answer that arrives after `TIMEOUT` is dropped: no second reply, no protocol error.

mod common;

use common::*;
use serde_json::{Value, json};

/// Waits for the server request of type `t` and returns (sid, payload).
async fn server_request(c: &mut Client, t: &str) -> (u64, Value) {
    let m = c.wait_type(t).await;
    let arr = m.as_array().expect("array");
    assert_eq!(arr.len(), 3, "a server request has an id: {m}");
    let sid = msg_id(&m).unwrap_or_else(|| panic!("integer id in {m}"));
    assert!((1..=MAX_ID).contains(&sid), "id in range: {m}");
    (sid, m[1].clone())
}

#[tokio::test]
async fn ask_is_answered_with_the_clients_result() {
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    let ask =
        c.request("ask", json!({"type": "question", "payload": {"q": [1, 2]}, "timeout_ms": 3000})).await;
    let (sid, p) = server_request(&mut c, "question").await;
    assert_eq!(p, json!({"q": [1, 2]}));
    c.send(&json!(["~ok", {"answer": 42}, sid])).await;
    assert_eq!(c.reply(ask).await, json!(["~ok", {"answer": 42}, ask]));
}

#[tokio::test]
async fn ask_without_timeout_is_answered() {
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    let ask = c.request("ask", json!({"type": "q2", "payload": null})).await;
    let (sid, p) = server_request(&mut c, "q2").await;
    assert_eq!(p, Value::Null);
    c.send(&json!(["~ok", null, sid])).await;
    assert_eq!(c.reply(ask).await, json!(["~ok", null, ask]));
}

#[tokio::test]
async fn ask_relays_the_clients_error() {
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    let ask = c.request("ask", json!({"type": "question", "payload": 1, "timeout_ms": 3000})).await;
    let (sid, _) = server_request(&mut c, "question").await;
    c.send(&json!(["~err", {"code": "NOPE", "message": "not telling"}, sid])).await;
    let e = c.result(ask).await.expect_err("the client's error");
    assert_eq!(e["code"], "NOPE");
    assert_eq!(e["message"], "not telling");
}

#[tokio::test]
async fn ask_relays_not_found_from_a_client_without_handler() {
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    let ask = c.request("ask", json!({"type": "unknown.to.client", "payload": {}, "timeout_ms": 3000})).await;
    let (sid, _) = server_request(&mut c, "unknown.to.client").await;
    // What a conforming client does with a request it has no handler for.
    c.send(&json!([
        "~err",
        {"code": "NOT_FOUND", "message": "no handler", "data": {"type": "unknown.to.client"}},
        sid
    ]))
    .await;
    let e = c.result(ask).await.expect_err("NOT_FOUND");
    assert_code(&e, "NOT_FOUND");
}

#[tokio::test]
async fn unanswered_ask_times_out_and_a_late_answer_is_dropped() {
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    let ask = c.request("ask", json!({"type": "slow", "payload": 1, "timeout_ms": 300})).await;
    let (sid, _) = server_request(&mut c, "slow").await;
    let e = c.result(ask).await.expect_err("TIMEOUT");
    assert_code(&e, "TIMEOUT");
    // Too late now.
    c.send(&json!(["~ok", "late", sid])).await;
    c.sync().await;
    c.expect_none("a second reply to the ask", QUIET, |m| is_reply(m, ask)).await;
    assert_eq!(c.ok("echo", json!("fine")).await, json!("fine"));
}

#[tokio::test]
async fn concurrent_asks_are_matched_by_id() {
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    let ask1 = c.request("ask", json!({"type": "one", "payload": 1, "timeout_ms": 4000})).await;
    let ask2 = c.request("ask", json!({"type": "two", "payload": 2, "timeout_ms": 4000})).await;
    let (sid1, p1) = server_request(&mut c, "one").await;
    let (sid2, p2) = server_request(&mut c, "two").await;
    assert_eq!((p1, p2), (json!(1), json!(2)));
    assert_ne!(sid1, sid2, "two outstanding server requests share an id");
    // Answer in reverse order.
    c.send(&json!(["~ok", "second", sid2])).await;
    c.send(&json!(["~ok", "first", sid1])).await;
    assert_eq!(c.reply(ask2).await, json!(["~ok", "second", ask2]));
    assert_eq!(c.reply(ask1).await, json!(["~ok", "first", ask1]));
}

#[tokio::test]
async fn ask_goes_to_the_asking_connection_only() {
    let fx = Fixture::start();
    let mut a1 = Client::user(&fx, "alice").await;
    let mut a2 = Client::user(&fx, "alice").await;
    let ask = a1.request("ask", json!({"type": "mine", "payload": null, "timeout_ms": 3000})).await;
    let (sid, _) = server_request(&mut a1, "mine").await;
    a2.sync().await;
    a2.expect_none("the other connection's server request", QUIET, |m| ty(m) == "mine").await;
    a1.send(&json!(["~ok", true, sid])).await;
    assert_eq!(a1.reply(ask).await, json!(["~ok", true, ask]));
}
