//! The client role: [`Dialer::connect_http3`] and [`Http3Session`] open WebSockets as
//! extended CONNECTs (RFC 9220) on a QUIC connection.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ferrosocket_proto::{ClientHandshake, HandshakeError, Role, uri_target};
use http::header::{CONNECTION, HOST, SEC_WEBSOCKET_KEY, UPGRADE};
use http::{HeaderMap, Request, Response, StatusCode, Version};
use tokio::time::Instant;

use super::within;
use crate::error::{HandshakeResponse, Http3Error, TimeoutKind};
use crate::http3::codes::{self, CodecError};
use crate::http3::frame::{Frame, FrameDecoder};
use crate::http3::session::{Session, fail};
use crate::http3::{H3Stream, MAX_ERROR_BODY, MAX_FIELD_SECTION_SIZE, qpack};
use crate::{Conn, Dialer, Error, IntoClientRequest, MaybeTlsStream};

/// QUIC keep-alive of client connections: an idle WebSocket must not let the QUIC idle
/// timeout (30 s by default) end the connection under it.
const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// One QUIC connection to an HTTP/3 server on which WebSockets are opened, each on its own
/// request stream ([`connect`](Self::connect)), from [`Dialer::http3_session`]. Cheap to
/// clone; the QUIC connection closes when the session and every connection opened on it are
/// dropped.
///
/// ```no_run
/// # async fn run() -> Result<(), ferrosocket::Error> {
/// use ferrosocket::{Dialer, Message};
/// let session = Dialer::new().http3_session("https://example.com/").await?;
/// let (mut chat, _) = session.connect("https://example.com/chat").await?;
/// let (mut feed, _) = session.connect("https://example.com/feed").await?;
/// chat.send(Message::text("hello")).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Http3Session {
    session: Session,
    dialer: Dialer,
    authority: String,
}

fn target_error(msg: String) -> Error {
    Error::Handshake(HandshakeError::BadUrl(msg))
}

impl Dialer {
    /// Connects to a `wss://` (or `https://`) URL over HTTP/3 (RFC 9220) and opens a
    /// WebSocket on it: one QUIC connection, used by this WebSocket only (open several on one
    /// connection with [`http3_session`](Self::http3_session)). Every option of the dialer
    /// applies as over HTTP/1.1: subprotocols, headers, compression offer, limits, timeouts
    /// (connect: resolving and the QUIC handshake; handshake: SETTINGS and the `200`),
    /// [`tls_config`](Self::tls_config) (ALPN `h3` is set on a copy). Proxies and the
    /// connector hook do not apply (QUIC runs over UDP).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), ferrosocket::Error> {
    /// use ferrosocket::{Dialer, Message};
    /// let (mut conn, response) = Dialer::new().connect_http3("wss://example.com/ws").await?;
    /// assert_eq!(response.status(), 200);
    /// conn.send(Message::text("hello")).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// - [`Error::Http3`] with [`Http3Error::NoExtendedConnect`] when the server's SETTINGS do
    ///   not enable RFC 9220, [`Http3Error::Connect`] / [`Http3Error::Connection`] when QUIC
    ///   (or its TLS) fails.
    /// - [`Error::BadHandshake`] when the server answered with a status other than `200`
    ///   (its status, headers and the start of its body).
    /// - [`Error::Handshake`] for a bad URL (`ws://`: HTTP/3 is always encrypted) or a `200`
    ///   that does not verify (a subprotocol or extension that was not offered).
    /// - [`Error::Timeout`] with [`TimeoutKind::Connect`] or [`TimeoutKind::Handshake`].
    pub async fn connect_http3<R>(&self, request: R) -> Result<(Conn<MaybeTlsStream>, Response<()>), Error>
    where
        R: IntoClientRequest,
    {
        let req = request.into_client_request()?;
        let session = self.open_http3(req.uri()).await?;
        session.connect(req).await
    }

    /// Opens a QUIC connection to the server of `url` (`wss://` or `https://`; only its host
    /// and port are used) for WebSockets over HTTP/3: open them with
    /// [`Http3Session::connect`]. The connect timeout applies.
    ///
    /// # Errors
    /// As for [`connect_http3`](Self::connect_http3), for the QUIC connection.
    pub async fn http3_session(&self, url: &str) -> Result<Http3Session, Error> {
        let req = url.into_client_request()?;
        self.open_http3(req.uri()).await
    }

