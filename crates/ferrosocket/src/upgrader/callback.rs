//! Per-request decisions: what the [`Upgrader::on_request`](super::Upgrader::on_request)
//! callback sees ([`UpgradeRequest`]) and what it answers ([`Accept`] or [`Reject`]).

use crate::error::DecisionError;
use bytes::Bytes;
use ferrosocket_proto::Accepted;
use ferrosocket_proto::header_tokens;
use ferrosocket_proto::{ExtensionOffer, ExtensionSyntaxError, parse_extensions};
use http::header::{
    CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HeaderName, HeaderValue, SEC_WEBSOCKET_ACCEPT,
    SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_PROTOCOL, TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, Method, StatusCode, Uri, request};
use std::borrow::Cow;
use std::net::SocketAddr;

/// The callback type stored by the upgrader.
pub(crate) type OnRequest =
    std::sync::Arc<dyn Fn(&UpgradeRequest<'_>) -> Result<Accept, Reject> + Send + Sync>;

/// The address of the peer that sent a request, carried in the request's
/// [extensions](http::Request::extensions) so that both upgrade paths can see it.
///
/// [`Upgrader::accept_from`](super::Upgrader::accept_from) and
/// [`IncomingRequest::set_peer_addr`](super::IncomingRequest::set_peer_addr) put it there;
/// [`UpgradeRequest::peer_addr`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerAddr(pub SocketAddr);

/// A valid upgrade request, as the [`Upgrader::on_request`](super::Upgrader::on_request)
/// callback sees it.
///
/// By the time the callback runs, the handshake has been validated (RFC 6455 §4.2.1) and the
/// origin check has passed; what is left is the application's decision for this connection.
#[derive(Debug)]
pub struct UpgradeRequest<'a> {
    parts: &'a request::Parts,
    offered: Vec<&'a str>,
    peer: Option<SocketAddr>,
}

impl<'a> UpgradeRequest<'a> {
    /// Wraps a request head. The upgrader builds these itself; this constructor lets you test
    /// a callback without a socket, or reuse its rules on a request read with
    /// [`Upgrader::read_request`](super::Upgrader::read_request).
    pub fn new(parts: &'a request::Parts) -> Self {
        let offered = parts
            .headers
            .get_all(SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .flat_map(header_tokens)
            .collect();
        let peer = parts.extensions.get::<PeerAddr>().map(|p| p.0);
        Self { parts, offered, peer }
    }

    /// Wraps a request head whose peer address is known apart from its extensions (the
    /// address passed to [`Upgrader::decide`](super::Upgrader::decide) wins over a [`PeerAddr`]).
    pub(crate) fn with_peer(parts: &'a request::Parts, peer: Option<SocketAddr>) -> Self {
        let mut req = Self::new(parts);
        req.peer = peer.or(req.peer);
        req
    }

    /// The whole request head (method, URI, version, headers, extensions).
    pub fn parts(&self) -> &'a request::Parts {
        self.parts
    }

