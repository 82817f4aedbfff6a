//! Repeated warnings cannot flood the log (issue 16: one connection over its unacknowledged
//! delivery cap wrote 8,976 WARN lines in 27 ms; every refused `~hello` and every refused
//! upgrade wrote one): a kind of warning is written at most once per second, per connection at
//! most once per 10 s, and the next line says how many were suppressed. One test in this file:
//! it installs the process's log subscriber.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Client, main_ns, serve};
use serde_json::json;
use switchboard::{Config, Rejection, Server};

/// Every log line written, in order.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    /// The WARN lines containing `what`.
    fn warnings(&self, what: &str) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        text.lines().filter(|l| l.contains("WARN") && l.contains(what)).map(str::to_owned).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_warnings_are_throttled_with_a_count_of_the_suppressed() {
    let lines = Lines::default();
    let writer = lines.clone();
    tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).init();

    let mut config = Config::default();
    config.max_pending_acks = 4;
    let board = Server::new()
        .config(config)
        .namespace(main_ns())
        .on_upgrade(|req| async move {
            if req.header("x-evil").is_some() { Err(Rejection::forbidden("no")) } else { Ok(()) }
        })
        .build()
        .await
        .unwrap();
    let addr = serve(&board).await;
    let hub = board.hub();

    // One connection over its cap of unacknowledged deliveries, 2,000 times.
    let (c, welcome) = Client::identified(addr, "slow").await;
    let conn = welcome["conn"].as_str().unwrap().to_owned();
    for i in 0..2000 {
        let _ = hub.send_acked(&conn, "alert", &i).await;
    }
    drop(c);

    // 50 refused `~hello`, 50 refused upgrades.
    for _ in 0..50 {
        let mut c = Client::connect(addr).await;
        assert!(c.call("~hello", json!({"identity": "nobody"})).await.is_err());
    }
    for _ in 0..50 {
        let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            format!("ws://{addr}/ws"),
        )
        .unwrap();
        req.headers_mut().insert("x-evil", "1".parse().unwrap());
        assert!(tokio_tungstenite::connect_async(req).await.is_err());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let slow = lines.warnings("slow consumer");
    let refused = lines.warnings("identification refused");
    let upgrades = lines.warnings("upgrade refused");
    println!("{} + {} + {} lines", slow.len(), refused.len(), upgrades.len());
    assert_eq!(slow.len(), 1, "{slow:?}");
    assert!((1..=2).contains(&refused.len()), "{refused:?}");
    assert!((1..=2).contains(&upgrades.len()), "{upgrades:?}");

    // A second later, the next line says how many were not written.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut c = Client::connect(addr).await;
    assert!(c.call("~hello", json!({"identity": "nobody"})).await.is_err());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let last = lines.warnings("identification refused").pop().unwrap();
    assert!(last.contains("suppressed=") && !last.contains("suppressed=0"), "{last}");
}
