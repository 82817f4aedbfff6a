//! Which pages may open the WebSocket endpoint (`allowed_origins`): a browser sends the page's
//! origin in `Origin`, and a page of another site must not ride on the user's cookies
//! (cross-site WebSocket hijacking). Requests without `Origin` (not from a browser) are allowed.
//!
//! Patterns:
//!
//! - `self` — the request's own host: the Origin's host and port equal the `Host` header's (the
//!   default when the list is empty, like Phoenix's `check_origin`);
//! - `https://app.example.com`, `http://localhost:5173` — exactly that scheme, host and port
//!   (a missing port is the scheme's default);
//! - `https://*.example.com` — any subdomain of `example.com` (not `example.com` itself);
//! - `//example.com`, `//*.example.com:8443` — any scheme; the port only if given;
//! - `null` — the `null` origin (sandboxed frames, `file:` pages), refused unless listed;
//! - `*` — any origin (turns the check off).

/// The framework's upgrade hook: 403 for an origin that is not allowed, counted in
/// `switchboard_origin_refused_total{reason}`.
pub(crate) fn check_upgrade(
    origins: &Origins,
    request: &switchboard::UpgradeRequest,
) -> Result<(), switchboard::Rejection> {
    match origins.check(request.origin(), request.header("host")) {
        Ok(()) => Ok(()),
        Err(refused) => {
            let reason = match refused {
                Refused::Null => "null",
                Refused::Malformed => "malformed",
                Refused::NotAllowed => "not_allowed",
            };
            metrics::counter!("switchboard_origin_refused_total", "reason" => reason).increment(1);
            tracing::debug!(origin = ?request.origin(), host = ?request.header("host"), reason, "origin refused");
            Err(switchboard::Rejection::forbidden("this page's origin may not open the WebSocket endpoint"))
        }
    }
}

/// One parsed origin: scheme, host (lower case), port if given.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

impl Origin {
    fn port(&self) -> Option<u16> {
        self.port.or_else(|| default_port(&self.scheme))
    }

    /// `scheme://host[:port]`, nothing else (the form browsers send).
    fn parse(text: &str) -> Option<Self> {
        let (scheme, rest) = text.split_once("://")?;
        if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) {
            return None;
        }
        let (host, port) = split_host_port(rest)?;
        Some(Self { scheme: scheme.to_ascii_lowercase(), host, port })
    }
}

/// `host[:port]` (IPv6 in brackets) → lower-case host and port.
fn split_host_port(text: &str) -> Option<(String, Option<u16>)> {
    if text.is_empty() || text.contains(['/', '?', '#', '@', ' ']) {
        return None;
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (format!("[{v6}]"), port)
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (text.to_owned(), None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    if host.is_empty() {
        return None;
    }
    Some((host.to_ascii_lowercase(), port))
}

/// A host in a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    /// Exactly this host.
    Exact(String),
    /// Any subdomain: the host ends with this (`.example.com`).
    Subdomains(String),
}

/// One pattern of `allowed_origins`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    /// `None`: any scheme.
    scheme: Option<String>,
    host: Host,
    /// `None`: the scheme's default port, or any port when the scheme is not given either.
    port: Option<u16>,
}

impl Pattern {
    fn parse(text: &str) -> Option<Self> {
        let (scheme, rest) = match text.strip_prefix("//") {
            Some(rest) => (None, rest),
            None => {
                let (scheme, rest) = text.split_once("://")?;
                (Some(scheme.to_ascii_lowercase()), rest)
            }
        };
        if scheme.as_deref().is_some_and(|s| s.is_empty() || s.contains('*')) {
            return None;
        }
        let (host, port) = split_host_port(rest)?;
        let host = match host.strip_prefix("*.") {
            Some(domain) if !domain.is_empty() && !domain.contains('*') => {
                Host::Subdomains(format!(".{domain}"))
            }
            Some(_) => return None,
            None if host.contains('*') => return None,
            None => Host::Exact(host),
        };
        Some(Self { scheme, host, port })
    }

    fn matches(&self, o: &Origin) -> bool {
        if self.scheme.as_ref().is_some_and(|s| *s != o.scheme) {
            return false;
        }
        let host = match &self.host {
            Host::Exact(h) => *h == o.host,
            Host::Subdomains(suffix) => o.host.len() > suffix.len() && o.host.ends_with(suffix.as_str()),
        };
        let port = match (self.port, &self.scheme) {
            (Some(p), _) => o.port() == Some(p),
            (None, Some(scheme)) => o.port() == default_port(scheme),
            (None, None) => true,
        };
        host && port
    }
}

/// The parsed `allowed_origins`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Origins {
    /// `*`: everything.
    any: bool,
    /// `null` listed.
    null: bool,
    /// `self` listed, or the list empty.
    own_host: bool,
    /// The other patterns.
    patterns: Vec<Pattern>,
}

/// Why an upgrade's origin was refused (for the log and the metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// `Origin: null`, not listed.
    Null,
    /// Not a `scheme://host[:port]`.
    Malformed,
    /// A well-formed origin that no pattern allows.
    NotAllowed,
}

impl Origins {
    /// Parses the list; the error names the first bad entry.
    pub(crate) fn parse(list: &[String]) -> Result<Self, String> {
        let mut origins = Self { own_host: list.is_empty(), ..Self::default() };
        for entry in list {
            match entry.trim() {
                "*" => origins.any = true,
                "null" => origins.null = true,
                "self" => origins.own_host = true,
                text => origins.patterns.push(Pattern::parse(text).ok_or_else(|| {
                    format!("`{entry}` is not an origin pattern (scheme://host[:port], scheme://*.domain, //host, self, null or *)")
                })?),
            }
        }
        Ok(origins)
    }

