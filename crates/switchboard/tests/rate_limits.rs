//! Rate limits (issue 16: `RATE_LIMITED` was in the protocol and never sent): token buckets per
//! connection and per user (cluster-wide, through the `RateLimiter` backend), for messages,
//! publications and subscriptions, per namespace; `RATE_LIMITED` with `retry_after_ms` for
//! requests, at most one id-less `~err` per second for events, 4501 for a connection that goes
//! on regardless — exact under pipelining (no race past a limit).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Client, main_ns, serve};
use futures_util::SinkExt;
use serde_json::{Value, json};
use switchboard::core::{
    BackendFuture, Backends, Grant, MemoryBroker, MemoryHistory, MemoryPresence, MemoryRateLimiter,
    MemoryUsers, Rate as CoreRate, RateLimiter,
};
use switchboard::{Config, LimitStats, Namespace, Rate, RateLimits, Server, Switchboard, TopicOptions};
use tokio_tungstenite::tungstenite::Message;

fn limits(f: impl FnOnce(&mut RateLimits)) -> Config {
    let mut config = Config::default();
    f(&mut config.rate_limits);
    config
}

async fn server(config: Config) -> (Switchboard, std::net::SocketAddr) {
    let ns = main_ns().topic("room/{x}", TopicOptions::new().clients_publish());
    let board = Server::new().config(config).namespace(ns).build().await.unwrap();
    let addr = serve(&board).await;
    (board, addr)
}

/// Sends `n` requests at once (pipelined), then reads their `n` replies: the results in the
/// order of their ids.
async fn pipelined(c: &mut Client, n: u64, msg: impl Fn(u64) -> Value) -> Vec<Result<Value, Value>> {
    for i in 0..n {
        c.ws.feed(Message::text(msg(i).to_string())).await.unwrap();
    }
    c.ws.flush().await.unwrap();
    let mut replies = Vec::new();
    for i in 0..n {
        let id = json!(1000 + i);
        let reply = c.expect(|m| m.get(2) == Some(&id) && (m[0] == "~ok" || m[0] == "~err")).await;
        replies.push(if reply[0] == "~ok" { Ok(reply[1].clone()) } else { Err(reply[1].clone()) });
    }
    replies
}

fn ping(i: u64) -> Value {
    json!(["~ping", null, 1000 + i])
}

fn limited(replies: &[Result<Value, Value>]) -> usize {
    replies.iter().filter(|r| r.as_ref().is_err_and(|e| e["code"] == "RATE_LIMITED")).count()
}

#[tokio::test]
async fn a_connection_gets_its_burst_then_rate_limited_with_a_retry_time() {
    // One token a second: none comes back while the 30 requests are read, however slow the
    // machine.
    let (board, addr) = server(limits(|l| l.messages = Some(Rate::new(1, 10)))).await;
    let (mut c, _) = Client::identified(addr, "ada").await;
    // The burst (10, one taken by ~hello) at once, exactly: pipelined requests never race past it.
    let replies = pipelined(&mut c, 30, ping).await;
    assert_eq!(replies.iter().filter(|r| r.is_ok()).count(), 9, "{replies:?}");
    assert_eq!(limited(&replies), 21);
    let e = replies.last().unwrap().as_ref().unwrap_err();
    let retry = e["data"]["retry_after_ms"].as_u64().unwrap();
    assert!((1..=1000).contains(&retry), "{e}");
    assert_eq!(LimitStats::of(&board.hub()).rate_limited_messages, 21);
    // After waiting as told, it passes again.
    tokio::time::sleep(Duration::from_millis(retry)).await;
    assert_eq!(c.call("~ping", json!(null)).await, Ok(json!(null)));
}

#[tokio::test]
async fn events_beyond_the_limit_get_one_error_per_second() {
    let (_board, addr) = server(limits(|l| l.messages = Some(Rate::new(1, 2)))).await;
    let mut c = Client::connect(addr).await;
    for _ in 0..50 {
        c.send(json!(["nothing", null])).await;
    }
    // A request right behind them is refused too (the bucket gives one back a second), and its
    // answer comes after every event was read.
    assert_eq!(c.call("~ping", json!(null)).await.unwrap_err()["code"], "RATE_LIMITED");
    // The first event gets NOT_FOUND (no handler), the second too; then one RATE_LIMITED.
    let e = c.expect(|m| m[0] == "~err" && m[1]["code"] == "RATE_LIMITED").await;
    assert!(e.get(2).is_none(), "an id-less ~err: {e}");
    assert!(e[1]["data"]["retry_after_ms"].as_u64().unwrap() > 0);
    c.inbox.retain(|m| m[1]["code"] == "RATE_LIMITED");
    assert!(c.inbox.is_empty(), "one error for 48 refused events: {:?}", c.inbox);
}

#[tokio::test]
async fn a_connection_that_goes_on_regardless_is_closed_with_4501() {
    let (board, addr) = server(limits(|l| {
        l.messages = Some(Rate::new(10, 10));
        l.close_after = 20;
    }))
    .await;
    let (mut calm, _) = Client::identified(addr, "calm").await;
    let (mut flood, _) = Client::identified(addr, "flood").await;
    for i in 0..200u64 {
        let _ = flood.ws.feed(Message::text(ping(i).to_string())).await;
    }
    let _ = flood.ws.flush().await;
    let (code, reason) = flood.closed().await;
    assert_eq!(code, 4501, "{reason}");
    assert!(reason.contains("rate limit"), "{reason}");
    assert_eq!(LimitStats::of(&board.hub()).rate_limit_closes, 1);
    assert_eq!(calm.call("~ping", json!(null)).await, Ok(json!(null)), "the other connection is served");
}

