//! The HTTP `CONNECT` exchange that opens a tunnel through a proxy (RFC 9110 §9.3.6): the
//! request, with `Proxy-Authorization: Basic` credentials, and the proxy's answer.
//!
//! ```
//! use bytes::BytesMut;
//! use ferrosocket_proto::Limits;
//! use ferrosocket_proto::url_target;
//! use ferrosocket_proto::{ConnectAnswer, connect_authority, parse_connect_response, write_connect_request};
//!
//! let target = url_target("wss://example.com/chat").unwrap();
//! let authority = connect_authority(&target);
//! let mut wire = Vec::new();
//! write_connect_request(&authority, Some(("alice", "s3cret")), &mut wire);
//! assert!(wire.starts_with(b"CONNECT example.com:443 HTTP/1.1\r\n"));
//!
//! let mut answer = BytesMut::from(&b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03"[..]);
//! let got = parse_connect_response(&mut answer, &Limits::default()).unwrap();
//! assert_eq!(got, Some(ConnectAnswer::Tunnel));
//! assert_eq!(&answer[..], b"\x16\x03"); // the tunnel's first bytes stay
//! ```

use base64::Engine as _;
use bytes::BytesMut;
use http::{HeaderMap, StatusCode};

use super::client::Target;
use super::http::parse_response;
use super::{HandshakeError, Limits};

/// The `host:port` to ask a proxy for (`[v6]:port` for an IPv6 address).
pub fn connect_authority(target: &Target) -> String {
    if target.host.contains(':') {
        format!("[{}]:{}", target.host, target.port)
    } else {
        format!("{}:{}", target.host, target.port)
    }
}

/// Serializes `CONNECT authority HTTP/1.1` with its `Host` header and, when `credentials`
/// (user, password) are given, `Proxy-Authorization: Basic base64(user:password)`.
pub fn write_connect_request(authority: &str, credentials: Option<(&str, &str)>, dst: &mut Vec<u8>) {
    dst.extend_from_slice(format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n").as_bytes());
    if let Some((user, password)) = credentials {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        dst.extend_from_slice(b"Proxy-Authorization: Basic ");
        dst.extend_from_slice(token.as_bytes());
        dst.extend_from_slice(b"\r\n");
    }
    dst.extend_from_slice(b"\r\n");
}

/// The proxy's answer to `CONNECT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectAnswer {
    /// A 2xx: the tunnel is open; what follows the head belongs to the tunnel.
    Tunnel,
    /// Another status: the proxy refused.
    Refused {
        /// The proxy's status.
        status: StatusCode,
        /// The proxy's headers (`Proxy-Authenticate`...).
        headers: HeaderMap,
    },
}

