//! Lifecycle events (see [`Lifecycle`]): emitted where things happen — to the application's
//! hook at once, and to the backends' event log when a sink delivers them — and their delivery:
//! for each partition of the log, the node holding its lease reads batches, hands them to the
//! [`EventSink`], retries with backoff, and commits what was delivered.
//!
//! **Where an event is written, and what that guarantees.** An event that announces something
//! the client is told about (`connect` before the welcome, `subscribe` before the `~sub` reply,
//! `status` before the `~status` reply, `unsubscribe` before the `~unsub` reply) is appended
//! before the client learns it: if the log fails, the action is refused with `UNAVAILABLE`.
//! An event about something that already happened (`disconnect`, `user_offline`, `vacated`, and
//! those a node's death produces) is appended with retries until the log takes it (or the
//! process stops: then it is counted as lost and logged). A node's death: a survivor that
//! claims its cleanup appends the `disconnect` of each of its connections (listed under
//! `~conns/NODE` in presence while lifecycle events are delivered), then `user_offline` and
//! `vacated` where they were the last; a node that learns it was declared dead closes its
//! connections without announcing them again.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use switchboard_core::{BackendError, ConnRef, LoggedEvent};

use super::core::Core;
use super::events::{Delivery, DeliveryError, Event, EventSink, Events};
use super::hooks::{EventKind, LifecycleEvent};
use crate::base::throttle::Throttle;
use crate::conn::ConnShared;

/// The prefix of the presence keys listing each node's connections while events are delivered.
pub(crate) const CONNS: &str = "~conns/";

/// The prefix of the users registry's pseudo-users that count a topic's subscribers
/// cluster-wide, for `occupied`/`vacated`.
pub(crate) const OCCUPANCY: &str = "\u{0}topic:";

/// This node's events, if any are wanted of `kind`.
fn wanting(core: &Core, kind: EventKind) -> Option<&Events> {
    core.events.as_ref().filter(|e| e.filter.wants(kind))
}

/// Whether `conn`'s events of `kind` are wanted (its namespace is covered).
pub(crate) fn wants_conn(core: &Core, conn: &ConnShared, kind: EventKind) -> bool {
    wanting(core, kind)
        .is_some_and(|e| conn.identity.read().as_ref().is_some_and(|i| e.filter.covers_ns(&i.ns_name)))
}

/// Whether `conn`'s events of `kind` about `topic` are wanted.
pub(crate) fn wants_topic_event(core: &Core, conn: &ConnShared, kind: EventKind, topic: &str) -> bool {
    wants_conn(core, conn, kind) && core.events.as_ref().is_some_and(|e| e.filter.covers_topic(topic))
}

/// Whether `topic`'s occupancy is counted (`occupied` or `vacated` wanted for it).
pub(crate) fn counts_occupancy(core: &Core, topic: &str) -> bool {
    (wanting(core, EventKind::Occupied).is_some() || wanting(core, EventKind::Vacated).is_some())
        && core.events.as_ref().is_some_and(|e| e.filter.covers_topic(topic))
}

/// Whether this node lists its connections under [`CONNS`] (so that a survivor announces their
/// disconnects if it dies).
pub(crate) fn lists_conns(core: &Core, conn: &ConnShared) -> bool {
    core.events.as_ref().is_some_and(Events::durable) && wants_conn(core, conn, EventKind::Disconnect)
}

/// The presence key listing `node`'s connections.
pub(crate) fn conns_key(node: &str) -> String {
    format!("{CONNS}{node}")
}

/// The users-registry key counting `topic`'s subscribers.
pub(crate) fn occupancy_key(topic: &str) -> String {
    format!("{OCCUPANCY}{topic}")
}

/// What `~conns/NODE` keeps of a connection: enough for its `disconnect`.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct ConnInfo {
    pub(crate) user: Option<String>,
    pub(crate) ns: String,
}

/// The event as written to the log.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    ts: u64,
    node: String,
    #[serde(flatten)]
    event: LifecycleEvent,
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// An event to write: its key and its stored body.
type Entry = (String, Bytes);

