//! Reading a topic's retained publications without subscribing (`~history`,
//! [`Hub::history`](crate::Hub::history)).

use switchboard_core::Position;
use switchboard_protocol::{Topic, wire};

use super::record::Record;
use crate::error::HubError;
use crate::hub::core::Core;

/// What to read of a topic's history ([`Hub::history`](crate::Hub::history)).
///
/// ```
/// use switchboard::HistoryQuery;
/// let newest = HistoryQuery::new().limit(20);
/// let after = HistoryQuery::new().since("3f9a0c1d2e4b5a69", 41);
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct HistoryQuery {
    /// At most this many publications (default and maximum: the topic's history size).
    pub limit: Option<u64>,
    /// Only those after this position of this epoch (oldest first, at most `limit`); without it,
    /// the newest `limit`.
    pub since: Option<wire::StreamPosition>,
}

impl HistoryQuery {
    /// The newest publications, as many as the topic keeps.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// At most `limit` publications (≥ 1).
    #[must_use]
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Only the publications after `seq` of `epoch`.
    #[must_use]
    pub fn since(mut self, epoch: impl Into<String>, seq: u64) -> Self {
        self.since = Some(wire::StreamPosition { epoch: epoch.into(), seq });
        self
    }
}

/// Reads `topic`'s history as the query says: oldest first; with a `since` of another epoch,
/// nothing (and the reply's epoch says which one is current).
///
/// # Errors
/// [`HubError::NoHistory`] where the topic keeps no history, [`HubError::Invalid`] for a limit
/// of 0, [`HubError::Backend`] when history cannot be read.
pub(crate) async fn read(
    core: &Core,
    topic: &Topic,
    query: HistoryQuery,
) -> Result<wire::HistoryReply, HubError> {
    let size = u64::try_from(core.settings.of(topic).history.size).unwrap_or(u64::MAX);
    if size == 0 {
        return Err(HubError::NoHistory);
    }
    let limit = match query.limit {
        Some(0) => return Err(HubError::Invalid("limit must be at least 1".to_owned())),
        Some(limit) => limit.min(size),
        None => size,
    };
    let history = &core.backends.history;
    let backend = |e: switchboard_core::BackendError| HubError::Backend(e.to_string());
    let (position, kept) = match &query.since {
        Some(since) => {
            let since = Position { epoch: since.epoch.as_str().into(), seq: since.seq };
            let r = history.recover(topic, &since).await.map_err(backend)?;
            let mut kept = if r.position.epoch == since.epoch { r.publications } else { Vec::new() };
            kept.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
            (r.position, kept)
        }
        None => {
            let now = history.position(topic).await.map_err(backend)?;
            if now.seq == 0 {
                (now, Vec::new())
            } else {
                let from = Position { epoch: now.epoch.clone(), seq: now.seq.saturating_sub(limit) };
                let r = history.recover(topic, &from).await.map_err(backend)?;
                let mut kept = if r.position.epoch == now.epoch { r.publications } else { Vec::new() };
                // Publications appended since the position was read: the newest `limit` only.
                let extra = kept.len().saturating_sub(usize::try_from(limit).unwrap_or(usize::MAX));
                kept.drain(..extra);
                (r.position, kept)
            }
        }
    };
    let publications = kept
        .into_iter()
        .filter_map(|p| match serde_json::from_slice::<Record>(&p.data) {
            Ok(record) => Some(wire::HistoryItem {
                seq: p.seq,
                event: record.event,
                data: record.data,
                from: record.from,
            }),
            Err(e) => {
                tracing::error!(error = %e, %topic, "undecodable publication in history");
                None
            }
        })
        .collect();
    Ok(wire::HistoryReply {
        topic: topic.to_string(),
        epoch: position.epoch.to_string(),
        seq: position.seq,
        publications,
    })
}
