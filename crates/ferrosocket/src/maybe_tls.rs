//! The streams a [`Dialer`](crate::Dialer) hands out: plain TCP, TLS over TCP, and stacks of
//! layers for custom transports ([`Dialer::connector`](crate::Dialer::connector)) and tunnels
//! through `https://` proxies.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

#[cfg(feature = "http2")]
mod http2;
#[cfg(feature = "http2")]
pub use http2::H2Stream;
#[cfg(feature = "http2")]
pub(crate) use http2::{H2Connection, StreamCount};

/// A byte stream a [`Dialer::connector`](crate::Dialer::connector) hook may return: anything
/// `AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static` (a `TcpStream` with options of your
/// own, a `UnixStream`, a `tokio::io::DuplexStream`, a stream from another network stack...).
/// Implemented for every such type; there is nothing to implement by hand.
///
/// `Sync` is required so that [`MaybeTlsStream`] stays `Sync`, as it was before custom
/// transports existed, whatever the transport.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static {}

impl<T> Transport for T where T: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static {}

/// The transport of a connection made by [`Dialer::connect`](crate::Dialer::connect).
///
/// A direct connection is [`Plain`](Self::Plain) TCP for `ws://` or [`Rustls`](Self::Rustls)
/// (TLS over TCP) for `wss://`, as before custom transports and `https://` proxies existed.
/// Everything else is [`Layered`](Self::Layered).
#[derive(Debug)]
#[non_exhaustive]
pub enum MaybeTlsStream {
    /// `ws://` straight over TCP, or through an `http://` proxy's tunnel.
    Plain(TcpStream),
    /// `wss://` by rustls straight over TCP, or through an `http://` proxy's tunnel (boxed:
    /// the TLS state is large, a plain stream is not).
    #[cfg(feature = "rustls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
    Rustls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// A stack the two variants above cannot name: a transport made by a
    /// [`Dialer::connector`](crate::Dialer::connector) hook, and/or a tunnel inside TLS to an
    /// `https://` proxy, with TLS to the server on top for `wss://` (TLS inside TLS through
    /// an `https://` proxy).
    Layered(LayeredStream),
    /// `wss://` over HTTP/3 (RFC 9220, [`Dialer::connect_http3`](crate::Dialer::connect_http3)):
    /// one request stream of a QUIC connection, TLS 1.3 included (boxed, as `Rustls`).
    #[cfg(feature = "http3")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http3")))]
    Http3(Box<crate::http3::H3Stream>),
    /// A stream of an HTTP/2 connection (RFC 8441), possibly shared with other WebSockets to
    /// the same server (see [`Dialer::http_version`](crate::Dialer::http_version)).
    #[cfg(feature = "http2")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http2")))]
    Http2(H2Stream),
}

impl MaybeTlsStream {
    /// The TCP stream underneath (for its addresses or socket options); `None` when the
    /// transport came from a [`Dialer::connector`](crate::Dialer::connector) hook, for an
    /// HTTP/2 stream (whose TCP stream belongs to the connection's task), and over HTTP/3
    /// (QUIC runs over UDP).
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            MaybeTlsStream::Plain(s) => Some(s),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(s) => Some(s.get_ref().0),
            MaybeTlsStream::Layered(s) => s.tcp(),
            #[cfg(feature = "http3")]
            MaybeTlsStream::Http3(_) => None,
            #[cfg(feature = "http2")]
            MaybeTlsStream::Http2(_) => None,
        }
    }

    /// Whether the WebSocket server is reached over TLS (`wss://`). TLS to an `https://`
    /// proxy alone does not count: it protects only the hop to the proxy.
    pub fn is_tls(&self) -> bool {
        match self {
            MaybeTlsStream::Plain(_) => false,
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(_) => true,
            MaybeTlsStream::Layered(s) => s.is_tls(),
            #[cfg(feature = "http3")]
            MaybeTlsStream::Http3(_) => true,
            #[cfg(feature = "http2")]
            MaybeTlsStream::Http2(s) => s.is_tls(),
        }
    }

    /// The protocol the server chose in TLS's ALPN, if any.
    #[cfg(feature = "http2")]
    pub(crate) fn alpn(&self) -> Option<&[u8]> {
        match self {
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(s) => s.get_ref().1.alpn_protocol(),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Layered(LayeredStream {
                top: Layer::Tls(s),
                server_tls: true,
            }) => s.get_ref().1.alpn_protocol(),
            _ => None,
        }
    }

    /// `ws://` over `layer`: a direct TCP stream, or a stack over a hook's transport or a
    /// proxy's TLS.
    pub(crate) fn plain(layer: Layer) -> Self {
        match layer {
            Layer::Tcp(tcp) => MaybeTlsStream::Plain(tcp),
            top => MaybeTlsStream::Layered(LayeredStream {
                top,
                server_tls: false,
            }),
        }
    }

    /// `wss://` whose TLS to the server is `top` (over a stack, not straight over TCP).
    #[cfg(feature = "rustls")]
    pub(crate) fn layered_tls(top: Layer) -> Self {
        MaybeTlsStream::Layered(LayeredStream {
            top,
            server_tls: true,
        })
    }
}

/// A stack of transport layers: at the bottom TCP or a [`Transport`] from a
/// [`Dialer::connector`](crate::Dialer::connector) hook, then TLS to an `https://` proxy
/// when one is used, then TLS to the server for `wss://`. Read and written through
/// [`MaybeTlsStream`].
pub struct LayeredStream {
    top: Layer,
    server_tls: bool,
}

impl LayeredStream {
    /// Whether the WebSocket server is reached over TLS (`wss://`).
    pub fn is_tls(&self) -> bool {
        self.server_tls
    }

