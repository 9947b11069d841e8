//! The client side of the opening handshake: dial `ws://` and `wss://` URLs, directly, through
//! an `http://` or `https://` proxy, over a transport a hook makes, or run the handshake over a
//! transport the caller made.
//!
//! Every frame a client sends is masked with a fresh key from the operating system's CSPRNG
//! (`getrandom`, fetched 64 keys per system call by the core's `OsMaskSource`), as RFC 6455
//! §5.3 requires; nothing here needs configuring for that.

mod cookies;
#[cfg(feature = "http2")]
mod http2;
#[cfg(feature = "http3")]
mod http3;
mod no_proxy;
mod proxy;
mod request;

#[cfg(feature = "http3")]
pub use self::http3::Http3Session;
#[cfg(feature = "http2")]
pub use http2::HttpVersion;

pub use cookies::CookieJar;
pub use no_proxy::NoProxy;
pub use proxy::ProxyConfig;
pub use request::IntoClientRequest;

use crate::conn::{Conn, ConnOptions, conn_options_setters};
use crate::error::{CloseError, Error, HandshakeResponse, ProxyError, TimeoutKind};
use crate::maybe_tls::{Layer, MaybeTlsStream, Transport};
use bytes::{Bytes, BytesMut};
use ferrosocket_proto::Role;
use ferrosocket_proto::{BodyDecoder, DEFAULT_BODY_CAP};
use ferrosocket_proto::{ClientHandshake, MANAGED_HEADERS, Target, request_from_url, uri_target};
use ferrosocket_proto::{HandshakeError, Limits};
use ferrosocket_proto::{parse_response, write_request};
use http::header::{HOST, HeaderName, HeaderValue, SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_PROTOCOL};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How long the body of a refused handshake is read when no handshake timeout is set.
const ERROR_BODY_WAIT: Duration = Duration::from_secs(10);

/// What a [`Dialer::connector`] hook returns, boxed.
type ConnectFuture = Pin<Box<dyn Future<Output = io::Result<Box<dyn Transport>>> + Send>>;

/// A [`Dialer::connector`] hook, boxed.
type ConnectFn = dyn Fn(&str, u16) -> ConnectFuture + Send + Sync;

#[derive(Clone)]
struct Inner {
    connector: Option<Arc<ConnectFn>>,
    connect_timeout: Option<Duration>,
    handshake_timeout: Option<Duration>,
    options: Arc<ConnOptions>,
    subprotocols: Vec<String>,
    headers: HeaderMap,
    proxy: Option<ProxyConfig>,
    proxy_from_env: bool,
    #[cfg(feature = "rustls")]
    tls: Option<Arc<rustls::ClientConfig>>,
    #[cfg(feature = "http2")]
    http_version: HttpVersion,
    #[cfg(feature = "http2")]
    share_http2: bool,
    #[cfg(feature = "http2")]
    http2_idle_timeout: Option<Duration>,
    cookie_jar: Option<Arc<dyn CookieJar>>,
    /// Live HTTP/2 connections; a dialer whose options change gets a fresh pool (see `with`).
    #[cfg(feature = "http2")]
    h2_pool: Arc<http2::Pool>,
}

