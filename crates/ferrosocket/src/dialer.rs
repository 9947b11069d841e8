//! The client side of the opening handshake: dial `ws://` and `wss://` URLs, directly, through
//! an `http://` or `https://` proxy, over a transport a hook makes, or run the handshake over a
//! transport the caller made.
//!
//! Every frame a client sends is masked with a fresh key from the operating system's CSPRNG
//! (`getrandom`, fetched 64 keys per system call by the core's `OsMaskSource`), as RFC 6455
//! §5.3 requires; nothing here needs configuring for that.

use crate::client_request::{IntoClientRequest, MANAGED_HEADERS};
use crate::conn::{Conn, IoOptions};
use crate::error::{CloseError, Error, TimeoutKind};
use crate::pool::BufferPool;
use crate::transport::{Layer, MaybeTlsStream, Transport};
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use ferrosocket_proto::DeflateConfig;
use ferrosocket_proto::{ClientHandshake, Target, request_from_url, uri_target};
use ferrosocket_proto::{Config, Connection, Role};
use ferrosocket_proto::{HandshakeError, Limits, header_has_token};
use ferrosocket_proto::{parse_response, write_request};
use http::header::{
    CONTENT_LENGTH, HOST, HeaderName, HeaderValue, SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_PROTOCOL,
    TRANSFER_ENCODING,
};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Largest body kept from a refused handshake's answer (gorilla keeps 1 KiB; an error page
/// explaining a 401 or a 403 is rarely longer than this).
const MAX_ERROR_BODY: usize = 64 << 10;

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
    config: Config,
    io: Arc<IoOptions>,
    subprotocols: Vec<String>,
    headers: HeaderMap,
    deflate: Option<DeflateConfig>,
    proxy: Option<ProxyConfig>,
    proxy_from_env: bool,
    #[cfg(feature = "rustls")]
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// Opens WebSocket connections to servers (gorilla's `Dialer`).
///
/// Cheap to clone and safe to share between tasks. Every option has a safe default:
///
/// | option | default | why |
/// |---|---|---|
/// | [`connector`](Self::connector) | tokio's `TcpStream::connect`, with `TCP_NODELAY` | whole messages are written at once; Nagle's algorithm would only delay them |
/// | [`connect_timeout`](Self::connect_timeout) | 10 s | DNS, TCP connect (or the connector hook), TLS to an `https://` proxy and its `CONNECT`: a host that drops packets must not hang the caller for the OS's two-minute SYN retries |
/// | [`handshake_timeout`](Self::handshake_timeout) | 10 s | TLS and the HTTP upgrade: a server that accepts TCP but never answers must not hold the caller (gorilla's zero value means none) |
/// | [`max_message_size`](Self::max_message_size) | 64 MiB | finite: a server cannot make us allocate without bound |
/// | [`max_frame_size`](Self::max_frame_size) | 16 MiB | bounds one frame |
/// | [`read_buffer_size`](Self::read_buffer_size) | 64 KiB | a burst of frames per read; freed whenever a read would block, so idle connections hold none |
/// | [`write_buffer_size`](Self::write_buffer_size) | 64 KiB | queued bytes that trigger a write during [`Conn::feed`] |
/// | [`close_timeout`](Self::close_timeout) | 10 s | a server that never answers our close must not hold the connection |
/// | [`proxy_from_env`](Self::proxy_from_env) | on | like Go's `http.ProxyFromEnvironment` (gorilla's `DefaultDialer`): clients behind a proxy work without code changes |
/// | [`subprotocols`](Self::subprotocols) | none offered | the application decides what it speaks |
/// | [`enable_compression`](Self::enable_compression) | off | gorilla parity; compression costs CPU and memory per connection |
/// | `tls_config` | Mozilla's roots (`webpki-roots`), ALPN `http/1.1` | the same trust on every machine, with no dependency on the platform's store |
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
        f.debug_struct("Dialer")
            .field("connector", &self.inner.connector.as_ref().map(|_| "custom"))
            .field("connect_timeout", &self.inner.connect_timeout)
            .field("handshake_timeout", &self.inner.handshake_timeout)
            .field("subprotocols", &self.inner.subprotocols)
            .field("proxy", &self.inner.proxy)
            .field("proxy_from_env", &self.inner.proxy_from_env)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
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
                config: Config::default(),
                io: Arc::new(IoOptions::default()),
                subprotocols: Vec::new(),
                headers: HeaderMap::new(),
                deflate: None,
                proxy: None,
                proxy_from_env: true,
                #[cfg(feature = "rustls")]
                tls: None,
            }),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut Inner)) -> Self {
        f(Arc::make_mut(&mut self.inner));
        self
    }

    /// Replaces the TCP connect with `connect` (gorilla's `NetDialContext`): it is called with
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

    /// Bytes made room for before each read (see [`Config::read_buffer_size`]).
    pub fn read_buffer_size(self, bytes: usize) -> Self {
        self.with(|i| i.config = i.config.clone().read_buffer_size(bytes))
    }

    /// Queued bytes that make [`Conn::feed`] write (at least 1 KiB).
    pub fn write_buffer_size(self, bytes: usize) -> Self {
        self.with(|i| Arc::make_mut(&mut i.io).write_buffer_size = bytes.max(1024))
    }

    /// Largest amount of unwritten output before a connection stops reading from a server that
    /// does not read what it is sent (default 4 MiB).
    pub fn max_write_buffer_size(self, bytes: usize) -> Self {
        self.with(|i| Arc::make_mut(&mut i.io).max_write_buffer_size = bytes)
    }

    /// Shares write buffers between connections: a connection holds one only while writing.
    pub fn write_buffer_pool(self, pool: Arc<dyn BufferPool>) -> Self {
        self.with(|i| Arc::make_mut(&mut i.io).pool = Some(pool))
    }

    /// Largest message accepted; bigger ones close the connection with 1009. `None`: unlimited.
    pub fn max_message_size(self, bytes: Option<usize>) -> Self {
        self.with(|i| i.config.max_message_size = bytes)
    }

    /// Largest frame accepted; bigger ones close the connection with 1009. `None`: unlimited.
    pub fn max_frame_size(self, bytes: Option<usize>) -> Self {
        self.with(|i| i.config.max_frame_size = bytes)
    }

    /// How long [`Conn::close`] waits for the server's close frame.
    pub fn close_timeout(self, timeout: Duration) -> Self {
        self.with(|i| Arc::make_mut(&mut i.io).close_timeout = timeout)
    }

    /// Replaces the protocol core's whole configuration.
    pub fn config(self, config: Config) -> Self {
        self.with(|i| i.config = config)
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

    /// Offer permessage-deflate (RFC 7692) with default settings (gorilla's
    /// `EnableCompression`). Default: off. Context takeover is supported both ways.
    pub fn enable_compression(self, on: bool) -> Self {
        self.deflate(on.then(DeflateConfig::default))
    }

    /// Offer permessage-deflate with these settings (`None`: no offer). The server's answer is
    /// checked against the offer (RFC 7692 §7.1); an answer that breaks it fails the handshake.
    pub fn deflate(self, config: Option<DeflateConfig>) -> Self {
        self.with(|i| i.deflate = config)
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
    /// [`Error::Io`] holding a [`ProxyError::BadUrl`] when the URL cannot be used.
    pub fn proxy_url(self, url: &str) -> Result<Self, Error> {
        let proxy = ProxyConfig::from_url(url)?;
        Ok(self.proxy(proxy))
    }

    /// Whether to use the proxy named by the environment when no [`proxy`](Self::proxy) is set
    /// (default: on, like Go's `http.ProxyFromEnvironment`).
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
    pub fn tls_config(self, config: Arc<rustls::ClientConfig>) -> Self {
        self.with(|i| i.tls = Some(config))
    }

    /// Connects to a `ws://` or `wss://` URL and runs the opening handshake. Returns the
    /// connection and the server's `101` answer (its headers carry cookies and the like).
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
    /// - [`Error::Io`] holding a [`RequestError`](crate::RequestError) for a request that sets
    ///   a header the handshake manages (before anything is sent).
    /// - [`Error::BadHandshake`] when the server answered with another status; it carries the
    ///   status, the headers and the start of the body.
    /// - [`Error::Timeout`] with [`TimeoutKind::Connect`] or [`TimeoutKind::Handshake`].
    /// - [`Error::Io`] when connecting or TLS fails; a proxy's refusal is a [`ProxyError`]
    ///   inside it (see [`ProxyError::find`]).
    /// - [`Error::Closed`] (1006) when the server closed the connection before answering.
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
        let proxy = self.proxy_for(&target)?;

        let connect = async {
            let Some(p) = &proxy else {
                let io = self.open(&target.host, target.port).await?;
                return Ok((io, BytesMut::new()));
            };
            tracing::debug!(proxy.host = %p.host, proxy.port = p.port, proxy.tls = p.tls, "connecting through a proxy");
            let mut io = self.open(&p.host, p.port).await?;
            if p.tls {
                io = self.proxy_tls(io, p).await?;
            }
            let leftover = tunnel(&mut io, p, &target).await?;
            Ok((io, leftover))
        };
        let (io, leftover) = within(
            deadline(self.inner.connect_timeout),
            TimeoutKind::Connect,
            connect,
        )
        .await?;

        let deadline = deadline(self.inner.handshake_timeout);
        let stream = if target.tls {
            if !leftover.is_empty() {
                return Err(proxy_error(ProxyError::UnexpectedData));
            }
            within(deadline, TimeoutKind::Handshake, self.tls_connect(io, &target)).await?
        } else {
            MaybeTlsStream::plain(io)
        };
        self.handshake(stream, req, leftover, deadline).await
    }

    /// Runs the opening handshake over a transport the caller made (gorilla's `NewClient`):
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

    /// The proxy to use for `target`, if any.
    fn proxy_for(&self, target: &Target) -> Result<Option<ProxyConfig>, Error> {
        if let Some(p) = &self.inner.proxy {
            return Ok(Some(p.clone()));
        }
        if !self.inner.proxy_from_env {
            return Ok(None);
        }
        proxy_from_lookup(target, |name| std::env::var(name).ok())
    }

    /// TLS to the server over `io` (straight over TCP: [`MaybeTlsStream::Rustls`]).
    #[cfg(feature = "rustls")]
    async fn tls_connect(&self, io: Layer, target: &Target) -> Result<MaybeTlsStream, Error> {
        let config = match &self.inner.tls {
            Some(c) => c.clone(),
            None => crate::tls::webpki_client_config()?,
        };
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
    async fn tls_connect(&self, _io: Layer, _target: &Target) -> Result<MaybeTlsStream, Error> {
        Err(Error::Handshake(HandshakeError::BadUrl(
            "wss:// needs the `rustls` feature of ferrosocket; enable it in Cargo.toml".into(),
        )))
    }

    /// TLS to an `https://` proxy over `io`, with the proxy's TLS configuration, else the
    /// dialer's, else the default one; the server name is the proxy's host.
    #[cfg(feature = "rustls")]
    async fn proxy_tls(&self, io: Layer, proxy: &ProxyConfig) -> Result<Layer, Error> {
        let config = match (&proxy.tls_config, &self.inner.tls) {
            (Some(c), _) | (None, Some(c)) => c.clone(),
            (None, None) => crate::tls::webpki_client_config()?,
        };
        let hint = "; if the proxy uses a private certificate authority, trust it with ProxyConfig::tls_config or Dialer::tls_config";
        let tls = tls_handshake(config, io, &proxy.host, proxy.port, "the proxy ", hint).await?;
        Ok(Layer::Tls(Box::new(tls)))
    }

    #[cfg(not(feature = "rustls"))]
    async fn proxy_tls(&self, _io: Layer, proxy: &ProxyConfig) -> Result<Layer, Error> {
        Err(proxy_error(ProxyError::BadUrl {
            url: format!("https://{}:{}", proxy.host, proxy.port),
            reason: "https:// proxies need the `rustls` feature of ferrosocket; enable it in Cargo.toml"
                .into(),
        }))
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
        let (mut hs, mut req) = ClientHandshake::new(req, nonce)?;
        if let Some(cfg) = &self.inner.deflate {
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

        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            let wait_until = deadline.unwrap_or_else(|| Instant::now() + ERROR_BODY_WAIT);
            let body = read_error_body(&mut io, &resp, &mut buf, wait_until).await;
            let _ = tokio::time::timeout_at(wait_until, io.shutdown()).await;
            let (parts, ()) = resp.into_parts();
            return Err(Error::BadHandshake(Box::new(HandshakeResponse {
                status: parts.status,
                headers: parts.headers,
                body,
                error: HandshakeError::Status(parts.status.as_u16()),
            })));
        }
        let negotiated = hs.verify(&resp)?;
        let mut core = Connection::new(Role::Client, self.inner.config.clone());
        if let (Some(params), Some(cfg)) = (&negotiated.deflate, &self.inner.deflate) {
            core.enable_deflate(params, cfg);
        }
        if !buf.is_empty() {
            core.receive_owned(buf);
        }
        let conn = Conn::from_parts(io, core, self.inner.io.clone(), negotiated.subprotocol);
        Ok((conn, resp))
    }
}

fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.map(|t| Instant::now() + t)
}

