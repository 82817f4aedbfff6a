//! A Redis restart in the middle of a stream: the broker reconnects and resubscribes by itself
//! and then tells its sinks, publishing during the outage is an error, history starts a new
//! epoch, and this node's presence and user entries are written again. A frozen Redis: what was
//! sent and not answered is indeterminate, and a publication retried with its key is applied
//! once; what could not be sent is unavailable.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{RedisServer, eventually, prefix};
use parking_lot::Mutex;
use switchboard_core::{BackendError, Beat, BrokerSink, ConnRef, HistoryOptions, NodeId, Position};
use switchboard_redis::{RedisBackends, RedisOptions};

#[derive(Default)]
struct Recorder(Mutex<Vec<(Option<String>, Bytes)>>);

/// What `reconnected` records (as a node message nobody sends).
const RECONNECTED: &str = "<reconnected>";
const DISCONNECTED: &str = "<disconnected>";

impl BrokerSink for Recorder {
    fn publication(&self, topic: &str, publication: Bytes) {
        self.0.lock().push((Some(topic.to_owned()), publication));
    }
    fn node_message(&self, message: Bytes) {
        self.0.lock().push((None, message));
    }
    fn disconnected(&self) {
        self.0.lock().push((None, Bytes::from(DISCONNECTED)));
    }
    fn reconnected(&self) {
        self.0.lock().push((None, Bytes::from(RECONNECTED)));
    }
}

impl Recorder {
    fn has(&self, topic: Option<&str>, body: &str) -> bool {
        self.0.lock().iter().any(|(t, b)| t.as_deref() == topic && b == body.as_bytes())
    }
}

fn options(p: &str) -> RedisOptions {
    RedisOptions::default()
        .prefix(p)
        .timeout(Duration::from_millis(500))
        .heartbeat(Duration::from_millis(200), Duration::from_secs(2))
}

