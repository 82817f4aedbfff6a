//! Scenarios S1–S7 of issue #7, S1, S2 and S4 over TLS (`wss://`, issue #17: S1-TLS,
//! S2-TLS, S4-TLS), S8 (fan-out across two nodes) and S9 (a recovery storm) of issue #18, and S12 (under abuse) of
//! issue #16, S11 (the standalone server's PostgreSQL outbox) of issue #20 (S10 is in `events`).
//! Each runs its targets interleaved (A B A B …) for the given rounds, starting a fresh server
//! process per measurement, and returns [`Metric`]s.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, ConnectOptions, Dialect, Ws};
use crate::clock::unix_ns;
use crate::jwt;
use crate::procfs;
use crate::report::{Goal, Metric, REFERENCE, SWITCHBOARD};
use crate::targets::{Running, Target, Targets};
use crate::tls::Pki;
use crate::worker::{TopicPlan, WorkerSpec, Workers, plan};

/// Sizes and limits of a run.
#[derive(Clone, Debug)]
pub struct Sizes {
    /// Rounds (each target measured once per round).
    pub rounds: usize,
    /// S1 subscriber counts.
    pub s1_subscribers: Vec<usize>,
    /// Deliveries aimed at per fan-out measurement.
    pub fanout_deliveries: u64,
    /// Time bound of one measurement.
    pub measure: Duration,
    /// S2 pipelined connections.
    pub s2_conns: usize,
    /// S3 idle connections.
    pub s3_conns: usize,
    /// S4 connections per measurement.
    pub s4_conns: usize,
    /// S6 users (3 connections each).
    pub s6_users: usize,
    /// S7 subscribers.
    pub s7_subscribers: usize,
    /// S7 queue limit given to the server (`--queue-bytes`).
    pub s7_queue_bytes: usize,
    /// S8 subscribers (split over two nodes).
    pub s8_subscribers: usize,
    /// S9 subscribers (recovering after a server restart).
    pub s9_subscribers: usize,
    /// S10 connections opened per second.
    pub s10_rate: u64,
    /// S10 connections per measurement.
    pub s10_conns: usize,
    /// S11 sizes (subscribers, topics, rows drained, rate and length of the latency phase).
    pub s11: crate::outbox::Settings,
}

impl Sizes {
    /// The full run (issue sizes).
    pub fn full() -> Self {
        Self {
            rounds: 3,
            s1_subscribers: vec![1_000, 10_000],
            fanout_deliveries: 1_000_000,
            measure: Duration::from_millis(2500),
            s2_conns: 100,
            s3_conns: 19_000,
            s4_conns: 3_000,
            s6_users: 5_000,
            s7_subscribers: 10_000,
            s7_queue_bytes: 64 * 1024,
            s8_subscribers: 10_000,
            s9_subscribers: 10_000,
            s10_rate: 2_000,
            s10_conns: 20_000,
            s11: crate::outbox::Settings::default(),
        }
    }

    /// `--quick`: smaller sizes, shorter measurements, still 3 rounds.
    pub fn quick() -> Self {
        Self {
            rounds: 3,
            s1_subscribers: vec![1_000],
            fanout_deliveries: 300_000,
            measure: Duration::from_millis(1000),
            s2_conns: 100,
            s3_conns: 1_500,
            s4_conns: 1_000,
            s6_users: 1_000,
            s7_subscribers: 2_000,
            s7_queue_bytes: 64 * 1024,
            s8_subscribers: 2_000,
            s9_subscribers: 2_000,
            s10_rate: 2_000,
            s10_conns: 6_000,
            s11: crate::outbox::Settings { rows: 50_000, seconds: 5.0, ..crate::outbox::Settings::default() },
        }
    }

    /// Tiny sizes for tests.
    pub fn smoke() -> Self {
        Self {
            rounds: 1,
            s1_subscribers: vec![20],
            fanout_deliveries: 2_000,
            measure: Duration::from_millis(300),
            s2_conns: 4,
            s3_conns: 20,
            s4_conns: 20,
            s6_users: 10,
            s7_subscribers: 200,
            s7_queue_bytes: 64 * 1024,
            s8_subscribers: 20,
            s9_subscribers: 20,
            s10_rate: 200,
            s10_conns: 60,
            s11: crate::outbox::Settings {
                subscribers: 10,
                topics: 3,
                rows: 300,
                rate: 200,
                seconds: 1.0,
                inserters: 2,
                rows_per_insert: 5,
                ..crate::outbox::Settings::default()
            },
        }
    }
}

/// What every scenario needs.
pub struct Ctx {
    /// The targets.
    pub targets: Targets,
    /// `switchboard-bench` itself (workers).
    pub exe: PathBuf,
    /// The standalone server (`switchboard`, crate switchboard-server) for S11.
    pub server: PathBuf,
    /// Server logs.
    pub logs: PathBuf,
    /// Sizes.
    pub sizes: Sizes,
}

impl Ctx {
    /// Peer names (report order), installed or not.
    pub fn peer_names(&self) -> Vec<String> {
        crate::targets::PEERS.iter().map(|p| (*p).to_owned()).collect()
    }

    /// Marks the missing peers on a metric.
    fn mark_missing(&self, m: &mut Metric) {
        for (p, why) in &self.targets.missing {
            m.mark(p, why);
        }
    }

    /// Marks every target but Switchboard "n/a".
    pub(crate) fn switchboard_only(&self, m: &mut Metric) {
        m.mark(REFERENCE, "n/a");
        for p in self.peer_names() {
            m.mark(&p, "n/a");
        }
    }
}

/// A connection that sends bursts; its replies are drained (Engine.IO pings answered).
struct Publisher {
    /// The sending half.
    sink: Arc<Mutex<SplitSink<Ws, Message>>>,
    /// The drain task.
    drain: tokio::task::JoinHandle<()>,
}

impl Publisher {
    async fn connect(dialect: Dialect, port: u16, user: &str, tls: Option<&Pki>) -> anyhow::Result<Self> {
        let token = (dialect == Dialect::Switchboard).then(|| jwt::token(jwt::SECRET, user));
        let opts = ConnectOptions::new(client::source(0), token, client_tls(tls));
        let (sink, mut stream) = client::connect(dialect, port, &opts).await?.split();
        let sink = Arc::new(Mutex::new(sink));
        let s2 = sink.clone();
        let drain = tokio::spawn(async move {
            while let Some(Ok(m)) = stream.next().await {
                if dialect == Dialect::SocketIo && matches!(&m, Message::Text(t) if t.as_str() == "2") {
                    let _ = s2.lock().await.send(Message::text("3")).await;
                }
            }
        });
        Ok(Self { sink, drain })
    }

    async fn send_all(&self, frames: Vec<String>) -> anyhow::Result<()> {
        let mut sink = self.sink.lock().await;
        for f in frames {
            sink.feed(Message::text(f)).await?;
        }
        sink.flush().await?;
        Ok(())
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.drain.abort();
    }
}

/// Result of a fan-out measurement.
struct Fanout {
    /// Deliveries completed.
    deliveries: u64,
    /// Deliveries per second.
    rate: f64,
    /// Burst completion p50 (µs).
    p50_us: f64,
    /// Burst completion p99 (µs).
    p99_us: f64,
    /// Server CPU µs per delivery.
    cpu_per_op: f64,
    /// The workers' (receiving side of the load generator) CPU µs per delivery: printed only.
    gen_cpu_per_op: f64,
    /// Printed only: the server's CPU µs per delivery in the kernel (the rest is user space).
    kernel_per_op: f64,
    /// Printed only: the bench process's own CPU µs per delivery (publisher and bookkeeping).
    bench_cpu_per_op: f64,
    /// Printed only: the share of the machine's CPU time that was busy (any process), 0 to 1.
    busy: f64,
}

/// Bursts in flight in the S1 fan-outs and in S6's send-to-user run (which is compared with one).
const FANOUT_WINDOW: u64 = 4;

/// How a fan-out measurement sends.
struct FanoutPlan {
    /// Bursts to send at most.
    bursts: u64,
    /// Deliveries of one burst per reading connection.
    per_conn: u64,
    /// Bursts unfinished at once.
    window: u64,
    /// Time bound of the sending.
    limit: Duration,
}

/// Sends bursts made of `frames(k)`, at most `plan.window` unfinished at once, and waits for
/// every worker's `done`. Burst completion = last delivery − sending.
async fn fanout(
    workers: &mut Workers,
    publisher: &Publisher,
    server: &Running,
    next_burst: &mut u64,
    plan: &FanoutPlan,
    frames: impl Fn(u64) -> Vec<String>,
) -> anyhow::Result<Fanout> {
    let base = *next_burst;
    *next_burst += plan.bursts;
    let readers = workers.phase(base, plan.bursts, plan.per_conn).await? as u64;
    if readers == 0 {
        bail!("no reader is connected");
    }
    let n_workers = workers.len();
    let mut sent_at: HashMap<u64, u64> = HashMap::new();
    let mut done: HashMap<u64, (usize, u64)> = HashMap::new();
    let mut hist = Histogram::<u64>::new(3)?;
    let (mut sent, mut completed) = (0u64, 0u64);
    let (user0, kernel0) = server.cpu_split();
    let gen_cpu0 = workers.cpu();
    let bench_cpu0 = procfs::cpu_micros(std::process::id()).unwrap_or(0);
    let machine0 = procfs::machine_micros().unwrap_or_default();
    let start = Instant::now();
    let mut last = start;
    loop {
        while sent < plan.bursts && sent - completed < plan.window && start.elapsed() < plan.limit {
            let k = base + sent;
            sent_at.insert(k, unix_ns());
            publisher.send_all(frames(k)).await?;
            sent += 1;
        }
        if completed == sent {
            break;
        }
        let Some((_, k, t)) = workers.next_done(Duration::from_secs(10)).await else {
            bail!("burst not complete after 10 s ({completed}/{sent} bursts done)");
        };
        let e = done.entry(k).or_insert((0, 0));
        e.0 += 1;
        e.1 = e.1.max(t);
        if e.0 == n_workers {
            let t0 = sent_at.get(&k).copied().unwrap_or(t);
            let _ = hist.record(e.1.saturating_sub(t0) / 1000);
            completed += 1;
            last = Instant::now();
        }
    }
    let secs = last.duration_since(start).as_secs_f64().max(1e-6);
    let deliveries = completed * plan.per_conn * readers;
    let (user, kernel) = server.cpu_split();
    let kernel = kernel.saturating_sub(kernel0) as f64;
    let cpu = user.saturating_sub(user0) as f64 + kernel;
    let gen_cpu = workers.cpu().saturating_sub(gen_cpu0) as f64;
    let bench_cpu = procfs::cpu_micros(std::process::id()).unwrap_or(0).saturating_sub(bench_cpu0) as f64;
    let machine = procfs::machine_micros().unwrap_or_default();
    let (busy, all) = (machine.0.saturating_sub(machine0.0), machine.1.saturating_sub(machine0.1));
    let per_op = |micros: f64| micros / deliveries.max(1) as f64;
    Ok(Fanout {
        deliveries,
        rate: deliveries as f64 / secs,
        p50_us: hist.value_at_quantile(0.5) as f64,
        p99_us: hist.value_at_quantile(0.99) as f64,
        cpu_per_op: per_op(cpu),
        gen_cpu_per_op: per_op(gen_cpu),
        kernel_per_op: per_op(kernel),
        bench_cpu_per_op: per_op(bench_cpu),
        busy: busy as f64 / all.max(1) as f64,
    })
}

