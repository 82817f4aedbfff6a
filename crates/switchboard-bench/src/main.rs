//! `switchboard-bench`: runs the scenarios of issue #7 against Switchboard, the reference server and
//! the installed peers, prints one JSON line per scenario and metric, and can rewrite
//! `docs/benchmarks.md` with its chart.
//!
//! ```text
//! switchboard-bench [--quick] [--rounds N] [--targets a,b] [--doc docs/benchmarks.md]
//!                   [s1 … s9 | s1tls s2tls s4tls | s10 | s11 | s12 | all]
//! ```
//!
//! `s1tls`, `s2tls` and `s4tls` are S1, S2 and S4 over TLS (`wss://`, issue #17) against
//! Switchboard, the reference and Bun, with certificates made for the run. `s10` is the
//! lifecycle events' churn of issue #20 (the standalone server `switchboard` next to this
//! binary, `[events]` to a local backend).
//!
//! `s8` is a fan-out across two nodes on one Redis, `s9` a recovery storm (issue #18), against
//! Switchboard only.
//!
//! `s11` drains the PostgreSQL outbox of the standalone server to subscribers (issue #20).
//!
//! `scripts/bench.sh` builds the binaries (with the standalone server `switchboard` for S10 and
//! S11), installs the peers and calls this. The hidden
//! subcommand `worker` is how the bench runs its connection-holding processes.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use switchboard_bench::report::Metric;
use switchboard_bench::scenarios::{self, Ctx, Sizes};
use switchboard_bench::targets::Targets;
use switchboard_bench::{doc, procfs, svg, worker};

#[derive(Parser)]
#[command(
    about = "Switchboard benchmarks (issue #7): S1–S7 against the reference and the peers, S1/S2/S4 over TLS, S8/S9 (cluster), S10/S11 (backend integration), S12 (abuse)"
)]
struct Args {
    /// Scenarios: s1 … s9, s1tls, s2tls, s4tls (S1, S2, S4 over TLS), s10 (lifecycle events),
    /// s11 (the outbox), s12 (under abuse), or all.
    #[arg(default_value = "all")]
    scenarios: Vec<String>,
    /// Smaller sizes and shorter measurements (the whole run under 5 minutes).
    #[arg(long)]
    quick: bool,
    /// Rounds per measurement (default 3).
    #[arg(long)]
    rounds: Option<usize>,
    /// Only these targets (comma-separated: switchboard,reference,ws,socketio,bun,socketioxide,wse).
    #[arg(long, value_delimiter = ',')]
    targets: Option<Vec<String>>,
    /// Peer manifest written by scripts/install-peers.sh.
    #[arg(long, default_value = "bench/peers/manifest.tsv")]
    manifest: PathBuf,
    /// Rewrite this Markdown document (and its chart, same name with .svg).
    #[arg(long)]
    doc: Option<PathBuf>,
    /// Also write every metric (all rounds) as JSON here.
    #[arg(long)]
    results: Option<PathBuf>,
    /// The command line to print in the document.
    #[arg(long)]
    command: Option<String>,
    /// Server logs go here.
    #[arg(long, default_value = "target/bench-logs")]
    logs: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("worker") {
        return worker::main(argv.get(2).map_or("", String::as_str));
    }
    let args = Args::parse();
    let nofile = procfs::raise_nofile();
    eprintln!("open files limit: {nofile}");
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(async {
        // On Ctrl-C or SIGTERM the run is dropped, and with it every server and worker process
        // it started (they are killed on drop): nothing is left listening.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = run(args) => r,
            _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
            _ = term.recv() => anyhow::bail!("terminated"),
        }
    })
}

async fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let exe = std::env::current_exe()?;
    let bin_dir = exe.parent().context("exe dir")?.to_owned();
    let mut sizes = if args.quick { Sizes::quick() } else { Sizes::full() };
    if let Some(r) = args.rounds {
        sizes.rounds = r.max(1);
    }
    let targets = Targets::discover(&bin_dir, &args.manifest, args.targets.as_deref());
    for (p, why) in &targets.missing {
        eprintln!("peer {p}: {why}");
    }
    let server = bin_dir.join("switchboard");
    let ctx = Ctx { targets, exe, server, logs: args.logs.clone(), sizes };
    let want = |s: &str| args.scenarios.iter().any(|x| x.eq_ignore_ascii_case(s) || x == "all");
    let peers = ctx.peer_names();
    let mut metrics: Vec<Metric> = Vec::new();
    let emit = |ms: Vec<Metric>, metrics: &mut Vec<Metric>| {
        for m in &ms {
            println!("{}", m.json_line(&peers));
        }
        metrics.extend(ms);
    };
    type Scenario =
        for<'a> fn(&'a Ctx) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<Metric>> + 'a>>;
    let all: [(&str, Scenario); 15] = [
        ("s1", |c| Box::pin(scenarios::s1(c))),
        ("s2", |c| Box::pin(scenarios::s2(c))),
        ("s3", |c| Box::pin(scenarios::s3(c))),
        ("s4", |c| Box::pin(scenarios::s4(c))),
        ("s5", |c| Box::pin(scenarios::s5(c))),
        ("s6", |c| Box::pin(scenarios::s6(c))),
        ("s7", |c| Box::pin(scenarios::s7(c))),
        ("s8", |c| Box::pin(scenarios::s8(c))),
        ("s9", |c| Box::pin(scenarios::s9(c))),
        ("s1tls", |c| Box::pin(scenarios::s1_tls(c))),
        ("s2tls", |c| Box::pin(scenarios::s2_tls(c))),
        ("s4tls", |c| Box::pin(scenarios::s4_tls(c))),
        ("s10", |c| Box::pin(switchboard_bench::events::s10(c))),
        ("s11", |c| Box::pin(scenarios::s11(c))),
        ("s12", |c| Box::pin(scenarios::s12(c))),
    ];
    for s in &args.scenarios {
        if s != "all" && !all.iter().any(|(name, _)| s.eq_ignore_ascii_case(name)) {
            let names: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
            anyhow::bail!("unknown scenario `{s}` (known: {}, all)", names.join(", "));
        }
    }
    for (name, f) in all {
        if want(name) {
            eprintln!(
                "== {} ({:.1} min so far)",
                name.to_uppercase(),
                started.elapsed().as_secs_f64() / 60.0
            );
            let ms = f(&ctx).await;
            emit(ms, &mut metrics);
        }
    }
    let mut names: Vec<String> = ctx.targets.all.iter().map(|t| t.name.clone()).collect();
    for (p, _) in &ctx.targets.missing {
        names.push(p.clone());
    }
    if let Some(path) = &args.results {
        std::fs::write(path, serde_json::to_string_pretty(&metrics)?)?;
    }
    if let Some(path) = &args.doc {
        let chart = path.with_extension("svg");
        std::fs::write(&chart, svg::chart(&metrics, &names))?;
        let info = doc::RunInfo {
            command: args.command.clone().unwrap_or_else(|| std::env::args().collect::<Vec<_>>().join(" ")),
            quick: args.quick,
            rounds: ctx.sizes.rounds,
            minutes: started.elapsed().as_secs_f64() / 60.0,
            chart: chart.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
            missing: ctx.targets.missing.clone(),
        };
        std::fs::write(path, doc::render(&metrics, &names, &info))?;
        eprintln!("wrote {} and {}", path.display(), chart.display());
    }
    eprintln!("done in {:.1} min", started.elapsed().as_secs_f64() / 60.0);
    Ok(())
}