/// Runs `work` until `deadline`, then fails with `kind`.
async fn within<T>(
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
    tokio_rustls::TlsConnector::from(config)
        .connect(name, io)
        .await
        .map_err(|e| {
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

/// Reads up to [`MAX_ERROR_BODY`] bytes of a refused handshake's body, by `Content-Length`,
/// chunked encoding, or until the server closes, and no later than `until`. Never fails: the
/// status is the error, the body only explains it.
async fn read_error_body<S>(io: &mut S, resp: &Response<()>, buf: &mut BytesMut, until: Instant) -> Bytes
where
    S: AsyncRead + Unpin,
{
    let status = resp.status();
    if status.is_informational() || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Bytes::new();
    }
    let chunked = header_has_token(resp.headers(), TRANSFER_ENCODING, "chunked");
    let length = resp
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    let want = match (chunked, length) {
        (false, Some(n)) => n.min(MAX_ERROR_BODY),
        // Chunk headers cost a little room on top of the body.
        (true, _) => MAX_ERROR_BODY + 4096,
        (false, None) => MAX_ERROR_BODY,
    };
    let read = async {
        loop {
            if buf.len() >= want || (chunked && decode_chunked(buf).1) {
                break;
            }
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(8192);
            }
            match io.read_buf(buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    // A timeout keeps what arrived so far.
    let _ = tokio::time::timeout_at(until, read).await;
    let mut body = if chunked {
        decode_chunked(buf).0
    } else {
        let n = buf.len().min(want);
        buf.split_to(n).freeze()
    };
    body.truncate(MAX_ERROR_BODY);
    body
}

/// Decodes a chunked body as far as it is present: the data and whether the last chunk was
/// seen. Malformed input ends the decoding.
fn decode_chunked(raw: &[u8]) -> (Bytes, bool) {
    let mut out = Vec::new();
    let mut rest = raw;
    loop {
        let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return (out.into(), false);
        };
        let line = rest.get(..line_end).unwrap_or_default();
        let size_text = line.split(|b| *b == b';').next().unwrap_or_default();
        let Some(size) = std::str::from_utf8(size_text)
            .ok()
            .and_then(|t| usize::from_str_radix(t.trim(), 16).ok())
        else {
            return (out.into(), false);
        };
        if size == 0 {
            return (out.into(), true);
        }
        let data_start = line_end + 2;
        let available = rest.len().saturating_sub(data_start);
        let take = size.min(available);
        out.extend_from_slice(rest.get(data_start..data_start + take).unwrap_or_default());
        if take < size || out.len() >= MAX_ERROR_BODY {
            return (out.into(), false);
        }
        rest = rest.get(data_start + size + 2..).unwrap_or_default();
    }
}

/// The answer to a refused opening handshake (gorilla's `ErrBadHandshake` with its response),
/// carried by [`Error::BadHandshake`].
///
/// ```no_run
/// # async fn run() {
/// use ferrosocket::{Dialer, Error};
/// match Dialer::new().connect("ws://127.0.0.1:8080/ws").await {
///     Err(Error::BadHandshake(resp)) => {
///         eprintln!("refused with {}: {}", resp.status, String::from_utf8_lossy(&resp.body));
///     }
///     Err(other) => eprintln!("{other}"),
///     Ok(_) => {}
/// }
/// # }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HandshakeResponse {
    /// The status the server answered with (not 101).
    pub status: StatusCode,
    /// The response headers (`WWW-Authenticate`, `Retry-After`...).
    pub headers: HeaderMap,
    /// The start of the body: at most 64 KiB, read by `Content-Length`, chunked encoding or
    /// until the server closed, within the handshake timeout.
    pub body: Bytes,
    /// The handshake error ([`HandshakeError::Status`]).
    pub error: HandshakeError,
}

impl fmt::Display for HandshakeResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.error)?;
        let text = String::from_utf8_lossy(&self.body);
        let text = text.trim();
        if !text.is_empty() {
            let mut shown: String = text.chars().take(200).collect();
            if shown.len() < text.len() {
                shown.push_str("...");
            }
            write!(f, " (response body: {shown:?})")?;
        }
        Ok(())
    }
}