/// Parses the proxy's answer from the start of `buf`, incrementally: `Ok(None)` until the
/// whole head is there (nothing consumed). On an answer the head is consumed and whatever
/// followed it stays in `buf`.
///
/// # Errors
/// A [`HandshakeError`] when the answer is not HTTP or passes `limits`.
pub fn parse_connect_response(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<ConnectAnswer>, HandshakeError> {
    let Some(resp) = parse_response(buf, limits)? else {
        return Ok(None);
    };
    if resp.status().is_success() {
        return Ok(Some(ConnectAnswer::Tunnel));
    }
    let (parts, ()) = resp.into_parts();
    Ok(Some(ConnectAnswer::Refused {
        status: parts.status,
        headers: parts.headers,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn target(host: &str, port: u16) -> Target {
        Target {
            tls: false,
            host: host.into(),
            port,
        }
    }

    #[test]
    fn authority_brackets_ipv6() {
        assert_eq!(connect_authority(&target("example.com", 443)), "example.com:443");
        assert_eq!(connect_authority(&target("10.0.0.1", 80)), "10.0.0.1:80");
        assert_eq!(connect_authority(&target("::1", 8080)), "[::1]:8080");
    }

    #[test]
    fn request_with_and_without_credentials() {
        let mut out = Vec::new();
        write_connect_request("h:1", None, &mut out);
        assert_eq!(out, b"CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\n\r\n");
        let mut out = Vec::new();
        write_connect_request("h:1", Some(("Aladdin", "open sesame")), &mut out);
        assert_eq!(
            out,
            b"CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\nProxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n"
        );
    }

    #[test]
    fn request_parses_back() {
        let mut out = Vec::new();
        write_connect_request("[::1]:8080", Some(("u", "")), &mut out);
        let mut buf = BytesMut::from(&out[..]);
        let req = super::super::http::parse_request(&mut buf, &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(req.method(), http::Method::CONNECT);
        assert_eq!(req.uri(), "[::1]:8080");
        assert_eq!(req.headers()["host"], "[::1]:8080");
        assert_eq!(req.headers()["proxy-authorization"], "Basic dTo=");
        assert!(buf.is_empty());
    }

    /// Parses `wire` fed whole, then split at every offset: same answer, same leftover.
    fn same_at_every_split(wire: &[u8]) -> (Result<Option<ConnectAnswer>, HandshakeError>, Vec<u8>) {
        let mut buf = BytesMut::from(wire);
        let whole = parse_connect_response(&mut buf, &Limits::default());
        let leftover = buf.to_vec();
        for cut in 0..=wire.len() {
            let mut buf = BytesMut::from(wire.get(..cut).unwrap_or_default());
            let mut got = parse_connect_response(&mut buf, &Limits::default());
            if matches!(got, Ok(None)) {
                assert_eq!(buf.len(), cut, "a partial head must not be consumed");
                buf.extend_from_slice(wire.get(cut..).unwrap_or_default());
                got = parse_connect_response(&mut buf, &Limits::default());
            } else {
                buf.extend_from_slice(wire.get(cut..).unwrap_or_default());
            }
            assert_eq!(format!("{got:?}"), format!("{whole:?}"), "split at {cut}");
            if got.is_ok() {
                assert_eq!(&buf[..], &leftover[..], "split at {cut}");
            }
        }
        (whole, leftover)
    }

    #[test]
    fn tunnel_keeps_what_follows_the_head() {
        let (got, rest) = same_at_every_split(b"HTTP/1.1 200 OK\r\nVia: p\r\n\r\n\x16\x03\x01");
        assert_eq!(got.unwrap(), Some(ConnectAnswer::Tunnel));
        assert_eq!(rest, b"\x16\x03\x01");
        let (got, _) = same_at_every_split(b"HTTP/1.0 204 No Content\r\n\r\n");
        assert_eq!(got.unwrap(), Some(ConnectAnswer::Tunnel));
    }

    #[test]
    fn refusal_carries_status_and_headers() {
        let (got, rest) = same_at_every_split(
            b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"p\"\r\nContent-Length: 0\r\n\r\n",
        );
        let Some(ConnectAnswer::Refused { status, headers }) = got.unwrap() else {
            panic!("not a refusal");
        };
        assert_eq!(status, StatusCode::PROXY_AUTHENTICATION_REQUIRED);
        assert_eq!(headers["proxy-authenticate"], "Basic realm=\"p\"");
        assert!(rest.is_empty());
    }

    #[test]
    fn garbage_is_malformed() {
        let (got, _) = same_at_every_split(b"SSH-2.0-OpenSSH_9.6\r\n\r\n");
        assert!(got.is_err());
    }

    proptest! {
        #[test]
        fn prop_any_status_and_split(
            status in 100u16..600,
            leftover in proptest::collection::vec(any::<u8>(), 0..20),
            cut in any::<proptest::sample::Index>(),
        ) {
            let mut wire = format!("HTTP/1.1 {status} X\r\nX-A: b\r\n\r\n").into_bytes();
            wire.extend_from_slice(&leftover);
            let (a, b) = wire.split_at(cut.index(wire.len() + 1));
            let mut buf = BytesMut::from(a);
            let mut got = parse_connect_response(&mut buf, &Limits::default()).unwrap();
            buf.extend_from_slice(b);
            if got.is_none() {
                got = parse_connect_response(&mut buf, &Limits::default()).unwrap();
            }
            let want_tunnel = (200..300).contains(&status);
            match got.unwrap() {
                ConnectAnswer::Tunnel => prop_assert!(want_tunnel),
                ConnectAnswer::Refused { status: s, headers } => {
                    prop_assert!(!want_tunnel);
                    prop_assert_eq!(s.as_u16(), status);
                    prop_assert_eq!(&headers["x-a"], "b");
                }
            }
            prop_assert_eq!(&buf[..], &leftover[..]);
        }
    }
}
