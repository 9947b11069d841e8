//! The network addresses of a connection's transport, whatever its layers.

use std::io;
use std::net::SocketAddr;

/// A transport with a local and a remote socket address: TCP, and TLS over anything that has
/// them. It gives [`Conn::peer_addr`](crate::Conn::peer_addr) and
/// [`Conn::local_addr`](crate::Conn::local_addr) to a `Conn` over that transport.
///
/// Implemented for [`tokio::net::TcpStream`], for rustls' client and server streams
/// ([`tls::ClientTlsStream`](crate::tls::ClientTlsStream),
/// [`tls::ServerTlsStream`](crate::tls::ServerTlsStream) and `tokio_rustls::TlsStream`, with
/// feature `rustls`) over any transport that implements it, and for `Box<T>`. A TLS stream
/// reports the addresses of the transport beneath it. Implement it for your own transport
/// (a PROXY-protocol wrapper, say) to give its `Conn` the same methods.
///
/// ```
/// use ferrosocket::SocketAddrs;
/// fn describe(transport: &impl SocketAddrs) -> String {
///     match (transport.local_addr(), transport.peer_addr()) {
///         (Ok(local), Ok(peer)) => format!("{local} <-> {peer}"),
///         _ => "not connected".to_owned(),
///     }
/// }
/// ```
pub trait SocketAddrs {
    /// The address of the remote end.
    fn peer_addr(&self) -> io::Result<SocketAddr>;
    /// The address of our end.
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

impl SocketAddrs for tokio::net::TcpStream {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        tokio::net::TcpStream::peer_addr(self)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        tokio::net::TcpStream::local_addr(self)
    }
}

impl<T: SocketAddrs + ?Sized> SocketAddrs for Box<T> {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        (**self).peer_addr()
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        (**self).local_addr()
    }
}

#[cfg(feature = "rustls")]
impl<S: SocketAddrs> SocketAddrs for tokio_rustls::client::TlsStream<S> {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.get_ref().0.peer_addr()
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.get_ref().0.local_addr()
    }
}

#[cfg(feature = "rustls")]
impl<S: SocketAddrs> SocketAddrs for tokio_rustls::server::TlsStream<S> {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.get_ref().0.peer_addr()
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.get_ref().0.local_addr()
    }
}

#[cfg(feature = "rustls")]
impl<S: SocketAddrs> SocketAddrs for tokio_rustls::TlsStream<S> {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.get_ref().0.peer_addr()
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.get_ref().0.local_addr()
    }
}
