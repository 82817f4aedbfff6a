//! The public handle of a connection, [`Conn`], and the requests it sends to its client.

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::Serialize;
use switchboard_protocol::{CloseCode, Format, Id, MessageType, RawPayload, Topic, wire};
use tokio::sync::oneshot;

use super::state::{ConnShared, Pending};
use crate::error::{Error, RequestError, SendError};
use crate::io::upgrade::UpgradeRequest;

/// A handle to one connection: cheap to clone, usable from any task.
///
/// As an extractor it is the connection the message came from.
///
/// ```
/// use switchboard::{Conn, Error};
/// async fn greet(conn: Conn) -> Result<String, Error> {
///     conn.send("hint", &"you were greeted").map_err(|_| Error::failed())?;
///     let answer: String = conn.request("confirm", &()).await?.decode()?;
///     Ok(format!("{} said {answer}", conn.id()))
/// }
/// ```
#[derive(Clone)]
pub struct Conn(pub(crate) Arc<ConnShared>);

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("id", &self.0.id).finish_non_exhaustive()
    }
}

impl Conn {
    /// The connection id (unique in the cluster).
    #[must_use]
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// The connection's codec.
    #[must_use]
    pub fn format(&self) -> Format {
        self.0.format
    }

    /// The user, once identified (and if the namespace has users).
    #[must_use]
    pub fn user(&self) -> Option<Arc<str>> {
        self.0.user()
    }

    /// The namespace, once identified.
    #[must_use]
    pub fn namespace(&self) -> Option<Arc<str>> {
        self.0.identity.read().as_ref().map(|i| i.ns_name.clone())
    }

    /// The public alias, if any.
    #[must_use]
    pub fn alias(&self) -> Option<Arc<str>> {
        self.0.identity.read().as_ref().and_then(|i| i.alias.clone())
    }

    /// Whether the connection is identified.
    #[must_use]
    pub fn is_identified(&self) -> bool {
        self.0.identity.read().is_some()
    }

    /// Whether the connection is closed or closing.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.0.is_closing()
    }

    /// What the HTTP upgrade request said (headers, cookies, remote address).
    #[must_use]
    pub fn upgrade_request(&self) -> &Arc<UpgradeRequest> {
        &self.0.upgrade
    }

    /// The session data the identify hook attached, if it is a `T`.
    #[must_use]
    pub fn session<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        let session = self.0.identity.read().as_ref()?.session.clone()?;
        session.downcast::<T>().ok()
    }

    /// The topics the connection is subscribed to.
    #[must_use]
    pub fn topics(&self) -> Vec<Topic> {
        self.0.topics.lock().clone()
    }

    /// Sends the event `[kind, payload]`.
    ///
    /// # Errors
    /// [`SendError`] when the connection is closed, overflowing, or the payload does not encode.
    pub fn send<T: Serialize + ?Sized>(&self, kind: &str, payload: &T) -> Result<(), SendError> {
        let payload =
            RawPayload::encode(self.0.format, payload).map_err(|e| SendError::Encode(e.to_string()))?;
        self.0.push_message(kind, &payload, None)
    }

    /// Sends the request `[kind, payload, id]` and waits for the client's reply (default timeout:
    /// [`Config::request_timeout`](crate::Config::request_timeout); change it with [`Request::timeout`]).
    pub fn request<T: Serialize + ?Sized>(&self, kind: &str, payload: &T) -> Request {
        let payload = RawPayload::encode(self.0.format, payload);
        Request {
            conn: self.0.clone(),
            kind: kind.to_owned(),
            payload,
            timeout: self.0.config.request_timeout,
        }
    }

    /// Sends a `~challenge` during identification and waits for the answer. A client that gives
    /// up (`~err`) refuses identification; one that does not answer is closed with 4504 when the
    /// identification timeout expires.
    ///
    /// # Errors
    /// `NOT_AUTHORIZED` when the client gives up or does not answer in time.
    pub async fn challenge<T: Serialize + ?Sized>(&self, quest: &T) -> Result<RawPayload, Error> {
        // No deadline of its own: the identification deadline closes the connection with 4504
        // while this waits (this bound is only a backstop, well past it).
        self.request(wire::types::CHALLENGE, quest)
            .timeout(self.0.config.identify_timeout * 2 + Duration::from_secs(1))
            .await
            .map_err(|_| Error::not_authorized("challenge failed"))
    }

    /// Closes the connection with `code` after what is queued, sending `~bye` first.
    pub fn close(&self, code: CloseCode, reason: &str) {
        self.0.close(code, reason, true);
    }

    /// Asks the client to reconnect to another server: sends `~bye` with `jump: url`, then
    /// closes with 4000 (a client reconnects there, with backoff).
    pub fn redirect(&self, url: &str, reason: &str) {
        self.0.close_with(CloseCode::RECONNECT, reason, true, Some(url.to_owned()));
    }

    /// Adds an inbound filter to this connection only: it sees each application message's type
    /// and payload before the namespace's filters, and may refuse it.
    pub fn add_filter(
        &self,
        filter: impl Fn(&MessageType, &RawPayload) -> Result<(), Error> + Send + Sync + 'static,
    ) {
        self.0.filters.write().push(Arc::new(filter));
    }
}

/// A request to a client in preparation; `.await` it.
#[must_use = "a request does nothing until awaited"]
pub struct Request {
    conn: Arc<ConnShared>,
    kind: String,
    payload: Result<RawPayload, switchboard_protocol::EncodeError>,
    timeout: Duration,
}

impl Request {
    /// How long to wait for the answer.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl IntoFuture for Request {
    type Output = Result<RawPayload, RequestError>;
    type IntoFuture = BoxFuture<'static, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let payload = self.payload.map_err(|e| RequestError::Backend(e.to_string()))?;
            let conn = self.conn;
            let id = conn.next_id();
            let (tx, rx) = oneshot::channel();
            conn.pending.lock().insert(id.get(), Pending::Request(tx));
            let _guard = PendingGuard { conn: &conn, id };
            conn.push_message(&self.kind, &payload, Some(id)).map_err(|_| RequestError::Disconnected)?;
            match tokio::time::timeout(self.timeout, rx).await {
                Ok(Ok(Ok(payload))) => Ok(payload),
                Ok(Ok(Err(body))) => Err(RequestError::Remote(body)),
                Ok(Err(_)) => Err(RequestError::Disconnected),
                Err(_) => Err(RequestError::Timeout),
            }
        })
    }
}

/// Removes a request's pending entry however the wait ends (reply, timeout, cancellation).
struct PendingGuard<'a> {
    conn: &'a ConnShared,
    id: Id,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        let mut pending = self.conn.pending.lock();
        if matches!(pending.get(&self.id.get()), Some(Pending::Request(_))) {
            pending.remove(&self.id.get());
        }
    }
}
