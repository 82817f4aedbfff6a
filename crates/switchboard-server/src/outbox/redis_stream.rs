//! The Redis Stream outbox: entries that the application adds with `XADD` (fields `topic`,
//! `data`, optional `event` and `key`), read through a consumer group, published, then
//! acknowledged (`XACK`, and `XDEL` unless `delete_acked = false`); bad entries go to a
//! dead-letter stream with their reason.
//!
//! A consumer group alone hands entries of one topic to different consumers, which would
//! publish them concurrently, out of order. So one server at a time reads: the holder of a
//! lease (`SET KEY TOKEN NX PX lease_ms`, renewed every third of its lifetime by a script that
//! checks the token). A server that takes the lease first claims every pending entry of the
//! group (`XAUTOCLAIM`: those a crashed or stopped consumer had read and not acknowledged),
//! publishes its pending entries in id order, and only then reads new ones (`>`). A consumer
//! publishes nothing once its lease may have run out (after three quarters of its lifetime
//! without a renewal), so two servers never publish at once unless one publication takes longer
//! than a quarter of the lease; where the topic keeps history, the key (`key`, or
//! `outbox:ENTRY-ID`) makes even that a duplicate that is not delivered.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value};
use tokio_util::sync::CancellationToken;

use super::publish::{
    Backoff, Item, MAX_BACKOFF, Names, Outcome, Publisher, Reason, pause, reconnect_after, redact,
};
use crate::settings::{RedisOutboxSettings, RedisSettings};

const MAX_BATCH: usize = 10_000;
const MAX_POLL_MS: u64 = 86_400_000;
/// Longest time of one command (a blocking read: its block time more).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// Pending entries claimed per `XAUTOCLAIM`.
const CLAIM_COUNT: usize = 1000;

/// Renews the lease if it is still ours.
const RENEW: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
    return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";
/// Gives the lease up if it is still ours.
const RELEASE: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
    return redis.call('del', KEYS[1]) else return 0 end";

/// The URL the outbox reads: its own, or the cluster's.
fn url_of<'a>(s: &'a RedisOutboxSettings, cluster: Option<&'a RedisSettings>) -> Option<&'a str> {
    s.url.as_deref().or_else(|| cluster.map(|c| c.url.as_str()))
}

/// Checks `[outbox.redis]` without reading files.
pub(super) fn check(s: &RedisOutboxSettings, cluster: Option<&RedisSettings>) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let mut err = |key: &str, what: String| problems.push((format!("outbox.redis.{key}"), what));
    match url_of(s, cluster) {
        None => err("url", "no URL, and no [redis] section whose url it would default to".to_owned()),
        Some(url) => {
            if let Err(e) = client(url, None) {
                err("url", e);
            }
        }
    }
    for (key, value) in [("stream", &s.stream), ("group", &s.group)] {
        if value.is_empty() {
            err(key, "an empty name".to_owned());
        }
    }
    if s.consumer.as_deref() == Some("") {
        err("consumer", "an empty name".to_owned());
    }
    if s.dead_letter() == s.stream {
        err("dead_letter", "the dead-letter stream cannot be the outbox stream".to_owned());
    }
    if s.lease_key() == s.stream || s.lease_key() == s.dead_letter() {
        err("lease_key", "the lease needs a key of its own".to_owned());
    }
    if !(500..=600_000).contains(&s.lease_ms) {
        err("lease_ms", format!("{} is not between 500 and 600000", s.lease_ms));
    }
    if s.batch == 0 || s.batch > MAX_BATCH {
        err("batch", format!("{} is not between 1 and {MAX_BATCH}", s.batch));
    }
    if !(10..=MAX_POLL_MS).contains(&s.poll_interval_ms) {
        err("poll_interval_ms", format!("{} is not between 10 and {MAX_POLL_MS}", s.poll_interval_ms));
    }
    problems
}

/// A client for one Redis server (`redis://`, `rediss://` with `ca` or the system's roots).
fn client(url: &str, ca: Option<Vec<u8>>) -> Result<redis::Client, String> {
    let scheme = url.split("://").next().unwrap_or_default().to_ascii_lowercase();
    if !url.contains("://") || !matches!(scheme.as_str(), "redis" | "rediss") {
        return Err(format!(
            "`{}` is not a redis:// or rediss:// URL of one server (Redis Cluster is not supported here)",
            redact(url)
        ));
    }
    if scheme == "rediss" && rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
    let client = match ca {
        Some(pem) if scheme == "rediss" => redis::Client::build_with_tls(
            url,
            redis::TlsCertificates { client_tls: None, root_cert: Some(pem) },
        ),
        _ => redis::Client::open(url),
    };
    client.map_err(|e| format!("`{}` is not a valid Redis URL: {e}", redact(url)))
}

