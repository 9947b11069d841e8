//! The client side of RFC 8441 (feature `http2`): ferrosocket's `Dialer` over HTTP/2 against
//! hyper's HTTP/2 server (extended CONNECT enabled) whose service calls
//! `Upgrader::upgrade_hyper`, over 127.0.0.1: h2c with prior knowledge and TLS with ALPN `h2`
//! (a self-signed certificate made at run time). The HTTP/1.1 behaviour tests run again over
//! HTTP/2 (echo sizes, fragments, ping, close codes, limits, compression, subprotocols,
//! origin); then sharing (ten sockets, one TCP connection), isolation (a stalled socket
//! beside live ones), resets (1006 both ways) and `HttpVersion::Auto`'s fallbacks.

#![cfg(all(feature = "http2", feature = "rustls"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::{WAIT, within};
use ferrosocket::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use ferrosocket::tls::rustls::{RootCertStore, ServerConfig};
use ferrosocket::tls::{TlsAcceptor, client_config_with_roots, server_config};
use ferrosocket::{
    CloseCode, CloseFrame, Conn, Dialer, Error, Http2Error, HttpVersion, MaybeTlsStream, Message,
    MessageKind, Upgrader,
};
use http::{HeaderValue, StatusCode};
use http_body_util::{Either, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

type Body = Either<Empty<Bytes>, Full<Bytes>>;

/// How a WebSocket ended on the server, with what the server saw of it.
#[derive(Debug)]
struct End {
    path: String,
    http2: bool,
    deflate: bool,
    error: Error,
}

/// How the test server speaks.
#[derive(Clone)]
enum Mode {
    /// HTTP/2 with prior knowledge, no TLS, at most `max_streams` concurrent streams.
    H2c { max_streams: Option<u32> },
    /// TLS; ALPN `h2` gets HTTP/2 (extended CONNECT enabled when `extended`), anything else
    /// HTTP/1.1 through `Upgrader::accept`.
    Tls {
        config: Arc<ServerConfig>,
        extended: bool,
    },
}

struct Server {
    addr: SocketAddr,
    tcp_connections: Arc<AtomicUsize>,
    ends: mpsc::UnboundedReceiver<End>,
    /// The task of each accepted TCP connection (aborting it drops the connection).
    connections: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Server {
    async fn end(&mut self) -> End {
        within("a socket's end on the server", self.ends.recv())
            .await
            .expect("the server is running")
    }

    /// Drops every TCP connection the server holds, without GOAWAY.
    fn drop_connections(&self) {
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn url(&self, tls: bool, path: &str) -> String {
        match tls {
            true => format!("wss://localhost:{}{path}", self.addr.port()),
            false => format!("ws://{}{path}", self.addr),
        }
    }
}

async fn serve(upgrader: Upgrader, mode: Mode) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tcp_connections = Arc::new(AtomicUsize::new(0));
    let (ends_tx, ends) = mpsc::unbounded_channel();
    let count = tcp_connections.clone();
    let connections = Arc::new(Mutex::new(Vec::new()));
    let tasks = connections.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let (upgrader, ends_tx, mode) = (upgrader.clone(), ends_tx.clone(), mode.clone());
            let task = tokio::spawn(async move {
                match mode {
                    Mode::H2c { max_streams } => serve_h2(tcp, upgrader, ends_tx, true, max_streams).await,
                    Mode::Tls { config, extended } => {
                        let Ok(tls) = TlsAcceptor::from(config).accept(tcp).await else {
                            return;
                        };
                        if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                            serve_h2(tls, upgrader, ends_tx, extended, None).await;
                        } else if let Ok(conn) = upgrader.accept(tls).await {
                            behave("/echo".into(), false, conn, ends_tx).await;
                        }
                    }
                }
            });
            tasks.lock().unwrap().push(task.abort_handle());
        }
    });
    Server {
        addr,
        tcp_connections,
        ends,
        connections,
    }
}

async fn serve_h2<S>(
    io: S,
    upgrader: Upgrader,
    ends: mpsc::UnboundedSender<End>,
    extended: bool,
    max_streams: Option<u32>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| route(upgrader.clone(), ends.clone(), req));
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .initial_stream_window_size(ferrosocket::HTTP2_STREAM_WINDOW)
        .initial_connection_window_size(ferrosocket::HTTP2_CONNECTION_WINDOW);
    if extended {
        builder.enable_connect_protocol();
    }
    if let Some(max) = max_streams {
        builder.max_concurrent_streams(max);
    }
    let _ = builder.serve_connection(TokioIo::new(io), service).await;
}

