//! Connections: their shared state, how messages are queued for them, and the public handle.
//!
//! Order inside: `state` (the state shared by a connection's task and its senders) ← `pass`
//! (writer passes: the queue meets the socket here, and only here) ← `cork` (what a thread's
//! sends batch until its cork is removed) ← `send` (every way of queuing for a connection) ←
//! `handle` (the public [`Conn`]). Knows nothing of the hub, namespaces or sessions.

pub(crate) mod cork;
pub(crate) mod handle;
pub(crate) mod pass;
pub(crate) mod send;
pub(crate) mod state;

pub use self::handle::{Conn, Request};
pub(crate) use self::state::{ConnShared, Identified, Out, Pending, Receiver};
