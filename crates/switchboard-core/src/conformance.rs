//! One conformance suite for every backend implementation.
//!
//! Each function exercises one contract's documented guarantees and panics on a violation.
//! Call them from the implementation's tests with fresh instances and unique key prefixes:
//!
//! ```
//! use switchboard_core::{conformance, MemoryHistory, MemoryPresence, MemoryUsers, MemoryBroker};
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! conformance::history(&MemoryHistory::new(), "t1").await;
//! conformance::presence(&MemoryPresence::new(), "t1").await;
//! conformance::users(&MemoryUsers::new(), "t1").await;
//! conformance::rate_limiter(&switchboard_core::MemoryRateLimiter::new(), "t1").await;
//! let bus = MemoryBroker::new();
//! conformance::broker(&bus, &bus.clone()).await;
//! conformance::liveness(&bus, &bus.clone(), "t1").await;
//! let log = switchboard_core::MemoryEventLog::new();
//! conformance::event_log(&log, &log, "t1").await;
//! # });
//! ```

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::{
    BackendError, Beat, Broker, BrokerSink, CapPolicy, ConnRef, History, HistoryOptions, NodeId, Position,
    Presence, Rate, RateLimiter, Users,
};

/// Checks [`History`]: consecutive sequence numbers, size limit, recovery with and without a gap,
/// unknown epoch, TTL, idempotency keys.
pub async fn history(h: &dyn History, prefix: &str) {
    let topic = format!("{prefix}/history");
    let opts = HistoryOptions { size: 3, ttl: None };
    let start = h.position(&topic).await.unwrap();
    assert_eq!(start.seq, 0, "a new stream starts at 0");
    let mut last = start.clone();
    for i in 1..=5u64 {
        let p = h.append(&topic, Bytes::from(format!("m{i}")), opts, None).await.unwrap().position;
        assert_eq!(p.seq, i, "sequence numbers are consecutive");
        assert_eq!(p.epoch, start.epoch, "the epoch is stable");
        last = p;
    }
    assert_eq!(h.position(&topic).await.unwrap(), last);

    let r = h.recover(&topic, &Position { epoch: start.epoch.clone(), seq: 3 }).await.unwrap();
    assert!(r.complete, "a gap within the kept history is recoverable");
    let seqs: Vec<_> = r.publications.iter().map(|p| p.seq).collect();
    assert_eq!(seqs, [4, 5]);
    assert_eq!(r.publications[0].data, Bytes::from("m4"));

    let r = h.recover(&topic, &Position { epoch: start.epoch.clone(), seq: 1 }).await.unwrap();
    assert!(!r.complete, "publication 2 was pushed out by size 3");
    let r = h.recover(&topic, &Position { epoch: start.epoch.clone(), seq: 5 }).await.unwrap();
    assert!(r.complete && r.publications.is_empty(), "nothing missed is complete");
    let r = h.recover(&topic, &Position { epoch: "other".into(), seq: 5 }).await.unwrap();
    assert!(!r.complete, "an unknown epoch is not recoverable");
    assert_eq!(r.position, last);

    let none = format!("{prefix}/no-history");
    h.append(&none, Bytes::from("x"), HistoryOptions::default(), None).await.unwrap();
    let p = h.append(&none, Bytes::from("y"), HistoryOptions::default(), None).await.unwrap().position;
    assert_eq!(p.seq, 2, "topics without history still count");
    let r = h.recover(&none, &Position { epoch: p.epoch.clone(), seq: 1 }).await.unwrap();
    assert!(!r.complete);

    let ttl = format!("{prefix}/ttl");
    let opts = HistoryOptions { size: 10, ttl: Some(Duration::from_millis(50)) };
    let p = h.append(&ttl, Bytes::from("old"), opts, Some("k-old")).await.unwrap().position;
    tokio::time::sleep(Duration::from_millis(120)).await;
    let r = h.recover(&ttl, &Position { epoch: p.epoch.clone(), seq: 0 }).await.unwrap();
    assert!(!r.complete, "expired publications are gone");
    let again = h.append(&ttl, Bytes::from("old"), opts, Some("k-old")).await.unwrap();
    assert!(!again.duplicate, "an expired publication's key is forgotten with it");
    assert_eq!(again.position.seq, 2);

    // Idempotency keys: a key seen within the kept history appends nothing.
    let keyed = format!("{prefix}/keys");
    let opts = HistoryOptions { size: 2, ttl: None };
    let first = h.append(&keyed, Bytes::from("a"), opts, Some("k1")).await.unwrap();
    assert!(!first.duplicate);
    let retry = h.append(&keyed, Bytes::from("a"), opts, Some("k1")).await.unwrap();
    assert!(retry.duplicate, "the same key again is a duplicate");
    assert_eq!(retry.position, first.position, "with the first one's position");
    assert_eq!(h.position(&keyed).await.unwrap().seq, 1, "nothing was appended");
    let other = h.append(&keyed, Bytes::from("b"), opts, Some("k2")).await.unwrap();
    assert_eq!((other.position.seq, other.duplicate), (2, false));
    let unkeyed = h.append(&keyed, Bytes::from("c"), opts, None).await.unwrap();
    assert_eq!(unkeyed.position.seq, 3);
    let pushed_out = h.append(&keyed, Bytes::from("a"), opts, Some("k1")).await.unwrap();
    assert_eq!((pushed_out.position.seq, pushed_out.duplicate), (4, false), "k1 left the kept history");
    let none_kept = format!("{prefix}/keys-no-history");
    h.append(&none_kept, Bytes::from("a"), HistoryOptions::default(), Some("k")).await.unwrap();
    let again = h.append(&none_kept, Bytes::from("a"), HistoryOptions::default(), Some("k")).await.unwrap();
    assert!(!again.duplicate, "a topic that keeps no history keeps no keys");
}

