//! Conformance: public profiles, the directory, `~who`, `~peer`, `~presence`, `~status`
//! (protocol.md §6, appendix A: alias U, public `{"since": "fixture"}`, presence on for
//! `chat/*`).
//!
//! Readings of protocol.md used here:
//! - A PEER is exactly `{"conn", "user", "alias", "available", "public"}`; a `~peer`
//!   notification is a PEER plus `online`.
//! - The directory (`~who` without topic) includes the asking connection itself.
//! - `~who` with a topic for a non-subscriber, or for a topic without presence, is refused;
//!   the code is not specified, so only an error of the standard shape is required.
//! - `~status` changes are directory changes, notified with `~peer` to the *other*
//!   available aliased connections; whether the changer gets one about itself is not
//!   specified and not checked. When a connection becomes unavailable its `~peer` says
//!   `available: false`; its `online` value then is not specified (only checked to be a bool).
//!   A closed connection's `~peer` says `online: false`.
//! - The `~status` reply payload is not specified; only `~ok` is required.
//! - `~presence` joins/leaves are reported one change per notification here because each
//!   change is awaited before the next one is made. Whether a subscriber hears of its own
//!   join is not specified; only notifications about the other connection are checked.

mod common;

use common::*;
use serde_json::{Value, json};

/// The `peers` of a `~who` reply, sorted by conn, each checked to be a PEER.
fn peers(r: &Value) -> Vec<Value> {
    assert_keys(r, &["peers"]);
    let mut ps = r["peers"].as_array().unwrap_or_else(|| panic!("peers is an array: {r}")).clone();
    for p in &ps {
        assert_keys(p, &["conn", "user", "alias", "available", "public"]);
    }
    ps.sort_by(|a, b| a["conn"].as_str().cmp(&b["conn"].as_str()));
    ps
}

fn sorted(mut ps: Vec<Value>) -> Vec<Value> {
    ps.sort_by(|a, b| a["conn"].as_str().cmp(&b["conn"].as_str()));
    ps
}

fn peer_of(c: &Client) -> Value {
    peer(&c.conn, &c.user)
}

async fn directory(c: &mut Client) -> Vec<Value> {
    let r = c.ok("~who", json!({})).await;
    peers(&r)
}

/// Waits for the `~peer` notification about `conn` matching `pred`.
async fn peer_note(c: &mut Client, conn: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let m = c
        .wait_for(&format!("a ~peer about {conn}"), |m| {
            ty(m) == "~peer" && m[1]["conn"] == conn && pred(&m[1])
        })
        .await;
    assert_eq!(m.as_array().map(Vec::len), Some(2), "a notification has no id: {m}");
    assert_keys(&m[1], &["conn", "user", "alias", "available", "public", "online"]);
    m[1].clone()
}

fn with_online(mut p: Value, online: bool) -> Value {
    p["online"] = json!(online);
    p
}

#[tokio::test]
async fn who_with_topic_lists_the_subscribers() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut bob = Client::user(&fx, "bob").await;
    let _carol = Client::user(&fx, "carol").await;
    alice.ok("~sub", json!({"topic": "chat/p"})).await;
    bob.ok("~sub", json!({"topic": "chat/p"})).await;
    let r = alice.ok("~who", json!({"topic": "chat/p"})).await;
    assert_eq!(peers(&r), sorted(vec![peer_of(&alice), peer_of(&bob)]));
    let r = bob.ok("~who", json!({"topic": "chat/p"})).await;
    assert_eq!(peers(&r), sorted(vec![peer_of(&alice), peer_of(&bob)]));
}

#[tokio::test]
async fn who_with_topic_is_for_subscribers_of_presence_topics_only() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut carol = Client::user(&fx, "carol").await;
    alice.ok("~sub", json!({"topic": "chat/p"})).await;
    let e = carol.err("~who", json!({"topic": "chat/p"})).await;
    assert_error_shape(&e);
    alice.ok("~sub", json!({"topic": "todo/l/i"})).await;
    let e = alice.err("~who", json!({"topic": "todo/l/i"})).await;
    assert_error_shape(&e);
}