/// The load generator's TLS client configuration, if the scenario runs over TLS.
fn client_tls(tls: Option<&Pki>) -> Option<Arc<rustls::ClientConfig>> {
    tls.map(|p| p.client.clone())
}

/// Worker layout for `conns` connections (`devices` per user, kept in one worker); over TLS if
/// `tls` is given.
fn worker_specs(
    dialect: Dialect,
    port: u16,
    conns: usize,
    devices: usize,
    topics: TopicPlan,
    slow_every: usize,
    tls: Option<&Pki>,
) -> Vec<WorkerSpec> {
    let base = WorkerSpec {
        dialect,
        port,
        first_src: 0,
        n_src: 4,
        conns,
        first_conn: 0,
        devices,
        topics,
        slow_every,
        concurrency: 64,
        tls_ca: tls.map(|p| p.ca.clone()),
        recover: false,
    };
    // Two workers from 500 connections on (the receiving side uses both cores), ≤ 15,000 each.
    let min = if conns >= 500 { 2 } else { 1 };
    let mut specs = plan(&base, conns, 15_000 / devices.max(1) * devices.max(1), min);
    if devices > 1 {
        let each = conns.div_ceil(specs.len()).div_ceil(devices) * devices;
        for (w, s) in specs.iter_mut().enumerate() {
            s.first_conn = w * each;
            s.conns = each.min(conns.saturating_sub(w * each));
        }
        specs.retain(|s| s.conns > 0);
    }
    specs
}

/// Frames of one fan-out burst: `b` publications of a marked 100-byte payload on `topic`.
fn publish_frames(dialect: Dialect, topic: &str, b: u64, k: u64) -> Vec<String> {
    let payload = client::marked_payload(k, 100);
    (0..b).map(|i| dialect.publish(topic, &payload, 1000 + i)).collect()
}

/// One round's values: (metric index, value, server CPU-µs per operation).
type Values = Vec<(usize, f64, Option<f64>)>;

/// One round's values and, for further columns of the tables, (metric index, heading, value).
struct Measured {
    values: Values,
    details: Vec<(usize, &'static str, f64)>,
}

impl From<Values> for Measured {
    fn from(values: Values) -> Self {
        Self { values, details: vec![] }
    }
}

/// Runs `f` for every round and target in A B A B order; failures become the metrics' notes.
async fn interleave<F, Fut, M>(ctx: &Ctx, targets: &[Target], metrics: &mut [Metric], mut f: F)
where
    F: FnMut(Target, usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<M>>,
    M: Into<Measured>,
{
    for round in 0..ctx.sizes.rounds {
        for t in targets {
            eprintln!("  {} round {} · {}", metrics[0].scenario, round + 1, t.name);
            // Every measurement is bounded, whatever the server does.
            let r = tokio::time::timeout(Duration::from_secs(300), f(t.clone(), round))
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("measurement did not end within 300 s")));
            match r {
                Ok(measured) => {
                    let Measured { values, details } = measured.into();
                    for (i, v, cpu) in values {
                        metrics[i].push(&t.name, v, cpu);
                    }
                    for (i, heading, v) in details {
                        metrics[i].push_detail(heading, &t.name, v);
                    }
                }
                Err(e) => {
                    let e: String = format!("{e:#}").chars().take(160).collect();
                    eprintln!("    {}: failed: {e}", t.name);
                    for m in metrics.iter_mut() {
                        m.mark(&t.name, &format!("failed: {e}"));
                    }
                }
            }
        }
    }
    for m in metrics.iter_mut() {
        ctx.mark_missing(m);
    }
}

/// Sends the fan-out of one S1/S7 measurement set on a running server: subscribers in workers,
/// one publisher, one fan-out per burst size, all over TLS if `tls` is given. Returns one
/// `Fanout` per burst size.
async fn fanout_run(
    ctx: &Ctx,
    t: &Target,
    server: &Running,
    subs: usize,
    slow_every: usize,
    bursts_sizes: &[u64],
    tls: Option<&Pki>,
) -> anyhow::Result<Vec<Fanout>> {
    let topic = TopicPlan::One("t".into());
    let specs = worker_specs(t.dialect, server.port, subs, 1, topic, slow_every, tls);
    let mut workers = Workers::spawn(&ctx.exe, &specs, Duration::from_secs(180)).await?;
    if workers.failed > 0 {
        let e = format!("{} of {subs} connections failed: {}", workers.failed, workers.first_error);
        workers.stop().await;
        bail!(e);
    }
    let publisher = Publisher::connect(t.dialect, server.port, "publisher", tls).await?;
    let mut next = 1;
    let mut out = vec![];
    for &b in bursts_sizes {
        let plan = FanoutPlan {
            bursts: (ctx.sizes.fanout_deliveries / (subs as u64 * b)).clamp(20, 20_000),
            per_conn: b,
            window: FANOUT_WINDOW,
            limit: ctx.sizes.measure,
        };
        let r = fanout(&mut workers, &publisher, server, &mut next, &plan, |k| {
            publish_frames(t.dialect, "t", b, k)
        })
        .await;
        match r {
            Ok(f) => {
                eprintln!(
                    "    burst {b}: {:.0} deliveries/s, burst completion p50 {:.0} µs p99 {:.0} µs, {:.3} CPU-µs/delivery ({} deliveries; load generator {:.3} CPU-µs/delivery)",
                    f.rate, f.p50_us, f.p99_us, f.cpu_per_op, f.deliveries, f.gen_cpu_per_op
                );
                eprintln!(
                    "      CPU-µs/delivery: server {:.3} in the kernel, {:.3} in user space; bench process {:.3}; machine busy {:.1} %",
                    f.kernel_per_op,
                    f.cpu_per_op - f.kernel_per_op,
                    f.bench_cpu_per_op,
                    f.busy * 100.0
                );
                out.push(f);
            }
            Err(e) => {
                drop(publisher);
                workers.stop().await;
                return Err(e.context(format!("burst {b}")));
            }
        }
    }
    drop(publisher);
    workers.stop().await;
    Ok(out)
}

/// The certificates of a TLS scenario, made for it in `<logs>/tls/`.
fn scenario_pki(ctx: &Ctx) -> anyhow::Result<Pki> {
    Pki::generate(&ctx.logs.join("tls"))
}

/// What each target's TLS handshake settled, as the load generator saw it (first round).
type Negotiated = StdMutex<BTreeMap<String, String>>;

/// Starts `t`, over TLS if `tls` is given (env `TLS_CERT`, `TLS_KEY`); over TLS, the first time
/// a target is started, one connection records what its handshake settled in `seen`.
async fn start(ctx: &Ctx, t: &Target, tls: Option<&Pki>, seen: &Negotiated) -> anyhow::Result<Running> {
    let Some(pki) = tls else { return t.start(&[], &ctx.logs).await };
    let server = t.start_with_env(&[], &pki.env(), &ctx.logs).await?;
    if !seen.lock().expect("not poisoned").contains_key(&t.name) {
        // Anonymous (no `~hello`): the handshakes are what this connection is for.
        let opts = ConnectOptions::new(client::source(1), None, client_tls(tls));
        let r = client::connect(t.dialect, server.port, &opts).await;
        let text = match r {
            Ok(ws) => ws.get_ref().describe(),
            Err(e) => {
                server.stop().await;
                return Err(e.context("first TLS connection"));
            }
        };
        eprintln!("    TLS: {text}");
        seen.lock().expect("not poisoned").insert(t.name.clone(), text);
    }
    Ok(server)
}

/// The note's paragraph on TLS: how it is set up, and what each target's handshake settled.
fn tls_note(seen: &Negotiated) -> String {
    let seen = seen.lock().expect("not poisoned");
    let settled: Vec<String> = seen.iter().map(|(t, what)| format!("{t} `{what}`")).collect();
    format!(
        "Over TLS (`wss://`): each run makes a CA and an ECDSA P-256 server certificate for 127.0.0.1 (rcgen), given to the servers as PEM files (env `TLS_CERT`, `TLS_KEY`); the load generator (rustls, aws-lc-rs provider, TLS 1.3 and 1.2, ALPN http/1.1, provider defaults otherwise) trusts that CA only and never resumes a session. The bench's servers use rustls with the same provider; Bun its own TLS (BoringSSL). Negotiated: {}. Only Switchboard, the reference and Bun have a TLS variant.",
        if settled.is_empty() { "—".to_owned() } else { settled.join("; ") }
    )
}

/// Marks the peers without a TLS variant "n/a" (after the installed/not installed marks).
fn mark_no_tls(ctx: &Ctx, m: &mut Metric) {
    for p in ctx.peer_names() {
        if !crate::targets::TLS_PEERS.contains(&p.as_str()) {
            m.mark(&p, "n/a (no TLS variant)");
        }
    }
}

/// S1: fan-out to one topic, 1k and 10k subscribers, bursts of 1 and 10.
pub async fn s1(ctx: &Ctx) -> Vec<Metric> {
    s1_over(ctx, None).await
}

/// S1-TLS: S1 over `wss://`, against Switchboard, the reference and Bun.
pub async fn s1_tls(ctx: &Ctx) -> Vec<Metric> {
    match scenario_pki(ctx) {
        Ok(pki) => s1_over(ctx, Some(&pki)).await,
        Err(e) => failed_tls(ctx, "S1-TLS", &e),
    }
}

/// A TLS scenario that could not make its certificates: one metric saying so.
fn failed_tls(ctx: &Ctx, scenario: &str, e: &anyhow::Error) -> Vec<Metric> {
    eprintln!("  {scenario}: certificates: {e:#}");
    let mut m = Metric::new(scenario, "no measurement: the certificates could not be made", "", true);
    for t in &ctx.targets.all {
        m.mark(&t.name, &format!("failed: certificates: {e:#}"));
    }
    vec![m]
}

