//! Worker processes: each holds up to ~15,000 client connections from its own source addresses,
//! counts the marked deliveries per burst and tells the orchestrator when a burst is complete.
//!
//! Protocol (lines): the orchestrator starts `switchboard-bench worker '<spec JSON>'`; the worker
//! prints `ready <readers> <slow> <failed> <first error>`; then, on stdin,
//! `phase <base> <count> <per_conn>` (answered `ok`) announces bursts `base..base+count`, each
//! expected `per_conn` times on every reader; the worker prints `done <burst> <unix ns>` when a
//! burst has fully arrived. `quit` or end of input ends it.
//!
//! With `recover` (S9), a connection that ends is opened again (every 100–300 ms until it
//! works, 60 s at most) and resubscribes with `since`, the last epoch and `seq` it saw; the
//! worker prints `recovered <unix ns> <1|0>` (the reply's `recovered`) each time, or
//! `unrecovered <error>` when it gives up.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::client::{self, ConnectOptions, Dialect};
use crate::clock::unix_ns;
use crate::lean::Conn;
use crate::{jwt, procfs};

/// Which topics each connection subscribes to.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum TopicPlan {
    /// None (S6: deliveries by user).
    None,
    /// All the same topic (S1, S7).
    One(String),
    /// Two topics: `a<i % 100>` (shared) and `b<i>` (own) (S3).
    Idle,
}

/// What one worker does.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkerSpec {
    /// Server dialect.
    pub dialect: Dialect,
    /// Server port on 127.0.0.1.
    pub port: u16,
    /// First source address number (see [`client::source`]).
    pub first_src: usize,
    /// Number of source addresses to spread over.
    pub n_src: usize,
    /// Connections to hold.
    pub conns: usize,
    /// Global index of the first connection (user names and topics).
    pub first_conn: usize,
    /// Connections per user (user of connection `i` is `u<i / devices>`).
    pub devices: usize,
    /// Subscriptions.
    pub topics: TopicPlan,
    /// Every `slow_every`-th connection never reads (0: none).
    pub slow_every: usize,
    /// Connections being opened at once.
    pub concurrency: usize,
    /// `wss://`, trusting the CA certificate in this PEM file (`None`: `ws://`).
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// Reconnect and recover with `since` when a connection ends (Switchboard, one topic: S9).
    #[serde(default)]
    pub recover: bool,
}

/// The bursts being counted.
struct Phase {
    /// First burst number.
    base: u64,
    /// Deliveries seen per burst.
    counts: Vec<u64>,
    /// Deliveries that complete a burst.
    expected: u64,
}

/// State shared by the reader tasks (all on the worker's one thread).
struct Shared {
    /// Current bursts.
    phase: RefCell<Phase>,
    /// Lines to print.
    out: mpsc::UnboundedSender<String>,
    /// Readers still connected.
    alive: Cell<usize>,
}

impl Shared {
    /// Counts one delivery of burst `k`.
    fn hit(&self, k: u64) {
        let mut p = self.phase.borrow_mut();
        if k < p.base {
            return;
        }
        let i = (k - p.base) as usize;
        let expected = p.expected;
        if let Some(c) = p.counts.get_mut(i) {
            *c += 1;
            if *c == expected {
                let _ = self.out.send(format!("done {k} {}", unix_ns()));
            }
        }
    }
}

/// The worker process's main: `switchboard-bench worker '<spec>'`.
pub fn main(spec: &str) -> anyhow::Result<()> {
    let spec: WorkerSpec = serde_json::from_str(spec).context("worker spec")?;
    crate::procfs::raise_nofile();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(tokio::task::LocalSet::new().run_until(run(spec)))
}

/// Opens one connection: TLS if asked, handshake (JWT for Switchboard) and subscriptions.
async fn open(spec: &WorkerSpec, tls: Option<&Arc<rustls::ClientConfig>>, i: usize) -> anyhow::Result<Conn> {
    let mut ws = open_bare(spec, tls, i).await?;
    let g = spec.first_conn + i;
    let topics = match &spec.topics {
        TopicPlan::None => vec![],
        TopicPlan::One(t) => vec![t.clone()],
        TopicPlan::Idle => vec![format!("a{}", g % 100), format!("b{g}")],
    };
    if !topics.is_empty() {
        client::subscribe(&mut ws, spec.dialect, &topics, Duration::from_secs(20)).await?;
    }
    Ok(ws)
}

