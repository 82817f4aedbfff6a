//! The PostgreSQL outbox against a real PostgreSQL (initdb'd here) and the real `switchboard`
//! binary: what the application inserts reaches WebSocket subscribers in order per topic, bad
//! rows are moved aside without blocking the rows behind them, two servers publish each row
//! once, a PostgreSQL restart or a hub outage loses nothing, NOTIFY wakes the consumer and
//! polling is the safety net.

mod common;
mod outbox_support;

use std::time::{Duration, Instant};

use common::redis::Redis;
use common::{Client, Server, http, metric, start_with};
use outbox_support::{Postgres, crash, deliveries, numbers, start, subscriber};
use serde_json::{Value, json};

/// A configuration in development mode with history on `orders/*`, none on `plain/*`, and the
/// outbox of `pg`.
fn config(pg: &Postgres, outbox: &str, top: &str) -> String {
    config_url(&pg.url(), outbox, top)
}

fn config_url(url: &str, outbox: &str, top: &str) -> String {
    format!(
        r#"
dev = true
{top}

[namespaces.main]
identify = "dev"

[namespaces.main.topics."orders/{{id}}"]
history = 1000
publish = "clients"

[namespaces.main.topics."plain/{{id}}"]

[outbox.postgres]
url = "{url}"
{outbox}
"#
    )
}

async fn insert(db: &tokio_postgres::Client, topic: &str, n: i64) {
    db.execute(
        "INSERT INTO switchboard_outbox (topic, data) VALUES ($1, $2)",
        &[&topic, &json!({ "n": n }).to_string()],
    )
    .await
    .unwrap();
}

async fn count(db: &tokio_postgres::Client, table: &str) -> i64 {
    db.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.unwrap().get(0)
}

