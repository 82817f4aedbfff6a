//! Options of single calls: [`CallOptions`], [`PublishOptions`] and [`SubscribeOptions`].

use std::time::Duration;

use switchboard_protocol::wire::StreamPosition;

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
/// let opts = switchboard_client::PublishOptions::new().event("say").echo(true);
/// # let _ = opts;
/// ```
#[derive(Debug, Clone, Default)]
pub struct PublishOptions {
    pub(crate) event: Option<String>,
    pub(crate) echo: bool,
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
