//! A [`WebSocketUpgrade`] extractor for axum 0.8, built on ferrosocket: the ergonomics of
//! `axum::extract::ws` (`protocols`, `on_upgrade`, `on_failed_upgrade`, size limits), with
//! ferrosocket's connection ([`WebSocket`] is a [`ferrosocket::Conn`]): permessage-deflate
//! with context takeover, an origin check that is on by default, per-request decisions,
//! keepalive, idle and slow-peer timers, graceful shutdown and connection limits.
//!
//! The crate is separate from `ferrosocket` so that axum's major versions never force
//! ferrosocket's; it owns no protocol logic: the decision is
//! [`Upgrader::decide`](ferrosocket::Upgrader::decide), the upgrade is ferrosocket's `hyper`
//! feature.
//!
//! ```no_run
//! use axum::{Router, response::Response, routing::any};
//! use ferrosocket_axum::{WebSocket, WebSocketUpgrade};
//!
//! async fn ws(ws: WebSocketUpgrade) -> Response {
//!     ws.protocols(["chat"]).compression(true).on_upgrade(echo)
//! }
//!
//! async fn echo(mut socket: WebSocket) {
//!     while let Ok(msg) = socket.recv().await {
//!         if socket.send(msg).await.is_err() {
//!             break;
//!         }
//!     }
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! // `any`: a GET over HTTP/1.1, a CONNECT over HTTP/2.
//! let app = Router::new().route("/ws", any(ws));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! # Shared configuration
//! Every setter of the extractor configures a [`ferrosocket::Upgrader`] for this request. To
//! configure one for the whole app (and share its [connection
//! limit](ferrosocket::Upgrader::max_connections) and [shutdown](ferrosocket::Shutdown)), put
//! it in the request extensions with `axum::Extension(upgrader)` (the extractor starts from
//! it), or pass it explicitly with [`WebSocketUpgrade::with_upgrader`] (e.g. from
//! `State`).
//!
//! # HTTP/2
//! With the `http2` feature (on by default) the extractor also accepts WebSockets over HTTP/2
//! (RFC 8441): an extended CONNECT with `:protocol websocket`, answered `200` on its own
//! stream, many WebSockets sharing one TCP connection. `axum::serve` allows extended CONNECT
//! when axum's `http2` feature is on; browsers use it over TLS when the server offers `h2`.
//! The handler and the [`WebSocket`] are the same as over HTTP/1.1.
//!
//! `axum::serve` keeps hyper's flow-control windows: 1 MiB per stream and 1 MiB for the whole
//! connection. Input a WebSocket's handler has not read holds the connection's window too, so
//! one handler that stops reading (its sends wait on a slow client, say) can stop the
//! client's other WebSockets on that connection. Where clients open many WebSockets per
//! connection, serve the router with hyper-util's builder and
//! `initial_connection_window_size(ferrosocket::HTTP2_CONNECTION_WINDOW)` (16 streams'
//! worth) instead.
//!
//! # Refusals
//! A request that is not a WebSocket upgrade is refused by the extractor with the status
//! ferrosocket's handshake rules choose (400 without `Upgrade: websocket`, 405 for a method
//! other than GET, 426 for another protocol version; over HTTP/2: 405 for a method other
//! than CONNECT, 501 for another `:protocol`, ...), before the handler runs; take an
//! `Option<WebSocketUpgrade>` to serve something else instead. The checks that depend on the
//! configuration (origin: 403, the per-request callback, the connection limit: 503) run in
//! [`on_upgrade`](WebSocketUpgrade::on_upgrade), which then returns the refusal's response
//! and reports the error to [`on_failed_upgrade`](WebSocketUpgrade::on_failed_upgrade).

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use ferrosocket::proto::ServerHandshake;
use ferrosocket::{Accept, ConnOptions, ConnectProtocol, PeerAddr, Reject, UpgradeRequest, Upgrader};
use http::request::Parts;
use http::{HeaderValue, StatusCode};
use hyper::upgrade::OnUpgrade;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;

pub use ferrosocket::{self, CloseCode, CloseFrame, Error, Message};

/// The connection handed to [`WebSocketUpgrade::on_upgrade`]'s callback: a
/// [`ferrosocket::Conn`] over hyper's upgraded transport (`recv`, `send`, `feed`, `close`,
/// `split`, handlers, deadlines...).
pub type WebSocket = ferrosocket::HyperConn;

type OnFailed = Box<dyn FnOnce(Error) + Send>;

/// Extractor for a WebSocket upgrade: configure the connection, then answer with
/// [`on_upgrade`](Self::on_upgrade). See the [crate documentation](crate) for an example.
///
/// Defaults are [`ferrosocket::Upgrader`]'s (same-origin check, 64 MiB messages, 16 MiB
/// frames, no compression, no subprotocol), or those of the upgrader found in the request
/// extensions.
#[must_use = "call on_upgrade to answer the request"]
pub struct WebSocketUpgrade {
    upgrader: Upgrader,
    parts: Parts,
    on_failed: Option<OnFailed>,
}

