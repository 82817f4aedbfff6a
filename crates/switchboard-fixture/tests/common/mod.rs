//! Shared helpers for the Switchboard conformance tests.
//!
//! Everything here speaks only `protocol.md`: a process wrapper for the
//! `switchboard-fixture` binary, a small WebSocket client (JSON or MessagePack) built on
//! tokio-tungstenite, and a raw TCP WebSocket client for the cases where a well-behaved
//! WebSocket library would hide the behaviour under test (not answering pings).
#![allow(dead_code)]

use std::collections::{BTreeSet, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, StreamExt};
use futures_util::{SinkExt, stream::SplitStream};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long to wait for something that must happen (a reply, a delivery, a close).
pub(crate) const WAIT: Duration = Duration::from_secs(5);
/// How long to watch for something that must NOT happen.
pub(crate) const QUIET: Duration = Duration::from_millis(600);

/// The JSON subprotocol.
pub(crate) const JSON_PROTOCOL: &str = "switchboard.v1.json";
/// The MessagePack subprotocol.
pub(crate) const MSGPACK_PROTOCOL: &str = "switchboard.v1.msgpack";

/// The largest valid id: 2^53 - 1.
pub(crate) const MAX_ID: u64 = (1 << 53) - 1;

// ---------------------------------------------------------------------------------------------
// The fixture process
// ---------------------------------------------------------------------------------------------

/// How many fixture processes one [`Fixture`] runs: `SWITCHBOARD_FIXTURE_NODES` (default 1).
///
/// With 2 or more, the fixture is a cluster (protocol.md appendix A: "With `--redis`, several
/// fixtures form one cluster: everything below holds across them"): a `redis-server` on a free
/// port and that many fixture processes on it, and every client connects to the next node in
/// turn. `scripts/test.sh` runs this whole suite once on one fixture and once on two.
pub(crate) fn nodes_from_env() -> usize {
    match std::env::var("SWITCHBOARD_FIXTURE_NODES") {
        Ok(v) => v.parse().ok().filter(|n| (1..=8).contains(n)).unwrap_or_else(|| {
            panic!("SWITCHBOARD_FIXTURE_NODES must be a number of nodes from 1 to 8, not {v:?}")
        }),
        Err(_) => 1,
    }
}

/// The conformance fixture under test: one `switchboard-fixture` process, or several on one
/// Redis (see [`nodes_from_env`]). Killed when dropped.
pub(crate) struct Fixture {
    nodes: Vec<Node>,
    next: AtomicUsize,
    // Dropped after the nodes (fields drop in declaration order).
    _redis: Option<Redis>,
}

impl Fixture {
    /// Starts the fixture on an ephemeral loopback port and waits for `listening on ADDR`.
    pub(crate) fn start() -> Fixture {
        Fixture::start_with(&[])
    }

    /// Starts the fixture with extra arguments (after `--listen 127.0.0.1:0`). Arguments that
    /// already name a Redis (`--redis`) start exactly one process.
    pub(crate) fn start_with(extra: &[&str]) -> Fixture {
        let count = if extra.contains(&"--redis") { 1 } else { nodes_from_env() };
        if count == 1 {
            return Fixture { nodes: vec![Node::start(extra)], next: AtomicUsize::new(0), _redis: None };
        }
        let redis = Redis::start();
        let url = redis.url();
        let mut args: Vec<&str> = extra.to_vec();
        args.extend(["--redis", &url]);
        let nodes = (0..count).map(|_| Node::start(&args)).collect();
        Fixture { nodes, next: AtomicUsize::new(0), _redis: Some(redis) }
    }

    /// How many processes serve this fixture.
    pub(crate) fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The address of the next node in turn (always the same one on a single fixture).
    pub(crate) fn addr(&self) -> SocketAddr {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.nodes.len();
        self.nodes[i].addr
    }

    /// `ws://ADDR/ws` of the next node in turn.
    pub(crate) fn url(&self) -> String {
        format!("ws://{}/ws", self.addr())
    }

    /// Every node's stderr so far.
    pub(crate) fn log(&self) -> String {
        self.nodes.iter().map(Node::log).collect::<Vec<_>>().join("\n")
    }

    /// Kills every node at once (SIGKILL: no close frames, no goodbyes), as a crashed machine.
    pub(crate) fn kill(&mut self) {
        for node in &mut self.nodes {
            let _ = node.child.kill();
            let _ = node.child.wait();
        }
    }

    /// Sends SIGTERM to every node and waits (up to 10 s each) for them to exit; returns the
    /// first node's exit status after checking that the others exited the same way.
    pub(crate) fn terminate(&mut self) -> ExitStatus {
        for node in &self.nodes {
            node.signal_term();
        }
        let statuses: Vec<ExitStatus> = self.nodes.iter_mut().map(Node::wait_exit).collect();
        for s in &statuses[1..] {
            assert_eq!(s.code(), statuses[0].code(), "the nodes exited differently: {statuses:?}");
        }
        statuses[0]
    }
}

/// One `switchboard-fixture` process, killed when dropped.
struct Node {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<u8>>>,
}

