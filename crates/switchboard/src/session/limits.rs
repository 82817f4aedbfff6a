//! Rate limits of the messages a connection sends (`Config::rate_limits`, per namespace): its
//! own token buckets, kept in its task (no lock, no allocation per message), and its user's,
//! cluster-wide through the [`RateLimiter`] backend.
//!
//! Counted at dispatch, by message kind: every message but the replies to our requests is a
//! message; a `~pub` is also a publication, a `~sub` a subscription.
//!
//! A user's buckets live in the backend. An in-memory one answers at once
//! ([`RateLimiter::take_now`]): a connection takes a few tokens at a time ([`ahead_size`], kept
//! in its task for at most [`AHEAD_MS`], so that the shared bucket's lock is taken once every
//! few messages); a shared one (Redis) is asked for several tokens at a time, which
//! this node keeps for at most a second (a *lease*, so that one round trip serves a burst), and
//! while a message waits for that answer the connection reads nothing more, so that messages
//! still start in arrival order. Tokens only ever come from the backend, so the nodes together
//! never pass more than the rate; if the backend fails, messages pass (a limiter that is down
//! must not take the service down with it).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use switchboard_core::{Rate, RateLimiter, TokenBucket};
use switchboard_protocol::{CloseCode, Message, wire};

use crate::base::counters::{CounterShard, Counters};
use crate::base::throttle::Kind;
use crate::config::{Config, RateLimits};
use crate::conn::ConnShared;
use crate::error::Error;

/// What a message counts as besides a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum What {
    Message = 0,
    Publication = 1,
    Subscription = 2,
}

impl What {
    fn of(kind: &str) -> Option<Self> {
        match kind {
            wire::types::PUB => Some(Self::Publication),
            wire::types::SUB => Some(Self::Subscription),
            _ => None,
        }
    }

    fn conn_rate(self, limits: &RateLimits) -> Option<Rate> {
        match self {
            Self::Message => limits.messages,
            Self::Publication => limits.publications,
            Self::Subscription => limits.subscriptions,
        }
    }

    fn user_rate(self, limits: &RateLimits) -> Option<Rate> {
        match self {
            Self::Message => limits.user_messages,
            Self::Publication => limits.user_publications,
            Self::Subscription => limits.user_subscriptions,
        }
    }

    /// The counter of messages refused for this kind of limit.
    fn counter(self) -> fn(&CounterShard) -> &std::sync::atomic::AtomicU64 {
        match self {
            Self::Message => |c| &c.limited_messages,
            Self::Publication => |c| &c.limited_publications,
            Self::Subscription => |c| &c.limited_subscriptions,
        }
    }
}

/// The server's rate limits: by namespace, and the backend of users' buckets.
pub(crate) struct Limits {
    /// Whether any namespace has any limit (else nothing is checked at all).
    pub(crate) on: bool,
    /// For connections not identified yet, and namespaces not named in the configuration.
    default: RateLimits,
    /// By namespace index.
    by_ns: Vec<RateLimits>,
    limiter: Arc<dyn RateLimiter>,
    leases: Arc<Leases>,
}

impl Limits {
    /// The limits of `config` for the namespaces named `namespaces` (in index order).
    pub(crate) fn new<'a>(
        config: &Config,
        namespaces: impl Iterator<Item = &'a str>,
        limiter: Arc<dyn RateLimiter>,
    ) -> Self {
        let default = config.rate_limits;
        let by_ns: Vec<RateLimits> = namespaces
            .map(|name| config.namespace_rate_limits.get(name).copied().unwrap_or(default))
            .collect();
        let on = default.is_on() || by_ns.iter().any(RateLimits::is_on);
        Self { on, default, by_ns, limiter, leases: Arc::new(Leases::default()) }
    }

    fn of(&self, ns: Option<usize>) -> &RateLimits {
        ns.and_then(|ns| self.by_ns.get(ns)).unwrap_or(&self.default)
    }
}

/// A user's bucket keys in one namespace, built once per connection, and the tokens this
/// connection took from them ahead of need.
struct UserKeys {
    ns: usize,
    /// By [`What`].
    keys: [Arc<str>; 3],
    /// By [`What`]: tokens left, and until when (server clock, ms) they may be used.
    ahead: [(u32, u64); 3],
}

/// How long a connection may use tokens it took from its user's buckets ahead of need.
const AHEAD_MS: u64 = 250;

