//! [`CookieJar`]: cookies for the [`Dialer`](crate::Dialer)'s handshakes (gorilla's
//! `Dialer.Jar`).

use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderValue, Uri};

/// Where the [`Dialer`](crate::Dialer) gets the cookies for a handshake and puts those the
/// server sets, as gorilla/websocket's `Dialer.Jar` (an `http.CookieJar`). Without one (the
/// default) no cookie is sent but those of the request itself, and the server's
/// `Set-Cookie` headers are only in the response the dialer returns.
///
/// The dialer asks [`cookies`](Self::cookies) for every handshake, over HTTP/1.1, HTTP/2 and
/// HTTP/3, and hands every answer's `Set-Cookie` headers to
/// [`set_cookies`](Self::set_cookies): the `101` (or `200`) and refusals alike, as a browser
/// does. `uri` is the URL the handshake was asked for (`ws://`, `wss://`, or `https://` for
/// HTTP/3). Proxies see no cookie. Which cookies match a URL (domain, path, `Secure`, expiry;
/// RFC 6265 treats `ws` as `http` and `wss` as `https`) is the jar's business: adapt a cookie
/// store crate, or write a jar for one server, as here:
///
/// ```
/// use ferrosocket::{CookieJar, Dialer};
/// use ferrosocket::http::{HeaderValue, Uri};
/// use std::sync::{Arc, Mutex};
///
/// /// Keeps the last `session` cookie the server set, for every URL.
/// #[derive(Default)]
/// struct Session(Mutex<Option<HeaderValue>>);
///
/// impl CookieJar for Session {
///     fn cookies(&self, _uri: &Uri) -> Option<HeaderValue> {
///         self.0.lock().ok()?.clone()
///     }
///
///     fn set_cookies(&self, _uri: &Uri, set_cookie: &mut dyn Iterator<Item = &HeaderValue>) {
///         for value in set_cookie {
///             let Ok(text) = value.to_str() else { continue };
///             let pair = text.split(';').next().unwrap_or("").trim();
///             if pair.starts_with("session=") {
///                 if let (Ok(mut slot), Ok(v)) = (self.0.lock(), HeaderValue::from_str(pair)) {
///                     *slot = Some(v);
///                 }
///             }
///         }
///     }
/// }
///
/// let dialer = Dialer::new().cookie_jar(Arc::new(Session::default()));
/// ```
pub trait CookieJar: Send + Sync {
    /// The `Cookie` header value to send with a handshake to `uri` (`name=value` pairs joined
    /// by `"; "`), or `None` for none. Joined after the request's own `Cookie` header, if it
    /// has one.
    fn cookies(&self, uri: &Uri) -> Option<HeaderValue>;

    /// Takes the `Set-Cookie` header values of the server's answer to a handshake to `uri`.
    fn set_cookies(&self, uri: &Uri, set_cookie: &mut dyn Iterator<Item = &HeaderValue>);
}

/// Adds the jar's cookies for `uri` to `headers`: one `Cookie` header (RFC 6265 §5.4), the
/// request's own pairs first.
pub(super) fn add_cookies(jar: &dyn CookieJar, uri: &Uri, headers: &mut HeaderMap) {
    let Some(ours) = jar.cookies(uri) else { return };
    if ours.is_empty() {
        return;
    }
    let joined = match headers.get(COOKIE) {
        Some(own) => {
            let mut both = own.as_bytes().to_vec();
            both.extend_from_slice(b"; ");
            both.extend_from_slice(ours.as_bytes());
            HeaderValue::from_bytes(&both).ok()
        }
        None => Some(ours),
    };
    if let Some(value) = joined {
        headers.insert(COOKIE, value);
    }
}

/// Gives the jar the `Set-Cookie` headers of an answer to `uri`, if there are any.
pub(super) fn store_cookies(jar: &dyn CookieJar, uri: &Uri, headers: &HeaderMap) {
    let mut set = headers.get_all(SET_COOKIE).iter().peekable();
    if set.peek().is_some() {
        jar.set_cookies(uri, &mut set);
    }
}
