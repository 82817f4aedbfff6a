//! Conformance: recovery with `since` (protocol.md §5, appendix A: chat and todo history 100).
//!
//! Readings of protocol.md used here:
//! - `~sub` with `since: {epoch: E, seq: N}` where E is the topic's epoch and the history
//!   still holds every publication after N answers `recovered: true` and delivers exactly
//!   the publications N+1 … current, in order, before any newer one. Whether the `~sub` reply
//!   comes before or after the replayed deliveries is not specified and not checked.
//! - History 100 = the last 100 publications: after publications 1…105 of a fresh topic,
//!   `since` seq 5 needs 6…105 (all held: recovered, 100 replays), `since` seq 4 needs 5…105
//!   (5 is gone: `recovered: false`).
//! - With an unknown epoch the reply says `recovered: false` and carries the real epoch.
//!   What is delivered then is not specified, except that new publications still arrive.
//! - The `~sub` reply's `seq` is the topic's current seq (see topics.rs).

mod common;

use common::*;
use serde_json::{Value, json};

/// Subscribes with `since` and returns the reply (shape checked).
async fn sub_since(c: &mut Client, topic: &str, epoch: &Value, seq: u64) -> Value {
    let r = c.ok("~sub", json!({"topic": topic, "since": {"epoch": epoch, "seq": seq}})).await;
    assert_keys(&r, &["topic", "epoch", "seq", "recovered"]);
    assert_eq!(r["topic"], topic);
    r
}

async fn sub(c: &mut Client, topic: &str) -> (Value, u64) {
    let r = c.ok("~sub", json!({"topic": topic})).await;
    (r["epoch"].clone(), r["seq"].as_u64().expect("seq"))
}

async fn publish_n(c: &mut Client, topic: &str, n: u64) -> Vec<u64> {
    let mut seqs = Vec::new();
    for i in 0..n {
        let r = c.ok("~pub", json!({"topic": topic, "data": {"i": i}})).await;
        seqs.push(r["seq"].as_u64().expect("seq"));
    }
    seqs
}

/// Collects the next `n` deliveries on `topic`, in arrival order.
async fn msgs(c: &mut Client, topic: &str, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            c.wait_for(&format!("delivery {} on {topic}", out.len() + 1), |m| {
                ty(m) == "~msg" && m[1]["topic"] == topic
            })
            .await,
        );
    }
    out
}

fn seqs_of(ms: &[Value]) -> Vec<u64> {
    ms.iter().map(|m| m[1]["seq"].as_u64().expect("seq")).collect()
}

#[tokio::test]
async fn missed_publications_are_replayed_in_order_then_new_ones() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut bob = Client::user(&fx, "bob").await;
    let (epoch, s0) = sub(&mut alice, "chat/rec").await;
    // alice goes away; bob publishes three.
    alice.close().await;
    let published = publish_n(&mut bob, "chat/rec", 3).await;
    assert_eq!(published, vec![s0 + 1, s0 + 2, s0 + 3]);

    let mut alice = Client::user(&fx, "alice").await;
    let r = sub_since(&mut alice, "chat/rec", &epoch, s0).await;
    assert_eq!(r["recovered"], true, "{r}");
    assert_eq!(r["epoch"], epoch);
    assert_eq!(r["seq"], s0 + 3);
    let fresh = publish_n(&mut bob, "chat/rec", 1).await;
    let got = msgs(&mut alice, "chat/rec", 4).await;
    assert_eq!(seqs_of(&got), vec![s0 + 1, s0 + 2, s0 + 3, fresh[0]]);
    for (k, m) in got.iter().take(3).enumerate() {
        assert_eq!(
            m,
            &json!(["~msg", {
                "topic": "chat/rec",
                "data": {"i": k},
                "seq": s0 + 1 + k as u64,
                "from": {"conn": bob.conn, "user": "bob"},
            }]),
            "replayed delivery"
        );
    }
    alice.sync().await;
    alice.expect_none("a duplicate delivery", QUIET, |m| ty(m) == "~msg").await;
}

