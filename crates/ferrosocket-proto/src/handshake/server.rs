//! Server side of the opening handshake (RFC 6455 §4.2).
//!
//! Feed the request bytes to [`ServerHandshake::read_request`] (or
//! [`super::http::parse_request`]), then call [`ServerHandshake::validate`]
//! on the request head. On success write [`Accepted::response`] and switch
//! the connection to WebSocket framing; on failure write
//! [`Rejection::write_default_response`] (or your own response with
//! [`Rejection::status`] and [`Rejection::headers`]) and close.
//!
//! ```
//! use bytes::BytesMut;
//! use ferrosocket_proto::ServerHandshake;
//!
//! let server = ServerHandshake::new().subprotocols(["v2.chat", "chat"]);
//! let mut buf = BytesMut::from(
//!     &b"GET /chat HTTP/1.1\r\n\
//!        Host: server.example.com\r\n\
//!        Upgrade: websocket\r\n\
//!        Connection: Upgrade\r\n\
//!        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
//!        Sec-WebSocket-Protocol: chat, v2.chat\r\n\
//!        Sec-WebSocket-Version: 13\r\n\r\n"[..],
//! );
//! let req = server.read_request(&mut buf).unwrap().expect("complete head");
//! let (parts, ()) = req.into_parts();
//! let accepted = server.validate(&parts).unwrap();
//! assert_eq!(accepted.response.status(), 101);
//! assert_eq!(accepted.negotiated.subprotocol.as_deref(), Some("v2.chat"));
//! assert_eq!(
//!     accepted.response.headers()["sec-websocket-accept"],
//!     "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
//! );
//! ```

use base64::Engine as _;
use base64::engine::{GeneralPurpose, GeneralPurposeConfig};
use bytes::BytesMut;
use http::header::{
    ALLOW, CONNECTION, CONTENT_TYPE, HOST, ORIGIN, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version, request};

use super::http as wire;
use super::{
    HandshakeError, Limits, Negotiated, WEBSOCKET_VERSION, accept_key, header_has_token, header_tokens,
};
use crate::extensions::deflate::{DeflateConfig, negotiate_server};
use crate::extensions::parse_extensions;

/// Standard base64 with padding, tolerant of non-zero trailing bits, used
/// to check that a client key is 16 bytes. Tolerance costs nothing here:
/// the key is only hashed, never used as bytes.
const KEY_ENGINE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// Server-side handshake settings: supported subprotocols and parser limits.
///
/// Cheap to clone; build it once and share it between connections.
#[derive(Debug, Clone, Default)]
pub struct ServerHandshake {
    subprotocols: Vec<String>,
    limits: Limits,
    deflate: Option<DeflateConfig>,
}