#[tokio::test]
async fn publications_and_subscriptions_have_limits_of_their_own() {
    let (board, addr) = server(limits(|l| {
        l.publications = Some(Rate::new(1, 3));
        l.subscriptions = Some(Rate::new(1, 2));
    }))
    .await;
    let (mut c, _) = Client::identified(addr, "ada").await;
    let pubs = pipelined(&mut c, 6, |i| json!(["~pub", {"topic": "room/a", "data": i}, 1000 + i])).await;
    assert_eq!(limited(&pubs), 3, "{pubs:?}");
    let subs = pipelined(&mut c, 5, |i| json!(["~sub", {"topic": format!("room/{i}")}, 1000 + i])).await;
    assert_eq!(limited(&subs), 3, "{subs:?}");
    // Other messages are not publications.
    assert_eq!(c.call("~ping", json!(null)).await, Ok(json!(null)));
    let stats = LimitStats::of(&board.hub());
    assert_eq!((stats.rate_limited_publications, stats.rate_limited_subscriptions), (3, 3));
}

#[tokio::test]
async fn limits_are_per_namespace() {
    let mut config = limits(|l| l.messages = Some(Rate::new(1, 3)));
    config.namespace_rate_limits.insert("free".into(), RateLimits::default());
    let board = Server::new()
        .config(config)
        .namespace(main_ns())
        .namespace(Namespace::new("free"))
        .build()
        .await
        .unwrap();
    let addr = serve(&board).await;
    let (mut main, _) = Client::identified(addr, "ada").await;
    assert_eq!(limited(&pipelined(&mut main, 5, ping).await), 3);
    let mut free = Client::connect(addr).await;
    free.call("~hello", json!({"ns": "free"})).await.unwrap();
    assert_eq!(limited(&pipelined(&mut free, 50, ping).await), 0);
}

/// Two servers sharing backends, the limiter included (as two nodes on one Redis).
async fn cluster(limiter: Arc<dyn RateLimiter>, config: Config) -> (Switchboard, Switchboard) {
    let backends = Backends {
        broker: Arc::new(MemoryBroker::new()),
        history: Arc::new(MemoryHistory::new()),
        presence: Arc::new(MemoryPresence::new()),
        users: Arc::new(MemoryUsers::new()),
        limiter,
        ..Backends::memory()
    };
    let node = || Server::new().config(config.clone()).backends(backends.clone()).namespace(main_ns());
    (node().build().await.unwrap(), node().build().await.unwrap())
}

#[tokio::test]
async fn a_user_is_limited_across_connections_and_nodes() {
    let config = limits(|l| l.user_messages = Some(Rate::new(1, 20)));
    let (a, b) = cluster(Arc::new(MemoryRateLimiter::new()), config).await;
    let (mut on_a, _) = Client::identified(serve(&a).await, "ada").await;
    let (mut on_b, _) = Client::identified(serve(&b).await, "ada").await;
    let (mut bob, _) = Client::identified(serve(&b).await, "bob").await;
    // 20 tokens for ada (her ~hello came before she was a user): 20 pass out of 40 (21 if a
    // second went by), whichever node.
    let (ra, rb) = tokio::join!(pipelined(&mut on_a, 20, ping), pipelined(&mut on_b, 20, ping));
    let passed = 40 - limited(&ra) - limited(&rb);
    assert!((20..=21).contains(&passed), "{passed} passed");
    assert_eq!(limited(&pipelined(&mut bob, 10, ping).await), 0, "another user has their own");
}

/// A limiter that answers only through the network, slowly (as Redis): the framework leases
/// tokens and holds a message while they come.
struct Remote(MemoryRateLimiter);

impl RateLimiter for Remote {
    fn take(&self, key: &str, want: u32, rate: CoreRate) -> BackendFuture<'_, Grant> {
        let grant = self.0.take_now(key, want, rate).unwrap();
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok(grant)
        })
    }
}

#[tokio::test]
async fn a_shared_limiter_is_leased_in_order_and_never_passed() {
    let config = limits(|l| l.user_messages = Some(Rate::new(1, 40)));
    let (a, b) = cluster(Arc::new(Remote(MemoryRateLimiter::new())), config).await;
    let (mut on_a, _) = Client::identified(serve(&a).await, "ada").await;
    let (mut on_b, _) = Client::identified(serve(&b).await, "ada").await;
    let echo = |i: u64| json!(["~ping", null, 1000 + i]);
    let (ra, rb) = tokio::join!(pipelined(&mut on_a, 40, echo), pipelined(&mut on_b, 40, echo));
    let passed = 80 - limited(&ra) - limited(&rb);
    // 40 tokens: never more (41 if a second went by); tokens leased by one node and not used
    // there may be missing from the other's.
    assert!((20..=41).contains(&passed), "{passed} passed");
    // Replies come in the order of the requests (each checked in turn).
    let mut order = Vec::new();
    for i in 0..10u64 {
        on_a.send(json!(["~ping", null, 5000 + i])).await;
    }
    for _ in 0..10 {
        let m = on_a.expect(|m| m.get(2).and_then(Value::as_u64).is_some_and(|id| id >= 5000)).await;
        order.push(m[2].as_u64().unwrap());
    }
    assert_eq!(order, (5000..5010).collect::<Vec<_>>());
}