#[tokio::test]
async fn since_the_current_seq_replays_nothing() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut bob = Client::user(&fx, "bob").await;
    publish_n(&mut bob, "chat/now", 2).await;
    let (epoch, s) = sub(&mut alice, "chat/now").await;
    let mut alice2 = Client::user(&fx, "alice").await;
    let r = sub_since(&mut alice2, "chat/now", &epoch, s).await;
    assert_eq!(r["recovered"], true, "{r}");
    assert_eq!(r["seq"], s);
    alice2.sync().await;
    alice2.expect_none("a replay", QUIET, |m| ty(m) == "~msg").await;
    let fresh = publish_n(&mut bob, "chat/now", 1).await;
    assert_eq!(seqs_of(&msgs(&mut alice2, "chat/now", 1).await), fresh);
}

#[tokio::test]
async fn unknown_epoch_is_not_recovered() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut bob = Client::user(&fx, "bob").await;
    let (epoch, s0) = sub(&mut alice, "chat/ep").await;
    publish_n(&mut bob, "chat/ep", 2).await;
    let mut carol = Client::user(&fx, "carol").await;
    let bogus = json!(format!("{}-not-the-epoch", epoch.as_str().unwrap_or("x")));
    let r = sub_since(&mut carol, "chat/ep", &bogus, s0).await;
    assert_eq!(r["recovered"], false, "{r}");
    assert_eq!(r["epoch"], epoch, "the reply carries the real epoch");
    assert_eq!(r["seq"], s0 + 2);
    let fresh = publish_n(&mut bob, "chat/ep", 1).await;
    carol.wait_for("the new publication", |m| ty(m) == "~msg" && m[1]["seq"] == fresh[0]).await;
}

#[tokio::test]
async fn gap_beyond_the_history_is_not_recovered() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut bob = Client::user(&fx, "bob").await;
    let (epoch, s0) = sub(&mut alice, "chat/hist").await;
    alice.close().await;
    let seqs = publish_n(&mut bob, "chat/hist", 105).await;
    assert_eq!(seqs.last().copied(), Some(s0 + 105));

    // 6..=105 are the last 100: held.
    let mut c = Client::user(&fx, "carol").await;
    let r = sub_since(&mut c, "chat/hist", &epoch, s0 + 5).await;
    assert_eq!(r["recovered"], true, "since {} with history 100: {r}", s0 + 5);
    let got = msgs(&mut c, "chat/hist", 100).await;
    let want: Vec<u64> = (s0 + 6..=s0 + 105).collect();
    assert_eq!(seqs_of(&got), want);
    c.sync().await;
    c.expect_none("a 101st replay", QUIET, |m| ty(m) == "~msg").await;

    // 5 is gone.
    let mut d = Client::user(&fx, "dave").await;
    let r = sub_since(&mut d, "chat/hist", &epoch, s0 + 4).await;
    assert_eq!(r["recovered"], false, "since {} with history 100: {r}", s0 + 4);
    assert_eq!(r["epoch"], epoch);

    // Way behind.
    let mut e = Client::user(&fx, "erin").await;
    let r = sub_since(&mut e, "chat/hist", &epoch, s0).await;
    assert_eq!(r["recovered"], false, "{r}");
}

#[tokio::test]
async fn server_published_todo_topic_recovers_too() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut bob = Client::user(&fx, "bob").await;
    let (epoch, s0) = sub(&mut alice, "todo/l/i").await;
    alice.close().await;
    for i in 0..3 {
        bob.ok("publish", json!({"topic": "todo/l/i", "data": i})).await;
    }
    let mut alice = Client::user(&fx, "alice").await;
    let r = sub_since(&mut alice, "todo/l/i", &epoch, s0).await;
    assert_eq!(r["recovered"], true, "{r}");
    let got = msgs(&mut alice, "todo/l/i", 3).await;
    assert_eq!(seqs_of(&got), vec![s0 + 1, s0 + 2, s0 + 3]);
    let data: Vec<Value> = got.iter().map(|m| m[1]["data"].clone()).collect();
    assert_eq!(data, vec![json!(0), json!(1), json!(2)]);
}
