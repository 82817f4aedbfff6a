//! The built-in extractors.

use std::ops::Deref;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use switchboard_protocol::RawPayload;

use super::handler::{Ctx, FromContext};
use crate::conn::Conn;
use crate::error::Error;
use crate::hub::Hub;
use crate::hub::topics::settings::TopicParams;
use crate::io::upgrade::UpgradeRequest;

/// The message's payload decoded into `T`; a payload that does not decode is a `BAD_REQUEST`
/// reply (the handler does not run). In an identify hook, the payload is the `identity`.
///
/// ```
/// use switchboard::{Error, Payload};
/// #[derive(serde::Deserialize)]
/// struct Add { a: f64, b: f64 }
/// async fn add(Payload(Add { a, b }): Payload<Add>) -> Result<f64, Error> {
///     Ok(a + b)
/// }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Payload<T>(pub T);

impl<S, T: DeserializeOwned> FromContext<S> for Payload<T> {
    fn from_context(ctx: &Ctx<'_, S>) -> Result<Self, Error> {
        ctx.payload.decode().map(Payload).map_err(|e| Error::undecodable(ctx.kind.as_str(), None, &e))
    }
}

impl<S> FromContext<S> for RawPayload {
    fn from_context(ctx: &Ctx<'_, S>) -> Result<Self, Error> {
        Ok(ctx.payload.clone())
    }
}

/// The `meta` of the connection's `~hello`, decoded into `T` (`BAD_REQUEST` if malformed; an
/// absent meta decodes as `null`, so take `Meta<Option<T>>` to accept its absence).
#[derive(Debug, Clone, Default)]
pub struct Meta<T>(pub T);

impl<S, T: DeserializeOwned> FromContext<S> for Meta<T> {
    fn from_context(ctx: &Ctx<'_, S>) -> Result<Self, Error> {
        let meta = ctx.meta().cloned().unwrap_or_default();
        meta.decode().map(Meta).map_err(|e| Error::undecodable("meta of ~hello", None, &e))
    }
}

impl<S> FromContext<S> for Conn {
    fn from_context(ctx: &Ctx<'_, S>) -> Result<Self, Error> {
        Ok(ctx.conn.clone())
    }
}

impl<S> FromContext<S> for Hub {
    fn from_context(ctx: &Ctx<'_, S>) -> Result<Self, Error> {
        Ok(ctx.hub.clone())
    }
}

impl<S> FromContext<S> for Arc<UpgradeRequest> {
    fn from_context(ctx: &Ctx<'_, S>) -> Result<Self, Error> {
        Ok(ctx.conn.upgrade_request().clone())
    }
}

/// The identified user's id; `NOT_AUTHENTICATED` on a connection without a user.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct User(pub Arc<str>);

impl Deref for User {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<S> FromContext<S> for User {
    fn from_context(ctx: &Ctx<'_, S>) -> Result<Self, Error> {
        ctx.conn
            .user()
            .map(User)
            .ok_or_else(|| Error::new(switchboard_protocol::codes::NOT_AUTHENTICATED, "not identified"))
    }
}

/// Server-side session data that the identify hook attached with
/// [`Accept::session`](crate::Accept::session). Fails with `FAILED` if the connection has no
/// session of type `T` (a programming error, logged on the server).
#[derive(Debug, Clone)]
pub struct Session<T>(pub Arc<T>);

impl<T> Deref for Session<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<S, T: Send + Sync + 'static> FromContext<S> for Session<T> {
    fn from_context(ctx: &Ctx<'_, S>) -> Result<Self, Error> {
        ctx.conn.session::<T>().map(Session).ok_or_else(|| {
            tracing::error!(ty = std::any::type_name::<T>(), "no session of this type on the connection");
            Error::failed()
        })
    }
}

/// Application state, typed and checked at compile time: `T` is the server's state or a part
/// of it ([`FromRef`]).
///
/// ```
/// use switchboard::{FromRef, State};
/// #[derive(Clone)]
/// struct App { db: Db, name: String }
/// #[derive(Clone)]
/// struct Db;
/// impl FromRef<App> for Db {
///     fn from_ref(app: &App) -> Db { app.db.clone() }
/// }
/// async fn handler(State(db): State<Db>) {}
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct State<T>(pub T);

/// Derives a part of the state from the whole (as in axum).
pub trait FromRef<T> {
    /// The part.
    fn from_ref(input: &T) -> Self;
}

impl<T: Clone> FromRef<T> for T {
    fn from_ref(input: &T) -> Self {
        input.clone()
    }
}

impl<S, T: FromRef<S>> FromContext<S> for State<T> {
    fn from_context(ctx: &Ctx<'_, S>) -> Result<Self, Error> {
        Ok(State(T::from_ref(ctx.state)))
    }
}

impl<S, T: FromContext<S>> FromContext<S> for Option<T> {
    fn from_context(ctx: &Ctx<'_, S>) -> Result<Self, Error> {
        Ok(T::from_context(ctx).ok())
    }
}

impl<S> FromContext<S> for TopicParams {
    fn from_context(ctx: &Ctx<'_, S>) -> Result<Self, Error> {
        Ok(ctx.params.cloned().unwrap_or_default())
    }
}