/// Opens WebSocket connections to servers.
///
/// Cheap to clone and safe to share between tasks. Every option has a safe default; the
/// options of the connections themselves are a [`ConnOptions`], the same as the
/// [`Upgrader`](crate::Upgrader)'s (see [`options`](Self::options)):
///
/// | option | default | why |
/// |---|---|---|
/// | [`connector`](Self::connector) | tokio's `TcpStream::connect`, with `TCP_NODELAY` | whole messages are written at once; Nagle's algorithm would only delay them |
/// | [`connect_timeout`](Self::connect_timeout) | 10 s | DNS, TCP connect (or the connector hook), TLS to an `https://` proxy and its `CONNECT`: a host that drops packets must not hang the caller for the OS's two-minute SYN retries |
/// | [`handshake_timeout`](Self::handshake_timeout) | 10 s | TLS and the HTTP upgrade: a server that accepts TCP but never answers must not hold the caller |
/// | [`max_message_size`](Self::max_message_size) | 64 MiB | finite: a server cannot make us allocate without bound |
/// | [`max_frame_size`](Self::max_frame_size) | 16 MiB | bounds one frame |
/// | [`read_buffer_size`](Self::read_buffer_size) | 64 KiB | a burst of frames per read; freed whenever a read would block, so idle connections hold none |
/// | [`write_buffer_size`](Self::write_buffer_size) | 64 KiB | queued bytes that trigger a write during [`Conn::feed`] |
/// | [`close_timeout`](Self::close_timeout) | 10 s | a server that never answers our close must not hold the connection |
/// | [`keepalive`](Self::keepalive) | off | the application chooses its liveness policy (the CLI turns it on) |
/// | [`idle_timeout`](Self::idle_timeout) | off | idle connections are legitimate in many protocols |
/// | [`slow_peer_policy`](Self::slow_peer_policy) | close with 1008 after 60 s without write progress | memory stays bounded either way; this frees the connection |
/// | [`max_write_buffer_size`](Self::max_write_buffer_size) | 4 MiB | unwritten output beyond which the connection stops reading |
/// | [`proxy_from_env`](Self::proxy_from_env) | on | clients behind a proxy work without code changes, as with curl and most HTTP clients |
/// | [`subprotocols`](Self::subprotocols) | none offered | the application decides what it speaks |
/// | [`cookie_jar`](Self::cookie_jar) | none | cookies are credentials: the application says which to send |
/// | [`enable_compression`](Self::enable_compression) | off | compression costs CPU and memory per connection |
/// | `tls_config` | Mozilla's roots (`webpki-roots`), ALPN `http/1.1` | the same trust on every machine, with no dependency on the platform's store |
/// | `http_version` (feature `http2`) | HTTP/1.1 | one behaviour unless asked: HTTP/2 (RFC 8441) needs a server that enables extended `CONNECT`; `Auto` finds out |
/// | `share_http2_connections` (feature `http2`) | on | WebSockets to one server over HTTP/2 share one TCP/TLS connection, HTTP/2's point |
/// | `http2_idle_timeout` (feature `http2`) | 90 s | a shared HTTP/2 connection that carries no WebSocket is closed after this, so a long-lived dialer does not keep one open per server it ever reached (hyper-util's pool waits as long) |
///
/// Frames sent by the client are masked with keys from the OS CSPRNG (RFC 6455 §5.3).
///
/// ```no_run
/// # async fn run() -> Result<(), ferrosocket::Error> {
/// use ferrosocket::Dialer;
/// use ferrosocket::http::header::{HeaderValue, ORIGIN};
/// let dialer = Dialer::new()
///     .subprotocols(["chat.v1"])
///     .header(ORIGIN, HeaderValue::from_static("https://example.com"));
/// let (mut conn, response) = dialer.connect("wss://example.com/chat").await?;
/// println!("status {}, subprotocol {:?}", response.status(), conn.subprotocol());
/// conn.send_text("hello").await?;
/// let reply = conn.recv().await?;
/// println!("{reply:?}");
/// conn.close(None).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Dialer {
    inner: Arc<Inner>,
}

impl Default for Dialer {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Dialer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut f = f.debug_struct("Dialer");
        f.field("connector", &self.inner.connector.as_ref().map(|_| "custom"))
            .field("connect_timeout", &self.inner.connect_timeout)
            .field("handshake_timeout", &self.inner.handshake_timeout)
            .field("subprotocols", &self.inner.subprotocols)
            .field("proxy", &self.inner.proxy)
            .field("proxy_from_env", &self.inner.proxy_from_env)
            .field("cookie_jar", &self.inner.cookie_jar.as_ref().map(|_| "set"))
            .field("config", &self.inner.options.config);
        #[cfg(feature = "http2")]
        f.field("http_version", &self.inner.http_version)
            .field("share_http2", &self.inner.share_http2)
            .field("http2_idle_timeout", &self.inner.http2_idle_timeout)
            .field("http2_connections", &self.inner.h2_pool.len());
        f.finish_non_exhaustive()
    }
}

