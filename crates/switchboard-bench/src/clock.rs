//! The one clock every process of the bench shares.

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the epoch (comparable across the bench's processes).
pub fn unix_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}
