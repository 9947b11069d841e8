//! WebSockets over HTTP/3 (RFC 9220): our server (`Upgrader::accept_http3`) and our client
//! (`Dialer::connect_http3`, `Http3Session`) over real UDP on 127.0.0.1, with a self-signed
//! certificate made here.
#![cfg(feature = "http3")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use ferrosocket::http3::quinn;
use ferrosocket::http3::{H3Stream, Http3Error};
use ferrosocket::proto::DeflateConfig;
use ferrosocket::tls::rustls::RootCertStore;
use ferrosocket::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use ferrosocket::tls::{client_config_with_roots, server_config};
use ferrosocket::{CloseCode, CloseFrame, Conn, Dialer, Error, Message, MessageKind, Upgrader};
use tokio::time::timeout;

const T: Duration = Duration::from_secs(20);

struct Cert {
    der: CertificateDer<'static>,
    key: Vec<u8>,
}

fn cert() -> Cert {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    Cert {
        der: ck.cert.der().clone(),
        key: ck.signing_key.serialize_der(),
    }
}

fn dialer(cert: &Cert) -> Dialer {
    let mut roots = RootCertStore::empty();
    roots.add(cert.der.clone()).unwrap();
    Dialer::new()
        .handshake_timeout(Some(Duration::from_secs(5)))
        .connect_timeout(Some(Duration::from_secs(5)))
        .max_message_size(Some(32 << 20))
        .tls_config(client_config_with_roots(roots).unwrap())
}

struct Server {
    addr: SocketAddr,
    quic_connections: Arc<AtomicUsize>,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }
}

/// A QUIC server endpoint on a free port of 127.0.0.1 with `cert`.
fn endpoint(cert: &Cert) -> quinn::Endpoint {
    let tls = server_config(
        vec![cert.der.clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key.clone())),
    )
    .unwrap();
    let config = ferrosocket::http3::server_config(&tls).unwrap();
    quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap()
}

/// A QUIC endpoint on 127.0.0.1 running `upgrader` on every connection and `handle` on every
/// WebSocket.
async fn serve<F, Fut>(cert: &Cert, upgrader: Upgrader, handle: F) -> Server
where
    F: Fn(Conn<H3Stream>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let endpoint = endpoint(cert);
    let addr = endpoint.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let quic_connections = count.clone();
    tokio::spawn(async move {
        while let Some(incoming) = endpoint.accept().await {
            let (upgrader, handle, count) = (upgrader.clone(), handle.clone(), count.clone());
            tokio::spawn(async move {
                let Ok(quic) = incoming.await else { return };
                count.fetch_add(1, Ordering::SeqCst);
                let mut h3 = upgrader.accept_http3(quic).await.unwrap();
                while let Some(conn) = h3.accept().await {
                    tokio::spawn(handle.clone()(conn));
                }
            });
        }
    });
    Server {
        addr,
        quic_connections,
    }
}

async fn echo(mut conn: Conn<H3Stream>) {
    while let Ok(msg) = conn.recv().await {
        if conn.send(msg).await.is_err() {
            break;
        }
    }
}

fn pattern(len: usize) -> Bytes {
    (0..len).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>().into()
}

fn big_upgrader() -> Upgrader {
    Upgrader::new().max_message_size(Some(32 << 20))
}