async fn route(
    upgrader: Upgrader,
    ends: mpsc::UnboundedSender<End>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    match upgrader.upgrade_hyper(req) {
        Ok((response, upgrade)) => {
            tokio::spawn(async move {
                if let Ok(conn) = upgrade.await {
                    behave(path, true, conn, ends).await;
                }
            });
            Ok(response.map(Either::Left))
        }
        Err(refusal) => Ok(refusal.into_response().map(|b| Either::Right(Full::new(b)))),
    }
}

/// What the server does with a WebSocket, by path: `/echo` echoes, `/close4000` closes with
/// 4000, `/big` sends 2,000 bytes, `/flood` sends 4 MiB (64 messages of 64 KiB, the first
/// byte the index) then echoes, `/drop` drops the connection without a close frame.
async fn behave<S>(path: String, http2: bool, mut conn: Conn<S>, ends: mpsc::UnboundedSender<End>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let deflate = conn.core().deflate_enabled();
    match path.as_str() {
        "/close4000" => {
            let _ = conn.close(Some(CloseFrame::new(4000, "bye"))).await;
            let error = conn.recv().await.unwrap_err();
            let _ = ends.send(End {
                path,
                http2,
                deflate,
                error,
            });
            return;
        }
        "/big" => {
            let _ = conn.send(Message::binary(vec![7u8; 2000])).await;
        }
        "/flood" => {
            for i in 0..64u8 {
                let mut payload = vec![i; 64 << 10];
                payload[0] = i;
                if conn.send(Message::binary(payload)).await.is_err() {
                    break;
                }
            }
        }
        "/drop" => {
            drop(conn);
            return;
        }
        _ => {}
    }
    let error = loop {
        match conn.recv().await {
            Ok(msg) => {
                if let Err(e) = conn.send(msg).await {
                    break e;
                }
            }
            Err(e) => break e,
        }
    };
    let _ = ends.send(End {
        path,
        http2,
        deflate,
        error,
    });
}

struct Cert {
    der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

fn self_signed() -> Cert {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    Cert {
        der: ck.cert.der().clone(),
        key_der: ck.signing_key.serialize_der(),
    }
}

/// A server configuration offering `alpn`, most preferred first.
fn tls_server(cert: &Cert, alpn: &[&[u8]]) -> Arc<ServerConfig> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_der.clone()));
    let mut config = (*server_config(vec![cert.der.clone()], key).unwrap()).clone();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

fn dialer(version: HttpVersion) -> Dialer {
    Dialer::new()
        .proxy_from_env(false)
        .handshake_timeout(Some(Duration::from_secs(5)))
        .http_version(version)
}

fn trusting(cert: &Cert, version: HttpVersion) -> Dialer {
    let mut roots = RootCertStore::empty();
    roots.add(cert.der.clone()).unwrap();
    dialer(version).tls_config(client_config_with_roots(roots).unwrap())
}

/// An h2c server and a dialer for it, or a TLS (ALPN `h2`) server and a dialer trusting it.
async fn setup(tls: bool, upgrader: Upgrader) -> (Server, Dialer) {
    if tls {
        let cert = self_signed();
        let config = tls_server(&cert, &[b"h2", b"http/1.1"]);
        let server = serve(
            upgrader,
            Mode::Tls {
                config,
                extended: true,
            },
        )
        .await;
        (server, trusting(&cert, HttpVersion::Http2))
    } else {
        (
            serve(upgrader, Mode::H2c { max_streams: None }).await,
            dialer(HttpVersion::Http2),
        )
    }
}

fn h2(conn: &Conn<MaybeTlsStream>) -> &ferrosocket::H2Stream {
    match conn.get_ref() {
        MaybeTlsStream::Http2(s) => s,
        other => panic!("expected an http/2 stream, got {other:?}"),
    }
}

