//! A small JSON client over real sockets, and server helpers, for the library's tests.
#![allow(dead_code, unreachable_pub)]

pub mod raw;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use switchboard::{Accept, Error, Namespace, Payload, Server, Switchboard};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const WAIT: Duration = Duration::from_secs(5);

/// Serves `board` on a free port; returns its address.
pub async fn serve(board: &Switchboard) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(board.clone().serve(listener));
    addr
}

/// Identify hook of the tests: identity `"user:NAME"` → user NAME with alias NAME.
pub async fn identify(Payload(token): Payload<String>) -> Result<Accept, Error> {
    match token.strip_prefix("user:") {
        Some(user) => Ok(Accept::user(user).alias(user)),
        None => Err(Error::not_authorized("bad token")),
    }
}

pub fn main_ns() -> Namespace {
    Namespace::new("main").identify(identify)
}

pub async fn simple_server(config: switchboard::Config) -> (Switchboard, SocketAddr) {
    let board = Server::new().config(config).namespace(main_ns()).build().await.unwrap();
    let addr = serve(&board).await;
    (board, addr)
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next: u64,
    /// Messages received while waiting for something else.
    pub inbox: Vec<Value>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.unwrap();
        Self::from_ws(ws)
    }

    pub fn from_ws(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Self {
        Self { ws, next: 1, inbox: Vec::new() }
    }

    pub async fn identified(addr: SocketAddr, user: &str) -> (Self, Value) {
        let mut c = Self::connect(addr).await;
        let welcome = c.call("~hello", json!({"identity": format!("user:{user}")})).await.unwrap();
        (c, welcome)
    }

    pub async fn send(&mut self, msg: Value) {
        self.ws.send(Message::text(msg.to_string())).await.unwrap();
    }

    /// Sends a request; returns `Ok(result)` or `Err(error body)`.
    pub async fn call(&mut self, kind: &str, payload: Value) -> Result<Value, Value> {
        let id = self.next;
        self.next += 1;
        self.send(json!([kind, payload, id])).await;
        let reply = self.expect(|m| m.get(2) == Some(&json!(id)) && (m[0] == "~ok" || m[0] == "~err")).await;
        if reply[0] == "~ok" { Ok(reply[1].clone()) } else { Err(reply[1].clone()) }
    }

    /// The next message (from the inbox first) matching `pred`.
    pub async fn expect(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.inbox.iter().position(&pred) {
            return self.inbox.remove(i);
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("timed out waiting for a message")
                .expect("connection ended")
                .expect("socket error");
            if let Message::Text(t) = msg {
                let v: Value = serde_json::from_str(&t).unwrap();
                if pred(&v) {
                    return v;
                }
                self.inbox.push(v);
            }
        }
    }

    /// Reads until the close frame; returns its code and reason.
    pub async fn closed(&mut self) -> (u16, String) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("timed out waiting for close")
            {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (frame.code.into(), frame.reason.to_string());
                }
                Some(Ok(Message::Text(t))) => self.inbox.push(serde_json::from_str(&t).unwrap()),
                Some(Ok(_)) => {}
                other => panic!("no close frame: {other:?}"),
            }
        }
    }
}
