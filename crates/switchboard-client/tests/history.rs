//! `~history` and idempotent publishing against the real fixture (protocol §5, appendix A:
//! `chat/<room>` keeps a history of 100 and lets anyone read it; `todo/…` keeps history;
//! `private/<user>` and `acked/<x>` keep none).

mod common;

use common::{Fixture, connect, within};
use serde_json::{Value, json};
use switchboard_client::{Format, HistoryOptions, PublishOptions, RawPayload};

#[tokio::test]
async fn history_returns_the_newest_publications_oldest_first() {
    common::init_tracing();
    let fx = Fixture::start();
    for format in Format::ALL {
        let alice = connect(&fx, "alice", format).await;
        let bob = connect(&fx, "bob", Format::Json).await;
        let topic = format!("chat/history-{format}");
        // A topic with history and no publication yet: an empty list.
        let empty = within(alice.history(&topic, HistoryOptions::new())).await.unwrap();
        assert_eq!((empty.topic.as_str(), empty.seq, empty.publications.len()), (topic.as_str(), 0, 0));
        let mut seqs = Vec::new();
        for i in 0..5 {
            let opts = PublishOptions::new().event("say");
            seqs.push(within(bob.publish_with(&topic, &json!({"i": i}), opts)).await.unwrap());
        }
        let all = within(alice.history(&topic, HistoryOptions::new())).await.unwrap();
        assert_eq!(all.seq, seqs[4]);
        assert_eq!(all.epoch, empty.epoch);
        let got: Vec<u64> = all.publications.iter().map(|p| p.seq).collect();
        assert_eq!(got, seqs, "oldest first");
        let first = &all.publications[0];
        assert_eq!(first.data.decode::<Value>().unwrap(), json!({"i": 0}));
        assert_eq!(first.event.as_deref(), Some("say"));
        assert_eq!(first.from.as_ref().and_then(|o| o.user.as_deref()), Some("bob"));

        let newest = within(alice.history(&topic, HistoryOptions::new().limit(2))).await.unwrap();
        let got: Vec<u64> = newest.publications.iter().map(|p| p.seq).collect();
        assert_eq!(got, seqs[3..]);

        let after = HistoryOptions::new().since(all.epoch.clone(), seqs[1]);
        let after = within(alice.history(&topic, after)).await.unwrap();
        let got: Vec<u64> = after.publications.iter().map(|p| p.seq).collect();
        assert_eq!(got, seqs[2..]);

        // A position in another epoch: nothing, and the reply's epoch says it changed.
        let lost =
            within(alice.history(&topic, HistoryOptions::new().since("no-such-epoch", 1))).await.unwrap();
        assert!(lost.publications.is_empty());
        assert_ne!(lost.epoch, "no-such-epoch");
    }
}

#[tokio::test]
async fn history_is_refused_where_subscribing_is_and_absent_where_nothing_is_kept() {
    let fx = Fixture::start();
    let alice = connect(&fx, "alice", Format::Json).await;
    // Authorization first: only bob may subscribe to private/bob.
    let err = within(alice.history("private/bob", HistoryOptions::new())).await.unwrap_err();
    assert_eq!(err.code(), "FORBIDDEN", "{err:?}");
    let err = within(alice.history("group/red", HistoryOptions::new())).await.unwrap_err();
    assert_eq!(err.code(), "FORBIDDEN", "{err:?}");
    // Allowed, but the topic keeps no history.
    let err = within(alice.history("private/alice", HistoryOptions::new())).await.unwrap_err();
    assert_eq!(err.code(), "NOT_FOUND", "{err:?}");
    // A limit of 0 is refused by the server too (sent raw: the client refuses it before sending).
    let raw = RawPayload::json(&json!({"topic": "chat/x", "limit": 0})).unwrap();
    let err = within(alice.request("~history", raw, Default::default())).await.unwrap_err();
    assert_eq!(err.code(), "BAD_REQUEST", "{err:?}");
}

#[tokio::test]
async fn a_publication_retried_with_its_key_is_published_once() {
    let fx = Fixture::start();
    let alice = connect(&fx, "alice", Format::Json).await;
    let bob = connect(&fx, "bob", Format::MsgPack).await;
    let topic = "chat/idempotent";
    let mut sub = within(alice.subscribe(topic)).await.unwrap();
    let opts = PublishOptions::new().key("send-1");
    let first = within(bob.publish_with(topic, &"once", opts.clone())).await.unwrap();
    let again = within(bob.publish_with(topic, &"once", opts)).await.unwrap();
    assert_eq!(again, first, "the reply is the first one's");
    let other = within(bob.publish_with(topic, &"twice", PublishOptions::new().key("send-2"))).await.unwrap();
    assert_eq!(other, first + 1);
    let p = within(sub.next_publication()).await.unwrap();
    assert_eq!((p.seq, p.decode::<String>().unwrap().as_str()), (first, "once"));
    let p = within(sub.next_publication()).await.unwrap();
    assert_eq!((p.seq, p.decode::<String>().unwrap().as_str()), (other, "twice"), "published once");
    let kept = within(alice.history(topic, HistoryOptions::new())).await.unwrap();
    assert_eq!(kept.publications.len(), 2);
}
