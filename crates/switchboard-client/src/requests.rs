//! Requests: id allocation, replies awaited, the bounded offline buffer, and the outbox of
//! frames the connection task writes.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;
use switchboard_protocol::{ErrorBody, Format, Id, MAX_ID, RawPayload, encode, wire::types};
use tokio::sync::oneshot;

use crate::error::ClientError;
use crate::transport::Outgoing;

/// Where a caller waits for its reply.
pub(crate) type Reply = oneshot::Sender<Result<RawPayload, ClientError>>;

/// A message the application asked to send: a request when `reply` is set, else an event.
pub(crate) struct Outbound {
    pub(crate) kind: String,
    pub(crate) payload: RawPayload,
    pub(crate) reply: Option<Reply>,
}

impl Outbound {
    /// Whether the caller stopped waiting (its timeout passed, or it was cancelled): the
    /// request is not worth sending any more.
    fn abandoned(&self) -> bool {
        self.reply.as_ref().is_some_and(oneshot::Sender::is_closed)
    }
}

/// A request the connection task makes for its own bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Internal {
    /// `~ping`: the reply only proves the link alive.
    Ping,
    /// `~sub` of this topic.
    Sub(String),
    /// `~unsub`.
    Unsub,
    /// `~who`: the directory (`None`) or a topic's presence.
    Who(Option<String>),
    /// `~status` re-sent after a reconnection.
    Status,
}

enum Waiting {
    Caller(Reply),
    Internal(Internal),
}

/// Requests in flight, the offline buffer, and the frames to write next.
pub(crate) struct Outbox {
    format: Format,
    frames: Vec<Outgoing>,
    last_id: u64,
    pending: HashMap<Id, Waiting>,
    offline: VecDeque<Outbound>,
    capacity: usize,
}

impl Outbox {
    pub(crate) fn new(format: Format, capacity: usize) -> Self {
        Self {
            format,
            frames: Vec::new(),
            last_id: 0,
            pending: HashMap::new(),
            offline: VecDeque::new(),
            capacity,
        }
    }

    pub(crate) fn format(&self) -> Format {
        self.format
    }

    /// The next request id (wrapping at 2^53 − 1).
    pub(crate) fn next_id(&mut self) -> Id {
        self.last_id = if self.last_id >= MAX_ID { 1 } else { self.last_id + 1 };
        Id::new(self.last_id).unwrap_or_else(|| unreachable!("1 <= id <= MAX_ID"))
    }

    /// Queues one message as is (no reply tracked).
    pub(crate) fn frame(
        &mut self,
        kind: &str,
        payload: &RawPayload,
        id: Option<Id>,
    ) -> Result<(), ClientError> {
        let bytes = encode(self.format, kind, payload, id)?;
        self.frames.push(Outgoing::Frame(bytes));
        Ok(())
    }