impl std::error::Error for HandshakeResponse {}

// ---- proxies -------------------------------------------------------------------------------

/// An HTTP proxy reached with `CONNECT host:port HTTP/1.1`, over plain TCP (`http://`) or
/// over TLS to the proxy (`https://`).
///
/// Through an `https://` proxy, the `CONNECT` request (with its credentials) travels inside
/// TLS to the proxy, whose certificate is verified for the proxy's host; for a `wss://` URL a
/// second TLS session to the server runs inside the tunnel (TLS in TLS), so the proxy sees
/// neither the WebSocket traffic nor the server's TLS keys.
///
/// ```
/// use ferrosocket::ProxyConfig;
/// let p = ProxyConfig::from_url("http://alice:s3cret@proxy.example:3128").unwrap();
/// assert_eq!((p.host(), p.port(), p.is_tls()), ("proxy.example", 3128, false));
/// let p = ProxyConfig::from_url("https://alice:s3cret@proxy.example").unwrap();
/// assert_eq!((p.port(), p.is_tls()), (443, true));
/// let p = ProxyConfig::new("10.0.0.1", 8080).basic_auth("alice", "s3cret");
/// assert_eq!(p.port(), 8080);
/// ```
#[derive(Clone)]
pub struct ProxyConfig {
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
    tls: bool,
    #[cfg(feature = "rustls")]
    tls_config: Option<Arc<rustls::ClientConfig>>,
}