/// This host's name, for the default consumer name.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "switchboard".to_owned())
}

/// `[outbox.redis]`, ready to run.
#[derive(Clone)]
pub(crate) struct RedisSource(Arc<Inner>);

struct Inner {
    settings: RedisOutboxSettings,
    client: redis::Client,
    shown: String,
    consumer: String,
    /// The lease's value: this process's, whatever the consumer name.
    token: String,
    dead: String,
    lease_key: String,
    lease: Duration,
}

impl RedisSource {
    /// Builds the client and reads `ca_file`.
    pub(crate) fn new(s: &RedisOutboxSettings, cluster: Option<&RedisSettings>) -> Result<Self, String> {
        let url = url_of(s, cluster).ok_or("outbox.redis.url: no URL, and no [redis] section")?;
        let ca_file = match (&s.ca_file, &s.url, cluster) {
            (Some(file), _, _) => Some(file.clone()),
            (None, None, Some(c)) => c.ca_file.clone(),
            _ => None,
        };
        let ca = match ca_file {
            Some(file) => {
                let pem = std::fs::read(&file)
                    .map_err(|e| format!("outbox.redis.ca_file: cannot read {}: {e}", file.display()))?;
                if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                    return Err(format!("outbox.redis.ca_file: no PEM certificate in {}", file.display()));
                }
                Some(pem)
            }
            None => None,
        };
        let client = client(url, ca).map_err(|e| format!("outbox.redis.url: {e}"))?;
        let consumer = s.consumer.clone().unwrap_or_else(|| format!("{}-{}", hostname(), std::process::id()));
        let token = format!("{consumer}/{:016x}", rand::random::<u64>());
        Ok(Self(Arc::new(Inner {
            client,
            shown: redact(url),
            consumer,
            token,
            dead: s.dead_letter(),
            lease_key: s.lease_key(),
            lease: Duration::from_millis(s.lease_ms),
            settings: s.clone(),
        })))
    }

    /// `checkconfig`'s line.
    pub(crate) fn describe(&self) -> String {
        let (i, s) = (&self.0, &self.0.settings);
        format!(
            "{}, stream {} (group {}, consumer {}), bad entries to {}, lease {} ({} ms), batches of {}, {}",
            i.shown,
            s.stream,
            s.group,
            i.consumer,
            i.dead,
            i.lease_key,
            s.lease_ms,
            s.batch,
            if s.delete_acked { "acknowledged entries deleted" } else { "acknowledged entries kept" }
        )
    }

    /// Consumes the stream until `stop`.
    pub(crate) async fn run(self, publisher: Publisher, stop: CancellationToken) {
        let inner = self.0;
        let names = Names { server: "Redis", kept: "entries stay pending until published" };
        let mut backoff = Backoff::new(MAX_BACKOFF);
        let mut failed_before = false;
        loop {
            let result = session(&inner, &publisher, &stop, &mut backoff, failed_before).await;
            publisher.consuming(false);
            let Err(problem) = result else {
                tracing::info!(at = %inner.shown, "outbox: stopped consuming the Redis stream");
                return;
            };
            failed_before = true;
            if !reconnect_after(&names, &inner.shown, &problem, &mut backoff, &stop).await {
                return;
            }
        }
    }
}

/// A Redis command within `limit`, its failure phrased with `what`.
async fn timed<T>(
    what: &str,
    limit: Duration,
    fut: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("Redis failed while {what}: {e}")),
        Err(_) => Err(format!("Redis did not answer within {} s while {what}", limit.as_secs())),
    }
}

/// How a spell as the consumer ended.
enum Ended {
    Stopped,
    /// The lease ran out or was taken.
    Lost,
}

