//! The [`Client`] handle: cheap to clone, usable from many tasks at once. It starts the
//! connection task and talks to it through the command channel.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use switchboard_protocol::wire::{
    DirectMessage, DmTarget, HistoryReply, HistoryRequest, InfoRequest, Peer, Peers, Publish, Published,
    Refresh, Status, Welcome, Who, types,
};
use switchboard_protocol::{ErrorBody, Format, MessageType, RawPayload, Topic};
use tokio::sync::{mpsc, oneshot, watch};

use crate::command::{Command, Commands};
use crate::config::Config;
use crate::connection::Connection;
use crate::error::{ClientError, CloseReason};
use crate::handlers::{DirectMessages, Events, GroupPublications, RequestFn, request_fn};
use crate::options::{CallOptions, HistoryOptions, PublishOptions, SubscribeOptions};
use crate::presence::Roster;
use crate::requests::Outbound;
use crate::shared::Shared;
use crate::state::{State, Stats};
use crate::subscription::Subscription;
use crate::topics::NewSink;
use crate::transport::Connector;

struct Inner {
    commands: Commands,
    state: watch::Receiver<State>,
    shared: Arc<Shared>,
    format: Format,
    request_timeout: Duration,
    next_sink: AtomicU64,
}

/// A Switchboard client: a cheap, cloneable handle to one connection task.
///
/// The task connects, identifies, reconnects with backoff when the link drops, subscribes
/// again and replays what was buffered offline; every clone of the handle talks to it. When
/// the last handle (and the last [`Subscription`]) is dropped, the client closes.
///
/// ```no_run
/// use switchboard_client::Client;
///
/// # async fn demo() -> Result<(), switchboard_client::ClientError> {
/// let client = Client::builder("ws://127.0.0.1:8080/ws")
///     .identity(&serde_json::json!({"user": "alice", "password": "pw-alice"}))
///     .connect()
///     .await?;
/// let sum: f64 = client.call("add", &serde_json::json!({"a": 1, "b": 2})).await?;
/// assert_eq!(sum, 3.0);
/// client.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("state", &*self.inner.state.borrow()).finish_non_exhaustive()
    }
}

impl Client {
    pub(crate) fn spawn(
        config: Config,
        handlers: Vec<(String, RequestFn)>,
        connector: Arc<dyn Connector>,
    ) -> Self {
        let (commands, rx) = Commands::channel();
        let (state_tx, state) = watch::channel(State::Connecting);
        let shared = Arc::new(Shared::default());
        for (name, handler) in handlers {
            shared.registry().set_handler(&name, handler);
        }
        let format = config.format;
        let request_timeout = config.request_timeout;
        let url = config.url.clone();
        let connection = Connection::new(Arc::new(config), connector, rx, state_tx, Arc::clone(&shared));
        let span = tracing::info_span!("switchboard_client", url = %url);
        tokio::spawn(tracing::Instrument::instrument(connection.run(), span));
        Self {
            inner: Arc::new(Inner {
                commands,
                state,
                shared,
                format,
                request_timeout,
                next_sink: AtomicU64::new(1),
            }),
        }
    }

    /// The state now.
    ///
    /// ```no_run
    /// # fn demo(client: switchboard_client::Client) {
    /// println!("{}", client.state());
    /// # }
    /// ```
    #[must_use]
    pub fn state(&self) -> State {
        self.inner.state.borrow().clone()
    }