    async fn open_http3(&self, uri: &http::Uri) -> Result<Http3Session, Error> {
        let target = uri_target(uri)?;
        if !target.tls {
            return Err(target_error(format!(
                "{uri} is not encrypted, but HTTP/3 always is; use wss:// or https://"
            )));
        }
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .ok_or_else(|| target_error("the url has no host".into()))?;
        let (connect_timeout, _) = self.timeouts();
        let deadline = connect_timeout.map(|t| Instant::now() + t);
        let config = self.quic_client_config()?;
        let open = async {
            let addr = tokio::net::lookup_host((target.host.as_str(), target.port))
                .await?
                .next()
                .ok_or_else(|| target_error(format!("{} has no address", target.host)))?;
            let local: SocketAddr = if addr.is_ipv4() {
                (Ipv4Addr::UNSPECIFIED, 0).into()
            } else {
                (Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let endpoint = quinn::Endpoint::client(local)?;
            let connecting = endpoint
                .connect_with(config, addr, &target.host)
                .map_err(|e| Http3Error::Connect(format!("{e}")))?;
            let conn = connecting.await.map_err(Http3Error::Connection)?;
            Session::start(conn, Some(endpoint)).await
        };
        let session = within(deadline, TimeoutKind::Connect, open).await?;
        Ok(Http3Session {
            session,
            dialer: self.clone(),
            authority,
        })
    }

    fn quic_client_config(&self) -> Result<quinn::ClientConfig, Error> {
        let tls = match self.tls() {
            Some(c) => c,
            None => crate::tls::webpki_client_config()?,
        };
        let mut tls = (*tls).clone();
        tls.alpn_protocols = vec![crate::http3::ALPN.to_vec()];
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(Arc::new(tls)).map_err(|e| {
            Http3Error::Connect(format!("the TLS configuration cannot be used for QUIC: {e}"))
        })?;
        let mut config = quinn::ClientConfig::new(Arc::new(quic));
        let mut transport = quinn::TransportConfig::default();
        transport.keep_alive_interval(Some(KEEP_ALIVE));
        config.transport_config(Arc::new(transport));
        Ok(config)
    }
}

impl Http3Session {
    /// Opens a WebSocket on a new request stream: the extended CONNECT for `request`'s path
    /// (a URL of this server, or an [`http::Request`] with headers for this call only),
    /// verified like [`Dialer::connect_http3`]'s. Returns the connection and the `200`.
    ///
    /// # Errors
    /// As for [`Dialer::connect_http3`].
    pub async fn connect<R>(&self, request: R) -> Result<(Conn<MaybeTlsStream>, Response<()>), Error>
    where
        R: IntoClientRequest,
    {
        let (_, handshake_timeout) = self.dialer.timeouts();
        let deadline = handshake_timeout.map(|t| Instant::now() + t);
        within(
            deadline,
            TimeoutKind::Handshake,
            self.exchange(request.into_client_request()?, deadline),
        )
        .await
    }

    /// The QUIC connection.
    pub fn connection(&self) -> &quinn::Connection {
        &self.session.conn
    }

    /// Whether the server sent GOAWAY: it is shutting this connection down, and
    /// [`connect`](Self::connect) fails with [`Http3Error::GoingAway`] (the WebSockets
    /// already open go on until they close).
    pub fn is_going_away(&self) -> bool {
        self.session.peer_goaway().is_some()
    }

    async fn exchange(
        &self,
        req: Request<()>,
        deadline: Option<Instant>,
    ) -> Result<(Conn<MaybeTlsStream>, Response<()>), Error> {
        let mut session = self.session.clone();
        let settings = session.peer_settings().await?;
        if session.peer_goaway().is_some() {
            return Err(Http3Error::GoingAway.into());
        }
        if !settings.enable_connect_protocol {
            return Err(Http3Error::NoExtendedConnect.into());
        }
        let authority = req
            .uri()
            .authority()
            .map_or_else(|| self.authority.clone(), |a| a.as_str().to_owned());
        let path = req
            .uri()
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
        let req = self.dialer.prepare_request(req)?;
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(|e| {
            Error::Io(std::io::Error::other(format!(
                "the OS random number generator failed: {e}"
            )))
        })?;
        let (mut hs, mut req) = ClientHandshake::new(req, nonce)?;
        let options = self.dialer.shared_options();
        if let Some(cfg) = &options.deflate {
            hs.offer_deflate(cfg.clone(), &mut req);
        }
        let head = request_headers(&authority, &path, req.headers());

        let (mut send, mut recv) = session.conn.open_bi().await.map_err(Http3Error::Connection)?;
        send.write_all(&head).await.map_err(|e| match e {
            quinn::WriteError::Stopped(code) if code.into_inner() == codes::H3_REQUEST_REJECTED => {
                Http3Error::GoingAway.into()
            }
            e => Error::Io(e.into()),
        })?;
        let (resp, frames) = read_response(&mut recv, &session.conn).await?;
        self.dialer.store_cookies(req.uri(), resp.headers());
        if resp.status() != StatusCode::OK {
            let body = read_body(&mut recv, frames, deadline).await;
            let _ = send.finish();
            let (parts, ()) = resp.into_parts();
            return Err(HandshakeResponse::refused(parts, body));
        }
        let negotiated = hs.verify_extended_connect(&resp)?;
        let stream = H3Stream::new(
            send,
            recv,
            frames.into_remaining(),
            session.conn.clone(),
            session.guard.clone(),
        );
        let core = options.new_core(Role::Client, negotiated.deflate.as_ref());
        let conn = Conn::from_parts(
            MaybeTlsStream::Http3(Box::new(stream)),
            core,
            options,
            negotiated.subprotocol,
        );
        Ok((conn, resp))
    }
}

/// The extended CONNECT's HEADERS frame: pseudo-headers, then the request's headers without
/// those HTTP/3 forbids or RFC 9220 replaces (`Host` by `:authority`, no key).
fn request_headers(authority: &str, path: &str, headers: &HeaderMap) -> Vec<u8> {
    let pseudo: [(&[u8], &[u8]); 5] = [
        (b":method", b"CONNECT"),
        (b":protocol", b"websocket"),
        (b":scheme", b"https"),
        (b":authority", authority.as_bytes()),
        (b":path", path.as_bytes()),
    ];
    let skip = [HOST, UPGRADE, CONNECTION, SEC_WEBSOCKET_KEY];
    let fields = pseudo.into_iter().chain(
        headers
            .iter()
            .filter(|(n, _)| !skip.contains(n))
            .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes())),
    );
    qpack::headers_frame(fields)
}

