//! Two `switchboard` servers on one real `redis-server` (started here on a free port) behave as
//! one: `--redis URL` on the command line, `[redis]` in the configuration file.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::redis::Redis;
use common::{Client, api, config, start_with};
use serde_json::json;

#[tokio::test]
async fn two_servers_on_one_redis_are_one_server() {
    let redis = Redis::start();
    // One by flag, one by the configuration file.
    let a = start_with(&config("dev", "dev = true"), &[], &["--redis", &redis.url()]).await;
    let file = config("dev", &format!("dev = true\n[redis]\nurl = \"{}\"", redis.url()));
    let b = start_with(&file, &[], &[]).await;

    let (mut ada, _) = Client::identified(a.addr, json!({"name": "ada"})).await;
    let (mut bob, _) = Client::identified(b.addr, json!({"name": "bob"})).await;
    let (mut ada2, _) = Client::identified(b.addr, json!({"name": "ada"})).await;
    bob.call("~sub", json!({"topic": "room/lobby"})).await.unwrap();

    // A publication on A reaches the subscriber on B.
    let r = ada.call("~pub", json!({"topic": "room/lobby", "data": "hello"})).await.unwrap();
    assert_eq!(r["seq"], 1, "{r}");
    let m = bob.expect("~msg").await;
    assert_eq!(m[1]["data"], "hello", "{m}");

    // The HTTP API of B sends to ada on both servers, and publishes with the shared sequence.
    let r =
        api(b.addr, "POST", "/api/send", Some(json!({"user": "ada", "type": "note", "payload": 7}))).await;
    assert_eq!(r["delivered"], 2, "{r}");
    assert_eq!(ada.expect("note").await[1], 7);
    assert_eq!(ada2.expect("note").await[1], 7);
    let r = api(a.addr, "POST", "/api/publish", Some(json!({"topic": "room/lobby", "data": "two"}))).await;
    assert_eq!(r["seq"], 2, "{r}");
    assert_eq!(bob.expect("~msg").await[1]["seq"], 2);

    // Presence and statistics are the cluster's.
    let r = api(a.addr, "GET", "/api/presence?topic=room/lobby", None).await;
    assert_eq!(r["peers"].as_array().map(Vec::len), Some(1), "{r}");
    let r = api(a.addr, "GET", "/api/info", None).await;
    assert_eq!(r["connections"], 3, "{r}");
    assert_eq!(r["users"], 2, "{r}");
    assert_eq!(r["nodes"].as_array().map(Vec::len), Some(2), "{r}");
}

#[tokio::test]
async fn an_unreachable_redis_stops_the_start_with_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["--listen", "127.0.0.1:0", "--dev", "--redis", &format!("redis://:secret@127.0.0.1:{port}")])
        .env_remove("SWITCHBOARD_REDIS__URL")
        .output();
    let out = tokio::time::timeout(Duration::from_secs(20), out).await.expect("exits in time").unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot use Redis at redis://…@127.0.0.1"), "{stderr}");
    assert!(!stderr.contains("secret"), "the password must not be printed: {stderr}");
}

#[tokio::test]
async fn two_servers_on_one_redis_over_tls() {
    let pki = common::pki::Pki::new("redis");
    let redis = Redis::start_tls(&pki);
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    let file = config(
        "dev",
        &format!("dev = true\n[redis]\nurl = \"{url}\"\nca_file = \"{}\"", pki.ca_file.display()),
    );
    let a = start_with(&file, &[], &[]).await;
    let b = start_with(&file, &[], &[]).await;
    let (mut bob, _) = Client::identified(b.addr, json!({"name": "bob"})).await;
    bob.call("~sub", json!({"topic": "room/tls"})).await.unwrap();
    api(a.addr, "POST", "/api/publish", Some(json!({"topic": "room/tls", "data": "over TLS"}))).await;
    assert_eq!(bob.expect("~msg").await[1]["data"], "over TLS");

    // Without the CA the Redis certificate is not trusted: the server does not start (exit 1).
    let plain = config("dev", &format!("dev = true\n[redis]\nurl = \"{url}\""));
    let path = std::env::temp_dir().join(format!("sb-redis-tls-{}.toml", std::process::id()));
    std::fs::write(&path, plain).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["--listen", "127.0.0.1:0", "--config", path.to_str().unwrap()])
        .env("RUST_LOG", "off")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot use Redis"));
}
