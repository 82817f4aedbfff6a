//! A node that dies leaves no zombies: its presence and user entries disappear once its
//! heartbeat expires, both when read and by the periodic sweep.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{RedisServer, eventually, prefix};
use switchboard_core::{BackendError, CapPolicy, ConnRef};
use switchboard_redis::{RedisBackends, RedisOptions};

fn options(p: &str) -> RedisOptions {
    RedisOptions::default().prefix(p).heartbeat(Duration::from_millis(100), Duration::from_millis(600))
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
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(conns(b.presence.list("room").await.unwrap()), ["c-a", "c-b"]);
    assert_eq!(b.users.connections("ada").await.unwrap(), [conn("c-a", "na"), conn("c-b", "nb")]);

    drop(a); // the process dies: no leave, no unregister, its heartbeat stops

    let gone =
        eventually(Duration::from_secs(3), async || conns(b.presence.list("room").await.unwrap()) == ["c-b"])
            .await;
    assert!(gone, "the dead node's presence goes after its heartbeat TTL");
    assert_eq!(b.users.connections("ada").await.unwrap(), [conn("c-b", "nb")]);
    // A dead node's connections do not count against the cap.
    let r = b.users.register("bob", conn("c-b2", "nb"), Some((1, CapPolicy::RefuseNew))).await;
    assert!(r.is_ok(), "bob's only connection was on the dead node: {r:?}");
    let r = b.users.register("bob", conn("c-b3", "nb"), Some((1, CapPolicy::RefuseNew))).await;
    assert!(matches!(r, Err(BackendError::Limit)));

    // Nobody listed the directory: the sweep removes it anyway.
    let swept = eventually(Duration::from_secs(3), async || {
        let mut c =
            redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS").arg(format!("*{p}:*")).query_async(&mut c).await.unwrap();
        !keys.iter().any(|k| k.contains("~directory"))
            && keys.iter().filter(|k| k.starts_with(&format!("{{{p}:o:")) && k.ends_with(":e")).count() == 1
    })
    .await;
    assert!(swept, "the sweep removed the dead node's directory entry and its set");
}
