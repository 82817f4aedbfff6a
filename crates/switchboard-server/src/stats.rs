//! The framework's traffic counters (messages in/out, slow consumers, connections ever) are
//! only published through `~info`. This module reads them the way a client would: over an
//! in-process WebSocket (a duplex pipe handed to [`Switchboard::accept`]) identified on a hidden
//! namespace that allows `~info`, with a random secret.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use switchboard::{Accept, Error, Format, Namespace, Payload, Switchboard, UpgradeRequest};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

/// The hidden namespace's name.
pub(crate) const STATS_NAMESPACE: &str = "~stats";

/// Asks the stats connection for `~info`.
#[derive(Clone)]
pub(crate) struct Stats {
    /// Requests to the task that owns the connection.
    tx: mpsc::Sender<oneshot::Sender<Value>>,
    /// The stats connection's id, to leave it out of counts (broadcast reaches it too).
    conn: Arc<Mutex<Option<String>>>,
}

/// The hidden namespace and the secret it accepts.
pub(crate) fn namespace() -> (Namespace, String) {
    let secret = format!("{:032x}", rand::random::<u128>());
    let expected = secret.clone();
    let ns = Namespace::new(STATS_NAMESPACE).allow_info(true).identify(move |Payload(given): Payload<String>| {
        let ok = given == expected;
        async move { if ok { Ok(Accept::anonymous()) } else { Err(Error::not_authorized("not for you")) } }
    });
    (ns, secret)
}

impl Stats {
    /// Starts the task that keeps the stats connection.
    pub(crate) fn start(board: Switchboard, secret: String) -> Self {
        let (tx, rx) = mpsc::channel(16);
        let conn = Arc::new(Mutex::new(None));
        tokio::spawn(run(board, secret, rx, conn.clone()));
        Self { tx, conn }
    }

    /// The stats connection's id, if it is connected.
    pub(crate) fn conn_id(&self) -> Option<String> {
        self.conn.lock().expect("not poisoned").clone()
    }

    /// The latest `~info` (an empty object when unavailable).
    pub(crate) async fn info(&self) -> Value {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(tx).await.is_err() {
            return json!({});
        }
        tokio::time::timeout(Duration::from_secs(2), rx)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_else(|| json!({}))
    }
}

type Ws = WebSocketStream<tokio::io::DuplexStream>;

async fn connect(board: &Switchboard, secret: &str) -> Option<(Ws, String)> {
    let (server, client) = tokio::io::duplex(64 * 1024);
    board.accept(server, UpgradeRequest::default(), Format::Json).await;
    let mut ws = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
    let hello = json!(["~hello", {"ns": STATS_NAMESPACE, "identity": secret}, 1]);
    ws.send(Message::text(hello.to_string())).await.ok()?;
    while let Some(Ok(msg)) = ws.next().await {
        if let Message::Text(text) = msg {
            let v: Value = serde_json::from_str(&text).ok()?;
            if v[2] == 1 {
                let conn = v[1]["conn"].as_str().unwrap_or_default().to_owned();
                return (v[0] == "~ok").then_some((ws, conn));
            }
        }
    }
    None
}

async fn run(
    board: Switchboard,
    secret: String,
    mut rx: mpsc::Receiver<oneshot::Sender<Value>>,
    id: Arc<Mutex<Option<String>>>,
) {
    let mut next_id = 1u64;
    'reconnect: loop {
        let connected = connect(&board, &secret).await;
        *id.lock().expect("not poisoned") = connected.as_ref().map(|(_, c)| c.clone());
        let Some((mut ws, _)) = connected else {
            // Shutting down, or the server refuses: answer with nothing from now on.
            while let Some(reply) = rx.recv().await {
                let _ = reply.send(json!({}));
            }
            return;
        };
        let mut waiting: HashMap<u64, oneshot::Sender<Value>> = HashMap::new();
        loop {
            tokio::select! {
                request = rx.recv() => {
                    let Some(reply) = request else { return };
                    next_id += 1;
                    let frame = json!(["~info", {"detail": false}, next_id]);
                    if ws.send(Message::text(frame.to_string())).await.is_err() {
                        let _ = reply.send(json!({}));
                        continue 'reconnect;
                    }
                    waiting.insert(next_id, reply);
                }
                msg = ws.next() => match msg {
                    Some(Ok(Message::Text(text))) => {
                        let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
                        if let Some(id) = v[2].as_u64()
                            && let Some(reply) = waiting.remove(&id)
                        {
                            let _ = reply.send(if v[0] == "~ok" { v[1].clone() } else { json!({}) });
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue 'reconnect;
                    }
                }
            }
        }
    }
}
