//! # Switchboard
//!
//! A realtime WebSocket framework: namespaces with identification (challenge-response
//! included), requests both ways with timeouts and error codes, users on many devices, topics
//! with history and recovery, acknowledged delivery, presence and direct messages — over the
//! wire protocol of `switchboard-protocol`, on one server or a cluster.
//!
//! - [`Server`] builds a server; [`Switchboard`] runs it: on its own listener
//!   ([`Switchboard::serve`]), mounted in an axum router ([`Switchboard::router`]), or on
//!   connections another stack upgraded ([`Switchboard::accept`]).
//! - [`Namespace`]: identify hook, handlers, filters, topics; namespaces extend each other.
//! - Handlers are async functions of extractors ([`Payload`], [`Conn`], [`User`], [`Session`],
//!   [`State`], [`Hub`], [`Meta`], [`TopicParams`]); they return anything [`IntoReply`].
//! - [`Hub`]: send to connections, users or everyone, request a client, publish, kick.
//! - [`Config`]: every limit of the protocol, and those that keep abusers in check: handshake
//!   deadline and caps, rate limits ([`RateLimits`], per connection and per user, cluster-wide),
//!   connections per address ([`ConnectionLimits`], [`Switchboard::admit`]); what they refused is
//!   in [`LimitStats`]. `docs/deploying.md` ("Limits and abuse") explains each.
//!
//! Guides: `docs/getting-started.md` (the library), `docs/topics.md` (topics, delivery
//! guarantees, presence), `docs/protocol.md` (the wire protocol), `docs/architecture.md`.
//!
//! ```no_run
//! use switchboard::{Accept, Error, Namespace, Payload, Server, TopicOptions};
//!
//! #[derive(serde::Deserialize)]
//! struct Login { user: String, password: String }
//!
//! async fn identify(Payload(login): Payload<Login>) -> Result<Accept, Error> {
//!     if login.password == format!("pw-{}", login.user) {
//!         Ok(Accept::user(login.user.clone()).alias(login.user))
//!     } else {
//!         Err(Error::not_authorized("wrong password"))
//!     }
//! }
//!
//! #[derive(serde::Deserialize)]
//! struct Add { a: f64, b: f64 }
//! async fn add(Payload(Add { a, b }): Payload<Add>) -> Result<f64, Error> { Ok(a + b) }
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     let main = Namespace::new("main")
//!         .identify(identify)
//!         .on("add", add)
//!         .topic("chat/{room}", TopicOptions::new().clients_publish().presence(true).history(100, None));
//!     let board = Server::new().namespace(main).build().await.expect("valid server");
//!     board.serve(tokio::net::TcpListener::bind("127.0.0.1:8080").await?).await
//! }
//! ```

// The layers, each using only those above it in this list (`scripts/check-layers.py` checks it;
// see docs/architecture.md): leaves, then io ← outbound ← conn ← hub ← app ← session ← server.
mod base;
mod config;
mod error;

mod io;
mod outbound;

mod conn;
mod hub;

mod app;
mod session;

mod server;

pub use app::accept::Accept;
pub use app::extract::{FromRef, Meta, Payload, Session, State, User};
pub use app::handler::{Ctx, FromContext, Handler, IntoAccept, IntoPass};
pub use app::namespace::Namespace;
pub use app::topic::TopicOptions;
pub use config::{CapPolicy, Config, ConnectionLimits, IpRange, Rate, RateLimits};
pub use conn::{Conn, Request};
pub use error::{AddressRefused, BuildError, Error, HubError, IntoReply, RequestError, SendError};
pub use hub::Hub;
pub use hub::core::HistorySpan;
pub use hub::events::{Delivery, DeliveryError, Event, EventSink, EventStats};
pub use hub::hooks::{DirectMessageEvent, EventKind, Lifecycle, LifecycleEvent};
pub use hub::stats::{ClusterStats, NodeHealth, NodeStats, RegistrySizes, Stats};
pub use hub::topics::history::HistoryQuery;
pub use hub::topics::publish::PublishOptions;
pub use hub::topics::settings::TopicParams;
pub use io::upgrade::{Rejection, UpgradeRequest};
pub use server::admission::Admission;
/// Test support for Autobahn|Testsuite (feature `autobahn`, never in a normal build): a raw
/// echo over the framework's own handshakes and WebSocket. See `scripts/autobahn.sh`.
#[cfg(feature = "autobahn")]
#[doc(hidden)]
pub use server::echo as autobahn;
pub use server::limits::LimitStats;
pub use server::{Server, Switchboard, subprotocol};
pub use session::runtime::RequestDone;
pub use switchboard_core as core;
pub use switchboard_protocol as protocol;
pub use switchboard_protocol::{CloseCode, Format, RawPayload, codes};
