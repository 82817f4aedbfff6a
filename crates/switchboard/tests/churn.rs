//! Subscribe/unsubscribe storms while publishing end with no leaked state: registries, presence
//! and the users registry all go back to zero.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Client, main_ns, serve};
use serde_json::json;
use switchboard::core::{Backends, MemoryBroker, MemoryHistory, MemoryPresence, MemoryUsers};
use switchboard::{Config, RegistrySizes, Server, TopicOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_leaves_nothing_behind() {
    let presence = Arc::new(MemoryPresence::new());
    let users = Arc::new(MemoryUsers::new());
    let backends = Backends {
        broker: Arc::new(MemoryBroker::new()),
        history: Arc::new(MemoryHistory::new()),
        presence: presence.clone(),
        users: users.clone(),
        limiter: Arc::new(switchboard::core::MemoryRateLimiter::new()),
    };
    let mut config = Config::default();
    config.identify_timeout = Duration::from_millis(300);
    config.ack_timeout = Duration::from_millis(50);
    config.max_resends = 1;
    let ns = main_ns()
        .topic("room/{x}", TopicOptions::new().clients_publish().presence(true).history(20, None))
        .topic("ack/{x}", TopicOptions::new().acknowledged(true));
    let board = Server::new().config(config).backends(backends).namespace(ns).build().await.unwrap();
    let addr = serve(&board).await;
    let hub = board.hub();

    let publisher = tokio::spawn({
        let hub = hub.clone();
        async move {
            for i in 0..400u64 {
                hub.publish(&format!("room/{}", i % 7), None, &i).await.unwrap();
                hub.publish(&format!("ack/{}", i % 3), None, &i).await.unwrap();
                tokio::task::yield_now().await;
            }
        }
    });
    let mut clients = Vec::new();
    for c in 0..16 {
        clients.push(tokio::spawn(async move {
            let (mut client, _) = Client::identified(addr, &format!("u{}", c % 5)).await;
            for i in 0..30u64 {
                let room = format!("room/{}", (c + i) % 7);
                client.call("~sub", json!({"topic": room})).await.unwrap();
                client.call("~sub", json!({"topic": format!("ack/{}", i % 3)})).await.unwrap();
                client.call("~pub", json!({"topic": room, "data": i})).await.unwrap();
                let left = match i % 3 {
                    0 => client.call("~unsub", json!({"topic": room})).await.unwrap(),
                    1 => client.call("~unsub", json!({"prefix": "room"})).await.unwrap(),
                    _ => client.call("~unsub", json!({})).await.unwrap(),
                };
                assert!(!left["topics"].as_array().unwrap().is_empty());
            }
            // Half leave subscribed, to check that disconnection cleans up too.
            if c % 2 == 0 {
                client.call("~sub", json!({"topic": "room/0"})).await.unwrap();
            }
            client.ws.close(None).await.unwrap();
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    publisher.await.unwrap();
    // An anonymous connection that never identifies: its deadline entry must drain too.
    let _lurker = Client::connect(addr).await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let sizes = hub.registry_sizes();
        // One presence key remains: the node's own entry in the list of running nodes.
        let clean = sizes == RegistrySizes::default() && presence.len() == 1 && users.is_empty();
        if clean {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "leaked state: {sizes:?}, presence keys {}, users {}",
            presence.len(),
            users.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
