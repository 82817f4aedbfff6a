//! What several nodes doing things at once must not break: consecutive sequence numbers, the
//! per-user cap, and the pub/sub connection being cut by Redis.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{RedisServer, eventually, prefix};
use parking_lot::Mutex;
use switchboard_core::{Backends, BrokerSink, CapPolicy, ConnRef, HistoryOptions, NodeId, Position};
use switchboard_redis::{RedisBackends, RedisOptions};

async fn two(redis: &RedisServer, name: &str) -> (Backends, Backends) {
    let p = prefix(name);
    let a = RedisBackends::connect(&redis.url(), RedisOptions::default().prefix(&p)).await.unwrap();
    let b = RedisBackends::connect(&redis.url(), RedisOptions::default().prefix(&p)).await.unwrap();
    (a, b)
}

#[tokio::test]
async fn sequence_numbers_are_consecutive_across_nodes() {
    let redis = RedisServer::start();
    let (a, b) = two(&redis, "seq").await;
    let opts = HistoryOptions { size: 1000, ttl: None };
    let mut tasks = Vec::new();
    for backends in [a.clone(), b.clone(), a.clone(), b.clone()] {
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..100 {
                let p = backends
                    .history
                    .append("t/seq", Bytes::from(format!("m{i}")), opts, None)
                    .await
                    .unwrap()
                    .position;
                seqs.push((p.epoch, p.seq));
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let epochs: BTreeSet<_> = all.iter().map(|(e, _)| e.clone()).collect();
    assert_eq!(epochs.len(), 1, "one epoch");
    let seqs: BTreeSet<_> = all.iter().map(|(_, s)| *s).collect();
    assert_eq!(seqs, (1..=400).collect(), "400 distinct consecutive numbers");
    let epoch = epochs.into_iter().next().unwrap();
    let r = b.history.recover("t/seq", &Position { epoch, seq: 0 }).await.unwrap();
    assert!(r.complete);
    assert_eq!(r.publications.iter().map(|p| p.seq).collect::<Vec<_>>(), (1..=400).collect::<Vec<_>>());
}

#[tokio::test]
async fn history_ttl_and_unknown_topics() {
    let redis = RedisServer::start();
    let (a, b) = two(&redis, "ttl").await;
    let opts = HistoryOptions { size: 10, ttl: Some(Duration::from_millis(600)) };
    let p1 = a.history.append("t/ttl", Bytes::from("1"), opts, None).await.unwrap().position;
    tokio::time::sleep(Duration::from_millis(400)).await;
    a.history.append("t/ttl", Bytes::from("2"), opts, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // 1 expired, 2 is kept: seq 1 → incomplete, but seq 2 is still there.
    let since0 = Position { epoch: p1.epoch.clone(), seq: 0 };
    let r = b.history.recover("t/ttl", &since0).await.unwrap();
    assert!(!r.complete);
    assert_eq!(r.publications.iter().map(|p| p.seq).collect::<Vec<_>>(), [2]);
    let r = b.history.recover("t/ttl", &Position { epoch: p1.epoch.clone(), seq: 1 }).await.unwrap();
    assert!(r.complete);
    // A position never published to starts at 0 and is shared by the nodes.
    let pa = a.history.position("t/new").await.unwrap();
    let pb = b.history.position("t/new").await.unwrap();
    assert_eq!((pa.seq, &pa.epoch), (0, &pb.epoch));
    // A `since` beyond the current position is not recoverable.
    let r = b.history.recover("t/new", &Position { epoch: pa.epoch.clone(), seq: 7 }).await.unwrap();
    assert!(!r.complete);
}

#[tokio::test]
async fn the_cap_holds_when_nodes_register_at_once() {
    let redis = RedisServer::start();
    let (a, b) = two(&redis, "cap").await;
    let cap = Some((3, CapPolicy::EvictOldest));
    let mut tasks = Vec::new();
    for (i, backends) in [a.clone(), b.clone()].into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut evicted = 0;
            for k in 0..50 {
                let node: NodeId = Arc::from(format!("n{i}"));
                let me = ConnRef { conn: Arc::from(format!("c{i}-{k}")), node };
                evicted += backends.users.register("ada", me, cap).await.unwrap().evicted.len();
            }
            evicted
        }));
    }
    let mut evicted = 0;
    for t in tasks {
        evicted += t.await.unwrap();
    }
    assert_eq!(evicted, 97, "every registration beyond 3 evicted exactly one");
    assert_eq!(a.users.connections("ada").await.unwrap().len(), 3);
    // refuse_new, with both nodes trying at once: exactly one gets the last place.
    let (r1, r2) = tokio::join!(
        a.users.register(
            "bob",
            ConnRef { conn: Arc::from("x"), node: Arc::from("n0") },
            Some((1, CapPolicy::RefuseNew))
        ),
        b.users.register(
            "bob",
            ConnRef { conn: Arc::from("y"), node: Arc::from("n1") },
            Some((1, CapPolicy::RefuseNew))
        ),
    );
    assert_eq!(u8::from(r1.is_ok()) + u8::from(r2.is_ok()), 1);
}