impl Node {
    fn start(extra: &[&str]) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard-fixture"))
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn switchboard-fixture");
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut stderr = child.stderr.take().expect("stderr piped");
        let log2 = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            loop {
                match stderr.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => log2.lock().unwrap().extend_from_slice(&chunk[..n]),
                }
            }
        });

        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = std_mpsc::channel::<Option<String>>();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            match lines.next() {
                Some(Ok(line)) => {
                    let _ = tx.send(Some(line));
                }
                _ => {
                    let _ = tx.send(None);
                    return;
                }
            }
            // Keep draining so that the fixture never blocks on a full pipe.
            for _ in lines {}
        });

        let first = rx.recv_timeout(Duration::from_secs(30));
        let line = match first {
            Ok(Some(line)) => line,
            Ok(None) => {
                let status = child.wait().ok();
                panic!(
                    "switchboard-fixture closed stdout without printing `listening on ADDR` \
                     (exit status {status:?}); stderr:\n{}",
                    String::from_utf8_lossy(&log.lock().unwrap())
                );
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "switchboard-fixture printed nothing on stdout within 30 s; stderr:\n{}",
                    String::from_utf8_lossy(&log.lock().unwrap())
                );
            }
        };
        let addr_text = line
            .trim_end()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first stdout line is not `listening on ADDR`: {line:?}"));
        let addr: SocketAddr = addr_text.parse().unwrap_or_else(|e| panic!("bad address in {line:?}: {e}"));
        assert_ne!(addr.port(), 0, "the fixture must print the real bound port: {line:?}");
        Node { child, addr, log }
    }

    fn log(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }

    fn signal_term(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM failed");
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "the fixture did not exit within 10 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let tail = if log.len() > 8000 {
                let mut start = log.len() - 8000;
                while !log.is_char_boundary(start) {
                    start += 1;
                }
                &log[start..]
            } else {
                &log[..]
            };
            eprintln!("---- switchboard-fixture stderr (tail) ----\n{tail}\n----");
        }
    }
}

/// A `redis-server` on a free port, without persistence, killed on drop.
pub(crate) struct Redis {
    port: u16,
    child: Child,
}

