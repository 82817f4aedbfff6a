//! The connection task: the one task that owns the link and every piece of connection state.
//!
//! It loops: connect → identify → serve frames and commands → on loss, decide from the
//! [`ConnectionError`] whether to reconnect ([`ConnectionError::is_fatal`]), wait out the
//! backoff (buffering calls meanwhile), and again. Handles talk to it through [`Command`]s;
//! handlers of server requests answer through [`HandlerReply`]s.

use std::collections::{HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use switchboard_protocol::wire::{
    Bye, Delivery, DirectDelivery, Hello, PeerChange, Peers, Status, Welcome, Who, types,
};
use switchboard_protocol::{CloseCode, ErrorBody, Id, Message, RawPayload, codes};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::command::Command;
use crate::config::Config;
use crate::delivery::Publication;
use crate::error::{ClientError, CloseReason, ConnectionError};
use crate::handlers::Event;
use crate::handshake::{self, Step};
use crate::presence::{Change, PeerSet};
use crate::requests::{Internal, Outbound, Outbox};
use crate::shared::Shared;
use crate::state::{Counters, State};
use crate::topics::{Routed, Topics};
use crate::transport::{Connector, Incoming, Link};

/// A handler's answer to a server request, tagged with the connection it belongs to.
pub(crate) struct HandlerReply {
    generation: u64,
    id: Id,
    result: Result<RawPayload, ErrorBody>,
}

/// Why a connection (or an attempt) ended.
#[derive(Debug)]
enum End {
    /// An error: retried unless it is fatal.
    Error(ConnectionError),
    /// The application closed the client.
    Stop(CloseReason),
}

/// A link lost without a close frame.
fn lost(why: impl Into<String>) -> End {
    End::Error(ConnectionError::Network(why.into()))
}

/// Ids of acknowledged deliveries already seen on this connection (bounded).
#[derive(Default)]
struct SeenIds {
    set: HashSet<Id>,
    order: VecDeque<Id>,
}

impl SeenIds {
    const CAPACITY: usize = 4096;

    /// Whether `id` is new (and remembers it).
    fn insert(&mut self, id: Id) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > Self::CAPACITY
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }

    fn clear(&mut self) {
        self.set.clear();
        self.order.clear();
    }
}

/// The connection task.
pub(crate) struct Connection {
    config: Arc<Config>,
    connector: Arc<dyn Connector>,
    commands: mpsc::UnboundedReceiver<Command>,
    replies_tx: mpsc::UnboundedSender<HandlerReply>,
    replies_rx: mpsc::UnboundedReceiver<HandlerReply>,
    state: watch::Sender<State>,
    shared: Arc<Shared>,
    out: Outbox,
    topics: Topics,
    /// The directory, once the application asked for it.
    directory: Option<PeerSet>,
    /// The last `~status` asked for, re-sent after every reconnection.
    status: Option<Status>,
    /// Where to connect; a `~bye.jump` replaces it.
    url: String,
    /// Counts connections, so that a handler's late reply is not sent on a newer one.
    generation: u64,
    online: bool,
    seen: SeenIds,
    /// The `~bye` of the current connection.
    bye: Option<Bye>,
    close_waiters: Vec<oneshot::Sender<()>>,
}

impl Connection {
    pub(crate) fn new(
        config: Arc<Config>,
        connector: Arc<dyn Connector>,
        commands: mpsc::UnboundedReceiver<Command>,
        state: watch::Sender<State>,
        shared: Arc<Shared>,
    ) -> Self {
        let (replies_tx, replies_rx) = mpsc::unbounded_channel();
        Self {
            out: Outbox::new(config.format, config.offline_buffer),
            url: config.url.clone(),
            config,
            connector,
            commands,
            replies_tx,
            replies_rx,
            state,
            shared,
            topics: Topics::default(),
            directory: None,
            status: None,
            generation: 0,
            online: false,
            seen: SeenIds::default(),
            bye: None,
            close_waiters: Vec::new(),
        }
    }

