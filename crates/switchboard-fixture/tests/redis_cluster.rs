//! Two fixtures on a real 3-master Redis Cluster (`--redis redis+cluster://…`, sharded pub/sub):
//! a publication on one node reaches a subscriber on the other, and a message to a user reaches
//! their devices on both nodes. The cluster is `redis-server --cluster-enabled yes` ×3 (Debian
//! package `redis-server`, with `redis-cli`), started by each test on free ports.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// Three cluster masters, no replicas, no persistence, killed on drop.
struct RedisCluster {
    dir: PathBuf,
    ports: Vec<u16>,
    children: Vec<Child>,
}

fn answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

fn redis_cli(args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli must be installed (Debian package redis-tools, with redis-server)");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn seed() -> u32 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    nanos.subsec_nanos() ^ std::process::id().rotate_left(16)
}

impl RedisCluster {
    fn start() -> RedisCluster {
        let dir =
            std::env::temp_dir().join(format!("sb-fixture-cluster-{}-{:08x}", std::process::id(), seed()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let mut cluster = RedisCluster { dir, ports: Vec::new(), children: Vec::new() };
        // Ports ≤ 55535 whose cluster bus port (+10000) is free too; a port may be taken between
        // the check and redis-server's bind, then another is tried.
        let free = |port: u16| TcpListener::bind(("127.0.0.1", port)).is_ok();
        let mut tries = 0;
        while cluster.ports.len() < 3 {
            tries += 1;
            assert!(tries < 1000, "no free port pairs for a cluster");
            let port = 20_000 + u16::try_from(seed() % 35_535).expect("in range");
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
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server must be installed (Debian package redis-server)");
            let deadline = Instant::now() + Duration::from_secs(10);
            // The answer must come from this process, not another one on the same port.
            let pid = child.id();
            let ours = || {
                answers(port)
                    && redis_cli(&["-p", &port.to_string(), "info", "server"])
                        .contains(&format!("process_id:{pid}\r"))
            };
            while !ours() && Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            if ours() {
                cluster.ports.push(port);
                cluster.children.push(child);
            } else {
                let _ = child.kill();
                let _ = child.wait();
                eprintln!("redis-server did not start on port {port}; trying another");
            }
        }
        let addrs: Vec<String> = cluster.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addrs.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        let out = redis_cli(&args);
        assert!(out.contains("[OK] All 16384 slots covered"), "redis-cli --cluster create failed:\n{out}");
        let deadline = Instant::now() + Duration::from_secs(30);
        for port in &cluster.ports {
            while !redis_cli(&["-p", &port.to_string(), "cluster", "info"]).contains("cluster_state:ok") {
                assert!(Instant::now() < deadline, "cluster node {port} is not ok");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        cluster
    }

    fn url(&self) -> String {
        let seeds: Vec<String> = self.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        format!("redis+cluster://{}", seeds.join(","))
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Two fixtures on one Redis Cluster (bound as `let (_redis, a, b)`, the cluster is dropped last).
fn cluster() -> (RedisCluster, Fixture, Fixture) {
    let redis = RedisCluster::start();
    let a = Fixture::start_with(&["--redis", &redis.url()]);
    let b = Fixture::start_with(&["--redis", &redis.url()]);
    (redis, a, b)
}

#[tokio::test]
async fn a_publication_on_one_node_reaches_a_subscriber_on_the_other() {
    let (_redis, fa, fb) = cluster();
    let mut alice = Client::user(&fa, "alice").await;
    let mut bob = Client::user(&fb, "bob").await;
    let mut carol = Client::user(&fa, "carol").await;
    let ra = alice.ok("~sub", json!({"topic": "chat/x"})).await;
    let rb = bob.ok("~sub", json!({"topic": "chat/x"})).await;
    assert_eq!(ra["epoch"], rb["epoch"], "one history for the cluster");
    let mut published = Vec::new();
    for i in 0..10 {
        let r = carol.ok("~pub", json!({"topic": "chat/x", "data": {"i": i}})).await;
        published.push(r["seq"].as_u64().expect("seq"));
    }
    for c in [&mut alice, &mut bob] {
        for (i, seq) in published.iter().enumerate() {
            let m =
                c.wait_for("a delivery on chat/x", |m| ty(m) == "~msg" && m[1]["topic"] == "chat/x").await;
            assert_eq!(m[1]["seq"], *seq, "in order, same seq on both nodes: {m}");
            assert_eq!(m[1]["data"], json!({"i": i}));
        }
    }
    // And the other way round, on topics spread over the cluster's masters.
    for t in 0..6 {
        let topic = format!("chat/room{t}");
        alice.ok("~sub", json!({"topic": topic})).await;
        bob.ok("~pub", json!({"topic": topic, "data": t})).await;
        let m = alice.wait_for("a delivery from node B", |m| ty(m) == "~msg" && m[1]["topic"] == topic).await;
        assert_eq!(m[1]["data"], t);
    }
}

#[tokio::test]
async fn a_message_to_a_user_reaches_their_devices_on_both_nodes() {
    let (_redis, fa, fb) = cluster();
    let mut alice_a = Client::user(&fa, "alice").await;
    let mut alice_b = Client::user(&fb, "alice").await;
    let mut bob = Client::user(&fa, "bob").await;
    alice_a.sync().await;
    alice_b.sync().await;
    let r = bob.ok("tell", json!({"user": "alice", "type": "note", "payload": {"n": 1}})).await;
    assert_eq!(r["delivered"], 2, "{r}");
    for c in [&mut alice_a, &mut alice_b] {
        assert_eq!(c.wait_type("note").await, json!(["note", {"n": 1}]));
    }
    let mut carol = Client::user(&fb, "carol").await;
    let r = carol.ok("tell", json!({"user": "alice", "type": "note", "payload": {"n": 2}})).await;
    assert_eq!(r["delivered"], 2, "{r}");
    for c in [&mut alice_a, &mut alice_b] {
        assert_eq!(c.wait_type("note").await, json!(["note", {"n": 2}]));
    }
}
