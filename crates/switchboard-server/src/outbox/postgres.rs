//! The PostgreSQL outbox: rows of a table (`migrations/0001_switchboard_outbox.sql`), published
//! in `id` order and then deleted; bad rows moved to the failed table with their reason.
//!
//! One server at a time consumes the table: the one holding a session-level advisory lock
//! (`pg_try_advisory_lock`) on its connection; the others stand by and try again every poll
//! interval, so one takes over as soon as the consumer's session ends (its process died, or it
//! stopped). A single consumer reading in `id` order is what keeps the order of each topic:
//! with `FOR UPDATE SKIP LOCKED` alone, two servers would each take rows of one topic and
//! publish them concurrently, out of order.
//!
//! The consumer `LISTEN`s on the channel that the table's insert trigger notifies, and reads
//! the table again at every notification, or after `poll_interval_ms` without one (the safety
//! net when notifications are lost or the trigger is missing). Each round reads up to `batch`
//! rows, publishes them (topics in parallel, each topic in order), and deletes in one statement
//! the rows published and moves the bad ones aside. A transient failure leaves the rest of its
//! topic in the table, in order, retried with backoff; a lost connection is reconnected with
//! backoff. A row published whose delete did not happen (a crash, a lost connection) is
//! published again with the same key (`key`, or `outbox:ID`): where the topic keeps history the
//! hub recognises it and does not deliver it twice.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, Client, Connection, NoTls, Row, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_util::sync::CancellationToken;

use super::publish::{
    Backoff, Item, MAX_BACKOFF, Names, Outcome, Publisher, Reason, is_identifier, pause, quoted,
    reconnect_after, redact,
};
use crate::settings::PostgresOutboxSettings;

/// Largest `batch`.
const MAX_BATCH: usize = 10_000;
/// Longest `poll_interval_ms` (a day).
const MAX_POLL_MS: u64 = 86_400_000;
/// Longest wait between two attempts to reconnect or to publish again.
/// Longest time to connect (TCP, TLS, authentication).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Checks `[outbox.postgres]` without reading files.
pub(super) fn check(s: &PostgresOutboxSettings) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let mut err = |key: &str, what: String| problems.push((format!("outbox.postgres.{key}"), what));
    if let Err(e) = parse_url(&s.url) {
        err("url", e);
    }
    if !is_identifier(&s.table, true) {
        err(
            "table",
            format!("`{}` is not a table name (`name` or `schema.name`, letters, digits, _)", s.table),
        );
    }
    if let Some(failed) = &s.failed_table
        && !is_identifier(failed, true)
    {
        err("failed_table", format!("`{failed}` is not a table name (`name` or `schema.name`)"));
    }
    let failed_table = s.failed_table();
    if failed_table == s.table {
        err("failed_table", "the failed table cannot be the outbox table".to_owned());
    } else if s.failed_table.is_none() && is_identifier(&s.table, true) && !is_identifier(&failed_table, true)
    {
        err(
            "failed_table",
            format!("`{failed_table}` (the default: the table's name + _failed) is too long"),
        );
    }
    if !is_identifier(&s.channel, false) {
        err("channel", format!("`{}` is not a channel name (letters, digits, _)", s.channel));
    }
    if s.batch == 0 || s.batch > MAX_BATCH {
        err("batch", format!("{} is not between 1 and {MAX_BATCH}", s.batch));
    }
    if !(10..=MAX_POLL_MS).contains(&s.poll_interval_ms) {
        err("poll_interval_ms", format!("{} is not between 10 and {MAX_POLL_MS}", s.poll_interval_ms));
    }
    problems
}

