//! A node that dies leaves no zombies: its presence and user entries disappear once its
//! heartbeat expires, both when read and by the periodic sweep. A node that survivors declared
//! dead and evicted is never written again by its own process.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{RedisServer, eventually, prefix};
use switchboard_core::{BackendError, Beat, CapPolicy, ConnRef, NodeId};
use switchboard_redis::{RedisBackends, RedisOptions};

fn options(p: &str) -> RedisOptions {
    RedisOptions::default().prefix(p).heartbeat(Duration::from_millis(200), Duration::from_secs(2))
}

fn conn(c: &str, n: &str) -> ConnRef {
    ConnRef { conn: Arc::from(c), node: Arc::from(n) }
}

#[tokio::test]
async fn entries_of_a_dead_node_disappear() {
    let redis = RedisServer::start();
    let p = prefix("death");
    let a = RedisBackends::connect(&redis.url(), options(&p)).await.unwrap();
    let b = RedisBackends::connect(&redis.url(), options(&p)).await.unwrap();

    a.presence.join("room", "c-a", Bytes::from("a")).await.unwrap();
    b.presence.join("room", "c-b", Bytes::from("b")).await.unwrap();
    a.presence.join("~directory", "c-a", Bytes::from("a")).await.unwrap();
    a.users.register("ada", conn("c-a", "na"), None).await.unwrap();
    b.users.register("ada", conn("c-b", "nb"), None).await.unwrap();
    a.users.register("bob", conn("c-a2", "na"), None).await.unwrap();

    let conns = |l: Vec<switchboard_core::PresenceEntry>| l.into_iter().map(|e| e.conn).collect::<Vec<_>>();
    assert_eq!(conns(b.presence.list("room").await.unwrap()), ["c-a", "c-b"]);
    // Alive for longer than its TTL: the heartbeat keeps it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(conns(b.presence.list("room").await.unwrap()), ["c-a", "c-b"]);
    assert_eq!(b.users.connections("ada").await.unwrap(), [conn("c-a", "na"), conn("c-b", "nb")]);

    drop(a); // the process dies: no leave, no unregister, its heartbeat stops

    let gone =
        eventually(Duration::from_secs(6), async || conns(b.presence.list("room").await.unwrap()) == ["c-b"])
            .await;
    assert!(gone, "the dead node's presence goes after its heartbeat TTL");
    assert_eq!(b.users.connections("ada").await.unwrap(), [conn("c-b", "nb")]);
    // A dead node's connections do not count against the cap.
    let r = b.users.register("bob", conn("c-b2", "nb"), Some((1, CapPolicy::RefuseNew))).await;
    assert!(r.is_ok(), "bob's only connection was on the dead node: {r:?}");
    let r = b.users.register("bob", conn("c-b3", "nb"), Some((1, CapPolicy::RefuseNew))).await;
    assert!(matches!(r, Err(BackendError::Limit)));

    // Nobody listed the directory: the sweep removes it anyway.
    let swept = eventually(Duration::from_secs(6), async || {
        let mut c =
            redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS").arg(format!("*{p}:*")).query_async(&mut c).await.unwrap();
        !keys.iter().any(|k| k.contains("~directory"))
            && keys.iter().filter(|k| k.starts_with(&format!("{{{p}:o:")) && k.ends_with(":e")).count() == 1
    })
    .await;
    assert!(swept, "the sweep removed the dead node's directory entry and its set");
}

/// Every key of the prefix, with the members of the sets among them.
async fn keys_and_members(redis: &RedisServer, p: &str) -> Vec<(String, Vec<String>)> {
    let mut c = redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("*{p}:*")).query_async(&mut c).await.unwrap();
    let mut out = Vec::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE").arg(&key).query_async(&mut c).await.unwrap();
        let members = if kind == "set" {
            redis::cmd("SMEMBERS").arg(&key).query_async(&mut c).await.unwrap()
        } else {
            Vec::new()
        };
        out.push((key, members));
    }
    out
}

