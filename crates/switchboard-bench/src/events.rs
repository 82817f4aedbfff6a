//! S10 (issue #20): connect/disconnect churn with lifecycle events on, delivered by the
//! standalone server (`switchboard`, `[events]`) as signed webhook batches to a local backend
//! run by the bench itself (a minimal HTTP/1.1 receiver that counts the events and how old
//! they are when they arrive).
//!
//! Per round, two fresh servers in turn, the same churn: events off, then events on. Each
//! connection is a new user (so 4 events each: `user_online`, `connect`, `disconnect`,
//! `user_offline`), opened at a fixed rate (open loop), identified with an HS256 JWT, closed by
//! the client once welcomed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::client::{self, ConnectOptions, Dialect};
use crate::jwt;
use crate::report::{Goal, Metric, SWITCHBOARD};
use crate::scenarios::Ctx;
use crate::targets::{Program, Running, Target};

/// The HS256 secret of S10's tokens (the standalone server wants at least 32 bytes).
const SECRET: &str = "switchboard-bench-s10-secret-of-32-bytes-at-least";
/// The webhook's signing secret.
const EVENTS_SECRET: &str = "switchboard-bench-s10-webhook-secret-0123456789";

/// What the local backend saw.
#[derive(Default)]
struct Seen {
    events: AtomicU64,
    requests: AtomicU64,
    /// Event age on arrival (ms, `ts` → received).
    delay_ms: StdMutex<Vec<u64>>,
}

fn now_ms() -> u64 {
    u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(0)
}

/// The local backend: answers every POST 200 after reading it; counts `"ts":` occurrences
/// (one per event) and records each event's age. Returns its port.
async fn backend(seen: Arc<Seen>) -> anyhow::Result<(u16, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let _ = serve(stream, &seen).await;
            });
        }
    });
    Ok((port, task))
}

async fn serve(stream: tokio::net::TcpStream, seen: &Seen) -> anyhow::Result<()> {
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((name, value)) = l.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().context("content-length")?;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await?;
        let received = now_ms();
        let text = String::from_utf8_lossy(&body);
        let mut n = 0;
        let mut ages = Vec::new();
        for part in text.split("\"ts\":").skip(1) {
            n += 1;
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(ts) = digits.parse::<u64>() {
                ages.push(received.saturating_sub(ts));
            }
        }
        seen.delay_ms.lock().expect("not poisoned").extend(ages);
        seen.events.fetch_add(n, Ordering::Relaxed);
        seen.requests.fetch_add(1, Ordering::Relaxed);
        reader.get_mut().write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await?;
    }
}

/// The standalone server: next to the bench binary (`cargo build [--release] -p
/// switchboard-server`).
fn standalone(ctx: &Ctx) -> anyhow::Result<PathBuf> {
    let path = ctx.exe.with_file_name("switchboard");
    if !path.exists() {
        bail!("no standalone server at {} (cargo build -p switchboard-server, same profile)", path.display());
    }
    Ok(path)
}

/// Starts the standalone server with events to `events` (a port) or without.
async fn start(ctx: &Ctx, exe: &Path, events: Option<u16>, tag: &str) -> anyhow::Result<Running> {
    let mut toml = format!(
        "log_format = \"text\"\n[shutdown]\ndrain_delay_ms = 0\n[jwt]\nalgorithm = \"HS256\"\nsecret = \"{SECRET}\"\n\
         [namespaces.main]\nidentify = \"jwt\"\n\
         [http]\nmax_connections_per_address = 0\nnew_connections_per_address = {{ per_second = 0 }}\n"
    );
    if let Some(port) = events {
        toml.push_str(&format!(
            "[events]\nurl = \"http://127.0.0.1:{port}/events\"\nsecret = \"{EVENTS_SECRET}\"\n"
        ));
    }
    std::fs::create_dir_all(&ctx.logs)?;
    let file = ctx.logs.join(format!("s10-{tag}-{}.toml", std::process::id()));
    std::fs::write(&file, toml)?;
    let target = Target {
        name: format!("switchboard-server-{tag}"),
        dialect: Dialect::Switchboard,
        program: Program::Exe(
            exe.to_owned(),
            vec!["--listen".into(), "127.0.0.1:0".into(), "--config".into(), file.display().to_string()],
        ),
    };
    target.start_with_env(&[], &[("RUST_LOG".into(), "warn".into())], &ctx.logs).await
}