#[tokio::test]
async fn presence_joins_and_leaves() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut bob = Client::user(&fx, "bob").await;
    alice.ok("~sub", json!({"topic": "chat/pres"})).await;
    // Only notifications that mention bob: whether alice hears of her own join is not
    // specified.
    let b = bob.conn.clone();
    let is_pres = |m: &Value| {
        let mentions = |k: &str| m[1][k].as_array().is_some_and(|ps| ps.iter().any(|p| p["conn"] == b));
        ty(m) == "~presence" && m[1]["topic"] == "chat/pres" && (mentions("joins") || mentions("leaves"))
    };

    bob.ok("~sub", json!({"topic": "chat/pres"})).await;
    let m = alice.wait_for("bob's join", is_pres).await;
    assert_eq!(m, json!(["~presence", {"topic": "chat/pres", "joins": [peer_of(&bob)], "leaves": []}]));

    bob.ok("~unsub", json!({"topic": "chat/pres"})).await;
    let m = alice.wait_for("bob's leave (unsub)", is_pres).await;
    assert_eq!(m, json!(["~presence", {"topic": "chat/pres", "joins": [], "leaves": [peer_of(&bob)]}]));

    bob.ok("~sub", json!({"topic": "chat/pres"})).await;
    let m = alice.wait_for("bob's second join", is_pres).await;
    assert_eq!(m[1]["joins"], json!([peer_of(&bob)]));

    let bob_peer = peer_of(&bob);
    bob.close().await;
    let m = alice.wait_for("bob's leave (disconnect)", is_pres).await;
    assert_eq!(m, json!(["~presence", {"topic": "chat/pres", "joins": [], "leaves": [bob_peer]}]));
    let r = alice.ok("~who", json!({"topic": "chat/pres"})).await;
    assert_eq!(peers(&r), vec![peer_of(&alice)]);
}

#[tokio::test]
async fn no_presence_on_topics_without_it() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut bob = Client::user(&fx, "bob").await;
    alice.ok("~sub", json!({"topic": "todo/l/i"})).await;
    bob.ok("~sub", json!({"topic": "todo/l/i"})).await;
    alice.sync().await;
    alice.expect_none("~presence", QUIET, |m| ty(m) == "~presence").await;
}

#[tokio::test]
async fn directory_lists_available_aliased_connections() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut bob = Client::user(&fx, "bob").await;
    let _anon = Client::connect(&fx).await;
    assert_eq!(directory(&mut alice).await, sorted(vec![peer_of(&alice), peer_of(&bob)]));

    bob.ok("~status", json!({"available": false})).await;
    assert_eq!(directory(&mut alice).await, vec![peer_of(&alice)]);
    bob.ok("~status", json!({"available": true})).await;
    assert_eq!(directory(&mut alice).await, sorted(vec![peer_of(&alice), peer_of(&bob)]));

    bob.ok("~status", json!({"alias": null})).await;
    assert_eq!(directory(&mut alice).await, vec![peer_of(&alice)]);
    bob.ok("~status", json!({"alias": "bobby"})).await;
    let mut bobby = peer_of(&bob);
    bobby["alias"] = json!("bobby");
    assert_eq!(directory(&mut alice).await, sorted(vec![peer_of(&alice), bobby]));
}

#[tokio::test]
async fn peer_notifications_follow_directory_changes() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut bob = Client::user(&fx, "bob").await;
    let b = bob.conn.clone();

    let n = peer_note(&mut alice, &b, |p| p["online"] == true).await;
    assert_eq!(n, with_online(peer_of(&bob), true), "bob came online");

    bob.ok("~status", json!({"available": false})).await;
    let n = peer_note(&mut alice, &b, |p| p["available"] == false).await;
    assert_eq!(n["user"], "bob");
    assert_eq!(n["alias"], "bob");
    assert_eq!(n["public"], json!({"since": "fixture"}));
    assert!(n["online"].is_boolean(), "online: {n}");

    bob.ok("~status", json!({"available": true})).await;
    let n = peer_note(&mut alice, &b, |p| p["available"] == true).await;
    assert_eq!(n, with_online(peer_of(&bob), true), "bob available again");

    bob.ok("~status", json!({"alias": "bobby"})).await;
    let n = peer_note(&mut alice, &b, |p| p["alias"] == "bobby").await;
    let mut want = with_online(peer_of(&bob), true);
    want["alias"] = json!("bobby");
    assert_eq!(n, want, "alias change");

    bob.close().await;
    let n = peer_note(&mut alice, &b, |p| p["online"] == false).await;
    assert_eq!(n["user"], "bob");
    assert_eq!(n["conn"], b);
}

#[tokio::test]
async fn unavailable_or_unaliased_connections_get_no_peer_notifications() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut dave = Client::user(&fx, "dave").await;
    let mut bob = Client::user(&fx, "bob").await;
    alice.ok("~status", json!({"available": false})).await;
    dave.ok("~status", json!({"alias": null})).await;
    alice.sync().await;
    dave.sync().await;
    let carol = Client::user(&fx, "carol").await;
    // bob (available, aliased) hears about carol ...
    peer_note(&mut bob, &carol.conn, |p| p["online"] == true).await;
    // ... alice and dave do not.
    let cc = carol.conn.clone();
    for c in [&mut alice, &mut dave] {
        c.sync().await;
        c.expect_none("~peer about carol", QUIET, |m| ty(m) == "~peer" && m[1]["conn"] == cc).await;
    }
}