/// Checks [`Presence`]: join, update, leave, order, empty keys.
pub async fn presence(p: &dyn Presence, prefix: &str) {
    let key = format!("{prefix}/presence");
    p.join(&key, "c1", Bytes::from("a")).await.unwrap();
    p.join(&key, "c2", Bytes::from("b")).await.unwrap();
    p.join(&key, "c1", Bytes::from("a2")).await.unwrap();
    let list = p.list(&key).await.unwrap();
    let conns: Vec<_> = list.iter().map(|e| (e.conn.as_str(), e.info.clone())).collect();
    assert_eq!(conns, [("c1", Bytes::from("a2")), ("c2", Bytes::from("b"))]);
    assert!(p.leave(&key, "c1").await.unwrap(), "a leave reports what it removed");
    assert!(!p.leave(&key, "c1").await.unwrap(), "and only that");
    assert!(!p.leave(&key, "c3").await.unwrap());
    assert_eq!(p.list(&key).await.unwrap().len(), 1);
    p.leave(&key, "c2").await.unwrap();
    assert!(p.list(&key).await.unwrap().is_empty());

    // A node's entries, under every key, go at once.
    let (k1, k2) = (format!("{prefix}/evict-1"), format!("{prefix}/evict-2"));
    let (dead, alive) = (format!("{prefix}dead"), format!("{prefix}alive"));
    p.join(&k1, &format!("{dead}.1"), Bytes::from("d1")).await.unwrap();
    p.join(&k1, &format!("{alive}.1"), Bytes::from("a1")).await.unwrap();
    p.join(&k2, &format!("{dead}.2"), Bytes::from("d2")).await.unwrap();
    let mut evicted = p.evict_node(&dead).await.unwrap();
    evicted.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        evicted.iter().map(|(k, e)| (k.as_str(), e.conn.as_str(), e.info.clone())).collect::<Vec<_>>(),
        [
            (k1.as_str(), &*format!("{dead}.1"), Bytes::from("d1")),
            (k2.as_str(), &*format!("{dead}.2"), Bytes::from("d2"))
        ]
    );
    let left: Vec<_> = p.list(&k1).await.unwrap().into_iter().map(|e| e.conn).collect();
    assert_eq!(left, [format!("{alive}.1")], "other nodes' entries stay");
    assert!(p.list(&k2).await.unwrap().is_empty());
    assert!(p.evict_node(&dead).await.unwrap().is_empty(), "evicted once");
    assert!(!p.leave(&k1, &format!("{dead}.1")).await.unwrap(), "an evicted entry is gone for leave too");
    p.leave(&k1, &format!("{alive}.1")).await.unwrap();
}

