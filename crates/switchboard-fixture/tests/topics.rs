//! Conformance: topics — `~sub`, `~unsub`, `~pub`, deliveries and the fixture's topic
//! permissions (protocol.md §5, appendix A topics).
//!
//! Readings of protocol.md used here:
//! - The `~sub` reply is exactly `{"topic", "epoch", "seq", "recovered"}` where `seq` is the
//!   topic's current (last published) seq, so the next publication has `seq + 1` — that is
//!   what makes `since: {epoch, seq}` from a `~sub` reply resume without a gap. `recovered`
//!   is only checked to be a boolean when no `since` was given.
//! - The `~pub` reply is exactly `{"seq": N}`, the seq its delivery carries.
//! - A delivery of a client publication carries `from: {"conn", "user"}` of the publisher; a
//!   publication made by the server (the fixture's `publish`) carries no `from`. `event` is
//!   present exactly when the publication named one.
//! - The fixture's `publish` reply payload is not specified and not checked.
//! - Invalid topic names in `~sub` and `~pub` are `BAD_REQUEST`. Topic names are ASCII, so
//!   255 bytes = 255 characters.
//! - `~unsub` by prefix P leaves topics equal to P or under `P/` — not `P` + anything
//!   (`chat/a` does not cover `chat/ab`). The `topics` list order is not specified: compared
//!   as sets.
//! - The permissions of topics outside the four families, of client `~pub` into `private/*`
//!   and `group/*`, and whether `~unsub {}` leaves server-made group memberships, are not
//!   specified and not tested.

mod common;

use common::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Subscribes and checks the reply's shape; returns the reply.
async fn sub(c: &mut Client, topic: &str) -> Value {
    let r = c.ok("~sub", json!({"topic": topic})).await;
    assert_keys(&r, &["topic", "epoch", "seq", "recovered"]);
    assert_eq!(r["topic"], topic);
    assert!(r["epoch"].is_string(), "epoch is a string: {r}");
    assert!(r["seq"].is_u64(), "seq is an integer: {r}");
    assert!(r["recovered"].is_boolean(), "recovered is a bool: {r}");
    r
}

/// Client-publishes and checks the reply's shape; returns the seq.
async fn publish(c: &mut Client, topic: &str, data: Value) -> u64 {
    let r = c.ok("~pub", json!({"topic": topic, "data": data})).await;
    assert_keys(&r, &["seq"]);
    r["seq"].as_u64().expect("seq")
}

fn is_msg_on(m: &Value, topic: &str) -> bool {
    ty(m) == "~msg" && m[1]["topic"] == topic
}

async fn next_msg(c: &mut Client, topic: &str) -> Value {
    let m = c.wait_for(&format!("a ~msg on {topic}"), |m| is_msg_on(m, topic)).await;
    assert_eq!(m.as_array().map(Vec::len), Some(2), "a plain delivery has no id: {m}");
    m
}

async fn expect_no_msg(c: &mut Client, topic: &str) {
    c.sync().await;
    c.expect_none(&format!("~msg on {topic}"), QUIET, |m| is_msg_on(m, topic)).await;
}

#[tokio::test]
async fn chat_anyone_subscribes_and_publishes() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut bob = Client::user(&fx, "bob").await;
    let s = sub(&mut alice, "chat/r1").await;
    // bob publishes without being subscribed.
    let seq = publish(&mut bob, "chat/r1", json!({"t": "hi"})).await;
    assert_eq!(seq, s["seq"].as_u64().unwrap() + 1, "first seq after the ~sub reply");
    let m = next_msg(&mut alice, "chat/r1").await;
    assert_eq!(
        m,
        json!(["~msg", {
            "topic": "chat/r1",
            "data": {"t": "hi"},
            "seq": seq,
            "from": {"conn": bob.conn, "user": "bob"},
        }])
    );
}

#[tokio::test]
async fn event_name_is_delivered() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut bob = Client::user(&fx, "bob").await;
    sub(&mut alice, "chat/r2").await;
    let r = bob.ok("~pub", json!({"topic": "chat/r2", "event": "typing", "data": null})).await;
    let m = next_msg(&mut alice, "chat/r2").await;
    assert_eq!(
        m,
        json!(["~msg", {
            "topic": "chat/r2",
            "event": "typing",
            "data": null,
            "seq": r["seq"],
            "from": {"conn": bob.conn, "user": "bob"},
        }])
    );
}

#[tokio::test]
async fn seq_increases_by_one_per_publication() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut bob = Client::user(&fx, "bob").await;
    let s0 = sub(&mut alice, "chat/seq").await["seq"].as_u64().unwrap();
    let other0 = sub(&mut alice, "chat/other").await["seq"].as_u64().unwrap();
    let mut seqs = Vec::new();
    for i in 0..5 {
        seqs.push(publish(&mut bob, "chat/seq", json!(i)).await);
    }
    let expected: Vec<u64> = (1..=5).map(|k| s0 + k).collect();
    assert_eq!(seqs, expected);
    for (i, seq) in seqs.iter().enumerate() {
        let m = next_msg(&mut alice, "chat/seq").await;
        assert_eq!(m[1]["seq"], *seq, "deliveries in order: {m}");
        assert_eq!(m[1]["data"], i);
    }
    // Another topic has its own sequence.
    assert_eq!(publish(&mut bob, "chat/other", json!("x")).await, other0 + 1);
    // A later subscriber sees the current seq.
    let mut carol = Client::user(&fx, "carol").await;
    assert_eq!(sub(&mut carol, "chat/seq").await["seq"], s0 + 5);
}

