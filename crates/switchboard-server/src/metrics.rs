//! Prometheus series, all prefixed `switchboard_` (but the standard `process_*` ones), refreshed
//! on every scrape.
//!
//! Every family has one name and one type: `_total` only on counters (a counter's family is its
//! name without `_total`, so no other family may take that name), units in the name
//! (`_seconds`, `_bytes`). Labelled series are present from the first scrape on, at zero.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use switchboard::Hub;

/// Calls to the application, by `kind` (the label of the proxy series).
pub(crate) const PROXY_KINDS: [&str; 3] = ["identify", "authorize", "forward"];
/// Outcomes of those calls.
const PROXY_OUTCOMES: [&str; 3] = ["ok", "error", "timeout"];
/// What ran out, for `switchboard_rate_limited_total`.
const RATE_KINDS: [&str; 3] = ["message", "publication", "subscription"];
/// Why an address was refused, for `switchboard_connections_refused_total`.
const ADDRESS_REFUSALS: [&str; 2] = ["too_many", "too_often"];

/// The standard process series (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
/// `process_open_fds`, …), collected at each scrape.
fn process() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// Installs the global recorder and describes the series.
///
/// # Errors
/// When a recorder is already installed.
pub(crate) fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("switchboard_proxy_request_duration_seconds".to_owned()),
            &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
        )?
        .set_buckets_for_metric(
            Matcher::Full("switchboard_events_batch_duration_seconds".to_owned()),
            &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
        )?
        .set_buckets_for_metric(
            Matcher::Full("switchboard_events_delay_seconds".to_owned()),
            &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0],
        )?
        .set_buckets_for_metric(
            Matcher::Full("switchboard_request_duration_seconds".to_owned()),
            &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0],
        )?
        .install_recorder()?;
    metrics::describe_gauge!(
        "switchboard_build_info",
        "Always 1; the labels say which build runs (version, profile, target)"
    );
    metrics::gauge!(
        "switchboard_build_info",
        "version" => env!("CARGO_PKG_VERSION"),
        "profile" => if cfg!(debug_assertions) { "debug" } else { "release" },
        "target" => format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS),
    )
    .set(1.0);
    metrics::describe_histogram!(
        "switchboard_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time from receiving a client request to its reply, by type and outcome"
    );
    metrics::describe_gauge!("switchboard_connections", "Open client connections on this node");
    metrics::describe_gauge!("switchboard_users", "Users with a connection on this node");
    metrics::describe_gauge!("switchboard_topics", "Topics with a local subscriber");
    metrics::describe_gauge!(
        "switchboard_pending_timers",
        "Identification deadlines, acknowledgement resends and credential expiries held now"
    );
    metrics::describe_counter!("switchboard_connections_accepted_total", "Connections accepted since start");
    metrics::describe_counter!("switchboard_messages_in_total", "Messages received from clients");
    metrics::describe_counter!("switchboard_messages_out_total", "Messages sent to clients");
    metrics::describe_counter!("switchboard_bytes_in_total", "Bytes of messages received from clients");
    metrics::describe_counter!("switchboard_bytes_out_total", "Bytes of messages sent to clients");
    metrics::describe_counter!(
        "switchboard_slow_consumer_closes_total",
        "Connections closed as slow consumers (4002)"
    );
    metrics::describe_gauge!(
        "switchboard_cluster_nodes",
        "Nodes of the cluster that answered a statistics query at this scrape (1 without Redis)"
    );
    metrics::describe_gauge!(
        "switchboard_cluster_nodes_unreachable",
        "Nodes listed as running that did not answer a statistics query within 2 s"
    );
    metrics::describe_gauge!(
        "switchboard_backend_up",
        "1 when the presence backend (in memory, or Redis) answered at this scrape, else 0"
    );
    metrics::describe_gauge!(
        "switchboard_node_info",
        "Always 1; the label `node` is this node's id in the cluster (the prefix of its connection ids)"
    );
    metrics::describe_gauge!(
        "switchboard_broker_up",
        "1 while this node's broker connection (Redis pub/sub) is up (always 1 without Redis), else 0"
    );
    metrics::describe_counter!(
        "switchboard_broker_outages_total",
        "Times this node's broker connection was lost since start (each logged: broker lost / back)"
    );
    metrics::describe_counter!(
        "switchboard_dead_nodes_cleaned_total",
        "Nodes this node declared dead (no heartbeat for node_timeout) and cleaned up after"
    );
    metrics::describe_counter!(
        "switchboard_missed_publications_filled_total",
        "Publications this node missed (broker message lost) and filled from history, in order"
    );
    metrics::describe_counter!(
        "switchboard_gap_signals_total",
        "Times this node closed a topic's subscribers with 4000 because history could not fill a gap \
         (they resubscribe and learn recovered: false)"
    );
    metrics::describe_gauge!(
        "switchboard_history_span_seconds",
        metrics::Unit::Seconds,
        "By topic class: how long a gap its history can bridge (size over the highest publication rate \
         of its topics here); +Inf while nothing is published"
    );
    metrics::describe_gauge!(
        "switchboard_history_size",
        "By topic class: publications its history keeps per topic"
    );
    metrics::describe_gauge!(
        "switchboard_history_publications_per_second",
        "By topic class: the highest publication rate among its topics with subscribers on this node"
    );
    metrics::describe_histogram!(
        "switchboard_proxy_request_duration_seconds",
        metrics::Unit::Seconds,
        "Latency of calls to the application (identify, authorize, forward)"
    );
    metrics::describe_counter!(
        "switchboard_proxy_requests_total",
        "Calls to the application by kind and outcome (ok, error, timeout)"
    );
    metrics::describe_counter!("switchboard_api_commands_total", "HTTP API commands executed");
    metrics::describe_counter!(
        "switchboard_origin_refused_total",
        "WebSocket upgrades refused (403) for their Origin, by reason: null, malformed, not_allowed"
    );
    for reason in ["null", "malformed", "not_allowed"] {
        metrics::counter!("switchboard_origin_refused_total", "reason" => reason).absolute(0);
    }
    metrics::describe_counter!(
        "switchboard_rate_limited_total",
        "Client messages refused with RATE_LIMITED, by the limit that ran out: message, publication, subscription"
    );
    metrics::describe_counter!(
        "switchboard_rate_limit_closes_total",
        "Connections closed (4501) for going on past their rate limits"
    );
    metrics::describe_counter!(
        "switchboard_connections_refused_total",
        "Connections refused for their source address: too_many (open at once), too_often (new per second)"
    );
    for kind in RATE_KINDS {
        metrics::counter!("switchboard_rate_limited_total", "kind" => kind).absolute(0);
    }
    for reason in ADDRESS_REFUSALS {
        metrics::counter!("switchboard_connections_refused_total", "reason" => reason).absolute(0);
    }
    metrics::counter!("switchboard_rate_limit_closes_total").absolute(0);
    // Present from the first scrape on, also where no proxy is configured.
    for kind in PROXY_KINDS {
        for outcome in PROXY_OUTCOMES {
            metrics::counter!("switchboard_proxy_requests_total", "kind" => kind, "outcome" => outcome)
                .absolute(0);
        }
        drop(metrics::histogram!("switchboard_proxy_request_duration_seconds", "kind" => kind));
    }
    metrics::counter!("switchboard_api_commands_total").absolute(0);
    metrics::gauge!("switchboard_backend_up").set(0.0);
    metrics::gauge!("switchboard_cluster_nodes").set(0.0);
    metrics::gauge!("switchboard_cluster_nodes_unreachable").set(0.0);
    describe_events();
    metrics::gauge!("switchboard_broker_up").set(0.0);
    for counter in [
        "switchboard_broker_outages_total",
        "switchboard_dead_nodes_cleaned_total",
        "switchboard_missed_publications_filled_total",
        "switchboard_gap_signals_total",
    ] {
        metrics::counter!(counter).absolute(0);
    }
    process().describe();
    Ok(handle)
}