impl fmt::Debug for WebSocketUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketUpgrade")
            .field("upgrader", &self.upgrader)
            .field("uri", &self.parts.uri)
            .finish_non_exhaustive()
    }
}

impl WebSocketUpgrade {
    fn map(mut self, f: impl FnOnce(Upgrader) -> Upgrader) -> Self {
        self.upgrader = f(self.upgrader);
        self
    }

    /// Starts over from this upgrader (replacing the settings made so far on this extractor):
    /// an app-wide configuration kept in state. Clones of an upgrader share its connection
    /// count, so its [`max_connections`](Upgrader::max_connections) holds across requests.
    pub fn with_upgrader(self, upgrader: Upgrader) -> Self {
        self.map(|_| upgrader)
    }

    /// Changes the upgrader with any of its setters (keepalive, idle timeout, shutdown,
    /// response headers, deflate settings...): `ws.map_upgrader(|u| u.keepalive(i, t))`.
    pub fn map_upgrader(self, f: impl FnOnce(Upgrader) -> Upgrader) -> Self {
        self.map(f)
    }

    /// Replaces the connection options at once (see [`ConnOptions`]).
    pub fn options(self, options: ConnOptions) -> Self {
        self.map(|u| u.options(options))
    }

    /// Subprotocols the server supports, most preferred first; the first one the client
    /// offered is chosen (none in common: none chosen, not an error). Read the choice with
    /// [`WebSocket::subprotocol`](ferrosocket::Conn::subprotocol).
    pub fn protocols<I>(self, protocols: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.map(|u| u.subprotocols(protocols))
    }

    /// Largest message accepted; bigger ones close the connection with 1009. Default 64 MiB.
    pub fn max_message_size(self, bytes: usize) -> Self {
        self.map(|u| u.max_message_size(Some(bytes)))
    }

    /// Largest frame accepted; bigger ones close the connection with 1009. Default 16 MiB.
    pub fn max_frame_size(self, bytes: usize) -> Self {
        self.map(|u| u.max_frame_size(Some(bytes)))
    }

    /// Bytes made room for before each read. Default 64 KiB (freed whenever a read would
    /// block, so idle connections hold none).
    pub fn read_buffer_size(self, bytes: usize) -> Self {
        self.map(|u| u.read_buffer_size(bytes))
    }

    /// Queued bytes that make [`feed`](ferrosocket::Conn::feed) write. Default 64 KiB.
    pub fn write_buffer_size(self, bytes: usize) -> Self {
        self.map(|u| u.write_buffer_size(bytes))
    }

    /// Most unwritten output before the connection stops reading from a peer that does not
    /// read. Default 4 MiB (axum's `max_write_buffer_size`).
    pub fn max_write_buffer_size(self, bytes: usize) -> Self {
        self.map(|u| u.max_write_buffer_size(bytes))
    }

    /// Negotiates permessage-deflate (RFC 7692, context takeover supported) when the client
    /// offers it. Default: off.
    pub fn compression(self, on: bool) -> Self {
        self.map(|u| u.enable_compression(on))
    }

    /// Decides whether the request's `Origin` is acceptable; refused requests get 403. The
    /// default accepts requests without `Origin` and those whose `Origin` host is the `Host`
    /// header (browsers on other sites cannot open connections with the user's cookies).
    pub fn check_origin(self, f: impl Fn(&Parts) -> bool + Send + Sync + 'static) -> Self {
        self.map(|u| u.check_origin(f))
    }

    /// Accepts every origin (for non-browser clients, or when another layer checks). Not
    /// for endpoints that rely on cookies: any web page could use the user's.
    pub fn allow_any_origin(self) -> Self {
        self.check_origin(|_| true)
    }

