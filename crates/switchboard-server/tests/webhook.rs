//! Lifecycle events POSTed to the application (`[events]`): the real `switchboard` binary
//! delivers signed batches to the example Python backend (`examples/python-backend/
//! webhook_receiver.py`, spawned here with `python3`), which verifies them, deduplicates by id
//! and records them; faults: a wrong secret, a backend answering 500 for 10 s, a 400, and (on a
//! real `redis-server`) a server killed with SIGKILL.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::redis::Redis;
use common::{Client, Server, config, http, metric, start_with};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const SECRET: &str = "0123456789abcdef0123456789abcdef-test-secret";

/// The Python backend, killed on drop.
struct Backend {
    _child: Child,
    addr: SocketAddr,
    out: PathBuf,
}

impl Backend {
    async fn start(secret: &str) -> Backend {
        let script =
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/python-backend/webhook_receiver.py");
        let dir = std::env::temp_dir().join(format!(
            "switchboard-webhook-{}-{}",
            std::process::id(),
            common::rand_id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("events.jsonl");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--port", "0", "--control", "--secret", secret, "--out"])
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 must be installed");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the backend started in time")
            .unwrap()
            .expect("a `listening on` line");
        let addr = line.strip_prefix("listening on ").expect("listening on ADDR").parse().unwrap();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("{line}");
            }
        });
        Backend { _child: child, addr, out }
    }

    fn url(&self) -> String {
        format!("http://{}/switchboard/events", self.addr)
    }

    async fn stats(&self) -> Value {
        let (status, body) = http(self.addr, "GET", "/_stats", None, None).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn control(&self, asked: Value) {
        let (status, body) = http(self.addr, "POST", "/_control", None, Some(&asked)).await;
        assert_eq!(status, 200, "{body}");
    }

    /// The events recorded (each once: the backend drops duplicates), in arrival order.
    fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Waits (up to 60 s) until the recorded events satisfy `done`; returns them.
    async fn until(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let events = self.events();
            if done(&events) {
                return events;
            }
            assert!(Instant::now() < deadline, "{what}: not within 60 s; recorded: {events:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A development-mode server whose events go to `url`, signed with `secret`, retried quickly.
async fn server(url: &str, secret: &str, more: &str) -> Server {
    let events = format!(
        "dev = true\n{more}\n[events]\nurl = \"{url}\"\nsecret = \"{secret}\"\nmax_wait_ms = 5\n\
         timeout_ms = 2000\nretry_min_ms = 50\nretry_max_ms = 1000\n"
    );
    start_with(&config("dev", &events), &[], &[]).await
}

async fn metrics(server: &Server) -> String {
    let (status, page) = http(server.addr, "GET", "/metrics", None, None).await;
    assert_eq!(status, 200);
    page
}

async fn counter(server: &Server, name: &str) -> f64 {
    metric(&metrics(server).await, name).unwrap_or_else(|| panic!("no series {name}"))
}

/// Waits (up to 60 s) until the counter reaches `at_least`.
async fn counter_reaches(server: &Server, name: &str, at_least: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = counter(server, name).await;
        if v >= at_least {
            return v;
        }
        assert!(Instant::now() < deadline, "{name} stayed at {v}, below {at_least}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

fn count(events: &[Value], pred: impl Fn(&Value) -> bool) -> usize {
    events.iter().filter(|e| pred(e)).count()
}

/// Checks what every recorded stream must satisfy: ids unique, each key's `seq` 1, 2, 3… in
/// arrival order.
fn check_order(events: &[Value]) {
    let mut ids = HashSet::new();
    let mut seqs: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for e in events {
        assert!(ids.insert(e["id"].as_str().unwrap().to_owned()), "id twice: {e}");
        seqs.entry(e["key"].as_str().unwrap().to_owned()).or_default().push(e["seq"].as_u64().unwrap());
    }
    for (key, seq) in seqs {
        let expected: Vec<u64> = (1..=seq.len() as u64).collect();
        assert_eq!(seq, expected, "{key}'s events out of order or missing");
    }
}

/// A user's life: connect, subscribe, unsubscribe, close with `code` (by the client).
async fn life(addr: SocketAddr, user: &str, topic: &str, code: u16) -> String {
    let (mut c, _) = Client::identified(addr, json!({"name": user})).await;
    c.call("~sub", json!({"topic": topic})).await.unwrap();
    c.call("~unsub", json!({"topic": topic})).await.unwrap();
    let conn = c.conn.clone();
    use tokio_tungstenite::tungstenite::protocol::{CloseFrame, frame::coding::CloseCode};
    c.ws.close(Some(CloseFrame { code: CloseCode::from(code), reason: "bye".into() })).await.unwrap();
    assert_eq!(c.closed().await, Some(code));
    conn
}

#[tokio::test]
async fn signed_events_arrive_and_verify_in_the_python_backend() {
    let backend = Backend::start(SECRET).await;
    let server = server(&backend.url(), SECRET, "").await;
    let conn = life(server.addr, "ada", "room/lobby", 4321).await;

    // user:ada: user_online, connect, subscribe, unsubscribe, disconnect, user_offline;
    // topic:room/lobby: occupied, vacated.
    let events = backend.until("ada's 8 events", |e| e.len() >= 8).await;
    check_order(&events);
    assert_eq!(events.len(), 8, "{events:#?}");
    let ada: Vec<&str> =
        events.iter().filter(|e| e["key"] == "user:ada").map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(ada.len(), 6, "{events:#?}");
    for (before, after) in [
        ("connect", "subscribe"),
        ("subscribe", "unsubscribe"),
        ("unsubscribe", "disconnect"),
        ("disconnect", "user_offline"),
        ("user_online", "subscribe"),
    ] {
        let at = |t: &str| ada.iter().position(|x| *x == t).unwrap_or_else(|| panic!("no {t}: {ada:?}"));
        assert!(at(before) < at(after), "{before} before {after}: {ada:?}");
    }
    let topic: Vec<&Value> = events.iter().filter(|e| e["key"] == "topic:room/lobby").collect();
    assert_eq!(
        topic.iter().map(|e| e["type"].as_str().unwrap()).collect::<Vec<_>>(),
        ["occupied", "vacated"]
    );
    let connect = of_type(&events, "connect")[0];
    assert_eq!(
        (&connect["conn"], &connect["user"], &connect["ns"]),
        (&json!(conn), &json!("ada"), &json!("main"))
    );
    let disconnect = of_type(&events, "disconnect")[0];
    assert_eq!(disconnect["code"], 4321, "the client's close code: {disconnect}");
    assert_eq!(disconnect["conn"], conn);
    assert_eq!(of_type(&events, "subscribe")[0]["topic"], "room/lobby");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    for e in &events {
        let ts = e["ts"].as_u64().unwrap();
        assert!(ts <= now && ts + 600_000 > now, "a timestamp of now: {e}");
        assert!(!e["node"].as_str().unwrap().is_empty());
    }

    let stats = backend.stats().await;
    assert_eq!(stats["bad_signature"], 0, "{stats}");
    assert_eq!(stats["out_of_order"], 0, "{stats}");
    assert_eq!(stats["unique"], 8, "{stats}");
    counter_reaches(&server, "switchboard_events_delivered_total", 8.0).await;
    assert_eq!(counter(&server, "switchboard_events_rejected_total").await, 0.0);
    let page = metrics(&server).await;
    assert!(
        page.contains("switchboard_events_batch_duration_seconds_count{outcome=\"delivered\"}"),
        "{page}"
    );
}

#[tokio::test]
async fn while_the_secret_rotates_a_backend_holding_the_old_one_still_verifies() {
    // Step 1 of a rotation: the servers sign with the new secret and, still, the old one.
    let new = "fedcba9876543210fedcba9876543210-new-secret";
    let backend = Backend::start(SECRET).await;
    let events = format!(
        "dev = true\n[events]\nurl = \"{}\"\nsecret = \"{new}\"\nprevious_secrets = [\"{SECRET}\"]\n\
         max_wait_ms = 5\nretry_min_ms = 50\nretry_max_ms = 1000\n",
        backend.url()
    );
    let rotating = start_with(&config("dev", &events), &[], &[]).await;
    life(rotating.addr, "ada", "room/lobby", 1000).await;
    backend.until("ada's 8 events", |e| e.len() >= 8).await;
    let stats = backend.stats().await;
    assert_eq!((stats["bad_signature"].as_u64(), stats["unique"].as_u64()), (Some(0), Some(8)), "{stats}");
    assert_eq!(counter(&rotating, "switchboard_events_rejected_total").await, 0.0);
    drop(rotating);

    // Step 2: the backend moved to the new secret, the old one is gone from both sides.
    let backend = Backend::start(new).await;
    let server = server(&backend.url(), new, "").await;
    life(server.addr, "bob", "room/lobby", 1000).await;
    backend.until("bob's 8 events", |e| e.len() >= 8).await;
    assert_eq!(backend.stats().await["bad_signature"], 0);
}

#[tokio::test]
async fn a_wrong_secret_is_refused_by_the_backend_and_the_batch_dropped() {
    let backend = Backend::start(SECRET).await;
    let server = server(&backend.url(), "another-secret-of-enough-length-0123456789", "").await;
    life(server.addr, "ada", "room/x", 1000).await;
    // Refused (401, a 4xx): dropped with the metric and a log line; nothing recorded.
    counter_reaches(&server, "switchboard_events_rejected_total", 1.0).await;
    assert!(server.logged(&["refused lifecycle events", "401"]).await);
    let stats = backend.stats().await;
    assert!(stats["bad_signature"].as_u64().unwrap() >= 1, "{stats}");
    assert_eq!(stats["unique"], 0, "{stats}");
    assert!(backend.events().is_empty());
}

#[tokio::test]
async fn a_backend_answering_500_for_10_s_loses_nothing_and_duplicates_are_dropped_by_id() {
    let backend = Backend::start(SECRET).await;
    let server = server(&backend.url(), SECRET, "").await;
    // It stores what it gets but answers 500 (as a backend whose answer is lost): every retry
    // repeats events it already has.
    backend.control(json!({"status": 500, "seconds": 10, "record": true})).await;
    let users = ["u0", "u1", "u2", "u3", "u4"];
    for (i, user) in users.iter().enumerate() {
        life(server.addr, user, &format!("room/r{i}"), 1000).await;
    }
    let expected = users.len() * 8;
    let events = backend.until("every event", |e| e.len() >= expected).await;
    assert_eq!(events.len(), expected, "{events:#?}");
    check_order(&events);
    for user in users {
        let key = format!("user:{user}");
        assert_eq!(count(&events, |e| e["key"] == key.as_str()), 6, "{user}");
        assert_eq!(count(&events, |e| e["type"] == "user_offline" && e["user"] == user), 1);
    }
    let stats = backend.stats().await;
    assert!(stats["failed_on_purpose"].as_u64().unwrap() >= 1, "{stats}");
    assert!(stats["duplicates"].as_u64().unwrap() >= 1, "retries repeat events: {stats}");
    assert_eq!(stats["unique"], expected, "{stats}");
    assert_eq!(stats["out_of_order"], 0, "{stats}");
    assert!(counter(&server, "switchboard_events_retried_total").await >= 1.0);
    assert_eq!(counter(&server, "switchboard_events_rejected_total").await, 0.0);
    let delivered = counter_reaches(&server, "switchboard_events_delivered_total", expected as f64).await;
    assert_eq!(delivered, expected as f64, "each event delivered (2xx) once");
    println!(
        "webhook answering 500 for 10 s: {expected} events, {} unique, 0 lost, {} duplicates received \
         (dropped by id), 0 out of order; {} requests answered 500, {} events retried",
        stats["unique"],
        stats["duplicates"],
        stats["failed_on_purpose"],
        counter(&server, "switchboard_events_retried_total").await
    );
}

#[tokio::test]
async fn a_400_drops_the_batch_with_the_metric_and_a_log_line() {
    let backend = Backend::start(SECRET).await;
    let server = server(&backend.url(), SECRET, "").await;
    backend.control(json!({"status": 400, "requests": 1})).await;
    life(server.addr, "ada", "room/a", 1000).await;
    let rejected = counter_reaches(&server, "switchboard_events_rejected_total", 1.0).await;
    assert!(server.logged(&["refused lifecycle events", "400"]).await);
    // Delivery goes on after the refused batch.
    life(server.addr, "bob", "room/b", 1000).await;
    backend
        .until("bob's events", |e| count(e, |e| e["type"] == "user_offline" && e["user"] == "bob") == 1)
        .await;
    // What was refused is exactly what is missing: 16 events in all.
    backend.until("the rest", |e| e.len() as f64 + rejected >= 16.0).await;
    let rejected = counter(&server, "switchboard_events_rejected_total").await;
    let events = backend.events();
    assert_eq!(events.len() as f64 + rejected, 16.0, "{events:#?}");
    assert_eq!(backend.stats().await["failed_on_purpose"], 1);
    // (The backend records a batch before it answers, the server counts it on the answer.)
    let delivered = counter_reaches(&server, "switchboard_events_delivered_total", events.len() as f64).await;
    assert_eq!(delivered, events.len() as f64);
    let ids: HashSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), events.len());
}

/// Two servers on one Redis, sharing its event log; one is killed with SIGKILL.
#[tokio::test]
async fn a_killed_servers_connections_are_announced_once_by_the_survivor() {
    let redis = Redis::start();
    let backend = Backend::start(SECRET).await;
    let on_redis = format!("[redis]\nurl = \"redis://127.0.0.1:{}\"", redis.port);
    let mut a = server(&backend.url(), SECRET, &on_redis).await;
    let b = server(&backend.url(), SECRET, &on_redis).await;
    let (mut ada, _) = Client::identified(a.addr, json!({"name": "ada"})).await;
    ada.call("~sub", json!({"topic": "room/k"})).await.unwrap();
    let (mut bob, _) = Client::identified(b.addr, json!({"name": "bob"})).await;
    bob.call("~sub", json!({"topic": "room/k"})).await.unwrap();
    let ada_conn = ada.conn.clone();
    backend
        .until("both connected", |e| {
            count(e, |e| e["type"] == "subscribe") == 2 && count(e, |e| e["type"] == "occupied") == 1
        })
        .await;

    a.child.start_kill().unwrap();
    let _ = a.child.wait().await;
    let events = backend
        .until("ada's disconnect and user_offline from the survivor", |e| {
            count(e, |e| e["type"] == "disconnect" && e["conn"] == ada_conn.as_str()) >= 1
                && count(e, |e| e["type"] == "user_offline" && e["user"] == "ada") >= 1
        })
        .await;
    // Give a second announcement the time to show up, if there were one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let events = {
        let _ = events;
        backend.events()
    };
    let disconnects: Vec<&Value> =
        events.iter().filter(|e| e["type"] == "disconnect" && e["conn"] == ada_conn.as_str()).collect();
    assert_eq!(disconnects.len(), 1, "once: {events:#?}");
    assert_eq!(disconnects[0]["code"], 1006, "{}", disconnects[0]);
    assert_eq!(count(&events, |e| e["type"] == "user_offline" && e["user"] == "ada"), 1, "{events:#?}");
    let survivor =
        of_type(&events, "connect").into_iter().find(|e| e["user"] == "bob").unwrap()["node"].clone();
    assert_eq!(disconnects[0]["node"], survivor, "written by the survivor");
    // Bob is still there, and the topic still occupied.
    assert_eq!(count(&events, |e| e["type"] == "vacated"), 0, "{events:#?}");
    assert_eq!(count(&events, |e| e["user"] == "bob" && e["type"] == "disconnect"), 0);
    bob.call("~ping", json!(null)).await.unwrap();
    // Each key's events in one sequence across the nodes: this needs the event log shared by
    // the nodes (a Redis Stream); with a log per node, the survivor numbers ada's events from 1.
    check_order(&events);
    let ids: HashSet<&str> = events.iter().filter_map(|e| e["id"].as_str()).collect();
    println!(
        "webhook, a node SIGKILLed on Redis: {} events, {} distinct ids, each key's seq without a gap; \
         the dead node's disconnect (1006) and user_offline once, from the survivor",
        events.len(),
        ids.len()
    );
    drop(b);
}

/// Connects and subscribes to `topic`, retrying each step that answers UNAVAILABLE (Redis coming
/// back), as a client does; the client.
async fn arrive(addr: SocketAddr, user: &str, topic: &str) -> Client {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut c = Client::connect(addr).await;
    for (kind, payload) in
        [("~hello", json!({"identity": {"name": user}})), ("~sub", json!({"topic": topic}))]
    {
        loop {
            match c.call(kind, payload.clone()).await {
                Ok(r) => {
                    if kind == "~hello" {
                        c.conn = r["conn"].as_str().unwrap().to_owned();
                    }
                    break;
                }
                Err(e) => {
                    assert_eq!(e["code"], "UNAVAILABLE", "{user}'s {kind}: {e}");
                    assert!(Instant::now() < deadline, "{user}'s {kind} never worked: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
    c
}

async fn leave(mut c: Client) {
    use tokio_tungstenite::tungstenite::protocol::{CloseFrame, frame::coding::CloseCode};
    c.ws.close(Some(CloseFrame { code: CloseCode::from(1000), reason: "bye".into() })).await.unwrap();
    assert_eq!(c.closed().await, Some(1000));
}

/// Redis SIGKILLed and started again on its port with its append-only file, while connections
/// come and go on two servers (two of them leave while Redis is down): every event arrives, each
/// once after deduplication by id, each key's in one sequence without a gap.
#[tokio::test]
async fn across_a_redis_restart_with_an_append_only_file_no_event_is_lost() {
    let mut redis = Redis::start_persistent();
    let backend = Backend::start(SECRET).await;
    let on_redis = format!("[redis]\nurl = \"redis://127.0.0.1:{}\"", redis.port);
    let a = server(&backend.url(), SECRET, &on_redis).await;
    let b = server(&backend.url(), SECRET, &on_redis).await;
    let users = ["ada", "bob", "cat", "dan", "eve", "fay"];
    let node = |i: usize| if i.is_multiple_of(2) { a.addr } else { b.addr };
    let mut before = Vec::new();
    for (i, user) in users[..4].iter().enumerate() {
        before.push(arrive(node(i), user, &format!("room/{user}")).await);
    }
    backend.until("their arrival", |e| count(e, |e| e["type"] == "subscribe") == 4).await;

    // Redis dies; ada (on a) and bob (on b) leave while it is down.
    redis.kill();
    let mut staying = before.split_off(2);
    for c in before {
        leave(c).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.restart();
    // Then cat and dan leave, and eve and fay come and go.
    for c in staying.drain(..) {
        leave(c).await;
    }
    for (i, user) in users[4..].iter().enumerate() {
        let room = format!("room/{user}");
        let c = arrive(node(i), user, &room).await;
        // (The room is counted occupied after the `~sub` reply: a connection closed at once
        // could cut that short.)
        backend
            .until("the room occupied", |e| {
                count(e, |e| e["type"] == "occupied" && e["topic"] == room.as_str()) == 1
            })
            .await;
        leave(c).await;
    }

    // Per user: user_online, connect, subscribe, disconnect, user_offline; per room: occupied,
    // vacated. (A `~sub` refused while Redis comes back wrote its `subscribe` and then its
    // `unsubscribe`: the subscription was undone.)
    let complete = |e: &[Value]| {
        users.iter().all(|u| {
            ["user_online", "connect", "subscribe", "disconnect", "user_offline"]
                .iter()
                .all(|t| count(e, |e| e["type"] == *t && e["user"] == *u) >= 1)
                && ["occupied", "vacated"]
                    .iter()
                    .all(|t| count(e, |e| e["type"] == *t && e["topic"] == format!("room/{u}").as_str()) >= 1)
        })
    };
    backend.until("every user's and every room's events", complete).await;
    // Time for a late duplicate under another id to show up, if there were one.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let events = backend.events();
    for u in users {
        for t in ["user_online", "connect", "disconnect", "user_offline"] {
            assert_eq!(count(&events, |e| e["type"] == t && e["user"] == u), 1, "{u}'s {t}: {events:#?}");
        }
        let subscribes = count(&events, |e| e["type"] == "subscribe" && e["user"] == u);
        let unsubscribes = count(&events, |e| e["type"] == "unsubscribe" && e["user"] == u);
        assert_eq!(subscribes, unsubscribes + 1, "{u}: the last subscription held");
        let room = format!("room/{u}");
        for t in ["occupied", "vacated"] {
            assert_eq!(count(&events, |e| e["type"] == t && e["topic"] == room.as_str()), 1, "{room}: {t}");
        }
    }
    check_order(&events);
    let stats = backend.stats().await;
    assert_eq!(stats["bad_signature"], 0, "{stats}");
    println!(
        "webhook, Redis SIGKILLed and restarted with its append-only file: {} events, 0 lost, {} \
         duplicates received (dropped by id), 0 out of order",
        events.len(),
        stats["duplicates"]
    );
}

/// Runs the binary with `args` and the configuration `toml`; returns (exit code, stdout, stderr).
fn run(args: &[&str], toml: &str) -> (Option<i32>, String, String) {
    let dir = std::env::temp_dir().join(format!(
        "switchboard-webhook-cfg-{}-{}",
        std::process::id(),
        common::rand_id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("switchboard.toml");
    std::fs::write(&path, toml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .args(["--listen", "127.0.0.1:0", "--config", path.to_str().unwrap()])
        .env("RUST_LOG", "off")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn events_settings_are_checked_at_start_and_by_checkconfig() {
    let good = config(
        "dev",
        &format!(
            "dev = true\n[events]\nurl = \"http://127.0.0.1:9/e\"\nsecret = \"{SECRET}\"\nkinds = [\"connect\", \"user_offline\"]\n\
             previous_secrets = [\"{SECRET}-retired\"]\nnamespaces = [\"main\"]\ntopics = [\"room/{{name}}\"]\nmax_batch = 10\n"
        ),
    );
    let (code, out, err) = run(&["checkconfig"], &good);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("events: POST to http://127.0.0.1:9/e (signed also with 1 previous secret), kinds connect user_offline, namespaces main, topics room/{name}, batches ≤ 10 events"),
        "{out}"
    );
    let bad = config(
        "dev",
        "dev = true\n[events]\nurl = \"ftp://x\"\nsecret = \"short\"\nprevious_secrets = [\"short2\"]\nnamespaces = [\"nope\"]\ntopics = [\"a//b\", \"{}\"]\n\
         max_batch = 0\ntimeout_ms = 0\n",
    );
    for args in [&["checkconfig"][..], &[][..]] {
        let (code, _, err) = run(args, &bad);
        assert_eq!(code, Some(2), "{err}");
        for key in [
            "events.url",
            "events.secret",
            "events.previous_secrets",
            "events.namespaces",
            "events.topics",
            "events.max_batch",
            "events.timeout_ms",
        ] {
            assert!(err.contains(&format!("for key `{key}`")), "{key}: {err}");
        }
        assert!(err.contains("unknown namespace `nope`"), "{err}");
    }
    let unknown_kind = config(
        "dev",
        &format!(
            "dev = true\n[events]\nurl = \"http://h/\"\nsecret = \"{SECRET}\"\nkinds = [\"connected\"]\n"
        ),
    );
    let (code, _, err) = run(&["checkconfig"], &unknown_kind);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("connected") && err.contains("events.kinds"), "{err}");
}
