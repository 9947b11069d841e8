//! The client side (`Dialer`) against real sockets on 127.0.0.1: ferrosocket's own `Upgrader`,
//! hand-written servers that misbehave, and a small CONNECT proxy. Every wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine as _;
use common::within;
use ferrosocket::proto::HandshakeError;
use ferrosocket::proto::accept_key;
use ferrosocket::{
    CloseCode, CloseFrame, Dialer, Error, Message, NoProxy, ProxyConfig, ProxyError, TimeoutKind, Upgrader,
};
use http::header::{AUTHORIZATION, HeaderValue, ORIGIN, SEC_WEBSOCKET_VERSION};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

fn dialer() -> Dialer {
    Dialer::new()
        .proxy_from_env(false)
        .connect_timeout(Some(Duration::from_secs(2)))
        .handshake_timeout(Some(Duration::from_secs(2)))
}

/// An echo server built on ferrosocket's `Upgrader`.
async fn echo_server(upgrader: Upgrader) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let upgrader = upgrader.clone();
            tokio::spawn(async move {
                let Ok(mut conn) = upgrader.accept(tcp).await else {
                    return;
                };
                while let Ok(msg) = conn.recv().await {
                    if conn.send(msg).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// Reads an HTTP head; returns it as text and the bytes after it.
async fn read_head(tcp: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return (String::from_utf8(buf).unwrap(), rest);
        }
        let mut chunk = [0u8; 1024];
        let n = tcp.read(&mut chunk).await.unwrap();
        assert!(n > 0, "peer closed before the end of the head");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn accept_of(head: &str) -> String {
    accept_key(header(head, "sec-websocket-key").unwrap().as_bytes())
}

/// A server that accepts one connection, reads the request head and hands both to `f`.
async fn raw_server<F, Fut>(f: F) -> SocketAddr
where
    F: FnOnce(TcpStream, String) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let (head, _) = read_head(&mut tcp).await;
        f(tcp, head).await;
    });
    addr
}

fn switching(head: &str, extra: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n{extra}\r\n",
        accept_of(head)
    )
}

#[tokio::test]
async fn echo_round_trip_and_clean_close() {
    let addr = echo_server(Upgrader::new()).await;
    let (mut conn, resp) = within("dialer.connect", dialer().connect(&format!("ws://{addr}/chat")))
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    assert_eq!(conn.role(), ferrosocket::Role::Client);
    assert_eq!(conn.peer_addr().unwrap(), addr);
    assert!(!conn.get_ref().is_tls());
    within("conn.send_text", conn.send_text("hello")).await.unwrap();
    assert_eq!(
        within("conn.recv", conn.recv()).await.unwrap(),
        Message::text("hello")
    );
    let big = vec![7u8; 300_000];
    within("conn.send_binary", conn.send_binary(big.clone()))
        .await
        .unwrap();
    assert_eq!(
        within("conn.recv", conn.recv()).await.unwrap(),
        Message::binary(big)
    );
    let closed = within(
        "conn.close",
        conn.close(Some(CloseFrame::new(CloseCode::NORMAL_CLOSURE, "bye"))),
    )
    .await
    .unwrap();
    assert_eq!(closed.code, CloseCode::NORMAL_CLOSURE);
}

#[tokio::test]
async fn subprotocol_chosen_by_server_preference() {
    let addr = echo_server(Upgrader::new().subprotocols(["b.v2", "a.v1"])).await;
    let (conn, resp) = within(
        "dialer.subprotocols.connect,",
        dialer()
            .subprotocols(["a.v1", "b.v2"])
            .connect(&format!("ws://{addr}/")),
    )
    .await
    .unwrap();
    assert_eq!(conn.subprotocol(), Some("b.v2"));
    assert_eq!(resp.headers()["sec-websocket-protocol"], "b.v2");
}

