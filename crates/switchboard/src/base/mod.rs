//! Leaves: small tools with no knowledge of sockets, connections or the hub, used by every layer.

pub(crate) mod clock;
pub(crate) mod counters;
pub(crate) mod lazy;
pub(crate) mod ordered;
pub(crate) mod sharded;
pub(crate) mod throttle;
