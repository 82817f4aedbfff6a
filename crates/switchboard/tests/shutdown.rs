//! Graceful shutdown: running handlers finish and reply, then every connection closes with 1001,
//! and `shutdown()` returns once they are gone.

mod common;

use std::time::Duration;

use common::{Client, main_ns};
use serde_json::json;
use switchboard::{Payload, Server};

/// Told when `slow` has started.
static STARTED: tokio::sync::Notify = tokio::sync::Notify::const_new();

async fn slow(Payload(ms): Payload<u64>) -> Result<&'static str, switchboard::Error> {
    STARTED.notify_one();
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok("done")
}

#[tokio::test]
async fn shutdown_waits_for_handlers_then_closes_with_1001() {
    let board = Server::new().namespace(main_ns().on("slow", slow)).build().await.unwrap();
    let addr = common::serve(&board).await;
    let (mut busy, _) = Client::identified(addr, "ada").await;
    let (mut idle, _) = Client::identified(addr, "bob").await;
    busy.send(json!(["slow", 300, 99])).await;
    tokio::time::timeout(Duration::from_secs(10), STARTED.notified()).await.expect("the handler started");

    let stopping = tokio::spawn({
        let board = board.clone();
        async move { board.shutdown().await }
    });
    let (code, _) = idle.closed().await;
    assert_eq!(code, 1001, "idle connections close at once with 1001");
    let bye = idle.expect(|m| m[0] == "~bye").await;
    assert_eq!(bye[1]["code"], 1001);

    let reply = busy.expect(|m| m[2] == 99).await;
    assert_eq!(reply, json!(["~ok", "done", 99]), "the running handler finished and replied");
    assert_eq!(busy.closed().await.0, 1001);
    tokio::time::timeout(Duration::from_secs(5), stopping).await.expect("shutdown returns").unwrap();
    assert_eq!(board.hub().registry_sizes().connections, 0);

    assert!(
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.is_err(),
        "no new connections after shutdown"
    );
}
