//! Namespaces from the configuration: identification modes, topic rules, forwarded names.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use switchboard::{
    Accept, Conn, Error, Meta, Namespace, Payload, RawPayload, TopicOptions, TopicParams, User,
};

use crate::client::{AppClient, CallError};
use crate::jwt::Verifier;
use crate::settings::{IdentifyMode, NamespaceSettings, Publish, Settings, Subscribe, TopicSettings};

/// What the identify hooks and forwarders share.
#[derive(Clone)]
struct Shared {
    /// JWT verifier, when configured.
    jwt: Option<Arc<Verifier>>,
    /// HTTP client to the application, when a proxy is configured.
    client: Option<AppClient>,
    /// Where `~hello` is POSTed.
    identify_url: Option<Arc<str>>,
    /// Where forwarded messages are POSTed.
    forward_url: Option<Arc<str>>,
    /// Where subscriptions and publications are authorized.
    authorize_url: Option<Arc<str>>,
    /// Upgrade headers passed to the application.
    headers: Arc<Vec<String>>,
}

/// Builds every configured namespace, parents before children, with the JWT verifier and the
/// client to the application (when configured).
///
/// # Errors
/// A message when `extends` forms a cycle.
pub(crate) fn build(
    settings: &Settings,
    jwt: Option<Arc<Verifier>>,
    client: Option<AppClient>,
) -> Result<Vec<Namespace>, String> {
    let proxy = settings.proxy.as_ref();
    let shared = Shared {
        jwt,
        client,
        identify_url: proxy.and_then(|p| p.identify_url.as_deref()).map(Arc::from),
        forward_url: proxy.and_then(|p| p.forward_url.as_deref()).map(Arc::from),
        authorize_url: proxy.and_then(|p| p.authorize_url.as_deref()).map(Arc::from),
        headers: Arc::new(proxy.map(|p| p.headers.clone()).unwrap_or_default()),
    };
    let mut built: HashMap<&str, Namespace> = HashMap::new();
    let mut order = Vec::new();
    let mut pending: BTreeMap<&str, &NamespaceSettings> =
        settings.namespaces.iter().map(|(k, v)| (k.as_str(), v)).collect();
    while !pending.is_empty() {
        let ready: Vec<&str> = pending
            .iter()
            .filter(|(_, ns)| ns.extends.iter().all(|p| built.contains_key(p.as_str())))
            .map(|(name, _)| *name)
            .collect();
        if ready.is_empty() {
            return Err(format!(
                "namespaces.*.extends: a cycle among {}",
                pending.keys().copied().collect::<Vec<_>>().join(", ")
            ));
        }
        for name in ready {
            let ns = pending.remove(name).expect("pending");
            let namespace = namespace(name, ns, &built, &shared);
            built.insert(name, namespace);
            order.push(name);
        }
    }
    Ok(order.into_iter().map(|n| built.remove(n).expect("built")).collect())
}

fn namespace(
    name: &str,
    s: &NamespaceSettings,
    built: &HashMap<&str, Namespace>,
    shared: &Shared,
) -> Namespace {
    let mut ns = Namespace::new(name).allow_info(s.allow_info);
    for parent in &s.extends {
        ns = ns.extends(&built[parent.as_str()]);
    }
    ns = match s.identify {
        IdentifyMode::Dev => ns.identify(identify_dev),
        IdentifyMode::Anonymous => ns.identify(|| async { Accept::anonymous() }),
        IdentifyMode::Jwt => {
            let verifier = shared.jwt.clone().expect("checked: [jwt] present");
            ns.identify(move |Payload(identity): Payload<Value>| identify_jwt(verifier.clone(), identity))
        }
        IdentifyMode::Proxy => {
            let shared = shared.clone();
            let ns_name: Arc<str> = Arc::from(name);
            ns.identify(move |conn: Conn, Payload(identity): Payload<Value>, meta: Option<Meta<Value>>| {
                identify_proxy(shared.clone(), ns_name.clone(), conn, identity, meta.map(|m| m.0))
            })
        }
    };
    for (pattern, topic) in &s.topics {
        ns = ns.topic(pattern, topic_options(topic, shared, name));
    }
    for kind in &s.forward {
        let shared = shared.clone();
        let kind: Arc<str> = Arc::from(kind.as_str());
        let ns_name: Arc<str> = Arc::from(name);
        ns = ns.on(&kind.clone(), move |conn: Conn, payload: RawPayload| {
            forward(shared.clone(), ns_name.clone(), kind.clone(), conn, payload)
        });
    }
    ns
}

