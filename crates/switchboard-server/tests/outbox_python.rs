//! The Python example backend (examples/python-backend/outbox_publish.py, psycopg 3) against a
//! real PostgreSQL and the real `switchboard` binary with `[outbox.postgres]`: what it commits in
//! one transaction (the order's row and the outbox row) reaches a WebSocket subscriber; what it
//! rolls back publishes nothing and changes nothing.
//!
//! The interpreter is `target/pyvenv/bin/python3` (scripts/test.sh makes it and installs
//! `psycopg[binary]` there), or `SWITCHBOARD_PYTHON`.

mod common;
mod outbox_support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Client, Server, start_with};
use futures_util::StreamExt;
use outbox_support::Postgres;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    let python = std::env::var_os("SWITCHBOARD_PYTHON")
        .map_or_else(|| workspace().join("target/pyvenv/bin/python3"), PathBuf::from);
    assert!(
        python.exists(),
        "no Python at {}: run scripts/test.sh, or python3 -m venv target/pyvenv && \
         target/pyvenv/bin/pip install 'psycopg[binary]' (or set SWITCHBOARD_PYTHON)",
        python.display()
    );
    python
}

/// Runs the example with `args`: (exit code, stdout, stderr).
fn example(pg: &Postgres, args: &[&str]) -> (i32, String, String) {
    let script = workspace().join("examples/python-backend/outbox_publish.py");
    let out = std::process::Command::new(python())
        .arg(&script)
        .arg("--dsn")
        .arg(pg.url())
        .args(args)
        .output()
        .expect("python runs");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

fn config(pg: &Postgres) -> String {
    format!(
        r#"
dev = true

[namespaces.main]
identify = "dev"

[namespaces.main.topics."orders/{{id}}"]
history = 100

[outbox.postgres]
url = "{}"
"#,
        pg.url()
    )
}

async fn start(pg: &Postgres) -> Server {
    let server = start_with(&config(pg), &[("RUST_LOG", "info")], &[]).await;
    assert!(server.logged(&["outbox: consuming"]).await, "the outbox consumer started");
    server
}

/// The next delivery (`~msg` payload), within 30 s.
async fn delivery(c: &mut Client) -> Value {
    if let Some(at) = c.backlog.iter().position(|m| m[0] == "~msg") {
        return c.backlog.remove(at)[1].clone();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, c.ws.next())
            .await
            .expect("a delivery within 30 s")
            .expect("connection open")
            .unwrap();
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v[0] == "~msg" {
                return v[1].clone();
            }
        }
    }
}

async fn orders(db: &tokio_postgres::Client) -> Vec<(i64, String)> {
    db.query("SELECT id, state FROM orders ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn a_committed_transaction_is_published_and_a_rolled_back_one_is_not() {
    let pg = Postgres::start();
    let db = pg.migrated().await;
    let server = start(&pg).await;
    let (code, out, err) = example(&pg, &["setup"]);
    assert_eq!(code, 0, "{out}{err}");

    let (mut reader, _) = Client::identified(server.addr, json!({"name": "reader"})).await;
    reader.call("~sub", json!({"topic": "orders/41"})).await.expect("subscribed");
    reader.call("~sub", json!({"topic": "orders/42"})).await.expect("subscribed");

    // Committed: the order's row and the publication.
    let (code, out, err) = example(&pg, &["ship", "41"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("committed: order 41 is shipped"), "{out}");
    let d = delivery(&mut reader).await;
    assert_eq!(d["topic"], "orders/41");
    assert_eq!(d["event"], "order");
    assert_eq!(d["data"], json!({"id": 41, "state": "shipped"}));
    assert_eq!(orders(&db).await, [(41, "shipped".to_owned())]);

    // Rolled back after both writes: neither the order nor the publication exists.
    let (code, out, err) = example(&pg, &["ship", "42", "--state", "cancelled", "--fail"]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("rolled back"), "{err}");
    assert_eq!(orders(&db).await, [(41, "shipped".to_owned())]);
    let outbox: i64 = db.query_one("SELECT count(*) FROM switchboard_outbox", &[]).await.unwrap().get(0);
    assert_eq!(outbox, 0, "the rolled-back outbox row is not there");

    // The next commit on orders/42 is the first thing its subscriber receives: rows are published
    // in id order, so a rolled-back row, had it been published, would have come before it.
    let (code, out, err) = example(&pg, &["ship", "42"]);
    assert_eq!(code, 0, "{out}{err}");
    let d = delivery(&mut reader).await;
    assert_eq!(d["topic"], "orders/42");
    assert_eq!(d["data"], json!({"id": 42, "state": "shipped"}));
    assert_eq!(d["seq"], 1, "nothing was published to orders/42 before");
    assert_eq!(orders(&db).await, [(41, "shipped".to_owned()), (42, "shipped".to_owned())]);
    // And no other delivery reached the subscriber: a ~ping round trip comes back with nothing
    // before it.
    reader.call("~ping", Value::Null).await.expect("pong");
    assert!(reader.backlog.iter().all(|m| m[0] != "~msg"), "{:?}", reader.backlog);
}

#[tokio::test]
async fn bad_invocations_fail_with_a_clear_message() {
    let pg = Postgres::start();
    let _db = pg.migrated().await;
    // No orders table yet: a database error, exit 1, nothing committed.
    let (code, out, err) = example(&pg, &["ship", "7"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("database error") && err.contains("orders"), "{err}");
    // Not a number: argparse's usage error, exit 2.
    let (code, _, err) = example(&pg, &["ship", "seven"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("invalid int value"), "{err}");
}