impl ServerHandshake {
    /// Creates settings with no subprotocols and default [`Limits`].
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts permessage-deflate (RFC 7692) offers with this configuration; `None` (the
    /// default) declines every extension.
    #[must_use]
    pub fn deflate(mut self, config: Option<DeflateConfig>) -> Self {
        self.deflate = config;
        self
    }

    /// Sets the subprotocols this server speaks, most preferred first.
    ///
    /// The server picks the first protocol of this list that the client
    /// offered in `Sec-WebSocket-Protocol`. If none is in common the
    /// handshake still succeeds without a `Sec-WebSocket-Protocol` header:
    /// the client decides whether to go on.
    /// Default: empty, so no subprotocol is ever selected. Matching is
    /// case-sensitive, as subprotocol names are (RFC 6455 §4.1).
    #[must_use]
    pub fn subprotocols<I, S>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.subprotocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the limits used by [`read_request`](Self::read_request).
    /// Default: [`Limits::default`] (16 KiB head, 64 headers).
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The limits used by [`read_request`](Self::read_request).
    pub fn limits_ref(&self) -> &Limits {
        &self.limits
    }

    /// The configured subprotocols, most preferred first.
    pub fn subprotocols_ref(&self) -> &[String] {
        &self.subprotocols
    }

    /// Parses a request head from `buf` with these settings' limits.
    ///
    /// Same contract as [`super::http::parse_request`] (`Ok(None)`: read
    /// more bytes; on success the head is removed from `buf`), with parse
    /// errors already turned into a [`Rejection`] to answer with.
    ///
    /// # Errors
    ///
    /// A [`Rejection`] with status `431` when a limit is exceeded and `400`
    /// when the head is malformed.
    pub fn read_request(&self, buf: &mut BytesMut) -> Result<Option<Request<()>>, Rejection> {
        wire::parse_request(buf, &self.limits).map_err(Rejection::from)
    }

    /// Checks an upgrade request against RFC 6455 §4.2.1 and builds the
    /// `101 Switching Protocols` answer.
    ///
    /// Checked, in this order: method `GET` (else `405`), version HTTP/1.1
    /// or later (else `505`), exactly one non-empty `Host`, an `Upgrade`
    /// header with the token `websocket` and a `Connection` header with the
    /// token `upgrade` (both case-insensitive, across all lines, among other
    /// tokens), exactly one `Sec-WebSocket-Version: 13` (else `426`), and
    /// exactly one `Sec-WebSocket-Key` that is base64 of 16 bytes (all other
    /// failures `400`).
    ///
    /// The `Origin` header is not checked here; call [`check_same_origin`]
    /// or your own policy as well. No extension is ever accepted yet.
    ///
    /// # Errors
    ///
    /// A [`Rejection`] carrying the first failed check and its status.
    pub fn validate(&self, req: &request::Parts) -> Result<Accepted, Rejection> {
        let headers = &req.headers;
        if req.method != Method::GET {
            return Err(HandshakeError::MethodNotGet.into());
        }
        if req.version < Version::HTTP_11 {
            return Err(HandshakeError::HttpVersion.into());
        }
        let mut hosts = headers.get_all(HOST).iter();
        match (hosts.next(), hosts.next()) {
            (Some(h), None) if !h.as_bytes().trim_ascii().is_empty() => {}
            _ => return Err(HandshakeError::MissingHost.into()),
        }
        if !header_has_token(headers, UPGRADE, "websocket") {
            return Err(HandshakeError::NotUpgrade.into());
        }
        if !header_has_token(headers, CONNECTION, "upgrade") {
            return Err(HandshakeError::ConnectionNotUpgrade.into());
        }
        let version = single_value(headers, &SEC_WEBSOCKET_VERSION);
        if version != Some(WEBSOCKET_VERSION.as_bytes()) {
            return Err(HandshakeError::UnsupportedVersion.into());
        }
        let key = single_value(headers, &SEC_WEBSOCKET_KEY)
            .filter(|k| is_valid_key(k))
            .ok_or(HandshakeError::BadKey)?;

        let accept = HeaderValue::try_from(accept_key(key)).map_err(|_| HandshakeError::BadKey)?;
        let mut response = Response::new(());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        *response.version_mut() = Version::HTTP_11;
        let h = response.headers_mut();
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(SEC_WEBSOCKET_ACCEPT, accept);
        let negotiated = self.negotiate(headers, response.headers_mut());
        Ok(Accepted { response, negotiated })
    }

    /// Checks a WebSocket opening over HTTP/2 (RFC 8441) or HTTP/3 (RFC 9220), an *extended
    /// CONNECT*, and builds the `200 OK` answer.
    ///
    /// `protocol` is the request's `:protocol` pseudo-header, which HTTP libraries keep
    /// outside the header map (hyper and h2 as a request extension). The authority is the
    /// URI's (`:authority`), or the `Host` header when the URI has none.
    ///
    /// Checked, in this order, with the status each failure gets and why that one:
    ///
    /// | check | status | why |
    /// |---|---|---|
    /// | method `CONNECT` | `405` with `Allow: CONNECT` | over HTTP/2 and HTTP/3 only an extended CONNECT opens a WebSocket |
    /// | `:protocol` is `websocket` | `501` | the request is a tunnel (no `:protocol`) or another protocol, which this server does not implement |
    /// | an authority | `400` | RFC 8441 §4 requires `:authority` |
    /// | exactly one `Sec-WebSocket-Version: 13` | `400` with `Sec-WebSocket-Version: 13` | `426` would need an `Upgrade` header, which HTTP/2 and HTTP/3 forbid (RFC 9113 §8.2.2) |
    ///
    /// There is no `Sec-WebSocket-Key` and no `Sec-WebSocket-Accept` (RFC 8441 §5): a key that
    /// is present anyway is ignored. Subprotocols and permessage-deflate are negotiated as in
    /// [`validate`](Self::validate). Malformed pseudo-headers never get this far: the HTTP/2 or
    /// HTTP/3 layer resets such a stream itself.
    ///
    /// # Errors
    ///
    /// A [`Rejection`] carrying the first failed check and its status.
    ///
    /// ```
    /// use ferrosocket_proto::ServerHandshake;
    /// use http::{Method, Request, Version};
    ///
    /// let req = Request::builder()
    ///     .method(Method::CONNECT)
    ///     .version(Version::HTTP_2)
    ///     .uri("https://example.com/chat")
    ///     .header("sec-websocket-version", "13")
    ///     .header("sec-websocket-protocol", "chat")
    ///     .body(())
    ///     .unwrap();
    /// let server = ServerHandshake::new().subprotocols(["chat"]);
    /// let accepted = server
    ///     .validate_extended_connect(&req.into_parts().0, Some("websocket"))
    ///     .unwrap();
    /// assert_eq!(accepted.response.status(), 200);
    /// assert_eq!(accepted.response.version(), Version::HTTP_2);
    /// assert_eq!(accepted.negotiated.subprotocol.as_deref(), Some("chat"));
    /// ```
    pub fn validate_extended_connect(
        &self,
        req: &request::Parts,
        protocol: Option<&str>,
    ) -> Result<Accepted, Rejection> {
        let headers = &req.headers;
        if req.method != Method::CONNECT {
            return Err(HandshakeError::NotExtendedConnect.into());
        }
        if protocol != Some("websocket") {
            return Err(HandshakeError::ConnectProtocol(protocol.map(str::to_owned)).into());
        }
        if authority(req).is_none_or(|a| a.trim_ascii().is_empty()) {
            return Err(HandshakeError::MissingHost.into());
        }
        if single_value(headers, &SEC_WEBSOCKET_VERSION) != Some(WEBSOCKET_VERSION.as_bytes()) {
            return Err(Rejection {
                status: StatusCode::BAD_REQUEST,
                error: HandshakeError::UnsupportedVersion,
            });
        }
        let mut response = Response::new(());
        *response.version_mut() = req.version;
        let negotiated = self.negotiate(headers, response.headers_mut());
        Ok(Accepted { response, negotiated })
    }

    /// Chooses the subprotocol and the permessage-deflate parameters from the request's
    /// offers, adding the answers to the response's headers.
    fn negotiate(&self, headers: &HeaderMap, h: &mut HeaderMap) -> Negotiated {
        let offered: Vec<&str> = headers
            .get_all(SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .flat_map(header_tokens)
            .collect();
        let chosen = self
            .subprotocols
            .iter()
            .find(|p| offered.contains(&p.as_str()))
            .and_then(|p| HeaderValue::from_str(p).ok().map(|v| (p.clone(), v)));

        let mut negotiated = Negotiated::default();
        if let Some((name, value)) = chosen {
            h.insert(SEC_WEBSOCKET_PROTOCOL, value);
            negotiated.subprotocol = Some(name);
        }
        if let Some(cfg) = &self.deflate {
            // A malformed offer list declines compression; it does not fail the handshake.
            let values = headers
                .get_all(http::header::SEC_WEBSOCKET_EXTENSIONS)
                .iter()
                .filter_map(|v| v.to_str().ok());
            if let Ok(offers) = parse_extensions(values)
                && let Some((params, answer)) = negotiate_server(&offers, cfg)
                && let Ok(value) = HeaderValue::try_from(answer.as_str())
            {
                h.insert(http::header::SEC_WEBSOCKET_EXTENSIONS, value);
                negotiated.extensions = Some(answer);
                negotiated.deflate = Some(params);
            }
        }
        negotiated
    }
}

/// Returns the trimmed value of `name` if exactly one such header line exists.
fn single_value<'h>(headers: &'h HeaderMap, name: &http::HeaderName) -> Option<&'h [u8]> {
    let mut all = headers.get_all(name).iter();
    match (all.next(), all.next()) {
        (Some(v), None) => Some(v.as_bytes().trim_ascii()),
        _ => None,
    }
}