/// S1, over TLS if `tls` is given.
async fn s1_over(ctx: &Ctx, tls: Option<&Pki>) -> Vec<Metric> {
    let (scenario, targets) = match tls {
        None => ("S1", ctx.targets.all.clone()),
        Some(_) => ("S1-TLS", ctx.targets.tls()),
    };
    let seen = Negotiated::default();
    let mut all = Vec::new();
    for &subs in &ctx.sizes.s1_subscribers {
        let mut metrics = vec![];
        for b in [1u64, 10] {
            metrics.push(Metric::new(
                scenario,
                &format!("deliveries/s, {subs} subscribers, burst {b}"),
                "deliveries/s",
                true,
            ));
            metrics.push(Metric::new(
                scenario,
                &format!("p99 burst completion, {subs} subscribers, burst {b}"),
                "µs",
                false,
            ));
        }
        let seen = &seen;
        interleave(ctx, &targets, &mut metrics, |t, _| async move {
            let server = start(ctx, &t, tls, seen).await?;
            let r = fanout_run(ctx, &t, &server, subs, 0, &[1, 10], tls).await;
            server.stop().await;
            let mut measured = Measured { values: vec![], details: vec![] };
            for (i, f) in r?.into_iter().enumerate() {
                measured.values.extend([(2 * i, f.rate, Some(f.cpu_per_op)), (2 * i + 1, f.p99_us, None)]);
                measured.details.extend([
                    (2 * i, "of which in the kernel", f.kernel_per_op),
                    (2 * i, "load generator CPU-µs/op", f.gen_cpu_per_op + f.bench_cpu_per_op),
                    (2 * i, "machine busy %", f.busy * 100.0),
                ]);
            }
            Ok(measured)
        })
        .await;
        for m in &mut metrics {
            if m.unit == "deliveries/s" {
                m.goal_ratio(SWITCHBOARD, 0.85, REFERENCE);
                m.goal_ratio(SWITCHBOARD, 1.0, "bun");
                if tls.is_none() {
                    m.goal_ratio(SWITCHBOARD, 2.5, "ws");
                    m.goal_ratio(SWITCHBOARD, 5.0, "socketio");
                    m.goal_ratio(SWITCHBOARD, 2.0, "socketioxide");
                }
                m.note = "100-byte payloads; 4 bursts in flight; CPU-µs/op = server CPU time per delivery, and the part \
of it spent in the kernel. The load generator (its worker processes and the bench process, which publishes) runs on the \
same cores: deliveries/s follow the sum of both CPU times per delivery and the share of the machine that was busy."
                    .into();
            } else {
                m.note = "Time from sending a burst to its last delivery on the last subscriber (4 bursts in flight).".into();
            }
        }
        all.extend(metrics);
    }
    if tls.is_some() {
        let note = tls_note(&seen);
        for m in &mut all {
            mark_no_tls(ctx, m);
            if m.unit == "deliveries/s" {
                m.note = format!("{} {note}", m.note);
            }
        }
    }
    all
}

/// Answers an Engine.IO ping if `f` is one; true if it was.
async fn pong(ws: &mut Ws, dialect: Dialect, f: &str) -> anyhow::Result<bool> {
    if dialect == Dialect::SocketIo && f == "2" {
        ws.send(Message::text("3")).await?;
        return Ok(true);
    }
    Ok(false)
}

/// One connection's sequential echo latencies (ns), for `limit` or `count` calls after 200 warm-up calls.
async fn sequential(
    dialect: Dialect,
    port: u16,
    count: u64,
    limit: Duration,
    tls: Option<&Pki>,
) -> anyhow::Result<Histogram<u64>> {
    let token = (dialect == Dialect::Switchboard).then(|| jwt::token(jwt::SECRET, "seq"));
    let opts = ConnectOptions::new(client::source(1), token, client_tls(tls));
    let mut ws = client::connect(dialect, port, &opts).await?;
    let payload = "x".repeat(32);
    let mut hist = Histogram::<u64>::new(3)?;
    let start = Instant::now();
    for id in 1..=count + 200 {
        if id > 200 && start.elapsed() > limit {
            break;
        }
        let t0 = Instant::now();
        ws.send(Message::text(dialect.echo(&payload, id))).await?;
        loop {
            let f = tokio::time::timeout(Duration::from_secs(5), client::next_text(&mut ws))
                .await
                .with_context(|| format!("no reply to sequential request {id} within 5 s"))??;
            if !pong(&mut ws, dialect, &f).await? && dialect.reply_id(&f) == Some(id) {
                break;
            }
        }
        if id > 200 {
            hist.record(t0.elapsed().as_nanos() as u64)?;
        }
    }
    Ok(hist)
}

/// `conns` connections each keeping up to `window` echo requests in flight for `limit`;
/// returns (calls, calls/s).
async fn pipelined(
    dialect: Dialect,
    port: u16,
    conns: usize,
    window: u64,
    limit: Duration,
    tls: Option<&Pki>,
) -> anyhow::Result<(u64, f64)> {
    let socks = pipelined_connect(dialect, port, conns, tls).await?;
    pipelined_run(dialect, socks, window, limit).await
}

/// The connections of [`pipelined`], identified.
async fn pipelined_connect(
    dialect: Dialect,
    port: u16,
    conns: usize,
    tls: Option<&Pki>,
) -> anyhow::Result<Vec<Ws>> {
    let socks: Vec<anyhow::Result<Ws>> = futures_util::stream::iter(0..conns)
        .map(|i| {
            let token = (dialect == Dialect::Switchboard).then(|| jwt::token(jwt::SECRET, &format!("p{i}")));
            let opts = ConnectOptions::new(client::source(2 + i % 4), token, client_tls(tls));
            async move { client::connect(dialect, port, &opts).await }
        })
        .buffer_unordered(20)
        .collect()
        .await;
    socks.into_iter().collect()
}

