//! Proxies: [`ProxyConfig`], the `CONNECT` tunnel over any transport, and the proxy the
//! environment names (`HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY`).

use super::Dialer;
use super::no_proxy::{NoProxy, split_host_port};
use crate::error::{Error, ProxyError};
use crate::maybe_tls::Layer;
use bytes::BytesMut;
use ferrosocket_proto::Limits;
use ferrosocket_proto::Target;
use ferrosocket_proto::{ConnectAnswer, connect_authority, parse_connect_response, write_connect_request};
use std::fmt;
use std::net::IpAddr;
#[cfg(feature = "rustls")]
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// An HTTP proxy reached with `CONNECT host:port HTTP/1.1`, over plain TCP (`http://`) or
/// over TLS to the proxy (`https://`).
///
/// Through an `https://` proxy, the `CONNECT` request (with its credentials) travels inside
/// TLS to the proxy, whose certificate is verified for the proxy's host; for a `wss://` URL a
/// second TLS session to the server runs inside the tunnel (TLS in TLS), so the proxy sees
/// neither the WebSocket traffic nor the server's TLS keys.
///
/// ```
/// use ferrosocket::ProxyConfig;
/// let p = ProxyConfig::from_url("http://alice:s3cret@proxy.example:3128").unwrap();
/// assert_eq!((p.host(), p.port(), p.is_tls()), ("proxy.example", 3128, false));
/// let p = ProxyConfig::from_url("https://alice:s3cret@proxy.example").unwrap();
/// assert_eq!((p.port(), p.is_tls()), (443, true));
/// let p = ProxyConfig::new("10.0.0.1", 8080).basic_auth("alice", "s3cret");
/// assert_eq!(p.port(), 8080);
/// ```
#[derive(Clone)]
pub struct ProxyConfig {
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
    tls: bool,
    #[cfg(feature = "rustls")]
    tls_config: Option<Arc<rustls::ClientConfig>>,
}

impl PartialEq for ProxyConfig {
    /// Equal when they name the same proxy with the same credentials and scheme, and share
    /// the same TLS configuration (the same `Arc`) or neither has one.
    fn eq(&self, other: &Self) -> bool {
        #[cfg(feature = "rustls")]
        let same_tls_config = match (&self.tls_config, &other.tls_config) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        #[cfg(not(feature = "rustls"))]
        let same_tls_config = true;
        self.host == other.host
            && self.port == other.port
            && self.credentials == other.credentials
            && self.tls == other.tls
            && same_tls_config
    }
}

impl Eq for ProxyConfig {}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ProxyConfig");
        d.field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .field("tls", &self.tls);
        #[cfg(feature = "rustls")]
        d.field("tls_config", &self.tls_config.as_ref().map(|_| "custom"));
        d.finish_non_exhaustive()
    }
}

