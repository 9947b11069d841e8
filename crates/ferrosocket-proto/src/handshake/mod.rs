//! Sans-I/O HTTP/1.1 upgrade handshake (RFC 6455 §4).
//!
//! This module turns bytes into [`::http`] requests and responses and back,
//! and decides whether an opening handshake is acceptable. It never reads
//! from a socket, never looks at a clock and never draws random numbers: the
//! caller feeds bytes in, writes the produced bytes out, and supplies the 16
//! random bytes of the client key.
//!
//! * [`http`] parses and serializes request/response heads incrementally.
//! * [`server`] validates an upgrade request and builds the `101` answer or
//!   a rejection.
//! * [`client`] builds the upgrade request and verifies the server's answer.
//! * [`body`] decodes the body of a refused handshake's answer (`Content-Length`, chunked).
//! * [`proxy`] builds the `CONNECT` request for an HTTP proxy and reads its answer.
//!
//! # Example: a complete handshake in memory
//!
//! ```
//! use bytes::BytesMut;
//! use ferrosocket_proto::{ClientHandshake, Limits, ServerHandshake, parse_request, parse_response};
//! use ferrosocket_proto::{request_from_url, write_request};
//!
//! // Client side: build and serialize the request.
//! let req = request_from_url("ws://example.com/chat").unwrap();
//! let (client_hs, req) = ClientHandshake::new(req, [7; 16]).unwrap();
//! let mut wire = Vec::new();
//! write_request(&req, &mut wire);
//!
//! // Server side: parse, validate, answer.
//! let mut inbound = BytesMut::from(&wire[..]);
//! let parsed = parse_request(&mut inbound, &Limits::default())
//!     .unwrap()
//!     .expect("the whole head was supplied");
//! let (parts, ()) = parsed.into_parts();
//! let accepted = ServerHandshake::new().validate(&parts).unwrap();
//! let mut answer = Vec::new();
//! accepted.write_to(&mut answer);
//!
//! // Client side again: parse and verify the answer.
//! let mut inbound = BytesMut::from(&answer[..]);
//! let resp = parse_response(&mut inbound, &Limits::default())
//!     .unwrap()
//!     .expect("the whole head was supplied");
//! let negotiated = client_hs.verify(&resp).unwrap();
//! assert_eq!(negotiated.subprotocol, None);
//! ```

pub(crate) mod body;
pub(crate) mod client;
pub(crate) mod http;
pub(crate) mod proxy;
pub(crate) mod server;

use base64::Engine as _;
use sha1::{Digest as _, Sha1};

