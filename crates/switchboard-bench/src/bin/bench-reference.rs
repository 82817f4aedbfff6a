//! `bench-reference`: the floor of the benchmarks. Raw tokio + tokio-tungstenite, no framework
//! logic, speaking the "plain" dialect of `bench/DIALECTS.md`:
//!
//! - `s<topic>` subscribes and is answered `k`;
//! - `p<topic> <payload>` sends `<payload>` to every subscriber of `<topic>`: the frame is built
//!   once and each subscriber's writer gets a clone of the same shared bytes;
//! - `e<anything>` is echoed.
//!
//! Over TLS (`wss://`, tokio-rustls with the aws-lc-rs provider) when env `TLS_CERT` and `TLS_KEY`
//! name PEM files (the chain, the key): then every connection is TLS.
//!
//! ```text
//! PORT=9000 bench-reference        # or: bench-reference 9000; prints `listening <port>`
//! PORT=9000 TLS_CERT=cert.pem TLS_KEY=key.pem bench-reference
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// One subscriber: its connection number and its writer's queue.
type Subscriber = (u64, mpsc::UnboundedSender<Message>);

/// Topic → subscribers. One lock, as simple as it gets.
#[derive(Default)]
struct Topics {
    /// Subscribers per topic.
    map: Mutex<HashMap<Utf8Bytes, Vec<Subscriber>>>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PORT").ok())
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let tls = switchboard_bench::tls::acceptor_from_env()?;
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening {}", listener.local_addr()?.port());
    let topics = Arc::new(Topics::default());
    let next = Arc::new(AtomicU64::new(1));
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let id = next.fetch_add(1, Ordering::Relaxed);
        let topics = topics.clone();
        match tls.clone() {
            None => {
                tokio::spawn(connection(tcp, id, topics));
            }
            // The handshake runs in the connection's task, not in the accept loop.
            Some(acceptor) => {
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        connection(tls, id, topics).await;
                    }
                });
            }
        }
    }
}

/// Runs one connection: a reader (this task) and a writer task fed by an unbounded queue.
async fn connection<S>(io: S, id: u64, topics: Arc<Topics>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // A 4 KiB read buffer: tungstenite zero-fills the free part of its read buffer before every
    // read (128 KiB by default), work a floor should not do.
    let config = switchboard_bench::client::small_reads();
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(io, Some(config)).await else { return };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let writer = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            if sink.feed(first).await.is_err() {
                return;
            }
            // Drain what is already queued, then flush once.
            while let Ok(more) = rx.try_recv() {
                if sink.feed(more).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    let mut subscribed: Vec<Utf8Bytes> = Vec::new();
    while let Some(Ok(msg)) = stream.next().await {
        let Message::Text(text) = msg else { continue };
        match text.as_bytes().first() {
            Some(b's') => {
                let topic = Utf8Bytes::from(&text.as_str()[1..]);
                topics
                    .map
                    .lock()
                    .expect("not poisoned")
                    .entry(topic.clone())
                    .or_default()
                    .push((id, tx.clone()));
                subscribed.push(topic);
                let _ = tx.send(Message::text("k"));
            }
            Some(b'p') => {
                let body = &text.as_str()[1..];
                let Some((topic, payload)) = body.split_once(' ') else { continue };
                // Encoded once: every subscriber gets a clone of the same shared bytes.
                let frame = Message::Text(Utf8Bytes::from(payload));
                let map = topics.map.lock().expect("not poisoned");
                if let Some(subs) = map.get(topic) {
                    for (_, sub) in subs {
                        let _ = sub.send(frame.clone());
                    }
                }
            }
            Some(b'e') => {
                let _ = tx.send(Message::Text(text));
            }
            _ => {}
        }
    }
    let mut map = topics.map.lock().expect("not poisoned");
    for topic in subscribed {
        if let Some(subs) = map.get_mut(&topic) {
            subs.retain(|(sid, _)| *sid != id);
            if subs.is_empty() {
                map.remove(&topic);
            }
        }
    }
    drop(map);
    writer.abort();
}