/// One churn: `n` connections opened at `rate`/s (new users `{tag}{i}`), each closed once
/// welcomed. Returns the connect latencies (µs) and how long the opening took.
async fn churn(
    port: u16,
    n: usize,
    rate: u64,
    tag: &str,
    first_src: usize,
) -> anyhow::Result<(Histogram<u64>, f64)> {
    let tokens: Vec<String> = (0..n).map(|i| jwt::token(SECRET, &format!("{tag}{i}"))).collect();
    let hist = Arc::new(StdMutex::new(Histogram::<u64>::new(3).expect("3 digits")));
    let failed = Arc::new(StdMutex::new(None::<String>));
    let period = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, token) in tokens.into_iter().enumerate() {
        ticks.tick().await;
        let (hist, failed) = (hist.clone(), failed.clone());
        let opts = ConnectOptions::new(client::source(first_src + i % 50), Some(token), None);
        tasks.spawn(async move {
            let t0 = Instant::now();
            match client::connect(Dialect::Switchboard, port, &opts).await {
                Ok(mut ws) => {
                    let us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
                    let _ = hist.lock().expect("not poisoned").record(us.max(1));
                    let _ = ws.close(None).await;
                    let _ = tokio::time::timeout(Duration::from_secs(5), async {
                        use futures_util::StreamExt;
                        while let Some(Ok(_)) = ws.next().await {}
                    })
                    .await;
                }
                Err(e) => {
                    failed.lock().expect("not poisoned").get_or_insert_with(|| format!("{e:#}"));
                }
            }
        });
    }
    let opened = started.elapsed().as_secs_f64();
    while tasks.join_next().await.is_some() {}
    if let Some(e) = failed.lock().expect("not poisoned").take() {
        bail!("a connection failed: {e}");
    }
    let hist = hist.lock().expect("not poisoned").clone();
    Ok((hist, opened))
}

/// One round's figures.
struct Round {
    rate: f64,
    p99_on: f64,
    p99_off: f64,
    cpu_per_event: f64,
    added_cpu_per_event: f64,
    delay_p99_ms: f64,
}

async fn round(ctx: &Ctx, exe: &Path, round: usize) -> anyhow::Result<Round> {
    let (rate, n) = (ctx.sizes.s10_rate, ctx.sizes.s10_conns);
    let first_src = 10 + (round % 3) * 60;
    // Events off.
    let off = start(ctx, exe, None, "off").await?;
    let cpu0 = off.cpu();
    let result = churn(off.port, n, rate, "off", first_src).await;
    let cpu_off = off.cpu().saturating_sub(cpu0) as f64;
    off.stop().await;
    let (hist_off, _) = result?;
    // Events on.
    let seen = Arc::new(Seen::default());
    let (port, backend_task) = backend(seen.clone()).await?;
    let on = start(ctx, exe, Some(port), "on").await?;
    let expected = 4 * n as u64;
    let cpu0 = on.cpu();
    let t0 = Instant::now();
    let result = churn(on.port, n, rate, "on", first_src + 3).await;
    // Until every event arrived (bounded).
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.events.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu_on = on.cpu().saturating_sub(cpu0) as f64;
    on.stop().await;
    backend_task.abort();
    let (hist_on, _) = result?;
    let events = seen.events.load(Ordering::Relaxed);
    if events < expected {
        bail!("{events} of {expected} events delivered within 60 s");
    }
    let mut delays = std::mem::take(&mut *seen.delay_ms.lock().expect("not poisoned"));
    delays.sort_unstable();
    let delay_p99_ms = delays.get(delays.len().saturating_sub(1) * 99 / 100).copied().unwrap_or(0) as f64;
    let r = Round {
        rate: events as f64 / elapsed,
        p99_on: hist_on.value_at_quantile(0.99) as f64,
        p99_off: hist_off.value_at_quantile(0.99) as f64,
        cpu_per_event: cpu_on / events as f64,
        added_cpu_per_event: (cpu_on - cpu_off).max(0.0) / events as f64,
        delay_p99_ms,
    };
    eprintln!(
        "    {:.0} events/s delivered ({events} in {elapsed:.2} s, {} requests), connect p99 {:.0} µs on, {:.0} µs off, \
         {:.1} CPU-µs/event ({:.1} added), delay p99 {delay_p99_ms:.0} ms",
        r.rate,
        seen.requests.load(Ordering::Relaxed),
        r.p99_on,
        r.p99_off,
        r.cpu_per_event,
        r.added_cpu_per_event
    );
    Ok(r)
}