/// The authority a request names: its one `Host` header, else its URI's authority (HTTP/2
/// and HTTP/3 carry `:authority` there and may omit `Host`).
fn authority(req: &request::Parts) -> Option<&[u8]> {
    single_value(&req.headers, &HOST).or_else(|| req.uri.authority().map(|a| a.as_str().as_bytes()))
}

/// Whether `key` is padded base64 of exactly 16 bytes (24 characters).
fn is_valid_key(key: &[u8]) -> bool {
    let mut out = [0u8; 18];
    key.len() == 24 && matches!(KEY_ENGINE.decode_slice(key, &mut out), Ok(16))
}

/// The default same-origin check (RFC 6455 §10.2).
///
/// A request without `Origin` (a non-browser client) is allowed. Otherwise
/// the `Origin` must be a URL with a scheme and a host, and its
/// `host[:port]`, exactly as written, must equal the `Host` header ASCII
/// case-insensitively. So `Origin: https://example.com:443` does not match
/// `Host: example.com`. Several `Origin` headers,
/// `Origin: null`, credentials in the origin, or an unparsable value are
/// rejected.
///
/// # Errors
///
/// A `403` [`Rejection`] with [`HandshakeError::OriginNotAllowed`].
///
/// ```
/// use ferrosocket_proto::check_same_origin;
///
/// let req = http::Request::get("/")
///     .header("host", "Example.com:8080")
///     .header("origin", "https://example.COM:8080")
///     .body(())
///     .unwrap();
/// assert!(check_same_origin(&req.into_parts().0).is_ok());
/// ```
pub fn check_same_origin(req: &request::Parts) -> Result<(), Rejection> {
    let mut origins = req.headers.get_all(ORIGIN).iter();
    let origin = match (origins.next(), origins.next()) {
        (None, _) => return Ok(()),
        (Some(o), None) => o,
        (Some(_), Some(_)) => return Err(HandshakeError::OriginNotAllowed.into()),
    };
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| Uri::try_from(o).ok())
        .filter(|u| u.scheme_str().is_some_and(|s| !s.is_empty()))
        .and_then(|u| u.authority().cloned())
        .map(|a| a.as_str().to_owned())
        .filter(|a| !a.contains('@'));
    let host = authority(req);
    match (origin_host, host) {
        (Some(o), Some(h)) if o.as_bytes().eq_ignore_ascii_case(h) => Ok(()),
        _ => Err(HandshakeError::OriginNotAllowed.into()),
    }
}