/// The calls of [`pipelined`] on connections made by [`pipelined_connect`].
async fn pipelined_run(
    dialect: Dialect,
    socks: Vec<Ws>,
    window: u64,
    limit: Duration,
) -> anyhow::Result<(u64, f64)> {
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for mut ws in socks {
        let (stop, total) = (stop.clone(), total.clone());
        tasks.push(tokio::spawn(async move {
            let payload = "x".repeat(32);
            let (mut next, mut inflight) = (1u64, 0u64);
            loop {
                if !stop.load(Ordering::Relaxed) && inflight <= window / 2 {
                    while inflight < window {
                        ws.feed(Message::text(dialect.echo(&payload, next))).await?;
                        next += 1;
                        inflight += 1;
                    }
                    ws.flush().await?;
                }
                if inflight == 0 {
                    break;
                }
                let f = tokio::time::timeout(Duration::from_secs(10), client::next_text(&mut ws)).await??;
                if !pong(&mut ws, dialect, &f).await? && dialect.reply_id(&f).is_some_and(|id| id > 0) {
                    inflight -= 1;
                    total.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    tokio::time::sleep(limit).await;
    let calls = total.load(Ordering::Relaxed);
    let secs = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await??;
    }
    Ok((calls, calls as f64 / secs))
}

/// S2: requests. One connection sequential (p50/p99), N connections pipelined (calls/s).
pub async fn s2(ctx: &Ctx) -> Vec<Metric> {
    s2_over(ctx, None).await
}

/// S2-TLS: S2 over `wss://`, against Switchboard, the reference and Bun. The issue sets no goal
/// for it: figures only.
pub async fn s2_tls(ctx: &Ctx) -> Vec<Metric> {
    match scenario_pki(ctx) {
        Ok(pki) => s2_over(ctx, Some(&pki)).await,
        Err(e) => failed_tls(ctx, "S2-TLS", &e),
    }
}

/// S2, over TLS if `tls` is given.
async fn s2_over(ctx: &Ctx, tls: Option<&Pki>) -> Vec<Metric> {
    let (scenario, targets) = match tls {
        None => ("S2", ctx.targets.all.clone()),
        Some(_) => ("S2-TLS", ctx.targets.tls()),
    };
    let conns = ctx.sizes.s2_conns;
    let mut metrics = vec![
        Metric::new(scenario, "echo p50, 1 connection sequential", "µs", false),
        Metric::new(scenario, "echo p99, 1 connection sequential", "µs", false),
        Metric::new(
            scenario,
            &format!("echo calls/s, {conns} connections pipelined (32 in flight each)"),
            "calls/s",
            true,
        ),
    ];
    let measure = ctx.sizes.measure;
    let seen = &Negotiated::default();
    interleave(ctx, &targets, &mut metrics, |t, _| async move {
        let server = start(ctx, &t, tls, seen).await?;
        let r = async {
            let cpu0 = server.cpu();
            let hist = sequential(t.dialect, server.port, 50_000, measure, tls).await?;
            let seq_cpu = server.cpu().saturating_sub(cpu0) as f64 / hist.len().max(1) as f64;
            let cpu1 = server.cpu();
            let (calls, rate) = pipelined(t.dialect, server.port, conns, 32, measure, tls).await?;
            let cpu = server.cpu().saturating_sub(cpu1) as f64 / calls.max(1) as f64;
            let p50 = hist.value_at_quantile(0.5) as f64 / 1000.0;
            let p99 = hist.value_at_quantile(0.99) as f64 / 1000.0;
            eprintln!("    sequential p50 {p50:.1} µs p99 {p99:.1} µs ({seq_cpu:.1} CPU-µs/call); pipelined {rate:.0} calls/s ({cpu:.2} CPU-µs/call)");
            Ok::<Values, anyhow::Error>(vec![(0, p50, Some(seq_cpu)), (1, p99, None), (2, rate, Some(cpu))])
        }
        .await;
        server.stop().await;
        r
    })
    .await;
    metrics[0].note = "32-byte payloads. Round trip measured by the client (loopback, same machine).".into();
    if tls.is_some() {
        // Issue #17 sets no goal for requests over TLS: the figures are reported as they are.
        let note = tls_note(seen);
        for m in &mut metrics {
            mark_no_tls(ctx, m);
        }
        metrics[0].note = format!("{} No goal over TLS (issue #17 sets none). {note}", metrics[0].note);
        return metrics;
    }
    metrics[2].goal_ratio(SWITCHBOARD, 0.85, REFERENCE);
    metrics[2].goal_ratio(SWITCHBOARD, 3.0, "socketio");
    let (sb, re) = (metrics[0].median(SWITCHBOARD), metrics[0].median(REFERENCE));
    metrics[0].goals.push(Goal {
        text: "switchboard p50 ≤ reference p50 + 10 µs".into(),
        met: sb.zip(re).map(|(a, b)| a <= b + 10.0),
        detail: sb.zip(re).map_or("no value".into(), |(a, b)| format!("{a:.1} µs vs {b:.1} + 10 µs")),
    });
    metrics
}

/// S3: idle connections (two topics each, heartbeats at the servers' defaults): memory per connection.
pub async fn s3(ctx: &Ctx) -> Vec<Metric> {
    let targets = ctx.targets.all.clone();
    let n = ctx.sizes.s3_conns;
    let mut metrics = vec![Metric::new(
        "S3",
        &format!("server memory per idle connection, {n} connections in 2 topics each"),
        "bytes",
        false,
    )];
    interleave(ctx, &targets, &mut metrics, |t, _| async move {
        let server = t.start(&[], &ctx.logs).await?;
        let r = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let rss0 = server.rss();
            let specs = worker_specs(t.dialect, server.port, n, 1, TopicPlan::Idle, 0, None);
            let workers = Workers::spawn(&ctx.exe, &specs, Duration::from_secs(240)).await?;
            let (ok, failed, why) = (workers.readers, workers.failed, workers.first_error.clone());
            // Let the server settle (timers armed, buffers shrunk), then read.
            tokio::time::sleep(ctx.sizes.measure.max(Duration::from_secs(2))).await;
            let rss1 = server.rss();
            workers.stop().await;
            if failed > n / 100 || ok == 0 {
                bail!("{failed} of {n} connections failed: {why}");
            }
            let per = rss1.saturating_sub(rss0) as f64 / ok as f64;
            eprintln!(
                "    {ok} connections ({failed} failed), RSS {} → {} MB, {per:.0} bytes/connection",
                rss0 >> 20,
                rss1 >> 20
            );
            Ok::<Values, anyhow::Error>(vec![(0, per, None)])
        }
        .await;
        server.stop().await;
        r
    })
    .await;
    let m = &mut metrics[0];
    let sb = m.median(SWITCHBOARD);
    m.goals.push(Goal {
        text: "switchboard ≤ 4 KB per connection".into(),
        met: sb.map(|v| v <= 4096.0),
        detail: sb.map_or("no value".into(), |v| format!("{v:.0} bytes, {:+.0} bytes from 2 KB", v - 2048.0)),
    });
    let so = m.median("socketio");
    m.goals.push(Goal {
        text: "switchboard ≥ 5× less than socketio".into(),
        met: sb.zip(so).map(|(a, b)| b >= 5.0 * a),
        detail: sb
            .zip(so)
            .map_or(format!("socketio: {}", m.why("socketio")), |(a, b)| format!("{:.2}× less", b / a)),
    });
    m.note = "Growth of the server's VmRSS from before the first connection to 2–4 s after the last one is identified \
(Switchboard: HS256 JWT) and subscribed to its 2 topics (`a<i % 100>`, `b<i>`), divided by the connections. \
Heartbeats at each server's defaults."
        .into();
    metrics
}

/// S4: connect (+ identify with an HS256 JWT for Switchboard; + Socket.IO connect) rate.
pub async fn s4(ctx: &Ctx) -> Vec<Metric> {
    s4_over(ctx, None).await
}

/// S4-TLS: S4 over `wss://` (every connection a full TLS handshake: the client never resumes),
/// against Switchboard, the reference and Bun.
pub async fn s4_tls(ctx: &Ctx) -> Vec<Metric> {
    match scenario_pki(ctx) {
        Ok(pki) => s4_over(ctx, Some(&pki)).await,
        Err(e) => failed_tls(ctx, "S4-TLS", &e),
    }
}

/// S4, over TLS if `tls` is given.
async fn s4_over(ctx: &Ctx, tls: Option<&Pki>) -> Vec<Metric> {
    let (scenario, targets, what) = match tls {
        None => ("S4", ctx.targets.all.clone(), "connect + upgrade (+ identify)"),
        Some(_) => ("S4-TLS", ctx.targets.tls(), "connect + TLS handshake + upgrade (+ identify)"),
    };
    let n = ctx.sizes.s4_conns;
    let mut metrics = vec![Metric::new(
        scenario,
        &format!("connections/s: {what}, {n} connections, 50 at once"),
        "connections/s",
        true,
    )];
    let seen = &Negotiated::default();
    interleave(ctx, &targets, &mut metrics, |t, round| async move {
        let server = start(ctx, &t, tls, seen).await?;
        let r = async {
            let tokens: Vec<Option<String>> = (0..n)
                .map(|i| {
                    (t.dialect == Dialect::Switchboard).then(|| jwt::token(jwt::SECRET, &format!("c{i}")))
                })
                .collect();
            let cpu0 = server.cpu();
            let bench_cpu0 = procfs::cpu_micros(std::process::id()).unwrap_or(0);
            let start = Instant::now();
            // Other source addresses every round: no TIME_WAIT left over from earlier rounds.
            let first = 100 + (round % 3) * 50;
            let port = server.port;
            let dialect = t.dialect;
            let results: Vec<anyhow::Result<Ws>> = futures_util::stream::iter(tokens.into_iter().enumerate())
                .map(|(i, token)| {
                    let opts = ConnectOptions::new(client::source(first + i % 50), token, client_tls(tls));
                    async move { client::connect(dialect, port, &opts).await }
                })
                .buffer_unordered(50)
                .collect()
                .await;
            let secs = start.elapsed().as_secs_f64();
            let cpu = server.cpu().saturating_sub(cpu0) as f64;
            let bench_cpu =
                procfs::cpu_micros(std::process::id()).unwrap_or(0).saturating_sub(bench_cpu0) as f64;
            let ok = results.iter().filter(|r| r.is_ok()).count();
            if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
                bail!("{} of {n} connections failed: {e:#}", n - ok);
            }
            drop(results);
            let rate = ok as f64 / secs;
            let (per, gen_per) = (cpu / ok as f64, bench_cpu / ok as f64);
            eprintln!(
                "    {rate:.0} connections/s, {per:.0} CPU-µs/connection (load generator {gen_per:.0})"
            );
            let details =
                if tls.is_some() { vec![(0, "load generator CPU-µs/op", gen_per)] } else { vec![] };
            Ok::<Measured, anyhow::Error>(Measured { values: vec![(0, rate, Some(per))], details })
        }
        .await;
        server.stop().await;
        r
    })
    .await;
    metrics[0].note = "Connections stay open until the measurement ends (closing is not timed). Switchboard: \
TCP connect + WebSocket upgrade + `~hello` with an HS256 JWT verified by the server, until its `~ok`. \
Reference, ws, Bun: connect + upgrade. Socket.IO/socketioxide: connect + upgrade + Engine.IO open + `40` connect."
        .into();
    if tls.is_some() {
        metrics[0].goal_ratio(SWITCHBOARD, 0.8, REFERENCE);
        mark_no_tls(ctx, &mut metrics[0]);
        metrics[0].note = format!(
            "{} Over TLS, a full handshake precedes the upgrade; the load generator (the bench process, whose CPU \
time per connection is the last column) does the client's half on the same cores. {}",
            metrics[0].note,
            tls_note(seen)
        );
    } else {
        metrics[0].goal_ratio(SWITCHBOARD, 0.5, REFERENCE);
    }
    metrics
}

/// Starts `redis-server` on a free port (no persistence); returns it and its URL.
async fn redis() -> anyhow::Result<(tokio::process::Child, String)> {
    let port = crate::targets::free_port()?;
    let child = tokio::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("redis-server (apt-get install redis-server)")?;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok((child, format!("redis://127.0.0.1:{port}")));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("redis-server did not start")
}

/// A latency histogram (µs) shared with a reader task.
type SharedHist = Arc<StdMutex<Histogram<u64>>>;

/// Reads deliveries whose payload is `#<ns since start, 16 digits>#`, records their latency.
fn latency_reader(
    mut ws: Ws,
    start: Instant,
    count: Arc<AtomicU64>,
) -> (SharedHist, tokio::task::JoinHandle<()>) {
    let hist: SharedHist = Arc::new(StdMutex::new(Histogram::new(3).expect("3 digits")));
    let h = hist.clone();
    let task = tokio::spawn(async move {
        while let Some(Ok(Message::Text(t))) = ws.next().await {
            let Some(at) = t.find('#') else { continue };
            if let Some(ns) = t.get(at + 1..at + 17).and_then(|s| s.parse::<u64>().ok()) {
                let now = start.elapsed().as_nanos() as u64;
                let _ = h.lock().expect("not poisoned").record(now.saturating_sub(ns) / 1000);
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    (hist, task)
}

/// An identified Switchboard connection from source address number `src`.
async fn sb_conn(port: u16, user: &str, src: usize) -> anyhow::Result<Ws> {
    let opts = ConnectOptions::new(client::source(src), Some(jwt::token(jwt::SECRET, user)), None);
    client::connect(Dialect::Switchboard, port, &opts).await
}

/// S5: two Switchboard servers on one Redis; publish on A, subscribers on B.
pub async fn s5(ctx: &Ctx) -> Vec<Metric> {
    let mut metrics = vec![
        Metric::new(
            "S5",
            "publications/s delivered cross-node (8 publishers on A, ≤ 64 ~pub in flight each; subscriber on B)",
            "publications/s",
            true,
        ),
        Metric::new("S5", "p99 latency at 10k publications/s, cross-node (A → Redis → B)", "µs", false),
        Metric::new("S5", "p99 latency at 10k publications/s, same node (A → A)", "µs", false),
        Metric::new("S5", "added p99 cross-node at 10k/s", "µs", false),
    ];
    let Some(sb) = ctx.targets.get(SWITCHBOARD).cloned() else { return metrics };
    let measure = ctx.sizes.measure.max(Duration::from_secs(2));
    for round in 0..ctx.sizes.rounds {
        eprintln!("  S5 round {} · switchboard ×2 + redis", round + 1);
        let r = async {
            let (mut redis, url) = redis().await?;
            let args = vec!["--redis".to_owned(), url];
            let r = async {
                let a = sb.start(&args, &ctx.logs).await?;
                let b = sb.start(&args, &ctx.logs).await?;
                let r = s5_round(&a, &b, measure).await;
                a.stop().await;
                b.stop().await;
                r
            }
            .await;
            let _ = redis.start_kill();
            let _ = redis.wait().await;
            r
        }
        .await;
        match r {
            Ok(v) => {
                for (i, (x, cpu)) in v.into_iter().enumerate() {
                    metrics[i].push(SWITCHBOARD, x, cpu);
                }
            }
            Err(e) => {
                eprintln!("    failed: {e:#}");
                for m in &mut metrics {
                    m.mark(SWITCHBOARD, &format!("failed: {e:#}"));
                }
            }
        }
    }
    for m in &mut metrics {
        ctx.switchboard_only(m);
    }
    let rate = metrics[0].median(SWITCHBOARD);
    metrics[0].goals.push(Goal {
        text: "≥ 50,000 publications/s delivered cross-node".into(),
        met: rate.map(|r| r >= 50_000.0),
        detail: rate.map_or("no value".into(), |r| format!("{r:.0}/s")),
    });
    metrics[0].note = "CPU-µs/op: both servers' CPU time per publication (Redis not included).".into();
    let added = metrics[3].median(SWITCHBOARD);
    metrics[3].goals.push(Goal {
        text: "added p99 at 10k/s reported".into(),
        met: added.map(|_| true),
        detail: added.map_or("no value".into(), |a| format!("{a:.0} µs")),
    });
    metrics[3].note =
        "Added p99 = p99 of a subscriber on B minus p99 of a subscriber on A, same publications (10 every ms from one connection on A).".into();
    metrics
}

/// One S5 round: (value, CPU-µs per op) for each S5 metric.
async fn s5_round(a: &Running, b: &Running, measure: Duration) -> anyhow::Result<Vec<(f64, Option<f64>)>> {
    let d = Dialect::Switchboard;
    // Throughput: subscriber on B, 8 pipelined publishers on A.
    let mut sub = sb_conn(b.port, "sub-b", 1).await?;
    client::subscribe(&mut sub, d, &["x".to_owned()], Duration::from_secs(5)).await?;
    let received = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let (_, reader) = latency_reader(sub, start, received.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let cpu0 = a.cpu() + b.cpu();
    let mut pubs = Vec::new();
    for i in 0..8 {
        let mut ws = sb_conn(a.port, &format!("pub{i}"), 2 + i).await?;
        let stop = stop.clone();
        pubs.push(tokio::spawn(async move {
            let (mut next, mut inflight) = (1u64, 0u64);
            loop {
                if !stop.load(Ordering::Relaxed) && inflight <= 32 {
                    while inflight < 64 {
                        let payload = format!("#{:016}#", start.elapsed().as_nanos() as u64);
                        ws.feed(Message::text(d.publish("x", &payload, next))).await?;
                        next += 1;
                        inflight += 1;
                    }
                    ws.flush().await?;
                }
                if inflight == 0 {
                    break;
                }
                let f = tokio::time::timeout(Duration::from_secs(10), client::next_text(&mut ws)).await??;
                if d.reply_id(&f).is_some() {
                    inflight -= 1;
                }
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    let t0 = Instant::now();
    tokio::time::sleep(measure).await;
    stop.store(true, Ordering::Relaxed);
    for p in pubs {
        p.await??;
    }
    // Wait for the tail to arrive.
    let mut last = received.load(Ordering::Relaxed);
    let mut last_at = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = received.load(Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
        last_at = Instant::now();
    }
    let secs = last_at.duration_since(t0).as_secs_f64();
    let rate = last as f64 / secs;
    let cpu = (a.cpu() + b.cpu()).saturating_sub(cpu0) as f64 / last.max(1) as f64;
    reader.abort();
    eprintln!(
        "    {rate:.0} publications/s cross-node ({last} received), {cpu:.1} CPU-µs (both servers) per publication"
    );
    // Latency at 10k/s: one subscriber on B, one on A, one publisher on A, 10 publications every ms.
    let mut on_b = sb_conn(b.port, "lat-b", 20).await?;
    let mut on_a = sb_conn(a.port, "lat-a", 21).await?;
    client::subscribe(&mut on_b, d, &["y".to_owned()], Duration::from_secs(5)).await?;
    client::subscribe(&mut on_a, d, &["y".to_owned()], Duration::from_secs(5)).await?;
    let start = Instant::now();
    let n = Arc::new(AtomicU64::new(0));
    let (hb, rb) = latency_reader(on_b, start, n.clone());
    let (ha, ra) = latency_reader(on_a, start, n.clone());
    let (mut sink, mut stream) = sb_conn(a.port, "lat-pub", 22).await?.split();
    let drain = tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let mut id = 1;
    let t1 = Instant::now();
    while t1.elapsed() < measure {
        tick.tick().await;
        for _ in 0..10 {
            let payload = format!("#{:016}#", start.elapsed().as_nanos() as u64);
            sink.feed(Message::text(d.publish("y", &payload, id))).await?;
            id += 1;
        }
        sink.flush().await?;
    }
    let sent_rate = (id - 1) as f64 / t1.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for t in [rb, ra, drain] {
        t.abort();
    }
    let (hb, ha) = (hb.lock().expect("not poisoned").clone(), ha.lock().expect("not poisoned").clone());
    let (pb, pa) = (hb.value_at_quantile(0.99) as f64, ha.value_at_quantile(0.99) as f64);
    eprintln!(
        "    {sent_rate:.0}/s: cross-node p50 {} p99 {pb:.0} µs ({} received); same node p50 {} p99 {pa:.0} µs ({} received)",
        hb.value_at_quantile(0.5),
        hb.len(),
        ha.value_at_quantile(0.5),
        ha.len()
    );
    Ok(vec![(rate, Some(cpu)), (pb, None), (pa, None), (pb - pa, None)])
}

/// Samples a server's RSS every 20 ms; the peak so far.
fn rss_sampler(pid: u32) -> (Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let peak = Arc::new(AtomicU64::new(0));
    let p = peak.clone();
    let task = tokio::spawn(async move {
        loop {
            if let Some(r) = crate::procfs::rss_bytes(pid) {
                p.fetch_max(r, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    (peak, task)
}

/// S6: users on several devices: `send_to_user` to every user, compared with an S1 fan-out to
/// the same number of connections (same server, same round).
pub async fn s6(ctx: &Ctx) -> Vec<Metric> {
    let users = ctx.sizes.s6_users;
    let conns = users * 3;
    let mut metrics = vec![
        Metric::new(
            "S6",
            &format!("deliveries/s, send-to-user, {users} users × 3 connections"),
            "deliveries/s",
            true,
        ),
        Metric::new(
            "S6",
            &format!("deliveries/s, S1 fan-out to {conns} subscribers, burst 1 (same round)"),
            "deliveries/s",
            true,
        ),
    ];
    let Some(sb) = ctx.targets.get(SWITCHBOARD).cloned() else { return metrics };
    for round in 0..ctx.sizes.rounds {
        for which in [0usize, 1] {
            eprintln!("  S6 round {} · switchboard {}", round + 1, ["send-to-user", "S1 fan-out"][which]);
            let r = async {
                let server = sb.start(&[], &ctx.logs).await?;
                let r = if which == 0 {
                    s6_tell(ctx, &server, users).await
                } else {
                    // Burst 1: like a send-to-user burst, one message per connection per burst
                    // (15k deliveries = one publication to 15k subscribers).
                    fanout_run(ctx, &sb, &server, conns, 0, &[1], None).await.map(|mut f| f.remove(0))
                };
                server.stop().await;
                r
            }
            .await;
            match r {
                Ok(f) => {
                    eprintln!("    {:.0} deliveries/s, {:.3} CPU-µs/delivery", f.rate, f.cpu_per_op);
                    metrics[which].push(SWITCHBOARD, f.rate, Some(f.cpu_per_op));
                }
                Err(e) => {
                    eprintln!("    failed: {e:#}");
                    metrics[which].mark(SWITCHBOARD, &format!("failed: {e:#}"));
                }
            }
        }
    }
    for m in &mut metrics {
        ctx.switchboard_only(m);
    }
    let (a, b) = (metrics[0].median(SWITCHBOARD), metrics[1].median(SWITCHBOARD));
    metrics[0].goals.push(Goal {
        text: "send-to-user ≥ 0.8× S1 at the same number of deliveries".into(),
        met: a.zip(b).map(|(a, b)| a >= 0.8 * b),
        detail: a.zip(b).map_or("no value".into(), |(a, b)| format!("{:.2}×", a / b)),
    });
    metrics[0].note = "One burst = one `tell` event (`Hub::send_to_user`) per user, 100-byte payload, so each of the \
3 connections of every user receives one message per burst; 4 bursts in flight, as in S1. The second line is an S1 fan-out to \
the same number of connections on a fresh server of the same round, with bursts of 1 so that each connection also \
receives one message per burst (one publication = as many deliveries as one send-to-user burst)."
        .into();
    metrics
}

/// The send-to-user run of S6.
async fn s6_tell(ctx: &Ctx, server: &Running, users: usize) -> anyhow::Result<Fanout> {
    let specs = worker_specs(Dialect::Switchboard, server.port, users * 3, 3, TopicPlan::None, 0, None);
    let mut workers = Workers::spawn(&ctx.exe, &specs, Duration::from_secs(180)).await?;
    if workers.failed > 0 {
        let e = format!("{} of {} connections failed: {}", workers.failed, users * 3, workers.first_error);
        workers.stop().await;
        bail!(e);
    }
    let publisher = Publisher::connect(Dialect::Switchboard, server.port, "publisher", None).await?;
    let plan = FanoutPlan {
        bursts: (ctx.sizes.fanout_deliveries / (users as u64 * 3)).clamp(10, 20_000),
        per_conn: 1,
        // As many bursts in flight as the S1 fan-out it is compared with.
        window: FANOUT_WINDOW,
        limit: ctx.sizes.measure,
    };
    let mut next = 1;
    let r = fanout(&mut workers, &publisher, server, &mut next, &plan, |k| {
        let payload = client::marked_payload(k, 100);
        (0..users).map(|u| client::tell(&format!("u{u}"), &payload)).collect()
    })
    .await;
    drop(publisher);
    workers.stop().await;
    r
}

/// S7: slow consumers: 1% of the subscribers never read. Others' throughput and server memory,
/// against the same run without slow consumers (interleaved).
pub async fn s7(ctx: &Ctx) -> Vec<Metric> {
    let subs = ctx.sizes.s7_subscribers;
    let q = ctx.sizes.s7_queue_bytes;
    let slow = subs.div_ceil(100);
    let mut metrics = vec![
        Metric::new(
            "S7",
            &format!("deliveries/s to the readers, {subs} subscribers of which {slow} never read, burst 10"),
            "deliveries/s",
            true,
        ),
        Metric::new(
            "S7",
            &format!("deliveries/s, {subs} subscribers all reading, burst 10 (same round)"),
            "deliveries/s",
            true,
        ),
        Metric::new("S7", "server RSS growth during the fan-out, with the slow consumers", "bytes", false),
        Metric::new("S7", "server RSS growth during the fan-out, without", "bytes", false),
    ];
    let Some(sb) = ctx.targets.get(SWITCHBOARD).cloned() else { return metrics };
    let extra = vec!["--queue-bytes".to_owned(), q.to_string()];
    for round in 0..ctx.sizes.rounds {
        for (which, slow_every) in [(0usize, 100usize), (1, 0)] {
            eprintln!("  S7 round {} · switchboard {}", round + 1, ["with slow consumers", "without"][which]);
            let r = async {
                let server = sb.start(&extra, &ctx.logs).await?;
                let (peak, sampler) = rss_sampler(server.pid);
                let r = fanout_run_rss(ctx, &sb, &server, subs, slow_every, &peak).await;
                sampler.abort();
                server.stop().await;
                r
            }
            .await;
            match r {
                Ok((f, growth)) => {
                    eprintln!("    {:.0} deliveries/s, RSS growth {} KB", f.rate, growth >> 10);
                    metrics[which].push(SWITCHBOARD, f.rate, Some(f.cpu_per_op));
                    metrics[2 + which].push(SWITCHBOARD, growth as f64, None);
                }
                Err(e) => {
                    eprintln!("    failed: {e:#}");
                    metrics[which].mark(SWITCHBOARD, &format!("failed: {e:#}"));
                    metrics[2 + which].mark(SWITCHBOARD, &format!("failed: {e:#}"));
                }
            }
        }
    }
    for m in &mut metrics {
        ctx.switchboard_only(m);
    }
    let (a, b) = (metrics[0].median(SWITCHBOARD), metrics[1].median(SWITCHBOARD));
    metrics[0].goals.push(Goal {
        text: "the readers' throughput falls < 10%".into(),
        met: a.zip(b).map(|(a, b)| a >= 0.9 * b),
        detail: a.zip(b).map_or("no value".into(), |(a, b)| format!("{:+.1}%", 100.0 * (a / b - 1.0))),
    });
    let (ga, gb) = (metrics[2].median(SWITCHBOARD), metrics[3].median(SWITCHBOARD));
    let bound = (slow * q) as f64;
    metrics[2].goals.push(Goal {
        text: format!(
            "memory bounded by the queue limit: growth − growth without ≤ {slow} × {q} B = {} KB",
            slow * q / 1024
        ),
        met: ga.zip(gb).map(|(a, b)| a - b <= bound),
        detail: ga.zip(gb).map_or("no value".into(), |(a, b)| {
            format!("{:.0} KB extra ({:.0}% of the bound)", (a - b) / 1024.0, 100.0 * (a - b) / bound)
        }),
    });
    metrics[2].note = format!(
        "The server runs with `--queue-bytes {q}` (Config::max_queue_bytes) so that the never-reading connections (4 KB \
receive buffers) reach the limit within the run; beyond it Switchboard closes them with 4002. Growth = peak VmRSS \
(sampled every 20 ms) minus VmRSS once all subscribers are connected."
    );
    metrics
}

/// [`fanout_run`] with one burst size (10), plus the RSS growth: peak − RSS when connected.
async fn fanout_run_rss(
    ctx: &Ctx,
    t: &Target,
    server: &Running,
    subs: usize,
    slow_every: usize,
    peak: &AtomicU64,
) -> anyhow::Result<(Fanout, u64)> {
    let specs = worker_specs(t.dialect, server.port, subs, 1, TopicPlan::One("t".into()), slow_every, None);
    let mut workers = Workers::spawn(&ctx.exe, &specs, Duration::from_secs(180)).await?;
    if workers.failed > 0 {
        let e = format!("{} of {subs} connections failed: {}", workers.failed, workers.first_error);
        workers.stop().await;
        bail!(e);
    }
    let publisher = Publisher::connect(t.dialect, server.port, "publisher", None).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let base = server.rss();
    peak.store(base, Ordering::Relaxed);
    let plan = FanoutPlan {
        bursts: (ctx.sizes.fanout_deliveries / (subs as u64 * 10)).clamp(100, 20_000),
        per_conn: 10,
        window: 4,
        limit: ctx.sizes.measure * 2,
    };
    let mut next = 1;
    let r =
        fanout(&mut workers, &publisher, server, &mut next, &plan, |k| publish_frames(t.dialect, "t", 10, k))
            .await;
    let growth = peak.load(Ordering::Relaxed).saturating_sub(base);
    drop(publisher);
    workers.stop().await;
    Ok((r?, growth))
}

/// Ping-flooding connections in S12.
const S12_FLOODERS: usize = 4;
/// Slow-handshake connections in S12.
const S12_SLOW: usize = 2_000;

/// The abuse of S12: ping floods from connections that never read, and connections that send
/// their upgrade request one byte every 2 s. Dropped, it stops (and closes them).
struct Abuse {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Bytes of pings the flooders got the server to take.
    flooded: Arc<AtomicU64>,
}

impl Drop for Abuse {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Abuse {
    async fn start(port: u16) -> anyhow::Result<Self> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        const UPGRADE: &[u8] =
            b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        let mut tasks = Vec::new();
        // A masked ping with the largest control payload, again and again.
        let mut ping = vec![0x89, 0x80 | 125, 1, 2, 3, 4];
        ping.extend((0..125).map(|i| b'p' ^ [1, 2, 3, 4][i % 4]));
        let chunk: Arc<Vec<u8>> = Arc::new(ping.iter().copied().cycle().take(ping.len() * 512).collect());
        let flooded = Arc::new(AtomicU64::new(0));
        for _ in 0..S12_FLOODERS {
            let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            tcp.write_all(UPGRADE).await?;
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut b = [0u8];
                if tcp.read(&mut b).await? == 0 {
                    bail!("a flooder was not upgraded");
                }
                head.push(b[0]);
            }
            let (chunk, flooded) = (chunk.clone(), flooded.clone());
            tasks.push(tokio::spawn(async move {
                let mut at = 0;
                // Never reads; writes until the socket stops taking them (then waits there).
                while let Ok(n) = tcp.write(&chunk[at..]).await {
                    at = (at + n) % chunk.len();
                    flooded.fetch_add(n as u64, Ordering::Relaxed);
                }
            }));
        }
        let mut slow = Vec::with_capacity(S12_SLOW);
        for i in 0..S12_SLOW {
            let src = std::net::SocketAddr::from((client::source(10 + i % 4), 0));
            // Out of descriptors (a low limit): as many as there could be.
            let Ok(socket) = tokio::net::TcpSocket::new_v4() else { break };
            if socket.bind(src).is_err() {
                break;
            }
            // Beyond the server's handshake cap a connection is closed at once: kept anyway.
            if let Ok(tcp) = socket.connect(std::net::SocketAddr::from(([127, 0, 0, 1], port))).await {
                slow.push(tcp);
            }
        }
        tasks.push(tokio::spawn(async move {
            let mut at = 0;
            loop {
                for tcp in &mut slow {
                    let _ = tcp.try_write(&UPGRADE[at % (UPGRADE.len() - 2)..][..1]);
                }
                at += 1;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }));
        Ok(Self { tasks, flooded })
    }

    /// Waits until the floods stall (the server stopped reading them: its bound is reached), at
    /// most 10 s; returns the bytes they got in.
    async fn settle(&self) -> u64 {
        let mut last = u64::MAX;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = self.flooded.load(Ordering::Relaxed);
            if now == last {
                break;
            }
            last = now;
        }
        last
    }
}

/// S12: under abuse, and with rate limits on. S2's pipelined echo workload alone, then beside
/// 4 ping-flooding connections and 2,000 slow handshakes (calls/s, and the server's RSS growth
/// against the bounds of its configuration); then S2 and S1 with rate limits on (generous:
/// every message checked, none refused) against off.
pub async fn s12(ctx: &Ctx) -> Vec<Metric> {
    let conns = ctx.sizes.s2_conns;
    let subs = ctx.sizes.s1_subscribers[0];
    let mut metrics = vec![
        Metric::new("S12", &format!("echo calls/s, {conns} connections pipelined, alone"), "calls/s", true),
        Metric::new(
            "S12",
            &format!(
                "echo calls/s, {conns} connections pipelined, beside {S12_FLOODERS} ping floods and {S12_SLOW} slow handshakes"
            ),
            "calls/s",
            true,
        ),
        Metric::new("S12", "server RSS growth under the ping floods and slow handshakes", "bytes", false),
        Metric::new(
            "S12",
            &format!("S2 echo calls/s, {conns} connections pipelined, rate limits off"),
            "calls/s",
            true,
        ),
        Metric::new(
            "S12",
            &format!("S2 echo calls/s, {conns} connections pipelined, rate limits on"),
            "calls/s",
            true,
        ),
        Metric::new(
            "S12",
            &format!("S1 deliveries/s, {subs} subscribers, burst 1, rate limits off"),
            "deliveries/s",
            true,
        ),
        Metric::new(
            "S12",
            &format!("S1 deliveries/s, {subs} subscribers, burst 1, rate limits on"),
            "deliveries/s",
            true,
        ),
        Metric::new(
            "S12",
            &format!("S1 deliveries/s, {subs} subscribers, burst 10, rate limits off"),
            "deliveries/s",
            true,
        ),
        Metric::new(
            "S12",
            &format!("S1 deliveries/s, {subs} subscribers, burst 10, rate limits on"),
            "deliveries/s",
            true,
        ),
    ];
    let Some(sb) = ctx.targets.get(SWITCHBOARD).cloned() else { return metrics };
    let measure = ctx.sizes.measure;
    let on = vec!["--rate-limits".to_owned()];
    for round in 0..ctx.sizes.rounds {
        for abused in [false, true] {
            eprintln!(
                "  S12 round {} · switchboard {}",
                round + 1,
                if abused { "under abuse" } else { "alone" }
            );
            let r = async {
                let server = sb.start(&[], &ctx.logs).await?;
                let r = async {
                    let socks = pipelined_connect(sb.dialect, server.port, conns, None).await?;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let base = server.rss();
                    let (peak, sampler) = rss_sampler(server.pid);
                    peak.store(base, Ordering::Relaxed);
                    let abuse = if abused { Some(Abuse::start(server.port).await?) } else { None };
                    if let Some(abuse) = &abuse {
                        let flooded = abuse.settle().await;
                        eprintln!("    the floods stalled after {} MB", flooded >> 20);
                    }
                    let (_, rate) = pipelined_run(sb.dialect, socks, 32, measure).await?;
                    let growth = peak.load(Ordering::Relaxed).saturating_sub(base);
                    sampler.abort();
                    drop(abuse);
                    Ok::<_, anyhow::Error>((rate, growth))
                }
                .await;
                server.stop().await;
                r
            }
            .await;
            match r {
                Ok((rate, growth)) => {
                    eprintln!("    {rate:.0} calls/s, RSS growth {} KB", growth >> 10);
                    metrics[usize::from(abused)].push(SWITCHBOARD, rate, None);
                    if abused {
                        metrics[2].push(SWITCHBOARD, growth as f64, None);
                    }
                }
                Err(e) => {
                    eprintln!("    failed: {e:#}");
                    metrics[usize::from(abused)].mark(SWITCHBOARD, &format!("failed: {e:#}"));
                }
            }
        }
        for limits in [false, true] {
            let extra: &[String] = if limits { &on } else { &[] };
            eprintln!(
                "  S12 round {} · switchboard, rate limits {}",
                round + 1,
                if limits { "on" } else { "off" }
            );
            let r = async {
                let server = sb.start(extra, &ctx.logs).await?;
                let r = async {
                    let (calls, rate) = pipelined(sb.dialect, server.port, conns, 32, measure, None).await?;
                    let fanouts = fanout_run(ctx, &sb, &server, subs, 0, &[1, 10], None).await?;
                    Ok::<_, anyhow::Error>((calls, rate, fanouts))
                }
                .await;
                server.stop().await;
                r
            }
            .await;
            let i = usize::from(limits);
            match r {
                Ok((_, rate, fanouts)) => {
                    eprintln!(
                        "    S2 {rate:.0} calls/s; S1 {:.0} / {:.0} deliveries/s",
                        fanouts[0].rate, fanouts[1].rate
                    );
                    metrics[3 + i].push(SWITCHBOARD, rate, None);
                    metrics[5 + i].push(SWITCHBOARD, fanouts[0].rate, Some(fanouts[0].cpu_per_op));
                    metrics[7 + i].push(SWITCHBOARD, fanouts[1].rate, Some(fanouts[1].cpu_per_op));
                }
                Err(e) => {
                    eprintln!("    failed: {e:#}");
                    for m in [3 + i, 5 + i, 7 + i] {
                        metrics[m].mark(SWITCHBOARD, &format!("failed: {e:#}"));
                    }
                }
            }
        }
    }
    for m in &mut metrics {
        ctx.switchboard_only(m);
    }
    let ratio_goal = |metrics: &mut Vec<Metric>, i: usize, base: usize, factor: f64, text: &str| {
        let (a, b) = (metrics[i].median(SWITCHBOARD), metrics[base].median(SWITCHBOARD));
        metrics[i].goals.push(Goal {
            text: text.to_owned(),
            met: a.zip(b).map(|(a, b)| a >= factor * b),
            detail: a.zip(b).map_or("no value".into(), |(a, b)| format!("{:+.1}%", 100.0 * (a / b - 1.0))),
        });
    };
    ratio_goal(&mut metrics, 1, 0, 0.9, "calls/s under the abuse ≥ 0.9× alone");
    ratio_goal(&mut metrics, 4, 3, 0.97, "rate limits on ≥ 0.97× off");
    ratio_goal(&mut metrics, 6, 5, 0.97, "rate limits on ≥ 0.97× off");
    ratio_goal(&mut metrics, 8, 7, 0.97, "rate limits on ≥ 0.97× off");
    let config = switchboard::Config::default();
    let bound =
        (S12_FLOODERS * config.max_queue_bytes + config.max_handshakes * config.max_header_bytes) as f64;
    let growth = metrics[2].median(SWITCHBOARD);
    metrics[2].goals.push(Goal {
        text: format!(
            "RSS growth ≤ {S12_FLOODERS} × max_queue_bytes + max_handshakes × max_header_bytes = {:.0} MB",
            bound / 1e6
        ),
        met: growth.map(|g| g <= bound),
        detail: growth.map_or("no value".into(), |g| format!("{:.1} MB", g / 1e6)),
    });
    metrics[1].note = format!(
        "The {S12_FLOODERS} flooders send pings with 125-byte payloads and never read; the {S12_SLOW} slow connections \
send their upgrade request one byte every 2 s (beyond `Config::max_handshakes` they are closed at once; the others at \
`Config::handshake_timeout`). The pipelined connections are identified before the abuse starts; calls are counted \
once the floods stalled (the server stopped reading them)."
    );
    metrics[4].note = "`bench-switchboard --rate-limits`: every limit of `Config::rate_limits` at 10M/s (per connection and \
per user, in-memory limiter): every message checked, none refused."
        .into();
    metrics
}

/// S8: fan-out across two nodes: the subscribers split over two servers on one Redis, the
/// publisher on the first; against the same load on one server on the same Redis (same round).
pub async fn s8(ctx: &Ctx) -> Vec<Metric> {
    let subs = ctx.sizes.s8_subscribers;
    let mut metrics = vec![];
    for b in [1u64, 10] {
        metrics.push(Metric::new(
            "S8",
            &format!("deliveries/s, {subs} subscribers split over two nodes on one Redis, burst {b}"),
            "deliveries/s",
            true,
        ));
        metrics.push(Metric::new(
            "S8",
            &format!(
                "deliveries/s, {subs} subscribers on one node on the same Redis, burst {b} (same round)"
            ),
            "deliveries/s",
            true,
        ));
    }
    let Some(sb) = ctx.targets.get(SWITCHBOARD).cloned() else { return metrics };
    for round in 0..ctx.sizes.rounds {
        eprintln!("  S8 round {} · switchboard ×1 and ×2 + redis", round + 1);
        let r = async {
            let (mut redis, url) = redis().await?;
            let args = vec!["--redis".to_owned(), url];
            let r = async {
                let one = sb.start(&args, &ctx.logs).await?;
                let alone = split_fanout(ctx, &[&one], subs).await;
                one.stop().await;
                let a = sb.start(&args, &ctx.logs).await?;
                let b = sb.start(&args, &ctx.logs).await?;
                let split = split_fanout(ctx, &[&a, &b], subs).await;
                a.stop().await;
                b.stop().await;
                Ok::<_, anyhow::Error>((split?, alone?))
            }
            .await;
            let _ = redis.start_kill();
            let _ = redis.wait().await;
            r
        }
        .await;
        match r {
            Ok((split, alone)) => {
                for (i, ((two, two_cpu), (one, one_cpu))) in split.into_iter().zip(alone).enumerate() {
                    metrics[2 * i].push(SWITCHBOARD, two, Some(two_cpu));
                    metrics[2 * i + 1].push(SWITCHBOARD, one, Some(one_cpu));
                }
            }
            Err(e) => {
                eprintln!("    failed: {e:#}");
                for m in &mut metrics {
                    m.mark(SWITCHBOARD, &format!("failed: {e:#}"));
                }
            }
        }
    }
    for m in &mut metrics {
        ctx.switchboard_only(m);
    }
    for i in [0, 2] {
        let (two, one) = (metrics[i].median(SWITCHBOARD), metrics[i + 1].median(SWITCHBOARD));
        metrics[i].goals.push(Goal {
            text: "≥ 0.8× the same load on one node".into(),
            met: two.zip(one).map(|(t, o)| t >= 0.8 * o),
            detail: two.zip(one).map_or("no value".into(), |(t, o)| format!("{:.2}×", t / o.max(1e-9))),
        });
        metrics[i].note = "100-byte payloads; 4 bursts in flight; the publisher on node A, half the subscribers on A, \
half on B (their deliveries cross Redis). CPU-µs/op: both servers' CPU time per delivery (Redis not included)."
            .into();
        metrics[i + 1].note =
            "The same subscribers and publisher on one server with the same `--redis`, in the same round."
                .into();
    }
    metrics
}

/// The fan-out of S8: `subs` subscribers split evenly over `servers` (workers per server), one
/// publisher on the first; bursts of 1, then of 10. Returns (deliveries/s, CPU-µs of all the
/// servers per delivery) per burst size.
async fn split_fanout(ctx: &Ctx, servers: &[&Running], subs: usize) -> anyhow::Result<Vec<(f64, f64)>> {
    let d = Dialect::Switchboard;
    let per = subs.div_ceil(servers.len());
    let mut specs = Vec::new();
    for (n, server) in servers.iter().enumerate() {
        let conns = per.min(subs - n * per);
        for mut spec in worker_specs(d, server.port, conns, 1, TopicPlan::One("t".into()), 0, None) {
            // Other users and other source addresses on each server.
            spec.first_conn += n * per;
            spec.first_src += n * 16;
            specs.push(spec);
        }
    }
    let mut workers = Workers::spawn(&ctx.exe, &specs, Duration::from_secs(180)).await?;
    if workers.failed > 0 {
        let e = format!("{} of {subs} connections failed: {}", workers.failed, workers.first_error);
        workers.stop().await;
        bail!(e);
    }
    let publisher = Publisher::connect(d, servers[0].port, "publisher", None).await?;
    let mut next = 1;
    let mut out = vec![];
    for b in [1u64, 10] {
        let plan = FanoutPlan {
            bursts: (ctx.sizes.fanout_deliveries / (subs as u64 * b)).clamp(20, 20_000),
            per_conn: b,
            window: FANOUT_WINDOW,
            limit: ctx.sizes.measure,
        };
        let cpu0: u64 = servers.iter().map(|s| s.cpu()).sum();
        let r =
            fanout(&mut workers, &publisher, servers[0], &mut next, &plan, |k| publish_frames(d, "t", b, k))
                .await;
        let cpu: u64 = servers.iter().map(|s| s.cpu()).sum::<u64>().saturating_sub(cpu0);
        match r {
            Ok(f) => {
                let per_op = cpu as f64 / f.deliveries.max(1) as f64;
                eprintln!(
                    "    {} node(s), burst {b}: {:.0} deliveries/s, p99 {:.0} µs, {per_op:.3} CPU-µs/delivery ({} deliveries)",
                    servers.len(),
                    f.rate,
                    f.p99_us,
                    f.deliveries
                );
                out.push((f.rate, per_op));
            }
            Err(e) => {
                drop(publisher);
                // How many subscribers the servers closed meanwhile (a gap closes them with 4000).
                let alive = workers.phase(next, 0, 1).await.map_or("?".to_owned(), |n| n.to_string());
                workers.stop().await;
                return Err(e.context(format!("burst {b}; {alive} of {subs} subscribers still connected")));
            }
        }
    }
    drop(publisher);
    workers.stop().await;
    Ok(out)
}

/// S9: a recovery storm: subscribers of one topic with history lose their server at once (it is
/// killed and started again on the same port, on the same Redis) and all reconnect and
/// resubscribe with `since`.
pub async fn s9(ctx: &Ctx) -> Vec<Metric> {
    let subs = ctx.sizes.s9_subscribers;
    let mut metrics = vec![
        Metric::new(
            "S9",
            &format!(
                "time until all {subs} subscribers recovered (server killed and restarted; reconnect, identify, ~sub with since)"
            ),
            "ms",
            false,
        ),
        Metric::new("S9", "server CPU per recovery (from the restart until the last one)", "µs", false),
        Metric::new(
            "S9",
            "subscribers not recovered: gave up, told recovered: false, or closed again after recovering (4002)",
            "connections",
            false,
        ),
    ];
    let Some(sb) = ctx.targets.get(SWITCHBOARD).cloned() else { return metrics };
    for round in 0..ctx.sizes.rounds {
        eprintln!("  S9 round {} · switchboard + redis, {subs} subscribers", round + 1);
        let r = async {
            let (mut redis, url) = redis().await?;
            let r = s9_round(ctx, &sb, &url, subs).await;
            let _ = redis.start_kill();
            let _ = redis.wait().await;
            r
        }
        .await;
        match r {
            Ok(values) => {
                for (i, v) in values.into_iter().enumerate() {
                    metrics[i].push(SWITCHBOARD, v, None);
                }
            }
            Err(e) => {
                eprintln!("    failed: {e:#}");
                for m in &mut metrics {
                    m.mark(SWITCHBOARD, &format!("failed: {e:#}"));
                }
            }
        }
    }
    for m in &mut metrics {
        ctx.switchboard_only(m);
    }
    let all = metrics[0].median(SWITCHBOARD);
    metrics[0].goals.push(Goal {
        text: "all recovered within 5 s".into(),
        met: all.map(|ms| ms <= 5000.0),
        detail: all.map_or("no value".into(), |ms| format!("{:.1} s", ms / 1000.0)),
    });
    metrics[0].note = format!(
        "{subs} subscribers of one topic (history 100, on Redis) each received 10 publications; the server is killed \
(SIGKILL) and started again on the same port; each connection retries every 100–300 ms and resubscribes with the \
epoch and seq it saw; 10 publications are made right after the restart (recovered by those that come back later). \
Time from the kill to the last `recovered` reply, including the server's start."
    );
    let lost = metrics[2].median(SWITCHBOARD);
    metrics[2].goals.push(Goal {
        text: "no 4002s (every subscriber recovered once)".into(),
        met: lost.map(|n| n == 0.0),
        detail: lost.map_or("no value".into(), |n| format!("{n:.0}")),
    });
    metrics
}

/// One S9 round: (ms until all recovered, server CPU-µs per recovery, not recovered).
async fn s9_round(ctx: &Ctx, sb: &Target, url: &str, subs: usize) -> anyhow::Result<Vec<f64>> {
    let d = Dialect::Switchboard;
    let args: Vec<String> = ["--redis", url, "--history", "100"].iter().map(|a| (*a).to_owned()).collect();
    let server = sb.start(&args, &ctx.logs).await?;
    let port = server.port;
    let mut specs = worker_specs(d, port, subs, 1, TopicPlan::One("h".into()), 0, None);
    for spec in &mut specs {
        spec.recover = true;
    }
    let mut workers = match Workers::spawn(&ctx.exe, &specs, Duration::from_secs(180)).await {
        Ok(w) => w,
        Err(e) => {
            server.stop().await;
            return Err(e);
        }
    };
    let r = async {
        if workers.failed > 0 {
            bail!("{} of {subs} connections failed: {}", workers.failed, workers.first_error);
        }
        // Every subscriber has a position: 10 publications, all delivered.
        let publisher = Publisher::connect(d, port, "publisher", None).await?;
        let plan = FanoutPlan { bursts: 1, per_conn: 10, window: 1, limit: Duration::from_secs(30) };
        let mut next = 1;
        fanout(&mut workers, &publisher, &server, &mut next, &plan, |k| publish_frames(d, "h", 10, k))
            .await?;
        drop(publisher);
        Ok(())
    }
    .await;
    let t0 = crate::clock::unix_ns();
    server.stop().await;
    if let Err(e) = r {
        workers.stop().await;
        return Err(e);
    }
    let env = vec![("PORT".to_owned(), port.to_string())];
    let server = match sb.start_with_env(&args, &env, &ctx.logs).await {
        Ok(s) if s.port == port => s,
        Ok(s) => {
            s.stop().await;
            workers.stop().await;
            bail!("the server came back on another port");
        }
        Err(e) => {
            workers.stop().await;
            return Err(e.context("restart"));
        }
    };
    let cpu0 = server.cpu();
    let r = async {
        let publisher = Publisher::connect(d, port, "publisher", None).await?;
        publisher.send_all(publish_frames(d, "h", 10, 2)).await?;
        let (mut recovered, mut refused, mut last_ns) = (0usize, 0usize, t0);
        while recovered + refused < subs {
            let Some((_, line)) = workers.next_line(&["recovered", "unrecovered"], Duration::from_secs(90)).await
            else {
                bail!("{recovered} of {subs} recovered after 90 s");
            };
            let mut words = line.split_whitespace();
            match (words.next(), words.next().and_then(|t| t.parse::<u64>().ok()), words.next()) {
                (Some("recovered"), Some(ns), Some("1")) => {
                    recovered += 1;
                    last_ns = last_ns.max(ns);
                }
                (Some("recovered"), Some(ns), _) => {
                    refused += 1;
                    last_ns = last_ns.max(ns);
                }
                _ => refused += 1,
            }
        }
        let cpu = server.cpu().saturating_sub(cpu0);
        // Connections closed again (a 4002 under the storm) recover a second time.
        let mut again = 0usize;
        while workers.next_line(&["recovered", "unrecovered"], Duration::from_secs(2)).await.is_some() {
            again += 1;
        }
        drop(publisher);
        let ms = last_ns.saturating_sub(t0) as f64 / 1e6;
        eprintln!(
            "    all {subs} back in {ms:.0} ms ({recovered} recovered, {refused} not, {again} closed again); {:.0} CPU-µs per recovery",
            cpu as f64 / subs as f64
        );
        Ok(vec![ms, cpu as f64 / subs as f64, (refused + again) as f64])
    }
    .await;
    server.stop().await;
    workers.stop().await;
    r
}

/// S11 (issue #20): publications from the standalone server's PostgreSQL outbox to WebSocket
/// subscribers ([`crate::outbox`]): the drain rate of a backlog, and commit → delivery latency at
/// a steady insert rate. Switchboard only (the peers have no outbox).
#[allow(clippy::cast_precision_loss)]
pub async fn s11(ctx: &Ctx) -> Vec<Metric> {
    let s = &ctx.sizes.s11;
    let each = format!("{} subscribers on {} topics", s.subscribers, s.topics);
    let at =
        format!("{} rows/s ({} rows per insert, {} connections)", s.rate, s.rows_per_insert, s.inserters);
    let mut metrics = vec![
        Metric::new(
            "S11",
            &format!("publications/s from the PostgreSQL outbox, backlog of {} rows, {each}", s.rows),
            "publications/s",
            true,
        ),
        Metric::new("S11", &format!("commit → delivery p50 at {at}, {each}"), "µs", false),
        Metric::new("S11", &format!("commit → delivery p99 at {at}, {each}"), "µs", false),
    ];
    for round in 0..ctx.sizes.rounds {
        eprintln!("  S11 round {} · switchboard + postgresql", round + 1);
        match crate::outbox::run(&ctx.server, s, &ctx.logs).await {
            Ok(f) => {
                metrics[0].push(SWITCHBOARD, f.drain_per_s, Some(f.drain_cpu_us));
                metrics[0].push_detail("deliveries/s", SWITCHBOARD, f.drain_deliveries_per_s);
                metrics[0].push_detail("rows left", SWITCHBOARD, f.left as f64);
                for (m, v) in [(1, f.p50_us), (2, f.p99_us)] {
                    metrics[m].push(SWITCHBOARD, v, Some(f.latency_cpu_us));
                    metrics[m].push_detail("rows/s inserted", SWITCHBOARD, f.inserted_per_s);
                    metrics[m].push_detail("p99.9 µs", SWITCHBOARD, f.p999_us);
                    metrics[m].push_detail("max µs", SWITCHBOARD, f.max_us);
                    metrics[m].push_detail("deliveries", SWITCHBOARD, f.deliveries as f64);
                }
            }
            Err(e) => {
                eprintln!("    failed: {e:#}");
                for m in &mut metrics {
                    m.mark(SWITCHBOARD, &format!("failed: {e:#}"));
                }
            }
        }
    }
    for m in &mut metrics {
        ctx.switchboard_only(m);
    }
    let rate = metrics[0].median(SWITCHBOARD);
    let detail = rate.map_or_else(|| metrics[0].why(SWITCHBOARD), |r| format!("{r:.0}/s"));
    metrics[0].goals.push(Goal {
        text: "≥ 10,000 publications/s".into(),
        met: rate.map(|r| r >= 10_000.0),
        detail,
    });
    metrics[0].note = format!(
        "The `switchboard` binary with `[outbox.postgres]` (batch {}, history {} per topic) on a PostgreSQL \
         cluster of the bench's own (fsync off: the figures are Switchboard's, not the disk's). The bench holds \
         the consumer's advisory lock while it inserts the backlog in one statement, then releases it; the rate is \
         rows / (last delivery − first delivery). CPU-µs/op: the server's CPU time per publication (PostgreSQL not \
         included).",
        s.batch, s.history
    );
    let p99 = metrics[2].median(SWITCHBOARD);
    let detail = p99.map_or_else(|| metrics[2].why(SWITCHBOARD), |p| format!("{:.2} ms", p / 1000.0));
    metrics[2].goals.push(Goal {
        text: format!("p99 < 50 ms at {} rows/s", s.rate),
        met: p99.map(|p| p < 50_000.0),
        detail,
    });
    metrics[2].note =
        "Each row carries the time its INSERT was sent; a delivery's latency is its arrival at the \
         subscriber minus that time, so it includes the insert and its commit (each statement is its own \
         transaction). Every delivery of the phase is counted."
            .into();
    metrics
}