fn topic_options(t: &TopicSettings, shared: &Shared, ns: &str) -> TopicOptions {
    let mut o = TopicOptions::new();
    let ask = |op: &'static str| {
        let shared = shared.clone();
        let ns: Arc<str> = Arc::from(ns);
        move |conn: Conn, payload: RawPayload| authorize(shared.clone(), op, ns.clone(), conn, payload)
    };
    o = match t.subscribe {
        Subscribe::Anyone => o,
        Subscribe::Nobody => o.server_joins_only(),
        Subscribe::OwnUser => {
            let param: Arc<str> = Arc::from(t.owner_param.as_str());
            o.subscribe_if(move |User(user): User, params: TopicParams| {
                let allowed = params.get(&param) == Some(&*user);
                async move {
                    if allowed { Ok(()) } else { Err(Error::forbidden("private topic of another user")) }
                }
            })
        }
        Subscribe::Proxy => o.subscribe_if(ask("subscribe")),
    };
    o = match t.publish {
        Publish::Clients => o.clients_publish(),
        Publish::Server => o,
        Publish::Proxy => o.publish_if(ask("publish")),
    };
    if t.history > 0 {
        let ttl = (t.history_ttl_secs > 0).then(|| Duration::from_secs(t.history_ttl_secs));
        o = o.history(t.history, ttl);
    }
    o.presence(t.presence).acknowledged(t.acknowledged)
}

/// `{"name": N}`, read by hand: a refusal says what is expected, not what a decoder found.
async fn identify_dev(Payload(id): Payload<Value>) -> Result<Accept, Error> {
    let name = id.get("name").and_then(Value::as_str).map(str::trim).unwrap_or_default();
    if name.is_empty() || name.len() > 64 {
        return Err(Error::not_authorized("identify with {\"name\": N}, a name of 1 to 64 bytes"));
    }
    Ok(Accept::user(name).alias(name))
}

async fn identify_jwt(verifier: Arc<Verifier>, identity: Value) -> Result<Accept, Error> {
    let token = match &identity {
        Value::String(t) => t.as_str(),
        Value::Object(o) => o.get("token").and_then(Value::as_str).unwrap_or_default(),
        _ => "",
    };
    if token.is_empty() {
        return Err(Error::not_authorized("a token, please"));
    }
    let id = verifier.verify(token).await.map_err(|refusal| {
        tracing::debug!(reason = refusal.detail(), "token refused");
        Error::not_authorized(refusal.message())
    })?;
    let mut accept = Accept::user(id.user);
    if let Some(alias) = id.alias {
        accept = accept.alias(alias);
    }
    if let Some(public) = &id.public {
        accept = accept.public(public);
    }
    if let Some(ttl) = id.expires_in {
        accept = accept.expires_in(ttl);
    }
    Ok(accept.join(id.groups))
}

/// The application's acceptance.
#[derive(Deserialize)]
struct Accepted {
    user: Option<String>,
    #[serde(default)]
    welcome: Option<Value>,
    #[serde(default)]
    alias: Option<String>,
    #[serde(default)]
    public: Option<Value>,
    #[serde(default)]
    groups: Vec<String>,
}

fn app_error(body: &Value, fallback: &str) -> (String, String) {
    let err = body.get("error").unwrap_or(body);
    let code =
        err.get("code").and_then(Value::as_str).filter(|c| valid_code(c)).unwrap_or(fallback).to_owned();
    let message =
        err.get("message").and_then(Value::as_str).unwrap_or("refused by the application").to_owned();
    (code, message)
}