/// One connection: stand by until this server holds the lease, consume while it does; again
/// until `stop` (Ok) or a failure (Err, to reconnect).
async fn session(
    inner: &Inner,
    publisher: &Publisher,
    stop: &CancellationToken,
    backoff: &mut Backoff,
    failed_before: bool,
) -> Result<(), String> {
    let s = &inner.settings;
    let config =
        AsyncConnectionConfig::new().set_connection_timeout(Some(COMMAND_TIMEOUT)).set_response_timeout(None);
    let mut conn = tokio::select! {
        () = stop.cancelled() => return Ok(()),
        c = timed("connecting", COMMAND_TIMEOUT * 2, inner.client.get_multiplexed_async_connection_with_config(&config)) => c?,
    };
    if failed_before {
        tracing::info!(redis = %inner.shown, "outbox: connected to Redis again");
    } else {
        tracing::info!(redis = %inner.shown, "outbox: connected to Redis");
    }
    let created: redis::RedisResult<Value> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&s.stream)
        .arg(&s.group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await;
    match created {
        Ok(_) => tracing::info!(stream = s.stream, group = s.group, "outbox: created the consumer group"),
        Err(e) if e.code() == Some("BUSYGROUP") => {}
        Err(e) => return Err(format!("Redis failed while creating the consumer group: {e}")),
    }
    backoff.reset();
    let poll = Duration::from_millis(s.poll_interval_ms);
    let mut told = false;
    loop {
        let asked = Instant::now();
        let taken: Option<String> = timed(
            "taking the lease",
            COMMAND_TIMEOUT,
            redis::cmd("SET")
                .arg(&inner.lease_key)
                .arg(&inner.token)
                .arg("NX")
                .arg("PX")
                .arg(s.lease_ms)
                .query_async(&mut conn),
        )
        .await?;
        if taken.is_none() {
            publisher.consuming(false);
            if !told {
                tracing::info!(
                    stream = s.stream,
                    "outbox: another server consumes {}; standing by",
                    s.stream
                );
                told = true;
            }
            if !pause(poll, stop).await {
                return Ok(());
            }
            continue;
        }
        told = false;
        let ended = lead(inner, publisher, stop, &mut conn, asked).await;
        publisher.consuming(false);
        match ended {
            Ok(Ended::Stopped) => {
                let _: Result<i64, String> = timed(
                    "giving the lease up",
                    COMMAND_TIMEOUT,
                    redis::Script::new(RELEASE)
                        .key(&inner.lease_key)
                        .arg(&inner.token)
                        .invoke_async(&mut conn),
                )
                .await;
                return Ok(());
            }
            Ok(Ended::Lost) => {
                tracing::warn!(
                    stream = s.stream,
                    "outbox: lost the lease of {} (not renewed in time); standing by",
                    s.stream
                );
            }
            Err(e) => return Err(e),
        }
    }
}

/// The lease as this server last renewed it.
struct Lease {
    /// When the last successful renewal was sent: the lease lasts at least until then + its
    /// lifetime.
    renewed: Instant,
    lifetime: Duration,
}

impl Lease {
    /// Until when this server publishes: three quarters of the lifetime after the renewal.
    fn publish_until(&self) -> Instant {
        self.renewed + self.lifetime - self.lifetime / 4
    }

    fn due(&self) -> bool {
        self.renewed.elapsed() >= self.lifetime / 3
    }
}