/// The GUID that RFC 6455 §1.3 appends to `Sec-WebSocket-Key` before hashing
/// it into `Sec-WebSocket-Accept`.
pub(crate) const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The only protocol version this crate speaks (`Sec-WebSocket-Version: 13`,
/// RFC 6455 §4.1).
pub(crate) const WEBSOCKET_VERSION: &str = "13";

/// Computes the `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`:
/// `base64(SHA-1(key ++ WEBSOCKET_GUID))` (RFC 6455 §4.2.2).
///
/// `key` is the header value exactly as sent (the base64 text, not the
/// decoded bytes).
///
/// ```
/// use ferrosocket_proto::accept_key;
///
/// assert_eq!(
///     accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
///     "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
/// );
/// ```
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(WEBSOCKET_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// Encodes a 16-byte nonce as a `Sec-WebSocket-Key` value (base64, 24
/// characters, RFC 6455 §4.1).
///
/// The nonce must be freshly drawn from a random source for every
/// connection; this function does not draw it so that the handshake stays
/// deterministic and testable.
///
/// ```
/// use ferrosocket_proto::generate_key;
///
/// assert_eq!(generate_key(*b"the sample nonce"), "dGhlIHNhbXBsZSBub25jZQ==");
/// ```
pub fn generate_key(nonce: [u8; 16]) -> String {
    base64::engine::general_purpose::STANDARD.encode(nonce)
}

/// Iterates over the comma-separated tokens of one header value, with
/// surrounding spaces and tabs trimmed and empty elements skipped (the
/// `#rule` list syntax of RFC 9110 §5.6.1).
///
/// Tokens that are not valid UTF-8 are skipped. Quoted strings are not
/// interpreted, so use this for token lists such as `Connection`, `Upgrade`
/// and `Sec-WebSocket-Protocol`, not for `Sec-WebSocket-Extensions`.
///
/// ```
/// use ferrosocket_proto::header_tokens;
/// use http::HeaderValue;
///
/// let v = HeaderValue::from_static(" keep-alive, ,Upgrade ");
/// assert_eq!(header_tokens(&v).collect::<Vec<_>>(), ["keep-alive", "Upgrade"]);
/// ```
pub fn header_tokens(value: &::http::HeaderValue) -> impl Iterator<Item = &str> {
    value
        .as_bytes()
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
        .filter_map(|t| std::str::from_utf8(t).ok())
}

/// Returns whether any header line called `name` contains `token` in its
/// comma-separated list, comparing ASCII case-insensitively.
///
/// All lines with that name are checked, so `Connection: keep-alive` followed
/// by `Connection: Upgrade` contains `upgrade`.
///
/// ```
/// use ferrosocket_proto::header_has_token;
/// use http::{HeaderMap, HeaderValue, header::CONNECTION};
///
/// let mut headers = HeaderMap::new();
/// headers.append(CONNECTION, HeaderValue::from_static("keep-alive"));
/// headers.append(CONNECTION, HeaderValue::from_static("Upgrade"));
/// assert!(header_has_token(&headers, CONNECTION, "upgrade"));
/// assert!(!header_has_token(&headers, CONNECTION, "close"));
/// ```
pub fn header_has_token<K>(headers: &::http::HeaderMap, name: K, token: &str) -> bool
where
    K: ::http::header::AsHeaderName,
{
    headers
        .get_all(name)
        .iter()
        .any(|v| header_tokens(v).any(|t| t.eq_ignore_ascii_case(token)))
}

/// Splits a `Sec-WebSocket-Extensions` value into its comma-separated
/// elements, honouring quoted strings (a `,` inside `"..."` does not split),
/// trimming whitespace and skipping empty elements.
fn split_extension_list(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
        } else if c == '"' {
            in_quotes = true;
        } else if c == ',' {
            out.push(value.get(start..i).unwrap_or(""));
            start = i + 1;
        }
    }
    out.push(value.get(start..).unwrap_or(""));
    out.into_iter()
        .map(|e| e.trim_matches([' ', '\t']))
        .filter(|e| !e.is_empty())
        .collect()
}

/// Returns the extension name of one `Sec-WebSocket-Extensions` element
/// (the part before the first `;`, trimmed).
fn extension_name(element: &str) -> &str {
    element.split(';').next().unwrap_or("").trim_matches([' ', '\t'])
}

/// Size limits applied while parsing an HTTP head.
///
/// Both bounds protect a server from a peer that sends an endless or huge
/// head (slowloris-style) to pin memory: nothing beyond these limits is
/// buffered before the peer is rejected with `431`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted head (request or status line, headers and the blank
    /// line) in bytes.
    ///
    /// Default: 16 KiB, the same order as common servers (Node.js 16 KiB,
    /// nginx 8 KiB per line, Apache 8 KiB per field); browsers' handshakes
    /// with cookies fit comfortably while a connection cannot make the
    /// server buffer more than this before being rejected.
    pub max_header_bytes: usize,
    /// Largest accepted number of header lines.
    ///
    /// Default: 64. Browsers send about 15–20 headers in an upgrade request;
    /// 64 leaves room for proxies and cookies while bounding the work spent
    /// per head (the parser uses a fixed array of this many slots).
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: 16 * 1024,
            max_headers: 64,
        }
    }
}

