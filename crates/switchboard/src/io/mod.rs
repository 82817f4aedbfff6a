//! Bytes and sockets: the HTTP/1.1 upgrade, the WebSocket codec, the transports. Knows nothing
//! of connections, the hub or sessions.
//!
//! Order inside: `upgrade` (what the request said) · `forwarded` (who a request through proxies
//! is for) · `http1` (parsing and answering a request head) · `tcp` (a socket shared with writer passes) · `transport` (the interface a connection
//! task uses) ← `ws` (our RFC 6455 codec, under every path: `serve`, `router`, `accept`).

pub(crate) mod forwarded;
pub(crate) mod http1;
pub(crate) mod tcp;
pub(crate) mod transport;
pub(crate) mod upgrade;
pub(crate) mod ws;
