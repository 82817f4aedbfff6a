#![doc = include_str!("../README.md")]
//!
//! # Public items
//!
//! | concept | where |
//! |---|---|
//! | the handle and its calls | [`Client`], [`CallOptions`], [`PublishOptions`], [`HistoryOptions`] |
//! | configuration | [`ClientBuilder`], [`Backoff`], TLS ([`ClientBuilder::tls_ca_pem`], [`ClientBuilder::tls_config`]) |
//! | state | [`State`], [`CloseReason`], [`Stats`] |
//! | errors | [`ClientError`] (codes of the protocol), [`ConnectionError`] (retried or fatal) |
//! | subscriptions | [`Subscription`], [`TopicEvent`], [`Publication`], [`SubscribeOptions`] |
//! | history | [`Client::history`], [`HistoryReply`], [`HistoryItem`] |
//! | presence | [`Roster`] (directory and topic presence), [`Client::set_status`], [`Client::send_dm`] |
//! | server-initiated traffic | [`Inbox`], [`Event`], [`Client::on_request`] |
//! | fault injection (feature `test-util`) | `testing::Faults` |
//!
//! # Modules, in layers
//!
//! Each module uses only modules of the layers above it in this table (a lower layer number),
//! never one of its own layer or below: the bottom of the table is the top of the crate, where
//! the application comes in. Data flows up from the socket (transport → connection → the
//! handles' streams) and commands flow down (client → command channel → connection).
//!
//! | layer | module | what it owns | uses |
//! |---|---|---|---|
//! | 0 | `error` | [`ClientError`], [`ConnectionError`] and what is fatal, [`CloseReason`] | — |
//! | 0 | `backoff` | [`Backoff`]: delays with full jitter | — |
//! | 1 | `state` | [`State`], [`Stats`], the live counters | error |
//! | 1 | `options` | [`CallOptions`], [`PublishOptions`], [`SubscribeOptions`], [`HistoryOptions`] and their checks | error |
//! | 1 | `delivery` | [`Publication`], [`TopicEvent`] | error |
//! | 1 | `presence` | [`Roster`], the live peer sets | error |
//! | 1 | `handshake` | identification steps, without I/O | error |
//! | 1 | `tls` (feature `tls`) | rustls configuration: system roots + extra CAs | error |
//! | 2 | `transport` | the `Connector` seam, URL checks, WebSocket over TCP or TLS | error, tls |
//! | 3 | `requests` | ids, replies awaited, the offline buffer, the outbox | error, transport |
//! | 3 | `handlers` | [`Inbox`], [`Event`], the registry of handlers and listeners | error, delivery, transport |
//! | 3 | `testing` (feature `test-util`) | fault injection around a `Connector` | error, transport |
//! | 4 | `config` | the settings the connection task runs with | backoff, handlers, transport |
//! | 4 | `topics` | subscriptions across connections: positions, epochs, duplicates | error, delivery, presence, requests |
//! | 4 | `shared` | what handles and the task share: registry, welcome, counters | handlers, state |
//! | 5 | `command` | the command channel from the handles to the task | error, presence, requests, topics |
//! | 6 | `connection` | the connection task: connect, identify, serve, retry or stop | all of layers 0–5 |
//! | 6 | `subscription` | [`Subscription`], a stream that leaves its topic when dropped | command, delivery, presence |
//! | 7 | `client` | [`Client`], the handle | connection, command, subscription, and below |
//! | 8 | `builder` | [`ClientBuilder`], [`Client::builder`] | client, config, tls, testing, transport, and below |

mod backoff;
mod builder;
mod client;
mod command;
mod config;
mod connection;
mod delivery;
mod error;
mod handlers;
mod handshake;
mod options;
mod presence;
mod requests;
mod shared;
mod state;
mod subscription;
#[cfg(feature = "tls")]
mod tls;
mod topics;
mod transport;

#[cfg(feature = "test-util")]
pub mod testing;

#[cfg(test)]
mod tests;

pub use backoff::Backoff;
pub use builder::ClientBuilder;
pub use client::Client;
pub use delivery::{Publication, TopicEvent};
pub use error::{ClientError, CloseReason, ConnectionError};
pub use handlers::{DirectMessages, Event, Events, GroupPublications, Inbox};
pub use options::{CallOptions, HistoryOptions, PublishOptions, SubscribeOptions};
pub use presence::{PeerMap, Roster};
/// The rustls this crate uses, for [`ClientBuilder::tls_config`] (feature `tls`).
#[cfg(feature = "tls")]
pub use rustls;
pub use state::{State, Stats};
pub use subscription::Subscription;
pub use switchboard_protocol::wire::{
    DirectDelivery, DmSender, DmTarget, HistoryItem, HistoryReply, Origin, Peer, PeerChange, PresenceDiff,
    Status, StreamPosition, Subscribed, Welcome,
};
pub use switchboard_protocol::{ErrorBody, Format, RawPayload, codes};