/// Parses a `postgres://` URL (the password is never part of an error).
fn parse_url(url: &str) -> Result<tokio_postgres::Config, String> {
    let scheme = url.split("://").next().unwrap_or_default();
    if !url.contains("://") || !matches!(scheme, "postgres" | "postgresql") {
        return Err(format!(
            "`{}` is not a postgres:// URL (postgres://USER:PASSWORD@HOST:PORT/DATABASE)",
            redact(url)
        ));
    }
    let config = tokio_postgres::Config::from_str(url)
        .map_err(|e| format!("`{}` is not a valid PostgreSQL URL: {}", redact(url), chain(&e)))?;
    if config.get_hosts().is_empty() {
        return Err(format!("`{}` names no host", redact(url)));
    }
    match config.get_ssl_mode() {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => Ok(config),
        _ => Err("sslmode must be disable, prefer or require".to_owned()),
    }
}

/// An error and its causes on one line.
fn chain(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {}", db.severity(), db.message());
    }
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// `[outbox.postgres]`, ready to run.
#[derive(Clone)]
pub(crate) struct PostgresSource(Arc<Inner>);

struct Inner {
    settings: PostgresOutboxSettings,
    config: tokio_postgres::Config,
    /// `Some` for `sslmode=require`.
    tls: Option<MakeRustlsConnect>,
    /// The URL without its password.
    shown: String,
    /// The advisory lock's key.
    lock: i64,
    fetch: String,
    delete: String,
    move_aside: String,
}

impl PostgresSource {
    /// Parses the URL and reads `ca_file`.
    pub(crate) fn new(s: &PostgresOutboxSettings) -> Result<Self, String> {
        let mut config = parse_url(&s.url).map_err(|e| format!("outbox.postgres.url: {e}"))?;
        let tls = if config.get_ssl_mode() == SslMode::Require {
            let tls = crate::tls::client_config(s.ca_file.as_deref())
                .map_err(|e| format!("outbox.postgres.ca_file: {e}"))?;
            Some(MakeRustlsConnect::new(tls))
        } else {
            if s.ca_file.is_some() {
                return Err("outbox.postgres.ca_file: only used with sslmode=require in the URL".to_owned());
            }
            // `prefer` would try TLS first and fail on a certificate it cannot verify: without
            // `require`, plain connections (as on localhost or a Unix socket).
            config.ssl_mode(SslMode::Disable);
            None
        };
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("switchboard-outbox");
        }
        // A consumer cut off from the database is noticed in about a minute, not in two hours.
        if config.get_keepalives_idle() >= Duration::from_secs(7200) {
            config.keepalives_idle(Duration::from_secs(30));
        }
        let table = quoted(&s.table);
        let failed = quoted(&s.failed_table());
        let fetch = format!(
            "SELECT id::bigint, topic, data::text, event, key, \
             EXTRACT(EPOCH FROM clock_timestamp() - created_at)::float8 \
             FROM {table} ORDER BY id LIMIT $1"
        );
        let delete = format!("DELETE FROM {table} WHERE id = ANY($1::bigint[])");
        let move_aside = format!(
            "WITH gone AS (DELETE FROM {table} WHERE id = ANY($1::bigint[]) \
               RETURNING id, topic, data, event, key, created_at), \
             why AS (SELECT * FROM unnest($2::bigint[], $3::text[], $4::text[]) AS w(id, reason, detail)) \
             INSERT INTO {failed} (id, topic, data, event, key, created_at, reason, detail) \
             SELECT gone.id, gone.topic, gone.data::text, gone.event, gone.key, gone.created_at, why.reason, why.detail \
             FROM gone JOIN why ON why.id = gone.id \
             ON CONFLICT (id) DO NOTHING"
        );
        let shown = redact(&s.url);
        let lock = lock_key(&s.table);
        Ok(Self(Arc::new(Inner { settings: s.clone(), config, tls, shown, lock, fetch, delete, move_aside })))
    }

    /// `checkconfig`'s line.
    pub(crate) fn describe(&self) -> String {
        let s = &self.0.settings;
        format!(
            "{} ({}), table {} (bad rows to {}), LISTEN {}, batches of {}, polled every {} ms",
            self.0.shown,
            if self.0.tls.is_some() { "TLS" } else { "plain" },
            s.table,
            s.failed_table(),
            s.channel,
            s.batch,
            s.poll_interval_ms
        )
    }

    /// Consumes the table until `stop`.
    pub(crate) async fn run(self, publisher: Publisher, stop: CancellationToken) {
        let inner = self.0;
        let names = Names { server: "PostgreSQL", kept: "rows stay in the table until published" };
        let mut backoff = Backoff::new(MAX_BACKOFF);
        let mut failed_before = false;
        loop {
            let result = session(&inner, &publisher, &stop, &mut backoff, failed_before).await;
            publisher.consuming(false);
            let Err(problem) = result else {
                tracing::info!(at = %inner.shown, "outbox: stopped consuming PostgreSQL");
                return;
            };
            failed_before = true;
            if !reconnect_after(&names, &inner.shown, &problem, &mut backoff, &stop).await {
                return;
            }
        }
    }
}