    /// A receiver of every state change.
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) {
    /// let mut states = client.states();
    /// while states.changed().await.is_ok() {
    ///     println!("now {}", *states.borrow());
    /// }
    /// # }
    /// ```
    #[must_use]
    pub fn states(&self) -> watch::Receiver<State> {
        self.inner.state.clone()
    }

    /// Waits until the client is [`State::Ready`].
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// client.ready().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ClientError::Connect`] with the error that stopped the client, when retrying could
    /// not fix it (see [`ConnectionError`](crate::ConnectionError)); [`ClientError::Closed`]
    /// when the client was closed or gave up ([`CloseReason::GaveUp`]).
    pub async fn ready(&self) -> Result<(), ClientError> {
        let mut states = self.inner.state.clone();
        let state = states
            .wait_for(|s| s.is_ready() || s.is_closed())
            .await
            .map(|s| s.clone())
            .unwrap_or(State::Closed { reason: CloseReason::Requested });
        match state {
            State::Closed { reason: CloseReason::Failed(e) } => Err(ClientError::Connect(e)),
            State::Closed { reason } => Err(ClientError::Closed(reason)),
            _ => Ok(()),
        }
    }

    /// The server's welcome on the current connection (or the last one): connection id,
    /// user, namespace, welcome data, heartbeat.
    ///
    /// ```no_run
    /// # fn demo(client: switchboard_client::Client) {
    /// if let Some(w) = client.welcome() {
    ///     println!("connection {} as {:?}", w.conn, w.user);
    /// }
    /// # }
    /// ```
    #[must_use]
    pub fn welcome(&self) -> Option<Welcome> {
        self.inner.shared.welcome()
    }

    /// Counters: connections, frames, duplicates dropped.
    ///
    /// ```no_run
    /// # fn demo(client: switchboard_client::Client) {
    /// println!("{} reconnections", client.stats().connections.saturating_sub(1));
    /// # }
    /// ```
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.inner.shared.stats()
    }

    /// The format of this client's messages.
    ///
    /// ```no_run
    /// # fn demo(client: switchboard_client::Client) {
    /// assert_eq!(client.format(), switchboard_client::Format::Json);
    /// # }
    /// ```
    #[must_use]
    pub fn format(&self) -> Format {
        self.inner.format
    }

    fn send_command(&self, cmd: Command) -> Result<(), ClientError> {
        self.inner.commands.send(cmd).map_err(|_| self.closed_error())
    }

    fn closed_error(&self) -> ClientError {
        match &*self.inner.state.borrow() {
            State::Closed { reason } => ClientError::Closed(reason.clone()),
            _ => ClientError::Closed(CloseReason::Requested),
        }
    }

    fn encode<P: Serialize + ?Sized>(&self, value: &P) -> Result<RawPayload, ClientError> {
        Ok(RawPayload::encode(self.inner.format, value)?)
    }

    /// Sends the request `[kind, payload, id]` and decodes the reply into `T`, within the
    /// client's request timeout.
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// #[derive(serde::Deserialize)]
    /// struct WhoAmI { user: String, conn: String, ns: String }
    ///
    /// let me: WhoAmI = client.call("whoami", &()).await?;
    /// match client.call::<f64, _>("add", &serde_json::json!({"a": 1})).await {
    ///     Err(e) if e.code() == "BAD_REQUEST" => {}
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The server's `~err` ([`ClientError::Server`] with its code), `TIMEOUT`,
    /// `DISCONNECTED`, `LIMIT` (offline buffer full), `BAD_REQUEST` (encoding or decoding).
    pub async fn call<T: DeserializeOwned, P: Serialize + ?Sized>(
        &self,
        kind: &str,
        payload: &P,
    ) -> Result<T, ClientError> {
        self.call_with(kind, payload, CallOptions::new()).await
    }

    /// [`Client::call`] with options (a timeout of its own).
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) {
    /// use std::time::Duration;
    /// use switchboard_client::CallOptions;
    ///
    /// let opts = CallOptions::new().timeout(Duration::from_millis(100));
    /// let r = client.call_with::<(), _>("sleep", &serde_json::json!({"ms": 1000}), opts).await;
    /// assert_eq!(r.unwrap_err().code(), "TIMEOUT");
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn call_with<T: DeserializeOwned, P: Serialize + ?Sized>(
        &self,
        kind: &str,
        payload: &P,
        options: CallOptions,
    ) -> Result<T, ClientError> {
        let payload = self.encode(payload)?;
        let reply = self.request(kind, payload, options).await?;
        Ok(reply.decode()?)
    }

    /// Sends a request with a raw payload and returns the raw reply.
    ///
    /// Reserved types (`~…`) are sent as they are, without the bookkeeping of the dedicated
    /// methods ([`Client::subscribe`], [`Client::set_status`]…): prefer those.
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// use switchboard_client::{CallOptions, RawPayload};
    /// let reply = client.request("echo", RawPayload::json(&[1, 2])?, CallOptions::new()).await?;
    /// assert_eq!(reply.decode::<Vec<u8>>()?, [1, 2]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn request(
        &self,
        kind: &str,
        payload: RawPayload,
        options: CallOptions,
    ) -> Result<RawPayload, ClientError> {
        check_type(kind)?;
        let timeout = options.timeout.unwrap_or(self.inner.request_timeout);
        let (tx, rx) = oneshot::channel();
        self.send_command(Command::Send(Outbound { kind: kind.to_owned(), payload, reply: Some(tx) }))?;
        match tokio::time::timeout(timeout, rx).await {
            Err(_) => Err(ClientError::Timeout(timeout)),
            Ok(Err(_)) => Err(self.closed_error()),
            Ok(Ok(result)) => result,
        }
    }

    /// Sends the event `[kind, payload]`. Returns once it is written or, while offline,
    /// buffered.
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// client.emit("typing", &serde_json::json!({"room": "lobby"})).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `LIMIT` when offline with a full buffer, `DISCONNECTED` once closed, `BAD_REQUEST` when
    /// the payload does not encode.
    pub async fn emit<P: Serialize + ?Sized>(&self, kind: &str, payload: &P) -> Result<(), ClientError> {
        check_type(kind)?;
        let payload = self.encode(payload)?;
        let (accepted, rx) = oneshot::channel();
        let out = Outbound { kind: kind.to_owned(), payload, reply: None };
        self.send_command(Command::Event { out, accepted })?;
        rx.await.map_err(|_| self.closed_error())?
    }

    /// Handles the server's requests of type `name` (replacing an earlier handler). The
    /// payload is decoded into `T` (`BAD_REQUEST` when it does not fit), and the result or
    /// error is the reply. Requests without a handler are answered `NOT_FOUND`, unless an
    /// event listener of that type exists, which makes them acknowledged deliveries.
    /// A handler that captures a clone of the client keeps it alive: end it with
    /// [`Client::close`].
    ///
    /// ```no_run
    /// # fn demo(client: switchboard_client::Client) {
    /// use switchboard_client::ErrorBody;
    /// client.on_request("confirm", |question: String| async move {
    ///     if question.is_empty() { Err(ErrorBody::new("EMPTY", "nothing to confirm")) } else { Ok(true) }
    /// });
    /// # }
    /// ```
    pub fn on_request<T, R, F, Fut>(&self, name: &str, handler: F)
    where
        T: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, ErrorBody>> + Send + 'static,
    {
        self.inner.shared.registry().set_handler(name, request_fn(self.inner.format, handler));
    }

    /// Every event the server sends (`[name, payload]`), acknowledged deliveries included,
    /// and the server's `~err` pushes (an event of ours that had no handler).
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) {
    /// let mut events = client.events();
    /// while let Some(e) = events.recv().await {
    ///     println!("{} {:?}", e.name, e.payload);
    /// }
    /// # }
    /// ```
    #[must_use]
    pub fn events(&self) -> Events {
        self.inner.shared.registry().listen(None)
    }

    /// The server's events of one type. An acknowledged delivery of that type
    /// (`[name, payload, id]`) is acknowledged with `~ok` and delivered once, even when the
    /// server resends it.
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) {
    /// let mut notes = client.events_named("note");
    /// let first = notes.recv().await;
    /// # }
    /// ```
    #[must_use]
    pub fn events_named(&self, name: &str) -> Events {
        self.inner.shared.registry().listen(Some(name))
    }

    /// Direct messages received (`~dm`).
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) {
    /// let mut dms = client.direct_messages();
    /// while let Some(dm) = dms.recv().await {
    ///     println!("{:?} says {:?}", dm.from.alias, dm.data);
    /// }
    /// # }
    /// ```
    #[must_use]
    pub fn direct_messages(&self) -> DirectMessages {
        self.inner.shared.registry().listen_dms()
    }

    /// Publications of topics this client did not subscribe to: the groups the server put
    /// the connection into. The server forgets them when the connection drops; join again
    /// after a reconnection.
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// let mut groups = client.group_publications();
    /// let _: serde_json::Value = client.call("join", &serde_json::json!({"group": "red"})).await?;
    /// let p = groups.recv().await;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn group_publications(&self) -> GroupPublications {
        self.inner.shared.registry().listen_groups()
    }

    /// Subscribes to a topic (new publications only).
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// let mut sub = client.subscribe("chat/lobby").await?;
    /// while let Some(p) = sub.next_publication().await {
    ///     println!("{:?}", p.data);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The server's refusal (`FORBIDDEN`, `LIMIT`…), `TIMEOUT` (the request timeout),
    /// `BAD_REQUEST` for an invalid topic name.
    pub async fn subscribe(&self, topic: &str) -> Result<Subscription, ClientError> {
        self.subscribe_with(topic, SubscribeOptions::new()).await
    }

    /// Subscribes with options: a position to recover from, presence.
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// use switchboard_client::SubscribeOptions;
    /// let sub = client.subscribe_with("chat/lobby", SubscribeOptions::new().presence(true)).await?;
    /// println!("{} peers here", sub.presence().unwrap().len());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Client::subscribe`].
    pub async fn subscribe_with(
        &self,
        topic: &str,
        options: SubscribeOptions,
    ) -> Result<Subscription, ClientError> {
        check_topic(topic)?;
        let sink = self.inner.next_sink.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        let (waiter, reply) = oneshot::channel();
        let new = NewSink {
            topic: topic.to_owned(),
            since: options.since,
            presence: options.presence,
            id: sink,
            tx,
            waiter,
        };
        self.send_command(Command::Subscribe(new))?;
        let mut guard = SinkGuard { client: self, topic, sink, armed: true };
        let timeout = self.inner.request_timeout;
        let reply = match tokio::time::timeout(timeout, reply).await {
            Err(_) => return Err(ClientError::Timeout(timeout)),
            Ok(Err(_)) => return Err(self.closed_error()),
            Ok(Ok(reply)) => reply?,
        };
        guard.armed = false;
        Ok(Subscription {
            topic: topic.to_owned(),
            sink,
            rx,
            commands: self.inner.commands.clone(),
            info: reply.info,
            presence: reply.presence,
            active: true,
        })
    }

    /// Publishes to a topic (where the server lets clients publish); returns the
    /// publication's `seq`.
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// let seq = client.publish("chat/lobby", &serde_json::json!({"text": "hi"})).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `FORBIDDEN` where clients may not publish, and as [`Client::call`].
    pub async fn publish<P: Serialize + ?Sized>(&self, topic: &str, data: &P) -> Result<u64, ClientError> {
        self.publish_with(topic, data, PublishOptions::new()).await
    }

    /// Publishes with an event name, with echo to this connection, or with an idempotency key
    /// that makes a retry safe ([`PublishOptions::key`]).
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// use switchboard_client::PublishOptions;
    /// client.publish_with("chat/lobby", &"hi", PublishOptions::new().event("say").echo(true)).await?;
    /// client.publish_with("chat/lobby", &"once", PublishOptions::new().key("msg-1")).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Client::publish`]; `BAD_REQUEST` ([`ClientError::Invalid`]) for a key longer than
    /// 64 bytes, before anything is sent.
    pub async fn publish_with<P: Serialize + ?Sized>(
        &self,
        topic: &str,
        data: &P,
        options: PublishOptions,
    ) -> Result<u64, ClientError> {
        check_topic(topic)?;
        options.check()?;
        let publish = Publish {
            topic: topic.to_owned(),
            event: options.event,
            data: self.encode(data)?,
            echo: options.echo,
            key: options.key,
        };
        let published: Published = self.call(types::PUB, &publish).await?;
        Ok(published.seq)
    }

    /// Reads a topic's retained publications without subscribing (`~history`): the newest
    /// ones ([`HistoryOptions::limit`]), or those after a position ([`HistoryOptions::since`]),
    /// oldest first, with the topic's epoch and latest `seq`.
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// use switchboard_client::HistoryOptions;
    ///
    /// let last = client.history("chat/lobby", HistoryOptions::new().limit(20)).await?;
    /// for p in &last.publications {
    ///     println!("#{} {:?}", p.seq, p.data);
    /// }
    /// // Later: only what came after, if the stream did not restart meanwhile.
    /// let newer = client.history("chat/lobby", HistoryOptions::new().since(&last.epoch, last.seq)).await?;
    /// if newer.epoch != last.epoch {
    ///     println!("the topic's history was lost: reload");
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `FORBIDDEN` where this client may not subscribe to the topic, `NOT_FOUND` where the
    /// topic keeps no history, `BAD_REQUEST` for an invalid topic name or a limit of 0 (both
    /// checked before sending), and as [`Client::call`].
    pub async fn history(&self, topic: &str, options: HistoryOptions) -> Result<HistoryReply, ClientError> {
        check_topic(topic)?;
        options.check()?;
        let request = HistoryRequest { topic: topic.to_owned(), limit: options.limit, since: options.since };
        self.call(types::HISTORY, &request).await
    }

    /// The directory once (`~who`): the available connections that have an alias.
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// for peer in client.who().await? {
    ///     println!("{:?}", peer.alias);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn who(&self) -> Result<Vec<Peer>, ClientError> {
        Ok(self.call::<Peers, _>(types::WHO, &Who::default()).await?.peers)
    }

    /// A topic's presence once (`~who {topic}`; this client must be subscribed).
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// let _sub = client.subscribe("chat/lobby").await?;
    /// let here = client.who_in("chat/lobby").await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `FORBIDDEN` for a non-subscriber, and as [`Client::call`].
    pub async fn who_in(&self, topic: &str) -> Result<Vec<Peer>, ClientError> {
        Ok(self.call::<Peers, _>(types::WHO, &Who { topic: Some(topic.to_owned()) }).await?.peers)
    }

    /// The directory, kept in sync (`~who` at every connection, then `~peer` changes).
    /// Returns once it is loaded.
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// let mut directory = client.directory().await?;
    /// directory.wait_for(|peers| peers.values().any(|p| p.alias.as_deref() == Some("bob"))).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The server's refusal of `~who`, `TIMEOUT`, `DISCONNECTED` once closed.
    pub async fn directory(&self) -> Result<Roster, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.send_command(Command::Directory(tx))?;
        let timeout = self.inner.request_timeout;
        match tokio::time::timeout(timeout, rx).await {
            Err(_) => Err(ClientError::Timeout(timeout)),
            Ok(Err(_)) => Err(self.closed_error()),
            Ok(Ok(result)) => result,
        }
    }

    /// Changes this connection's alias or availability (`~status`). The client remembers
    /// the change and applies it again after every reconnection.
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// use switchboard_client::Status;
    /// client.set_status(Status { alias: Some(Some("ally".into())), available: Some(false) }).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn set_status(&self, status: Status) -> Result<(), ClientError> {
        let (reply, rx) = oneshot::channel();
        self.send_command(Command::Status { status, reply })?;
        let timeout = self.inner.request_timeout;
        match tokio::time::timeout(timeout, rx).await {
            Err(_) => Err(ClientError::Timeout(timeout)),
            Ok(Err(_)) => Err(self.closed_error()),
            Ok(Ok(result)) => result.map(drop),
        }
    }

    /// Sets (or with `None` clears) the alias; see [`Client::set_status`].
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// client.set_alias(Some("ally")).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn set_alias(&self, alias: Option<&str>) -> Result<(), ClientError> {
        self.set_status(Status { alias: Some(alias.map(str::to_owned)), available: None }).await
    }

    /// Sets the availability; see [`Client::set_status`].
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// client.set_available(false).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn set_available(&self, available: bool) -> Result<(), ClientError> {
        self.set_status(Status { alias: None, available: Some(available) }).await
    }

    /// Sends a direct message to a connection or an alias (`~dm`).
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// use switchboard_client::DmTarget;
    /// client.send_dm(DmTarget::Alias("bob".into()), &"psst").await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `UNAVAILABLE` when either side is unavailable, `NOT_FOUND` for an unknown target, and
    /// as [`Client::call`].
    pub async fn send_dm<P: Serialize + ?Sized>(&self, to: DmTarget, data: &P) -> Result<(), ClientError> {
        let dm = DirectMessage { to, data: self.encode(data)? };
        self.call::<IgnoredAny, _>(types::DM, &dm).await.map(drop)
    }

    /// Renews the credentials of the current connection (`~refresh`). Reconnections keep
    /// using the identity provider.
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// client.refresh(&serde_json::json!({"token": "fresh"})).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `NOT_AUTHORIZED` when refused, and as [`Client::call`].
    pub async fn refresh<P: Serialize + ?Sized>(&self, identity: &P) -> Result<RawPayload, ClientError> {
        let refresh = Refresh { identity: self.encode(identity)? };
        self.call(types::REFRESH, &refresh).await
    }

    /// Server statistics (`~info`), where the server allows it.
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// let info: serde_json::Value = client.info(false).await?.decode()?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `FORBIDDEN` by default, and as [`Client::call`].
    pub async fn info(&self, detail: bool) -> Result<RawPayload, ClientError> {
        self.call(types::INFO, &InfoRequest { detail }).await
    }

    /// Closes the connection (close code 1000) and stops: waiting calls fail with
    /// `DISCONNECTED`, streams end, the state becomes `Closed { reason: Requested }`.
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) {
    /// client.close().await;
    /// assert!(client.state().is_closed());
    /// # }
    /// ```
    pub async fn close(&self) {
        let (done, rx) = oneshot::channel();
        if self.send_command(Command::Close(done)).is_ok() {
            let _ = rx.await;
        }
        let mut states = self.inner.state.clone();
        let _ = states.wait_for(State::is_closed).await;
    }
}

/// Removes a subscriber whose subscribe call did not complete (timeout, cancellation).
struct SinkGuard<'a> {
    client: &'a Client,
    topic: &'a str,
    sink: u64,
    armed: bool,
}

impl Drop for SinkGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.client.inner.commands.unsubscribe_now(self.topic, self.sink);
        }
    }
}

fn check_topic(topic: &str) -> Result<(), ClientError> {
    Topic::validate(topic).map_err(|e| ClientError::Invalid(format!("topic {topic:?}: {e}")))
}

fn check_type(kind: &str) -> Result<(), ClientError> {
    if MessageType::is_valid(kind) {
        Ok(())
    } else {
        Err(ClientError::Invalid(format!("message type {kind:?}: 1 to 128 bytes")))
    }
}
