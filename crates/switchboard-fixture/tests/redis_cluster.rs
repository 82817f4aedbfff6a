//! Two fixtures on a real 3-master Redis Cluster (`--redis redis+cluster://…`, sharded pub/sub):
//! a publication on one node reaches a subscriber on the other, and a message to a user reaches
//! their devices on both nodes. The cluster is `redis-server --cluster-enabled yes` ×3 (Debian
//! package `redis-server`, with `redis-cli`), started by each test on free ports.

mod common;

use common::*;
use serde_json::json;

/// Two fixtures on one Redis Cluster (bound as `let (_redis, a, b)`, the cluster is dropped last).
fn cluster() -> (RedisCluster, Fixture, Fixture) {
    let redis = RedisCluster::start();
    let a = Fixture::start_with(&["--redis", &redis.url()]);
    let b = Fixture::start_with(&["--redis", &redis.url()]);
    (redis, a, b)
}

#[tokio::test]
async fn a_publication_on_one_node_reaches_a_subscriber_on_the_other() {
    let (_redis, fa, fb) = cluster();
    let mut alice = Client::user(&fa, "alice").await;
    let mut bob = Client::user(&fb, "bob").await;
    let mut carol = Client::user(&fa, "carol").await;
    let ra = alice.ok("~sub", json!({"topic": "chat/x"})).await;
    let rb = bob.ok("~sub", json!({"topic": "chat/x"})).await;
    assert_eq!(ra["epoch"], rb["epoch"], "one history for the cluster");
    let mut published = Vec::new();
    for i in 0..10 {
        let r = carol.ok("~pub", json!({"topic": "chat/x", "data": {"i": i}})).await;
        published.push(r["seq"].as_u64().expect("seq"));
    }
    for c in [&mut alice, &mut bob] {
        for (i, seq) in published.iter().enumerate() {
            let m =
                c.wait_for("a delivery on chat/x", |m| ty(m) == "~msg" && m[1]["topic"] == "chat/x").await;
            assert_eq!(m[1]["seq"], *seq, "in order, same seq on both nodes: {m}");
            assert_eq!(m[1]["data"], json!({"i": i}));
        }
    }
    // And the other way round, on topics spread over the cluster's masters.
    for t in 0..6 {
        let topic = format!("chat/room{t}");
        alice.ok("~sub", json!({"topic": topic})).await;
        bob.ok("~pub", json!({"topic": topic, "data": t})).await;
        let m = alice.wait_for("a delivery from node B", |m| ty(m) == "~msg" && m[1]["topic"] == topic).await;
        assert_eq!(m[1]["data"], t);
    }
}

#[tokio::test]
async fn a_message_to_a_user_reaches_their_devices_on_both_nodes() {
    let (_redis, fa, fb) = cluster();
    let mut alice_a = Client::user(&fa, "alice").await;
    let mut alice_b = Client::user(&fb, "alice").await;
    let mut bob = Client::user(&fa, "bob").await;
    alice_a.sync().await;
    alice_b.sync().await;
    let r = bob.ok("tell", json!({"user": "alice", "type": "note", "payload": {"n": 1}})).await;
    assert_eq!(r["delivered"], 2, "{r}");
    for c in [&mut alice_a, &mut alice_b] {
        assert_eq!(c.wait_type("note").await, json!(["note", {"n": 1}]));
    }
    let mut carol = Client::user(&fb, "carol").await;
    let r = carol.ok("tell", json!({"user": "alice", "type": "note", "payload": {"n": 2}})).await;
    assert_eq!(r["delivered"], 2, "{r}");
    for c in [&mut alice_a, &mut alice_b] {
        assert_eq!(c.wait_type("note").await, json!(["note", {"n": 2}]));
    }
}
