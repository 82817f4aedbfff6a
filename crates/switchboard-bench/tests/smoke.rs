//! A short smoke run over real sockets: S2 with tiny sizes against `bench-reference` and
//! `bench-switchboard`, and an S1 fan-out with a worker process; then S1, S2 and S4 over TLS
//! (certificates made by the scenario, servers given them by env, workers and the bench's own
//! connections trusting their CA); S8 (two servers on a real `redis-server`) and S9 (a
//! recovery storm: the server killed and restarted, every subscriber back with `since`); S10,
//! S11 and S12 (the standalone server's lifecycle events and PostgreSQL outbox: they need the
//! `switchboard` binary, built by `cargo build -p switchboard-server` or named by
//! `SWITCHBOARD_SERVER`, and PostgreSQL, as scripts/test.sh installs it). No timing assertions:
//! this only checks that every dialect path works end to end and that values come out.

use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use switchboard_bench::client::Dialect;
use switchboard_bench::report::{REFERENCE, SWITCHBOARD};
use switchboard_bench::scenarios::{self, Ctx, Sizes};
use switchboard_bench::targets::{Program, Target, Targets};

fn ctx() -> Ctx {
    ctx_with(&[])
}

/// The context, `bench-switchboard` started with `switchboard_args`.
fn ctx_with(switchboard_args: &[&str]) -> Ctx {
    let exe = |name: &str| {
        PathBuf::from(match name {
            "bench-reference" => env!("CARGO_BIN_EXE_bench-reference"),
            "bench-switchboard" => env!("CARGO_BIN_EXE_bench-switchboard"),
            _ => env!("CARGO_BIN_EXE_switchboard-bench"),
        })
    };
    let targets = Targets {
        all: vec![
            Target {
                name: SWITCHBOARD.into(),
                dialect: Dialect::Switchboard,
                program: Program::Exe(
                    exe("bench-switchboard"),
                    switchboard_args.iter().map(|a| (*a).to_owned()).collect(),
                ),
            },
            Target {
                name: REFERENCE.into(),
                dialect: Dialect::Plain,
                program: Program::Exe(exe("bench-reference"), vec![]),
            },
        ],
        missing: vec![("ws".into(), "not installed (test)".into())],
    };
    let mut sizes = Sizes::smoke();
    sizes.measure = Duration::from_millis(300);
    // The standalone server is another crate's binary: next to ours in the same target directory.
    let server = std::env::var_os("SWITCHBOARD_SERVER")
        .map_or_else(|| exe("switchboard-bench").with_file_name("switchboard"), PathBuf::from);
    Ctx {
        targets,
        exe: exe("switchboard-bench"),
        server,
        // One folder per test: the TLS scenarios write their certificates there.
        logs: std::env::temp_dir().join(format!(
            "switchboard-bench-test-logs-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, SeqCst)
        )),
        sizes,
    }
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Every metric has a value for both bench servers, `ws` is "not installed" (the test's
/// missing peer), and the notes say what the TLS handshakes settled.
fn assert_tls_metrics(metrics: &[switchboard_bench::report::Metric], scenario: &str) {
    assert!(!metrics.is_empty());
    for m in metrics {
        assert_eq!(m.scenario, scenario);
        assert!(m.median(SWITCHBOARD).is_some_and(|v| v > 0.0), "{}: {:?}", m.metric, m.missing);
        assert!(m.median(REFERENCE).is_some_and(|v| v > 0.0), "{}: {:?}", m.metric, m.missing);
        assert_eq!(m.why("ws"), "not installed (test)");
    }
    let notes: String = metrics.iter().map(|m| m.note.as_str()).collect();
    assert!(notes.contains("reference `TLSv1_3 "), "{notes}");
    assert!(notes.contains("switchboard `TLSv1_3 "), "{notes}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_runs_against_reference_and_switchboard() {
    let ctx = ctx();
    let metrics = scenarios::s2(&ctx).await;
    assert_eq!(metrics.len(), 3);
    for m in &metrics {
        assert!(m.median(SWITCHBOARD).is_some_and(|v| v > 0.0), "{}: {:?}", m.metric, m.missing);
        assert!(m.median(REFERENCE).is_some_and(|v| v > 0.0), "{}: {:?}", m.metric, m.missing);
        assert_eq!(m.why("ws"), "not installed (test)");
        let line: serde_json::Value = serde_json::from_str(&m.json_line(&["ws".into()])).unwrap();
        assert!(line["ratio"].is_number());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s1_fan_out_through_worker_processes() {
    let ctx = ctx();
    let metrics = scenarios::s1(&ctx).await;
    // deliveries/s and p99 for bursts of 1 and 10, for 20 subscribers.
    assert_eq!(metrics.len(), 4);
    for m in &metrics {
        assert!(m.median(SWITCHBOARD).is_some(), "{}: {:?}", m.metric, m.missing);
        assert!(m.median(REFERENCE).is_some(), "{}: {:?}", m.metric, m.missing);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s1_tls_fan_out_through_worker_processes_over_tls() {
    let ctx = ctx();
    let metrics = scenarios::s1_tls(&ctx).await;
    assert_eq!(metrics.len(), 4);
    assert_tls_metrics(&metrics, "S1-TLS");
    // The goals of issue #17 are encoded (verdicts depend on the machine).
    let goals: Vec<&str> = metrics[0].goals.iter().map(|g| g.text.as_str()).collect();
    assert_eq!(goals, ["switchboard ≥ 0.85× reference", "switchboard ≥ 1× bun"]);
    assert!(metrics[0].goals[0].met.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_tls_runs_with_either_tls_stack_of_bench_switchboard() {
    for stack in ["accept", "router"] {
        let ctx = ctx_with(&["--tls-stack", stack]);
        let metrics = scenarios::s2_tls(&ctx).await;
        assert_eq!(metrics.len(), 3, "{stack}");
        assert_tls_metrics(&metrics, "S2-TLS");
        assert!(metrics.iter().all(|m| m.goals.is_empty()), "{stack}: issue #17 sets no S2 goal");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s4_tls_counts_full_handshakes() {
    let ctx = ctx();
    let metrics = scenarios::s4_tls(&ctx).await;
    assert_eq!(metrics.len(), 1);
    assert_tls_metrics(&metrics, "S4-TLS");
    assert_eq!(metrics[0].goals.len(), 1);
    assert_eq!(metrics[0].goals[0].text, "switchboard ≥ 0.8× reference");
    assert!(metrics[0].goals[0].met.is_some());
    // The load generator's CPU per connection is a column of its own.
    assert_eq!(metrics[0].details[0].0, "load generator CPU-µs/op");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s12_runs_under_abuse_and_with_rate_limits_on() {
    let ctx = ctx();
    let metrics = scenarios::s12(&ctx).await;
    // Alone, under abuse, RSS growth; S2 off/on; S1 burst 1 off/on, burst 10 off/on.
    assert_eq!(metrics.len(), 9);
    for m in &metrics {
        assert!(m.median(SWITCHBOARD).is_some(), "{}: {:?}", m.metric, m.missing);
        assert_eq!(m.why(REFERENCE), "n/a");
    }
}

/// S10 with tiny sizes: the standalone server (built next to this test's binaries by `cargo
/// build -p switchboard-server`, as `scripts/test.sh` does) delivers every lifecycle event of a
/// short churn to the bench's local backend, events off and on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s10_delivers_every_lifecycle_event_of_a_churn() {
    let ctx = ctx();
    let metrics = switchboard_bench::events::s10(&ctx).await;
    assert_eq!(metrics.len(), 5);
    for m in &metrics {
        assert_eq!(m.scenario, "S10");
        assert!(m.median(SWITCHBOARD).is_some(), "{}: {:?}", m.metric, m.missing);
        assert_eq!(m.why(REFERENCE), "n/a");
    }
    assert!(metrics[0].median(SWITCHBOARD).is_some_and(|v| v > 0.0));
    assert!(metrics[1].median(SWITCHBOARD).is_some_and(|v| v > 0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s8_fans_out_over_two_nodes_on_one_redis() {
    let ctx = ctx();
    let metrics = scenarios::s8(&ctx).await;
    // deliveries/s split over two nodes and on one node, for bursts of 1 and 10.
    assert_eq!(metrics.len(), 4);
    for m in &metrics {
        assert_eq!(m.scenario, "S8");
        assert!(m.median(SWITCHBOARD).is_some_and(|v| v > 0.0), "{}: {:?}", m.metric, m.missing);
        assert_eq!(m.why(REFERENCE), "n/a");
    }
    for i in [0, 2] {
        assert_eq!(metrics[i].goals.len(), 1);
        assert_eq!(metrics[i].goals[0].text, "≥ 0.8× the same load on one node");
        assert!(metrics[i].goals[0].met.is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s9_every_subscriber_recovers_after_a_server_restart() {
    let ctx = ctx();
    let metrics = scenarios::s9(&ctx).await;
    assert_eq!(metrics.len(), 3);
    for m in &metrics {
        assert_eq!(m.scenario, "S9");
        assert!(m.median(SWITCHBOARD).is_some(), "{}: {:?}", m.metric, m.missing);
    }
    assert!(metrics[0].median(SWITCHBOARD).unwrap() > 0.0);
    // Every subscriber came back with `recovered: true`, once.
    assert_eq!(metrics[2].median(SWITCHBOARD), Some(0.0));
    assert_eq!(metrics[2].goals[0].met, Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s11_publishes_from_the_postgresql_outbox() {
    let ctx = ctx();
    assert!(
        ctx.server.exists(),
        "S11 needs the standalone server at {}: cargo build -p switchboard-server (or SWITCHBOARD_SERVER=PATH)",
        ctx.server.display()
    );
    let metrics = scenarios::s11(&ctx).await;
    // Drain rate, p50 and p99 of commit → delivery.
    assert_eq!(metrics.len(), 3);
    for m in &metrics {
        assert_eq!(m.scenario, "S11");
        assert!(m.median(SWITCHBOARD).is_some_and(|v| v > 0.0), "{}: {:?}", m.metric, m.missing);
        assert_eq!(m.why(REFERENCE), "n/a");
    }
    // Every row of the backlog was published and deleted.
    let left = &metrics[0].details.iter().find(|(h, _)| h == "rows left").expect("rows left").1;
    assert_eq!(left[SWITCHBOARD], [0.0]);
    // Each delivery of the latency phase was measured: 2 connections × 5 rows per insert, to
    // 10 subscribers on 3 topics, so at least one.
    let deliveries = &metrics[2].details.iter().find(|(h, _)| h == "deliveries").expect("deliveries").1;
    assert!(deliveries[SWITCHBOARD][0] >= 1.0);
    assert_eq!(metrics[0].goals.len(), 1);
    assert_eq!(metrics[2].goals.len(), 1);
}
