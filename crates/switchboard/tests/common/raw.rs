//! Raw sockets for hostile tests: an upgrade by hand, masked frames of any kind, the process's
//! resident memory and descriptors read from `/proc`.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A key of RFC 6455's example.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// A WebSocket upgrade request for `path`.
pub fn request(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// Opens a socket, upgrades it at `/ws`, returns it after the 101 head.
pub async fn upgraded(addr: SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request("/ws", "").as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0];
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut byte)).await.unwrap().unwrap();
        assert_eq!(n, 1, "closed during the upgrade: {}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    tcp
}

/// A masked client frame with `first` as its first byte (FIN, RSV, opcode), any length.
pub fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![first];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Reads one unmasked server frame: its first byte and payload (`None` at EOF or reset).
pub async fn read_frame(tcp: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut head = [0; 2];
    tcp.read_exact(&mut head).await.ok()?;
    let len = match head[1] & 0x7f {
        126 => {
            let mut b = [0; 2];
            tcp.read_exact(&mut b).await.ok()?;
            usize::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0; 8];
            tcp.read_exact(&mut b).await.ok()?;
            usize::try_from(u64::from_be_bytes(b)).ok()?
        }
        n => usize::from(n),
    };
    let mut payload = vec![0; len];
    tcp.read_exact(&mut payload).await.ok()?;
    Some((head[0], payload))
}

/// Reads frames until a close frame: its code and reason (`None`: the socket ended without one).
pub async fn close_frame(tcp: &mut TcpStream) -> Option<(u16, String)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (first, payload) = tokio::time::timeout_at(deadline, read_frame(tcp)).await.ok()??;
        if first & 0x0f == 0x8 {
            let code = if payload.len() >= 2 { u16::from_be_bytes([payload[0], payload[1]]) } else { 1005 };
            return Some((code, String::from_utf8_lossy(payload.get(2..).unwrap_or_default()).into_owned()));
        }
    }
}

/// Writes `chunk` again and again until `total` bytes went or the peer stopped taking them for
/// `stall`; returns the bytes written.
pub async fn push_until_stalled(tcp: &mut TcpStream, chunk: &[u8], total: usize, stall: Duration) -> usize {
    let mut written = 0;
    while written < total {
        // From where the last write stopped in the chunk: frames stay whole across writes.
        let at = written % chunk.len();
        match tokio::time::timeout(stall, tcp.write(&chunk[at..])).await {
            Ok(Ok(n)) if n > 0 => written += n,
            _ => break,
        }
    }
    written
}

/// This process's resident memory, bytes.
pub fn resident_bytes() -> u64 {
    resident_bytes_of("self")
}

/// A process's resident memory, bytes (`pid` or `self`).
pub fn resident_bytes_of(pid: &str) -> u64 {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).expect("Linux /proc");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// A process's open descriptors.
pub fn descriptors_of(pid: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(Iterator::count).unwrap_or(0)
}
