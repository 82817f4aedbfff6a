//! A real `redis-server` for the tests (Debian package `redis-server`), on a free port, without
//! persistence (or with an append-only file in a temporary directory), killed on drop.

#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` child process.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    /// With persistence: the directory of its append-only file.
    aof: Option<std::path::PathBuf>,
}

impl RedisServer {
    /// Starts one on a free port and waits until it answers PING.
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let mut server = Self { port, child: None, aof: None };
        server.restart();
        server
    }

    /// Starts one with an append-only file (`--appendonly yes --appendfsync always`, in a
    /// temporary directory removed on drop): what it acknowledged survives a restart, even after
    /// a SIGKILL.
    pub fn start_persistent() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let dir =
            std::env::temp_dir().join(format!("sb-redis-aof-{}-{:08x}", std::process::id(), rand_u32()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let mut server = Self { port, child: None, aof: Some(dir) };
        server.restart();
        server
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills it (SIGKILL: no goodbye to the clients) and waits until the port is closed.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Freezes it (SIGSTOP): connections stay open, nothing is answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server go on (SIGCONT): it answers what it received meanwhile.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("a running redis-server").id();
        let status = Command::new("kill").arg(signal).arg(pid.to_string()).status().expect("kill");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// Starts it (again) on the same port — empty, or with what its append-only file kept — and
    /// waits until it answers PING.
    pub fn restart(&mut self) {
        self.stop();
        let mut command = Command::new("redis-server");
        command.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""]);
        match &self.aof {
            Some(dir) => command.args(["--appendonly", "yes", "--appendfsync", "always", "--dir"]).arg(dir),
            None => command.args(["--appendonly", "no"]),
        };
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (Debian package redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if ping(self.port) {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server did not answer PING on port {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(dir) = &self.aof {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A key prefix no other test uses.
pub fn prefix(name: &str) -> String {
    format!("test-{name}-{:08x}", rand_u32())
}

fn rand_u32() -> u32 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    nanos.subsec_nanos() ^ std::process::id().rotate_left(16)
}

/// Polls `f` every 20 ms until it is true or `within` passed; returns the last answer.
pub async fn eventually(within: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if f().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A real 3-master Redis Cluster (`redis-server --cluster-enabled yes`, no replicas, no
/// persistence but the cluster config files in a temporary directory), killed on drop.
pub struct RedisCluster {
    dir: std::path::PathBuf,
    nodes: Vec<(u16, Option<Child>)>,
}

/// A port `p` ≤ 55535 such that `p` and its cluster bus port `p + 10000` are free.
fn free_cluster_port(taken: &[u16]) -> u16 {
    for _ in 0..1000 {
        let p = 20_000 + (rand_u32() % 35_535) as u16;
        if taken.contains(&p) {
            continue;
        }
        let free = |port: u16| TcpListener::bind(("127.0.0.1", port)).is_ok();
        if free(p) && free(p + 10_000) {
            return p;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("no free port pair for a cluster node");
}

fn redis_cli(args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli must be installed (Debian package redis-tools, with redis-server)");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

impl RedisCluster {
    /// Starts 3 masters, creates the cluster (`redis-cli --cluster create`) and waits until every
    /// node reports `cluster_state:ok`.
    pub fn start() -> Self {
        let dir =
            std::env::temp_dir().join(format!("sb-redis-cluster-{}-{:08x}", std::process::id(), rand_u32()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let mut cluster = Self { dir, nodes: Vec::new() };
        while cluster.nodes.len() < 3 {
            // A port found free may be taken before redis-server binds it: then try another.
            let mut tries = 0;
            loop {
                let taken: Vec<u16> = cluster.nodes.iter().map(|(p, _)| *p).collect();
                cluster.nodes.push((free_cluster_port(&taken), None));
                let i = cluster.nodes.len() - 1;
                match cluster.spawn(i) {
                    Ok(()) => break,
                    Err(e) if tries < 3 => {
                        tries += 1;
                        eprintln!("cluster node did not start, trying another port: {e}");
                        cluster.nodes.pop();
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }
        let ports = cluster.ports();
        let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addrs.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        let out = redis_cli(&args);
        assert!(out.contains("[OK] All 16384 slots covered"), "redis-cli --cluster create failed:\n{out}");
        cluster.wait_ok();
        cluster
    }

    /// Starts node `i` and waits until it answers PING; the error tells why not (its log).
    fn spawn(&mut self, i: usize) -> Result<(), String> {
        let port = self.nodes[i].0;
        let conf = self.dir.join(format!("nodes-{port}.conf"));
        let log = self.dir.join(format!("redis-{port}.log"));
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--cluster-enabled", "yes"])
            .arg("--cluster-config-file")
            .arg(&conf)
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .args(["--save", "", "--appendonly", "no", "--cluster-node-timeout", "2000"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (Debian package redis-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // The answer must come from this process, not from another one on the same port.
            if ping(port)
                && redis_cli(&["-p", &port.to_string(), "info", "server"])
                    .contains(&format!("process_id:{}\r", child.id()))
            {
                self.nodes[i].1 = Some(child);
                return Ok(());
            }
            let exited = matches!(child.try_wait(), Ok(Some(_)));
            if exited || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(5).collect();
                return Err(format!("redis-server did not answer PING on port {port}: {tail:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until every node reports `cluster_state:ok`.
    pub fn wait_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for (port, _) in &self.nodes {
            loop {
                let info = redis_cli(&["-p", &port.to_string(), "cluster", "info"]);
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(Instant::now() < deadline, "cluster node {port} not ok:\n{info}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self.nodes.iter().map(|(p, _)| format!("127.0.0.1:{p}")).collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// The nodes' ports.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|(p, _)| *p).collect()
    }

    /// The port of the master serving `key`'s slot (a key or a shard channel).
    pub fn port_of(&self, key: &str) -> u16 {
        let slot = slot(key);
        let mut c = redis::Client::open(format!("redis://127.0.0.1:{}", self.nodes[0].0))
            .and_then(|c| c.get_connection())
            .expect("a connection to a cluster node");
        let ranges: redis::Value = redis::cmd("CLUSTER").arg("SLOTS").query(&mut c).expect("CLUSTER SLOTS");
        let int = |v: &redis::Value| match v {
            redis::Value::Int(i) => *i,
            other => panic!("CLUSTER SLOTS: {other:?}"),
        };
        let redis::Value::Array(ranges) = ranges else { panic!("CLUSTER SLOTS: {ranges:?}") };
        for range in &ranges {
            let redis::Value::Array(r) = range else { continue };
            if (int(&r[0])..=int(&r[1])).contains(&i64::from(slot))
                && let redis::Value::Array(master) = &r[2]
            {
                return u16::try_from(int(&master[1])).expect("a port");
            }
        }
        panic!("no master for slot {slot}: {ranges:?}");
    }

    /// `CLUSTER KEYSLOT`, asked to a node (to check [`slot`]).
    pub fn keyslot(&self, key: &str) -> u16 {
        redis_cli(&["-p", &self.nodes[0].0.to_string(), "cluster", "keyslot", key])
            .trim()
            .parse()
            .expect("a slot")
    }

    /// Kills the master on `port` (SIGKILL) and waits until its port is closed.
    pub fn kill(&mut self, port: u16) {
        let i = self.nodes.iter().position(|(p, _)| *p == port).expect("a node of this cluster");
        if let Some(mut child) = self.nodes[i].1.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the master on `port` again (same node id and slots from its cluster config file,
    /// empty data) and waits for `cluster_state:ok` everywhere.
    pub fn restart(&mut self, port: u16) {
        let i = self.nodes.iter().position(|(p, _)| *p == port).expect("a node of this cluster");
        self.kill(port);
        self.spawn(i).unwrap_or_else(|e| panic!("restarting a cluster node: {e}"));
        self.wait_ok();
    }

    /// Every key of every node matching `pattern`.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut all = Vec::new();
        for (port, _) in &self.nodes {
            let out = redis_cli(&["-p", &port.to_string(), "--raw", "keys", pattern]);
            all.extend(out.lines().filter(|l| !l.is_empty()).map(str::to_owned));
        }
        all
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.nodes {
            if let Some(mut child) = child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The hash slot of a key or shard channel (CRC16/XMODEM of the hash tag or key, mod 16384).
pub fn slot(key: &str) -> u16 {
    fn crc16(data: &[u8]) -> u16 {
        let mut crc: u16 = 0;
        for &b in data {
            crc ^= u16::from(b) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
            }
        }
        crc
    }
    let k = key.as_bytes();
    let hashed = match k.iter().position(|&c| c == b'{') {
        Some(open) => match k[open + 1..].iter().position(|&c| c == b'}') {
            Some(len) if len > 0 => &k[open + 1..open + 1 + len],
            _ => k,
        },
        None => k,
    };
    crc16(hashed) % 16384
}
