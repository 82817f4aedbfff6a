//! The hostile-input suite (issue 16): the standalone server, as an attacker finds it — raw
//! sockets, floods, slow clients — one test per finding. In each, the abuser gets its documented
//! answer, the server's memory and descriptors (read from `/proc`) stay under the bound, and a
//! well-behaved client beside it is served throughout (its p99 is printed; no timing is
//! asserted). `scripts/test.sh` runs this file on its own (`--nocapture`, one test at a time) to
//! show the figures. Test names start with `hostile_`.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Client, api, http, metric, start_with};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SECRET: &str = "an-hs256-secret-of-32-bytes-ok!!";

fn config(identify: &str, extra: &str) -> String {
    let jwt = format!("[jwt]\nalgorithm = \"HS256\"\nsecret = \"{SECRET}\"\n");
    let http = if extra.contains("[http]") { String::new() } else { format!("[http]\n{NO_ADDRESS_LIMITS}") };
    let extra = extra.replace("[http]\n", &format!("[http]\n{NO_ADDRESS_LIMITS}"));
    common::config(identify, &format!("{extra}\n{http}[metrics]\nlisten = \"127.0.0.1:0\"\n{jwt}"))
}

fn token(user: &str, ttl: u64) -> String {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + ttl;
    encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": user, "exp": exp}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// The process, and the well-behaved client beside the abuser
// ---------------------------------------------------------------------------------------------

fn resident_bytes(pid: u32) -> u64 {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).expect("Linux /proc");
    statm.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 4096
}

fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

/// Connections from one address are not limited (every client of these tests is 127.0.0.1);
/// the test of those limits sets its own.
const NO_ADDRESS_LIMITS: &str = "max_connections_per_address = 0
new_connections_per_address = { per_second = 0 }
";

/// A client calling `~ping` every 20 ms while the abuse goes on; every call must succeed.
struct Bystander {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<Duration>>,
}

impl Bystander {
    async fn start(addr: SocketAddr, identity: Value) -> Self {
        let (mut c, _) = Client::identified(addr, identity).await;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                let t = Instant::now();
                assert_eq!(c.call("~ping", json!(null)).await, Ok(json!(null)), "the bystander was refused");
                latencies.push(t.elapsed());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            latencies
        });
        Self { stop, task }
    }

    /// Stops; prints its calls' p99 under `what`.
    async fn finish(self, what: &str) {
        self.stop.store(true, Ordering::Relaxed);
        let mut latencies = self.task.await.expect("the bystander was served throughout");
        latencies.sort();
        assert!(!latencies.is_empty());
        let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
        println!("{what}: bystander served {} calls, p99 {:.2} ms", latencies.len(), p99.as_secs_f64() * 1e3);
    }
}

/// The server's memory and descriptors before the abuse, to compare with after.
struct Baseline {
    pid: u32,
    rss: u64,
    fds: usize,
}

impl Baseline {
    fn of(server: &common::Server) -> Self {
        let pid = server.child.id().unwrap();
        Self { pid, rss: resident_bytes(pid), fds: descriptors(pid) }
    }

    /// Asserts growth under `rss_bound` bytes and `fds_bound` descriptors; prints both.
    fn check(&self, what: &str, rss_bound: u64, fds_bound: usize) {
        let grown = resident_bytes(self.pid).saturating_sub(self.rss);
        let fds = descriptors(self.pid).saturating_sub(self.fds);
        println!("{what}: the server grew by {:.1} MB and {fds} descriptors", grown as f64 / 1e6);
        assert!(grown < rss_bound, "{what}: the server grew by {grown} bytes (bound {rss_bound})");
        assert!(fds <= fds_bound, "{what}: {fds} more descriptors (bound {fds_bound})");
    }
}

// ---------------------------------------------------------------------------------------------
// Raw WebSocket
// ---------------------------------------------------------------------------------------------

async fn upgraded(addr: SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0];
        assert_eq!(tcp.read(&mut b).await.unwrap(), 1, "closed during the upgrade");
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    tcp
}

fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [7, 1, 3, 9];
    let mut out = vec![first];
    if payload.len() < 126 {
        out.push(0x80 | payload.len() as u8);
    } else {
        out.push(0x80 | 126);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// The close code the server sends, reading (and dropping) everything before it.
async fn close_code(tcp: &mut TcpStream) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut head = [0u8; 2];
        tokio::time::timeout_at(deadline, tcp.read_exact(&mut head)).await.ok()?.ok()?;
        let len = match head[1] & 0x7f {
            126 => {
                let mut b = [0; 2];
                tcp.read_exact(&mut b).await.ok()?;
                usize::from(u16::from_be_bytes(b))
            }
            127 => {
                let mut b = [0; 8];
                tcp.read_exact(&mut b).await.ok()?;
                usize::try_from(u64::from_be_bytes(b)).ok()?
            }
            n => usize::from(n),
        };
        let mut payload = vec![0; len];
        tcp.read_exact(&mut payload).await.ok()?;
        if head[0] & 0x0f == 0x8 {
            return Some(u16::from_be_bytes([payload[0], payload[1]]));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One test per finding
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_ping_flood_from_connections_that_never_read() {
    let server = start_with(&config("anonymous", ""), &[], &[]).await;
    let bystander = Bystander::start(server.addr, json!({})).await;
    let base = Baseline::of(&server);
    let ping = frame(0x89, &[b'p'; 125]);
    let chunk: Vec<u8> = ping.iter().copied().cycle().take(ping.len() * 512).collect();
    let mut flooders = Vec::new();
    for _ in 0..4 {
        let chunk = chunk.clone();
        let mut tcp = upgraded(server.addr).await;
        flooders.push(tokio::spawn(async move {
            // 1M pings, or until the server stops taking them for two seconds.
            let mut sent = 0;
            while sent < 131 * 1_000_000 {
                let at = sent % chunk.len();
                match tokio::time::timeout(Duration::from_secs(2), tcp.write(&chunk[at..])).await {
                    Ok(Ok(n)) if n > 0 => sent += n,
                    _ => break,
                }
            }
            (tcp, sent)
        }));
    }
    let mut held = Vec::new();
    for f in flooders {
        let (tcp, sent) = f.await.unwrap();
        assert!(sent < 131 * 1_000_000, "the server read every ping without answering them");
        held.push(tcp);
    }
    // 4 connections: one unwritten pong each, besides what the kernel holds.
    base.check("ping flood", 48 << 20, 8);
    bystander.finish("ping flood").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_slow_handshakes_are_closed_and_capped() {
    let toml = config("anonymous", "[http]\nhandshake_timeout_ms = 2000\nmax_handshakes = 300\n");
    let server = start_with(&toml, &[], &[]).await;
    let bystander = Bystander::start(server.addr, json!({})).await;
    let base = Baseline::of(&server);
    // 400 connections that send the first bytes of an upgrade and then one byte a second.
    let mut slow = Vec::new();
    for _ in 0..400 {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        let _ = tcp.write_all(b"GET /ws HTTP/1.1\r\n").await;
        slow.push(tcp);
    }
    let trickle: Vec<_> = slow
        .into_iter()
        .map(|mut tcp| {
            tokio::spawn(async move {
                for _ in 0..10 {
                    if tcp.write_all(b"X").await.is_err() {
                        return true;
                    }
                    let mut b = [0u8; 64];
                    if let Ok(Ok(0) | Err(_)) =
                        tokio::time::timeout(Duration::from_secs(1), tcp.read(&mut b)).await
                    {
                        return true;
                    }
                }
                false
            })
        })
        .collect();
    let mut closed = 0;
    for t in trickle {
        closed += usize::from(t.await.unwrap());
    }
    assert_eq!(closed, 400, "every slow handshake closed (by the deadline, or beyond the cap)");
    tokio::time::sleep(Duration::from_millis(500)).await;
    base.check("slow handshakes", 16 << 20, 4);
    let page = http(server.metrics_addr().await, "GET", "/metrics", None, None).await.1;
    let timeouts =
        metric(&page, "switchboard_handshake_failures_total{listener=\"main\",reason=\"timeout\"}");
    let cap = metric(&page, "switchboard_handshake_failures_total{listener=\"main\",reason=\"cap\"}");
    println!("slow handshakes: {timeouts:?} closed at the deadline, {cap:?} beyond the cap");
    bystander.finish("slow handshakes").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_expiring_identities_leave_nothing_behind() {
    // Rate limits off: this abuser is fast on purpose, to show what each identification costs.
    let toml = "[limits]\nidentify_timeout_ms = 500\n[limits.rate]\nmessages = { per_second = 0 }\n\
                user_messages = { per_second = 0 }\n";
    let server = start_with(&config("jwt", toml), &[], &[]).await;
    let bystander = Bystander::start(server.addr, json!(token("calm", 3600))).await;
    let metrics = server.metrics_addr().await;
    let timers = || async move {
        let page = http(metrics, "GET", "/metrics", None, None).await.1;
        metric(&page, "switchboard_pending_timers").unwrap()
    };
    let base = Baseline::of(&server);
    // Connect, identify with an expiring token, close; and one connection refreshing.
    for i in 0..1000 {
        let (mut c, _) = Client::identified(server.addr, json!(token(&format!("u{}", i % 50), 3600))).await;
        let _ = c.ws.close(None).await;
    }
    let (mut refresher, _) = Client::identified(server.addr, json!(token("refresher", 3600))).await;
    for _ in 0..2000 {
        refresher.call("~refresh", json!({"identity": token("refresher", 3600)})).await.unwrap();
    }
    drop(refresher);
    // Past the identification deadlines: only the bystander's expiry is left.
    let mut left = f64::MAX;
    for _ in 0..100 {
        left = timers().await;
        if left <= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(left, 1.0, "timers left behind by closed or refreshed connections");
    base.check("identification churn", 24 << 20, 4);
    bystander.finish("identification churn").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_a_flooder_is_rate_limited_then_closed() {
    let server = start_with(&config("anonymous", ""), &[], &[]).await;
    let bystander = Bystander::start(server.addr, json!({})).await;
    let base = Baseline::of(&server);
    let mut tcp = upgraded(server.addr).await;
    let hello = frame(0x81, br#"["~hello",{},1]"#);
    tcp.write_all(&hello).await.unwrap();
    let burst: Vec<u8> =
        (2..20_002u64).flat_map(|i| frame(0x81, format!(r#"["~ping",null,{i}]"#).as_bytes())).collect();
    let _ = tcp.write_all(&burst).await;
    assert_eq!(close_code(&mut tcp).await, Some(4501), "closed for going on past RATE_LIMITED");
    base.check("message flood", 16 << 20, 4);
    let page = http(server.metrics_addr().await, "GET", "/metrics", None, None).await.1;
    assert!(metric(&page, "switchboard_rate_limited_total{kind=\"message\"}").unwrap() >= 200.0);
    assert_eq!(metric(&page, "switchboard_rate_limit_closes_total"), Some(1.0));
    bystander.finish("message flood").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_connections_from_one_address_are_capped() {
    let toml = common::config(
        "anonymous",
        // Clients straight from the Internet: no proxy on this host (by default loopback is a
        // trusted proxy, whose clients are counted at the upgrade by the address it names).
        "[http]\nmax_connections_per_address = 64\nnew_connections_per_address = { per_second = 0 }\ntrusted_proxies = []\n",
    );
    let server = start_with(&toml, &[], &[]).await;
    let bystander = Bystander::start(server.addr, json!({})).await;
    let base = Baseline::of(&server);
    let mut opened = Vec::new();
    let mut refused = 0;
    for _ in 0..500 {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        let _ = tcp.write_all(b"GET /api/info HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let mut b = [0u8; 12];
        // Every connection is answered at once (429, or the API's 401): the timeout is only a
        // bound for a broken server.
        match tokio::time::timeout(Duration::from_secs(2), tcp.read_exact(&mut b)).await {
            Ok(Ok(_)) if &b == b"HTTP/1.1 429" => refused += 1,
            _ => opened.push(tcp),
        }
    }
    println!("connections from one address: {} kept, {refused} refused with 429", opened.len());
    assert!(refused >= 500 - 64, "{refused} refused");
    // The bystander's one and 63 others, at most.
    base.check("connections per address", 16 << 20, 64 + 4);
    bystander.finish("connections per address").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_repeated_warnings_do_not_flood_the_log() {
    let toml = config(
        "jwt",
        "[limits]\nmax_pending_acks = 16\n[namespaces.main.topics.\"acked/{x}\"]\nacknowledged = true\n",
    );
    let server = start_with(&toml, &[], &[]).await;
    let bystander = Bystander::start(server.addr, json!(token("calm", 3600))).await;
    // A subscriber of an acknowledged topic that never acknowledges, 2,000 deliveries.
    let (mut slow, _) = Client::identified(server.addr, json!(token("slow", 3600))).await;
    slow.call("~sub", json!({"topic": "acked/a"})).await.unwrap();
    for i in 0..2000 {
        let _ = common::http(
            server.addr,
            "POST",
            "/api/publish",
            Some(common::KEY),
            Some(&json!({"topic": "acked/a", "data": i})),
        )
        .await;
    }
    // 300 refused identifications, and 300 upgrades from a foreign origin.
    for _ in 0..300 {
        let mut c = Client::connect(server.addr).await;
        assert!(c.call("~hello", json!({"identity": "not a token"})).await.is_err());
    }
    for _ in 0..300 {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        let _ = tcp
            .write_all(
                b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: https://evil.example\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            )
            .await;
        let mut b = [0u8; 12];
        let _ = tcp.read_exact(&mut b).await;
        assert_eq!(&b, b"HTTP/1.1 403");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = server.logs.lock().unwrap().clone();
    let warnings = |what: &str| logs.iter().filter(|l| l.contains("WARN") && l.contains(what)).count();
    let (slow_lines, refused, upgrades) =
        (warnings("slow consumer"), warnings("identification refused"), warnings("upgrade refused"));
    println!("log flood: {slow_lines} + {refused} + {upgrades} WARN lines for 2,000 + 300 + 300 events");
    assert!(slow_lines <= 1, "{slow_lines}");
    assert!(refused <= 5 && upgrades <= 5, "{refused} {upgrades}");
    bystander.finish("log flood").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_frames_that_break_rfc_6455_get_their_close_codes() {
    let server = start_with(&config("anonymous", ""), &[], &[]).await;
    let bystander = Bystander::start(server.addr, json!({})).await;
    let base = Baseline::of(&server);
    let cases: [(&str, Vec<u8>, u16); 6] = [
        ("RSV1", frame(0xC1, b"[]"), 1002),
        ("reserved opcode", frame(0x83, b""), 1002),
        ("fragmented ping", frame(0x09, b""), 1002),
        ("1-byte close", frame(0x88, &[3]), 1002),
        ("invalid UTF-8", frame(0x81, b"[\"\xff\"]"), 1007),
        ("close 1014", frame(0x88, &1014u16.to_be_bytes()), 1014),
    ];
    for _ in 0..20 {
        for (what, bytes, code) in &cases {
            let mut tcp = upgraded(server.addr).await;
            tcp.write_all(bytes).await.unwrap();
            assert_eq!(close_code(&mut tcp).await, Some(*code), "{what}");
        }
    }
    base.check("RFC 6455 violations", 16 << 20, 4);
    bystander.finish("RFC 6455 violations").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_errors_reveal_nothing() {
    let server = start_with(&config("jwt", ""), &[], &[]).await;
    let bystander = Bystander::start(server.addr, json!(token("calm", 3600))).await;
    let reveals = |m: &str| {
        [
            "expected struct",
            "invalid type",
            "JSON error",
            "Base64",
            "InvalidSignature",
            "unknown variant",
            "at line",
        ]
        .iter()
        .any(|w| m.contains(w))
    };
    for payload in
        [json!("x"), json!({"ns": 1}), json!({"identity": "a.b.c"}), json!({"identity": "e30.e30.AAAA"})]
    {
        let mut c = Client::connect(server.addr).await;
        let e = c.call("~hello", payload.clone()).await.unwrap_err();
        let m = e["message"].as_str().unwrap();
        assert!(!reveals(m), "{payload}: {m}");
    }
    let (mut ok, _) = Client::identified(server.addr, json!(token("ada", 3600))).await;
    for (kind, payload) in [("~sub", json!({"topic": 1})), ("~pub", json!([])), ("~refresh", json!(7))] {
        let e = ok.call(kind, payload).await.unwrap_err();
        let m = e["message"].as_str().unwrap();
        assert!(!reveals(m), "{kind}: {m}");
    }
    let info = api(server.addr, "GET", "/api/info", None).await;
    assert!(info["connections"].as_u64().unwrap() >= 2);
    bystander.finish("error texts").await;
}
