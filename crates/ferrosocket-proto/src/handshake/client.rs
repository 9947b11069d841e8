//! Client side of the opening handshake (RFC 6455 §4.1).
//!
//! Build a request with [`request_from_url`] (and add any headers you need:
//! `Origin`, `Authorization`, `Cookie`, `Sec-WebSocket-Protocol` offers...),
//! pass it to [`ClientHandshake::new`] with 16 fresh random bytes, write the
//! returned request with [`super::http::write_request`], parse the answer
//! with [`super::http::parse_response`] and check it with
//! [`ClientHandshake::verify`].
//!
//! ```
//! use ferrosocket_proto::{ClientHandshake, request_from_url, url_target};
//!
//! let target = url_target("wss://[::1]:9443/feed").unwrap();
//! assert_eq!((target.tls, target.host.as_str(), target.port), (true, "::1", 9443));
//!
//! let mut req = request_from_url("wss://example.com/feed").unwrap();
//! req.headers_mut().insert("sec-websocket-protocol", "v2, v1".parse().unwrap());
//! let (hs, req) = ClientHandshake::new(req, *b"the sample nonce").unwrap();
//! assert_eq!(hs.key(), "dGhlIHNhbXBsZSBub25jZQ==");
//! assert_eq!(req.headers()["host"], "example.com");
//! assert_eq!(req.headers()["sec-websocket-version"], "13");
//!
//! let resp = http::Response::builder()
//!     .status(101)
//!     .header("upgrade", "websocket")
//!     .header("connection", "Upgrade")
//!     .header("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
//!     .header("sec-websocket-protocol", "v1")
//!     .body(())
//!     .unwrap();
//! let negotiated = hs.verify(&resp).unwrap();
//! assert_eq!(negotiated.subprotocol.as_deref(), Some("v1"));
//! ```

use http::header::{
    CONNECTION, HOST, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};

use super::{
    HandshakeError, Negotiated, WEBSOCKET_VERSION, accept_key, extension_name, generate_key,
    header_has_token, header_tokens, split_extension_list,
};
use crate::extensions::deflate::{DeflateConfig, EXTENSION_NAME, client_offer, negotiate_client};

/// Where to connect for a WebSocket URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// Whether the connection must use TLS (`wss://` or `https://`).
    pub tls: bool,
    /// The host to resolve or connect to: a name or an IP address, without
    /// the brackets of an IPv6 literal.
    pub host: String,
    /// The port: the explicit one, or 80 (`ws`) / 443 (`wss`).
    pub port: u16,
}

/// Parses `url` and returns where to connect.
///
/// Accepts `ws://`, `wss://`, and `http://` / `https://` as their
/// equivalents (schemes are case-insensitive).
///
/// # Errors
///
/// [`HandshakeError::BadUrl`] for an unparsable URL, another scheme, a
/// missing host, an invalid port, credentials (`user@`), or a fragment
/// (`#...`, forbidden by RFC 6455 §3).
pub fn url_target(url: &str) -> Result<Target, HandshakeError> {
    uri_target(&parse_url(url)?)
}

/// Like [`url_target`], for an already parsed URI (for example the URI of
/// the request passed to [`ClientHandshake::new`]).
///
/// # Errors
///
/// As for [`url_target`].
pub fn uri_target(uri: &Uri) -> Result<Target, HandshakeError> {
    analyze(uri).map(|(target, _)| target)
}