#[tokio::test]
async fn presence_order_is_join_order_across_nodes() {
    let redis = RedisServer::start();
    let (a, b) = two(&redis, "order").await;
    a.presence.join("k", "c1", Bytes::from("1")).await.unwrap();
    b.presence.join("k", "c2", Bytes::from("2")).await.unwrap();
    a.presence.join("k", "c3", Bytes::from("3")).await.unwrap();
    b.presence.join("k", "c2", Bytes::from("2b")).await.unwrap();
    let list = a.presence.list("k").await.unwrap();
    let got: Vec<_> = list.iter().map(|e| (e.conn.as_str(), e.info.clone())).collect();
    assert_eq!(got, [("c1", Bytes::from("1")), ("c2", Bytes::from("2b")), ("c3", Bytes::from("3"))]);
    b.presence.leave("k", "c1").await.unwrap();
    assert_eq!(b.presence.list("k").await.unwrap().len(), 2);
}

#[derive(Default)]
struct Recorder(Mutex<Vec<Bytes>>);

impl BrokerSink for Recorder {
    fn publication(&self, _: &str, publication: Bytes) {
        self.0.lock().push(publication);
    }
    fn node_message(&self, message: Bytes) {
        self.0.lock().push(message);
    }
}

#[tokio::test]
async fn the_broker_resubscribes_when_redis_drops_its_connection() {
    let redis = RedisServer::start();
    let (a, b) = two(&redis, "kill").await;
    let (na, nb): (NodeId, NodeId) = (Arc::from("na"), Arc::from("nb"));
    let rb = Arc::new(Recorder::default());
    a.broker.attach(na.clone(), Arc::new(Recorder::default())).await.unwrap();
    b.broker.attach(nb.clone(), rb.clone()).await.unwrap();
    b.broker.subscribe(&nb, "t/k").await.unwrap();
    let mut c = redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let killed: i64 =
        redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("pubsub").query_async(&mut c).await.unwrap();
    assert!(killed >= 2);
    let mut n = 0;
    let ok = eventually(Duration::from_secs(5), async || {
        n += 1;
        let _ = a.broker.publish(&na, "t/k", Bytes::from(format!("{n}"))).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        rb.0.lock().iter().any(|m| m == format!("{n}").as_bytes())
    })
    .await;
    assert!(ok);
    assert!(a.broker.send(&na, Some(&nb), Bytes::from("direct")).await.is_ok());
}

#[tokio::test]
async fn publications_flow_in_order_under_load() {
    let redis = RedisServer::start();
    let (a, b) = two(&redis, "load").await;
    let (na, nb): (NodeId, NodeId) = (Arc::from("na"), Arc::from("nb"));
    let rb = Arc::new(Recorder::default());
    a.broker.attach(na.clone(), Arc::new(Recorder::default())).await.unwrap();
    b.broker.attach(nb.clone(), rb.clone()).await.unwrap();
    b.broker.subscribe(&nb, "t/load").await.unwrap();
    const N: u32 = 20_000;
    let start = std::time::Instant::now();
    // Concurrent publishers (pipelined on one connection); each publisher's order must hold.
    let mut tasks = Vec::new();
    for w in 0..4u32 {
        let a = a.clone();
        let na = na.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..N / 4 {
                let mut v = w.to_be_bytes().to_vec();
                v.extend_from_slice(&i.to_be_bytes());
                a.broker.publish(&na, "t/load", Bytes::from(v)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(eventually(Duration::from_secs(20), async || rb.0.lock().len() == N as usize).await);
    let elapsed = start.elapsed();
    let mut last = [None::<u32>; 4];
    for m in rb.0.lock().iter() {
        let w = u32::from_be_bytes(m[..4].try_into().unwrap()) as usize;
        let i = u32::from_be_bytes(m[4..8].try_into().unwrap());
        assert_eq!(last[w].map_or(0, |l| l + 1), i, "per-publisher order");
        last[w] = Some(i);
    }
    eprintln!("{N} cross-node publications in {elapsed:?} ({:.0}/s)", f64::from(N) / elapsed.as_secs_f64());
}

/// What the framework does per publication on one topic (append, then publish, one after the
/// other under the topic's order lock), measured; and the order holds across nodes.
#[tokio::test]
async fn one_topic_append_then_publish_rate() {
    let redis = RedisServer::start();
    let (a, b) = two(&redis, "rate").await;
    let (na, nb): (NodeId, NodeId) = (Arc::from("na"), Arc::from("nb"));
    let rb = Arc::new(Recorder::default());
    a.broker.attach(na.clone(), Arc::new(Recorder::default())).await.unwrap();
    b.broker.attach(nb.clone(), rb.clone()).await.unwrap();
    b.broker.subscribe(&nb, "chat/rate").await.unwrap();
    const N: u64 = 3_000;
    let opts = HistoryOptions { size: 100, ttl: None };
    let start = std::time::Instant::now();
    for i in 0..N {
        let p =
            a.history.append("chat/rate", Bytes::from(format!("{i}")), opts, None).await.unwrap().position;
        let mut wire = p.seq.to_be_bytes().to_vec();
        wire.extend_from_slice(format!("{i}").as_bytes());
        a.broker.publish(&na, "chat/rate", Bytes::from(wire)).await.unwrap();
    }
    assert!(eventually(Duration::from_secs(20), async || rb.0.lock().len() == N as usize).await);
    let elapsed = start.elapsed();
    for (k, m) in rb.0.lock().iter().enumerate() {
        assert_eq!(u64::from_be_bytes(m[..8].try_into().unwrap()), k as u64 + 1);
    }
    eprintln!("{N} append+publish on one topic in {elapsed:?} ({:.0}/s)", N as f64 / elapsed.as_secs_f64());
}