/// A stable key for the table's advisory lock (FNV-1a of the table's name): every server
/// configured with the same table in the same database takes the same lock.
fn lock_key(table: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in "switchboard-outbox:".bytes().chain(table.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_be_bytes(hash.to_be_bytes())
}

/// Connects and drives the connection in a task that wakes `Notify` at each notification (and
/// when the connection ends).
async fn connect(inner: &Inner) -> Result<(Client, Arc<Notify>), String> {
    let wake = Arc::new(Notify::new());
    let connecting = async {
        match &inner.tls {
            Some(tls) => {
                let (client, connection) = inner.config.connect(tls.clone()).await?;
                drive(connection, wake.clone());
                Ok(client)
            }
            None => {
                let (client, connection) = inner.config.connect(NoTls).await?;
                drive(connection, wake.clone());
                Ok(client)
            }
        }
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(client)) => Ok((client, wake)),
        Ok(Err(e)) => Err(format!("cannot connect to PostgreSQL: {}", chain(&e))),
        Err(_) => {
            Err(format!("cannot connect to PostgreSQL: no answer within {} s", CONNECT_TIMEOUT.as_secs()))
        }
    }
}

fn drive<S, T>(mut connection: Connection<S, T>, wake: Arc<Notify>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => wake.notify_one(),
                Some(Ok(AsyncMessage::Notice(notice))) => {
                    tracing::debug!("outbox: PostgreSQL says {}: {}", notice.severity(), notice.message());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::debug!("outbox: PostgreSQL connection ended: {}", chain(&e));
                    break;
                }
                None => break,
            }
        }
        // Whoever waits for a notification finds out that the connection is gone.
        wake.notify_one();
    });
}

/// A failed statement, with a hint where the schema is missing.
fn failed(what: &str, table: &str, e: &tokio_postgres::Error) -> String {
    let missing =
        e.code() == Some(&SqlState::UNDEFINED_TABLE) || e.code() == Some(&SqlState::UNDEFINED_COLUMN);
    let hint = if missing {
        format!(
            " (is the outbox schema installed? apply migrations/0001_switchboard_outbox.sql, adapted to table \
             {table}; see docs/outbox.md)"
        )
    } else {
        String::new()
    };
    // Class 08 (connection exception) and 57P (operator intervention: a shutdown, a restart).
    let gone = e.code().is_some_and(|c| c.code().starts_with("08") || c.code().starts_with("57P"));
    if e.is_closed() || gone || e.as_db_error().is_none() && !missing {
        format!("lost the PostgreSQL connection while {what}: {}", chain(e))
    } else {
        format!("PostgreSQL failed while {what}: {}{hint}", chain(e))
    }
}

