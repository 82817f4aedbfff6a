#![doc = include_str!("../README.md")]
//!
//! # Modules of this crate
//!
//! | concept | where |
//! |---|---|
//! | the handle and its calls | [`Client`], [`CallOptions`], [`PublishOptions`] |
//! | configuration | [`ClientBuilder`], [`Backoff`] |
//! | state | [`State`], [`CloseReason`], [`Stats`] |
//! | errors | [`ClientError`] (codes of the protocol) |
//! | subscriptions | [`Subscription`], [`TopicEvent`], [`Publication`], [`SubscribeOptions`] |
//! | presence | [`Roster`] (directory and topic presence), [`Client::set_status`], [`Client::send_dm`] |
//! | server-initiated traffic | [`Inbox`], [`Event`], [`Client::on_request`] |
//! | fault injection (feature `test-util`) | `testing::Faults` |

mod backoff;
mod client;
mod config;
mod connection;
mod error;
mod handlers;
mod handshake;
mod options;
mod presence;
mod requests;
mod state;
mod subscription;
mod topics;
mod transport;

#[cfg(feature = "test-util")]
pub mod testing;

#[cfg(test)]
mod tests;

pub use backoff::Backoff;
pub use client::Client;
pub use config::ClientBuilder;
pub use error::ClientError;
pub use handlers::{DirectMessages, Event, Events, GroupPublications, Inbox};
pub use options::{CallOptions, PublishOptions};
pub use presence::{PeerMap, Roster};
pub use state::{CloseReason, State, Stats};
pub use subscription::{Publication, SubscribeOptions, Subscription, TopicEvent};
pub use switchboard_protocol::wire::{
    DirectDelivery, DmSender, DmTarget, Origin, Peer, PeerChange, PresenceDiff, Status, StreamPosition,
    Subscribed, Welcome,
};
pub use switchboard_protocol::{ErrorBody, Format, Payload, codes};
