//! The shared conformance suite of `switchboard-core`, against a real Redis.

mod common;

use common::{RedisServer, prefix};
use switchboard_core::conformance;
use switchboard_redis::{RedisBackends, RedisOptions};

#[tokio::test]
async fn redis_backends_conform() {
    let redis = RedisServer::start();
    let p = prefix("conformance");
    let a = RedisBackends::connect(&redis.url(), RedisOptions::default().prefix(&p)).await.unwrap();
    let b = RedisBackends::connect(&redis.url(), RedisOptions::default().prefix(&p)).await.unwrap();
    conformance::history(&*a.history, "r").await;
    conformance::presence(&*a.presence, "r").await;
    conformance::users(&*a.users, "r").await;
    // Across two connections (two processes' worth): what one writes the other reads.
    conformance::history(&*b.history, "r2").await;
    conformance::presence(&*b.presence, "r2").await;
    conformance::users(&*b.users, "r2").await;
    conformance::broker(&*a.broker, &*b.broker).await;
    conformance::liveness(&*a.broker, &*b.broker, "r").await;
    conformance::event_log(&*a.events, &*b.events, "r").await;
}

#[tokio::test]
async fn two_prefixes_do_not_see_each_other() {
    let redis = RedisServer::start();
    let a =
        RedisBackends::connect(&redis.url(), RedisOptions::default().prefix(prefix("one"))).await.unwrap();
    let b =
        RedisBackends::connect(&redis.url(), RedisOptions::default().prefix(prefix("two"))).await.unwrap();
    a.presence.join("room", "c1", "x".into()).await.unwrap();
    assert!(b.presence.list("room").await.unwrap().is_empty());
    assert_eq!(a.presence.list("room").await.unwrap().len(), 1);
}

#[tokio::test]
async fn unreachable_redis_is_an_error_at_connect() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let r = RedisBackends::connect(&format!("redis://127.0.0.1:{port}"), RedisOptions::default()).await;
    assert!(r.is_err());
    assert!(RedisBackends::connect("not a url", RedisOptions::default()).await.is_err());
}
