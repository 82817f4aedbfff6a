//! Counters for `~info` and metrics, kept per thread.
//!
//! Every connection task counts each read and write, and one shared set would be one cache line
//! bounced between all cores. A thread adds to its own shard ([`Counters::here`]); readers add
//! the shards up ([`Counters::sum`]). Nothing is per connection, so a closed connection's counts
//! stay.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// See the module's documentation.
pub(crate) struct Counters {
    shards: Box<[CounterShard]>,
    /// Connections in their handshake now (`Switchboard::serve`): a gauge, not per thread.
    pub(crate) handshakes: AtomicUsize,
}

/// One thread's counters, alone on its cache lines.
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct CounterShard {
    pub(crate) messages_in: AtomicU64,
    pub(crate) messages_out: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) slow_consumers: AtomicU64,
    pub(crate) connections_total: AtomicU64,
    /// Handshakes closed at their deadline (`Config::handshake_timeout`).
    pub(crate) handshake_timeouts: AtomicU64,
    /// Connections closed at once beyond `Config::max_handshakes`.
    pub(crate) handshake_cap: AtomicU64,
    /// Upgrade requests answered 431 (`Config::max_header_bytes`).
    pub(crate) handshake_too_large: AtomicU64,
    /// Messages refused for a rate limit of messages (`Config::rate_limits`).
    pub(crate) limited_messages: AtomicU64,
    /// … of publications.
    pub(crate) limited_publications: AtomicU64,
    /// … of subscriptions.
    pub(crate) limited_subscriptions: AtomicU64,
    /// Connections closed for going on past their rate limits.
    pub(crate) rate_limit_closes: AtomicU64,
    /// Connections refused: too many open from their address (`Config::connection_limits`).
    pub(crate) address_too_many: AtomicU64,
    /// Connections refused: too many new ones from their address.
    pub(crate) address_too_often: AtomicU64,
}

/// The shard of the calling thread, in any [`Counters`]: threads are numbered as they first
/// count, so the runtime's workers (the threads that count) get distinct shards.
fn counter_slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    SLOT.with(|s| *s)
}

impl Default for Counters {
    fn default() -> Self {
        let n = std::thread::available_parallelism().map_or(8, |n| n.get() * 2).clamp(4, 64);
        Self { shards: (0..n).map(|_| CounterShard::default()).collect(), handshakes: AtomicUsize::new(0) }
    }
}

impl Counters {
    /// The calling thread's shard, to add to.
    pub(crate) fn here(&self) -> &CounterShard {
        &self.shards[counter_slot() % self.shards.len()]
    }

    /// One counter added up over the shards.
    pub(crate) fn sum(&self, field: impl Fn(&CounterShard) -> &AtomicU64) -> u64 {
        self.shards.iter().map(|s| field(s).load(Ordering::Relaxed)).fold(0, u64::wrapping_add)
    }

    /// Adds messages and bytes written.
    pub(crate) fn wrote(&self, messages: u64, bytes: u64) {
        let here = self.here();
        here.messages_out.fetch_add(messages, Ordering::Relaxed);
        here.bytes_out.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Adds one to a counter of the calling thread's shard.
    pub(crate) fn add(&self, field: impl Fn(&CounterShard) -> &AtomicU64) {
        field(self.here()).fetch_add(1, Ordering::Relaxed);
    }

    /// Adds messages and bytes read.
    pub(crate) fn read(&self, messages: u64, bytes: u64) {
        let here = self.here();
        here.messages_in.fetch_add(messages, Ordering::Relaxed);
        here.bytes_in.fetch_add(bytes, Ordering::Relaxed);
    }
}
