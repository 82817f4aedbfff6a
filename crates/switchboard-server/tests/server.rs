//! The binary: configuration layering and errors, development mode, shutdown.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{Client, KEY, http, spawn};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.args(["--listen", "127.0.0.1:0"]).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("SWITCHBOARD_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn write(name: &str, text: &str) -> String {
    let path = std::env::temp_dir().join(format!("sb-server-test-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn bad_configuration_fails_with_key_source_and_code_2() {
    let file = write("bad.toml", "[limits]\nheartbeat_ms = \"fast\"\n");
    let (code, err) = run_to_exit(&["--config", &file], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("limits.heartbeat_ms") && err.contains(&file), "{err}");

    let (code, err) = run_to_exit(&[], &[("SWITCHBOARD_LIMITS__MAX_INFLIGHT", "many")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("MAX_INFLIGHT") && err.contains("SWITCHBOARD_"), "{err}");

    let file = write("dev.toml", "[namespaces.main]\nidentify = \"dev\"\n");
    let (code, err) = run_to_exit(&["--config", &file], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("namespaces.main.identify") && err.contains(&file), "{err}");

    let file = write(
        "jwt.toml",
        "[namespaces.main]\nidentify = \"jwt\"\n[jwt]\nalgorithm = \"HS512\"\nsecret = \"s\"\n",
    );
    let (code, err) = run_to_exit(&["--config", &file], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("HS512"), "{err}");

    let file = write("empty.toml", "api_key = \"k\"\n");
    let (code, err) = run_to_exit(&["--config", &file], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("namespaces"), "{err}");

    let (code, err) = run_to_exit(&["--config", "/nonexistent/switchboard.toml"], &[]);
    assert_eq!(code, 2, "{err}");
}

#[tokio::test]
async fn zero_config_is_loud_development_mode_with_chat_rooms() {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
    for (k, _) in std::env::vars() {
        if k.starts_with("SWITCHBOARD_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(["--listen", "127.0.0.1:0"]).env("RUST_LOG", "info");
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let line =
        tokio::time::timeout(Duration::from_secs(20), out.next_line()).await.unwrap().unwrap().unwrap();
    let addr = line.strip_prefix("listening on ").unwrap().parse().unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    let warned = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(l) = err.next_line().await.unwrap() {
            if l.contains("WARN") && l.contains("DEVELOPMENT MODE") {
                return true;
            }
        }
        false
    })
    .await
    .unwrap();
    assert!(warned);

    let (mut ada, welcome) = Client::identified(addr, json!({"name": "ada"})).await;
    assert_eq!(welcome["user"], "ada");
    let (mut bob, _) = Client::identified(addr, json!({"name": "bob"})).await;
    ada.call("~sub", json!({"topic": "room/lobby"})).await.unwrap();
    bob.call("~sub", json!({"topic": "room/lobby"})).await.unwrap();
    bob.call("~pub", json!({"topic": "room/lobby", "event": "say", "data": "hello"})).await.unwrap();
    let msg = ada.expect("~msg").await;
    assert_eq!(msg[1]["data"], "hello");
    assert_eq!(msg[1]["from"]["user"], "bob");
    let who = ada.call("~who", json!({})).await.unwrap();
    assert_eq!(who["peers"].as_array().unwrap().len(), 2, "{who}");
    let who = ada.call("~who", json!({"topic": "room/lobby"})).await.unwrap();
    assert_eq!(who["peers"].as_array().unwrap().len(), 2, "{who}");
}

#[tokio::test]
async fn environment_overrides_the_file_and_flags_override_both() {
    let file = write("layers.toml", "api_key = \"from-file\"\nlog_format = \"json\"\n");
    // Other SWITCHBOARD_* variables (tooling's) are not configuration keys and are ignored.
    let env = [("SWITCHBOARD_API_KEY", KEY), ("SWITCHBOARD_ARTIFACTS", "/tmp")];
    let server = spawn(&["--config", &file, "--dev"], &env).await;
    let (status, _) = http(server.addr, "GET", "/api/info", Some(KEY), None).await;
    assert_eq!(status, 200);
    let (status, _) = http(server.addr, "GET", "/api/info", Some("from-file"), None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn sigterm_closes_connections_with_1001_and_exits_0() {
    let mut server = spawn(&["--dev"], &[("RUST_LOG", "info")]).await;
    let (mut ada, _) = Client::identified(server.addr, json!({"name": "ada"})).await;
    let (status, body) = http(server.addr, "GET", "/readyz", None, None).await;
    assert_eq!(status, 200, "{body}");
    let pid = server.child.id().unwrap().to_string();
    // SIGHUP (systemctl reload) does not stop a server without TLS.
    assert!(std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    assert!(server.logged(&["SIGHUP: nothing to reload"]).await);
    assert_eq!(ada.call("~ping", serde_json::Value::Null).await, Ok(serde_json::Value::Null));
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert_eq!(ada.closed().await, Some(1001));
    let status = tokio::time::timeout(Duration::from_secs(20), server.child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
    for (k, _) in std::env::vars() {
        if k.starts_with("SWITCHBOARD_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(["--listen", "127.0.0.1:0", "--log-format", "json"]).env("RUST_LOG", "info");
    cmd.stdout(Stdio::null()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    let line =
        tokio::time::timeout(Duration::from_secs(20), err.next_line()).await.unwrap().unwrap().unwrap();
    let log: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(log["level"], "WARN", "{line}");
    assert!(log["fields"]["message"].as_str().unwrap().contains("DEVELOPMENT MODE"), "{line}");
}

#[tokio::test]
async fn namespaces_topics_and_limits_come_from_the_configuration() {
    let toml = r#"
dev = true
[limits]
conn_per_user = 1
conn_policy = "refuse_new"

[namespaces.main]
identify = "dev"
[namespaces.main.topics."news/{x}"]
history = 5
[namespaces.main.topics."acked/{x}"]
acknowledged = true

[namespaces.admin]
identify = "dev"
extends = ["main"]
allow_info = true

[namespaces.public]
identify = "anonymous"
[namespaces.public.topics."ticker/{x}"]
"#;
    let server = common::start_with(toml, &[], &[]).await;
    let addr = server.addr;
    let (mut ada, _) = Client::identified(addr, json!({"name": "ada"})).await;
    assert_eq!(ada.call("~info", json!({})).await.unwrap_err()["code"], "FORBIDDEN");
    // Server-only publishing by default; history kept.
    ada.call("~sub", json!({"topic": "news/a"})).await.unwrap();
    assert_eq!(
        ada.call("~pub", json!({"topic": "news/a", "data": 1})).await.unwrap_err()["code"],
        "FORBIDDEN"
    );
    assert_eq!(ada.call("~sub", json!({"topic": "nope/a"})).await.unwrap_err()["code"], "FORBIDDEN");

    // conn_per_user = 1, refuse_new.
    let mut again = Client::connect(addr).await;
    let err = again.call("~hello", json!({"identity": {"name": "ada"}})).await.unwrap_err();
    assert_eq!(err["code"], "LIMIT");
    assert_eq!(again.closed().await, Some(4502));

    // admin extends main (topics) and allows ~info.
    let mut root = Client::connect(addr).await;
    root.call("~hello", json!({"ns": "admin", "identity": {"name": "root"}})).await.unwrap();
    let info = root.call("~info", json!({})).await.unwrap();
    assert!(info["connections"].as_u64().unwrap() >= 2, "{info}");
    root.call("~sub", json!({"topic": "news/a"})).await.unwrap();

    // An anonymous namespace.
    let mut anon = Client::connect(addr).await;
    let welcome = anon.call("~hello", json!({"ns": "public"})).await.unwrap();
    assert_eq!(welcome["user"], serde_json::Value::Null);
    anon.call("~sub", json!({"topic": "ticker/x"})).await.unwrap();
}

#[tokio::test]
async fn sigterm_drains_first_not_ready_but_still_accepting_then_closes_with_1001() {
    // A drain longer than the test: it ends with a second SIGTERM, so nothing here races a clock.
    let toml = common::config("dev", "dev = true\n[shutdown]\ndrain_delay_ms = 600000");
    let mut server = common::start_with(&toml, &[("RUST_LOG", "info")], &[]).await;
    let addr = server.addr;
    let (mut ada, _) = Client::identified(addr, json!({"name": "ada"})).await;
    assert_eq!(http(addr, "GET", "/readyz", None, None).await.0, 200);
    let pid = server.child.id().unwrap().to_string();
    let kill = |signal: &str| {
        assert!(std::process::Command::new("kill").args([signal, &pid]).status().unwrap().success());
    };
    kill("-TERM");
    assert!(server.logged(&["still accepting until the drain delay ends"]).await);
    // Not ready at once…
    let (status, body) = http(addr, "GET", "/readyz", None, None).await;
    assert_eq!(status, 503, "{body}");
    // …while the listener still accepts and serves: HTTP, and new WebSocket clients.
    assert_eq!(http(addr, "GET", "/healthz", None, None).await.0, 200);
    let (mut bob, _) = Client::identified(addr, json!({"name": "bob"})).await;
    assert_eq!(bob.call("~ping", serde_json::Value::Null).await, Ok(serde_json::Value::Null));
    assert_eq!(ada.call("~ping", serde_json::Value::Null).await, Ok(serde_json::Value::Null));
    assert!(!server.logs.lock().unwrap().iter().any(|l| l.contains("closing connections with 1001")));
    // A second signal ends the drain: every connection is closed with 1001, the process exits 0.
    kill("-TERM");
    assert_eq!(ada.closed().await, Some(1001));
    assert_eq!(bob.closed().await, Some(1001));
    let status = tokio::time::timeout(Duration::from_secs(20), server.child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(server.logged(&["second signal: not waiting"]).await);
}

#[tokio::test]
async fn the_drain_delay_ends_by_itself() {
    let toml = common::config("dev", "dev = true\n[shutdown]\ndrain_delay_ms = 200");
    let mut server = common::start_with(&toml, &[("RUST_LOG", "info")], &[]).await;
    let (mut ada, _) = Client::identified(server.addr, json!({"name": "ada"})).await;
    let pid = server.child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert_eq!(ada.closed().await, Some(1001));
    let status = tokio::time::timeout(Duration::from_secs(20), server.child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(server.logged(&["still accepting until the drain delay ends"]).await);
    assert!(!server.logs.lock().unwrap().iter().any(|l| l.contains("second signal: not waiting")));
}
