//! Rate limits that hold across nodes: token buckets by key.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::BackendFuture;

/// A token bucket's rate: it holds at most `burst` tokens and gets `per_second` back every
/// second; each message (publication, subscription…) takes one.
///
/// ```
/// use switchboard_core::Rate;
/// let rate = Rate::new(10, 20);
/// assert_eq!((rate.per_second, rate.burst), (10, 20));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Rate {
    /// Tokens back per second (at least 1).
    pub per_second: u32,
    /// Most tokens held (at least 1): how many may come at once after a quiet time.
    pub burst: u32,
}

impl Rate {
    /// A rate (`per_second` and `burst` of at least 1).
    #[must_use]
    pub const fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second: if per_second == 0 { 1 } else { per_second },
            burst: if burst == 0 { 1 } else { burst },
        }
    }

    /// Milli-tokens the bucket holds when full.
    fn capacity(self) -> u64 {
        u64::from(self.burst) * 1000
    }
}

/// One token bucket, as plain data: the caller keeps it (in a task, under a lock, in a map) and
/// gives it the time. Exact to the milli-token; no floating point.
///
/// ```
/// use switchboard_core::{Rate, TokenBucket};
/// let rate = Rate::new(2, 3);
/// let mut bucket = TokenBucket::full(rate, 0);
/// assert!((0..3).all(|_| bucket.take(rate, 0).is_ok()), "a burst of 3");
/// assert_eq!(bucket.take(rate, 0), Err(500), "the next token in 500 ms");
/// assert!(bucket.take(rate, 500).is_ok());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    /// Milli-tokens held at `at_ms`.
    level: u64,
    /// When `level` was last brought up to date (the caller's clock, ms).
    at_ms: u64,
}

impl TokenBucket {
    /// A full bucket at `now_ms`.
    #[must_use]
    pub fn full(rate: Rate, now_ms: u64) -> Self {
        Self { level: rate.capacity(), at_ms: now_ms }
    }

    fn refill(&mut self, rate: Rate, now_ms: u64) {
        if now_ms > self.at_ms {
            let back = (now_ms - self.at_ms).saturating_mul(u64::from(rate.per_second));
            self.level = self.level.saturating_add(back).min(rate.capacity());
            self.at_ms = now_ms;
        }
    }

    /// Takes one token at `now_ms`, or says in how many milliseconds one will be there.
    ///
    /// # Errors
    /// The milliseconds until the next token (at least 1).
    pub fn take(&mut self, rate: Rate, now_ms: u64) -> Result<(), u64> {
        if self.take_up_to(rate, now_ms, 1) == 1 { Ok(()) } else { Err(self.wait_ms(rate)) }
    }

    /// Takes up to `want` tokens at `now_ms`; returns how many it took.
    pub fn take_up_to(&mut self, rate: Rate, now_ms: u64, want: u32) -> u32 {
        self.refill(rate, now_ms);
        let granted = u32::try_from(self.level / 1000).unwrap_or(u32::MAX).min(want);
        self.level -= u64::from(granted) * 1000;
        granted
    }

    /// Milliseconds until the next whole token (0 if there is one).
    #[must_use]
    pub fn wait_ms(&self, rate: Rate) -> u64 {
        if self.level >= 1000 { 0 } else { (1000 - self.level).div_ceil(u64::from(rate.per_second)) }
    }

    /// Whether the bucket is full again at `now_ms` (it can be forgotten: a new one is the same).
    #[must_use]
    pub fn is_full_at(&self, rate: Rate, now_ms: u64) -> bool {
        let back = now_ms.saturating_sub(self.at_ms).saturating_mul(u64::from(rate.per_second));
        self.level.saturating_add(back) >= rate.capacity()
    }
}

/// What [`RateLimiter::take`] got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Grant {
    /// Tokens taken (from 0 to what was asked).
    pub granted: u32,
    /// When fewer were taken than asked: how long until the next token.
    pub retry_after: Duration,
}

impl Grant {
    /// A grant of `granted` tokens, the next one in `retry_after`.
    #[must_use]
    pub const fn new(granted: u32, retry_after: Duration) -> Self {
        Self { granted, retry_after }
    }
}

