//! The server side of the opening handshake.

mod callback;
mod decision;
mod protocol;

pub use callback::{Accept, PeerAddr, Reject, UpgradeRequest};
pub use decision::{Refusal, Upgrade};
pub use protocol::ConnectProtocol;

use crate::conn::{Conn, ConnOptions, conn_options_setters};
use crate::error::{Error, TimeoutKind};
use crate::slot::ConnSlot;
use bytes::{Bytes, BytesMut};
use ferrosocket_proto::{HandshakeError, Limits};
use ferrosocket_proto::{Rejection, ServerHandshake, check_same_origin};
use http::header::{CONNECTION, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode, request};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

type OriginCheck = Arc<dyn Fn(&request::Parts) -> bool + Send + Sync>;
type ErrorResponse = Arc<dyn Fn(StatusCode, &HandshakeError) -> http::Response<Bytes> + Send + Sync>;

#[derive(Clone)]
struct Inner {
    handshake: ServerHandshake,
    handshake_timeout: Option<Duration>,
    options: Arc<ConnOptions>,
    check_origin: Option<OriginCheck>,
    error_response: Option<ErrorResponse>,
    response_headers: HeaderMap,
    on_request: Option<callback::OnRequest>,
    max_connections: Option<usize>,
    live: Arc<AtomicUsize>,
}

/// Turns HTTP/1.1 upgrade requests into WebSocket connections.
///
/// Cheap to clone and safe to share between tasks. Every option has a safe default; the
/// options of the connections themselves are a [`ConnOptions`], the same as the
/// [`Dialer`](crate::Dialer)'s (see [`options`](Self::options)):
///
/// | option | default | why |
/// |---|---|---|
/// | [`handshake_timeout`](Self::handshake_timeout) | 10 s | a client that sends its request slowly must not hold a connection (slowloris) |
/// | [`check_origin`](Self::check_origin) | same origin (no `Origin` header: allowed) | stops other sites' pages from opening connections with the user's cookies (CSRF) |
/// | [`max_message_size`](Self::max_message_size) | 64 MiB | finite: a peer cannot make us allocate without bound |
/// | [`max_frame_size`](Self::max_frame_size) | 16 MiB | bounds one frame |
/// | [`max_header_bytes`](Self::max_header_bytes) | 16 KiB (431 beyond) | bounds the request head |
/// | [`max_connections`](Self::max_connections) | none (503 beyond, when set) | the descriptor limit bounds it; set it to shed load early |
/// | [`read_buffer_size`](Self::read_buffer_size) | 64 KiB | a burst of frames per read; freed whenever a read would block, so idle connections hold none |
/// | [`write_buffer_size`](Self::write_buffer_size) | 64 KiB | queued bytes that trigger a write during [`Conn::feed`] |
/// | [`close_timeout`](Self::close_timeout) | 10 s | a peer that never answers our close must not hold the connection |
/// | [`keepalive`](Self::keepalive) | off | the application chooses its liveness policy (the CLI turns it on) |
/// | [`idle_timeout`](Self::idle_timeout) | off | idle connections are legitimate in many protocols |
/// | [`slow_peer_policy`](Self::slow_peer_policy) | close with 1008 after 60 s without write progress | memory stays bounded either way; this frees the connection |
/// | [`max_write_buffer_size`](Self::max_write_buffer_size) | 4 MiB | unwritten output beyond which the connection stops reading |
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use ferrosocket::Upgrader;
/// let upgrader = Upgrader::new().subprotocols(["chat.v1"]);
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// loop {
///     let (stream, _) = listener.accept().await?;
///     let upgrader = upgrader.clone();
///     tokio::spawn(async move {
///         let Ok(mut conn) = upgrader.accept(stream).await else { return };
///         while let Ok(msg) = conn.recv().await {
///             if conn.send(msg).await.is_err() { break }
///         }
///     });
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct Upgrader {
    inner: Arc<Inner>,
}

impl Default for Upgrader {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Upgrader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upgrader")
            .field("subprotocols", &self.inner.handshake.subprotocols_ref())
            .field("handshake_timeout", &self.inner.handshake_timeout)
            .field("config", &self.inner.options.config)
            .finish_non_exhaustive()
    }
}

/// An HTTP request head read from a raw transport, with the bytes that followed it.
#[derive(Debug)]
pub struct IncomingRequest {
    /// The request head.
    pub request: http::Request<()>,
    /// Bytes received after the head (a first WebSocket frame may arrive with the request).
    pub leftover: BytesMut,
}

