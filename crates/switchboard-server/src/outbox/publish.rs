//! What both outbox sources share: checking an item, publishing a batch in order per topic
//! (topics in parallel, the items of one topic one after the other), the outcome of each item
//! (published, moved aside with a reason, or left for a retry), the backoff, and the helpers
//! for names and URLs.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::value::RawValue;
use switchboard::protocol::Topic;
use switchboard::{Hub, HubError, PublishOptions};
use tokio_util::sync::CancellationToken;

/// Longest idempotency key (the protocol's limit for `~pub`'s `key`).
pub(crate) const MAX_KEY: usize = 64;
/// Longest event name.
const MAX_EVENT: usize = 128;
/// Topics of one batch published at once.
const TOPICS_AT_ONCE: usize = 256;

/// Where items come from (the `source` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    Postgres,
    Redis,
}

impl Source {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Redis => "redis",
        }
    }
}

/// Why an item was moved aside (the `reason` label and column).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    /// The topic is missing or not a Switchboard topic name.
    BadTopic,
    /// The data is missing or not JSON.
    BadData,
    /// The key is empty or longer than 64 bytes.
    BadKey,
    /// The event name is empty or longer than 128 bytes.
    BadEvent,
    /// The data is larger than `limits.max_message_size`.
    TooLarge,
    /// The hub refused the publication for a reason that a retry would not change.
    Refused,
}

impl Reason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::BadTopic => "bad_topic",
            Self::BadData => "bad_data",
            Self::BadKey => "bad_key",
            Self::BadEvent => "bad_event",
            Self::TooLarge => "too_large",
            Self::Refused => "refused",
        }
    }
}

/// One publication to make, as read from a source.
#[derive(Debug, Clone, Default)]
pub(crate) struct Item {
    pub topic: String,
    pub data: String,
    pub event: Option<String>,
    pub key: Option<String>,
    /// The key used when the item has none (`outbox:ID`), so that a publication made again
    /// after a crash is recognised where the topic keeps history.
    pub fallback_key: String,
    /// How long ago the application wrote it, if known.
    pub age: Option<Duration>,
    /// What the source already found wrong (a field missing, not UTF-8).
    pub defect: Option<(Reason, String)>,
}

/// What became of an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Published (or found already published under its key): delete or acknowledge it.
    Published,
    /// Bad: move it aside with the reason and the message.
    Aside(Reason, String),
    /// Not published (a transient failure before it, or this server stopped being the
    /// consumer): leave it for a retry, in order.
    Pending,
}

/// Publishes items through the hub and counts them.
#[derive(Clone)]
pub(crate) struct Publisher {
    pub hub: Hub,
    pub max_size: usize,
    pub source: Source,
}

/// A checked item: what to give the hub.
struct Ready {
    topic: String,
    data: Box<RawValue>,
    options: PublishOptions,
}

/// Checks an item without the hub.
fn check_item(item: &Item, max_size: usize) -> Result<Ready, (Reason, String)> {
    if let Some(defect) = &item.defect {
        return Err(defect.clone());
    }
    if let Err(e) = Topic::new(&item.topic) {
        return Err((Reason::BadTopic, format!("{:?} is not a topic name: {e}", truncated(&item.topic))));
    }
    if item.data.len() > max_size {
        return Err((
            Reason::TooLarge,
            format!("data of {} bytes is over limits.max_message_size ({max_size})", item.data.len()),
        ));
    }
    let data: Box<RawValue> =
        serde_json::from_str(&item.data).map_err(|e| (Reason::BadData, format!("data is not JSON: {e}")))?;
    if let Some(key) = &item.key
        && (key.is_empty() || key.len() > MAX_KEY)
    {
        return Err((Reason::BadKey, format!("a key has 1 to {MAX_KEY} bytes, not {}", key.len())));
    }
    if let Some(event) = &item.event
        && (event.is_empty() || event.len() > MAX_EVENT)
    {
        return Err((
            Reason::BadEvent,
            format!("an event name has 1 to {MAX_EVENT} bytes, not {}", event.len()),
        ));
    }
    let mut options =
        PublishOptions::new().key(item.key.clone().unwrap_or_else(|| item.fallback_key.clone()));
    if let Some(event) = &item.event {
        options = options.event(event.clone());
    }
    Ok(Ready { topic: item.topic.clone(), data, options })
}

