//! The hooks the application gives the hub.

use std::sync::Arc;

use switchboard_protocol::{Payload as RawPayload, wire};

/// A direct message that was delivered, for the application's audit hook
/// ([`Server::on_direct_message`](crate::Server::on_direct_message)).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DirectMessageEvent {
    /// The sender.
    pub from: wire::DmSender,
    /// The recipient's connection.
    pub to_conn: String,
    /// The recipient's user.
    pub to_user: Option<String>,
    /// What was sent.
    pub data: RawPayload,
}

/// The direct-message audit hook.
pub(crate) type DmAudit = Arc<dyn Fn(&DirectMessageEvent) + Send + Sync>;
