//! WebSockets over HTTP/2 (RFC 8441, extended `CONNECT`) for the [`Dialer`]: the choice of
//! HTTP version, ALPN and the fallback to HTTP/1.1, the HTTP/2 connections shared between
//! WebSockets to the same server, and the request and its `200` answer.

use super::{Dialer, deadline, within};
use crate::conn::Conn;
use crate::error::{Error, HandshakeResponse, Http2Error, ProxyError, TimeoutKind};
use crate::maybe_tls::{H2Connection, H2Stream, MaybeTlsStream, StreamCount};
use bytes::{Bytes, BytesMut};
use ferrosocket_proto::{ClientHandshake, DEFAULT_BODY_CAP, HandshakeError, Role, Target};
use http::header::{CONNECTION, HOST, SEC_WEBSOCKET_KEY, UPGRADE};
use http::uri::{Authority, Scheme};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::{HashMap, HashSet};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::Instant;

/// ALPN protocol ids (RFC 7301).
pub(super) const ALPN_H2: &[u8] = b"h2";
pub(super) const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Which HTTP version a [`Dialer`] opens WebSockets over (see
/// [`Dialer::http_version`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum HttpVersion {
    /// HTTP/1.1 `GET` + `Upgrade` (RFC 6455), one TCP connection per WebSocket.
    #[default]
    Http1,
    /// HTTP/2 extended `CONNECT` (RFC 8441) only: ALPN `h2` for `wss://`, HTTP/2 with prior
    /// knowledge (h2c) for `ws://`. A server that does not choose `h2` or does not enable
    /// extended `CONNECT` fails the connect with [`Error::Http2`].
    Http2,
    /// HTTP/2 where the server offers it, HTTP/1.1 otherwise. For `wss://` ALPN offers `h2`
    /// and `http/1.1`; HTTP/2 is used when the server chooses `h2` and its SETTINGS enable
    /// extended `CONNECT`. When it chooses `http/1.1` the HTTP/1.1 handshake runs on the same
    /// TLS connection; when it chooses `h2` without extended `CONNECT`, on a fresh connection
    /// that offers only `http/1.1`. `ws://` uses HTTP/1.1 (there is no negotiation without
    /// TLS).
    Auto,
}

/// Where a shared connection leads: TLS, host, port.
type Origin = (bool, String, u16);

/// hyper's HTTP/2 client connection over our transport.
type Connection = hyper::client::conn::http2::Connection<TokioIo<SettingsWatch>, Empty<Bytes>, TokioExecutor>;

/// The connection future, polled by its task and asked (between polls) for the server's
/// settings, which hyper exposes on it. Dropped when it ends, which closes the request
/// handles (`SendRequest::is_closed`).
struct Driver {
    connection: Mutex<Option<Pin<Box<Connection>>>>,
}

impl Driver {
    fn connection(&self) -> std::sync::MutexGuard<'_, Option<Pin<Box<Connection>>>> {
        self.connection.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Polls the connection until it ends (the lock is held only during each poll).
    async fn run(self: Arc<Self>) {
        let ended = std::future::poll_fn(|cx| {
            let mut slot = self.connection();
            let Some(connection) = slot.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            let ended = std::task::ready!(connection.as_mut().poll(cx));
            *slot = None;
            Poll::Ready(ended)
        })
        .await;
        if let Err(e) = ended {
            tracing::debug!(error = %e, "http/2 connection ended with an error");
        }
    }

    fn extended_connect(&self) -> bool {
        self.connection()
            .as_ref()
            .is_some_and(|c| c.is_extended_connect_protocol_enabled())
    }

    fn max_streams(&self) -> usize {
        self.connection()
            .as_ref()
            .map_or(0, |c| c.current_max_send_streams())
    }
}

/// A live HTTP/2 connection: its request handle and what its streams share.
#[derive(Clone)]
struct Shared {
    send: SendRequest<Empty<Bytes>>,
    driver: Arc<Driver>,
    conn: Arc<H2Connection>,
}

impl Shared {
    /// Open, and below the server's limit of concurrent streams.
    fn usable(&self) -> bool {
        !self.send.is_closed() && self.conn.streams.load(Ordering::Acquire) < self.driver.max_streams()
    }
}

/// The HTTP/2 connections of one [`Dialer`] (and its clones), by origin; what it learnt of
/// origins that answered [`HttpVersion::Auto`] with HTTP/1.1.
#[derive(Default)]
pub(super) struct Pool {
    conns: Mutex<HashMap<Origin, Vec<Shared>>>,
    /// One lock per origin, held while a connection to it is dialed.
    dialing: Mutex<HashMap<Origin, Arc<tokio::sync::Mutex<()>>>>,
    /// Origins that chose HTTP/1.1 in ALPN or have no extended CONNECT: later connects go
    /// there over HTTP/1.1 at once.
    http1_only: Mutex<HashSet<Origin>>,
}

