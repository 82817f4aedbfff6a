//! The Redis Stream outbox against a real `redis-server` and the real `switchboard` binary:
//! what the application adds to the stream reaches WebSocket subscribers in order per topic,
//! bad entries go to the dead-letter stream with their reason, two servers publish each entry
//! once, and a crashed consumer's pending entries are claimed and published first.

mod common;
mod outbox_support;

use std::time::{Duration, Instant};

use common::redis::Redis;
use common::{http, metric, start_with};
use outbox_support::{crash, deliveries, numbers, start, subscriber};
use redis::aio::MultiplexedConnection;
use serde_json::json;

const STREAM: &str = "app:outbox";

fn config(redis: &Redis, outbox: &str, cluster: bool) -> String {
    let cluster = if cluster { format!("[redis]\nurl = \"{}\"\n", redis.url()) } else { String::new() };
    format!(
        r#"
dev = true

{cluster}
[namespaces.main]
identify = "dev"

[namespaces.main.topics."orders/{{id}}"]
history = 1000

[outbox.redis]
url = "{url}"
stream = "{STREAM}"
lease_ms = 1000
poll_interval_ms = 100
{outbox}
"#,
        url = redis.url()
    )
}

/// `XADD STREAM * field value …`.
async fn add(conn: &mut MultiplexedConnection, fields: &[(&str, &[u8])]) -> String {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(STREAM).arg("*");
    for (k, v) in fields {
        cmd.arg(*k).arg(*v);
    }
    cmd.query_async(conn).await.unwrap()
}

async fn add_order(conn: &mut MultiplexedConnection, topic: &str, n: i64) -> String {
    let data = json!({ "n": n }).to_string();
    add(conn, &[("topic", topic.as_bytes()), ("data", data.as_bytes())]).await
}

async fn len(conn: &mut MultiplexedConnection, stream: &str) -> i64 {
    redis::cmd("XLEN").arg(stream).query_async(conn).await.unwrap()
}

async fn pending(conn: &mut MultiplexedConnection) -> i64 {
    let reply: Vec<redis::Value> =
        redis::cmd("XPENDING").arg(STREAM).arg("switchboard").query_async(conn).await.unwrap();
    match &reply[0] {
        redis::Value::Int(n) => *n,
        other => panic!("XPENDING: {other:?}"),
    }
}