#[tokio::test]
async fn publisher_gets_its_own_publication_only_with_echo() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut bob = Client::user(&fx, "bob").await;
    sub(&mut alice, "chat/echo").await;
    sub(&mut bob, "chat/echo").await;

    let seq = publish(&mut alice, "chat/echo", json!("no echo")).await;
    assert_eq!(next_msg(&mut bob, "chat/echo").await[1]["seq"], seq);
    expect_no_msg(&mut alice, "chat/echo").await;

    let r = alice.ok("~pub", json!({"topic": "chat/echo", "data": "explicit false", "echo": false})).await;
    assert_eq!(next_msg(&mut bob, "chat/echo").await[1]["seq"], r["seq"]);
    expect_no_msg(&mut alice, "chat/echo").await;

    let r = alice.ok("~pub", json!({"topic": "chat/echo", "data": "echo", "echo": true})).await;
    let mine = next_msg(&mut alice, "chat/echo").await;
    assert_eq!(
        mine,
        json!(["~msg", {
            "topic": "chat/echo",
            "data": "echo",
            "seq": r["seq"],
            "from": {"conn": alice.conn, "user": "alice"},
        }])
    );
    assert_eq!(next_msg(&mut bob, "chat/echo").await, mine);
}

#[tokio::test]
async fn todo_topics_are_published_by_the_server_only() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut bob = Client::user(&fx, "bob").await;
    let s = sub(&mut alice, "todo/list1/item42").await;
    alice.err_code("~pub", json!({"topic": "todo/list1/item42", "data": {"done": true}}), "FORBIDDEN").await;
    expect_no_msg(&mut alice, "todo/list1/item42").await;
    bob.ok("publish", json!({"topic": "todo/list1/item42", "event": "update", "data": {"done": true}})).await;
    let m = next_msg(&mut alice, "todo/list1/item42").await;
    assert_eq!(
        m,
        json!(["~msg", {
            "topic": "todo/list1/item42",
            "event": "update",
            "data": {"done": true},
            "seq": s["seq"].as_u64().unwrap() + 1,
        }])
    );
}

#[tokio::test]
async fn private_topic_only_for_its_user() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut alice2 = Client::user(&fx, "alice").await;
    let mut bob = Client::user(&fx, "bob").await;
    sub(&mut alice, "private/alice").await;
    sub(&mut alice2, "private/alice").await;
    bob.err_code("~sub", json!({"topic": "private/alice"}), "FORBIDDEN").await;
    sub(&mut bob, "private/bob").await;
    bob.ok("publish", json!({"topic": "private/alice", "data": "for alice"})).await;
    for a in [&mut alice, &mut alice2] {
        let m = next_msg(a, "private/alice").await;
        assert_eq!(m[1]["data"], "for alice");
    }
    expect_no_msg(&mut bob, "private/alice").await;
}

#[tokio::test]
async fn group_topics_are_joined_by_the_server_only() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut bob = Client::user(&fx, "bob").await;
    alice.err_code("~sub", json!({"topic": "group/g1"}), "FORBIDDEN").await;
    alice.ok("join", json!({"group": "g1"})).await;
    bob.ok("publish", json!({"topic": "group/g1", "data": {"hello": "group"}})).await;
    let m = next_msg(&mut alice, "group/g1").await;
    assert_eq!(m[1]["topic"], "group/g1");
    assert_eq!(m[1]["data"], json!({"hello": "group"}));
    assert!(m[1]["seq"].is_u64(), "seq: {m}");
    assert!(m[1].get("from").is_none(), "server publication with from: {m}");
    // bob did not join.
    expect_no_msg(&mut bob, "group/g1").await;
}

#[tokio::test]
async fn invalid_topic_names_are_bad_request() {
    let fx = Fixture::start();
    let mut c = Client::user(&fx, "alice").await;
    let long = format!("chat/{}", "a".repeat(251));
    assert_eq!(long.len(), 256);
    let bad: Vec<Value> = vec![
        json!(""),
        json!("chat/"),
        json!("/chat/a"),
        json!("chat//a"),
        json!("chat/a b"),
        json!("chat/a#b"),
        json!("chat/a*"),
        json!("chat/é"),
        json!("chat/a\nb"),
        json!(long),
        json!(42),
        json!(null),
        json!(["chat/a"]),
    ];
    for t in &bad {
        let e = c.err("~sub", json!({"topic": t})).await;
        assert_eq!(e["code"], "BAD_REQUEST", "~sub {t}: {e}");
        let e = c.err("~pub", json!({"topic": t, "data": 1})).await;
        assert_eq!(e["code"], "BAD_REQUEST", "~pub {t}: {e}");
    }
    c.err_code("~sub", json!({}), "BAD_REQUEST").await;
    c.err_code("~sub", json!("chat/a"), "BAD_REQUEST").await;
    c.err_code("~pub", json!({"data": 1}), "BAD_REQUEST").await;
    c.sync().await;
}