impl Pool {
    fn dial_lock(&self, origin: &Origin) -> Arc<tokio::sync::Mutex<()>> {
        let mut dialing = self.dialing.lock().unwrap_or_else(PoisonError::into_inner);
        dialing.entry(origin.clone()).or_default().clone()
    }

    fn is_http1_only(&self, origin: &Origin) -> bool {
        let known = self.http1_only.lock().unwrap_or_else(PoisonError::into_inner);
        known.contains(origin)
    }

    fn set_http1_only(&self, origin: Origin) {
        let mut known = self.http1_only.lock().unwrap_or_else(PoisonError::into_inner);
        known.insert(origin);
    }

    /// A usable connection to `origin`; closed ones are dropped on the way.
    fn get(&self, origin: &Origin) -> Option<Shared> {
        let mut conns = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
        let list = conns.get_mut(origin)?;
        list.retain(|c| !c.send.is_closed());
        let found = list.iter().find(|c| c.usable()).cloned();
        if list.is_empty() {
            conns.remove(origin);
        }
        found
    }

    fn insert(&self, origin: Origin, shared: Shared) {
        let mut conns = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
        conns.entry(origin).or_default().push(shared);
    }

    fn remove(&self, origin: &Origin, id: u64) {
        let mut conns = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(list) = conns.get_mut(origin) {
            list.retain(|c| c.conn.id != id);
            if list.is_empty() {
                conns.remove(origin);
            }
        }
    }

    /// Live connections (for `Debug`).
    pub(super) fn len(&self) -> usize {
        let conns = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
        conns.values().map(Vec::len).sum()
    }
}

/// The extended `CONNECT` built from the dialer's upgrade request: what was offered, and the
/// request's URI and headers (kept to build it again on a fresh connection).
struct ConnectRequest {
    hs: ClientHandshake,
    uri: Uri,
    headers: HeaderMap,
    /// The URL the caller asked for (what a cookie jar sees).
    asked: Uri,
}

impl ConnectRequest {
    /// From the prepared `GET` (its headers: the caller's, the dialer's, the subprotocol
    /// offer): `:authority` is its `Host`, `:path` its path and query, `:scheme` `https` for
    /// `wss://` and `http` for `ws://`; the compression offer is the dialer's.
    fn new(dialer: &Dialer, req: &Request<()>, target: &Target) -> Result<Self, Error> {
        let authority = match req.headers().get(HOST) {
            Some(host) => Authority::try_from(host.as_bytes()).map_err(|e| {
                HandshakeError::BadUrl(format!(
                    "the Host header cannot be used as the http/2 :authority ({e})"
                ))
            })?,
            None => req
                .uri()
                .authority()
                .cloned()
                .ok_or(HandshakeError::MissingHost)?,
        };
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let scheme = if target.tls { Scheme::HTTPS } else { Scheme::HTTP };
        let uri = Uri::builder()
            .scheme(scheme)
            .authority(authority)
            .path_and_query(path)
            .build()
            .map_err(|e| HandshakeError::BadUrl(format!("cannot build the http/2 request uri: {e}")))?;
        let mut get = Request::new(());
        *get.uri_mut() = req.uri().clone();
        *get.headers_mut() = req.headers().clone();
        // The key is generated and then dropped with the other HTTP/1.1 headers: extended
        // CONNECT has no Sec-WebSocket-Key (RFC 8441 §5), so no randomness is needed.
        let (mut hs, mut get) = ClientHandshake::new(get, [0; 16])?;
        if let Some(cfg) = &dialer.inner.options.deflate {
            hs.offer_deflate(cfg.clone(), &mut get);
        }
        let mut headers = std::mem::take(get.headers_mut());
        for name in [UPGRADE, CONNECTION, SEC_WEBSOCKET_KEY, HOST] {
            headers.remove(name);
        }
        Ok(Self {
            hs,
            uri,
            headers,
            asked: req.uri().clone(),
        })
    }

    fn request(&self) -> Request<Empty<Bytes>> {
        let mut req = Request::new(Empty::new());
        *req.method_mut() = Method::CONNECT;
        *req.version_mut() = Version::HTTP_2;
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = self.headers.clone();
        req.extensions_mut()
            .insert(hyper::ext::Protocol::from_static("websocket"));
        req
    }
}

