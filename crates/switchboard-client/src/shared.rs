//! What the handles and the connection task share besides the command channel: the registry of
//! handlers and listeners, the last welcome, the counters.

use std::sync::{Mutex, MutexGuard, PoisonError};

use switchboard_protocol::wire::Welcome;

use crate::handlers::Registry;
use crate::state::{Counters, Stats};

/// State shared by the handles and the connection task.
#[derive(Default)]
pub(crate) struct Shared {
    /// Handlers of server requests and listeners of events: the handles register, the task
    /// dispatches.
    registry: Mutex<Registry>,
    /// The welcome of the current (or last) connection.
    welcome: Mutex<Option<Welcome>>,
    /// Connections, frames, duplicates.
    pub(crate) stats: Counters,
}

impl Shared {
    pub(crate) fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn welcome(&self) -> Option<Welcome> {
        self.welcome.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub(crate) fn set_welcome(&self, welcome: Welcome) {
        *self.welcome.lock().unwrap_or_else(PoisonError::into_inner) = Some(welcome);
    }

    pub(crate) fn stats(&self) -> Stats {
        self.stats.snapshot()
    }
}