/// Tokens a connection takes from an in-memory user bucket at a time: a sixteenth of the burst,
/// 1 to 16 (one lock every few messages instead of one per message; a connection that stops
/// leaves at most that many unused, for at most [`AHEAD_MS`]).
fn ahead_size(rate: Rate) -> u32 {
    (rate.burst / 16).clamp(1, 16)
}

/// One connection's buckets, in its task: allocated by its first message counted (8 bytes in
/// every connection's task otherwise).
#[derive(Default)]
pub(crate) struct ConnLimits(Option<Box<Buckets>>);

/// See [`ConnLimits`].
#[derive(Default)]
struct Buckets {
    /// By [`What`]; made full at first use.
    buckets: [Option<TokenBucket>; 3],
    /// Its user's keys, once identified with a user.
    user: Option<UserKeys>,
}

/// The decision on one message.
pub(crate) enum Verdict {
    Pass,
    /// Refused: what ran out, and in how many milliseconds to try again.
    Refused(What, u64),
    /// Waiting for the user's tokens from the backend: `Ok` to pass, or refused as above.
    Wait(BoxFuture<'static, Result<(), (What, u64)>>),
}

impl ConnLimits {
    /// Counts `msg` (of namespace `ns`, `None` before identification) against the limits at
    /// `now_ms` (server clock).
    pub(crate) fn check(
        &mut self,
        limits: &Limits,
        conn: &ConnShared,
        msg: &Message,
        ns: Option<usize>,
        now_ms: u64,
    ) -> Verdict {
        self.0.get_or_insert_default().check(limits, conn, msg, ns, now_ms)
    }
}

impl Buckets {
    fn check(
        &mut self,
        limits: &Limits,
        conn: &ConnShared,
        msg: &Message,
        ns: Option<usize>,
        now_ms: u64,
    ) -> Verdict {
        let rates = limits.of(ns);
        let also = What::of(msg.kind.as_str());
        for what in std::iter::once(What::Message).chain(also) {
            if let Some(rate) = what.conn_rate(rates) {
                let bucket =
                    self.buckets[what as usize].get_or_insert_with(|| TokenBucket::full(rate, now_ms));
                if let Err(wait) = bucket.take(rate, now_ms) {
                    return Verdict::Refused(what, wait);
                }
            }
        }
        let Some(ns) = ns else { return Verdict::Pass };
        let wanted =
            || std::iter::once(What::Message).chain(also).filter_map(|w| Some((w, w.user_rate(rates)?)));
        if wanted().next().is_none() {
            return Verdict::Pass;
        }
        let Some(keys) = self.user_keys(conn, ns) else { return Verdict::Pass };
        let mut waits = Vec::new();
        for (what, rate) in wanted() {
            let ahead = &mut keys.ahead[what as usize];
            if ahead.0 > 0 && now_ms < ahead.1 {
                ahead.0 -= 1;
                continue;
            }
            let key = &keys.keys[what as usize];
            match limits.limiter.take_now(key, ahead_size(rate), rate) {
                Some(grant) if grant.granted > 0 => *ahead = (grant.granted - 1, now_ms + AHEAD_MS),
                Some(grant) => return Verdict::Refused(what, millis(grant.retry_after)),
                None if limits.leases.take(key) => {}
                None => waits.push((what, key.clone(), rate)),
            }
        }
        if waits.is_empty() {
            return Verdict::Pass;
        }
        let (limiter, leases) = (limits.limiter.clone(), limits.leases.clone());
        Verdict::Wait(Box::pin(async move {
            for (what, key, rate) in waits {
                if leases.take(&key) {
                    continue;
                }
                match limiter.take(&key, lease_size(rate), rate).await {
                    Ok(grant) if grant.granted > 0 => leases.add(&key, grant.granted - 1),
                    Ok(grant) => return Err((what, millis(grant.retry_after))),
                    Err(e) => tracing::debug!(error = %e, "the rate limiter failed: the message passes"),
                }
            }
            Ok(())
        }))
    }

