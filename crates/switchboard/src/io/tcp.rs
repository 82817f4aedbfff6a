//! A TCP stream that a connection's task and its writer passes share (see `conn::pass`): the
//! task reads and writes it through [`SharedTcp`], a pass writes with [`send_now`].

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A TCP stream that writer passes may write to as well (they hold it while they write).
pub(crate) struct SharedTcp(Arc<TcpStream>);

impl SharedTcp {
    pub(crate) fn new(tcp: TcpStream) -> Self {
        Self(Arc::new(tcp))
    }

    /// The stream, for the other writer.
    pub(crate) fn share(&self) -> Arc<TcpStream> {
        self.0.clone()
    }
}

thread_local! {
    /// Where a read lands before it is copied into the caller's buffer (whose unfilled part is
    /// not initialised: reading into it would first zero it).
    static READ_INTO: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl AsyncRead for SharedTcp {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            let read: io::Result<()> = READ_INTO.with(|into| {
                let mut into = into.borrow_mut();
                into.clear();
                into.reserve(buf.remaining());
                let n = self.0.try_read_buf(&mut *into)?;
                buf.put_slice(&into[..n]);
                Ok(())
            });
            match read {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return Poll::Ready(r),
            }
        }
    }
}

impl AsyncWrite for SharedTcp {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return Poll::Ready(r),
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return Poll::Ready(r),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Writes all of `buf` it can to `tcp` without waiting; returns how much went.
pub(crate) fn send_now(tcp: &TcpStream, buf: &[u8]) -> usize {
    let socket = socket2::SockRef::from(tcp);
    let mut at = 0;
    while at < buf.len() {
        match socket.send(&buf[at..]) {
            Ok(0) => break,
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Full, or failed: the connection's task writes the rest (and sees the failure).
            Err(_) => break,
        }
    }
    at
}
