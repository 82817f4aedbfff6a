//! Shared test helpers: run the real `switchboard` binary, speak HTTP over raw TCP, and
//! connect WebSocket clients.
#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod pki;
pub mod redis;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const KEY: &str = "test-api-key";

pub fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A running server; killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    /// Its stderr lines so far (also passed on to the test's stderr).
    pub logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Its stdout lines after `listening on` (e.g. `metrics on ADDR`).
    pub stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    /// Whether a log line containing every one of `words` appeared within 15 s.
    pub async fn logged(&self, words: &[&str]) -> bool {
        for _ in 0..300 {
            if self.logs.lock().unwrap().iter().any(|l| words.iter().all(|w| l.contains(w))) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// The address printed as `metrics on ADDR`, within 5 s.
    pub async fn metrics_addr(&self) -> SocketAddr {
        for _ in 0..100 {
            if let Some(line) = self.stdout.lock().unwrap().iter().find_map(|l| l.strip_prefix("metrics on "))
            {
                return line.parse().unwrap();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no `metrics on ADDR` line");
    }
}

/// Writes `toml` to a temporary file and starts the server with it and `env`.
pub async fn start_with(toml: &str, env: &[(&str, &str)], args: &[&str]) -> Server {
    let dir = std::env::temp_dir().join(format!("switchboard-test-{}-{}", std::process::id(), rand_id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("switchboard.toml");
    std::fs::write(&path, toml).unwrap();
    let mut all = vec!["--config", path.to_str().unwrap()];
    all.extend_from_slice(args);
    spawn(&all, env).await
}

pub fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

pub async fn spawn(args: &[&str], env: &[(&str, &str)]) -> Server {
    spawn_at("127.0.0.1:0", args, env).await
}

/// [`spawn`] on a given address (to restart a server where its clients expect it).
pub async fn spawn_at(listen: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.arg("--listen").arg(listen).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("SWITCHBOARD_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn switchboard");
    let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    let kept = logs.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = err.next_line().await {
            eprintln!("{line}");
            kept.lock().unwrap().push(line);
        }
    });
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("server started in time")
        .unwrap()
        .unwrap_or_else(|| panic!("a listening line; stderr: {:?}", logs.lock().unwrap()));
    let addr = line.strip_prefix("listening on ").expect("listening on ADDR").parse().unwrap();
    let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = out.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            kept.lock().unwrap().push(line);
        }
    });
    Server { child, addr, logs, stdout: out }
}

/// A configuration with one namespace `main` using `identify`, typical topics, and the API key.
pub fn config(identify: &str, extra: &str) -> String {
    format!(
        r#"
api_key = "{KEY}"
{extra}

[namespaces.main]
identify = "{identify}"

[namespaces.main.topics."room/{{name}}"]
publish = "clients"
presence = true
history = 10

[namespaces.main.topics."group/{{g}}"]
subscribe = "nobody"

[namespaces.main.topics."private/{{user}}"]
subscribe = "own-user"
"#
    )
}

/// A minimal HTTP/1.1 request over raw TCP; returns the status and the body.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let auth = key.map(|k| format!("Authorization: Bearer {k}\r\n")).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut raw))
        .await
        .expect("HTTP answer in time")
        .unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").expect("a full response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    (status, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

/// An API call with the test key, expecting 200 and JSON.
pub async fn api(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> Value {
    let (status, text) = http(addr, method, path, Some(KEY), body.as_ref()).await;
    assert_eq!(status, 200, "{method} {path}: {text}");
    serde_json::from_str(&text).unwrap()
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket client speaking the JSON protocol.
pub struct Client {
    pub ws: Ws,
    pub next_id: u64,
    pub conn: String,
    /// Messages read while waiting for something else.
    pub backlog: Vec<Value>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.unwrap();
        Self::from(ws)
    }

    /// Over `wss://localhost:PORT/ws`, trusting `tls`'s roots.
    pub async fn connect_tls(addr: SocketAddr, tls: std::sync::Arc<rustls::ClientConfig>) -> Self {
        let url = format!("wss://localhost:{}/ws", addr.port());
        let connector = tokio_tungstenite::Connector::Rustls(tls);
        let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(url, None, false, Some(connector))
            .await
            .unwrap();
        Self::from(ws)
    }

    pub fn from(ws: Ws) -> Self {
        Self { ws, next_id: 0, conn: String::new(), backlog: Vec::new() }
    }

    /// Connects and identifies; panics unless accepted. Returns the welcome.
    pub async fn identified(addr: SocketAddr, identity: Value) -> (Self, Value) {
        let mut c = Self::connect(addr).await;
        let welcome = c.call("~hello", json!({ "identity": identity })).await.expect("accepted");
        c.conn = welcome["conn"].as_str().unwrap().to_owned();
        (c, welcome)
    }

    pub async fn send(&mut self, msg: Value) {
        self.ws.send(Message::text(msg.to_string())).await.unwrap();
    }

    /// Next message (from the backlog first), within 5 s.
    pub async fn next(&mut self) -> Option<Value> {
        if !self.backlog.is_empty() {
            return Some(self.backlog.remove(0));
        }
        self.read().await
    }

    async fn read(&mut self) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(5), self.ws.next())
                .await
                .expect("a message in time")?;
            match msg.ok()? {
                Message::Text(t) => return Some(serde_json::from_str(&t).unwrap()),
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    /// Sends a request and waits for its reply: `Ok(result)` or `Err(error)`.
    pub async fn call(&mut self, kind: &str, payload: Value) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        self.send(json!([kind, payload, id])).await;
        loop {
            let msg = self.read().await.expect("connection open");
            if msg[2] == id && (msg[0] == "~ok" || msg[0] == "~err") {
                return if msg[0] == "~ok" { Ok(msg[1].clone()) } else { Err(msg[1].clone()) };
            }
            self.backlog.push(msg);
        }
    }

    /// Waits for a message of type `kind`, keeping the others.
    pub async fn expect(&mut self, kind: &str) -> Value {
        if let Some(i) = self.backlog.iter().position(|m| m[0] == kind) {
            return self.backlog.remove(i);
        }
        loop {
            let msg = self.read().await.unwrap_or_else(|| panic!("closed while waiting for {kind}"));
            if msg[0] == kind {
                return msg;
            }
            self.backlog.push(msg);
        }
    }

    /// Waits for the close frame; returns its code.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            let msg =
                tokio::time::timeout(Duration::from_secs(5), self.ws.next()).await.expect("closed in time");
            match msg {
                Some(Ok(Message::Close(frame))) => return frame.map(|f: CloseFrame| f.code.into()),
                Some(Ok(_)) => {}
                _ => return None,
            }
        }
    }
}

/// The value of the series `name` (with its labels, as printed) in a Prometheus page.
pub fn metric(page: &str, name: &str) -> Option<f64> {
    page.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}
