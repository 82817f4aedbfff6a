//! The application's side of a topic subscription: a stream of [`TopicEvent`]s.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use serde::de::DeserializeOwned;
use switchboard_protocol::Payload;
use switchboard_protocol::wire::{Delivery, Origin, PresenceDiff, StreamPosition, Subscribed};
use tokio::sync::mpsc;

use crate::presence::Roster;
use crate::{Client, ClientError};

/// One publication in a topic (a `~msg` delivery).
///
/// ```
/// use switchboard_client::{Payload, Publication};
/// let p = Publication { topic: "chat/a".into(), event: None, data: Payload::json(&"hi").unwrap(), seq: 3, from: None };
/// assert_eq!(p.decode::<String>().unwrap(), "hi");
/// ```
#[derive(Debug, Clone)]
pub struct Publication {
    /// The topic.
    pub topic: String,
    /// The event name, if the publisher gave one.
    pub event: Option<String>,
    /// The data, still encoded.
    pub data: Payload,
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
    /// use switchboard_client::{Payload, Publication};
    /// let p = Publication { topic: "t".into(), event: None, data: Payload::json(&[1, 2]).unwrap(), seq: 1, from: None };
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

/// What a [`Subscription`] yields.
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
    /// A publication, in order; duplicates (by `seq`, or by delivery id) are dropped.
    Publication(Publication),
    /// The client subscribed again after a reconnection, asking for the publications made
    /// since the last one it delivered. With `recovered: true` they follow this item, in
    /// order, and nothing was lost. With `recovered: false` the server could not fill the
    /// gap (its history was lost or too short): publications were missed and the application
    /// must reload its state.
    Resubscribed {
        /// Whether every missed publication is delivered after this item.
        recovered: bool,
        /// The topic's epoch now.
        epoch: String,
        /// The topic's last sequence number when it was subscribed again.
        seq: u64,
    },
    /// The topic's stream restarted while subscribed (the server lost its history, e.g. a
    /// Redis restart, or the topic was idle long enough for it to expire): `seq` went back to
    /// `seq`. Publications around the restart may be missing: reload the application's state.
    /// The next resubscription reports `recovered: false`.
    Restarted {
        /// The first sequence number of the new stream that was delivered.
        seq: u64,
    },
    /// Peers joined or left the topic (only with [`SubscribeOptions::presence`]).
    Presence(PresenceDiff),
    /// The server refused to subscribe again after a reconnection (`FORBIDDEN`…); the stream
    /// ends after this item.
    Ended(ClientError),
}

/// Options of [`Client::subscribe_with`].
///
/// ```
/// use switchboard_client::SubscribeOptions;
/// let opts = SubscribeOptions::new().since("e1", 41).presence(true);
/// assert_eq!(opts.since_position().unwrap().seq, 41);
/// ```
#[derive(Debug, Clone, Default)]
pub struct SubscribeOptions {
    pub(crate) since: Option<StreamPosition>,
    pub(crate) presence: bool,
}

impl SubscribeOptions {
    /// No options: new publications only, no presence.
    ///
    /// ```
    /// let opts = switchboard_client::SubscribeOptions::new();
    /// assert!(opts.since_position().is_none());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Recover the publications after `seq` of `epoch` (a position the application saved), as
    /// a reconnection does. [`Subscription::recovered`] tells whether the server could.
    ///
    /// ```
    /// let opts = switchboard_client::SubscribeOptions::new().since("epoch-1", 7);
    /// assert_eq!(opts.since_position().unwrap().epoch, "epoch-1");
    /// ```
    #[must_use]
    pub fn since(mut self, epoch: impl Into<String>, seq: u64) -> Self {
        self.since = Some(StreamPosition { epoch: epoch.into(), seq });
        self
    }

    /// Keep the topic's presence ([`Subscription::presence`]) and yield its changes as
    /// [`TopicEvent::Presence`] (for topics where the server keeps presence).
    ///
    /// ```
    /// let opts = switchboard_client::SubscribeOptions::new().presence(true);
    /// # let _ = opts;
    /// ```
    #[must_use]
    pub fn presence(mut self, on: bool) -> Self {
        self.presence = on;
        self
    }

