//! Publish/subscribe against the real fixture: ordering, permissions, server-made groups, and
//! acknowledged deliveries acknowledged automatically.

mod common;

use std::time::Duration;

use common::{Fixture, connect, within};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use switchboard_client::{Format, PublishOptions, SubscribeOptions, TopicEvent};
use tokio_tungstenite::tungstenite::Message as Ws;

#[tokio::test]
async fn publications_arrive_in_order_with_their_origin() {
    common::init_tracing();
    let fx = Fixture::start();
    for format in Format::ALL {
        let alice = connect(&fx, "alice", format).await;
        let bob = connect(&fx, "bob", Format::Json).await;
        let topic = format!("chat/order-{format}");
        let mut sub = within(alice.subscribe(&topic)).await.unwrap();
        let mut bobs = within(bob.subscribe(&topic)).await.unwrap();
        let start = sub.info().seq;
        for i in 0..20 {
            let seq = within(bob.publish_with(&topic, &json!({"i": i}), PublishOptions::new().event("say")))
                .await
                .unwrap();
            assert_eq!(seq, start + i + 1);
        }
        for i in 0..20 {
            let p = within(sub.next_publication()).await.unwrap();
            assert_eq!(p.seq, start + i + 1);
            assert_eq!(p.decode::<Value>().unwrap(), json!({"i": i}));
            assert_eq!(p.event.as_deref(), Some("say"));
            assert_eq!(p.from.as_ref().unwrap().user.as_deref(), Some("bob"));
        }
        // The publisher does not get its own publications, unless it asks for an echo.
        within(bob.publish_with(&topic, &"echoed", PublishOptions::new().echo(true))).await.unwrap();
        let p = within(bobs.next_publication()).await.unwrap();
        assert_eq!(p.decode::<String>().unwrap(), "echoed");
        assert_eq!(within(sub.next_publication()).await.unwrap().decode::<String>().unwrap(), "echoed");
    }
}

#[tokio::test]
async fn a_saved_position_is_recovered_on_subscribe() {
    let fx = Fixture::start();
    let alice = connect(&fx, "alice", Format::Json).await;
    let bob = connect(&fx, "bob", Format::MsgPack).await;
    let first = within(alice.subscribe("chat/saved")).await.unwrap();
    let epoch = first.info().epoch.clone();
    drop(first);
    let mut seqs = Vec::new();
    for i in 0..4 {
        seqs.push(within(bob.publish("chat/saved", &i)).await.unwrap());
    }
    // Resume after the second publication: the last two come back, in order.
    let opts = SubscribeOptions::new().since(epoch.clone(), seqs[1]);
    let mut sub = within(alice.subscribe_with("chat/saved", opts)).await.unwrap();
    assert!(sub.recovered());
    for (i, seq) in seqs.iter().enumerate().skip(2) {
        let p = within(sub.next_publication()).await.unwrap();
        assert_eq!((p.seq, p.decode::<usize>().unwrap()), (*seq, i));
    }
    // An unknown epoch cannot be recovered.
    let opts = SubscribeOptions::new().since("no-such-epoch", 1);
    let other = connect(&fx, "carol", Format::Json).await;
    let sub = within(other.subscribe_with("chat/saved", opts)).await.unwrap();
    assert!(!sub.recovered());
}

#[tokio::test]
async fn the_fixture_topics_apply_their_rules() {
    let fx = Fixture::start();
    let alice = connect(&fx, "alice", Format::Json).await;
    let bob = connect(&fx, "bob", Format::MsgPack).await;

    // todo/: only the server publishes.
    let mut todo = within(alice.subscribe("todo/l1/i1")).await.unwrap();
    assert_eq!(within(bob.publish("todo/l1/i1", &1)).await.unwrap_err().code(), "FORBIDDEN");
    let _: Value =
        within(bob.call("publish", &json!({"topic": "todo/l1/i1", "event": "done", "data": true})))
            .await
            .unwrap();
    let p = within(todo.next_publication()).await.unwrap();
    assert_eq!((p.event.as_deref(), p.from.is_none()), (Some("done"), true));

    // private/<user>: only that user.
    within(alice.subscribe("private/alice")).await.unwrap();
    assert_eq!(within(bob.subscribe("private/alice")).await.unwrap_err().code(), "FORBIDDEN");

    // group/: joined by the server only; its publications arrive without a subscription.
    assert_eq!(within(alice.subscribe("group/red")).await.unwrap_err().code(), "FORBIDDEN");
    let mut groups = alice.group_publications();
    let _: Value = within(alice.call("join", &json!({"group": "red"}))).await.unwrap();
    let _: Value =
        within(bob.call("publish", &json!({"topic": "group/red", "data": "to the reds"}))).await.unwrap();
    let p = within(groups.recv()).await.unwrap();
    assert_eq!((p.topic.as_str(), p.decode::<String>().unwrap().as_str()), ("group/red", "to the reds"));

    // Invalid names are refused before anything is sent.
    assert_eq!(within(alice.subscribe("bad//name")).await.unwrap_err().code(), "BAD_REQUEST");
}

