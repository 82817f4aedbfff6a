//! Typed payloads of the reserved `~` messages, shared by the server and the clients.
//!
//! Field names and optionality follow `protocol.md` exactly; a client decodes with these types
//! and a server encodes with them (hot messages are spliced with [`crate::MapWriter`] instead).

use serde::{Deserialize, Deserializer, Serialize};

use crate::RawPayload;

/// Names of the reserved message types.
pub mod types {
    /// Identify: `["~hello", {ns?, identity?, meta?}, id]`.
    pub const HELLO: &str = "~hello";
    /// Challenge request from the server during identification.
    pub const CHALLENGE: &str = "~challenge";
    /// Success reply.
    pub const OK: &str = "~ok";
    /// Error reply.
    pub const ERR: &str = "~err";
    /// Application-level ping (browsers cannot see WebSocket pings).
    pub const PING: &str = "~ping";
    /// Server statistics.
    pub const INFO: &str = "~info";
    /// Renew credentials.
    pub const REFRESH: &str = "~refresh";
    /// Goodbye notice before a close of the server's own.
    pub const BYE: &str = "~bye";
    /// Subscribe to a topic.
    pub const SUB: &str = "~sub";
    /// Unsubscribe from a topic, a prefix, or everything.
    pub const UNSUB: &str = "~unsub";
    /// Publish to a topic.
    pub const PUB: &str = "~pub";
    /// A topic delivery.
    pub const MSG: &str = "~msg";
    /// Change one's own alias or availability.
    pub const STATUS: &str = "~status";
    /// The directory, or a topic's presence.
    pub const WHO: &str = "~who";
    /// A directory change.
    pub const PEER: &str = "~peer";
    /// A topic presence change.
    pub const PRESENCE: &str = "~presence";
    /// A direct message.
    pub const DM: &str = "~dm";
    /// Read a topic's retained publications without subscribing.
    pub const HISTORY: &str = "~history";
}

/// `~hello` payload.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Hello {
    /// The namespace (default `"main"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ns: Option<String>,
    /// Whatever the server's identify hook understands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<RawPayload>,
    /// Free client data (device, version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<RawPayload>,
}

/// The `~ok` reply to a successful `~hello`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Welcome {
    /// Unique id of this connection.
    pub conn: String,
    /// The user, or `null` for anonymous namespaces.
    pub user: Option<String>,
    /// The namespace joined.
    pub ns: String,
    /// The welcome payload.
    #[serde(default)]
    pub data: RawPayload,
    /// Heartbeat interval in milliseconds.
    pub heartbeat: u64,
}

/// `~refresh` payload.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Refresh {
    /// New credentials.
    #[serde(default)]
    pub identity: RawPayload,
}

/// `~info` payload.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct InfoRequest {
    /// Ask for per-namespace and per-topic detail.
    #[serde(default)]
    pub detail: bool,
}

/// `~bye` payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bye {
    /// The close code that follows.
    pub code: u16,
    /// Why, for people.
    pub reason: String,
    /// Reconnect to this URL instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jump: Option<String>,
}

/// A position in a topic's stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamPosition {
    /// The topic's epoch (changes when its history is lost).
    pub epoch: String,
    /// The last sequence number seen.
    pub seq: u64,
}

/// `~sub` payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Subscribe {
    /// The topic.
    pub topic: String,
    /// Recover what was published after this position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<StreamPosition>,
}

/// Reply to `~sub`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Subscribed {
    /// The topic.
    pub topic: String,
    /// The topic's current epoch.
    pub epoch: String,
    /// The topic's current sequence number.
    pub seq: u64,
    /// Whether everything after `since` was (or will be, before new publications) delivered.
    pub recovered: bool,
}

/// `~unsub` payload: one topic, a prefix, or (both absent) everything.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Unsubscribe {
    /// Leave this topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Leave every topic equal to this or under `prefix/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// Reply to `~unsub`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Unsubscribed {
    /// The topics left.
    pub topics: Vec<String>,
}

/// `~pub` payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Publish {
    /// The topic.
    pub topic: String,
    /// An optional event name carried with the delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The data.
    #[serde(default)]
    pub data: RawPayload,
    /// Deliver to the sender too.
    #[serde(default)]
    pub echo: bool,
    /// An idempotency key (at most [`MAX_PUBLISH_KEY`] bytes): a publication whose key the topic
    /// has already seen within its history is not published again, and the reply is the first
    /// one's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Longest idempotency key of a `~pub`, in bytes.
pub const MAX_PUBLISH_KEY: usize = 64;

