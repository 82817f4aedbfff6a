//! Conformance: acknowledged delivery (protocol.md §5, appendix A: `acked/<x>` topics,
//! `ack-me`, ack timeout 300 ms, at most 5 resends).
//!
//! Readings of protocol.md used here:
//! - "resends the same message with the same id every `ack_timeout`, at most `max_resends`
//!   times": an unacknowledged delivery arrives 1 + 5 = 6 times, identical, same id. The
//!   test counts what arrives within 3.5 s of the first one (the last resend is due at
//!   ~1.5 s), so it counts, it does not time.
//! - "only until then": after the client's `["~ok", null, id]` no further copy arrives
//!   (counted over 1.5 s, five resend intervals), once the server has read the ack (a `~ping`
//!   answered after it): a resend sent before it read the ack may cross it.
//! - Deliveries into `acked/*` are published by the server (the fixture's `publish`); a
//!   client `~pub` there is not specified and not used.
//! - The `ack-me` request's own reply is not specified beyond "exactly one reply"; its
//!   payload is not checked.

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;

const RESEND_WINDOW: Duration = Duration::from_millis(3500);
const AFTER_ACK: Duration = Duration::from_millis(1500);

fn is_acked_msg(m: &Value, topic: &str) -> bool {
    ty(m) == "~msg" && m[1]["topic"] == topic
}

/// Acknowledges delivery `id`, and waits until the server has read the ack (its reply to a
/// `~ping` sent after it); drops the copies matching `pred` that crossed the ack.
async fn ack(c: &mut Client, id: u64, pred: impl Fn(&Value) -> bool) {
    c.send(&json!(["~ok", null, id])).await;
    c.sync().await;
    c.collect_for(Duration::ZERO, pred).await;
}

/// Waits for the first delivery matching `pred`; checks it carries a valid id.
async fn first(c: &mut Client, what: &str, pred: impl Fn(&Value) -> bool) -> (Value, u64) {
    let m = c.wait_for(what, pred).await;
    assert_eq!(m.as_array().map(Vec::len), Some(3), "an acked delivery has an id: {m}");
    let id = msg_id(&m).unwrap_or_else(|| panic!("integer id: {m}"));
    assert!((1..=MAX_ID).contains(&id), "id in range: {m}");
    (m, id)
}

#[tokio::test]
async fn unacked_topic_delivery_is_resent_five_times_with_the_same_id() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut bob = Client::user(&fx, "bob").await;
    alice.ok("~sub", json!({"topic": "acked/x"})).await;
    bob.ok("publish", json!({"topic": "acked/x", "data": {"n": 1}})).await;
    let (m, id) = first(&mut alice, "the acked delivery", |m| is_acked_msg(m, "acked/x")).await;
    assert_eq!(m[1]["data"], json!({"n": 1}));
    assert!(m[1]["seq"].is_u64(), "seq: {m}");
    let copies = alice.collect_for(RESEND_WINDOW, |m| is_acked_msg(m, "acked/x")).await;
    assert_eq!(copies.len(), 5, "resends of delivery {id} (max_resends 5): {copies:?}");
    for c in &copies {
        assert_eq!(c, &m, "a resend is the same message with the same id");
    }
    // Still alive.
    alice.sync().await;
}

#[tokio::test]
async fn ack_stops_the_resends() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut bob = Client::user(&fx, "bob").await;
    alice.ok("~sub", json!({"topic": "acked/y"})).await;
    bob.ok("publish", json!({"topic": "acked/y", "data": "once"})).await;
    let (_, id) = first(&mut alice, "the acked delivery", |m| is_acked_msg(m, "acked/y")).await;
    ack(&mut alice, id, |m| is_acked_msg(m, "acked/y")).await;
    let copies = alice.collect_for(AFTER_ACK, |m| is_acked_msg(m, "acked/y")).await;
    assert!(copies.is_empty(), "resent after the ack: {copies:?}");
}

