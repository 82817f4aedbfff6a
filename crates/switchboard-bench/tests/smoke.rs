//! A short smoke run over real sockets: S2 with tiny sizes against `bench-reference` and
//! `bench-switchboard`, an S1 fan-out with a worker process, and S11 (the standalone server's
//! PostgreSQL outbox; needs PostgreSQL, as scripts/test.sh installs it, and the `switchboard`
//! binary, built by `cargo build -p switchboard-server` or named by `SWITCHBOARD_SERVER`). No
//! timing assertions: this only checks that every path works end to end and that values come out.

use std::path::PathBuf;
use std::time::Duration;

use switchboard_bench::client::Dialect;
use switchboard_bench::report::{REFERENCE, SWITCHBOARD};
use switchboard_bench::scenarios::{self, Ctx, Sizes};
use switchboard_bench::targets::{Program, Target, Targets};

fn ctx() -> Ctx {
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
                program: Program::Exe(exe("bench-switchboard"), vec![]),
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
        logs: std::env::temp_dir().join("switchboard-bench-test-logs"),
        sizes,
    }
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