    /// The request method (always `GET` for a valid upgrade).
    pub fn method(&self) -> &'a Method {
        &self.parts.method
    }

    /// The request target.
    pub fn uri(&self) -> &'a Uri {
        &self.parts.uri
    }

    /// The path of the request target, without the query.
    pub fn path(&self) -> &'a str {
        self.parts.uri.path()
    }

    /// The raw query string (after `?`, still percent-encoded), if any.
    pub fn query(&self) -> Option<&'a str> {
        self.parts.uri.query()
    }

    /// The first value of the query parameter `name`, decoded as
    /// `application/x-www-form-urlencoded` (`+` is a space, `%XX` a byte; invalid escapes are
    /// kept as written, invalid UTF-8 becomes U+FFFD). Names are compared after decoding.
    ///
    /// `?token=a%2Bb&x` gives `Some("a+b")` for `token`, `Some("")` for `x`, `None` for `y`.
    pub fn query_param(&self, name: &str) -> Option<Cow<'a, str>> {
        self.query()?
            .split('&')
            .filter(|pair| !pair.is_empty())
            .find_map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (form_decode(k) == name).then(|| form_decode(v))
            })
    }

    /// The request headers.
    pub fn headers(&self) -> &'a HeaderMap {
        &self.parts.headers
    }

    /// Every `name=value` pair of every `Cookie` header, in order (RFC 6265 §5.4: pairs are
    /// separated by `;`; whitespace around them is ignored; a value in double quotes is
    /// returned without them; pieces without `=` and header lines that are not UTF-8 are
    /// skipped).
    pub fn cookies(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.parts
            .headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| std::str::from_utf8(v.as_bytes()).ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                let name = name.trim_matches([' ', '\t']);
                let value = value.trim_matches([' ', '\t']);
                let value = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(value);
                (!name.is_empty()).then_some((name, value))
            })
    }

    /// The value of the first cookie called `name` (case-sensitive), across all `Cookie`
    /// headers; see [`cookies`](Self::cookies).
    pub fn cookie(&self, name: &str) -> Option<&'a str> {
        self.cookies().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The subprotocols the client offered in `Sec-WebSocket-Protocol`, in its order.
    pub fn subprotocols(&self) -> &[&'a str] {
        &self.offered
    }

    /// The raw `Sec-WebSocket-Extensions` header values, in order.
    pub fn extension_headers(&self) -> impl Iterator<Item = &'a HeaderValue> + 'a {
        self.parts.headers.get_all(SEC_WEBSOCKET_EXTENSIONS).iter()
    }

    /// The extensions the client offered, parsed (names and parameters, in its order). This is
    /// what was offered, not what will be agreed: that depends on the upgrader's settings.
    ///
    /// # Errors
    /// When a `Sec-WebSocket-Extensions` value is malformed (the upgrader then declines every
    /// extension but still upgrades).
    pub fn extensions(&self) -> Result<Vec<ExtensionOffer>, ExtensionSyntaxError> {
        let values = self
            .extension_headers()
            .map(|v| std::str::from_utf8(v.as_bytes()).map_err(|_| ExtensionSyntaxError("not UTF-8".into())))
            .collect::<Result<Vec<_>, _>>()?;
        parse_extensions(values)
    }

    /// The peer's address, when the upgrader was told it (see [`PeerAddr`]); `None` otherwise,
    /// since an upgrader works over any transport.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }
}