impl IncomingRequest {
    /// Records the peer's address in the request (as a [`PeerAddr`] extension), so that the
    /// [`on_request`](Upgrader::on_request) callback sees it when this request is upgraded.
    pub fn set_peer_addr(&mut self, addr: SocketAddr) {
        self.request.extensions_mut().insert(PeerAddr(addr));
    }
}

impl Upgrader {
    /// An upgrader with the defaults in the table above.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                handshake: ServerHandshake::new(),
                handshake_timeout: Some(Duration::from_secs(10)),
                options: Arc::new(ConnOptions::default()),
                check_origin: None,
                error_response: None,
                response_headers: HeaderMap::new(),
                on_request: None,
                max_connections: None,
                live: Arc::new(AtomicUsize::new(0)),
            }),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut Inner)) -> Self {
        f(Arc::make_mut(&mut self.inner));
        self
    }

    /// Changes the connection options, and the handshake's compression with them.
    fn with_options(self, f: impl FnOnce(ConnOptions) -> ConnOptions) -> Self {
        self.with(|i| {
            let options = Arc::make_mut(&mut i.options);
            *options = f(std::mem::take(options));
            i.handshake = i.handshake.clone().deflate(options.deflate.clone());
        })
    }

    fn options_ref(&self) -> &ConnOptions {
        &self.inner.options
    }

    conn_options_setters!();

    /// How long the whole handshake (reading the request, writing the answer) may take.
    /// `None` waits forever (not recommended).
    pub fn handshake_timeout(self, timeout: Option<Duration>) -> Self {
        self.with(|i| i.handshake_timeout = timeout)
    }

    /// Subprotocols the server supports, most preferred first. The first one of these the
    /// client offers is chosen; none in common means none is chosen (not an error).
    pub fn subprotocols<I, S>(self, protocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let hs = self.inner.handshake.clone().subprotocols(protocols);
        self.with(|i| i.handshake = hs)
    }

    /// Builds the HTTP response sent when a handshake is refused. The
    /// default is a short plain-text body with the status and the reason.
    pub fn error_response(
        self,
        f: impl Fn(StatusCode, &HandshakeError) -> http::Response<Bytes> + Send + Sync + 'static,
    ) -> Self {
        self.with(|i| i.error_response = Some(Arc::new(f)))
    }

    /// Decides whether a request's `Origin` is acceptable; refused
    /// requests get 403. The default accepts requests without `Origin` and those whose
    /// `Origin` host equals the `Host` header. To accept any origin: `.check_origin(|_| true)`.
    pub fn check_origin(self, f: impl Fn(&request::Parts) -> bool + Send + Sync + 'static) -> Self {
        self.with(|i| i.check_origin = Some(Arc::new(f)))
    }

    /// Adds a header to every 101 response (e.g. `Set-Cookie`). For a header on one
    /// connection only, use [`on_request`](Self::on_request) and [`Accept::header`].
    pub fn response_header(self, name: HeaderName, value: HeaderValue) -> Self {
        self.with(|i| {
            i.response_headers.append(name, value);
        })
    }

    /// Decides, for each valid upgrade request, whether and how to upgrade it: check a token
    /// or a cookie, refuse with any status, choose the subprotocol, add headers.
    ///
    /// The callback runs after the handshake was validated and the origin check passed, on both
    /// paths ([`accept`](Self::accept), [`accept_from`](Self::accept_from) and
    /// [`upgrade`](Self::upgrade)). It sees the request ([`UpgradeRequest`]: method, path,
    /// query, headers, cookies, offered subprotocols and extensions, peer address when known)
    /// and returns
    /// - `Ok(`[`Accept`]`)`: upgrade, optionally choosing the subprotocol among those the client
    ///   offered (overriding [`subprotocols`](Self::subprotocols)) and adding headers to this
    ///   connection's 101 only;
    /// - `Err(`[`Reject`]`)`: answer with that status, headers and body (`Connection: close`,
    ///   `Content-Length`), close the transport, and return [`Error::Rejected`].
    ///
    /// Why a `Result` and not a `&mut` decision object: accepting and refusing are exclusive,
    /// and the type says so (no "rejected, but with a subprotocol chosen" state to define);
    /// `?` refuses early (`req.cookie("session").ok_or(Reject::new(StatusCode::FORBIDDEN))?`);
    /// and [`Error::Rejected`] carries the status the callback chose. A decision the handshake
    /// cannot honour (a subprotocol the client did not offer, a header the handshake writes
    /// itself, a refusal below 300) is a bug in the callback: the client gets 500 Internal
    /// Server Error and the upgrade returns [`Error::BadDecision`].
    ///
    /// The callback is synchronous: keep it quick and do
    /// no blocking I/O in it. For an asynchronous check (a database lookup), use
    /// [`read_request`](Self::read_request), check, then [`upgrade`](Self::upgrade). Setting it
    /// again replaces it; clones of the upgrader share it.
    ///
    /// A token in the query string, driven over an in-memory pipe:
    /// ```
    /// use ferrosocket::{Accept, Error, Reject, Upgrader};
    /// use http::StatusCode;
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let upgrader = Upgrader::new().on_request(|req| {
    ///     match req.query_param("token") {
    ///         Some(token) if token == "s3cret" => Ok(Accept::new()),
    ///         _ => Err(Reject::new(StatusCode::UNAUTHORIZED).body("bad token\n")),
    ///     }
    /// });
    /// let request = |target: &str| {
    ///     format!(
    ///         "GET {target} HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
    ///          Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    ///          Sec-WebSocket-Version: 13\r\n\r\n"
    ///     )
    /// };
    ///
    /// // The right token: 101 Switching Protocols.
    /// let (mut client, server) = tokio::io::duplex(4096);
    /// client.write_all(request("/ws?token=s3cret").as_bytes()).await?;
    /// let conn = upgrader.accept(server).await?;
    /// let mut head = [0u8; 34];
    /// client.read_exact(&mut head).await?;
    /// assert_eq!(&head, b"HTTP/1.1 101 Switching Protocols\r\n");
    /// drop(conn);
    ///
    /// // A wrong token: 401 with the callback's body, then the connection is closed.
    /// let (mut client, server) = tokio::io::duplex(4096);
    /// client.write_all(request("/ws?token=guess").as_bytes()).await?;
    /// let err = upgrader.accept(server).await.unwrap_err();
    /// assert!(matches!(err, Error::Rejected { status } if status == StatusCode::UNAUTHORIZED));
    /// let mut response = String::new();
    /// client.read_to_string(&mut response).await?;
    /// assert!(response.starts_with("HTTP/1.1 401 Unauthorized\r\n"));
    /// assert!(response.ends_with("\r\n\r\nbad token\n"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_request(
        self,
        f: impl Fn(&UpgradeRequest<'_>) -> Result<Accept, Reject> + Send + Sync + 'static,
    ) -> Self {
        self.with(|i| i.on_request = Some(Arc::new(f)))
    }

    /// Largest request head accepted; bigger ones are answered with 431.
    pub fn max_header_bytes(self, bytes: usize) -> Self {
        let limits = Limits {
            max_header_bytes: bytes,
            ..*self.inner.handshake.limits_ref()
        };
        let hs = self.inner.handshake.clone().limits(limits);
        self.with(|i| i.handshake = hs)
    }

    /// Most connections this upgrader (and its clones) keeps open at once; beyond it, upgrade
    /// requests are answered with 503 Service Unavailable. `None` (default): no limit (the
    /// process's file-descriptor limit is the bound).
    pub fn max_connections(self, limit: Option<usize>) -> Self {
        self.with(|i| i.max_connections = limit)
    }

    /// How many connections made by this upgrader (and its clones) are open now.
    pub fn live_connections(&self) -> usize {
        self.inner.live.load(Ordering::SeqCst)
    }

    /// Reads the handshake request from `io` and upgrades it, or answers with an error status.
    ///
    /// # Errors
    /// [`Error::Handshake`] when the request was refused (the error response was sent),
    /// [`Error::Rejected`] and [`Error::BadDecision`] from the [`on_request`](Self::on_request)
    /// callback, [`Error::Timeout`] after the handshake timeout, [`Error::Io`] on transport errors.
    pub async fn accept<S>(&self, mut io: S) -> Result<Conn<S>, Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let work = async {
            let incoming = self.read_request_inner(&mut io).await?;
            self.upgrade_inner(io, &incoming.request, &incoming.leftover)
                .await
        };
        self.timed(work).await
    }

    /// [`accept`](Self::accept) for a transport whose peer address is known (from
    /// `TcpListener::accept`): the [`on_request`](Self::on_request) callback sees it as
    /// [`UpgradeRequest::peer_addr`].
    ///
    /// # Errors
    /// As [`accept`](Self::accept).
    pub async fn accept_from<S>(&self, mut io: S, peer: SocketAddr) -> Result<Conn<S>, Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let work = async {
            let mut incoming = self.read_request_inner(&mut io).await?;
            incoming.set_peer_addr(peer);
            self.upgrade_inner(io, &incoming.request, &incoming.leftover)
                .await
        };
        self.timed(work).await
    }

    /// Reads one HTTP request head from a raw transport, so that a server can route on it:
    /// upgrade it with [`upgrade`](Self::upgrade), or answer plain HTTP itself. A malformed or
    /// oversized head is answered (400/431) before the error is returned.
    pub async fn read_request<S>(&self, io: &mut S) -> Result<IncomingRequest, Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.timed(self.read_request_inner(io)).await
    }

    /// Upgrades a request that was already read (see [`read_request`](Self::read_request)).
    /// `leftover` is whatever arrived after the request head. The
    /// [`on_request`](Self::on_request) callback runs here too; it sees the peer address when
    /// the request carries a [`PeerAddr`] ([`IncomingRequest::set_peer_addr`]).
    ///
    /// # Errors
    /// As [`accept`](Self::accept).
    pub async fn upgrade<S>(
        &self,
        io: S,
        request: &http::Request<()>,
        leftover: &[u8],
    ) -> Result<Conn<S>, Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.timed(self.upgrade_inner(io, request, leftover)).await
    }

    async fn timed<T>(&self, work: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
        match self.inner.handshake_timeout {
            Some(t) => tokio::time::timeout(t, work)
                .await
                .unwrap_or(Err(Error::Timeout(TimeoutKind::Handshake))),
            None => work.await,
        }
    }

    async fn read_request_inner<S>(&self, io: &mut S) -> Result<IncomingRequest, Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut buf = BytesMut::with_capacity(1024);
        loop {
            match self.inner.handshake.read_request(&mut buf) {
                Ok(Some(request)) => {
                    return Ok(IncomingRequest {
                        request,
                        leftover: buf,
                    });
                }
                Ok(None) => {}
                Err(rejection) => return Err(self.reject(io, rejection).await),
            }
            if buf.capacity() - buf.len() < 512 {
                buf.reserve(1024);
            }
            if io.read_buf(&mut buf).await? == 0 {
                return Err(Error::Closed(crate::CloseError::abnormal(
                    "connection closed before the handshake request was complete",
                )));
            }
        }
    }

    /// The handshake timeout, for integrations that read the request themselves (HTTP/3).
    #[cfg(feature = "http3")]
    pub(crate) fn handshake_timeout_value(&self) -> Option<Duration> {
        self.inner.handshake_timeout
    }

    /// The shutdown switch of the connections' options, if one is set.
    #[cfg(feature = "http3")]
    pub(crate) fn shutdown_switch(&self) -> Option<&crate::Shutdown> {
        self.inner.options.shutdown.as_ref()
    }

    /// Decides an upgrade request without any I/O: validates the handshake (RFC 6455 §4.2.1 for
    /// HTTP/1.1; an extended CONNECT for HTTP/2 and HTTP/3, RFC 8441 and RFC 9220, answered
    /// `200` instead of `101`: see
    /// [`ServerHandshake::validate_extended_connect`](ferrosocket_proto::ServerHandshake::validate_extended_connect)
    /// for what is checked and the statuses, and [`ConnectProtocol`] for the `:protocol`),
    /// takes a place under the [connection limit](Self::max_connections), runs the origin
    /// check, negotiates the subprotocol and compression, adds the
    /// [response headers](Self::response_header) and runs the [`on_request`](Self::on_request)
    /// callback. `peer` is the client's address when known (the callback sees it; a
    /// [`PeerAddr`] in the request's extensions is used otherwise).
    ///
    /// Every upgrade path runs this: [`accept`](Self::accept) and [`upgrade`](Self::upgrade)
    /// write the answer to their transport, the `hyper` feature's `upgrade_hyper` hands it to
    /// hyper. Use it for any other HTTP server: send [`Upgrade::response`], then
    /// [`Upgrade::into_conn`] over the upgraded transport; or send [`Refusal::response`].
    ///
    /// # Errors
    /// A [`Refusal`] carrying the response to send and the error to report (see its table).
    ///
    /// ```
    /// use ferrosocket::Upgrader;
    /// use http::StatusCode;
    ///
    /// let upgrader = Upgrader::new().subprotocols(["chat"]);
    /// let request = http::Request::get("/ws")
    ///     .header("host", "example.com")
    ///     .header("upgrade", "websocket")
    ///     .header("connection", "Upgrade")
    ///     .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
    ///     .header("sec-websocket-version", "13")
    ///     .header("sec-websocket-protocol", "chat")
    ///     .body(())?;
    /// let (parts, ()) = request.into_parts();
    /// let upgrade = upgrader.decide(&parts, None).expect("a valid request");
    /// assert_eq!(upgrade.response().status(), StatusCode::SWITCHING_PROTOCOLS);
    /// assert_eq!(upgrade.subprotocol(), Some("chat"));
    ///
    /// let (parts, ()) = http::Request::get("/ws").body(())?.into_parts();
    /// let refusal = upgrader.decide(&parts, None).unwrap_err();
    /// assert_eq!(refusal.status(), StatusCode::BAD_REQUEST); // no Upgrade header
    /// # Ok::<(), http::Error>(())
    /// ```
    pub fn decide(&self, parts: &request::Parts, peer: Option<SocketAddr>) -> Result<Upgrade, Refusal> {
        let slot = match ConnSlot::take(&self.inner.live, self.inner.max_connections) {
            Some(slot) => slot,
            None => return Err(self.refusal(Rejection::from(HandshakeError::TooManyConnections))),
        };
        let handshake = &self.inner.handshake;
        let mut accepted = if parts.version >= http::Version::HTTP_2 {
            handshake.validate_extended_connect(parts, protocol::of(parts))
        } else {
            handshake.validate(parts)
        }
        .map_err(|r| self.refusal(r))?;
        let origin_ok = match &self.inner.check_origin {
            Some(check) => check(parts),
            None => check_same_origin(parts).is_ok(),
        };
        if !origin_ok {
            return Err(self.refusal(Rejection::from(HandshakeError::OriginNotAllowed)));
        }
        for (name, value) in &self.inner.response_headers {
            accepted
                .response
                .headers_mut()
                .append(name.clone(), value.clone());
        }
        if let Some(on_request) = &self.inner.on_request {
            let req = UpgradeRequest::with_peer(parts, peer);
            let applied = match on_request(&req) {
                Ok(accept) => accept.apply(&req, &mut accepted),
                Err(reject) => {
                    let status = reject.status();
                    match reject.into_response() {
                        Ok(response) => {
                            return Err(Refusal::new(response, Error::Rejected { status }));
                        }
                        Err(e) => Err(e),
                    }
                }
            };
            if let Err(e) = applied {
                return Err(Refusal::new(callback::internal_error(), Error::BadDecision(e)));
            }
        }
        crate::metrics::handshake_accepted(parts.version);
        Ok(Upgrade {
            response: accepted.response,
            negotiated: accepted.negotiated,
            options: self.inner.options.clone(),
            slot: Some(slot),
        })
    }

    async fn upgrade_inner<S>(
        &self,
        mut io: S,
        request: &http::Request<()>,
        leftover: &[u8],
    ) -> Result<Conn<S>, Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let (parts, ()) = request.clone().into_parts();
        match self.decide(&parts, None) {
            Ok(upgrade) => {
                let mut head = Vec::with_capacity(256);
                upgrade.write_response(&mut head);
                io.write_all(&head).await?;
                io.flush().await?;
                Ok(upgrade.into_conn(io, leftover))
            }
            Err(refusal) => Err(send_refusal(&mut io, refusal).await),
        }
    }

    /// Answers a handshake the core refused (before or after the request head was read).
    async fn reject<S>(&self, io: &mut S, rejection: Rejection) -> Error
    where
        S: AsyncWrite + Unpin,
    {
        send_refusal(io, self.refusal(rejection)).await
    }

    /// The response to a handshake the core refused: the upgrader's
    /// [`error_response`](Self::error_response), or the core's short plain-text answer.
    fn refusal(&self, rejection: Rejection) -> Refusal {
        let response = match &self.inner.error_response {
            Some(f) => {
                let resp = f(rejection.status, &rejection.error);
                let mut headers = resp.headers().clone();
                for (name, value) in &rejection.headers() {
                    headers.entry(name.clone()).or_insert(value.clone());
                }
                callback::response(resp.status(), headers, resp.body().clone())
            }
            None => {
                let mut headers = rejection.headers();
                headers.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                headers.insert(CONNECTION, HeaderValue::from_static("close"));
                let body = Bytes::from(format!("{}\n", rejection.error));
                callback::response(rejection.status, headers, body)
            }
        };
        Refusal::new(response, Error::Handshake(rejection.error))
    }
}

/// Writes a refusal, shuts the transport down and returns the error to report.
async fn send_refusal<S: AsyncWrite + Unpin>(io: &mut S, refusal: Refusal) -> Error {
    let mut out = Vec::with_capacity(256);
    refusal.write_response(&mut out);
    send_and_close(io, &out).await;
    refusal.into_error()
}

/// Writes a refusal and shuts the transport down. The peer may already be gone; the error the
/// caller returns is what matters, so write errors are ignored.
async fn send_and_close<S: AsyncWrite + Unpin>(io: &mut S, response: &[u8]) {
    let _ = io.write_all(response).await;
    let _ = io.flush().await;
    let _ = io.shutdown().await;
}
