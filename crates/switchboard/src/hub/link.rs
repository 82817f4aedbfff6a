//! The cluster link: what this node says to the other nodes through the
//! [`Broker`](switchboard_core::Broker) — one node or all, and requests that wait for a node's
//! reply. (What a node does when it hears them is `inbound.rs`.)

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use switchboard_core::{BackendError, Broker, NodeId};
use switchboard_protocol::{ErrorBody, RawPayload, wire};
use tokio::sync::oneshot;

use crate::error::{Error, HubError, RequestError};

/// A message between nodes (JSON; payloads travel as JSON values).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub(crate) enum NodeMsg {
    ToConn {
        conn: String,
        kind: String,
        payload: RawPayload,
    },
    /// An operation on a connection of the receiving node, answered with a `Reply` (`missing`
    /// when the node has no such connection), so that it answers as it would on one node.
    OnConn {
        from: String,
        req: u64,
        conn: String,
        op: ConnOp,
    },
    ToUser {
        user: String,
        kind: String,
        payload: RawPayload,
    },
    /// To every identified connection but `except`; with `ask` (the asking node and its request
    /// number), answered with a `Reply` carrying how many were reached.
    Broadcast {
        kind: String,
        payload: RawPayload,
        except: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ask: Option<(String, u64)>,
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

/// What [`NodeMsg::OnConn`] asks of a connection.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum ConnOp {
    /// Put it into a topic (a group); answers `true`.
    Join { topic: String },
    /// Take it out of a topic; answers whether it was in.
    Leave { topic: String },
    /// An acknowledged delivery; answers `true`.
    Acked { kind: String, payload: RawPayload },
}

impl NodeMsg {
    pub(crate) fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }
}

/// This node's end of the cluster: sends node messages and matches replies to requests.
pub(crate) struct Link {
    node: NodeId,
    broker: Arc<dyn Broker>,
    /// Requests this node sent to other nodes, waiting for their replies.
    relayed: Mutex<HashMap<u64, oneshot::Sender<Result<RawPayload, RequestError>>>>,
    /// The next request's number.
    next: AtomicU64,
}

/// How long a node may take to answer a relayed `~dm`.
const DIRECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Link {
    pub(crate) fn new(node: NodeId, broker: Arc<dyn Broker>) -> Self {
        Self { node, broker, relayed: Mutex::new(HashMap::new()), next: AtomicU64::new(1) }
    }

    /// Sends a message to one node (`Some`) or every other node; a failure is returned to the
    /// caller, never dropped.
    pub(crate) async fn send(&self, to: Option<&str>, msg: &NodeMsg) -> Result<(), HubError> {
        let bytes = msg.encode();
        let to: Option<NodeId> = to.map(Arc::from);
        self.broker.send(&self.node, to.as_ref(), bytes).await.map_err(|e| match e {
            BackendError::NoSuchNode => HubError::NotFound,
            e => HubError::Backend(e.to_string()),
        })
    }

    /// Sends a `Reply` back to the node that asked (a failure is logged: nobody else waits).
    pub(crate) async fn reply(&self, to: &str, reply: &NodeMsg) {
        if let Err(e) = self.send(Some(to), reply).await {
            tracing::warn!(error = %e, node = to, "could not answer another node");
        }
    }

    /// Sends `make(this node, request number)` to `node` and waits for its `Reply`.
    pub(crate) async fn ask(
        &self,
        node: &str,
        make: impl FnOnce(String, u64) -> NodeMsg,
        timeout: Duration,
    ) -> Result<RawPayload, RequestError> {
        let req = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.relayed.lock().insert(req, tx);
        let msg = make(self.node.to_string(), req);
        if let Err(e) = self.send(Some(node), &msg).await {
            self.relayed.lock().remove(&req);
            return Err(match e {
                HubError::NotFound => RequestError::NotFound,
                e => RequestError::Backend(e.to_string()),
            });
        }
        let result = tokio::time::timeout(timeout, rx).await;
        self.relayed.lock().remove(&req);
        match result {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(RequestError::Disconnected),
            Err(_) => Err(RequestError::Timeout),
        }
    }

    /// A node answered request `req`.
    pub(crate) fn answered(&self, req: u64, result: Result<RawPayload, RequestError>) {
        if let Some(tx) = self.relayed.lock().remove(&req) {
            let _ = tx.send(result);
        }
    }

    /// Asks the node of `conn` to make a request and send back the answer.
    pub(crate) async fn relay_request(
        &self,
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
        self.ask(node, make, timeout + Duration::from_secs(1)).await
    }

    /// Asks the node of `conn` to do `op` with it (see [`ConnOp`]); its answer.
    pub(crate) async fn on_conn(
        &self,
        node: &str,
        conn: &str,
        op: ConnOp,
    ) -> Result<RawPayload, RequestError> {
        let make = |from: String, req: u64| NodeMsg::OnConn { from, req, conn: conn.to_owned(), op };
        self.ask(node, make, DIRECT_TIMEOUT).await
    }

    /// Asks the node of `conn` to deliver a `~dm` (encoded `payload`); returns the recipient's
    /// profile.
    pub(crate) async fn relay_direct(
        &self,
        node: &str,
        conn: &str,
        payload: RawPayload,
    ) -> Result<wire::Peer, Error> {
        let make = |from: String, req: u64| NodeMsg::Direct { from, req, conn: conn.to_owned(), payload };
        match self.ask(node, make, DIRECT_TIMEOUT).await {
            Ok(peer) => peer.decode().map_err(|_| Error::failed()),
            Err(RequestError::NotFound) => Err(Error::not_found("no such connection")),
            Err(RequestError::Remote(body)) => Err(Error::new(body.code, body.message)),
            Err(_) => Err(Error::unavailable("the recipient's server did not answer")),
        }
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
