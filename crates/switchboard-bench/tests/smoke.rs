//! A short smoke run over real sockets: S2 with tiny sizes against `bench-reference` and
//! `bench-switchboard`, and an S1 fan-out with a worker process. No timing assertions: this only
//! checks that every dialect path works end to end and that values come out.

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
    Ctx {
        targets,
        exe: exe("switchboard-bench"),
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