#[tokio::test]
async fn topic_names_use_the_whole_alphabet_and_up_to_255_bytes() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut bob = Client::user(&fx, "bob").await;
    let long = format!("chat/{}", "a".repeat(250));
    assert_eq!(long.len(), 255);
    for t in ["chat/A-z_0.9:x@y", long.as_str()] {
        sub(&mut alice, t).await;
        let seq = publish(&mut bob, t, json!(t)).await;
        let m = next_msg(&mut alice, t).await;
        assert_eq!(m[1]["seq"], seq);
    }
}

fn topic_set(r: &Value) -> BTreeSet<String> {
    assert_keys(r, &["topics"]);
    r["topics"]
        .as_array()
        .unwrap_or_else(|| panic!("topics is an array: {r}"))
        .iter()
        .map(|t| t.as_str().expect("topic string").to_string())
        .collect()
}

fn set(ts: &[&str]) -> BTreeSet<String> {
    ts.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn unsub_one_topic() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut bob = Client::user(&fx, "bob").await;
    sub(&mut alice, "chat/a").await;
    sub(&mut alice, "chat/b").await;
    let r = alice.ok("~unsub", json!({"topic": "chat/a"})).await;
    assert_eq!(topic_set(&r), set(&["chat/a"]));
    publish(&mut bob, "chat/a", json!(1)).await;
    publish(&mut bob, "chat/b", json!(2)).await;
    assert_eq!(next_msg(&mut alice, "chat/b").await[1]["data"], 2);
    expect_no_msg(&mut alice, "chat/a").await;
    // Not subscribed (any more): nothing left.
    let r = alice.ok("~unsub", json!({"topic": "chat/a"})).await;
    assert_eq!(topic_set(&r), set(&[]));
    let r = alice.ok("~unsub", json!({"topic": "chat/never"})).await;
    assert_eq!(topic_set(&r), set(&[]));
}

#[tokio::test]
async fn unsub_by_prefix_and_all() {
    let fx = Fixture::start();
    let mut alice = Client::user(&fx, "alice").await;
    let mut bob = Client::user(&fx, "bob").await;
    for t in ["todo/l1/i1", "todo/l1/i2", "todo/l10/i1", "chat/a", "chat/ab", "private/alice"] {
        sub(&mut alice, t).await;
    }
    let r = alice.ok("~unsub", json!({"prefix": "todo/l1"})).await;
    assert_eq!(topic_set(&r), set(&["todo/l1/i1", "todo/l1/i2"]));
    let r = alice.ok("~unsub", json!({"prefix": "chat/a"})).await;
    assert_eq!(topic_set(&r), set(&["chat/a"]), "chat/a does not cover chat/ab");
    let r = alice.ok("~unsub", json!({"prefix": "nothing"})).await;
    assert_eq!(topic_set(&r), set(&[]));

    // What is left still delivers; what was left does not.
    publish(&mut bob, "chat/ab", json!("ab")).await;
    publish(&mut bob, "chat/a", json!("a")).await;
    bob.ok("publish", json!({"topic": "todo/l1/i1", "data": "i1"})).await;
    bob.ok("publish", json!({"topic": "todo/l10/i1", "data": "l10"})).await;
    assert_eq!(next_msg(&mut alice, "chat/ab").await[1]["data"], "ab");
    assert_eq!(next_msg(&mut alice, "todo/l10/i1").await[1]["data"], "l10");
    expect_no_msg(&mut alice, "chat/a").await;
    expect_no_msg(&mut alice, "todo/l1/i1").await;

    let r = alice.ok("~unsub", json!({})).await;
    assert_eq!(topic_set(&r), set(&["todo/l10/i1", "chat/ab", "private/alice"]));
    let r = alice.ok("~unsub", json!({})).await;
    assert_eq!(topic_set(&r), set(&[]));
    publish(&mut bob, "chat/ab", json!("gone")).await;
    expect_no_msg(&mut alice, "chat/ab").await;
}

#[tokio::test]
async fn every_subscriber_gets_each_publication_once() {
    let fx = Fixture::start();
    let mut subs = Vec::new();
    for u in ["s1", "s2", "s3"] {
        let mut c = Client::user(&fx, u).await;
        sub(&mut c, "chat/fan").await;
        subs.push(c);
    }
    let mut bob = Client::user(&fx, "bob").await;
    let seq = publish(&mut bob, "chat/fan", json!("all")).await;
    for c in &mut subs {
        let m = next_msg(c, "chat/fan").await;
        assert_eq!(m[1]["seq"], seq);
        expect_no_msg(c, "chat/fan").await;
    }
}
