//! Conformance across a cluster (protocol.md appendix A: "With `--redis`, several fixtures form
//! one cluster: everything below holds across them"): two fixture processes on one real
//! `redis-server` (Debian package `redis-server`) that each test starts on a free port.
//!
//! Readings of protocol.md used here:
//! - `tell`'s `delivered` counts connections cluster-wide; `conn_per_user` is cluster-wide, and
//!   the oldest connection (by identification order, whatever its node) is the one evicted.
//! - A publication reaches subscribers on every node with the same `seq`, in order; recovery
//!   with `since` works on whichever node the client comes back to.
//! - Topic presence, the directory and `~dm` by alias see connections of every node.
//! - Server requests to a client on another node (`ask` relayed) are not in appendix A: not
//!   tested here.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// Two fixtures on one Redis (bound as `let (_redis, a, b)`, the Redis is dropped last).
fn cluster() -> (Redis, Fixture, Fixture) {
    let redis = Redis::start();
    let a = Fixture::start_with(&["--redis", &redis.url()]);
    let b = Fixture::start_with(&["--redis", &redis.url()]);
    (redis, a, b)
}

async fn delivered_to(sender: &mut Client, user: &str) -> u64 {
    let r = sender.ok("tell", json!({"user": user, "type": "note", "payload": {"n": 1}})).await;
    r["delivered"].as_u64().unwrap_or_else(|| panic!("tell reply {r}"))
}