/// A survivor evicts nodes declared dead while their process still runs (cut off from Redis,
/// say): each entry is reported once and leaves its owner's and its node's sets; the process
/// never writes them again, neither when it finds a node's cleanup finished (tombstone) while
/// writing its entries again, nor after a node's late beat learned that it was cleaned up.
#[tokio::test]
async fn evicted_nodes_are_never_written_again() {
    let redis = RedisServer::start();
    let p = prefix("evicted");
    let a = RedisBackends::connect(&redis.url(), options(&p)).await.unwrap();
    let b = RedisBackends::connect(&redis.url(), options(&p)).await.unwrap();
    // a's process holds three nodes: na and nb will be declared dead, nc never beats. The
    // entries are written in this order (and written again in this order).
    let nodes: Vec<NodeId> = ["na", "nb", "nc"].into_iter().map(NodeId::from).collect();
    for n in &nodes {
        a.presence.join("room", &format!("{n}.1"), Bytes::from(format!("info-{n}"))).await.unwrap();
    }
    for n in &nodes {
        a.users.register(&format!("u-{n}"), conn(&format!("{n}.1"), n), None).await.unwrap();
    }
    let (na, nb, survivor): (NodeId, NodeId, NodeId) = (nodes[0].clone(), nodes[1].clone(), Arc::from("ns"));
    for n in [&na, &nb] {
        assert_eq!(a.broker.beat(n, Duration::from_millis(200)).await.unwrap(), Beat::Alive);
    }
    let both_dead = eventually(Duration::from_secs(5), async || {
        let dead = b.broker.dead_nodes().await.unwrap();
        dead.contains(&na) && dead.contains(&nb)
    })
    .await;
    assert!(both_dead);
    for dead in [&na, &nb] {
        assert!(b.broker.claim_dead(dead, &survivor, Duration::from_secs(10)).await.unwrap());
        let gone = b.presence.evict_node(dead).await.unwrap();
        let gone: Vec<_> = gone.into_iter().map(|(k, e)| (k, e.conn, e.info)).collect();
        assert_eq!(gone, [("room".to_owned(), format!("{dead}.1"), Bytes::from(format!("info-{dead}")))]);
        let users = b.users.evict_node(dead).await.unwrap();
        assert_eq!(users.len(), 1);
        assert_eq!(
            (users[0].user.clone(), users[0].conns.clone(), users[0].remaining),
            (format!("u-{dead}"), vec![NodeId::from(format!("{dead}.1"))], 0)
        );
        assert!(b.presence.evict_node(dead).await.unwrap().is_empty());
        assert!(b.users.evict_node(dead).await.unwrap().is_empty());
        b.broker.forget_dead(dead).await.unwrap();
    }
    // Nothing lists the evicted entries any more: neither their owner's set nor their nodes'.
    let sets = keys_and_members(&redis, &p).await;
    let listed: Vec<&String> = sets.iter().flat_map(|(_, m)| m).collect();
    assert!(listed.iter().any(|m| m.contains("nc.1")), "nc's entries are listed: {sets:?}");
    assert!(!listed.iter().any(|m| m.contains("na.1") || m.contains("nb.1")), "{sets:?}");
    for n in ["na", "nb"] {
        let index = [format!("{{{p}:N:{n}}}:p"), format!("{{{p}:N:{n}}}:u")];
        assert!(!sets.iter().any(|(k, _)| index.contains(k)), "{n}'s sets are gone: {sets:?}");
    }

    // nb comes back and learns it was cleaned up (its tombstone goes); na does not come back.
    assert_eq!(a.broker.beat(&nb, Duration::from_secs(30)).await.unwrap(), Beat::Lapsed { cleaned: true });

    // Redis loses everything but na's liveness keys: a's process notices (its heartbeat key is
    // gone) and writes its entries again, in their order: nc's, not na's nor nb's.
    let mut c = redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    for (key, _) in sets {
        if !key.starts_with(&format!("{{{p}:N:na}}")) {
            let _: i64 = redis::cmd("DEL").arg(&key).query_async(&mut c).await.unwrap();
        }
    }
    let back = eventually(Duration::from_secs(5), async || {
        b.users.connections("u-nc").await.unwrap() == [conn("nc.1", "nc")]
    })
    .await;
    assert!(back, "the entries of a node that is not dead are written again");
    let room: Vec<String> = b.presence.list("room").await.unwrap().into_iter().map(|e| e.conn).collect();
    assert_eq!(room, ["nc.1"], "the evicted entries are not written again");
    assert!(b.users.connections("u-na").await.unwrap().is_empty());
    assert!(b.users.connections("u-nb").await.unwrap().is_empty());
}
