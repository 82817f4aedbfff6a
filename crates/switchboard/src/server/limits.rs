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
    /// Messages refused (`RATE_LIMITED`) for a limit of messages, of a connection or of its user
    /// ([`Config::rate_limits`](crate::Config::rate_limits)).
    pub rate_limited_messages: u64,
    /// … for a limit of publications (`~pub`).
    pub rate_limited_publications: u64,
    /// … for a limit of subscriptions (`~sub`).
    pub rate_limited_subscriptions: u64,
    /// Connections closed (4501) for going on past their rate limits.
    pub rate_limit_closes: u64,
    /// Connections refused: too many open from their address
    /// ([`Config::connection_limits`](crate::Config::connection_limits)).
    pub address_too_many: u64,
    /// Connections refused: too many new ones from their address.
    pub address_too_often: u64,
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
            rate_limited_messages: c.sum(|c| &c.limited_messages),
            rate_limited_publications: c.sum(|c| &c.limited_publications),
            rate_limited_subscriptions: c.sum(|c| &c.limited_subscriptions),
            rate_limit_closes: c.sum(|c| &c.rate_limit_closes),
            address_too_many: c.sum(|c| &c.address_too_many),
            address_too_often: c.sum(|c| &c.address_too_often),
        }
    }
}