    /// Sends an application message now (the connection is ready).
    pub(crate) fn send(&mut self, out: Outbound) {
        if out.abandoned() {
            return;
        }
        match out.reply {
            Some(reply) => {
                let id = self.next_id();
                match self.frame(&out.kind, &out.payload, Some(id)) {
                    Ok(()) => {
                        self.pending.insert(id, Waiting::Caller(reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            None => {
                if let Err(e) = self.frame(&out.kind, &out.payload, None) {
                    tracing::warn!(kind = %out.kind, error = %e, "event dropped");
                }
            }
        }
    }

    /// Sends a request of the connection task's own; its reply comes back from [`Outbox::resolve`].
    pub(crate) fn internal<T: Serialize + ?Sized>(&mut self, kind: &str, value: &T, what: Internal) -> Id {
        let id = self.next_id();
        match RawPayload::encode(self.format, value).map_err(ClientError::from) {
            Ok(payload) => match self.frame(kind, &payload, Some(id)) {
                Ok(()) => {
                    self.pending.insert(id, Waiting::Internal(what));
                }
                Err(e) => tracing::error!(kind, error = %e, "cannot encode an internal request"),
            },
            Err(e) => tracing::error!(kind, error = %e, "cannot encode an internal request"),
        }
        id
    }

    /// Answers a request of the server.
    pub(crate) fn reply(&mut self, id: Id, result: &Result<RawPayload, ErrorBody>) {
        let written = match result {
            Ok(payload) => self.frame(types::OK, payload, Some(id)),
            Err(body) => RawPayload::encode(self.format, body)
                .map_err(ClientError::from)
                .and_then(|p| self.frame(types::ERR, &p, Some(id))),
        };
        if let Err(e) = written {
            tracing::warn!(%id, error = %e, "reply not encodable; answering FAILED");
            let body = ErrorBody::new(switchboard_protocol::codes::FAILED, "the reply could not be encoded");
            if let Ok(p) = RawPayload::encode(self.format, &body) {
                let _ = self.frame(types::ERR, &p, Some(id));
            }
        }
    }

    /// Queues a close frame.
    pub(crate) fn close(&mut self, code: u16, reason: &str) {
        self.frames.push(Outgoing::Close { code, reason: reason.to_owned() });
    }

    /// The frames to write, in order.
    pub(crate) fn take_frames(&mut self) -> Vec<Outgoing> {
        std::mem::take(&mut self.frames)
    }

    /// Routes a reply: a caller's is delivered here; an internal one is returned to the
    /// connection task. Replies to unknown ids (a caller that gave up long ago) are dropped.
    pub(crate) fn resolve(
        &mut self,
        id: Id,
        result: Result<RawPayload, ErrorBody>,
    ) -> Option<(Internal, Result<RawPayload, ErrorBody>)> {
        match self.pending.remove(&id)? {
            Waiting::Caller(reply) => {
                let _ = reply.send(result.map_err(ClientError::Server));
                None
            }
            Waiting::Internal(what) => Some((what, result)),
        }
    }

    /// Keeps a message for the next connection. Gives it back when the buffer is full even
    /// after dropping the requests whose callers stopped waiting.
    pub(crate) fn buffer(&mut self, out: Outbound) -> Result<(), Outbound> {
        if self.offline.len() >= self.capacity {
            self.offline.retain(|o| !o.abandoned());
        }
        if self.offline.len() >= self.capacity {
            return Err(out);
        }
        self.offline.push_back(out);
        Ok(())
    }

    /// Sends what waited in the offline buffer (the connection is ready again), skipping the
    /// requests whose timeout passed meanwhile.
    pub(crate) fn flush_offline(&mut self) {
        while let Some(out) = self.offline.pop_front() {
            self.send(out);
        }
    }

    /// The connection dropped: callers waiting for a reply get `DISCONNECTED`, internal
    /// requests are forgotten (the next connection redoes them), unwritten frames are dropped.
    pub(crate) fn disconnected(&mut self) {
        for (_, waiting) in self.pending.drain() {
            if let Waiting::Caller(reply) = waiting {
                let _ = reply.send(Err(ClientError::Disconnected));
            }
        }
        self.frames.clear();
    }

    /// The client closed: everything still buffered fails with `error`.
    pub(crate) fn close_all(&mut self, error: &ClientError) {
        self.disconnected();
        for out in self.offline.drain(..) {
            if let Some(reply) = out.reply {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }

    /// Forgets the callers that stopped waiting.
    pub(crate) fn prune(&mut self) {
        self.pending.retain(|_, w| !matches!(w, Waiting::Caller(r) if r.is_closed()));
        self.offline.retain(|o| !o.abandoned());
    }

    #[cfg(test)]
    pub(crate) fn offline_len(&self) -> usize {
        self.offline.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(out: &mut Outbox, kind: &str) -> oneshot::Receiver<Result<RawPayload, ClientError>> {
        let (tx, rx) = oneshot::channel();
        out.send(Outbound { kind: kind.into(), payload: RawPayload::json(&1).unwrap(), reply: Some(tx) });
        rx
    }

    fn frames_text(out: &mut Outbox) -> Vec<String> {
        out.take_frames()
            .into_iter()
            .map(|f| match f {
                Outgoing::Frame(b) => String::from_utf8(b.to_vec()).unwrap(),
                Outgoing::Close { code, .. } => format!("close {code}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn replies_reach_callers_and_internal_ids_come_back() {
        let mut out = Outbox::new(Format::Json, 4);
        let rx = call(&mut out, "echo");
        let id = out.internal("~who", &serde_json::json!({}), Internal::Who(None));
        assert_eq!(frames_text(&mut out), [r#"["echo",1,1]"#, r#"["~who",{},2]"#]);
        assert!(out.resolve(Id::new(1).unwrap(), Ok(RawPayload::json(&"r").unwrap())).is_none());
        assert_eq!(rx.await.unwrap().unwrap().as_bytes(), br#""r""#);
        let (what, _) = out.resolve(id, Ok(RawPayload::null())).unwrap();
        assert_eq!(what, Internal::Who(None));
        assert!(out.resolve(id, Ok(RawPayload::null())).is_none(), "a reply is consumed once");
    }

    #[tokio::test]
    async fn disconnect_fails_callers_with_disconnected() {
        let mut out = Outbox::new(Format::Json, 4);
        let rx = call(&mut out, "sleep");
        out.disconnected();
        assert_eq!(rx.await.unwrap().unwrap_err().code(), "DISCONNECTED");
        assert!(out.take_frames().is_empty());
    }

    #[tokio::test]
    async fn offline_buffer_is_bounded_and_skips_abandoned_requests() {
        let mut out = Outbox::new(Format::Json, 2);
        let (tx1, rx1) = oneshot::channel();
        let (tx2, rx2) = oneshot::channel();
        let (tx3, _rx3) = oneshot::channel();
        let o = |tx| Outbound { kind: "echo".into(), payload: RawPayload::null(), reply: Some(tx) };
        assert!(out.buffer(o(tx1)).is_ok());
        assert!(out.buffer(o(tx2)).is_ok());
        assert!(out.buffer(o(tx3)).is_err(), "full");
        drop(rx1); // its caller timed out: the slot frees, and it is never sent
        let (tx4, _rx4) = oneshot::channel();
        assert!(out.buffer(o(tx4)).is_ok());
        assert_eq!(out.offline_len(), 2);
        out.flush_offline();
        assert_eq!(frames_text(&mut out), [r#"["echo",null,1]"#, r#"["echo",null,2]"#]);
        drop(rx2);
        out.prune();
        assert_eq!(out.pending.len(), 1);
    }

    #[test]
    fn ids_wrap_below_two_to_the_53() {
        let mut out = Outbox::new(Format::Json, 1);
        out.last_id = MAX_ID - 1;
        assert_eq!(out.next_id().get(), MAX_ID);
        assert_eq!(out.next_id().get(), 1);
    }

    #[test]
    fn replies_and_errors_are_encoded() {
        let mut out = Outbox::new(Format::Json, 1);
        out.reply(Id::new(3).unwrap(), &Ok(RawPayload::null()));
        out.reply(Id::new(4).unwrap(), &Err(ErrorBody::new("NOT_FOUND", "no handler for x")));
        assert_eq!(
            frames_text(&mut out),
            [r#"["~ok",null,3]"#, r#"["~err",{"code":"NOT_FOUND","message":"no handler for x"},4]"#]
        );
    }
}