    /// Runs until the client closes: for good on a fatal error, after the backoff on others.
    pub(crate) async fn run(mut self) {
        // The next attempt's number and the error it retries.
        let mut retry: Option<(u32, ConnectionError)> = None;
        let reason = loop {
            if let Some((attempt, last_error)) = &retry {
                let attempt = *attempt;
                if !self.config.backoff.allows(attempt) {
                    break CloseReason::GaveUp { attempts: attempt - 1, last_error: last_error.clone() };
                }
                self.state.send_replace(State::Reconnecting { attempt, last_error: last_error.clone() });
                let delay = self.config.backoff.delay(attempt);
                tracing::debug!(attempt, ?delay, error = %last_error, "reconnecting after a delay");
                if let Err(reason) = self.idle(tokio::time::sleep(delay)).await {
                    break reason;
                }
            }
            let (was_ready, end) = self.connect_once().await;
            let error = match self.apply_bye(end) {
                End::Stop(reason) => break reason,
                End::Error(e) => e,
            };
            if error.is_fatal() {
                tracing::warn!(url = %self.url, %error, "connection failed: not retrying");
                break CloseReason::Failed(error);
            }
            tracing::info!(url = %self.url, %error, "connection ended");
            let attempt = match &retry {
                Some((attempt, _)) if !was_ready => attempt + 1,
                _ => 1,
            };
            retry = Some((attempt, error));
        };
        self.shutdown(reason);
    }

    /// A `~bye` before the close: its jump is followed, and its code stands when the link
    /// dropped without a close frame of its own.
    fn apply_bye(&mut self, end: End) -> End {
        let Some(bye) = self.bye.take() else { return end };
        if let Some(jump) = bye.jump.filter(|_| CloseCode(bye.code).reconnects()) {
            tracing::info!(%jump, "the server asks to reconnect elsewhere");
            self.url = jump;
        }
        let closed = |code, reason| End::Error(ConnectionError::Closed { code, reason });
        match end {
            End::Error(ConnectionError::Network(_) | ConnectionError::Closed { code: 1005 | 1006, .. }) => {
                closed(bye.code, bye.reason)
            }
            End::Error(ConnectionError::Closed { code, reason }) if reason.is_empty() => {
                closed(code, bye.reason)
            }
            end => end,
        }
    }

    /// One connection: open, identify, serve. Says whether it got ready.
    async fn connect_once(&mut self) -> (bool, End) {
        let url = self.url.clone();
        let opening = tokio::time::timeout(
            self.config.connect_timeout,
            self.connector.connect(&url, self.config.format),
        );
        let mut link = match self.idle(opening).await {
            Err(reason) => return (false, End::Stop(reason)),
            Ok(Err(_)) => return (false, lost(format!("connecting to {url} timed out"))),
            Ok(Ok(Err(e))) => return (false, End::Error(e)),
            Ok(Ok(Ok(link))) => link,
        };
        self.generation += 1;
        self.seen.clear();
        self.bye = None;
        let welcome = match self.identify(&mut link).await {
            Ok(welcome) => welcome,
            Err(end) => {
                if matches!(&end, End::Stop(_)) || matches!(&end, End::Error(e) if e.is_fatal()) {
                    self.out.close(CloseCode::NORMAL.0, "");
                    let _ = self.flush(&mut link).await;
                }
                self.out.disconnected();
                return (false, end);
            }
        };
        let heartbeat = match self.config.heartbeat {
            Some(period) => Some(period),
            None => Some(Duration::from_millis(welcome.heartbeat)),
        }
        .filter(|p| !p.is_zero());
        tracing::info!(conn = %welcome.conn, user = ?welcome.user, ns = %welcome.ns, "ready");
        self.shared.set_welcome(welcome);
        Counters::add(&self.shared.stats.connections, 1);
        self.on_ready();
        self.state.send_replace(State::Ready);
        let end = self.session(&mut link, heartbeat).await;
        self.on_disconnected();
        (true, end)
    }