/// One connection: stand by until this server holds the lock, then consume until `stop` (Ok) or
/// a failure (Err, to reconnect).
async fn session(
    inner: &Inner,
    publisher: &Publisher,
    stop: &CancellationToken,
    backoff: &mut Backoff,
    failed_before: bool,
) -> Result<(), String> {
    let s = &inner.settings;
    let table = s.table.as_str();
    let poll = Duration::from_millis(s.poll_interval_ms);
    let (client, wake) = tokio::select! {
        () = stop.cancelled() => return Ok(()),
        connected = connect(inner) => connected?,
    };
    if failed_before {
        tracing::info!(postgres = %inner.shown, "outbox: connected to PostgreSQL again");
    } else {
        tracing::info!(postgres = %inner.shown, "outbox: connected to PostgreSQL");
    }
    backoff.reset();
    let mut told = false;
    loop {
        let row = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&inner.lock])
            .await
            .map_err(|e| failed("taking the consumer lock", table, &e))?;
        if row.get::<_, bool>(0) {
            break;
        }
        publisher.consuming(false);
        if !told {
            tracing::info!(table, "outbox: another server consumes {table}; standing by");
            told = true;
        }
        if !pause(poll, stop).await {
            return Ok(());
        }
    }
    client
        .batch_execute(&format!("LISTEN \"{}\"", s.channel))
        .await
        .map_err(|e| failed("listening", table, &e))?;
    let fetch = client.prepare(&inner.fetch).await.map_err(|e| failed("preparing the read", table, &e))?;
    let delete =
        client.prepare(&inner.delete).await.map_err(|e| failed("preparing the delete", table, &e))?;
    let move_aside =
        client.prepare(&inner.move_aside).await.map_err(|e| failed("preparing the move aside", table, &e))?;
    publisher.consuming(true);
    tracing::info!(
        table,
        "outbox: consuming {table} (batches of {}, LISTEN {}, read every {} ms without a notification)",
        s.batch,
        s.channel,
        s.poll_interval_ms
    );
    let limit = i64::try_from(s.batch).unwrap_or(i64::MAX);
    let mut retry = Backoff::new(MAX_BACKOFF);
    // The next batch, read in the same round trip as the previous batch's delete.
    let mut next: Option<Vec<Row>> = None;
    while !stop.is_cancelled() {
        let rows = match next.take() {
            Some(rows) => rows,
            None => {
                client.query(&fetch, &[&limit]).await.map_err(|e| failed("reading the outbox", table, &e))?
            }
        };
        if rows.is_empty() {
            publisher.idle();
            tokio::select! {
                () = stop.cancelled() => break,
                () = wake.notified() => {}
                () = tokio::time::sleep(poll) => {}
            }
            continue;
        }
        let (ids, items) = decode(&rows);
        let ours = || !client.is_closed();
        let outcomes = publisher.publish(&items, &ours).await;
        if outcomes.contains(&Outcome::Pending) {
            settle(&client, &delete, &move_aside, &ids, &outcomes)
                .await
                .map_err(|e| failed("deleting published rows", table, &e))?;
            publisher.retried();
            if !pause(retry.delay(), stop).await {
                break;
            }
            continue;
        }
        retry.reset();
        // Pipelined on the connection: the delete (its own transaction) runs before the read,
        // which therefore no longer sees the rows just published.
        let settling = settle(&client, &delete, &move_aside, &ids, &outcomes);
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&limit];
        let (settled, read) = tokio::join!(settling, client.query(&fetch, &params));
        settled.map_err(|e| failed("deleting published rows", table, &e))?;
        next = Some(read.map_err(|e| failed("reading the outbox", table, &e))?);
    }
    Ok(())
}