    /// Allows everything (development mode and tests that ask for it).
    #[cfg(test)]
    fn any() -> Self {
        Self { any: true, ..Self::default() }
    }

    /// Decides on an upgrade request's `Origin` and `Host` headers.
    pub(crate) fn check(&self, origin: Option<&str>, host: Option<&str>) -> Result<(), Refused> {
        let Some(origin) = origin.map(str::trim) else {
            return Ok(()); // Not a browser: nothing to protect from.
        };
        if self.any {
            return Ok(());
        }
        if origin.eq_ignore_ascii_case("null") {
            return if self.null { Ok(()) } else { Err(Refused::Null) };
        }
        let Some(parsed) = Origin::parse(origin) else { return Err(Refused::Malformed) };
        if self.own_host
            && let Some((host, port)) = host.and_then(split_host_port)
            && host == parsed.host
            && port.or_else(|| default_port(&parsed.scheme)) == parsed.port()
        {
            return Ok(());
        }
        if self.patterns.iter().any(|p| p.matches(&parsed)) { Ok(()) } else { Err(Refused::NotAllowed) }
    }

    /// For the summary of `checkconfig`.
    pub(crate) fn describe(&self) -> String {
        if self.any {
            return "any origin".to_owned();
        }
        let mut parts = Vec::new();
        if self.own_host {
            parts.push("the request's own host".to_owned());
        }
        parts.extend(self.patterns.iter().map(|p| {
            let host = match &p.host {
                Host::Exact(h) => h.clone(),
                Host::Subdomains(s) => format!("*{s}"),
            };
            let scheme = p.scheme.as_deref().map_or("//".to_owned(), |s| format!("{s}://"));
            let port = p.port.map(|p| format!(":{p}")).unwrap_or_default();
            format!("{scheme}{host}{port}")
        }));
        if self.null {
            parts.push("null".to_owned());
        }
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(list: &[&str]) -> Origins {
        Origins::parse(&list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn the_default_is_the_requests_own_host() {
        let o = origins(&[]);
        assert_eq!(o.check(None, Some("example.com")), Ok(()), "no Origin: not a browser");
        assert_eq!(o.check(Some("https://example.com"), Some("example.com")), Ok(()));
        assert_eq!(o.check(Some("https://example.com"), Some("EXAMPLE.com:443")), Ok(()));
        assert_eq!(o.check(Some("http://127.0.0.1:8080"), Some("127.0.0.1:8080")), Ok(()));
        assert_eq!(o.check(Some("http://[::1]:8080"), Some("[::1]:8080")), Ok(()));
        assert_eq!(o.check(Some("http://127.0.0.1:9090"), Some("127.0.0.1:8080")), Err(Refused::NotAllowed));
        assert_eq!(o.check(Some("https://evil.com"), Some("example.com")), Err(Refused::NotAllowed));
        assert_eq!(
            o.check(Some("https://example.com.evil.com"), Some("example.com")),
            Err(Refused::NotAllowed)
        );
        assert_eq!(o.check(Some("https://example.com"), Some("example.com:8443")), Err(Refused::NotAllowed));
        assert_eq!(o.check(Some("https://example.com"), None), Err(Refused::NotAllowed));
        assert_eq!(o.check(Some("null"), Some("example.com")), Err(Refused::Null));
        assert_eq!(o.check(Some("garbage"), Some("example.com")), Err(Refused::Malformed));
        assert_eq!(o.check(Some("https://example.com/path"), Some("example.com")), Err(Refused::Malformed));
    }

    #[test]
    fn patterns() {
        let o = origins(&["https://app.example.com", "https://*.example.org", "//dev.local", "null"]);
        assert_eq!(o.check(Some("https://app.example.com"), Some("api.example.com")), Ok(()));
        assert_eq!(o.check(Some("https://app.example.com:443"), None), Ok(()));
        assert_eq!(o.check(Some("http://app.example.com"), None), Err(Refused::NotAllowed), "scheme");
        assert_eq!(o.check(Some("https://app.example.com:8443"), None), Err(Refused::NotAllowed), "port");
        assert_eq!(o.check(Some("https://a.b.example.org"), None), Ok(()));
        assert_eq!(
            o.check(Some("https://example.org"), None),
            Err(Refused::NotAllowed),
            "not the domain itself"
        );
        assert_eq!(o.check(Some("https://badexample.org"), None), Err(Refused::NotAllowed));
        assert_eq!(o.check(Some("http://dev.local:3000"), None), Ok(()), "any scheme and port");
        assert_eq!(o.check(Some("null"), None), Ok(()));
        // A list without `self` does not include the own host.
        assert_eq!(
            o.check(Some("https://api.example.com"), Some("api.example.com")),
            Err(Refused::NotAllowed)
        );
        let o = origins(&["self", "http://localhost:5173"]);
        assert_eq!(o.check(Some("https://api.example.com"), Some("api.example.com")), Ok(()));
        assert_eq!(o.check(Some("http://localhost:5173"), Some("api.example.com")), Ok(()));
        assert_eq!(Origins::any().check(Some("null"), None), Ok(()));
        assert_eq!(origins(&["*"]).check(Some("https://x.y"), None), Ok(()));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in [
            "example.com",
            "https://",
            "https://*",
            "https://a.*.com",
            "*://x.com",
            "https://x.com/path",
            "https://x:port",
        ] {
            assert!(Origins::parse(&[bad.to_owned()]).is_err(), "{bad}");
        }
        assert_eq!(
            origins(&["https://*.example.com", "self"]).describe(),
            "the request's own host, https://*.example.com"
        );
    }
}
