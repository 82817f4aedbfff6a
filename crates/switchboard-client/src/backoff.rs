//! Reconnection delays: exponential backoff with full jitter and a cap.

use std::time::Duration;

use rand::Rng;

/// The reconnection policy: exponential backoff with **full jitter** and a cap.
///
/// Before attempt `n` (1 for the first attempt after a loss) the client waits a delay drawn
/// uniformly from `[0, min(max, initial × 2^(n−1))]`. Full jitter spreads the reconnections of
/// many clients that lost the same server over the whole window, instead of having them all
/// knock at once. `max_attempts` bounds the consecutive failed attempts (`None`: try forever);
/// a client that reaches it closes with [`CloseReason::GaveUp`](crate::CloseReason::GaveUp).
///
/// ```
/// use std::time::Duration;
/// use switchboard_client::Backoff;
///
/// let b = Backoff { initial: Duration::from_millis(100), max: Duration::from_secs(1), max_attempts: None };
/// assert_eq!(b.ceiling(1), Duration::from_millis(100));
/// assert_eq!(b.ceiling(3), Duration::from_millis(400));
/// assert_eq!(b.ceiling(10), Duration::from_secs(1));
/// assert!(b.delay(3) <= Duration::from_millis(400));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of the first attempt's delay.
    pub initial: Duration,
    /// The largest ceiling.
    pub max: Duration,
    /// Give up after this many consecutive failed attempts (`None`: never).
    pub max_attempts: Option<u32>,
}

impl Default for Backoff {
    /// 500 ms doubling up to 30 s, forever.
    fn default() -> Self {
        Self { initial: Duration::from_millis(500), max: Duration::from_secs(30), max_attempts: None }
    }
}

impl Backoff {
    /// The largest delay before attempt `attempt` (from 1): `min(max, initial × 2^(attempt−1))`.
    ///
    /// ```
    /// use switchboard_client::Backoff;
    /// let b = Backoff::default();
    /// assert_eq!(b.ceiling(2), b.initial * 2);
    /// assert_eq!(b.ceiling(u32::MAX), b.max);
    /// ```
    #[must_use]
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(32);
        self.initial.saturating_mul(1u32 << doublings.min(31)).min(self.max)
    }

    /// A random delay before attempt `attempt`, uniform in `[0, ceiling(attempt)]`.
    ///
    /// ```
    /// use switchboard_client::Backoff;
    /// let b = Backoff::default();
    /// assert!(b.delay(1) <= b.initial);
    /// ```
    #[must_use]
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, &mut rand::rng())
    }

    pub(crate) fn delay_with<R: Rng + ?Sized>(&self, attempt: u32, rng: &mut R) -> Duration {
        let ceiling = u64::try_from(self.ceiling(attempt).as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(rng.random_range(0..=ceiling))
    }

    /// Whether the policy allows attempt `attempt` (from 1).
    ///
    /// ```
    /// use switchboard_client::Backoff;
    /// let b = Backoff { max_attempts: Some(3), ..Backoff::default() };
    /// assert!(b.allows(3) && !b.allows(4));
    /// assert!(Backoff::default().allows(1_000_000));
    /// ```
    #[must_use]
    pub fn allows(&self, attempt: u32) -> bool {
        self.max_attempts.is_none_or(|max| attempt <= max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn policy() -> Backoff {
        Backoff { initial: Duration::from_millis(100), max: Duration::from_secs(2), max_attempts: Some(5) }
    }

    #[test]
    fn ceilings_double_then_cap() {
        let b = policy();
        let ceilings: Vec<u128> = (1..=8).map(|n| b.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1600, 2000, 2000, 2000]);
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
        assert_eq!(b.ceiling(200), Duration::from_secs(2));
    }

    #[test]
    fn full_jitter_stays_in_window_and_spreads() {
        let b = policy();
        let mut rng = StdRng::seed_from_u64(7);
        for attempt in 1..=10 {
            let ceiling = b.ceiling(attempt);
            let delays: Vec<Duration> = (0..200).map(|_| b.delay_with(attempt, &mut rng)).collect();
            assert!(delays.iter().all(|d| *d <= ceiling), "attempt {attempt}");
            // Full jitter: the draws cover the window, low and high.
            assert!(delays.iter().any(|d| *d < ceiling / 4), "attempt {attempt}: no low draw");
            assert!(delays.iter().any(|d| *d > ceiling * 3 / 4), "attempt {attempt}: no high draw");
        }
    }

    #[test]
    fn same_seed_same_delays() {
        let b = policy();
        let a: Vec<_> = (1..6).map(|n| b.delay_with(n, &mut StdRng::seed_from_u64(1))).collect();
        let c: Vec<_> = (1..6).map(|n| b.delay_with(n, &mut StdRng::seed_from_u64(1))).collect();
        assert_eq!(a, c);
    }

    #[test]
    fn attempts_are_bounded() {
        let b = policy();
        assert!(b.allows(5));
        assert!(!b.allows(6));
    }
}