/// Token buckets by key, shared by every node of a cluster: the framework's per-user rate limits
/// (a user's messages, publications and subscriptions, whatever node each connection is on).
///
/// **Guarantees**: `take` is atomic: however many nodes take from one key at once, they never get
/// more tokens in total than the bucket's rate allows (a bucket is created full, holds at most
/// `burst` tokens, and gets `per_second` back every second). Keys idle long enough to be full
/// again may be forgotten (a new bucket is full too), so memory follows the active keys.
pub trait RateLimiter: Send + Sync + 'static {
    /// Takes up to `want` tokens from the bucket `key` of rate `rate`; how many it took, and when
    /// fewer than `want`, how long until the next one.
    fn take(&self, key: &str, want: u32, rate: Rate) -> BackendFuture<'_, Grant>;

    /// The same, if the limiter can answer at once without I/O (an in-memory one can); `None`
    /// otherwise (the default), and the caller uses [`RateLimiter::take`]. A hot path (every
    /// message of a user) uses it to skip the future.
    fn take_now(&self, key: &str, want: u32, rate: Rate) -> Option<Grant> {
        let _ = (key, want, rate);
        None
    }
}

/// Shards of [`MemoryRateLimiter`]: unrelated keys do not contend.
const SHARDS: usize = 32;
/// A shard's size that first triggers forgetting full buckets (then twice the size left).
const PRUNE_FROM: usize = 1024;

/// One shard: buckets by key, and the size at which full ones are next forgotten.
struct Shard {
    buckets: HashMap<Box<str>, (TokenBucket, Rate)>,
    prune_at: usize,
}

/// In-memory [`RateLimiter`] (one process: exact, answered at once).
pub struct MemoryRateLimiter {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    start: Instant,
}

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(Shard { buckets: HashMap::new(), prune_at: PRUNE_FROM }))
                .collect(),
            hasher: RandomState::new(),
            start: Instant::now(),
        }
    }
}

impl MemoryRateLimiter {
    /// No buckets yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Buckets held now (for leak tests: full buckets are forgotten as the map grows).
    #[must_use]
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().buckets.len()).sum()
    }

    /// Whether no bucket is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn grant(&self, key: &str, want: u32, rate: Rate) -> Grant {
        let now = self.now_ms();
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % self.shards.len()];
        let mut shard = shard.lock();
        let bucket = match shard.buckets.get_mut(key) {
            Some((bucket, kept)) => {
                *kept = rate;
                bucket
            }
            None => {
                if shard.buckets.len() >= shard.prune_at {
                    shard.buckets.retain(|_, (b, r)| !b.is_full_at(*r, now));
                    shard.prune_at = (shard.buckets.len() * 2).max(PRUNE_FROM);
                }
                &mut shard.buckets.entry(Box::from(key)).or_insert((TokenBucket::full(rate, now), rate)).0
            }
        };
        let granted = bucket.take_up_to(rate, now, want);
        let retry = if granted < want { bucket.wait_ms(rate) } else { 0 };
        Grant::new(granted, Duration::from_millis(retry))
    }
}

impl RateLimiter for MemoryRateLimiter {
    fn take(&self, key: &str, want: u32, rate: Rate) -> BackendFuture<'_, Grant> {
        Box::pin(std::future::ready(Ok(self.grant(key, want, rate))))
    }

    fn take_now(&self, key: &str, want: u32, rate: Rate) -> Option<Grant> {
        Some(self.grant(key, want, rate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refill_at_their_rate_up_to_their_burst() {
        let rate = Rate::new(10, 5);
        let mut b = TokenBucket::full(rate, 1000);
        assert_eq!(b.take_up_to(rate, 1000, 8), 5, "a full bucket holds the burst");
        assert_eq!(b.take(rate, 1000), Err(100));
        assert_eq!(b.take(rate, 1050), Err(50));
        assert!(b.take(rate, 1100).is_ok());
        assert_eq!(b.take_up_to(rate, 10_000, 100), 5, "never more than the burst");
        assert!(!b.is_full_at(rate, 10_000));
        assert!(b.is_full_at(rate, 10_500));
        // A clock that goes back takes nothing back.
        assert_eq!(b.take_up_to(rate, 9_000, 1), 0);
    }

    #[test]
    fn full_buckets_are_forgotten_as_keys_come() {
        let limiter = MemoryRateLimiter::new();
        // Each bucket is full again 1 ms after its one token was taken.
        let rate = Rate::new(1000, 1);
        let n = SHARDS * PRUNE_FROM;
        for i in 0..n {
            limiter.take_now(&format!("old{i}"), 1, rate);
        }
        std::thread::sleep(Duration::from_millis(10));
        for i in 0..2 * n {
            limiter.take_now(&format!("new{i}"), 1, rate);
        }
        assert!(limiter.len() < 3 * n * 3 / 4, "{} of {} buckets kept", limiter.len(), 3 * n);
    }
}
