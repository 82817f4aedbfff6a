//! The client side of the three dialects of `bench/DIALECTS.md`: connecting (from a chosen source
//! address), the handshakes, and the frames the scenarios send and recognise.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::tls::Stream;
use crate::{eio, lean};

/// A client WebSocket (`ws://` or `wss://`).
pub type Ws = WebSocketStream<Stream>;

/// What a server speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// `s<topic>`, `p<topic> <payload>`, `e<anything>` (reference, Node `ws`, Bun).
    Plain,
    /// Engine.IO v4 / Socket.IO over WebSocket (Socket.IO, socketioxide).
    SocketIo,
    /// The Switchboard protocol (JSON).
    Switchboard,
    /// `wse` (npm): subprotocol `wse-default-json`, frames `{"c": command, "dat": data}`.
    Wse,
}

impl Dialect {
    /// Parses a manifest's dialect column.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "plain" => Some(Self::Plain),
            "socketio" => Some(Self::SocketIo),
            "switchboard" => Some(Self::Switchboard),
            "wse" => Some(Self::Wse),
            _ => None,
        }
    }

    /// The WebSocket URL path.
    pub fn path(self) -> &'static str {
        match self {
            Self::Plain | Self::Wse => "/",
            Self::SocketIo => "/socket.io/?EIO=4&transport=websocket",
            Self::Switchboard => "/ws",
        }
    }

    /// Subscribes to `topic`; the reply is recognised by [`Dialect::reply_id`] with `id`.
    pub fn sub(self, topic: &str, id: u64) -> String {
        match self {
            Self::Plain => format!("s{topic}"),
            Self::SocketIo => eio::event(Some(id), "sub", &[topic]),
            Self::Switchboard => format!(r#"["~sub",{{"topic":"{topic}"}},{id}]"#),
            Self::Wse => format!(r#"{{"c":"sub","dat":"{topic}"}}"#),
        }
    }

    /// Publishes `payload` (ASCII, no quotes) on `topic`. Switchboard's `~pub` carries `id` and is
    /// answered; the others are not.
    pub fn publish(self, topic: &str, payload: &str, id: u64) -> String {
        match self {
            Self::Plain => format!("p{topic} {payload}"),
            Self::SocketIo => eio::event(None, "pub", &[topic, payload]),
            Self::Switchboard => format!(r#"["~pub",{{"topic":"{topic}","data":"{payload}"}},{id}]"#),
            Self::Wse => format!(r#"{{"c":"pub","dat":["{topic}","{payload}"]}}"#),
        }
    }

    /// A request answered with its payload.
    pub fn echo(self, payload: &str, id: u64) -> String {
        match self {
            Self::Plain => format!("e{id} {payload}"),
            Self::SocketIo => eio::event(Some(id), "echo", &[payload]),
            Self::Switchboard => format!(r#"["echo","{payload}",{id}]"#),
            Self::Wse => format!(r#"{{"c":"echo","dat":"{id} {payload}"}}"#),
        }
    }

    /// The id of a reply (sub or echo), if `frame` is one. The plain dialect's `k` has id 0.
    pub fn reply_id(self, frame: &str) -> Option<u64> {
        match self {
            Self::Plain => match frame.as_bytes().first() {
                Some(b'k') => Some(0),
                Some(b'e') => frame[1..].split(' ').next()?.parse().ok(),
                _ => None,
            },
            Self::SocketIo => match eio::parse(frame) {
                eio::Packet::Ack(id, _) => Some(id),
                _ => None,
            },
            Self::Wse => {
                if frame.starts_with(r#"{"c":"k""#) {
                    return Some(0);
                }
                frame.strip_prefix(r#"{"c":"echo","dat":""#)?.split(' ').next()?.parse().ok()
            }
            Self::Switchboard => {
                if !(frame.starts_with(r#"["~ok""#) || frame.starts_with(r#"["~err""#)) {
                    return None;
                }
                let body = frame.strip_suffix(']')?;
                body[body.rfind(',')? + 1..].trim().parse().ok()
            }
        }
    }
}

/// `send_to_user` request of `bench-switchboard` (an event: no reply).
pub fn tell(user: &str, payload: &str) -> String {
    format!(r#"["tell",{{"user":"{user}","data":"{payload}"}}]"#)
}

/// The payload the fan-out scenarios send: `#<burst, 10 digits>#` then `x` up to `len` bytes.
pub fn marked_payload(burst: u64, len: usize) -> String {
    let mut s = format!("#{burst:010}#");
    while s.len() < len {
        s.push('x');
    }
    s
}

/// The burst number in a frame carrying [`marked_payload`], whatever the dialect's envelope.
pub fn burst_of(frame: &str) -> Option<u64> {
    let at = frame.find('#')?;
    frame.get(at + 1..at + 11)?.parse().ok()
}

/// Source address number `i` (127.0.0.2, 127.0.0.3, …): spreads connections over addresses so
/// that ephemeral ports do not run out.
pub fn source(i: usize) -> Ipv4Addr {
    let n = 2 + (i % 250) as u8;
    Ipv4Addr::new(127, 0, 0, n)
}

/// Options of [`connect`].
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// Source address.
    pub src: Ipv4Addr,
    /// A small receive buffer (slow consumers: the server's queue fills quickly).
    pub small_rcvbuf: bool,
    /// Switchboard: the JWT to identify with (`None`: stay anonymous).
    pub token: Option<String>,
    /// `wss://` with this client configuration (`None`: `ws://`).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl ConnectOptions {
    /// Options from source address `src`, with a normal receive buffer.
    pub fn new(src: Ipv4Addr, token: Option<String>, tls: Option<Arc<rustls::ClientConfig>>) -> Self {
        Self { src, small_rcvbuf: false, token, tls }
    }
}

/// A text-frame connection the dialects' handshakes and subscriptions run on: a tokio-tungstenite
/// [`Ws`] (publishers, scenarios) or a [`lean::Conn`] (the workers' subscribers).
#[allow(async_fn_in_trait, reason = "used in this crate only, on a current-thread or any runtime")]
pub trait TextSocket {
    /// Sends text frames (written together).
    async fn send_texts(&mut self, texts: &[&str]) -> anyhow::Result<()>;
    /// The next text frame (WebSocket pings answered; answering Engine.IO pings is the caller's
    /// business; a close is an error).
    async fn next_text(&mut self) -> anyhow::Result<String>;
}

impl TextSocket for Ws {
    async fn send_texts(&mut self, texts: &[&str]) -> anyhow::Result<()> {
        for t in texts {
            self.feed(Message::text(*t)).await?;
        }
        self.flush().await?;
        Ok(())
    }

    async fn next_text(&mut self) -> anyhow::Result<String> {
        Ok(next_text(self).await?.as_str().to_owned())
    }
}

impl TextSocket for lean::Conn {
    async fn send_texts(&mut self, texts: &[&str]) -> anyhow::Result<()> {
        lean::Conn::send_texts(self, texts).await
    }

    async fn next_text(&mut self) -> anyhow::Result<String> {
        lean::Conn::next_text(self).await
    }
}

/// A connection to 127.0.0.1:`port` from `opts.src`, over TLS if `opts.tls` says so.
async fn stream_connect(port: u16, opts: &ConnectOptions) -> anyhow::Result<Stream> {
    let tcp = tcp_connect(port, opts).await?;
    Stream::connect(tcp, opts.tls.as_ref()).await
}

/// A TCP connection to 127.0.0.1:`port` from `opts.src`.
async fn tcp_connect(port: u16, opts: &ConnectOptions) -> anyhow::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if opts.small_rcvbuf {
        socket.set_recv_buffer_size(4096)?;
    }
    socket.bind(SocketAddr::from((opts.src, 0))).context("bind source address")?;
    let tcp = socket.connect(SocketAddr::from(([127, 0, 0, 1], port))).await.context("connect")?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// The subprotocol a dialect asks for.
fn subprotocol(dialect: Dialect) -> Option<&'static str> {
    (dialect == Dialect::Wse).then_some("wse-default-json")
}

/// Connects, upgrades and does the dialect's handshake (Engine.IO open + `40`; Switchboard
/// `~hello` with the token), with tokio-tungstenite.
pub async fn connect(dialect: Dialect, port: u16, opts: &ConnectOptions) -> anyhow::Result<Ws> {
    let tcp = stream_connect(port, opts).await?;
    let scheme = if opts.tls.is_some() { "wss" } else { "ws" };
    let url = format!("{scheme}://127.0.0.1:{port}{}", dialect.path());
    let mut request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)?;
    if let Some(p) = subprotocol(dialect) {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            tokio_tungstenite::tungstenite::http::HeaderValue::from_static(p),
        );
    }
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(request, tcp, Some(small_reads()))
        .await
        .context("upgrade")?;
    greet(&mut ws, dialect, opts).await?;
    Ok(ws)
}

/// tungstenite's configuration with a 4 KiB read buffer: it zero-fills the free part of its read
/// buffer before every read, 128 KiB by default, which made the load generator (and the
/// reference server) spend more time in `memset` than in reading.
pub fn small_reads() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4096)
}

/// [`connect`] with the lean client of [`lean`] (the workers' subscribers).
pub async fn connect_lean(dialect: Dialect, port: u16, opts: &ConnectOptions) -> anyhow::Result<lean::Conn> {
    let tcp = stream_connect(port, opts).await?;
    let mut c =
        lean::Conn::upgrade(tcp, port, dialect.path(), subprotocol(dialect)).await.context("upgrade")?;
    greet(&mut c, dialect, opts).await?;
    Ok(c)
}

/// The dialect's handshake on an upgraded connection.
async fn greet<S: TextSocket>(ws: &mut S, dialect: Dialect, opts: &ConnectOptions) -> anyhow::Result<()> {
    match dialect {
        Dialect::Plain => {}
        Dialect::Wse => {
            ws.send_texts(&[r#"{"c":"hi","dat":{"payload":{}}}"#]).await?;
            loop {
                let f = ws.next_text().await?;
                if f.starts_with(r#"{"c":"welcome""#) {
                    break;
                }
            }
        }
        Dialect::SocketIo => {
            let open = ws.next_text().await?;
            if !matches!(eio::parse(&open), eio::Packet::Open(_)) {
                bail!("expected an Engine.IO open packet, got {open:.80}");
            }
            ws.send_texts(&["40"]).await?;
            loop {
                let f = ws.next_text().await?;
                match eio::parse(&f) {
                    eio::Packet::Connected => break,
                    eio::Packet::Ping => ws.send_texts(&["3"]).await?,
                    _ => {}
                }
            }
            // Under load, socketioxide may answer `40` before the namespace's handlers are
            // registered, and drops events that arrive in between: wait until an echo is answered.
            socketio_ready(ws).await?;
        }
        Dialect::Switchboard => {
            if let Some(token) = &opts.token {
                ws.send_texts(&[&format!(r#"["~hello",{{"identity":{{"token":"{token}"}}}},1]"#)]).await?;
                loop {
                    let f = ws.next_text().await?;
                    if dialect.reply_id(&f) == Some(1) {
                        if f.starts_with(r#"["~ok""#) {
                            break;
                        }
                        bail!("identification refused: {f:.120}");
                    }
                }
            }
        }
    }
    Ok(())
}

/// Sends `echo` requests (ack id 0) every 200 ms until one is acknowledged (5 s at most).
async fn socketio_ready<S: TextSocket>(ws: &mut S) -> anyhow::Result<()> {
    for _ in 0..25 {
        ws.send_texts(&[&eio::event(Some(0), "echo", &["ready"])]).await?;
        let wait = tokio::time::sleep(Duration::from_millis(200));
        tokio::pin!(wait);
        loop {
            tokio::select! {
                () = &mut wait => break,
                f = ws.next_text() => {
                    let f = f?;
                    match eio::parse(&f) {
                        eio::Packet::Ack(0, _) => return Ok(()),
                        eio::Packet::Ping => ws.send_texts(&["3"]).await?,
                        _ => {}
                    }
                }
            }
        }
    }
    bail!("the Socket.IO namespace never answered an echo")
}

/// The next text frame (answering Engine.IO pings is the caller's business).
pub async fn next_text(ws: &mut Ws) -> anyhow::Result<Utf8Bytes> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(t),
            Some(Ok(Message::Close(c))) => bail!("closed by the server: {c:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => bail!("connection ended"),
        }
    }
}

/// Subscribes to `topics` (all sent at once) and waits for every reply, within `limit`.
pub async fn subscribe<S: TextSocket>(
    ws: &mut S,
    dialect: Dialect,
    topics: &[String],
    limit: Duration,
) -> anyhow::Result<()> {
    let frames: Vec<String> = topics.iter().enumerate().map(|(i, t)| dialect.sub(t, 10 + i as u64)).collect();
    ws.send_texts(&frames.iter().map(String::as_str).collect::<Vec<_>>()).await?;
    let mut left = topics.len();
    tokio::time::timeout(limit, async {
        while left > 0 {
            let f = ws.next_text().await?;
            if dialect == Dialect::SocketIo && f == "2" {
                ws.send_texts(&["3"]).await?;
            } else if dialect.reply_id(&f).is_some_and(|id| dialect != Dialect::SocketIo || id >= 10) {
                if f.starts_with(r#"["~err""#) {
                    bail!("subscription refused: {f:.120}");
                }
                left -= 1;
            }
        }
        Ok(())
    })
    .await
    .context("subscription timed out")?
}

/// The burst number in a frame carrying [`marked_payload`], whatever the dialect's envelope: the
/// 10 digits after the first `#` ([`burst_of`] on bytes, without allocating or checking UTF-8).
pub fn burst_of_bytes(frame: &[u8]) -> Option<u64> {
    let at = frame.iter().position(|&b| b == b'#')?;
    let digits = frame.get(at + 1..at + 11)?;
    digits.iter().try_fold(0u64, |n, &d| d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_replies() {
        let d = Dialect::Switchboard;
        assert_eq!(d.sub("t", 3), r#"["~sub",{"topic":"t"},3]"#);
        assert_eq!(d.reply_id(r#"["~ok",{"topic":"t","epoch":"e","seq":0,"recovered":false},3]"#), Some(3));
        assert_eq!(d.reply_id(r##"["~msg",{"topic":"t","data":"#0000000001#","seq":1}]"##), None);
        assert_eq!(Dialect::Plain.reply_id("e17 abc"), Some(17));
        assert_eq!(Dialect::Plain.reply_id("k"), Some(0));
        assert_eq!(Dialect::SocketIo.reply_id(r#"439["x"]"#), Some(9));
        let p = marked_payload(42, 100);
        assert_eq!(p.len(), 100);
        assert_eq!(burst_of(&format!(r#"42["m","{p}"]"#)), Some(42));
        assert_eq!(burst_of(&p), Some(42));
        assert_eq!(burst_of_bytes(format!(r#"42["m","{p}"]"#).as_bytes()), Some(42));
        assert_eq!(burst_of_bytes(p.as_bytes()), Some(42));
        assert_eq!(burst_of_bytes(b"#000000004"), None);
        assert_eq!(burst_of_bytes(b"#00000000x4#"), None);
        assert_eq!(burst_of_bytes(b"no marker"), None);
        assert_eq!(Dialect::Wse.reply_id(r#"{"c":"echo","dat":"5 xx"}"#), Some(5));
        assert_eq!(Dialect::Wse.reply_id(r#"{"c":"k"}"#), Some(0));
        assert_eq!(Dialect::Wse.reply_id(r##"{"c":"m","dat":"#0000000001#"}"##), None);
        assert_eq!(source(0), Ipv4Addr::new(127, 0, 0, 2));
    }
}
