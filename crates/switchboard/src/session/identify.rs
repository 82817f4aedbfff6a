//! `~hello` and `~refresh`: identification through the namespace's hook.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use switchboard_protocol::{CloseCode, Message, RawPayload, codes, wire};

use super::reply::{Task, guarded, respond};
use super::runtime::Runtime;
use crate::app::accept::Accept;
use crate::app::handler::{Ctx, CtxMeta};
use crate::app::namespace::DEFAULT_NAMESPACE;
use crate::base::clock::millis;
use crate::base::throttle::Kind;
use crate::conn::{Conn, ConnShared, Identified};
use crate::error::Error;
use crate::hub::{lifecycle, membership, presence};

/// Runs the namespace's identify hook on `identity` (no hook: accept anonymously).
async fn decide<S: Clone + Send + Sync + 'static>(
    server: &Runtime<S>,
    conn: &Arc<ConnShared>,
    ns: usize,
    identity: &RawPayload,
    meta: Option<&RawPayload>,
) -> Result<Accept, Error> {
    let Some(hook) = server.namespaces[ns].identify.clone() else { return Ok(Accept::anonymous()) };
    let handle = Conn(conn.clone());
    let kind = switchboard_protocol::MessageType::new(wire::types::HELLO).expect("valid type");
    let mut accepted = None;
    let result = guarded(async {
        let ctx = Ctx {
            conn: &handle,
            hub: &server.hub,
            state: &server.state,
            kind: &kind,
            payload: identity,
            meta: CtxMeta::Given(meta),
            params: None,
        };
        accepted = Some(hook(&ctx)?.await?);
        Ok(RawPayload::null())
    })
    .await;
    match (result, accepted) {
        (Ok(_), Some(accept)) => Ok(accept),
        (Err(e), _) => Err(e),
        (Ok(_), None) => Err(Error::failed()),
    }
}

/// What `~hello` takes, for people.
const HELLO_SHAPE: &str = "an object {ns?, identity?, meta?}";

/// `NOT_AUTHORIZED` with the hook's message (the protocol names one code for refusals).
fn refusal(e: &Error) -> Error {
    if e.code() == codes::NOT_AUTHORIZED { e.clone() } else { Error::not_authorized(e.message().to_owned()) }
}

pub(crate) fn hello<S: Clone + Send + Sync + 'static>(
    server: &Arc<Runtime<S>>,
    conn: &Arc<ConnShared>,
    msg: Message,
) -> Option<Task> {
    if conn.identity.read().is_some() {
        respond(conn, &msg, Err(Error::new(codes::ALREADY_IDENTIFIED, "already identified")));
        return None;
    }
    if conn.identifying.swap(true, Ordering::AcqRel) {
        respond(conn, &msg, Err(Error::new(codes::ALREADY_IDENTIFIED, "identification in progress")));
        return None;
    }
    let hello: wire::Hello = match msg.payload.decode() {
        Ok(h) => h,
        Err(e) => {
            conn.identifying.store(false, Ordering::Release);
            respond(conn, &msg, Err(Error::undecodable(wire::types::HELLO, Some(HELLO_SHAPE), &e)));
            return None;
        }
    };
    let name = hello.ns.as_deref().unwrap_or(DEFAULT_NAMESPACE);
    let Some(ns) = server.namespaces.iter().position(|n| &*n.name == name) else {
        conn.identifying.store(false, Ordering::Release);
        respond(conn, &msg, Err(Error::not_found(format!("no namespace {name}"))));
        return None;
    };
    let server = server.clone();
    let conn = conn.clone();
    Some(Box::pin(async move {
        let identity = hello.identity.unwrap_or_default();
        let decision = decide(&server, &conn, ns, &identity, hello.meta.as_ref()).await;
        let accept = match decision {
            Ok(accept) => accept,
            Err(e) => {
                if let Some(suppressed) = conn.warnings.allow(Kind::IdentifyRefused) {
                    tracing::warn!(reason = %e, suppressed, "identification refused");
                }
                respond(&conn, &msg, Err(refusal(&e)));
                conn.close(CloseCode::NOT_AUTHORIZED, "not authorized", false);
                return;
            }
        };
        let data = accept.welcome.clone();
        let groups = accept.groups.clone();
        let connections = match admit(&server, &conn, ns, accept, hello.meta).await {
            Ok(connections) => connections,
            Err(e) => {
                let refused = e.code() == codes::LIMIT;
                respond(&conn, &msg, Err(e));
                if refused {
                    conn.close(CloseCode::TOO_MANY_CONNECTIONS, "too many connections for this user", false);
                }
                return;
            }
        };
        let hub = &**server.hub.core();
        // Its `connect` (and a user's first connection's `user_online`) is written before the
        // welcome: a backend learns of every connection a client was told about.
        if let Err(e) = lifecycle::connected(hub, &conn, connections == 1).await {
            tracing::warn!(error = %e, "identification refused: lifecycle events cannot be written");
            let why = "identification is unavailable, try again";
            respond(&conn, &msg, Err(Error::unavailable(why)));
            conn.close(CloseCode::RECONNECT, why, false);
            return;
        }
        let welcome = {
            let identity = conn.identity.read();
            let i = identity.as_ref().expect("admitted");
            wire::Welcome {
                conn: conn.id.to_string(),
                user: i.user.as_deref().map(str::to_owned),
                ns: i.ns_name.to_string(),
                data,
                heartbeat: millis(hub.config().heartbeat),
            }
        };
        // In the directory before the welcome (a `~who` right after it lists this connection, on
        // any node); announced to the others after it, so that no delivery precedes it.
        let listed = presence::enter_directory(hub, &conn).await;
        respond(&conn, &msg, RawPayload::encode(conn.format, &welcome).map_err(|_| Error::failed()));
        // Groups after the welcome, so that no delivery precedes it.
        for group in groups {
            match switchboard_protocol::Topic::new(&group) {
                Ok(topic) => {
                    if let Err(e) = membership::join(hub, &conn, &topic, None, None).await {
                        tracing::warn!(group, error = %e, "could not join a group at identification");
                    }
                }
                Err(e) => tracing::warn!(group, error = %e, "invalid group name at identification"),
            }
        }
        if let Some(peer) = listed {
            presence::directory_announce(hub, peer, true).await;
        }
        conn.identifying.store(false, Ordering::Release);
    }))
}