#[tokio::test]
async fn redis_restart_mid_stream() {
    let mut redis = RedisServer::start();
    let p = prefix("restart");
    let a = RedisBackends::connect(&redis.url(), options(&p)).await.unwrap();
    let b = RedisBackends::connect(&redis.url(), options(&p)).await.unwrap();
    let (na, nb): (NodeId, NodeId) = (Arc::from("node-a"), Arc::from("node-b"));
    let (ra, rb) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
    a.broker.attach(na.clone(), ra.clone()).await.unwrap();
    b.broker.attach(nb.clone(), rb.clone()).await.unwrap();
    b.broker.subscribe(&nb, "t/x").await.unwrap();

    let opts = HistoryOptions { size: 10, ttl: None };
    let before = a.history.append("t/x", Bytes::from("h1"), opts, None).await.unwrap().position;
    assert_eq!(before.seq, 1);
    a.broker.publish(&na, "t/x", Bytes::from("before")).await.unwrap();
    assert!(eventually(Duration::from_secs(5), async || rb.has(Some("t/x"), "before")).await);

    a.presence.join("room", "conn-a", Bytes::from("info-a")).await.unwrap();
    let me = ConnRef { conn: Arc::from("conn-a"), node: na.clone() };
    a.users.register("ada", me.clone(), None).await.unwrap();

    assert!(!ra.has(None, RECONNECTED) && !rb.has(None, RECONNECTED), "not on the first connection");
    let beat = Duration::from_secs(30);
    assert_eq!(a.broker.beat(&na, beat).await.unwrap(), Beat::Alive);
    redis.stop();
    let during = a.broker.publish(&na, "t/x", Bytes::from("during")).await;
    assert!(during.is_err(), "a publication that cannot reach Redis is an error");
    assert!(a.broker.send(&na, Some(&nb), Bytes::from("during")).await.is_err());
    assert!(a.history.append("t/x", Bytes::from("h2"), opts, None).await.is_err());
    assert!(b.presence.list("room").await.is_err());

    redis.restart();
    // Each broker tells its sinks once it subscribed again: from then on, a publication that
    // Redis accepts reaches them (publish until the publisher's own connection is back).
    assert!(eventually(Duration::from_secs(10), async || rb.has(None, RECONNECTED)).await, "b was told");
    assert!(rb.has(None, DISCONNECTED), "and was told of the loss first");
    let mut n = 0;
    let accepted = eventually(Duration::from_secs(10), async || {
        n += 1;
        a.broker.publish(&na, "t/x", Bytes::from(format!("first-{n}"))).await.is_ok()
    })
    .await;
    assert!(accepted);
    assert!(
        eventually(Duration::from_secs(5), async || rb.has(Some("t/x"), &format!("first-{n}"))).await,
        "the first publication accepted after b was told reaches b"
    );
    assert!(eventually(Duration::from_secs(10), async || ra.has(None, RECONNECTED)).await, "a was told too");
    // The subscriber's connection comes back by itself: publish until one gets through.
    let mut n = 0;
    let through = eventually(Duration::from_secs(10), async || {
        n += 1;
        let _ = a.broker.publish(&na, "t/x", Bytes::from(format!("after-{n}"))).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
        rb.has(Some("t/x"), &format!("after-{n}"))
    })
    .await;
    assert!(through, "after the restart a publication reaches the other node again");
    assert!(!rb.has(Some("t/x"), "during"));
    // Node channels and broadcasts were resubscribed too, in both directions.
    assert!(
        eventually(Duration::from_secs(5), async || b
            .broker
            .send(&nb, Some(&na), Bytes::from("to-a"))
            .await
            .is_ok())
        .await
    );
    a.broker.send(&na, None, Bytes::from("all")).await.unwrap();
    assert!(eventually(Duration::from_secs(5), async || ra.has(None, "to-a") && rb.has(None, "all")).await);
    assert!(!ra.0.lock().iter().any(|(t, _)| t.is_some()), "a never hears its own publications");

    // History lost its stream: a new epoch, numbered from 1, and the old position is not recoverable.
    let after = a.history.append("t/x", Bytes::from("h3"), opts, None).await.unwrap().position;
    assert_ne!(after.epoch, before.epoch, "a new epoch after Redis lost the history");
    assert_eq!(after.seq, 1);
    let r = b.history.recover("t/x", &Position { epoch: before.epoch.clone(), seq: 1 }).await.unwrap();
    assert!(!r.complete);
    assert_eq!(r.position, after);

    // This node's presence and user entries are written again after its heartbeat notices.
    let back = eventually(Duration::from_secs(5), async || {
        let list = b.presence.list("room").await.unwrap_or_default();
        let users = b.users.connections("ada").await.unwrap_or_default();
        list.len() == 1 && list[0].conn == "conn-a" && list[0].info == "info-a" && users == [me.clone()]
    })
    .await;
    assert!(back, "presence and users are written again after Redis lost them");

    // Redis lost every trace of the node's liveness: its beat says it lapsed, not that it was
    // cleaned up (nobody removed its entries: it registers them again), and it is alive again.
    let mut lapsed = None;
    assert!(
        eventually(Duration::from_secs(5), async || {
            lapsed = a.broker.beat(&na, beat).await.ok();
            lapsed.is_some()
        })
        .await
    );
    assert_eq!(lapsed, Some(Beat::Lapsed { cleaned: false }));
    assert_eq!(a.broker.beat(&na, beat).await.unwrap(), Beat::Alive);

    // Unsubscribing still works on the new connection.
    b.broker.unsubscribe(&nb, "t/x").await.unwrap();
    a.broker.publish(&na, "t/x", Bytes::from("after-unsub")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!rb.has(Some("t/x"), "after-unsub"));
}

fn fast(p: &str) -> RedisOptions {
    RedisOptions::default().prefix(p).timeout(Duration::from_millis(300))
}