/// Decodes one `application/x-www-form-urlencoded` component.
fn form_decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['+', '%']) {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let decoded = match b {
            b'+' => Some((b' ', 1)),
            b'%' => match (bytes.get(i + 1).and_then(hex), bytes.get(i + 2).and_then(hex)) {
                (Some(hi), Some(lo)) => Some(((hi << 4) | lo, 3)),
                _ => None,
            },
            _ => None,
        };
        let (byte, used) = decoded.unwrap_or((b, 1));
        out.push(byte);
        i += used;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex(b: &u8) -> Option<u8> {
    char::from(*b).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// The callback's yes: upgrade, with these choices for this connection only.
///
/// `Accept::new()` (or `Accept::default()`) keeps everything the [`Upgrader`](super::Upgrader)
/// would do without a callback.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct Accept {
    /// `None`: the upgrader's preference list decides; `Some(None)`: no subprotocol.
    subprotocol: Option<Option<String>>,
    headers: HeaderMap,
}

impl Accept {
    /// Upgrade as the upgrader's settings say.
    pub fn new() -> Self {
        Self::default()
    }

    /// Selects this subprotocol, overriding [`Upgrader::subprotocols`](super::Upgrader::subprotocols).
    /// It must be one the client offered (see [`UpgradeRequest::subprotocols`]): choosing
    /// another is a bug in the callback, answered with 500 Internal Server Error and reported
    /// as [`DecisionError::SubprotocolNotOffered`].
    pub fn subprotocol(mut self, name: impl Into<String>) -> Self {
        self.subprotocol = Some(Some(name.into()));
        self
    }

    /// Selects no subprotocol, even if the upgrader's list has one in common with the client.
    pub fn no_subprotocol(mut self) -> Self {
        self.subprotocol = Some(None);
        self
    }

    /// Adds a header to this connection's 101 response (after the upgrader's
    /// [`response_header`](super::Upgrader::response_header)s). Headers the handshake itself
    /// writes (`Upgrade`, `Connection`, `Sec-WebSocket-Accept`, `Sec-WebSocket-Protocol`,
    /// `Sec-WebSocket-Extensions`, `Content-Length`, `Transfer-Encoding`) are refused with 500
    /// ([`DecisionError::ReservedHeader`]); choose the subprotocol with
    /// [`subprotocol`](Self::subprotocol).
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Applies the decision to the 101 the core built.
    pub(crate) fn apply(
        self,
        req: &UpgradeRequest<'_>,
        accepted: &mut Accepted,
    ) -> Result<(), DecisionError> {
        const RESERVED: [HeaderName; 7] = [
            UPGRADE,
            CONNECTION,
            SEC_WEBSOCKET_ACCEPT,
            SEC_WEBSOCKET_PROTOCOL,
            SEC_WEBSOCKET_EXTENSIONS,
            CONTENT_LENGTH,
            TRANSFER_ENCODING,
        ];
        if let Some(name) = self.headers.keys().find(|k| RESERVED.contains(k)) {
            return Err(DecisionError::ReservedHeader(name.clone()));
        }
        let headers = accepted.response.headers_mut();
        match self.subprotocol {
            None => {}
            Some(None) => {
                headers.remove(SEC_WEBSOCKET_PROTOCOL);
                accepted.negotiated.subprotocol = None;
            }
            Some(Some(name)) => {
                if !req.subprotocols().contains(&name.as_str()) {
                    return Err(DecisionError::SubprotocolNotOffered(name));
                }
                // An offered token came from a header value, so it is a valid one.
                let value = HeaderValue::from_str(&name)
                    .map_err(|_| DecisionError::SubprotocolNotOffered(name.clone()))?;
                headers.insert(SEC_WEBSOCKET_PROTOCOL, value);
                accepted.negotiated.subprotocol = Some(name);
            }
        }
        for (name, value) in self.headers {
            if let Some(name) = name {
                headers.append(name, value);
            }
        }
        Ok(())
    }
}

/// The callback's no: the HTTP response to send instead of the 101.
///
/// It is written as an HTTP/1.1 response with `Connection: close` and a `Content-Length`
/// (both set by the upgrader, whatever the callback gave), plus
/// `Content-Type: text/plain; charset=utf-8` when there is a body and no `Content-Type`.
/// Then the transport is closed and the upgrade returns [`Error::Rejected`](crate::Error::Rejected).
/// The status must be 300 or above: a 1xx or 2xx refusal is a bug in the callback, answered
/// with 500 ([`DecisionError::RejectStatus`]).
///
/// One pointer wide (the response is boxed), so a callback's `Result<Accept, Reject>` stays
/// small and clippy's `result_large_err` stays quiet in your code.
#[derive(Debug, Clone)]
#[must_use]
pub struct Reject(Box<RejectInner>);

#[derive(Debug, Clone)]
struct RejectInner {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reject {
    /// A refusal with this status, no extra header and an empty body.
    pub fn new(status: StatusCode) -> Self {
        Self(Box::new(RejectInner {
            status,
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }))
    }

    /// Adds a header to the response (e.g. `WWW-Authenticate`, `Location`).
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.0.headers.append(name, value);
        self
    }

    /// Sets the response body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.0.body = body.into();
        self
    }

    /// The status this refusal answers with.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// Serializes the response, or says why this refusal cannot be sent.
    #[cfg(test)]
    pub(crate) fn write_to(self, dst: &mut Vec<u8>) -> Result<StatusCode, DecisionError> {
        let response = self.into_response()?;
        ferrosocket_proto::write_response(response.status(), response.headers(), response.body(), dst);
        Ok(response.status())
    }

    /// The response to send, or why this refusal cannot be sent.
    pub(crate) fn into_response(self) -> Result<http::Response<Bytes>, DecisionError> {
        let RejectInner {
            status,
            mut headers,
            mut body,
        } = *self.0;
        if status.as_u16() < 300 {
            return Err(DecisionError::RejectStatus(status));
        }
        headers.remove(CONTENT_LENGTH);
        headers.remove(TRANSFER_ENCODING);
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
        if status == StatusCode::NOT_MODIFIED {
            body = Bytes::new(); // a 304 has no body, and no Content-Length is written
        }
        if !body.is_empty() && !headers.contains_key(CONTENT_TYPE) {
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
        }
        Ok(response(status, headers, body))
    }
}