impl PartialEq for ProxyConfig {
    /// Equal when they name the same proxy with the same credentials and scheme, and share
    /// the same TLS configuration (the same `Arc`) or neither has one.
    fn eq(&self, other: &Self) -> bool {
        #[cfg(feature = "rustls")]
        let same_tls_config = match (&self.tls_config, &other.tls_config) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        #[cfg(not(feature = "rustls"))]
        let same_tls_config = true;
        self.host == other.host
            && self.port == other.port
            && self.credentials == other.credentials
            && self.tls == other.tls
            && same_tls_config
    }
}

impl Eq for ProxyConfig {}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ProxyConfig");
        d.field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .field("tls", &self.tls);
        #[cfg(feature = "rustls")]
        d.field("tls_config", &self.tls_config.as_ref().map(|_| "custom"));
        d.finish_non_exhaustive()
    }
}

impl ProxyConfig {
    /// The proxy at `host:port` (a name or an IP address, IPv6 without brackets), without
    /// credentials.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            credentials: None,
            tls: false,
            #[cfg(feature = "rustls")]
            tls_config: None,
        }
    }

    /// Speaks TLS to the proxy (an `https://` proxy) when `on`; the server name sent and
    /// verified is the proxy's host. Without the `rustls` feature, connecting through such a
    /// proxy fails with [`ProxyError::BadUrl`].
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }

    /// The TLS configuration for an `https://` proxy (a private CA, a client certificate).
    /// Without it the [`Dialer::tls_config`] is used, else Mozilla's roots. It does not turn
    /// TLS on: see [`tls`](Self::tls).
    #[cfg(feature = "rustls")]
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls_config = Some(config);
        self
    }

    /// Sends `Proxy-Authorization: Basic base64(user:password)` with the `CONNECT` request.
    pub fn basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some((user.into(), password.into()));
        self
    }

    /// Parses `http://[user:password@]host[:port]` (port 80 when absent) or
    /// `https://[user:password@]host[:port]` (TLS to the proxy, port 443 when absent). A URL
    /// without a scheme is taken as `http://`, as Go does for `HTTP_PROXY`. Percent-escapes in
    /// the user and password are decoded.
    ///
    /// # Errors
    /// [`Error::Io`] holding a [`ProxyError::BadUrl`]: another scheme (`socks5://` proxies are
    /// not supported), no host, or a bad port.
    pub fn from_url(url: &str) -> Result<Self, Error> {
        let bad = |reason: &str| {
            proxy_error(ProxyError::BadUrl {
                url: redact(url),
                reason: reason.to_owned(),
            })
        };
        let url = url.trim();
        let (tls, rest) = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (false, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (true, rest),
            Some(_) => {
                return Err(bad(
                    "only http:// and https:// proxies are supported (the tunnel itself carries tls for wss)",
                ));
            }
            None => (false, url),
        };
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (host, port) = split_host_port(hostport).ok_or_else(|| bad("use http://host:port"))?;
        let port = match port {
            None if tls => 443,
            None => 80,
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| bad("the port must be a number up to 65535"))?,
        };
        if host.is_empty() {
            return Err(bad("the url has no host; use http://host:port"));
        }
        let mut proxy = ProxyConfig::new(host, port).tls(tls);
        if let Some(info) = userinfo {
            let (user, password) = info.split_once(':').unwrap_or((info, ""));
            proxy = proxy.basic_auth(percent_decode(user), percent_decode(password));
        }
        Ok(proxy)
    }

    /// The proxy's host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether TLS is spoken to the proxy (`https://`).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The user name sent to the proxy, if any.
    pub fn user(&self) -> Option<&str> {
        self.credentials.as_ref().map(|(u, _)| u.as_str())
    }
}

