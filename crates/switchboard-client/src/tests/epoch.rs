//! Epochs (protocol §5): a `~msg` that carries a new epoch is a restarted stream, taken whatever
//! its `seq`; duplicates within one epoch are dropped; resubscriptions use the latest epoch.

use super::*;

/// Subscribes to `topic` and answers the `~sub` with epoch `epoch` at `seq`.
async fn subscribed(h: &Harness, srv: &mut Srv, topic: &str, epoch: &str, seq: u64) -> crate::Subscription {
    let c = h.client.clone();
    let owned = topic.to_owned();
    let subscribing = tokio::spawn(async move { c.subscribe(&owned).await });
    let sub = srv.next().await;
    assert_eq!(sub.kind, "~sub");
    srv.send(json!(["~ok", {"topic": topic, "epoch": epoch, "seq": seq, "recovered": false}, sub.id]));
    subscribing.await.unwrap().unwrap()
}

fn msg(topic: &str, seq: u64, epoch: Option<&str>) -> Value {
    match epoch {
        Some(e) => json!(["~msg", {"topic": topic, "data": seq, "seq": seq, "epoch": e}]),
        None => json!(["~msg", {"topic": topic, "data": seq, "seq": seq}]),
    }
}

#[tokio::test(start_paused = true)]
async fn a_new_epoch_restarts_the_count_even_at_the_same_seq() {
    let mut h = Harness::start(|b| b);
    let mut srv = h.ready().await;
    let mut s = subscribed(&h, &mut srv, "chat/a", "e1", 0).await;
    srv.send(msg("chat/a", 1, None));
    assert_eq!(s.next_publication().await.unwrap().seq, 1);
    // The stream restarts: its first publication has seq 1 again, in epoch e2.
    srv.send(msg("chat/a", 1, Some("e2")));
    srv.send(msg("chat/a", 2, None));
    let event = s.recv().await.unwrap();
    let TopicEvent::Resubscribed { recovered: false, epoch, seq: 0 } = event else { panic!("{event:?}") };
    assert_eq!(epoch, "e2");
    assert_eq!(s.next_publication().await.unwrap().seq, 1, "the restarted stream's first publication");
    assert_eq!(s.next_publication().await.unwrap().seq, 2);
    assert_eq!(h.client.stats().duplicates_dropped, 0);

    // The next resubscription asks for what followed in the new epoch.
    drop(srv);
    let mut srv = h.ready().await;
    let sub = srv.next().await;
    assert_eq!(sub.payload["since"], json!({"epoch": "e2", "seq": 2}));
    srv.send(json!(["~ok", {"topic": "chat/a", "epoch": "e2", "seq": 2, "recovered": true}, sub.id]));
    let event = s.recv().await.unwrap();
    assert!(matches!(event, TopicEvent::Resubscribed { recovered: true, .. }), "{event:?}");
}

#[tokio::test(start_paused = true)]
async fn a_restart_to_a_lower_or_higher_seq_is_taken_too() {
    let mut h = Harness::start(|b| b);
    let mut srv = h.ready().await;
    let mut s = subscribed(&h, &mut srv, "chat/b", "e1", 7).await;
    srv.send(msg("chat/b", 8, None));
    srv.send(msg("chat/b", 3, Some("e2"))); // lower than 8
    srv.send(msg("chat/b", 40, Some("e3"))); // higher, but a new stream all the same
    srv.send(msg("chat/b", 41, Some("e3"))); // the epoch repeated: nothing new
    assert_eq!(s.next_publication().await.unwrap().seq, 8);
    for (epoch, seq) in [("e2", 3), ("e3", 40)] {
        let event = s.recv().await.unwrap();
        assert!(
            matches!(&event, TopicEvent::Resubscribed { recovered: false, epoch: e, seq: before } if e == epoch && *before == seq - 1),
            "{event:?}"
        );
        assert_eq!(s.next_publication().await.unwrap().seq, seq);
    }
    let event = s.recv().await.unwrap();
    assert!(matches!(&event, TopicEvent::Publication(p) if p.seq == 41), "{event:?}");
}

#[tokio::test(start_paused = true)]
async fn duplicates_within_an_epoch_are_dropped() {
    let mut h = Harness::start(|b| b);
    let mut srv = h.ready().await;
    let mut s = subscribed(&h, &mut srv, "chat/c", "e1", 4).await;
    srv.send(msg("chat/c", 5, None));
    srv.send(msg("chat/c", 5, None)); // a duplicate
    srv.send(msg("chat/c", 4, None)); // older: a duplicate, not a restart (no new epoch)
    srv.send(msg("chat/c", 5, Some("e1"))); // the known epoch repeated: still a duplicate
    srv.send(msg("chat/c", 6, Some("e1")));
    srv.send(msg("chat/c", 7, None));
    for seq in [5, 6, 7] {
        let event = s.recv().await.unwrap();
        assert!(matches!(&event, TopicEvent::Publication(p) if p.seq == seq), "{event:?}");
    }
    assert_eq!(h.client.stats().duplicates_dropped, 3);
    // The position did not go back: a resubscription asks for what followed 7 in e1.
    drop(srv);
    let mut srv = h.ready().await;
    assert_eq!(srv.next().await.payload["since"], json!({"epoch": "e1", "seq": 7}));
}

#[tokio::test(start_paused = true)]
async fn a_new_epoch_that_arrives_while_resubscribing_is_applied_in_order() {
    let mut h = Harness::start(|b| b);
    let mut srv = h.ready().await;
    let mut s = subscribed(&h, &mut srv, "chat/d", "e1", 0).await;
    srv.send(msg("chat/d", 1, None));
    assert_eq!(s.next_publication().await.unwrap().seq, 1);
    drop(srv);
    let mut srv = h.ready().await;
    let sub = srv.next().await;
    // A delivery before the reply waits for it; the reply says e1 recovered; then the restart.
    srv.send(msg("chat/d", 1, Some("e2")));
    srv.send(json!(["~ok", {"topic": "chat/d", "epoch": "e1", "seq": 1, "recovered": true}, sub.id]));
    let first = s.recv().await.unwrap();
    assert!(matches!(first, TopicEvent::Resubscribed { recovered: true, .. }), "{first:?}");
    let restart = s.recv().await.unwrap();
    assert!(
        matches!(&restart, TopicEvent::Resubscribed { recovered: false, epoch, .. } if epoch == "e2"),
        "{restart:?}"
    );
    assert_eq!(s.next_publication().await.unwrap().seq, 1);
}