/// Announces `event` if its kind is wanted (the caller checked namespace and topic): counted,
/// to the hook at once; what to write to the log when a sink delivers events.
fn announce(core: &Core, event: LifecycleEvent) -> Option<Entry> {
    let events = wanting(core, event.kind())?;
    events.counts.emitted.fetch_add(1, Ordering::Relaxed);
    if let Some(hook) = &events.hook {
        hook(&event);
    }
    if !events.durable() {
        return None;
    }
    let key = event.key();
    let stored = Stored { ts: wall_ms(), node: core.node.to_string(), event };
    match serde_json::to_vec(&stored) {
        Ok(body) => Some((key, Bytes::from(body))),
        Err(e) => {
            tracing::error!(key, error = %e, "a lifecycle event could not be encoded");
            None
        }
    }
}

/// Emits `event` (see [`announce`]) and writes it once: used before the client is told, so an
/// error refuses the action.
pub(crate) async fn emit(core: &Core, event: LifecycleEvent) -> Result<(), BackendError> {
    match announce(core, event) {
        Some((key, body)) => append(core, &key, body).await,
        None => Ok(()),
    }
}

async fn append(core: &Core, key: &str, body: Bytes) -> Result<(), BackendError> {
    let Some(events) = &core.events else { return Ok(()) };
    match core.backends.events.append(key, body).await {
        Ok(_) => {
            events.counts.appended.fetch_add(1, Ordering::Relaxed);
            events.appended.notify_waiters();
            Ok(())
        }
        Err(e) => {
            events.counts.append_failures.fetch_add(1, Ordering::Relaxed);
            Err(e)
        }
    }
}

/// Writes an event about something that already happened: the log is retried (with backoff,
/// for up to a minute, or until the node stops) until it takes the event; then it is counted
/// lost and logged.
async fn append_surely(core: &Core, key: &str, body: Bytes) {
    let Some(events) = &core.events else { return };
    let started = Instant::now();
    let mut wait = Duration::from_millis(50);
    loop {
        let failed = match append(core, key, body.clone()).await {
            Ok(()) => return,
            Err(e) => e,
        };
        // A minute; while shutting down, the drain's time.
        let limit = match (&events.sink, core.running.shutdown.is_cancelled()) {
            (Some((_, d)), true) => d.drain,
            _ => Duration::from_secs(60),
        };
        if started.elapsed() > limit || events.gone.is_cancelled() {
            events.counts.lost.fetch_add(1, Ordering::Relaxed);
            tracing::error!(key, error = %failed, "a lifecycle event could not be written: lost");
            return;
        }
        if events.may_warn(core.now_ms()) {
            tracing::warn!(error = %failed, "lifecycle events cannot be written: retrying");
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = events.gone.cancelled() => {}
        }
        wait = (wait * 2).min(Duration::from_secs(2));
    }
}

/// Emits `event` about something that already happened, written surely (see
/// [`append_surely`]).
pub(crate) async fn emit_surely(core: &Core, event: LifecycleEvent) {
    if let Some((key, body)) = announce(core, event) {
        append_surely(core, &key, body).await;
    }
}

/// What a closing connection owes: its lifecycle events (its `disconnect`, `vacated` of the
/// topics it was the last in, its user's `user_offline`), announced as they are found and written
/// in that order — at once while the log answers ([`Owed::write_now`], before the close frame, so
/// that a client reconnecting at once finds them written), the rest with retries
/// ([`Owed::write_surely`], after it: the client is not kept waiting for its close while the log is
/// down) — and the removals from the cluster's registries that failed when it closed (Redis down
/// or restarting), retried after its close frame too: otherwise its entries would stay behind as
/// ghosts (listed by `~who`, counted against `conn_per_user`) and its `user_offline` and `vacated`
/// would never be known.
pub(crate) struct Owed {
    /// The closing connection.
    conn: Arc<str>,
    entries: std::collections::VecDeque<Entry>,
    /// Its entry in `~conns/NODE`, to remove once its disconnect is written.
    unlist: bool,
    /// Removals to retry, in order.
    cleanups: Vec<Cleanup>,
}

/// A removal of a closed connection's entry that failed (see [`Owed`]).
enum Cleanup {
    /// Its entry under a presence key (a topic, the directory, the aliases, `~conns/NODE`).
    Presence(String),
    /// Its user's registration: `user_offline` if it was the last. `unknown`: an earlier attempt
    /// may have removed it (its outcome was unknown), so a retry that finds nothing to remove
    /// still announces the user offline when none is left (at least once).
    User { user: String, unknown: bool },
    /// Its place in a topic's occupancy: `vacated` if it was the last (`unknown` as above).
    Occupancy { topic: String, unknown: bool },
}

