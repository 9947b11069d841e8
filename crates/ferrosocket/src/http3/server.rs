//! The server role: [`Upgrader::accept_http3`] runs HTTP/3 on an accepted QUIC connection
//! and hands out a [`Conn`] per accepted extended CONNECT.

use bytes::BytesMut;
use http::{HeaderMap, Method, Request, StatusCode, Uri, Version};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use tokio::sync::mpsc;

use super::codes::{self, CodecError};
use super::frame::{self, Frame, FrameDecoder};
use super::session::{ControlStream, Session, SessionGuard, fail};
use super::{H3Stream, MAX_FIELD_SECTION_SIZE, qpack};
use crate::error::Http3Error;
use crate::{Conn, ConnectProtocol, Error, Upgrader};

/// How many accepted WebSockets may wait for [`Http3Server::accept`] before request
/// streams wait too.
const BACKLOG: usize = 64;

/// QUIC keep-alive of server connections (below quinn's 30 s idle timeout).
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(10);

/// The server side of HTTP/3 on one QUIC connection, from [`Upgrader::accept_http3`]:
/// every extended CONNECT (RFC 9220) the [`Upgrader`] accepts becomes a [`Conn`], in
/// [`accept`](Self::accept). Requests it refuses (plain GETs among them) get the refusal's
/// status, headers and body, and are not seen here.
///
/// Request streams are handled concurrently: one client slow to send its headers does not
/// delay the others (each has the upgrader's handshake timeout).
///
/// [`shutdown`](Self::shutdown) (called by itself when the upgrader's
/// [`ConnOptions::shutdown`](crate::ConnOptions::shutdown) switch is triggered) sends
/// GOAWAY: the WebSockets already open go on, new request streams are refused.
#[derive(Debug)]
pub struct Http3Server {
    conns: mpsc::Receiver<Conn<H3Stream>>,
    session: Session,
    accepting: Arc<Accept>,
}

/// What the server handle and its accept loop share.
#[derive(Debug, Default)]
struct Accept {
    state: Mutex<Accepting>,
    /// Signalled once our GOAWAY went: the accept loop stops handing out WebSockets.
    went: tokio::sync::Notify,
}

/// Which request streams the accept loop takes.
#[derive(Debug, Default)]
struct Accepting {
    /// The id after the highest request stream taken so far.
    next: u64,
    /// The id our GOAWAY carried: request streams from it on are refused.
    goaway: Option<u64>,
}

impl Accepting {
    /// Whether the request stream `id` is taken (and counted) or refused.
    fn take(&mut self, id: u64) -> bool {
        if self.goaway.is_some_and(|last| id >= last) {
            return false;
        }
        self.next = self.next.max(id + 4);
        true
    }

    /// The id for a GOAWAY (the first one's, if one went already), and whether to send it.
    fn go_away(&mut self) -> (u64, bool) {
        match self.goaway {
            Some(id) => (id, false),
            None => {
                self.goaway = Some(self.next);
                (self.next, true)
            }
        }
    }
}

fn lock(accept: &Accept) -> std::sync::MutexGuard<'_, Accepting> {
    accept.state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Http3Server {
    /// The next accepted WebSocket on this QUIC connection; `None` once the connection has
    /// closed (see [`connection`](Self::connection)'s `close_reason` for why), or after
    /// [`shutdown`](Self::shutdown) once the WebSockets accepted before it were taken.
    ///
    /// Cancel-safe: a WebSocket not yet returned stays queued.
    pub async fn accept(&mut self) -> Option<Conn<H3Stream>> {
        self.conns.recv().await
    }

    /// The QUIC connection.
    pub fn connection(&self) -> &quinn::Connection {
        &self.session.conn
    }

    /// Starts a graceful shutdown of this HTTP/3 connection (RFC 9114 §5.2): sends GOAWAY
    /// with the id of the first request stream not yet taken, and refuses that stream and
    /// every later one with `H3_REQUEST_REJECTED` (the client may retry them on another
    /// connection). WebSockets already open are not touched: close them (a
    /// [`Shutdown`](crate::Shutdown) closes them with 1001); the QUIC connection closes when
    /// the last of them and this handle are gone. Calling it again sends nothing.
    ///
    /// # Errors
    /// [`Error::Io`] when the control stream cannot be written (the connection is gone).
    pub async fn shutdown(&self) -> Result<(), Error> {
        go_away(&self.session.control, &self.accepting).await
    }
}

