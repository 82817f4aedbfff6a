//! A publication as history keeps it and the broker carries it, and the `~msg` payload made of it.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use switchboard_core::Position;
use switchboard_protocol::{Format, MapWriter, RawPayload, wire};

use crate::conn::ConnShared;

/// A publication as history keeps it and the broker carries it (JSON).
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) event: Option<String>,
    pub(crate) data: RawPayload,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) from: Option<wire::Origin>,
    /// The publisher's connection when it asked not to receive its own publication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) skip: Option<Skip>,
}

impl Record {
    /// Whether `conn` is the publisher that asked not to receive this publication.
    pub(crate) fn skips(&self, conn: &ConnShared) -> bool {
        self.skip.as_ref().is_some_and(|skip| skip.is(conn))
    }
}

/// The connection a publication is not delivered to: its publisher, when it asked so.
///
/// Published here, it is the connection's own id, compared by address with each subscriber's
/// (a fan-out does not read every subscriber's id); read back from history or from another node,
/// it is compared by value.
#[derive(Clone, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub(crate) struct Skip {
    pub(crate) id: Arc<str>,
    /// `id` is the connection's own (`ConnShared::id`, the same allocation).
    pub(crate) local: bool,
}

impl Skip {
    fn is(&self, conn: &ConnShared) -> bool {
        if self.local { Arc::ptr_eq(&self.id, &conn.id) } else { *self.id == *conn.id }
    }
}

impl From<String> for Skip {
    fn from(id: String) -> Self {
        Self { id: id.into(), local: false }
    }
}

impl From<Skip> for String {
    fn from(skip: Skip) -> Self {
        skip.id.to_string()
    }
}

/// What the broker carries: `seq` (8 bytes, big-endian), the epoch's length (1 byte), the epoch,
/// and the record (JSON).
pub(crate) fn encode_publication(position: &Position, record: &[u8]) -> Bytes {
    let epoch = position.epoch.as_bytes();
    let epoch = &epoch[..epoch.len().min(255)];
    let mut wire = BytesMut::with_capacity(9 + epoch.len() + record.len());
    wire.put_u64(position.seq);
    wire.put_u8(u8::try_from(epoch.len()).unwrap_or(u8::MAX));
    wire.extend_from_slice(epoch);
    wire.extend_from_slice(record);
    wire.freeze()
}

pub(crate) fn decode_publication(wire: &[u8]) -> Option<(Arc<str>, u64, Record)> {
    let seq = u64::from_be_bytes(wire.get(..8)?.try_into().ok()?);
    let len = usize::from(*wire.get(8)?);
    let epoch = std::str::from_utf8(wire.get(9..9 + len)?).ok()?;
    let record = serde_json::from_slice(wire.get(9 + len..)?).ok()?;
    Some((Arc::from(epoch), seq, record))
}

/// The `~msg` payload of a publication.
///
/// `epoch`: the stream's epoch, for a subscriber that was last told another one (protocol §5).
pub(crate) fn delivery_payload(
    topic: &str,
    seq: u64,
    record: &Record,
    format: Format,
    epoch: Option<&str>,
) -> Option<RawPayload> {
    let len =
        3 + u32::from(record.event.is_some()) + u32::from(record.from.is_some()) + u32::from(epoch.is_some());
    let mut w = MapWriter::new(format, len);
    let built = (|| {
        w.field("topic", topic)?;
        if let Some(event) = &record.event {
            w.field("event", event)?;
        }
        w.raw("data", &record.data)?;
        w.field("seq", &seq)?;
        if let Some(from) = &record.from {
            w.field("from", from)?;
        }
        if let Some(epoch) = epoch {
            w.field("epoch", epoch)?;
        }
        Ok::<_, switchboard_protocol::EncodeError>(())
    })();
    match built {
        Ok(()) => Some(w.finish()),
        Err(e) => {
            tracing::warn!(topic, error = %e, "a publication cannot be encoded");
            None
        }
    }
}

/// A record of the number `n`, for tests.
#[cfg(test)]
pub(crate) fn record_of(n: u64) -> Record {
    Record { event: None, data: RawPayload::json(&n).unwrap(), from: None, skip: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publications_carry_their_epoch_between_nodes() {
        let position = Position { epoch: Arc::from("ep"), seq: 42 };
        let wire = encode_publication(&position, br#"{"data":1}"#);
        let (epoch, seq, record) = decode_publication(&wire).unwrap();
        assert_eq!((&*epoch, seq), ("ep", 42));
        assert_eq!(record.data.decode::<u64>().unwrap(), 1);
        assert!(decode_publication(&wire[..9]).is_none());
    }
}