impl Owed {
    /// Nothing owed yet by `conn`.
    pub(crate) fn new(conn: Arc<str>) -> Self {
        Self { conn, entries: std::collections::VecDeque::new(), unlist: false, cleanups: Vec::new() }
    }

    fn push(&mut self, core: &Core, event: LifecycleEvent) {
        self.entries.extend(announce(core, event));
    }

    /// The removal of the connection's entry under presence `key` failed: retried.
    pub(crate) fn retry_presence(&mut self, key: impl Into<String>) {
        self.cleanups.push(Cleanup::Presence(key.into()));
    }

    /// The removal of the connection's registration as `user` failed with `error`: retried.
    pub(crate) fn retry_user(&mut self, user: &str, error: &BackendError) {
        let unknown = matches!(error, BackendError::Indeterminate(_));
        self.cleanups.push(Cleanup::User { user: user.to_owned(), unknown });
    }

    /// Writes what the log takes now, in order, until one fails.
    pub(crate) async fn write_now(&mut self, core: &Core) {
        while let Some((key, body)) = self.entries.front() {
            if append(core, key, body.clone()).await.is_err() {
                return;
            }
            self.entries.pop_front();
        }
        self.unlist(core).await;
    }

    /// Writes the rest, with retries, then retries the removals that failed (and writes the
    /// `vacated` and `user_offline` they find owed).
    pub(crate) async fn write_surely(mut self, core: &Core) {
        while let Some((key, body)) = self.entries.pop_front() {
            append_surely(core, &key, body).await;
        }
        self.unlist(core).await;
        self.clean_surely(core).await;
    }

    async fn unlist(&mut self, core: &Core) {
        if std::mem::take(&mut self.unlist)
            && let Err(e) = core.backends.presence.leave(&conns_key(&core.node), &self.conn).await
        {
            tracing::debug!(error = %e, "a closed connection's listing is removed later");
            self.retry_presence(conns_key(&core.node));
        }
    }

    /// Retries the removals that failed, in rounds with backoff (50 ms doubling to 2 s), all
    /// within one deadline: a minute, or the drain's time once the node shuts down (none without
    /// a sink). What is still not removed then stays until this node's entries expire.
    async fn clean_surely(&mut self, core: &Core) {
        /// One warning line per 10 s for the whole process, however many connections retry.
        static WARN: Throttle = Throttle::new();
        let mut pending = std::mem::take(&mut self.cleanups);
        let started = Instant::now();
        let mut wait = Duration::from_millis(50);
        while !pending.is_empty() {
            let mut failed = None;
            let mut left = Vec::new();
            for cleanup in pending {
                match clean(core, &self.conn, &cleanup).await {
                    Ok(Some(event)) => emit_surely(core, event).await,
                    Ok(None) => {}
                    Err(e) => {
                        failed = Some(e);
                        left.push(cleanup);
                    }
                }
            }
            pending = left;
            let Some(failed) = failed else { return };
            let shutting_down = core.running.shutdown.is_cancelled();
            let limit = if shutting_down {
                core.events.as_ref().and_then(|e| e.sink.as_ref()).map_or(Duration::ZERO, |(_, d)| d.drain)
            } else {
                Duration::from_secs(60)
            };
            let given_up = started.elapsed() >= limit;
            if let Some(suppressed) = WARN.allow(10_000) {
                if given_up {
                    tracing::error!(error = %failed, conn = %self.conn, left = pending.len(), suppressed, "a closed connection's entries could not be removed: they stay until this node's entries expire");
                } else {
                    tracing::warn!(error = %failed, conn = %self.conn, left = pending.len(), suppressed, "a closed connection's entries could not be removed yet: retrying");
                }
            }
            if given_up {
                return;
            }
            if shutting_down {
                tokio::time::sleep(wait).await;
            } else {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = core.running.shutdown.cancelled() => {}
                }
            }
            wait = (wait * 2).min(Duration::from_secs(2));
        }
    }
}