/// Builds a `GET` upgrade request for `url` with its `Host` header set.
///
/// The request's URI is the URL itself (only its path and query are
/// written on the wire). `Host` is the URL's host, IPv6 brackets kept, plus
/// `:port` only when the URL spells out a port other than the scheme's
/// default (80 for `ws`, 443 for `wss`). Pass the result, with any extra
/// headers, to [`ClientHandshake::new`].
///
/// # Errors
///
/// As for [`url_target`].
///
/// ```
/// use ferrosocket_proto::request_from_url;
///
/// let req = request_from_url("ws://example.com:8080/chat?room=1").unwrap();
/// assert_eq!(req.headers()["host"], "example.com:8080");
/// assert_eq!(req.uri().path_and_query().unwrap(), "/chat?room=1");
/// assert!(request_from_url("ws://example.com/#frag").is_err());
/// ```
pub fn request_from_url(url: &str) -> Result<Request<()>, HandshakeError> {
    let uri = parse_url(url)?;
    let (_, host) = analyze(&uri)?;
    let host = HeaderValue::try_from(host)
        .map_err(|e| HandshakeError::BadUrl(format!("host is not a valid header value: {e}")))?;
    let mut req = Request::new(());
    *req.method_mut() = Method::GET;
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    req.headers_mut().insert(HOST, host);
    Ok(req)
}

fn parse_url(url: &str) -> Result<Uri, HandshakeError> {
    if url.contains('#') {
        return Err(HandshakeError::BadUrl(
            "websocket urls must not have a fragment (RFC 6455 section 3); remove the '#...' part".into(),
        ));
    }
    Uri::try_from(url).map_err(|e| {
        HandshakeError::BadUrl(format!(
            "{url:?} is not a valid url ({e}); use ws://host[:port]/path or wss://..."
        ))
    })
}

/// Returns the connection target and the `Host` header value for `uri`.
fn analyze(uri: &Uri) -> Result<(Target, String), HandshakeError> {
    let bad = |msg: &str| HandshakeError::BadUrl(msg.to_owned());
    let scheme = uri
        .scheme_str()
        .ok_or_else(|| bad("url has no scheme; use ws:// or wss://"))?;
    let (tls, default_port) = if scheme.eq_ignore_ascii_case("ws") || scheme.eq_ignore_ascii_case("http") {
        (false, 80)
    } else if scheme.eq_ignore_ascii_case("wss") || scheme.eq_ignore_ascii_case("https") {
        (true, 443)
    } else {
        return Err(HandshakeError::BadUrl(format!(
            "unsupported scheme {scheme:?}; use ws:// or wss://"
        )));
    };
    let authority = uri
        .authority()
        .ok_or_else(|| bad("url has no host; use ws://host[:port]/path"))?;
    if authority.as_str().contains('@') {
        return Err(bad(
            "credentials in the url are not supported; send an Authorization header instead",
        ));
    }
    let host = authority.host();
    if host.is_empty() || host == "[]" {
        return Err(bad("url has no host; use ws://host[:port]/path"));
    }
    let rest = authority.as_str().get(host.len()..).unwrap_or("");
    // An empty port (`host:`) means the default one (RFC 3986 §3.2.3).
    let explicit = match rest {
        "" | ":" => None,
        _ => {
            let digits = rest
                .strip_prefix(':')
                .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| bad("invalid port; use ws://host:port/path with a number"))?;
            let port = digits
                .parse::<u16>()
                .map_err(|_| bad("port must be at most 65535"))?;
            Some(port)
        }
    };
    let port = explicit.unwrap_or(default_port);
    let host_header = match explicit {
        Some(p) if p != default_port => format!("{host}:{p}"),
        _ => host.to_owned(),
    };
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Ok((
        Target {
            tls,
            host: bare.to_owned(),
            port,
        },
        host_header,
    ))
}

/// The headers the opening handshake sets itself. A client refuses a request that already
/// carries one rather than silently replacing it: the caller expected something the handshake
/// would not do (offer extensions through [`ClientHandshake::offer_deflate`]).
///
/// ```
/// use ferrosocket_proto::MANAGED_HEADERS;
/// assert!(MANAGED_HEADERS.contains(&http::header::SEC_WEBSOCKET_KEY));
/// assert!(!MANAGED_HEADERS.contains(&http::header::SEC_WEBSOCKET_PROTOCOL));
/// ```
pub const MANAGED_HEADERS: [HeaderName; 6] = [
    UPGRADE,
    CONNECTION,
    SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_VERSION,
    SEC_WEBSOCKET_ACCEPT,
    SEC_WEBSOCKET_EXTENSIONS,
];