/// Consumes while holding the lease.
async fn lead(
    inner: &Inner,
    publisher: &Publisher,
    stop: &CancellationToken,
    conn: &mut MultiplexedConnection,
    taken: Instant,
) -> Result<Ended, String> {
    let s = &inner.settings;
    let mut lease = Lease { renewed: taken, lifetime: inner.lease };
    let claimed = claim(inner, conn).await?;
    forget_idle_consumers(inner, conn).await;
    publisher.consuming(true);
    tracing::info!(
        stream = s.stream,
        claimed,
        "outbox: consuming {} as {} (batches of {}; {claimed} pending entries claimed)",
        s.stream,
        inner.consumer,
        s.batch
    );
    let block = Duration::from_millis(s.poll_interval_ms).min(inner.lease / 4).max(Duration::from_millis(1));
    let mut retry = Backoff::new(MAX_BACKOFF.min(inner.lease / 3));
    // This consumer's pending entries first (those claimed, those left by a failure), in order.
    let mut pending_first = true;
    loop {
        if stop.is_cancelled() {
            return Ok(Ended::Stopped);
        }
        if lease.due() {
            let sent = Instant::now();
            let renewed: i64 = timed(
                "renewing the lease",
                COMMAND_TIMEOUT,
                redis::Script::new(RENEW)
                    .key(&inner.lease_key)
                    .arg(&inner.token)
                    .arg(s.lease_ms)
                    .invoke_async(conn),
            )
            .await?;
            if renewed != 1 || Instant::now() >= lease.publish_until() {
                return Ok(Ended::Lost);
            }
            lease.renewed = sent;
        }
        let mut read = redis::cmd("XREADGROUP");
        read.arg("GROUP").arg(&s.group).arg(&inner.consumer).arg("COUNT").arg(s.batch);
        let limit = if pending_first {
            read.arg("STREAMS").arg(&s.stream).arg("0");
            COMMAND_TIMEOUT
        } else {
            read.arg("BLOCK")
                .arg(u64::try_from(block.as_millis()).unwrap_or(1000))
                .arg("STREAMS")
                .arg(&s.stream)
                .arg(">");
            COMMAND_TIMEOUT + block
        };
        let reply: Value = tokio::select! {
            () = stop.cancelled() => return Ok(Ended::Stopped),
            r = timed("reading the stream", limit, read.query_async(conn)) => r?,
        };
        let entries = entries(&reply).map_err(|e| format!("unexpected XREADGROUP reply: {e}"))?;
        if entries.is_empty() {
            if pending_first {
                pending_first = false;
            } else {
                publisher.idle();
            }
            continue;
        }
        let (items, ids, gone) = decode(&entries);
        let until = lease.publish_until();
        let ours = move || Instant::now() < until;
        let outcomes = publisher.publish(&items, &ours).await;
        settle(inner, conn, &entries, &ids, &gone, &outcomes).await?;
        if outcomes.contains(&Outcome::Pending) {
            publisher.retried();
            pending_first = true;
            if !pause(retry.delay(), stop).await {
                return Ok(Ended::Stopped);
            }
        } else {
            retry.reset();
        }
    }
}

/// Takes every pending entry of the group (from crashed or stopped consumers): returns how many.
async fn claim(inner: &Inner, conn: &mut MultiplexedConnection) -> Result<usize, String> {
    let s = &inner.settings;
    let mut cursor = "0-0".to_owned();
    let mut claimed = 0;
    loop {
        let reply: Value = timed(
            "claiming pending entries",
            COMMAND_TIMEOUT,
            redis::cmd("XAUTOCLAIM")
                .arg(&s.stream)
                .arg(&s.group)
                .arg(&inner.consumer)
                .arg(0)
                .arg(&cursor)
                .arg("COUNT")
                .arg(CLAIM_COUNT)
                .arg("JUSTID")
                .query_async(conn),
        )
        .await?;
        let Value::Array(parts) = reply else { return Err("unexpected XAUTOCLAIM reply".to_owned()) };
        cursor = parts.first().and_then(text).ok_or("unexpected XAUTOCLAIM reply")?;
        claimed += parts.get(1).map_or(0, |ids| match ids {
            Value::Array(ids) => ids.len(),
            _ => 0,
        });
        if cursor == "0-0" {
            return Ok(claimed);
        }
    }
}

/// Removes the group's other consumers that hold nothing (earlier servers): best effort.
async fn forget_idle_consumers(inner: &Inner, conn: &mut MultiplexedConnection) {
    let s = &inner.settings;
    let listed: Result<Value, String> = timed(
        "listing consumers",
        COMMAND_TIMEOUT,
        redis::cmd("XINFO").arg("CONSUMERS").arg(&s.stream).arg(&s.group).query_async(conn),
    )
    .await;
    let Ok(Value::Array(consumers)) = listed else { return };
    for consumer in consumers {
        let fields = pairs(&consumer);
        let name = fields.iter().find(|(k, _)| k == "name").and_then(|(_, v)| text(v));
        let pending = fields.iter().find(|(k, _)| k == "pending").and_then(|(_, v)| integer(v));
        if let (Some(name), Some(0)) = (name, pending)
            && name != inner.consumer
        {
            let _: Result<i64, String> = timed(
                "removing an idle consumer",
                COMMAND_TIMEOUT,
                redis::cmd("XGROUP")
                    .arg("DELCONSUMER")
                    .arg(&s.stream)
                    .arg(&s.group)
                    .arg(&name)
                    .query_async(conn),
            )
            .await;
        }
    }
}

/// One stream entry: its id and fields (`None`: deleted since it was read).
type Entry = (String, Option<Vec<(Vec<u8>, Vec<u8>)>>);

