//! What the server's limits refused, for metrics: [`LimitStats`].

use std::sync::atomic::Ordering;

use crate::hub::Hub;

/// Counters of the server's limits on this node since start (and one gauge): what was refused,
/// and why. Read them with [`LimitStats::of`]; the standalone server exports them to
/// Prometheus.
///
/// ```
/// # async fn demo() {
/// let board = switchboard::Server::new().build().await.unwrap();
/// let limits = switchboard::LimitStats::of(&board.hub());
/// assert_eq!(limits.handshake_timeouts, 0);
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct LimitStats {
    /// Connections in their handshake now ([`Switchboard::serve`](crate::Switchboard::serve)).
    pub handshakes_pending: usize,
    /// Handshakes closed at their deadline ([`Config::handshake_timeout`](crate::Config::handshake_timeout)).
    pub handshake_timeouts: u64,
    /// Connections closed at once beyond [`Config::max_handshakes`](crate::Config::max_handshakes).
    pub handshake_cap: u64,
    /// Upgrade requests answered 431 ([`Config::max_header_bytes`](crate::Config::max_header_bytes)).
    pub handshake_too_large: u64,
}

impl LimitStats {
    /// The counters of the server `hub` belongs to.
    #[must_use]
    pub fn of(hub: &Hub) -> Self {
        let c = hub.core().counters();
        Self {
            handshakes_pending: c.handshakes.load(Ordering::Relaxed),
            handshake_timeouts: c.sum(|c| &c.handshake_timeouts),
            handshake_cap: c.sum(|c| &c.handshake_cap),
            handshake_too_large: c.sum(|c| &c.handshake_too_large),
        }
    }
}
