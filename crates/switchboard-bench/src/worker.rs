//! Worker processes: each holds up to ~15,000 client connections from its own source addresses,
//! counts the marked deliveries per burst and tells the orchestrator when a burst is complete.
//!
//! Protocol (lines): the orchestrator starts `switchboard-bench worker '<spec JSON>'`; the worker
//! prints `ready <readers> <slow> <failed> <first error>`; then, on stdin,
//! `phase <base> <count> <per_conn>` (answered `ok`) announces bursts `base..base+count`, each
//! expected `per_conn` times on every reader; the worker prints `done <burst> <unix ns>` when a
//! burst has fully arrived. `quit` or end of input ends it.

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
    let mut ws = client::connect_lean(spec.dialect, spec.port, &opts).await?;
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
    let results: Vec<(usize, anyhow::Result<Conn>)> = futures_util::stream::iter(0..spec.conns)
        .map(|i| {
            let (spec, tls) = (&spec, tls.as_ref());
            async move {
                let r = tokio::time::timeout(Duration::from_secs(30), open(spec, tls, i)).await;
                (i, r.unwrap_or_else(|_| Err(anyhow::anyhow!("connect timed out"))))
            }
        })
        .buffer_unordered(spec.concurrency.max(1))
        .collect()
        .await;
    let (mut readers, mut failed, mut first_error) = (0usize, 0usize, String::from("-"));
    let mut held = Vec::new();
    for (i, r) in results {
        match r {
            Ok(ws) if spec.slow_every > 0 && i.is_multiple_of(spec.slow_every) => held.push(ws),
            Ok(ws) => {
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
