//! Upgrades of hyper 1 requests (feature `hyper`): a hyper-util server (or a framework on
//! hyper) answers the request with the 101 that [`Upgrader::decide`] built, and hyper hands
//! the connection over once that response is written.
//!
//! With the feature `http2` the same calls accept a WebSocket opened over hyper's HTTP/2
//! server (RFC 8441): an extended CONNECT answered `200`, after which hyper hands over the
//! HTTP/2 stream, flow-controlled on its own, as the same [`Upgraded`] type. The server must
//! advertise the extension: `hyper::server::conn::http2::Builder::enable_connect_protocol()`
//! (with hyper-util's auto builder: `builder.http2().enable_connect_protocol()`).
//!
//! Give that server a connection window several times a stream's (`HTTP2_CONNECTION_WINDOW`
//! says why).
//!
//! The bytes hyper read past the request head (a client may send its first frame in the same
//! packet as the request) stay in hyper's [`Upgraded`], which replays them before reading the
//! socket again, so the connection sees them first.

use crate::conn::Conn;
use crate::error::Error;
use crate::upgrader::{Refusal, Upgrade, Upgrader};
use ::hyper::upgrade::{OnUpgrade, Upgraded};
use bytes::Bytes;
use http::request;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

/// The receive window per HTTP/2 stream for a server or client carrying WebSockets (1 MiB):
/// what one WebSocket that is not read may leave buffered, and so how much one may have in
/// flight per round trip. The [`Dialer`](crate::Dialer) uses it; see
/// [`HTTP2_CONNECTION_WINDOW`] for a server.
#[cfg(feature = "http2")]
#[cfg_attr(docsrs, doc(cfg(feature = "http2")))]
pub const HTTP2_STREAM_WINDOW: u32 = 1 << 20;

/// The receive window per HTTP/2 connection for a server or client carrying WebSockets: 16
/// stream windows. Each stream is flow-controlled on its own, but the connection's window is
/// shared by all of them, and input a WebSocket has not read yet holds its share.
///
/// hyper's server gives a connection the same window as one stream (1 MiB each). Then a
/// single WebSocket whose handler stops reading (its sends wait on a slow client, say) holds
/// the whole connection window with its unread input, and the client's other WebSockets on
/// that connection can no longer send at all. With these values it takes 16 such WebSockets.
/// The [`Dialer`](crate::Dialer) uses them; set them on a server that accepts WebSockets over
/// HTTP/2:
///
/// ```
/// use hyper_util::rt::TokioExecutor;
///
/// let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
/// builder
///     .enable_connect_protocol()
///     .initial_stream_window_size(ferrosocket::HTTP2_STREAM_WINDOW)
///     .initial_connection_window_size(ferrosocket::HTTP2_CONNECTION_WINDOW);
/// ```
#[cfg(feature = "http2")]
#[cfg_attr(docsrs, doc(cfg(feature = "http2")))]
pub const HTTP2_CONNECTION_WINDOW: u32 = 16 * HTTP2_STREAM_WINDOW;

/// A connection over a hyper upgrade: what [`HyperUpgrade`] resolves to.
pub type HyperConn = Conn<TokioIo<Upgraded>>;

/// The connection of an upgrade answered through hyper: a future resolving to a [`HyperConn`]
/// once hyper has written the 101 response and given the transport back.
///
/// Spawn it (`tokio::spawn`) and return the response from the service: it completes only after
/// the response was sent. It fails with [`Error::Io`] when hyper could not hand the connection
/// over (the client went away, or the response returned was not the 101). Polling it again
/// after it completed returns [`Error::AlreadyClosed`].
#[must_use = "the connection is only made when this future is awaited"]
pub struct HyperUpgrade {
    on_upgrade: OnUpgrade,
    upgrade: Option<Upgrade>,
}

impl std::fmt::Debug for HyperUpgrade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HyperUpgrade")
            .field("upgrade", &self.upgrade)
            .finish_non_exhaustive()
    }
}

impl HyperUpgrade {
    /// What the handshake agreed on (subprotocol, compression), before the connection exists;
    /// `None` once the future completed.
    pub fn upgrade(&self) -> Option<&Upgrade> {
        self.upgrade.as_ref()
    }
}

impl Future for HyperUpgrade {
    type Output = Result<HyperConn, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.upgrade.is_none() {
            return Poll::Ready(Err(Error::AlreadyClosed));
        }
        let upgraded = ready!(Pin::new(&mut self.on_upgrade).poll(cx));
        let Some(upgrade) = self.upgrade.take() else {
            return Poll::Ready(Err(Error::AlreadyClosed));
        };
        let upgraded = upgraded.map_err(|e| Error::Io(std::io::Error::other(e)))?;
        // hyper's `Upgraded` replays what it read past the request head, so nothing is left over.
        Poll::Ready(Ok(upgrade.into_conn(TokioIo::new(upgraded), &[])))
    }
}

