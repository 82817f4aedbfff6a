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
    conformance::rate_limiter(&*a.limiter, "r").await;
    // Across two connections (two processes' worth): what one writes the other reads.
    conformance::history(&*b.history, "r2").await;
    conformance::presence(&*b.presence, "r2").await;
    conformance::users(&*b.users, "r2").await;
    conformance::rate_limiter(&*b.limiter, "r2").await;
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

#[tokio::test]
async fn rate_limits_hold_across_nodes() {
    let redis = RedisServer::start();
    let p = prefix("rates");
    let a = RedisBackends::connect(&redis.url(), RedisOptions::default().prefix(&p)).await.unwrap();
    let b = RedisBackends::connect(&redis.url(), RedisOptions::default().prefix(&p)).await.unwrap();
    // Two nodes take from one bucket of 30 (1 back per second) at once: 30 in all, maybe 31.
    let rate = switchboard_core::Rate::new(1, 30);
    let takes = (0..50)
        .map(|i| if i % 2 == 0 { a.limiter.take("user", 1, rate) } else { b.limiter.take("user", 1, rate) });
    let granted: u32 =
        futures_util::future::join_all(takes).await.into_iter().map(|g| g.unwrap().granted).sum();
    assert!((30..=31).contains(&granted), "{granted}");
}
