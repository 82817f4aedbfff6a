//! A subscriber that never reads is closed with 4002 once its queue passes the limit; the others
//! get everything, and the server's memory stays bounded by the queue limit, not by what was
//! published.

mod common;

use std::time::Duration;

use common::{Client, main_ns, serve};
use futures_util::StreamExt;
use serde_json::json;
use switchboard::{Config, Server, TopicOptions};
use tokio_tungstenite::tungstenite::Message;

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_never_reads_is_cut_off_and_memory_stays_bounded() {
    let mut config = Config::default();
    config.max_queue_bytes = 1024 * 1024;
    let board = Server::new()
        .config(config)
        .namespace(main_ns().topic("feed/{x}", TopicOptions::new()))
        .build()
        .await
        .unwrap();
    let addr = serve(&board).await;
    let hub = board.hub();

    let (mut slow, _) = Client::identified(addr, "slow").await;
    slow.call("~sub", json!({"topic": "feed/a"})).await.unwrap();
    let (mut fast, _) = Client::identified(addr, "fast").await;
    fast.call("~sub", json!({"topic": "feed/a"})).await.unwrap();
    // From here on `slow` is never read again.

    let publications = 6000u64;
    let blob = "x".repeat(8 * 1024);
    let baseline = resident_bytes();
    let mut peak = baseline;
    let mut received = 0u64;
    for burst in 0..publications / 100 {
        for i in 0..100 {
            hub.publish("feed/a", None, &json!({"n": burst * 100 + i, "blob": blob})).await.unwrap();
        }
        // Let the reader keep up, so that only the slow one can accumulate.
        while received < (burst + 1) * 100 {
            let msg = tokio::time::timeout(Duration::from_secs(10), fast.ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            if let Message::Text(t) = msg {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                if v[0] == "~msg" {
                    assert_eq!(
                        v[1]["seq"],
                        received + 1,
                        "the fast subscriber gets every publication in order"
                    );
                    received += 1;
                }
            }
        }
        peak = peak.max(resident_bytes());
    }
    assert_eq!(received, publications);
    let published_bytes = publications * blob.len() as u64;
    let growth = peak.saturating_sub(baseline);
    println!("published {published_bytes} bytes; resident memory grew by {growth} bytes at most");
    assert!(
        growth < 24 * 1024 * 1024,
        "memory grew by {growth} bytes while {published_bytes} bytes were published to a reader that never reads"
    );

    // The slow connection was closed for it: only `fast` is left.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while hub.registry_sizes().connections != 1 {
        assert!(tokio::time::Instant::now() < deadline, "the slow consumer is still connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // What the slow client finally reads: its backlog, then close 4002.
    assert_eq!(hub.stats().slow_consumers, 1, "closed as a slow consumer");
    // The close frame (4002) waits behind the backlog for up to 5 s; a reader that still has
    // not read by then (a loaded machine) sees the socket reset instead.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, slow.ws.next()).await.expect("the socket ends") {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(u16::from(frame.code), 4002, "{}", frame.reason);
                break;
            }
            Some(Err(_) | Ok(Message::Close(None))) | None => break,
            Some(Ok(_)) => {}
        }
    }
}
