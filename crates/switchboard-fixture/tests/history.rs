//! Conformance: `~history`, idempotency keys on `~pub`, and `epoch` on deliveries (protocol.md
//! §5).
//!
//! Readings of protocol.md used here:
//! - `~history` without `since` answers the newest `limit` publications; with `since`, those
//!   after `since.seq`, oldest first, at most `limit` (so a client can page forward with the last
//!   `seq` it got). Both are oldest first.
//! - Topics of the fixture that keep no history are `acked/<x>` and `private/<user>` (appendix A
//!   gives them none): `~history` there is `NOT_FOUND`, but `private/<other user>` and
//!   `group/<g>` are `FORBIDDEN` (authorization first); a topic no rule matches is `FORBIDDEN`
//!   like `~sub`.
//! - A `~pub` whose `key` the topic has already seen answers the first one's `seq` and delivers
//!   nothing again.
//! - A stream that restarts while a subscriber stays connected (its history lost: here, the Redis
//!   that holds it is flushed) is delivered with `"epoch"` on its first publication, with seq 1;
//!   later deliveries of that stream carry no `epoch`.

mod common;

use common::*;
use serde_json::{Value, json};

fn seqs(reply: &Value) -> Vec<u64> {
    reply["publications"]
        .as_array()
        .expect("publications")
        .iter()
        .map(|p| p["seq"].as_u64().unwrap())
        .collect()
}

async fn publish(c: &mut Client, topic: &str, data: Value) -> u64 {
    c.ok("~pub", json!({"topic": topic, "data": data})).await["seq"].as_u64().expect("seq")
}

#[tokio::test]
async fn history_reads_the_newest_or_what_follows_a_position_without_subscribing() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut bob = Client::user(&fx, "bob").await;
    let topic = "chat/history-read";
    let empty = bob.ok("~history", json!({"topic": topic})).await;
    assert_keys(&empty, &["topic", "epoch", "seq", "publications"]);
    assert_eq!((empty["topic"].as_str(), empty["seq"].as_u64()), (Some(topic), Some(0)));
    assert_eq!(empty["publications"], json!([]), "no publication yet: an empty list");
    let sub = bob.ok("~sub", json!({"topic": "chat/elsewhere"})).await;
    assert!(sub["epoch"].is_string());
    let mut published = Vec::new();
    for i in 1..=5 {
        let r = alice.ok("~pub", json!({"topic": topic, "event": "said", "data": {"n": i}})).await;
        published.push(r["seq"].as_u64().unwrap());
    }
    let all = bob.ok("~history", json!({"topic": topic})).await;
    assert_eq!(all["epoch"], empty["epoch"], "the epoch a ~sub would answer");
    assert_eq!(all["seq"].as_u64(), published.last().copied(), "seq is the topic's latest");
    assert_eq!(seqs(&all), published, "everything kept, oldest first");
    assert_eq!(
        all["publications"][0],
        json!({"seq": published[0], "event": "said", "data": {"n": 1}, "from": {"conn": alice.conn, "user": "alice"}})
    );
    let newest = bob.ok("~history", json!({"topic": topic, "limit": 2})).await;
    assert_eq!(seqs(&newest), published[3..], "the newest two");
    let epoch = all["epoch"].clone();
    let after =
        bob.ok("~history", json!({"topic": topic, "since": {"epoch": epoch, "seq": published[1]}})).await;
    assert_eq!(seqs(&after), published[2..], "what follows the position");
    let page = bob
        .ok("~history", json!({"topic": topic, "limit": 2, "since": {"epoch": epoch, "seq": published[0]}}))
        .await;
    assert_eq!(seqs(&page), published[1..3], "the first two after the position");
    let other =
        bob.ok("~history", json!({"topic": topic, "since": {"epoch": "not-this-one", "seq": 1}})).await;
    assert_eq!(other["publications"], json!([]), "another epoch: nothing");
    assert_eq!(other["epoch"], epoch, "and the reply's epoch says which one is current");
    let capped = bob.ok("~history", json!({"topic": topic, "limit": 1000})).await;
    assert_eq!(seqs(&capped), published, "a limit above the history size is capped");
    // Reading did not subscribe.
    publish(&mut alice, topic, json!("after")).await;
    bob.sync().await;
    bob.expect_none("a ~msg", QUIET, |m| ty(m) == "~msg" && m[1]["topic"] == topic).await;
}