#[tokio::test]
async fn subprotocol_none_in_common_is_none() {
    let addr = echo_server(Upgrader::new().subprotocols(["x"])).await;
    let (conn, _) = within(
        "dialer.subprotocols.connect",
        dialer().subprotocols(["a"]).connect(&format!("ws://{addr}/")),
    )
    .await
    .unwrap();
    assert_eq!(conn.subprotocol(), None);
}

#[tokio::test]
async fn server_picking_an_unoffered_subprotocol_fails() {
    let addr = raw_server(|mut tcp, head| async move {
        assert_eq!(header(&head, "sec-websocket-protocol"), Some("a, b"));
        let resp = switching(&head, "Sec-WebSocket-Protocol: evil\r\n");
        tcp.write_all(resp.as_bytes()).await.unwrap();
        let _ = tcp.read(&mut [0; 64]).await;
    })
    .await;
    let err = within(
        "dialer.subprotocols.connect,",
        dialer()
            .subprotocols(["a", "b"])
            .connect(&format!("ws://{addr}/")),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::Handshake(HandshakeError::UnexpectedSubprotocol(p)) if p == "evil"),
        "{err:?}"
    );
}

#[tokio::test]
async fn bad_accept_fails() {
    let addr = raw_server(|mut tcp, _| async move {
        let resp = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        tcp.write_all(resp.as_bytes()).await.unwrap();
        let _ = tcp.read(&mut [0; 64]).await;
    })
    .await;
    let err = within("dialer.connect", dialer().connect(&format!("ws://{addr}/")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Handshake(HandshakeError::BadAccept)),
        "{err:?}"
    );
    assert!(err.to_string().contains("Sec-WebSocket-Accept"), "{err}");
}