/// One attempt at `cleanup` of `conn`; the lifecycle event it finds owed, if any.
async fn clean(core: &Core, conn: &str, cleanup: &Cleanup) -> Result<Option<LifecycleEvent>, BackendError> {
    let last = |removed: bool, unknown: bool, remaining: usize| (removed || unknown) && remaining == 0;
    match cleanup {
        Cleanup::Presence(key) => core.backends.presence.leave(key, conn).await.map(|_| None),
        Cleanup::User { user, unknown } => core.backends.users.unregister(user, conn).await.map(|gone| {
            last(gone.removed, *unknown, gone.remaining)
                .then(|| LifecycleEvent::UserOffline { user: user.clone() })
        }),
        Cleanup::Occupancy { topic, unknown } => {
            core.backends.users.unregister(&occupancy_key(topic), conn).await.map(|gone| {
                last(gone.removed, *unknown, gone.remaining)
                    .then(|| LifecycleEvent::Vacated { topic: topic.clone() })
            })
        }
    }
}

/// A connection was identified: listed under `~conns/NODE` (when delivered), then `connect`
/// and, for a user's first connection, `user_online`. On error the identification is refused.
pub(crate) async fn connected(
    core: &Core,
    conn: &ConnShared,
    first_of_user: bool,
) -> Result<(), BackendError> {
    if core.events.is_none() {
        return Ok(());
    }
    let (user, ns) = {
        let identity = conn.identity.read();
        let Some(i) = identity.as_ref() else { return Ok(()) };
        (i.user.as_deref().map(str::to_owned), i.ns_name.to_string())
    };
    if lists_conns(core, conn) {
        let info = serde_json::to_vec(&ConnInfo { user: user.clone(), ns: ns.clone() }).unwrap_or_default();
        core.backends.presence.join(&conns_key(&core.node), &conn.id, Bytes::from(info)).await?;
    }
    if wants_conn(core, conn, EventKind::Connect) {
        emit(core, LifecycleEvent::Connect { conn: conn.id.to_string(), user: user.clone(), ns }).await?;
    }
    conn.announced.store(true, Ordering::Release);
    if let (true, Some(user)) = (first_of_user, user) {
        emit(core, LifecycleEvent::UserOnline { user }).await?;
    }
    Ok(())
}

/// A connection closed (`membership::forget`): its `disconnect` is owed if its `connect` was
/// announced (and not already by a survivor).
pub(crate) fn disconnected(core: &Core, conn: &ConnShared, code: u16, reason: &str, owed: &mut Owed) {
    if core.events.is_none() || !conn.announced.swap(false, Ordering::AcqRel) {
        return;
    }
    let (user, ns) = {
        let identity = conn.identity.read();
        let Some(i) = identity.as_ref() else { return };
        (i.user.as_deref().map(str::to_owned), i.ns_name.to_string())
    };
    if wants_conn(core, conn, EventKind::Disconnect) {
        let event = LifecycleEvent::Disconnect {
            conn: conn.id.to_string(),
            user,
            ns,
            code,
            reason: reason.to_owned(),
        };
        owed.push(core, event);
    }
    if lists_conns(core, conn) {
        owed.unlist = true;
    }
}

/// A user's connection left the registry: `user_offline` is owed if it was the last.
pub(crate) fn user_left(core: &Core, user: &str, removed: bool, remaining: usize, owed: &mut Owed) {
    if removed && remaining == 0 {
        owed.push(core, LifecycleEvent::UserOffline { user: user.to_owned() });
    }
}

/// `conn` subscribed to `topic` (the subscription is in place): counted for `occupied`.
pub(crate) async fn occupy(core: &Core, conn: &ConnShared, topic: &str) {
    if !counts_occupancy(core, topic) {
        return;
    }
    let me = ConnRef { conn: conn.id.clone(), node: core.node.clone() };
    match core.backends.users.register(&occupancy_key(topic), me, None).await {
        Ok(r) if r.connections == 1 => {
            emit_surely(core, LifecycleEvent::Occupied { topic: topic.to_owned() }).await
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, topic, "a topic's subscribers could not be counted (occupied)"),
    }
}