/// State kept by a client between sending its upgrade request and checking
/// the answer: the key sent and what was offered.
#[derive(Debug, Clone)]
pub struct ClientHandshake {
    key: String,
    protocols: Vec<String>,
    extensions: Vec<String>,
    deflate: Option<DeflateConfig>,
}

impl ClientHandshake {
    /// Turns `req` into an upgrade request and remembers what it offers.
    ///
    /// All of the caller's headers are kept (`Origin`, `Authorization`,
    /// cookies, `Sec-WebSocket-Protocol` and `Sec-WebSocket-Extensions`
    /// offers...). `Upgrade: websocket`, `Connection: Upgrade`,
    /// `Sec-WebSocket-Key` (the base64 of `nonce`) and
    /// `Sec-WebSocket-Version: 13` are set, replacing any existing value.
    /// `Host` is added from the URI when missing (see [`request_from_url`]).
    /// The version is set to HTTP/1.1.
    ///
    /// `nonce` must be 16 fresh random bytes for every connection
    /// (RFC 6455 §4.1); the caller draws them, for example with `getrandom`.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::MethodNotGet`] if the request is not `GET`;
    /// [`HandshakeError::MissingHost`] if it has no `Host` and its URI no
    /// host; [`HandshakeError::BadUrl`] if the URI's host cannot be used.
    pub fn new(
        mut req: Request<()>,
        nonce: [u8; 16],
    ) -> Result<(ClientHandshake, Request<()>), HandshakeError> {
        if req.method() != Method::GET {
            return Err(HandshakeError::MethodNotGet);
        }
        if !req.headers().contains_key(HOST) {
            if req.uri().authority().is_none() {
                return Err(HandshakeError::MissingHost);
            }
            let (_, host) = analyze(req.uri())?;
            let host = HeaderValue::try_from(host)
                .map_err(|e| HandshakeError::BadUrl(format!("host is not a valid header value: {e}")))?;
            req.headers_mut().insert(HOST, host);
        }
        let key = generate_key(nonce);
        let key_value = HeaderValue::try_from(key.as_str()).map_err(|_| HandshakeError::BadKey)?;
        *req.version_mut() = Version::HTTP_11;
        let h = req.headers_mut();
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(SEC_WEBSOCKET_KEY, key_value);
        h.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static(WEBSOCKET_VERSION));

        let protocols = h
            .get_all(SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .flat_map(header_tokens)
            .map(str::to_owned)
            .collect();
        let extensions = h
            .get_all(SEC_WEBSOCKET_EXTENSIONS)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(split_extension_list)
            .map(|e| extension_name(e).to_owned())
            .filter(|n| !n.is_empty())
            .collect();
        Ok((
            ClientHandshake {
                key,
                protocols,
                extensions,
                deflate: None,
            },
            req,
        ))
    }

    /// Adds a permessage-deflate offer built from `config` to `request` (the request
    /// returned by [`new`](Self::new)); [`verify`](Self::verify) then checks the server's
    /// answer against it (RFC 7692 §7.1) and reports the agreed parameters.
    pub fn offer_deflate(&mut self, config: DeflateConfig, request: &mut Request<()>) {
        let offer = client_offer(&config);
        if let Ok(value) = HeaderValue::try_from(offer) {
            request.headers_mut().append(SEC_WEBSOCKET_EXTENSIONS, value);
            if !self
                .extensions
                .iter()
                .any(|e| e.eq_ignore_ascii_case(EXTENSION_NAME))
            {
                self.extensions.push(EXTENSION_NAME.to_owned());
            }
            self.deflate = Some(config);
        }
    }

    /// The `Sec-WebSocket-Key` that was sent.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The subprotocols offered, in the order sent.
    pub fn offered_subprotocols(&self) -> &[String] {
        &self.protocols
    }

    /// The names of the extensions offered, in the order sent.
    pub fn offered_extensions(&self) -> &[String] {
        &self.extensions
    }

