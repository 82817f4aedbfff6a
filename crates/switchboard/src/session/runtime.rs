//! What a session needs of the server, shared by every connection task: the hub, the
//! application's state, the namespaces, the public handlers and the hooks.

use std::sync::Arc;
use std::time::Duration;

use super::limits::Limits;
use crate::app::handler::NameMap;
use crate::app::namespace::{NsRuntime, ReplyHandler};
use crate::hub::Hub;
use crate::io::upgrade::UpgradeHook;

/// See the module's documentation.
pub(crate) struct Runtime<S> {
    pub(crate) hub: Hub,
    pub(crate) state: S,
    pub(crate) namespaces: Vec<NsRuntime<S>>,
    /// Public events and requests: allowed before identification, in every namespace.
    pub(crate) public: NameMap<ReplyHandler<S>>,
    pub(crate) upgrade_hook: Option<UpgradeHook>,
    /// Called after each request a handler answered (metrics).
    pub(crate) request_done: Option<RequestHook>,
    /// Rate limits of the connections' messages.
    pub(crate) limits: Limits,
}

/// A request that was answered ([`Server::on_request_done`](crate::Server::on_request_done)).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RequestDone<'a> {
    /// The message type.
    pub kind: &'a str,
    /// From the start of its handling (filters included) to its reply.
    pub duration: Duration,
    /// The error code, if it failed.
    pub error: Option<&'a str>,
}

/// The request-done hook.
pub(crate) type RequestHook = Arc<dyn Fn(&RequestDone<'_>) + Send + Sync>;
