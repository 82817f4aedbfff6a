//! Topic patterns and their rules.

use std::sync::Arc;
use std::time::Duration;

use switchboard_core::HistoryOptions;

use crate::handler::{IntoPass, erase};
use crate::namespace::Filter;
use crate::{Ctx, Error, FromContext, Handler};

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

/// The parts of a topic's options that do not depend on who asks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TopicSettings {
    pub(crate) history: HistoryOptions,
    pub(crate) presence: bool,
    pub(crate) acked: bool,
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

#[derive(Clone, Debug)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A topic pattern: `/`-separated literals and `{param}`s.
#[derive(Clone, Debug)]
pub(crate) struct Pattern(Arc<[Segment]>);

impl Pattern {
    pub(crate) fn new(pattern: &str) -> Self {
        Self(
            pattern
                .split('/')
                .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => Segment::Param(name.to_owned()),
                    None => Segment::Literal(s.to_owned()),
                })
                .collect(),
        )
    }

    /// The parameters, if `topic` matches the pattern.
    pub(crate) fn matches(&self, topic: &str) -> Option<TopicParams> {
        let mut params = Vec::new();
        let mut parts = topic.split('/');
        for segment in self.0.iter() {
            let part = parts.next()?;
            match segment {
                Segment::Literal(l) if l == part => {}
                Segment::Literal(_) => return None,
                Segment::Param(name) => params.push((name.clone(), part.to_owned())),
            }
        }
        parts.next().is_none().then(|| TopicParams(Arc::new(params)))
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

/// The parameters a topic name matched in its pattern (`chat/{room}` on `chat/lobby`:
/// `room` = `lobby`). An extractor in topic hooks; empty elsewhere.
#[derive(Clone, Debug, Default)]
pub struct TopicParams(Arc<Vec<(String, String)>>);

impl TopicParams {
    /// A parameter's value.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

impl<S> FromContext<S> for TopicParams {
    fn from_context(ctx: &Ctx<'_, S>) -> Result<Self, Error> {
        Ok(ctx.params.cloned().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let rule: TopicRule<()> = TopicRule::new("todo/{list}/{item}", TopicOptions::new());
        let p = rule.matches("todo/l1/i2").unwrap();
        assert_eq!((p.get("list"), p.get("item")), (Some("l1"), Some("i2")));
        assert!(rule.matches("todo/l1").is_none());
        assert!(rule.matches("todo/l1/i2/x").is_none());
        assert!(rule.matches("chat/l1/i2").is_none());
    }
}