impl Upgrader {
    /// Upgrades a hyper 1 request (HTTP/1.1, served by hyper-util or any server on hyper with
    /// upgrades enabled; with the feature `http2`, also an HTTP/2 extended CONNECT): returns
    /// the `101 Switching Protocols` response (`200 OK` over HTTP/2) for the service to
    /// return and a [`HyperUpgrade`] that resolves to the connection once hyper sent it, or
    /// the [`Refusal`] whose response to return instead.
    ///
    /// Every option of the upgrader applies, as on [`accept`](Self::accept): the origin check,
    /// subprotocols, compression, limits, buffers, keepalive, idle timeout, slow-peer policy,
    /// [shutdown](crate::ConnOptions::shutdown), [`max_connections`](Self::max_connections)
    /// and the [`on_request`](Self::on_request) callback, which sees the peer address when the
    /// request's extensions carry a [`PeerAddr`](crate::PeerAddr) (insert one in your service,
    /// from the address `TcpListener::accept` gave you). The handshake timeout does not: hyper
    /// has read the request already (use its `header_read_timeout`).
    ///
    /// Over HTTP/2, give hyper's server the windows of `ferrosocket::HTTP2_CONNECTION_WINDOW`:
    /// with hyper's defaults one WebSocket that is not read stops its siblings.
    ///
    /// The request's body is not read: an upgrade request has none.
    ///
    /// # Errors
    /// A [`Refusal`]: its response (status, headers, body) is for the client, its error for
    /// you; `refusal.into_response().map(Full::new)` is a hyper response. A request without
    /// hyper's upgrade handle (not from a hyper server) is refused with 426 and
    /// [`Error::Io`] once it passed every other check. Over HTTP/2 the statuses are those of
    /// [`ServerHandshake::validate_extended_connect`](ferrosocket_proto::ServerHandshake::validate_extended_connect)
    /// (405, 501, 400), and an extended CONNECT reaches this only if the feature `http2` is on
    /// (hyper's `:protocol` is read from the request's extensions).
    ///
    /// ```no_run
    /// use bytes::Bytes;
    /// use ferrosocket::Upgrader;
    /// use http_body_util::{Either, Empty, Full};
    /// use hyper::{Request, Response, body::Incoming};
    ///
    /// async fn serve(
    ///     upgrader: Upgrader,
    ///     req: Request<Incoming>,
    /// ) -> Result<Response<Either<Empty<Bytes>, Full<Bytes>>>, std::convert::Infallible> {
    ///     match upgrader.upgrade_hyper(req) {
    ///         Ok((response, upgrade)) => {
    ///             tokio::spawn(async move {
    ///                 let Ok(mut conn) = upgrade.await else { return };
    ///                 while let Ok(msg) = conn.recv().await {
    ///                     if conn.send(msg).await.is_err() {
    ///                         break;
    ///                     }
    ///                 }
    ///             });
    ///             Ok(response.map(Either::Left))
    ///         }
    ///         Err(refusal) => Ok(refusal.into_response().map(|b| Either::Right(Full::new(b)))),
    ///     }
    /// }
    /// ```
    pub fn upgrade_hyper<B>(
        &self,
        req: ::hyper::Request<B>,
    ) -> Result<(http::Response<Empty<Bytes>>, HyperUpgrade), Refusal> {
        let (mut parts, _body) = req.into_parts();
        self.upgrade_hyper_parts(&mut parts)
    }

    /// [`upgrade_hyper`](Self::upgrade_hyper) for a request already split into its head and
    /// body (what frameworks' extractors see). Takes hyper's upgrade handle out of the
    /// head's extensions.
    ///
    /// # Errors
    /// As [`upgrade_hyper`](Self::upgrade_hyper).
    pub fn upgrade_hyper_parts(
        &self,
        parts: &mut request::Parts,
    ) -> Result<(http::Response<Empty<Bytes>>, HyperUpgrade), Refusal> {
        let on_upgrade = parts.extensions.remove::<OnUpgrade>();
        let upgrade = self.decide(parts, None)?;
        let Some(on_upgrade) = on_upgrade else {
            return Err(not_upgradable());
        };
        Ok(hyper_parts(upgrade, on_upgrade))
    }
}

/// The 101 as a hyper response, and the future of its connection.
pub(crate) fn hyper_parts(
    upgrade: Upgrade,
    on_upgrade: OnUpgrade,
) -> (http::Response<Empty<Bytes>>, HyperUpgrade) {
    let (head, ()) = upgrade.response().clone().into_parts();
    let response = http::Response::from_parts(head, Empty::new());
    (
        response,
        HyperUpgrade {
            on_upgrade,
            upgrade: Some(upgrade),
        },
    )
}

/// The refusal of a request hyper cannot upgrade.
fn not_upgradable() -> Refusal {
    let mut response = http::Response::new(Bytes::from_static(
        b"this connection cannot be upgraded (HTTP/1.1 with upgrades, or HTTP/2 with extended CONNECT, is needed)\n",
    ));
    *response.status_mut() = http::StatusCode::UPGRADE_REQUIRED;
    let headers = response.headers_mut();
    headers.insert(
        http::header::SEC_WEBSOCKET_VERSION,
        http::HeaderValue::from_static("13"),
    );
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Refusal::new(
        response,
        Error::Io(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "the request carries no hyper upgrade handle: serve it with hyper's HTTP/1.1 \
             connection with upgrades enabled, or its HTTP/2 connection",
        )),
    )
}