/// Checks [`Users`]: registration order, both cap policies, unregister.
pub async fn users(u: &dyn Users, prefix: &str) {
    let user = format!("{prefix}-user");
    let node: NodeId = Arc::from("n1");
    let conn = |c: &str| ConnRef { conn: Arc::from(c), node: node.clone() };
    let cap = Some((2, CapPolicy::EvictOldest));
    let first = u.register(&user, conn("a"), cap).await.unwrap();
    assert!(first.evicted.is_empty());
    assert_eq!(first.connections, 1, "the user's first connection");
    let second = u.register(&user, conn("b"), cap).await.unwrap();
    assert_eq!((second.evicted.len(), second.connections), (0, 2));
    let r = u.register(&user, conn("c"), cap).await.unwrap();
    assert_eq!(r.evicted, [conn("a")], "the oldest is evicted");
    assert_eq!(r.connections, 2);
    let conns: Vec<_> = u.connections(&user).await.unwrap().into_iter().map(|c| c.conn).collect();
    assert_eq!(conns, [Arc::from("b"), Arc::from("c")]);
    // When the registry answers at once, it agrees with the list.
    assert!(matches!(u.remote_count_now(&user, "n1"), None | Some(0)));
    assert!(matches!(u.remote_count_now(&user, "n2"), None | Some(2)));
    let refused = u.register(&user, conn("d"), Some((2, CapPolicy::RefuseNew))).await;
    assert!(matches!(refused, Err(BackendError::Limit)), "refuse_new refuses");
    assert_eq!(u.connections(&user).await.unwrap().len(), 2);
    let gone = u.unregister(&user, "b").await.unwrap();
    assert_eq!((gone.removed, gone.remaining), (true, 1));
    assert!(!u.unregister(&user, "b").await.unwrap().removed, "reported once");
    let last = u.unregister(&user, "c").await.unwrap();
    assert_eq!((last.removed, last.remaining), (true, 0), "the user's last connection");
    assert!(u.connections(&user).await.unwrap().is_empty());

    // A node's registrations, of every user, go at once.
    let (dead, alive): (NodeId, NodeId) =
        (Arc::from(format!("{prefix}-dead")), Arc::from(format!("{prefix}-alive")));
    let on = |c: &str, n: &NodeId| ConnRef { conn: Arc::from(c), node: n.clone() };
    let (u1, u2) = (format!("{prefix}-u1"), format!("{prefix}-u2"));
    u.register(&u1, on("d1", &dead), None).await.unwrap();
    u.register(&u1, on("a1", &alive), None).await.unwrap();
    u.register(&u2, on("d2", &dead), None).await.unwrap();
    u.register(&u2, on("d3", &dead), None).await.unwrap();
    let mut evicted = u.evict_node(&dead).await.unwrap();
    evicted.sort_by(|a, b| a.user.cmp(&b.user));
    assert_eq!(evicted.len(), 2);
    assert_eq!(
        (evicted[0].user.as_str(), evicted[0].conns.clone(), evicted[0].remaining),
        (u1.as_str(), vec![Arc::from("d1")], 1)
    );
    let mut two = evicted[1].conns.clone();
    two.sort();
    assert_eq!(
        (evicted[1].user.as_str(), two, evicted[1].remaining),
        (u2.as_str(), vec![Arc::from("d2"), Arc::from("d3")], 0)
    );
    assert_eq!(u.connections(&u1).await.unwrap(), [on("a1", &alive)]);
    assert!(u.connections(&u2).await.unwrap().is_empty());
    assert!(u.evict_node(&dead).await.unwrap().is_empty(), "evicted once");
    u.unregister(&u1, "a1").await.unwrap();
}

/// Checks [`RateLimiter`]: a new bucket is full, partial grants say when the next token comes,
/// tokens come back at the rate, keys are independent, and concurrent takes never get more than
/// the bucket holds (atomicity).
pub async fn rate_limiter(l: &dyn RateLimiter, prefix: &str) {
    let key = format!("{prefix}/bucket");
    let rate = Rate::new(10, 3);
    let g = l.take(&key, 5, rate).await.unwrap();
    assert_eq!(g.granted, 3, "a new bucket holds its burst");
    assert!(g.retry_after > Duration::ZERO && g.retry_after <= Duration::from_millis(100), "{g:?}");
    assert_eq!(l.take(&key, 1, rate).await.unwrap().granted, 0, "empty");
    tokio::time::sleep(Duration::from_millis(250)).await;
    let g = l.take(&key, 5, rate).await.unwrap();
    assert!((2..=3).contains(&g.granted), "~2.5 tokens back after 250 ms at 10/s: {g:?}");
    let other = format!("{prefix}/other");
    assert_eq!(l.take(&other, 2, rate).await.unwrap().granted, 2, "keys are independent");
    if let Some(now) = l.take_now(&other, 1, rate) {
        assert_eq!(now.granted, 1, "take_now takes from the same bucket");
    }

    // Many takes at once from a new bucket of 20 (1 back per second): 20 granted, maybe 21.
    let race = format!("{prefix}/race");
    let slow = Rate::new(1, 20);
    let takes = (0..60).map(|_| l.take(&race, 1, slow));
    let granted: u32 =
        futures_util::future::join_all(takes).await.into_iter().map(|g| g.unwrap().granted).sum();
    assert!((20..=21).contains(&granted), "{granted} tokens granted from a bucket of 20");
}

