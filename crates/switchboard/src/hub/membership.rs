//! A connection's memberships as the layers above ask for them: topics with their presence,
//! its user in the cluster-wide registry, and everything forgotten when it closes.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use switchboard_core::{BackendError, ConnRef};
use switchboard_protocol::{CloseCode, Id, Topic, wire};

use super::core::Core;
use super::hooks::{EventKind, LifecycleEvent};
use super::lifecycle::{self, Owed};
use super::link::NodeMsg;
use super::presence;
use super::topics::subscribe::{subscribe, unsubscribe};
use crate::base::clock::millis;
use crate::conn::ConnShared;
use crate::error::Error;

/// Subscribes `conn` to `topic` (see `topics::subscribe`) and, where the topic has presence,
/// announces it. A new subscription's `subscribe` lifecycle event is written before (it is
/// refused with `UNAVAILABLE` if the event log fails), and one `unsubscribe` after if the
/// subscription then fails.
pub(crate) async fn join(
    core: &Core,
    conn: &Arc<ConnShared>,
    topic: &Topic,
    since: Option<wire::StreamPosition>,
    reply: Option<Id>,
) -> Result<wire::Subscribed, Error> {
    let announce = lifecycle::wants_topic_event(core, conn, EventKind::Subscribe, topic)
        && !conn.topics.lock().iter().any(|t| t == topic);
    if announce {
        lifecycle::emit(core, conn_event(conn, topic, true))
            .await
            .map_err(|_| Error::unavailable("subscribing is unavailable, try again"))?;
    }
    let subscribed = match subscribe(core, conn, topic, since, reply).await {
        Ok(subscribed) => subscribed,
        Err(e) => {
            if announce {
                lifecycle::emit_surely(core, conn_event(conn, topic, false)).await;
            }
            return Err(e);
        }
    };
    if subscribed.joined_presence {
        presence::topic_join(core, conn, topic).await;
    }
    if subscribed.fresh {
        lifecycle::occupy(core, conn, topic).await;
    }
    Ok(subscribed.answer)
}

/// A `subscribe` (`true`) or `unsubscribe` event of `conn` for `topic`.
fn conn_event(conn: &ConnShared, topic: &str, subscribe: bool) -> LifecycleEvent {
    let (conn_id, user, topic) = (conn.id.to_string(), conn.user().map(|u| u.to_string()), topic.to_owned());
    if subscribe {
        LifecycleEvent::Subscribe { conn: conn_id, user, topic }
    } else {
        LifecycleEvent::Unsubscribe { conn: conn_id, user, topic }
    }
}

/// Takes `conn` out of `topic` and, where the topic has presence, announces it; whether it was
/// subscribed. Its `unsubscribe` lifecycle event is written first.
///
/// # Errors
/// `UNAVAILABLE` (and still subscribed) when the event log cannot take the `unsubscribe`.
pub(crate) async fn leave(core: &Core, conn: &Arc<ConnShared>, topic: &str) -> Result<bool, Error> {
    if lifecycle::wants_topic_event(core, conn, EventKind::Unsubscribe, topic)
        && conn.topics.lock().iter().any(|t| t.as_str() == topic)
    {
        lifecycle::emit(core, conn_event(conn, topic, false))
            .await
            .map_err(|_| Error::unavailable("unsubscribing is unavailable, try again"))?;
    }
    Ok(leave_quietly(core, conn, topic, None).await)
}

/// [`leave`] without the `unsubscribe` event (a closed connection's `disconnect` says it); a
/// closing connection's `vacated` goes to what it owes.
async fn leave_quietly(
    core: &Core,
    conn: &Arc<ConnShared>,
    topic: &str,
    mut owed: Option<&mut Owed>,
) -> bool {
    match unsubscribe(core, conn, topic).await {
        None => false,
        Some(presence) => {
            if presence
                && !presence::topic_leave(core, conn, topic).await
                && let Some(owed) = owed.as_deref_mut()
            {
                owed.retry_presence(topic);
            }
            lifecycle::vacate(core, conn, topic, owed).await;
            true
        }
    }
}

/// Registers the identified `conn` of `user` here and in the cluster-wide registry, under
/// `conn_per_user`; closes the connections the policy evicts. Returns the user's connections
/// now, cluster-wide.
///
/// # Errors
/// `LIMIT` when the policy refuses a new connection, `UNAVAILABLE` when the registry fails.
pub(crate) async fn register_user(
    core: &Core,
    conn: &Arc<ConnShared>,
    user: &Arc<str>,
) -> Result<usize, Error> {
    core.registry.add_user(user, conn);
    let me = ConnRef { conn: conn.id.clone(), node: core.node.clone() };
    match core.backends.users.register(user, me, core.config.conn_per_user).await {
        Ok(registration) => {
            let reason = "too many connections for this user";
            close_conns(core, &registration.evicted, CloseCode::TOO_MANY_CONNECTIONS, reason).await;
            Ok(registration.connections)
        }
        Err(e) => {
            core.registry.remove_user(user, &conn.id);
            match e {
                BackendError::Limit => Err(Error::limit("too many connections for this user")),
                _ => Err(Error::unavailable("identification is unavailable, try again")),
            }
        }
    }
}

/// Closes connections anywhere in the cluster.
pub(crate) async fn close_conns(core: &Core, conns: &[ConnRef], code: CloseCode, reason: &str) {
    for c in conns {
        if c.node == core.node {
            if let Some(conn) = core.local(&c.conn) {
                conn.close(code, reason, true);
            }
        } else {
            let msg =
                NodeMsg::CloseConn { conn: c.conn.to_string(), code: code.0, reason: reason.to_owned() };
            if let Err(e) = core.link.send(Some(&c.node), &msg).await {
                tracing::warn!(error = %e, conn = %c.conn, "could not reach the node of a connection to close");
            }
        }
    }
}

/// A new connection's task starts: it is registered, counted, and must identify in time.
pub(crate) fn arrive(core: &Core, conn: &Arc<ConnShared>) {
    core.registry.insert(conn);
    core.counters.here().connections_total.fetch_add(1, Ordering::Relaxed);
    core.timers.identify_by(core.now_ms() + millis(core.config.identify_timeout), conn);
}

/// Forgets a connection that closed with `code` and `reason`, everywhere: registry, topics,
/// presence, users, pending replies. Returns what it owes (see [`Owed`]): the lifecycle events
/// to write (its `disconnect`, `vacated` of topics it was the last in, then `user_offline` if it
/// was its user's last connection), and the removals from the backends that failed, to retry.
pub(crate) async fn forget(core: &Core, conn: &Arc<ConnShared>, code: u16, reason: &str) -> Owed {
    conn.close(CloseCode::NORMAL, "", false);
    core.registry.remove(&conn.id);
    let mut owed = Owed::new(conn.id.clone());
    lifecycle::disconnected(core, conn, code, reason, &mut owed);
    let topics = conn.topics.lock().clone();
    for topic in topics {
        leave_quietly(core, conn, &topic, Some(&mut owed)).await;
    }
    for key in presence::on_gone(core, conn).await {
        owed.retry_presence(key);
    }
    if let Some(user) = conn.user() {
        core.registry.remove_user(&user, &conn.id);
        match core.backends.users.unregister(&user, &conn.id).await {
            Ok(gone) => lifecycle::user_left(core, &user, gone.removed, gone.remaining, &mut owed),
            // Retried after the close frame (see `Owed`).
            Err(e) => owed.retry_user(&user, &e),
        }
    }
    conn.pending.lock().clear();
    owed
}