    /// Whether the bottom of the stack came from a
    /// [`Dialer::connector`](crate::Dialer::connector) hook.
    pub fn is_custom(&self) -> bool {
        self.tcp().is_none()
    }

    /// The TCP stream at the bottom, unless a hook made the transport.
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self.top.bottom() {
            Layer::Tcp(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Debug for LayeredStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LayeredStream")
            .field("layers", &self.top.names())
            .field("server_tls", &self.server_tls)
            .finish()
    }
}

/// One layer of a [`LayeredStream`].
pub(crate) enum Layer {
    Tcp(TcpStream),
    Custom(Box<dyn Transport>),
    #[cfg(feature = "rustls")]
    Tls(Box<tokio_rustls::client::TlsStream<Layer>>),
}

impl Layer {
    /// The layer at the bottom of the stack: TCP or a hook's transport.
    fn bottom(&self) -> &Layer {
        match self {
            #[cfg(feature = "rustls")]
            Layer::Tls(s) => s.get_ref().0.bottom(),
            other => other,
        }
    }

    /// Names of the layers, top first (`tls`, `tcp`, `custom`).
    fn names(&self) -> Vec<&'static str> {
        match self {
            Layer::Tcp(_) => vec!["tcp"],
            Layer::Custom(_) => vec!["custom"],
            #[cfg(feature = "rustls")]
            Layer::Tls(s) => {
                let mut names = vec!["tls"];
                names.extend(s.get_ref().0.names());
                names
            }
        }
    }
}

impl AsyncRead for Layer {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Layer::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Layer::Custom(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            #[cfg(feature = "rustls")]
            Layer::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Layer {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Layer::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Layer::Custom(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            #[cfg(feature = "rustls")]
            Layer::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Layer::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Layer::Custom(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            #[cfg(feature = "rustls")]
            Layer::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Layer::Tcp(s) => s.is_write_vectored(),
            Layer::Custom(s) => s.is_write_vectored(),
            #[cfg(feature = "rustls")]
            Layer::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Layer::Tcp(s) => Pin::new(s).poll_flush(cx),
            Layer::Custom(s) => Pin::new(s.as_mut()).poll_flush(cx),
            #[cfg(feature = "rustls")]
            Layer::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Layer::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Layer::Custom(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            #[cfg(feature = "rustls")]
            Layer::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl AsyncRead for MaybeTlsStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            MaybeTlsStream::Layered(s) => Pin::new(&mut s.top).poll_read(cx, buf),
            #[cfg(feature = "http3")]
            MaybeTlsStream::Http3(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            #[cfg(feature = "http2")]
            MaybeTlsStream::Http2(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MaybeTlsStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            MaybeTlsStream::Layered(s) => Pin::new(&mut s.top).poll_write(cx, buf),
            #[cfg(feature = "http3")]
            MaybeTlsStream::Http3(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            #[cfg(feature = "http2")]
            MaybeTlsStream::Http2(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            MaybeTlsStream::Layered(s) => Pin::new(&mut s.top).poll_write_vectored(cx, bufs),
            #[cfg(feature = "http3")]
            MaybeTlsStream::Http3(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            #[cfg(feature = "http2")]
            MaybeTlsStream::Http2(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeTlsStream::Plain(s) => s.is_write_vectored(),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(s) => s.is_write_vectored(),
            MaybeTlsStream::Layered(s) => s.top.is_write_vectored(),
            #[cfg(feature = "http3")]
            MaybeTlsStream::Http3(s) => s.is_write_vectored(),
            #[cfg(feature = "http2")]
            MaybeTlsStream::Http2(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            MaybeTlsStream::Layered(s) => Pin::new(&mut s.top).poll_flush(cx),
            #[cfg(feature = "http3")]
            MaybeTlsStream::Http3(s) => Pin::new(s.as_mut()).poll_flush(cx),
            #[cfg(feature = "http2")]
            MaybeTlsStream::Http2(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            MaybeTlsStream::Layered(s) => Pin::new(&mut s.top).poll_shutdown(cx),
            #[cfg(feature = "http3")]
            MaybeTlsStream::Http3(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            #[cfg(feature = "http2")]
            MaybeTlsStream::Http2(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

fn no_socket() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "the transport came from a Dialer::connector hook and has no socket address; ask the hook's stream",
    )
}

/// The server's address (the proxy's, through a proxy), for `Conn<MaybeTlsStream>::peer_addr`.
/// A transport made by a [`Dialer::connector`](crate::Dialer::connector) hook has none:
/// `Unsupported`.
///
/// An HTTP/2 stream reports the addresses of its connection's transport, an HTTP/3 stream those
/// of its QUIC connection.
impl crate::SocketAddrs for MaybeTlsStream {
    fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        #[cfg(feature = "http3")]
        if let MaybeTlsStream::Http3(s) = self {
            return crate::SocketAddrs::peer_addr(s.as_ref());
        }
        #[cfg(feature = "http2")]
        if let MaybeTlsStream::Http2(s) = self {
            return s.addrs().map(|(peer, _)| peer).ok_or_else(no_socket);
        }
        self.tcp().ok_or_else(no_socket)?.peer_addr()
    }

    fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        #[cfg(feature = "http3")]
        if let MaybeTlsStream::Http3(s) = self {
            return crate::SocketAddrs::local_addr(s.as_ref());
        }
        #[cfg(feature = "http2")]
        if let MaybeTlsStream::Http2(s) = self {
            return s.addrs().map(|(_, local)| local).ok_or_else(no_socket);
        }
        self.tcp().ok_or_else(no_socket)?.local_addr()
    }
}
