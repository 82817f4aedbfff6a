//! What waits to be written: a connection's bounded outbound queue (generic: it knows no
//! connection and no socket) and frames encoded once for many recipients.

pub(crate) mod frame;
pub(crate) mod queue;
