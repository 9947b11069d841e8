//! `WebSocketUpgrade` over HTTP/2 (RFC 8441) in a real axum app (`axum::serve`, whose HTTP/2
//! allows extended CONNECT) on 127.0.0.1, cleartext with prior knowledge: ferrosocket's
//! `Dialer` and hyper's own HTTP/2 client as the clients. Echo of every size with and without
//! compression, several WebSockets over one TCP connection, the close code, the origin check,
//! and the refusals of requests that are not extended CONNECTs for `websocket`.

#![cfg(feature = "http2")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::extract::Extension;
use axum::routing::{any, get};
use bytes::Bytes;
use common::within;
use ferrosocket::{
    Accept, CloseCode, CloseFrame, Conn, Dialer, Error, HttpVersion, MaybeTlsStream, Message, PingAction,
    Shutdown, Upgrader,
};
use ferrosocket_axum::{WebSocket, WebSocketUpgrade};
use http::{HeaderValue, Method, Request, StatusCode, Uri, Version};
use http_body_util::Empty;
use hyper::ext::Protocol;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// What the server saw of one WebSocket: the TCP peer it came over, the request's HTTP version,
/// whether compression was negotiated.
#[derive(Debug)]
struct Seen {
    peer: SocketAddr,
    http2: bool,
    deflate: bool,
}

/// An axum app with an echo at `/ws` (compression on) and a close with 4000 at `/bye`, each
/// reporting what it saw; served with `axum::serve` (HTTP/1.1 and HTTP/2).
async fn serve() -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let (seen_tx, seen) = mpsc::unbounded_channel();
    let handler = move |ConnectInfo(peer): ConnectInfo<SocketAddr>,
                        version: Version,
                        uri: Uri,
                        ws: WebSocketUpgrade| {
        let seen = seen_tx.clone();
        async move {
            let bye = uri.path() == "/bye";
            ws.compression(!bye).on_upgrade(move |mut socket| async move {
                let _ = seen.send(Seen {
                    peer,
                    http2: version == Version::HTTP_2,
                    deflate: socket.core().deflate_enabled(),
                });
                if bye {
                    let frame = CloseFrame::new(CloseCode::from(4000), "bye over h2");
                    let _ = socket.close(Some(frame)).await;
                } else {
                    echo(socket).await;
                }
            })
        }
    };
    // `any`: over HTTP/2 the method is CONNECT.
    let app = Router::new()
        .route("/ws", any(handler.clone()))
        .route("/bye", any(handler))
        .route("/plain", get(|| async { "plain http\n" }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await;
    });
    (addr, seen)
}

async fn echo(mut socket: WebSocket) {
    while let Ok(msg) = socket.recv().await {
        if socket.send(msg).await.is_err() {
            break;
        }
    }
}

fn dialer() -> Dialer {
    Dialer::new().http_version(HttpVersion::Http2)
}

fn is_http2(conn: &Conn<MaybeTlsStream>) -> bool {
    matches!(conn.get_ref(), MaybeTlsStream::Http2(_))
}

#[tokio::test]
async fn echo_of_every_size_over_http2_with_and_without_compression() {
    let (addr, mut seen) = serve().await;
    for compress in [false, true] {
        let dialer = dialer().enable_compression(compress);
        let (mut conn, response) = within("connect", dialer.connect(format!("ws://{addr}/ws")))
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "an extended CONNECT is answered 200"
        );
        assert!(is_http2(&conn));
        let server = within("the server's report", seen.recv()).await.unwrap();
        assert!(server.http2, "the server saw HTTP/2");
        assert_eq!(server.deflate, compress);
        assert_eq!(conn.core().deflate_enabled(), compress);
        for size in [0usize, 1, 125, 126, 65_535, 65_536, 1 << 20] {
            let payload = Bytes::from((0..size).map(|i| (i % 251) as u8).collect::<Vec<_>>());
            conn.send(Message::binary(payload.clone())).await.unwrap();
            let echoed = within("an echo", conn.recv()).await.unwrap();
            assert_eq!(
                echoed.into_data(),
                payload,
                "{size} bytes, compression {compress}"
            );
        }
        conn.send_text("héllo over h2").await.unwrap();
        assert_eq!(
            within("a text echo", conn.recv()).await.unwrap(),
            Message::text("héllo over h2")
        );
        within("the close handshake", conn.close(None)).await.unwrap();
    }
}

#[tokio::test]
async fn many_websockets_share_one_tcp_connection() {
    let (addr, mut seen) = serve().await;
    let dialer = dialer();
    let mut conns = Vec::new();
    for _ in 0..6 {
        let (conn, _) = within("connect", dialer.connect(format!("ws://{addr}/ws")))
            .await
            .unwrap();
        conns.push(conn);
    }
    let mut peers = Vec::new();
    for _ in 0..6 {
        let server = within("the server's report", seen.recv()).await.unwrap();
        assert!(server.http2);
        peers.push(server.peer);
    }
    assert!(
        peers.iter().all(|p| *p == peers[0]),
        "one TCP connection for all six: {peers:?}"
    );
    let mut tasks = Vec::new();
    for (i, mut conn) in conns.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for round in 0..20 {
                let text = format!("socket {i} round {round}");
                conn.send_text(text.as_str()).await.unwrap();
                assert_eq!(within("an echo", conn.recv()).await.unwrap(), Message::text(text));
            }
            conn.close(None).await.unwrap();
        }));
    }
    for t in tasks {
        within("a socket", t).await.unwrap();
    }
}

