//! What this node does when it hears the other nodes (through the broker): publications for
//! its subscribers, and node messages for its connections.

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use switchboard_core::BrokerSink;
use switchboard_protocol::{CloseCode, ErrorBody, Payload as RawPayload, codes};

use super::acked::send_acked;
use super::core::Core;
use super::link::NodeMsg;
use super::presence;
use super::registry::Registry;
use super::stats::report_payload;
use super::topics::deliver::deliver_event;
use super::topics::publish::deliver_remote;
use crate::conn::Conn;
use crate::error::RequestError;
use crate::outbound::frame::SharedFrame;

/// The hub's ear on the broker.
pub(crate) struct NodeSink(pub(crate) Weak<Core>);

impl BrokerSink for NodeSink {
    fn publication(&self, topic: &str, publication: Bytes) {
        if let Some(hub) = self.0.upgrade() {
            deliver_remote(&hub, topic, &publication);
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
        NodeMsg::ToConnAcked { conn, kind, payload } => {
            if let Some(c) = hub.local(&conn) {
                match payload.to_format(c.format) {
                    Ok(payload) => send_acked(hub, &c, &kind, &payload),
                    Err(e) => tracing::warn!(error = %e, "an acknowledged delivery cannot be encoded"),
                }
            }
        }
        NodeMsg::ToUser { user, kind, payload } => {
            let frame = SharedFrame::new(&kind, payload);
            for c in hub.registry.user_conns(&user) {
                let _ = c.push_frame(&frame);
            }
        }
        NodeMsg::Broadcast { kind, payload, except } => {
            let frame = SharedFrame::new(&kind, payload);
            broadcast_local(&hub.registry, &frame, except.as_deref());
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
