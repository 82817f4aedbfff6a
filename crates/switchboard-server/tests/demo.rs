//! How the demo page and its files are served (over raw TCP, headers as sent): gzip only when
//! `Accept-Encoding` allows it, hashed file names cached for a year, the page revalidated with
//! an ETag (304), a favicon; and no page outside development mode.

mod common;

use std::collections::HashMap;
use std::io::Read as _;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Answer {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    /// The body as sent, decompressed when it was gzipped.
    fn content(&self) -> Vec<u8> {
        if self.header("content-encoding") == "gzip" {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&self.body[..]).read_to_end(&mut out).unwrap();
            out
        } else {
            self.body.clone()
        }
    }
}

/// A GET with extra headers; the answer with lower-cased header names and the raw body.
async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut raw)).await.unwrap().unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a full response");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.get("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        body = dechunk(&body);
    }
    Answer { status, headers, body }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&data[..end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 2 + size + 2..];
    }
    out
}

const GZIP: (&str, &str) = ("Accept-Encoding", "gzip, deflate, br");

#[tokio::test]
async fn the_page_and_its_files_are_served_compressed_with_cache_headers() {
    let server = common::spawn(&["--dev"], &[]).await;
    let addr = server.addr;

    // The page: gzip when accepted, revalidated each time, an ETag that earns a 304.
    let page = get(addr, "/", &[GZIP]).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-encoding"), "gzip");
    assert_eq!(page.header("cache-control"), "no-cache");
    assert!(page.header("vary").contains("Accept-Encoding"));
    assert!(page.header("content-type").starts_with("text/html"));
    let html = String::from_utf8(page.content()).unwrap();
    assert!(html.starts_with("<!doctype html>"), "{html}");
    let etag = page.header("etag").to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let again = get(addr, "/", &[GZIP, ("If-None-Match", &etag)]).await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), etag);

    // Without Accept-Encoding (or with gzip refused), the same page uncompressed.
    for headers in
        [&[][..], &[("Accept-Encoding", "gzip;q=0, br")][..], &[("Accept-Encoding", "identity")][..]]
    {
        let plain = get(addr, "/", headers).await;
        assert_eq!(plain.status, 200);
        assert_eq!(plain.header("content-encoding"), "", "{headers:?}");
        assert_eq!(String::from_utf8(plain.body.clone()).unwrap(), html);
        assert_ne!(plain.header("etag"), etag, "each encoding has its own tag");
    }

    // Every file the page names: a hashed name, cached for a year, gzipped where it pays.
    let urls: Vec<&str> = html.split(['"', '\'']).filter(|s| s.starts_with("/assets/")).collect();
    assert!(urls.len() >= 4, "{urls:?}");
    let bundle_url =
        urls.iter().find(|u| u.starts_with("/assets/switchboard.iife.min.")).expect("the bundle");
    assert!(
        bundle_url.ends_with(".js") && bundle_url.len() > "/assets/switchboard.iife.min.js".len(),
        "{bundle_url}"
    );
    for url in &urls {
        let file = get(addr, url, &[GZIP]).await;
        assert_eq!(file.status, 200, "{url}");
        let cache = file.header("cache-control");
        assert!(cache.contains("max-age=31536000") && cache.contains("immutable"), "{url}: {cache}");
        assert!(!file.header("etag").is_empty(), "{url}");
    }
    let bundle = get(addr, bundle_url, &[GZIP]).await;
    assert_eq!(bundle.header("content-encoding"), "gzip");
    assert!(bundle.header("content-type").starts_with("text/javascript"));
    let embedded = include_bytes!("../assets/switchboard.iife.min.js");
    assert_eq!(bundle.content(), embedded, "the minified bundle, intact");
    assert!(
        bundle.body.len() * 2 < embedded.len(),
        "compressed: {} of {} bytes",
        bundle.body.len(),
        embedded.len()
    );
    let plain = get(addr, bundle_url, &[]).await;
    assert_eq!(plain.header("content-encoding"), "");
    assert_eq!(plain.body, embedded);
    // Its source map, where the bundle says it is.
    let map = get(addr, "/assets/switchboard.iife.min.js.map", &[GZIP]).await;
    assert_eq!(map.status, 200);
    assert_eq!(map.header("cache-control"), "no-cache");

    // The favicon browsers ask for by themselves; unknown files.
    let icon = get(addr, "/favicon.ico", &[]).await;
    assert_eq!(icon.status, 200);
    assert_eq!(icon.header("content-type"), "image/svg+xml");
    assert_eq!(get(addr, "/assets/nope.js", &[]).await.status, 404);
}

#[tokio::test]
async fn no_page_outside_development_mode() {
    let server = common::start_with(&common::config("anonymous", ""), &[], &[]).await;
    assert_eq!(get(server.addr, "/", &[]).await.status, 404);
    assert_eq!(get(server.addr, "/favicon.ico", &[]).await.status, 404);
}
