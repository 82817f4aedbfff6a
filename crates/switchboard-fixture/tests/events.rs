//! Conformance: events in both directions (protocol.md §4, appendix A `tell` / `shout`).
//!
//! Readings of protocol.md used here:
//! - A server event is exactly `[type, payload]` (two elements, no id).
//! - `shout` reaches every identified connection but the sender, of every user; anonymous
//!   connections are not identified and get nothing.
//! - An unhandled client event gets exactly one push `["~err", {"code": "NOT_FOUND",
//!   "message": …, "data": {"type": name}}]`.

mod common;

use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn unhandled_event_gets_a_not_found_push() {
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    c.event("no.such.event", json!({"x": 1})).await;
    let m = c.wait_type("~err").await;
    assert_eq!(m.as_array().map(Vec::len), Some(2), "a push has no id: {m}");
    assert_code(&m[1], "NOT_FOUND");
    assert_eq!(m[1]["data"], json!({"type": "no.such.event"}));
    c.sync().await;
    c.expect_silence().await;
}

#[tokio::test]
async fn handled_events_get_nothing_back() {
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    c.event("status", Value::Null).await;
    c.event("echo", json!([1, 2])).await;
    c.sync().await;
    c.expect_silence().await;
}

#[tokio::test]
async fn tell_reaches_every_connection_of_the_user() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut bob1 = Client::user(&fx, "bob").await;
    let mut bob2 = Client::user(&fx, "bob").await;
    let mut carol = Client::user(&fx, "carol").await;
    let r = alice.ok("tell", json!({"user": "bob", "type": "note", "payload": {"text": "hi", "n": 1}})).await;
    assert_eq!(r, json!({"delivered": 2}));
    for b in [&mut bob1, &mut bob2] {
        let m = b.wait_type("note").await;
        assert_eq!(m, json!(["note", {"text": "hi", "n": 1}]));
    }
    // Nobody else got it, and each bob got it once.
    for c in [&mut alice, &mut carol, &mut bob1, &mut bob2] {
        c.sync().await;
        c.expect_none("note", QUIET, |m| ty(m) == "note").await;
    }
}

#[tokio::test]
async fn tell_to_oneself_and_to_nobody() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let r = alice.ok("tell", json!({"user": "alice", "type": "self", "payload": null})).await;
    assert_eq!(r, json!({"delivered": 1}));
    assert_eq!(alice.wait_type("self").await, json!(["self", null]));
    let r = alice.ok("tell", json!({"user": "nobody", "type": "x", "payload": 1})).await;
    assert_eq!(r, json!({"delivered": 0}));
}

#[tokio::test]
async fn shout_reaches_every_identified_connection_but_the_sender() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut alice2 = Client::user(&fx, "alice").await;
    let mut bob = Client::user(&fx, "bob").await;
    let mut anon = Client::connect(&fx).await;
    anon.sync().await;
    alice.ok("shout", json!({"type": "news", "payload": {"big": true}})).await;
    for c in [&mut alice2, &mut bob] {
        assert_eq!(c.wait_type("news").await, json!(["news", {"big": true}]));
    }
    alice.sync().await;
    anon.sync().await;
    // Both at once: anon is closed 2 s after it connected (never identified).
    tokio::join!(
        alice.expect_none("news", QUIET, |m| ty(m) == "news"),
        anon.expect_none("news", QUIET, |m| ty(m) == "news")
    );
}

#[tokio::test]
async fn server_events_may_use_any_application_type() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut bob = Client::user(&fx, "bob").await;
    let t = "x".repeat(128);
    alice.ok("tell", json!({"user": "bob", "type": t, "payload": [1, {"a": "b"}]})).await;
    let m = bob.wait_for("the long-typed event", |m| ty(m) == t).await;
    assert_eq!(m, json!([t, [1, {"a": "b"}]]));
}