/// Describes the lifecycle events' series (`webhook` records them; present from the first
/// scrape on, at zero).
fn describe_events() {
    metrics::describe_counter!(
        "switchboard_events_delivered_total",
        "Lifecycle events the application took (answered 2xx)"
    );
    metrics::describe_counter!(
        "switchboard_events_retried_total",
        "Lifecycle events in webhook requests that failed and are retried (5xx, 408, 429, 3xx, timeout, connection error); one per event per attempt"
    );
    metrics::describe_counter!(
        "switchboard_events_rejected_total",
        "Lifecycle events the application refused for good (a 4xx other than 408/429): dropped"
    );
    metrics::describe_counter!(
        "switchboard_events_webhook_requests_total",
        "Webhook requests by outcome: delivered, retried, rejected"
    );
    metrics::describe_histogram!(
        "switchboard_events_batch_duration_seconds",
        metrics::Unit::Seconds,
        "Time of one webhook request, from sending to the answer, by outcome"
    );
    metrics::describe_histogram!(
        "switchboard_events_delay_seconds",
        metrics::Unit::Seconds,
        "Age of a delivered batch's oldest event when the application took it"
    );
    metrics::describe_counter!(
        "switchboard_events_lost_total",
        "Lifecycle events given up because the event log stayed unavailable (logged at error)"
    );
    for outcome in ["delivered", "retried", "rejected"] {
        metrics::counter!(format!("switchboard_events_{outcome}_total")).absolute(0);
        metrics::counter!("switchboard_events_webhook_requests_total", "outcome" => outcome).absolute(0);
        drop(metrics::histogram!("switchboard_events_batch_duration_seconds", "outcome" => outcome));
    }
    drop(metrics::histogram!("switchboard_events_delay_seconds"));
    metrics::counter!("switchboard_events_lost_total").absolute(0);
}

