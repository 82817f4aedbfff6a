//! `/metrics`, `/healthz`, `/readyz`.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::redis::Redis;
use common::{Client, config, http, start_with};
use serde_json::{Value, json};

/// The Python with `prometheus_client` (scripts/test.sh installs it into target/pyvenv), or
/// `SWITCHBOARD_PYTHON`.
fn python() -> PathBuf {
    let python = std::env::var_os("SWITCHBOARD_PYTHON").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/pyvenv/bin/python3"),
        PathBuf::from,
    );
    let ok = std::process::Command::new(&python)
        .args(["-c", "import prometheus_client"])
        .output()
        .is_ok_and(|o| o.status.success());
    // A missing parser is a failure, not a skip.
    assert!(
        ok,
        "{} cannot import prometheus_client: run scripts/test.sh (it makes target/pyvenv), or \
         set SWITCHBOARD_PYTHON to a Python that has it",
        python.display()
    );
    python
}

/// Parses a page with prometheus_client's parser (`tests/metrics/check_exposition.py`): the
/// families by name and type, and every sample; panics with the parser's complaints.
fn parse(page: &str) -> Value {
    let file = std::env::temp_dir().join(format!(
        "switchboard-metrics-{}-{}.txt",
        std::process::id(),
        common::rand_id()
    ));
    std::fs::write(&file, page).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/metrics/check_exposition.py");
    let out = std::process::Command::new(python()).arg(&script).arg(&file).output().unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "the exposition is not valid:\n{}\n--- page ---\n{page}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn the_exposition_parses_with_unique_conventional_families() {
    let server = start_with(&config("dev", "dev = true"), &[], &[]).await;
    let addr = server.addr;
    // Traffic first, so that labelled series and histograms have samples.
    let (mut ada, _) = Client::identified(addr, json!({"name": "ada"})).await;
    ada.call("~sub", json!({"topic": "room/a"})).await.unwrap();
    let (status, page) = http(addr, "GET", "/metrics", None, None).await;
    assert_eq!(status, 200);
    let parsed = parse(&page);
    let families = &parsed["families"];
    for (name, kind) in [
        ("switchboard_build_info", "gauge"),
        ("switchboard_connections", "gauge"),
        ("switchboard_connections_accepted", "counter"),
        ("switchboard_users", "gauge"),
        ("switchboard_topics", "gauge"),
        ("switchboard_messages_in", "counter"),
        ("switchboard_request_duration_seconds", "histogram"),
        ("switchboard_cluster_nodes", "gauge"),
        ("switchboard_cluster_nodes_unreachable", "gauge"),
        ("switchboard_backend_up", "gauge"),
        // Registered at start, although this server calls no application.
        ("switchboard_proxy_requests", "counter"),
        ("switchboard_proxy_request_duration_seconds", "histogram"),
        ("switchboard_handshake_failures", "counter"),
        ("switchboard_handshakes_pending", "gauge"),
        // The standard process series.
        ("process_cpu_seconds", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
        ("process_max_fds", "gauge"),
        ("process_start_time_seconds", "gauge"),
    ] {
        assert_eq!(families[name], kind, "{name} in {families}");
    }
    let samples = parsed["samples"].as_array().unwrap();
    let value = |name: &str, labels: &[(&str, &str)]| {
        samples
            .iter()
            .find(|s| s[0] == name && labels.iter().all(|(k, v)| s[1][*k] == *v))
            .map(|s| s[2].as_f64().unwrap())
    };
    assert_eq!(value("switchboard_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), Some(1.0));
    assert_eq!(value("switchboard_connections", &[]), Some(1.0));
    assert_eq!(value("switchboard_connections_accepted_total", &[]), Some(1.0));
    assert_eq!(value("switchboard_cluster_nodes", &[]), Some(1.0));
    assert_eq!(value("switchboard_backend_up", &[]), Some(1.0));
    assert!(value("process_resident_memory_bytes", &[]).unwrap() > 1e6);
    assert!(value("process_open_fds", &[]).unwrap() >= 3.0);
    for kind in ["identify", "authorize", "forward"] {
        for outcome in ["ok", "error", "timeout"] {
            let labels = [("kind", kind), ("outcome", outcome)];
            assert_eq!(value("switchboard_proxy_requests_total", &labels), Some(0.0), "{kind} {outcome}");
        }
        let labels = [("kind", kind)];
        assert_eq!(value("switchboard_proxy_request_duration_seconds_count", &labels), Some(0.0), "{kind}");
    }
    assert_eq!(
        value("switchboard_request_duration_seconds_count", &[("type", "~sub"), ("outcome", "ok")]),
        Some(1.0)
    );
}

fn series(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok())
    })
}