#[tokio::test]
async fn local_subscriptions_share_the_topic_and_the_last_one_leaves_it() {
    let fx = Fixture::start();
    let alice = connect(&fx, "alice", Format::Json).await;
    let bob = connect(&fx, "bob", Format::Json).await;
    let mut one = within(alice.subscribe("chat/shared")).await.unwrap();
    let two = within(alice.subscribe("chat/shared")).await.unwrap();
    drop(two);
    within(bob.publish("chat/shared", &1)).await.unwrap();
    assert_eq!(within(one.next_publication()).await.unwrap().decode::<u8>().unwrap(), 1);
    assert_eq!(within(alice.who_in("chat/shared")).await.unwrap().len(), 1, "still subscribed");
    within(one.unsubscribe()).await;
    // No longer a subscriber: the fixture refuses the topic's presence.
    let err = within(alice.who_in("chat/shared")).await.unwrap_err();
    assert_eq!(err.code(), "FORBIDDEN", "{err:?}");
}

/// A raw connection that never acknowledges: the control showing the server does resend.
async fn raw_unacked_count(
    fx: &Fixture,
    setup: Vec<Value>,
    matches: impl Fn(&Value) -> bool,
) -> (usize, u64) {
    let (mut ws, _) = tokio_tungstenite::connect_async(fx.url()).await.unwrap();
    let hello = json!(["~hello", {"identity": {"user": "zed", "password": "pw-zed"}}, 1]);
    ws.send(Ws::text(hello.to_string())).await.unwrap();
    for frame in setup {
        ws.send(Ws::text(frame.to_string())).await.unwrap();
    }
    let mut seen = 0;
    let mut id = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(2500);
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, ws.next()).await {
        if let Ws::Text(text) = msg {
            let v: Value = serde_json::from_str(&text).unwrap();
            if matches(&v) {
                seen += 1;
                id = v[2].as_u64().unwrap();
            }
        }
    }
    (seen, id)
}

#[tokio::test]
async fn acknowledged_topic_deliveries_are_acked_so_the_server_stops_resending() {
    let fx = Fixture::start();
    // Control: unacknowledged, the same delivery comes again (300 ms × up to 5 resends).
    let setup = vec![
        json!(["~sub", {"topic": "acked/control"}, 2]),
        json!(["publish", {"topic": "acked/control", "data": "x"}, 3]),
    ];
    let (resent, id) = raw_unacked_count(&fx, setup, |v| v[0] == "~msg").await;
    assert!(resent > 1 && id > 0, "the server should resend unacknowledged deliveries (saw {resent})");

    for format in Format::ALL {
        let alice = connect(&fx, "alice", format).await;
        let topic = format!("acked/{format}");
        let mut sub = within(alice.subscribe(&topic)).await.unwrap();
        let _: Value =
            within(alice.call("publish", &json!({"topic": topic, "data": {"important": 1}}))).await.unwrap();
        let p = within(sub.next_publication()).await.unwrap();
        assert_eq!(p.decode::<Value>().unwrap(), json!({"important": 1}));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(alice.stats().duplicates_dropped, 0, "acknowledged at once: no resend");
        assert!(sub.try_next_is_empty());
    }
}

#[tokio::test]
async fn acknowledged_events_are_acked_and_delivered_once() {
    let fx = Fixture::start();
    let setup = vec![json!(["ack-me", {"type": "note", "payload": 1}, 2])];
    let (resent, _) = raw_unacked_count(&fx, setup, |v| v[0] == "note").await;
    assert!(resent > 1, "the server should resend unacknowledged events (saw {resent})");

    for format in Format::ALL {
        let alice = connect(&fx, "alice", format).await;
        let mut notes = alice.events_named("note");
        let _: Value =
            within(alice.call("ack-me", &json!({"type": "note", "payload": {"n": 7}}))).await.unwrap();
        let note = within(notes.recv()).await.unwrap();
        assert_eq!(note.decode::<Value>().unwrap(), json!({"n": 7}));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(notes.try_recv().is_none(), "delivered once");
        assert_eq!(alice.stats().duplicates_dropped, 0, "acknowledged at once: no resend");
    }
}

/// Whether a subscription has nothing waiting.
trait TryNext {
    fn try_next_is_empty(&mut self) -> bool;
}

impl TryNext for switchboard_client::Subscription {
    fn try_next_is_empty(&mut self) -> bool {
        use futures_util::FutureExt;
        match self.recv().now_or_never() {
            None => true,
            Some(Some(TopicEvent::Publication(p))) => panic!("unexpected publication {p:?}"),
            Some(other) => panic!("unexpected {other:?}"),
        }
    }
}
