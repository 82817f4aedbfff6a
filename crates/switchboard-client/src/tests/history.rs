//! `~history` and the idempotency key of `~pub`, through the fake transport.

use super::*;
use crate::{HistoryOptions, PublishOptions};

#[tokio::test(start_paused = true)]
async fn history_sends_its_options_and_returns_the_typed_reply() {
    let mut h = Harness::start(|b| b);
    let mut srv = h.ready().await;
    let c = h.client.clone();
    let reading =
        tokio::spawn(async move { c.history("chat/a", HistoryOptions::new().limit(2).since("e1", 3)).await });
    let m = srv.next().await;
    assert_eq!(
        (m.kind.as_str(), &m.payload),
        ("~history", &json!({"topic": "chat/a", "limit": 2, "since": {"epoch": "e1", "seq": 3}}))
    );
    let publications = json!([
        {"seq": 4, "event": "say", "data": {"text": "hi"}, "from": {"conn": "c2", "user": "bob"}},
        {"seq": 5, "data": "plain"},
    ]);
    srv.send(
        json!(["~ok", {"topic": "chat/a", "epoch": "e1", "seq": 9, "publications": publications}, m.id]),
    );
    let reply = reading.await.unwrap().unwrap();
    assert_eq!((reply.topic.as_str(), reply.epoch.as_str(), reply.seq), ("chat/a", "e1", 9));
    let seqs: Vec<u64> = reply.publications.iter().map(|p| p.seq).collect();
    assert_eq!(seqs, [4, 5]);
    let first = &reply.publications[0];
    assert_eq!(first.event.as_deref(), Some("say"));
    assert_eq!(first.data.decode::<Value>().unwrap(), json!({"text": "hi"}));
    assert_eq!(first.from.as_ref().unwrap().user.as_deref(), Some("bob"));
    assert!(reply.publications[1].from.is_none());

    // Without options, only the topic is sent.
    let c = h.client.clone();
    let reading = tokio::spawn(async move { c.history("todo/l/i", HistoryOptions::new()).await });
    let m = srv.next().await;
    assert_eq!(m.payload, json!({"topic": "todo/l/i"}));
    srv.send(json!(["~ok", {"topic": "todo/l/i", "epoch": "e", "seq": 0, "publications": []}, m.id]));
    assert!(reading.await.unwrap().unwrap().publications.is_empty());
}

#[tokio::test(start_paused = true)]
async fn history_errors_carry_the_servers_codes() {
    let mut h = Harness::start(|b| b);
    let mut srv = h.ready().await;
    for code in ["FORBIDDEN", "NOT_FOUND", "BAD_REQUEST"] {
        let c = h.client.clone();
        let reading = tokio::spawn(async move { c.history("private/x", HistoryOptions::new()).await });
        let m = srv.next().await;
        srv.send(json!(["~err", {"code": code, "message": "no"}, m.id]));
        let err = reading.await.unwrap().unwrap_err();
        assert!(matches!(&err, ClientError::Server(body) if body.code == code), "{err:?}");
        assert_eq!(err.code(), code);
    }
}

#[tokio::test(start_paused = true)]
async fn invalid_history_arguments_are_refused_before_sending() {
    let mut h = Harness::start(|b| b);
    let mut srv = h.ready().await;
    let zero = h.client.history("chat/a", HistoryOptions::new().limit(0)).await.unwrap_err();
    assert!(matches!(zero, ClientError::Invalid(_)), "{zero:?}");
    let bad = h.client.history("bad//topic", HistoryOptions::new()).await.unwrap_err();
    assert_eq!(bad.code(), "BAD_REQUEST");
    h.client.emit("marker", &1).await.unwrap();
    assert_eq!(srv.next().await.kind, "marker", "nothing was sent before");
}

#[tokio::test(start_paused = true)]
async fn a_publish_key_is_sent_and_a_long_one_refused_before_sending() {
    let mut h = Harness::start(|b| b);
    let mut srv = h.ready().await;
    let c = h.client.clone();
    let publishing = tokio::spawn(async move {
        c.publish_with("chat/a", &"hi", PublishOptions::new().key("k-1").event("say")).await
    });
    let m = srv.next().await;
    assert_eq!(
        (m.kind.as_str(), &m.payload),
        ("~pub", &json!({"topic": "chat/a", "event": "say", "data": "hi", "echo": false, "key": "k-1"}))
    );
    srv.send(json!(["~ok", {"seq": 12}, m.id]));
    assert_eq!(publishing.await.unwrap().unwrap(), 12);

    let long = "k".repeat(switchboard_protocol::wire::MAX_PUBLISH_KEY + 1);
    let err = h.client.publish_with("chat/a", &"hi", PublishOptions::new().key(long)).await.unwrap_err();
    assert!(matches!(&err, ClientError::Invalid(m) if m.contains("at most 64")), "{err:?}");
    let longest = "k".repeat(switchboard_protocol::wire::MAX_PUBLISH_KEY);
    let c = h.client.clone();
    let publishing =
        tokio::spawn(async move { c.publish_with("chat/a", &1, PublishOptions::new().key(longest)).await });
    let m = srv.next().await;
    assert_eq!(m.payload["key"].as_str().map(str::len), Some(64), "the 65-byte key was never sent");
    srv.send(json!(["~ok", {"seq": 13}, m.id]));
    assert_eq!(publishing.await.unwrap().unwrap(), 13);
}
