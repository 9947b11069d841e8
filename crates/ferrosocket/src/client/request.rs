//! What [`Dialer::connect`](crate::Dialer::connect) accepts: a URL, a parsed URI, or a whole
//! request with headers of its own.

use crate::error::{Error, RequestError};
use ferrosocket_proto::{MANAGED_HEADERS, request_from_url};
use http::header::HOST;
use http::{Method, Request, Uri, Version};

/// Something [`Dialer::connect`](crate::Dialer::connect) can turn into an upgrade request:
/// a URL (`&str`, `String`, `&String`), a parsed [`Uri`] (or `&Uri`), or a whole
/// [`Request<()>`] carrying headers for this one connection.
///
/// The request's URI must be an absolute `ws://` or `wss://` URL (`http://` and `https://`
/// are taken as their equivalents): it says where to connect. Its headers are sent with the
/// ones set by [`Dialer::header`](crate::Dialer::header); when both name the same header, the
/// request's values replace the dialer's. A `Host` header in the request replaces the one
/// derived from the URL. A `Sec-WebSocket-Protocol` header offers subprotocols for this
/// connection only, **instead of** [`Dialer::subprotocols`](crate::Dialer::subprotocols)
/// (the two lists are not merged).
///
/// The headers the handshake manages (`Upgrade`, `Connection`, `Sec-WebSocket-Key`,
/// `Sec-WebSocket-Version`, `Sec-WebSocket-Accept`, `Sec-WebSocket-Extensions`) are refused
/// with [`RequestError::ManagedHeader`] rather than silently replaced: a request that sets
/// them expects something the dialer would not do. Offer compression with
/// [`Dialer::enable_compression`](crate::Dialer::enable_compression).
///
/// Implement it for your own URL type to pass that type to `connect` directly.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use ferrosocket::Dialer;
/// use ferrosocket::http::{Request, Uri, header::AUTHORIZATION};
///
/// let dialer = Dialer::new().subprotocols(["chat.v1"]);
/// // A URL string, as always.
/// let (conn, _) = dialer.connect("wss://example.com/chat").await?;
/// // A parsed URI.
/// let uri: Uri = "wss://example.com/chat".parse()?;
/// let (conn, _) = dialer.connect(&uri).await?;
/// // A request with a header and a subprotocol offer of its own (replacing "chat.v1").
/// let request = Request::get("wss://example.com/feed")
///     .header(AUTHORIZATION, "Bearer t0k3n")
///     .header("sec-websocket-protocol", "feed.v2, feed.v1")
///     .body(())?;
/// let (conn, response) = dialer.connect(request).await?;
/// # Ok(()) }
/// ```
pub trait IntoClientRequest {
    /// The upgrade request to send: method `GET`, an absolute `ws://`/`wss://` URI, and the
    /// caller's headers.
    ///
    /// # Errors
    /// [`Error::Handshake`] with
    /// [`HandshakeError::BadUrl`](ferrosocket_proto::HandshakeError::BadUrl) for
    /// an unusable URL; [`Error::Request`] with a [`RequestError`] for a request that sets a
    /// header the handshake manages.
    fn into_client_request(self) -> Result<Request<()>, Error>;
}

impl IntoClientRequest for &str {
    fn into_client_request(self) -> Result<Request<()>, Error> {
        let mut req = request_from_url(self)?;
        // The Host derived from the URL is added back later, unless the dialer sets one.
        req.headers_mut().remove(HOST);
        Ok(req)
    }
}

impl IntoClientRequest for String {
    fn into_client_request(self) -> Result<Request<()>, Error> {
        self.as_str().into_client_request()
    }
}

impl IntoClientRequest for &String {
    fn into_client_request(self) -> Result<Request<()>, Error> {
        self.as_str().into_client_request()
    }
}

impl IntoClientRequest for Uri {
    fn into_client_request(self) -> Result<Request<()>, Error> {
        let mut req = Request::new(());
        *req.method_mut() = Method::GET;
        *req.version_mut() = Version::HTTP_11;
        *req.uri_mut() = self;
        Ok(req)
    }
}

impl IntoClientRequest for &Uri {
    fn into_client_request(self) -> Result<Request<()>, Error> {
        self.clone().into_client_request()
    }
}

impl IntoClientRequest for Request<()> {
    fn into_client_request(self) -> Result<Request<()>, Error> {
        if let Some(name) = MANAGED_HEADERS.iter().find(|n| self.headers().contains_key(*n)) {
            return Err(RequestError::ManagedHeader(name.clone()).into());
        }
        Ok(self)
    }
}
