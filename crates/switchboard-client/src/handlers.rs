//! What the server sends on its own initiative: events, requests, direct messages and
//! publications of server-made groups — the listeners and handlers that receive them.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::Stream;
use serde::Serialize;
use serde::de::DeserializeOwned;
use switchboard_protocol::wire::DirectDelivery;
use switchboard_protocol::{ErrorBody, Format, RawPayload, codes};
use tokio::sync::mpsc;

use crate::delivery::Publication;
use crate::error::ClientError;
use crate::transport::BoxFuture;

/// An event (or acknowledged delivery) the server sent: `[name, payload]`.
///
/// ```
/// use switchboard_client::{Event, RawPayload};
/// let e = Event { name: "note".into(), payload: RawPayload::json(&serde_json::json!({"n": 1})).unwrap() };
/// let v: serde_json::Value = e.decode().unwrap();
/// assert_eq!(v["n"], 1);
/// ```
#[derive(Debug, Clone)]
pub struct Event {
    /// The message type.
    pub name: String,
    /// The payload, still encoded.
    pub payload: RawPayload,
}

impl Event {
    /// Decodes the payload into `T`.
    ///
    /// ```
    /// use switchboard_client::{Event, RawPayload};
    /// let e = Event { name: "n".into(), payload: RawPayload::json(&5).unwrap() };
    /// assert_eq!(e.decode::<u32>().unwrap(), 5);
    /// ```
    ///
    /// # Errors
    /// [`ClientError::Decode`] when the payload is not a `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        Ok(self.payload.decode()?)
    }
}

/// A stream of things the server sends: [`Event`]s, direct messages, group publications.
///
/// Read it with [`Inbox::recv`] or as a [`Stream`]. It ends when the client closes. Items wait
/// in an unbounded queue: read what you ask for, or drop the inbox.
///
/// ```no_run
/// # async fn demo(client: switchboard_client::Client) {
/// use futures_util::StreamExt;
/// let mut events = client.events_named("note");
/// while let Some(event) = events.next().await {
///     println!("{}: {:?}", event.name, event.payload);
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct Inbox<T> {
    rx: mpsc::UnboundedReceiver<T>,
}

impl<T> Inbox<T> {
    pub(crate) fn new(rx: mpsc::UnboundedReceiver<T>) -> Self {
        Self { rx }
    }

    /// The next item; `None` once the client is closed.
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) {
    /// let mut dms = client.direct_messages();
    /// if let Some(dm) = dms.recv().await {
    ///     println!("from {:?}: {:?}", dm.from.alias, dm.data);
    /// }
    /// # }
    /// ```
    pub async fn recv(&mut self) -> Option<T> {
        self.rx.recv().await
    }

    /// The next item if one is waiting.
    ///
    /// ```no_run
    /// # fn demo(client: switchboard_client::Client) {
    /// let mut events = client.events();
    /// assert!(events.try_recv().is_none());
    /// # }
    /// ```
    pub fn try_recv(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}

impl<T> Stream for Inbox<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.rx.poll_recv(cx)
    }
}

/// A stream of server events ([`Client::events`](crate::Client::events)).
pub type Events = Inbox<Event>;
/// A stream of received direct messages ([`Client::direct_messages`](crate::Client::direct_messages)).
pub type DirectMessages = Inbox<DirectDelivery>;
/// A stream of publications of topics the server put this connection into
/// ([`Client::group_publications`](crate::Client::group_publications)).
pub type GroupPublications = Inbox<Publication>;

/// A type-erased handler of server requests.
pub(crate) type RequestFn =
    Arc<dyn Fn(RawPayload) -> BoxFuture<'static, Result<RawPayload, ErrorBody>> + Send + Sync>;

/// Wraps a typed handler: decodes the payload (`BAD_REQUEST` when it does not fit) and encodes
/// the result in the connection's format.
pub(crate) fn request_fn<T, R, F, Fut>(format: Format, handler: F) -> RequestFn
where
    T: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, ErrorBody>> + Send + 'static,
{
    let handler = Arc::new(handler);
    Arc::new(move |payload: RawPayload| {
        let handler = Arc::clone(&handler);
        Box::pin(async move {
            let args =
                payload.decode::<T>().map_err(|e| ErrorBody::new(codes::BAD_REQUEST, e.to_string()))?;
            let result = handler(args).await?;
            RawPayload::encode(format, &result).map_err(|e| ErrorBody::new(codes::FAILED, e.to_string()))
        })
    })
}