/// Opens one connection: TLS if asked and the handshake (JWT for Switchboard), no subscription.
async fn open_bare(
    spec: &WorkerSpec,
    tls: Option<&Arc<rustls::ClientConfig>>,
    i: usize,
) -> anyhow::Result<Conn> {
    let g = spec.first_conn + i;
    let slow = spec.slow_every > 0 && i.is_multiple_of(spec.slow_every);
    let token = (spec.dialect == Dialect::Switchboard)
        .then(|| jwt::token(jwt::SECRET, &format!("u{}", g / spec.devices.max(1))));
    let opts = ConnectOptions {
        src: client::source(spec.first_src + i % spec.n_src.max(1)),
        small_rcvbuf: slow,
        token,
        tls: tls.cloned(),
    };
    client::connect_lean(spec.dialect, spec.port, &opts).await
}

/// A topic's position as a recovering connection saw it: epoch and last `seq`.
#[derive(Clone, Debug, Default)]
struct Position {
    epoch: String,
    seq: u64,
}

/// Subscribes to `topic` (with `since` if given) and returns the reply's position and
/// `recovered`; deliveries that come before the reply are counted and followed.
async fn subscribe_at(
    ws: &mut Conn,
    topic: &str,
    since: Option<&Position>,
    shared: &Shared,
) -> anyhow::Result<(Position, bool)> {
    let sub = match since {
        Some(p) => {
            serde_json::json!(["~sub", {"topic": topic, "since": {"epoch": p.epoch, "seq": p.seq}}, 10])
        }
        None => serde_json::json!(["~sub", {"topic": topic}, 10]),
    };
    ws.send_texts(&[&sub.to_string()]).await?;
    let mut early = None;
    loop {
        let f = ws.next_text().await?;
        if let Some(k) = client::burst_of(&f) {
            shared.hit(k);
        }
        let v: serde_json::Value = serde_json::from_str(&f).context("a JSON frame")?;
        if v[0] == "~msg" {
            early = v[1]["seq"].as_u64().or(early);
        } else if v[2] == 10 {
            if v[0] != "~ok" {
                bail!("subscription refused: {f:.120}");
            }
            let epoch = v[1]["epoch"].as_str().unwrap_or_default().to_owned();
            let seq = v[1]["seq"].as_u64().unwrap_or(0).max(early.unwrap_or(0));
            return Ok((Position { epoch, seq }, v[1]["recovered"] == true));
        }
    }
}