/// Splits `host[:port]`, `[v6][:port]` or a bare IPv6 address; `None` when malformed.
fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if let Some(inner) = s.strip_prefix('[') {
        let (host, after) = inner.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    match s.matches(':').count() {
        0 => Some((s, None)),
        1 => s.split_once(':').map(|(h, p)| (h, Some(p))),
        _ => s.parse::<IpAddr>().is_ok().then_some((s, None)),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match decoded {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `url` with its password replaced, for error messages.
fn redact(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), url),
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = (rest.get(..end).unwrap_or(rest), rest.get(end..).unwrap_or(""));
    match authority.rsplit_once('@') {
        Some((info, host)) => {
            let user = info.split(':').next().unwrap_or_default();
            format!("{scheme}{user}:***@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

/// Why going through an HTTP proxy failed. It reaches the caller inside [`Error::Io`]; find it
/// with [`ProxyError::find`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The proxy URL cannot be used.
    #[error("invalid proxy url {url:?}: {reason}")]
    BadUrl {
        /// The URL, password hidden.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The proxy refused to open the tunnel (a status other than 2xx).
    #[error(
        "the proxy refused to connect to {target} with status {status}; check the proxy address and credentials (407: the proxy wants credentials)"
    )]
    Refused {
        /// `host:port` asked for.
        target: String,
        /// The proxy's status.
        status: StatusCode,
        /// The proxy's response headers (`Proxy-Authenticate`...).
        headers: HeaderMap,
    },
    /// The proxy's answer to `CONNECT` is not HTTP.
    #[error("the proxy's answer to CONNECT is not valid http ({0}); check that the address is an http proxy")]
    Malformed(HandshakeError),
    /// The proxy closed the connection before answering `CONNECT`.
    #[error(
        "the proxy closed the connection before answering CONNECT; check that the address is an http proxy"
    )]
    Closed,
    /// The proxy sent bytes after its answer, before the TLS handshake began.
    #[error(
        "the proxy sent data after accepting the tunnel, before tls began; the proxy is not behaving as an http proxy"
    )]
    UnexpectedData,
}

