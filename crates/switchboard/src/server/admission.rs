//! Connections per source address (`Config::connection_limits`): how many are open from one
//! address, and how many new ones it may open per second. Checked when a connection is
//! accepted (`Switchboard::admit`: `serve()` calls it, and so can any other accept loop); a
//! connection from a trusted proxy is checked once its request says for whom (at the upgrade). An [`Admission`] is the connection's place:
//! it counts as long as the connection (or a clone of the admission) lives.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use http::HeaderMap;
use parking_lot::Mutex;
use switchboard_core::{Rate, TokenBucket};

use crate::base::counters::Counters;
use crate::base::throttle::{self, Kind};
use crate::config::ConnectionLimits;
use crate::error::AddressRefused;
use crate::io::forwarded;

/// An address as it is counted: an IPv4 address alone, an IPv6 address with its /64 network.
type AddressKey = u128;

fn key_of(ip: IpAddr) -> AddressKey {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(u32::from(v4)),
            // The /64, tagged so that it never equals an IPv4 key.
            None => (u128::from(v6) & !u128::from(u64::MAX)) | 1,
        },
    }
}

/// One address's standing.
struct Entry {
    /// Connections open (admissions alive).
    open: usize,
    /// Its new connections.
    bucket: Option<TokenBucket>,
}

/// Shards of the map of addresses.
const SHARDS: usize = 16;
/// A shard's size from which entries with nothing to remember are forgotten.
const PRUNE_FROM: usize = 1024;

/// Every address with a connection open, or whose bucket is not full again (see the module's
/// documentation).
pub(crate) struct Addresses {
    limits: ConnectionLimits,
    shards: [Mutex<(HashMap<AddressKey, Entry>, usize)>; SHARDS],
    hasher: RandomState,
    start: Instant,
    counters: Arc<Counters>,
}

impl Addresses {
    pub(crate) fn new(limits: ConnectionLimits, counters: Arc<Counters>) -> Arc<Self> {
        Arc::new(Self {
            limits,
            shards: std::array::from_fn(|_| Mutex::new((HashMap::new(), PRUNE_FROM))),
            hasher: RandomState::new(),
            start: Instant::now(),
            counters,
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn shard(&self, key: AddressKey) -> &Mutex<(HashMap<AddressKey, Entry>, usize)> {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    /// Whether an entry with nothing open can be forgotten at `now`.
    fn idle(entry: &Entry, rate: Option<Rate>, now: u64) -> bool {
        entry.open == 0 && entry.bucket.zip(rate).is_none_or(|(b, r)| b.is_full_at(r, now))
    }

    /// Counts a new connection from `ip`, atomically with the check of the limits.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admission, AddressRefused> {
        let key = key_of(ip);
        let now = self.now_ms();
        let rate = self.limits.new_per_address;
        let mut shard = self.shard(key).lock();
        let (map, prune_at) = &mut *shard;
        if map.len() >= *prune_at {
            map.retain(|_, e| !Self::idle(e, rate, now));
            *prune_at = (map.len() * 2).max(PRUNE_FROM);
        }
        let entry = map
            .entry(key)
            .or_insert_with(|| Entry { open: 0, bucket: rate.map(|r| TokenBucket::full(r, now)) });
        let refused = if self.limits.per_address.is_some_and(|max| entry.open >= max) {
            Some(AddressRefused::TooMany)
        } else if let (Some(rate), Some(bucket)) = (rate, entry.bucket.as_mut()) {
            bucket.take(rate, now).err().map(|ms| AddressRefused::TooOften { retry_after_ms: ms })
        } else {
            None
        };
        if let Some(refused) = refused {
            if Self::idle(entry, rate, now) {
                map.remove(&key);
            }
            drop(shard);
            self.refused(ip, &refused);
            return Err(refused);
        }
        entry.open += 1;
        Ok(Admission(Some(Arc::new(Slot { addresses: self.clone(), key }))))
    }

    fn refused(&self, ip: IpAddr, refused: &AddressRefused) {
        match refused {
            AddressRefused::TooMany => self.counters.add(|c| &c.address_too_many),
            AddressRefused::TooOften { .. } => self.counters.add(|c| &c.address_too_often),
        }
        if let Some(suppressed) = throttle::global(Kind::AddressRefused) {
            tracing::warn!(address = %ip, reason = %refused, suppressed, "connection refused");
        }
    }

    fn release(&self, key: AddressKey) {
        let now = self.now_ms();
        let mut shard = self.shard(key).lock();
        if let Some(entry) = shard.0.get_mut(&key) {
            entry.open = entry.open.saturating_sub(1);
            if Self::idle(entry, self.limits.new_per_address, now) {
                shard.0.remove(&key);
            }
        }
    }

    /// Addresses remembered now (for leak tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().0.len()).sum()
    }
}

/// A counted connection of one address; the count goes down when the last clone is dropped.
struct Slot {
    addresses: Arc<Addresses>,
    key: AddressKey,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.addresses.release(self.key);
    }
}

/// A connection's place among its address's connections
/// ([`Switchboard::admit`](crate::Switchboard::admit)): keep it as
/// long as the connection lives (cheap to clone; the place is given back when the last clone is
/// dropped). An admission from a trusted proxy is *pending*: the place is taken at the upgrade,
/// for the client the request names (`Forwarded`, `X-Forwarded-For`). Accept loops that serve
/// [`Switchboard::router`](crate::Switchboard::router) through hyper put it in each request's
/// extensions, so that the
/// upgraded connection holds it.
#[derive(Clone, Default)]
pub struct Admission(Option<Arc<Slot>>);

impl Admission {
    /// Whether the place is still to be taken at the upgrade (a connection from a trusted proxy,
    /// or no limits at all).
    #[must_use]
    pub fn is_pending(&self) -> bool {
        self.0.is_none()
    }
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission").field("pending", &self.is_pending()).finish()
    }
}

