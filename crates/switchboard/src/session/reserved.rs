//! The reserved messages of identified connections: topics, presence, direct messages, `~info`
//! and `~refresh`.

use std::sync::Arc;

use serde::Serialize;
use switchboard_protocol::{Message, RawPayload, Topic, codes, wire};

use super::identify;
use super::reply::{Task, guarded, observe, respond, started};
use super::runtime::Runtime;
use crate::app::handler::{Ctx, CtxMeta};
use crate::app::topic::Access;
use crate::conn::{Conn, ConnShared};
use crate::error::Error;
use crate::hub::stats::ClusterStats;
use crate::hub::topics::history::{self, HistoryQuery};
use crate::hub::topics::publish;
use crate::hub::topics::settings::TopicParams;
use crate::hub::{membership, presence};

fn encode<T: Serialize>(conn: &ConnShared, value: &T) -> Result<RawPayload, Error> {
    RawPayload::encode(conn.format, value).map_err(|_| Error::failed())
}

/// Payloads whose fields are all optional accept `null` (or no payload) as "all defaults".
fn decode_or_default<T: serde::de::DeserializeOwned + Default>(payload: &RawPayload) -> Result<T, Error> {
    if payload.is_null() { Ok(T::default()) } else { Ok(payload.decode()?) }
}

fn topic(name: &str) -> Result<Topic, Error> {
    Topic::new(name).map_err(|e| Error::bad_request(e.to_string()))
}

/// Runs a topic access rule (`FORBIDDEN` when refused).
async fn allowed<S: Clone + Send + Sync + 'static>(
    server: &Runtime<S>,
    conn: &Arc<ConnShared>,
    access: &Access<S>,
    msg: &Message,
    params: &TopicParams,
) -> Result<(), Error> {
    match access {
        Access::Anyone => Ok(()),
        Access::Nobody => Err(Error::forbidden("not allowed on this topic")),
        Access::Hook(hook) => {
            let handle = Conn(conn.clone());
            let ctx = Ctx {
                conn: &handle,
                hub: &server.hub,
                state: &server.state,
                kind: &msg.kind,
                payload: &msg.payload,
                meta: CtxMeta::Identity(std::cell::OnceCell::new()),
                params: Some(params),
            };
            hook(&ctx)?.await.map_err(|e| {
                if e.code() == codes::BAD_REQUEST { e } else { Error::forbidden(e.message().to_owned()) }
            })
        }
    }
}

pub(crate) fn dispatch<S: Clone + Send + Sync + 'static>(
    server: &Arc<Runtime<S>>,
    conn: &Arc<ConnShared>,
    ns: usize,
    msg: Message,
) -> Option<Task> {
    let server = server.clone();
    let conn = conn.clone();
    Some(Box::pin(async move {
        let started = started(&server);
        let result = guarded(handle(&server, &conn, ns, &msg)).await;
        observe(&server, &msg, started, &result);
        // `~sub` queues its own reply (before the recovered publications): null means done.
        if msg.kind.as_str() == wire::types::SUB && result.as_ref().is_ok_and(RawPayload::is_null) {
            return;
        }
        respond(&conn, &msg, result);
    }))
}