impl ProxyError {
    /// The proxy error inside `err`, if it is one.
    ///
    /// ```
    /// use ferrosocket::{Dialer, ProxyError};
    /// let err = Dialer::new().proxy_url("socks5://127.0.0.1:1080").unwrap_err();
    /// assert!(matches!(ProxyError::find(&err), Some(ProxyError::BadUrl { .. })));
    /// ```
    pub fn find(err: &Error) -> Option<&ProxyError> {
        match err {
            Error::Io(e) => e.get_ref()?.downcast_ref::<ProxyError>(),
            _ => None,
        }
    }
}

fn proxy_error(e: ProxyError) -> Error {
    Error::Io(io::Error::other(e))
}

/// Asks the proxy on `tcp` for a tunnel to `target`; returns the bytes received after its
/// answer.
async fn tunnel<S>(tcp: &mut S, proxy: &ProxyConfig, target: &Target) -> Result<BytesMut, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let authority = if target.host.contains(':') {
        format!("[{}]:{}", target.host, target.port)
    } else {
        format!("{}:{}", target.host, target.port)
    };
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some((user, password)) = &proxy.credentials {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        request.push_str("Proxy-Authorization: Basic ");
        request.push_str(&token);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    tcp.write_all(request.as_bytes()).await?;
    tcp.flush().await?;
    let mut buf = BytesMut::with_capacity(1024);
    let resp = match read_head(tcp, &mut buf).await? {
        Ok(resp) => resp,
        Err(Some(e)) => return Err(proxy_error(ProxyError::Malformed(e))),
        Err(None) => return Err(proxy_error(ProxyError::Closed)),
    };
    if !resp.status().is_success() {
        let (parts, ()) = resp.into_parts();
        return Err(proxy_error(ProxyError::Refused {
            target: authority,
            status: parts.status,
            headers: parts.headers,
        }));
    }
    Ok(buf)
}