/// The entries of an `XREADGROUP` reply (RESP2 or RESP3).
fn entries(reply: &Value) -> Result<Vec<Entry>, &'static str> {
    let streams: Vec<&Value> = match reply {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(streams) => streams
            .iter()
            .map(|s| match s {
                Value::Array(pair) if pair.len() == 2 => Ok(&pair[1]),
                _ => Err("a stream is not [name, entries]"),
            })
            .collect::<Result<_, _>>()?,
        Value::Map(streams) => streams.iter().map(|(_, v)| v).collect(),
        _ => return Err("not an array"),
    };
    let mut out = Vec::new();
    for list in streams {
        let Value::Array(list) = list else { return Err("entries are not an array") };
        for entry in list {
            let Value::Array(entry) = entry else { return Err("an entry is not an array") };
            let id = entry.first().and_then(text).ok_or("an entry without id")?;
            let fields = match entry.get(1) {
                None | Some(Value::Nil) => None,
                Some(Value::Array(flat)) => Some(
                    flat.chunks(2).filter_map(|kv| Some((bytes(kv.first()?)?, bytes(kv.get(1)?)?))).collect(),
                ),
                Some(Value::Map(map)) => {
                    Some(map.iter().filter_map(|(k, v)| Some((bytes(k)?, bytes(v)?))).collect())
                }
                Some(_) => return Err("fields are not an array"),
            };
            out.push((id, fields));
        }
    }
    Ok(out)
}

fn bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    bytes(v).and_then(|b| String::from_utf8(b).ok())
}

fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        other => text(other)?.parse().ok(),
    }
}

/// `[k, v, k, v]` or a map, as pairs with text keys.
fn pairs(v: &Value) -> Vec<(String, Value)> {
    match v {
        Value::Array(flat) => {
            flat.chunks(2).filter_map(|kv| Some((text(kv.first()?)?, kv.get(1)?.clone()))).collect()
        }
        Value::Map(map) => map.iter().filter_map(|(k, v)| Some((text(k)?, v.clone()))).collect(),
        _ => Vec::new(),
    }
}

/// The entries as items (with their ids), and the ids of entries deleted since they were read
/// (acknowledged without publishing).
fn decode(entries: &[Entry]) -> (Vec<Item>, Vec<String>, Vec<String>) {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let (mut items, mut ids, mut gone) = (Vec::new(), Vec::new(), Vec::new());
    for (id, fields) in entries {
        let Some(fields) = fields else {
            gone.push(id.clone());
            continue;
        };
        let field =
            |name: &str| fields.iter().rev().find(|(k, _)| k == name.as_bytes()).map(|(_, v)| v.clone());
        let mut defect = None;
        let mut as_text = |name: &str, reason: Reason, required: bool| -> Option<String> {
            match field(name) {
                Some(v) => match String::from_utf8(v) {
                    Ok(t) => Some(t),
                    Err(_) => {
                        defect.get_or_insert((reason, format!("field `{name}` is not UTF-8")));
                        None
                    }
                },
                None if required => {
                    defect.get_or_insert((reason, format!("no `{name}` field")));
                    None
                }
                None => None,
            }
        };
        let topic = as_text("topic", Reason::BadTopic, true);
        let data = as_text("data", Reason::BadData, true);
        let event = as_text("event", Reason::BadEvent, false);
        let key = as_text("key", Reason::BadKey, false);
        let written_ms = id.split('-').next().and_then(|ms| ms.parse::<u128>().ok());
        let age =
            written_ms.map(|ms| Duration::from_millis(u64::try_from(now_ms.saturating_sub(ms)).unwrap_or(0)));
        items.push(Item {
            topic: topic.unwrap_or_default(),
            data: data.unwrap_or_default(),
            event,
            key,
            fallback_key: format!("outbox:{id}"),
            age,
            defect,
        });
        ids.push(id.clone());
    }
    (items, ids, gone)
}