    /// The connection's user's keys in namespace `ns` (`None` without a user).
    fn user_keys(&mut self, conn: &ConnShared, ns: usize) -> Option<&mut UserKeys> {
        if self.user.as_ref().is_none_or(|k| k.ns != ns) {
            let user = conn.user()?;
            let ns_name = conn.identity.read().as_ref().map(|i| i.ns_name.clone())?;
            let key = |what: char| Arc::from(format!("{ns_name}\u{1f}{user}\u{1f}{what}"));
            self.user = Some(UserKeys { ns, keys: [key('m'), key('p'), key('s')], ahead: [(0, 0); 3] });
        }
        self.user.as_mut()
    }
}

/// Tokens asked of a shared backend at a time: an eighth of the burst, 1 to 64.
fn lease_size(rate: Rate) -> u32 {
    (rate.burst / 8).clamp(1, 64)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// How long leased tokens may be used.
const LEASE: Duration = Duration::from_secs(1);
/// Shards of the leases.
const LEASE_SHARDS: usize = 16;

/// Leased tokens by key: how many are left, and until when they may be used.
type LeaseShard = Mutex<HashMap<Arc<str>, (u32, Instant)>>;

/// Tokens this node got from a shared backend ahead of need, by key, for at most [`LEASE`].
struct Leases {
    shards: [LeaseShard; LEASE_SHARDS],
    hasher: RandomState,
}

impl Default for Leases {
    fn default() -> Self {
        Self { shards: std::array::from_fn(|_| Mutex::new(HashMap::new())), hasher: RandomState::new() }
    }
}

impl Leases {
    fn shard(&self, key: &str) -> &LeaseShard {
        &self.shards[(self.hasher.hash_one(key) as usize) % LEASE_SHARDS]
    }

    /// Takes a leased token of `key`, if one is left and still valid.
    fn take(&self, key: &str) -> bool {
        let mut shard = self.shard(key).lock();
        match shard.get_mut(key) {
            Some((tokens, until)) if *tokens > 0 && Instant::now() < *until => {
                *tokens -= 1;
                true
            }
            Some(_) => {
                shard.remove(key);
                false
            }
            None => false,
        }
    }

    /// Keeps `tokens` more of `key` for [`LEASE`].
    fn add(&self, key: &Arc<str>, tokens: u32) {
        if tokens == 0 {
            return;
        }
        let now = Instant::now();
        let mut shard = self.shard(key).lock();
        if shard.len() >= 1024 {
            shard.retain(|_, (n, until)| *n > 0 && now < *until);
        }
        let lease = shard.entry(key.clone()).or_insert((0, now + LEASE));
        if now >= lease.1 {
            *lease = (0, now + LEASE);
        }
        lease.0 += tokens;
    }
}

/// Answers a message refused for `what`, in `retry_ms`: `RATE_LIMITED` to a request, at most
/// one id-less `~err` per second for events; closes a connection refused
/// `close_after` times in a row (4501). Counted.
pub(crate) fn refuse(
    limits: &Limits,
    counters: &Counters,
    conn: &ConnShared,
    msg: &Message,
    ns: Option<usize>,
    (what, retry_ms): (What, u64),
    now_ms: u64,
) {
    counters.add(what.counter());
    let refused = conn.rates.refused.fetch_add(1, Ordering::Relaxed) + 1;
    let close_after = limits.of(ns).close_after;
    if close_after > 0 && refused >= close_after {
        if !conn.is_closing() {
            counters.add(|c| &c.rate_limit_closes);
            if let Some(suppressed) = conn.warnings.allow(Kind::RateLimitClose) {
                tracing::warn!(conn = %conn.id, refused, suppressed, "rate limits ignored: closed with 4501");
            }
        }
        conn.close(
            CloseCode::PROTOCOL_ERROR,
            "rate limit exceeded: messages kept coming after RATE_LIMITED",
            true,
        );
        return;
    }
    let e = Error::rate_limited(Duration::from_millis(retry_ms));
    match msg.id {
        Some(id) => conn.reply(id, Err(e)),
        None => {
            let last = conn.rates.error_at.load(Ordering::Relaxed);
            if last == 0 || now_ms >= last + 1000 {
                conn.rates.error_at.store(now_ms.max(1), Ordering::Relaxed);
                let _ = conn.push_error(&e, None);
            }
        }
    }
}

/// A message passed: the connection is no longer going on regardless.
pub(crate) fn passed(conn: &ConnShared) {
    if conn.rates.refused.load(Ordering::Relaxed) != 0 {
        conn.rates.refused.store(0, Ordering::Relaxed);
    }
}
