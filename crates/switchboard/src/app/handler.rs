//! Handlers: plain async functions whose arguments are extractors.
//!
//! One extractor family ([`FromContext`]) serves identify hooks, filters, events and requests.
//! A handler is any `async fn(T1, …, Tn) -> R` (up to 8 arguments) where every `Ti` implements
//! [`FromContext`]; what `R` must be depends on the use:
//!
//! | registered with | `R` |
//! |---|---|
//! | [`Namespace::on`](crate::Namespace::on), [`Server::public`](crate::Server::public) | [`IntoReply`](crate::IntoReply) (`Result<T: Serialize, Error>`, `()`, …) |
//! | [`Namespace::identify`](crate::Namespace::identify) | [`IntoAccept`] (`Result<Accept, Error>` or [`Accept`](crate::Accept)) |
//! | [`Namespace::filter`](crate::Namespace::filter) | [`IntoPass`] (`Result<(), Error>` or `()`) |
//!
//! An extractor that fails (a payload that does not decode, say) answers the request with its
//! error, `BAD_REQUEST` for payloads, before the handler runs.

use std::future::Future;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use switchboard_protocol::{Format, MessageType, RawPayload};

use super::accept::Accept;
use crate::conn::Conn;
use crate::error::Error;
use crate::hub::Hub;
use crate::hub::topics::settings::TopicParams;

/// What extractors read from: the connection, the message and the server.
pub struct Ctx<'a, S> {
    pub(crate) conn: &'a Conn,
    pub(crate) hub: &'a Hub,
    pub(crate) state: &'a S,
    pub(crate) kind: &'a MessageType,
    pub(crate) payload: &'a RawPayload,
    pub(crate) meta: CtxMeta<'a>,
    pub(crate) params: Option<&'a TopicParams>,
}

/// Where a [`Ctx`]'s `meta` comes from: given by the caller, or read from the connection's
/// identity the first time an extractor asks (most handlers never do: no lock taken for them).
pub(crate) enum CtxMeta<'a> {
    Given(Option<&'a RawPayload>),
    Identity(std::cell::OnceCell<Option<RawPayload>>),
}

impl<S> Ctx<'_, S> {
    /// The connection the message came from.
    #[must_use]
    pub fn conn(&self) -> &Conn {
        self.conn
    }

    /// The hub.
    #[must_use]
    pub fn hub(&self) -> &Hub {
        self.hub
    }

    /// The application state.
    #[must_use]
    pub fn state(&self) -> &S {
        self.state
    }

    /// The message type (for identify hooks: `~hello`).
    #[must_use]
    pub fn kind(&self) -> &MessageType {
        self.kind
    }

    /// The raw payload (for identify hooks: the `identity`).
    #[must_use]
    pub fn payload(&self) -> &RawPayload {
        self.payload
    }

    /// The `meta` of the connection's `~hello`, if any.
    #[must_use]
    pub fn meta(&self) -> Option<&RawPayload> {
        match &self.meta {
            CtxMeta::Given(meta) => *meta,
            CtxMeta::Identity(meta) => meta
                .get_or_init(|| self.conn.0.identity.read().as_ref().and_then(|i| i.meta.clone()))
                .as_ref(),
        }
    }
}

/// Something a handler can take as an argument.
///
/// Implement it for your own types to add extractors:
///
/// ```
/// use switchboard::{Ctx, Error, FromContext};
///
/// /// The `device` field of the connection's meta.
/// struct Device(String);
///
/// impl<S> FromContext<S> for Device {
///     fn from_context(ctx: &Ctx<'_, S>) -> Result<Self, Error> {
///         let meta = ctx.meta().ok_or_else(|| Error::bad_request("no meta"))?;
///         let v: serde_json::Value = meta.decode()?;
///         Ok(Device(v["device"].as_str().unwrap_or("unknown").to_owned()))
///     }
/// }
/// ```
pub trait FromContext<S>: Sized {
    /// Extracts the value, or fails with the error to reply.
    ///
    /// # Errors
    /// The reply to send instead of running the handler.
    fn from_context(ctx: &Ctx<'_, S>) -> Result<Self, Error>;
}

/// An async function usable as a handler; implemented for functions of up to 8 extractors.
pub trait Handler<T, S>: Clone + Send + Sync + 'static {
    /// What the function returns.
    type Output: Send + 'static;

