//! The backends on a real 3-master Redis Cluster (`redis+cluster://`): the shared conformance
//! suite, sharded pub/sub across two instances, no zombies after a node dies, a master restart
//! in the middle of a stream, and the per-user cap under a race.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{RedisCluster, eventually, prefix};
use parking_lot::Mutex;
use switchboard_core::{
    BackendError, Backends, BrokerSink, CapPolicy, ConnRef, HistoryOptions, NodeId, Position, conformance,
};
use switchboard_redis::{ConnectError, RedisBackends, RedisOptions};

#[derive(Default)]
struct Recorder(Mutex<Vec<(Option<String>, Bytes)>>);

/// What `reconnected` records (as a node message nobody sends).
const RECONNECTED: &str = "<reconnected>";

impl BrokerSink for Recorder {
    fn publication(&self, topic: &str, publication: Bytes) {
        self.0.lock().push((Some(topic.to_owned()), publication));
    }
    fn node_message(&self, message: Bytes) {
        self.0.lock().push((None, message));
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

async fn two(cluster: &RedisCluster, options: &RedisOptions) -> (Backends, Backends) {
    let a = RedisBackends::connect(&cluster.url(), options.clone()).await.unwrap();
    let b = RedisBackends::connect(&cluster.url(), options.clone()).await.unwrap();
    (a, b)
}

fn conn(c: &str, n: &str) -> ConnRef {
    ConnRef { conn: Arc::from(c), node: Arc::from(n) }
}

#[tokio::test]
async fn cluster_backends_conform() {
    let cluster = RedisCluster::start();
    let (a, b) = two(&cluster, &RedisOptions::default().prefix(prefix("conformance"))).await;
    conformance::history(&*a.history, "r").await;
    conformance::presence(&*a.presence, "r").await;
    conformance::users(&*a.users, "r").await;
    conformance::rate_limiter(&*a.limiter, "r").await;
    conformance::history(&*b.history, "r2").await;
    conformance::presence(&*b.presence, "r2").await;
    conformance::users(&*b.users, "r2").await;
    conformance::broker(&*a.broker, &*b.broker).await;
    conformance::liveness(&*a.broker, &*b.broker, "r").await;
    conformance::event_log(&*a.events, &*b.events, "r").await;
}

#[tokio::test]
async fn cluster_urls_and_prefixes_are_checked() {
    let cluster = RedisCluster::start();
    for key in ["foo", "{sb:h:chat/a}:m", "sb:t:chat/a", "{}x", "a{}b{c}"] {
        assert_eq!(common::slot(key), cluster.keyslot(key), "{key}");
    }
    let r = RedisBackends::connect(&cluster.url(), RedisOptions::default().prefix("a{b}")).await;
    assert!(matches!(r, Err(ConnectError::InvalidOptions(_))), "{r:?}");
    // TLS (tests/tls.rs) to a cluster that speaks plain text: no handshake, unreachable.
    let tls = cluster.url().replace("redis+cluster://", "rediss+cluster://");
    let r =
        RedisBackends::connect(&tls, RedisOptions::default().connect_timeout(Duration::from_secs(1))).await;
    assert!(matches!(r, Err(ConnectError::Unreachable(_))), "{r:?}");
    // One seed is enough: the client learns the other masters from it.
    let one = format!("redis+cluster://127.0.0.1:{}", cluster.ports()[1]);
    let b = RedisBackends::connect(&one, RedisOptions::default().prefix(prefix("seed"))).await.unwrap();
    b.presence.join("room", "c", Bytes::from("x")).await.unwrap();
    assert_eq!(b.presence.list("room").await.unwrap().len(), 1);
}

/// Publications on many topics (channels on every master) reach the other instance through
/// sharded pub/sub, in order per topic; node messages and broadcasts too.
#[tokio::test]
async fn sharded_publications_cross_instances() {
    let cluster = RedisCluster::start();
    let p = prefix("sharded");
    let (a, b) = two(&cluster, &RedisOptions::default().prefix(&p)).await;
    let (na, nb): (NodeId, NodeId) = (Arc::from("na"), Arc::from("nb"));
    let (ra, rb) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
    a.broker.attach(na.clone(), ra.clone()).await.unwrap();
    b.broker.attach(nb.clone(), rb.clone()).await.unwrap();
    let topics: Vec<String> = (0..24).map(|i| format!("chat/{i}")).collect();
    for t in &topics {
        b.broker.subscribe(&nb, t).await.unwrap();
    }
    // The topic channels are spread over the masters, and they are shard channels.
    let masters: BTreeSet<u16> = topics.iter().map(|t| cluster.port_of(&format!("{p}:t:{t}"))).collect();
    assert_eq!(masters.len(), 3, "24 topics land on all 3 masters");
    for port in cluster.ports() {
        let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let shard: Vec<String> = redis::cmd("PUBSUB")
            .arg("SHARDCHANNELS")
            .arg(format!("{p}:t:*"))
            .query_async(&mut c)
            .await
            .unwrap();
        let classic: Vec<String> =
            redis::cmd("PUBSUB").arg("CHANNELS").arg(format!("{p}:*")).query_async(&mut c).await.unwrap();
        assert!(!shard.is_empty(), "node {port} carries shard channels");
        assert!(classic.is_empty(), "no classic pub/sub on a cluster: {classic:?}");
    }
    for i in 0..20 {
        for t in &topics {
            a.broker.publish(&na, t, Bytes::from(format!("{i}"))).await.unwrap();
        }
    }
    a.broker.send(&na, Some(&nb), Bytes::from("to-b")).await.unwrap();
    a.broker.send(&na, None, Bytes::from("all")).await.unwrap();
    let nowhere: NodeId = Arc::from("nowhere");
    assert!(matches!(
        a.broker.send(&na, Some(&nowhere), Bytes::from("x")).await,
        Err(BackendError::NoSuchNode)
    ));
    let all = topics.len() * 20 + 2;
    assert!(eventually(Duration::from_secs(10), async || rb.0.lock().len() == all).await);
    for t in &topics {
        let got: Vec<Bytes> =
            rb.0.lock().iter().filter(|(tt, _)| tt.as_deref() == Some(t)).map(|(_, b)| b.clone()).collect();
        let want: Vec<Bytes> = (0..20).map(|i| Bytes::from(format!("{i}"))).collect();
        assert_eq!(got, want, "in order on {t}");
    }
    assert!(rb.has(None, "to-b") && rb.has(None, "all"));
    assert!(ra.0.lock().is_empty(), "a never hears itself");
    // Unsubscribed topics stop arriving.
    b.broker.unsubscribe(&nb, &topics[0]).await.unwrap();
    a.broker.publish(&na, &topics[0], Bytes::from("late")).await.unwrap();
    a.broker.publish(&na, &topics[1], Bytes::from("late")).await.unwrap();
    assert!(eventually(Duration::from_secs(5), async || rb.has(Some(&topics[1]), "late")).await);
    assert!(!rb.has(Some(&topics[0]), "late"));
}

fn short_heartbeat(p: &str) -> RedisOptions {
    RedisOptions::default()
        .prefix(p)
        .timeout(Duration::from_secs(2))
        .heartbeat(Duration::from_millis(200), Duration::from_secs(2))
}

#[tokio::test]
async fn entries_of_a_dead_instance_disappear() {
    let cluster = RedisCluster::start();
    let p = prefix("death");
    let (a, b) = two(&cluster, &short_heartbeat(&p)).await;
    let rooms: Vec<String> = (0..6).map(|i| format!("room{i}")).collect();
    for r in &rooms {
        a.presence.join(r, "c-a", Bytes::from("a")).await.unwrap();
        b.presence.join(r, "c-b", Bytes::from("b")).await.unwrap();
    }
    a.presence.join("~directory", "c-a", Bytes::from("a")).await.unwrap();
    a.users.register("ada", conn("c-a", "na"), None).await.unwrap();
    b.users.register("ada", conn("c-b", "nb"), None).await.unwrap();
    a.users.register("bob", conn("c-a2", "na"), None).await.unwrap();
    let conns = |l: Vec<switchboard_core::PresenceEntry>| l.into_iter().map(|e| e.conn).collect::<Vec<_>>();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(conns(b.presence.list("room0").await.unwrap()), ["c-a", "c-b"], "alive past its TTL");

    drop(a);
    let gone = eventually(Duration::from_secs(6), async || {
        conns(b.presence.list("room0").await.unwrap()) == ["c-b"]
    })
    .await;
    assert!(gone, "the dead instance's presence goes after its heartbeat TTL");
    assert_eq!(b.users.connections("ada").await.unwrap(), [conn("c-b", "nb")]);
    let r = b.users.register("bob", conn("c-b2", "nb"), Some((1, CapPolicy::RefuseNew))).await;
    assert!(r.is_ok(), "bob's only connection was on the dead instance: {r:?}");
    let r = b.users.register("bob", conn("c-b3", "nb"), Some((1, CapPolicy::RefuseNew))).await;
    assert!(matches!(r, Err(BackendError::Limit)));
    // Nobody lists the directory or the other rooms: the sweep removes them on every master.
    let swept = eventually(Duration::from_secs(5), async || {
        let keys = cluster.keys(&format!("*{p}:*"));
        let directory = keys.iter().any(|k| k.contains("~directory"));
        let sets = keys.iter().filter(|k| k.starts_with(&format!("{{{p}:o:")) && k.ends_with(":e")).count();
        !directory && sets == 1
    })
    .await;
    assert!(
        swept,
        "the sweep removed the dead instance's entries and its set: {:?}",
        cluster.keys(&format!("*{p}:*"))
    );
    for r in &rooms {
        assert_eq!(conns(b.presence.list(r).await.unwrap()), ["c-b"]);
    }
}

/// A master restarts (empty) in the middle of a stream: sharded subscriptions on it come back by
/// themselves and the subscriber is told once they are, history in its slots starts a new epoch,
/// and entries in its slots are written again by their owners.
#[tokio::test]
async fn a_master_restart_mid_stream() {
    let mut cluster = RedisCluster::start();
    let p = prefix("restart");
    let options = RedisOptions::default()
        .prefix(&p)
        .timeout(Duration::from_millis(800))
        .heartbeat(Duration::from_millis(200), Duration::from_secs(3));
    let (a, b) = two(&cluster, &options).await;
    let (na, nb): (NodeId, NodeId) = (Arc::from("node-a"), Arc::from("node-b"));
    let (ra, rb) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
    a.broker.attach(na.clone(), ra.clone()).await.unwrap();
    b.broker.attach(nb.clone(), rb.clone()).await.unwrap();
    // The victim holds neither instance's heartbeat key, so that the instances notice the loss
    // by the master's new run id, not by their own heartbeat going missing.
    let owners: Vec<String> = {
        let owners_key = format!("{p}:owners");
        let mut c = redis::Client::open(format!("redis://127.0.0.1:{}", cluster.port_of(&owners_key)))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        redis::cmd("SMEMBERS").arg(owners_key).query_async(&mut c).await.unwrap()
    };
    assert_eq!(owners.len(), 2);
    let beats: BTreeSet<u16> = owners.iter().map(|o| cluster.port_of(&format!("{{{p}:o:{o}}}:a"))).collect();
    let victim = *cluster.ports().iter().find(|port| !beats.contains(port)).unwrap();
    // A topic whose channel and history live on the master that will restart.
    // (Names of several lengths: with one length the two slots are correlated, CRC16 being linear.)
    let topic = (0..5000)
        .map(|i| format!("t/{i}{}", "x".repeat(i % 13)))
        .find(|t| {
            cluster.port_of(&format!("{p}:t:{t}")) == victim
                && cluster.port_of(&format!("{{{p}:h:{t}}}:m")) == victim
        })
        .unwrap_or_else(|| {
            let seen: Vec<(u16, u16)> = (0..20)
                .map(|i| {
                    (cluster.port_of(&format!("{p}:t:t/{i}")), cluster.port_of(&format!("{{{p}:h:t/{i}}}:m")))
                })
                .collect();
            panic!("no topic on the victim {victim} (beats {beats:?}, ports {:?}): {seen:?}", cluster.ports())
        });
    let room = (0..1000)
        .map(|i| format!("room{i}"))
        .find(|r| cluster.port_of(&format!("{{{p}:p:{r}}}:z")) == victim)
        .expect("a room on the victim");
    b.broker.subscribe(&nb, &topic).await.unwrap();
    let opts = HistoryOptions { size: 10, ttl: None };
    let before = a.history.append(&topic, Bytes::from("h1"), opts, None).await.unwrap().position;
    a.broker.publish(&na, &topic, Bytes::from("before")).await.unwrap();
    assert!(eventually(Duration::from_secs(5), async || rb.has(Some(&topic), "before")).await);
    a.presence.join(&room, "conn-a", Bytes::from("info-a")).await.unwrap();
    let me = conn("conn-a", "node-a");
    a.users.register("ada", me.clone(), None).await.unwrap();

    assert!(!rb.has(None, RECONNECTED), "not on the first connection");
    cluster.kill(victim);
    assert!(a.broker.publish(&na, &topic, Bytes::from("during")).await.is_err(), "an error, not a loss");
    assert!(a.history.append(&topic, Bytes::from("h2"), opts, None).await.is_err());
    cluster.restart(victim);

    // b's subscription on the victim was lost: b is told once it is subscribed again, and from
    // then on a publication the victim accepts reaches b.
    assert!(eventually(Duration::from_secs(15), async || rb.has(None, RECONNECTED)).await, "b was told");
    let mut n = 0;
    let accepted = eventually(Duration::from_secs(15), async || {
        n += 1;
        a.broker.publish(&na, &topic, Bytes::from(format!("first-{n}"))).await.is_ok()
    })
    .await;
    assert!(accepted);
    assert!(
        eventually(Duration::from_secs(5), async || rb.has(Some(&topic), &format!("first-{n}"))).await,
        "the first publication accepted after b was told reaches b"
    );

    let mut n = 0;
    let through = eventually(Duration::from_secs(15), async || {
        n += 1;
        let _ = a.broker.publish(&na, &topic, Bytes::from(format!("after-{n}"))).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
        rb.has(Some(&topic), &format!("after-{n}"))
    })
    .await;
    assert!(through, "after the restart the subscription is back by itself");
    assert!(!rb.has(Some(&topic), "during"));
    // Node messages and broadcasts flow again in both directions (at most once: a message sent
    // while a subscription is being restored may be lost, so send until one arrives).
    let mut n = 0;
    let (mut last_to_a, mut last_all) = (None, None);
    let arrived = eventually(Duration::from_secs(15), async || {
        n += 1;
        last_to_a = Some(b.broker.send(&nb, Some(&na), Bytes::from(format!("to-a-{n}"))).await);
        last_all = Some(a.broker.send(&na, None, Bytes::from(format!("all-{n}"))).await);
        tokio::time::sleep(Duration::from_millis(30)).await;
        ra.has(None, &format!("to-a-{n}")) && rb.has(None, &format!("all-{n}"))
    })
    .await;
    if !arrived {
        let numsub = |channel: String| {
            let port = cluster.port_of(&channel);
            let out = std::process::Command::new("redis-cli")
                .args(["-p", &port.to_string(), "pubsub", "shardnumsub", &channel])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).replace('\n', " "))
                .unwrap_or_default();
            format!("{channel} on {port}: {out}")
        };
        panic!(
            "node messages after the restart (victim {victim}): to-a {last_to_a:?} ({}), all {last_all:?} ({})",
            numsub(format!("{p}:n:node-a")),
            numsub(format!("{p}:b")),
        );
    }