/// [`Dialer::connect`] when the HTTP version is not [`HttpVersion::Http1`]; `req` is the
/// prepared `GET`.
pub(super) async fn connect(
    dialer: &Dialer,
    req: Request<()>,
    target: Target,
) -> Result<(Conn<MaybeTlsStream>, Response<()>), Error> {
    let mode = dialer.inner.http_version;
    if mode == HttpVersion::Auto && !target.tls {
        return dialer.connect_http1(req, target, None).await;
    }
    let pool = &dialer.inner.h2_pool;
    let origin: Origin = (target.tls, target.host.clone(), target.port);
    if mode == HttpVersion::Auto && pool.is_http1_only(&origin) {
        return dialer.connect_http1(req, target, Some(&[ALPN_HTTP11])).await;
    }
    let connect = ConnectRequest::new(dialer, &req, &target)?;
    let share = dialer.inner.share_http2;

    // While one connect dials an origin, the others to it wait and then share its connection.
    let mut dialing = None;
    if share {
        if let Some(done) = on_shared(dialer, &origin, &connect).await? {
            return Ok(done);
        }
        let lock = pool.dial_lock(&origin);
        dialing = Some(lock.lock_owned().await);
        if let Some(done) = on_shared(dialer, &origin, &connect).await? {
            return Ok(done);
        }
        if mode == HttpVersion::Auto && pool.is_http1_only(&origin) {
            drop(dialing);
            return dialer.connect_http1(req, target, Some(&[ALPN_HTTP11])).await;
        }
    }

    let (io, leftover) = dialer.transport(&target).await?;
    let until = deadline(dialer.inner.handshake_timeout);
    let stream = if target.tls {
        if !leftover.is_empty() {
            return Err(ProxyError::UnexpectedData.into());
        }
        let offer: &[&[u8]] = match mode {
            HttpVersion::Http2 => &[ALPN_H2],
            _ => &[ALPN_H2, ALPN_HTTP11],
        };
        let stream = within(
            until,
            TimeoutKind::Handshake,
            dialer.tls_connect(io, &target, Some(offer)),
        )
        .await?;
        if stream.alpn() != Some(ALPN_H2) {
            if mode == HttpVersion::Http2 {
                return Err(Http2Error::NotNegotiated.into());
            }
            tracing::debug!("alpn chose http/1.1; websocket over http/1.1 on the same connection");
            pool.set_http1_only(origin);
            drop(dialing);
            return dialer.handshake(stream, req, BytesMut::new(), until).await;
        }
        stream
    } else {
        MaybeTlsStream::plain(io)
    };
    let shared = within(until, TimeoutKind::Handshake, start(stream, leftover, target.tls)).await?;
    if !shared.driver.extended_connect() {
        if mode == HttpVersion::Http2 {
            return Err(Http2Error::ExtendedConnectDisabled.into());
        }
        tracing::debug!("http/2 without extended CONNECT; websocket over http/1.1 on a fresh connection");
        drop(shared);
        pool.set_http1_only(origin);
        drop(dialing);
        return dialer.connect_http1(req, target, Some(&[ALPN_HTTP11])).await;
    }
    if share {
        if let Some(idle) = dialer.inner.http2_idle_timeout {
            let watch = evict_when_idle(Arc::downgrade(pool), origin.clone(), shared.conn.clone(), idle);
            tokio::spawn(watch);
        }
        pool.insert(origin, shared.clone());
    }
    drop(dialing);
    open_stream(dialer, &shared, &connect, until)
        .await
        .map_err(Opened::into_error)
}

/// Takes `conn` out of the pool once it has carried no stream for `idle`, which lets hyper
/// close it (GOAWAY) when no stream holds it either. Ends then, or with the pool (the dialer
/// and its clones are gone).
async fn evict_when_idle(pool: Weak<Pool>, origin: Origin, conn: Arc<H2Connection>, idle: Duration) {
    loop {
        if conn.streams.load(Ordering::Acquire) > 0 {
            conn.idle.notified().await;
            continue;
        }
        let since = conn.idle_since();
        // An idle time too long to add up is no limit.
        let Some(at) = since.checked_add(idle) else { return };
        tokio::time::sleep_until(at).await;
        let Some(pool) = pool.upgrade() else { return };
        // Still idle, and not since a stream that came and went in the meantime.
        if conn.streams.load(Ordering::Acquire) == 0 && conn.idle_since() == since {
            tracing::debug!(id = conn.id, "an idle http/2 connection leaves the pool");
            pool.remove(&origin, conn.id);
            return;
        }
    }
}