    /// Runs the extractors and starts the function.
    ///
    /// # Errors
    /// The first extractor's error.
    fn call(&self, ctx: &Ctx<'_, S>) -> Result<BoxFuture<'static, Self::Output>, Error>;

    /// [`Handler::call`], the output passed through `then`, in one allocation (the functions'
    /// implementation; the default boxes twice).
    ///
    /// # Errors
    /// The first extractor's error.
    #[doc(hidden)]
    fn call_then<R: Send + 'static>(
        &self,
        ctx: &Ctx<'_, S>,
        then: impl FnOnce(Self::Output) -> R + Send + 'static,
    ) -> Result<BoxFuture<'static, R>, Error> {
        let fut = self.call(ctx)?;
        Ok(Box::pin(async move { then(fut.await) }))
    }
}

macro_rules! impl_handler {
    ($($t:ident),*) => {
        impl<F, Fut, S, $($t,)*> Handler<($($t,)*), S> for F
        where
            F: Fn($($t),*) -> Fut + Clone + Send + Sync + 'static,
            Fut: Future + Send + 'static,
            Fut::Output: Send + 'static,
            $($t: FromContext<S>,)*
        {
            type Output = Fut::Output;

            #[allow(non_snake_case, unused_variables)]
            fn call(&self, ctx: &Ctx<'_, S>) -> Result<BoxFuture<'static, Self::Output>, Error> {
                $(let $t = $t::from_context(ctx)?;)*
                Ok(Box::pin((self)($($t),*)))
            }

            #[allow(non_snake_case, unused_variables)]
            fn call_then<R: Send + 'static>(
                &self,
                ctx: &Ctx<'_, S>,
                then: impl FnOnce(Self::Output) -> R + Send + 'static,
            ) -> Result<BoxFuture<'static, R>, Error> {
                $(let $t = $t::from_context(ctx)?;)*
                let fut = (self)($($t),*);
                Ok(Box::pin(async move { then(fut.await) }))
            }
        }
    };
}

impl_handler!();
impl_handler!(T1);
impl_handler!(T1, T2);
impl_handler!(T1, T2, T3);
impl_handler!(T1, T2, T3, T4);
impl_handler!(T1, T2, T3, T4, T5);
impl_handler!(T1, T2, T3, T4, T5, T6);
impl_handler!(T1, T2, T3, T4, T5, T6, T7);
impl_handler!(T1, T2, T3, T4, T5, T6, T7, T8);

/// What an identify hook returns.
pub trait IntoAccept: Send {
    /// The decision.
    ///
    /// # Errors
    /// The refusal (`NOT_AUTHORIZED` unless the hook chose another code).
    fn into_accept(self) -> Result<Accept, Error>;
}

impl IntoAccept for Accept {
    fn into_accept(self) -> Result<Accept, Error> {
        Ok(self)
    }
}

impl<E: Into<Error> + Send> IntoAccept for Result<Accept, E> {
    fn into_accept(self) -> Result<Accept, Error> {
        self.map_err(Into::into)
    }
}

/// What a filter returns: pass (`Ok(())`) or refuse with an error (usually `FORBIDDEN`).
pub trait IntoPass: Send {
    /// The decision.
    ///
    /// # Errors
    /// The refusal.
    fn into_pass(self) -> Result<(), Error>;
}

impl IntoPass for () {
    fn into_pass(self) -> Result<(), Error> {
        Ok(())
    }
}

impl<E: Into<Error> + Send> IntoPass for Result<(), E> {
    fn into_pass(self) -> Result<(), Error> {
        self.map_err(Into::into)
    }
}

/// Tables of handlers by message type. Hashed with FNV-1a, not SipHash: the keys are the
/// application's own names (a peer only looks names up, it cannot add colliding ones), and a
/// lookup happens for every message.
pub(crate) type NameMap<V> = std::collections::HashMap<String, V, std::hash::BuildHasherDefault<NameHasher>>;

/// FNV-1a (see [`NameMap`]).
pub(crate) struct NameHasher(u64);

impl Default for NameHasher {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A filter or an access hook, erased.
pub(crate) type Filter<S> = Erased<S, Result<(), Error>>;

/// A type-erased handler: extraction, then a future of the converted result.
pub(crate) type Erased<S, R> = Arc<dyn Fn(&Ctx<'_, S>) -> Result<BoxFuture<'static, R>, Error> + Send + Sync>;

/// Erases a handler whose output converts with `convert` (given the connection's format).
pub(crate) fn erase<H, T, S, R>(handler: H, convert: fn(H::Output, Format) -> R) -> Erased<S, R>
where
    H: Handler<T, S>,
    T: 'static,
    S: 'static,
    R: Send + 'static,
{
    Arc::new(move |ctx| {
        let format = ctx.conn.format();
        handler.call_then(ctx, move |out| convert(out, format))
    })
}
