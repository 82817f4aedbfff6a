//! Scenario S11: publications from the PostgreSQL outbox of the standalone server
//! (`[outbox.postgres]`, docs/outbox.md) to WebSocket subscribers.
//!
//! [`run`] makes a PostgreSQL cluster of its own (`initdb` in a temporary directory, run as the
//! `postgres` user when root; `fsync=off`, so that the figures are Switchboard's and not the
//! disk's), applies the server's migration, starts the `switchboard` binary with the outbox on,
//! and connects the subscribers (each to one of [`Settings::topics`] topics `bench/K`, round
//! robin). Then:
//!
//! 1. **Drain**: while the bench holds the consumer's advisory lock (the server stands by), it
//!    inserts [`Settings::rows`] rows in one statement; then it releases the lock and measures how
//!    fast the server publishes the backlog: rows / (last delivery − first delivery).
//! 2. **Latency**: [`Settings::inserters`] connections insert [`Settings::rate`] rows/s in all
//!    ([`Settings::rows_per_insert`] rows per statement, each statement its own transaction) for
//!    [`Settings::seconds`], the statements pipelined on each connection so that the rate holds;
//!    each row carries the time its statement was sent, and each delivery's latency is its arrival
//!    minus that time (so it includes the insert and its commit).
//!
//! ```no_run
//! # async fn f() -> anyhow::Result<()> {
//! use switchboard_bench::outbox::{Settings, run};
//! let figures = run("target/release/switchboard".as_ref(), &Settings::default(), "target/bench-logs".as_ref()).await?;
//! println!("{:.0} publications/s, p99 {} µs", figures.drain_per_s, figures.p99_us);
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

use crate::procfs;

/// Sizes of one S11 measurement.
#[derive(Clone, Debug)]
pub struct Settings {
    /// WebSocket subscribers.
    pub subscribers: usize,
    /// Topics (`bench/K`); each subscriber subscribes to one, round robin.
    pub topics: usize,
    /// Rows of the drain phase.
    pub rows: usize,
    /// Rows per second of the latency phase.
    pub rate: usize,
    /// Length of the latency phase.
    pub seconds: f64,
    /// Connections inserting in the latency phase.
    pub inserters: usize,
    /// Rows per INSERT statement (one transaction) in the latency phase.
    pub rows_per_insert: usize,
    /// `[outbox.postgres] batch`.
    pub batch: usize,
    /// History kept per topic (0: none).
    pub history: usize,
}

impl Default for Settings {
    /// The issue's sizes: 1,000 subscribers on 100 topics, 100,000 rows, 10,000 rows/s for 10 s.
    fn default() -> Self {
        Self {
            subscribers: 1_000,
            topics: 100,
            rows: 100_000,
            rate: 10_000,
            seconds: 10.0,
            inserters: 4,
            rows_per_insert: 10,
            batch: 500,
            history: 100,
        }
    }
}

/// What one measurement found.
#[derive(Clone, Debug)]
pub struct Figures {
    /// Drain: rows published per second (first to last delivery).
    pub drain_per_s: f64,
    /// Drain: deliveries per second.
    pub drain_deliveries_per_s: f64,
    /// Drain: the server's CPU time per publication, µs.
    pub drain_cpu_us: f64,
    /// Rows left in the table after the drain (0 when all went).
    pub left: i64,
    /// Latency phase: rows inserted per second, as achieved.
    pub inserted_per_s: f64,
    /// Latency phase: deliveries measured.
    pub deliveries: u64,
    /// Latency phase: commit → delivery p50, µs.
    pub p50_us: f64,
    /// Latency phase: p99, µs.
    pub p99_us: f64,
    /// Latency phase: p99.9, µs.
    pub p999_us: f64,
    /// Latency phase: maximum, µs.
    pub max_us: f64,
    /// Latency phase: the server's CPU time per publication, µs.
    pub latency_cpu_us: f64,
}