/// Records one answered client request (the framework's `on_request_done` hook). Unknown
/// types are not used as labels, so clients cannot grow the series without bound.
pub(crate) fn request_done(done: &switchboard::RequestDone<'_>) {
    let kind = if done.error == Some("NOT_FOUND") { "unknown".to_owned() } else { done.kind.to_owned() };
    let outcome = if done.error.is_some() { "error" } else { "ok" };
    metrics::histogram!("switchboard_request_duration_seconds", "type" => kind, "outcome" => outcome)
        .record(done.duration.as_secs_f64());
}

/// Copies the hub's counters, the cluster's node counts and the process's figures into the
/// series.
#[allow(clippy::cast_precision_loss)]
pub(crate) async fn update(hub: &Hub) {
    let stats = hub.stats();
    metrics::gauge!("switchboard_connections").set(stats.connections as f64);
    metrics::gauge!("switchboard_users").set(stats.users as f64);
    metrics::gauge!("switchboard_topics").set(stats.topics as f64);
    metrics::gauge!("switchboard_pending_timers").set(hub.registry_sizes().timers as f64);
    metrics::counter!("switchboard_connections_accepted_total").absolute(stats.connections_total);
    metrics::counter!("switchboard_messages_in_total").absolute(stats.messages_in);
    metrics::counter!("switchboard_messages_out_total").absolute(stats.messages_out);
    metrics::counter!("switchboard_bytes_in_total").absolute(stats.bytes_in);
    metrics::counter!("switchboard_bytes_out_total").absolute(stats.bytes_out);
    metrics::counter!("switchboard_slow_consumer_closes_total").absolute(stats.slow_consumers);
    let limits = switchboard::LimitStats::of(hub);
    let refused =
        [limits.rate_limited_messages, limits.rate_limited_publications, limits.rate_limited_subscriptions];
    for (kind, n) in RATE_KINDS.into_iter().zip(refused) {
        metrics::counter!("switchboard_rate_limited_total", "kind" => kind).absolute(n);
    }
    metrics::counter!("switchboard_rate_limit_closes_total").absolute(limits.rate_limit_closes);
    for (reason, n) in ADDRESS_REFUSALS.into_iter().zip([limits.address_too_many, limits.address_too_often]) {
        metrics::counter!("switchboard_connections_refused_total", "reason" => reason).absolute(n);
    }
    metrics::counter!("switchboard_events_lost_total").absolute(hub.event_stats().lost);
    // How this node sees the cluster: its broker, the nodes it declared dead, the gaps.
    let health = hub.health();
    metrics::gauge!("switchboard_node_info", "node" => hub.node().to_owned()).set(1.0);
    metrics::gauge!("switchboard_broker_up").set(if health.broker_up { 1.0 } else { 0.0 });
    metrics::counter!("switchboard_broker_outages_total").absolute(health.broker_outages);
    metrics::counter!("switchboard_dead_nodes_cleaned_total").absolute(health.nodes_cleaned);
    metrics::counter!("switchboard_missed_publications_filled_total").absolute(health.missed_filled);
    metrics::counter!("switchboard_gap_signals_total").absolute(health.missed_signalled);
    history_spans(hub);
    // The cluster's view (a backend call; other nodes answer within 2 s or count as unreachable).
    match tokio::time::timeout(Duration::from_secs(3), hub.cluster_stats()).await {
        Ok(Ok(cluster)) => {
            metrics::gauge!("switchboard_backend_up").set(1.0);
            metrics::gauge!("switchboard_cluster_nodes").set(cluster.nodes.len() as f64);
            metrics::gauge!("switchboard_cluster_nodes_unreachable").set(cluster.unreachable.len() as f64);
        }
        _ => metrics::gauge!("switchboard_backend_up").set(0.0),
    }
    process().collect();
}

/// The history span of each topic class (`Hub::history_spans`, measured by the position checks).
/// A class measured before and not now (no subscriber here any more) reads `+Inf`, as one whose
/// topics see no publication: nothing here can miss a publication of it.
#[allow(clippy::cast_precision_loss)]
fn history_spans(hub: &Hub) {
    static CLASSES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let spans = hub.history_spans();
    let mut classes = CLASSES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    for class in classes.iter() {
        if !spans.iter().any(|s| &s.pattern == class) {
            metrics::gauge!("switchboard_history_span_seconds", "class" => class.clone()).set(f64::INFINITY);
            metrics::gauge!("switchboard_history_publications_per_second", "class" => class.clone()).set(0.0);
        }
    }
    for span in spans {
        let class = span.pattern;
        metrics::gauge!("switchboard_history_span_seconds", "class" => class.clone()).set(span.seconds);
        metrics::gauge!("switchboard_history_size", "class" => class.clone()).set(span.size as f64);
        metrics::gauge!("switchboard_history_publications_per_second", "class" => class.clone())
            .set(span.publications_per_second);
        if !classes.contains(&class) {
            classes.push(class);
        }
    }
}