impl Dialer {
    /// A dialer with the defaults in the table above.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                connector: None,
                connect_timeout: Some(Duration::from_secs(10)),
                handshake_timeout: Some(Duration::from_secs(10)),
                options: Arc::new(ConnOptions::default()),
                subprotocols: Vec::new(),
                headers: HeaderMap::new(),
                proxy: None,
                proxy_from_env: true,
                #[cfg(feature = "rustls")]
                tls: None,
                #[cfg(feature = "http2")]
                http_version: HttpVersion::Http1,
                #[cfg(feature = "http2")]
                share_http2: true,
                #[cfg(feature = "http2")]
                http2_idle_timeout: Some(Duration::from_secs(90)),
                cookie_jar: None,
                #[cfg(feature = "http2")]
                h2_pool: Arc::default(),
            }),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut Inner)) -> Self {
        let inner = Arc::make_mut(&mut self.inner);
        f(inner);
        // Shared HTTP/2 connections were made with the old options (TLS, limits...).
        #[cfg(feature = "http2")]
        {
            inner.h2_pool = Arc::default();
        }
        self
    }

    fn with_options(self, f: impl FnOnce(ConnOptions) -> ConnOptions) -> Self {
        self.with(|i| {
            let options = Arc::make_mut(&mut i.options);
            *options = f(std::mem::take(options));
        })
    }

    fn options_ref(&self) -> &ConnOptions {
        &self.inner.options
    }

    conn_options_setters!();

    /// Replaces the TCP connect with `connect`: it is called with
    /// the host (a name or an IP address, IPv6 without brackets) and port to reach, and
    /// returns any byte stream (see [`Transport`]).
    ///
    /// Only the connect is replaced: through a proxy the hook is asked for the **proxy's**
    /// address and the `CONNECT` tunnel runs over its stream; TLS for `https://` proxies and
    /// `wss://` URLs runs over it; the [`connect_timeout`](Self::connect_timeout) bounds the
    /// hook (it is dropped when the time is up) and the
    /// [`handshake_timeout`](Self::handshake_timeout) still applies. Errors the hook returns
    /// reach the caller unchanged as [`Error::Io`]. Socket options such as `TCP_NODELAY` are
    /// the hook's business. The connection's transport is then
    /// [`MaybeTlsStream::Layered`], whose [`tcp`](MaybeTlsStream::tcp) is `None`.
    ///
    /// The future may not borrow the host: copy it, as below.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), ferrosocket::Error> {
    /// use ferrosocket::Dialer;
    /// use tokio::net::TcpStream;
    /// let dialer = Dialer::new().connector(|host: &str, port: u16| {
    ///     let host = host.to_owned();
    ///     async move {
    ///         let tcp = TcpStream::connect((host.as_str(), port)).await?;
    ///         tcp.set_nodelay(true)?;
    ///         // tcp.set_tos(...), bind to an interface, count bytes, log...
    ///         Ok(tcp)
    ///     }
    /// });
    /// let (conn, _) = dialer.connect("ws://example.com/socket").await?;
    /// # Ok(()) }
    /// ```
    pub fn connector<F, Fut, T>(self, connect: F) -> Self
    where
        F: Fn(&str, u16) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = io::Result<T>> + Send + 'static,
        T: Transport,
    {
        let hook: Arc<ConnectFn> = Arc::new(move |host: &str, port: u16| {
            let connecting = connect(host, port);
            Box::pin(async move { connecting.await.map(|t| Box::new(t) as Box<dyn Transport>) })
                as ConnectFuture
        });
        self.with(|i| i.connector = Some(hook))
    }

    /// How long resolving the host, the TCP connect (or the [`connector`](Self::connector)
    /// hook), and a proxy's TLS handshake and `CONNECT` tunnel may take together; then
    /// [`Error::Timeout`] with [`TimeoutKind::Connect`]. `None` waits as long as the operating
    /// system does.
    pub fn connect_timeout(self, timeout: Option<Duration>) -> Self {
        self.with(|i| i.connect_timeout = timeout)
    }

    /// How long the TLS handshake with the server and the HTTP upgrade may take together; then
    /// [`Error::Timeout`] with [`TimeoutKind::Handshake`]. `None` waits forever (not
    /// recommended).
    pub fn handshake_timeout(self, timeout: Option<Duration>) -> Self {
        self.with(|i| i.handshake_timeout = timeout)
    }

    /// Sends the jar's cookies with every handshake and gives it the `Set-Cookie` headers of
    /// every answer (gorilla's `Dialer.Jar`; see [`CookieJar`]). Default: none, so only the
    /// request's own `Cookie` header is sent.
    pub fn cookie_jar(self, jar: Arc<dyn CookieJar>) -> Self {
        self.with(|i| i.cookie_jar = Some(jar))
    }

    /// Subprotocols to offer, most preferred first, sent as `Sec-WebSocket-Protocol`. The
    /// server picks one (see [`Conn::subprotocol`]) or none; picking one that was not offered
    /// fails the handshake with [`HandshakeError::UnexpectedSubprotocol`].
    pub fn subprotocols<I, S>(self, protocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let list = protocols.into_iter().map(Into::into).collect();
        self.with(|i| i.subprotocols = list)
    }

    /// Adds a header to every upgrade request: `Origin`, `Authorization`, `Cookie`,
    /// `User-Agent`... Calling it twice with the same name sends both values; a `Host` header
    /// replaces the one derived from the URL. A request passed to [`connect`](Self::connect)
    /// may carry headers of its own, which replace these (see [`IntoClientRequest`]). The
    /// headers the handshake itself manages
    /// (`Upgrade`, `Connection`, `Sec-WebSocket-Key`, `Sec-WebSocket-Version`,
    /// `Sec-WebSocket-Accept`, `Sec-WebSocket-Extensions`) are ignored; offer subprotocols with
    /// [`subprotocols`](Self::subprotocols).
    pub fn header(self, name: HeaderName, value: HeaderValue) -> Self {
        self.with(|i| {
            i.headers.append(name, value);
        })
    }

    /// Connects through this HTTP or HTTPS proxy (`CONNECT host:port`), whatever the
    /// environment says.
    pub fn proxy(self, proxy: ProxyConfig) -> Self {
        self.with(|i| i.proxy = Some(proxy))
    }

    /// Connects through the proxy at `url`: `http://[user:password@]host[:port]` (port 80 by
    /// default) or `https://...` (TLS to the proxy, port 443 by default; see
    /// [`ProxyConfig::from_url`]). Credentials are sent as `Proxy-Authorization: Basic`.
    ///
    /// # Errors
    /// [`Error::Proxy`] with [`ProxyError::BadUrl`] when the URL cannot be used.
    pub fn proxy_url(self, url: &str) -> Result<Self, Error> {
        let proxy = ProxyConfig::from_url(url)?;
        Ok(self.proxy(proxy))
    }

    /// Whether to use the proxy named by the environment when no [`proxy`](Self::proxy) is set
    /// (default: on).
    ///
    /// `wss://` URLs use `HTTPS_PROXY` (or `https_proxy`), `ws://` URLs use `HTTP_PROXY` (or
    /// `http_proxy`); either variable may name an `http://` or an `https://` proxy (see
    /// [`ProxyConfig::from_url`]). No proxy is used for `localhost`, loopback addresses, and
    /// hosts that match `NO_PROXY` (or `no_proxy`; see [`NoProxy`]).
    pub fn proxy_from_env(self, on: bool) -> Self {
        self.with(|i| i.proxy_from_env = on)
    }

    /// The TLS configuration for `wss://`: a custom root store, client certificates, other
    /// ALPN values. The server name sent (SNI) and verified is the URL's host. The default
    /// trusts Mozilla's roots (see [`crate::tls`]). It is also used for TLS to an `https://`
    /// proxy unless the proxy has its own ([`ProxyConfig::tls_config`]).
    #[cfg(feature = "rustls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
    pub fn tls_config(self, config: Arc<rustls::ClientConfig>) -> Self {
        self.with(|i| i.tls = Some(config))
    }

    /// Which HTTP version WebSockets are opened over (default [`HttpVersion::Http1`]):
    /// HTTP/1.1 only, HTTP/2 only (RFC 8441: ALPN `h2` for `wss://`, prior knowledge for
    /// `ws://`), or [`Auto`](HttpVersion::Auto) (HTTP/2 when the server offers it for
    /// `wss://`, HTTP/1.1 otherwise).
    ///
    /// Over HTTP/2 every option applies as over HTTP/1.1 (subprotocols, headers, compression,
    /// limits, timeouts, proxies and the [`connector`](Self::connector) hook, which carry the
    /// HTTP/2 connection); the server's answer is a `200` instead of a `101`, and the
    /// connection's transport is [`MaybeTlsStream::Http2`]. The ALPN list of the
    /// [`tls_config`](Self::tls_config) is replaced by `h2` (and `http/1.1` for `Auto`).
    /// WebSockets to the same server share one HTTP/2 connection (see
    /// [`share_http2_connections`](Self::share_http2_connections)); each HTTP/2 stream has a
    /// 1 MiB receive window and the connection 16 MiB, so up to 15 WebSockets that the
    /// application does not read leave their siblings room to flow.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), ferrosocket::Error> {
    /// use ferrosocket::{Dialer, HttpVersion, MaybeTlsStream};
    /// let dialer = Dialer::new().http_version(HttpVersion::Auto);
    /// let (a, _) = dialer.connect("wss://example.com/feed").await?;
    /// let (b, _) = dialer.connect("wss://example.com/chat").await?;
    /// if let (MaybeTlsStream::Http2(a), MaybeTlsStream::Http2(b)) = (a.get_ref(), b.get_ref()) {
    ///     assert_eq!(a.connection_id(), b.connection_id());
    /// }
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "http2")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http2")))]
    pub fn http_version(self, version: HttpVersion) -> Self {
        self.with(|i| i.http_version = version)
    }

    /// Whether WebSockets opened over HTTP/2 to the same server (scheme, host, port) share
    /// one HTTP/2 connection (default: on). A connection is reused while it is open and
    /// carries fewer streams than the server's `SETTINGS_MAX_CONCURRENT_STREAMS`; otherwise
    /// a new one is made (and shared in turn). The connection closes once it has carried no
    /// WebSocket for [`http2_idle_timeout`](Self::http2_idle_timeout), or when its last
    /// WebSocket and every clone of the dialer are gone. Off: one connection per WebSocket.
    ///
    /// Connections are shared by a dialer and its clones; changing an option makes a dialer
    /// with no connection yet.
    #[cfg(feature = "http2")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http2")))]
    pub fn share_http2_connections(self, on: bool) -> Self {
        self.with(|i| i.share_http2 = on)
    }

    /// How long a shared HTTP/2 connection (see
    /// [`share_http2_connections`](Self::share_http2_connections)) stays open while it carries
    /// no WebSocket (default: 90 s); `None` keeps it as long as the dialer. A WebSocket opened
    /// in the meantime reuses it and starts the wait over once it closes; after it, the
    /// connection leaves the dialer's pool and closes with a GOAWAY, and the next WebSocket to
    /// that server dials a new one.
    #[cfg(feature = "http2")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http2")))]
    pub fn http2_idle_timeout(self, idle: Option<Duration>) -> Self {
        self.with(|i| i.http2_idle_timeout = idle)
    }

    /// Connects to a `ws://` or `wss://` URL and runs the opening handshake. Returns the
    /// connection and the server's `101` answer (its headers carry cookies and the like; a
    /// `200` over HTTP/2, see `Dialer::http_version`, feature `http2`).
    ///
    /// `request` is a URL (`&str`, `String`), an [`http::Uri`], or a whole
    /// [`http::Request<()>`] with headers for this call only (see [`IntoClientRequest`]: its
    /// headers replace the dialer's of the same name, its `Sec-WebSocket-Protocol` replaces
    /// the dialer's [`subprotocols`](Self::subprotocols), handshake headers are refused).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use ferrosocket::{Dialer, http};
    /// let dialer = Dialer::new();
    /// let (conn, _) = dialer.connect("ws://127.0.0.1:8080/ws").await?;
    /// let request = http::Request::get("ws://127.0.0.1:8080/ws")
    ///     .header(http::header::COOKIE, "session=42")
    ///     .body(())?;
    /// let (conn, _) = dialer.connect(request).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// - [`Error::Handshake`] with [`HandshakeError::BadUrl`] for an unusable URL,
    ///   [`HandshakeError::MethodNotGet`] for a request that is not `GET`, or another
    ///   [`HandshakeError`] when a `101` answer does not verify (wrong `Sec-WebSocket-Accept`,
    ///   a subprotocol or extension that was not offered) or the answer is not HTTP.
    /// - [`Error::Request`] with a [`RequestError`](crate::RequestError) for a request that
    ///   sets a header the handshake manages (before anything is sent).
    /// - [`Error::BadHandshake`] when the server answered with another status; it carries the
    ///   status, the headers and the start of the body.
    /// - [`Error::Timeout`] with [`TimeoutKind::Connect`] or [`TimeoutKind::Handshake`].
    /// - [`Error::Proxy`] when a proxy refuses the tunnel or does not speak HTTP.
    /// - [`Error::Io`] when connecting or TLS fails.
    /// - [`Error::Closed`] (1006) when the server closed the connection before answering.
    /// - `Error::Http2` (feature `http2`) when HTTP/2 was required and the server does not
    ///   offer it, or the HTTP/2 connection or stream failed before the answer (see
    ///   `Dialer::http_version`). Over HTTP/2 a refusal is
    ///   [`Error::BadHandshake`] as over HTTP/1.1 (any status but `200`).
    pub async fn connect<R>(&self, request: R) -> Result<(Conn<MaybeTlsStream>, Response<()>), Error>
    where
        R: IntoClientRequest,
    {
        let req = request.into_client_request()?;
        let target = uri_target(req.uri())?;
        if req.method() != Method::GET {
            return Err(Error::Handshake(HandshakeError::MethodNotGet));
        }
        let req = self.with_host(req)?;
        let req = self.prepare(req)?;
        #[cfg(feature = "http2")]
        if self.inner.http_version != HttpVersion::Http1 {
            return http2::connect(self, req, target).await;
        }
        self.connect_http1(req, target, None).await
    }

    /// HTTP/1.1: the transport, TLS for `wss://` (with `alpn` instead of the configuration's
    /// ALPN list when given), the upgrade.
    async fn connect_http1(
        &self,
        req: Request<()>,
        target: Target,
        alpn: Option<&[&[u8]]>,
    ) -> Result<(Conn<MaybeTlsStream>, Response<()>), Error> {
        let (io, leftover) = self.transport(&target).await?;
        let deadline = deadline(self.inner.handshake_timeout);
        let stream = if target.tls {
            if !leftover.is_empty() {
                return Err(ProxyError::UnexpectedData.into());
            }
            within(
                deadline,
                TimeoutKind::Handshake,
                self.tls_connect(io, &target, alpn),
            )
            .await?
        } else {
            MaybeTlsStream::plain(io)
        };
        self.handshake(stream, req, leftover, deadline).await
    }

    /// The transport to `target` within the connect timeout: directly, or through a proxy's
    /// tunnel (with any bytes the proxy sent after its answer).
    async fn transport(&self, target: &Target) -> Result<(Layer, BytesMut), Error> {
        let proxy = self.proxy_for(target)?;
        let connect = async {
            let Some(p) = &proxy else {
                let io = self.open(&target.host, target.port).await?;
                return Ok((io, BytesMut::new()));
            };
            tracing::debug!(proxy.host = %p.host(), proxy.port = p.port(), proxy.tls = p.is_tls(), "connecting through a proxy");
            let mut io = self.open(p.host(), p.port()).await?;
            if p.is_tls() {
                io = self.proxy_tls(io, p).await?;
            }
            let leftover = proxy::tunnel(&mut io, p, target).await?;
            Ok((io, leftover))
        };
        within(
            deadline(self.inner.connect_timeout),
            TimeoutKind::Connect,
            connect,
        )
        .await
    }

    /// Runs the opening handshake over a transport the caller made:
    /// a Unix socket, an in-memory pipe, a TLS stream set up by hand...
    ///
    /// `request` is a `GET` whose URI is the URL (only its path and query are sent) or a path
    /// with a `Host` header; build one with
    /// [`request_from_url`](ferrosocket_proto::request_from_url). Its own
    /// headers win over the dialer's [`header`](Self::header)s; the dialer's subprotocols are
    /// offered unless it has a `Sec-WebSocket-Protocol` header. The handshake timeout applies;
    /// the connect timeout, proxies and TLS do not.
    ///
    /// # Errors
    /// As for [`connect`](Self::connect), without the connect and TLS errors.
    pub async fn connect_with_stream<S>(
        &self,
        io: S,
        request: Request<()>,
    ) -> Result<(Conn<S>, Response<()>), Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let req = self.prepare(request)?;
        let deadline = deadline(self.inner.handshake_timeout);
        self.handshake(io, req, BytesMut::new(), deadline).await
    }

    /// Gives `req` the `Host` derived from its URL, first in the head as before, unless it or
    /// the dialer sets one.
    fn with_host(&self, mut req: Request<()>) -> Result<Request<()>, Error> {
        if req.headers().contains_key(HOST) || self.inner.headers.contains_key(HOST) {
            return Ok(req);
        }
        let derived = request_from_url(&req.uri().to_string())?;
        if let Some(host) = derived.headers().get(HOST) {
            let mut headers = HeaderMap::with_capacity(req.headers().len() + 1);
            headers.insert(HOST, host.clone());
            headers.extend(req.headers_mut().drain());
            *req.headers_mut() = headers;
        }
        Ok(req)
    }

    /// Opens the transport to `host:port`: the [`connector`](Self::connector) hook, or TCP.
    async fn open(&self, host: &str, port: u16) -> Result<Layer, Error> {
        match &self.inner.connector {
            Some(hook) => hook(host, port).await.map(Layer::Custom).map_err(Error::Io),
            None => dial(host, port).await.map(Layer::Tcp),
        }
    }

    /// Adds the dialer's headers and subprotocol offer to `req`.
    fn prepare(&self, mut req: Request<()>) -> Result<Request<()>, Error> {
        let managed = &MANAGED_HEADERS;
        // Extensions are negotiated by the dialer (see `deflate`): an offer the core cannot
        // honour would break the connection after a successful handshake.
        req.headers_mut().remove(SEC_WEBSOCKET_EXTENSIONS);
        let own: Vec<HeaderName> = req.headers().keys().cloned().collect();
        for (name, value) in &self.inner.headers {
            if managed.contains(name) || own.contains(name) {
                continue;
            }
            req.headers_mut().append(name.clone(), value.clone());
        }
        if let Some(jar) = &self.inner.cookie_jar {
            let uri = req.uri().clone();
            cookies::add_cookies(jar.as_ref(), &uri, req.headers_mut());
        }
        if !self.inner.subprotocols.is_empty() && !req.headers().contains_key(SEC_WEBSOCKET_PROTOCOL) {
            let list = self.inner.subprotocols.join(", ");
            let value = HeaderValue::try_from(list.as_str()).map_err(|_| {
                HandshakeError::Malformed(format!(
                    "subprotocol list {list:?} is not a valid header value; offer plain tokens"
                ))
            })?;
            req.headers_mut().insert(SEC_WEBSOCKET_PROTOCOL, value);
        }
        Ok(req)
    }

    /// Gives the cookie jar, if any, the `Set-Cookie` headers of the answer to `uri`.
    pub(crate) fn store_cookies(&self, uri: &http::Uri, headers: &HeaderMap) {
        if let Some(jar) = &self.inner.cookie_jar {
            cookies::store_cookies(jar.as_ref(), uri, headers);
        }
    }

    /// TLS to the server over `io` (straight over TCP: [`MaybeTlsStream::Rustls`]).
    #[cfg(feature = "rustls")]
    async fn tls_connect(
        &self,
        io: Layer,
        target: &Target,
        alpn: Option<&[&[u8]]>,
    ) -> Result<MaybeTlsStream, Error> {
        let mut config = match &self.inner.tls {
            Some(c) => c.clone(),
            None => crate::tls::webpki_client_config()?,
        };
        if let Some(protocols) = alpn {
            let mut own = (*config).clone();
            own.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
            config = Arc::new(own);
        }
        let hint = "; if the server uses a private certificate authority, trust it with Dialer::tls_config";
        match io {
            Layer::Tcp(tcp) => {
                let tls = tls_handshake(config, tcp, &target.host, target.port, "", hint).await?;
                Ok(MaybeTlsStream::Rustls(Box::new(tls)))
            }
            other => {
                let tls = tls_handshake(config, other, &target.host, target.port, "", hint).await?;
                Ok(MaybeTlsStream::layered_tls(Layer::Tls(Box::new(tls))))
            }
        }
    }

    #[cfg(not(feature = "rustls"))]
    async fn tls_connect(
        &self,
        _io: Layer,
        _target: &Target,
        _alpn: Option<&[&[u8]]>,
    ) -> Result<MaybeTlsStream, Error> {
        Err(Error::Handshake(HandshakeError::BadUrl(
            "wss:// needs the `rustls` feature of ferrosocket; enable it in Cargo.toml".into(),
        )))
    }

    /// Sends the upgrade request over `io` and reads the answer; `buf` holds bytes already
    /// received (after a proxy's answer).
    async fn handshake<S>(
        &self,
        mut io: S,
        req: Request<()>,
        mut buf: BytesMut,
        deadline: Option<Instant>,
    ) -> Result<(Conn<S>, Response<()>), Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(|e| {
            Error::Io(io::Error::other(format!(
                "the operating system's random number generator failed ({e}); cannot make a handshake key"
            )))
        })?;
        let uri = req.uri().clone();
        let (mut hs, mut req) = ClientHandshake::new(req, nonce)?;
        if let Some(cfg) = &self.inner.options.deflate {
            hs.offer_deflate(cfg.clone(), &mut req);
        }
        let mut head = Vec::with_capacity(512);
        write_request(&req, &mut head);
        let exchange = async {
            io.write_all(&head).await?;
            io.flush().await?;
            read_head(&mut io, &mut buf).await
        };
        let resp = match within(deadline, TimeoutKind::Handshake, exchange).await? {
            Ok(resp) => resp,
            Err(Some(e)) => return Err(Error::Handshake(e)),
            Err(None) => {
                return Err(Error::Closed(CloseError::abnormal(
                    "the server closed the connection before answering the handshake; check that the url is a websocket endpoint",
                )));
            }
        };
        self.store_cookies(&uri, resp.headers());

        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            let wait_until = deadline.unwrap_or_else(|| Instant::now() + ERROR_BODY_WAIT);
            let body = read_error_body(&mut io, &resp, &mut buf, wait_until).await;
            let _ = tokio::time::timeout_at(wait_until, io.shutdown()).await;
            let (parts, ()) = resp.into_parts();
            return Err(HandshakeResponse::refused(parts, body));
        }
        let negotiated = hs.verify(&resp)?;
        let mut core = self
            .inner
            .options
            .new_core(Role::Client, negotiated.deflate.as_ref());
        if !buf.is_empty() {
            core.receive_owned(buf);
        }
        let conn = Conn::from_parts(io, core, self.inner.options.clone(), negotiated.subprotocol);
        Ok((conn, resp))
    }
}

fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.map(|t| Instant::now() + t)
}

/// Runs `work` until `deadline`, then fails with `kind`.
pub(super) async fn within<T>(
    deadline: Option<Instant>,
    kind: TimeoutKind,
    work: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match deadline {
        Some(d) => tokio::time::timeout_at(d, work)
            .await
            .unwrap_or(Err(Error::Timeout(kind))),
        None => work.await,
    }
}

/// Resolves `host` and connects, with `TCP_NODELAY` (WebSocket messages are written whole;
/// Nagle's algorithm would only delay them).
async fn dial(host: &str, port: u16) -> Result<TcpStream, Error> {
    let tcp = TcpStream::connect((host, port)).await.map_err(|e| {
        Error::Io(io::Error::new(
            e.kind(),
            format!("could not connect to {host}:{port}: {e}"),
        ))
    })?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// The TLS handshake with `host` (the server name sent and verified) over `io`; `who` and
/// `hint` shape the error message.
#[cfg(feature = "rustls")]
async fn tls_handshake<S>(
    config: Arc<rustls::ClientConfig>,
    io: S,
    host: &str,
    port: u16,
    who: &str,
    hint: &str,
) -> Result<tokio_rustls::client::TlsStream<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| {
        HandshakeError::BadUrl(format!(
            "{host:?} cannot be used as a tls server name ({e}); use a dns name or an ip address"
        ))
    })?;
    #[cfg(feature = "http2")]
    let h2_only = config.alpn_protocols == [http2::ALPN_H2];
    tokio_rustls::TlsConnector::from(config)
        .connect(name, io)
        .await
        .map_err(|e| {
            // Only h2 was offered and the server has no protocol in common (RFC 7301 §3.2).
            #[cfg(feature = "http2")]
            if h2_only
                && matches!(
                    e.get_ref().and_then(|r| r.downcast_ref::<rustls::Error>()),
                    Some(rustls::Error::AlertReceived(
                        rustls::AlertDescription::NoApplicationProtocol
                    ))
                )
            {
                return Error::Http2(crate::error::Http2Error::NotNegotiated);
            }
            let hint = if e.kind() == io::ErrorKind::InvalidData {
                hint
            } else {
                ""
            };
            Error::Io(io::Error::new(
                e.kind(),
                format!("tls handshake with {who}{host}:{port} failed: {e}{hint}"),
            ))
        })
}