#[tokio::test]
async fn refusal_carries_status_headers_and_body() {
    let addr = raw_server(|mut tcp, _| async move {
        let body = "forbidden: bad token";
        let resp = format!(
            "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nX-Reason: token\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        tcp.write_all(resp.as_bytes()).await.unwrap();
        // Keep the connection open: the body must be read by its length, not until EOF.
        tokio::time::sleep(Duration::from_secs(3)).await;
    })
    .await;
    let started = tokio::time::Instant::now();
    let err = within("dialer.connect", dialer().connect(&format!("ws://{addr}/")))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    let Error::BadHandshake(resp) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(resp.status, 403);
    assert_eq!(resp.headers["x-reason"], "token");
    assert_eq!(&resp.body[..], b"forbidden: bad token");
    assert_eq!(resp.error, HandshakeError::Status(403));
    let text = err.to_string();
    assert!(text.contains("403") && text.contains("bad token"), "{text}");
}

#[tokio::test]
async fn refusal_body_until_eof_and_chunked() {
    let addr = raw_server(|mut tcp, _| async move {
        tcp.write_all(b"HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\nlog in first")
            .await
            .unwrap();
    })
    .await;
    let err = within("dialer.connect", dialer().connect(&format!("ws://{addr}/")))
        .await
        .unwrap_err();
    let Error::BadHandshake(resp) = err else {
        panic!("{err:?}")
    };
    assert_eq!(
        (resp.status.as_u16(), &resp.body[..]),
        (401, &b"log in first"[..])
    );

    let addr = raw_server(|mut tcp, _| async move {
        tcp.write_all(
            b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nboom\r\n3\r\n!!!\r\n0\r\n\r\n",
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
    })
    .await;
    let err = within("dialer.connect", dialer().connect(&format!("ws://{addr}/")))
        .await
        .unwrap_err();
    let Error::BadHandshake(resp) = err else {
        panic!("{err:?}")
    };
    assert_eq!((resp.status.as_u16(), &resp.body[..]), (500, &b"boom!!!"[..]));
}

#[tokio::test]
async fn refusal_body_is_bounded() {
    let addr = raw_server(|mut tcp, _| async move {
        let body = vec![b'x'; 200_000];
        let head = format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        let _ = tcp.write_all(&body).await;
    })
    .await;
    let err = within("dialer.connect", dialer().connect(&format!("ws://{addr}/")))
        .await
        .unwrap_err();
    let Error::BadHandshake(resp) = err else {
        panic!("{err:?}")
    };
    assert_eq!(resp.body.len(), 64 << 10);
}

#[tokio::test]
async fn server_closing_mid_handshake() {
    let addr = raw_server(|mut tcp, _| async move {
        tcp.write_all(b"HTTP/1.1 101 Swit").await.unwrap();
    })
    .await;
    let err = within("dialer.connect", dialer().connect(&format!("ws://{addr}/")))
        .await
        .unwrap_err();
    assert!(
        ferrosocket::is_close_error(&err, &[CloseCode::ABNORMAL_CLOSURE]),
        "{err:?}"
    );
}

#[tokio::test]
async fn server_sending_garbage() {
    let addr = raw_server(|mut tcp, _| async move {
        tcp.write_all(b"\x00\x01\x02 not http at all\r\n\r\n")
            .await
            .unwrap();
        let _ = tcp.read(&mut [0; 64]).await;
    })
    .await;
    let err = within("dialer.connect", dialer().connect(&format!("ws://{addr}/")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Handshake(HandshakeError::Malformed(_))),
        "{err:?}"
    );
}

/// A server that accepts the connection and never answers: the handshake timeout ends the
/// wait, at exactly its duration (a paused clock over an in-memory pipe).
#[tokio::test(start_paused = true)]
async fn silent_server_hits_the_handshake_timeout() {
    let (client_io, _server_io) = common::duplex_pair(common::DUPLEX_CAPACITY);
    let req = ferrosocket::proto::request_from_url("ws://silent.local/").unwrap();
    let started = tokio::time::Instant::now();
    let err = within(
        "the handshake timeout",
        dialer()
            .handshake_timeout(Some(Duration::from_millis(200)))
            .connect_with_stream(client_io, req),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Timeout(TimeoutKind::Handshake)), "{err:?}");
    common::assert_waited(started.elapsed(), Duration::from_millis(200));
}

#[tokio::test]
async fn full_accept_queue_hits_the_connect_timeout() {
    // A listener with a backlog of 0 that never accepts: once its queue is full, Linux drops
    // further SYNs, so a connect hangs in SYN retries.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_millis(100), TcpStream::connect(addr)).await {
            fillers.push(s);
        }
    }
    let started = tokio::time::Instant::now();
    let err = within(
        "dialer.connect_timeout.connect,",
        dialer()
            .connect_timeout(Some(Duration::from_millis(300)))
            .connect(&format!("ws://{addr}/")),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Timeout(TimeoutKind::Connect)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
    drop(listener);
}

#[tokio::test]
async fn refused_connection_is_an_io_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = within("dialer.connect", dialer().connect(&format!("ws://{addr}/")))
        .await
        .unwrap_err();
    let Error::Io(e) = &err else { panic!("{err:?}") };
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[tokio::test]
async fn bad_urls_are_rejected_before_connecting() {
    for url in ["ftp://example.com/", "ws://example.com/#frag", "not a url"] {
        let err = within("dialer.connect", dialer().connect(url)).await.unwrap_err();
        assert!(
            matches!(err, Error::Handshake(HandshakeError::BadUrl(_))),
            "{url}: {err:?}"
        );
    }
}

#[tokio::test]
async fn leftover_after_101_is_the_first_message() {
    let addr = raw_server(|mut tcp, head| async move {
        let mut out = switching(&head, "").into_bytes();
        out.extend_from_slice(b"\x81\x05hello\x82\x02\x01\x02");
        tcp.write_all(&out).await.unwrap();
        let _ = tcp.read(&mut [0; 64]).await;
    })
    .await;
    let (mut conn, _) = within("dialer.connect", dialer().connect(&format!("ws://{addr}/")))
        .await
        .unwrap();
    assert_eq!(
        within("conn.recv", conn.recv()).await.unwrap(),
        Message::text("hello")
    );
    assert_eq!(
        within("conn.recv", conn.recv()).await.unwrap(),
        Message::binary(vec![1u8, 2])
    );
}