/// S9: holds connection `i`, and each time it ends opens it again and recovers with `since`.
async fn recovering(
    spec: Rc<WorkerSpec>,
    tls: Option<Arc<rustls::ClientConfig>>,
    i: usize,
    mut ws: Conn,
    mut at: Position,
    shared: Rc<Shared>,
) {
    let TopicPlan::One(topic) = &spec.topics else { return };
    loop {
        let last = Cell::new(at.seq);
        let epoch = RefCell::new(None::<String>);
        ws.read_all(false, |t| {
            if let Some(k) = client::burst_of_bytes(t) {
                shared.hit(k);
            }
            if t.starts_with(br#"["~msg""#)
                && let Ok(v) = serde_json::from_slice::<serde_json::Value>(t)
            {
                if let Some(seq) = v[1]["seq"].as_u64() {
                    last.set(seq);
                }
                if let Some(e) = v[1]["epoch"].as_str() {
                    *epoch.borrow_mut() = Some(e.to_owned());
                }
            }
        })
        .await;
        at.seq = last.get();
        if let Some(e) = epoch.into_inner() {
            at.epoch = e;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut attempt: u64 = 0;
        ws = loop {
            attempt += 1;
            // 100–300 ms, spread over the connections without a random number generator.
            let jitter = (i as u64).wrapping_mul(7919).wrapping_add(attempt.wrapping_mul(104_729)) % 200;
            tokio::time::sleep(Duration::from_millis(100 + jitter)).await;
            let reopened = async {
                let mut ws = open_bare(&spec, tls.as_ref(), i).await?;
                let (now, recovered) = subscribe_at(&mut ws, topic, Some(&at), &shared).await?;
                Ok::<_, anyhow::Error>((ws, now, recovered))
            };
            match tokio::time::timeout(Duration::from_secs(10), reopened).await {
                Ok(Ok((ws, now, recovered))) => {
                    let _ = shared.out.send(format!("recovered {} {}", unix_ns(), u8::from(recovered)));
                    at = now;
                    break ws;
                }
                Ok(Err(e)) if tokio::time::Instant::now() > deadline => {
                    let _ = shared.out.send(format!("unrecovered {}", format!("{e:#}").replace('\n', " ")));
                    return;
                }
                Err(_) if tokio::time::Instant::now() > deadline => {
                    let _ = shared.out.send("unrecovered timed out".to_owned());
                    return;
                }
                _ => {}
            }
        };
    }
}

/// Reads one connection until it ends, counting marked deliveries (Engine.IO pings answered).
async fn read_loop(ws: Conn, dialect: Dialect, shared: Rc<Shared>) {
    ws.read_all(dialect == Dialect::SocketIo, |t| {
        if let Some(k) = client::burst_of_bytes(t) {
            shared.hit(k);
        }
    })
    .await;
    shared.alive.set(shared.alive.get() - 1);
}

async fn run(spec: WorkerSpec) -> anyhow::Result<()> {
    let (out, mut lines) = mpsc::unbounded_channel::<String>();
    let shared = Rc::new(Shared {
        phase: RefCell::new(Phase { base: 0, counts: vec![], expected: 0 }),
        out: out.clone(),
        alive: Cell::new(0),
    });
    tokio::spawn(async move {
        use std::io::Write as _;
        while let Some(line) = lines.recv().await {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{line}");
            let _ = stdout.flush();
        }
    });
    let tls = spec.tls_ca.as_deref().map(crate::tls::client_config).transpose()?;
    let results: Vec<(usize, anyhow::Result<(Conn, Position)>)> = futures_util::stream::iter(0..spec.conns)
        .map(|i| {
            let (spec, tls, shared) = (&spec, tls.as_ref(), &shared);
            async move {
                let opening = async {
                    match &spec.topics {
                        TopicPlan::One(topic) if spec.recover => {
                            let mut ws = open_bare(spec, tls, i).await?;
                            let (at, _) = subscribe_at(&mut ws, topic, None, shared).await?;
                            Ok((ws, at))
                        }
                        _ => Ok((open(spec, tls, i).await?, Position::default())),
                    }
                };
                let r = tokio::time::timeout(Duration::from_secs(30), opening).await;
                (i, r.unwrap_or_else(|_| Err(anyhow::anyhow!("connect timed out"))))
            }
        })
        .buffer_unordered(spec.concurrency.max(1))
        .collect()
        .await;
    let (mut readers, mut failed, mut first_error) = (0usize, 0usize, String::from("-"));
    let mut held = Vec::new();
    let spec = Rc::new(spec);
    for (i, r) in results {
        match r {
            Ok((ws, _)) if spec.slow_every > 0 && i.is_multiple_of(spec.slow_every) => held.push(ws),
            Ok((ws, at)) if spec.recover => {
                readers += 1;
                shared.alive.set(shared.alive.get() + 1);
                tokio::task::spawn_local(recovering(spec.clone(), tls.clone(), i, ws, at, shared.clone()));
            }
            Ok((ws, _)) => {
                readers += 1;
                shared.alive.set(shared.alive.get() + 1);
                tokio::task::spawn_local(read_loop(ws, spec.dialect, shared.clone()));
            }
            Err(e) => {
                if failed == 0 {
                    first_error = format!("{e:#}").replace('\n', " ");
                }
                failed += 1;
            }
        }
    }
    let _ = out.send(format!("ready {readers} {} {failed} {first_error}", held.len()));
    // Commands from the orchestrator, read by a plain thread (stdin is blocking).
    let (cmd_tx, mut commands) = mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if cmd_tx.send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = commands.recv().await {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("phase") => {
                let n: Vec<u64> = words.filter_map(|w| w.parse().ok()).collect();
                if let [base, count, per_conn] = n[..] {
                    let mut p = shared.phase.borrow_mut();
                    p.base = base;
                    p.counts = vec![0; count as usize];
                    p.expected = per_conn * shared.alive.get() as u64;
                    drop(p);
                    let _ = out.send(format!("ok {}", shared.alive.get()));
                }
            }
            Some("quit") => break,
            _ => {}
        }
    }
    drop(held);
    std::process::exit(0)
}

/// The orchestrator's handle on a set of workers.
pub struct Workers {
    /// The processes.
    children: Vec<Child>,
    /// Their stdin.
    stdins: Vec<ChildStdin>,
    /// Lines from every worker: (worker, line).
    events: mpsc::UnboundedReceiver<(usize, String)>,
    /// Reading connections, in total.
    pub readers: usize,
    /// Connections that never read, in total.
    pub slow: usize,
    /// Connections that failed to open, in total.
    pub failed: usize,
    /// The first failure's reason.
    pub first_error: String,
}

impl Workers {
    /// Starts one worker per spec and waits until all are ready (within `limit`).
    pub async fn spawn(exe: &Path, specs: &[WorkerSpec], limit: Duration) -> anyhow::Result<Self> {
        let (tx, events) = mpsc::unbounded_channel();
        let mut children = Vec::new();
        let mut stdins = Vec::new();
        for (w, spec) in specs.iter().enumerate() {
            let mut child = Command::new(exe)
                .arg("worker")
                .arg(serde_json::to_string(spec)?)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .context("start a worker")?;
            stdins.push(child.stdin.take().context("stdin")?);
            let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    if tx.send((w, line)).is_err() {
                        break;
                    }
                }
            });
            children.push(child);
        }
        let mut me =
            Self { children, stdins, events, readers: 0, slow: 0, failed: 0, first_error: String::new() };
        let mut ready = 0;
        let deadline = tokio::time::Instant::now() + limit;
        while ready < specs.len() {
            let Ok(Some((_, line))) = tokio::time::timeout_at(deadline, me.events.recv()).await else {
                me.stop().await;
                bail!("workers not ready within {limit:?} ({ready}/{} ready)", specs.len());
            };
            if let Some(rest) = line.strip_prefix("ready ") {
                let mut w = rest.splitn(4, ' ');
                let mut num = || w.next().and_then(|x| x.parse::<usize>().ok()).unwrap_or(0);
                me.readers += num();
                me.slow += num();
                let failed = num();
                if failed > 0 && me.first_error.is_empty() {
                    me.first_error = w.next().unwrap_or("").to_owned();
                }
                me.failed += failed;
                ready += 1;
            }
        }
        Ok(me)
    }

    /// Announces bursts `base..base+count`, `per_conn` deliveries each per reader; waits for
    /// every worker's `ok`. Returns the readers still connected.
    pub async fn phase(&mut self, base: u64, count: u64, per_conn: u64) -> anyhow::Result<usize> {
        for s in &mut self.stdins {
            s.write_all(format!("phase {base} {count} {per_conn}\n").as_bytes()).await?;
            s.flush().await?;
        }
        let mut oks = 0;
        let mut alive = 0;
        while oks < self.stdins.len() {
            match tokio::time::timeout(Duration::from_secs(10), self.events.recv()).await {
                Ok(Some((_, line))) => {
                    if let Some(n) = line.strip_prefix("ok ") {
                        alive += n.trim().parse::<usize>().unwrap_or(0);
                        oks += 1;
                    }
                }
                _ => bail!("a worker did not acknowledge the phase"),
            }
        }
        Ok(alive)
    }

    /// The next `done <burst> <ns>` of any worker, within `limit`.
    pub async fn next_done(&mut self, limit: Duration) -> Option<(usize, u64, u64)> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let (w, line) = tokio::time::timeout_at(deadline, self.events.recv()).await.ok()??;
            let mut it = line.split_whitespace();
            if it.next() == Some("done") {
                let k = it.next()?.parse().ok()?;
                let t = it.next()?.parse().ok()?;
                return Some((w, k, t));
            }
        }
    }

    /// The next line of any worker that starts with one of `words`, within `limit`:
    /// (worker, line).
    pub async fn next_line(&mut self, words: &[&str], limit: Duration) -> Option<(usize, String)> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let (w, line) = tokio::time::timeout_at(deadline, self.events.recv()).await.ok()??;
            if words.iter().any(|word| line.split_whitespace().next() == Some(word)) {
                return Some((w, line));
            }
        }
    }

    /// CPU time (user + system) of the workers so far, in microseconds (the load generator's
    /// receiving side; exited workers count 0).
    pub fn cpu(&self) -> u64 {
        self.children.iter().filter_map(|c| procfs::cpu_micros(c.id()?)).sum()
    }

    /// Number of workers.
    pub fn len(&self) -> usize {
        self.children.len()
    }

    /// Whether there are no workers.
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }

    /// Ends the workers (closing their connections).
    pub async fn stop(mut self) {
        for s in &mut self.stdins {
            let _ = s.write_all(b"quit\n").await;
        }
        for c in &mut self.children {
            if tokio::time::timeout(Duration::from_secs(3), c.wait()).await.is_err() {
                let _ = c.start_kill();
                let _ = c.wait().await;
            }
        }
    }
}

/// Splits `conns` connections into worker specs of at most `per_worker` each, each worker with
/// its own source addresses.
pub fn plan(base: &WorkerSpec, conns: usize, per_worker: usize, workers_min: usize) -> Vec<WorkerSpec> {
    let n = conns.div_ceil(per_worker.max(1)).max(workers_min).max(1);
    let each = conns.div_ceil(n);
    (0..n)
        .map(|w| {
            let first = w * each;
            WorkerSpec {
                conns: each.min(conns.saturating_sub(first)),
                first_conn: first,
                first_src: 10 + w * base.n_src,
                ..base.clone()
            }
        })
        .filter(|s| s.conns > 0)
        .collect()
}
