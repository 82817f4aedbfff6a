//! Fault injection at the transport layer, for tests of reconnection and recovery against a
//! real server (feature `test-util`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), switchboard_client::ClientError> {
//! use switchboard_client::{Client, testing::Faults};
//!
//! let faults = Faults::new();
//! let client = Client::builder("ws://127.0.0.1:8080/ws").faults(&faults).connect().await?;
//! faults.set_offline(true); // connection attempts fail, as with no network
//! faults.drop_link();       // the socket closes without a close frame (1006)
//! // … publish from another client meanwhile …
//! faults.set_offline(false); // the client reconnects and recovers
//! client.ready().await?;
//! # Ok(()) }
//! ```

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures_util::{Sink, StreamExt};
use switchboard_protocol::Format;
use tokio::sync::watch;

use crate::error::ConnectionError;
use crate::transport::{BoxFuture, Connector, FrameSink, Incoming, Link, Outgoing, TransportError};

/// A switchboard of faults shared by a test and the client it was given to
/// ([`ClientBuilder::faults`](crate::ClientBuilder::faults)). Cloning shares it.
///
/// ```
/// let faults = switchboard_client::testing::Faults::new();
/// faults.set_offline(true);
/// assert!(faults.is_offline());
/// ```
#[derive(Debug, Clone)]
pub struct Faults {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    offline: AtomicBool,
    drops: watch::Sender<u64>,
    frozen: watch::Sender<bool>,
    links: AtomicU64,
}

impl Default for Faults {
    fn default() -> Self {
        Self::new()
    }
}

impl Faults {
    /// No fault.
    ///
    /// ```
    /// let faults = switchboard_client::testing::Faults::new();
    /// assert_eq!(faults.links(), 0);
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                offline: AtomicBool::new(false),
                drops: watch::Sender::new(0),
                frozen: watch::Sender::new(false),
                links: AtomicU64::new(0),
            }),
        }
    }

    /// Drops the open links abruptly: the socket closes without a close frame, as when a
    /// network path dies; the client sees code 1006 and reconnects.
    ///
    /// ```
    /// switchboard_client::testing::Faults::new().drop_link();
    /// ```
    pub fn drop_link(&self) {
        self.inner.drops.send_modify(|n| *n += 1);
    }

    /// While offline, connection attempts fail at once (connection refused).
    ///
    /// ```
    /// let faults = switchboard_client::testing::Faults::new();
    /// faults.set_offline(true);
    /// faults.set_offline(false);
    /// assert!(!faults.is_offline());
    /// ```
    pub fn set_offline(&self, offline: bool) {
        self.inner.offline.store(offline, Ordering::SeqCst);
    }

    /// Whether connection attempts fail.
    ///
    /// ```
    /// assert!(!switchboard_client::testing::Faults::new().is_offline());
    /// ```
    #[must_use]
    pub fn is_offline(&self) -> bool {
        self.inner.offline.load(Ordering::SeqCst)
    }

    /// While frozen, open links carry nothing either way, yet stay open: a silent peer,
    /// which only the heartbeat can notice.
    ///
    /// ```
    /// let faults = switchboard_client::testing::Faults::new();
    /// faults.freeze(true);
    /// ```
    pub fn freeze(&self, frozen: bool) {
        self.inner.frozen.send_replace(frozen);
    }

    /// How many links were opened.
    ///
    /// ```
    /// assert_eq!(switchboard_client::testing::Faults::new().links(), 0);
    /// ```
    #[must_use]
    pub fn links(&self) -> u64 {
        self.inner.links.load(Ordering::SeqCst)
    }

    pub(crate) fn wrap(&self, inner: Arc<dyn Connector>) -> Arc<dyn Connector> {
        Arc::new(FaultyConnector { inner, faults: self.clone() })
    }
}

struct FaultyConnector {
    inner: Arc<dyn Connector>,
    faults: Faults,
}

impl Connector for FaultyConnector {
    fn connect(&self, url: &str, format: Format) -> BoxFuture<'static, Result<Link, ConnectionError>> {
        let faults = self.faults.clone();
        let connecting = self.inner.connect(url, format);
        Box::pin(async move {
            if faults.is_offline() {
                return Err(ConnectionError::Network(
                    "connection refused (fault injection: offline)".to_owned(),
                ));
            }
            let link = connecting.await?;
            faults.inner.links.fetch_add(1, Ordering::SeqCst);
            let mut drops = faults.inner.drops.subscribe();
            drops.mark_unchanged();
            let frozen = faults.inner.frozen.subscribe();
            let stream = futures_util::stream::unfold(
                (link.stream, drops, frozen.clone(), false),
                |(mut stream, mut drops, mut frozen, dead)| async move {
                    if dead {
                        return None;
                    }
                    loop {
                        let is_frozen = *frozen.borrow_and_update();
                        tokio::select! {
                            biased;
                            Ok(()) = drops.changed() => {
                                let lost = TransportError("link dropped (fault injection)".to_owned());
                                return Some((Err::<Incoming, _>(lost), (stream, drops, frozen, true)));
                            }
                            Ok(()) = frozen.changed() => {}
                            item = stream.next(), if !is_frozen => {
                                return item.map(|item| (item, (stream, drops, frozen, false)));
                            }
                            else => return None,
                        }
                    }
                },
            );
            let sink = FrozenSink { inner: link.sink, frozen };
            Ok(Link { sink: Box::pin(sink), stream: Box::pin(stream) })
        })
    }
}

/// Swallows frames while frozen.
struct FrozenSink {
    inner: FrameSink,
    frozen: watch::Receiver<bool>,
}

impl Sink<Outgoing> for FrozenSink {
    type Error = TransportError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.as_mut().poll_ready(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Outgoing) -> Result<(), Self::Error> {
        if *self.frozen.borrow() {
            return Ok(());
        }
        self.inner.as_mut().start_send(item)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.as_mut().poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.as_mut().poll_close(cx)
    }
}