    // The history in the restarted master's slots is a new epoch: not recoverable.
    let after = a.history.append(&topic, Bytes::from("h3"), opts, None).await.unwrap().position;
    assert_ne!(after.epoch, before.epoch);
    assert_eq!(after.seq, 1);
    let r = b.history.recover(&topic, &Position { epoch: before.epoch.clone(), seq: 1 }).await.unwrap();
    assert!(!r.complete, "recovered: false");
    assert_eq!(r.position, after);

    // Presence and users in the restarted master's slots are written again by their owner.
    let back = eventually(Duration::from_secs(8), async || {
        let list = b.presence.list(&room).await.unwrap_or_default();
        let users = b.users.connections("ada").await.unwrap_or_default();
        list.len() == 1 && list[0].conn == "conn-a" && list[0].info == "info-a" && users == [me.clone()]
    })
    .await;
    assert!(back, "presence and users are written again after a master lost them");

    b.broker.unsubscribe(&nb, &topic).await.unwrap();
    a.broker.publish(&na, &topic, Bytes::from("after-unsub")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!rb.has(Some(&topic), "after-unsub"));
}

/// The cap holds cluster-wide when two instances register the same user at once.
#[tokio::test]
async fn the_cap_holds_across_instances() {
    let cluster = RedisCluster::start();
    let (a, b) = two(&cluster, &RedisOptions::default().prefix(prefix("cap"))).await;
    let cap = Some((3, CapPolicy::EvictOldest));
    let mut tasks = Vec::new();
    for (i, backends) in [a.clone(), b.clone()].into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut evicted = 0;
            for k in 0..50 {
                let me = conn(&format!("c{i}-{k}"), &format!("n{i}"));
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
    for round in 0..20 {
        let user = format!("bob{round}");
        let (r1, r2) = tokio::join!(
            a.users.register(&user, conn("x", "n0"), Some((1, CapPolicy::RefuseNew))),
            b.users.register(&user, conn("y", "n1"), Some((1, CapPolicy::RefuseNew))),
        );
        assert_eq!(u8::from(r1.is_ok()) + u8::from(r2.is_ok()), 1, "exactly one gets the last place");
        assert_eq!(b.users.connections(&user).await.unwrap().len(), 1);
    }
    // Consecutive sequence numbers from both instances at once.
    let opts = HistoryOptions { size: 1000, ttl: None };
    let mut tasks = Vec::new();
    for backends in [a.clone(), b.clone(), a.clone(), b.clone()] {
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..50 {
                seqs.push(
                    backends
                        .history
                        .append("t/seq", Bytes::from(format!("{i}")), opts, None)
                        .await
                        .unwrap()
                        .position
                        .seq,
                );
            }
            seqs
        }));
    }
    let mut all = BTreeSet::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    assert_eq!(all, (1..=200).collect());
}