    /// Identifies on a fresh link: `~hello` with a fresh identity from the provider, the
    /// optional `~challenge`, then the welcome or the refusal ([`handshake::step`] says which).
    /// Calls made meanwhile wait in the offline buffer.
    async fn identify(&mut self, link: &mut Link) -> Result<Welcome, End> {
        let deadline = Instant::now() + self.config.connect_timeout;
        let identity = match self.config.identity.clone() {
            Some(provider) => match self.idle(provider()).await {
                Err(reason) => return Err(End::Stop(reason)),
                Ok(Err(e)) => return Err(End::Error(ConnectionError::Identity(e.to_string()))),
                Ok(Ok(identity)) => Some(identity),
            },
            None => None,
        };
        let hello = Hello { ns: self.config.namespace.clone(), identity, meta: self.config.meta.clone() };
        let hello_id = self.out.next_id();
        let sent = RawPayload::encode(self.out.format(), &hello)
            .map_err(ClientError::from)
            .and_then(|payload| self.out.frame(types::HELLO, &payload, Some(hello_id)));
        if let Err(e) = sent {
            return Err(End::Error(ConnectionError::Identity(format!("cannot encode the ~hello: {e}"))));
        }
        self.flush(link).await.map_err(lost)?;
        loop {
            let next = tokio::time::timeout_at(deadline, link.stream.next());
            let bytes = match self.idle(next).await {
                Err(reason) => return Err(End::Stop(reason)),
                Ok(Err(_)) => return Err(lost("no welcome in time")),
                Ok(Ok(Some(Ok(Incoming::Frame(bytes))))) => bytes,
                Ok(Ok(Some(Ok(Incoming::Close { code, reason })))) => {
                    return Err(End::Error(ConnectionError::Closed { code, reason }));
                }
                Ok(Ok(Some(Err(e)))) => return Err(lost(e.0)),
                Ok(Ok(None)) => return Err(lost("the connection ended during the handshake")),
            };
            Counters::add(&self.shared.stats.frames_in, 1);
            let msg = match self.out.format().decode(&bytes) {
                Ok(msg) => msg,
                Err(e) => {
                    tracing::warn!(error = %e, "undecodable frame during the handshake ignored");
                    continue;
                }
            };
            match handshake::step(hello_id, msg) {
                Step::Welcome(welcome) => return Ok(welcome),
                Step::Failed(e) => return Err(End::Error(e)),
                Step::Challenge { id, quest } => {
                    let answer = match self.config.challenge.clone() {
                        Some(handler) => {
                            match self.idle(AssertUnwindSafe(handler(quest)).catch_unwind()).await {
                                Err(reason) => return Err(End::Stop(reason)),
                                Ok(Ok(answer)) => answer,
                                Ok(Err(_)) => {
                                    Err(ErrorBody::new(codes::FAILED, "the challenge handler panicked"))
                                }
                            }
                        }
                        None => Err(ErrorBody::new(codes::NOT_FOUND, "this client has no challenge handler")),
                    };
                    self.out.reply(id, &answer);
                    self.flush(link).await.map_err(lost)?;
                }
                Step::Ping(id) => {
                    self.out.reply(id, &Ok(RawPayload::null()));
                    self.flush(link).await.map_err(lost)?;
                }
                Step::Bye(bye) => self.bye = bye,
                Step::Ignore => {}
            }
        }
    }

    /// Waits for `fut` while offline, serving commands (calls wait in the offline buffer).
    /// Fails when the client is closing.
    async fn idle<F: Future>(&mut self, fut: F) -> Result<F::Output, CloseReason> {
        let mut fut = std::pin::pin!(fut);
        loop {
            tokio::select! {
                output = &mut fut => return Ok(output),
                cmd = self.commands.recv() => match cmd {
                    None => return Err(CloseReason::Requested),
                    Some(Command::Close(done)) => {
                        self.close_waiters.push(done);
                        return Err(CloseReason::Requested);
                    }
                    Some(cmd) => self.command(cmd),
                },
                // Replies of handlers whose connection is gone: nobody to send them to.
                Some(_) = self.replies_rx.recv() => {}
            }
        }
    }