/// Waits until the outbox table is empty (everything published or moved aside).
async fn drained(db: &tokio_postgres::Client) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(db, "switchboard_outbox").await > 0 {
        assert!(Instant::now() < deadline, "the outbox table was not emptied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn metrics_page(server: &Server) -> String {
    let (status, page) = http(server.addr, "GET", "/metrics", None, None).await;
    assert_eq!(status, 200);
    page
}

#[tokio::test]
async fn rows_inserted_by_the_application_reach_subscribers_in_order_per_topic() {
    let pg = Postgres::start();
    let db = pg.migrated().await;
    let server = start(&config(&pg, "", "")).await;
    let mut reader = subscriber(&server, &["orders/a", "orders/b"]).await;

    // The application's transaction: its business change and the outbox rows commit together.
    let mut db = db;
    let tx = db.transaction().await.unwrap();
    tx.batch_execute("CREATE TABLE orders (id int primary key, state text)").await.unwrap();
    for n in 0..100_i64 {
        let topic = if n % 3 == 0 { "orders/b" } else { "orders/a" };
        tx.execute(
            "INSERT INTO switchboard_outbox (topic, data, event) VALUES ($1, $2, 'order')",
            &[&topic, &json!({ "n": n, "topic": topic }).to_string()],
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    // And rows of later transactions, one each.
    for n in 100..120 {
        insert(&db, "orders/a", n).await;
    }

    let got = deliveries(&mut reader, 120).await;
    for topic in ["orders/a", "orders/b"] {
        let of_topic: Vec<&Value> = got.iter().filter(|d| d["topic"] == topic).collect();
        let ns: Vec<i64> = of_topic.iter().map(|d| d["data"]["n"].as_i64().unwrap()).collect();
        let mut sorted = ns.clone();
        sorted.sort_unstable();
        assert_eq!(ns, sorted, "{topic}: in the order of insertion");
        let seqs: Vec<u64> = of_topic.iter().map(|d| d["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "{topic}: each once");
        assert!(of_topic.iter().all(|d| d["data"]["n"].as_i64() >= Some(100) || d["data"]["topic"] == topic));
    }
    assert!(got.iter().take(100).all(|d| d["event"] == "order"));
    assert!(got.iter().skip(100).all(|d| d.get("event").is_none()));
    assert_eq!(got.iter().filter(|d| d["topic"] == "orders/b").count(), 34);
    drained(&db).await;
    assert_eq!(count(&db, "switchboard_outbox_failed").await, 0);
    let page = metrics_page(&server).await;
    assert_eq!(metric(&page, "switchboard_outbox_published_total{source=\"postgres\"}"), Some(120.0));
    assert_eq!(metric(&page, "switchboard_outbox_consumer{source=\"postgres\"}"), Some(1.0));
    assert!(metric(&page, "switchboard_outbox_lag_seconds{source=\"postgres\"}").is_some(), "{page}");
}

#[tokio::test]
async fn bad_rows_are_moved_aside_with_their_reason_and_the_rows_behind_them_are_delivered() {
    let pg = Postgres::start();
    let db = pg.migrated().await;
    let server = start(&config(&pg, "", "[limits]\nmax_message_size = 2048")).await;
    let mut reader = subscriber(&server, &["orders/x"]).await;

    insert(&db, "orders/x", 1).await;
    let bad: [(&str, String, Option<&str>, Option<String>); 6] = [
        ("orders//x", "{}".into(), None, None),
        ("orders/x", "{not json".into(), None, None),
        ("orders/x", "{}".into(), None, Some("k".repeat(65))),
        ("orders/x", "{}".into(), Some(""), None),
        ("orders/x", json!({ "big": "x".repeat(3000) }).to_string(), None, None),
        ("~reserved/x", "{}".into(), None, None),
    ];
    for (topic, data, event, key) in &bad {
        db.execute(
            "INSERT INTO switchboard_outbox (topic, data, event, key) VALUES ($1, $2, $3, $4)",
            &[topic, data, event, key],
        )
        .await
        .unwrap();
    }
    insert(&db, "orders/x", 2).await;

    let got = deliveries(&mut reader, 2).await;
    assert_eq!(numbers(&got), [1, 2], "the good rows, around the bad ones");
    drained(&db).await;
    let rows = db
        .query(
            "SELECT topic, reason, detail, failed_at IS NOT NULL FROM switchboard_outbox_failed ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let reasons: Vec<String> = rows.iter().map(|r| r.get(1)).collect();
    assert_eq!(reasons, ["bad_topic", "bad_data", "bad_key", "bad_event", "too_large", "bad_topic"]);
    assert_eq!(rows[0].get::<_, String>(0), "orders//x");
    assert!(rows.iter().all(|r| r.get::<_, bool>(3)));
    assert!(rows[1].get::<_, String>(2).contains("not JSON"), "{:?}", rows[1].get::<_, String>(2));
    assert!(server.logged(&["moved aside", "bad_data"]).await);
    let page = metrics_page(&server).await;
    let aside = |reason: &str| {
        metric(
            &page,
            &format!("switchboard_outbox_moved_aside_total{{source=\"postgres\",reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(aside("bad_topic"), Some(2.0));
    assert_eq!(aside("too_large"), Some(1.0));
    assert_eq!(metric(&page, "switchboard_outbox_published_total{source=\"postgres\"}"), Some(2.0));
}

#[tokio::test]
async fn two_servers_on_one_table_publish_each_row_once_and_the_survivor_takes_over() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let db = pg.migrated().await;
    let toml = config(&pg, "poll_interval_ms = 100", &format!("[redis]\nurl = \"{}\"", redis.url()));
    let a = start(&toml).await;
    let b = start_with(&toml, &[("RUST_LOG", "info")], &[]).await;
    assert!(b.logged(&["outbox: another server consumes switchboard_outbox; standing by"]).await);
    let mut on_a = subscriber(&a, &["orders/one"]).await;
    let mut on_b = subscriber(&b, &["orders/one"]).await;

    for n in 0..100 {
        insert(&db, "orders/one", n).await;
    }
    insert(&db, "orders/one", 100).await;
    for reader in [&mut on_a, &mut on_b] {
        // In order, each once: the 101st delivery is the last row, not a duplicate.
        let got = deliveries(reader, 101).await;
        assert_eq!(numbers(&got), (0..=100).collect::<Vec<_>>());
    }

    // The consumer crashes; the other takes the lock and goes on.
    let mut a = a;
    crash(&mut a.child);
    let _ = a.child.wait().await;
    assert!(b.logged(&["outbox: consuming"]).await, "the standby took over");
    for n in 101..120 {
        insert(&db, "orders/one", n).await;
    }
    let got = deliveries(&mut on_b, 19).await;
    assert_eq!(numbers(&got), (101..120).collect::<Vec<_>>());
    drained(&db).await;
}

#[tokio::test]
async fn a_postgresql_restart_mid_stream_loses_nothing() {
    let pg = Postgres::start();
    let db = pg.migrated().await;
    let server = start(&config(&pg, "batch = 10\npoll_interval_ms = 100", "")).await;
    let mut reader = subscriber(&server, &["orders/r"]).await;

    db.execute(
        "INSERT INTO switchboard_outbox (topic, data) SELECT 'orders/r', json_build_object('n', g)::text \
         FROM generate_series(0, 299) g",
        &[],
    )
    .await
    .unwrap();
    drop(db);
    pg.restart();
    assert!(server.logged(&["reconnecting to PostgreSQL"]).await, "the loss was logged");
    assert!(server.logged(&["connected to PostgreSQL again"]).await, "the consumer reconnected");
    let db = pg.client().await;
    for n in 300..400 {
        insert(&db, "orders/r", n).await;
    }
    // Everything, in order, and nothing twice: a row published before the restart whose delete
    // was lost is recognised by its key (history is on for orders/*).
    let got = deliveries(&mut reader, 400).await;
    assert_eq!(numbers(&got), (0..400).collect::<Vec<_>>());
    let seqs: Vec<u64> = got.iter().map(|d| d["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=400).collect::<Vec<_>>());
    drained(&db).await;
}

#[tokio::test]
async fn notify_wakes_the_consumer_and_polling_delivers_without_it() {
    let pg = Postgres::start();
    let db = pg.migrated().await;
    // An hour between reads: only the trigger's NOTIFY can bring the row in time.
    let mut server = start(&config(&pg, "poll_interval_ms = 3600000", "")).await;
    let mut reader = subscriber(&server, &["orders/n"]).await;
    insert(&db, "orders/n", 1).await;
    assert_eq!(numbers(&deliveries(&mut reader, 1).await), [1]);
    server.child.kill().await.unwrap();

    // Without the trigger, LISTEN hears nothing: polling delivers.
    db.batch_execute("DROP TRIGGER switchboard_outbox_notify ON switchboard_outbox").await.unwrap();
    let server = start(&config(&pg, "poll_interval_ms = 100", "")).await;
    let mut reader = subscriber(&server, &["orders/n"]).await;
    insert(&db, "orders/n", 2).await;
    assert_eq!(numbers(&deliveries(&mut reader, 1).await), [2]);
}

#[tokio::test]
async fn a_row_published_again_after_a_crash_is_delivered_once_where_history_is_on() {
    let pg = Postgres::start();
    let db = pg.migrated().await;
    let server = start(&config(&pg, "", "")).await;
    let mut reader = subscriber(&server, &["orders/k"]).await;

    // Row 5 was published, then the server crashed before deleting it: the hub has seen the
    // key `outbox:5` (here published by a client with that key).
    let (mut writer, _) = Client::identified(server.addr, json!({"name": "writer"})).await;
    writer
        .call("~pub", json!({"topic": "orders/k", "data": {"n": 0}, "key": "outbox:5"}))
        .await
        .expect("published");
    assert_eq!(numbers(&deliveries(&mut reader, 1).await), [0]);
    db.batch_execute(
        "INSERT INTO switchboard_outbox (id, topic, data) VALUES (5, 'orders/k', '{\"n\": 0}'); \
         INSERT INTO switchboard_outbox (id, topic, data) VALUES (6, 'orders/k', '{\"n\": 1}'); \
         INSERT INTO switchboard_outbox (id, topic, data, key) VALUES (7, 'orders/k', '{\"n\": 2}', 'order-77'); \
         INSERT INTO switchboard_outbox (id, topic, data, key) VALUES (8, 'orders/k', '{\"n\": 2}', 'order-77'); \
         INSERT INTO switchboard_outbox (id, topic, data) VALUES (9, 'orders/k', '{\"n\": 3}');",
    )
    .await
    .unwrap();
    // Row 5 is not delivered again, nor row 8 (the application's own key, seen with row 7).
    let got = deliveries(&mut reader, 3).await;
    assert_eq!(numbers(&got), [1, 2, 3]);
    assert_eq!(got.iter().map(|d| d["seq"].as_u64().unwrap()).collect::<Vec<_>>(), [2, 3, 4]);
    drained(&db).await;
    assert_eq!(count(&db, "switchboard_outbox_failed").await, 0);
}

#[tokio::test]
async fn transient_hub_failures_are_retried_in_order_and_nothing_is_moved_aside() {
    let pg = Postgres::start();
    let mut redis = Redis::start();
    let db = pg.migrated().await;
    let toml = config(
        &pg,
        "poll_interval_ms = 100",
        &format!("[redis]\nurl = \"{}\"\ntimeout_ms = 500", redis.url()),
    );
    let server = start(&toml).await;

    redis.kill();
    for n in 0..3 {
        insert(&db, "orders/t", n).await;
    }
    assert!(server.logged(&["publishing failed", "retrying with backoff, in order"]).await);
    assert_eq!(count(&db, "switchboard_outbox_failed").await, 0, "a transient failure is not a bad row");
    redis.restart();
    drained(&db).await;
    // Redis came back empty: the topic's history holds exactly the three rows, in order.
    let (mut reader, _) = Client::identified(server.addr, json!({"name": "reader"})).await;
    let history = reader.call("~history", json!({"topic": "orders/t"})).await.expect("history");
    let ns: Vec<i64> = history["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["data"]["n"].as_i64().unwrap())
        .collect();
    assert_eq!(ns, [0, 1, 2]);
    assert_eq!(count(&db, "switchboard_outbox_failed").await, 0);
    let page = metrics_page(&server).await;
    assert!(metric(&page, "switchboard_outbox_retries_total{source=\"postgres\"}").unwrap() >= 1.0);
}

#[tokio::test]
async fn checkconfig_reports_the_outbox_and_refuses_bad_settings() {
    let dir = std::env::temp_dir().join(format!("switchboard-outbox-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run_with = |toml: &str, env: &[(&str, &str)]| {
        let path = dir.join("switchboard.toml");
        std::fs::write(&path, toml).unwrap();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
        for (k, _) in std::env::vars() {
            if k.starts_with("SWITCHBOARD_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(env.iter().copied());
        cmd.arg("checkconfig").arg("--config").arg(&path).output().unwrap()
    };
    let run = |toml: &str| run_with(toml, &[]);
    let good = r#"
dev = true
[outbox.postgres]
url = "postgres://app:hunter2@db.internal:5432/app"
batch = 200
[outbox.redis]
url = "redis://:hunter3@127.0.0.1:6379"
stream = "app:outbox"
"#;
    let out = run(good);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout
            .contains("outbox.postgres: postgres://…@db.internal:5432/app (plain), table switchboard_outbox"),
        "{stdout}"
    );
    assert!(stdout.contains("batches of 200"), "{stdout}");
    assert!(
        stdout.contains("outbox.redis: redis://…@127.0.0.1:6379, stream app:outbox (group switchboard"),
        "{stdout}"
    );
    assert!(stdout.contains("bad entries to app:outbox:dead"), "{stdout}");
    assert!(!stdout.contains("hunter"), "no password in the summary");

    let bad = r#"
dev = true
[outbox.postgres]
url = "mysql://app:hunter2@db/app"
table = "orders; drop table x"
batch = 0
[outbox.redis]
lease_ms = 5
"#;
    let out = run(bad);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for key in [
        "outbox.postgres.url",
        "outbox.postgres.table",
        "outbox.postgres.batch",
        "outbox.redis.url",
        "outbox.redis.lease_ms",
    ] {
        assert!(stderr.contains(&format!("`{key}`")), "{key}: {stderr}");
    }
    assert!(!stderr.contains("hunter2"), "no password in errors: {stderr}");

    let unknown = "dev = true\n[outbox.postgres]\nurl = \"postgres://db/app\"\ntabel = \"x\"\n";
    let out = run(unknown);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tabel"));

    // From the environment alone.
    let out =
        run_with("dev = true\n", &[("SWITCHBOARD_OUTBOX__POSTGRES__URL", "postgres://db.internal/app")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("outbox.postgres: postgres://db.internal/app (plain)"), "{stdout}");
    assert!(run("dev = true\n").status.success());
    assert!(String::from_utf8_lossy(&run("dev = true\n").stdout).contains("outbox: none"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn sslmode_require_is_tls_verified_against_the_configured_ca() {
    let pki = common::pki::Pki::new("postgres");
    let (cert, key) = pki.server("postgres");
    let pg = Postgres::start_tls(&cert, &key);
    let db = pg.migrated().await;
    let url = format!("{}?sslmode=require", pg.url());
    let ca = format!("ca_file = \"{}\"", pki.ca_file.display());
    let server = start(&config_url(&url, &ca, "")).await;
    let mut reader = subscriber(&server, &["orders/s"]).await;
    insert(&db, "orders/s", 1).await;
    assert_eq!(numbers(&deliveries(&mut reader, 1).await), [1]);
    let tls: bool = db
        .query_one(
            "SELECT coalesce(bool_and(s.ssl), false) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'switchboard-outbox'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(tls, "the consumer's connection is TLS");

    // Without the CA the certificate is not trusted: no connection, and the log says why.
    let untrusting = start_with(&config_url(&url, "", ""), &[("RUST_LOG", "info")], &[]).await;
    assert!(untrusting.logged(&["cannot connect to PostgreSQL", "TLS"]).await);
}