/// Handlers and listeners, shared by the handles (which register) and the connection task
/// (which dispatches).
#[derive(Default)]
pub(crate) struct Registry {
    /// Handlers of server requests, by message type.
    requests: HashMap<String, RequestFn>,
    /// Event listeners: `None` listens to every event.
    events: Vec<(Option<String>, mpsc::UnboundedSender<Event>)>,
    /// Direct-message listeners.
    dms: Vec<mpsc::UnboundedSender<DirectDelivery>>,
    /// Listeners of publications of topics without a local subscription (server-made groups).
    groups: Vec<mpsc::UnboundedSender<Publication>>,
    /// Set once the client is closed: new listeners get an ended stream.
    closed: bool,
}

impl Registry {
    pub(crate) fn set_handler(&mut self, name: &str, handler: RequestFn) {
        self.requests.insert(name.to_owned(), handler);
    }

    pub(crate) fn handler(&self, name: &str) -> Option<RequestFn> {
        self.requests.get(name).cloned()
    }

    pub(crate) fn listen(&mut self, name: Option<&str>) -> Events {
        let (tx, rx) = mpsc::unbounded_channel();
        if !self.closed {
            self.events.push((name.map(str::to_owned), tx));
        }
        Inbox::new(rx)
    }

    pub(crate) fn listen_dms(&mut self) -> DirectMessages {
        let (tx, rx) = mpsc::unbounded_channel();
        if !self.closed {
            self.dms.push(tx);
        }
        Inbox::new(rx)
    }

    pub(crate) fn listen_groups(&mut self) -> GroupPublications {
        let (tx, rx) = mpsc::unbounded_channel();
        if !self.closed {
            self.groups.push(tx);
        }
        Inbox::new(rx)
    }

    /// Whether some live listener would receive an event of this type.
    pub(crate) fn has_listener(&self, name: &str) -> bool {
        self.events.iter().any(|(n, tx)| !tx.is_closed() && n.as_deref().is_none_or(|n| n == name))
    }

    /// Delivers an event to its listeners; returns how many got it.
    pub(crate) fn dispatch_event(&mut self, event: &Event) -> usize {
        let mut delivered = 0;
        self.events.retain(|(name, tx)| {
            if name.as_deref().is_some_and(|n| n != event.name) {
                return !tx.is_closed();
            }
            let ok = tx.send(event.clone()).is_ok();
            delivered += usize::from(ok);
            ok
        });
        delivered
    }

    pub(crate) fn dispatch_dm(&mut self, dm: &DirectDelivery) -> usize {
        fan_out(&mut self.dms, dm)
    }

    pub(crate) fn dispatch_group(&mut self, publication: &Publication) -> usize {
        fan_out(&mut self.groups, publication)
    }

    /// Ends every stream (the client closed).
    pub(crate) fn close(&mut self) {
        self.closed = true;
        self.events.clear();
        self.dms.clear();
        self.groups.clear();
    }
}

fn fan_out<T: Clone>(listeners: &mut Vec<mpsc::UnboundedSender<T>>, item: &T) -> usize {
    listeners.retain(|tx| tx.send(item.clone()).is_ok());
    listeners.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_reach_matching_listeners_only() {
        let mut reg = Registry::default();
        let mut all = reg.listen(None);
        let mut notes = reg.listen(Some("note"));
        let gone = reg.listen(Some("other"));
        drop(gone);
        let e = Event { name: "note".into(), payload: RawPayload::null() };
        assert_eq!(reg.dispatch_event(&e), 2);
        assert!(reg.has_listener("other"), "`all` listens to everything");
        assert_eq!(all.recv().await.unwrap().name, "note");
        assert_eq!(notes.recv().await.unwrap().name, "note");
        let e = Event { name: "x".into(), payload: RawPayload::null() };
        assert_eq!(reg.dispatch_event(&e), 1);
        reg.close();
        assert_eq!(all.recv().await.unwrap().name, "x");
        assert!(all.recv().await.is_none());
        assert!(reg.listen(None).recv().await.is_none());
    }

    #[tokio::test]
    async fn typed_handlers_decode_and_encode() {
        let h = request_fn(Format::Json, |n: u32| async move { Ok::<_, ErrorBody>(n + 1) });
        let out = h(RawPayload::json(&41).unwrap()).await.unwrap();
        assert_eq!(out.as_bytes(), b"42");
        let err = h(RawPayload::json(&"x").unwrap()).await.unwrap_err();
        assert_eq!(err.code, "BAD_REQUEST");
    }
}