/// At most 100 characters of a value, for messages.
fn truncated(s: &str) -> &str {
    match s.char_indices().nth(100) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

/// Whether a hub error is permanent for this publication (retrying would fail the same way).
fn permanent(e: &HubError) -> Option<Reason> {
    match e {
        HubError::Topic(_) => Some(Reason::BadTopic),
        HubError::Encode(_) => Some(Reason::BadData),
        HubError::Invalid(_) | HubError::NoHistory | HubError::NotFound => Some(Reason::Refused),
        // Backend failures (Redis unavailable, a timeout) and anything new: retried.
        _ => None,
    }
}

impl Publisher {
    /// Publishes `items` (in the source's order) and returns each one's outcome. The items of a
    /// topic are published one after the other, in order; different topics in parallel. After a
    /// transient failure the rest of that topic is left pending (never published out of order);
    /// `ours` is asked before each publication and, once it says no, everything not yet
    /// published is left pending.
    pub(crate) async fn publish(&self, items: &[Item], ours: &(dyn Fn() -> bool + Sync)) -> Vec<Outcome> {
        let mut outcomes = vec![Outcome::Pending; items.len()];
        let mut by_topic: Vec<Vec<(usize, Ready)>> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, item) in items.iter().enumerate() {
            match check_item(item, self.max_size) {
                Ok(ready) => {
                    let slot = *index.entry(item.topic.as_str()).or_insert_with(|| {
                        by_topic.push(Vec::new());
                        by_topic.len() - 1
                    });
                    by_topic[slot].push((i, ready));
                }
                Err((reason, message)) => outcomes[i] = Outcome::Aside(reason, message),
            }
        }
        let mut done = futures_util::stream::iter(by_topic.into_iter().map(|chain| self.chain(chain, ours)))
            .buffer_unordered(TOPICS_AT_ONCE);
        while let Some(results) = done.next().await {
            for (i, outcome) in results {
                outcomes[i] = outcome;
            }
        }
        self.count(items, &outcomes);
        outcomes
    }

    /// The items of one topic, in order.
    async fn chain(
        &self,
        chain: Vec<(usize, Ready)>,
        ours: &(dyn Fn() -> bool + Sync),
    ) -> Vec<(usize, Outcome)> {
        let mut results = Vec::with_capacity(chain.len());
        let mut blocked = false;
        for (i, ready) in chain {
            if blocked || !ours() {
                blocked = true;
                results.push((i, Outcome::Pending));
                continue;
            }
            let Ready { topic, data, options } = ready;
            let outcome = match self.hub.publish_with(&topic, &*data, options).await {
                Ok(_) => Outcome::Published,
                Err(e) => match permanent(&e) {
                    Some(reason) => Outcome::Aside(reason, format!("the hub refused it: {e}")),
                    None => {
                        tracing::warn!(
                            source = self.source.name(),
                            topic,
                            "outbox: publishing failed ({e}); retrying with backoff, in order"
                        );
                        blocked = true;
                        Outcome::Pending
                    }
                },
            };
            results.push((i, outcome));
        }
        results
    }

    #[allow(clippy::cast_precision_loss)]
    fn count(&self, items: &[Item], outcomes: &[Outcome]) {
        let source = self.source.name();
        let published = outcomes.iter().filter(|o| **o == Outcome::Published).count();
        metrics::counter!("switchboard_outbox_published_total", "source" => source)
            .increment(published as u64);
        let oldest = items
            .iter()
            .zip(outcomes)
            .filter(|(_, o)| **o == Outcome::Published)
            .filter_map(|(item, _)| item.age)
            .max();
        if let Some(age) = oldest {
            metrics::gauge!("switchboard_outbox_lag_seconds", "source" => source).set(age.as_secs_f64());
        }
        for (item, outcome) in items.iter().zip(outcomes) {
            if let Outcome::Aside(reason, message) = outcome {
                tracing::warn!(
                    source,
                    reason = reason.as_str(),
                    topic = truncated(&item.topic),
                    id = item.fallback_key,
                    "outbox: moved aside: {message}"
                );
                metrics::counter!(
                    "switchboard_outbox_moved_aside_total",
                    "source" => source,
                    "reason" => reason.as_str()
                )
                .increment(1);
            }
        }
    }

    /// The source is empty: no lag.
    pub(crate) fn idle(&self) {
        metrics::gauge!("switchboard_outbox_lag_seconds", "source" => self.source.name()).set(0.0);
    }

    /// Whether this server consumes the source (1) or stands by (0).
    pub(crate) fn consuming(&self, yes: bool) {
        metrics::gauge!("switchboard_outbox_consumer", "source" => self.source.name()).set(if yes {
            1.0
        } else {
            0.0
        });
    }

    /// A batch is retried after a transient failure.
    pub(crate) fn retried(&self) {
        metrics::counter!("switchboard_outbox_retries_total", "source" => self.source.name()).increment(1);
    }
}

/// The longest wait between two attempts of a source (reconnecting, or a batch the hub refused).
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How a source names itself in its log lines.
pub(crate) struct Names {
    /// Where it reconnects to (`PostgreSQL`, `Redis`).
    pub(crate) server: &'static str,
    /// Why nothing is lost while it is down.
    pub(crate) kept: &'static str,
}

/// After a source's session failed with `problem`: logs it and waits for the backoff. False
/// when `stop` came meanwhile. `shown` is the source's address without its password.
pub(crate) async fn reconnect_after(
    names: &Names,
    shown: &str,
    problem: &str,
    backoff: &mut Backoff,
    stop: &CancellationToken,
) -> bool {
    let delay = backoff.delay();
    tracing::warn!(
        at = %shown,
        "outbox: {problem}; reconnecting to {} in {} ms (nothing is lost: {})",
        names.server,
        delay.as_millis(),
        names.kept
    );
    pause(delay, stop).await
}

