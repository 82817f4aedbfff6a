//! The transport seam: a small internal trait that opens one WebSocket-like link, so that tests
//! can inject a fake, and its real implementation over tokio-tungstenite: TCP for `ws://`, TLS
//! (module `tls`) for `wss://`. Connection failures come back classified as
//! [`ConnectionError`]s, so that the connection task knows which ones retrying can fix.

use std::future::Future;
use std::pin::Pin;
#[cfg(feature = "tls")]
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt, future};
use switchboard_protocol::Format;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{
    self, Message as WsMessage,
    client::IntoClientRequest,
    http::{HeaderValue, Uri},
    protocol::{CloseFrame, WebSocketConfig, frame::coding::CloseCode as WsCloseCode},
};

use crate::error::ConnectionError;
#[cfg(feature = "tls")]
use crate::tls::TlsConnector;

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

/// A failure of an open link (socket error): the link is gone.
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
    fn connect(&self, url: &str, format: Format) -> BoxFuture<'static, Result<Link, ConnectionError>>;
}

/// Where a URL points, checked before anything is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// `wss://`.
    pub(crate) secure: bool,
    /// The host name or IP address (without the brackets of an IPv6 literal).
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl Target {
    /// Checks a URL: `ws://` or, when `tls` is available, `wss://`, with a host. Anything else
    /// is an error that retrying cannot fix.
    pub(crate) fn parse(url: &str, tls: bool) -> Result<Self, ConnectionError> {
        let invalid = |reason: String| ConnectionError::InvalidUrl { url: url.to_owned(), reason };
        let uri: Uri = url.parse().map_err(|e| invalid(format!("{e}")))?;
        let secure = match uri.scheme_str() {
            Some("ws") => false,
            Some("wss") => true,
            Some(scheme @ ("http" | "https")) => {
                let instead = if scheme == "https" { "wss" } else { "ws" };
                return Err(invalid(format!(
                    "the scheme must be ws:// or wss://, not {scheme}:// (write {instead}://)"
                )));
            }
            Some(scheme) => {
                return Err(invalid(format!("the scheme must be ws:// or wss://, not {scheme}://")));
            }
            None => return Err(invalid("no scheme: write ws://host:port/path or wss://…".to_owned())),
        };
        if secure && !tls {
            return Err(ConnectionError::TlsUnavailable { url: url.to_owned() });
        }
        let host = uri.host().filter(|h| !h.is_empty()).ok_or_else(|| invalid("no host".to_owned()))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        Ok(Self { secure, host, port })
    }
}

/// The real transport: tokio-tungstenite over TCP (`ws://`) or over rustls (`wss://`).
pub(crate) struct WsConnector {
    #[cfg(feature = "tls")]
    tls: Arc<TlsConnector>,
}

impl WsConnector {
    #[cfg(feature = "tls")]
    pub(crate) fn new(tls: TlsConnector) -> Self {
        Self { tls: Arc::new(tls) }
    }

    #[cfg(not(feature = "tls"))]
    pub(crate) fn new() -> Self {
        Self {}
    }
}

impl Connector for WsConnector {
    fn connect(&self, url: &str, format: Format) -> BoxFuture<'static, Result<Link, ConnectionError>> {
        let target = Target::parse(url, cfg!(feature = "tls"));
        #[cfg(feature = "tls")]
        let tls = Arc::clone(&self.tls);
        let url = url.to_owned();
        Box::pin(async move {
            let target = target?;
            #[cfg(feature = "tls")]
            let tls = if target.secure { Some(tls.prepare(&target.host)?) } else { None };
            let mut request = url
                .as_str()
                .into_client_request()
                .map_err(|e| ConnectionError::InvalidUrl { url: url.clone(), reason: e.to_string() })?;
            request
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(format.subprotocol()));
            let tcp = TcpStream::connect((target.host.as_str(), target.port)).await.map_err(|e| {
                ConnectionError::Network(format!("cannot connect to {}:{}: {e}", target.host, target.port))
            })?;
            let _ = tcp.set_nodelay(true);
            #[cfg(feature = "tls")]
            if let Some(tls) = tls {
                return upgrade(request, tls.handshake(tcp).await?, format).await;
            }
            upgrade(request, tcp, format).await
        })
    }
}

