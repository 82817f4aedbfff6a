//! Conformance: direct messages `~dm` (protocol.md §6).
//!
//! Readings of protocol.md used here:
//! - The delivery is exactly `["~dm", {"from": {"conn", "user", "alias"}, "data": D}]` to the
//!   target connection only; the sender's `~dm` reply is `~ok` (payload not specified).
//! - "only when both sides are available (else `UNAVAILABLE`)": the sender unavailable, or
//!   the target unavailable → `UNAVAILABLE`, nothing delivered.
//! - "unknown target `NOT_FOUND`": a conn that never existed, an alias nobody has (including
//!   an alias given up with `~status`).
//! - A `~dm` payload without `to` is `BAD_REQUEST`. A target that disconnected (known once,
//!   gone now) is not tested: "offline" (UNAVAILABLE) and "unknown" (NOT_FOUND) both fit.

mod common;

use common::*;
use serde_json::{Value, json};

fn from_of(c: &Client, alias: &str) -> Value {
    json!({"conn": c.conn, "user": c.user, "alias": alias})
}

async fn expect_no_dm(c: &mut Client) {
    c.sync().await;
    c.expect_none("~dm", QUIET, |m| ty(m) == "~dm").await;
}

#[tokio::test]
async fn dm_by_conn() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut bob = Client::user(&fx, "bob").await;
    let mut bob2 = Client::user(&fx, "bob").await;
    alice.ok("~dm", json!({"to": {"conn": bob.conn}, "data": {"text": "hi bob"}})).await;
    let m = bob.wait_type("~dm").await;
    assert_eq!(m, json!(["~dm", {"from": from_of(&alice, "alice"), "data": {"text": "hi bob"}}]));
    // Only that connection, not the user's other one, not the sender.
    expect_no_dm(&mut bob2).await;
    expect_no_dm(&mut alice).await;
}

#[tokio::test]
async fn dm_by_alias() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut bob = Client::user(&fx, "bob").await;
    alice.ok("~dm", json!({"to": {"alias": "bob"}, "data": [1, 2, 3]})).await;
    let m = bob.wait_type("~dm").await;
    assert_eq!(m, json!(["~dm", {"from": from_of(&alice, "alice"), "data": [1, 2, 3]}]));
    // And back, by alias.
    bob.ok("~dm", json!({"to": {"alias": "alice"}, "data": null})).await;
    let m = alice.wait_type("~dm").await;
    assert_eq!(m, json!(["~dm", {"from": from_of(&bob, "bob"), "data": null}]));
}

#[tokio::test]
async fn from_carries_the_current_alias() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut bob = Client::user(&fx, "bob").await;
    alice.ok("~status", json!({"alias": "ally"})).await;
    alice.ok("~dm", json!({"to": {"conn": bob.conn}, "data": "x"})).await;
    let m = bob.wait_type("~dm").await;
    assert_eq!(m, json!(["~dm", {"from": from_of(&alice, "ally"), "data": "x"}]));
}

#[tokio::test]
async fn renamed_alias_is_found_and_the_old_one_is_not() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut bob = Client::user(&fx, "bob").await;
    bob.ok("~status", json!({"alias": "bobby"})).await;
    alice.ok("~dm", json!({"to": {"alias": "bobby"}, "data": 1})).await;
    assert_eq!(bob.wait_type("~dm").await[1]["data"], 1);
    alice.err_code("~dm", json!({"to": {"alias": "bob"}, "data": 2}), "NOT_FOUND").await;
    expect_no_dm(&mut bob).await;
}

#[tokio::test]
async fn unavailable_target_or_sender_is_unavailable() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut bob = Client::user(&fx, "bob").await;

    bob.ok("~status", json!({"available": false})).await;
    alice.err_code("~dm", json!({"to": {"conn": bob.conn}, "data": 1}), "UNAVAILABLE").await;
    expect_no_dm(&mut bob).await;
    bob.ok("~status", json!({"available": true})).await;

    alice.ok("~status", json!({"available": false})).await;
    alice.err_code("~dm", json!({"to": {"conn": bob.conn}, "data": 2}), "UNAVAILABLE").await;
    expect_no_dm(&mut bob).await;

    alice.ok("~status", json!({"available": true})).await;
    alice.ok("~dm", json!({"to": {"conn": bob.conn}, "data": 3})).await;
    assert_eq!(bob.wait_type("~dm").await[1]["data"], 3);
}

#[tokio::test]
async fn unknown_target_is_not_found() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    alice.err_code("~dm", json!({"to": {"conn": "no-such-conn"}, "data": 1}), "NOT_FOUND").await;
    alice.err_code("~dm", json!({"to": {"alias": "nobody"}, "data": 1}), "NOT_FOUND").await;
}

#[tokio::test]
async fn dm_without_target_is_bad_request() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    alice.err_code("~dm", json!({"data": 1}), "BAD_REQUEST").await;
    alice.err_code("~dm", json!({"to": "bob", "data": 1}), "BAD_REQUEST").await;
}