/// The proxy the environment (read through `lookup`) names for `target`, Go's
/// `ProxyFromEnvironment` rules.
fn proxy_from_lookup(
    target: &Target,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<ProxyConfig>, Error> {
    let any = |names: [&str; 2]| {
        names
            .into_iter()
            .filter_map(&lookup)
            .find(|v| !v.trim().is_empty())
    };
    let value = if target.tls {
        any(["HTTPS_PROXY", "https_proxy"])
    } else {
        any(["HTTP_PROXY", "http_proxy"])
    };
    let Some(value) = value else { return Ok(None) };
    let host = target.host.to_ascii_lowercase();
    if host == "localhost"
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
    {
        return Ok(None);
    }
    let no_proxy = any(["NO_PROXY", "no_proxy"]).unwrap_or_default();
    if NoProxy::parse(&no_proxy).matches(&target.host, target.port) {
        return Ok(None);
    }
    ProxyConfig::from_url(&value).map(Some)
}

/// A `NO_PROXY` list: the hosts to reach without the environment's proxy.
///
/// Entries are separated by commas, compared case-insensitively, with Go's rules:
/// - `*` matches every host;
/// - `example.com` matches `example.com` and its subdomains; `.example.com` and
///   `*.example.com` only its subdomains;
/// - an IP address matches that address; a CIDR block (`10.0.0.0/8`) the addresses in it;
///   no name is resolved to match;
/// - `host:port` or `[v6]:port` matches only that port.
///
/// ```
/// use ferrosocket::NoProxy;
/// let list = NoProxy::parse("internal.example, .corp, 10.0.0.0/8, api.test:8443");
/// assert!(list.matches("internal.example", 443));
/// assert!(list.matches("db.internal.example", 80));
/// assert!(list.matches("host.corp", 80));
/// assert!(!list.matches("corp", 80));
/// assert!(list.matches("10.1.2.3", 80));
/// assert!(list.matches("api.test", 8443));
/// assert!(!list.matches("api.test", 443));
/// assert!(!list.matches("example.org", 443));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    all: bool,
    entries: Vec<NoProxyEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum NoProxyEntry {
    Ip {
        ip: IpAddr,
        port: Option<u16>,
    },
    Cidr {
        net: IpAddr,
        prefix: u8,
    },
    Domain {
        suffix: String,
        exact_too: bool,
        port: Option<u16>,
    },
}

impl NoProxy {
    /// Parses a comma-separated list; malformed entries are skipped.
    pub fn parse(list: &str) -> Self {
        let mut out = NoProxy::default();
        for entry in list.split(',') {
            let entry = entry.trim().to_ascii_lowercase();
            if entry.is_empty() {
                continue;
            }
            if entry == "*" {
                out.all = true;
                continue;
            }
            if let Some((addr, bits)) = entry.split_once('/') {
                if let (Ok(net), Ok(prefix)) = (addr.parse::<IpAddr>(), bits.parse::<u8>()) {
                    let max = if net.is_ipv4() { 32 } else { 128 };
                    if prefix <= max {
                        out.entries.push(NoProxyEntry::Cidr { net, prefix });
                    }
                }
                continue;
            }
            let Some((host, port)) = split_host_port(&entry) else {
                continue;
            };
            let port = match port {
                None => None,
                Some(p) => match p.parse::<u16>() {
                    Ok(p) => Some(p),
                    Err(_) => continue,
                },
            };
            if let Ok(ip) = host.parse::<IpAddr>() {
                out.entries.push(NoProxyEntry::Ip {
                    ip: ip.to_canonical(),
                    port,
                });
                continue;
            }
            let host = host
                .strip_prefix('*')
                .filter(|h| h.starts_with('.'))
                .unwrap_or(host);
            if host.is_empty() || host == "." {
                continue;
            }
            let (suffix, exact_too) = match host.strip_prefix('.') {
                Some(_) => (host.to_owned(), false),
                None => (format!(".{host}"), true),
            };
            out.entries.push(NoProxyEntry::Domain {
                suffix,
                exact_too,
                port,
            });
        }
        out
    }

    /// The list in `NO_PROXY`, or `no_proxy` when that is unset or empty.
    pub fn from_env() -> Self {
        let value = ["NO_PROXY", "no_proxy"]
            .into_iter()
            .filter_map(|n| std::env::var(n).ok())
            .find(|v| !v.trim().is_empty())
            .unwrap_or_default();
        Self::parse(&value)
    }

    /// Whether `host` (a name or an IP address; IPv6 with or without brackets) on `port` is
    /// to be reached directly.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if self.all {
            return true;
        }
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port_ok = |p: &Option<u16>| p.is_none_or(|p| p == port);
        if let Ok(ip) = host.parse::<IpAddr>() {
            let ip = ip.to_canonical();
            return self.entries.iter().any(|e| match e {
                NoProxyEntry::Ip { ip: want, port: p } => *want == ip && port_ok(p),
                NoProxyEntry::Cidr { net, prefix } => in_cidr(ip, *net, *prefix),
                NoProxyEntry::Domain { .. } => false,
            });
        }
        self.entries.iter().any(|e| match e {
            NoProxyEntry::Domain {
                suffix,
                exact_too,
                port: p,
            } => {
                let hit =
                    host.ends_with(suffix.as_str()) || (*exact_too && suffix.get(1..) == Some(host.as_str()));
                hit && port_ok(p)
            }
            _ => false,
        })
    }
}

