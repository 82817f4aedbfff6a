//! Sessions: what happens on one connection, from its first frame to its close. Only this layer
//! runs handlers.
//!
//! Order inside: `limits` (rate limits of a connection's messages) ← `runtime` (the server-wide
//! settings every session shares) ← `reply`
//! (answering, the panic guard, the request hook) ← `identify` (`~hello`, `~refresh`) ←
//! `reserved` (the other `~` messages) ← `dispatch` (routing a message) ← `run` (the task loop).

pub(crate) mod dispatch;
pub(crate) mod identify;
pub(crate) mod limits;
pub(crate) mod reply;
pub(crate) mod reserved;
pub(crate) mod run;
pub(crate) mod runtime;
