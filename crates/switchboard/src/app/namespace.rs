//! Namespaces: each with its own identify hook, handlers, filters and topics; a namespace may
//! extend others and inherit theirs (the parents' filters run first).

use std::sync::Arc;

use switchboard_protocol::RawPayload;

use super::accept::Accept;
use super::handler::{Erased, Filter, Handler, IntoAccept, IntoPass, NameMap, erase};
use super::topic::{TopicOptions, TopicRule};
use crate::error::{Error, IntoReply};
use crate::hub::topics::settings::TopicParams;

/// A request or event handler, erased.
pub(crate) type ReplyHandler<S> = Erased<S, Result<RawPayload, Error>>;
type IdentifyHook<S> = Erased<S, Result<Accept, Error>>;

/// The namespace used when `~hello` names none, and the one a server without namespaces has.
pub(crate) const DEFAULT_NAMESPACE: &str = "main";

/// A namespace (a connection *channel*): the API a connection gets after `~hello {"ns": …}`.
///
/// ```
/// use switchboard::{Accept, Error, Namespace, Payload};
///
/// async fn identify(Payload(token): Payload<String>) -> Result<Accept, Error> {
///     match token.strip_prefix("user:") {
///         Some(user) => Ok(Accept::user(user)),
///         None => Err(Error::not_authorized("bad token")),
///     }
/// }
/// async fn echo(Payload(v): Payload<serde_json::Value>) -> Result<serde_json::Value, Error> {
///     Ok(v)
/// }
/// let main: Namespace = Namespace::new("main").identify(identify).on("echo", echo);
/// let admin: Namespace = Namespace::new("admin").extends(&main);
/// ```
pub struct Namespace<S = ()> {
    pub(crate) name: Arc<str>,
    identify: Option<IdentifyHook<S>>,
    handlers: Vec<(String, ReplyHandler<S>)>,
    filters: Vec<Filter<S>>,
    parents: Vec<Namespace<S>>,
    topics: Vec<TopicRule<S>>,
    allow_info: Option<bool>,
}

impl<S> Clone for Namespace<S> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            identify: self.identify.clone(),
            handlers: self.handlers.clone(),
            filters: self.filters.clone(),
            parents: self.parents.clone(),
            topics: self.topics.clone(),
            allow_info: self.allow_info,
        }
    }
}

impl<S: Send + Sync + 'static> Namespace<S> {
    /// An empty namespace. Without an identify hook (own or inherited), every `~hello` is
    /// accepted anonymously.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            identify: None,
            handlers: Vec::new(),
            filters: Vec::new(),
            parents: Vec::new(),
            topics: Vec::new(),
            allow_info: None,
        }
    }

    /// The identify hook: sees the `identity` as its payload (and `meta`, the upgrade request,
    /// the connection…) and accepts or refuses. It can challenge first with
    /// [`Conn::challenge`](crate::Conn::challenge). `~refresh` goes through it too.
    #[must_use]
    pub fn identify<H, T>(mut self, hook: H) -> Self
    where
        H: Handler<T, S>,
        H::Output: IntoAccept,
        T: 'static,
    {
        self.identify = Some(erase(hook, |out, _| out.into_accept()));
        self
    }

    /// Handles the event or request `name`. A request gets the handler's result as its reply;
    /// an event's result is dropped (its errors are pushed as `~err` without an id).
    #[must_use]
    pub fn on<H, T>(mut self, name: &str, handler: H) -> Self
    where
        H: Handler<T, S>,
        H::Output: IntoReply,
        T: 'static,
    {
        self.handlers.push((name.to_owned(), erase(handler, |out, format| out.into_reply(format))));
        self
    }

    /// Adds an inbound filter for application events and requests: it runs before the handler
    /// (after the parents' filters) and may refuse with an error, `FORBIDDEN` usually.
    #[must_use]
    pub fn filter<H, T>(mut self, filter: H) -> Self
    where
        H: Handler<T, S>,
        H::Output: IntoPass,
        T: 'static,
    {
        self.filters.push(erase(filter, |out, _| out.into_pass()));
        self
    }

    /// Inherits `parent`'s identify hook (unless this one has its own), handlers (unless
    /// overridden), filters (run first), topics and `~info` permission.
    #[must_use]
    pub fn extends(mut self, parent: &Namespace<S>) -> Self {
        self.parents.push(parent.clone());
        self
    }

    /// Declares a topic pattern (`chat/{room}`, `todo/{list}/{item}`) and its rules. Topics that
    /// match no pattern of the namespace cannot be subscribed to (`FORBIDDEN`).
    #[must_use]
    pub fn topic(mut self, pattern: &str, options: TopicOptions<S>) -> Self {
        self.topics.push(TopicRule::new(pattern, options));
        self
    }

    /// Whether `~info` is allowed on this namespace (default: inherited, else no).
    #[must_use]
    pub fn allow_info(mut self, allow: bool) -> Self {
        self.allow_info = Some(allow);
        self
    }

    /// Flattens the inheritance into a runtime namespace.
    pub(crate) fn compile(&self) -> NsRuntime<S> {
        let mut rt = NsRuntime {
            name: self.name.clone(),
            identify: None,
            handlers: NameMap::default(),
            filters: Vec::new(),
            topics: Vec::new(),
            allow_info: false,
        };
        let mut allow_info = None;
        for parent in &self.parents {
            let p = parent.compile();
            rt.identify = rt.identify.or(p.identify);
            rt.handlers.extend(p.handlers);
            rt.filters.extend(p.filters);
            rt.topics.extend(p.topics);
            allow_info = allow_info.or(Some(p.allow_info));
        }
        if self.identify.is_some() {
            rt.identify.clone_from(&self.identify);
        }
        rt.handlers.extend(self.handlers.iter().cloned());
        rt.filters.extend(self.filters.iter().cloned());
        // Own topic rules are matched before inherited ones.
        let inherited = std::mem::take(&mut rt.topics);
        rt.topics = self.topics.iter().cloned().chain(inherited).collect();
        rt.allow_info = self.allow_info.or(allow_info).unwrap_or(false);
        rt
    }
}

/// A namespace with its inheritance resolved.
pub(crate) struct NsRuntime<S> {
    pub(crate) name: Arc<str>,
    pub(crate) identify: Option<IdentifyHook<S>>,
    pub(crate) handlers: NameMap<ReplyHandler<S>>,
    pub(crate) filters: Vec<Filter<S>>,
    pub(crate) topics: Vec<TopicRule<S>>,
    pub(crate) allow_info: bool,
}

impl<S> NsRuntime<S> {
    pub(crate) fn topic_rule(&self, topic: &str) -> Option<(&TopicRule<S>, TopicParams)> {
        self.topics.iter().find_map(|r| r.matches(topic).map(|p| (r, p)))
    }
}