/// `conn` left `topic`: `vacated` if it was the last subscriber anywhere — written now, or owed
/// by a closing connection.
pub(crate) async fn vacate(core: &Core, conn: &ConnShared, topic: &str, owed: Option<&mut Owed>) {
    if !counts_occupancy(core, topic) {
        return;
    }
    match (core.backends.users.unregister(&occupancy_key(topic), &conn.id).await, owed) {
        (Ok(gone), owed) if gone.removed && gone.remaining == 0 => {
            let event = LifecycleEvent::Vacated { topic: topic.to_owned() };
            match owed {
                Some(owed) => owed.push(core, event),
                None => emit_surely(core, event).await,
            }
        }
        (Ok(_), _) => {}
        // A closing connection retries after its close frame.
        (Err(e), Some(owed)) => {
            let unknown = matches!(e, BackendError::Indeterminate(_));
            owed.cleanups.push(Cleanup::Occupancy { topic: topic.to_owned(), unknown });
        }
        (Err(e), None) => {
            tracing::warn!(error = %e, topic, "a topic's subscribers could not be counted (vacated)");
        }
    }
}

/// A dead node's connections, as its `~conns/NODE` entries were evicted: their `disconnect`
/// (1006), from this survivor.
pub(crate) async fn dead_conns(core: &Core, entries: Vec<switchboard_core::PresenceEntry>) {
    for entry in entries {
        let Ok(info) = serde_json::from_slice::<ConnInfo>(&entry.info) else { continue };
        let event = LifecycleEvent::Disconnect {
            conn: entry.conn,
            user: info.user,
            ns: info.ns,
            code: switchboard_protocol::CloseCode::ABNORMAL.0,
            reason: "its server stopped".to_owned(),
        };
        emit_surely(core, event).await;
    }
}

/// A dead node's users and topic counts, as evicted: `user_offline` and `vacated` where they
/// were the last.
pub(crate) async fn dead_users(core: &Core, evicted: Vec<switchboard_core::Evicted>) {
    for e in evicted {
        if e.remaining > 0 || e.conns.is_empty() {
            continue;
        }
        match e.user.strip_prefix(OCCUPANCY) {
            Some(topic) if counts_occupancy(core, topic) => {
                emit_surely(core, LifecycleEvent::Vacated { topic: topic.to_owned() }).await;
            }
            Some(_) => {}
            None => emit_surely(core, LifecycleEvent::UserOffline { user: e.user }).await,
        }
    }
}

/// This node was declared dead: its connections' events were announced by a survivor.
pub(crate) fn forget_announced(core: &Core) {
    core.registry.for_each(|conn| conn.announced.store(false, Ordering::Release));
}

/// Starts delivering (one task per partition of the log) if a sink is set.
pub(crate) fn start(core: &Arc<Core>) {
    let Some(events) = &core.events else { return };
    let Some((sink, delivery)) = &events.sink else { return };
    for partition in 0..core.backends.events.partitions() {
        let (weak, sink, delivery) = (Arc::downgrade(core), sink.clone(), delivery.clone());
        tokio::spawn(deliver(weak, partition, sink, delivery));
    }
}

/// Stops delivering, once what is pending was delivered (up to [`Delivery::drain`]).
pub(crate) async fn stop(core: &Core) {
    let Some(events) = &core.events else { return };
    events.stop.cancel();
    let Some((_, delivery)) = &events.sink else { return };
    let deadline = Instant::now() + delivery.drain;
    let log = &core.backends.events;
    'wait: while Instant::now() < deadline {
        let held: Vec<usize> = events.held.lock().iter().copied().collect();
        for p in held {
            if log.read(p, 1).await.is_ok_and(|e| !e.is_empty()) {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue 'wait;
            }
        }
        break;
    }
    events.gone.cancel();
}

