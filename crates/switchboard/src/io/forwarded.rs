//! Who a request comes from when it comes through proxies: the `Forwarded` (RFC 7239) and
//! `X-Forwarded-For` headers, believed only from trusted proxies.

use std::net::IpAddr;

use http::HeaderMap;

use crate::config::IpRange;

/// The client a request from `peer` is for: `peer` itself unless it is a trusted proxy; then,
/// walking the forwarding chain from the nearest hop, the first address that is not a trusted
/// proxy (or the farthest one, if all are). `Forwarded` is read if present, else
/// `X-Forwarded-For`; a hop that is not an address (`unknown`, an obfuscated name, garbage)
/// ends the walk at the hop before it, since anything farther was written by the client.
///
/// ```ignore
/// // A request from the proxy 10.0.0.2 for 203.0.113.7, which claimed to be 1.2.3.4:
/// // `X-Forwarded-For: 1.2.3.4, 203.0.113.7` → 203.0.113.7.
/// ```
pub(crate) fn client(peer: IpAddr, headers: &HeaderMap, trusted: &[IpRange]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|r| r.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let forwarded: Vec<&str> =
        headers.get_all(http::header::FORWARDED).iter().filter_map(|v| v.to_str().ok()).collect();
    let hops: Vec<Option<IpAddr>> = if forwarded.is_empty() {
        headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|hop| parse_hop(hop.trim()))
            .collect()
    } else {
        forwarded
            .iter()
            .flat_map(|v| v.split(','))
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.trim().split_once('='))
                    .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, value)| parse_hop(value.trim().trim_matches('"')))
            })
            .collect()
    };
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        let Some(ip) = hop else { break };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

/// An address of a forwarding hop: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:80`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_headers_count_only_from_trusted_proxies() {
        let trusted = ["10.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()];
        let xff = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(client(ip("203.0.113.9"), &xff, &trusted), ip("203.0.113.9"), "not a proxy: ignored");
        assert_eq!(client(ip("10.0.0.2"), &xff, &trusted), ip("1.2.3.4"));
        assert_eq!(client(ip("10.0.0.2"), &HeaderMap::new(), &trusted), ip("10.0.0.2"), "no header");
        // What the client wrote itself, before the proxy appended its address, is not believed.
        let chain = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.7, 10.0.0.3")]);
        assert_eq!(client(ip("10.0.0.2"), &chain, &trusted), ip("203.0.113.7"));
        let split = headers(&[("x-forwarded-for", "1.2.3.4"), ("x-forwarded-for", "203.0.113.7")]);
        assert_eq!(client(ip("10.0.0.2"), &split, &trusted), ip("203.0.113.7"));
        let garbage = headers(&[("x-forwarded-for", "1.2.3.4, not-an-ip, 10.0.0.5")]);
        assert_eq!(client(ip("10.0.0.2"), &garbage, &trusted), ip("10.0.0.5"), "the walk stops at garbage");
        let all_proxies = headers(&[("x-forwarded-for", "10.1.1.1, 10.0.0.3")]);
        assert_eq!(client(ip("10.0.0.2"), &all_proxies, &trusted), ip("10.1.1.1"));
    }

    #[test]
    fn forwarded_wins_and_its_forms_are_understood() {
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        let both = headers(&[
            ("x-forwarded-for", "9.9.9.9"),
            ("forwarded", r#"for=192.0.2.43;proto=https, For="[2001:db8:cafe::17]:4711";by=10.0.0.1"#),
        ]);
        assert_eq!(client(ip("10.0.0.2"), &both, &trusted), ip("2001:db8:cafe::17"));
        let port = headers(&[("forwarded", "for=192.0.2.60:8080")]);
        assert_eq!(client(ip("10.0.0.2"), &port, &trusted), ip("192.0.2.60"));
        let hidden = headers(&[("forwarded", "for=192.0.2.60, for=_hidden")]);
        assert_eq!(client(ip("10.0.0.2"), &hidden, &trusted), ip("10.0.0.2"), "an obfuscated hop");
    }
}
