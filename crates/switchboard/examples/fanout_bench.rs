//! Fan-out throughput (scenario S1, scaled down to one machine): N WebSocket clients subscribed
//! to one topic, M publications, deliveries per second until every client has every one.
//!
//! ```text
//! cargo run --release -p switchboard --example fanout_bench -- serve 2000 200    # Switchboard::serve
//! cargo run --release -p switchboard --example fanout_bench -- router 2000 200   # axum router()
//! cargo run --release -p switchboard --example fanout_bench -- raw 2000 200      # tokio-tungstenite
//! ```
//!
//! `raw` is the reference: a tokio-tungstenite server broadcasting one pre-encoded text frame
//! to per-connection tasks that drain what is queued, feed it and flush once (like the
//! session's writer). The clients (tokio-tungstenite, same process) share the CPU with the
//! server, equally in the three modes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use switchboard::{Accept, Error, Namespace, Payload, Server, TopicOptions};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

#[derive(Deserialize)]
struct Identity {
    user: String,
}

async fn identify(Payload(id): Payload<Identity>) -> Result<Accept, Error> {
    Ok(Accept::user(id.user))
}

/// A client that subscribes (unless `raw`) and counts deliveries until it has `m`.
async fn client(addr: SocketAddr, i: usize, m: usize, raw: bool, ready: Arc<AtomicUsize>) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.expect("connect");
    if !raw {
        let hello = format!(r#"["~hello",{{"identity":{{"user":"u{i}"}}}},1]"#);
        ws.send(Message::text(hello)).await.expect("hello");
        ws.send(Message::text(r#"["~sub",{"topic":"t/x"},2]"#)).await.expect("sub");
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Text(t) = msg
                && t.starts_with("[\"~ok\"")
                && t.ends_with(",2]")
            {
                break;
            }
        }
    }
    ready.fetch_add(1, Ordering::Release);
    let mut got = 0;
    while got < m {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if raw || t.starts_with("[\"~msg\"") => got += 1,
            Some(Ok(_)) => {}
            _ => panic!("client {i} lost its connection after {got} deliveries"),
        }
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("serve", String::as_str).to_owned();
    let n: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let m: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(200);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let raw = mode == "raw";
    let (tx, _) = tokio::sync::broadcast::channel::<Utf8Bytes>(4 * m);
    let mut hub = None;
    if raw {
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = tcp.set_nodelay(true);
                let mut rx = tx.subscribe();
                tokio::spawn(async move {
                    let mut ws = tokio_tungstenite::accept_async(tcp).await.expect("upgrade");
                    while let Ok(frame) = rx.recv().await {
                        let _ = ws.feed(Message::Text(frame)).await;
                        while let Ok(frame) = rx.try_recv() {
                            let _ = ws.feed(Message::Text(frame)).await;
                        }
                        if ws.flush().await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
    } else {
        let main = Namespace::new("main").identify(identify).topic("t/{x}", TopicOptions::new());
        let board = Server::new().namespace(main).build().await.expect("valid configuration");
        hub = Some(board.hub());
        if mode == "router" {
            let app = board.router().into_make_service_with_connect_info::<SocketAddr>();
            tokio::spawn(async move { axum::serve(listener, app).await });
        } else {
            tokio::spawn(board.serve(listener));
        }
    }
    let ready = Arc::new(AtomicUsize::new(0));
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..n {
        clients.spawn(client(addr, i, m, raw, ready.clone()));
        if i % 100 == 99 {
            while ready.load(Ordering::Acquire) <= i - 50 {
                tokio::task::yield_now().await;
            }
        }
    }
    while ready.load(Ordering::Acquire) < n {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let data = "x".repeat(100);
    let frame: Utf8Bytes = format!(r#"["~msg",{{"topic":"t/x","data":"{data}","seq":1}}]"#).into();
    let start = Instant::now();
    for i in 0..m {
        match &hub {
            Some(hub) => {
                hub.publish("t/x", None, &data).await.expect("publish");
            }
            None => {
                let _ = tx.send(frame.clone());
            }
        }
        if i % 10 == 9 {
            tokio::task::yield_now().await;
        }
    }
    while let Some(done) = clients.join_next().await {
        done.expect("client");
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{{\"mode\":\"{mode}\",\"subscribers\":{n},\"publications\":{m},\"seconds\":{elapsed:.3},\"deliveries_per_second\":{:.0}}}",
        (n * m) as f64 / elapsed
    );
}
