//! The application's side of a topic subscription: a [`Subscription`], a stream of
//! [`TopicEvent`]s that talks to the connection task through its command channel.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use switchboard_protocol::wire::Subscribed;
use tokio::sync::mpsc;

use crate::command::Commands;
use crate::delivery::{Publication, TopicEvent};
use crate::presence::Roster;

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
    /// Keeps the connection task alive, and leaves the topic.
    pub(crate) commands: Commands,
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
    /// whether the position of [`SubscribeOptions::since`](crate::SubscribeOptions::since) could
    /// be recovered.
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
    /// [`SubscribeOptions::since`](crate::SubscribeOptions::since).
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

    /// The topic's presence, when subscribed with
    /// [`SubscribeOptions::presence`](crate::SubscribeOptions::presence).
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
        self.commands.unsubscribe(&self.topic, self.sink).await;
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
            self.commands.unsubscribe_now(&self.topic, self.sink);
        }
    }
}