/// Waits until the stream is empty (published entries are deleted once acknowledged).
async fn drained(conn: &mut MultiplexedConnection) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while len(conn, STREAM).await > 0 {
        assert!(Instant::now() < deadline, "the stream was not emptied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn entries_reach_subscribers_in_order_per_topic_and_bad_ones_are_dead_lettered() {
    let redis = Redis::start();
    let mut conn = redis.conn().await;
    let server = start(&config(&redis, "", false)).await;
    let mut reader = subscriber(&server, &["orders/a", "orders/b"]).await;

    // The application's transaction (MULTI … EXEC): several entries at once.
    let mut pipe = redis::pipe();
    pipe.atomic();
    for n in 0..60_i64 {
        let topic = if n % 4 == 0 { "orders/b" } else { "orders/a" };
        let data = json!({ "n": n }).to_string();
        pipe.cmd("XADD")
            .arg(STREAM)
            .arg("*")
            .arg("topic")
            .arg(topic)
            .arg("data")
            .arg(data)
            .arg("event")
            .arg("order");
    }
    let _: () = pipe.query_async(&mut conn).await.unwrap();
    // Bad entries between good ones.
    add(&mut conn, &[("data", b"{}")]).await;
    add(&mut conn, &[("topic", b"orders/a"), ("data", b"{not json")]).await;
    add(&mut conn, &[("topic", b"orders/a"), ("data", b"{}"), ("key", "k".repeat(65).as_bytes())]).await;
    add(&mut conn, &[("topic", b"orders/a"), ("data", b"\xff\xfe")]).await;
    add(&mut conn, &[("topic", b"orders//a"), ("data", b"{}")]).await;
    add_order(&mut conn, "orders/a", 60).await;
    add(&mut conn, &[("topic", b"orders/b"), ("data", br#"{"n": 61}"#), ("key", b"order-61")]).await;
    add(&mut conn, &[("topic", b"orders/b"), ("data", br#"{"n": 61}"#), ("key", b"order-61")]).await;
    add_order(&mut conn, "orders/b", 62).await;

    let got = deliveries(&mut reader, 63).await;
    for topic in ["orders/a", "orders/b"] {
        let ns: Vec<i64> = numbers(&got.iter().filter(|d| d["topic"] == topic).cloned().collect::<Vec<_>>());
        let mut sorted = ns.clone();
        sorted.sort_unstable();
        assert_eq!(ns, sorted, "{topic}: in order");
        sorted.dedup();
        assert_eq!(ns.len(), sorted.len(), "{topic}: each once (order-61 twice is one publication)");
    }
    assert_eq!(numbers(&got).iter().copied().max(), Some(62));
    assert!(got.iter().filter(|d| d["data"]["n"].as_i64() < Some(60)).all(|d| d["event"] == "order"));

    drained(&mut conn).await;
    assert_eq!(pending(&mut conn).await, 0, "everything acknowledged");
    let dead: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
        .arg(format!("{STREAM}:dead"))
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let field = |fields: &[Vec<u8>], name: &str| {
        fields
            .chunks(2)
            .find(|kv| kv[0] == name.as_bytes())
            .map(|kv| String::from_utf8_lossy(&kv[1]).into_owned())
    };
    let reasons: Vec<String> = dead.iter().map(|(_, f)| field(f, "reason").unwrap()).collect();
    assert_eq!(reasons, ["bad_topic", "bad_data", "bad_key", "bad_data", "bad_topic"]);
    assert_eq!(field(&dead[1].1, "data").as_deref(), Some("{not json"), "the entry as it was");
    assert!(field(&dead[1].1, "detail").unwrap().contains("not JSON"));
    assert!(field(&dead[1].1, "source_id").unwrap().contains('-'));
    let (_, page) = http(server.addr, "GET", "/metrics", None, None).await;
    assert_eq!(metric(&page, "switchboard_outbox_published_total{source=\"redis\"}"), Some(64.0));
    assert_eq!(
        metric(&page, "switchboard_outbox_moved_aside_total{source=\"redis\",reason=\"bad_data\"}"),
        Some(2.0)
    );
}

#[tokio::test]
async fn two_servers_publish_each_entry_once_and_the_survivor_takes_over_a_crash() {
    let redis = Redis::start();
    let mut conn = redis.conn().await;
    let toml = config(&redis, "", true);
    let a = start(&toml).await;
    let b = start_with(&toml, &[("RUST_LOG", "info")], &[]).await;
    assert!(b.logged(&["outbox: another server consumes app:outbox; standing by"]).await);
    let mut on_a = subscriber(&a, &["orders/one"]).await;
    let mut on_b = subscriber(&b, &["orders/one"]).await;

    for n in 0..=100 {
        add_order(&mut conn, "orders/one", n).await;
    }
    for reader in [&mut on_a, &mut on_b] {
        // In order, each once: the 101st delivery is the last entry, not a duplicate.
        assert_eq!(numbers(&deliveries(reader, 101).await), (0..=100).collect::<Vec<_>>());
    }

    // The consumer crashes holding the lease; the other takes over once it runs out.
    let mut a = a;
    crash(&mut a.child);
    let _ = a.child.wait().await;
    for n in 101..120 {
        add_order(&mut conn, "orders/one", n).await;
    }
    assert!(b.logged(&["outbox: consuming app:outbox"]).await, "the standby took over");
    assert_eq!(numbers(&deliveries(&mut on_b, 19).await), (101..120).collect::<Vec<_>>());
    drained(&mut conn).await;
}

#[tokio::test]
async fn a_crashed_consumers_pending_entries_are_claimed_and_published_first() {
    let redis = Redis::start();
    let mut conn = redis.conn().await;
    // A consumer read five entries and crashed before acknowledging them, holding the lease.
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(STREAM)
        .arg("switchboard")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .unwrap();
    for n in 0..5 {
        add_order(&mut conn, "orders/p", n).await;
    }
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("switchboard")
        .arg("ghost")
        .arg("COUNT")
        .arg(100)
        .arg("STREAMS")
        .arg(STREAM)
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(pending(&mut conn).await, 5);
    let lease = format!("{STREAM}:lease");
    let _: () = redis::cmd("SET").arg(&lease).arg("ghost/0").query_async(&mut conn).await.unwrap();
    for n in 5..8 {
        add_order(&mut conn, "orders/p", n).await;
    }

    let server = start_with(&config(&redis, "", false), &[("RUST_LOG", "info")], &[]).await;
    assert!(server.logged(&["standing by"]).await, "the ghost's lease holds until it runs out");
    let mut reader = subscriber(&server, &["orders/p"]).await;
    // The ghost's lease runs out.
    let _: () = redis::cmd("PEXPIRE").arg(&lease).arg(1).query_async(&mut conn).await.unwrap();
    assert!(server.logged(&["outbox: consuming", "5 pending entries claimed"]).await);
    assert_eq!(numbers(&deliveries(&mut reader, 8).await), (0..8).collect::<Vec<_>>());
    drained(&mut conn).await;
    assert_eq!(pending(&mut conn).await, 0);
    let consumers: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(STREAM)
        .arg("switchboard")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(consumers.len(), 1, "the ghost, holding nothing, was removed from the group");
}