    /// The position given with [`SubscribeOptions::since`].
    ///
    /// ```
    /// assert!(switchboard_client::SubscribeOptions::new().since_position().is_none());
    /// ```
    #[must_use]
    pub fn since_position(&self) -> Option<&StreamPosition> {
        self.since.as_ref()
    }
}

/// A subscription to a topic: a stream of [`TopicEvent`]s that survives reconnections.
///
/// Read it with [`Subscription::recv`] or as a [`Stream`]. After a reconnection the client
/// subscribes again from the last publication delivered, yields
/// [`TopicEvent::Resubscribed`], then the recovered publications in order. Dropping the
/// subscription unsubscribes (the topic is left when its last local subscription goes).
///
/// ```no_run
/// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
/// use futures_util::StreamExt;
/// use switchboard_client::TopicEvent;
///
/// let mut sub = client.subscribe("todo/list1/item1").await?;
/// while let Some(TopicEvent::Publication(p)) = sub.next().await {
///     println!("{:?}", p.data);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Subscription {
    pub(crate) topic: String,
    pub(crate) sink: u64,
    pub(crate) rx: mpsc::UnboundedReceiver<TopicEvent>,
    pub(crate) client: Client,
    pub(crate) info: Subscribed,
    pub(crate) presence: Option<Roster>,
    pub(crate) active: bool,
}

impl Subscription {
    /// The topic.
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// assert_eq!(client.subscribe("chat/a").await?.topic(), "chat/a");
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The server's reply to the first `~sub`: the epoch and last sequence number then, and
    /// whether the position of [`SubscribeOptions::since`] could be recovered.
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// let sub = client.subscribe("chat/a").await?;
    /// println!("epoch {} at {}", sub.info().epoch, sub.info().seq);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn info(&self) -> &Subscribed {
        &self.info
    }

    /// Whether the first `~sub` recovered everything after the position given with
    /// [`SubscribeOptions::since`].
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// use switchboard_client::SubscribeOptions;
    /// let sub = client.subscribe_with("chat/a", SubscribeOptions::new().since("e", 10)).await?;
    /// if !sub.recovered() { /* reload the room */ }
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn recovered(&self) -> bool {
        self.info.recovered
    }

    /// The topic's presence, when subscribed with [`SubscribeOptions::presence`].
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// use switchboard_client::SubscribeOptions;
    /// let sub = client.subscribe_with("chat/a", SubscribeOptions::new().presence(true)).await?;
    /// println!("{} here", sub.presence().unwrap().len());
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn presence(&self) -> Option<&Roster> {
        self.presence.as_ref()
    }

    /// The next event; `None` when the subscription ended (client closed, or
    /// [`TopicEvent::Ended`] was yielded).
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// let mut sub = client.subscribe("chat/a").await?;
    /// let first = sub.recv().await;
    /// # Ok(()) }
    /// ```
    pub async fn recv(&mut self) -> Option<TopicEvent> {
        self.rx.recv().await
    }

    /// The next publication, skipping the other events.
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// let mut sub = client.subscribe("chat/a").await?;
    /// if let Some(p) = sub.next_publication().await {
    ///     println!("{:?}", p.data);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn next_publication(&mut self) -> Option<Publication> {
        loop {
            if let TopicEvent::Publication(p) = self.rx.recv().await? {
                return Some(p);
            }
        }
    }

    /// Leaves the topic (when no other local subscription to it remains) and ends the stream.
    ///
    /// ```no_run
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// let sub = client.subscribe("chat/a").await?;
    /// sub.unsubscribe().await;
    /// # Ok(()) }
    /// ```
    pub async fn unsubscribe(mut self) {
        self.active = false;
        self.client.unsubscribe_sink(&self.topic, self.sink, true).await;
    }
}

impl Stream for Subscription {
    type Item = TopicEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<TopicEvent>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if self.active {
            self.client.unsubscribe_sink_now(&self.topic, self.sink);
        }
    }
}