impl Addresses {
    /// Admits a connection accepted from `peer` (pending if `peer` is a trusted proxy).
    pub(crate) fn admit_peer(self: &Arc<Self>, peer: SocketAddr) -> Result<Admission, AddressRefused> {
        let ip = peer.ip();
        if self.limits.trusted_proxies.iter().any(|r| r.contains(ip)) {
            return Ok(Admission::default());
        }
        self.admit(ip)
    }

    /// At the upgrade: `admission` as the accept loop made it, or, where it is pending (from a
    /// trusted proxy) or missing (an accept loop that does not admit), the place of the client
    /// the request names.
    pub(crate) fn admit_request(
        self: &Arc<Self>,
        admission: Option<Admission>,
        peer: Option<SocketAddr>,
        headers: &HeaderMap,
    ) -> Result<Admission, AddressRefused> {
        match admission {
            Some(admission) if !admission.is_pending() => Ok(admission),
            _ => match peer {
                Some(peer) => self.admit(forwarded::client(peer.ip(), headers, &self.limits.trusted_proxies)),
                None => Ok(Admission::default()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IpRange;

    fn addresses(per_address: Option<usize>, rate: Option<Rate>) -> Arc<Addresses> {
        let limits = ConnectionLimits {
            per_address,
            new_per_address: rate,
            trusted_proxies: vec!["10.0.0.0/8".parse::<IpRange>().unwrap()],
        };
        Addresses::new(limits, Arc::new(Counters::default()))
    }

    #[test]
    fn places_are_counted_per_address_and_given_back() {
        let a = addresses(Some(2), None);
        let ip: IpAddr = "203.0.113.1".parse().unwrap();
        let one = a.admit(ip).unwrap();
        let two = a.admit(ip).unwrap();
        assert_eq!(a.admit(ip).unwrap_err(), AddressRefused::TooMany);
        assert!(a.admit("203.0.113.2".parse().unwrap()).is_ok(), "another address");
        let clone = two.clone();
        drop(two);
        assert!(a.admit(ip).is_err(), "a clone still holds the place");
        drop((one, clone));
        assert_eq!(a.len(), 0, "nothing remembered once every place is back");
        let _again = a.admit(ip).unwrap();
    }

    #[test]
    fn new_connections_are_limited_per_second_and_ipv6_counts_per_64() {
        let a = addresses(None, Some(Rate::new(1, 3)));
        let mut held = Vec::new();
        for i in 0..3 {
            held.push(a.admit(format!("2001:db8::{i}").parse().unwrap()).unwrap());
        }
        let refused = a.admit("2001:db8::ffff".parse().unwrap()).unwrap_err();
        assert!(matches!(refused, AddressRefused::TooOften { retry_after_ms } if retry_after_ms <= 1000));
        assert!(a.admit("2001:db8:0:1::1".parse().unwrap()).is_ok(), "another /64");
    }
}
