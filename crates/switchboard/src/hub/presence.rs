//! Presence: the directory of available aliased connections, topic presence, `~status`,
//! `~who` and direct messages.

use std::sync::Arc;

use bytes::Bytes;
use switchboard_protocol::{RawPayload, codes, wire};

use super::core::Core;
use super::hooks::{DirectMessageEvent, EventKind, LifecycleEvent};
use super::lifecycle;
use super::link::NodeMsg;
use super::registry::Registry;
use super::topics::deliver::deliver_event;
use crate::conn::ConnShared;
use crate::error::Error;
use crate::outbound::frame::SharedFrame;

/// The presence key of the directory (not a valid topic name, so it never clashes with one).
pub(crate) const DIRECTORY: &str = "~directory";

/// The presence key of every connection with an alias, available or not: where a `~dm` to an
/// alias finds its target on any node (the directory lists only available ones), so that an
/// unavailable target answers `UNAVAILABLE` wherever it is.
pub(crate) const ALIASES: &str = "~aliases";

/// The public profile of a connection (`None` before identification).
pub(crate) fn peer_of(conn: &ConnShared) -> Option<wire::Peer> {
    let identity = conn.identity.read();
    let i = identity.as_ref()?;
    Some(wire::Peer {
        conn: conn.id.to_string(),
        user: i.user.as_deref().map(str::to_owned),
        alias: i.alias.as_deref().map(str::to_owned),
        available: i.available,
        public: i.public.clone(),
    })
}

pub(crate) fn listed(conn: &ConnShared) -> bool {
    conn.identity.read().as_ref().is_some_and(|i| i.alias.is_some() && i.available)
}

fn json<T: serde::Serialize>(value: &T) -> Option<RawPayload> {
    RawPayload::json(value).ok()
}

/// Delivers an event to the local members of the directory.
pub(crate) fn deliver_to_directory(registry: &Registry, frame: &SharedFrame) {
    registry.for_each(|conn| {
        if listed(conn) {
            let _ = conn.push_frame(frame);
        }
    });
}

async fn spread(core: &Core, local: impl FnOnce(&SharedFrame), msg: NodeMsg, frame: &SharedFrame) {
    local(frame);
    if let Err(e) = core.link.send(None, &msg).await {
        tracing::warn!(error = %e, "a presence change did not reach the other nodes");
    }
}

/// Records `peer` in (or removes it from) the directory and announces it (`~peer`). A leave is
/// announced only by whoever removed the entry (the connection's node, or the node that cleaned
/// up after it when it died), so that it is announced exactly once.
async fn directory_change(core: &Core, peer: wire::Peer, online: bool) {
    if directory_store(core, &peer, online).await {
        directory_announce(core, peer, online).await;
    }
}

/// Records `peer` in (or removes it from) the directory; whether the change is to be announced
/// (for a removal: whether this call removed it, or could not tell).
async fn directory_store(core: &Core, peer: &wire::Peer, online: bool) -> bool {
    let presence = &core.backends.presence;
    let stored = if online {
        presence.join(DIRECTORY, &peer.conn, info_of(peer)).await.map(|()| true)
    } else {
        presence.leave(DIRECTORY, &peer.conn).await
    };
    stored.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "the directory could not be updated");
        true
    })
}

/// A profile as presence keeps it.
fn info_of(peer: &wire::Peer) -> Bytes {
    Bytes::from(serde_json::to_vec(peer).unwrap_or_default())
}

/// Records (or removes) a connection's alias in [`ALIASES`].
async fn aliases_store(core: &Core, peer: &wire::Peer) {
    let presence = &core.backends.presence;
    let stored = if peer.alias.is_some() {
        presence.join(ALIASES, &peer.conn, info_of(peer)).await
    } else {
        presence.leave(ALIASES, &peer.conn).await.map(|_| ())
    };
    if let Err(e) = stored {
        tracing::warn!(error = %e, "the alias list could not be updated");
    }
}

/// Tells the directory's members, on every node, that `peer` came or went (`~peer`).
pub(crate) async fn directory_announce(core: &Core, peer: wire::Peer, online: bool) {
    let Some(payload) = json(&wire::PeerChange { peer, online }) else { return };
    let frame = SharedFrame::new(wire::types::PEER, payload.clone());
    let msg = NodeMsg::ToDirectory { kind: wire::types::PEER.to_owned(), payload };
    spread(core, |f| deliver_to_directory(&core.registry, f), msg, &frame).await;
}

/// At identification, before the welcome: records a listed (aliased, available) connection in
/// the directory, so that `~who` on any node lists it once its client knows it is identified.
/// Returns the profile to announce after the welcome ([`directory_announce`]).
pub(crate) async fn enter_directory(core: &Core, conn: &ConnShared) -> Option<wire::Peer> {
    let peer = peer_of(conn)?;
    if peer.alias.is_some() {
        aliases_store(core, &peer).await;
    }
    if !listed(conn) {
        return None;
    }
    directory_store(core, &peer, true).await;
    Some(peer)
}

