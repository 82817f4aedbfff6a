//! The transactional outbox: publications that the application writes into its own database in
//! the same transaction as its business change (a row of a PostgreSQL table, an entry of a Redis
//! stream), published by this server through the hub. `docs/outbox.md` has the concept, the
//! schema and the guarantees.
//!
//! Both sources share `publish`: checking an item, publishing a batch in order per topic, the
//! outcome of each item, the backoff. Here: the settings, starting and stopping, the metrics.
//! One server at a time consumes a source (a PostgreSQL advisory lock, a Redis lease): that is
//! what keeps the order of a topic when several servers run.

mod postgres;
mod publish;
mod redis_stream;

use std::time::Duration;

use switchboard::Hub;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::publish::{Publisher, Source};
use crate::settings::{OutboxSettings, RedisSettings};

pub(crate) use self::postgres::PostgresSource;
pub(crate) use self::redis_stream::RedisSource;

/// The outbox sources of a configuration, checked and with their files read (`checkconfig`
/// builds them too, without starting them).
#[derive(Clone, Default)]
pub(crate) struct Prepared {
    /// `[outbox.postgres]`.
    pub postgres: Option<PostgresSource>,
    /// `[outbox.redis]`.
    pub redis: Option<RedisSource>,
}

/// Checks `[outbox]` without reading files: `(key, problem)` pairs.
pub(crate) fn check(s: &OutboxSettings, cluster: Option<&RedisSettings>) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    if let Some(pg) = &s.postgres {
        problems.extend(postgres::check(pg));
    }
    if let Some(r) = &s.redis {
        problems.extend(redis_stream::check(r, cluster));
    }
    problems
}

/// Reads the files `[outbox]` names and builds its sources.
///
/// # Errors
/// A line naming the key and the problem.
pub(crate) fn prepare(s: &OutboxSettings, cluster: Option<&RedisSettings>) -> Result<Prepared, String> {
    Ok(Prepared {
        postgres: s.postgres.as_ref().map(PostgresSource::new).transpose()?,
        redis: s.redis.as_ref().map(|r| RedisSource::new(r, cluster)).transpose()?,
    })
}

/// `checkconfig`'s lines about the outbox.
pub(crate) fn describe(prepared: &Prepared) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(pg) = &prepared.postgres {
        lines.push(format!("  outbox.postgres: {}", pg.describe()));
    }
    if let Some(r) = &prepared.redis {
        lines.push(format!("  outbox.redis: {}", r.describe()));
    }
    if lines.is_empty() {
        lines.push("  outbox: none".to_owned());
    }
    lines
}

/// The running consumers; [`Outbox::stop`] ends them.
pub(crate) struct Outbox {
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Outbox {
    /// Starts a consumer per configured source. `max_size` caps a publication's data (bytes).
    pub(crate) fn start(prepared: Prepared, hub: &Hub, max_size: usize) -> Self {
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        if prepared.postgres.is_some() || prepared.redis.is_some() {
            describe_metrics();
        }
        if let Some(pg) = prepared.postgres {
            let publisher = Publisher { hub: hub.clone(), max_size, source: Source::Postgres };
            tasks.spawn(pg.run(publisher, stop.clone()));
        }
        if let Some(r) = prepared.redis {
            let publisher = Publisher { hub: hub.clone(), max_size, source: Source::Redis };
            tasks.spawn(r.run(publisher, stop.clone()));
        }
        tasks.close();
        Self { stop, tasks }
    }

    /// Stops the consumers between two publications and waits for them (at most 5 s). What
    /// was published and not yet deleted or acknowledged is published again by the next
    /// consumer (with the same key).
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        if tokio::time::timeout(Duration::from_secs(5), self.tasks.wait()).await.is_err() {
            tracing::warn!("outbox: a consumer did not stop within 5 s");
        }
    }
}

fn describe_metrics() {
    metrics::describe_counter!(
        "switchboard_outbox_published_total",
        "Outbox items published, by source (postgres, redis)"
    );
    metrics::describe_counter!(
        "switchboard_outbox_moved_aside_total",
        "Outbox items moved aside (failed table, dead-letter stream), by source and reason"
    );
    metrics::describe_counter!(
        "switchboard_outbox_retries_total",
        "Outbox batches retried after a transient failure (hub or backend unavailable), by source"
    );
    metrics::describe_gauge!(
        "switchboard_outbox_lag_seconds",
        metrics::Unit::Seconds,
        "Age of the oldest item of the last published batch (0 when the outbox is empty), by source"
    );
    metrics::describe_gauge!(
        "switchboard_outbox_consumer",
        "1 while this server is the one consuming the source, 0 while it stands by"
    );
    for source in [Source::Postgres, Source::Redis] {
        metrics::counter!("switchboard_outbox_published_total", "source" => source.name()).absolute(0);
        metrics::counter!("switchboard_outbox_retries_total", "source" => source.name()).absolute(0);
    }
}