impl From<StatusCode> for Reject {
    fn from(status: StatusCode) -> Self {
        Self::new(status)
    }
}

/// The fixed answer to a callback bug.
pub(crate) fn internal_error() -> http::Response<Bytes> {
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    response(
        StatusCode::INTERNAL_SERVER_ERROR,
        headers,
        Bytes::from_static(b"internal server error\n"),
    )
}

/// A response from its parts.
pub(crate) fn response(status: StatusCode, headers: HeaderMap, body: Bytes) -> http::Response<Bytes> {
    let mut response = http::Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> request::Parts {
        let mut b = http::Request::get(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn query_params_are_form_decoded() {
        let p = parts("/ws?a=1&token=a%2Bb+c&x&%74oken=second&bad=%zz%4", &[]);
        let r = UpgradeRequest::new(&p);
        assert_eq!(r.path(), "/ws");
        assert_eq!(r.query_param("token").as_deref(), Some("a+b c"));
        assert_eq!(r.query_param("x").as_deref(), Some(""));
        assert_eq!(r.query_param("bad").as_deref(), Some("%zz%4"));
        assert_eq!(r.query_param("y"), None);
        let p = parts("/ws", &[]);
        assert_eq!(UpgradeRequest::new(&p).query_param("token"), None);
    }

    #[test]
    fn rfc6265_5_4_cookies_across_headers() {
        let p = parts(
            "/",
            &[
                ("cookie", "a=1; theme=\"dark\";b=2"),
                ("cookie", " session=abc ;junk; =nameless; a=shadowed"),
            ],
        );
        let r = UpgradeRequest::new(&p);
        assert_eq!(r.cookie("session"), Some("abc"));
        assert_eq!(r.cookie("theme"), Some("dark"));
        assert_eq!(r.cookie("a"), Some("1"));
        assert_eq!(r.cookie("A"), None);
        assert_eq!(r.cookie("junk"), None);
        assert_eq!(r.cookies().count(), 5);
    }

    #[test]
    fn offers_are_listed_in_client_order() {
        let p = parts(
            "/",
            &[
                ("sec-websocket-protocol", "b, a"),
                ("sec-websocket-protocol", "c"),
                (
                    "sec-websocket-extensions",
                    "permessage-deflate; client_max_window_bits, x-foo",
                ),
            ],
        );
        let r = UpgradeRequest::new(&p);
        assert_eq!(r.subprotocols(), ["b", "a", "c"]);
        let names: Vec<_> = r.extensions().unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["permessage-deflate", "x-foo"]);
        assert_eq!(r.peer_addr(), None);
    }

    #[test]
    fn reject_response_is_complete_http() {
        let mut out = Vec::new();
        let status = Reject::new(StatusCode::UNAUTHORIZED)
            .header(CONNECTION, HeaderValue::from_static("keep-alive"))
            .header(CONTENT_LENGTH, HeaderValue::from_static("999"))
            .body("no")
            .write_to(&mut out)
            .unwrap();
        assert_eq!(status, 401);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 401 Unauthorized\r\nconnection: close\r\n\
             content-type: text/plain; charset=utf-8\r\ncontent-length: 2\r\n\r\nno"
        );
        let err = Reject::new(StatusCode::OK).write_to(&mut Vec::new()).unwrap_err();
        assert_eq!(err, DecisionError::RejectStatus(StatusCode::OK));
    }
}