#[tokio::test]
async fn the_servers_close_code_and_reason_arrive_over_http2() {
    let (addr, mut seen) = serve().await;
    let (mut conn, _) = within("connect", dialer().connect(format!("ws://{addr}/bye")))
        .await
        .unwrap();
    assert!(within("the server's report", seen.recv()).await.unwrap().http2);
    let err = within("the close", conn.recv()).await.unwrap_err();
    let Error::Closed(close) = err else {
        panic!("{err:?}")
    };
    assert_eq!(
        (close.code, close.reason.as_str()),
        (CloseCode::from(4000), "bye over h2")
    );
}

#[tokio::test]
async fn origin_of_another_site_is_refused_403_over_http2() {
    let (addr, _seen) = serve().await;
    let dialer = dialer().header(
        http::header::ORIGIN,
        HeaderValue::from_static("https://evil.example"),
    );
    let err = within("refusal", dialer.connect(format!("ws://{addr}/ws")))
        .await
        .unwrap_err();
    let Error::BadHandshake(resp) = err else {
        panic!("{err:?}")
    };
    assert_eq!(resp.status, StatusCode::FORBIDDEN);
}

/// hyper's HTTP/2 client sends what no WebSocket client would: the extractor's refusals.
#[tokio::test]
async fn requests_that_are_not_websocket_extended_connects_are_refused() {
    let (addr, _seen) = serve().await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);

    // A GET over HTTP/2: 405, CONNECT is the method.
    let get = Request::get(format!("http://{addr}/ws"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let refused = within("a GET's answer", send.send_request(get)).await.unwrap();
    assert_eq!(refused.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(refused.headers()["allow"], "CONNECT");

    let connect = |protocol: &'static str, version: &'static str| {
        let mut req = Request::builder()
            .method(Method::CONNECT)
            .version(Version::HTTP_2)
            .uri(format!("http://{addr}/ws"))
            .header("sec-websocket-version", version);
        req.extensions_mut()
            .unwrap()
            .insert(Protocol::from_static(protocol));
        req.body(Empty::<Bytes>::new()).unwrap()
    };
    // Another protocol over the same connection: 501 (not ours to tunnel).
    let refused = within("an answer", send.send_request(connect("webtransport", "13")))
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::NOT_IMPLEMENTED);
    // Another WebSocket version: 400 naming ours.
    let refused = within("an answer", send.send_request(connect("websocket", "8")))
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(refused.headers()["sec-websocket-version"], "13");
    // And a good one on the same connection is accepted: 200, no Sec-WebSocket-Accept.
    let ok = within("an answer", send.send_request(connect("websocket", "13")))
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert!(ok.headers().get("sec-websocket-accept").is_none());
    // The plain route beside it still answers.
    let plain = Request::get(format!("http://{addr}/plain"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let plain = within("the plain route", send.send_request(plain)).await.unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
}

/// The extractor over HTTP/2 with one `Upgrader` for the app (an axum `Extension`) carrying
/// the options users combine: subprotocols, a connection limit, a message limit, keepalive,
/// the per-request callback and a server-wide shutdown.
#[tokio::test]
async fn a_shared_upgrader_with_every_kind_of_option_over_http2() {
    let shutdown = Shutdown::new();
    let asked = Arc::new(AtomicUsize::new(0));
    let counted = asked.clone();
    let upgrader = Upgrader::new()
        .subprotocols(["v2", "v1"])
        .max_connections(Some(2))
        .max_message_size(Some(1024))
        .keepalive(Duration::from_millis(100), Duration::from_secs(5))
        .shutdown(&shutdown)
        .on_request(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(Accept::new())
        });
    async fn ws(ws: WebSocketUpgrade) -> axum::response::Response {
        ws.on_upgrade(echo)
    }
    let app = Router::new().route("/ws", any(ws)).layer(Extension(upgrader));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let url = format!("ws://{addr}/ws");
    let dialer = dialer().subprotocols(["v1"]);

    let (mut first, response) = within("connect", dialer.connect(url.as_str())).await.unwrap();
    assert!(is_http2(&first));
    assert_eq!(response.headers()["sec-websocket-protocol"], "v1");
    assert_eq!(first.subprotocol(), Some("v1"));
    // Keepalive: the server pings a quiet client (answered by the client's default handler).
    let (pinged_tx, mut pinged) = mpsc::unbounded_channel();
    first.set_ping_handler(move |_| {
        let _ = pinged_tx.send(());
        PingAction::Pong
    });
    within("a keepalive ping", async {
        tokio::select! {
            got = first.recv() => panic!("nothing but pings expected: {got:?}"),
            _ = pinged.recv() => {}
        }
    })
    .await;

    // The limit of two: a second socket on the same HTTP/2 connection, then a 503.
    let (mut second, _) = within("connect", dialer.connect(url.as_str())).await.unwrap();
    match within("a refused connect", dialer.connect(url.as_str())).await {
        Err(Error::BadHandshake(resp)) => assert_eq!(resp.status, StatusCode::SERVICE_UNAVAILABLE),
        other => panic!("expected 503, got {other:?}"),
    }
    // The limit is checked before the callback: the refused third never reached it.
    assert_eq!(asked.load(Ordering::SeqCst), 2);

    // The message limit: 1009 for the second socket.
    within("send", second.send(vec![0u8; 1025])).await.unwrap();
    match within("the close", second.recv()).await {
        Err(Error::Closed(close)) => assert_eq!(close.code, CloseCode::MESSAGE_TOO_BIG),
        other => panic!("expected close 1009, got {other:?}"),
    }

    // The server-wide shutdown: 1001 for the first.
    shutdown.trigger();
    match within("the shutdown's close", first.recv()).await {
        Err(Error::Closed(close)) => assert_eq!(close.code, CloseCode::GOING_AWAY),
        other => panic!("expected close 1001, got {other:?}"),
    }
}