    /// Checks the server's answer (RFC 6455 §4.1, "the client MUST validate
    /// the server's response") and returns what was agreed on.
    ///
    /// Requires status `101`, `Upgrade: websocket` and a `Connection`
    /// header with `upgrade` (case-insensitive), and exactly one
    /// `Sec-WebSocket-Accept` equal to [`accept_key`] of the key sent. A
    /// `Sec-WebSocket-Protocol`, if present, must be one single protocol
    /// that was offered (case-sensitive). Every extension in
    /// `Sec-WebSocket-Extensions` must have been offered (names compared
    /// ASCII case-insensitively); its parameters are left to the extension
    /// to check.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::Status`], [`HandshakeError::NotUpgrade`],
    /// [`HandshakeError::ConnectionNotUpgrade`],
    /// [`HandshakeError::BadAccept`],
    /// [`HandshakeError::UnexpectedSubprotocol`] or
    /// [`HandshakeError::UnexpectedExtension`], for the first failed check
    /// in that order. The connection must then be failed (closed).
    pub fn verify(&self, resp: &Response<()>) -> Result<Negotiated, HandshakeError> {
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Err(HandshakeError::Status(resp.status().as_u16()));
        }
        let headers = resp.headers();
        if !header_has_token(headers, UPGRADE, "websocket") {
            return Err(HandshakeError::NotUpgrade);
        }
        if !header_has_token(headers, CONNECTION, "upgrade") {
            return Err(HandshakeError::ConnectionNotUpgrade);
        }
        let mut accepts = headers.get_all(SEC_WEBSOCKET_ACCEPT).iter();
        match (accepts.next(), accepts.next()) {
            (Some(a), None) if a.as_bytes().trim_ascii() == accept_key(self.key.as_bytes()).as_bytes() => {}
            _ => return Err(HandshakeError::BadAccept),
        }
        self.verify_offers(headers)
    }

    /// Checks the answer to an extended `CONNECT` (RFC 8441 §5 over HTTP/2, RFC 9220 over
    /// HTTP/3) sent with this handshake's offers, and returns what was agreed on.
    ///
    /// There the answer is a `200` without `Upgrade`, `Connection` or `Sec-WebSocket-Accept`
    /// (the key is not sent; build the request's other headers from the request
    /// [`new`](Self::new) returned, without its `Upgrade`, `Connection`,
    /// `Sec-WebSocket-Key` and `Host`). Subprotocol and extensions are checked as by
    /// [`verify`](Self::verify).
    ///
    /// # Errors
    ///
    /// [`HandshakeError::Status`] for any status other than `200`, then
    /// [`HandshakeError::UnexpectedSubprotocol`] or [`HandshakeError::UnexpectedExtension`].
    pub fn verify_extended_connect(&self, resp: &Response<()>) -> Result<Negotiated, HandshakeError> {
        if resp.status() != StatusCode::OK {
            return Err(HandshakeError::Status(resp.status().as_u16()));
        }
        self.verify_offers(resp.headers())
    }

    /// The subprotocol and extension checks shared by [`verify`](Self::verify) and
    /// [`verify_extended_connect`](Self::verify_extended_connect).
    fn verify_offers(&self, headers: &http::HeaderMap) -> Result<Negotiated, HandshakeError> {
        let mut chosen = Vec::new();
        for line in headers.get_all(SEC_WEBSOCKET_PROTOCOL) {
            let text = line.to_str().map_err(|_| {
                HandshakeError::UnexpectedSubprotocol(String::from_utf8_lossy(line.as_bytes()).into_owned())
            })?;
            chosen.extend(
                text.split(',')
                    .map(|t| t.trim_matches([' ', '\t']))
                    .filter(|t| !t.is_empty()),
            );
        }
        let subprotocol = match chosen.as_slice() {
            [] => None,
            [one] if self.protocols.iter().any(|p| p == one) => Some((*one).to_owned()),
            other => return Err(HandshakeError::UnexpectedSubprotocol(other.join(", "))),
        };

        let mut accepted = Vec::new();
        for line in headers.get_all(SEC_WEBSOCKET_EXTENSIONS) {
            let text = line.to_str().map_err(|_| {
                HandshakeError::UnexpectedExtension(String::from_utf8_lossy(line.as_bytes()).into_owned())
            })?;
            for element in split_extension_list(text) {
                let name = extension_name(element);
                let offered =
                    !name.is_empty() && self.extensions.iter().any(|o| o.eq_ignore_ascii_case(name));
                if !offered {
                    let shown = if name.is_empty() { element } else { name };
                    return Err(HandshakeError::UnexpectedExtension(shown.to_owned()));
                }
                accepted.push(element);
            }
        }
        let extensions = (!accepted.is_empty()).then(|| accepted.join(", "));
        // Only our permessage-deflate elements: any other accepted extension was offered by
        // the application, which checks it.
        let deflate = match &self.deflate {
            Some(cfg) => negotiate_client(
                accepted
                    .iter()
                    .copied()
                    .filter(|e| extension_name(e).eq_ignore_ascii_case(EXTENSION_NAME)),
                cfg,
            )
            .map_err(|e| HandshakeError::UnexpectedExtension(e.0))?,
            None => None,
        };
        Ok(Negotiated {
            subprotocol,
            extensions,
            deflate,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const NONCE: [u8; 16] = *b"the sample nonce";
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    fn target(url: &str) -> (bool, String, u16) {
        let t = url_target(url).unwrap();
        (t.tls, t.host, t.port)
    }

    fn host_of(url: &str) -> String {
        request_from_url(url).unwrap().headers()[HOST]
            .to_str()
            .unwrap()
            .to_owned()
    }

    fn ok_response() -> http::response::Builder {
        Response::builder()
            .status(101)
            .header("upgrade", "websocket")
            .header("connection", "Upgrade")
            .header("sec-websocket-accept", ACCEPT)
    }

    fn handshake(extra: &[(&'static str, &'static str)]) -> ClientHandshake {
        let mut req = request_from_url("ws://example.com/chat").unwrap();
        for (n, v) in extra {
            req.headers_mut().append(*n, HeaderValue::from_static(v));
        }
        ClientHandshake::new(req, NONCE).unwrap().0
    }

    fn verify(hs: &ClientHandshake, b: http::response::Builder) -> Result<Negotiated, HandshakeError> {
        hs.verify(&b.body(()).unwrap())
    }

    #[test]
    fn rfc6455_3_default_ports_omitted_from_host() {
        assert_eq!(host_of("ws://example.com/chat"), "example.com");
        assert_eq!(host_of("ws://example.com:80/chat"), "example.com");
        assert_eq!(host_of("wss://example.com:443"), "example.com");
        assert_eq!(host_of("http://example.com:80"), "example.com");
        assert_eq!(host_of("https://example.com"), "example.com");
        assert_eq!(target("ws://example.com/chat"), (false, "example.com".into(), 80));
        assert_eq!(
            target("wss://example.com/chat"),
            (true, "example.com".into(), 443)
        );
        assert_eq!(target("HTTPS://example.com"), (true, "example.com".into(), 443));
        assert_eq!(target("http://example.com"), (false, "example.com".into(), 80));
    }

    #[test]
    fn rfc6455_3_explicit_ports_kept() {
        assert_eq!(host_of("ws://example.com:8080/"), "example.com:8080");
        assert_eq!(host_of("ws://example.com:443/"), "example.com:443");
        assert_eq!(host_of("wss://example.com:80/"), "example.com:80");
        assert_eq!(
            target("wss://example.com:8443/x"),
            (true, "example.com".into(), 8443)
        );
        assert_eq!(target("ws://example.com:/x"), (false, "example.com".into(), 80));
        assert_eq!(host_of("ws://example.com:/x"), "example.com");
    }

    #[test]
    fn rfc6455_3_ipv6_hosts_keep_brackets_in_host_header() {
        assert_eq!(host_of("ws://[::1]:9000/"), "[::1]:9000");
        assert_eq!(host_of("wss://[2001:db8::1]/"), "[2001:db8::1]");
        assert_eq!(target("ws://[::1]:9000/"), (false, "::1".into(), 9000));
        assert_eq!(target("wss://[2001:db8::1]"), (true, "2001:db8::1".into(), 443));
        assert_eq!(target("ws://127.0.0.1:1234"), (false, "127.0.0.1".into(), 1234));
    }

    #[test]
    fn rfc6455_3_fragment_rejected() {
        for url in ["ws://example.com/#x", "ws://example.com/chat#", "wss://h/p?q=1#f"] {
            assert!(
                matches!(request_from_url(url), Err(HandshakeError::BadUrl(_))),
                "{url}"
            );
            assert!(matches!(url_target(url), Err(HandshakeError::BadUrl(_))), "{url}");
        }
    }

    #[test]
    fn rfc6455_3_bad_scheme_and_bad_urls_rejected() {
        for url in [
            "ftp://example.com/",
            "example.com/chat",
            "/chat",
            "ws://",
            "ws:///path",
            "ws://user:pw@example.com/",
            "ws://example.com:99999/",
            "ws://example.com:8x/",
            "ws://example.com:+80/",
            "",
            "ws://exa mple.com/",
        ] {
            let err = request_from_url(url).unwrap_err();
            assert!(matches!(err, HandshakeError::BadUrl(_)), "{url}: {err:?}");
            assert!(err.to_string().starts_with("invalid websocket url: "));
        }
    }

    #[test]
    fn rfc6455_4_1_request_from_url_path_and_query() {
        let req = request_from_url("wss://example.com/a/b?c=d").unwrap();
        assert_eq!(req.method(), Method::GET);
        assert_eq!(req.version(), Version::HTTP_11);
        assert_eq!(req.uri().path_and_query().unwrap(), "/a/b?c=d");
        let mut out = Vec::new();
        super::super::http::write_request(&req, &mut out);
        assert_eq!(out, b"GET /a/b?c=d HTTP/1.1\r\nhost: example.com\r\n\r\n");
        let mut out = Vec::new();
        super::super::http::write_request(&request_from_url("ws://h").unwrap(), &mut out);
        assert!(out.starts_with(b"GET / HTTP/1.1\r\n"));
        let mut out = Vec::new();
        super::super::http::write_request(&request_from_url("ws://h?x=1").unwrap(), &mut out);
        assert!(out.starts_with(b"GET /?x=1 HTTP/1.1\r\n"), "{out:?}");
    }

    #[test]
    fn rfc6455_4_1_new_sets_handshake_headers_and_keeps_callers() {
        let mut req = request_from_url("ws://example.com/chat").unwrap();
        let h = req.headers_mut();
        h.insert("origin", HeaderValue::from_static("http://example.com"));
        h.insert("authorization", HeaderValue::from_static("Bearer t"));
        h.insert("cookie", HeaderValue::from_static("a=b"));
        h.append(
            "sec-websocket-protocol",
            HeaderValue::from_static("chat, superchat"),
        );
        h.append("sec-websocket-protocol", HeaderValue::from_static("v3"));
        h.insert("sec-websocket-version", HeaderValue::from_static("8"));
        h.insert("connection", HeaderValue::from_static("close"));
        h.insert(
            "sec-websocket-extensions",
            HeaderValue::from_static("permessage-deflate; client_max_window_bits, x-foo; q=\"a,b\""),
        );
        let (hs, req) = ClientHandshake::new(req, NONCE).unwrap();
        assert_eq!(hs.key(), "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(hs.offered_subprotocols(), ["chat", "superchat", "v3"]);
        assert_eq!(hs.offered_extensions(), ["permessage-deflate", "x-foo"]);
        let h = req.headers();
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "Upgrade");
        assert_eq!(h.get_all("connection").iter().count(), 1);
        assert_eq!(h["sec-websocket-key"], "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(h["sec-websocket-version"], "13");
        assert_eq!(h.get_all("sec-websocket-version").iter().count(), 1);
        assert_eq!(h["origin"], "http://example.com");
        assert_eq!(h["authorization"], "Bearer t");
        assert_eq!(h["cookie"], "a=b");
        assert_eq!(h["host"], "example.com");
    }

    #[test]
    fn rfc6455_4_1_new_adds_host_from_uri_or_fails() {
        let req = Request::get("ws://[::1]:8080/x").body(()).unwrap();
        let (_, req) = ClientHandshake::new(req, NONCE).unwrap();
        assert_eq!(req.headers()["host"], "[::1]:8080");

        let req = Request::get("/x").header("host", "h:1").body(()).unwrap();
        let (_, req) = ClientHandshake::new(req, NONCE).unwrap();
        assert_eq!(req.headers()["host"], "h:1");

        let req = Request::get("/x").body(()).unwrap();
        assert_eq!(
            ClientHandshake::new(req, NONCE).unwrap_err(),
            HandshakeError::MissingHost
        );

        let req = Request::post("ws://h/").body(()).unwrap();
        assert_eq!(
            ClientHandshake::new(req, NONCE).unwrap_err(),
            HandshakeError::MethodNotGet
        );
    }

    #[test]
    fn rfc6455_4_1_verify_accepts_valid_response() {
        let hs = handshake(&[]);
        let n = verify(&hs, ok_response()).unwrap();
        assert_eq!(n, Negotiated::default());
        // Case-insensitive tokens, extra Connection tokens.
        let n = verify(
            &hs,
            Response::builder()
                .status(101)
                .header("upgrade", "WebSocket")
                .header("connection", "keep-alive, UPGRADE")
                .header("sec-websocket-accept", ACCEPT),
        );
        assert_eq!(n, Ok(Negotiated::default()));
    }

    #[test]
    fn rfc8441_5_verify_extended_connect_wants_200_and_checks_offers() {
        let hs = handshake(&[("sec-websocket-protocol", "chat")]);
        let ok = || Response::builder().status(200);
        let n = hs
            .verify_extended_connect(&ok().header("sec-websocket-protocol", "chat").body(()).unwrap())
            .unwrap();
        assert_eq!(n.subprotocol.as_deref(), Some("chat"));
        assert_eq!(
            hs.verify_extended_connect(&ok_response().body(()).unwrap()),
            Err(HandshakeError::Status(101))
        );
        assert_eq!(
            hs.verify_extended_connect(&ok().header("sec-websocket-protocol", "x").body(()).unwrap()),
            Err(HandshakeError::UnexpectedSubprotocol("x".into()))
        );
        assert_eq!(
            hs.verify_extended_connect(
                &ok()
                    .header("sec-websocket-extensions", "permessage-deflate")
                    .body(())
                    .unwrap()
            ),
            Err(HandshakeError::UnexpectedExtension("permessage-deflate".into()))
        );
    }

    #[test]
    fn rfc6455_4_1_verify_rejects_wrong_status() {
        let hs = handshake(&[]);
        let b = Response::builder().status(200).header("upgrade", "websocket");
        assert_eq!(verify(&hs, b), Err(HandshakeError::Status(200)));
        let b = ok_response().status(403);
        assert_eq!(verify(&hs, b), Err(HandshakeError::Status(403)));
    }

    #[test]
    fn rfc6455_4_1_verify_rejects_wrong_or_missing_accept() {
        let hs = handshake(&[]);
        let b = Response::builder()
            .status(101)
            .header("upgrade", "websocket")
            .header("connection", "Upgrade");
        assert_eq!(verify(&hs, b), Err(HandshakeError::BadAccept));
        let b = Response::builder()
            .status(101)
            .header("upgrade", "websocket")
            .header("connection", "Upgrade")
            .header("sec-websocket-accept", "S3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(verify(&hs, b), Err(HandshakeError::BadAccept));
        let b = ok_response().header("sec-websocket-accept", ACCEPT);
        assert_eq!(verify(&hs, b), Err(HandshakeError::BadAccept));
        // A different key's accept value.
        let other = ClientHandshake::new(request_from_url("ws://h").unwrap(), [1; 16])
            .unwrap()
            .0;
        assert_eq!(verify(&other, ok_response()), Err(HandshakeError::BadAccept));
    }

    #[test]
    fn rfc6455_4_1_verify_rejects_missing_upgrade_or_connection() {
        let hs = handshake(&[]);
        let b = Response::builder()
            .status(101)
            .header("connection", "Upgrade")
            .header("sec-websocket-accept", ACCEPT);
        assert_eq!(verify(&hs, b), Err(HandshakeError::NotUpgrade));
        let b = Response::builder()
            .status(101)
            .header("upgrade", "h2c")
            .header("connection", "Upgrade")
            .header("sec-websocket-accept", ACCEPT);
        assert_eq!(verify(&hs, b), Err(HandshakeError::NotUpgrade));
        let b = Response::builder()
            .status(101)
            .header("upgrade", "websocket")
            .header("sec-websocket-accept", ACCEPT);
        assert_eq!(verify(&hs, b), Err(HandshakeError::ConnectionNotUpgrade));
    }

    #[test]
    fn rfc6455_4_1_verify_subprotocol_must_be_offered() {
        let hs = handshake(&[("sec-websocket-protocol", "chat, superchat")]);
        let n = verify(&hs, ok_response().header("sec-websocket-protocol", "superchat")).unwrap();
        assert_eq!(n.subprotocol.as_deref(), Some("superchat"));
        assert_eq!(
            verify(&hs, ok_response().header("sec-websocket-protocol", "other")),
            Err(HandshakeError::UnexpectedSubprotocol("other".into()))
        );
        assert_eq!(
            verify(&hs, ok_response().header("sec-websocket-protocol", "Chat")),
            Err(HandshakeError::UnexpectedSubprotocol("Chat".into()))
        );
        assert_eq!(
            verify(
                &hs,
                ok_response().header("sec-websocket-protocol", "chat, superchat")
            ),
            Err(HandshakeError::UnexpectedSubprotocol("chat, superchat".into()))
        );
        assert_eq!(
            verify(
                &hs,
                ok_response()
                    .header("sec-websocket-protocol", "chat")
                    .header("sec-websocket-protocol", "chat")
            ),
            Err(HandshakeError::UnexpectedSubprotocol("chat, chat".into()))
        );
        // Nothing offered: any selection is unexpected.
        let hs = handshake(&[]);
        assert_eq!(
            verify(&hs, ok_response().header("sec-websocket-protocol", "chat")),
            Err(HandshakeError::UnexpectedSubprotocol("chat".into()))
        );
        // Server selecting none of the offered protocols is fine.
        let hs = handshake(&[("sec-websocket-protocol", "chat")]);
        assert_eq!(verify(&hs, ok_response()).unwrap().subprotocol, None);
    }

    #[test]
    fn rfc6455_9_1_verify_extension_must_be_offered() {
        let hs = handshake(&[]);
        assert_eq!(
            verify(
                &hs,
                ok_response().header("sec-websocket-extensions", "permessage-deflate")
            ),
            Err(HandshakeError::UnexpectedExtension("permessage-deflate".into()))
        );
        let hs = handshake(&[(
            "sec-websocket-extensions",
            "permessage-deflate; client_max_window_bits",
        )]);
        let n = verify(
            &hs,
            ok_response().header(
                "sec-websocket-extensions",
                "permessage-deflate; server_no_context_takeover",
            ),
        )
        .unwrap();
        assert_eq!(
            n.extensions.as_deref(),
            Some("permessage-deflate; server_no_context_takeover")
        );
        assert_eq!(
            verify(
                &hs,
                ok_response().header(
                    "sec-websocket-extensions",
                    "permessage-deflate, x-webkit-deflate-frame"
                )
            ),
            Err(HandshakeError::UnexpectedExtension(
                "x-webkit-deflate-frame".into()
            ))
        );
        assert_eq!(
            verify(&hs, ok_response().header("sec-websocket-extensions", "; a=1")),
            Err(HandshakeError::UnexpectedExtension("; a=1".into()))
        );
        // An offered extension the server did not accept: none negotiated.
        assert_eq!(verify(&hs, ok_response()).unwrap().extensions, None);
    }
}