#[tokio::test]
async fn metrics_are_present_and_move() {
    let server = start_with(&config("dev", "dev = true"), &[], &[]).await;
    let addr = server.addr;
    assert_eq!(http(addr, "GET", "/healthz", None, None).await.0, 200);
    assert_eq!(http(addr, "GET", "/readyz", None, None).await.0, 200);

    let (status, before) = http(addr, "GET", "/metrics", None, None).await;
    assert_eq!(status, 200);
    for name in [
        "switchboard_connections",
        "switchboard_users",
        "switchboard_topics",
        "switchboard_messages_in_total",
        "switchboard_messages_out_total",
        "switchboard_bytes_in_total",
        "switchboard_bytes_out_total",
        "switchboard_slow_consumer_closes_total",
        "switchboard_connections_accepted_total",
    ] {
        assert!(series(&before, name).is_some(), "{name} missing in:\n{before}");
    }
    assert_eq!(series(&before, "switchboard_connections"), Some(0.0), "{before}");
    let in_before = series(&before, "switchboard_messages_in_total").unwrap();

    let (mut ada, _) = Client::identified(addr, json!({"name": "ada"})).await;
    ada.call("~sub", json!({"topic": "room/a"})).await.unwrap();
    for _ in 0..5 {
        ada.call("~ping", Value::Null).await.unwrap();
    }
    let (_, after) = http(addr, "GET", "/metrics", None, None).await;
    assert_eq!(series(&after, "switchboard_connections"), Some(1.0), "{after}");
    assert_eq!(series(&after, "switchboard_users"), Some(1.0), "{after}");
    assert_eq!(series(&after, "switchboard_topics"), Some(1.0), "{after}");
    let in_after = series(&after, "switchboard_messages_in_total").unwrap();
    assert!(in_after >= in_before + 7.0, "{in_before} -> {in_after}");
    assert!(
        series(&after, "switchboard_messages_out_total").unwrap()
            > series(&before, "switchboard_messages_out_total").unwrap()
    );
    // Seven messages of at least 10 bytes each came in (`["~ping",null,N]` alone is 16).
    let bytes_in = series(&after, "switchboard_bytes_in_total").unwrap()
        - series(&before, "switchboard_bytes_in_total").unwrap();
    assert!(bytes_in >= 70.0, "{bytes_in}");
    assert!(
        after.contains("switchboard_request_duration_seconds_count{type=\"~sub\",outcome=\"ok\"} 1")
            || after.contains("switchboard_request_duration_seconds_count{outcome=\"ok\",type=\"~sub\"} 1"),
        "the ~sub request timed:\n{after}"
    );
    assert!(
        series(&after, "switchboard_bytes_out_total").unwrap()
            > series(&before, "switchboard_bytes_out_total").unwrap()
    );
}

#[tokio::test]
async fn slow_consumer_closes_are_counted() {
    let toml = config("dev", "dev = true\n[limits]\nmax_queue_bytes = 65536");
    let server = start_with(&toml, &[], &[]).await;
    let addr = server.addr;
    let (mut sleepy, _) = Client::identified(addr, json!({"name": "sleepy"})).await;
    sleepy.call("~sub", json!({"topic": "room/flood"})).await.unwrap();
    // The client stops reading; 60 KB publications pile up beyond the socket buffers (15 per
    // batch: under api.max_body_bytes).
    let chunk = "x".repeat(60_000);
    let mut counted = None;
    for _ in 0..60 {
        let commands: Vec<Value> =
            (0..15).map(|_| json!({"op": "publish", "topic": "room/flood", "data": chunk})).collect();
        common::api(addr, "POST", "/api/batch", Some(json!({ "commands": commands }))).await;
        let (_, text) = http(addr, "GET", "/metrics", None, None).await;
        if let Some(n) = series(&text, "switchboard_slow_consumer_closes_total").filter(|n| *n >= 1.0) {
            counted = Some(n);
            break;
        }
    }
    assert_eq!(counted, Some(1.0));
    drop(sleepy);
}

/// Scrapes `/metrics` every 250 ms (up to 20 s) until `ready` accepts the page; returns it.
async fn scrape_until(addr: std::net::SocketAddr, what: &str, ready: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, page) = http(addr, "GET", "/metrics", None, None).await;
        assert_eq!(status, 200);
        if ready(&page) {
            return page;
        }
        assert!(tokio::time::Instant::now() < deadline, "never {what}:\n{page}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The value of the series `name{LABELS}` whose labels include `label`.
fn labelled(text: &str, name: &str, label: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let rest = l.strip_prefix(name)?.strip_prefix('{')?;
        let (labels, value) = rest.split_once("} ")?;
        labels.split(',').any(|l| l == label).then(|| value.trim().parse().ok()).flatten()
    })
}