fn in_cidr(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn target(url: &str) -> Target {
        ferrosocket_proto::url_target(url).unwrap()
    }

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn env_proxy_by_scheme() {
        let vars = env(&[
            ("HTTP_PROXY", "http://plain:3128"),
            ("https_proxy", "secure:8443"),
        ]);
        let p = proxy_from_lookup(&target("ws://example.com"), &vars)
            .unwrap()
            .unwrap();
        assert_eq!((p.host(), p.port()), ("plain", 3128));
        let p = proxy_from_lookup(&target("wss://example.com"), &vars)
            .unwrap()
            .unwrap();
        assert_eq!((p.host(), p.port()), ("secure", 8443));
        assert!(proxy_from_lookup(&target("ws://x"), env(&[])).unwrap().is_none());
    }

    #[test]
    fn env_proxy_may_be_https() {
        let vars = env(&[
            ("HTTPS_PROXY", "https://u:p@tls-proxy"),
            ("HTTP_PROXY", "http://plain"),
        ]);
        let p = proxy_from_lookup(&target("wss://example.com"), &vars)
            .unwrap()
            .unwrap();
        assert_eq!(
            (p.host(), p.port(), p.is_tls(), p.user()),
            ("tls-proxy", 443, true, Some("u"))
        );
        let p = proxy_from_lookup(&target("ws://example.com"), &vars)
            .unwrap()
            .unwrap();
        assert_eq!((p.host(), p.port(), p.is_tls()), ("plain", 80, false));
    }

    #[test]
    fn env_proxy_uppercase_wins_and_empty_is_unset() {
        let vars = env(&[("HTTP_PROXY", "up:1"), ("http_proxy", "low:2")]);
        let p = proxy_from_lookup(&target("ws://example.com"), vars)
            .unwrap()
            .unwrap();
        assert_eq!(p.host(), "up");
        let vars = env(&[("HTTP_PROXY", " "), ("http_proxy", "low:2")]);
        let p = proxy_from_lookup(&target("ws://example.com"), vars)
            .unwrap()
            .unwrap();
        assert_eq!(p.host(), "low");
    }

    #[test]
    fn env_proxy_skips_loopback_and_no_proxy() {
        let vars = env(&[("HTTP_PROXY", "p:1"), ("no_proxy", "internal, 192.168.0.0/16")]);
        for url in [
            "ws://localhost:9000",
            "ws://127.0.0.1",
            "ws://127.9.9.9",
            "ws://[::1]:80",
            "ws://internal",
            "ws://a.internal",
            "ws://192.168.4.4",
        ] {
            assert!(proxy_from_lookup(&target(url), &vars).unwrap().is_none(), "{url}");
        }
        assert!(
            proxy_from_lookup(&target("ws://external"), &vars)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn env_proxy_bad_url_is_an_error() {
        let vars = env(&[("HTTP_PROXY", "socks5://p:1")]);
        let err = proxy_from_lookup(&target("ws://example.com"), vars).unwrap_err();
        assert!(matches!(ProxyError::find(&err), Some(ProxyError::BadUrl { .. })));
    }

    #[test]
    fn proxy_url_forms() {
        let p = ProxyConfig::from_url("http://u%40x:p%3Aw@h:1").unwrap();
        assert_eq!(p.credentials, Some(("u@x".into(), "p:w".into())));
        let p = ProxyConfig::from_url("HTTP://h/").unwrap();
        assert_eq!((p.host(), p.port(), p.user()), ("h", 80, None));
        let p = ProxyConfig::from_url("http://[::1]:8080").unwrap();
        assert_eq!((p.host(), p.port()), ("::1", 8080));
        let p = ProxyConfig::from_url("http://user@h:2").unwrap();
        assert_eq!(p.credentials, Some(("user".into(), String::new())));
        let p = ProxyConfig::from_url("https://u:p@h").unwrap();
        assert_eq!((p.host(), p.port(), p.is_tls()), ("h", 443, true));
        let p = ProxyConfig::from_url("HTTPS://h:8443").unwrap();
        assert_eq!((p.port(), p.is_tls()), (8443, true));
        assert!(!ProxyConfig::from_url("h:1").unwrap().is_tls());
        for bad in [
            "socks5://h:1",
            "https://:8080",
            "http://:8080",
            "http://h:x",
            "http://h:70000",
            "http://",
        ] {
            assert!(ProxyConfig::from_url(bad).is_err(), "{bad}");
        }
        let err = ProxyConfig::from_url("socks5://user:secret@h:1").unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn chunked_bodies() {
        assert_eq!(
            decode_chunked(b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n"),
            (Bytes::from_static(b"hello world"), true)
        );
        assert_eq!(decode_chunked(b"5\r\nhel"), (Bytes::from_static(b"hel"), false));
        assert_eq!(decode_chunked(b"zz\r\n"), (Bytes::new(), false));
        assert_eq!(decode_chunked(b""), (Bytes::new(), false));
    }

    #[test]
    fn cidr() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(in_cidr(ip("10.1.2.3"), ip("10.0.0.0"), 8));
        assert!(!in_cidr(ip("11.1.2.3"), ip("10.0.0.0"), 8));
        assert!(in_cidr(ip("1.2.3.4"), ip("0.0.0.0"), 0));
        assert!(in_cidr(ip("1.2.3.4"), ip("1.2.3.4"), 32));
        assert!(in_cidr(ip("fd00::1"), ip("fd00::"), 8));
        assert!(!in_cidr(ip("fd00::1"), ip("10.0.0.0"), 8));
    }
}
