//! The transport seam: a small internal trait that opens one WebSocket-like link, so that tests
//! can inject a fake, and its real implementation over tokio-tungstenite.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt, future};
use switchboard_protocol::Format;
use tokio_tungstenite::tungstenite::{
    self, Message as WsMessage,
    client::IntoClientRequest,
    http::HeaderValue,
    protocol::{CloseFrame, WebSocketConfig, frame::coding::CloseCode as WsCloseCode},
};

/// A boxed, sendable future.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the link delivers.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// One message's frame (text or binary).
    Frame(Bytes),
    /// The peer's close frame (1005 when it carried no code).
    Close { code: u16, reason: String },
}

/// What the client writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outgoing {
    /// One message's frame, sent as text for JSON and binary for MessagePack.
    Frame(Bytes),
    /// A close frame.
    Close { code: u16, reason: String },
}

/// A transport failure (connect refused, socket error): the link is gone.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct TransportError(pub(crate) String);

impl From<tungstenite::Error> for TransportError {
    fn from(e: tungstenite::Error) -> Self {
        Self(e.to_string())
    }
}

/// The writing half of a link.
pub(crate) type FrameSink = Pin<Box<dyn Sink<Outgoing, Error = TransportError> + Send>>;
/// The reading half of a link; it ends (or yields an error) when the link is lost.
pub(crate) type FrameStream = Pin<Box<dyn Stream<Item = Result<Incoming, TransportError>> + Send>>;

/// One open connection. Dropping both halves drops the connection.
pub(crate) struct Link {
    pub(crate) sink: FrameSink,
    pub(crate) stream: FrameStream,
}

/// Opens links. The connection task holds one and calls it at every (re)connection.
pub(crate) trait Connector: Send + Sync + 'static {
    /// Connects to `url`, offering the subprotocol of `format`.
    fn connect(&self, url: &str, format: Format) -> BoxFuture<'static, Result<Link, TransportError>>;
}

/// The real transport: tokio-tungstenite over TCP (`ws://` URLs).
pub(crate) struct WsConnector;

impl Connector for WsConnector {
    fn connect(&self, url: &str, format: Format) -> BoxFuture<'static, Result<Link, TransportError>> {
        let url = url.to_owned();
        Box::pin(async move {
            let mut request = url.as_str().into_client_request()?;
            request
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(format.subprotocol()));
            let mut config = WebSocketConfig::default();
            // One client connection: a modest read buffer, and no message limit beyond the
            // server's own (which is far smaller).
            config.read_buffer_size = 16 * 1024;
            config.max_message_size = Some(64 << 20);
            let (ws, _response) =
                tokio_tungstenite::connect_async_with_config(request, Some(config), true).await?;
            let (sink, stream) = ws.split();
            let binary = format.is_binary();
            let sink = sink
                .sink_map_err(TransportError::from)
                .with(move |out: Outgoing| future::ready(to_ws(out, binary)));
            let stream = stream.filter_map(|item| future::ready(from_ws(item)));
            Ok(Link { sink: Box::pin(sink), stream: Box::pin(stream) })
        })
    }
}

fn to_ws(out: Outgoing, binary: bool) -> Result<WsMessage, TransportError> {
    Ok(match out {
        Outgoing::Frame(bytes) if binary => WsMessage::Binary(bytes),
        Outgoing::Frame(bytes) => WsMessage::Text(
            bytes.try_into().map_err(|_| TransportError("a JSON frame is not UTF-8".to_owned()))?,
        ),
        Outgoing::Close { code, reason } => {
            WsMessage::Close(Some(CloseFrame { code: WsCloseCode::from(code), reason: reason.into() }))
        }
    })
}

fn from_ws(item: Result<WsMessage, tungstenite::Error>) -> Option<Result<Incoming, TransportError>> {
    match item {
        Ok(WsMessage::Text(text)) => Some(Ok(Incoming::Frame(text.into()))),
        Ok(WsMessage::Binary(bytes)) => Some(Ok(Incoming::Frame(bytes))),
        Ok(WsMessage::Close(frame)) => Some(Ok(match frame {
            Some(f) => Incoming::Close { code: f.code.into(), reason: f.reason.as_str().to_owned() },
            None => Incoming::Close { code: 1005, reason: String::new() },
        })),
        // Pings are answered by tungstenite itself.
        Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_)) => None,
        Err(e) => Some(Err(e.into())),
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! An in-memory transport: the test plays the server through [`FakeServer`].

    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use tokio::sync::mpsc;

    use super::*;

    /// The server's end of one fake link.
    pub(crate) struct FakeConn {
        /// The URL the client connected to.
        pub(crate) url: String,
        /// Frames to the client.
        pub(crate) to_client: mpsc::UnboundedSender<Result<Incoming, TransportError>>,
        /// Frames from the client.
        pub(crate) from_client: mpsc::UnboundedReceiver<Outgoing>,
    }

    /// What the next connection attempt does.
    pub(crate) enum Plan {
        Accept,
        Refuse,
    }

    #[derive(Clone, Default)]
    pub(crate) struct FakeConnector {
        plans: Arc<Mutex<VecDeque<Plan>>>,
        accepted: Arc<Mutex<Option<mpsc::UnboundedSender<FakeConn>>>>,
        pub(crate) attempts: Arc<Mutex<Vec<(tokio::time::Instant, String)>>>,
    }

    impl FakeConnector {
        /// A connector and the receiver of the connections it accepts. With no plan queued,
        /// attempts are accepted.
        pub(crate) fn new() -> (Self, mpsc::UnboundedReceiver<FakeConn>) {
            let (tx, rx) = mpsc::unbounded_channel();
            let c = Self::default();
            *c.accepted.lock().unwrap() = Some(tx);
            (c, rx)
        }

        pub(crate) fn plan(&self, plan: Plan) {
            self.plans.lock().unwrap().push_back(plan);
        }
    }

    impl Connector for FakeConnector {
        fn connect(&self, url: &str, _format: Format) -> BoxFuture<'static, Result<Link, TransportError>> {
            self.attempts.lock().unwrap().push((tokio::time::Instant::now(), url.to_owned()));
            let plan = self.plans.lock().unwrap().pop_front().unwrap_or(Plan::Accept);
            let accepted = self.accepted.lock().unwrap().clone();
            let url = url.to_owned();
            Box::pin(async move {
                if matches!(plan, Plan::Refuse) {
                    return Err(TransportError("connection refused".to_owned()));
                }
                let (to_client, client_rx) = mpsc::unbounded_channel();
                let (client_tx, from_client) = mpsc::unbounded_channel();
                accepted
                    .ok_or_else(|| TransportError("no server".to_owned()))?
                    .send(FakeConn { url, to_client, from_client })
                    .map_err(|_| TransportError("server gone".to_owned()))?;
                let stream = futures_util::stream::unfold(client_rx, |mut rx| async move {
                    rx.recv().await.map(|item| (item, rx))
                });
                let sink = futures_util::sink::unfold(client_tx, |tx, out: Outgoing| async move {
                    tx.send(out).map_err(|_| TransportError("link closed".to_owned()))?;
                    Ok::<_, TransportError>(tx)
                });
                Ok(Link { sink: Box::pin(sink), stream: Box::pin(stream) })
            })
        }
    }
}