async fn handle<S: Clone + Send + Sync + 'static>(
    server: &Runtime<S>,
    conn: &Arc<ConnShared>,
    ns: usize,
    msg: &Message,
) -> Result<RawPayload, Error> {
    let hub = &**server.hub.core();
    let namespace = &server.namespaces[ns];
    match msg.kind.as_str() {
        wire::types::SUB => {
            let sub: wire::Subscribe = msg.payload.decode()?;
            let topic = topic(&sub.topic)?;
            let (rule, params) =
                namespace.topic_rule(&topic).ok_or_else(|| Error::forbidden("no such topic"))?;
            allowed(server, conn, &rule.options.subscribe, msg, &params).await?;
            membership::join(hub, conn, &topic, sub.since, msg.id).await?;
            // Replied already when the message had an id.
            Ok(RawPayload::null())
        }
        wire::types::UNSUB => {
            let unsub: wire::Unsubscribe = decode_or_default(&msg.payload)?;
            let mine = conn.topics.lock().clone();
            let leave: Vec<Topic> = match (&unsub.topic, &unsub.prefix) {
                (Some(t), None) => {
                    topic(t)?;
                    mine.into_iter().filter(|m| m.as_str() == t).collect()
                }
                (None, Some(p)) => {
                    Topic::validate(p).map_err(|e| Error::bad_request(e.to_string()))?;
                    mine.into_iter().filter(|m| m.is_under(p)).collect()
                }
                (None, None) => mine,
                (Some(_), Some(_)) => return Err(Error::bad_request("give a topic or a prefix, not both")),
            };
            let mut left = Vec::with_capacity(leave.len());
            for t in leave {
                if membership::leave(hub, conn, &t).await? {
                    left.push(t.to_string());
                }
            }
            encode(conn, &wire::Unsubscribed { topics: left })
        }
        wire::types::PUB => {
            let publish: wire::Publish = msg.payload.decode()?;
            let topic = topic(&publish.topic)?;
            publish::check_event_and_key(publish.event.as_deref(), publish.key.as_deref())?;
            let (rule, params) =
                namespace.topic_rule(&topic).ok_or_else(|| Error::forbidden("no such topic"))?;
            allowed(server, conn, &rule.options.publish, msg, &params).await?;
            let from =
                wire::Origin { conn: conn.id.to_string(), user: conn.user().as_deref().map(str::to_owned) };
            let publication = publish::Publication {
                event: publish.event,
                data: publish.data,
                from: Some(from),
                skip: (!publish.echo).then_some(&**conn),
                key: publish.key.as_deref(),
            };
            let seq = publish::publish(hub, &topic, publication).await?;
            encode(conn, &wire::Published { seq })
        }
        wire::types::HISTORY => {
            let request: wire::HistoryRequest = msg.payload.decode()?;
            let topic = topic(&request.topic)?;
            // Whoever may subscribe may read: authorization first, then whether there is history.
            let (rule, params) =
                namespace.topic_rule(&topic).ok_or_else(|| Error::forbidden("no such topic"))?;
            allowed(server, conn, &rule.options.subscribe, msg, &params).await?;
            let query = HistoryQuery { limit: request.limit, since: request.since };
            encode(conn, &history::read(hub, &topic, query).await?)
        }
        wire::types::STATUS => {
            let status: wire::Status = msg.payload.decode()?;
            let peer = presence::status(hub, conn, status).await?;
            encode(conn, &peer)
        }
        wire::types::WHO => {
            let who: wire::Who = decode_or_default(&msg.payload)?;
            encode(conn, &presence::who(hub, conn, who.topic.as_deref()).await?)
        }
        wire::types::DM => {
            let dm: wire::DirectMessage = msg.payload.decode()?;
            presence::direct(hub, conn, dm).await?;
            Ok(RawPayload::null())
        }
        wire::types::INFO => {
            if !namespace.allow_info {
                return Err(Error::forbidden("~info is not allowed here"));
            }
            let request: wire::InfoRequest =
                if msg.payload.is_null() { Default::default() } else { msg.payload.decode()? };
            encode(conn, &info(server, request.detail).await?)
        }
        wire::types::REFRESH => identify::refresh(server, conn, ns, &msg.payload).await,
        other => Err(Error::not_found(format!("no reserved message {other}"))
            .with_data(&serde_json::json!({"type": other}))),
    }
}

/// `~info` statistics: the cluster's (see [`Hub::cluster_stats`](crate::Hub::cluster_stats)).
#[derive(Serialize)]
struct Info {
    /// The node that answered.
    node: String,
    /// Its uptime.
    uptime_ms: u64,
    #[serde(flatten)]
    cluster: ClusterStats,
    namespaces: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<Detail>,
}

#[derive(Serialize)]
struct Detail {
    topics: Vec<TopicInfo>,
    users: Vec<UserInfo>,
}

#[derive(Serialize)]
struct TopicInfo {
    topic: String,
    subscribers: usize,
}

#[derive(Serialize)]
struct UserInfo {
    user: String,
    connections: usize,
}

async fn info<S>(server: &Runtime<S>, detail: bool) -> Result<Info, Error> {
    let hub = &server.hub;
    let cluster = hub.cluster_stats().await.map_err(|e| Error::unavailable(e.to_string()))?;
    let detail = detail.then(|| Detail {
        topics: cluster
            .topic_subscribers
            .iter()
            .map(|(t, n)| TopicInfo { topic: t.clone(), subscribers: *n })
            .collect(),
        users: cluster
            .user_connections
            .iter()
            .map(|(u, n)| UserInfo { user: u.clone(), connections: *n })
            .collect(),
    });
    Ok(Info {
        node: hub.node().to_owned(),
        uptime_ms: hub.core().now_ms(),
        cluster,
        namespaces: server.namespaces.iter().map(|n| n.name.to_string()).collect(),
        detail,
    })
}