#[tokio::test]
async fn history_is_for_whoever_may_subscribe_and_only_where_there_is_history() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    alice.err_code("~history", json!({"topic": "private/bob"}), "FORBIDDEN").await;
    alice.err_code("~history", json!({"topic": "group/g1"}), "FORBIDDEN").await;
    alice.err_code("~history", json!({"topic": "nothing/here"}), "FORBIDDEN").await;
    alice.err_code("~history", json!({"topic": "acked/x"}), "NOT_FOUND").await;
    alice.err_code("~history", json!({"topic": "chat/r", "limit": 0}), "BAD_REQUEST").await;
    alice.err_code("~history", json!({"topic": "no//such"}), "BAD_REQUEST").await;
    alice.err_code("~history", json!({"nope": 1}), "BAD_REQUEST").await;
    // One's own private topic is allowed, and keeps no history: authorization came first.
    alice.err_code("~history", json!({"topic": "private/alice"}), "NOT_FOUND").await;
    let todo = alice.ok("~history", json!({"topic": "todo/l1/i1"})).await;
    assert!(todo["publications"].is_array(), "todo topics keep history too");
    // Before identification it is like any reserved message.
    let mut anon = Client::connect(&fx).await;
    anon.err_code("~history", json!({"topic": "chat/r"}), "NOT_AUTHENTICATED").await;
}

#[tokio::test]
async fn a_publication_key_makes_a_retry_safe() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut bob = Client::user(&fx, "bob").await;
    let topic = "chat/keys";
    bob.ok("~sub", json!({"topic": topic})).await;
    let first = alice.ok("~pub", json!({"topic": topic, "data": 1, "key": "k-1"})).await;
    let retry = alice.ok("~pub", json!({"topic": topic, "data": 1, "key": "k-1"})).await;
    assert_eq!(retry, first, "the retry is answered as the first one was");
    let other = alice.ok("~pub", json!({"topic": topic, "data": 2, "key": "k-2"})).await;
    assert_eq!(other["seq"].as_u64(), first["seq"].as_u64().map(|s| s + 1));
    let m1 = bob.wait_for("the first ~msg", |m| ty(m) == "~msg").await;
    assert_eq!(m1[1]["data"], 1);
    let m2 = bob.wait_for("the second ~msg", |m| ty(m) == "~msg").await;
    assert_eq!(m2[1]["data"], 2, "the retry was not delivered");
    let kept = bob.ok("~history", json!({"topic": topic})).await;
    assert_eq!(kept["publications"].as_array().map(Vec::len), Some(2), "nor kept twice");
    let long = "k".repeat(65);
    alice.err_code("~pub", json!({"topic": topic, "data": 3, "key": long}), "BAD_REQUEST").await;
    alice.err_code("~pub", json!({"topic": topic, "data": 3, "key": ""}), "BAD_REQUEST").await;
    alice.ok("~pub", json!({"topic": topic, "data": 3, "key": "k".repeat(64)})).await;
}

/// Sends `FLUSHALL` to the Redis on `port` (its histories are lost: every stream restarts).
fn flush(port: u16) {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("redis");
    s.write_all(b"FLUSHALL\r\n").unwrap();
    let mut buf = [0u8; 5];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"+OK\r\n");
}

#[tokio::test]
async fn a_restarted_stream_is_delivered_with_its_epoch_on_every_node() {
    let redis = Redis::start();
    let fa = Fixture::start_with(&["--redis", &redis.url()]);
    let fb = Fixture::start_with(&["--redis", &redis.url()]);
    let mut publisher = Client::user(&fa, "pat").await;
    let mut here = Client::user(&fa, "hana").await;
    let mut there = Client::user(&fb, "tom").await;
    let topic = "chat/restart";
    let told = here.ok("~sub", json!({"topic": topic})).await;
    there.ok("~sub", json!({"topic": topic})).await;
    for i in 1..=3 {
        publish(&mut publisher, topic, json!(i)).await;
    }
    for c in [&mut here, &mut there] {
        for i in 1..=3u64 {
            let m = c.wait_for("a ~msg", |m| ty(m) == "~msg").await;
            assert_eq!(
                (m[1]["seq"].as_u64(), m[1].get("epoch")),
                (Some(i), None),
                "the stream they were told"
            );
        }
    }
    flush(redis.port());
    let seq = publish(&mut publisher, topic, json!("after")).await;
    assert_eq!(seq, 1, "a new stream starts at 1");
    let mut epochs = Vec::new();
    for c in [&mut here, &mut there] {
        let m = c.wait_for("the restarted stream's first ~msg", |m| ty(m) == "~msg").await;
        assert_eq!(m[1]["seq"], 1);
        assert_eq!(m[1]["data"], "after");
        let epoch = m[1]["epoch"].as_str().expect("the new stream's epoch is on the delivery").to_owned();
        assert_ne!(json!(epoch), told["epoch"], "another epoch");
        epochs.push(epoch);
    }
    assert_eq!(epochs[0], epochs[1], "the same stream on both nodes");
    publish(&mut publisher, topic, json!("next")).await;
    for c in [&mut here, &mut there] {
        let m = c.wait_for("the next ~msg", |m| ty(m) == "~msg").await;
        assert_eq!((m[1]["seq"].as_u64(), m[1].get("epoch")), (Some(2), None), "told once");
    }
    let read = here.ok("~history", json!({"topic": topic})).await;
    assert_eq!(read["epoch"].as_str(), Some(epochs[0].as_str()));
    assert_eq!(seqs(&read), [1, 2]);
}