/// The rows as items.
fn decode(rows: &[Row]) -> (Vec<i64>, Vec<Item>) {
    let mut ids = Vec::with_capacity(rows.len());
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        let id: i64 = row.get(0);
        let topic: Option<String> = row.get(1);
        let data: Option<String> = row.get(2);
        let age: Option<f64> = row.get(5);
        let defect = match (&topic, &data) {
            (None, _) => Some((Reason::BadTopic, "topic is NULL".to_owned())),
            (_, None) => Some((Reason::BadData, "data is NULL".to_owned())),
            _ => None,
        };
        ids.push(id);
        items.push(Item {
            topic: topic.unwrap_or_default(),
            data: data.unwrap_or_default(),
            event: row.get(3),
            key: row.get(4),
            fallback_key: format!("outbox:{id}"),
            age: age.filter(|a| a.is_finite() && *a >= 0.0).map(Duration::from_secs_f64),
            defect,
        });
    }
    (ids, items)
}

/// Deletes the published rows and moves the bad ones aside, in one statement.
async fn settle(
    client: &Client,
    delete: &Statement,
    move_aside: &Statement,
    ids: &[i64],
    outcomes: &[Outcome],
) -> Result<(), tokio_postgres::Error> {
    let mut gone = Vec::new();
    let (mut bad, mut reasons, mut details) = (Vec::new(), Vec::new(), Vec::new());
    for (id, outcome) in ids.iter().zip(outcomes) {
        match outcome {
            Outcome::Published => gone.push(*id),
            Outcome::Aside(reason, detail) => {
                gone.push(*id);
                bad.push(*id);
                reasons.push(reason.as_str());
                details.push(detail.as_str());
            }
            Outcome::Pending => {}
        }
    }
    if !bad.is_empty() {
        client.execute(move_aside, &[&gone, &bad, &reasons, &details]).await?;
    } else if !gone.is_empty() {
        client.execute(delete, &[&gone]).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> PostgresOutboxSettings {
        PostgresOutboxSettings {
            url: url.to_owned(),
            table: "switchboard_outbox".to_owned(),
            failed_table: None,
            channel: "switchboard_outbox".to_owned(),
            batch: 500,
            poll_interval_ms: 1000,
            ca_file: None,
        }
    }

    #[test]
    fn settings_are_checked() {
        assert!(check(&settings("postgres://app:pw@db:5432/app")).is_empty());
        assert!(check(&settings("postgresql://localhost/app?sslmode=require")).is_empty());
        let keys = |s: &PostgresOutboxSettings| check(s).into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(keys(&settings("mysql://db/app")), ["outbox.postgres.url"]);
        assert_eq!(keys(&settings("host=db user=app")), ["outbox.postgres.url"]);
        let problems = check(&settings("postgres://app:hunter2@db/app?sslmode=bogus"));
        assert_eq!(problems.len(), 1);
        assert!(!problems[0].1.contains("hunter2"), "{problems:?}");
        let mut s = settings("postgres://db/app");
        s.table = "drop table x".into();
        s.batch = 0;
        s.poll_interval_ms = 1;
        s.channel = "a.b".into();
        assert_eq!(
            keys(&s),
            [
                "outbox.postgres.table",
                "outbox.postgres.channel",
                "outbox.postgres.batch",
                "outbox.postgres.poll_interval_ms"
            ]
        );
        let mut s = settings("postgres://db/app");
        s.failed_table = Some(s.table.clone());
        assert_eq!(keys(&s), ["outbox.postgres.failed_table"]);
    }

    #[test]
    fn plain_unless_required_and_the_lock_key_is_stable() {
        let plain = PostgresSource::new(&settings("postgres://db/app")).unwrap();
        assert!(plain.0.tls.is_none());
        assert_eq!(plain.0.config.get_ssl_mode(), SslMode::Disable);
        let tls = PostgresSource::new(&settings("postgres://db/app?sslmode=require")).unwrap();
        assert!(tls.0.tls.is_some());
        assert!(tls.describe().contains("TLS"));
        assert_eq!(lock_key("switchboard_outbox"), lock_key("switchboard_outbox"));
        assert_ne!(lock_key("switchboard_outbox"), lock_key("other"));
        assert!(!plain.describe().contains("pw"));
    }
}
