//! The demo chat served at `/` in development mode: a page (`assets/index.html`), its script
//! and style, a favicon, and the TypeScript client's minified IIFE bundle (copied from
//! `clients/typescript/dist/` into `assets/` and embedded at compile time).
//!
//! Served as a site should be: the page with `Cache-Control: no-cache` and an `ETag` (a reload
//! costs a 304); every other file under a name that carries a hash of its content, cached for a
//! year as `immutable`; gzip when the request's `Accept-Encoding` allows it (`Vary:
//! Accept-Encoding`), compressed once, at the first request.

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;

/// The page; `{{name}}` placeholders become the hashed URLs of the files below.
const INDEX: &str = include_str!("../assets/index.html");

/// The files the page uses: (name, content type, content).
const FILES: [(&str, &str, &[u8]); 5] = [
    ("demo.css", "text/css; charset=utf-8", include_bytes!("../assets/demo.css")),
    ("demo.js", "text/javascript; charset=utf-8", include_bytes!("../assets/demo.js")),
    ("favicon.svg", "image/svg+xml", include_bytes!("../assets/favicon.svg")),
    (
        "switchboard.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/switchboard.iife.min.js"),
    ),
    (
        "switchboard.iife.min.js.map",
        "application/json",
        include_bytes!("../assets/switchboard.iife.min.js.map"),
    ),
];

/// Files whose URL stays the same: the bundle's source map (the bundle names it), which is
/// therefore revalidated like the page.
const UNHASHED: [&str; 1] = ["switchboard.iife.min.js.map"];

/// A year: what a hashed name may be cached for.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Revalidate every time (the page, whose content names the current files).
const REVALIDATE: &str = "no-cache";

/// Below this, gzip is not worth its header.
const MIN_GZIP: usize = 512;

/// One file as served.
struct Asset {
    /// Where it is served (the hashed name under `/assets/`, or `/`).
    url: String,
    content_type: &'static str,
    cache: &'static str,
    body: Bytes,
    /// The gzip form, when smaller.
    gzip: Option<Bytes>,
    /// The ETag of the content (the gzip form's adds `-gz`).
    tag: String,
}

impl Asset {
    fn new(url: String, content_type: &'static str, cache: &'static str, body: Bytes) -> Self {
        use sha2::Digest as _;
        let tag = hex::encode(&sha2::Sha256::digest(&body)[..8]);
        let gzip = (body.len() >= MIN_GZIP).then(|| gzip(&body)).filter(|g| g.len() < body.len());
        Self { url, content_type, cache, body, gzip, tag }
    }

    /// The answer to a GET with these headers: 200 (gzip when accepted) or 304.
    fn respond(&self, request: &HeaderMap) -> Response {
        let gzip = self.gzip.as_ref().filter(|_| accepts_gzip(request));
        let etag = match gzip {
            Some(_) => format!("\"{}-gz\"", self.tag),
            None => format!("\"{}\"", self.tag),
        };
        let mut headers = HeaderMap::new();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(self.cache));
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        if let Ok(value) = HeaderValue::from_str(&etag) {
            headers.insert(header::ETAG, value);
        }
        if none_match(request, &self.tag) {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        let body = match gzip {
            Some(g) => {
                headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                g.clone()
            }
            None => self.body.clone(),
        };
        (StatusCode::OK, headers, Body::from(body)).into_response()
    }
}

fn gzip(data: &[u8]) -> Bytes {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(data);
    Bytes::from(encoder.finish().unwrap_or_default())
}

/// Whether `Accept-Encoding` allows gzip (`gzip`, `x-gzip` or `*` with a q-value above 0, and
/// gzip not refused by name).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut named = None;
    let mut any = None;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q=").or_else(|| p.trim().strip_prefix("Q=")))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match coding.as_str() {
                "gzip" | "x-gzip" => named = Some(q > 0.0),
                "*" => any = Some(q > 0.0),
                _ => {}
            }
        }
    }
    named.or(any).unwrap_or(false)
}