/// Why an opening handshake failed.
///
/// On the server, [`HandshakeError::status`] gives the HTTP status to answer
/// with; [`server::Rejection`] pairs the two.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The HTTP head is larger than [`Limits::max_header_bytes`].
    #[error(
        "http head is larger than the allowed header size; send fewer or shorter headers (or raise Limits::max_header_bytes)"
    )]
    HeaderTooLarge,
    /// The HTTP head has more header lines than [`Limits::max_headers`].
    #[error(
        "http head has more header lines than allowed; send fewer headers (or raise Limits::max_headers)"
    )]
    TooManyHeaders,
    /// The HTTP head could not be parsed; carries the parser's description.
    #[error("malformed http head: {0}; send a well-formed HTTP/1.1 message")]
    Malformed(String),
    /// The upgrade request did not use `GET` (RFC 6455 §4.1).
    #[error("websocket handshake must use the GET method; retry with GET")]
    MethodNotGet,
    /// The message used a protocol version older than HTTP/1.1 (RFC 6455 §4.1).
    #[error("websocket handshake requires HTTP/1.1 or later; retry with HTTP/1.1")]
    HttpVersion,
    /// The request has no `Host` header, or several, or an empty one.
    #[error("request must carry exactly one non-empty Host header; add Host naming the server")]
    MissingHost,
    /// The `Upgrade` header is missing or does not contain `websocket`.
    #[error("missing or wrong Upgrade header; send `Upgrade: websocket`")]
    NotUpgrade,
    /// The `Connection` header is missing or has no `upgrade` token.
    #[error("the Connection header has no `upgrade` token; send `Connection: Upgrade`")]
    ConnectionNotUpgrade,
    /// `Sec-WebSocket-Version` is missing or not `13`.
    #[error(
        "missing or unsupported Sec-WebSocket-Version; only version 13 is supported, send `Sec-WebSocket-Version: 13`"
    )]
    UnsupportedVersion,
    /// `Sec-WebSocket-Key` is missing, repeated, or not the base64 encoding
    /// of exactly 16 bytes.
    #[error(
        "missing or invalid Sec-WebSocket-Key; send exactly one key that is the base64 of 16 random bytes"
    )]
    BadKey,
    /// The `Origin` header names an origin the server does not allow.
    #[error(
        "origin not allowed; connect from a page served by this host or ask for the origin to be allowed"
    )]
    OriginNotAllowed,
    /// The server is at its configured connection limit (answered with 503).
    #[error("server is at its connection limit; retry later")]
    TooManyConnections,
    /// (HTTP/2, HTTP/3) the request is not a CONNECT, the only way to open a WebSocket over
    /// them (RFC 8441 §4, RFC 9220 §3).
    #[error(
        "over HTTP/2 and HTTP/3 a websocket opens with an extended CONNECT; send `:method CONNECT` with `:protocol websocket`"
    )]
    NotExtendedConnect,
    /// (HTTP/2, HTTP/3) a CONNECT whose `:protocol` is missing (a tunnel) or not `websocket`.
    #[error(
        "CONNECT with :protocol {0:?} is not supported here; send `:protocol websocket` to open a websocket"
    )]
    ConnectProtocol(Option<String>),
    /// (Client) the server answered with this status instead of `101`.
    #[error(
        "server answered with status {0} instead of 101 switching protocols; check the url, credentials and server logs"
    )]
    Status(u16),
    /// (Client) `Sec-WebSocket-Accept` is missing, repeated, or does not
    /// match the key that was sent.
    #[error(
        "the Sec-WebSocket-Accept header is missing or does not match the key sent; the server or a proxy in between does not implement websocket correctly"
    )]
    BadAccept,
    /// (Client) the server selected a subprotocol that was not offered, or
    /// several.
    #[error(
        "server selected subprotocol {0:?} which the client did not offer; offer it or fix the server's configuration"
    )]
    UnexpectedSubprotocol(String),
    /// (Client) the server accepted an extension that was not offered.
    #[error("server accepted extension {0:?} which the client did not offer; fix the server's configuration")]
    UnexpectedExtension(String),
    /// (Client) the URL cannot be used for a websocket connection.
    #[error("invalid websocket url: {0}")]
    BadUrl(String),
}