/// Same as the server's `lock_key` (switchboard-server src/outbox/postgres.rs): FNV-1a of
/// `switchboard-outbox:` and the table's name.
fn lock_key(table: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in "switchboard-outbox:".bytes().chain(table.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_be_bytes(hash.to_be_bytes())
}

const MIGRATION: &str = include_str!("../../switchboard-server/migrations/0001_switchboard_outbox.sql");

/// A unique suffix for temporary directories (several measurements may run in one process).
fn unique() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A PostgreSQL cluster of the bench's own, stopped and removed on drop.
struct Postgres {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
    root: bool,
}

impl Postgres {
    fn start() -> anyhow::Result<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .context("PostgreSQL is not installed (Debian package postgresql)")?
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").exists())
            .max()
            .context("no /usr/lib/postgresql/*/bin/initdb (Debian package postgresql)")?;
        let dir = std::env::temp_dir().join(format!("bench-outbox-pg-{}", unique()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let root = rustix::process::geteuid().is_root();
        if root {
            // PostgreSQL refuses to run as root: its files belong to the postgres user.
            let ok = Command::new("chown").arg("postgres:postgres").arg(&dir).status()?.success();
            if !ok {
                bail!("cannot give {} to the postgres user", dir.display());
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let pg = Self { port, dir, bin, root };
        let data = pg.dir.join("data").display().to_string();
        pg.run(
            "initdb",
            &["-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
        )?;
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=50 -c shared_buffers=256MB",
            pg.dir.display()
        );
        let log = pg.dir.join("log").display().to_string();
        pg.run("pg_ctl", &["start", "-w", "-t", "60", "-D", &data, "-l", &log, "-o", &options])?;
        Ok(pg)
    }

    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        let mut cmd = if self.root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        cmd.current_dir(&self.dir).stdin(Stdio::null());
        cmd
    }

    fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let out =
            self.command(program).args(args).output().with_context(|| format!("cannot run {program}"))?;
        if !out.status.success() {
            bail!(
                "{program} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    async fn client(&self) -> anyhow::Result<tokio_postgres::Client> {
        let (client, connection) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.join("data").display().to_string();
        let _ = self.command("pg_ctl").args(["stop", "-w", "-m", "immediate", "-D", &data]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What the subscribers saw.
struct Seen {
    start: Instant,
    deliveries: AtomicU64,
    /// Nanoseconds after `start` of the first and the last delivery of the drain (unstamped rows).
    first: AtomicU64,
    last: AtomicU64,
    /// One histogram per subscriber (µs), merged at the end.
    latencies: Vec<Mutex<Histogram<u64>>>,
}

impl Seen {
    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Waits until `target` deliveries were seen (at most `limit`).
    async fn until(&self, target: u64, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        while self.deliveries.load(Ordering::Relaxed) < target {
            if Instant::now() > deadline {
                bail!(
                    "only {} of {target} deliveries within {limit:?}",
                    self.deliveries.load(Ordering::Relaxed)
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }
}

/// The `"t":NANOS` of a delivery's data, if it has one.
fn stamp(text: &str) -> Option<u64> {
    let at = text.find("\"t\":")? + 4;
    let digits: String = text[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Connects subscriber `i`, identifies it, subscribes it to `topic` and counts its deliveries.
async fn subscribe(
    addr: std::net::SocketAddr,
    i: usize,
    topic: String,
    seen: Arc<Seen>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await?;
    ws.send(Message::text(json!(["~hello", {"identity": {"name": format!("s{i}")}}, 1]).to_string())).await?;
    ws.send(Message::text(json!(["~sub", {"topic": topic}, 2]).to_string())).await?;
    let mut replies = 0;
    while replies < 2 {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.starts_with("[\"~ok\"") => replies += 1,
            Some(Ok(Message::Text(t))) if t.starts_with("[\"~err\"") => bail!("refused: {t}"),
            Some(Ok(_)) => {}
            _ => bail!("closed during the handshake"),
        }
    }
    Ok(tokio::spawn(async move {
        while let Some(Ok(msg)) = ws.next().await {
            let Message::Text(text) = msg else { continue };
            if !text.starts_with("[\"~msg\"") {
                continue;
            }
            let now = seen.now();
            seen.deliveries.fetch_add(1, Ordering::Relaxed);
            match stamp(&text) {
                Some(t) => {
                    let micros = now.saturating_sub(t) / 1000;
                    let _ = seen.latencies[i].lock().expect("histogram").record(micros.max(1));
                }
                None => {
                    let _ = seen.first.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
                    seen.last.fetch_max(now, Ordering::Relaxed);
                }
            }
        }
    }))
}

fn cpu_micros(pid: u32) -> u64 {
    procfs::cpu_micros(pid).unwrap_or(0)
}

/// The standalone server with the outbox of `pg`, killed on drop.
struct Server {
    child: tokio::process::Child,
    pid: u32,
    addr: std::net::SocketAddr,
    dir: PathBuf,
}

impl Server {
    async fn start(bin: &Path, pg: &Postgres, s: &Settings, logs: &Path) -> anyhow::Result<Self> {
        if !bin.exists() {
            bail!("no server at {} (build it: cargo build -p switchboard-server)", bin.display());
        }
        let dir = std::env::temp_dir().join(format!("bench-outbox-{}", unique()));
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("switchboard.toml");
        std::fs::write(
            &config,
            format!(
                "dev = true\n\n[http]\nmax_connections_per_address = 0\nnew_connections_per_address = {{ per_second = 0 }}\n\n\
                 [namespaces.main]\nidentify = \"dev\"\n\n[namespaces.main.topics.\"bench/{{id}}\"]\n\
                 history = {}\n\n[outbox.postgres]\nurl = \"{}\"\nbatch = {}\npoll_interval_ms = 100\n",
                s.history,
                pg.url(),
                s.batch
            ),
        )?;
        std::fs::create_dir_all(logs)?;
        let log = std::fs::File::create(logs.join("s11-switchboard.log"))?;
        let mut child = tokio::process::Command::new(bin)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let pid = child.id().context("server pid")?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("the server did not say `listening on` within 30 s")??
            .with_context(|| {
                format!("the server exited (log: {})", logs.join("s11-switchboard.log").display())
            })?;
        let addr = line.strip_prefix("listening on ").context("listening on ADDR")?.parse()?;
        // Anything else it prints is read and dropped.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { child, pid, addr, dir })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One S11 measurement: PostgreSQL, the `switchboard` binary at `server` (its stderr in
/// `logs/s11-switchboard.log`), the subscribers, the drain, then the latency phase.
#[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub async fn run(server: &Path, s: &Settings, logs: &Path) -> anyhow::Result<Figures> {
    if s.subscribers == 0
        || s.topics == 0
        || s.rows == 0
        || s.rate == 0
        || s.inserters == 0
        || s.rows_per_insert == 0
    {
        bail!("S11 needs at least one subscriber, topic, row, inserter and row per insert");
    }
    let pg = Postgres::start()?;
    let db = pg.client().await?;
    db.batch_execute(MIGRATION).await.context("the migration")?;
    // The bench holds the consumer's lock: the server stands by until the backlog is in.
    let lock = lock_key("switchboard_outbox");
    db.execute("SELECT pg_advisory_lock($1)", &[&lock]).await?;
    let server = Server::start(server, &pg, s, logs).await?;

    let seen = Arc::new(Seen {
        start: Instant::now(),
        deliveries: AtomicU64::new(0),
        first: AtomicU64::new(0),
        last: AtomicU64::new(0),
        latencies: (0..s.subscribers)
            .map(|_| Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3).expect("bounds")))
            .collect(),
    });
    let mut per_topic = vec![0_u64; s.topics];
    for i in 0..s.subscribers {
        per_topic[i % s.topics] += 1;
    }
    let readers = futures_util::stream::iter(
        (0..s.subscribers)
            .map(|i| subscribe(server.addr, i, format!("bench/{}", i % s.topics), seen.clone())),
    )
    .buffer_unordered(50)
    .collect::<Vec<_>>()
    .await
    .into_iter()
    .collect::<anyhow::Result<Vec<_>>>()?;

    // 1. Drain: the backlog, published.
    let (topics, rows) = (i64::try_from(s.topics)?, i64::try_from(s.rows)?);
    db.execute(
        "INSERT INTO switchboard_outbox (topic, data) \
         SELECT 'bench/' || (g % $1::bigint), json_build_object('n', g)::text FROM generate_series(0, $2::bigint - 1) g",
        &[&topics, &rows],
    )
    .await?;
    let expected: u64 = (0..s.rows).map(|g| per_topic[g % s.topics]).sum();
    let cpu_before = cpu_micros(server.pid);
    db.execute("SELECT pg_advisory_unlock($1)", &[&lock]).await?;
    seen.until(expected, Duration::from_secs(600)).await.context("the drain")?;
    let cpu = cpu_micros(server.pid) - cpu_before;
    let span_ns = seen.last.load(Ordering::Relaxed) - seen.first.load(Ordering::Relaxed);
    let span = Duration::from_nanos(span_ns.max(1)).as_secs_f64();
    let left: i64 = db.query_one("SELECT count(*) FROM switchboard_outbox", &[]).await?.get(0);
    let drain_per_s = s.rows as f64 / span;
    let drain_deliveries_per_s = expected as f64 / span;
    let drain_cpu_us = cpu as f64 / s.rows as f64;

    // 2. Latency at a steady rate.
    let target = Arc::new(AtomicU64::new(seen.deliveries.load(Ordering::Relaxed)));
    let inserted = Arc::new(AtomicU64::new(0));
    let per_topic = Arc::new(per_topic);
    let statements_per_s = (s.rate as f64 / s.rows_per_insert as f64).max(1.0);
    let every = Duration::from_secs_f64(s.inserters as f64 / statements_per_s);
    let stop_at = Instant::now() + Duration::from_secs_f64(s.seconds);
    let cpu_before = cpu_micros(server.pid);
    let started = Instant::now();
    let mut inserters = Vec::new();
    for k in 0..s.inserters {
        let client = Arc::new(pg.client().await?);
        let (seen, inserted, target, per_topic) =
            (seen.clone(), inserted.clone(), target.clone(), per_topic.clone());
        let (per, topics_n) = (s.rows_per_insert, s.topics);
        inserters.push(tokio::spawn(async move {
            let insert = Arc::new(
                client
                    .prepare(
                        "INSERT INTO switchboard_outbox (topic, data) SELECT * FROM unnest($1::text[], $2::text[])",
                    )
                    .await?,
            );
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut n = k;
            let mut statements = Vec::new();
            while Instant::now() < stop_at {
                tick.tick().await;
                let t = seen.now();
                let picks: Vec<usize> = (0..per).map(|j| (n + j * 7) % topics_n).collect();
                let topics: Vec<String> = picks.iter().map(|p| format!("bench/{p}")).collect();
                let data: Vec<String> = (0..per).map(|_| format!("{{\"t\":{t}}}")).collect();
                let expect: u64 = picks.iter().map(|p| per_topic[*p]).sum();
                let (client, insert, inserted, target) =
                    (client.clone(), insert.clone(), inserted.clone(), target.clone());
                // Not awaited here: the statements are pipelined on the connection, so the rate
                // holds whatever a round trip takes.
                statements.push(tokio::spawn(async move {
                    client.execute(&*insert, &[&topics, &data]).await?;
                    inserted.fetch_add(per as u64, Ordering::Relaxed);
                    target.fetch_add(expect, Ordering::Relaxed);
                    anyhow::Ok(())
                }));
                n += 1;
            }
            for st in statements {
                st.await??;
            }
            anyhow::Ok(())
        }));
    }
    for i in inserters {
        i.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    seen.until(target.load(Ordering::Relaxed), Duration::from_secs(120))
        .await
        .context("the latency phase")?;
    let cpu = cpu_micros(server.pid) - cpu_before;
    let rows_in = inserted.load(Ordering::Relaxed);
    let mut all = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    for h in &seen.latencies {
        all.add(&*h.lock().expect("histogram"))?;
    }
    for r in readers {
        r.abort();
    }
    Ok(Figures {
        drain_per_s,
        drain_deliveries_per_s,
        drain_cpu_us,
        left,
        inserted_per_s: rows_in as f64 / elapsed,
        deliveries: all.len(),
        p50_us: all.value_at_quantile(0.5) as f64,
        p99_us: all.value_at_quantile(0.99) as f64,
        p999_us: all.value_at_quantile(0.999) as f64,
        max_us: all.max() as f64,
        latency_cpu_us: cpu as f64 / rows_in.max(1) as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_read_from_the_data() {
        assert_eq!(stamp(r#"["~msg",{"topic":"bench/1","data":{"t":12345},"seq":1}]"#), Some(12345));
        assert_eq!(stamp(r#"["~msg",{"topic":"bench/1","data":{"n":3},"seq":1}]"#), None);
    }

    #[test]
    fn the_lock_key_is_the_servers() {
        // FNV-1a 64 of `switchboard-outbox:switchboard_outbox`, as the server computes it for the
        // default table (switchboard-server src/outbox/postgres.rs); if the two differed, the
        // server would not stand by during the drain's insert.
        assert_eq!(lock_key("switchboard_outbox"), -341_366_041_709_792_209);
        assert_ne!(lock_key("switchboard_outbox"), lock_key("other"));
    }
}
