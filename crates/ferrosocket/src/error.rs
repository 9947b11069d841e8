//! Errors, and close classification. Every error type the crate returns lives
//! here, so that no module needs another just to name its errors.

use bytes::Bytes;
use ferrosocket_proto::HandshakeError;
use ferrosocket_proto::{CloseCode, CloseFrame, ProtocolError, SendError};
use http::header::HeaderName;
use http::{HeaderMap, StatusCode};
use std::fmt;
use std::io;

/// How a WebSocket session ended, as the peer (or the transport) told us.
///
/// `code` is the peer's close code; [`CloseCode::NO_STATUS_RECEIVED`] (1005) when its close
/// frame had none, and [`CloseCode::ABNORMAL_CLOSURE`] (1006) when the transport ended or was
/// reset without any close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseError {
    /// The close code.
    pub code: CloseCode,
    /// The reason text the peer gave (empty for 1005 and 1006 unless we describe the cause).
    pub reason: String,
}

impl CloseError {
    /// The session ended with the peer's close frame (`None`: no status code, 1005).
    pub fn from_frame(frame: Option<&CloseFrame>) -> Self {
        match frame {
            Some(f) => Self {
                code: f.code,
                reason: f.reason.clone(),
            },
            None => Self {
                code: CloseCode::NO_STATUS_RECEIVED,
                reason: String::new(),
            },
        }
    }

    /// The transport ended without a close frame (1006).
    pub fn abnormal(reason: impl Into<String>) -> Self {
        Self {
            code: CloseCode::ABNORMAL_CLOSURE,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for CloseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason.is_empty() {
            write!(f, "websocket closed: {}", self.code)
        } else {
            write!(f, "websocket closed: {}: {}", self.code, self.reason)
        }
    }
}

impl std::error::Error for CloseError {}

/// Which wait ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// The opening handshake did not finish in time.
    Handshake,
    /// The read deadline passed before a message arrived.
    Read,
    /// The write deadline passed before the output was written.
    Write,
    /// Connecting to the server took too long.
    Connect,
    /// The peer did not answer our close frame within the close timeout.
    Close,
    /// No message went either way for the idle timeout; we sent close 1001.
    Idle,
}