#[tokio::test]
async fn each_topic_class_shows_how_long_a_gap_its_history_bridges() {
    let server = start_with(&config("dev", "dev = true"), &[], &[]).await;
    let addr = server.addr;
    let (mut ada, _) = Client::identified(addr, json!({"name": "ada"})).await;
    ada.call("~sub", json!({"topic": "room/a"})).await.unwrap();
    let class = "class=\"room/{name}\"";
    // ~10 publications a second into a history of 10: a span of about a second, finite.
    let publishing = tokio::spawn(async move {
        let (mut bob, _) = Client::identified(addr, json!({"name": "bob"})).await;
        for n in 0..400 {
            bob.call("~pub", json!({"topic": "room/a", "data": n})).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let page = scrape_until(addr, "a finite history span", |page| {
        labelled(page, "switchboard_history_span_seconds", class).is_some_and(f64::is_finite)
    })
    .await;
    let span = labelled(&page, "switchboard_history_span_seconds", class).unwrap();
    assert!(span > 0.0 && span <= 10.0, "10 publications kept, at least one a second: {span} s\n{page}");
    assert_eq!(labelled(&page, "switchboard_history_size", class), Some(10.0), "{page}");
    let rate = labelled(&page, "switchboard_history_publications_per_second", class).unwrap();
    assert!(rate >= 1.0, "{rate}\n{page}");
    let parsed = parse(&page);
    assert_eq!(parsed["families"]["switchboard_history_span_seconds"], "gauge");

    // Nothing published any more: the history bridges any gap.
    publishing.abort();
    let page = scrape_until(addr, "an infinite span once publishing stopped", |page| {
        labelled(page, "switchboard_history_span_seconds", class).is_some_and(f64::is_infinite)
    })
    .await;
    // The official parser reads it as +Inf.
    let parsed = parse(&page);
    let span = parsed["samples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s[0] == "switchboard_history_span_seconds" && s[1]["class"] == "room/{name}")
        .map(|s| s[2].clone());
    assert_eq!(span, Some(json!("+Inf")), "{page}");
}

#[tokio::test]
async fn broker_state_and_node_liveness_are_exported() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut redis = Redis::start_on(port);
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let a = start_with(&config("dev", "dev = true"), &[], &["--redis", &url]).await;
    let mut b = start_with(&config("dev", "dev = true"), &[], &["--redis", &url]).await;
    let page =
        scrape_until(a.addr, "two nodes", |page| series(page, "switchboard_cluster_nodes") == Some(2.0))
            .await;
    assert_eq!(series(&page, "switchboard_broker_up"), Some(1.0), "{page}");
    assert_eq!(series(&page, "switchboard_broker_outages_total"), Some(0.0), "{page}");
    assert_eq!(series(&page, "switchboard_dead_nodes_cleaned_total"), Some(0.0), "{page}");
    assert!(
        page.lines().any(|l| l.starts_with("switchboard_node_info{node=\"") && l.ends_with("} 1")),
        "{page}"
    );
    let parsed = parse(&page);
    for (name, kind) in [
        ("switchboard_node_info", "gauge"),
        ("switchboard_broker_up", "gauge"),
        ("switchboard_broker_outages", "counter"),
        ("switchboard_dead_nodes_cleaned", "counter"),
        ("switchboard_missed_publications_filled", "counter"),
        ("switchboard_gap_signals", "counter"),
    ] {
        assert_eq!(parsed["families"][name], kind, "{name}");
    }

    // Node B dies without a goodbye: A declares it dead and cleans up after it.
    b.child.start_kill().unwrap();
    let _ = b.child.wait().await;
    let page = scrape_until(a.addr, "node B cleaned up after", |page| {
        series(page, "switchboard_dead_nodes_cleaned_total") == Some(1.0)
            && series(page, "switchboard_cluster_nodes") == Some(1.0)
            && series(page, "switchboard_cluster_nodes_unreachable") == Some(0.0)
    })
    .await;
    assert_eq!(series(&page, "switchboard_broker_up"), Some(1.0), "{page}");

    // Redis goes away: the broker is down (and the backend does not answer); it comes back.
    redis.kill();
    let page =
        scrape_until(a.addr, "the broker down", |page| series(page, "switchboard_broker_up") == Some(0.0))
            .await;
    assert_eq!(series(&page, "switchboard_backend_up"), Some(0.0), "{page}");
    let _redis = Redis::start_on(port);
    let page = scrape_until(a.addr, "the broker back", |page| {
        series(page, "switchboard_broker_up") == Some(1.0)
            && series(page, "switchboard_backend_up") == Some(1.0)
    })
    .await;
    assert_eq!(series(&page, "switchboard_broker_outages_total"), Some(1.0), "{page}");
}