/// S10: see the module's documentation.
pub async fn s10(ctx: &Ctx) -> Vec<Metric> {
    let (rate, n) = (ctx.sizes.s10_rate, ctx.sizes.s10_conns);
    let mut metrics = vec![
        Metric::new(
            "S10",
            &format!(
                "lifecycle events/s delivered to a local backend, churn of {rate} connections/s ({n} connections, 4 events each)"
            ),
            "events/s",
            true,
        ),
        Metric::new(
            "S10",
            "connect p99 with events on (connect + upgrade + ~hello until its ~ok)",
            "µs",
            false,
        ),
        Metric::new("S10", "added p99 to connect (events on − off)", "µs", false),
        Metric::new(
            "S10",
            "server CPU per event added by events ((CPU on − CPU off) / events)",
            "CPU-µs",
            false,
        ),
        Metric::new("S10", "event age on arrival at the backend, p99 (ts → received)", "ms", false),
    ];
    let exe = match standalone(ctx) {
        Ok(p) => p,
        Err(e) => {
            for m in &mut metrics {
                m.mark(SWITCHBOARD, &format!("failed: {e:#}"));
                ctx.switchboard_only(m);
            }
            return metrics;
        }
    };
    for r in 0..ctx.sizes.rounds {
        eprintln!("  S10 round {} · standalone server, events off then on", r + 1);
        match tokio::time::timeout(Duration::from_secs(300), round(ctx, &exe, r)).await {
            Ok(Ok(x)) => {
                metrics[0].push(SWITCHBOARD, x.rate, Some(x.cpu_per_event));
                metrics[1].push(SWITCHBOARD, x.p99_on, None);
                metrics[1].push_detail("p99 events off (µs)", SWITCHBOARD, x.p99_off);
                metrics[2].push(SWITCHBOARD, x.p99_on - x.p99_off, None);
                metrics[3].push(SWITCHBOARD, x.added_cpu_per_event, None);
                metrics[4].push(SWITCHBOARD, x.delay_p99_ms, None);
            }
            outcome => {
                let e = match outcome {
                    Ok(Err(e)) => format!("{e:#}"),
                    _ => "did not end within 300 s".to_owned(),
                };
                eprintln!("    failed: {e}");
                for m in &mut metrics {
                    m.mark(SWITCHBOARD, &format!("failed: {e}"));
                }
            }
        }
    }
    for m in &mut metrics {
        ctx.switchboard_only(m);
    }
    let delivered = metrics[0].median(SWITCHBOARD);
    metrics[0].goals.push(Goal {
        text: format!(
            "the events of a {rate} connections/s churn delivered as fast (≥ 90 % of {} events/s)",
            4 * rate
        ),
        met: delivered.map(|d| d >= 4.0 * rate as f64 * 0.9),
        detail: delivered.map_or("no value".into(), |d| format!("{d:.0} events/s")),
    });
    metrics[0].note = "The standalone server (`switchboard`, in memory) with `[events]` posting to a minimal HTTP/1.1 \
receiver in the bench process (answers 200, does not verify signatures); default batching (100 events or 20 ms). \
Events/s = events received / time from the first connection to the last event received. CPU-µs/op: the server's \
whole CPU time per event delivered (connections included); the added CPU per event is the next metric but two."
        .into();
    metrics
}
