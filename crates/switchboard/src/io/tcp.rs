//! A TCP socket that two writers share: the transport that owns it (reading and writing
//! through [`SharedTcp`]) and a second writer (a connection's writer passes, `conn::pass`) that
//! writes with [`send_now`]. The socket carries the two flags that keep them apart.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The shared socket (see the module's documentation).
pub(crate) struct SharedSocket {
    tcp: TcpStream,
    /// Held by whoever writes: the owner's task while it is polled, or the second writer.
    writing: AtomicBool,
    /// The transport holds bytes not yet written: the second writer must not write before them.
    buffered: AtomicBool,
}

impl SharedSocket {
    /// Takes the right to write, if nobody holds it.
    pub(crate) fn try_write_lock(&self) -> bool {
        !self.writing.swap(true, Ordering::Acquire)
    }

    /// Gives the right to write back.
    pub(crate) fn write_unlock(&self) {
        self.writing.store(false, Ordering::Release);
    }

    /// Whether the transport holds bytes not yet written.
    pub(crate) fn is_buffered(&self) -> bool {
        self.buffered.load(Ordering::Acquire)
    }

    /// The transport says whether it holds bytes not yet written.
    pub(crate) fn set_buffered(&self, buffered: bool) {
        self.buffered.store(buffered, Ordering::Release);
    }
}

/// The owner's side of a [`SharedSocket`]: a TCP stream for its transport.
pub(crate) struct SharedTcp(Arc<SharedSocket>);

impl SharedTcp {
    pub(crate) fn new(tcp: TcpStream) -> Self {
        Self(Arc::new(SharedSocket {
            tcp,
            writing: AtomicBool::new(false),
            buffered: AtomicBool::new(false),
        }))
    }

    /// The socket, for the second writer.
    pub(crate) fn share(&self) -> Arc<SharedSocket> {
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
            ready!(self.0.tcp.poll_read_ready(cx))?;
            let read: io::Result<()> = READ_INTO.with(|into| {
                let mut into = into.borrow_mut();
                into.clear();
                into.reserve(buf.remaining());
                let n = self.0.tcp.try_read_buf(&mut *into)?;
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
            ready!(self.0.tcp.poll_write_ready(cx))?;
            match self.0.tcp.try_write(buf) {
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
            ready!(self.0.tcp.poll_write_ready(cx))?;
            match self.0.tcp.try_write_vectored(bufs) {
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

/// Writes all of `buf` it can to the socket without waiting; returns how much went.
pub(crate) fn send_now(shared: &SharedSocket, buf: &[u8]) -> usize {
    let socket = socket2::SockRef::from(&shared.tcp);
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
