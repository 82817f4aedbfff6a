//! The event log on a real Redis: two nodes numbering one key without gaps or duplicates, a
//! lease holder that stops renewing taken over (what it read and did not commit is read again),
//! the bound per partition, the numbering rule, what a Redis restart does without persistence
//! and with an append-only file, and the failure rule.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{RedisServer, eventually, prefix};
use switchboard_core::{BackendError, Backends, EventLog, LoggedEvent, NodeId};
use switchboard_redis::{ConnectError, RedisBackends, RedisOptions};

async fn two(redis: &RedisServer, options: &RedisOptions) -> (Backends, Backends) {
    let a = RedisBackends::connect(&redis.url(), options.clone()).await.unwrap();
    let b = RedisBackends::connect(&redis.url(), options.clone()).await.unwrap();
    (a, b)
}

/// The partition an event is in (its id is `N-<stream id>`).
fn partition(e: &LoggedEvent) -> usize {
    e.id.split_once('-').and_then(|(p, _)| p.parse().ok()).expect("an id N-<stream id>")
}

/// `key`'s events not committed, in the order the log gives them.
async fn unread(log: &dyn EventLog, p: usize, key: &str) -> Vec<LoggedEvent> {
    log.read(p, 100_000).await.unwrap().into_iter().filter(|e| e.key == key).collect()
}

async fn redis_conn(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap()
}

#[tokio::test]
async fn two_nodes_number_one_key_without_gaps_or_duplicates() {
    let redis = RedisServer::start();
    let (a, b) = two(&redis, &RedisOptions::default().prefix(prefix("ev-seq"))).await;
    let (a, b) = (a.events.clone(), b.events.clone());
    let mut tasks = Vec::new();
    for i in 0..200 {
        let log = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move { log.append("user:ada", Bytes::from(format!("e{i}"))).await }));
    }
    let mut appended = Vec::new();
    for t in tasks {
        appended.push(t.await.unwrap().unwrap());
    }
    let seqs: BTreeSet<u64> = appended.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=200).collect(), "1..200, each once");
    let ids: BTreeSet<&str> = appended.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), 200, "unique ids");
    let p = partition(&appended[0]);
    assert!(appended.iter().all(|e| partition(e) == p), "one key, one partition");
    // Read in the order of the key's sequence, from either node, with what was appended.
    for log in [&a, &b] {
        let read = unread(&**log, p, "user:ada").await;
        assert_eq!(read.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=200).collect::<Vec<_>>());
        for e in &read {
            assert!(appended.contains(e), "{e:?} as appended");
        }
    }
    // Both nodes map every key to the same partition.
    for i in 0..50 {
        let key = format!("user:{i}");
        let (x, y) =
            (a.append(&key, Bytes::new()).await.unwrap(), b.append(&key, Bytes::new()).await.unwrap());
        assert_eq!(partition(&x), partition(&y), "{key}");
        assert_eq!((x.seq, y.seq), (1, 2));
    }
}

