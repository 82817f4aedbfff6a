//! What this node does when it hears the other nodes (through the broker): publications for
//! its subscribers, and node messages for its connections.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use switchboard_core::BrokerSink;
use switchboard_protocol::{CloseCode, ErrorBody, RawPayload, Topic, codes};

use super::acked::send_acked;
use super::core::Core;
use super::link::{ConnOp, NodeMsg};
use super::membership;
use super::presence;
use super::registry::Registry;
use super::stats::report_payload;
use super::topics::deliver::deliver_event;
use super::topics::publish::deliver_remote;
use crate::conn::{Conn, ConnShared};
use crate::error::{Error, RequestError};
use crate::outbound::frame::SharedFrame;

/// The hub's ear on the broker.
pub(crate) struct NodeSink(pub(crate) Weak<Core>);

impl BrokerSink for NodeSink {
    fn publication(&self, topic: &str, publication: Bytes) {
        if let Some(hub) = self.0.upgrade() {
            deliver_remote(&hub, topic, &publication);
        }
    }

    fn disconnected(&self) {
        if let Some(hub) = self.0.upgrade() {
            tracing::warn!(
                "the broker's connection is lost: nothing arrives from the other nodes until it is back"
            );
            hub.health.broker_down.store(true, Ordering::Relaxed);
            hub.health.broker_outages.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn reconnected(&self) {
        if let Some(hub) = self.0.upgrade() {
            tracing::warn!("the broker is back: checking every topic for missed publications");
            hub.health.broker_down.store(false, Ordering::Relaxed);
            hub.outage.notify_one();
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

fn handle(hub: &Arc<Core>, msg: NodeMsg) {
    match msg {
        NodeMsg::ToConn { conn, kind, payload } => {
            if let Some(c) = hub.local(&conn) {
                let _ = c.push_frame(&SharedFrame::new(&kind, payload));
            }
        }
        NodeMsg::OnConn { from, req, conn, op } => {
            let hub = hub.clone();
            tokio::spawn(async move {
                let reply = match hub.local(&conn) {
                    None => NodeMsg::Reply { req, ok: None, err: None, missing: true },
                    Some(c) => match on_conn(&hub, &c, op).await {
                        Ok(ok) => NodeMsg::Reply { req, ok: Some(ok), err: None, missing: false },
                        Err(e) => NodeMsg::Reply { req, ok: None, err: Some(e.to_body()), missing: false },
                    },
                };
                hub.link.reply(&from, &reply).await;
            });
        }
        NodeMsg::ToUser { user, kind, payload } => {
            let frame = SharedFrame::new(&kind, payload);
            for c in hub.registry.user_conns(&user) {
                let _ = c.push_frame(&frame);
            }
        }
        NodeMsg::Broadcast { kind, payload, except, ask } => {
            let frame = SharedFrame::new(&kind, payload);
            let reached = broadcast_local(&hub.registry, &frame, except.as_deref());
            if let Some((from, req)) = ask {
                let ok = RawPayload::json(&reached).ok();
                answer(hub, from, NodeMsg::Reply { req, ok, err: None, missing: false });
            }
        }
        NodeMsg::ToTopic { topic, kind, payload } => {
            deliver_event(hub, &topic, &SharedFrame::new(&kind, payload));
        }
        NodeMsg::ToDirectory { kind, payload } => {
            presence::deliver_to_directory(&hub.registry, &SharedFrame::new(&kind, payload));
        }
        NodeMsg::CloseConn { conn, code, reason } => {
            if let Some(c) = hub.local(&conn) {
                c.close(CloseCode(code), &reason, true);
            }
        }
        NodeMsg::CloseUser { user, code, reason } => {
            for c in hub.registry.user_conns(&user) {
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
                                err: Some(ErrorBody::new(codes::TIMEOUT, "the peer did not answer in time")),
                                missing: false,
                            },
                            Err(_) => NodeMsg::Reply { req, ok: None, err: None, missing: false },
                        }
                    }
                };
                hub.link.reply(&from, &reply).await;
            });
        }
        NodeMsg::Direct { from, req, conn, payload } => {
            let reply = match hub.local(&conn) {
                None => NodeMsg::Reply { req, ok: None, err: None, missing: true },
                Some(c) => match presence::deliver_direct(&c, payload) {
                    Ok(peer) => match RawPayload::json(&peer) {
                        Ok(peer) => NodeMsg::Reply { req, ok: Some(peer), err: None, missing: false },
                        Err(_) => NodeMsg::Reply { req, ok: None, err: None, missing: false },
                    },
                    Err(e) if e.code() == codes::NOT_FOUND => {
                        NodeMsg::Reply { req, ok: None, err: None, missing: true }
                    }
                    Err(e) => NodeMsg::Reply { req, ok: None, err: Some(e.to_body()), missing: false },
                },
            };
            answer(hub, from, reply);
        }
        NodeMsg::Stats { from, req } => {
            let ok = report_payload(hub);
            answer(hub, from, NodeMsg::Reply { req, ok, err: None, missing: false });
        }
        NodeMsg::Reply { req, ok, err, missing } => {
            let result = match (ok, err) {
                (Some(ok), _) => Ok(ok),
                (None, Some(body)) if body.code == codes::TIMEOUT => Err(RequestError::Timeout),
                (None, Some(body)) => Err(RequestError::Remote(body)),
                (None, None) if missing => Err(RequestError::NotFound),
                (None, None) => Err(RequestError::Disconnected),
            };
            hub.link.answered(req, result);
        }
    }
}

/// Does what another node asked of one of this node's connections.
async fn on_conn(hub: &Core, conn: &Arc<ConnShared>, op: ConnOp) -> Result<RawPayload, Error> {
    match op {
        ConnOp::Join { topic } => {
            let topic = Topic::new(&topic).map_err(|e| Error::bad_request(e.to_string()))?;
            membership::join(hub, conn, &topic, None, None).await?;
            // Not `null`: a reply's `ok` must be present (`null` reads as absent).
            RawPayload::json(&true).map_err(|_| Error::failed())
        }
        ConnOp::Leave { topic } => {
            let was = membership::leave(hub, conn, &topic).await?;
            RawPayload::json(&was).map_err(|_| Error::failed())
        }
        ConnOp::Acked { kind, payload } => {
            let payload = payload.to_format(conn.format).map_err(|_| Error::bad_request("cannot encode"))?;
            send_acked(hub, conn, &kind, &payload);
            RawPayload::json(&true).map_err(|_| Error::failed())
        }
    }
}

/// Sends a `Reply` back to the node that asked, from a task of its own.
fn answer(hub: &Arc<Core>, from: String, reply: NodeMsg) {
    let hub = hub.clone();
    tokio::spawn(async move { hub.link.reply(&from, &reply).await });
}

/// Sends a frame to every local identified connection but `except`; returns how many it reached.
pub(crate) fn broadcast_local(registry: &Registry, frame: &SharedFrame, except: Option<&str>) -> usize {
    let mut reached = 0;
    registry.for_each(|c| {
        if except != Some(&*c.id) && c.identity.read().is_some() && c.push_frame(frame).is_ok() {
            reached += 1;
        }
    });
    reached
}
