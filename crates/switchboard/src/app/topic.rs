//! Topic patterns and their rules: who may subscribe and publish, and the settings the hub
//! applies.

use std::time::Duration;

use switchboard_core::HistoryOptions;

use super::handler::{Filter, Handler, IntoPass, erase};
use crate::hub::topics::settings::{Pattern, TopicParams, TopicSettings};

/// Who may do something on a topic.
pub(crate) enum Access<S> {
    Anyone,
    Nobody,
    Hook(Filter<S>),
}

impl<S> Clone for Access<S> {
    fn clone(&self) -> Self {
        match self {
            Self::Anyone => Self::Anyone,
            Self::Nobody => Self::Nobody,
            Self::Hook(h) => Self::Hook(h.clone()),
        }
    }
}

/// What the server does with topics that match a pattern.
///
/// Defaults: anyone may subscribe, only the server publishes, no history (sequence numbers
/// only), no presence, deliveries not acknowledged.
///
/// ```
/// use std::time::Duration;
/// use switchboard::{Error, Namespace, TopicOptions, TopicParams, User};
///
/// async fn own_list(User(user): User, params: TopicParams) -> Result<(), Error> {
///     if params.get("user") == Some(&*user) { Ok(()) } else { Err(Error::forbidden("not yours")) }
/// }
/// let ns: Namespace = Namespace::new("main")
///     .topic("chat/{room}", TopicOptions::new().clients_publish().presence(true).history(100, None))
///     .topic("private/{user}", TopicOptions::new().subscribe_if(own_list))
///     .topic("alerts/{x}", TopicOptions::new().acknowledged(true).history(10, Some(Duration::from_secs(60))));
/// ```
pub struct TopicOptions<S = ()> {
    pub(crate) subscribe: Access<S>,
    pub(crate) publish: Access<S>,
    pub(crate) settings: TopicSettings,
}

impl<S> Clone for TopicOptions<S> {
    fn clone(&self) -> Self {
        Self { subscribe: self.subscribe.clone(), publish: self.publish.clone(), settings: self.settings }
    }
}

impl<S: Send + Sync + 'static> Default for TopicOptions<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Send + Sync + 'static> TopicOptions<S> {
    /// The defaults.
    #[must_use]
    pub fn new() -> Self {
        Self { subscribe: Access::Anyone, publish: Access::Nobody, settings: TopicSettings::default() }
    }

    /// Subscribing is decided by a hook (extractors: [`TopicParams`], [`User`](crate::User),
    /// [`Conn`](crate::Conn), …; refusal is usually `FORBIDDEN`).
    #[must_use]
    pub fn subscribe_if<H, T>(mut self, hook: H) -> Self
    where
        H: Handler<T, S>,
        H::Output: IntoPass,
        T: 'static,
    {
        self.subscribe = Access::Hook(erase(hook, |out, _| out.into_pass()));
        self
    }

    /// Clients cannot subscribe (`FORBIDDEN`): only the server puts connections in (groups).
    #[must_use]
    pub fn server_joins_only(mut self) -> Self {
        self.subscribe = Access::Nobody;
        self
    }

    /// Any identified client may publish.
    #[must_use]
    pub fn clients_publish(mut self) -> Self {
        self.publish = Access::Anyone;
        self
    }

    /// Publishing by clients is decided by a hook.
    #[must_use]
    pub fn publish_if<H, T>(mut self, hook: H) -> Self
    where
        H: Handler<T, S>,
        H::Output: IntoPass,
        T: 'static,
    {
        self.publish = Access::Hook(erase(hook, |out, _| out.into_pass()));
        self
    }

    /// Keeps the last `size` publications (each for at most `ttl`) for recovery.
    #[must_use]
    pub fn history(mut self, size: usize, ttl: Option<Duration>) -> Self {
        self.settings.history = HistoryOptions { size, ttl };
        self
    }

    /// Tracks who is subscribed (`~who {topic}`, `~presence` diffs).
    #[must_use]
    pub fn presence(mut self, on: bool) -> Self {
        self.settings.presence = on;
        self
    }

    /// Deliveries carry an id and are resent until acknowledged.
    #[must_use]
    pub fn acknowledged(mut self, on: bool) -> Self {
        self.settings.acked = on;
        self
    }
}

/// A pattern and its options.
pub(crate) struct TopicRule<S> {
    pub(crate) pattern: Pattern,
    pub(crate) options: TopicOptions<S>,
}

impl<S> Clone for TopicRule<S> {
    fn clone(&self) -> Self {
        Self { pattern: self.pattern.clone(), options: self.options.clone() }
    }
}

impl<S> TopicRule<S> {
    pub(crate) fn new(pattern: &str, options: TopicOptions<S>) -> Self {
        Self { pattern: Pattern::new(pattern), options }
    }

    pub(crate) fn matches(&self, topic: &str) -> Option<TopicParams> {
        self.pattern.matches(topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_their_pattern() {
        let rule: TopicRule<()> = TopicRule::new("todo/{list}/{item}", TopicOptions::new());
        let p = rule.matches("todo/l1/i2").unwrap();
        assert_eq!(p.get("item"), Some("i2"));
        assert!(rule.matches("todo/l1").is_none());
    }
}
