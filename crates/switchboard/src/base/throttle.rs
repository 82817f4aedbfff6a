//! Warnings that cannot flood the log: a kind of warning is written at most once per interval,
//! per connection ([`Throttle`] in the connection's state) and for the whole process
//! ([`global`]), and the line that is written says how many were suppressed since the last one.
//!
//! ```ignore
//! if let Some(suppressed) = throttle::global(Kind::UpgradeRefused) {
//!     tracing::warn!(suppressed, status = %status, "upgrade refused");
//! }
//! ```

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The kinds of repeated warnings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A connection closed as a slow consumer (4002).
    SlowConsumer,
    /// A `~hello` or `~refresh` refused.
    IdentifyRefused,
    /// An HTTP upgrade refused by the upgrade hook.
    UpgradeRefused,
    /// A connection closed for going on past its rate limits.
    RateLimitClose,
    /// A connection refused for its source address (too many, or too often).
    AddressRefused,
}

impl Kind {
    /// How many kinds there are.
    pub(crate) const COUNT: usize = 5;
}

/// Milliseconds since the first call (a process-wide monotonic clock for throttles).
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    u64::try_from(START.get_or_init(Instant::now).elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// One kind of warning's gate: at most one line per interval.
#[derive(Default)]
pub(crate) struct Throttle {
    /// When the next line may be written (ms of [`now_ms`]; 0: at once).
    next: AtomicU64,
    /// Lines suppressed since the last one written.
    suppressed: AtomicU64,
}

impl Throttle {
    pub(crate) const fn new() -> Self {
        Self { next: AtomicU64::new(0), suppressed: AtomicU64::new(0) }
    }

    /// Whether a line may be written now (at most one per `every_ms`): `Some(n)` where `n` lines
    /// were suppressed since the last one, or `None` (this one is suppressed, and counted).
    pub(crate) fn allow(&self, every_ms: u64) -> Option<u64> {
        let now = now_ms();
        let next = self.next.load(Ordering::Relaxed);
        if now >= next
            && self.next.compare_exchange(next, now + every_ms, Ordering::AcqRel, Ordering::Relaxed).is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::AcqRel));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// A connection's throttles, one per kind (allocated by its first warning).
#[derive(Default)]
pub(crate) struct Throttles([Throttle; Kind::COUNT]);

impl Throttles {
    /// A connection's gate for `kind`: one line per 10 s at most, then the process's.
    pub(crate) fn allow(&self, kind: Kind) -> Option<u64> {
        let here = self.0[kind as usize].allow(PER_CONNECTION_MS)?;
        global(kind).map(|elsewhere| here + elsewhere)
    }
}

/// How often one connection may write a line of one kind.
const PER_CONNECTION_MS: u64 = 10_000;
/// How often the process may write a line of one kind.
const GLOBAL_MS: u64 = 1_000;

/// The process's gate for `kind`: one line per second at most.
pub(crate) fn global(kind: Kind) -> Option<u64> {
    static GLOBAL: [Throttle; Kind::COUNT] = [const { Throttle::new() }; Kind::COUNT];
    GLOBAL[kind as usize].allow(GLOBAL_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_of_the_others() {
        let t = Throttle::new();
        assert_eq!(t.allow(60_000), Some(0));
        for _ in 0..1000 {
            assert_eq!(t.allow(60_000), None);
        }
        assert_eq!(t.suppressed.load(Ordering::Relaxed), 1000);
        // Once the interval is over, the next line says how many were suppressed.
        t.next.store(0, Ordering::Relaxed);
        assert_eq!(t.allow(60_000), Some(1000));
        assert_eq!(t.allow(60_000), None);
    }
}
