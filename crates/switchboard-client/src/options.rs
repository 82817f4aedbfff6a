//! Options of single calls: [`CallOptions`] and [`PublishOptions`].

use std::time::Duration;

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