    /// Serves an identified connection until it ends.
    async fn session(&mut self, link: &mut Link, heartbeat: Option<Duration>) -> End {
        let mut last_rx = Instant::now();
        let mut ticker = heartbeat.map(|period| {
            let mut t = tokio::time::interval_at(Instant::now() + period, period);
            t.set_missed_tick_behavior(MissedTickBehavior::Delay);
            t
        });
        loop {
            if let Err(e) = self.flush(link).await {
                return lost(e);
            }
            let end = tokio::select! {
                item = link.stream.next() => {
                    last_rx = Instant::now();
                    match item {
                        Some(Ok(Incoming::Frame(bytes))) => {
                            self.on_frame(&bytes);
                            None
                        }
                        Some(Ok(Incoming::Close { code, reason })) => {
                            Some(End::Error(ConnectionError::Closed { code, reason }))
                        }
                        Some(Err(e)) => Some(lost(e.0)),
                        None => Some(lost("the connection ended without a close frame")),
                    }
                }
                cmd = self.commands.recv() => match cmd {
                    None => Some(End::Stop(CloseReason::Requested)),
                    Some(Command::Close(done)) => {
                        self.close_waiters.push(done);
                        Some(End::Stop(CloseReason::Requested))
                    }
                    Some(cmd) => {
                        self.command(cmd);
                        None
                    }
                },
                Some(reply) = self.replies_rx.recv() => {
                    if reply.generation == self.generation {
                        self.out.reply(reply.id, &reply.result);
                    }
                    None
                }
                () = tick(&mut ticker) => {
                    let period = heartbeat.unwrap_or_default();
                    self.out.prune();
                    if last_rx.elapsed() >= period * 2 {
                        Some(lost("nothing received for two heartbeat periods"))
                    } else {
                        self.out.internal(types::PING, &(), Internal::Ping);
                        None
                    }
                }
            };
            if let Some(end) = end {
                if matches!(end, End::Stop(_)) {
                    self.out.close(CloseCode::NORMAL.0, "");
                    let _ = self.flush(link).await;
                }
                return end;
            }
        }
    }

    /// Writes the outbox: every frame fed, one flush.
    async fn flush(&mut self, link: &mut Link) -> Result<(), String> {
        let frames = self.out.take_frames();
        if frames.is_empty() {
            return Ok(());
        }
        let n = frames.len() as u64;
        let write = async {
            for frame in frames {
                link.sink.feed(frame).await?;
            }
            link.sink.flush().await
        };
        match tokio::time::timeout(self.config.connect_timeout, write).await {
            Ok(Ok(())) => {
                Counters::add(&self.shared.stats.frames_out, n);
                Ok(())
            }
            Ok(Err(e)) => Err(e.0),
            Err(_) => Err("writing timed out".to_owned()),
        }
    }

    /// Identified: redo what the server forgot, then send what waited.
    fn on_ready(&mut self) {
        self.online = true;
        if let Some(status) = &self.status {
            self.out.internal(types::STATUS, status, Internal::Status);
        }
        self.topics.resubscribe_all(&mut self.out);
        if let Some(set) = &mut self.directory {
            set.loading(self.out.internal(types::WHO, &Who::default(), Internal::Who(None)));
        }
        self.out.flush_offline();
    }

    fn on_disconnected(&mut self) {
        self.online = false;
        self.out.disconnected();
        self.topics.disconnected();
        if let Some(set) = &mut self.directory {
            set.disconnected();
        }
    }

