//! What nodes say to each other through the [`Broker`](switchboard_core::Broker), and what a
//! node does when it hears it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use switchboard_core::BrokerSink;
use switchboard_protocol::{CloseCode, ErrorBody, Payload as RawPayload};

use crate::frame::SharedFrame;
use crate::hub::HubInner;
use crate::{Conn, RequestError};

/// A message between nodes (JSON; payloads travel as JSON values).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub(crate) enum NodeMsg {
    ToConn {
        conn: String,
        kind: String,
        payload: RawPayload,
    },
    /// An acknowledged delivery for a connection of the receiving node.
    ToConnAcked {
        conn: String,
        kind: String,
        payload: RawPayload,
    },
    ToUser {
        user: String,
        kind: String,
        payload: RawPayload,
    },
    Broadcast {
        kind: String,
        payload: RawPayload,
        except: Option<String>,
    },
    /// An event for the local subscribers of a topic (presence diffs).
    ToTopic {
        topic: String,
        kind: String,
        payload: RawPayload,
    },
    /// An event for the local members of the directory (`~peer`).
    ToDirectory {
        kind: String,
        payload: RawPayload,
    },
    CloseConn {
        conn: String,
        code: u16,
        reason: String,
    },
    CloseUser {
        user: String,
        code: u16,
        reason: String,
    },
    Request {
        from: String,
        req: u64,
        conn: String,
        kind: String,
        payload: RawPayload,
        timeout_ms: u64,
    },
    /// A `~dm` for a connection of the receiving node, answered with a `Reply` (the recipient's
    /// profile, an error, or `missing`).
    Direct {
        from: String,
        req: u64,
        conn: String,
        payload: RawPayload,
    },
    /// A statistics query, answered with a `Reply` carrying the node's report.
    Stats {
        from: String,
        req: u64,
    },
    Reply {
        req: u64,
        ok: Option<RawPayload>,
        err: Option<ErrorBody>,
        missing: bool,
    },
}

impl NodeMsg {
    pub(crate) fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }
}

static NEXT_RELAY: AtomicU64 = AtomicU64::new(1);

/// Asks the node of `conn` to make a request and send back the answer.
pub(crate) async fn relay_request(
    hub: &HubInner,
    node: &str,
    conn: &str,
    kind: &str,
    payload: RawPayload,
    timeout: Duration,
) -> Result<RawPayload, RequestError> {
    let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    let make = |from: String, req: u64| NodeMsg::Request {
        from,
        req,
        conn: conn.to_owned(),
        kind: kind.to_owned(),
        payload,
        timeout_ms,
    };
    // The remote side times out first; the margin covers the trip back.
    ask_node(hub, node, make, timeout + Duration::from_secs(1)).await
}

/// How long a node may take to answer a relayed `~dm`.
const DIRECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks the node of `conn` to deliver a `~dm` (encoded `payload`); returns the recipient's profile.
pub(crate) async fn relay_direct(
    hub: &HubInner,
    node: &str,
    conn: &str,
    payload: RawPayload,
) -> Result<switchboard_protocol::wire::Peer, crate::Error> {
    let make = |from: String, req: u64| NodeMsg::Direct { from, req, conn: conn.to_owned(), payload };
    match ask_node(hub, node, make, DIRECT_TIMEOUT).await {
        Ok(peer) => peer.decode().map_err(|_| crate::Error::failed()),
        Err(RequestError::NotFound) => Err(crate::Error::not_found("no such connection")),
        Err(RequestError::Remote(body)) => Err(crate::Error::new(body.code, body.message)),
        Err(_) => Err(crate::Error::unavailable("the recipient's server did not answer")),
    }
}

/// Sends `make(this node, request number)` to `node` and waits for its `Reply`.
pub(crate) async fn ask_node(
    hub: &HubInner,
    node: &str,
    make: impl FnOnce(String, u64) -> NodeMsg,
    timeout: Duration,
) -> Result<RawPayload, RequestError> {
    let req = NEXT_RELAY.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = tokio::sync::oneshot::channel();
    hub.relayed.lock().insert(req, tx);
    let msg = make(hub.node.to_string(), req);
    if let Err(e) = hub.to_nodes(Some(node), &msg).await {
        hub.relayed.lock().remove(&req);
        return Err(match e {
            crate::HubError::NotFound => RequestError::NotFound,
            e => RequestError::Backend(e.to_string()),
        });
    }
    let result = tokio::time::timeout(timeout, rx).await;
    hub.relayed.lock().remove(&req);
    match result {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err(RequestError::Disconnected),
        Err(_) => Err(RequestError::Timeout),
    }
}

/// The hub's ear on the broker.
pub(crate) struct NodeSink(pub(crate) Weak<HubInner>);

impl BrokerSink for NodeSink {
    fn publication(&self, topic: &str, publication: Bytes) {
        if let Some(hub) = self.0.upgrade() {
            crate::fanout::deliver_remote(&hub, topic, &publication);
        }
    }

    fn node_message(&self, message: Bytes) {
        let Some(hub) = self.0.upgrade() else { return };
        let msg: NodeMsg = match serde_json::from_slice(&message) {
            Ok(msg) => msg,
            Err(e) => {
                tracing::error!(error = %e, "undecodable message from another node");
                return;
            }
        };
        handle(&hub, msg);
    }
}

