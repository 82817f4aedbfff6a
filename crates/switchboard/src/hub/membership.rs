//! A connection's memberships as the layers above ask for them: topics with their presence,
//! its user in the cluster-wide registry, and everything forgotten when it closes.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use switchboard_core::{BackendError, ConnRef};
use switchboard_protocol::{CloseCode, Id, Topic, wire};

use super::core::Core;
use super::link::NodeMsg;
use super::presence;
use super::topics::subscribe::{subscribe, unsubscribe};
use crate::base::clock::millis;
use crate::conn::ConnShared;
use crate::error::Error;

/// Subscribes `conn` to `topic` (see `topics::subscribe`) and, where the topic has presence,
/// announces it.
pub(crate) async fn join(
    core: &Core,
    conn: &Arc<ConnShared>,
    topic: &Topic,
    since: Option<wire::StreamPosition>,
    reply: Option<Id>,
) -> Result<wire::Subscribed, Error> {
    let subscribed = subscribe(core, conn, topic, since, reply).await?;
    if subscribed.joined_presence {
        presence::topic_join(core, conn, topic).await;
    }
    Ok(subscribed.answer)
}

/// Takes `conn` out of `topic` and, where the topic has presence, announces it; whether it was
/// subscribed.
pub(crate) async fn leave(core: &Core, conn: &Arc<ConnShared>, topic: &str) -> bool {
    match unsubscribe(core, conn, topic).await {
        None => false,
        Some(presence) => {
            if presence {
                presence::topic_leave(core, conn, topic).await;
            }
            true
        }
    }
}

/// Registers the identified `conn` of `user` here and in the cluster-wide registry, under
/// `conn_per_user`; closes the connections the policy evicts.
///
/// # Errors
/// `LIMIT` when the policy refuses a new connection, `UNAVAILABLE` when the registry fails.
pub(crate) async fn register_user(core: &Core, conn: &Arc<ConnShared>, user: &Arc<str>) -> Result<(), Error> {
    core.registry.add_user(user, conn);
    let me = ConnRef { conn: conn.id.clone(), node: core.node.clone() };
    match core.backends.users.register(user, me, core.config.conn_per_user).await {
        Ok(registration) => {
            let reason = "too many connections for this user";
            close_conns(core, &registration.evicted, CloseCode::TOO_MANY_CONNECTIONS, reason).await;
            Ok(())
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

/// Forgets a closed connection everywhere: registry, topics, presence, users, pending replies.
pub(crate) async fn forget(core: &Core, conn: &Arc<ConnShared>) {
    conn.close(CloseCode::NORMAL, "", false);
    core.registry.remove(&conn.id);
    let topics = conn.topics.lock().clone();
    for topic in topics {
        leave(core, conn, &topic).await;
    }
    presence::on_gone(core, conn).await;
    if let Some(user) = conn.user() {
        core.registry.remove_user(&user, &conn.id);
        if let Err(e) = core.backends.users.unregister(&user, &conn.id).await {
            tracing::warn!(error = %e, "could not unregister the connection's user");
        }
    }
    conn.pending.lock().clear();
}