#[tokio::test]
async fn a_holder_that_stops_renewing_is_taken_over_and_its_uncommitted_events_read_again() {
    let redis = RedisServer::start();
    let px = prefix("ev-lease");
    let (a, b) = two(&redis, &RedisOptions::default().prefix(&px)).await;
    let (na, nb): (NodeId, NodeId) = (Arc::from("node-a"), Arc::from("node-b"));
    let mut events = Vec::new();
    for i in 1..=4 {
        events.push(a.events.append("user:bob", Bytes::from(format!("e{i}"))).await.unwrap());
    }
    let p = partition(&events[0]);
    let short = Duration::from_millis(400);
    assert!(a.events.lease(p, &na, short).await.unwrap());
    assert!(!b.events.lease(p, &nb, Duration::from_secs(30)).await.unwrap(), "one holder at a time");
    let read = unread(&*a.events, p, "user:bob").await;
    assert_eq!(read, events);
    // a delivers the first two, commits them, reads the rest, and dies before committing it.
    a.events.commit(p, &read[1].id).await.unwrap();
    assert_eq!(unread(&*a.events, p, "user:bob").await, events[2..]);
    let taken = eventually(Duration::from_secs(5), async || {
        b.events.lease(p, &nb, Duration::from_secs(30)).await.unwrap()
    })
    .await;
    assert!(taken, "the lapsed lease is taken over");
    assert!(!a.events.lease(p, &na, short).await.unwrap(), "a's late renewal is refused");
    let again = unread(&*b.events, p, "user:bob").await;
    assert_eq!(again, events[2..], "read again, nothing committed before");
    b.events.commit(p, &again[1].id).await.unwrap();
    assert!(unread(&*b.events, p, "user:bob").await.is_empty());
    // A late commit of what a had delivered changes nothing.
    a.events.commit(p, &read[1].id).await.unwrap();
    let next = b.events.append("user:bob", Bytes::from("e5")).await.unwrap();
    assert_eq!(next.seq, 5);
    assert_eq!(unread(&*b.events, p, "user:bob").await, std::slice::from_ref(&next));

    // The stream keeps only what was not committed.
    let mut c = redis_conn(&redis).await;
    let stream = format!("{{{px}:ev:{p}}}:s");
    let len: usize = redis::cmd("XLEN").arg(&stream).query_async(&mut c).await.unwrap();
    assert_eq!(len, 1);

    // Ids and partitions that name nothing here are harmless.
    let other = (p + 1) % b.events.partitions();
    for bad in ["", "x", "3", &format!("{p}-x-1"), &format!("{other}-1-0"), "99999-1-0"] {
        b.events.commit(p, bad).await.unwrap();
    }
    assert_eq!(unread(&*b.events, p, "user:bob").await, [next]);
    let out = b.events.partitions();
    assert!(!b.events.lease(out, &nb, short).await.unwrap());
    assert!(b.events.read(out, 10).await.unwrap().is_empty());
    b.events.commit(out, &format!("{out}-1-0")).await.unwrap();
    assert!(b.events.read(p, 0).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_full_partition_refuses_appends_and_drops_nothing() {
    let redis = RedisServer::start();
    let options = RedisOptions::default().prefix(prefix("ev-bound")).events(2, 3);
    let log = RedisBackends::connect(&redis.url(), options).await.unwrap().events;
    assert_eq!(log.partitions(), 2);
    let mut kept = Vec::new();
    for i in 1..=3 {
        kept.push(log.append("user:ada", Bytes::from(format!("e{i}"))).await.unwrap());
    }
    let p = partition(&kept[0]);
    let refused = log.append("user:ada", Bytes::from("e4")).await;
    assert!(matches!(refused, Err(BackendError::Limit)), "{refused:?}");
    assert_eq!(log.read(p, 10).await.unwrap(), kept, "nothing was dropped for it");
    // Another partition has room.
    let mut i = 0;
    let other = loop {
        i += 1;
        let e = log.append(&format!("user:{i}"), Bytes::new()).await.unwrap();
        if partition(&e) != p {
            break e;
        }
    };
    assert_eq!(other.seq, 1);
    // Once some were delivered, there is room again; the refused append took no number.
    log.commit(p, &kept[0].id).await.unwrap();
    let next = log.append("user:ada", Bytes::from("e4")).await.unwrap();
    assert_eq!(next.seq, 4);
    assert!(matches!(log.append("user:ada", Bytes::from("e5")).await, Err(BackendError::Limit)));
}

#[tokio::test]
async fn numbering_starts_again_only_after_all_was_committed_and_the_key_stayed_quiet() {
    let redis = RedisServer::start();
    let p = prefix("ev-idle");
    // Long enough that the steps between the commit and the next append fit in it on a loaded
    // machine.
    let idle = Duration::from_millis(1000);
    let log = RedisBackends::connect(&redis.url(), RedisOptions::default().prefix(&p).event_key_idle(idle))
        .await
        .unwrap()
        .events;
    let mut c = redis_conn(&redis).await;
    let e1 = log.append("user:ada", Bytes::from("1")).await.unwrap();
    let part = partition(&e1);
    let counter = format!("{{{p}:ev:{part}}}:q:user:ada");
    let ttl = async |c: &mut redis::aio::MultiplexedConnection| -> i64 {
        redis::cmd("PTTL").arg(&counter).query_async(c).await.unwrap()
    };
    assert_eq!(ttl(&mut c).await, -1, "no expiry while an event is not committed");
    tokio::time::sleep(idle * 3).await;
    let e2 = log.append("user:ada", Bytes::from("2")).await.unwrap();
    assert_eq!(e2.seq, 2, "quiet, but not committed: remembered");
    log.commit(part, &e1.id).await.unwrap();
    assert_eq!(ttl(&mut c).await, -1, "e2 is not committed yet");
    log.commit(part, &e2.id).await.unwrap();
    assert!(ttl(&mut c).await > 0, "all committed: the counter expires");
    let e3 = log.append("user:ada", Bytes::from("3")).await.unwrap();
    assert_eq!(e3.seq, 3, "not quiet long enough");
    assert_eq!(ttl(&mut c).await, -1, "an append takes the expiry off");
    log.commit(part, &e3.id).await.unwrap();
    let gone = eventually(Duration::from_secs(5), async || ttl(&mut c).await == -2).await;
    assert!(gone, "the counter of a quiet, delivered key is dropped");
    let e4 = log.append("user:ada", Bytes::from("4")).await.unwrap();
    assert_eq!(e4.seq, 1, "and its numbering starts again");
    assert_ne!(e4.id, e1.id);
}

#[tokio::test]
async fn without_persistence_a_redis_restart_empties_the_log() {
    let mut redis = RedisServer::start();
    let options = RedisOptions::default().prefix(prefix("ev-lost")).timeout(Duration::from_secs(2));
    let log = RedisBackends::connect(&redis.url(), options).await.unwrap().events;
    let e1 = log.append("user:ada", Bytes::from("1")).await.unwrap();
    log.append("user:ada", Bytes::from("2")).await.unwrap();
    let p = partition(&e1);
    redis.restart();
    let mut after = None;
    assert!(
        eventually(Duration::from_secs(10), async || {
            after = log.append("user:ada", Bytes::from("3")).await.ok();
            after.is_some()
        })
        .await
    );
    let after = after.unwrap();
    assert_eq!(after.seq, 1, "the numbering was lost with the log");
    assert_eq!(log.read(p, 10).await.unwrap(), [after], "the events not delivered were lost");
}

#[tokio::test]
async fn with_an_append_only_file_the_log_survives_a_restart() {
    let mut redis = RedisServer::start_persistent();
    let options = RedisOptions::default().prefix(prefix("ev-aof")).timeout(Duration::from_millis(500));
    let (a, b) = two(&redis, &options).await;
    let (na, nb): (NodeId, NodeId) = (Arc::from("node-a"), Arc::from("node-b"));
    let mut events = Vec::new();
    for i in 1..=3 {
        events.push(a.events.append("user:ada", Bytes::from(format!("e{i}"))).await.unwrap());
    }
    let p = partition(&events[0]);
    assert!(a.events.lease(p, &na, Duration::from_millis(300)).await.unwrap());
    assert_eq!(unread(&*a.events, p, "user:ada").await, events);
    a.events.commit(p, &events[0].id).await.unwrap();
    // Redis is killed (SIGKILL) and started again on its append-only file; node a is gone too.
    redis.restart();
    drop(a);
    let taken = eventually(Duration::from_secs(10), async || {
        b.events.lease(p, &nb, Duration::from_secs(30)).await.unwrap_or(false)
    })
    .await;
    assert!(taken);
    let again = unread(&*b.events, p, "user:ada").await;
    assert_eq!(again, events[1..], "appended, not committed: read again after the restart");
    let next = b.events.append("user:ada", Bytes::from("e4")).await.unwrap();
    assert_eq!(next.seq, 4, "the numbering survived too");
    b.events.commit(p, &next.id).await.unwrap();
    assert!(unread(&*b.events, p, "user:ada").await.is_empty());
}

#[tokio::test]
async fn failures_are_indeterminate_when_sent_and_unavailable_when_not() {
    let mut redis = RedisServer::start();
    let options = RedisOptions::default().prefix(prefix("ev-fail")).timeout(Duration::from_millis(300));
    let log = RedisBackends::connect(&redis.url(), options).await.unwrap().events;
    let e1 = log.append("user:ada", Bytes::from("1")).await.unwrap();
    let p = partition(&e1);
    let node: NodeId = Arc::from("n");
    // Each script runs once first, so Redis has it: a script sent while Redis is paused is sent
    // by its hash, and one Redis does not know yet would be refused (`NOSCRIPT`) when it goes on,
    // with nobody left to send it again.
    assert!(log.lease(p, &node, Duration::from_millis(1)).await.unwrap());
    log.commit(p, &format!("{p}-0-0")).await.unwrap();
    assert_eq!(log.read(p, 10).await.unwrap(), std::slice::from_ref(&e1), "committing 0-0 trims nothing");

    redis.pause();
    let r = log.append("user:ada", Bytes::from("2")).await;
    assert!(matches!(r, Err(BackendError::Indeterminate(_))), "sent, unanswered: {r:?}");
    let r = log.lease(p, &node, Duration::from_secs(1)).await;
    assert!(matches!(r, Err(BackendError::Indeterminate(_))), "{r:?}");
    let r = log.commit(p, &e1.id).await;
    assert!(matches!(r, Err(BackendError::Indeterminate(_))), "{r:?}");
    let r = log.read(p, 10).await;
    assert!(matches!(r, Err(BackendError::Unavailable(_))), "a read has nothing to apply: {r:?}");
    redis.resume();
    // What was sent ran when Redis went on: e1 committed, e2 appended.
    let mut read = Vec::new();
    assert!(
        eventually(Duration::from_secs(5), async || {
            read = log.read(p, 10).await.unwrap_or_default();
            read.len() == 1
        })
        .await,
        "{read:?}"
    );
    assert_eq!((read[0].seq, &read[0].data[..]), (2, &b"2"[..]));

    redis.stop();
    let mut last = None;
    let refused = eventually(Duration::from_secs(5), async || {
        let r = log.append("user:ada", Bytes::from("3")).await;
        let unavailable = matches!(r, Err(BackendError::Unavailable(_)));
        last = Some(r);
        unavailable
    })
    .await;
    assert!(refused, "connection refused is unavailable: {last:?}");
}

#[tokio::test]
async fn a_log_without_partitions_or_room_is_refused_at_connect() {
    let redis = RedisServer::start();
    let mut none = RedisOptions::default();
    none.event_partitions = 0;
    let r = RedisBackends::connect(&redis.url(), none).await;
    assert!(matches!(r, Err(ConnectError::InvalidOptions(_))), "{:?}", r.err());
    let r = RedisBackends::connect(&redis.url(), RedisOptions::default().events(4, 0)).await;
    assert!(matches!(r, Err(ConnectError::InvalidOptions(_))), "{:?}", r.err());
    assert_eq!(RedisOptions::default().events(0, 10).event_partitions, 1, "the builder keeps one");
}
