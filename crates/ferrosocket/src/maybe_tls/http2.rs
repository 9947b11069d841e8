//! [`H2Stream`]: one WebSocket's HTTP/2 stream (RFC 8441), as a byte stream.

use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// What every stream of one HTTP/2 connection shares: its identity, how it is carried, and
/// how many WebSockets it holds now.
#[derive(Debug)]
pub(crate) struct H2Connection {
    /// Unique in the process (a counter), so tests can see which streams share a connection.
    pub(crate) id: u64,
    /// TLS to the server (`wss://`).
    pub(crate) tls: bool,
    /// The transport's addresses, read before the transport was handed to the HTTP/2
    /// connection task; `None` for a hook's transport.
    pub(crate) addrs: Option<(SocketAddr, SocketAddr)>,
    /// Streams open now (each [`StreamCount`] is one).
    pub(crate) streams: AtomicUsize,
    /// When the last open stream went (or the connection was made): where the idle time
    /// counts from.
    idle_since: Mutex<Instant>,
    /// Signalled when the last open stream goes.
    pub(crate) idle: Notify,
}

impl H2Connection {
    pub(crate) fn new(id: u64, tls: bool, addrs: Option<(SocketAddr, SocketAddr)>) -> Self {
        Self {
            id,
            tls,
            addrs,
            streams: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            idle: Notify::new(),
        }
    }

    /// When the connection last became idle (it may carry streams again since).
    pub(crate) fn idle_since(&self) -> Instant {
        *self.idle_since.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One open stream counted on its connection, uncounted when dropped.
#[derive(Debug)]
pub(crate) struct StreamCount(Arc<H2Connection>);

impl StreamCount {
    pub(crate) fn new(conn: Arc<H2Connection>) -> Self {
        conn.streams.fetch_add(1, Ordering::AcqRel);
        Self(conn)
    }

    pub(crate) fn connection(&self) -> &Arc<H2Connection> {
        &self.0
    }
}

impl Drop for StreamCount {
    fn drop(&mut self) {
        if self.0.streams.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self.0.idle_since.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
            // A stored permit if nobody waits yet: the idle watch cannot miss it.
            self.0.idle.notify_one();
        }
    }
}

/// A WebSocket carried by one stream of an HTTP/2 connection (RFC 8441 extended `CONNECT`),
/// the transport of [`MaybeTlsStream::Http2`](super::MaybeTlsStream::Http2).
///
/// Several `H2Stream`s may share one TCP (or TLS) connection (see
/// [`Dialer::share_http2_connections`](crate::Dialer::share_http2_connections)); each is
/// flow-controlled on its own, so one that is not read does not stall the others. The TCP
/// stream belongs to the connection's task, so there is no [`tcp`](super::MaybeTlsStream::tcp);
/// the addresses ([`SocketAddrs`](crate::SocketAddrs)) are those of that connection.
///
/// A reset stream, or an HTTP/2 connection that failed, reads as an error of kind
/// [`ConnectionReset`](io::ErrorKind::ConnectionReset), which a [`Conn`](crate::Conn) reports
/// as close code 1006.
pub struct H2Stream {
    // `Upgraded` is `Send` but not `Sync`; the mutex makes the stream `Sync`, as every
    // `MaybeTlsStream` is. It is never locked: `&mut self` reaches it through `get_mut`.
    io: Mutex<TokioIo<Upgraded>>,
    count: StreamCount,
}

impl H2Stream {
    pub(crate) fn new(io: Upgraded, count: StreamCount) -> Self {
        Self {
            io: Mutex::new(TokioIo::new(io)),
            count,
        }
    }

    /// The HTTP/2 connection this stream belongs to: equal for streams that share one TCP
    /// (or TLS) connection, different otherwise (unique within the process).
    pub fn connection_id(&self) -> u64 {
        self.count.connection().id
    }

    /// Whether the server is reached over TLS (`wss://`).
    pub fn is_tls(&self) -> bool {
        self.count.connection().tls
    }

    /// How many WebSockets the HTTP/2 connection carries now, this one included.
    pub fn connection_streams(&self) -> usize {
        self.count.connection().streams.load(Ordering::Acquire)
    }

    pub(crate) fn addrs(&self) -> Option<(SocketAddr, SocketAddr)> {
        self.count.connection().addrs
    }

    fn io(&mut self) -> Pin<&mut TokioIo<Upgraded>> {
        Pin::new(self.io.get_mut().unwrap_or_else(PoisonError::into_inner))
    }
}

impl fmt::Debug for H2Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("H2Stream")
            .field("connection_id", &self.connection_id())
            .field("tls", &self.is_tls())
            .finish_non_exhaustive()
    }
}

/// A stream-level failure (hyper reports a reset stream, or a failed HTTP/2 connection, as
/// `Other`) becomes a reset, which the connection reports as 1006, as a reset TCP connection
/// is. The message names every cause under hyper's error.
fn as_reset(e: io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::Other => io::Error::new(
            io::ErrorKind::ConnectionReset,
            format!(
                "the http/2 stream or its connection failed: {}",
                crate::error::with_causes(&e)
            ),
        ),
        _ => e,
    }
}

impl AsyncRead for H2Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.get_mut().io().poll_read(cx, buf).map_err(as_reset)
    }
}

impl AsyncWrite for H2Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().io().poll_write(cx, buf).map_err(as_reset)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .io()
            .poll_write_vectored(cx, bufs)
            .map_err(as_reset)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().io().poll_flush(cx).map_err(as_reset)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().io().poll_shutdown(cx).map_err(as_reset)
    }
}