#[derive(Default)]
struct Recorder(Mutex<Vec<(Option<String>, Bytes)>>);

impl BrokerSink for Recorder {
    fn publication(&self, topic: &str, publication: Bytes) {
        self.0.lock().push((Some(topic.to_owned()), publication));
    }
    fn node_message(&self, message: Bytes) {
        self.0.lock().push((None, message));
    }
}

/// Checks [`Broker`] with two handles to the same cluster (for the memory broker, two clones;
/// for Redis, two connections): topic routing, no self-delivery, order, node messages.
pub async fn broker(a: &dyn Broker, b: &dyn Broker) {
    let (na, nb): (NodeId, NodeId) = (Arc::from("node-a"), Arc::from("node-b"));
    let (ra, rb) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
    a.attach(na.clone(), ra.clone()).await.unwrap();
    b.attach(nb.clone(), rb.clone()).await.unwrap();
    b.subscribe(&nb, "t/x").await.unwrap();
    a.subscribe(&na, "t/x").await.unwrap();
    for i in 0..10 {
        a.publish(&na, "t/x", Bytes::from(format!("{i}"))).await.unwrap();
    }
    a.publish(&na, "t/other", Bytes::from("nobody")).await.unwrap();
    a.send(&na, None, Bytes::from("all")).await.unwrap();
    a.send(&na, Some(&nb), Bytes::from("to-b")).await.unwrap();
    b.send(&nb, Some(&na), Bytes::from("to-a")).await.unwrap();
    let nowhere: NodeId = Arc::from("no-such-node");
    assert!(
        matches!(a.send(&na, Some(&nowhere), Bytes::from("lost")).await, Err(BackendError::NoSuchNode)),
        "a message for an unknown node is an error, not a silent loss"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while rb.0.lock().len() < 12 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got = rb.0.lock().clone();
    let expected: Vec<_> = (0..10)
        .map(|i| (Some("t/x".to_owned()), Bytes::from(format!("{i}"))))
        .chain([(None, Bytes::from("all")), (None, Bytes::from("to-b"))])
        .collect();
    assert_eq!(got, expected, "b gets a's publications in order, then its node messages");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(*ra.0.lock(), [(None, Bytes::from("to-a"))], "a never hears itself");
    b.unsubscribe(&nb, "t/x").await.unwrap();
    a.detach(&na).await.unwrap();
    b.detach(&nb).await.unwrap();
}

/// Checks the liveness part of [`Broker`] with two handles to the same cluster: a node that stops
/// beating is dead after its ttl, on both handles; one claimer at a time, a lapsed claim can be
/// taken over; a forgotten node is no longer listed, and its late beat learns it was cleaned up.
pub async fn liveness(a: &dyn Broker, b: &dyn Broker, prefix: &str) {
    let (na, nb): (NodeId, NodeId) =
        (Arc::from(format!("{prefix}-live-a")), Arc::from(format!("{prefix}-live-b")));
    let (ra, rb) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
    a.attach(na.clone(), ra.clone()).await.unwrap();
    b.attach(nb.clone(), rb.clone()).await.unwrap();
    let short = Duration::from_millis(300);
    let long = Duration::from_secs(30);
    assert_eq!(a.beat(&na, long).await.unwrap(), Beat::Alive, "a first beat");
    assert_eq!(b.beat(&nb, short).await.unwrap(), Beat::Alive);
    assert!(!a.dead_nodes().await.unwrap().contains(&nb), "alive while its ttl runs");
    assert!(!a.claim_dead(&nb, &na, long).await.unwrap(), "an alive node cannot be claimed");
    // b stops beating.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !a.dead_nodes().await.unwrap().contains(&nb) {
        assert!(tokio::time::Instant::now() < deadline, "b is dead once its ttl ran out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(b.dead_nodes().await.unwrap().contains(&nb), "every handle sees it");
    assert!(!a.dead_nodes().await.unwrap().contains(&na));
    let other: NodeId = Arc::from(format!("{prefix}-live-c"));
    assert!(a.claim_dead(&nb, &na, Duration::from_millis(200)).await.unwrap(), "a claims b's cleanup");
    assert!(a.claim_dead(&nb, &na, Duration::from_millis(200)).await.unwrap(), "and renews its claim");
    assert!(!b.claim_dead(&nb, &other, long).await.unwrap(), "one claimer at a time");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(b.claim_dead(&nb, &other, long).await.unwrap(), "a lapsed claim is taken over");
    b.forget_dead(&nb).await.unwrap();
    assert!(!a.dead_nodes().await.unwrap().contains(&nb), "forgotten once cleaned up");
    assert_eq!(b.beat(&nb, long).await.unwrap(), Beat::Lapsed { cleaned: true }, "a late beat learns it");
    assert_eq!(b.beat(&nb, long).await.unwrap(), Beat::Alive, "and is alive again from then on");
    a.detach(&na).await.unwrap();
    b.detach(&nb).await.unwrap();
}

/// Checks [`EventLog`](crate::EventLog) with two handles to the same log: per-key sequences
/// across handles, append order within a partition, one lease holder at a time and a lapsed lease
/// taken over, reading from the committed position (what was read and not committed is read
/// again), commit.
pub async fn event_log(a: &dyn crate::EventLog, b: &dyn crate::EventLog, prefix: &str) {
    let parts = a.partitions();
    assert!(parts >= 1 && parts == b.partitions(), "both handles see the same partitions");
    let key = format!("{prefix}-user");
    let e1 = a.append(&key, Bytes::from("one")).await.unwrap();
    let e2 = b.append(&key, Bytes::from("two")).await.unwrap();
    let e3 = a.append(&key, Bytes::from("three")).await.unwrap();
    assert_eq!((e1.seq, e2.seq, e3.seq), (1, 2, 3), "one sequence per key, across handles");
    assert_eq!(e1.key, key);
    // Find the key's partition: the one whose unread events include e1.
    let mut partition = None;
    for p in 0..parts {
        if a.read(p, 1000).await.unwrap().iter().any(|e| e.id == e1.id) {
            partition = Some(p);
        }
    }
    let p = partition.expect("the event is in one partition");
    let (na, nb): (NodeId, NodeId) = (Arc::from(format!("{prefix}-a")), Arc::from(format!("{prefix}-b")));
    assert!(a.lease(p, &na, Duration::from_millis(300)).await.unwrap(), "a takes the lease");
    assert!(a.lease(p, &na, Duration::from_millis(300)).await.unwrap(), "and renews it");
    assert!(!b.lease(p, &nb, Duration::from_secs(30)).await.unwrap(), "one holder at a time");
    let mine: Vec<_> = a.read(p, 1000).await.unwrap().into_iter().filter(|e| e.key == key).collect();
    assert_eq!(mine.iter().map(|e| e.data.clone()).collect::<Vec<_>>(), ["one", "two", "three"], "in order");
    // a delivers the first two and dies.
    a.commit(p, &mine[1].id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(b.lease(p, &nb, Duration::from_secs(30)).await.unwrap(), "a lapsed lease is taken over");
    let again: Vec<_> = b.read(p, 1000).await.unwrap().into_iter().filter(|e| e.key == key).collect();
    assert_eq!(again, mine[2..], "what was not committed is read again, nothing before");
    b.commit(p, &again[0].id).await.unwrap();
    assert!(b.read(p, 1000).await.unwrap().iter().all(|e| e.key != key), "all delivered");
    let e4 = b.append(&key, Bytes::from("four")).await.unwrap();
    assert!(e4.seq == 4 || e4.seq == 1, "the sequence goes on (or starts again once all was committed)");
    let next = b.read(p, 1000).await.unwrap();
    assert!(next.iter().any(|e| e.id == e4.id), "a new event after the committed position");
    b.commit(p, &next.last().unwrap().id).await.unwrap();
}

#[cfg(test)]
mod tests {
    use crate::*;

    #[tokio::test]
    async fn memory_backends_conform() {
        super::history(&MemoryHistory::new(), "m").await;
        super::presence(&MemoryPresence::new(), "m").await;
        super::users(&MemoryUsers::new(), "m").await;
        super::rate_limiter(&MemoryRateLimiter::new(), "m").await;
        let bus = MemoryBroker::new();
        super::broker(&bus, &bus.clone()).await;
        super::liveness(&bus, &bus.clone(), "m").await;
        let log = MemoryEventLog::new();
        super::event_log(&log, &log, "m").await;
    }
}