/// Whether `If-None-Match` names this content (either encoding's tag, weak or strong, or `*`).
fn none_match(headers: &HeaderMap, tag: &str) -> bool {
    headers.get_all(header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).any(|v| {
        v.split(',').map(str::trim).any(|t| {
            let t = t.strip_prefix("W/").unwrap_or(t).trim_matches('"');
            t == "*" || t == tag || t.strip_suffix("-gz") == Some(tag)
        })
    })
}

/// The page and its files, built once.
struct Site {
    index: Asset,
    files: Vec<Asset>,
    favicon: usize,
}

/// `name.ext` → `name.HASH.ext`.
fn hashed_name(name: &str, body: &[u8]) -> String {
    use sha2::Digest as _;
    let hash = hex::encode(&sha2::Sha256::digest(body)[..5]);
    match name.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}.{hash}.{ext}"),
        None => format!("{name}.{hash}"),
    }
}

fn site() -> &'static Site {
    static SITE: OnceLock<Site> = OnceLock::new();
    SITE.get_or_init(|| {
        let mut page = INDEX.to_owned();
        let mut files = Vec::new();
        let mut favicon = 0;
        for (name, content_type, body) in FILES {
            let unhashed = UNHASHED.contains(&name);
            let url = if unhashed {
                format!("/assets/{name}")
            } else {
                format!("/assets/{}", hashed_name(name, body))
            };
            page = page.replace(&format!("{{{{{name}}}}}"), &url);
            if name == "favicon.svg" {
                favicon = files.len();
            }
            let cache = if unhashed { REVALIDATE } else { IMMUTABLE };
            files.push(Asset::new(url, content_type, cache, Bytes::from_static(body)));
        }
        let index = Asset::new("/".to_owned(), "text/html; charset=utf-8", REVALIDATE, Bytes::from(page));
        Site { index, files, favicon }
    })
}

async fn index(headers: HeaderMap) -> Response {
    site().index.respond(&headers)
}

async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let url = format!("/assets/{name}");
    match site().files.iter().find(|a| a.url == url) {
        Some(asset) => asset.respond(&headers),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

/// Browsers ask for `/favicon.ico` whatever the page says: the SVG icon, cached for a day.
async fn favicon(headers: HeaderMap) -> Response {
    let site = site();
    let mut response = site.files[site.favicon].respond(&headers);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
    response
}

/// `/`, `/assets/*` and `/favicon.ico`.
pub(crate) fn router() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/assets/{name}", get(asset))
        .route("/favicon.ico", get(favicon))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, value.parse().unwrap());
        h
    }

    #[test]
    fn accept_encoding_is_read_with_q_values() {
        let ae = |v: &str| accepts_gzip(&with(header::ACCEPT_ENCODING, v));
        assert!(ae("gzip"));
        assert!(ae("gzip, deflate, br, zstd"));
        assert!(ae("br;q=1.0, GZIP;q=0.5"));
        assert!(ae("*"));
        assert!(ae("x-gzip"));
        assert!(!ae("identity"));
        assert!(!ae("br"));
        assert!(!ae("gzip;q=0"));
        assert!(!ae("*, gzip;q=0"), "gzip refused by name, whatever * says");
        assert!(!ae("*;q=0"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn if_none_match_matches_either_encoding_and_weak_tags() {
        let inm = |v: &str| none_match(&with(header::IF_NONE_MATCH, v), "abc");
        assert!(inm("\"abc\""));
        assert!(inm("\"abc-gz\""));
        assert!(inm("W/\"abc\""));
        assert!(inm("\"x\", \"abc\""));
        assert!(inm("*"));
        assert!(!inm("\"abd\""));
    }

    #[test]
    fn the_page_names_every_file_by_its_hashed_url() {
        let site = site();
        let page = std::str::from_utf8(&site.index.body).unwrap();
        assert!(!page.contains("{{"), "a placeholder left in the page");
        for file in &site.files {
            if !file.url.ends_with(".map") {
                assert!(page.contains(&file.url), "{} not in the page", file.url);
            }
        }
        assert!(
            site.files.iter().any(|f| f.url.starts_with("/assets/switchboard.iife.min.") && f.gzip.is_some())
        );
    }
}