async fn echo_sizes(tls: bool) {
    let (mut server, dialer) = setup(tls, Upgrader::new()).await;
    let (mut conn, response) = within("connect", dialer.connect(server.url(tls, "/echo")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(h2(&conn).is_tls(), tls);
    assert_eq!(conn.get_ref().is_tls(), tls);
    assert!(conn.get_ref().tcp().is_none());
    assert_eq!(conn.peer_addr().unwrap(), server.addr);
    for size in [0usize, 125, 126, 65_535, 65_536, 1 << 20, 16 << 20] {
        let payload = Bytes::from((0..size).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
        within("send", conn.send(Message::binary(payload.clone())))
            .await
            .unwrap();
        let echoed = within("echo", conn.recv()).await.unwrap();
        assert_eq!(echoed.kind(), MessageKind::Binary);
        assert!(echoed.as_bytes() == &payload[..], "{size} bytes");
    }
    within("text", conn.send_text("héllo")).await.unwrap();
    assert_eq!(
        within("text echo", conn.recv()).await.unwrap(),
        Message::text("héllo")
    );
    within(
        "close",
        conn.close(Some(CloseFrame::new(CloseCode::NORMAL_CLOSURE, "done"))),
    )
    .await
    .unwrap();
    let end = server.end().await;
    assert!(end.http2);
    assert_eq!(end.path, "/echo");
    let Error::Closed(c) = end.error else {
        panic!("{:?}", end.error)
    };
    assert_eq!((c.code, c.reason.as_str()), (CloseCode::NORMAL_CLOSURE, "done"));
}

#[tokio::test]
async fn h2c_echo_of_every_size_and_close_1000() {
    echo_sizes(false).await;
}

#[tokio::test]
async fn tls_alpn_h2_echo_of_every_size_and_close_1000() {
    echo_sizes(true).await;
}

#[tokio::test]
async fn fragments_ping_and_server_close_4000() {
    for tls in [false, true] {
        let (server, dialer) = setup(tls, Upgrader::new()).await;
        let (mut conn, _) = within("connect", dialer.connect(server.url(tls, "/echo")))
            .await
            .unwrap();
        within("f1", conn.send_fragment(MessageKind::Text, "frag", false))
            .await
            .unwrap();
        within("f2", conn.send_fragment(MessageKind::Text, "men", false))
            .await
            .unwrap();
        within("f3", conn.send_fragment(MessageKind::Text, "ted", true))
            .await
            .unwrap();
        assert_eq!(
            within("reassembled", conn.recv()).await.unwrap(),
            Message::text("fragmented")
        );

        let (pong_tx, mut pongs) = mpsc::unbounded_channel();
        conn.set_pong_handler(move |p| {
            let _ = pong_tx.send(p.to_vec());
        });
        within("ping", conn.ping(b"are you there")).await.unwrap();
        within("a message after the ping", conn.send_text("after"))
            .await
            .unwrap();
        assert_eq!(within("echo", conn.recv()).await.unwrap(), Message::text("after"));
        assert_eq!(pongs.try_recv().unwrap(), b"are you there");

        let (mut conn, _) = within("connect", dialer.connect(server.url(tls, "/close4000")))
            .await
            .unwrap();
        let err = within("the server's close", conn.recv()).await.unwrap_err();
        let Error::Closed(c) = err else { panic!("{err:?}") };
        assert_eq!((c.code, c.reason.as_str()), (CloseCode::from(4000), "bye"));
    }
}

#[tokio::test]
async fn client_read_limit_closes_with_1009() {
    for tls in [false, true] {
        let (mut server, dialer) = setup(tls, Upgrader::new()).await;
        let dialer = dialer.max_message_size(Some(1000));
        let (mut conn, _) = within("connect", dialer.connect(server.url(tls, "/big")))
            .await
            .unwrap();
        let err = within("the oversized message", conn.recv()).await.unwrap_err();
        let Error::Protocol(e) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(e.close_code(), CloseCode::MESSAGE_TOO_BIG);
        let end = server.end().await;
        let Error::Closed(c) = end.error else {
            panic!("{:?}", end.error)
        };
        assert_eq!(c.code, CloseCode::MESSAGE_TOO_BIG);
    }
}

#[tokio::test]
async fn compression_both_ways_and_subprotocol_chosen() {
    for tls in [false, true] {
        let upgrader = Upgrader::new()
            .enable_compression(true)
            .subprotocols(["v2", "v1"]);
        let (mut server, dialer) = setup(tls, upgrader).await;
        let dialer = dialer.enable_compression(true).subprotocols(["v1", "v0"]);
        let (mut conn, response) = within("connect", dialer.connect(server.url(tls, "/echo")))
            .await
            .unwrap();
        assert_eq!(conn.subprotocol(), Some("v1"));
        assert_eq!(response.headers()["sec-websocket-protocol"], "v1");
        let ext = response.headers()["sec-websocket-extensions"].to_str().unwrap();
        assert!(ext.starts_with("permessage-deflate"), "{ext}");
        assert!(conn.core().deflate_enabled());
        let text = "compressible ".repeat(10_000);
        within("send", conn.send_text(text.as_str())).await.unwrap();
        assert_eq!(within("echo", conn.recv()).await.unwrap(), Message::text(text));
        within("close", conn.close(None)).await.unwrap();
        let end = server.end().await;
        assert!(end.deflate && end.http2);
    }
}

#[tokio::test]
async fn origin_refused_is_bad_handshake_403() {
    for tls in [false, true] {
        let (server, dialer) = setup(tls, Upgrader::new()).await;
        let dialer = dialer.header(
            http::header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        let err = within("refusal", dialer.connect(server.url(tls, "/echo")))
            .await
            .unwrap_err();
        let Error::BadHandshake(resp) = err else {
            panic!("{err:?}")
        };
        assert_eq!(resp.status, StatusCode::FORBIDDEN);
    }
}

#[tokio::test]
async fn ten_sockets_share_one_tcp_connection() {
    for tls in [false, true] {
        let (mut server, dialer) = setup(tls, Upgrader::new()).await;
        let mut conns = Vec::new();
        for _ in 0..10 {
            let (conn, _) = within("connect", dialer.connect(server.url(tls, "/echo")))
                .await
                .unwrap();
            conns.push(conn);
        }
        let id = h2(&conns[0]).connection_id();
        assert!(conns.iter().all(|c| h2(c).connection_id() == id));
        assert_eq!(h2(&conns[0]).connection_streams(), 10);
        let mut tasks = Vec::new();
        for (i, mut conn) in conns.into_iter().enumerate() {
            tasks.push(tokio::spawn(async move {
                for round in 0..20 {
                    let text = format!("socket {i} round {round}");
                    conn.send_text(text.as_str()).await.unwrap();
                    assert_eq!(within("echo", conn.recv()).await.unwrap(), Message::text(text));
                }
                conn.close(None).await.unwrap();
            }));
        }
        for t in tasks {
            within("a socket", t).await.unwrap();
        }
        for _ in 0..10 {
            assert!(server.end().await.http2);
        }
        assert_eq!(server.tcp_connections.load(Ordering::SeqCst), 1);

        // Not shared: one connection each.
        let own = dialer.clone().share_http2_connections(false);
        let (a, _) = within("connect", own.connect(server.url(tls, "/echo")))
            .await
            .unwrap();
        let (b, _) = within("connect", own.connect(server.url(tls, "/echo")))
            .await
            .unwrap();
        assert_ne!(h2(&a).connection_id(), h2(&b).connection_id());
        assert_eq!(server.tcp_connections.load(Ordering::SeqCst), 3);
    }
}

/// Moves the clock `by` at once, then lets the tasks it woke run. Safe beside the real
/// sockets here (see tests/common on paused clocks) because they are idle meanwhile: the only
/// timer armed is the pool's idle watch, the one this moves.
async fn skip(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

/// A shared connection stays while it carries a WebSocket, however long; once it has carried
/// none for the dialer's idle timeout it leaves the pool and closes, and the next WebSocket
/// dials a new one. A WebSocket opened and closed within the idle time starts it over. The
/// clock is moved with `skip`; the sockets are real.
#[tokio::test]
async fn an_idle_shared_connection_closes_after_the_idle_timeout() {
    let idle = Duration::from_secs(90);
    for tls in [false, true] {
        let (mut server, dialer) = setup(tls, Upgrader::new()).await;
        let dialer = dialer.http2_idle_timeout(Some(idle));
        let url = server.url(tls, "/echo");
        let open = async |dialer: &Dialer| within("connect", dialer.connect(url.as_str())).await.unwrap().0;
        let close = async |mut conn: Conn<MaybeTlsStream>| within("close", conn.close(None)).await.unwrap();

        let a = open(&dialer).await;
        let id = h2(&a).connection_id();
        skip(idle * 3).await;
        let b = open(&dialer).await;
        assert_eq!(h2(&b).connection_id(), id, "in use: kept");
        close(a).await;
        close(b).await;

        skip(idle / 2).await;
        let c = open(&dialer).await;
        assert_eq!(h2(&c).connection_id(), id, "idle for less than the timeout: kept");
        close(c).await;
        skip(idle / 2 + Duration::from_secs(1)).await;
        let d = open(&dialer).await;
        assert_eq!(
            h2(&d).connection_id(),
            id,
            "a socket in between restarts the wait"
        );
        close(d).await;
        assert_eq!(server.tcp_connections.load(Ordering::SeqCst), 1);
        for _ in 0..4 {
            assert!(server.end().await.http2);
        }

        skip(idle + Duration::from_secs(1)).await;
        within("the idle connection to close", async {
            while !server.connections.lock().unwrap().iter().all(|t| t.is_finished()) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(
            format!("{dialer:?}").contains("http2_connections: 0"),
            "{dialer:?}"
        );
        let e = open(&dialer).await;
        assert_ne!(
            h2(&e).connection_id(),
            id,
            "a new connection after the idle timeout"
        );
        assert_eq!(server.tcp_connections.load(Ordering::SeqCst), 2);
        close(e).await;
    }
}

/// The dialer's cookie jar over HTTP/2: each `200`'s `Set-Cookie` goes to the jar, and the
/// next extended CONNECT carries it.
#[tokio::test]
async fn the_cookie_jar_works_over_http2() {
    for tls in [false, true] {
        let (server, dialer) = setup(tls, common::counting_cookies(Upgrader::new())).await;
        let dialer = dialer.cookie_jar(Arc::new(common::LastCookie::default()));
        for want in ["n=1; Path=/", "n=2; Path=/", "n=3; Path=/"] {
            let (_conn, resp) = within("connect", dialer.connect(server.url(tls, "/echo")))
                .await
                .unwrap();
            assert_eq!(resp.headers()[http::header::SET_COOKIE], want);
        }
    }
}

#[tokio::test]
async fn a_stalled_socket_does_not_block_its_siblings() {
    for tls in [false, true] {
        let (server, dialer) = setup(tls, Upgrader::new()).await;
        let (mut stalled, _) = within("connect", dialer.connect(server.url(tls, "/flood")))
            .await
            .unwrap();
        let mut siblings = Vec::new();
        for _ in 0..3 {
            siblings.push(
                within("connect", dialer.connect(server.url(tls, "/echo")))
                    .await
                    .unwrap()
                    .0,
            );
        }
        assert!(
            siblings
                .iter()
                .all(|c| h2(c).connection_id() == h2(&stalled).connection_id())
        );
        // The server writes 4 MiB to `stalled`, which does not read; the siblings keep echoing.
        for round in 0..50 {
            for (i, conn) in siblings.iter_mut().enumerate() {
                let payload = Bytes::from(vec![i as u8; 16 << 10]);
                within("a sibling's send", conn.send(Message::binary(payload.clone())))
                    .await
                    .unwrap();
                let echoed = within("a sibling's echo", conn.recv()).await.unwrap();
                assert!(echoed.as_bytes() == &payload[..], "round {round}");
            }
        }
        // Nothing was lost: the stalled socket reads all 64 messages in order.
        for i in 0..64u8 {
            let msg = within("a flood message", stalled.recv()).await.unwrap();
            assert_eq!(msg.as_bytes().len(), 64 << 10);
            assert_eq!(msg.as_bytes()[0], i);
        }
    }
}

#[tokio::test]
async fn resets_are_1006_both_ways() {
    for tls in [false, true] {
        let (mut server, dialer) = setup(tls, Upgrader::new()).await;
        // The server drops its side of the stream.
        let (mut conn, _) = within("connect", dialer.connect(server.url(tls, "/drop")))
            .await
            .unwrap();
        let err = within("the end", conn.recv()).await.unwrap_err();
        let Error::Closed(c) = &err else { panic!("{err:?}") };
        assert_eq!(c.code, CloseCode::ABNORMAL_CLOSURE);

        // The client drops its side (no close frame); its sibling on the same connection lives.
        let (gone, _) = within("connect", dialer.connect(server.url(tls, "/echo")))
            .await
            .unwrap();
        let (mut alive, _) = within("connect", dialer.connect(server.url(tls, "/echo")))
            .await
            .unwrap();
        assert_eq!(h2(&gone).connection_id(), h2(&alive).connection_id());
        drop(gone);
        let end = server.end().await;
        let Error::Closed(c) = &end.error else {
            panic!("{:?}", end.error)
        };
        assert_eq!(c.code, CloseCode::ABNORMAL_CLOSURE);
        within("send", alive.send_text("still here")).await.unwrap();
        assert_eq!(
            within("echo", alive.recv()).await.unwrap(),
            Message::text("still here")
        );
    }
}

#[tokio::test]
async fn auto_uses_http2_when_offered() {
    let cert = self_signed();
    let config = tls_server(&cert, &[b"h2", b"http/1.1"]);
    let mut server = serve(
        Upgrader::new(),
        Mode::Tls {
            config,
            extended: true,
        },
    )
    .await;
    let dialer = trusting(&cert, HttpVersion::Auto);
    let (mut a, _) = within("connect", dialer.connect(server.url(true, "/echo")))
        .await
        .unwrap();
    let (b, _) = within("connect", dialer.connect(server.url(true, "/echo")))
        .await
        .unwrap();
    assert_eq!(h2(&a).connection_id(), h2(&b).connection_id());
    within("send", a.send_text("over h2")).await.unwrap();
    assert_eq!(within("echo", a.recv()).await.unwrap(), Message::text("over h2"));
    drop(b);
    assert!(server.end().await.http2);
    assert_eq!(server.tcp_connections.load(Ordering::SeqCst), 1);
    // ws:// under Auto: HTTP/1.1 (no negotiation without TLS); h2c needs HttpVersion::Http2.
}

#[tokio::test]
async fn auto_falls_back_to_http1_on_the_same_tls_connection() {
    let cert = self_signed();
    let config = tls_server(&cert, &[b"http/1.1"]);
    let mut server = serve(
        Upgrader::new(),
        Mode::Tls {
            config,
            extended: true,
        },
    )
    .await;
    let (mut conn, response) = within(
        "connect",
        trusting(&cert, HttpVersion::Auto).connect(server.url(true, "/echo")),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert!(matches!(conn.get_ref(), MaybeTlsStream::Rustls(_)));
    within("send", conn.send_text("over http/1.1")).await.unwrap();
    assert_eq!(
        within("echo", conn.recv()).await.unwrap(),
        Message::text("over http/1.1")
    );
    within("close", conn.close(None)).await.unwrap();
    assert!(!server.end().await.http2);
    assert_eq!(server.tcp_connections.load(Ordering::SeqCst), 1);

    // HttpVersion::Http2 refuses such a server.
    let err = within(
        "refusal",
        trusting(&cert, HttpVersion::Http2).connect(server.url(true, "/echo")),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Http2(Http2Error::NotNegotiated)), "{err:?}");
}

#[tokio::test]
async fn auto_falls_back_to_http1_when_extended_connect_is_off() {
    let cert = self_signed();
    let config = tls_server(&cert, &[b"h2", b"http/1.1"]);
    let mut server = serve(
        Upgrader::new(),
        Mode::Tls {
            config,
            extended: false,
        },
    )
    .await;
    let auto = trusting(&cert, HttpVersion::Auto);
    let (mut conn, response) = within("connect", auto.connect(server.url(true, "/echo")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert!(matches!(conn.get_ref(), MaybeTlsStream::Rustls(_)));
    within("send", conn.send_text("fallback")).await.unwrap();
    assert_eq!(
        within("echo", conn.recv()).await.unwrap(),
        Message::text("fallback")
    );
    within("close", conn.close(None)).await.unwrap();
    assert!(!server.end().await.http2);
    // The h2 connection that lacked extended CONNECT, then the HTTP/1.1 one.
    assert_eq!(server.tcp_connections.load(Ordering::SeqCst), 2);
    // The dialer remembers: the next socket goes over HTTP/1.1 at once (one connection more).
    let (mut again, _) = within("connect", auto.connect(server.url(true, "/echo")))
        .await
        .unwrap();
    assert!(matches!(again.get_ref(), MaybeTlsStream::Rustls(_)));
    within("close", again.close(None)).await.unwrap();
    assert_eq!(server.tcp_connections.load(Ordering::SeqCst), 3);

    let err = within(
        "refusal",
        trusting(&cert, HttpVersion::Http2).connect(server.url(true, "/echo")),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, Error::Http2(Http2Error::ExtendedConnectDisabled)),
        "{err:?}"
    );
}

#[tokio::test]
async fn http2_to_an_http1_only_cleartext_server_fails_cleanly() {
    // An HTTP/1.1 server does not understand the HTTP/2 preface: a typed error, not a hang.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = Upgrader::new().accept(tcp).await;
            });
        }
    });
    let err = within(
        "failure",
        dialer(HttpVersion::Http2).connect(format!("ws://{addr}/echo")),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Http2(Http2Error::Connection(_))), "{err:?}");
}

#[tokio::test]
async fn a_closed_connection_is_dropped_and_redialed() {
    let (server, dialer) = setup(false, Upgrader::new()).await;
    let (mut first, _) = within("connect", dialer.connect(server.url(false, "/echo")))
        .await
        .unwrap();
    server.drop_connections();
    let err = within("the end of the first", first.recv()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Closed(c) if c.code == CloseCode::ABNORMAL_CLOSURE),
        "{err:?}"
    );
    let (mut second, _) = within("connect", dialer.connect(server.url(false, "/echo")))
        .await
        .unwrap();
    assert_ne!(h2(&first).connection_id(), h2(&second).connection_id());
    within("send", second.send_text("again")).await.unwrap();
    assert_eq!(
        within("echo", second.recv()).await.unwrap(),
        Message::text("again")
    );
    assert_eq!(server.tcp_connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_full_connection_makes_room_on_another() {
    let server = serve(Upgrader::new(), Mode::H2c { max_streams: Some(2) }).await;
    let dialer = dialer(HttpVersion::Http2);
    let mut conns = Vec::new();
    for _ in 0..3 {
        conns.push(
            within("connect", dialer.connect(server.url(false, "/echo")))
                .await
                .unwrap()
                .0,
        );
    }
    assert_eq!(h2(&conns[0]).connection_id(), h2(&conns[1]).connection_id());
    assert_ne!(h2(&conns[1]).connection_id(), h2(&conns[2]).connection_id());
    assert_eq!(server.tcp_connections.load(Ordering::SeqCst), 2);
    for (i, conn) in conns.iter_mut().enumerate() {
        let text = format!("socket {i}");
        within("send", conn.send_text(text.as_str())).await.unwrap();
        assert_eq!(within("echo", conn.recv()).await.unwrap(), Message::text(text));
    }
}

#[tokio::test]
async fn no_settings_from_the_server_is_a_handshake_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (held_tx, mut held) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = held_tx.send(tcp);
        }
    });
    let dialer = dialer(HttpVersion::Http2).handshake_timeout(Some(Duration::from_millis(300)));
    let err = within("the timeout", dialer.connect(format!("ws://{addr}/echo")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Timeout(ferrosocket::TimeoutKind::Handshake)),
        "{err:?}"
    );
    assert!(held.try_recv().is_ok());
}