#[tokio::test]
async fn ack_after_a_resend_stops_further_resends() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut bob = Client::user(&fx, "bob").await;
    alice.ok("~sub", json!({"topic": "acked/z"})).await;
    bob.ok("publish", json!({"topic": "acked/z", "data": 2})).await;
    let (m1, id) = first(&mut alice, "the acked delivery", |m| is_acked_msg(m, "acked/z")).await;
    let m2 = alice.wait_for("the first resend", |m| is_acked_msg(m, "acked/z")).await;
    assert_eq!(m2, m1, "the resend is identical");
    ack(&mut alice, id, |m| is_acked_msg(m, "acked/z")).await;
    let copies = alice.collect_for(AFTER_ACK, |m| is_acked_msg(m, "acked/z")).await;
    assert!(copies.is_empty(), "resent after the ack: {copies:?}");
}

#[tokio::test]
async fn acks_are_per_connection() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut carol = Client::user(&fx, "carol").await;
    let mut bob = Client::user(&fx, "bob").await;
    alice.ok("~sub", json!({"topic": "acked/both"})).await;
    carol.ok("~sub", json!({"topic": "acked/both"})).await;
    bob.ok("publish", json!({"topic": "acked/both", "data": null})).await;
    let (_, id) = first(&mut alice, "alice's delivery", |m| is_acked_msg(m, "acked/both")).await;
    ack(&mut alice, id, |m| is_acked_msg(m, "acked/both")).await;
    let (_, _) = first(&mut carol, "carol's delivery", |m| is_acked_msg(m, "acked/both")).await;
    let carol_copies = carol.collect_for(RESEND_WINDOW, |m| is_acked_msg(m, "acked/both")).await;
    let alice_copies = alice.collect_for(Duration::ZERO, |m| is_acked_msg(m, "acked/both")).await;
    assert_eq!(carol_copies.len(), 5, "carol never acked: {carol_copies:?}");
    assert!(alice_copies.is_empty(), "alice acked: {alice_copies:?}");
}

#[tokio::test]
async fn distinct_deliveries_have_distinct_ids() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut bob = Client::user(&fx, "bob").await;
    alice.ok("~sub", json!({"topic": "acked/ids"})).await;
    bob.ok("publish", json!({"topic": "acked/ids", "data": 1})).await;
    let (_, id1) =
        first(&mut alice, "delivery 1", |m| is_acked_msg(m, "acked/ids") && m[1]["data"] == 1).await;
    alice.send(&json!(["~ok", null, id1])).await;
    bob.ok("publish", json!({"topic": "acked/ids", "data": 2})).await;
    let (_, id2) =
        first(&mut alice, "delivery 2", |m| is_acked_msg(m, "acked/ids") && m[1]["data"] == 2).await;
    alice.send(&json!(["~ok", null, id2])).await;
    assert_ne!(id1, id2);
}

#[tokio::test]
async fn ack_me_direct_send_is_resent_until_acked() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let req = alice.request("ack-me", json!({"type": "note", "payload": {"a": 1}})).await;
    let (m, id) = first(&mut alice, "the acked direct send", |m| ty(m) == "note").await;
    assert_eq!(m, json!(["note", {"a": 1}, id]));
    let copies = alice.collect_for(RESEND_WINDOW, |m| ty(m) == "note").await;
    assert_eq!(copies.len(), 5, "resends of the unacked direct send: {copies:?}");
    for c in &copies {
        assert_eq!(c, &m);
    }
    // Exactly one reply to the ack-me request itself.
    alice.reply(req).await;
    alice.sync().await;
    alice.expect_none("a second ack-me reply", QUIET, |m| is_reply(m, req)).await;
}

#[tokio::test]
async fn ack_me_acked_at_once_is_delivered_once() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let req = alice.request("ack-me", json!({"type": "memo", "payload": "x"})).await;
    let (m, id) = first(&mut alice, "the acked direct send", |m| ty(m) == "memo").await;
    assert_eq!(m, json!(["memo", "x", id]));
    ack(&mut alice, id, |m| ty(m) == "memo").await;
    let copies = alice.collect_for(AFTER_ACK, |m| ty(m) == "memo").await;
    assert!(copies.is_empty(), "resent after the ack: {copies:?}");
    alice.reply(req).await;
}