impl Redis {
    /// Starts `redis-server` (Debian package `redis-server`) and waits until it answers PING.
    pub(crate) fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        Redis::start_on(port)
    }

    /// Kills the server (losing everything it held) and starts an empty one on the same port.
    pub(crate) fn restart(&mut self) {
        self.stop();
        let port = self.port;
        let fresh = Redis::start_on(port);
        let old = std::mem::replace(self, fresh);
        std::mem::forget(old);
    }

    /// Kills the server; [`Redis::restart`] brings it back.
    pub(crate) fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn start_on(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (Debian package redis-server)");
        let redis = Redis { port, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !redis.answers() {
            assert!(Instant::now() < deadline, "redis-server did not answer PING on port {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        redis
    }

    /// Whether the server answers PING now.
    pub(crate) fn answers(&self) -> bool {
        redis_answers(self.port)
    }

    /// The port it listens on.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The process id of the running server (for signals: SIGSTOP, SIGCONT).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `redis://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A local Redis Cluster: three masters, each with `replicas` replicas, no persistence; every
/// process is killed on drop. `redis-server --cluster-enabled yes` on free ports, joined by
/// `redis-cli --cluster create` (Debian packages `redis-server` and `redis-tools`).
pub(crate) struct RedisCluster {
    dir: std::path::PathBuf,
    /// The ports, in the order given to `redis-cli --cluster create` (masters first).
    ports: Vec<u16>,
    children: Vec<Option<Child>>,
}

/// Whether a Redis on `port` answers PING.
fn redis_answers(port: u16) -> bool {
    use std::io::Write as _;
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// Runs `redis-cli ARGS` and returns its stdout and stderr.
pub(crate) fn redis_cli(args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli must be installed (Debian package redis-tools, with redis-server)");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn cluster_seed() -> u32 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    nanos.subsec_nanos() ^ std::process::id().rotate_left(16)
}

impl RedisCluster {
    /// Starts three masters without replicas.
    pub(crate) fn start() -> RedisCluster {
        RedisCluster::start_with(0, &[])
    }

    /// Starts three masters with `replicas` replicas each; `extra` goes to every
    /// `redis-server` (e.g. `--cluster-node-timeout 1000` for a quick failover).
    pub(crate) fn start_with(replicas: usize, extra: &[&str]) -> RedisCluster {
        let count = 3 * (1 + replicas);
        let dir = std::env::temp_dir().join(format!(
            "sb-fixture-cluster-{}-{:08x}",
            std::process::id(),
            cluster_seed()
        ));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let mut cluster = RedisCluster { dir, ports: Vec::new(), children: Vec::new() };
        // Ports ≤ 55535 whose cluster bus port (+10000) is free too; a port may be taken between
        // the check and redis-server's bind, then another is tried.
        let free = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
        let mut tries = 0;
        while cluster.ports.len() < count {
            tries += 1;
            assert!(tries < 1000, "no free port pairs for a cluster");
            let port = 20_000 + u16::try_from(cluster_seed() % 35_535).expect("in range");
            if cluster.ports.contains(&port) || !free(port) || !free(port + 10_000) {
                continue;
            }
            let mut child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--cluster-enabled", "yes"])
                .arg("--cluster-config-file")
                .arg(cluster.dir.join(format!("nodes-{port}.conf")))
                .arg("--dir")
                .arg(&cluster.dir)
                .args(["--save", "", "--appendonly", "no"])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server must be installed (Debian package redis-server)");
            let deadline = Instant::now() + Duration::from_secs(10);
            // The answer must come from this process, not another one on the same port.
            let pid = child.id();
            let ours = || {
                redis_answers(port)
                    && redis_cli(&["-p", &port.to_string(), "info", "server"])
                        .contains(&format!("process_id:{pid}\r"))
            };
            while !ours() && Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            if ours() {
                cluster.ports.push(port);
                cluster.children.push(Some(child));
            } else {
                let _ = child.kill();
                let _ = child.wait();
                eprintln!("redis-server did not start on port {port}; trying another");
            }
        }
        let addrs: Vec<String> = cluster.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let replicas = replicas.to_string();
        let mut args = vec!["--cluster", "create"];
        args.extend(addrs.iter().map(String::as_str));
        args.extend(["--cluster-replicas", &replicas, "--cluster-yes"]);
        let out = redis_cli(&args);
        assert!(out.contains("[OK] All 16384 slots covered"), "redis-cli --cluster create failed:\n{out}");
        let deadline = Instant::now() + Duration::from_secs(30);
        for port in &cluster.ports {
            while !redis_cli(&["-p", &port.to_string(), "cluster", "info"]).contains("cluster_state:ok") {
                assert!(Instant::now() < deadline, "cluster node {port} is not ok");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        // Every replica has synchronised with its master.
        for port in &cluster.ports {
            loop {
                let info = redis_cli(&["-p", &port.to_string(), "info", "replication"]);
                if info.contains("role:master") || info.contains("master_link_status:up") {
                    break;
                }
                assert!(Instant::now() < deadline, "replica {port} did not synchronise: {info}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        cluster
    }

    /// `redis+cluster://` with every node as a seed.
    pub(crate) fn url(&self) -> String {
        let seeds: Vec<String> = self.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// The ports of the nodes still running.
    pub(crate) fn ports(&self) -> Vec<u16> {
        self.ports.iter().zip(&self.children).filter(|(_, c)| c.is_some()).map(|(p, _)| *p).collect()
    }

    /// Kills the node on `port` (SIGKILL).
    pub(crate) fn kill(&mut self, port: u16) {
        let i = self.ports.iter().position(|p| *p == port).expect("a node of this cluster");
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in self.children.iter_mut().filter_map(Option::as_mut) {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------------------------
// Value helpers
// ---------------------------------------------------------------------------------------------

/// The identity that the fixture's `main` namespace accepts for `user`.
pub(crate) fn password_identity(user: &str) -> Value {
    json!({"user": user, "password": format!("pw-{user}")})
}

/// Lower-case hex HMAC-SHA256 of `msg` under `key`.
pub(crate) fn hmac_hex(key: &str, msg: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("hmac key");
    mac.update(msg.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The type (first element) of a message.
pub(crate) fn ty(msg: &Value) -> &str {
    msg.get(0).and_then(Value::as_str).unwrap_or("")
}

/// The payload (second element, `null` when missing) of a message.
pub(crate) fn payload(msg: &Value) -> &Value {
    msg.get(1).unwrap_or(&Value::Null)
}

/// The id (third element) of a message.
pub(crate) fn msg_id(msg: &Value) -> Option<u64> {
    msg.get(2).and_then(Value::as_u64)
}

/// Whether `msg` is a reply (`~ok` / `~err`) with this id.
pub(crate) fn is_reply(msg: &Value, id: u64) -> bool {
    matches!(ty(msg), "~ok" | "~err") && msg_id(msg) == Some(id)
}

/// The set of keys of a JSON object (panics if not an object).
pub(crate) fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap_or_else(|| panic!("expected an object, got {v}")).keys().cloned().collect()
}

/// Asserts that `v` is an object with exactly these keys.
pub(crate) fn assert_keys(v: &Value, expected: &[&str]) {
    let want: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
    assert_eq!(keys(v), want, "keys of {v}");
}

/// Asserts that `err` has the shape `{"code": CODE, "message": TEXT, "data"?: any}`
/// with CODE matching `[A-Z][A-Z0-9_]*`.
pub(crate) fn assert_error_shape(err: &Value) {
    let obj = err.as_object().unwrap_or_else(|| panic!("error is not an object: {err}"));
    for k in obj.keys() {
        assert!(matches!(k.as_str(), "code" | "message" | "data"), "unexpected key {k:?} in error {err}");
    }
    let code =
        obj.get("code").and_then(Value::as_str).unwrap_or_else(|| panic!("error without string code: {err}"));
    let mut chars = code.chars();
    let first = chars.next().unwrap_or(' ');
    assert!(
        first.is_ascii_uppercase() && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
        "code {code:?} is not [A-Z][A-Z0-9_]*"
    );
    assert!(obj.get("message").is_some_and(Value::is_string), "error without string message: {err}");
}

/// Asserts the error shape and its code.
pub(crate) fn assert_code(err: &Value, code: &str) {
    assert_error_shape(err);
    assert_eq!(err["code"], code, "error code in {err}");
}

/// The public profile the fixture's `main` namespace gives `user` on connection `conn`.
pub(crate) fn peer(conn: &str, user: &str) -> Value {
    json!({
        "conn": conn,
        "user": user,
        "alias": user,
        "available": true,
        "public": {"since": "fixture"},
    })
}

/// Compares JSON numbers by value (5 == 5.0).
pub(crate) fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("expected a number, got {v}"))
}

// ---------------------------------------------------------------------------------------------
// MessagePack <-> JSON value conversion
// ---------------------------------------------------------------------------------------------

/// Converts a JSON value to the MessagePack value with the same structure.
pub(crate) fn json_to_mp(v: &Value) -> rmpv::Value {
    match v {
        Value::Null => rmpv::Value::Nil,
        Value::Bool(b) => rmpv::Value::Boolean(*b),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                rmpv::Value::from(u)
            } else if let Some(i) = n.as_i64() {
                rmpv::Value::from(i)
            } else {
                rmpv::Value::F64(n.as_f64().expect("finite number"))
            }
        }
        Value::String(s) => rmpv::Value::from(s.as_str()),
        Value::Array(a) => rmpv::Value::Array(a.iter().map(json_to_mp).collect()),
        Value::Object(o) => {
            rmpv::Value::Map(o.iter().map(|(k, v)| (rmpv::Value::from(k.as_str()), json_to_mp(v))).collect())
        }
    }
}

/// Converts a MessagePack value to JSON; binary, extension and non-string map keys are errors.
pub(crate) fn mp_to_json(v: &rmpv::Value) -> Result<Value, String> {
    Ok(match v {
        rmpv::Value::Nil => Value::Null,
        rmpv::Value::Boolean(b) => Value::Bool(*b),
        rmpv::Value::Integer(i) => {
            if let Some(u) = i.as_u64() {
                json!(u)
            } else if let Some(s) = i.as_i64() {
                json!(s)
            } else {
                return Err(format!("integer out of range: {i}"));
            }
        }
        rmpv::Value::F32(f) => json!(f64::from(*f)),
        rmpv::Value::F64(f) => json!(f),
        rmpv::Value::String(s) => Value::String(
            s.as_str().ok_or_else(|| "invalid UTF-8 in a MessagePack string".to_string())?.to_string(),
        ),
        rmpv::Value::Binary(b) => return Err(format!("unexpected MessagePack binary {b:?}")),
        rmpv::Value::Array(a) => Value::Array(a.iter().map(mp_to_json).collect::<Result<_, _>>()?),
        rmpv::Value::Map(m) => {
            let mut obj = serde_json::Map::new();
            for (k, v) in m {
                let k = k.as_str().ok_or_else(|| format!("non-string MessagePack map key {k}"))?;
                obj.insert(k.to_string(), mp_to_json(v)?);
            }
            Value::Object(obj)
        }
        rmpv::Value::Ext(t, _) => return Err(format!("unexpected MessagePack ext type {t}")),
    })
}

/// Encodes a MessagePack value.
pub(crate) fn mp_encode(v: &rmpv::Value) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, v).expect("encode msgpack");
    out
}

// ---------------------------------------------------------------------------------------------
// The WebSocket client
// ---------------------------------------------------------------------------------------------

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How messages are framed on a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Codec {
    /// Text frames of JSON.
    Json,
    /// Binary frames of MessagePack.
    Msgpack,
}

/// What the reader task saw.
#[derive(Debug)]
enum Incoming {
    Msg(Value),
    Ping,
    /// A frame that is not a valid message for this connection's codec.
    Bad(String),
    Close(Option<(u16, String)>),
    /// The stream ended (or failed) without a close frame.
    Ended(String),
}

/// A Switchboard client connection.
pub(crate) struct Client {
    sink: SplitSink<Ws, Message>,
    rx: mpsc::UnboundedReceiver<Incoming>,
    buf: VecDeque<Value>,
    pings: usize,
    closed: Option<Result<(u16, String), String>>,
    next_id: u64,
    codec: Codec,
    protocol: Option<String>,
    reader: JoinHandle<()>,
    /// The `conn` of the successful `~hello`, if any.
    pub(crate) conn: String,
    /// The user of the successful `~hello`, if any.
    pub(crate) user: String,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn read_loop(mut stream: SplitStream<Ws>, codec: Codec, tx: mpsc::UnboundedSender<Incoming>) {
    while let Some(item) = stream.next().await {
        let ev = match item {
            Ok(Message::Text(t)) => match codec {
                Codec::Json => match serde_json::from_str::<Value>(t.as_str()) {
                    Ok(v) => Incoming::Msg(v),
                    Err(e) => Incoming::Bad(format!("server sent invalid JSON {t:?}: {e}")),
                },
                Codec::Msgpack => {
                    Incoming::Bad(format!("server sent a text frame on a msgpack connection: {t:?}"))
                }
            },
            Ok(Message::Binary(b)) => match codec {
                Codec::Json => {
                    Incoming::Bad(format!("server sent a binary frame on a JSON connection: {b:?}"))
                }
                Codec::Msgpack => {
                    let mut slice: &[u8] = &b;
                    match rmpv::decode::read_value(&mut slice) {
                        Ok(v) if slice.is_empty() => match mp_to_json(&v) {
                            Ok(j) => Incoming::Msg(j),
                            Err(e) => Incoming::Bad(e),
                        },
                        Ok(_) => Incoming::Bad(format!("trailing bytes in msgpack frame {b:?}")),
                        Err(e) => Incoming::Bad(format!("invalid msgpack {b:?}: {e}")),
                    }
                }
            },
            Ok(Message::Ping(_)) => Incoming::Ping,
            Ok(Message::Pong(_)) | Ok(Message::Frame(_)) => continue,
            Ok(Message::Close(frame)) => {
                let _ = tx
                    .send(Incoming::Close(frame.map(|f| (u16::from(f.code), f.reason.as_str().to_string()))));
                // Let tungstenite answer the close; keep polling until the stream ends.
                while stream.next().await.is_some() {}
                return;
            }
            Err(e) => {
                let _ = tx.send(Incoming::Ended(e.to_string()));
                return;
            }
        };
        if tx.send(ev).is_err() {
            return;
        }
    }
    let _ = tx.send(Incoming::Ended("stream ended".into()));
}

/// Builds a handshake request for `url` offering `protocols` (none: no header).
fn request_for(url: &str, protocols: &[&str]) -> tungstenite::handshake::client::Request {
    let mut req = url.into_client_request().expect("client request");
    if !protocols.is_empty() {
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(&protocols.join(", ")).expect("header value"),
        );
    }
    req
}

/// Opens a WebSocket to `url` offering `protocols`, returning the tungstenite error on failure.
pub(crate) async fn try_connect(url: &str, protocols: &[&str]) -> Result<Client, tungstenite::Error> {
    let req = request_for(url, protocols);
    let (ws, resp) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .expect("WebSocket upgrade did not complete in time")?;
    let protocol = resp
        .headers()
        .get("Sec-WebSocket-Protocol")
        .map(|h| h.to_str().expect("ascii subprotocol").to_string());
    let codec = if protocol.as_deref() == Some(MSGPACK_PROTOCOL) { Codec::Msgpack } else { Codec::Json };
    let (sink, stream) = ws.split();
    let (tx, rx) = mpsc::unbounded_channel();
    let reader = tokio::spawn(read_loop(stream, codec, tx));
    Ok(Client {
        sink,
        rx,
        buf: VecDeque::new(),
        pings: 0,
        closed: None,
        next_id: 1,
        codec,
        protocol,
        reader,
        conn: String::new(),
        user: String::new(),
    })
}

/// The HTTP status of a refused upgrade (panics if the upgrade succeeded or failed otherwise).
pub(crate) async fn upgrade_status(url: &str, protocols: &[&str]) -> u16 {
    match try_connect(url, protocols).await {
        Ok(c) => {
            panic!("the upgrade offering {protocols:?} to {url} succeeded (subprotocol {:?})", c.protocol())
        }
        Err(tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("the upgrade failed without an HTTP status: {e}"),
    }
}

impl Client {
    /// Connects to the fixture's `/ws` with no subprotocol (JSON).
    pub(crate) async fn connect(fx: &Fixture) -> Client {
        Client::connect_with(fx, &[]).await
    }

    /// Connects offering these subprotocols.
    pub(crate) async fn connect_with(fx: &Fixture, protocols: &[&str]) -> Client {
        try_connect(&fx.url(), protocols)
            .await
            .unwrap_or_else(|e| panic!("connect offering {protocols:?}: {e}"))
    }

    /// Connects with the MessagePack subprotocol.
    pub(crate) async fn connect_msgpack(fx: &Fixture) -> Client {
        let c = Client::connect_with(fx, &[MSGPACK_PROTOCOL]).await;
        assert_eq!(c.protocol(), Some(MSGPACK_PROTOCOL));
        c
    }

    /// Connects (JSON) and identifies as `user` with password `pw-user`.
    pub(crate) async fn user(fx: &Fixture, user: &str) -> Client {
        let mut c = Client::connect(fx).await;
        c.identify(user).await;
        c
    }

    /// Connects (MessagePack) and identifies as `user`.
    pub(crate) async fn user_msgpack(fx: &Fixture, user: &str) -> Client {
        let mut c = Client::connect_msgpack(fx).await;
        c.identify(user).await;
        c
    }

    /// The negotiated subprotocol.
    pub(crate) fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The codec in use.
    pub(crate) fn codec(&self) -> Codec {
        self.codec
    }

    /// Number of WebSocket pings received so far.
    pub(crate) fn pings(&self) -> usize {
        self.pings
    }

    /// A fresh request id.
    pub(crate) fn fresh_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Sends a raw WebSocket message.
    pub(crate) async fn send_frame(&mut self, m: Message) {
        self.sink.send(m).await.expect("send frame");
    }

    /// Sends a raw WebSocket message, ignoring a write error (the server may have closed).
    pub(crate) async fn send_frame_lossy(&mut self, m: Message) {
        let _ = self.sink.send(m).await;
    }

    /// Sends a text frame as is.
    pub(crate) async fn send_text(&mut self, s: &str) {
        self.send_frame(Message::Text(s.into())).await;
    }

    /// Sends a binary frame as is.
    pub(crate) async fn send_binary(&mut self, b: Vec<u8>) {
        self.send_frame(Message::Binary(b.into())).await;
    }

    /// Sends a message encoded with this connection's codec.
    pub(crate) async fn send(&mut self, msg: &Value) {
        match self.codec {
            Codec::Json => {
                let text = serde_json::to_string(msg).expect("serialize");
                self.send_text(&text).await;
            }
            Codec::Msgpack => {
                let bytes = mp_encode(&json_to_mp(msg));
                self.send_binary(bytes).await;
            }
        }
    }

    /// Sends the event `[ty, payload]`.
    pub(crate) async fn event(&mut self, ty: &str, payload: Value) {
        self.send(&json!([ty, payload])).await;
    }

    /// Sends the request `[ty, payload, id]` with a fresh id and returns the id.
    pub(crate) async fn request(&mut self, ty: &str, payload: Value) -> u64 {
        let id = self.fresh_id();
        self.send(&json!([ty, payload, id])).await;
        id
    }

    /// Waits for the reply with this id and returns the whole message (checked to be a
    /// well-formed 3-element reply).
    pub(crate) async fn reply(&mut self, id: u64) -> Value {
        let msg = self.wait_for(&format!("the reply to request {id}"), |m| is_reply(m, id)).await;
        let arr = msg.as_array().expect("array");
        assert_eq!(arr.len(), 3, "a reply has exactly 3 elements: {msg}");
        if ty(&msg) == "~err" {
            assert_error_shape(&msg[1]);
        }
        msg
    }

    /// Waits for the reply with this id: `Ok(result)` or `Err(error)`.
    pub(crate) async fn result(&mut self, id: u64) -> Result<Value, Value> {
        let msg = self.reply(id).await;
        if ty(&msg) == "~ok" { Ok(msg[1].clone()) } else { Err(msg[1].clone()) }
    }

    /// Sends a request and waits for its reply: `Ok(result)` or `Err(error)`.
    pub(crate) async fn call(&mut self, ty: &str, payload: Value) -> Result<Value, Value> {
        let id = self.request(ty, payload).await;
        self.result(id).await
    }

    /// Sends a request that must succeed and returns its result.
    pub(crate) async fn ok(&mut self, ty: &str, payload: Value) -> Value {
        let shown = payload.to_string();
        match self.call(ty, payload).await {
            Ok(v) => v,
            Err(e) => panic!("request [{ty:?}, {shown}] failed: {e}"),
        }
    }

    /// Sends a request that must fail and returns the error object.
    pub(crate) async fn err(&mut self, ty: &str, payload: Value) -> Value {
        let shown = payload.to_string();
        match self.call(ty, payload).await {
            Ok(v) => panic!("request [{ty:?}, {shown}] succeeded with {v}, expected an error"),
            Err(e) => e,
        }
    }

    /// Sends a request that must fail with `code` and returns the error object.
    pub(crate) async fn err_code(&mut self, ty: &str, payload: Value, code: &str) -> Value {
        let shown = payload.to_string();
        let e = self.err(ty, payload).await;
        assert_error_shape(&e);
        assert_eq!(e["code"], code, "error code of [{ty:?}, {shown}]: {e}");
        e
    }

    /// Sends `~hello` with this payload and returns the reply.
    pub(crate) async fn hello(&mut self, hello: Value) -> Result<Value, Value> {
        self.call("~hello", hello).await
    }

    /// Identifies as `user` (password identity) in `main`; checks and returns the welcome.
    pub(crate) async fn identify(&mut self, user: &str) -> Value {
        let welcome = self
            .hello(json!({"identity": password_identity(user)}))
            .await
            .unwrap_or_else(|e| panic!("~hello as {user} refused: {e}"));
        self.conn = welcome["conn"]
            .as_str()
            .unwrap_or_else(|| panic!("welcome without a string conn: {welcome}"))
            .to_string();
        self.user = user.to_string();
        welcome
    }

    /// Sends `~ping` and waits for its reply: a barrier that proves the connection is
    /// alive and that the server processed everything sent before.
    pub(crate) async fn sync(&mut self) {
        let id = self.request("~ping", Value::Null).await;
        let r = self.reply(id).await;
        assert_eq!(r, json!(["~ok", null, id]));
    }

    /// Pulls one item from the reader, waiting until `deadline`; false on timeout.
    async fn pump(&mut self, deadline: tokio::time::Instant, what: &str) -> bool {
        if let Some(closed) = &self.closed {
            panic!("waiting for {what}, but the connection is closed: {closed:?}; unread: {:?}", self.buf);
        }
        match tokio::time::timeout_at(deadline, self.rx.recv()).await {
            Err(_) => false,
            Ok(None) => {
                self.closed = Some(Err("reader task ended".into()));
                true
            }
            Ok(Some(Incoming::Msg(v))) => {
                self.buf.push_back(v);
                true
            }
            Ok(Some(Incoming::Ping)) => {
                self.pings += 1;
                true
            }
            Ok(Some(Incoming::Bad(e))) => panic!("while waiting for {what}: {e}"),
            Ok(Some(Incoming::Close(c))) => {
                self.closed = Some(c.ok_or_else(|| "close frame without a code".to_string()));
                true
            }
            Ok(Some(Incoming::Ended(e))) => {
                self.closed = Some(Err(format!("connection ended without a close frame: {e}")));
                true
            }
        }
    }

    /// Waits (up to `limit`) for the first message matching `pred`; earlier non-matching
    /// messages stay buffered, in order.
    pub(crate) async fn wait_for_within(
        &mut self,
        what: &str,
        limit: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        let mut scanned = 0;
        loop {
            while scanned < self.buf.len() {
                if pred(&self.buf[scanned]) {
                    return self.buf.remove(scanned).expect("index in range");
                }
                scanned += 1;
            }
            if !self.pump(deadline, what).await {
                panic!("timed out after {limit:?} waiting for {what}; unread messages: {:?}", self.buf);
            }
        }
    }

    /// Waits (up to [`WAIT`]) for the first message matching `pred`.
    pub(crate) async fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.wait_for_within(what, WAIT, pred).await
    }

    /// Waits for the next message of type `t`.
    pub(crate) async fn wait_type(&mut self, t: &str) -> Value {
        self.wait_for(&format!("a {t:?} message"), |m| ty(m) == t).await
    }

    /// The next message (buffered or new), waiting up to [`WAIT`].
    pub(crate) async fn next(&mut self) -> Value {
        self.wait_for("the next message", |_| true).await
    }

    /// Collects every message matching `pred` that is buffered or arrives within `dur`.
    pub(crate) async fn collect_for(&mut self, dur: Duration, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + dur;
        while self.closed.is_none() && self.pump(deadline, "messages").await {}
        let mut out = Vec::new();
        let mut rest = VecDeque::new();
        for m in self.buf.drain(..) {
            if pred(&m) {
                out.push(m);
            } else {
                rest.push_back(m);
            }
        }
        self.buf = rest;
        out
    }

    /// Asserts that no message matching `pred` is buffered or arrives within `dur`.
    pub(crate) async fn expect_none(&mut self, what: &str, dur: Duration, pred: impl Fn(&Value) -> bool) {
        let deadline = tokio::time::Instant::now() + dur;
        loop {
            if let Some(m) = self.buf.iter().find(|m| pred(m)) {
                panic!("unexpected {what}: {m}");
            }
            if self.closed.is_some() {
                panic!("the connection closed while checking that no {what} arrives: {:?}", self.closed);
            }
            if !self.pump(deadline, what).await {
                return;
            }
        }
    }

    /// Asserts that no message is buffered or arrives within [`QUIET`], except `~peer`
    /// directory notifications (any identified connection may get those when connections
    /// come and go; the presence tests check them on their own).
    pub(crate) async fn expect_silence(&mut self) {
        self.expect_none("message", QUIET, |m| ty(m) != "~peer").await;
    }

    /// Waits (up to `limit`) for the close frame; returns its code and reason, or a
    /// description of what happened instead. Messages that arrive before it (for instance
    /// `~bye`) stay buffered. A bad frame from the server is reported as an error too.
    pub(crate) async fn try_close_within(&mut self, limit: Duration) -> Result<(u16, String), String> {
        let deadline = tokio::time::Instant::now() + limit;
        while self.closed.is_none() {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Err(_) => {
                    return Err(format!(
                        "timed out after {limit:?} waiting for the server to close; unread: {:?}",
                        self.buf
                    ));
                }
                Ok(None) => self.closed = Some(Err("reader task ended".into())),
                Ok(Some(Incoming::Msg(v))) => self.buf.push_back(v),
                Ok(Some(Incoming::Ping)) => self.pings += 1,
                Ok(Some(Incoming::Bad(e))) => return Err(e),
                Ok(Some(Incoming::Close(c))) => {
                    self.closed = Some(c.ok_or_else(|| "close frame without a code".to_string()))
                }
                Ok(Some(Incoming::Ended(e))) => {
                    self.closed = Some(Err(format!("connection ended without a close frame: {e}")))
                }
            }
        }
        self.closed
            .clone()
            .expect("closed")
            .map_err(|e| format!("expected a close frame: {e}; unread: {:?}", self.buf))
    }

    /// Waits (up to `limit`) for the close frame; returns its code and reason. Messages that
    /// arrive before it (for instance `~bye`) stay buffered.
    pub(crate) async fn expect_close_within(&mut self, limit: Duration) -> (u16, String) {
        match self.try_close_within(limit).await {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    /// Waits (up to [`WAIT`]) for the close frame.
    pub(crate) async fn expect_close(&mut self) -> (u16, String) {
        self.expect_close_within(WAIT).await
    }

    /// Waits for the close frame, asserts its code and returns its reason.
    pub(crate) async fn expect_close_code(&mut self, code: u16) -> String {
        let (got, reason) = self.expect_close().await;
        assert_eq!(got, code, "close code (reason {reason:?})");
        reason
    }

    /// Messages received so far and not consumed.
    pub(crate) fn unread(&self) -> Vec<Value> {
        self.buf.iter().cloned().collect()
    }

    /// Waits (up to `limit`) until at least one more WebSocket ping arrived.
    pub(crate) async fn wait_ping(&mut self, limit: Duration) {
        let before = self.pings;
        let deadline = tokio::time::Instant::now() + limit;
        while self.pings == before {
            if !self.pump(deadline, "a WebSocket ping").await {
                panic!("no WebSocket ping within {limit:?}");
            }
        }
    }

    /// Sends a normal close (1000).
    pub(crate) async fn close(mut self) {
        let _ = self.sink.send(Message::Close(None)).await;
        let _ = self.sink.flush().await;
    }
}

// ---------------------------------------------------------------------------------------------
// A raw WebSocket client over TCP (for behaviour a WebSocket library would hide)
// ---------------------------------------------------------------------------------------------

/// A WebSocket client written by hand over a TCP stream. It answers nothing on its own:
/// pings are only seen when the test reads frames.
pub(crate) struct RawWs {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// WebSocket opcodes.
pub(crate) const OP_TEXT: u8 = 0x1;
/// Binary frame.
pub(crate) const OP_BINARY: u8 = 0x2;
/// Close frame.
pub(crate) const OP_CLOSE: u8 = 0x8;
/// Ping frame.
pub(crate) const OP_PING: u8 = 0x9;
/// Pong frame.
pub(crate) const OP_PONG: u8 = 0xA;

impl RawWs {
    /// Opens a TCP connection and performs the upgrade by hand. Returns the HTTP status
    /// line's code, the response head, and the connection.
    pub(crate) async fn connect(addr: SocketAddr, path: &str, protocols: &[&str]) -> (u16, String, RawWs) {
        let mut stream = TcpStream::connect(addr).await.expect("tcp connect");
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        );
        if !protocols.is_empty() {
            req.push_str(&format!("Sec-WebSocket-Protocol: {}\r\n", protocols.join(", ")));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).await.expect("write upgrade");
        let mut raw = RawWs { stream, buf: Vec::new() };
        let deadline = tokio::time::Instant::now() + WAIT;
        let head_end = loop {
            if let Some(pos) = raw.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break pos + 4;
            }
            assert!(raw.fill(deadline).await, "connection closed during the upgrade");
        };
        let head = String::from_utf8_lossy(&raw.buf[..head_end]).into_owned();
        raw.buf.drain(..head_end);
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad HTTP response head {head:?}"));
        (status, head, raw)
    }

    /// Reads more bytes; false on EOF. Panics at the deadline.
    async fn fill(&mut self, deadline: tokio::time::Instant) -> bool {
        let mut chunk = [0u8; 8192];
        match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
            Err(_) => panic!("raw client: timed out reading"),
            Ok(Ok(0)) | Ok(Err(_)) => false,
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Sends one masked frame.
    pub(crate) async fn send_frame(&mut self, opcode: u8, data: &[u8]) {
        let mut frame = vec![0x80 | opcode];
        let len = data.len();
        if len < 126 {
            frame.push(0x80 | len as u8);
        } else if len <= 0xFFFF {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
        let mask = [0x37u8, 0xfa, 0x21, 0x3d];
        frame.extend_from_slice(&mask);
        frame.extend(data.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).await.expect("raw write");
    }

    /// Sends a text frame.
    pub(crate) async fn send_text(&mut self, s: &str) {
        self.send_frame(OP_TEXT, s.as_bytes()).await;
    }

    /// Reads one frame `(opcode, payload)`; `None` on EOF. Panics at the deadline.
    pub(crate) async fn read_frame(&mut self, deadline: tokio::time::Instant) -> Option<(u8, Vec<u8>)> {
        loop {
            if let Some((consumed, op, data)) = parse_frame(&self.buf) {
                self.buf.drain(..consumed);
                return Some((op, data));
            }
            if !self.fill(deadline).await {
                return None;
            }
        }
    }
}

/// Parses one server frame from the front of `buf`.
fn parse_frame(buf: &[u8]) -> Option<(usize, u8, Vec<u8>)> {
    if buf.len() < 2 {
        return None;
    }
    let op = buf[0] & 0x0F;
    let masked = buf[1] & 0x80 != 0;
    let mut pos = 2;
    let mut len = u64::from(buf[1] & 0x7F);
    if len == 126 {
        if buf.len() < 4 {
            return None;
        }
        len = u64::from(u16::from_be_bytes([buf[2], buf[3]]));
        pos = 4;
    } else if len == 127 {
        if buf.len() < 10 {
            return None;
        }
        len = u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes"));
        pos = 10;
    }
    let mask = if masked {
        if buf.len() < pos + 4 {
            return None;
        }
        let m = [buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]];
        pos += 4;
        Some(m)
    } else {
        None
    };
    let len = usize::try_from(len).expect("frame length");
    if buf.len() < pos + len {
        return None;
    }
    let mut data = buf[pos..pos + len].to_vec();
    if let Some(m) = mask {
        for (i, b) in data.iter_mut().enumerate() {
            *b ^= m[i % 4];
        }
    }
    Some((pos + len, op, data))
}
