//! Options of single calls: [`CallOptions`], [`PublishOptions`], [`SubscribeOptions`] and
//! [`HistoryOptions`], with their client-side checks.

use std::time::Duration;

use switchboard_protocol::wire::{MAX_PUBLISH_KEY, StreamPosition};

use crate::error::ClientError;

/// Options of [`Client::call_with`](crate::Client::call_with).
///
/// ```
/// use std::time::Duration;
/// let opts = switchboard_client::CallOptions::new().timeout(Duration::from_millis(300));
/// # let _ = opts;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CallOptions {
    pub(crate) timeout: Option<Duration>,
}

impl CallOptions {
    /// The client's defaults.
    ///
    /// ```
    /// let opts = switchboard_client::CallOptions::new();
    /// # let _ = opts;
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Fail with `TIMEOUT` when no reply came this long after the call (offline time
    /// included).
    ///
    /// ```
    /// let opts = switchboard_client::CallOptions::new().timeout(std::time::Duration::from_secs(1));
    /// # let _ = opts;
    /// ```
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// Options of [`Client::publish_with`](crate::Client::publish_with).
///
/// ```
/// let opts = switchboard_client::PublishOptions::new().event("say").echo(true).key("msg-7f3a");
/// # let _ = opts;
/// ```
#[derive(Debug, Clone, Default)]
pub struct PublishOptions {
    pub(crate) event: Option<String>,
    pub(crate) echo: bool,
    pub(crate) key: Option<String>,
}

impl PublishOptions {
    /// No event name, no echo.
    ///
    /// ```
    /// let opts = switchboard_client::PublishOptions::new();
    /// # let _ = opts;
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An event name carried with the delivery.
    ///
    /// ```
    /// let opts = switchboard_client::PublishOptions::new().event("typing");
    /// # let _ = opts;
    /// ```
    #[must_use]
    pub fn event(mut self, event: impl Into<String>) -> Self {
        self.event = Some(event.into());
        self
    }

    /// Deliver the publication to this connection too, if it is subscribed.
    ///
    /// ```
    /// let opts = switchboard_client::PublishOptions::new().echo(true);
    /// # let _ = opts;
    /// ```
    #[must_use]
    pub fn echo(mut self, echo: bool) -> Self {
        self.echo = echo;
        self
    }

    /// An idempotency key (at most [`MAX_PUBLISH_KEY`] = 64 bytes), which makes a retry safe:
    /// a publication whose key the topic has already seen within its history is not published
    /// again, and the reply is the first one's (the same `seq`). Use one key per logical
    /// publication, e.g. a UUID made when the user pressed "send", and publish again with the
    /// same key after a `DISCONNECTED` or a `TIMEOUT`. A longer key is refused with
    /// [`ClientError::Invalid`] before anything is sent.
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// use switchboard_client::PublishOptions;
    /// let opts = PublishOptions::new().key("7d0c3f2e-send-1");
    /// let seq = match client.publish_with("chat/lobby", &"hi", opts.clone()).await {
    ///     Err(e) if e.code() == "DISCONNECTED" || e.is_timeout() => {
    ///         client.publish_with("chat/lobby", &"hi", opts).await? // published at most once
    ///     }
    ///     other => other?,
    /// };
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Checks what the client can check before sending: the key's length.
    pub(crate) fn check(&self) -> Result<(), ClientError> {
        match &self.key {
            Some(key) if key.len() > MAX_PUBLISH_KEY => Err(ClientError::Invalid(format!(
                "publish key of {} bytes: at most {MAX_PUBLISH_KEY}",
                key.len()
            ))),
            _ => Ok(()),
        }
    }
}

/// Options of [`Client::subscribe_with`](crate::Client::subscribe_with).
///
/// ```
/// use switchboard_client::SubscribeOptions;
/// let opts = SubscribeOptions::new().since("e1", 41).presence(true);
/// assert_eq!(opts.since_position().unwrap().seq, 41);
/// ```
#[derive(Debug, Clone, Default)]
pub struct SubscribeOptions {
    pub(crate) since: Option<StreamPosition>,
    pub(crate) presence: bool,
}

impl SubscribeOptions {
    /// No options: new publications only, no presence.
    ///
    /// ```
    /// let opts = switchboard_client::SubscribeOptions::new();
    /// assert!(opts.since_position().is_none());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Recover the publications after `seq` of `epoch` (a position the application saved), as
    /// a reconnection does. [`Subscription::recovered`](crate::Subscription::recovered) tells
    /// whether the server could.
    ///
    /// ```
    /// let opts = switchboard_client::SubscribeOptions::new().since("epoch-1", 7);
    /// assert_eq!(opts.since_position().unwrap().epoch, "epoch-1");
    /// ```
    #[must_use]
    pub fn since(mut self, epoch: impl Into<String>, seq: u64) -> Self {
        self.since = Some(StreamPosition { epoch: epoch.into(), seq });
        self
    }

    /// Keep the topic's presence ([`Subscription::presence`](crate::Subscription::presence))
    /// and yield its changes as [`TopicEvent::Presence`](crate::TopicEvent::Presence) (for
    /// topics where the server keeps presence).
    ///
    /// ```
    /// let opts = switchboard_client::SubscribeOptions::new().presence(true);
    /// # let _ = opts;
    /// ```
    #[must_use]
    pub fn presence(mut self, on: bool) -> Self {
        self.presence = on;
        self
    }

    /// The position given with [`SubscribeOptions::since`].
    ///
    /// ```
    /// assert!(switchboard_client::SubscribeOptions::new().since_position().is_none());
    /// ```
    #[must_use]
    pub fn since_position(&self) -> Option<&StreamPosition> {
        self.since.as_ref()
    }
}

/// Options of [`Client::history`](crate::Client::history): how many retained publications,
/// or those after a position.
///
/// ```
/// use switchboard_client::HistoryOptions;
/// let newest_ten = HistoryOptions::new().limit(10);
/// let since = HistoryOptions::new().since("e1", 41);
/// # let _ = (newest_ten, since);
/// ```
#[derive(Debug, Clone, Default)]
pub struct HistoryOptions {
    pub(crate) limit: Option<u64>,
    pub(crate) since: Option<StreamPosition>,
}

impl HistoryOptions {
    /// Everything the topic retains (up to its history size).
    ///
    /// ```
    /// let opts = switchboard_client::HistoryOptions::new();
    /// # let _ = opts;
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// At most the newest `limit` publications (at least 1; the server caps it at the topic's
    /// history size). 0 is refused with [`ClientError::Invalid`] before anything is sent.
    ///
    /// ```
    /// let opts = switchboard_client::HistoryOptions::new().limit(20);
    /// # let _ = opts;
    /// ```
    #[must_use]
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Only the publications after `seq` of `epoch` (a position the application saved, e.g.
    /// from [`Subscription::info`](crate::Subscription::info) or a publication's `seq`). When
    /// the topic's epoch is another one, the reply has no publications and its `epoch`
    /// differs: what followed that position is lost.
    ///
    /// ```
    /// let opts = switchboard_client::HistoryOptions::new().since("e1", 41).limit(50);
    /// # let _ = opts;
    /// ```
    #[must_use]
    pub fn since(mut self, epoch: impl Into<String>, seq: u64) -> Self {
        self.since = Some(StreamPosition { epoch: epoch.into(), seq });
        self
    }

    /// Checks what the client can check before sending: a limit of at least 1.
    pub(crate) fn check(&self) -> Result<(), ClientError> {
        if self.limit == Some(0) {
            return Err(ClientError::Invalid("history limit 0: at least 1".to_owned()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_keys_are_at_most_64_bytes() {
        assert!(PublishOptions::new().check().is_ok());
        assert!(PublishOptions::new().key("k".repeat(MAX_PUBLISH_KEY)).check().is_ok());
        let e = PublishOptions::new().key("k".repeat(MAX_PUBLISH_KEY + 1)).check().unwrap_err();
        assert!(matches!(&e, ClientError::Invalid(m) if m.contains("65 bytes")), "{e:?}");
        // Bytes, not characters: 22 three-byte characters are 66 bytes.
        assert!(PublishOptions::new().key("€".repeat(22)).check().is_err());
    }

    #[test]
    fn a_history_limit_is_at_least_one() {
        assert!(HistoryOptions::new().limit(1).check().is_ok());
        assert_eq!(HistoryOptions::new().limit(0).check().unwrap_err().code(), "BAD_REQUEST");
    }
}
