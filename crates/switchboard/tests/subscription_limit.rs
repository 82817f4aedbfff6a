//! `max_subscriptions` holds against pipelined `~sub` requests: a connection's requests run
//! concurrently, and the limit is checked again where the subscription is taken.

mod common;

use common::{Client, main_ns, serve};
use serde_json::json;
use switchboard::{Config, Server, TopicOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_subscriptions_stop_at_the_limit() {
    let mut config = Config::default();
    config.max_subscriptions = 16;
    let ns = main_ns().topic("room/{x}", TopicOptions::new());
    let board = Server::new().config(config).namespace(ns).build().await.unwrap();
    let addr = serve(&board).await;
    let (mut c, _) = Client::identified(addr, "ann").await;
    // 200 `~sub`s sent before any reply is read, each topic twice (a repeat is no new one).
    let n = 200u64;
    for i in 0..n {
        c.send(json!(["~sub", {"topic": format!("room/{}", i / 2)}, 100 + i])).await;
    }
    let (mut ok, mut limit) = (0, 0);
    for i in 0..n {
        let reply = c.expect(|m| m.get(2) == Some(&json!(100 + i))).await;
        match reply[0].as_str() {
            Some("~ok") => ok += 1,
            _ => {
                assert_eq!(reply[1]["code"], "LIMIT", "{reply}");
                limit += 1;
            }
        }
    }
    // 16 topics, each answered ok twice; the other 84 topics refused twice.
    assert_eq!((ok, limit), (32, 168));
    let unsub = c.call("~unsub", json!({"topic": "room/0"})).await;
    assert!(unsub.is_ok(), "{unsub:?}");
    assert!(c.call("~sub", json!({"topic": "room/99"})).await.is_ok());
    assert_eq!(c.call("~sub", json!({"topic": "room/98"})).await.unwrap_err()["code"], "LIMIT");
}