/// One partition's delivery: while this node holds its lease, read a batch, deliver it (again,
/// after a backoff, while it fails), commit it.
async fn deliver(core: std::sync::Weak<Core>, partition: usize, sink: Arc<dyn EventSink>, d: Delivery) {
    let node = match core.upgrade() {
        Some(c) => c.node.clone(),
        None => return,
    };
    let mut renewed: Option<Instant> = None;
    loop {
        let Some(core) = core.upgrade() else { return };
        let Some(events) = &core.events else { return };
        // Stopped: deliver what is left until the drain ends (`stop`), then end.
        let stopping = events.stop.is_cancelled();
        if events.gone.is_cancelled() || (stopping && renewed.is_none()) {
            return;
        }
        let log = core.backends.events.clone();
        // Renewed every third of its ttl.
        if renewed.is_none_or(|at| at.elapsed() >= d.lease / 3) {
            match log.lease(partition, &node, d.lease).await {
                Ok(true) => renewed = Some(Instant::now()),
                Ok(false) => renewed = None,
                Err(e) => {
                    tracing::debug!(error = %e, partition, "the event log's lease could not be renewed");
                    renewed = None;
                }
            }
            if renewed.is_some() {
                events.held.lock().insert(partition);
            } else {
                events.held.lock().remove(&partition);
            }
        }
        if renewed.is_none() {
            let wait = d.lease / 2;
            let stop = events.stop.clone();
            drop(core);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stop.cancelled(), if !stopping => {}
            }
            continue;
        }
        // Armed before the read: an append after it wakes the wait below.
        let wake = events.appended.clone();
        let appended = wake.notified();
        tokio::pin!(appended);
        appended.as_mut().enable();
        let mut batch = match log.read(partition, d.max_batch).await {
            Ok(batch) => batch,
            Err(e) => {
                if events.may_warn(core.now_ms()) {
                    tracing::warn!(error = %e, partition, "the event log cannot be read: retrying");
                }
                let wait = d.poll;
                drop(core);
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        if batch.is_empty() {
            if stopping {
                return;
            }
            let (wait, stop) = (d.poll, events.stop.clone());
            drop(core);
            tokio::select! {
                () = &mut appended => {}
                () = tokio::time::sleep(wait) => {}
                () = stop.cancelled() => {}
            }
            continue;
        }
        if batch.len() < d.max_batch && !d.max_wait.is_zero() && !stopping {
            tokio::time::sleep(d.max_wait).await;
            if let Ok(more) = log.read(partition, d.max_batch).await
                && more.len() > batch.len()
            {
                batch = more;
            }
        }
        let Some(last) = batch.last().map(|e| e.id.clone()) else { continue };
        let typed: Vec<Event> = batch.into_iter().filter_map(typed).collect();
        let mut wait = d.retry_min;
        let mut committed = false;
        loop {
            let outcome = if typed.is_empty() { Ok(()) } else { sink.deliver(&typed).await };
            match outcome {
                Ok(()) => {
                    events.counts.delivered.fetch_add(typed.len() as u64, Ordering::Relaxed);
                    committed = true;
                    break;
                }
                Err(DeliveryError::Reject(why)) => {
                    events.counts.rejected.fetch_add(typed.len() as u64, Ordering::Relaxed);
                    tracing::error!(events = typed.len(), reason = %why, "lifecycle events refused by the sink: dropped");
                    committed = true;
                    break;
                }
                Err(DeliveryError::Retry(why)) => {
                    events.counts.retries.fetch_add(1, Ordering::Relaxed);
                    if events.may_warn(core.now_ms()) {
                        tracing::warn!(reason = %why, partition, "lifecycle events not delivered: retrying");
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(jitter(wait)) => {}
                () = events.gone.cancelled() => break,
            }
            wait = (wait * 2).min(d.retry_max);
            // Still ours? (Renewed as above; a lost lease drops the batch: the new holder reads
            // it again from the committed position.)
            if renewed.is_none_or(|at| at.elapsed() >= d.lease / 3) {
                match log.lease(partition, &node, d.lease).await {
                    Ok(true) => renewed = Some(Instant::now()),
                    _ => {
                        renewed = None;
                        events.held.lock().remove(&partition);
                        break;
                    }
                }
            }
        }
        if committed && let Err(e) = log.commit(partition, &last).await {
            // Delivered again by the next read: at least once.
            tracing::warn!(error = %e, partition, "delivered lifecycle events could not be committed");
        }
    }
}

/// A logged event as a sink receives it (`None`, logged, if it is not one this version knows).
fn typed(logged: LoggedEvent) -> Option<Event> {
    match serde_json::from_slice::<Stored>(&logged.data) {
        Ok(s) => Some(Event {
            id: logged.id,
            seq: logged.seq,
            key: logged.key,
            ts: s.ts,
            node: s.node,
            event: s.event,
        }),
        Err(e) => {
            tracing::error!(id = logged.id, error = %e, "an event in the log is not a lifecycle event: skipped");
            None
        }
    }
}

/// `wait`, give or take a quarter (so that nodes retrying together spread out).
fn jitter(wait: Duration) -> Duration {
    let quarter = wait / 4;
    let spread = quarter.as_millis() as u64 * 2;
    let offset = if spread == 0 { 0 } else { rand::random::<u64>() % spread };
    wait - quarter + Duration::from_millis(offset)
}