/// Acknowledges (and deletes) what was published, dead-letters the bad entries: one `MULTI`.
async fn settle(
    inner: &Inner,
    conn: &mut MultiplexedConnection,
    entries: &[Entry],
    ids: &[String],
    gone: &[String],
    outcomes: &[Outcome],
) -> Result<(), String> {
    let s = &inner.settings;
    let mut done: Vec<&str> = gone.iter().map(String::as_str).collect();
    let mut pipe = redis::pipe();
    pipe.atomic();
    for (id, outcome) in ids.iter().zip(outcomes) {
        match outcome {
            Outcome::Published => done.push(id),
            Outcome::Aside(reason, detail) => {
                done.push(id);
                let fields = entries.iter().find(|(i, _)| i == id).and_then(|(_, f)| f.as_ref());
                let add = pipe.cmd("XADD").arg(&inner.dead).arg("*");
                add.arg("reason").arg(reason.as_str()).arg("detail").arg(detail).arg("source_id").arg(id);
                for (k, v) in fields.into_iter().flatten() {
                    if !matches!(k.as_slice(), b"reason" | b"detail" | b"source_id") {
                        add.arg(k).arg(v);
                    }
                }
                add.ignore();
            }
            Outcome::Pending => {}
        }
    }
    if done.is_empty() {
        return Ok(());
    }
    pipe.cmd("XACK").arg(&s.stream).arg(&s.group).arg(&done).ignore();
    if s.delete_acked {
        pipe.cmd("XDEL").arg(&s.stream).arg(&done).ignore();
    }
    timed("acknowledging published entries", COMMAND_TIMEOUT, pipe.query_async::<()>(conn)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> RedisOutboxSettings {
        RedisOutboxSettings {
            url: Some("redis://127.0.0.1:6379".into()),
            stream: "switchboard:outbox".into(),
            group: "switchboard".into(),
            consumer: None,
            dead_letter: None,
            lease_key: None,
            lease_ms: 10_000,
            batch: 500,
            poll_interval_ms: 1000,
            delete_acked: true,
            ca_file: None,
        }
    }

    #[test]
    fn settings_are_checked() {
        assert!(check(&settings(), None).is_empty());
        let keys = |s: &RedisOutboxSettings, c: Option<&RedisSettings>| {
            check(s, c).into_iter().map(|(k, _)| k).collect::<Vec<_>>()
        };
        let mut s = settings();
        s.url = None;
        assert_eq!(keys(&s, None), ["outbox.redis.url"]);
        let cluster = RedisSettings {
            url: "redis://10.0.0.1:6379".into(),
            prefix: "sb".into(),
            timeout_ms: 1000,
            ca_file: None,
        };
        assert!(keys(&s, Some(&cluster)).is_empty());
        s.url = Some("redis+cluster://h:1,h:2".into());
        assert_eq!(keys(&s, None), ["outbox.redis.url"]);
        let mut s = settings();
        s.stream = String::new();
        s.lease_ms = 10;
        s.batch = 0;
        s.dead_letter = Some(String::new());
        assert_eq!(
            keys(&s, None),
            [
                "outbox.redis.stream",
                "outbox.redis.dead_letter",
                "outbox.redis.lease_ms",
                "outbox.redis.batch"
            ]
        );
    }

    #[test]
    fn replies_are_read_in_both_protocols() {
        let b = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let entry = |id: &str, fields: Value| Value::Array(vec![b(id), fields]);
        let resp2 = Value::Array(vec![Value::Array(vec![
            b("s"),
            Value::Array(vec![
                entry("1-0", Value::Array(vec![b("topic"), b("a/b"), b("data"), b("{}")])),
                entry("2-0", Value::Nil),
            ]),
        ])]);
        let got = entries(&resp2).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "1-0");
        assert_eq!(got[0].1.as_ref().unwrap()[0], (b"topic".to_vec(), b"a/b".to_vec()));
        assert!(got[1].1.is_none());
        let resp3 = Value::Map(vec![(
            b("s"),
            Value::Array(vec![entry("3-1", Value::Array(vec![b("data"), b("1")]))]),
        )]);
        assert_eq!(entries(&resp3).unwrap()[0].0, "3-1");
        assert!(entries(&Value::Nil).unwrap().is_empty());
        assert!(entries(&Value::Int(3)).is_err());
        let (items, ids, gone) = decode(&got);
        assert_eq!((ids, gone), (vec!["1-0".to_owned()], vec!["2-0".to_owned()]));
        assert_eq!(items[0].topic, "a/b");
        assert_eq!(items[0].fallback_key, "outbox:1-0");
        assert!(items[0].defect.is_none());
        let (items, _, _) = decode(&entries(&resp3).unwrap());
        assert_eq!(items[0].defect.as_ref().unwrap().0, Reason::BadTopic);
    }
}