/// A `CONNECT` proxy (no credentials) relaying to 127.0.0.1; counts tunnels.
async fn http_proxy() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tunnels = Arc::new(AtomicUsize::new(0));
    let count = tunnels.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if tokio::io::AsyncReadExt::read(&mut client, &mut byte)
                        .await
                        .unwrap_or(0)
                        == 0
                    {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8(head).unwrap();
                let target = head.split(' ').nth(1).unwrap();
                let port: u16 = target.rsplit_once(':').unwrap().1.parse().unwrap();
                let mut upstream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (addr, tunnels)
}

#[tokio::test]
async fn proxies_and_connector_hooks_carry_http2() {
    for tls in [false, true] {
        let (server, plain) = setup(tls, Upgrader::new()).await;
        // Through a CONNECT proxy: one tunnel for two sockets.
        let (proxy, tunnels) = http_proxy().await;
        let dialer = plain.clone().proxy_url(&format!("http://{proxy}")).unwrap();
        let (mut a, _) = within("connect", dialer.connect(server.url(tls, "/echo")))
            .await
            .unwrap();
        let (b, _) = within("connect", dialer.connect(server.url(tls, "/echo")))
            .await
            .unwrap();
        assert_eq!(h2(&a).connection_id(), h2(&b).connection_id());
        assert_eq!(a.get_ref().is_tls(), tls);
        within("send", a.send_text("proxied")).await.unwrap();
        assert_eq!(within("echo", a.recv()).await.unwrap(), Message::text("proxied"));
        assert_eq!(tunnels.load(Ordering::SeqCst), 1);

        // Over a connector hook's transport: no socket addresses, the rest as usual.
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let dialer = plain.connector(move |host: &str, port: u16| {
            seen.fetch_add(1, Ordering::SeqCst);
            let host = host.to_owned();
            async move { TcpStream::connect((host.as_str(), port)).await }
        });
        let (mut c, _) = within("connect", dialer.connect(server.url(tls, "/echo")))
            .await
            .unwrap();
        let (d, _) = within("connect", dialer.connect(server.url(tls, "/echo")))
            .await
            .unwrap();
        assert_eq!(h2(&c).connection_id(), h2(&d).connection_id());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(c.peer_addr().unwrap_err().kind(), std::io::ErrorKind::Unsupported);
        within("send", c.send_text("hooked")).await.unwrap();
        assert_eq!(within("echo", c.recv()).await.unwrap(), Message::text("hooked"));
    }
}