#[tokio::test]
async fn request_headers_and_masked_frames_on_the_wire() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let addr = raw_server(|mut tcp, head| async move {
        tcp.write_all(switching(&head, "").as_bytes()).await.unwrap();
        let mut frames = Vec::new();
        // Two 3-byte text frames: 2 header bytes + 4 key bytes + 3 payload bytes each.
        while frames.len() < 18 {
            let mut chunk = [0u8; 64];
            let n = tcp.read(&mut chunk).await.unwrap();
            assert!(n > 0);
            frames.extend_from_slice(&chunk[..n]);
        }
        tx.send((head, frames)).unwrap();
    })
    .await;
    let (mut conn, _) = within(
        "dialer.header.header.header.connect,",
        dialer()
            .header(ORIGIN, HeaderValue::from_static("https://app.example"))
            .header(AUTHORIZATION, HeaderValue::from_static("Bearer t0k"))
            .header(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"))
            .connect(&format!("ws://{addr}/path?q=1")),
    )
    .await
    .unwrap();
    within("conn.send_text", conn.send_text("abc")).await.unwrap();
    within("conn.send_text", conn.send_text("abc")).await.unwrap();
    let (head, wire) = within("rx", rx).await.unwrap();

    assert!(head.starts_with("GET /path?q=1 HTTP/1.1\r\n"), "{head}");
    assert_eq!(header(&head, "host"), Some(addr.to_string().as_str()));
    assert_eq!(header(&head, "origin"), Some("https://app.example"));
    assert_eq!(header(&head, "authorization"), Some("Bearer t0k"));
    assert_eq!(header(&head, "sec-websocket-version"), Some("13"));
    assert_eq!(header(&head, "upgrade"), Some("websocket"));
    assert_eq!(header(&head, "sec-websocket-extensions"), None);
    let key = base64::engine::general_purpose::STANDARD
        .decode(header(&head, "sec-websocket-key").unwrap())
        .unwrap();
    assert_eq!(key.len(), 16);

    let mut keys = Vec::new();
    for frame in wire.chunks(9) {
        assert_eq!(frame[0], 0x81, "fin + text");
        assert_eq!(frame[1], 0x80 | 3, "mask bit set, length 3");
        let mask = &frame[2..6];
        let payload: Vec<u8> = frame[6..9]
            .iter()
            .zip(mask.iter().cycle())
            .map(|(b, m)| b ^ m)
            .collect();
        assert_eq!(payload, b"abc");
        keys.push(mask.to_vec());
    }
    assert_ne!(keys[0], keys[1], "each frame gets a fresh key");
}

#[tokio::test]
async fn connect_with_stream_over_a_pipe() {
    let (client_io, server_io) = tokio::io::duplex(64 << 10);
    let server = tokio::spawn(async move {
        let mut conn = Upgrader::new()
            .subprotocols(["p"])
            .accept(server_io)
            .await
            .unwrap();
        let msg = conn.recv().await.unwrap();
        conn.send(msg).await.unwrap();
        let _ = conn.recv().await;
    });
    let req = ferrosocket::proto::request_from_url("ws://pipe.local/x").unwrap();
    let (mut conn, _) = within(
        "dialer.subprotocols.connect_with_stream",
        dialer().subprotocols(["p"]).connect_with_stream(client_io, req),
    )
    .await
    .unwrap();
    assert_eq!(conn.subprotocol(), Some("p"));
    within("conn.send_text", conn.send_text("over a pipe"))
        .await
        .unwrap();
    assert_eq!(
        within("conn.recv", conn.recv()).await.unwrap(),
        Message::text("over a pipe")
    );
    let closed = within("conn.close", conn.close(None)).await.unwrap();
    assert_eq!(closed.code, CloseCode::NO_STATUS_RECEIVED);
    within("server", server).await.unwrap();
}

