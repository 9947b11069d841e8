//! The `:protocol` pseudo-header of an extended CONNECT (RFC 8441 §4, RFC 9220 §3): how a
//! WebSocket opens over HTTP/2 and HTTP/3.

use std::borrow::Cow;

/// The value of an extended CONNECT's `:protocol` pseudo-header, `websocket` for a WebSocket.
///
/// HTTP libraries keep pseudo-headers out of the header map; this is how an HTTP/2 or HTTP/3
/// server hands the value to [`Upgrader::decide`](crate::Upgrader::decide): insert it into
/// the request's extensions. The `http2` feature's hyper path needs nothing: `decide` also
/// reads hyper's own `hyper::ext::Protocol`.
///
/// ```
/// use ferrosocket::{ConnectProtocol, Upgrader};
/// use http::{Method, Request, StatusCode, Version};
///
/// let mut request = Request::builder()
///     .method(Method::CONNECT)
///     .version(Version::HTTP_2)
///     .uri("https://example.com/ws")
///     .header("sec-websocket-version", "13")
///     .body(())?;
/// request.extensions_mut().insert(ConnectProtocol::websocket());
/// let (parts, ()) = request.into_parts();
/// let upgrade = Upgrader::new().decide(&parts, None).expect("an extended CONNECT");
/// assert_eq!(upgrade.response().status(), StatusCode::OK);
/// # Ok::<(), http::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnectProtocol(Cow<'static, str>);

impl ConnectProtocol {
    /// `websocket`, the protocol RFC 8441 registers for WebSockets.
    pub const fn websocket() -> Self {
        Self(Cow::Borrowed("websocket"))
    }

    /// Any other value, as received.
    pub fn new(value: impl Into<Cow<'static, str>>) -> Self {
        Self(value.into())
    }

    /// The value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The `:protocol` of a request: ours, else hyper's (feature `http2`).
pub(crate) fn of(parts: &http::request::Parts) -> Option<&str> {
    if let Some(p) = parts.extensions.get::<ConnectProtocol>() {
        return Some(p.as_str());
    }
    #[cfg(feature = "http2")]
    if let Some(p) = parts.extensions.get::<::hyper::ext::Protocol>() {
        return Some(p.as_str());
    }
    None
}