/// Codes on the wire are `[A-Z][A-Z0-9_]*`.
fn valid_code(code: &str) -> bool {
    let mut chars = code.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

async fn identify_proxy(
    shared: Shared,
    ns: Arc<str>,
    conn: Conn,
    identity: Value,
    meta: Option<Value>,
) -> Result<Accept, Error> {
    let (Some(client), Some(url)) = (&shared.client, &shared.identify_url) else {
        return Err(Error::unavailable("identification is not configured"));
    };
    let request = conn.upgrade_request();
    let headers: serde_json::Map<String, Value> = shared
        .headers
        .iter()
        .filter_map(|h| request.header(h).map(|v| (h.to_ascii_lowercase(), json!(v))))
        .collect();
    let body = json!({
        "ns": &*ns,
        "conn": conn.id(),
        "identity": identity,
        "meta": meta,
        "headers": headers,
        "remote_addr": request.remote_addr.map(|a| a.to_string()),
    });
    let (status, answer) = client.post("identify", url, &body).await.map_err(|e| match e {
        CallError::Timeout => Error::not_authorized("identification timed out"),
        CallError::Failed(e) => {
            tracing::warn!(error = %e, "the identification service failed");
            Error::not_authorized("identification is unavailable")
        }
    })?;
    if !(200..300).contains(&status) || answer.get("error").is_some() {
        let (_, message) = app_error(&answer, "NOT_AUTHORIZED");
        return Err(Error::not_authorized(message));
    }
    let accepted: Accepted =
        serde_json::from_value(answer).map_err(|_| Error::not_authorized("unreadable acceptance"))?;
    let mut accept = match accepted.user {
        Some(user) => Accept::user(user),
        None => Accept::anonymous(),
    };
    if let Some(welcome) = &accepted.welcome {
        accept = accept.welcome(welcome);
    }
    if let Some(alias) = accepted.alias {
        accept = accept.alias(alias);
    }
    if let Some(public) = &accepted.public {
        accept = accept.public(public);
    }
    Ok(accept.join(accepted.groups))
}

/// Asks the application whether `conn` may subscribe or publish (`op`): the `~sub`/`~pub`
/// payload, the namespace, the connection and the user are POSTed to `proxy.authorize_url`;
/// a 2xx answer allows, anything else refuses (`FORBIDDEN` with the application's message).
async fn authorize(
    shared: Shared,
    op: &'static str,
    ns: Arc<str>,
    conn: Conn,
    payload: RawPayload,
) -> Result<(), Error> {
    let (Some(client), Some(url)) = (&shared.client, &shared.authorize_url) else {
        return Err(Error::forbidden("authorization is not configured"));
    };
    let payload: Value = payload.decode()?;
    let body = json!({
        "op": op,
        "ns": &*ns,
        "topic": payload.get("topic"),
        "payload": payload,
        "conn": conn.id(),
        "user": conn.user().as_deref(),
    });
    let (status, answer) = client.post("authorize", url, &body).await.map_err(|e| match e {
        CallError::Timeout => Error::timeout("the application did not answer in time"),
        CallError::Failed(e) => {
            tracing::warn!(error = %e, op, "authorization call failed");
            Error::unavailable("the application is unavailable")
        }
    })?;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        let (_, message) = app_error(&answer, "FORBIDDEN");
        Err(Error::forbidden(message))
    }
}

async fn forward(
    shared: Shared,
    ns: Arc<str>,
    kind: Arc<str>,
    conn: Conn,
    payload: RawPayload,
) -> Result<Value, Error> {
    let (Some(client), Some(url)) = (&shared.client, &shared.forward_url) else {
        return Err(Error::unavailable("forwarding is not configured"));
    };
    let payload: Value = payload.decode()?;
    let body = json!({
        "ns": &*ns,
        "type": &*kind,
        "payload": payload,
        "conn": conn.id(),
        "user": conn.user().as_deref(),
    });
    let (status, answer) = client.post("forward", url, &body).await.map_err(|e| match e {
        CallError::Timeout => Error::timeout("the application did not answer in time"),
        CallError::Failed(e) => {
            tracing::warn!(error = %e, kind = &*kind, "forwarding failed");
            Error::unavailable("the application is unavailable")
        }
    })?;
    if (200..300).contains(&status) {
        Ok(answer)
    } else {
        let (code, message) = app_error(&answer, "FAILED");
        Err(Error::new(code, message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_codes_are_checked() {
        assert!(valid_code("TEAPOT_2"));
        assert!(!valid_code("teapot"));
        assert!(!valid_code(""));
        assert!(!valid_code("2FAST"));
        let (code, message) = app_error(&json!({"error": {"code": "bad code", "message": "m"}}), "FAILED");
        assert_eq!((code.as_str(), message.as_str()), ("FAILED", "m"));
    }

    #[test]
    fn the_default_configuration_builds() {
        let settings =
            Settings { dev: true, namespaces: crate::settings::dev_namespaces(), ..Settings::default() };
        assert_eq!(build(&settings, None, None).map(|n| n.len()), Ok(1));
    }
}
