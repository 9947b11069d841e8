//! Incremental HTTP/1.1 head parsing and serialization for the handshake.
//!
//! The parsers take a growing [`BytesMut`] that the caller appends received
//! bytes to. They return `Ok(None)` until a whole head (start line, headers
//! and the blank line) is present, then remove exactly the head from the
//! buffer and return it; any bytes after the head (for example a first
//! WebSocket frame sent in the same packet) stay in the buffer.
//!
//! Each call parses the buffer from the start, and looks at no more than
//! [`Limits::max_header_bytes`] bytes, so the work per call is bounded.

use bytes::{Buf as _, BytesMut};
use http::header::{CONTENT_LENGTH, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};

use super::{HandshakeError, Limits};

/// Number of header slots kept on the stack; larger limits use the heap.
const STACK_HEADERS: usize = 64;

/// Parses an HTTP/1.x request head from the front of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed. On `Ok(Some(_))` the head
/// has been removed from `buf` and the bytes after it remain. The request's
/// URI is the request-target as sent (usually `/path?query`).
///
/// # Errors
///
/// * [`HandshakeError::HeaderTooLarge`] if the head is, or is bound to be,
///   longer than `limits.max_header_bytes`.
/// * [`HandshakeError::TooManyHeaders`] if it has more than
///   `limits.max_headers` header lines.
/// * [`HandshakeError::Malformed`] if it is not valid HTTP/1.x, or a method,
///   target, header name or header value is not acceptable to [`http`].
///
/// On error `buf` is left untouched; the connection should be answered with
/// [`HandshakeError::status`] and closed.
///
/// ```
/// use bytes::BytesMut;
/// use ferrosocket_proto::{Limits, parse_request};
///
/// let mut buf = BytesMut::from(&b"GET /chat HTTP/1.1\r\nHost: a"[..]);
/// assert!(parse_request(&mut buf, &Limits::default()).unwrap().is_none());
/// buf.extend_from_slice(b"\r\n\r\n\x81\x00");
/// let req = parse_request(&mut buf, &Limits::default()).unwrap().unwrap();
/// assert_eq!(req.uri(), "/chat");
/// assert_eq!(req.headers()["host"], "a");
/// assert_eq!(&buf[..], b"\x81\x00"); // the first frame is still there
/// ```
pub fn parse_request(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Request<()>>, HandshakeError> {
    let mut stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let mut heap = Vec::new();
    let mut parsed = httparse::Request::new(header_slots(&mut stack, &mut heap, limits));
    let Some(len) = run_parser(buf, limits, |b| parsed.parse(b))? else {
        return Ok(None);
    };
    let method = Method::from_bytes(parsed.method.unwrap_or("").as_bytes())
        .map_err(|e| HandshakeError::Malformed(format!("invalid method: {e}")))?;
    let uri = Uri::try_from(parsed.path.unwrap_or(""))
        .map_err(|e| HandshakeError::Malformed(format!("invalid request target: {e}")))?;
    let version = map_version(parsed.version)?;
    let headers = build_headers(parsed.headers)?;

    let mut req = Request::new(());
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.version_mut() = version;
    *req.headers_mut() = headers;
    buf.advance(len);
    Ok(Some(req))
}

/// Parses an HTTP/1.x response head from the front of `buf`.
///
/// Same contract as [`parse_request`]: `Ok(None)` means "need more bytes";
/// on success the head is removed from `buf` and whatever follows (the first
/// frames after a `101`, or the body of a rejection) stays in it. The reason
/// phrase is not kept.
///
/// # Errors
///
/// As for [`parse_request`].
///
/// ```
/// use bytes::BytesMut;
/// use ferrosocket_proto::{Limits, parse_response};
///
/// let mut buf = BytesMut::from(&b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"[..]);
/// let resp = parse_response(&mut buf, &Limits::default()).unwrap().unwrap();
/// assert_eq!(resp.status(), 101);
/// assert!(buf.is_empty());
/// ```
pub fn parse_response(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Response<()>>, HandshakeError> {
    let mut stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let mut heap = Vec::new();
    let mut parsed = httparse::Response::new(header_slots(&mut stack, &mut heap, limits));
    let Some(len) = run_parser(buf, limits, |b| parsed.parse(b))? else {
        return Ok(None);
    };
    let status = StatusCode::from_u16(parsed.code.unwrap_or(0))
        .map_err(|e| HandshakeError::Malformed(format!("invalid status code: {e}")))?;
    let version = map_version(parsed.version)?;
    let headers = build_headers(parsed.headers)?;

    let mut resp = Response::new(());
    *resp.status_mut() = status;
    *resp.version_mut() = version;
    *resp.headers_mut() = headers;
    buf.advance(len);
    Ok(Some(resp))
}

/// Returns `limits.max_headers` empty httparse header slots, taken from
/// `stack` when that is small enough and from `heap` otherwise.
///
/// The count is capped at what fits in `max_header_bytes` (a header line
/// takes at least 3 bytes, `a:\n`), so a huge `max_headers` does not make
/// every call allocate a huge array while the outcome stays the same.
fn header_slots<'a, 'b>(
    stack: &'a mut [httparse::Header<'b>; STACK_HEADERS],
    heap: &'a mut Vec<httparse::Header<'b>>,
    limits: &Limits,
) -> &'a mut [httparse::Header<'b>] {
    let n = limits.max_headers.min(limits.max_header_bytes / 3 + 1);
    if n <= STACK_HEADERS {
        stack.get_mut(..n).unwrap_or_default()
    } else {
        heap.resize(n, httparse::EMPTY_HEADER);
        heap
    }
}