#[tokio::test]
async fn concurrent_connects_share_the_first_dial() {
    for tls in [false, true] {
        let (server, dialer) = setup(tls, Upgrader::new()).await;
        let mut tasks = Vec::new();
        for i in 0..10 {
            let (dialer, url) = (dialer.clone(), server.url(tls, "/echo"));
            tasks.push(tokio::spawn(async move {
                let (mut conn, _) = dialer.connect(url).await.unwrap();
                let text = format!("socket {i}");
                conn.send_text(text.as_str()).await.unwrap();
                assert_eq!(conn.recv().await.unwrap(), Message::text(text));
                conn
            }));
        }
        let mut ids = Vec::new();
        for t in tasks {
            ids.push(h2(&within("a socket", t).await.unwrap()).connection_id());
        }
        assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
        assert_eq!(server.tcp_connections.load(Ordering::SeqCst), 1);
    }
}

/// The split halves over an HTTP/2 stream (`split_echo_round_trip`), in cleartext and TLS,
/// with keepalive on at both ends.
/// After the writer's close the server answers, ends its stream and resets it (hyper's
/// RST_STREAM when the server drops the socket), which fails every later write on our side at
/// once. The reader still gets the server's close frame, not a 1006: a failed write does not
/// discard what the peer sent before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_halves_write_and_read_at_once_over_http2() {
    for tls in [false, true] {
        // Keepalive at both ends (20 ms): its timers run beside both halves the whole time.
        let every = Duration::from_millis(20);
        let (mut server, dialer) = setup(tls, Upgrader::new().keepalive(every, WAIT)).await;
        let dialer = dialer.keepalive(every, WAIT);
        let (conn, _) = within("connect", dialer.connect(server.url(tls, "/echo")))
            .await
            .unwrap();
        assert!(matches!(conn.get_ref(), MaybeTlsStream::Http2(_)));
        let mut reader = common::split_echo_round_trip(conn, 300, "split").await;
        let end = server.end().await;
        assert!(end.http2);
        let Error::Closed(c) = end.error else {
            panic!("{:?}", end.error)
        };
        assert_eq!((c.code, c.reason.as_str()), (CloseCode::NORMAL_CLOSURE, "split"));
        // The server's socket is gone and its stream reset; give the reset a moment to reach
        // our side (it is not observable through the API), so the reader's first write fails.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let end = within("the close's answer", reader.recv()).await.unwrap_err();
        let Error::Closed(c) = end else { panic!("{end:?}") };
        assert_eq!(
            c.code,
            CloseCode::NORMAL_CLOSURE,
            "the server's close frame: {c:?}"
        );
    }
}