fn handle(hub: &Arc<HubInner>, msg: NodeMsg) {
    match msg {
        NodeMsg::ToConn { conn, kind, payload } => {
            if let Some(c) = hub.local(&conn) {
                let _ = SharedFrame::new(&kind, payload).push_to(&c);
            }
        }
        NodeMsg::ToConnAcked { conn, kind, payload } => {
            if let Some(c) = hub.local(&conn) {
                match payload.to_format(c.format) {
                    Ok(payload) => crate::housekeeping::send_acked(hub, &c, &kind, &payload),
                    Err(e) => tracing::warn!(error = %e, "an acknowledged delivery cannot be encoded"),
                }
            }
        }
        NodeMsg::ToUser { user, kind, payload } => {
            let frame = SharedFrame::new(&kind, payload);
            for c in hub.local_user_conns(&user) {
                let _ = frame.push_to(&c);
            }
        }
        NodeMsg::Broadcast { kind, payload, except } => {
            let frame = SharedFrame::new(&kind, payload);
            hub.deliver_local(&frame, |c| except.as_deref() != Some(&*c.id) && c.identity.read().is_some());
        }
        NodeMsg::ToTopic { topic, kind, payload } => {
            crate::fanout::deliver_event(hub, &topic, &SharedFrame::new(&kind, payload));
        }
        NodeMsg::ToDirectory { kind, payload } => {
            crate::presence::deliver_to_directory(hub, &SharedFrame::new(&kind, payload));
        }
        NodeMsg::CloseConn { conn, code, reason } => {
            if let Some(c) = hub.local(&conn) {
                c.close(CloseCode(code), &reason, true);
            }
        }
        NodeMsg::CloseUser { user, code, reason } => {
            for c in hub.local_user_conns(&user) {
                c.close(CloseCode(code), &reason, true);
            }
        }
        NodeMsg::Request { from, req, conn, kind, payload, timeout_ms } => {
            let hub = hub.clone();
            tokio::spawn(async move {
                let reply = match hub.local(&conn) {
                    None => NodeMsg::Reply { req, ok: None, err: None, missing: true },
                    Some(c) => {
                        let r =
                            Conn(c).request(&kind, &payload).timeout(Duration::from_millis(timeout_ms)).await;
                        match r {
                            Ok(ok) => NodeMsg::Reply { req, ok: Some(ok), err: None, missing: false },
                            Err(RequestError::Remote(body)) => {
                                NodeMsg::Reply { req, ok: None, err: Some(body), missing: false }
                            }
                            Err(RequestError::Timeout) => NodeMsg::Reply {
                                req,
                                ok: None,
                                err: Some(ErrorBody::new("TIMEOUT", "the peer did not answer in time")),
                                missing: false,
                            },
                            Err(_) => NodeMsg::Reply { req, ok: None, err: None, missing: false },
                        }
                    }
                };
                send_reply(&hub, &from, &reply).await;
            });
        }
        NodeMsg::Direct { from, req, conn, payload } => {
            let reply = match hub.local(&conn) {
                None => NodeMsg::Reply { req, ok: None, err: None, missing: true },
                Some(c) => match crate::presence::deliver_direct(&c, payload) {
                    Ok(peer) => match RawPayload::json(&peer) {
                        Ok(peer) => NodeMsg::Reply { req, ok: Some(peer), err: None, missing: false },
                        Err(_) => NodeMsg::Reply { req, ok: None, err: None, missing: false },
                    },
                    Err(e) if e.code() == "NOT_FOUND" => {
                        NodeMsg::Reply { req, ok: None, err: None, missing: true }
                    }
                    Err(e) => NodeMsg::Reply { req, ok: None, err: Some(e.to_body()), missing: false },
                },
            };
            answer(hub, from, reply);
        }
        NodeMsg::Stats { from, req } => {
            let ok = crate::info::report_payload(hub);
            answer(hub, from, NodeMsg::Reply { req, ok, err: None, missing: false });
        }
        NodeMsg::Reply { req, ok, err, missing } => {
            if let Some(tx) = hub.relayed.lock().remove(&req) {
                let result = match (ok, err) {
                    (Some(ok), _) => Ok(ok),
                    (None, Some(body)) if body.code == "TIMEOUT" => Err(RequestError::Timeout),
                    (None, Some(body)) => Err(RequestError::Remote(body)),
                    (None, None) if missing => Err(RequestError::NotFound),
                    (None, None) => Err(RequestError::Disconnected),
                };
                let _ = tx.send(result);
            }
        }
    }
}

/// Sends a `Reply` back to the node that asked, from a task of its own.
fn answer(hub: &Arc<HubInner>, from: String, reply: NodeMsg) {
    let hub = hub.clone();
    tokio::spawn(async move { send_reply(&hub, &from, &reply).await });
}

async fn send_reply(hub: &HubInner, from: &str, reply: &NodeMsg) {
    if let Err(e) = hub.to_nodes(Some(from), reply).await {
        tracing::warn!(error = %e, node = from, "could not answer another node");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_messages_roundtrip() {
        let msg = NodeMsg::ToUser {
            user: "ada".into(),
            kind: "note".into(),
            payload: RawPayload::json(&serde_json::json!({"n": [1, "x"]})).unwrap(),
        };
        let back: NodeMsg = serde_json::from_slice(&msg.encode()).unwrap();
        let NodeMsg::ToUser { payload, .. } = back else { panic!("wrong variant") };
        assert_eq!(payload.decode::<serde_json::Value>().unwrap(), serde_json::json!({"n": [1, "x"]}));
    }
}