/// Runs an httparse parser over at most `limits.max_header_bytes` of `buf`
/// and maps its outcome: `Some(head_len)` when complete, `None` when more
/// bytes may complete it.
fn run_parser<'b>(
    buf: &'b BytesMut,
    limits: &Limits,
    parse: impl FnOnce(&'b [u8]) -> httparse::Result<usize>,
) -> Result<Option<usize>, HandshakeError> {
    // Never look past the limit: a head that does not end within it is too
    // large, whatever follows.
    let window = buf.get(..limits.max_header_bytes).unwrap_or(&buf[..]);
    match parse(window) {
        Ok(httparse::Status::Complete(len)) => Ok(Some(len)),
        Ok(httparse::Status::Partial) if buf.len() > limits.max_header_bytes => {
            Err(HandshakeError::HeaderTooLarge)
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(HandshakeError::TooManyHeaders),
        Err(e) => Err(HandshakeError::Malformed(e.to_string())),
    }
}

fn map_version(v: Option<u8>) -> Result<Version, HandshakeError> {
    match v {
        Some(1) => Ok(Version::HTTP_11),
        Some(0) => Ok(Version::HTTP_10),
        _ => Err(HandshakeError::Malformed("unsupported http version".into())),
    }
}

fn build_headers(parsed: &[httparse::Header<'_>]) -> Result<HeaderMap, HandshakeError> {
    let mut map = HeaderMap::try_with_capacity(parsed.len()).map_err(|_| HandshakeError::TooManyHeaders)?;
    for h in parsed {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|e| HandshakeError::Malformed(format!("invalid header name: {e}")))?;
        let value = HeaderValue::from_bytes(h.value)
            .map_err(|e| HandshakeError::Malformed(format!("invalid header value: {e}")))?;
        map.try_append(name, value)
            .map_err(|_| HandshakeError::TooManyHeaders)?;
    }
    Ok(map)
}

/// Serializes a request head: `METHOD target HTTP/1.1`, every header line,
/// then the blank line.
///
/// The target is the URI's path and query (`/` when it has none), so a
/// request whose URI is `ws://host/chat?x=1` is written as
/// `GET /chat?x=1 HTTP/1.1`. The version is always written as `HTTP/1.1`,
/// the only version the upgrade handshake is defined for; the request's
/// body is ignored.
///
/// ```
/// use ferrosocket_proto::write_request;
///
/// let req = http::Request::get("ws://example.com/chat?room=1")
///     .header("host", "example.com")
///     .body(())
///     .unwrap();
/// let mut out = Vec::new();
/// write_request(&req, &mut out);
/// assert_eq!(out, b"GET /chat?room=1 HTTP/1.1\r\nhost: example.com\r\n\r\n");
/// ```
pub fn write_request(req: &Request<()>, dst: &mut Vec<u8>) {
    let target = req.uri().path_and_query().map_or("", |pq| pq.as_str());
    dst.extend_from_slice(req.method().as_str().as_bytes());
    dst.push(b' ');
    if !target.starts_with('/') && target != "*" {
        dst.push(b'/');
    }
    dst.extend_from_slice(target.as_bytes());
    dst.extend_from_slice(b" HTTP/1.1\r\n");
    write_headers(req.headers(), dst);
    dst.extend_from_slice(b"\r\n");
}

/// Serializes a response: `HTTP/1.1 <code> <canonical reason>`, the header
/// lines, the blank line, then `body`.
///
/// A `Content-Length` header is added when none is present, except for
/// `1xx` and `204` responses, which must not carry one, and `304` (RFC 9110
/// §8.6); those must also have an empty `body`. This way every rejection is
/// properly delimited even with an empty body, so a client does not wait
/// for the connection to close. Header values cannot
/// contain CR or LF (the [`http`] types reject them), so nothing can be
/// injected.
///
/// ```
/// use ferrosocket_proto::write_response;
/// use http::{HeaderMap, StatusCode};
///
/// let mut out = Vec::new();
/// write_response(StatusCode::FORBIDDEN, &HeaderMap::new(), b"no\n", &mut out);
/// assert_eq!(out, b"HTTP/1.1 403 Forbidden\r\ncontent-length: 3\r\n\r\nno\n");
/// ```
pub fn write_response(status: StatusCode, headers: &HeaderMap, body: &[u8], dst: &mut Vec<u8>) {
    dst.extend_from_slice(b"HTTP/1.1 ");
    dst.extend_from_slice(status.as_str().as_bytes());
    dst.push(b' ');
    dst.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    dst.extend_from_slice(b"\r\n");
    write_headers(headers, dst);
    let may_have_length =
        !status.is_informational() && status != StatusCode::NO_CONTENT && status != StatusCode::NOT_MODIFIED;
    if may_have_length && !headers.contains_key(CONTENT_LENGTH) {
        dst.extend_from_slice(b"content-length: ");
        dst.extend_from_slice(body.len().to_string().as_bytes());
        dst.extend_from_slice(b"\r\n");
    }
    dst.extend_from_slice(b"\r\n");
    dst.extend_from_slice(body);
}

fn write_headers(headers: &HeaderMap, dst: &mut Vec<u8>) {
    for (name, value) in headers {
        dst.extend_from_slice(name.as_str().as_bytes());
        dst.extend_from_slice(b": ");
        dst.extend_from_slice(value.as_bytes());
        dst.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const REQ: &[u8] = b"GET /chat?room=1 HTTP/1.1\r\n\
        Host: server.example.com\r\n\
        Upgrade: websocket\r\n\
        Connection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Origin: http://example.com\r\n\
        Sec-WebSocket-Protocol: chat, superchat\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";

    fn limits() -> Limits {
        Limits::default()
    }

    #[test]
    fn rfc6455_4_1_parse_request_fields() {
        let mut buf = BytesMut::from(REQ);
        let req = parse_request(&mut buf, &limits()).unwrap().unwrap();
        assert_eq!(req.method(), Method::GET);
        assert_eq!(req.uri(), "/chat?room=1");
        assert_eq!(req.version(), Version::HTTP_11);
        assert_eq!(req.headers().len(), 7);
        assert_eq!(req.headers()["host"], "server.example.com");
        assert_eq!(req.headers()["sec-websocket-protocol"], "chat, superchat");
        assert!(buf.is_empty());
    }

    #[test]
    fn rfc6455_4_1_parse_request_none_on_every_strict_prefix() {
        let mut buf = BytesMut::new();
        for (i, b) in REQ.iter().enumerate() {
            buf.extend_from_slice(&[*b]);
            let r = parse_request(&mut buf, &limits()).unwrap();
            if i + 1 < REQ.len() {
                assert!(r.is_none(), "prefix of {} bytes parsed", i + 1);
                assert_eq!(buf.len(), i + 1, "partial parse must not consume");
            } else {
                assert_eq!(r.unwrap().uri(), "/chat?room=1");
                assert!(buf.is_empty());
            }
        }
    }

    #[test]
    fn rfc6455_5_leftover_bytes_after_head_preserved() {
        let mut buf = BytesMut::from(REQ);
        buf.extend_from_slice(b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58");
        let req = parse_request(&mut buf, &limits()).unwrap().unwrap();
        assert_eq!(req.uri(), "/chat?room=1");
        assert_eq!(&buf[..], b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58");
    }

    #[test]
    fn rfc6585_5_header_too_large_while_incomplete() {
        let l = Limits {
            max_header_bytes: 64,
            max_headers: 64,
        };
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nX: "[..]);
        buf.extend_from_slice(&[b'a'; 45]); // 64 bytes, still incomplete
        assert_eq!(buf.len(), 64);
        assert!(matches!(parse_request(&mut buf, &l), Ok(None)));
        buf.extend_from_slice(b"a");
        let err = parse_request(&mut buf, &l).unwrap_err();
        assert_eq!(err, HandshakeError::HeaderTooLarge);
        assert_eq!(err.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert_eq!(buf.len(), 65, "error leaves the buffer alone");
    }

    #[test]
    fn rfc6585_5_header_too_large_when_complete() {
        let l = Limits {
            max_header_bytes: REQ.len() - 1,
            max_headers: 64,
        };
        let mut buf = BytesMut::from(REQ);
        assert_eq!(
            parse_request(&mut buf, &l).err(),
            Some(HandshakeError::HeaderTooLarge)
        );
        // Exactly at the limit is fine.
        let l = Limits {
            max_header_bytes: REQ.len(),
            max_headers: 64,
        };
        let mut buf = BytesMut::from(REQ);
        buf.extend_from_slice(b"tail");
        assert!(parse_request(&mut buf, &l).unwrap().is_some());
        assert_eq!(&buf[..], b"tail");
    }

    #[test]
    fn rfc6585_5_too_many_headers() {
        let l = Limits {
            max_header_bytes: 16 * 1024,
            max_headers: 6,
        };
        let mut buf = BytesMut::from(REQ);
        let err = parse_request(&mut buf, &l).unwrap_err();
        assert_eq!(err, HandshakeError::TooManyHeaders);
        assert_eq!(err.status(), 431);
        let l = Limits {
            max_header_bytes: 16 * 1024,
            max_headers: 7,
        };
        assert!(parse_request(&mut buf, &l).unwrap().is_some());
    }

    #[test]
    fn rfc6585_5_many_headers_above_stack_slots() {
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..100 {
            head.extend_from_slice(format!("x-h{i}: {i}\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        let mut buf = BytesMut::from(&head[..]);
        assert_eq!(
            parse_request(&mut buf, &limits()).err(),
            Some(HandshakeError::TooManyHeaders)
        );
        let l = Limits {
            max_header_bytes: 16 * 1024,
            max_headers: 100,
        };
        let req = parse_request(&mut buf, &l).unwrap().unwrap();
        assert_eq!(req.headers().len(), 100);
        assert_eq!(req.headers()["x-h99"], "99");
    }

    #[test]
    fn rfc9112_3_malformed_request_rejected_with_400() {
        for bad in [
            &b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n"[..],
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET  HTTP/1.1\r\n\r\n",
            b"\x00\x01\x02\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n",
        ] {
            let mut buf = BytesMut::from(bad);
            let err = parse_request(&mut buf, &limits()).unwrap_err();
            assert!(matches!(err, HandshakeError::Malformed(_)), "{bad:?}: {err:?}");
            assert_eq!(err.status(), StatusCode::BAD_REQUEST);
            assert_eq!(buf.len(), bad.len());
        }
    }

    #[test]
    fn rfc9112_2_3_http10_version_mapped() {
        let mut buf = BytesMut::from(&b"GET / HTTP/1.0\r\nHost: a\r\n\r\n"[..]);
        let req = parse_request(&mut buf, &limits()).unwrap().unwrap();
        assert_eq!(req.version(), Version::HTTP_10);
    }

    #[test]
    fn rfc9112_5_repeated_headers_kept_in_order() {
        let mut buf =
            BytesMut::from(&b"GET / HTTP/1.1\r\nConnection: keep-alive\r\nconnection: Upgrade\r\n\r\n"[..]);
        let req = parse_request(&mut buf, &limits()).unwrap().unwrap();
        let all: Vec<_> = req.headers().get_all("connection").iter().collect();
        assert_eq!(all, ["keep-alive", "Upgrade"]);
    }

    #[test]
    fn rfc6455_4_2_2_parse_response_and_leftovers() {
        let head = b"HTTP/1.1 101 Switching Protocols\r\n\
            Upgrade: websocket\r\n\
            Connection: Upgrade\r\n\
            Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        let mut buf = BytesMut::new();
        for b in &head[..head.len() - 1] {
            buf.extend_from_slice(&[*b]);
            assert!(matches!(parse_response(&mut buf, &limits()), Ok(None)));
        }
        buf.extend_from_slice(b"\n\x81\x02hi");
        let resp = parse_response(&mut buf, &limits()).unwrap().unwrap();
        assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(resp.version(), Version::HTTP_11);
        assert_eq!(
            resp.headers()["sec-websocket-accept"],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(&buf[..], b"\x81\x02hi");
    }

    #[test]
    fn rfc6585_5_parse_response_limits() {
        let l = Limits {
            max_header_bytes: 20,
            max_headers: 1,
        };
        let mut buf = BytesMut::from(&b"HTTP/1.1 101 Switching Protocols\r\n"[..]);
        assert_eq!(
            parse_response(&mut buf, &l).err(),
            Some(HandshakeError::HeaderTooLarge)
        );
        let l = Limits {
            max_header_bytes: 1024,
            max_headers: 1,
        };
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n"[..]);
        assert_eq!(
            parse_response(&mut buf, &l).err(),
            Some(HandshakeError::TooManyHeaders)
        );
        let mut buf = BytesMut::from(&b"HTTP/1.1 2000 OK\r\n\r\n"[..]);
        assert!(matches!(
            parse_response(&mut buf, &l),
            Err(HandshakeError::Malformed(_))
        ));
    }

    #[test]
    fn rfc6455_4_1_write_request_line_and_headers() {
        let req = Request::get("ws://example.com")
            .header("host", "example.com")
            .header("x-a", "1")
            .header("x-a", "2")
            .body(())
            .unwrap();
        let mut out = Vec::new();
        write_request(&req, &mut out);
        assert_eq!(
            out,
            b"GET / HTTP/1.1\r\nhost: example.com\r\nx-a: 1\r\nx-a: 2\r\n\r\n"
        );
        let req = Request::get("/p?q=1").body(()).unwrap();
        let mut out = Vec::new();
        write_request(&req, &mut out);
        assert_eq!(out, b"GET /p?q=1 HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn rfc9110_8_6_write_response_content_length() {
        let mut h = HeaderMap::new();
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        let mut out = Vec::new();
        write_response(StatusCode::SWITCHING_PROTOCOLS, &h, b"", &mut out);
        assert_eq!(
            out,
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n"
        );

        let mut out = Vec::new();
        write_response(StatusCode::BAD_REQUEST, &HeaderMap::new(), b"", &mut out);
        assert_eq!(out, b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");

        let mut h = HeaderMap::new();
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("2"));
        let mut out = Vec::new();
        write_response(StatusCode::OK, &h, b"ok", &mut out);
        assert_eq!(out, b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");

        let mut out = Vec::new();
        write_response(StatusCode::NO_CONTENT, &HeaderMap::new(), b"", &mut out);
        assert_eq!(out, b"HTTP/1.1 204 No Content\r\n\r\n");

        let mut out = Vec::new();
        write_response(StatusCode::NOT_MODIFIED, &HeaderMap::new(), b"", &mut out);
        assert_eq!(out, b"HTTP/1.1 304 Not Modified\r\n\r\n");

        let mut out = Vec::new();
        write_response(
            StatusCode::from_u16(599).unwrap(),
            &HeaderMap::new(),
            b"",
            &mut out,
        );
        assert_eq!(out, b"HTTP/1.1 599 \r\ncontent-length: 0\r\n\r\n");
    }

    #[test]
    fn rfc9112_round_trip_written_request_parses_back() {
        let req = Request::get("ws://h:9000/a/b?c")
            .header("host", "h:9000")
            .header("cookie", "a=b; c=d")
            .body(())
            .unwrap();
        let mut out = Vec::new();
        write_request(&req, &mut out);
        let mut buf = BytesMut::from(&out[..]);
        let back = parse_request(&mut buf, &limits()).unwrap().unwrap();
        assert_eq!(back.uri(), "/a/b?c");
        assert_eq!(back.headers(), req.headers());
    }

    fn header_value() -> impl Strategy<Value = String> {
        "[!-~]([ -~]{0,30}[!-~])?"
    }

    proptest! {
        #[test]
        fn prop_parse_request_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            max_header_bytes in 0usize..700,
            max_headers in 0usize..80,
        ) {
            let l = Limits { max_header_bytes, max_headers };
            let mut buf = BytesMut::from(&bytes[..]);
            match parse_request(&mut buf, &l) {
                Ok(Some(_)) => prop_assert!(buf.len() < bytes.len()),
                Ok(None) | Err(_) => prop_assert_eq!(&buf[..], &bytes[..]),
            }
            let mut buf = BytesMut::from(&bytes[..]);
            let _ = parse_response(&mut buf, &l);
        }

        #[test]
        fn prop_parse_request_never_panics_near_valid(
            cut in 0usize..REQ.len(),
            noise in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let mut bytes = REQ.get(..cut).unwrap_or_default().to_vec();
            bytes.extend_from_slice(&noise);
            let mut buf = BytesMut::from(&bytes[..]);
            let _ = parse_request(&mut buf, &limits());
        }

        #[test]
        fn prop_split_request_yields_same_request_and_leftovers(
            path in "/[a-zA-Z0-9._~%/-]{0,20}(\\?[a-z0-9=&]{0,10})?",
            headers in proptest::collection::vec(("[a-z][a-z0-9-]{0,10}", header_value()), 0..10),
            leftover in proptest::collection::vec(any::<u8>(), 0..50),
            cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..8),
        ) {
            let mut wire = format!("GET {path} HTTP/1.1\r\n").into_bytes();
            for (n, v) in &headers {
                wire.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
            }
            wire.extend_from_slice(b"\r\n");
            let head_len = wire.len();
            wire.extend_from_slice(&leftover);

            let mut whole = BytesMut::from(&wire[..]);
            let expected = parse_request(&mut whole, &limits()).unwrap().unwrap();
            prop_assert_eq!(&whole[..], &leftover[..]);

            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
            points.push(wire.len());
            points.sort_unstable();
            let mut buf = BytesMut::new();
            let mut got = None;
            let mut fed = 0;
            for p in points {
                buf.extend_from_slice(wire.get(fed..p).unwrap_or_default());
                fed = p;
                if got.is_none() {
                    got = parse_request(&mut buf, &limits()).unwrap();
                    if got.is_none() {
                        prop_assert!(fed < head_len);
                    }
                }
            }
            let got = got.unwrap();
            prop_assert_eq!(got.method(), expected.method());
            prop_assert_eq!(got.uri(), expected.uri());
            prop_assert_eq!(got.version(), expected.version());
            prop_assert_eq!(got.headers(), expected.headers());
            prop_assert_eq!(got.uri().to_string(), path);
            prop_assert_eq!(got.headers().len(), headers.len());
            prop_assert_eq!(&buf[..], &leftover[..]);
        }
    }
}
