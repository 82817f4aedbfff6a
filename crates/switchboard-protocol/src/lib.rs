//! # switchboard-protocol
//!
//! The Switchboard wire protocol, version 1, with no runtime attached: everything a server or a
//! client needs to read and write frames, and nothing else (no tokio, no sockets).
//!
//! - [`Message`]: one decoded frame, `[type, payload, id]`, with its payload kept **raw**
//!   ([`RawPayload`]) so that routing never parses it twice.
//! - [`Format`]: the two codecs, chosen by WebSocket subprotocol
//!   ([`SUBPROTOCOL_JSON`], [`SUBPROTOCOL_MSGPACK`]); [`Format::decode`] and [`encode`].
//! - [`Id`], [`MessageType`], [`Topic`]: validated newtypes for the protocol's scalars.
//! - [`ErrorBody`] and the standard [`codes`]; [`CloseCode`].
//! - [`wire`]: typed payloads of the reserved `~` messages, shared by server and clients.
//!
//! ```
//! use switchboard_protocol::{Format, RawPayload, encode};
//!
//! let msg = Format::Json.decode(&br#"["add",{"a":1,"b":2},7]"#.to_vec().into()).unwrap();
//! assert_eq!(msg.kind.as_str(), "add");
//! assert_eq!(msg.id.map(|id| id.get()), Some(7));
//! assert_eq!(msg.payload.as_bytes(), br#"{"a":1,"b":2}"#);
//!
//! let reply = encode(Format::Json, "~ok", &RawPayload::json(&3).unwrap(), msg.id).unwrap();
//! assert_eq!(&reply[..], br#"["~ok",3,7]"#);
//! ```

mod close;
pub mod codes;
mod error;
mod format;
mod id;
mod msgpack;
mod payload;
mod topic;
pub mod wire;

pub use close::CloseCode;
pub use error::{DecodeError, EncodeError, ErrorBody};
pub use format::{Format, Message, SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK, encode, encode_value};
pub use id::{Id, MAX_ID, MessageType};
pub use payload::{MapWriter, RawPayload};
pub use topic::{Topic, TopicError};

/// Default maximum size of one inbound message, in bytes (protocol section 9).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024;
