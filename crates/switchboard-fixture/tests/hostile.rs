//! The hostile-input suite on `Switchboard::serve`'s own path (issue 16), against one fixture
//! process: a ping flood from connections that never read, slow handshakes, frames that break
//! RFC 6455. The abuser gets its answer, the process's memory and descriptors (`/proc`) stay
//! bounded, and a well-behaved client beside it is served throughout (p99 printed). The
//! standalone server's own suite is `crates/switchboard-server/tests/hostile.rs`. Test names
//! start with `hostile_`: `scripts/test.sh` runs them on their own to show the figures.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// One fixture process (never a cluster: its memory is what is measured); killed when dropped.
struct Process {
    child: Child,
    addr: SocketAddr,
}

impl Process {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard-fixture"))
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines.next().unwrap().unwrap();
        std::thread::spawn(move || for _ in lines {});
        let addr = line.strip_prefix("listening on ").unwrap().parse().unwrap();
        Self { child, addr }
    }

    fn rss(&self) -> u64 {
        let statm = std::fs::read_to_string(format!("/proc/{}/statm", self.child.id())).unwrap();
        statm.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 4096
    }

    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).unwrap().count()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client calling `echo` every 20 ms; every call must succeed. Returns the stopper and the
/// task that yields the latencies.
async fn bystander(addr: SocketAddr) -> (Arc<AtomicBool>, tokio::task::JoinHandle<Vec<Duration>>) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.unwrap();
    let hello = r#"["~hello",{"identity":{"user":"calm","password":"pw-calm"}},1]"#;
    ws.send(Message::text(hello)).await.unwrap();
    let _ = ws.next().await;
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let task = tokio::spawn(async move {
        let mut latencies = Vec::new();
        let mut id = 2u64;
        while !stopped.load(Ordering::Relaxed) {
            let t = Instant::now();
            ws.send(Message::text(format!(r#"["echo",{id},{id}]"#))).await.unwrap();
            loop {
                let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
                    .await
                    .expect("served")
                    .unwrap()
                    .unwrap();
                if msg.to_text().unwrap().starts_with(&format!(r#"["~ok",{id},{id}"#)) {
                    break;
                }
            }
            latencies.push(t.elapsed());
            id += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        latencies
    });
    (stop, task)
}

async fn finish(what: &str, (stop, task): (Arc<AtomicBool>, tokio::task::JoinHandle<Vec<Duration>>)) {
    stop.store(true, Ordering::Relaxed);
    let mut l = task.await.expect("the bystander was served throughout");
    l.sort();
    let p99 = l[(l.len() * 99 / 100).min(l.len() - 1)];
    println!("{what}: bystander served {} calls, p99 {:.2} ms", l.len(), p99.as_secs_f64() * 1e3);
}

async fn upgraded(addr: SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0];
        assert_eq!(tcp.read(&mut b).await.unwrap(), 1);
        head.push(b[0]);
    }
    tcp
}

fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [7, 1, 3, 9];
    let mut out = vec![first, 0x80 | payload.len() as u8];
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_ping_flood_on_serve() {
    let p = Process::start();
    let by = bystander(p.addr).await;
    let (rss, fds) = (p.rss(), p.fds());
    let ping = frame(0x89, &[b'p'; 125]);
    let chunk: Vec<u8> = ping.iter().copied().cycle().take(ping.len() * 512).collect();
    let mut flooders = Vec::new();
    for _ in 0..4 {
        let chunk = chunk.clone();
        let mut tcp = upgraded(p.addr).await;
        flooders.push(tokio::spawn(async move {
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
        assert!(sent < 131 * 1_000_000, "every ping was read without its pong being written");
        held.push(tcp);
    }
    let grown = p.rss().saturating_sub(rss);
    println!("ping flood (serve): the fixture grew by {:.1} MB", grown as f64 / 1e6);
    assert!(grown < 48 << 20, "{grown}");
    assert!(p.fds() <= fds + 8);
    finish("ping flood (serve)", by).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_slow_handshakes_on_serve() {
    let p = Process::start();
    let by = bystander(p.addr).await;
    let fds = p.fds();
    // 200 connections that never finish their upgrade: closed by the 10 s deadline.
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut tcp = TcpStream::connect(p.addr).await.unwrap();
        let _ = tcp.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n").await;
        slow.push(tcp);
    }
    let started = Instant::now();
    for tcp in &mut slow {
        let mut b = [0u8; 16];
        let left = Duration::from_secs(15).saturating_sub(started.elapsed());
        let n = tokio::time::timeout(left, tcp.read(&mut b)).await.expect("closed by the deadline");
        assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    }
    println!("slow handshakes (serve): all 200 closed after {:.1} s", started.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(p.fds() <= fds + 2, "descriptors back");
    finish("slow handshakes (serve)", by).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_rfc_6455_violations_on_serve() {
    let p = Process::start();
    let by = bystander(p.addr).await;
    for (bytes, code) in [
        (frame(0xC1, b"[]"), 1002u16),
        (frame(0x8B, b""), 1002),
        (frame(0x81, b"[\"\xff\"]"), 1007),
        (frame(0x88, &1014u16.to_be_bytes()), 1014),
        (frame(0x88, &[3]), 1002),
    ] {
        let mut tcp = upgraded(p.addr).await;
        tcp.write_all(&bytes).await.unwrap();
        let mut head = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(5), tcp.read_exact(&mut head)).await.unwrap().unwrap();
        assert_eq!((head[0], u16::from_be_bytes([head[2], head[3]])), (0x88, code));
    }
    finish("RFC 6455 violations (serve)", by).await;
}