/// The conns of a `~who` reply, sorted.
fn conns(r: &Value) -> Vec<String> {
    let mut v: Vec<String> = r["peers"]
        .as_array()
        .unwrap_or_else(|| panic!("~who reply {r}"))
        .iter()
        .map(|p| p["conn"].as_str().expect("conn").to_owned())
        .collect();
    v.sort();
    v
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn tell_and_shout_reach_connections_on_both_nodes() {
    let (_redis, fa, fb) = cluster();
    let mut alice_a = Client::user(&fa, "alice").await;
    let mut alice_b = Client::user(&fb, "alice").await;
    let mut bob = Client::user(&fa, "bob").await;
    alice_a.sync().await;
    alice_b.sync().await;
    assert_eq!(delivered_to(&mut bob, "alice").await, 2);
    for c in [&mut alice_a, &mut alice_b] {
        let m = c.wait_type("note").await;
        assert_eq!(m, json!(["note", {"n": 1}]));
    }
    // From the other node too.
    let mut carol = Client::user(&fb, "carol").await;
    assert_eq!(delivered_to(&mut carol, "alice").await, 2);
    assert_eq!(delivered_to(&mut carol, "nobody").await, 0);
    // `shout` reaches every identified connection but the sender, on both nodes.
    carol.ok("shout", json!({"type": "hey", "payload": "all"})).await;
    for c in [&mut alice_a, &mut alice_b, &mut bob] {
        let m = c.wait_type("hey").await;
        assert_eq!(m, json!(["hey", "all"]));
    }
    carol.expect_none("its own shout", QUIET, |m| ty(m) == "hey").await;
}

#[tokio::test]
async fn conn_per_user_is_enforced_cluster_wide() {
    let (_redis, fa, fb) = cluster();
    let mut a1 = Client::user(&fa, "alice").await;
    a1.sync().await;
    let mut a2 = Client::user(&fb, "alice").await;
    a2.sync().await;
    let mut a3 = Client::user(&fa, "alice").await;
    a3.sync().await;
    // The fourth, on node B, evicts the oldest, on node A.
    let mut a4 = Client::user(&fb, "alice").await;
    a1.expect_close_code(4502).await;
    for c in [&mut a2, &mut a3, &mut a4] {
        assert_eq!(c.ok("echo", json!("alive")).await, json!("alive"));
    }
    // The fifth, on node A, evicts the next oldest, on node B.
    let mut a5 = Client::user(&fa, "alice").await;
    a2.expect_close_code(4502).await;
    for c in [&mut a3, &mut a4, &mut a5] {
        c.sync().await;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while delivered_to(&mut a3, "alice").await != 3 {
        assert!(tokio::time::Instant::now() < deadline, "alice should have 3 connections");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn admin_kick_closes_on_both_nodes() {
    let (_redis, fa, fb) = cluster();
    let mut eve_a = Client::user(&fa, "eve").await;
    let mut eve_b = Client::user(&fb, "eve").await;
    eve_a.sync().await;
    eve_b.sync().await;
    let mut root = Client::connect(&fa).await;
    root.hello(json!({"ns": "admin", "identity": {"user": "root", "password": "pw-root"}}))
        .await
        .unwrap_or_else(|e| panic!("root refused: {e}"));
    root.ok("kick", json!({"user": "eve"})).await;
    eve_a.expect_close_code(4503).await;
    eve_b.expect_close_code(4503).await;
    // A kick is not a ban, on either node.
    let mut again = Client::user(&fb, "eve").await;
    again.sync().await;
}

#[tokio::test]
async fn a_publication_reaches_the_other_node_in_order_with_the_same_seq() {
    let (_redis, fa, fb) = cluster();
    let mut alice = Client::user(&fa, "alice").await;
    let mut bob = Client::user(&fb, "bob").await;
    let mut carol = Client::user(&fa, "carol").await;
    let ra = alice.ok("~sub", json!({"topic": "chat/x"})).await;
    let rb = bob.ok("~sub", json!({"topic": "chat/x"})).await;
    assert_eq!(ra["epoch"], rb["epoch"], "one history for the cluster");
    let mut published = Vec::new();
    for i in 0..20 {
        let r = carol.ok("~pub", json!({"topic": "chat/x", "data": {"i": i}})).await;
        published.push(r["seq"].as_u64().expect("seq"));
    }
    let start = published[0];
    assert_eq!(published, (start..start + 20).collect::<Vec<_>>(), "consecutive seqs");
    for c in [&mut alice, &mut bob] {
        for (i, seq) in published.iter().enumerate() {
            let m =
                c.wait_for("a delivery on chat/x", |m| ty(m) == "~msg" && m[1]["topic"] == "chat/x").await;
            assert_eq!(m[1]["seq"], *seq, "in order, same seq on both nodes: {m}");
            assert_eq!(m[1]["data"], json!({"i": i}));
        }
    }
    // Publishing from node B, and server-side publishing (`publish`) on node A, share one order.
    let r = bob.ok("~pub", json!({"topic": "chat/x", "data": "from-b"})).await;
    assert_eq!(r["seq"], start + 20);
    let r = carol.ok("publish", json!({"topic": "chat/x", "data": "server"})).await;
    assert_eq!(r["seq"], start + 21);
    let on_x = |m: &Value| ty(m) == "~msg" && m[1]["topic"] == "chat/x";
    let m = alice.wait_for("from-b", on_x).await;
    assert_eq!((m[1]["seq"].clone(), m[1]["data"].clone()), (json!(start + 20), json!("from-b")));
    let m = alice.wait_for("server", on_x).await;
    assert_eq!((m[1]["seq"].clone(), m[1]["data"].clone()), (json!(start + 21), json!("server")));
    let m = bob.wait_for("server", on_x).await;
    assert_eq!((m[1]["seq"].clone(), m[1]["data"].clone()), (json!(start + 21), json!("server")));
}

#[tokio::test]
async fn recovery_with_since_works_on_the_other_node() {
    let (_redis, fa, fb) = cluster();
    let mut alice = Client::user(&fa, "alice").await;
    let mut bob = Client::user(&fb, "bob").await;
    let r = alice.ok("~sub", json!({"topic": "chat/rec"})).await;
    let (epoch, s0) = (r["epoch"].clone(), r["seq"].as_u64().expect("seq"));
    alice.close().await;
    for i in 0..3 {
        bob.ok("~pub", json!({"topic": "chat/rec", "data": {"i": i}})).await;
    }
    // alice comes back on node B.
    let mut alice = Client::user(&fb, "alice").await;
    let r = alice.ok("~sub", json!({"topic": "chat/rec", "since": {"epoch": epoch, "seq": s0}})).await;
    assert_eq!(r["recovered"], true, "{r}");
    assert_eq!(r["epoch"], epoch);
    assert_eq!(r["seq"], s0 + 3);
    // Then a new one, published on node A.
    let mut carol = Client::user(&fa, "carol").await;
    carol.ok("~pub", json!({"topic": "chat/rec", "data": {"i": 3}})).await;
    for i in 0..4u64 {
        let m = alice
            .wait_for("a delivery on chat/rec", |m| ty(m) == "~msg" && m[1]["topic"] == "chat/rec")
            .await;
        assert_eq!(m[1]["seq"], s0 + 1 + i, "{m}");
        assert_eq!(m[1]["data"], json!({"i": i}));
    }
    // And back on node A, with an unknown epoch: not recovered, the real epoch is told.
    let mut dave = Client::user(&fa, "dave").await;
    let r = dave.ok("~sub", json!({"topic": "chat/rec", "since": {"epoch": "nope", "seq": 1}})).await;
    assert_eq!(r["recovered"], false);
    assert_eq!(r["epoch"], epoch);
    assert_eq!(r["seq"], s0 + 4);
}

#[tokio::test]
async fn topic_presence_and_the_directory_span_both_nodes() {
    let (_redis, fa, fb) = cluster();
    let mut alice = Client::user(&fa, "alice").await;
    alice.ok("~sub", json!({"topic": "chat/p"})).await;
    let mut bob = Client::user(&fb, "bob").await;
    // alice (node A) hears bob (node B) arrive in the directory.
    let m =
        alice.wait_for("~peer about bob", |m| ty(m) == "~peer" && m[1]["conn"] == bob.conn.as_str()).await;
    assert_eq!(m[1]["online"], true);
    assert_eq!(m[1]["alias"], "bob");
    bob.ok("~sub", json!({"topic": "chat/p"})).await;
    let m = alice
        .wait_for("~presence join of bob", |m| {
            ty(m) == "~presence"
                && m[1]["joins"].as_array().is_some_and(|j| j.iter().any(|p| p["user"] == "bob"))
        })
        .await;
    assert_eq!(m[1]["joins"], json!([peer(&bob.conn, "bob")]), "{m}");
    let both = sorted(&[&alice.conn, &bob.conn]);
    for c in [&mut alice, &mut bob] {
        assert_eq!(conns(&c.ok("~who", json!({"topic": "chat/p"})).await), both);
        assert_eq!(conns(&c.ok("~who", json!({})).await), both);
    }
    // bob leaves: his node tells alice's, and the stores forget him.
    let bob_conn = bob.conn.clone();
    bob.close().await;
    let m = alice
        .wait_for("~presence leave of bob", |m| {
            ty(m) == "~presence" && m[1]["leaves"].as_array().is_some_and(|l| !l.is_empty())
        })
        .await;
    assert_eq!(m[1]["leaves"][0]["conn"], bob_conn.as_str());
    let m = alice
        .wait_for("~peer offline of bob", |m| ty(m) == "~peer" && m[1]["conn"] == bob_conn.as_str())
        .await;
    assert_eq!(m[1]["online"], false);
    let mut carol = Client::user(&fb, "carol").await;
    let who = conns(&carol.ok("~who", json!({})).await);
    assert_eq!(who, sorted(&[&alice.conn, &carol.conn]));
    assert_eq!(conns(&alice.ok("~who", json!({"topic": "chat/p"})).await), [alice.conn.clone()]);
}

#[tokio::test]
async fn dm_by_alias_and_by_conn_crosses_nodes() {
    let (_redis, fa, fb) = cluster();
    let mut alice = Client::user(&fa, "alice").await;
    let mut bob = Client::user(&fb, "bob").await;
    bob.sync().await;
    alice.ok("~dm", json!({"to": {"alias": "bob"}, "data": {"text": "hi bob"}})).await;
    let m = bob.wait_type("~dm").await;
    assert_eq!(
        m,
        json!(["~dm", {"from": {"conn": alice.conn, "user": "alice", "alias": "alice"}, "data": {"text": "hi bob"}}])
    );
    bob.ok("~dm", json!({"to": {"conn": alice.conn}, "data": "hi alice"})).await;
    let m = alice.wait_type("~dm").await;
    assert_eq!(m[1]["data"], "hi alice");
    assert_eq!(m[1]["from"]["conn"], bob.conn.as_str());
    alice.err_code("~dm", json!({"to": {"alias": "nobody"}, "data": 1}), "NOT_FOUND").await;
    // Unavailable on node B (so out of the directory): refused from node A as on one node.
    bob.ok("~status", json!({"available": false})).await;
    alice.err_code("~dm", json!({"to": {"conn": bob.conn}, "data": 2}), "UNAVAILABLE").await;
    // By alias too: the alias is known cluster-wide, its owner is unavailable (as on one node).
    alice.err_code("~dm", json!({"to": {"alias": "bob"}, "data": 2}), "UNAVAILABLE").await;
    // A connection id of a node that does not exist, and of one that does but without it.
    alice.err_code("~dm", json!({"to": {"conn": "nonode.1"}, "data": 3}), "NOT_FOUND").await;
    let ghost = format!("{}.fffff", bob.conn.rsplit_once('.').expect("node.n").0);
    alice.err_code("~dm", json!({"to": {"conn": ghost}, "data": 3}), "NOT_FOUND").await;
    bob.expect_none("a refused ~dm", QUIET, |m| ty(m) == "~dm").await;
}

#[tokio::test]
async fn info_adds_up_every_node() {
    let (_redis, fa, fb) = cluster();
    let mut alice = Client::user(&fa, "alice").await;
    let _bob = Client::user(&fb, "bob").await;
    let _alice2 = Client::user(&fb, "alice").await;
    alice.ok("~sub", json!({"topic": "chat/a"})).await;
    let mut root = Client::connect(&fa).await;
    root.hello(json!({"ns": "admin", "identity": {"user": "root", "password": "pw-root"}}))
        .await
        .expect("root accepted");
    let info = root.ok("~info", json!({"detail": true})).await;
    assert_eq!(info["connections"], 4, "{info}");
    assert_eq!(info["users"], 3, "alice counts once: {info}");
    assert_eq!(info["nodes"].as_array().map(Vec::len), Some(2), "{info}");
    assert_eq!(info["unreachable"], json!([]), "{info}");
    let users = info["detail"]["users"].as_array().expect("detail.users");
    let alice_entry = users.iter().find(|u| u["user"] == "alice").expect("alice listed");
    assert_eq!(alice_entry["connections"], 2, "{info}");
    let topics = info["detail"]["topics"].as_array().expect("detail.topics");
    assert!(topics.iter().any(|t| t["topic"] == "chat/a" && t["subscribers"] == 1), "{info}");
}