/// Records the accepted identity, registers the user under `conn_per_user`, evicts the oldest
/// connections if the policy says so; the user's connections now, cluster-wide (0 without a
/// user).
async fn admit<S>(
    server: &Runtime<S>,
    conn: &Arc<ConnShared>,
    ns: usize,
    accept: Accept,
    meta: Option<RawPayload>,
) -> Result<usize, Error> {
    let hub = server.hub.core();
    let user = accept.user.clone();
    if let Some(ttl) = accept.expires_in {
        hub.timers().expire_at(hub.now_ms() + millis(ttl), conn);
    }
    // The identity is set before the registry call, so that a connection dropped meanwhile is
    // unregistered by its cleanup.
    *conn.identity.write() = Some(Identified {
        ns,
        ns_name: server.namespaces[ns].name.clone(),
        user: user.clone(),
        alias: accept.alias,
        available: accept.available,
        public: accept.public,
        session: accept.session,
        meta,
    });
    let Some(user) = user else { return Ok(0) };
    membership::register_user(hub, conn, &user).await.inspect_err(|_| {
        *conn.identity.write() = None;
        conn.identifying.store(false, Ordering::Release);
    })
}

/// `~refresh`: the identify hook again with new credentials; the user must stay the same.
pub(crate) async fn refresh<S: Clone + Send + Sync + 'static>(
    server: &Runtime<S>,
    conn: &Arc<ConnShared>,
    ns: usize,
    payload: &RawPayload,
) -> Result<RawPayload, Error> {
    let refresh: wire::Refresh = payload
        .decode()
        .map_err(|e| Error::undecodable(wire::types::REFRESH, Some("an object {identity}"), &e))?;
    let meta = conn.identity.read().as_ref().and_then(|i| i.meta.clone());
    let accept = decide(server, conn, ns, &refresh.identity, meta.as_ref()).await.map_err(|e| refusal(&e))?;
    let (user, ns_name) = {
        let identity = conn.identity.read();
        let i = identity.as_ref().ok_or_else(Error::failed)?;
        (i.user.clone(), i.ns_name.clone())
    };
    if accept.user != user {
        return Err(Error::not_authorized("credentials are for another user"));
    }
    if let Some(i) = conn.identity.write().as_mut() {
        i.session = accept.session;
    }
    let hub = server.hub.core();
    match accept.expires_in {
        Some(ttl) => hub.timers().expire_at(hub.now_ms() + millis(ttl), conn),
        None => hub.timers().forget_expiry(conn),
    }
    let welcome = wire::Welcome {
        conn: conn.id.to_string(),
        user: user.as_deref().map(str::to_owned),
        ns: ns_name.to_string(),
        data: accept.welcome,
        heartbeat: millis(hub.config().heartbeat),
    };
    RawPayload::encode(conn.format, &welcome).map_err(|_| Error::failed())
}
