//! What a subscription yields: [`TopicEvent`]s and the [`Publication`]s among them.

use serde::de::DeserializeOwned;
use switchboard_protocol::RawPayload;
use switchboard_protocol::wire::{Delivery, Origin, PresenceDiff};

use crate::error::ClientError;

/// One publication in a topic (a `~msg` delivery).
///
/// ```
/// use switchboard_client::{RawPayload, Publication};
/// let p = Publication { topic: "chat/a".into(), event: None, data: RawPayload::json(&"hi").unwrap(), seq: 3, from: None };
/// assert_eq!(p.decode::<String>().unwrap(), "hi");
/// ```
#[derive(Debug, Clone)]
pub struct Publication {
    /// The topic.
    pub topic: String,
    /// The event name, if the publisher gave one.
    pub event: Option<String>,
    /// The data, still encoded.
    pub data: RawPayload,
    /// The sequence number in the topic's epoch: consecutive publications have consecutive
    /// numbers.
    pub seq: u64,
    /// The publishing connection, for publications made by clients.
    pub from: Option<Origin>,
}

impl Publication {
    /// Decodes the data into `T`.
    ///
    /// ```
    /// use switchboard_client::{RawPayload, Publication};
    /// let p = Publication { topic: "t".into(), event: None, data: RawPayload::json(&[1, 2]).unwrap(), seq: 1, from: None };
    /// assert_eq!(p.decode::<Vec<u8>>().unwrap(), [1, 2]);
    /// ```
    ///
    /// # Errors
    /// [`ClientError::Decode`] when the data is not a `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        Ok(self.data.decode()?)
    }
}

impl From<Delivery> for Publication {
    fn from(d: Delivery) -> Self {
        Self { topic: d.topic, event: d.event, data: d.data, seq: d.seq, from: d.from }
    }
}

/// What a [`Subscription`](crate::Subscription) yields.
///
/// ```no_run
/// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
/// use switchboard_client::TopicEvent;
/// let mut sub = client.subscribe("chat/lobby").await?;
/// while let Some(event) = sub.recv().await {
///     match event {
///         TopicEvent::Publication(p) => println!("#{} {:?}", p.seq, p.data),
///         TopicEvent::Resubscribed { recovered: false, .. } => println!("missed publications: reload"),
///         TopicEvent::Resubscribed { .. } => {}
///         TopicEvent::Presence(diff) => println!("{} joined", diff.joins.len()),
///         TopicEvent::Ended(e) => println!("subscription ended: {e}"),
///         _ => {}
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TopicEvent {
    /// A publication, in order; duplicates (a `seq` already delivered in the same epoch, or a
    /// delivery id already seen) are dropped.
    Publication(Publication),
    /// The topic's position was (re)established, and whether what came before is complete.
    ///
    /// Yielded after a reconnection, when the client subscribed again asking for the
    /// publications made since the last one it delivered: with `recovered: true` they follow
    /// this item, in order, and nothing was lost; with `recovered: false` the server could not
    /// fill the gap (its history was lost or too short).
    ///
    /// Also yielded, with `recovered: false`, when the topic's stream restarted while
    /// subscribed: a delivery came with a new `epoch` (the server lost the topic's history, e.g.
    /// a broker restart). Its `seq` is then the one before that delivery, which follows.
    ///
    /// Either way, `recovered: false` means publications were missed: reload the application's
    /// state.
    Resubscribed {
        /// Whether every missed publication is delivered after this item.
        recovered: bool,
        /// The topic's epoch now.
        epoch: String,
        /// The topic's last sequence number at that point: the next publication has a greater
        /// one.
        seq: u64,
    },
    /// Peers joined or left the topic (only with
    /// [`SubscribeOptions::presence`](crate::SubscribeOptions::presence)).
    Presence(PresenceDiff),
    /// The server refused to subscribe again after a reconnection (`FORBIDDEN`…); the stream
    /// ends after this item.
    Ended(ClientError),
}