/// A WebSocket on a shared connection to `origin`, if one is usable; connections that fail
/// on the way are dropped from the pool.
async fn on_shared(
    dialer: &Dialer,
    origin: &Origin,
    connect: &ConnectRequest,
) -> Result<Option<(Conn<MaybeTlsStream>, Response<()>)>, Error> {
    while let Some(shared) = dialer.inner.h2_pool.get(origin) {
        let until = deadline(dialer.inner.handshake_timeout);
        match open_stream(dialer, &shared, connect, until).await {
            Err(Opened::Retry(e)) => {
                tracing::debug!(error = %e, "a shared http/2 connection failed; dropping it");
                dialer.inner.h2_pool.remove(origin, shared.conn.id);
            }
            Err(Opened::Fail(e)) => return Err(e),
            Ok(done) => return Ok(Some(done)),
        }
    }
    Ok(None)
}

/// Why opening a stream failed: on a shared connection, [`Retry`](Self::Retry) means the
/// connection failed and a fresh one may succeed.
enum Opened {
    Retry(Error),
    Fail(Error),
}

impl Opened {
    fn into_error(self) -> Error {
        match self {
            Opened::Retry(e) | Opened::Fail(e) => e,
        }
    }
}

/// Counter behind [`H2Stream::connection_id`].
static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// The HTTP/2 handshake over `stream` (`leftover`: bytes a proxy sent after its answer),
/// its connection task spawned, and the wait for the server's first SETTINGS to be applied.
async fn start(stream: MaybeTlsStream, leftover: BytesMut, tls: bool) -> Result<Shared, Error> {
    let addrs = stream
        .tcp()
        .and_then(|t| Some((t.peer_addr().ok()?, t.local_addr().ok()?)));
    let (acked, mut settings) = watch::channel(false);
    let io = SettingsWatch {
        io: stream,
        leftover,
        scan: AckScan::new(),
        acked,
    };
    let (send, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(crate::HTTP2_STREAM_WINDOW)
        .initial_connection_window_size(crate::HTTP2_CONNECTION_WINDOW)
        .handshake::<_, Empty<Bytes>>(TokioIo::new(io))
        .await
        .map_err(|e| Http2Error::Connection(Box::new(e)))?;
    let driver = Arc::new(Driver {
        connection: Mutex::new(Some(Box::pin(connection))),
    });
    tokio::spawn(driver.clone().run());
    // hyper exposes the server's SETTINGS only once its connection task applied them; that
    // task acknowledges them right after, so the acknowledgement leaving is the signal.
    settings.wait_for(|acked| *acked).await.map_err(|_| {
        Http2Error::Connection("the connection closed before the server sent its SETTINGS".into())
    })?;
    Ok(Shared {
        send,
        driver,
        conn: Arc::new(H2Connection::new(
            NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed),
            tls,
            addrs,
        )),
    })
}

/// Sends the extended `CONNECT` on `shared` and turns a verified `200` into a connection.
async fn open_stream(
    dialer: &Dialer,
    shared: &Shared,
    connect: &ConnectRequest,
    until: Option<Instant>,
) -> Result<(Conn<MaybeTlsStream>, Response<()>), Opened> {
    let count = StreamCount::new(shared.conn.clone());
    let mut send = shared.send.clone();
    let exchange = async {
        send.ready().await?;
        send.send_request(connect.request()).await
    };
    let mut resp = match until {
        Some(d) => match tokio::time::timeout_at(d, exchange).await {
            Ok(r) => r,
            Err(_) => return Err(Opened::Fail(Error::Timeout(TimeoutKind::Handshake))),
        },
        None => exchange.await,
    }
    .map_err(|e| Opened::Retry(Http2Error::Stream(Box::new(e)).into()))?;
    dialer.store_cookies(&connect.asked, resp.headers());

    if resp.status() != StatusCode::OK {
        let (parts, body) = resp.into_parts();
        let wait_until = until.unwrap_or_else(|| Instant::now() + super::ERROR_BODY_WAIT);
        let body = read_body(body, wait_until).await;
        return Err(Opened::Fail(HandshakeResponse::refused(parts, body)));
    }
    let upgrade = hyper::upgrade::on(&mut resp);
    let (parts, _body) = resp.into_parts();
    let head = Response::from_parts(parts, ());
    let negotiated = connect
        .hs
        .verify_extended_connect(&head)
        .map_err(|e| Opened::Fail(e.into()))?;
    let upgraded = upgrade
        .await
        .map_err(|e| Opened::Fail(Http2Error::Stream(Box::new(e)).into()))?;
    let options = dialer.inner.options.clone();
    let core = options.new_core(Role::Client, negotiated.deflate.as_ref());
    let io = MaybeTlsStream::Http2(H2Stream::new(upgraded, count));
    let conn = Conn::from_parts(io, core, options, negotiated.subprotocol);
    Ok((conn, head))
}