    /// Serves a handle's command, online or offline.
    fn command(&mut self, cmd: Command) {
        let online = self.online;
        match cmd {
            Command::Send(out) if online => self.out.send(out),
            Command::Send(out) => {
                if let Err(out) = self.out.buffer(out)
                    && let Some(reply) = out.reply
                {
                    let _ = reply.send(Err(ClientError::BufferFull(self.config.offline_buffer)));
                }
            }
            Command::Event { out, accepted } => {
                let result = if online {
                    self.out.send(out);
                    Ok(())
                } else {
                    self.out.buffer(out).map_err(|_| ClientError::BufferFull(self.config.offline_buffer))
                };
                let _ = accepted.send(result);
            }
            Command::Subscribe(new) => self.topics.add(online.then_some(&mut self.out), new),
            Command::Unsubscribe { topic, sink, done } => {
                self.topics.remove(online.then_some(&mut self.out), &topic, sink);
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            Command::Directory(waiter) => {
                let set = self.directory.get_or_insert_with(PeerSet::new);
                if online && !set.is_loaded() && !set.is_loading() {
                    set.loading(self.out.internal(types::WHO, &Who::default(), Internal::Who(None)));
                }
                set.when_loaded(waiter);
            }
            Command::Status { status, reply } => {
                let sticky = self.status.get_or_insert_with(Status::default);
                if status.alias.is_some() {
                    sticky.alias.clone_from(&status.alias);
                }
                if status.available.is_some() {
                    sticky.available = status.available;
                }
                match RawPayload::encode(self.out.format(), &status) {
                    Ok(payload) => {
                        self.command(Command::Send(Outbound {
                            kind: types::STATUS.to_owned(),
                            payload,
                            reply: Some(reply),
                        }));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
            Command::Close(done) => {
                // Never reached: `idle` and `session` intercept `Close` to stop their loop.
                self.close_waiters.push(done);
            }
        }
    }

    /// One frame from the server.
    fn on_frame(&mut self, bytes: &Bytes) {
        Counters::add(&self.shared.stats.frames_in, 1);
        let Message { kind, payload, id } = match self.out.format().decode(bytes) {
            Ok(msg) => msg,
            Err(e) => {
                tracing::warn!(error = %e, "undecodable frame from the server ignored");
                return;
            }
        };
        match (kind.as_str(), id) {
            (types::OK, Some(id)) => self.on_reply(id, Ok(payload)),
            (types::ERR, Some(id)) => {
                let body = payload.decode::<ErrorBody>().unwrap_or_else(|e| {
                    ErrorBody::new(codes::FAILED, format!("undecodable error from the server: {e}"))
                });
                self.on_reply(id, Err(body));
            }
            (types::MSG, id) => self.on_msg(&payload, id),
            (types::PEER, _) => match payload.decode::<PeerChange>() {
                Ok(change) => {
                    if let Some(set) = &mut self.directory {
                        set.on_change(Change::from_peer(change));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "undecodable ~peer"),
            },
            (types::PRESENCE, _) => match payload.decode() {
                Ok(diff) => self.topics.on_presence(diff),
                Err(e) => tracing::warn!(error = %e, "undecodable ~presence"),
            },
            (types::DM, id) => self.on_dm(&payload, id),
            (types::BYE, _) => {
                self.bye =
                    payload.decode().inspect_err(|e| tracing::warn!(error = %e, "undecodable ~bye")).ok();
            }
            (types::PING, Some(id)) => self.out.reply(id, &Ok(RawPayload::null())),
            (types::ERR, None) => {
                let body = payload.decode::<ErrorBody>().ok();
                tracing::warn!(error = ?body, "the server reported an error");
                self.dispatch(&Event { name: kind.to_string(), payload });
            }
            (name, Some(id)) if name.starts_with('~') => self.out.reply(id, &Err(not_found(name))),
            (name, None) if name.starts_with('~') => tracing::debug!(name, "unknown reserved event ignored"),
            (_, Some(id)) => self.on_request(kind.to_string(), payload, id),
            (_, None) => self.dispatch(&Event { name: kind.to_string(), payload }),
        }
    }

    fn on_reply(&mut self, id: Id, result: Result<RawPayload, ErrorBody>) {
        let Some((what, result)) = self.out.resolve(id, result) else { return };
        match what {
            Internal::Ping | Internal::Unsub => {}
            Internal::Status => {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "~status refused after reconnecting");
                }
            }
            Internal::Sub(topic) => self.topics.on_sub_reply(&mut self.out, &topic, id, result),
            Internal::Who(None) => {
                if let Some(set) = &mut self.directory {
                    let peers =
                        result.map_err(ClientError::Server).and_then(|p| Ok(p.decode::<Peers>()?.peers));
                    set.on_snapshot(id, peers);
                }
            }
            Internal::Who(Some(topic)) => self.topics.on_who_reply(&topic, id, result),
        }
    }

    /// Acknowledges a delivery that carries an id; says whether it is new.
    fn acknowledge(&mut self, id: Option<Id>) -> bool {
        let Some(id) = id else { return true };
        self.out.reply(id, &Ok(RawPayload::null()));
        let new = self.seen.insert(id);
        if !new {
            tracing::debug!(%id, "duplicate delivery dropped");
            Counters::add(&self.shared.stats.duplicates_dropped, 1);
        }
        new
    }

    fn on_msg(&mut self, payload: &RawPayload, id: Option<Id>) {
        if !self.acknowledge(id) {
            return;
        }
        let delivery: Delivery = match payload.decode() {
            Ok(d) => d,
            Err(e) => return tracing::warn!(error = %e, "undecodable ~msg"),
        };
        match self.topics.on_delivery(delivery) {
            Routed::Delivered | Routed::Buffered => {}
            Routed::Duplicate => Counters::add(&self.shared.stats.duplicates_dropped, 1),
            Routed::Unsubscribed(d) => {
                let publication = Publication::from(d);
                if self.shared.registry().dispatch_group(&publication) == 0 {
                    tracing::debug!(topic = %publication.topic, "publication without a subscriber dropped");
                }
            }
        }
    }

    fn on_dm(&mut self, payload: &RawPayload, id: Option<Id>) {
        if !self.acknowledge(id) {
            return;
        }
        match payload.decode::<DirectDelivery>() {
            Ok(dm) => {
                self.shared.registry().dispatch_dm(&dm);
            }
            Err(e) => tracing::warn!(error = %e, "undecodable ~dm"),
        }
    }

    /// A request of the server: its handler answers; without one, an event listener makes it
    /// an acknowledged delivery; else `NOT_FOUND`.
    fn on_request(&mut self, name: String, payload: RawPayload, id: Id) {
        let (handler, listened) = {
            let registry = self.shared.registry();
            (registry.handler(&name), registry.has_listener(&name))
        };
        if let Some(handler) = handler {
            let tx = self.replies_tx.clone();
            let generation = self.generation;
            tokio::spawn(async move {
                let result = AssertUnwindSafe(handler(payload))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| Err(ErrorBody::new(codes::FAILED, "the client's handler panicked")));
                let _ = tx.send(HandlerReply { generation, id, result });
            });
        } else if listened {
            if self.acknowledge(Some(id)) {
                self.dispatch(&Event { name, payload });
            }
        } else {
            tracing::debug!(%name, "server request without a handler");
            self.out.reply(id, &Err(not_found(&name)));
        }
    }

    fn dispatch(&mut self, event: &Event) {
        if self.shared.registry().dispatch_event(event) == 0 {
            tracing::debug!(name = %event.name, "event without a listener dropped");
        }
    }

    /// Stops for good: final state, every waiting call and stream ends.
    fn shutdown(mut self, reason: CloseReason) {
        tracing::info!(%reason, "client closed");
        self.state.send_replace(State::Closed { reason: reason.clone() });
        let error = ClientError::Closed(reason);
        self.commands.close();
        while let Ok(cmd) = self.commands.try_recv() {
            match cmd {
                Command::Close(done) => self.close_waiters.push(done),
                Command::Send(out) => {
                    if let Some(reply) = out.reply {
                        let _ = reply.send(Err(error.clone()));
                    }
                }
                Command::Event { accepted, .. } => {
                    let _ = accepted.send(Err(error.clone()));
                }
                Command::Subscribe(new) => {
                    let _ = new.waiter.send(Err(error.clone()));
                }
                Command::Directory(w) => {
                    let _ = w.send(Err(error.clone()));
                }
                Command::Status { reply, .. } => {
                    let _ = reply.send(Err(error.clone()));
                }
                Command::Unsubscribe { .. } => {}
            }
        }
        self.out.close_all(&error);
        self.topics.close(&error);
        if let Some(set) = &mut self.directory {
            set.fail(&error);
        }
        self.shared.registry().close();
        for done in self.close_waiters.drain(..) {
            let _ = done.send(());
        }
    }
}

fn not_found(name: &str) -> ErrorBody {
    let data = RawPayload::json(&serde_json::json!({ "type": name })).unwrap_or_default();
    ErrorBody::new(codes::NOT_FOUND, format!("no handler for {name}")).with_data(data)
}

async fn tick(ticker: &mut Option<Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}