/// Reads an HTTP response head into `buf`. `Ok(Err(None))`: the peer closed first.
async fn read_head<S>(
    io: &mut S,
    buf: &mut BytesMut,
) -> Result<Result<Response<()>, Option<HandshakeError>>, Error>
where
    S: AsyncRead + Unpin,
{
    let limits = Limits::default();
    loop {
        match parse_response(buf, &limits) {
            Ok(Some(resp)) => return Ok(Ok(resp)),
            Ok(None) => {}
            Err(e) => return Ok(Err(Some(e))),
        }
        if buf.capacity() - buf.len() < 512 {
            buf.reserve(4096);
        }
        if io.read_buf(buf).await? == 0 {
            return Ok(Err(None));
        }
    }
}

/// Reads the start of a refused handshake's body (at most [`DEFAULT_BODY_CAP`] bytes, framed
/// as the core's [`BodyDecoder`] says), no later than `until`. Never fails: the status is the
/// error, the body only explains it.
async fn read_error_body<S>(io: &mut S, resp: &Response<()>, buf: &mut BytesMut, until: Instant) -> Bytes
where
    S: AsyncRead + Unpin,
{
    let mut body = BodyDecoder::new(resp, DEFAULT_BODY_CAP);
    body.feed(buf);
    buf.clear();
    let read = async {
        while !body.is_done() {
            if buf.capacity() < 1024 {
                buf.reserve(8192);
            }
            match io.read_buf(buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            body.feed(buf);
            buf.clear();
        }
    };
    // A timeout keeps what arrived so far.
    let _ = tokio::time::timeout_at(until, read).await;
    body.into_body()
}

/// What the HTTP/3 client (`crate::http3`) takes from a dialer: the same request
/// preparation and options as the HTTP/1.1 path.
#[cfg(feature = "http3")]
impl Dialer {
    pub(crate) fn prepare_request(&self, req: Request<()>) -> Result<Request<()>, Error> {
        self.prepare(req)
    }

    pub(crate) fn timeouts(&self) -> (Option<Duration>, Option<Duration>) {
        (self.inner.connect_timeout, self.inner.handshake_timeout)
    }

    pub(crate) fn shared_options(&self) -> Arc<ConnOptions> {
        self.inner.options.clone()
    }

    pub(crate) fn tls(&self) -> Option<Arc<rustls::ClientConfig>> {
        self.inner.tls.clone()
    }
}