    /// Decides, for this request, whether and how to upgrade: the callback sees the request
    /// ([`UpgradeRequest`]: path, query, cookies, offered subprotocols, peer address when the
    /// app is served with `into_make_service_with_connect_info::<SocketAddr>()`) and returns
    /// an [`Accept`] (optionally choosing a subprotocol, adding headers) or a [`Reject`] (its
    /// status, headers and body are the response). See
    /// [`Upgrader::on_request`](Upgrader::on_request).
    pub fn on_request(
        self,
        f: impl Fn(&UpgradeRequest<'_>) -> Result<Accept, Reject> + Send + Sync + 'static,
    ) -> Self {
        self.map(|u| u.on_request(f))
    }

    /// Called with the error when the upgrade does not happen after the extractor accepted
    /// the request: a refusal in [`on_upgrade`](Self::on_upgrade) (origin, the per-request
    /// callback, the connection limit; its response is still sent) or a failure of hyper's
    /// upgrade once the 101 was returned (the client went away). The default logs it at
    /// debug level with `tracing`.
    pub fn on_failed_upgrade(mut self, f: impl FnOnce(Error) + Send + 'static) -> Self {
        self.on_failed = Some(Box::new(f));
        self
    }

    /// Answers the request: runs the configured checks and, when they pass, returns the
    /// `101 Switching Protocols` response and runs `callback` with the connection (in a task
    /// of its own) once hyper has sent it. When a check refuses, returns the refusal's
    /// response (403, 503, the callback's status...) and calls
    /// [`on_failed_upgrade`](Self::on_failed_upgrade).
    pub fn on_upgrade<C, Fut>(mut self, callback: C) -> Response
    where
        C: FnOnce(WebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let on_failed = self.on_failed.take();
        match self.upgrader.upgrade_hyper_parts(&mut self.parts) {
            Ok((response, upgrade)) => {
                tokio::spawn(async move {
                    match upgrade.await {
                        Ok(conn) => callback(conn).await,
                        Err(e) => failed(on_failed, e),
                    }
                });
                response.map(|_| Body::empty())
            }
            Err(refusal) => {
                let (response, error) = refusal.into_parts();
                failed(on_failed, error);
                response.map(Body::from)
            }
        }
    }
}

/// The request's `:protocol` pseudo-header: hyper's extension (feature `http2`), or a
/// [`ConnectProtocol`] a layer in front put in the extensions.
fn connect_protocol(parts: &Parts) -> Option<ConnectProtocol> {
    #[cfg(feature = "http2")]
    if let Some(p) = parts.extensions.get::<hyper::ext::Protocol>() {
        return Some(ConnectProtocol::new(p.as_str().to_owned()));
    }
    parts.extensions.get::<ConnectProtocol>().cloned()
}

fn failed(on_failed: Option<OnFailed>, error: Error) {
    match on_failed {
        Some(f) => f(error),
        None => tracing::debug!("websocket upgrade failed: {error}"),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WebSocketUpgrade {
    type Rejection = WebSocketUpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // HTTP/1.1: a GET with `Upgrade: websocket`. HTTP/2 (RFC 8441): an extended CONNECT
        // with `:protocol websocket`, which `axum::serve` enables with axum's `http2` feature.
        let protocol = connect_protocol(parts);
        let checked = if parts.version >= http::Version::HTTP_2 {
            ServerHandshake::new()
                .validate_extended_connect(parts, protocol.as_ref().map(ConnectProtocol::as_str))
        } else {
            ServerHandshake::new().validate(parts)
        };
        if let Err(rejection) = checked {
            let mut response = http::Response::new(Bytes::from(format!("{}\n", rejection.error)));
            *response.status_mut() = rejection.status;
            *response.headers_mut() = rejection.headers();
            return Err(WebSocketUpgradeRejection::new(
                response,
                rejection.error.to_string(),
            ));
        }
        let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
            let mut response = http::Response::new(Bytes::from_static(
                b"this connection cannot be upgraded (HTTP/1.1 with upgrades, or HTTP/2 with extended CONNECT, is needed)\n",
            ));
            *response.status_mut() = StatusCode::UPGRADE_REQUIRED;
            response.headers_mut().insert(
                http::header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
            return Err(WebSocketUpgradeRejection::new(
                response,
                "connection not upgradable".to_owned(),
            ));
        };
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| PeerAddr(c.0))
            .or_else(|| parts.extensions.get::<PeerAddr>().copied());
        let upgrader = parts.extensions.get::<Upgrader>().cloned().unwrap_or_default();
        // A head of our own: the request's, with only what the upgrade needs as extensions.
        let mut own = http::Request::new(());
        *own.method_mut() = parts.method.clone();
        *own.uri_mut() = parts.uri.clone();
        *own.version_mut() = parts.version;
        *own.headers_mut() = parts.headers.clone();
        own.extensions_mut().insert(on_upgrade);
        if let Some(protocol) = protocol {
            own.extensions_mut().insert(protocol);
        }
        if let Some(peer) = peer {
            own.extensions_mut().insert(peer);
        }
        Ok(Self {
            upgrader,
            parts: own.into_parts().0,
            on_failed: None,
        })
    }
}

/// Why [`WebSocketUpgrade`] refused a request before the handler ran (it is not a valid
/// WebSocket upgrade, or the connection cannot be upgraded); as a response: the status
/// ferrosocket's handshake rules chose, their headers (`Sec-WebSocket-Version: 13` with 426,
/// `Allow: GET` with 405) and the reason as plain text.
#[derive(Debug)]
pub struct WebSocketUpgradeRejection {
    response: http::Response<Bytes>,
    reason: String,
}

impl WebSocketUpgradeRejection {
    fn new(mut response: http::Response<Bytes>, reason: String) -> Self {
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        Self { response, reason }
    }

    /// The status of the response.
    pub fn status(&self) -> StatusCode {
        self.response.status()
    }

    /// Why the request was refused.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for WebSocketUpgradeRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "websocket upgrade refused with {}: {}",
            self.status(),
            self.reason
        )
    }
}

impl std::error::Error for WebSocketUpgradeRejection {}

impl IntoResponse for WebSocketUpgradeRejection {
    fn into_response(self) -> Response {
        self.response.map(Body::from)
    }
}
