//! Faults in a cluster, as clients see them: two fixture processes on one real `redis-server`;
//! Redis restarted mid-stream (losing everything), a node killed without a goodbye.
//!
//! What must hold (docs/cluster.md): nodes reconnect and resubscribe by themselves; a
//! publication that cannot reach Redis is an error to its publisher, never a silent loss; a
//! subscriber whose stream may have a gap learns it from recovery (`recovered: false`); a dead
//! node's connections leave presence, the directory and the user registry.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// Publishes on `chat/r` until it succeeds (Redis coming back); returns the reply and how many
/// attempts failed, each with `UNAVAILABLE`.
async fn publish_until_ok(c: &mut Client, data: Value) -> (Value, usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut failed = 0;
    loop {
        match c.call("~pub", json!({"topic": "chat/r", "data": data})).await {
            Ok(r) => return (r, failed),
            Err(e) => {
                assert_eq!(e["code"], "UNAVAILABLE", "a publication Redis cannot take: {e}");
                failed += 1;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "publishing never worked again after the restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A client identified as `user` on `fx` right after a Redis restart: identification may answer
/// UNAVAILABLE until the node has written its registrations back, and a client retries, as after
/// any UNAVAILABLE.
async fn user_after_restart(fx: &Fixture, user: &str) -> Client {
    let mut client = Client::connect(fx).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match client.hello(json!({"identity": password_identity(user)})).await {
            Ok(welcome) => {
                client.conn = welcome["conn"].as_str().expect("a conn in the welcome").to_owned();
                client.user = user.to_owned();
                return client;
            }
            Err(e) => {
                assert_eq!(e["code"], "UNAVAILABLE", "{e}");
                assert!(tokio::time::Instant::now() < deadline, "identification never worked again: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

#[tokio::test]
async fn redis_restart_mid_stream() {
    let mut redis = Redis::start();
    let fa = Fixture::start_with(&["--redis", &redis.url()]);
    let fb = Fixture::start_with(&["--redis", &redis.url()]);
    let mut alice = Client::user(&fa, "alice").await;
    let mut bob = Client::user(&fb, "bob").await;
    // Publishes from node A without a subscription: a subscriber may be told to
    // recover (closed with 4000) after the restart, pat never is.
    let mut pat = Client::user(&fa, "pat").await;
    let sub = bob.ok("~sub", json!({"topic": "chat/r"})).await;
    alice.ok("~sub", json!({"topic": "chat/r"})).await;
    let epoch = sub["epoch"].as_str().expect("epoch").to_owned();
    for n in 1..=3 {
        let r = alice.ok("~pub", json!({"topic": "chat/r", "data": n})).await;
        assert_eq!(r["seq"], n);
    }
    for n in 1..=3 {
        assert_eq!(bob.wait_type("~msg").await[1]["seq"], n);
    }

    // Redis is gone: a publication is refused (UNAVAILABLE), or, when the command may have
    // reached Redis before it died, its outcome is unknown (TIMEOUT); never a success.
    redis.stop();
    let e = pat.err("~pub", json!({"topic": "chat/r", "data": "lost?"})).await;
    assert!(e["code"] == "UNAVAILABLE" || e["code"] == "TIMEOUT", "{e}");

    // Redis is back, empty: the nodes reconnect and resubscribe by themselves, and the topic
    // starts a new stream.
    redis.restart();
    let (r, _) = publish_until_ok(&mut pat, json!("after")).await;
    assert_eq!(r["seq"], 1, "a new stream starts at 1: {r}");
    // Each subscriber is told that the old stream's end may be lost (protocol §5): by the new
    // epoch on its next delivery, or, when its node checked the topic before that publication
    // (the old stream's end cannot be checked any more), closed with 4000.
    for (who, client, node) in [("alice", &mut alice, &fa), ("bob", &mut bob, &fb)] {
        let m = client
            .wait_for_within("the new stream, or a close 4000", Duration::from_secs(15), |m| {
                (ty(m) == "~msg" && m[1]["data"] != "lost?") || ty(m) == "~bye"
            })
            .await;
        if ty(&m) == "~msg" {
            assert_eq!((&m[1]["data"], &m[1]["seq"]), (&json!("after"), &json!(1)), "{who}: {m}");
            let new = m[1]["epoch"].as_str().unwrap_or_else(|| panic!("{who}: a new epoch is named: {m}"));
            assert_ne!(new, epoch, "{who}: {m}");
            client.expect_none("the refused publication", QUIET, |m| m[1]["data"] == "lost?").await;
        } else {
            assert_eq!(m[1]["code"], 4000, "{who}: {m}");
            let mut back = user_after_restart(node, who).await;
            let r = back.ok("~sub", json!({"topic": "chat/r", "since": {"epoch": epoch, "seq": 3}})).await;
            assert_eq!(r["recovered"], false, "{who}: {r}");
            assert_ne!(r["epoch"], epoch.as_str(), "{who}: {r}");
            *client = back;
        }
    }

    // A client that comes back with its old position learns that the gap cannot be filled.
    let mut carol = user_after_restart(&fb, "carol").await;
    let r = carol.ok("~sub", json!({"topic": "chat/r", "since": {"epoch": epoch, "seq": 3}})).await;
    assert_eq!(r["recovered"], false, "{r}");
    assert_ne!(r["epoch"], epoch.as_str(), "{r}");

    // Presence and users were written back by their owners: bob is still listed on node A.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let who = alice.ok("~who", json!({"topic": "chat/r"})).await;
        let listed =
            who["peers"].as_array().is_some_and(|p| p.iter().any(|p| p["conn"] == bob.conn.as_str()));
        let delivered = alice.ok("tell", json!({"user": "bob", "type": "note", "payload": 1})).await;
        if listed && delivered["delivered"] == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "bob was not listed again: {who} {delivered}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_killed_node_leaves_no_trace_and_its_clients_recover_elsewhere() {
    let redis = Redis::start();
    let mut fa = Fixture::start_with(&["--redis", &redis.url()]);
    let fb = Fixture::start_with(&["--redis", &redis.url()]);
    let mut alice = Client::user(&fa, "alice").await;
    let mut bob = Client::user(&fb, "bob").await;
    let sub = alice.ok("~sub", json!({"topic": "chat/k"})).await;
    bob.ok("~sub", json!({"topic": "chat/k"})).await;
    let r = bob.ok("~pub", json!({"topic": "chat/k", "data": 1, "echo": true})).await;
    assert_eq!(r["seq"], 1);
    assert_eq!(alice.wait_type("~msg").await[1]["seq"], 1);
    let alice_conn = alice.conn.clone();

    // Node A dies: alice's socket just ends (no close frame).
    fa.kill();
    match alice.try_close_within(Duration::from_secs(5)).await {
        Err(e) => assert!(e.contains("without a close frame"), "{e}"),
        Ok(close) => panic!("a dead server sends no close frame, got {close:?}"),
    }

    // Meanwhile the stream goes on on node B.
    bob.ok("~pub", json!({"topic": "chat/k", "data": 2})).await;
    bob.ok("~pub", json!({"topic": "chat/k", "data": 3})).await;

    // Alice reconnects to node B and recovers everything she missed, in order.
    let mut alice = Client::user(&fb, "alice").await;
    let r = alice.ok("~sub", json!({"topic": "chat/k", "since": {"epoch": sub["epoch"], "seq": 1}})).await;
    assert_eq!(r["recovered"], true, "{r}");
    assert_eq!(alice.wait_type("~msg").await[1]["seq"], 2);
    assert_eq!(alice.wait_type("~msg").await[1]["seq"], 3);

    // The dead node's connection leaves presence and the user registry once its heartbeat
    // expires (15 s).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(25);
    loop {
        let who = bob.ok("~who", json!({"topic": "chat/k"})).await;
        let conns: Vec<&str> =
            who["peers"].as_array().expect("peers").iter().filter_map(|p| p["conn"].as_str()).collect();
        let told = bob.ok("tell", json!({"user": "alice", "type": "note", "payload": 1})).await;
        if !conns.contains(&alice_conn.as_str()) && told["delivered"] == 1 {
            assert!(conns.contains(&alice.conn.as_str()), "alice's new connection is listed: {who}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the dead connection stayed: {who} {told}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
