//! WebSocket close codes (protocol section 8).

/// A close code with the meaning protocol section 8 gives it.
///
/// Codes 4000–4499 ask the client to reconnect (with backoff and jitter); 4500–4999 ask it not
/// to. [`CloseCode::reconnects`] tells which.
///
/// ```
/// use switchboard_protocol::CloseCode;
/// assert!(CloseCode::HEARTBEAT_TIMEOUT.reconnects());
/// assert!(!CloseCode::KICKED.reconnects());
/// assert_eq!(u16::from(CloseCode::PROTOCOL_ERROR), 4501);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: normal closure.
    pub const NORMAL: Self = Self(1000);
    /// 1001: the server is going away (shutdown, restart); the client reconnects.
    pub const GOING_AWAY: Self = Self(1001);
    /// 1006: the connection was lost without a close frame (never sent; reported by the side
    /// that saw it, e.g. in a `disconnect` lifecycle event).
    pub const ABNORMAL: Self = Self(1006);
    /// 1009: a message was too big.
    pub const TOO_BIG: Self = Self(1009);
    /// 4000: reconnect requested, maybe elsewhere (see `~bye.jump`).
    pub const RECONNECT: Self = Self(4000);
    /// 4001: nothing arrived for two heartbeat intervals.
    pub const HEARTBEAT_TIMEOUT: Self = Self(4001);
    /// 4002: slow consumer, the outbound queue overflowed.
    pub const SLOW_CONSUMER: Self = Self(4002);
    /// 4003: credentials expired; reconnect with fresh ones.
    pub const CREDENTIALS_EXPIRED: Self = Self(4003);
    /// 4500: identification refused.
    pub const NOT_AUTHORIZED: Self = Self(4500);
    /// 4501: protocol error (a frame that is not a valid message).
    pub const PROTOCOL_ERROR: Self = Self(4501);
    /// 4502: too many connections for this user.
    pub const TOO_MANY_CONNECTIONS: Self = Self(4502);
    /// 4503: disconnected by the server (kicked).
    pub const KICKED: Self = Self(4503);
    /// 4504: no successful `~hello` within the identification timeout.
    pub const IDENTIFICATION_TIMEOUT: Self = Self(4504);

    /// Whether a client should reconnect after this close: 4000–4499 (protocol.md §8), and the
    /// link failures 1001 (going away), 1005 (no status), 1006 (lost) and 1011–1014 (server
    /// error, restart, try again later, bad gateway). The TypeScript client uses the same rule.
    ///
    /// ```
    /// use switchboard_protocol::CloseCode;
    /// assert!(CloseCode::RECONNECT.reconnects());
    /// assert!(CloseCode(1012).reconnects());
    /// assert!(!CloseCode::KICKED.reconnects());
    /// assert!(!CloseCode::NORMAL.reconnects());
    /// ```
    #[must_use]
    pub fn reconnects(self) -> bool {
        matches!(self.0, 1001 | 1005 | 1006 | 1011..=1014 | 4000..=4499)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.0
    }
}