// ---- proxy ---------------------------------------------------------------------------------

/// A CONNECT proxy that requires `user:pass` and only dials 127.0.0.1.
async fn proxy_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (head, rest) = read_head(&mut client).await;
                assert!(rest.is_empty());
                let first = head.lines().next().unwrap().to_owned();
                let mut parts = first.split(' ');
                assert_eq!(parts.next(), Some("CONNECT"));
                let target = parts.next().unwrap().to_owned();
                assert_eq!(header(&head, "host"), Some(target.as_str()));
                let expected = format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode("user:pa:ss")
                );
                if header(&head, "proxy-authorization") != Some(expected.as_str()) {
                    let _ = client
                        .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"t\"\r\nContent-Length: 0\r\n\r\n")
                        .await;
                    return;
                }
                let port: u16 = target.strip_prefix("127.0.0.1:").unwrap().parse().unwrap();
                let mut upstream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn proxy_connect_tunnel_with_basic_auth() {
    let target = echo_server(Upgrader::new()).await;
    let proxy = proxy_server().await;
    let dialer = dialer()
        .proxy_url(&format!("http://user:pa%3Ass@{proxy}"))
        .unwrap();
    let (mut conn, _) = within("dialer.connect", dialer.connect(&format!("ws://{target}/")))
        .await
        .unwrap();
    assert_eq!(conn.peer_addr().unwrap(), proxy);
    within("conn.send_text", conn.send_text("through the proxy"))
        .await
        .unwrap();
    assert_eq!(
        within("conn.recv", conn.recv()).await.unwrap(),
        Message::text("through the proxy")
    );
}

#[tokio::test]
async fn proxy_refusal_carries_the_status() {
    let target = echo_server(Upgrader::new()).await;
    let proxy = proxy_server().await;
    let dialer = dialer().proxy(ProxyConfig::new("127.0.0.1", proxy.port()).basic_auth("user", "wrong"));
    let err = within("dialer.connect", dialer.connect(&format!("ws://{target}/")))
        .await
        .unwrap_err();
    match &err {
        Error::Proxy(ProxyError::Refused {
            status,
            headers,
            target: t,
        }) => {
            assert_eq!(*status, 407);
            assert!(headers.contains_key("proxy-authenticate"));
            assert_eq!(t, &target.to_string());
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("407"), "{err}");
}

#[test]
fn no_proxy_matching() {
    let list = NoProxy::parse(
        " Example.COM , .corp.test, *.wild.test, 10.0.0.0/8, 192.168.1.1, [::1]:8080, api.test:8443, fd00::/8, bad:port:x ",
    );
    // Domains: bare matches itself and subdomains; leading dot or `*.` only subdomains.
    assert!(list.matches("example.com", 80));
    assert!(list.matches("WWW.example.com", 443));
    assert!(!list.matches("notexample.com", 80));
    assert!(list.matches("a.corp.test", 80));
    assert!(!list.matches("corp.test", 80));
    assert!(list.matches("x.wild.test", 80));
    assert!(!list.matches("wild.test", 80));
    // IPs and CIDR blocks, no name resolution.
    assert!(list.matches("10.200.0.1", 443));
    assert!(!list.matches("11.0.0.1", 443));
    assert!(list.matches("192.168.1.1", 1));
    assert!(!list.matches("192.168.1.2", 1));
    assert!(list.matches("fd12::1", 80));
    assert!(list.matches("[fd12::1]", 80));
    // Ports.
    assert!(list.matches("::1", 8080));
    assert!(!list.matches("::1", 80));
    assert!(list.matches("api.test", 8443));
    assert!(!list.matches("api.test", 443));
    // Everything, nothing.
    assert!(NoProxy::parse("foo, *").matches("anything.at.all", 1));
    assert!(!NoProxy::parse("").matches("example.com", 80));
    assert!(!NoProxy::parse(" , ,").matches("example.com", 80));
}