impl ProxyConfig {
    /// The proxy at `host:port` (a name or an IP address, IPv6 without brackets), without
    /// credentials.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            credentials: None,
            tls: false,
            #[cfg(feature = "rustls")]
            tls_config: None,
        }
    }

    /// Speaks TLS to the proxy (an `https://` proxy) when `on`; the server name sent and
    /// verified is the proxy's host. Without the `rustls` feature, connecting through such a
    /// proxy fails with [`ProxyError::BadUrl`].
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }

    /// The TLS configuration for an `https://` proxy (a private CA, a client certificate).
    /// Without it the [`Dialer::tls_config`](super::Dialer::tls_config) is used, else Mozilla's roots. It does not turn
    /// TLS on: see [`tls`](Self::tls).
    #[cfg(feature = "rustls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls_config = Some(config);
        self
    }

    /// Sends `Proxy-Authorization: Basic base64(user:password)` with the `CONNECT` request.
    pub fn basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some((user.into(), password.into()));
        self
    }

    /// Parses `http://[user:password@]host[:port]` (port 80 when absent) or
    /// `https://[user:password@]host[:port]` (TLS to the proxy, port 443 when absent). A URL
    /// without a scheme is taken as `http://`, as Go does for `HTTP_PROXY`. Percent-escapes in
    /// the user and password are decoded.
    ///
    /// # Errors
    /// [`Error::Proxy`] with [`ProxyError::BadUrl`]: another scheme (`socks5://` proxies are
    /// not supported), no host, or a bad port.
    pub fn from_url(url: &str) -> Result<Self, Error> {
        let bad = |reason: &str| {
            Error::from(ProxyError::BadUrl {
                url: redact(url),
                reason: reason.to_owned(),
            })
        };
        let url = url.trim();
        let (tls, rest) = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (false, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (true, rest),
            Some(_) => {
                return Err(bad(
                    "only http:// and https:// proxies are supported (the tunnel itself carries tls for wss)",
                ));
            }
            None => (false, url),
        };
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (host, port) = split_host_port(hostport).ok_or_else(|| bad("use http://host:port"))?;
        let port = match port {
            None if tls => 443,
            None => 80,
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| bad("the port must be a number up to 65535"))?,
        };
        if host.is_empty() {
            return Err(bad("the url has no host; use http://host:port"));
        }
        let mut proxy = ProxyConfig::new(host, port).tls(tls);
        if let Some(info) = userinfo {
            let (user, password) = info.split_once(':').unwrap_or((info, ""));
            proxy = proxy.basic_auth(percent_decode(user), percent_decode(password));
        }
        Ok(proxy)
    }

    /// The proxy's host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether TLS is spoken to the proxy (`https://`).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The user name sent to the proxy, if any.
    pub fn user(&self) -> Option<&str> {
        self.credentials.as_ref().map(|(u, _)| u.as_str())
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match decoded {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `url` with its password replaced, for error messages.
fn redact(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), url),
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = (rest.get(..end).unwrap_or(rest), rest.get(end..).unwrap_or(""));
    match authority.rsplit_once('@') {
        Some((info, host)) => {
            let user = info.split(':').next().unwrap_or_default();
            format!("{scheme}{user}:***@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

impl Dialer {
    /// The proxy to use for `target`, if any.
    pub(super) fn proxy_for(&self, target: &Target) -> Result<Option<ProxyConfig>, Error> {
        if let Some(p) = &self.inner.proxy {
            return Ok(Some(p.clone()));
        }
        if !self.inner.proxy_from_env {
            return Ok(None);
        }
        proxy_from_lookup(target, |name| std::env::var(name).ok())
    }

    /// TLS to an `https://` proxy over `io`, with the proxy's TLS configuration, else the
    /// dialer's, else the default one; the server name is the proxy's host.
    #[cfg(feature = "rustls")]
    pub(super) async fn proxy_tls(&self, io: Layer, proxy: &ProxyConfig) -> Result<Layer, Error> {
        let config = match (&proxy.tls_config, &self.inner.tls) {
            (Some(c), _) | (None, Some(c)) => c.clone(),
            (None, None) => crate::tls::webpki_client_config()?,
        };
        let hint = "; if the proxy uses a private certificate authority, trust it with ProxyConfig::tls_config or Dialer::tls_config";
        let tls = super::tls_handshake(config, io, &proxy.host, proxy.port, "the proxy ", hint).await?;
        Ok(Layer::Tls(Box::new(tls)))
    }

    #[cfg(not(feature = "rustls"))]
    pub(super) async fn proxy_tls(&self, _io: Layer, proxy: &ProxyConfig) -> Result<Layer, Error> {
        Err(ProxyError::BadUrl {
            url: format!("https://{}:{}", proxy.host, proxy.port),
            reason: "https:// proxies need the `rustls` feature of ferrosocket; enable it in Cargo.toml"
                .into(),
        }
        .into())
    }
}

/// Asks the proxy on `io` for a tunnel to `target`; returns the bytes received after its
/// answer.
pub(super) async fn tunnel<S>(io: &mut S, proxy: &ProxyConfig, target: &Target) -> Result<BytesMut, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let authority = connect_authority(target);
    let credentials = proxy.credentials.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
    let mut request = Vec::with_capacity(256);
    write_connect_request(&authority, credentials, &mut request);
    io.write_all(&request).await?;
    io.flush().await?;
    let limits = Limits::default();
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        match parse_connect_response(&mut buf, &limits) {
            Ok(Some(ConnectAnswer::Tunnel)) => return Ok(buf),
            Ok(Some(ConnectAnswer::Refused { status, headers })) => {
                return Err(ProxyError::Refused {
                    target: authority,
                    status,
                    headers: Box::new(headers),
                }
                .into());
            }
            Ok(None) => {}
            Err(e) => return Err(ProxyError::Malformed(e).into()),
        }
        if buf.capacity() - buf.len() < 512 {
            buf.reserve(4096);
        }
        if io.read_buf(&mut buf).await? == 0 {
            return Err(ProxyError::Closed.into());
        }
    }
}

/// The proxy the environment (read through `lookup`) names for `target`, Go's
/// `ProxyFromEnvironment` rules.
fn proxy_from_lookup(
    target: &Target,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<ProxyConfig>, Error> {
    let any = |names: [&str; 2]| {
        names
            .into_iter()
            .filter_map(&lookup)
            .find(|v| !v.trim().is_empty())
    };
    let value = if target.tls {
        any(["HTTPS_PROXY", "https_proxy"])
    } else {
        any(["HTTP_PROXY", "http_proxy"])
    };
    let Some(value) = value else { return Ok(None) };
    let host = target.host.to_ascii_lowercase();
    if host == "localhost"
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
    {
        return Ok(None);
    }
    let no_proxy = any(["NO_PROXY", "no_proxy"]).unwrap_or_default();
    if NoProxy::parse(&no_proxy).matches(&target.host, target.port) {
        return Ok(None);
    }
    ProxyConfig::from_url(&value).map(Some)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn target(url: &str) -> Target {
        ferrosocket_proto::url_target(url).unwrap()
    }

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn env_proxy_by_scheme() {
        let vars = env(&[
            ("HTTP_PROXY", "http://plain:3128"),
            ("https_proxy", "secure:8443"),
        ]);
        let p = proxy_from_lookup(&target("ws://example.com"), &vars)
            .unwrap()
            .unwrap();
        assert_eq!((p.host(), p.port()), ("plain", 3128));
        let p = proxy_from_lookup(&target("wss://example.com"), &vars)
            .unwrap()
            .unwrap();
        assert_eq!((p.host(), p.port()), ("secure", 8443));
        assert!(proxy_from_lookup(&target("ws://x"), env(&[])).unwrap().is_none());
    }

    #[test]
    fn env_proxy_may_be_https() {
        let vars = env(&[
            ("HTTPS_PROXY", "https://u:p@tls-proxy"),
            ("HTTP_PROXY", "http://plain"),
        ]);
        let p = proxy_from_lookup(&target("wss://example.com"), &vars)
            .unwrap()
            .unwrap();
        assert_eq!(
            (p.host(), p.port(), p.is_tls(), p.user()),
            ("tls-proxy", 443, true, Some("u"))
        );
        let p = proxy_from_lookup(&target("ws://example.com"), &vars)
            .unwrap()
            .unwrap();
        assert_eq!((p.host(), p.port(), p.is_tls()), ("plain", 80, false));
    }

    #[test]
    fn env_proxy_uppercase_wins_and_empty_is_unset() {
        let vars = env(&[("HTTP_PROXY", "up:1"), ("http_proxy", "low:2")]);
        let p = proxy_from_lookup(&target("ws://example.com"), vars)
            .unwrap()
            .unwrap();
        assert_eq!(p.host(), "up");
        let vars = env(&[("HTTP_PROXY", " "), ("http_proxy", "low:2")]);
        let p = proxy_from_lookup(&target("ws://example.com"), vars)
            .unwrap()
            .unwrap();
        assert_eq!(p.host(), "low");
    }

    #[test]
    fn env_proxy_skips_loopback_and_no_proxy() {
        let vars = env(&[("HTTP_PROXY", "p:1"), ("no_proxy", "internal, 192.168.0.0/16")]);
        for url in [
            "ws://localhost:9000",
            "ws://127.0.0.1",
            "ws://127.9.9.9",
            "ws://[::1]:80",
            "ws://internal",
            "ws://a.internal",
            "ws://192.168.4.4",
        ] {
            assert!(proxy_from_lookup(&target(url), &vars).unwrap().is_none(), "{url}");
        }
        assert!(
            proxy_from_lookup(&target("ws://external"), &vars)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn env_proxy_bad_url_is_an_error() {
        let vars = env(&[("HTTP_PROXY", "socks5://p:1")]);
        let err = proxy_from_lookup(&target("ws://example.com"), vars).unwrap_err();
        assert!(matches!(err, Error::Proxy(ProxyError::BadUrl { .. })));
    }

    #[test]
    fn proxy_url_forms() {
        let p = ProxyConfig::from_url("http://u%40x:p%3Aw@h:1").unwrap();
        assert_eq!(p.credentials, Some(("u@x".into(), "p:w".into())));
        let p = ProxyConfig::from_url("HTTP://h/").unwrap();
        assert_eq!((p.host(), p.port(), p.user()), ("h", 80, None));
        let p = ProxyConfig::from_url("http://[::1]:8080").unwrap();
        assert_eq!((p.host(), p.port()), ("::1", 8080));
        let p = ProxyConfig::from_url("http://user@h:2").unwrap();
        assert_eq!(p.credentials, Some(("user".into(), String::new())));
        let p = ProxyConfig::from_url("https://u:p@h").unwrap();
        assert_eq!((p.host(), p.port(), p.is_tls()), ("h", 443, true));
        let p = ProxyConfig::from_url("HTTPS://h:8443").unwrap();
        assert_eq!((p.port(), p.is_tls()), (8443, true));
        assert!(!ProxyConfig::from_url("h:1").unwrap().is_tls());
        for bad in [
            "socks5://h:1",
            "https://:8080",
            "http://:8080",
            "http://h:x",
            "http://h:70000",
            "http://",
        ] {
            assert!(ProxyConfig::from_url(bad).is_err(), "{bad}");
        }
        let err = ProxyConfig::from_url("socks5://user:secret@h:1").unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}
