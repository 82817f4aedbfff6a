//! How something is queued for a connection: every send goes through [`ConnShared::enqueue`]
//! (data, bounded in bytes) or [`ConnShared::control`] (pings, closes), which ask the cork when
//! the connection's task is to be woken.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use switchboard_protocol::{CloseCode, Id, RawPayload, encode, wire};

use super::cork::{self, Mode};
use super::state::{ConnShared, Out};
use crate::error::{Error, SendError};
use crate::outbound::frame::SharedFrame;
use crate::outbound::queue::{Reader, Refused};

impl ConnShared {
    /// Queues encoded bytes. Past the queue limit the connection is closed with 4002.
    pub(crate) fn push(&self, frame: Bytes) -> Result<(), SendError> {
        self.enqueue(frame.len(), |items| items.push_back(Out::Frame(frame)), None)
    }

    /// Queues a frame encoded once for many connections.
    pub(crate) fn push_frame(&self, frame: &SharedFrame) -> Result<(), SendError> {
        let bytes = frame.bytes(self.format).ok_or_else(|| SendError::Encode("payload".to_owned()))?;
        self.push(bytes)
    }

    /// Queues messages shared with other connections (`len`: their bytes), in one item; inside
    /// a cork, a writer pass may write them (see `pass.rs`).
    pub(crate) fn push_shared(self: &Arc<Self>, frames: &Arc<[Bytes]>, len: usize) -> Result<(), SendError> {
        if len == 0 {
            return Ok(());
        }
        self.enqueue(len, |items| items.push_back(Out::Frames(frames.clone())), Some(self))
    }

    /// Queues several encoded messages at once (one lock; a fan-out's batch); inside a cork, a
    /// writer pass may write them.
    pub(crate) fn push_many(
        self: &Arc<Self>,
        frames: impl Iterator<Item = Bytes> + Clone,
    ) -> Result<(), SendError> {
        let len = frames.clone().map(|f| f.len()).sum();
        if len == 0 {
            return Ok(());
        }
        self.enqueue(len, |items| items.extend(frames.map(Out::Frame)), Some(self))
    }

    pub(crate) fn push_message(
        &self,
        kind: &str,
        payload: &RawPayload,
        id: Option<Id>,
    ) -> Result<(), SendError> {
        let frame = encode(self.format, kind, payload, id).map_err(|e| SendError::Encode(e.to_string()))?;
        self.push(frame)
    }

    pub(crate) fn reply(&self, id: Id, result: Result<RawPayload, Error>) {
        let _ = match result {
            Ok(payload) => self.push_message(wire::types::OK, &payload, Some(id)),
            Err(e) => self.push_error(&e, Some(id)),
        };
    }

    pub(crate) fn push_error(&self, e: &Error, id: Option<Id>) -> Result<(), SendError> {
        match RawPayload::encode(self.format, &e.to_body()) {
            Ok(body) => self.push_message(wire::types::ERR, &body, id),
            Err(e) => Err(SendError::Encode(e.to_string())),
        }
    }

    /// Queues what `put` adds (`len` bytes) unless the connection is closing; past the queue
    /// limit the connection is closed with 4002. `pass`: the connection itself, when a writer
    /// pass may write this for its task.
    fn enqueue(
        &self,
        len: usize,
        put: impl FnOnce(&mut VecDeque<Out>),
        pass: Option<&Arc<ConnShared>>,
    ) -> Result<(), SendError> {
        if self.closing.load(Ordering::Acquire) {
            return Err(SendError::Closed);
        }
        let mode = self.sending();
        match self.queue.send_with(len, self.config.max_queue_bytes, put, mode != Mode::Own) {
            Ok(reader) => {
                wake(mode, reader, pass);
                Ok(())
            }
            Err(Refused::Closed) => Err(SendError::Closed),
            Err(Refused::Full(queued)) => {
                tracing::debug!(conn = %self.id, queued, "outbound queue overflowed");
                self.kill(CloseCode::SLOW_CONSUMER, "slow consumer: outbound queue overflowed");
                Err(SendError::SlowConsumer)
            }
        }
    }

    /// Queues a control item (not counted against the limit); `false` if the task is gone.
    fn control(&self, item: Out) -> bool {
        let mode = self.sending();
        match self.queue.send_with(0, usize::MAX, |items| items.push_back(item), mode != Mode::Own) {
            Ok(reader) => {
                wake(mode, reader, None);
                true
            }
            Err(_) => false,
        }
    }

    /// How this send wakes the task; a fan-out the cork holds goes out first, so that the
    /// receiver sees messages in the order they were sent.
    fn sending(&self) -> Mode {
        let mode = cork::mode(self);
        if mode == Mode::Later {
            cork::release_held();
        }
        mode
    }

    /// Tells the connection's task that the server is shutting down (see [`Out::Shutdown`]).
    pub(crate) fn shut_down(&self) {
        self.control(Out::Shutdown);
    }

    pub(crate) fn ping(&self) {
        if !self.closing.load(Ordering::Acquire) {
            self.control(Out::Ping);
        }
    }

    /// Queues a close after what is already queued. The first close wins.
    pub(crate) fn close(&self, code: CloseCode, reason: &str, bye: bool) {
        self.close_with(code, reason, bye, None);
    }

    pub(crate) fn close_with(&self, code: CloseCode, reason: &str, bye: bool, jump: Option<String>) {
        if !self.closing.swap(true, Ordering::AcqRel) {
            self.control(Out::Close { code, reason: reason.to_owned(), bye, jump });
        }
    }
}

/// Wakes the reader a send took, as `mode` says: now, when the cork is removed, or (for a
/// connection whose socket passes may write, `pass`) by a writer pass.
fn wake(mode: Mode, reader: Option<Reader>, pass: Option<&Arc<ConnShared>>) {
    let Some(Reader { waker, attached }) = reader else { return };
    match (mode, pass) {
        (Mode::Later, Some(conn)) if attached => cork::pass_later(conn, waker),
        (Mode::Later, _) => cork::wake_later(waker),
        _ => waker.wake(),
    }
}