/// Reply to `~pub`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Published {
    /// The publication's sequence number.
    pub seq: u64,
}

/// Who published (in a `~msg`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The publishing connection.
    pub conn: String,
    /// Its user.
    pub user: Option<String>,
}

/// `~msg` payload: a topic delivery.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    /// The topic.
    pub topic: String,
    /// The event name, if the publisher gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The data.
    #[serde(default)]
    pub data: RawPayload,
    /// The sequence number in the topic's epoch.
    pub seq: u64,
    /// The publisher, for publications by clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Origin>,
    /// The topic's epoch, present when it differs from the one the subscriber was last told (in
    /// its `~sub` reply or an earlier `~msg`): the stream restarted, and `seq` counts from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
}

/// `~history` payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryRequest {
    /// The topic.
    pub topic: String,
    /// The newest `limit` publications (default and maximum: the topic's history size; ≥ 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Only the publications after this position (of this epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<StreamPosition>,
}

/// One retained publication in a `~history` reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryItem {
    /// Its sequence number.
    pub seq: u64,
    /// The event name, if the publisher gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The data.
    #[serde(default)]
    pub data: RawPayload,
    /// The publisher, for publications by clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Origin>,
}

/// Reply to `~history`: publications oldest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryReply {
    /// The topic.
    pub topic: String,
    /// The topic's current epoch (what a `~sub` now would answer).
    pub epoch: String,
    /// The topic's latest sequence number.
    pub seq: u64,
    /// The retained publications asked for, oldest first (empty for a `since` of another epoch).
    pub publications: Vec<HistoryItem>,
}

/// `~status` payload. `alias: null` clears the alias; an absent field is unchanged.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Status {
    /// New alias (`Some(None)` clears it).
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub alias: Option<Option<String>>,
    /// New availability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<bool>,
}

fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// `~who` payload.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Who {
    /// A topic whose presence to list; absent for the directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
}

/// One connection's public profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Peer {
    /// The connection.
    pub conn: String,
    /// Its user.
    pub user: Option<String>,
    /// Its alias.
    pub alias: Option<String>,
    /// Whether it accepts direct messages and shows in the directory.
    pub available: bool,
    /// Immutable public data from identification.
    #[serde(default)]
    pub public: RawPayload,
}

/// Reply to `~who`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Peers {
    /// The peers.
    pub peers: Vec<Peer>,
}

/// `~peer` payload: a directory change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerChange {
    /// The peer's profile after the change.
    #[serde(flatten)]
    pub peer: Peer,
    /// Whether it is (still) in the directory.
    pub online: bool,
}

/// `~presence` payload: a topic presence change.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PresenceDiff {
    /// The topic.
    pub topic: String,
    /// Connections that joined.
    #[serde(default)]
    pub joins: Vec<Peer>,
    /// Connections that left.
    #[serde(default)]
    pub leaves: Vec<Peer>,
}

/// The target of a direct message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DmTarget {
    /// A connection id.
    Conn(String),
    /// An alias.
    Alias(String),
}

/// `~dm` payload, client to server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DirectMessage {
    /// `{"conn": C}` or `{"alias": A}`.
    pub to: DmTarget,
    /// The data.
    #[serde(default)]
    pub data: RawPayload,
}

/// The sender of a delivered direct message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmSender {
    /// The sending connection.
    pub conn: String,
    /// Its user.
    pub user: Option<String>,
    /// Its alias.
    pub alias: Option<String>,
}

/// `~dm` payload, server to client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DirectDelivery {
    /// Who sent it.
    pub from: DmSender,
    /// The data.
    #[serde(default)]
    pub data: RawPayload,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Format;

    #[test]
    fn status_distinguishes_null_from_absent() {
        let s: Status = RawPayload::json(&serde_json::json!({"alias": null})).unwrap().decode().unwrap();
        assert_eq!(s.alias, Some(None));
        let s: Status = RawPayload::json(&serde_json::json!({"available": false})).unwrap().decode().unwrap();
        assert_eq!(s.alias, None);
        assert_eq!(s.available, Some(false));
    }

    #[test]
    fn dm_target_shapes() {
        let d: DirectMessage = RawPayload::json(&serde_json::json!({"to": {"alias": "bob"}, "data": 1}))
            .unwrap()
            .decode()
            .unwrap();
        assert_eq!(d.to, DmTarget::Alias("bob".into()));
        let enc = RawPayload::encode(Format::MsgPack, &d).unwrap();
        let back: DirectMessage = enc.decode().unwrap();
        assert_eq!(back.to, d.to);
    }
}