/// Exponential backoff with jitter, from 100 ms to `max`.
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(max: Duration) -> Self {
        Self { next: Duration::from_millis(100), max }
    }

    /// The next delay (doubling, ±25 %).
    pub(crate) fn delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        let jitter = rand::random_range(0.75..1.25);
        base.mul_f64(jitter).min(self.max)
    }

    /// After a success.
    pub(crate) fn reset(&mut self) {
        self.next = Duration::from_millis(100);
    }
}

/// Sleeps `delay` unless `stop` comes first; returns whether to go on.
pub(crate) async fn pause(delay: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        () = stop.cancelled() => false,
        () = tokio::time::sleep(delay) => true,
    }
}

/// A URL without its password, for logs and summaries.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…@{}", &url[..scheme], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

/// Whether `name` is a plain SQL identifier (`[A-Za-z_][A-Za-z0-9_]*`, at most 63 bytes), or with
/// `qualified`, `schema.name` of two such.
pub(crate) fn is_identifier(name: &str, qualified: bool) -> bool {
    let plain = |part: &str| {
        let mut bytes = part.bytes();
        part.len() <= 63
            && matches!(bytes.next(), Some(b'A'..=b'Z' | b'a'..=b'z' | b'_'))
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    match name.split_once('.') {
        Some((schema, table)) if qualified => plain(schema) && plain(table),
        Some(_) => false,
        None => plain(name),
    }
}

/// `name` quoted for SQL (each part of `schema.name`).
pub(crate) fn quoted(name: &str) -> String {
    name.split('.').map(|part| format!("\"{part}\"")).collect::<Vec<_>>().join(".")
}
#[cfg(test)]
mod tests {
    use super::*;

    fn item(topic: &str, data: &str) -> Item {
        Item { topic: topic.into(), data: data.into(), fallback_key: "outbox:1".into(), ..Item::default() }
    }

    #[test]
    fn items_are_checked_before_the_hub() {
        assert!(check_item(&item("orders/7", r#"{"a":1}"#), 1000).is_ok());
        let reason = |i: &Item| check_item(i, 1000).err().map(|(r, _)| r);
        assert_eq!(reason(&item("orders//7", "1")), Some(Reason::BadTopic));
        assert_eq!(reason(&item("", "1")), Some(Reason::BadTopic));
        assert_eq!(reason(&item("a b", "1")), Some(Reason::BadTopic));
        assert_eq!(reason(&item("t", "{not json")), Some(Reason::BadData));
        assert_eq!(reason(&item("t", "")), Some(Reason::BadData));
        assert_eq!(reason(&item("t", &format!("\"{}\"", "x".repeat(1000)))), Some(Reason::TooLarge));
        let mut keyed = item("t", "1");
        keyed.key = Some("k".repeat(65));
        assert_eq!(reason(&keyed), Some(Reason::BadKey));
        keyed.key = Some("k".repeat(64));
        assert_eq!(check_item(&keyed, 1000).unwrap().options.key.as_deref(), Some(&*"k".repeat(64)));
        keyed.key = Some(String::new());
        assert_eq!(reason(&keyed), Some(Reason::BadKey));
        let mut evented = item("t", "1");
        evented.event = Some(String::new());
        assert_eq!(reason(&evented), Some(Reason::BadEvent));
        let mut defective = item("t", "1");
        defective.defect = Some((Reason::BadTopic, "no topic field".into()));
        assert_eq!(reason(&defective), Some(Reason::BadTopic));
        assert_eq!(check_item(&item("t", "1"), 10).unwrap().options.key.as_deref(), Some("outbox:1"));
    }

    #[test]
    fn hub_errors_are_sorted_into_permanent_and_transient() {
        assert_eq!(permanent(&HubError::Topic("x".into())), Some(Reason::BadTopic));
        assert_eq!(permanent(&HubError::Invalid("x".into())), Some(Reason::Refused));
        assert_eq!(permanent(&HubError::Backend("down".into())), None);
    }

    #[test]
    fn identifiers_and_quoting() {
        assert!(is_identifier("switchboard_outbox", true));
        assert!(is_identifier("app.outbox", true));
        assert!(!is_identifier("app.outbox", false));
        assert!(!is_identifier("a.b.c", true));
        assert!(!is_identifier("1abc", true));
        assert!(!is_identifier("out\"box", true));
        assert!(!is_identifier("", true));
        assert!(!is_identifier(&"a".repeat(64), true));
        assert_eq!(quoted("app.outbox"), "\"app\".\"outbox\"");
    }

    #[test]
    fn backoff_grows_to_its_cap() {
        let mut b = Backoff::new(Duration::from_secs(1));
        let first = b.delay();
        assert!(first <= Duration::from_millis(125) && first >= Duration::from_millis(75));
        for _ in 0..10 {
            b.delay();
        }
        assert!(b.delay() <= Duration::from_secs(1));
        b.reset();
        assert!(b.delay() <= Duration::from_millis(125));
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://app:secret@db:5432/app"), "postgres://…@db:5432/app");
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