async fn go_away(control: &ControlStream, accept: &Accept) -> Result<(), Error> {
    let (id, send) = lock(accept).go_away();
    if send {
        tracing::debug!(id, "sending GOAWAY");
        accept.went.notify_one();
        control.send_goaway(id).await?;
    }
    Ok(())
}

impl Upgrader {
    /// Runs HTTP/3 (RFC 9114, the subset RFC 9220 needs) on an accepted QUIC connection:
    /// sends our SETTINGS (extended CONNECT enabled), reads the client's control stream and
    /// answers every request stream with [`decide`](Self::decide) (peer = the client's UDP
    /// address): a `200` and a [`Conn`] for a WebSocket, the refusal's response otherwise.
    ///
    /// ```no_run
    /// # async fn run(endpoint: quinn::Endpoint) -> Result<(), ferrosocket::Error> {
    /// use ferrosocket::{Message, Upgrader};
    /// let upgrader = Upgrader::new();
    /// while let Some(incoming) = endpoint.accept().await {
    ///     let upgrader = upgrader.clone();
    ///     tokio::spawn(async move {
    ///         let Ok(quic) = incoming.await else { return };
    ///         let Ok(mut h3) = upgrader.accept_http3(quic).await else { return };
    ///         while let Some(mut conn) = h3.accept().await {
    ///             tokio::spawn(async move {
    ///                 while let Ok(msg) = conn.recv().await {
    ///                     if conn.send(msg).await.is_err() {
    ///                         break;
    ///                     }
    ///                 }
    ///             });
    ///         }
    ///     });
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Http3`] when the connection fails before our control stream is open.
    pub async fn accept_http3(&self, conn: quinn::Connection) -> Result<Http3Server, Error> {
        let session = Session::start(conn.clone(), None).await?;
        let (tx, rx) = mpsc::channel(BACKLOG);
        let accepting = Arc::new(Accept::default());
        let weak = Arc::downgrade(&session.guard);
        let control = session.control.clone();
        tokio::spawn(accept_loop(
            conn,
            control,
            weak,
            self.clone(),
            tx,
            accepting.clone(),
        ));
        Ok(Http3Server {
            conns: rx,
            session,
            accepting,
        })
    }
}

async fn accept_loop(
    conn: quinn::Connection,
    control: ControlStream,
    guard: Weak<SessionGuard>,
    upgrader: Upgrader,
    tx: mpsc::Sender<Conn<H3Stream>>,
    accepting: Arc<Accept>,
) {
    let switch = upgrader.shutdown_switch().cloned();
    let shutdown = async {
        match &switch {
            Some(s) => s.until_triggered().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(shutdown);
    let mut tx = Some(tx);
    loop {
        let (send, recv) = tokio::select! {
            accepted = conn.accept_bi() => match accepted {
                Ok(streams) => streams,
                Err(_) => return,
            },
            () = &mut shutdown, if tx.is_some() => {
                let _ = go_away(&control, &accepting).await;
                continue;
            }
            () = accepting.went.notified(), if tx.is_some() => {
                // `accept` ends once the requests under way are answered.
                tx = None;
                continue;
            }
        };
        if !lock(&accepting).take(u64::from(send.id())) {
            reject(send, recv);
            continue;
        }
        // Nobody left to take WebSockets: the session is over.
        let Some(guard) = guard.upgrade() else { return };
        let Some(tx) = tx.clone() else {
            reject(send, recv);
            continue;
        };
        let conn = conn.clone();
        let upgrader = upgrader.clone();
        tokio::spawn(async move { request(send, recv, &conn, guard, &upgrader, &tx).await });
    }
}

/// Refuses a request stream that came after our GOAWAY (RFC 9114 §5.2: the client may retry
/// it elsewhere).
fn reject(mut send: quinn::SendStream, mut recv: quinn::RecvStream) {
    let code = quinn::VarInt::from_u32(codes::H3_REQUEST_REJECTED as u32);
    let _ = send.reset(code);
    let _ = recv.stop(code);
}

/// Reads a request stream's HEADERS, answers it, and queues the WebSocket.
async fn request(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    conn: &quinn::Connection,
    guard: Arc<SessionGuard>,
    upgrader: &Upgrader,
    tx: &mpsc::Sender<Conn<H3Stream>>,
) {
    // The handshake timeout bounds the request's arrival only (slowloris), not the wait
    // for the application to take the WebSocket.
    let read = match upgrader.handshake_timeout_value() {
        Some(t) => tokio::time::timeout(t, read_headers(&mut recv))
            .await
            .unwrap_or(Ok(None)),
        None => read_headers(&mut recv).await,
    };
    let (fields, leftover) = match read {
        Ok(Some(read)) => read,
        Ok(None) => return,
        Err(e) if e.code == codes::H3_MESSAGE_ERROR || e.code == codes::H3_EXCESSIVE_LOAD => {
            tracing::debug!(reason = %e.reason, "malformed http/3 request");
            let code = quinn::VarInt::from_u32(e.code as u32);
            let _ = send.reset(code);
            let _ = recv.stop(code);
            return;
        }
        Err(e) => return fail(conn, &e),
    };
    let parts = match request_parts(&fields) {
        Ok(parts) => parts,
        Err(e) => {
            tracing::debug!(reason = %e.reason, "malformed http/3 request");
            let code = quinn::VarInt::from_u32(e.code as u32);
            let _ = send.reset(code);
            let _ = recv.stop(code);
            return;
        }
    };
    match upgrader.decide(&parts, Some(conn.remote_address())) {
        Ok(upgrade) => {
            let head = response_headers(upgrade.response().status(), upgrade.response().headers());
            if send.write_all(&head).await.is_err() {
                return;
            }
            let stream = H3Stream::new(send, recv, leftover, conn.clone(), guard);
            let _ = tx.send(upgrade.into_conn(stream, &[])).await;
        }
        Err(refusal) => {
            let response = refusal.into_response();
            let mut out = response_headers(response.status(), response.headers());
            if !response.body().is_empty() {
                frame::encode_frame(frame::DATA, response.body(), &mut out);
            }
            if send.write_all(&out).await.is_ok() {
                let _ = send.finish();
                let linger = std::time::Duration::from_secs(5);
                let _ = tokio::time::timeout(linger, send.stopped()).await;
            }
        }
    }
}

/// Reads frames until the request's HEADERS: its fields and the stream bytes after it.
/// `Ok(None)` when the stream ends or fails first.
async fn read_headers(
    recv: &mut quinn::RecvStream,
) -> Result<Option<(Vec<qpack::Field>, (BytesMut, u64))>, CodecError> {
    let mut frames = FrameDecoder::new(MAX_FIELD_SECTION_SIZE as u64);
    let mut buf = vec![0u8; 4096];
    loop {
        match frames.next_frame()? {
            Some(Frame::Headers(block)) => {
                let fields = qpack::decode(&block, MAX_FIELD_SECTION_SIZE)?;
                return Ok(Some((fields, frames.into_remaining())));
            }
            Some(_) => {
                return Err(CodecError::new(
                    codes::H3_FRAME_UNEXPECTED,
                    "a request stream must start with HEADERS".into(),
                ));
            }
            None => {}
        }
        match recv.read(&mut buf).await {
            Ok(Some(n)) => frames.push(&buf[..n]),
            Ok(None) | Err(_) => return Ok(None),
        }
    }
}

fn malformed(reason: impl Into<String>) -> CodecError {
    CodecError::new(codes::H3_MESSAGE_ERROR, reason.into())
}

/// The request's [`http::request::Parts`]: method, URI from `:scheme`, `:authority` and
/// `:path`, HTTP/3, the headers, and `:protocol` as a [`ConnectProtocol`] extension.
fn request_parts(fields: &[qpack::Field]) -> Result<http::request::Parts, CodecError> {
    let (mut method, mut scheme, mut authority, mut path, mut protocol) = (None, None, None, None, None);
    let mut headers = HeaderMap::new();
    for f in fields {
        let value =
            || std::str::from_utf8(&f.value).map_err(|_| malformed("a pseudo-header value is not UTF-8"));
        if let Some(pseudo) = f.name.strip_prefix(b":") {
            if !headers.is_empty() {
                return Err(malformed("pseudo-header after a regular header (RFC 9114 §4.3)"));
            }
            let slot = match pseudo {
                b"method" => &mut method,
                b"scheme" => &mut scheme,
                b"authority" => &mut authority,
                b"path" => &mut path,
                b"protocol" => &mut protocol,
                _ => return Err(malformed("unknown pseudo-header")),
            };
            if slot.replace(value()?.to_owned()).is_some() {
                return Err(malformed("a pseudo-header appears twice"));
            }
            continue;
        }
        if f.name.iter().any(u8::is_ascii_uppercase) {
            return Err(malformed("uppercase header name (RFC 9114 §4.2)"));
        }
        let name = http::HeaderName::from_bytes(&f.name).map_err(|_| malformed("invalid header name"))?;
        let value = http::HeaderValue::from_bytes(&f.value).map_err(|_| malformed("invalid header value"))?;
        headers.append(name, value);
    }
    let method = method.ok_or_else(|| malformed("no :method"))?;
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| malformed("invalid :method"))?;
    let uri = match (&scheme, &authority, &path) {
        (Some(s), Some(a), Some(p)) => format!("{s}://{a}{p}"),
        (None, Some(a), None) => a.clone(),
        (_, _, Some(p)) => p.clone(),
        _ => return Err(malformed("no :path or :authority")),
    };
    let uri = Uri::try_from(uri).map_err(|_| malformed("the request target is not a valid URI"))?;
    let mut req = Request::new(());
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_3;
    *req.headers_mut() = headers;
    if let Some(p) = protocol {
        req.extensions_mut().insert(ConnectProtocol::new(p));
    }
    Ok(req.into_parts().0)
}

/// A HEADERS frame with `:status` and `headers`, without the connection-specific fields
/// HTTP/3 forbids (RFC 9114 §4.2).
fn response_headers(status: StatusCode, headers: &HeaderMap) -> Vec<u8> {
    const HOP_BY_HOP: [&str; 5] = [
        "connection",
        "upgrade",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
    ];
    let status = status.as_str().as_bytes().to_vec();
    let fields = std::iter::once((&b":status"[..], &status[..])).chain(
        headers
            .iter()
            .filter(|(n, _)| !HOP_BY_HOP.contains(&n.as_str()))
            .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes())),
    );
    qpack::headers_frame(fields)
}

/// A quinn server configuration for HTTP/3 from a rustls one (for example from
/// [`tls::server_config`](crate::tls::server_config)): a copy with ALPN `h3` (replacing any
/// other) and a QUIC keep-alive every 10 s, so that idle WebSockets outlive quinn's 30 s
/// idle timeout. QUIC needs TLS 1.3: the config must allow it.
///
/// ```no_run
/// # fn run(cert: Vec<u8>, key: Vec<u8>) -> Result<(), Box<dyn std::error::Error>> {
/// use ferrosocket::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
/// let tls = ferrosocket::tls::server_config(
///     vec![CertificateDer::from(cert)],
///     PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
/// )?;
/// let config = ferrosocket::http3::server_config(&tls)?;
/// let endpoint = quinn::Endpoint::server(config, "127.0.0.1:4433".parse()?)?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::Http3`] ([`Http3Error::Connect`]) when the rustls configuration cannot serve
/// QUIC (no TLS 1.3 cipher suite, or early data set to an unsupported value).
pub fn server_config(tls: &rustls::ServerConfig) -> Result<quinn::ServerConfig, Error> {
    let mut tls = tls.clone();
    tls.alpn_protocols = vec![super::ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| Http3Error::Connect(format!("the TLS configuration cannot serve QUIC: {e}")))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    let mut transport = quinn::TransportConfig::default();
    // WebSockets idle for long: keep the QUIC connection from timing out under them.
    transport.keep_alive_interval(Some(KEEP_ALIVE));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fields(list: &[(&str, &str)]) -> Vec<qpack::Field> {
        list.iter()
            .map(|(n, v)| qpack::Field {
                name: n.as_bytes().to_vec(),
                value: v.as_bytes().to_vec(),
            })
            .collect()
    }

    #[test]
    fn extended_connect_becomes_parts_with_the_protocol() {
        let p = request_parts(&fields(&[
            (":method", "CONNECT"),
            (":protocol", "websocket"),
            (":scheme", "https"),
            (":authority", "example.com:4433"),
            (":path", "/chat?room=1"),
            ("sec-websocket-version", "13"),
        ]))
        .unwrap();
        assert_eq!(p.method, Method::CONNECT);
        assert_eq!(p.version, Version::HTTP_3);
        assert_eq!(p.uri, "https://example.com:4433/chat?room=1");
        assert_eq!(p.headers["sec-websocket-version"], "13");
        assert_eq!(
            p.extensions.get::<ConnectProtocol>().unwrap().as_str(),
            "websocket"
        );
        let upgrade = Upgrader::new().decide(&p, None).unwrap();
        assert_eq!(upgrade.response().status(), StatusCode::OK);
    }

    #[test]
    fn malformed_requests_are_message_errors() {
        for bad in [
            &[(":path", "/")][..],
            &[(":method", "GET"), (":method", "GET"), (":path", "/")],
            &[(":method", "GET"), ("x", "1"), (":path", "/")],
            &[(":method", "GET"), (":path", "/"), ("X-Upper", "1")],
            &[(":method", "GET"), (":path", "/"), (":bogus", "1")],
        ] {
            assert_eq!(
                request_parts(&fields(bad)).unwrap_err().code,
                codes::H3_MESSAGE_ERROR,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn goaway_carries_the_id_after_the_last_stream_taken_and_refuses_from_it() {
        let mut a = Accepting::default();
        assert_eq!(a.go_away(), (0, true), "nothing taken: GOAWAY 0");
        let mut a = Accepting::default();
        assert!(a.take(0) && a.take(8) && a.take(4));
        assert_eq!(a.go_away(), (12, true));
        assert_eq!(a.go_away(), (12, false), "sent once");
        assert!(!a.take(12) && !a.take(16), "at or past the id: refused");
        assert!(a.take(4), "below it: still taken");
    }

    #[test]
    fn responses_drop_connection_specific_headers() {
        let mut h = HeaderMap::new();
        h.insert("connection", "close".parse().unwrap());
        h.insert("sec-websocket-protocol", "chat".parse().unwrap());
        let out = response_headers(StatusCode::OK, &h);
        let mut d = FrameDecoder::new(1 << 16);
        d.push(&out);
        let Some(Frame::Headers(block)) = d.next_frame().unwrap() else {
            panic!("not a HEADERS frame")
        };
        let got: Vec<(Vec<u8>, Vec<u8>)> = qpack::decode(&block, 1 << 16)
            .unwrap()
            .into_iter()
            .map(|f| (f.name, f.value))
            .collect();
        assert_eq!(
            got,
            [
                (b":status".to_vec(), b"200".to_vec()),
                (b"sec-websocket-protocol".to_vec(), b"chat".to_vec())
            ]
        );
    }
}