#[tokio::test]
async fn echo_of_every_size_boundary() {
    let cert = cert();
    let server = serve(&cert, big_upgrader(), echo).await;
    let (mut conn, resp) = timeout(T, dialer(&cert).connect_http3(server.url("/echo")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_3);
    assert!(conn.get_ref().is_tls());
    assert!(conn.get_ref().tcp().is_none());
    assert_eq!(conn.peer_addr().unwrap(), server.addr);
    for len in [0, 125, 126, 65_535, 65_536, 1 << 20, 16 << 20] {
        let data = pattern(len);
        timeout(T, conn.send(Message::Binary(data.clone())))
            .await
            .unwrap()
            .unwrap();
        let back = timeout(T, conn.recv()).await.unwrap().unwrap();
        assert_eq!(back, Message::Binary(data), "binary echo of {len} bytes");
    }
    timeout(T, conn.send(Message::text("hello over h3")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        timeout(T, conn.recv()).await.unwrap().unwrap(),
        Message::text("hello over h3")
    );
    let end = timeout(
        T,
        conn.close(Some(CloseFrame::new(CloseCode::NORMAL_CLOSURE, ""))),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(end.code, CloseCode::NORMAL_CLOSURE);
}

#[tokio::test]
async fn fragments_and_ping_pong() {
    let cert = cert();
    let server = serve(&cert, Upgrader::new(), echo).await;
    let (mut conn, _) = timeout(T, dialer(&cert).connect_http3(server.url("/")))
        .await
        .unwrap()
        .unwrap();
    conn.send_fragment(MessageKind::Text, "frag", false)
        .await
        .unwrap();
    conn.send_fragment(MessageKind::Text, "ment", false)
        .await
        .unwrap();
    conn.send_fragment(MessageKind::Text, "ed", true).await.unwrap();
    assert_eq!(
        timeout(T, conn.recv()).await.unwrap().unwrap(),
        Message::text("fragmented")
    );

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    conn.set_pong_handler(move |p| {
        let _ = tx.send(p.to_vec());
    });
    conn.ping(b"are you there").await.unwrap();
    // The pong is handled while reading: send a message and read its echo.
    conn.send(Message::text("after ping")).await.unwrap();
    assert_eq!(
        timeout(T, conn.recv()).await.unwrap().unwrap(),
        Message::text("after ping")
    );
    assert_eq!(rx.try_recv().unwrap(), b"are you there");
}

#[tokio::test]
async fn close_codes_both_ways() {
    let cert = cert();
    // Client closes with 1000; the server sees it.
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let server = serve(&cert, Upgrader::new(), move |mut conn: Conn<H3Stream>| {
        let seen = seen_tx.clone();
        async move {
            match conn.recv().await {
                Ok(Message::Text(t)) if t.as_str() == "close me" => {
                    let _ = conn
                        .close(Some(CloseFrame::new(4000u16, "server says bye")))
                        .await;
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = seen.send(e);
                }
            }
        }
    })
    .await;
    let d = dialer(&cert);
    let (mut conn, _) = timeout(T, d.connect_http3(server.url("/")))
        .await
        .unwrap()
        .unwrap();
    let end = timeout(
        T,
        conn.close(Some(CloseFrame::new(CloseCode::NORMAL_CLOSURE, "done"))),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(end.code, CloseCode::NORMAL_CLOSURE);
    match timeout(T, seen_rx.recv()).await.unwrap().unwrap() {
        Error::Closed(c) => assert_eq!((c.code, c.reason.as_str()), (CloseCode::NORMAL_CLOSURE, "done")),
        other => panic!("server saw {other:?}"),
    }

    // Server closes with 4000 and a reason; the client sees both.
    let (mut conn, _) = timeout(T, d.connect_http3(server.url("/")))
        .await
        .unwrap()
        .unwrap();
    conn.send(Message::text("close me")).await.unwrap();
    match timeout(T, conn.recv()).await.unwrap() {
        Err(Error::Closed(c)) => {
            assert_eq!(c.code, CloseCode::from(4000u16));
            assert_eq!(c.reason, "server says bye");
        }
        other => panic!("client saw {other:?}"),
    }
}

#[tokio::test]
async fn read_limit_closes_with_1009() {
    let cert = cert();
    let server = serve(&cert, Upgrader::new().max_message_size(Some(1000)), echo).await;
    let (mut conn, _) = timeout(T, dialer(&cert).connect_http3(server.url("/")))
        .await
        .unwrap()
        .unwrap();
    conn.send(Message::Binary(pattern(999))).await.unwrap();
    assert_eq!(
        timeout(T, conn.recv()).await.unwrap().unwrap(),
        Message::Binary(pattern(999))
    );
    conn.send(Message::Binary(pattern(2000))).await.unwrap();
    match timeout(T, conn.recv()).await.unwrap() {
        Err(Error::Closed(c)) => assert_eq!(c.code, CloseCode::from(1009u16)),
        other => panic!("expected 1009, got {other:?}"),
    }
}

#[tokio::test]
async fn compression_is_negotiated_and_works_both_ways() {
    let cert = cert();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let server = serve(
        &cert,
        Upgrader::new().deflate(Some(DeflateConfig::default())),
        move |conn: Conn<H3Stream>| {
            let _ = tx.send(conn.core().deflate_enabled());
            echo(conn)
        },
    )
    .await;
    let d = dialer(&cert).deflate(Some(DeflateConfig::default()));
    let (mut conn, resp) = timeout(T, d.connect_http3(server.url("/")))
        .await
        .unwrap()
        .unwrap();
    let ext = resp.headers()["sec-websocket-extensions"].to_str().unwrap();
    assert!(ext.starts_with("permessage-deflate"), "{ext}");
    assert!(conn.core().deflate_enabled());
    assert!(
        timeout(T, rx.recv()).await.unwrap().unwrap(),
        "server compresses too"
    );
    let text = "compress me ".repeat(10_000);
    conn.send(Message::text(text.clone())).await.unwrap();
    assert_eq!(
        timeout(T, conn.recv()).await.unwrap().unwrap(),
        Message::text(text)
    );
}

#[tokio::test]
async fn subprotocol_is_chosen() {
    let cert = cert();
    let server = serve(&cert, Upgrader::new().subprotocols(["chat", "other"]), echo).await;
    let d = dialer(&cert).subprotocols(["v9", "chat"]);
    let (conn, resp) = timeout(T, d.connect_http3(server.url("/")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(conn.subprotocol(), Some("chat"));
    assert_eq!(resp.headers()["sec-websocket-protocol"], "chat");
}

#[tokio::test]
async fn foreign_origin_is_refused_with_403() {
    let cert = cert();
    let server = serve(&cert, Upgrader::new(), echo).await;
    let d = dialer(&cert).header(
        http::header::ORIGIN,
        http::HeaderValue::from_static("https://evil.example"),
    );
    match timeout(T, d.connect_http3(server.url("/"))).await.unwrap() {
        Err(Error::BadHandshake(r)) => assert_eq!(r.status, http::StatusCode::FORBIDDEN),
        other => panic!("expected a 403, got {:?}", other.map(|(_, r)| r)),
    }
    // The same origin as the authority is accepted.
    let d = dialer(&cert).header(
        http::header::ORIGIN,
        http::HeaderValue::try_from(format!("https://127.0.0.1:{}", server.addr.port())).unwrap(),
    );
    timeout(T, d.connect_http3(server.url("/")))
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn ten_websockets_share_one_quic_connection() {
    let cert = cert();
    let server = serve(&cert, Upgrader::new(), echo).await;
    let session = timeout(T, dialer(&cert).http3_session(&server.url("/")))
        .await
        .unwrap()
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..10 {
        let session = session.clone();
        let url = server.url(&format!("/ws/{i}"));
        tasks.push(tokio::spawn(async move {
            let (mut conn, _) = session.connect(url).await.unwrap();
            for round in 0..20 {
                let msg = Message::text(format!("socket {i} round {round}"));
                conn.send(msg.clone()).await.unwrap();
                assert_eq!(conn.recv().await.unwrap(), msg);
            }
            conn.close(None).await.unwrap();
        }));
    }
    for t in tasks {
        timeout(T, t).await.unwrap().unwrap();
    }
    assert_eq!(server.quic_connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_stalled_socket_does_not_block_its_siblings() {
    let cert = cert();
    let (flooded_tx, mut flooded_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let server = serve(&cert, Upgrader::new(), move |mut conn: Conn<H3Stream>| {
        let flooded = flooded_tx.clone();
        async move {
            let Ok(first) = conn.recv().await else { return };
            if first != Message::text("flood me") {
                let _ = conn.send(first).await;
                return echo(conn).await;
            }
            // 4 MiB towards a reader that never reads: this task blocks on flow control.
            let mut sent = 0;
            while sent < 4 << 20 {
                if conn.send(Message::Binary(pattern(64 << 10))).await.is_err() {
                    return;
                }
                sent += 64 << 10;
                let _ = flooded.send(sent);
            }
        }
    })
    .await;
    let session = timeout(T, dialer(&cert).http3_session(&server.url("/")))
        .await
        .unwrap()
        .unwrap();
    let (mut stalled, _) = timeout(T, session.connect(server.url("/stalled")))
        .await
        .unwrap()
        .unwrap();
    stalled.send(Message::text("flood me")).await.unwrap();
    // Wait until the server has pushed some of it (and is then stuck on flow control).
    timeout(T, flooded_rx.recv()).await.unwrap().unwrap();
    let (mut live, _) = timeout(T, session.connect(server.url("/live")))
        .await
        .unwrap()
        .unwrap();
    for round in 0..50 {
        let msg = Message::Binary(pattern(10_000 + round));
        timeout(T, live.send(msg.clone())).await.unwrap().unwrap();
        assert_eq!(timeout(T, live.recv()).await.unwrap().unwrap(), msg);
    }
    let mut max_sent = 0;
    while let Ok(n) = flooded_rx.try_recv() {
        max_sent = n;
    }
    assert!(max_sent < 4 << 20, "the stalled stream was not stalled");
    drop(stalled);
}

#[tokio::test]
async fn a_reset_stream_is_1006_on_the_other_side() {
    let cert = cert();
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let server = serve(&cert, Upgrader::new(), move |mut conn: Conn<H3Stream>| {
        let seen = seen_tx.clone();
        async move {
            loop {
                match conn.recv().await {
                    Ok(Message::Text(t)) if t.as_str() == "reset" => conn.get_mut().reset(),
                    Ok(m) => {
                        let _ = conn.send(m).await;
                    }
                    Err(e) => {
                        let _ = seen.send(e);
                        return;
                    }
                }
            }
        }
    })
    .await;
    let d = dialer(&cert);

    // The client resets: the server's Conn reports 1006.
    let (mut conn, _) = timeout(T, d.connect_http3(server.url("/")))
        .await
        .unwrap()
        .unwrap();
    conn.send(Message::text("hi")).await.unwrap();
    assert_eq!(
        timeout(T, conn.recv()).await.unwrap().unwrap(),
        Message::text("hi")
    );
    match conn.get_mut() {
        ferrosocket::MaybeTlsStream::Http3(s) => s.reset(),
        other => panic!("not an http/3 stream: {other:?}"),
    }
    match timeout(T, seen_rx.recv()).await.unwrap().unwrap() {
        Error::Closed(c) => assert_eq!(c.code, CloseCode::ABNORMAL_CLOSURE),
        other => panic!("server saw {other:?}"),
    }

    // The server resets: the client's Conn reports 1006.
    let (mut conn, _) = timeout(T, d.connect_http3(server.url("/")))
        .await
        .unwrap()
        .unwrap();
    conn.send(Message::text("reset")).await.unwrap();
    match timeout(T, conn.recv()).await.unwrap() {
        Err(Error::Closed(c)) => assert_eq!(c.code, CloseCode::ABNORMAL_CLOSURE),
        other => panic!("client saw {other:?}"),
    }
}

#[tokio::test]
async fn a_server_without_extended_connect_is_a_typed_error() {
    let cert = cert();
    let endpoint = endpoint(&cert);
    let port = endpoint.local_addr().unwrap().port();
    tokio::spawn(async move {
        let quic = endpoint.accept().await.unwrap().await.unwrap();
        let mut control = quic.open_uni().await.unwrap();
        // Control stream, SETTINGS with QPACK_MAX_TABLE_CAPACITY = 0 only.
        control.write_all(&[0x00, 0x04, 0x02, 0x01, 0x00]).await.unwrap();
        quic.closed().await;
    });
    let url = format!("https://127.0.0.1:{port}/");
    match timeout(T, dialer(&cert).connect_http3(url)).await.unwrap() {
        Err(Error::Http3(Http3Error::NoExtendedConnect)) => {}
        other => panic!("expected NoExtendedConnect, got {:?}", other.map(|(_, r)| r)),
    }
}

/// A plain GET over HTTP/3 (not an extended CONNECT) gets `decide`'s refusal status, sent by
/// a raw QUIC client whose request is QPACK-encoded by hand here.
#[tokio::test]
async fn a_plain_get_gets_the_refusal_status() {
    let cert = cert();
    let server = serve(&cert, Upgrader::new(), echo).await;
    let authority = format!("127.0.0.1:{}", server.addr.port());
    let (parts, ()) = http::Request::get(format!("https://{authority}/"))
        .version(http::Version::HTTP_3)
        .body(())
        .unwrap()
        .into_parts();
    let expected = Upgrader::new().decide(&parts, None).unwrap_err().status();
    assert!(expected.is_client_error(), "{expected}");

    let (_endpoint, quic, _control) = raw_client(&cert, server.addr).await;
    let (mut send, mut recv) = quic.open_bi().await.unwrap();
    // Required Insert Count 0, Base 0; :method GET (static 17), :scheme https (23), :path /
    // (1), then :authority by static name reference (0) with a literal value.
    let mut block = vec![
        0x00,
        0x00,
        0xc0 | 17,
        0xc0 | 23,
        0xc0 | 1,
        0x50,
        authority.len() as u8,
    ];
    block.extend_from_slice(authority.as_bytes());
    let mut frame = vec![0x01, block.len() as u8];
    frame.extend_from_slice(&block);
    send.write_all(&frame).await.unwrap();
    send.finish().unwrap();
    let answer = timeout(T, recv.read_to_end(1 << 16)).await.unwrap().unwrap();
    // A HEADERS frame first, carrying the status digits (a literal: not in the static table,
    // or an indexed line for the statuses it has).
    assert_eq!(answer[0], 0x01, "{answer:?}");
    let status = expected.as_str().as_bytes();
    // Indexed static lines (RFC 9204 §4.5.2, 6-bit prefix): 404 is 27; 400, 403 and 421
    // are 67, 68 and 69 (0xff then the rest past 63).
    let indexed: Option<Vec<u8>> = match status {
        b"404" => Some(vec![0xc0 | 27]),
        b"400" => Some(vec![0xff, 67 - 63]),
        b"403" => Some(vec![0xff, 68 - 63]),
        b"421" => Some(vec![0xff, 69 - 63]),
        _ => None,
    };
    let carried = answer.windows(3).any(|w| w == status)
        || indexed.is_some_and(|pat| answer.windows(pat.len()).any(|w| w == pat));
    assert!(carried, "status {expected} not in {answer:?}");
}

/// A bare QUIC client with ALPN h3 and its control stream (empty SETTINGS) open.
async fn raw_client(
    cert: &Cert,
    addr: SocketAddr,
) -> (quinn::Endpoint, quinn::Connection, quinn::SendStream) {
    let mut roots = RootCertStore::empty();
    roots.add(cert.der.clone()).unwrap();
    let mut tls = (*client_config_with_roots(roots).unwrap()).clone();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let quic_tls = quinn::crypto::rustls::QuicClientConfig::try_from(Arc::new(tls)).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic_tls)));
    let quic = timeout(T, endpoint.connect(addr, "127.0.0.1").unwrap())
        .await
        .unwrap()
        .unwrap();
    let mut control = quic.open_uni().await.unwrap();
    control.write_all(&[0x00, 0x04, 0x00]).await.unwrap();
    (endpoint, quic, control)
}

/// We advertise a QPACK table capacity of 0: a field section that needs the dynamic table
/// (Required Insert Count 1) closes the connection with QPACK_DECOMPRESSION_FAILED (0x200).
#[tokio::test]
async fn a_dynamic_table_reference_closes_with_qpack_decompression_failed() {
    let cert = cert();
    let server = serve(&cert, Upgrader::new(), echo).await;
    let (_endpoint, quic, _control) = raw_client(&cert, server.addr).await;
    let (mut send, _recv) = quic.open_bi().await.unwrap();
    send.write_all(&[0x01, 0x03, 0x02, 0x00, 0x80]).await.unwrap();
    match timeout(T, quic.closed()).await.unwrap() {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.error_code, quinn::VarInt::from_u32(0x200), "{close:?}");
        }
        other => panic!("expected QPACK_DECOMPRESSION_FAILED, got {other:?}"),
    }
}

#[tokio::test]
async fn plain_ws_urls_are_refused_for_http3() {
    let cert = cert();
    match dialer(&cert).connect_http3("ws://127.0.0.1:9/").await {
        Err(Error::Handshake(ferrosocket::proto::HandshakeError::BadUrl(msg))) => {
            assert!(msg.contains("HTTP/3 always is"), "{msg}");
        }
        other => panic!("expected BadUrl, got {:?}", other.map(|(_, r)| r)),
    }
}

/// The split halves over an HTTP/3 stream (`split_echo_round_trip`), with keepalive on at
/// both ends; the reader sees the close handshake end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_halves_write_and_read_at_once_over_http3() {
    let cert = cert();
    // Keepalive at both ends (20 ms): its timers run beside both halves the whole time.
    let every = Duration::from_millis(20);
    let server = serve(&cert, big_upgrader().keepalive(every, T), echo).await;
    let (conn, _) = timeout(
        T,
        dialer(&cert)
            .keepalive(every, T)
            .connect_http3(server.url("/echo")),
    )
    .await
    .unwrap()
    .unwrap();
    let mut reader = common::split_echo_round_trip(conn, 300, "split").await;
    let end = timeout(T, reader.recv()).await.unwrap().unwrap_err();
    let Error::Closed(c) = end else { panic!("{end:?}") };
    // The server's answer: our code back, without a reason.
    assert_eq!((c.code, c.reason.as_str()), (CloseCode::NORMAL_CLOSURE, ""));
    assert_eq!(server.quic_connections.load(Ordering::SeqCst), 1);
}

/// Polls `cond` every 5 ms until it holds (at most `T`).
async fn until(what: &str, cond: impl Fn() -> bool) {
    timeout(T, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

/// A session to `server` with one WebSocket on it that has echoed a message.
async fn session_with_one_echo(
    cert: &Cert,
    server: &Server,
) -> (ferrosocket::Http3Session, Conn<ferrosocket::MaybeTlsStream>) {
    let session = timeout(T, dialer(cert).http3_session(&server.url("/")))
        .await
        .unwrap()
        .unwrap();
    let (mut open, _) = timeout(T, session.connect(server.url("/a")))
        .await
        .unwrap()
        .unwrap();
    open.send(Message::text("before")).await.unwrap();
    assert_eq!(
        timeout(T, open.recv()).await.unwrap().unwrap(),
        Message::text("before")
    );
    (session, open)
}

/// Once the server's GOAWAY arrived, the session refuses a new WebSocket with `GoingAway`.
async fn refused_after_goaway(session: &ferrosocket::Http3Session, server: &Server) {
    until("the GOAWAY", || session.is_going_away()).await;
    match timeout(T, session.connect(server.url("/b"))).await.unwrap() {
        Err(Error::Http3(Http3Error::GoingAway)) => {}
        other => panic!("expected GoingAway, got {:?}", other.map(|(_, r)| r)),
    }
}

/// `Http3Server::shutdown` sends GOAWAY (RFC 9114 §5.2): the WebSocket already open goes on
/// and closes normally; the client's session sees the GOAWAY and refuses new WebSockets with
/// `GoingAway` without sending anything; a request stream sent anyway is refused with
/// H3_REQUEST_REJECTED (0x10b); the server's `accept` ends.
#[tokio::test]
async fn shutdown_sends_goaway_and_refuses_new_streams_only() {
    let cert = cert();
    let endpoint = endpoint(&cert);
    let server = Server {
        addr: endpoint.local_addr().unwrap(),
        quic_connections: Arc::default(),
    };
    let (go, gone) = tokio::sync::oneshot::channel::<()>();
    let accepting = tokio::spawn(async move {
        let quic = endpoint.accept().await.unwrap().await.unwrap();
        let mut h3 = Upgrader::new().accept_http3(quic).await.unwrap();
        tokio::spawn(echo(h3.accept().await.unwrap()));
        gone.await.unwrap();
        h3.shutdown().await.unwrap();
        h3.shutdown().await.unwrap(); // a second call sends nothing
        let after = timeout(T, h3.accept()).await.unwrap().is_none();
        (after, h3, endpoint)
    });

    let (session, mut open) = session_with_one_echo(&cert, &server).await;
    assert!(!session.is_going_away());

    go.send(()).unwrap();
    refused_after_goaway(&session, &server).await;
    // A request stream past the GOAWAY's id, sent anyway: reset with H3_REQUEST_REJECTED.
    let (mut send, mut recv) = session.connection().open_bi().await.unwrap();
    send.write_all(&[0x01, 0x00]).await.unwrap();
    let mut buf = [0u8; 16];
    match timeout(T, recv.read(&mut buf)).await.unwrap() {
        Err(quinn::ReadError::Reset(code)) => assert_eq!(code, quinn::VarInt::from_u32(0x10b)),
        other => panic!("expected a reset with H3_REQUEST_REJECTED, got {other:?}"),
    }

    open.send(Message::text("after")).await.unwrap();
    assert_eq!(
        timeout(T, open.recv()).await.unwrap().unwrap(),
        Message::text("after")
    );
    let (accept_ended, _h3, _endpoint) = timeout(T, accepting).await.unwrap().unwrap();
    assert!(accept_ended, "accept ends after the GOAWAY");
    let done = CloseFrame::new(CloseCode::NORMAL_CLOSURE, "done");
    let closed = timeout(T, open.close(Some(done))).await.unwrap().unwrap();
    assert_eq!(closed.code, CloseCode::NORMAL_CLOSURE);
}

/// The upgrader's shutdown switch does it all: triggered, every HTTP/3 connection sends
/// GOAWAY and its WebSockets close with 1001.
#[tokio::test]
async fn the_shutdown_switch_sends_goaway_and_1001() {
    let cert = cert();
    let switch = ferrosocket::Shutdown::new();
    let server = serve(&cert, Upgrader::new().shutdown(&switch), echo).await;
    let (session, mut open) = session_with_one_echo(&cert, &server).await;
    switch.trigger();
    let end = timeout(T, open.recv()).await.unwrap().unwrap_err();
    let Error::Closed(c) = end else { panic!("{end:?}") };
    assert_eq!(c.code, CloseCode::GOING_AWAY);
    refused_after_goaway(&session, &server).await;
}

/// The dialer's cookie jar over HTTP/3: each `200`'s `Set-Cookie` goes to the jar, and the
/// next extended CONNECT carries it.
#[tokio::test]
async fn the_cookie_jar_works_over_http3() {
    let cert = cert();
    let server = serve(&cert, common::counting_cookies(Upgrader::new()), echo).await;
    let d = dialer(&cert).cookie_jar(Arc::new(common::LastCookie::default()));
    let session = timeout(T, d.http3_session(&server.url("/")))
        .await
        .unwrap()
        .unwrap();
    for want in ["n=1; Path=/", "n=2; Path=/"] {
        let (_conn, resp) = timeout(T, session.connect(server.url("/a")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resp.headers()["set-cookie"], want);
    }
}