/// A frozen Redis (SIGSTOP) receives requests and answers none: a write is indeterminate (it
/// is applied when Redis goes on), a read is unavailable; a publication retried with its key
/// is applied once. A stopped Redis refuses connections: unavailable.
#[tokio::test]
async fn indeterminate_when_sent_unavailable_when_not() {
    let mut redis = RedisServer::start();
    let p = prefix("indeterminate");
    let a = RedisBackends::connect(&redis.url(), fast(&p)).await.unwrap();
    let opts = HistoryOptions { size: 10, ttl: None };
    let first = a.history.append("t/k", Bytes::from("m0"), opts, Some("k0")).await.unwrap().position;

    redis.pause();
    let r = a.history.append("t/k", Bytes::from("m1"), opts, Some("k1")).await;
    assert!(matches!(r, Err(BackendError::Indeterminate(_))), "sent, unanswered: {r:?}");
    let r = a.presence.list("room").await;
    assert!(matches!(r, Err(BackendError::Unavailable(_))), "a read has nothing to apply: {r:?}");
    redis.resume();

    // The publication was applied after all: its retry with the same key is a duplicate.
    let retried = eventually(Duration::from_secs(5), async || {
        a.history.append("t/k", Bytes::from("m1"), opts, Some("k1")).await.is_ok()
    })
    .await;
    assert!(retried);
    let again = a.history.append("t/k", Bytes::from("m1"), opts, Some("k1")).await.unwrap();
    assert!(again.duplicate, "applied once");
    assert_eq!(again.position.seq, first.seq + 1);
    let r = a.history.recover("t/k", &first).await.unwrap();
    assert_eq!(r.publications.iter().map(|p| p.data.clone()).collect::<Vec<_>>(), [Bytes::from("m1")]);

    // Redis is gone: once the connection noticed, a request cannot even be sent.
    redis.stop();
    let mut last = None;
    let refused = eventually(Duration::from_secs(5), async || {
        let r = a.history.append("t/k", Bytes::from("m2"), opts, Some("k2")).await;
        let unavailable = matches!(r, Err(BackendError::Unavailable(_)));
        last = Some(r);
        unavailable
    })
    .await;
    assert!(refused, "connection refused is unavailable: {last:?}");
}

/// A beat whose answer was lost still tells the node what it found: its next beat does.
#[tokio::test]
async fn a_lost_beat_answer_is_not_lost() {
    let redis = RedisServer::start();
    let p = prefix("lost-beat");
    let a = RedisBackends::connect(&redis.url(), fast(&p)).await.unwrap();
    let b = RedisBackends::connect(&redis.url(), fast(&p)).await.unwrap();
    let (na, nb): (NodeId, NodeId) = (Arc::from("lb-a"), Arc::from("lb-b"));
    assert_eq!(a.broker.beat(&na, Duration::from_millis(200)).await.unwrap(), Beat::Alive);
    assert!(
        eventually(Duration::from_secs(5), async || b.broker.dead_nodes().await.unwrap().contains(&na)).await
    );
    assert!(b.broker.claim_dead(&na, &nb, Duration::from_secs(5)).await.unwrap());
    b.broker.forget_dead(&na).await.unwrap();

    redis.pause();
    let r = a.broker.beat(&na, Duration::from_secs(30)).await;
    assert!(matches!(r, Err(BackendError::Indeterminate(_))), "{r:?}");
    redis.resume();
    // The lost beat ran when Redis went on (the node is alive again, its tombstone gone), but
    // the node never heard that it had been cleaned up: the next beat says so.
    let mut next = None;
    let answered = eventually(Duration::from_secs(5), async || {
        next = a.broker.beat(&na, Duration::from_secs(30)).await.ok();
        next.is_some()
    })
    .await;
    assert!(answered);
    assert_eq!(next, Some(Beat::Lapsed { cleaned: true }));
    assert_eq!(a.broker.beat(&na, Duration::from_secs(30)).await.unwrap(), Beat::Alive);
}