/// On disconnect: leaves the directory (announced if this node removed it) and the aliases;
/// the keys whose removal failed (the closing connection retries them).
pub(crate) async fn on_gone(core: &Core, conn: &ConnShared) -> Vec<&'static str> {
    let mut failed = Vec::new();
    let Some(peer) = peer_of(conn) else { return failed };
    if peer.alias.is_some()
        && let Err(e) = core.backends.presence.leave(ALIASES, &peer.conn).await
    {
        tracing::warn!(error = %e, "the alias list could not be updated");
        failed.push(ALIASES);
    }
    if listed(conn) {
        let removed = core.backends.presence.leave(DIRECTORY, &peer.conn).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the directory could not be updated");
            failed.push(DIRECTORY);
            true
        });
        if removed {
            directory_announce(core, peer, false).await;
        }
    }
    failed
}

async fn topic_change(core: &Core, topic: &str, leave: Option<wire::Peer>, join: Option<wire::Peer>) {
    let diff = wire::PresenceDiff {
        topic: topic.to_owned(),
        joins: join.into_iter().collect(),
        leaves: leave.into_iter().collect(),
    };
    let Some(payload) = json(&diff) else { return };
    let frame = SharedFrame::new(wire::types::PRESENCE, payload.clone());
    let msg = NodeMsg::ToTopic { topic: topic.to_owned(), kind: wire::types::PRESENCE.to_owned(), payload };
    spread(core, |f| deliver_event(core, topic, f), msg, &frame).await;
}

pub(crate) async fn topic_join(core: &Core, conn: &ConnShared, topic: &str) {
    let Some(peer) = peer_of(conn) else { return };
    let info = Bytes::from(serde_json::to_vec(&peer).unwrap_or_default());
    if let Err(e) = core.backends.presence.join(topic, &conn.id, info).await {
        tracing::warn!(error = %e, topic, "topic presence could not be updated");
    }
    topic_change(core, topic, None, Some(peer)).await;
}

/// Removes `conn` from `topic`'s presence and announces it, if this call removed it (else the
/// node that cleaned up after this one when it was declared dead did both); whether presence
/// took the removal (if not, it was announced anyway, and a closing connection retries it).
pub(crate) async fn topic_leave(core: &Core, conn: &ConnShared, topic: &str) -> bool {
    let Some(peer) = peer_of(conn) else { return true };
    let mut stored = true;
    let removed = core.backends.presence.leave(topic, &conn.id).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, topic, "topic presence could not be updated");
        stored = false;
        true
    });
    if removed {
        topic_change(core, topic, Some(peer), None).await;
    }
    stored
}

/// Announces the leaves of a dead node's connections that this node evicted from presence:
/// `~presence` leaves in their topics, `~peer` offline in the directory.
pub(crate) async fn announce_evicted(core: &Core, evicted: Vec<(String, switchboard_core::PresenceEntry)>) {
    for (key, entry) in evicted {
        let Ok(peer) = serde_json::from_slice::<wire::Peer>(&entry.info) else { continue };
        match key.as_str() {
            DIRECTORY => directory_announce(core, peer, false).await,
            // Not announced: the list of aliases and the list of nodes.
            ALIASES | super::stats::NODES => {}
            // Lifecycle events' list of a node's connections (see `lifecycle`).
            key if key.starts_with(lifecycle::CONNS) => {}
            topic => topic_change(core, topic, Some(peer), None).await,
        }
    }
}

pub(crate) async fn list(core: &Core, key: &str) -> Result<Vec<wire::Peer>, Error> {
    let entries =
        core.backends.presence.list(key).await.map_err(|_| Error::unavailable("presence is unavailable"))?;
    Ok(entries.iter().filter_map(|e| serde_json::from_slice(&e.info).ok()).collect())
}

/// `~who`: the directory, or a topic's presence for its subscribers.
pub(crate) async fn who(core: &Core, conn: &ConnShared, topic: Option<&str>) -> Result<wire::Peers, Error> {
    let Some(topic) = topic else {
        return Ok(wire::Peers { peers: list(core, DIRECTORY).await? });
    };
    if !conn.topics.lock().iter().any(|t| t.as_str() == topic) {
        return Err(Error::forbidden("presence is only for subscribers"));
    }
    if !core.settings.of(topic).presence {
        return Err(Error::forbidden("presence is off for this topic"));
    }
    Ok(wire::Peers { peers: list(core, topic).await? })
}

