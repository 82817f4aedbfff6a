//! `bench-outbox`: scenario S11 of docs/benchmarks.md on its own, with sizes of your choosing —
//! publications from the PostgreSQL outbox (`[outbox.postgres]` of the standalone server,
//! docs/outbox.md) to WebSocket subscribers. `switchboard-bench s11` runs the same measurement
//! ([`switchboard_bench::outbox::run`]) in rounds and writes it into the document.
//!
//! ```text
//! cargo build --release -p switchboard-server -p switchboard-bench --bin switchboard --bin bench-outbox
//! target/release/bench-outbox [--subscribers 1000] [--topics 100] [--rows 100000] [--rate 10000] [--seconds 10]
//! ```

use std::path::PathBuf;

use clap::Parser;
use serde_json::json;
use switchboard_bench::outbox::{Settings, run};

#[derive(Parser, Clone)]
#[command(about = "S11: publications from the PostgreSQL outbox to WebSocket subscribers")]
struct Args {
    /// The `switchboard` binary [default: next to this one].
    #[arg(long)]
    server: Option<PathBuf>,
    /// WebSocket subscribers.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Topics (`bench/K`); each subscriber subscribes to one, round robin.
    #[arg(long, default_value_t = 100)]
    topics: usize,
    /// Rows of the drain phase.
    #[arg(long, default_value_t = 100_000)]
    rows: usize,
    /// Rows per second of the latency phase.
    #[arg(long, default_value_t = 10_000)]
    rate: usize,
    /// Length of the latency phase, seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Connections inserting in the latency phase.
    #[arg(long, default_value_t = 4)]
    inserters: usize,
    /// Rows per INSERT statement (one transaction) in the latency phase.
    #[arg(long, default_value_t = 10)]
    rows_per_insert: usize,
    /// `[outbox.postgres] batch`.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// History kept per topic (0: none).
    #[arg(long, default_value_t = 100)]
    history: usize,
    /// The server's log goes here.
    #[arg(long, default_value = "target/bench-logs")]
    logs: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    switchboard_bench::procfs::raise_nofile();
    let server = match &args.server {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("switchboard"),
    };
    let settings = Settings {
        subscribers: args.subscribers,
        topics: args.topics,
        rows: args.rows,
        rate: args.rate,
        seconds: args.seconds,
        inserters: args.inserters,
        rows_per_insert: args.rows_per_insert,
        batch: args.batch,
        history: args.history,
    };
    let f = run(&server, &settings, &args.logs).await?;
    println!(
        "S11 drain: {} rows, {:.0} publications/s ({:.0} deliveries/s), server CPU {:.1} µs/publication, rows left {}",
        args.rows, f.drain_per_s, f.drain_deliveries_per_s, f.drain_cpu_us, f.left
    );
    println!(
        "S11 latency: {:.0} rows/s inserted (asked {}), {} deliveries: commit→delivery p50 {:.2} ms, p99 {:.2} ms, \
         p99.9 {:.2} ms, max {:.2} ms; server CPU {:.1} µs/publication",
        f.inserted_per_s,
        args.rate,
        f.deliveries,
        f.p50_us / 1000.0,
        f.p99_us / 1000.0,
        f.p999_us / 1000.0,
        f.max_us / 1000.0,
        f.latency_cpu_us
    );
    println!(
        "{}",
        json!({"scenario": "S11", "metric": "publications/s (drain)", "switchboard": f.drain_per_s.round()})
    );
    println!(
        "{}",
        json!({"scenario": "S11", "metric": "commit → delivery p99", "switchboard": f.p99_us, "unit": "µs"})
    );
    println!("machine: {}", switchboard_bench::doc::machine());
    Ok(())
}