/// The WebSocket handshake over an open stream; an HTTP answer other than 101 is
/// [`ConnectionError::Http`].
async fn upgrade<S>(
    request: tungstenite::handshake::client::Request,
    stream: S,
    format: Format,
) -> Result<Link, ConnectionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut config = WebSocketConfig::default();
    // One client connection: a modest read buffer, and no message limit beyond the server's
    // own (which is far smaller).
    config.read_buffer_size = 16 * 1024;
    config.max_message_size = Some(64 << 20);
    let (ws, _response) = tokio_tungstenite::client_async_with_config(request, stream, Some(config))
        .await
        .map_err(|e| match e {
            tungstenite::Error::Http(response) => {
                ConnectionError::Http { status: response.status().as_u16() }
            }
            e => ConnectionError::Network(format!("the WebSocket upgrade failed: {e}")),
        })?;
    let (sink, stream) = ws.split();
    let binary = format.is_binary();
    let sink =
        sink.sink_map_err(TransportError::from).with(move |out: Outgoing| future::ready(to_ws(out, binary)));
    let stream = stream.filter_map(|item| future::ready(from_ws(item)));
    Ok(Link { sink: Box::pin(sink), stream: Box::pin(stream) })
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
        Fail(ConnectionError),
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
        fn connect(&self, url: &str, _format: Format) -> BoxFuture<'static, Result<Link, ConnectionError>> {
            self.attempts.lock().unwrap().push((tokio::time::Instant::now(), url.to_owned()));
            let plan = self.plans.lock().unwrap().pop_front().unwrap_or(Plan::Accept);
            let accepted = self.accepted.lock().unwrap().clone();
            let url = url.to_owned();
            Box::pin(async move {
                match plan {
                    Plan::Accept => {}
                    Plan::Refuse => return Err(ConnectionError::Network("connection refused".to_owned())),
                    Plan::Fail(e) => return Err(e),
                }
                let (to_client, client_rx) = mpsc::unbounded_channel();
                let (client_tx, from_client) = mpsc::unbounded_channel();
                accepted
                    .ok_or_else(|| ConnectionError::Network("no server".to_owned()))?
                    .send(FakeConn { url, to_client, from_client })
                    .map_err(|_| ConnectionError::Network("server gone".to_owned()))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Result<Target, ConnectionError> {
        Target::parse(url, true)
    }

    #[test]
    fn urls_are_checked_before_connecting() {
        assert_eq!(target("ws://h:81/ws").unwrap(), Target { secure: false, host: "h".into(), port: 81 });
        assert_eq!(target("wss://h/ws").unwrap(), Target { secure: true, host: "h".into(), port: 443 });
        assert_eq!(target("ws://h/ws").unwrap().port, 80);
        assert_eq!(target("ws://[::1]:9/ws").unwrap().host, "::1");
        for url in ["http://h/ws", "https://h/ws", "ftp://h/ws", "h:80/ws", "/ws", "ws:///ws", "not a url"] {
            let e = target(url).unwrap_err();
            assert!(matches!(e, ConnectionError::InvalidUrl { .. }), "{url}: {e:?}");
            assert!(e.is_fatal(), "{url}");
        }
        let e = target("http://h/ws").unwrap_err();
        assert!(e.to_string().contains("not http:// (write ws://)"), "{e}");
    }

    #[test]
    fn wss_without_the_tls_feature_is_a_fatal_error() {
        let e = Target::parse("wss://h/ws", false).unwrap_err();
        assert_eq!(e, ConnectionError::TlsUnavailable { url: "wss://h/ws".into() });
        assert!(e.is_fatal());
        assert_eq!(e.code(), "BAD_REQUEST");
        assert!(Target::parse("ws://h/ws", false).is_ok());
    }
}