/// A request that passed validation, and the answer to send.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The `101 Switching Protocols` response with `Upgrade: websocket`,
    /// `Connection: Upgrade`, `Sec-WebSocket-Accept` and, when one was
    /// chosen, `Sec-WebSocket-Protocol`. Extra headers (for example
    /// `Set-Cookie`) may be added before writing it.
    pub response: Response<()>,
    /// What was agreed on.
    pub negotiated: Negotiated,
}

impl Accepted {
    /// Serializes [`response`](Self::response) (no body) onto `dst`.
    pub fn write_to(&self, dst: &mut Vec<u8>) {
        wire::write_response(self.response.status(), self.response.headers(), &[], dst);
    }
}

/// A refused handshake: the status to answer with and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("websocket handshake rejected with {status}: {error}")]
pub struct Rejection {
    /// The HTTP status to answer with.
    pub status: StatusCode,
    /// Why the handshake was refused.
    #[source]
    pub error: HandshakeError,
}

impl Rejection {
    /// Headers the rejection response must carry: `Sec-WebSocket-Version:
    /// 13` for a wrong version (`426` over HTTP/1.1, RFC 6455 §4.4; `400` over HTTP/2 and
    /// HTTP/3) and `Allow` for `405` (RFC 9110 §15.5.6): `GET` over HTTP/1.1, `CONNECT`
    /// over HTTP/2 and HTTP/3. Empty otherwise.
    pub fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        if self.status == StatusCode::UPGRADE_REQUIRED || self.error == HandshakeError::UnsupportedVersion {
            h.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static(WEBSOCKET_VERSION));
        } else if self.error == HandshakeError::NotExtendedConnect {
            h.insert(ALLOW, HeaderValue::from_static("CONNECT"));
        } else if self.status == StatusCode::METHOD_NOT_ALLOWED {
            h.insert(ALLOW, HeaderValue::from_static("GET"));
        }
        h
    }

    /// Writes a small plain-text response: the status, [`headers`](Self::headers),
    /// `Content-Type: text/plain; charset=utf-8`, `Connection: close`,
    /// `Content-Length`, and the error message plus a newline as body.
    ///
    /// ```
    /// use ferrosocket_proto::{HandshakeError, Rejection};
    ///
    /// let mut out = Vec::new();
    /// Rejection::from(HandshakeError::UnsupportedVersion).write_default_response(&mut out);
    /// let text = String::from_utf8(out).unwrap();
    /// assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
    /// assert!(text.contains("sec-websocket-version: 13\r\n"));
    /// ```
    pub fn write_default_response(&self, dst: &mut Vec<u8>) {
        let mut headers = self.headers();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
        let body = format!("{}\n", self.error);
        wire::write_response(self.status, &headers, body.as_bytes(), dst);
    }
}