/// The start of a refusal's body (at most [`DEFAULT_BODY_CAP`] bytes) until `until`. Never
/// fails: the status is the error, the body only explains it.
async fn read_body(mut body: hyper::body::Incoming, until: Instant) -> Bytes {
    let mut out = BytesMut::new();
    let read = async {
        while out.len() < DEFAULT_BODY_CAP {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        let room = DEFAULT_BODY_CAP - out.len();
                        out.extend_from_slice(&data[..data.len().min(room)]);
                    }
                }
                Some(Err(_)) | None => break,
            }
        }
    };
    // A timeout keeps what arrived so far.
    let _ = tokio::time::timeout_at(until, read).await;
    out.freeze()
}

/// The transport under an HTTP/2 connection: serves the bytes a proxy sent after its answer
/// first, and watches what the client writes for its first SETTINGS acknowledgement.
struct SettingsWatch {
    io: MaybeTlsStream,
    leftover: BytesMut,
    scan: AckScan,
    acked: watch::Sender<bool>,
}

impl AsyncRead for SettingsWatch {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.leftover.is_empty() {
            let n = this.leftover.len().min(buf.remaining());
            buf.put_slice(&this.leftover.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl SettingsWatch {
    fn note_written(&mut self, bufs: &[io::IoSlice<'_>], mut n: usize) {
        if self.scan.done {
            return;
        }
        for b in bufs {
            if n == 0 {
                break;
            }
            let take = b.len().min(n);
            n -= take;
            if self.scan.feed(&b[..take]) {
                self.acked.send_replace(true);
                return;
            }
        }
    }
}

impl AsyncWrite for SettingsWatch {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = std::task::ready!(Pin::new(&mut this.io).poll_write(cx, buf))?;
        this.note_written(&[io::IoSlice::new(buf)], n);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = std::task::ready!(Pin::new(&mut this.io).poll_write_vectored(cx, bufs))?;
        this.note_written(bufs, n);
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Finds the client's first SETTINGS acknowledgement in the bytes it writes: the 24-byte
/// preface, then frames (a 9-byte header: length, type, flags, stream; RFC 9113 §4.1).
struct AckScan {
    /// Bytes still to skip: the rest of the preface or of a frame's payload.
    skip: usize,
    header: [u8; 9],
    filled: usize,
    done: bool,
}

/// RFC 9113 §3.4: the client connection preface.
const PREFACE_LEN: usize = 24;
/// RFC 9113 §6.5: SETTINGS, and its ACK flag.
const FRAME_SETTINGS: u8 = 0x4;
const FLAG_ACK: u8 = 0x1;

impl AckScan {
    fn new() -> Self {
        Self {
            skip: PREFACE_LEN,
            header: [0; 9],
            filled: 0,
            done: false,
        }
    }

    /// Feeds written bytes; true once the acknowledgement was seen.
    fn feed(&mut self, mut bytes: &[u8]) -> bool {
        while !self.done && !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (9 - self.filled).min(bytes.len());
            self.header[self.filled..self.filled + n].copy_from_slice(&bytes[..n]);
            self.filled += n;
            bytes = &bytes[n..];
            if self.filled == 9 {
                self.filled = 0;
                let [l0, l1, l2, kind, flags, ..] = self.header;
                if kind == FRAME_SETTINGS && flags & FLAG_ACK != 0 {
                    self.done = true;
                } else {
                    self.skip = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
                }
            }
        }
        self.done
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::AckScan;

    #[test]
    fn ack_found_after_preface_and_frames_in_any_pieces() {
        let mut wire = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        // SETTINGS with one parameter, WINDOW_UPDATE, then the ACK.
        wire.extend([0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100]);
        wire.extend([0, 0, 4, 8, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
        let before_ack = wire.len();
        wire.extend([0, 0, 0, 4, 1, 0, 0, 0, 0]);
        for piece in 1..=wire.len() {
            let mut scan = AckScan::new();
            let mut found_at = None;
            for (i, chunk) in wire.chunks(piece).enumerate() {
                if scan.feed(chunk) {
                    found_at = Some((i + 1) * piece);
                    break;
                }
            }
            let at = found_at.unwrap();
            assert!(at > before_ack, "piece {piece}");
        }
        let mut scan = AckScan::new();
        assert!(!scan.feed(&wire[..before_ack + 8]));
    }
}