/// `~status`: changes one's alias or availability; the directory and topic presence follow.
pub(crate) async fn status(
    core: &Core,
    conn: &ConnShared,
    change: wire::Status,
) -> Result<wire::Peer, Error> {
    if let Some(Some(alias)) = &change.alias
        && (alias.is_empty() || alias.len() > 128)
    {
        return Err(Error::bad_request("an alias has 1 to 128 bytes"));
    }
    let before = peer_of(conn).ok_or_else(|| Error::new(codes::NOT_AUTHENTICATED, "not identified"))?;
    let was_listed = listed(conn);
    {
        let mut identity = conn.identity.write();
        let Some(i) = identity.as_mut() else { return Err(Error::failed()) };
        if let Some(alias) = change.alias {
            i.alias = alias.map(Arc::from);
        }
        if let Some(available) = change.available {
            i.available = available;
        }
    }
    let after = peer_of(conn).ok_or_else(Error::failed)?;
    let now_listed = listed(conn);
    if after.alias != before.alias || (after.alias.is_some() && after.available != before.available) {
        aliases_store(core, &after).await;
    }
    if after != before {
        if now_listed {
            directory_change(core, after.clone(), true).await;
        } else if was_listed {
            // The announcement carries the profile as it is now (unavailable, or without alias).
            directory_change(core, after.clone(), false).await;
        }
        let info = Bytes::from(serde_json::to_vec(&after).unwrap_or_default());
        let topics = conn.topics.lock().clone();
        for topic in topics.iter().filter(|t| core.settings.of(t).presence) {
            let _ = core.backends.presence.join(topic, &conn.id, info.clone()).await;
            // A profile change is the old profile leaving and the new one joining.
            topic_change(core, topic, Some(before.clone()), Some(after.clone())).await;
        }
        if lifecycle::wants_conn(core, conn, EventKind::Status) {
            let event = LifecycleEvent::Status {
                conn: conn.id.to_string(),
                user: conn.user().map(|u| u.to_string()),
                alias: after.alias.clone(),
                available: after.available,
            };
            // Written before the reply (the change stays made: the client may send it again).
            lifecycle::emit(core, event).await.map_err(|_| {
                Error::unavailable("the status changed, but its event could not be written: retry")
            })?;
        }
    }
    Ok(after)
}

/// `~dm`: a private message, only between available parties.
pub(crate) async fn direct(core: &Core, conn: &ConnShared, dm: wire::DirectMessage) -> Result<(), Error> {
    let me = peer_of(conn).ok_or_else(|| Error::new(codes::NOT_AUTHENTICATED, "not identified"))?;
    if !me.available {
        return Err(Error::unavailable("you are not available"));
    }
    let target_conn: String = match &dm.to {
        wire::DmTarget::Conn(id) => id.clone(),
        // Any connection with the alias, available or not (the target's answer says which).
        wire::DmTarget::Alias(alias) => match local_by_alias(&core.registry, alias) {
            Some(p) => p.conn,
            None => list(core, ALIASES)
                .await?
                .into_iter()
                .find(|p| p.alias.as_deref() == Some(alias))
                .map(|p| p.conn)
                .ok_or_else(|| Error::not_found("no such alias"))?,
        },
    };
    let from = wire::DmSender { conn: me.conn, user: me.user, alias: me.alias };
    let delivery = wire::DirectDelivery { from: from.clone(), data: dm.data.clone() };
    let payload = json(&delivery).ok_or_else(|| Error::bad_request("the message cannot be encoded"))?;
    let target = match core.local(&target_conn) {
        Some(c) => deliver_direct(&c, payload)?,
        None => match Registry::node_of(&target_conn) {
            Some(node) if node != &*core.node => {
                // The target's own node checks and delivers, so that a connection that is not in
                // the directory (unavailable, no alias) gets the same answer as on one node.
                core.link.relay_direct(node, &target_conn, payload).await?
            }
            _ => return Err(Error::not_found("no such connection")),
        },
    };
    if let Some(audit) = &core.dm_audit {
        audit(&DirectMessageEvent { from, to_conn: target.conn, to_user: target.user, data: dm.data });
    }
    Ok(())
}

/// Delivers a `~dm` to a local connection if it is identified and available; returns its profile.
pub(crate) fn deliver_direct(target: &ConnShared, payload: RawPayload) -> Result<wire::Peer, Error> {
    let peer = peer_of(target).ok_or_else(|| Error::not_found("no such connection"))?;
    if !peer.available {
        return Err(Error::unavailable("the recipient is not available"));
    }
    target.push_frame(&SharedFrame::new(wire::types::DM, payload)).map_err(|_| Error::unavailable("gone"))?;
    Ok(peer)
}

/// A local connection with this alias (most recent wins in the directory anyway).
fn local_by_alias(registry: &Registry, alias: &str) -> Option<wire::Peer> {
    let found =
        registry.find(|c| c.identity.read().as_ref().is_some_and(|i| i.alias.as_deref() == Some(alias)))?;
    peer_of(&found)
}