impl From<HandshakeError> for Rejection {
    fn from(error: HandshakeError) -> Self {
        Self {
            status: error.status(),
            error,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn valid() -> http::request::Builder {
        Request::get("/chat")
            .header("host", "server.example.com")
            .header("upgrade", "websocket")
            .header("connection", "Upgrade")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("sec-websocket-version", "13")
    }

    fn parts(b: http::request::Builder) -> request::Parts {
        b.body(()).unwrap().into_parts().0
    }

    fn without(name: &str) -> request::Parts {
        let mut p = parts(valid());
        p.headers.remove(name);
        p
    }

    fn with(name: &str, value: &'static str) -> request::Parts {
        let mut p = parts(valid());
        p.headers.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_static(value),
        );
        p
    }

    fn reject(p: &request::Parts) -> Rejection {
        ServerHandshake::new().validate(p).unwrap_err()
    }

    fn assert_rejected(p: &request::Parts, err: HandshakeError, status: u16) {
        let r = reject(p);
        assert_eq!(r.error, err);
        assert_eq!(r.status, status);
    }

    #[test]
    fn rfc6455_4_2_2_accepts_valid_request_with_101() {
        let a = ServerHandshake::new().validate(&parts(valid())).unwrap();
        assert_eq!(a.response.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(a.response.version(), Version::HTTP_11);
        let h = a.response.headers();
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "Upgrade");
        assert_eq!(h["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert!(!h.contains_key("sec-websocket-protocol"));
        assert!(!h.contains_key("sec-websocket-extensions"));
        assert_eq!(a.negotiated, Negotiated::default());
        let mut out = Vec::new();
        a.write_to(&mut out);
        assert_eq!(
            out,
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
              sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );
    }

    #[test]
    fn rfc6455_4_2_1_rejects_non_get_with_405_and_allow() {
        let mut p = parts(valid());
        p.method = Method::POST;
        let r = reject(&p);
        assert_eq!(r.error, HandshakeError::MethodNotGet);
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()["allow"], "GET");
    }

    #[test]
    fn rfc6455_4_2_1_rejects_http10_with_505() {
        let mut p = parts(valid());
        p.version = Version::HTTP_10;
        assert_rejected(&p, HandshakeError::HttpVersion, 505);
        let mut p = parts(valid());
        p.version = Version::HTTP_2;
        assert!(ServerHandshake::new().validate(&p).is_ok());
    }

    #[test]
    fn rfc6455_4_2_1_rejects_missing_host() {
        assert_rejected(&without("host"), HandshakeError::MissingHost, 400);
        assert_rejected(&with("host", " "), HandshakeError::MissingHost, 400);
        let p = parts(valid().header("host", "other.example.com"));
        assert_rejected(&p, HandshakeError::MissingHost, 400);
    }

    #[test]
    fn rfc6455_4_2_1_rejects_missing_or_wrong_upgrade() {
        assert_rejected(&without("upgrade"), HandshakeError::NotUpgrade, 400);
        assert_rejected(&with("upgrade", "h2c"), HandshakeError::NotUpgrade, 400);
        assert_rejected(&with("upgrade", "websockets"), HandshakeError::NotUpgrade, 400);
    }

    #[test]
    fn rfc6455_4_2_1_upgrade_token_case_insensitive() {
        let p = with("upgrade", "WebSocket");
        assert!(ServerHandshake::new().validate(&p).is_ok());
        let p = with("upgrade", "h2c, WEBSOCKET");
        assert!(ServerHandshake::new().validate(&p).is_ok());
    }

    #[test]
    fn rfc6455_4_2_1_rejects_connection_without_upgrade() {
        assert_rejected(&without("connection"), HandshakeError::ConnectionNotUpgrade, 400);
        assert_rejected(
            &with("connection", "keep-alive"),
            HandshakeError::ConnectionNotUpgrade,
            400,
        );
    }

    #[test]
    fn rfc6455_4_2_1_connection_keep_alive_upgrade_accepted() {
        assert!(
            ServerHandshake::new()
                .validate(&with("connection", "keep-alive, Upgrade"))
                .is_ok()
        );
        assert!(
            ServerHandshake::new()
                .validate(&with("connection", "upgrade"))
                .is_ok()
        );
        let p = parts(
            Request::get("/")
                .header("host", "h")
                .header("upgrade", "websocket")
                .header("connection", "keep-alive")
                .header("connection", "UPGRADE")
                .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
                .header("sec-websocket-version", "13"),
        );
        assert!(ServerHandshake::new().validate(&p).is_ok());
    }

    #[test]
    fn rfc6455_4_4_rejects_unsupported_version_with_426() {
        for p in [
            without("sec-websocket-version"),
            with("sec-websocket-version", "8"),
            with("sec-websocket-version", "13, 8"),
            parts(valid().header("sec-websocket-version", "13")),
        ] {
            let r = reject(&p);
            assert_eq!(r.error, HandshakeError::UnsupportedVersion);
            assert_eq!(r.status, StatusCode::UPGRADE_REQUIRED);
            let h = r.headers();
            assert_eq!(h["sec-websocket-version"], "13");
            assert_eq!(h.len(), 1);
        }
    }

    #[test]
    fn rfc6455_4_2_1_rejects_missing_key() {
        assert_rejected(&without("sec-websocket-key"), HandshakeError::BadKey, 400);
    }

    #[test]
    fn rfc6455_4_2_1_rejects_bad_key() {
        for bad in [
            "",
            "not base64!",
            "dGhlIHNhbXBsZSBub25jZQ",         // no padding
            "dGhlIHNhbXBsZSBub25jZXg=",       // 17 bytes
            "dGhlIHNhbXBsZSBub25j",           // 15 bytes
            "dGhlIHNhbXBsZSBub25jZQ==, AAAA", // list
        ] {
            assert_rejected(&with("sec-websocket-key", bad), HandshakeError::BadKey, 400);
        }
        let p = parts(valid().header("sec-websocket-key", "AAAAAAAAAAAAAAAAAAAAAA=="));
        assert_rejected(&p, HandshakeError::BadKey, 400);
        // Non-zero trailing bits still decode to 16 bytes: accepted.
        assert!(
            ServerHandshake::new()
                .validate(&with("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZR=="))
                .is_ok()
        );
    }

    #[test]
    fn rfc6455_4_2_2_subprotocol_server_order_wins() {
        let server = ServerHandshake::new().subprotocols(["v3", "v2", "v1"]);
        let p = parts(
            valid()
                .header("sec-websocket-protocol", "v1, v2")
                .header("sec-websocket-protocol", "v3"),
        );
        let a = server.validate(&p).unwrap();
        assert_eq!(a.negotiated.subprotocol.as_deref(), Some("v3"));
        assert_eq!(a.response.headers()["sec-websocket-protocol"], "v3");

        let p = with("sec-websocket-protocol", "v1,v2");
        let a = server.validate(&p).unwrap();
        assert_eq!(a.negotiated.subprotocol.as_deref(), Some("v2"));
    }

    #[test]
    fn rfc6455_4_2_2_subprotocol_none_in_common_is_not_an_error() {
        let server = ServerHandshake::new().subprotocols(["chat"]);
        for p in [with("sec-websocket-protocol", "Chat, superchat"), parts(valid())] {
            let a = server.validate(&p).unwrap();
            assert_eq!(a.negotiated.subprotocol, None);
            assert!(!a.response.headers().contains_key("sec-websocket-protocol"));
        }
        // A server with no protocols never selects one.
        let a = ServerHandshake::new()
            .validate(&with("sec-websocket-protocol", "chat"))
            .unwrap();
        assert_eq!(a.negotiated.subprotocol, None);
    }

    #[test]
    fn rfc6455_9_1_server_accepts_no_extension() {
        let p = with("sec-websocket-extensions", "permessage-deflate");
        let a = ServerHandshake::new().validate(&p).unwrap();
        assert_eq!(a.negotiated.extensions, None);
        assert!(!a.response.headers().contains_key("sec-websocket-extensions"));
    }

    #[test]
    fn rfc6455_10_2_same_origin() {
        let ok = |host: &'static str, origin: Option<&'static str>| {
            let mut p = with("host", host);
            if let Some(o) = origin {
                p.headers.insert(ORIGIN, HeaderValue::from_static(o));
            }
            check_same_origin(&p)
        };
        assert_eq!(ok("a.example", None), Ok(()));
        assert_eq!(ok("a.example", Some("https://a.example")), Ok(()));
        assert_eq!(ok("A.Example:8080", Some("http://a.EXAMPLE:8080")), Ok(()));
        assert_eq!(ok("[::1]:9000", Some("http://[::1]:9000")), Ok(()));
        for (host, origin) in [
            ("a.example", "https://b.example"),
            ("a.example", "https://a.example:443"),
            ("a.example:8080", "https://a.example"),
            ("a.example", "null"),
            ("a.example", "a.example"),
            ("a.example", "https://user@a.example"),
            ("a.example", "://a.example"),
        ] {
            let r = ok(host, Some(origin)).unwrap_err();
            assert_eq!(r.error, HandshakeError::OriginNotAllowed, "{origin}");
            assert_eq!(r.status, StatusCode::FORBIDDEN);
        }
        let mut p = with("host", "a.example");
        p.headers
            .append(ORIGIN, HeaderValue::from_static("https://a.example"));
        p.headers
            .append(ORIGIN, HeaderValue::from_static("https://a.example"));
        assert_eq!(check_same_origin(&p).unwrap_err().status, 403);
    }

    #[test]
    fn rfc6455_4_2_2_default_rejection_response() {
        let r = Rejection::from(HandshakeError::BadKey);
        assert_eq!(r.status, 400);
        assert!(r.headers().is_empty());
        let mut out = Vec::new();
        r.write_default_response(&mut out);
        let body = format!("{}\n", HandshakeError::BadKey);
        let expected = format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n\
             connection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        assert_eq!(String::from_utf8(out).unwrap(), expected);

        let mut out = Vec::new();
        Rejection::from(HandshakeError::MethodNotGet).write_default_response(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 405 Method Not Allowed\r\nallow: GET\r\n"));
    }

    #[test]
    fn rfc6585_5_read_request_limits_give_431() {
        let server = ServerHandshake::new().limits(Limits {
            max_header_bytes: 32,
            max_headers: 4,
        });
        assert_eq!(server.limits_ref().max_header_bytes, 32);
        let mut buf = BytesMut::from(&b"GET /a-rather-long-path HTTP/1.1\r\nHost: x"[..]);
        let r = server.read_request(&mut buf).unwrap_err();
        assert_eq!(r.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert_eq!(r.error, HandshakeError::HeaderTooLarge);
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
        assert!(matches!(server.read_request(&mut buf), Ok(None)));
    }

    fn connect(version: Version) -> http::request::Builder {
        Request::builder()
            .method(Method::CONNECT)
            .version(version)
            .uri("https://server.example.com/chat")
            .header("sec-websocket-version", "13")
    }

    fn extended(p: &request::Parts, protocol: Option<&str>) -> Result<Accepted, Rejection> {
        ServerHandshake::new()
            .subprotocols(["chat"])
            .deflate(Some(DeflateConfig::default()))
            .validate_extended_connect(p, protocol)
    }

    #[test]
    fn extended_connect_is_answered_200_with_the_negotiated_headers_only() {
        for version in [Version::HTTP_2, Version::HTTP_3] {
            let p = parts(
                connect(version)
                    .header("sec-websocket-protocol", "other, chat")
                    .header("sec-websocket-extensions", "permessage-deflate")
                    .header("sec-websocket-key", "ignored: RFC 8441 uses no key"),
            );
            let accepted = extended(&p, Some("websocket")).unwrap();
            let r = &accepted.response;
            assert_eq!((r.status(), r.version()), (StatusCode::OK, version));
            let mut names: Vec<_> = r.headers().keys().map(|k| k.as_str()).collect();
            names.sort_unstable();
            assert_eq!(names, ["sec-websocket-extensions", "sec-websocket-protocol"]);
            assert_eq!(accepted.negotiated.subprotocol.as_deref(), Some("chat"));
            assert!(accepted.negotiated.deflate.is_some());
        }
    }

    #[test]
    fn extended_connect_takes_host_when_the_uri_has_no_authority() {
        let mut p = parts(connect(Version::HTTP_2));
        p.uri = http::Uri::from_static("/chat");
        assert_eq!(
            extended(&p, Some("websocket")).unwrap_err().error,
            HandshakeError::MissingHost
        );
        p.headers
            .insert(HOST, HeaderValue::from_static("server.example.com"));
        assert!(extended(&p, Some("websocket")).is_ok());
    }

    #[test]
    fn malformed_extended_connects_get_their_statuses() {
        let get = parts(Request::get("https://server.example.com/").version(Version::HTTP_2));
        let r = extended(&get, None).unwrap_err();
        assert_eq!(
            (r.status.as_u16(), r.error.clone()),
            (405, HandshakeError::NotExtendedConnect)
        );
        assert_eq!(r.headers()[ALLOW], "CONNECT");

        let p = parts(connect(Version::HTTP_2));
        let tunnel = extended(&p, None).unwrap_err();
        assert_eq!(
            (tunnel.status.as_u16(), tunnel.error),
            (501, HandshakeError::ConnectProtocol(None))
        );
        let other = extended(&p, Some("webtransport")).unwrap_err();
        assert_eq!(other.status, 501);

        let mut old = parts(connect(Version::HTTP_2));
        old.headers
            .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"));
        let r = extended(&old, Some("websocket")).unwrap_err();
        assert_eq!(
            (r.status.as_u16(), r.error.clone()),
            (400, HandshakeError::UnsupportedVersion)
        );
        assert_eq!(r.headers()[SEC_WEBSOCKET_VERSION], "13");
    }

    #[test]
    fn same_origin_uses_the_authority_over_http2() {
        let mut p = parts(connect(Version::HTTP_2));
        p.headers
            .insert(ORIGIN, HeaderValue::from_static("https://server.example.com"));
        assert!(check_same_origin(&p).is_ok());
        p.headers
            .insert(ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(check_same_origin(&p).is_err());
    }
}
