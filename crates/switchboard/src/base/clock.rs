//! The coarse clock of liveness checks: milliseconds since the server started.

use std::time::Duration;

/// Milliseconds in `d`, saturating.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Milliseconds since a start instant (the server's).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    started: tokio::time::Instant,
}

impl Clock {
    /// A clock starting now.
    pub(crate) fn start() -> Self {
        Self { started: tokio::time::Instant::now() }
    }

    /// Milliseconds since the start.
    pub(crate) fn now_ms(&self) -> u64 {
        millis(self.started.elapsed())
    }

    /// Time since the start.
    pub(crate) fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}
