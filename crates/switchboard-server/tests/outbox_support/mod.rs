//! Real services for the outbox tests: a PostgreSQL cluster made with `initdb` in a temporary
//! directory and a `redis-server`, each on a free port and stopped when dropped (also when the
//! test panics). As root (CI), PostgreSQL runs as the `postgres` user, as it refuses root.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::common::{Client, Server, start_with};

/// The migration that the documentation tells users to apply.
pub const MIGRATION: &str = include_str!("../../migrations/0001_switchboard_outbox.sql");

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// The directory of Debian's PostgreSQL binaries (`initdb`, `pg_ctl`): `pg_config --bindir`, or
/// the newest `/usr/lib/postgresql/*/bin` that has `initdb`.
fn bin_dir() -> PathBuf {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).expect(
        "PostgreSQL's initdb must be installed (Debian package postgresql: /usr/lib/postgresql/*/bin/initdb)",
    )
}

/// A PostgreSQL server of its own (`postgres` superuser, trust authentication on 127.0.0.1).
pub struct Postgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    root: bool,
    options: String,
}

impl Postgres {
    pub fn start() -> Postgres {
        Self::start_with(None)
    }

    /// With TLS (`ssl=on`) from this certificate and key; plain connections are still accepted.
    pub fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> Postgres {
        Self::start_with(Some((cert, key)))
    }

    fn start_with(tls: Option<(&std::path::Path, &std::path::Path)>) -> Postgres {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("switchboard-pg-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let root = is_root();
        if root {
            let status = Command::new("chown").arg("postgres:postgres").arg(&dir).status().unwrap();
            assert!(status.success(), "chown postgres {}", dir.display());
        }
        let port = free_port();
        // No durability: these servers hold test data only.
        let mut options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off",
            dir.display()
        );
        if let Some((cert, key)) = tls {
            // PostgreSQL wants its key readable by its own user only.
            let (c, k) = (dir.join("server.crt"), dir.join("server.key"));
            std::fs::copy(cert, &c).unwrap();
            std::fs::copy(key, &k).unwrap();
            std::fs::set_permissions(&k, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
            if root {
                let status = Command::new("chown").arg("postgres:postgres").arg(&c).arg(&k).status().unwrap();
                assert!(status.success());
            }
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                c.display(),
                k.display()
            ));
        }
        let pg = Postgres { port, dir, bin: bin_dir(), root, options };
        let data = pg.data();
        pg.run(
            "initdb",
            &["-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
        );
        pg.ctl_start();
        pg
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// Runs one of the PostgreSQL programs, as `postgres` when we are root.
    fn run(&self, program: &str, args: &[&str]) {
        let exe = self.bin.join(program);
        let mut cmd = if self.root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}\nlog: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
        );
    }

    fn ctl_start(&self) {
        let log = self.dir.join("log").display().to_string();
        self.run("pg_ctl", &["start", "-w", "-t", "60", "-D", &self.data(), "-l", &log, "-o", &self.options]);
        wait_for_port(self.port, "postgres");
    }

    /// Stops (fast: sessions are terminated) and starts again on the same port.
    pub fn restart(&self) {
        self.run("pg_ctl", &["stop", "-w", "-m", "fast", "-D", &self.data()]);
        self.ctl_start();
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A connection of the test (driven in a task).
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }

    /// Connects and applies the migration.
    pub async fn migrated(&self) -> tokio_postgres::Client {
        let client = self.client().await;
        client.batch_execute(MIGRATION).await.expect("the migration applies");
        // Twice: it can be applied again.
        client.batch_execute(MIGRATION).await.expect("the migration applies again");
        client
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let exe = self.bin.join("pg_ctl");
        let data = self.data();
        let args = ["stop", "-w", "-m", "immediate", "-D", data.as_str()];
        let mut cmd = if self.root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let _ = cmd.args(args).current_dir(&self.dir).stdout(Stdio::null()).stderr(Stdio::null()).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends SIGKILL to a server (a crash: no goodbye, nothing released).
pub fn crash(child: &mut tokio::process::Child) {
    child.start_kill().unwrap();
}

/// The standalone server with `toml`, once its outbox consumer started.
pub async fn start(toml: &str) -> Server {
    let server = start_with(toml, &[("RUST_LOG", "info")], &[]).await;
    assert!(server.logged(&["outbox: consuming"]).await, "the outbox consumer started");
    server
}

/// A subscriber of `topics`.
pub async fn subscriber(server: &Server, topics: &[&str]) -> Client {
    let (mut c, _) = Client::identified(server.addr, json!({"name": "reader"})).await;
    for topic in topics {
        c.call("~sub", json!({ "topic": topic })).await.expect("subscribed");
    }
    c
}

/// The next `n` deliveries (`~msg` payloads), waiting at most 30 s in all.
pub async fn deliveries(c: &mut Client, n: usize) -> Vec<Value> {
    let mut got: Vec<Value> = Vec::new();
    let mut kept = Vec::new();
    for m in c.backlog.drain(..) {
        if m[0] == "~msg" && got.len() < n {
            got.push(m[1].clone());
        } else {
            kept.push(m);
        }
    }
    c.backlog = kept;
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, c.ws.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} deliveries within 30 s: {got:?}", got.len()))
            .expect("connection open")
            .unwrap();
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v[0] == "~msg" {
                got.push(v[1].clone());
            }
        }
    }
    got
}

/// The `n` field of each delivery's data.
pub fn numbers(deliveries: &[Value]) -> Vec<i64> {
    deliveries.iter().map(|d| d["data"]["n"].as_i64().unwrap()).collect()
}