fn protocol_error(conn: &quinn::Connection, e: CodecError) -> Error {
    if e.code != codes::H3_MESSAGE_ERROR {
        fail(conn, &e);
    }
    Http3Error::Protocol {
        code: e.code,
        reason: e.reason,
    }
    .into()
}

/// Reads the final response's HEADERS (interim 1xx answers are skipped).
async fn read_response(
    recv: &mut quinn::RecvStream,
    conn: &quinn::Connection,
) -> Result<(Response<()>, FrameDecoder), Error> {
    let mut frames = FrameDecoder::new(MAX_FIELD_SECTION_SIZE as u64);
    let mut buf = vec![0u8; 4096];
    loop {
        while let Some(frame) = frames.next_frame().map_err(|e| protocol_error(conn, e))? {
            let Frame::Headers(block) = frame else {
                return Err(protocol_error(
                    conn,
                    CodecError::new(
                        codes::H3_FRAME_UNEXPECTED,
                        "a response must start with HEADERS".into(),
                    ),
                ));
            };
            let fields =
                qpack::decode(&block, MAX_FIELD_SECTION_SIZE).map_err(|e| protocol_error(conn, e))?;
            let resp = response(&fields).map_err(|e| protocol_error(conn, e))?;
            if !resp.status().is_informational() {
                return Ok((resp, frames));
            }
        }
        match recv.read(&mut buf).await {
            Ok(Some(n)) => frames.push(&buf[..n]),
            Ok(None) => {
                return Err(Error::Closed(crate::error::CloseError::abnormal(
                    "the server ended the request stream before answering; check that the url is a websocket endpoint",
                )));
            }
            Err(quinn::ReadError::Reset(code)) if code.into_inner() == codes::H3_REQUEST_REJECTED => {
                return Err(Http3Error::GoingAway.into());
            }
            Err(e) => return Err(Error::from(std::io::Error::from(e))),
        }
    }
}

fn response(fields: &[qpack::Field]) -> Result<Response<()>, CodecError> {
    let malformed = |m: &str| CodecError::new(codes::H3_MESSAGE_ERROR, m.to_owned());
    let mut status = None;
    let mut headers = HeaderMap::new();
    for f in fields {
        if f.name == b":status" {
            if status.is_some() || !headers.is_empty() {
                return Err(malformed("misplaced or repeated :status"));
            }
            status = Some(StatusCode::from_bytes(&f.value).map_err(|_| malformed("invalid :status"))?);
            continue;
        }
        if f.name.starts_with(b":") {
            return Err(malformed("a request pseudo-header in a response"));
        }
        let name = http::HeaderName::from_bytes(&f.name).map_err(|_| malformed("invalid header name"))?;
        let value = http::HeaderValue::from_bytes(&f.value).map_err(|_| malformed("invalid header value"))?;
        headers.append(name, value);
    }
    let mut resp = Response::new(());
    *resp.status_mut() = status.ok_or_else(|| malformed("no :status"))?;
    *resp.version_mut() = Version::HTTP_3;
    *resp.headers_mut() = headers;
    Ok(resp)
}

/// The start of a refusal's body (DATA payloads, at most 64 KiB), until the stream ends, a
/// frame error, or the deadline.
async fn read_body(
    recv: &mut quinn::RecvStream,
    mut frames: FrameDecoder,
    deadline: Option<Instant>,
) -> Bytes {
    let until = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(2));
    let mut body = BytesMut::new();
    let mut buf = vec![0u8; 4096];
    let work = async {
        loop {
            loop {
                match frames.next_frame() {
                    Ok(Some(Frame::Data(d))) => {
                        let room = MAX_ERROR_BODY - body.len();
                        body.extend_from_slice(&d[..d.len().min(room)]);
                        if body.len() >= MAX_ERROR_BODY {
                            return;
                        }
                    }
                    Ok(Some(_)) | Err(_) => return,
                    Ok(None) => break,
                }
            }
            match recv.read(&mut buf).await {
                Ok(Some(n)) => frames.push(&buf[..n]),
                _ => return,
            }
        }
    };
    let _ = tokio::time::timeout_at(until, work).await;
    body.freeze()
}