impl HandshakeError {
    /// The HTTP status a server answers with when it rejects a handshake for
    /// this reason.
    ///
    /// * `400 Bad Request` for malformed, missing or wrong headers.
    /// * `403 Forbidden` for [`OriginNotAllowed`](Self::OriginNotAllowed).
    /// * `503 Service Unavailable` for [`TooManyConnections`](Self::TooManyConnections).
    /// * `405 Method Not Allowed` for [`MethodNotGet`](Self::MethodNotGet)
    ///   (answer with `Allow: GET`, see [`server::Rejection::headers`]).
    /// * `426 Upgrade Required` for
    ///   [`UnsupportedVersion`](Self::UnsupportedVersion) (answer with
    ///   `Sec-WebSocket-Version: 13`, RFC 6455 §4.4).
    /// * `405 Method Not Allowed` for
    ///   [`NotExtendedConnect`](Self::NotExtendedConnect) (answer with `Allow: CONNECT`).
    /// * `501 Not Implemented` for [`ConnectProtocol`](Self::ConnectProtocol): a tunnel or a
    ///   protocol other than `websocket` is a feature this server lacks, not a client error.
    /// * `431 Request Header Fields Too Large` for
    ///   [`HeaderTooLarge`](Self::HeaderTooLarge) and
    ///   [`TooManyHeaders`](Self::TooManyHeaders).
    /// * `505 HTTP Version Not Supported` for
    ///   [`HttpVersion`](Self::HttpVersion): it names the problem exactly,
    ///   and an HTTP/1.0 client cannot have meant to upgrade anyway.
    /// * The client-only variants never reach a server's answer; they map to
    ///   `400`.
    pub fn status(&self) -> ::http::StatusCode {
        use ::http::StatusCode;
        match self {
            Self::HeaderTooLarge | Self::TooManyHeaders => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::MethodNotGet | Self::NotExtendedConnect => StatusCode::METHOD_NOT_ALLOWED,
            Self::ConnectProtocol(_) => StatusCode::NOT_IMPLEMENTED,
            Self::HttpVersion => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            Self::UnsupportedVersion => StatusCode::UPGRADE_REQUIRED,
            Self::OriginNotAllowed => StatusCode::FORBIDDEN,
            Self::TooManyConnections => StatusCode::SERVICE_UNAVAILABLE,
            Self::Malformed(_)
            | Self::MissingHost
            | Self::NotUpgrade
            | Self::ConnectionNotUpgrade
            | Self::BadKey
            | Self::Status(_)
            | Self::BadAccept
            | Self::UnexpectedSubprotocol(_)
            | Self::UnexpectedExtension(_)
            | Self::BadUrl(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// What both sides agreed on during the handshake.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Negotiated {
    /// The selected `Sec-WebSocket-Protocol`, if any (RFC 6455 §1.9).
    pub subprotocol: Option<String>,
    /// The raw accepted `Sec-WebSocket-Extensions` value, if any (several
    /// response lines are joined with `", "`). A client gets one only if it
    /// offered it.
    pub extensions: Option<String>,
    /// The permessage-deflate parameters, when compression was agreed on:
    /// pass them to [`Connection::enable_deflate`](crate::Connection::enable_deflate).
    pub deflate: Option<crate::extensions::deflate::DeflateParams>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use ::http::{HeaderMap, HeaderValue, header};

    #[test]
    fn rfc6455_1_3_accept_key_example() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn rfc6455_4_1_generate_key_is_base64_of_nonce() {
        let key = generate_key(*b"the sample nonce");
        assert_eq!(key, "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(key.len(), 24);
        assert_eq!(generate_key([0; 16]), "AAAAAAAAAAAAAAAAAAAAAA==");
    }

    #[test]
    fn rfc9110_5_6_1_header_tokens_trim_and_skip_empty() {
        let v = HeaderValue::from_static(",, keep-alive ,\tUpgrade\t, ,");
        assert_eq!(header_tokens(&v).collect::<Vec<_>>(), ["keep-alive", "Upgrade"]);
        let v = HeaderValue::from_static("");
        assert_eq!(header_tokens(&v).count(), 0);
        let v = HeaderValue::from_bytes(b"a, \xff\xfe, b").unwrap();
        assert_eq!(header_tokens(&v).collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn rfc9110_5_3_header_has_token_checks_all_lines_case_insensitively() {
        let mut h = HeaderMap::new();
        assert!(!header_has_token(&h, header::CONNECTION, "upgrade"));
        h.append(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        assert!(!header_has_token(&h, header::CONNECTION, "upgrade"));
        h.append(header::CONNECTION, HeaderValue::from_static("UPGRADE"));
        assert!(header_has_token(&h, header::CONNECTION, "upgrade"));
        assert!(header_has_token(&h, "connection", "Keep-Alive"));
        // A token must match whole, not as a substring.
        let mut h = HeaderMap::new();
        h.append(header::CONNECTION, HeaderValue::from_static("upgrade-not"));
        assert!(!header_has_token(&h, header::CONNECTION, "upgrade"));
    }

    #[test]
    fn rfc6455_9_1_extension_list_respects_quotes() {
        assert_eq!(
            split_extension_list(r#"foo; a="x,\"y", bar ,, baz;b"#),
            [r#"foo; a="x,\"y""#, "bar", "baz;b"]
        );
        assert_eq!(
            extension_name(" permessage-deflate ; client_max_window_bits"),
            "permessage-deflate"
        );
        assert_eq!(extension_name(""), "");
        assert!(split_extension_list(" , ").is_empty());
    }

    #[test]
    fn limits_default_is_16k_and_64_headers() {
        let l = Limits::default();
        assert_eq!(l.max_header_bytes, 16 * 1024);
        assert_eq!(l.max_headers, 64);
    }

    #[test]
    fn rfc6455_4_2_2_error_statuses() {
        use ::http::StatusCode;
        let cases = [
            (HandshakeError::HeaderTooLarge, 431),
            (HandshakeError::TooManyHeaders, 431),
            (HandshakeError::Malformed("x".into()), 400),
            (HandshakeError::MethodNotGet, 405),
            (HandshakeError::HttpVersion, 505),
            (HandshakeError::MissingHost, 400),
            (HandshakeError::NotUpgrade, 400),
            (HandshakeError::ConnectionNotUpgrade, 400),
            (HandshakeError::UnsupportedVersion, 426),
            (HandshakeError::BadKey, 400),
            (HandshakeError::OriginNotAllowed, 403),
        ];
        for (err, code) in cases {
            assert_eq!(err.status(), StatusCode::from_u16(code).unwrap(), "{err:?}");
        }
        for err in [
            HandshakeError::Status(404),
            HandshakeError::BadAccept,
            HandshakeError::UnexpectedSubprotocol("x".into()),
            HandshakeError::UnexpectedExtension("x".into()),
            HandshakeError::BadUrl("x".into()),
        ] {
            assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{err:?}");
        }
    }

    #[test]
    fn error_messages_are_lowercase_and_actionable() {
        for err in [
            HandshakeError::HeaderTooLarge,
            HandshakeError::TooManyHeaders,
            HandshakeError::Malformed("invalid token".into()),
            HandshakeError::MethodNotGet,
            HandshakeError::HttpVersion,
            HandshakeError::MissingHost,
            HandshakeError::NotUpgrade,
            HandshakeError::ConnectionNotUpgrade,
            HandshakeError::UnsupportedVersion,
            HandshakeError::BadKey,
            HandshakeError::OriginNotAllowed,
            HandshakeError::Status(404),
            HandshakeError::BadAccept,
            HandshakeError::UnexpectedSubprotocol("x".into()),
            HandshakeError::UnexpectedExtension("x".into()),
        ] {
            let msg = err.to_string();
            assert!(msg.starts_with(|c: char| c.is_ascii_lowercase()), "{msg}");
            assert!(msg.contains("; "), "says what to do: {msg}");
            assert!(!msg.ends_with('.'), "{msg}");
        }
    }
}