/// Everything that can go wrong on a connection.
///
/// Display texts are lowercase, have no final period, and are not a stable interface: match
/// on the variants or use the predicates instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The session ended: the peer closed it (its code), or the transport ended without a close
    /// frame (1006). Classify it with [`is_close_error`] and [`is_unexpected_close_error`].
    #[error(transparent)]
    Closed(#[from] CloseError),
    /// The connection was used after it reported that it ended. A bug in the caller.
    #[error("connection already closed; do not use it after it reported an error")]
    AlreadyClosed,
    /// The peer broke RFC 6455 or a configured limit; we sent the close code of the error
    /// (1002, 1007 or 1009) and closed the connection.
    #[error("peer violated the protocol (sent close {code}): {0}", code = .0.close_code().as_u16())]
    Protocol(#[from] ProtocolError),
    /// The call is not allowed in the connection's state (e.g. sending after close).
    #[error(transparent)]
    Send(#[from] SendError),
    /// The opening handshake failed.
    #[error("websocket handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// The server refused the opening handshake (a status other than 101): its status,
    /// headers and the start of its body.
    #[error(transparent)]
    BadHandshake(Box<HandshakeResponse>),
    /// The [`Upgrader::on_request`](crate::Upgrader::on_request) callback refused the upgrade:
    /// its response, with this status, was sent and the transport closed.
    #[error("upgrade rejected by the request callback with {status}")]
    Rejected {
        /// The status the callback answered with.
        status: http::StatusCode,
    },
    /// The [`Upgrader::on_request`](crate::Upgrader::on_request) callback made a decision the
    /// handshake cannot honour (a bug in the callback); 500 was sent and the transport closed.
    #[error("upgrade callback error: {0}")]
    BadDecision(#[from] DecisionError),
    /// Going through an HTTP proxy failed: a bad proxy URL, a refusal (with the proxy's status
    /// and headers), or a proxy that does not speak HTTP.
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    /// A request passed to [`Dialer::connect`](crate::Dialer::connect) was refused before
    /// anything was sent.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// Opening a WebSocket over HTTP/2 (RFC 8441) failed: the server does not offer it, or the
    /// HTTP/2 connection or stream failed before the server answered (feature `http2`).
    #[cfg(feature = "http2")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http2")))]
    #[error(transparent)]
    Http2(#[from] Http2Error),
    /// A deadline or timeout passed.
    #[error("timed out: {0:?}")]
    Timeout(TimeoutKind),
    /// The transport failed.
    #[error("i/o error: {0}")]
    Io(#[source] io::Error),
    /// WebSockets over HTTP/3 failed below the WebSocket: the QUIC connection, a server
    /// without RFC 9220 support, or an HTTP/3 protocol error (feature `http3`).
    #[cfg(feature = "http3")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http3")))]
    #[error(transparent)]
    Http3(#[from] Http3Error),
    /// A received message was not the JSON the caller asked for (`recv_json`; feature
    /// `json`). The message was consumed, and the connection remains open: the next `recv`
    /// or `recv_json` reads the next message. Close it yourself if bad input ends the session
    /// (e.g. with [`CloseCode::UNSUPPORTED_DATA`] or [`CloseCode::POLICY_VIOLATION`]).
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    #[error("received message is not the expected json (it was consumed; the connection remains open): {0}")]
    Json(#[source] serde_json::Error),
    /// A value could not be serialized as JSON (`send_json`; feature `json`), e.g. a map
    /// with non-string keys. Nothing was sent; the connection remains open.
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    #[error("value could not be serialized as json (nothing was sent): {0}")]
    JsonEncode(#[source] serde_json::Error),
}

/// The answer to a refused opening handshake, carried by [`Error::BadHandshake`].
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

impl HandshakeResponse {
    /// The error of a handshake the server refused with `parts` and the start of its `body`
    /// (over HTTP/1.1, HTTP/2 or HTTP/3 alike).
    pub(crate) fn refused(parts: http::response::Parts, body: Bytes) -> Error {
        Error::BadHandshake(Box::new(HandshakeResponse {
            error: HandshakeError::Status(parts.status.as_u16()),
            status: parts.status,
            headers: parts.headers,
            body,
        }))
    }
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

/// Why going through an HTTP proxy failed, carried by [`Error::Proxy`].
///
/// ```
/// use ferrosocket::{Dialer, Error, ProxyError};
/// let err = Dialer::new().proxy_url("socks5://127.0.0.1:1080").unwrap_err();
/// assert!(matches!(err, Error::Proxy(ProxyError::BadUrl { .. })));
/// ```
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
        /// The proxy's response headers (`Proxy-Authenticate`...), boxed to keep [`Error`]
        /// small.
        headers: Box<HeaderMap>,
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

/// Why a WebSocket over HTTP/2 could not be opened, carried by [`Error::Http2`] (feature
/// `http2`). A refusal with an HTTP status is [`Error::BadHandshake`] instead, as over
/// HTTP/1.1.
#[cfg(feature = "http2")]
#[cfg_attr(docsrs, doc(cfg(feature = "http2")))]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Http2Error {
    /// [`HttpVersion::Http2`](crate::HttpVersion::Http2) was required, but the server did not
    /// choose `h2` in TLS's ALPN.
    #[error(
        "the server did not choose http/2 (alpn h2) during tls; it may speak http/1.1 only: use HttpVersion::Auto or HttpVersion::Http1"
    )]
    NotNegotiated,
    /// [`HttpVersion::Http2`](crate::HttpVersion::Http2) was required, but the server's
    /// SETTINGS do not enable extended `CONNECT` (`SETTINGS_ENABLE_CONNECT_PROTOCOL`, RFC 8441
    /// §3), without which HTTP/2 cannot carry a WebSocket.
    #[error(
        "the server's http/2 settings do not enable extended CONNECT (RFC 8441), so it cannot carry websockets over http/2: use HttpVersion::Auto to fall back to http/1.1, or enable it on the server"
    )]
    ExtendedConnectDisabled,
    /// The HTTP/2 connection failed during its handshake or closed before the server sent its
    /// SETTINGS (for `ws://` with [`HttpVersion::Http2`](crate::HttpVersion::Http2): the
    /// server may not speak HTTP/2 without TLS).
    #[error("the http/2 connection failed: {0}; check that the server speaks http/2 at this address")]
    Connection(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The stream carrying the extended `CONNECT` failed (reset or refused by the server, or
    /// its connection ended) before an answer arrived.
    #[error("the http/2 stream of the websocket request failed before the server answered: {0}")]
    Stream(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Why a request passed to [`Dialer::connect`](crate::Dialer::connect) was refused before
/// connecting, carried by [`Error::Request`].
///
/// ```
/// # async fn run() {
/// use ferrosocket::{Dialer, Error, RequestError, http};
/// let request = http::Request::get("ws://127.0.0.1:9/")
///     .header("sec-websocket-version", "8")
///     .body(())
///     .unwrap();
/// let err = Dialer::new().connect(request).await.unwrap_err();
/// assert!(matches!(err, Error::Request(RequestError::ManagedHeader(_))));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The request sets a header the opening handshake manages.
    #[error(
        "the request sets the {0} header, which the websocket handshake manages; remove it (offer compression with Dialer::enable_compression)"
    )]
    ManagedHeader(HeaderName),
}

/// A decision of the [`Upgrader::on_request`](crate::Upgrader::on_request) callback that the
/// handshake cannot honour: a bug in the callback, not in the client. The client was answered
/// with `500 Internal Server Error` (no detail leaks to it) and the transport closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecisionError {
    /// [`Accept::subprotocol`](crate::Accept::subprotocol) named a protocol the client did not offer.
    #[error("the callback chose subprotocol {0:?}, which the client did not offer")]
    SubprotocolNotOffered(String),
    /// [`Accept::header`](crate::Accept::header) set a header the handshake writes itself.
    #[error("the callback set {0}, a header the handshake writes itself")]
    ReservedHeader(HeaderName),
    /// [`Reject`](crate::Reject) had a status below 300, which would not end the exchange as a refusal.
    #[error("the callback refused with status {0}; a refusal needs 300 or above")]
    RejectStatus(StatusCode),
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            // gorilla reports an unexpected EOF as 1006; a reset or broken pipe is the same
            // event seen from the write side.
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => Error::Closed(CloseError::abnormal(e.to_string())),
            // hyper fails an upgraded HTTP/2 stream with its own error: the peer reset the
            // stream, or the HTTP/2 connection under it went away. The transport is lost
            // without a close frame, which RFC 6455 §7.1.5 calls 1006.
            #[cfg(feature = "http2")]
            _ if e.get_ref().is_some_and(|inner| inner.is::<::hyper::Error>()) => Error::Closed(
                CloseError::abnormal(format!("http/2 stream ended: {}", with_causes(&e))),
            ),
            _ => Error::Io(e),
        }
    }
}

/// `e` and every error under it, joined by ": " (hyper's errors show only their kind; the
/// source says which reset or connection error it was).
#[cfg(feature = "http2")]
pub(crate) fn with_causes(e: &io::Error) -> String {
    let mut message = e.to_string();
    let mut cause = e.get_ref().and_then(|inner| inner.source());
    while let Some(c) = cause {
        message.push_str(": ");
        message.push_str(&c.to_string());
        cause = c.source();
    }
    message
}

impl Error {
    /// The close details, when the session ended.
    pub fn close_error(&self) -> Option<&CloseError> {
        match self {
            Error::Closed(c) => Some(c),
            _ => None,
        }
    }

    /// The session ended cleanly: the peer sent 1000 (normal) or 1001 (going away), or a
    /// close frame without a code (1005).
    pub fn is_normal_close(&self) -> bool {
        is_close_error(
            self,
            &[
                CloseCode::NORMAL_CLOSURE,
                CloseCode::GOING_AWAY,
                CloseCode::NO_STATUS_RECEIVED,
            ],
        )
    }
}

/// Whether `err` is a [`CloseError`] with one of `codes`.
///
/// ```
/// use ferrosocket::{CloseError, Error, is_close_error, CloseCode};
/// let err = Error::Closed(CloseError::abnormal("reset"));
/// assert!(is_close_error(&err, &[CloseCode::ABNORMAL_CLOSURE]));
/// assert!(!is_close_error(&err, &[CloseCode::NORMAL_CLOSURE]));
/// ```
pub fn is_close_error(err: &Error, codes: &[CloseCode]) -> bool {
    matches!(err, Error::Closed(c) if codes.contains(&c.code))
}

/// Whether `err` is a [`CloseError`] whose code is NOT one of `expected`: log these, ignore
/// the expected ones.
///
/// ```
/// use ferrosocket::{CloseError, Error, is_unexpected_close_error, CloseCode};
/// let err = Error::Closed(CloseError::abnormal("reset"));
/// assert!(is_unexpected_close_error(&err, &[CloseCode::NORMAL_CLOSURE, CloseCode::GOING_AWAY]));
/// ```
pub fn is_unexpected_close_error(err: &Error, expected: &[CloseCode]) -> bool {
    matches!(err, Error::Closed(c) if !expected.contains(&c.code))
}

/// An HTTP/3 (RFC 9220) failure, as [`Error::Http3`](crate::Error::Http3).
#[cfg(feature = "http3")]
#[cfg_attr(docsrs, doc(cfg(feature = "http3")))]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Http3Error {
    /// The server's SETTINGS do not enable extended CONNECT
    /// (`SETTINGS_ENABLE_CONNECT_PROTOCOL`, RFC 9220 §3): it cannot carry WebSockets over
    /// HTTP/3. Connect over HTTP/1.1 (`wss://`) instead.
    #[error(
        "the server does not support WebSockets over HTTP/3 (RFC 9220: no SETTINGS_ENABLE_CONNECT_PROTOCOL); connect with wss:// over TCP instead"
    )]
    NoExtendedConnect,
    /// The QUIC connection could not be set up: a bad address, or a TLS configuration QUIC
    /// cannot use (QUIC needs TLS 1.3).
    #[error("could not start the QUIC connection: {0}")]
    Connect(String),
    /// The QUIC connection failed or was closed (by the peer, a timeout, or an HTTP/3
    /// protocol error; the message names the error code).
    #[error("the QUIC connection ended: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// The peer broke HTTP/3 on the request stream (bad frames or header section); the
    /// stream or connection was closed with the HTTP/3 error `code` (RFC 9114 §8.1).
    #[error("http/3 protocol error {code:#x}: {reason}")]
    Protocol {
        /// The HTTP/3 or QPACK error code.
        code: u64,
        /// What was wrong.
        reason: String,
    },
    /// The server sent GOAWAY (RFC 9114 §5.2), or refused the request stream it sent after
    /// one (`H3_REQUEST_REJECTED`): it is shutting this QUIC connection down and takes no new
    /// WebSocket on it, while those already open go on. Open a new session
    /// ([`Dialer::http3_session`](crate::Dialer::http3_session)) to reach it again.
    #[error(
        "the server is shutting this HTTP/3 connection down (GOAWAY) and takes no new WebSocket on it; open a new connection"
    )]
    GoingAway,
}
