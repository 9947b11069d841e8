//! `WebSocketUpgrade` in a real axum app on 127.0.0.1 (`axum::serve`), with ferrosocket's
//! `Dialer` as the client: echo, compression, subprotocols, the origin policy and
//! `on_failed_upgrade`, refusals of non-upgrade requests, a shared upgrader from the request
//! extensions, and a regular route beside the WebSocket one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::Router;
use axum::extract::Extension;
use axum::response::Response;
use axum::routing::get;
use common::within;
use ferrosocket::{Accept, CloseCode, CloseFrame, Dialer, Error, Message, Upgrader};
use ferrosocket_axum::{WebSocket, WebSocketUpgrade};
use http::header::{ORIGIN, SEC_WEBSOCKET_EXTENSIONS};
use http::{HeaderValue, StatusCode};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Serves `app` (with the peer address as `ConnectInfo`) plus a plain route at `/plain`.
async fn serve(app: Router) -> SocketAddr {
    let app = app.route("/plain", get(|| async { "plain http\n" }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await;
    });
    addr
}

async fn echo(mut socket: WebSocket) {
    while let Ok(msg) = socket.recv().await {
        if socket.send(msg).await.is_err() {
            break;
        }
    }
}

fn url(addr: SocketAddr) -> String {
    format!("ws://{addr}/ws")
}

/// A raw HTTP/1.1 GET; the whole response as text.
async fn get_raw(addr: SocketAddr, path: &str, extra: &str) -> String {
    within("a raw GET", async {
        let mut io = TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{extra}\r\n");
        io.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        io.read_to_string(&mut out).await.unwrap();
        out
    })
    .await
}

#[tokio::test]
async fn echo_and_a_regular_route_beside_it() {
    let app = Router::new().route(
        "/ws",
        get(|ws: WebSocketUpgrade| async move { ws.on_upgrade(echo) }),
    );
    let addr = serve(app).await;
    let (mut conn, response) = within("dial", Dialer::new().connect(url(addr))).await.unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert!(
        response.headers().get(SEC_WEBSOCKET_EXTENSIONS).is_none(),
        "compression is off by default"
    );
    for msg in [Message::from("hello"), Message::from(vec![1u8, 2, 3])] {
        within("send", conn.send(msg.clone())).await.unwrap();
        assert_eq!(within("echo", conn.recv()).await.unwrap(), msg);
    }
    let bye = CloseFrame::new(CloseCode::NORMAL_CLOSURE, "bye");
    assert_eq!(
        within("close", conn.close(Some(bye))).await.unwrap().code,
        CloseCode::NORMAL_CLOSURE
    );
    let plain = get_raw(addr, "/plain", "").await;
    assert!(plain.starts_with("HTTP/1.1 200 OK\r\n"), "{plain}");
    assert!(plain.ends_with("\r\n\r\nplain http\n"), "{plain}");
}

#[tokio::test]
async fn compression_is_negotiated_and_messages_round_trip() {
    let app = Router::new().route(
        "/ws",
        get(|ws: WebSocketUpgrade| async move { ws.compression(true).on_upgrade(echo) }),
    );
    let addr = serve(app).await;
    let (mut conn, response) = within("dial", Dialer::new().enable_compression(true).connect(url(addr)))
        .await
        .unwrap();
    let ext = response
        .headers()
        .get(SEC_WEBSOCKET_EXTENSIONS)
        .expect("extension accepted");
    assert!(ext.to_str().unwrap().starts_with("permessage-deflate"), "{ext:?}");
    let big = Message::from("compress me ".repeat(2000));
    for _ in 0..3 {
        within("send", conn.send(big.clone())).await.unwrap();
        assert_eq!(within("echo", conn.recv()).await.unwrap(), big);
    }
}

#[tokio::test]
async fn subprotocol_is_chosen_in_server_order() {
    let app = Router::new().route(
        "/ws",
        get(|ws: WebSocketUpgrade| async move {
            ws.protocols(["v2", "v1"])
                .on_upgrade(|socket: WebSocket| async move {
                    let chosen = socket.subprotocol().unwrap_or("none").to_owned();
                    let mut socket = socket;
                    let _ = socket.send(chosen).await;
                    echo(socket).await;
                })
        }),
    );
    let addr = serve(app).await;
    let (mut conn, _) = within(
        "dial",
        Dialer::new().subprotocols(["v1", "v2"]).connect(url(addr)),
    )
    .await
    .unwrap();
    assert_eq!(conn.subprotocol(), Some("v2"));
    assert_eq!(
        within("server's view", conn.recv()).await.unwrap(),
        Message::from("v2")
    );
}

#[tokio::test]
async fn foreign_origin_gets_403_and_on_failed_upgrade_is_called() {
    let failures = Arc::new(Mutex::new(Vec::new()));
    let seen = failures.clone();
    let app = Router::new().route(
        "/ws",
        get(move |ws: WebSocketUpgrade| {
            let seen = seen.clone();
            async move {
                ws.on_failed_upgrade(move |e: Error| seen.lock().unwrap().push(e.to_string()))
                    .on_upgrade(echo)
            }
        }),
    );
    let addr = serve(app).await;
    let dialer = Dialer::new().header(ORIGIN, HeaderValue::from_static("http://evil.example"));
    match within("a refused dial", dialer.connect(url(addr))).await {
        Err(Error::BadHandshake(resp)) => assert_eq!(resp.status, StatusCode::FORBIDDEN),
        other => panic!("expected 403, got {other:?}"),
    }
    let failures = failures.lock().unwrap().clone();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].contains("origin"), "{failures:?}");
    // The same origin is accepted (the default policy), and allow_any_origin accepts any.
    let same = Dialer::new().header(ORIGIN, HeaderValue::from_str(&format!("http://{addr}")).unwrap());
    assert!(within("same-origin dial", same.connect(url(addr))).await.is_ok());
}

#[tokio::test]
async fn allow_any_origin_accepts_foreign_pages() {
    let app = Router::new().route(
        "/ws",
        get(|ws: WebSocketUpgrade| async move { ws.allow_any_origin().on_upgrade(echo) }),
    );
    let addr = serve(app).await;
    let dialer = Dialer::new().header(ORIGIN, HeaderValue::from_static("http://evil.example"));
    let (mut conn, _) = within("dial", dialer.connect(url(addr))).await.unwrap();
    within("send", conn.send("x")).await.unwrap();
    assert_eq!(within("echo", conn.recv()).await.unwrap(), Message::from("x"));
}

#[tokio::test]
async fn non_upgrade_requests_get_the_core_status() {
    let called = Arc::new(Mutex::new(0));
    let count = called.clone();
    let app = Router::new().route(
        "/ws",
        get(move |ws: WebSocketUpgrade| {
            *count.lock().unwrap() += 1;
            async move { ws.on_upgrade(echo) }
        }),
    );
    let addr = serve(app).await;
    // No Upgrade header: 400, before the handler runs.
    let plain = get_raw(addr, "/ws", "").await;
    assert!(plain.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{plain}");
    // Another protocol version: 426 with the version we speak.
    let v8 = get_raw(
        addr,
        "/ws",
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n",
    )
    .await;
    assert!(v8.starts_with("HTTP/1.1 426 Upgrade Required\r\n"), "{v8}");
    assert!(
        v8.to_ascii_lowercase().contains("sec-websocket-version: 13\r\n"),
        "{v8}"
    );
    assert_eq!(*called.lock().unwrap(), 0, "the handler must not run");
}

#[tokio::test]
async fn shared_upgrader_from_extensions_with_limits_callback_and_peer() {
    let peers = Arc::new(Mutex::new(Vec::new()));
    let seen = peers.clone();
    let upgrader = Upgrader::new()
        .max_connections(Some(1))
        .max_message_size(Some(32))
        .on_request(move |req| {
            seen.lock().unwrap().push(req.peer_addr());
            Ok(Accept::new())
        });
    async fn ws(ws: WebSocketUpgrade) -> Response {
        ws.on_upgrade(echo)
    }
    let app = Router::new()
        .route("/ws", get(ws))
        .layer(Extension(upgrader.clone()));
    let addr = serve(app).await;
    let (mut first, _) = within("dial", Dialer::new().connect(url(addr))).await.unwrap();
    within("send", first.send("small")).await.unwrap();
    assert_eq!(
        within("echo", first.recv()).await.unwrap(),
        Message::from("small")
    );
    assert_eq!(*peers.lock().unwrap(), [Some(first.local_addr().unwrap())]);
    // The shared limit: a second connection is refused with 503.
    match within("a refused dial", Dialer::new().connect(url(addr))).await {
        Err(Error::BadHandshake(resp)) => assert_eq!(resp.status, StatusCode::SERVICE_UNAVAILABLE),
        other => panic!("expected 503, got {other:?}"),
    }
    // The shared message limit: 1009.
    within("send", first.send(vec![0u8; 33])).await.unwrap();
    match within("the close", first.recv()).await {
        Err(Error::Closed(close)) => assert_eq!(close.code, CloseCode::MESSAGE_TOO_BIG),
        other => panic!("expected close 1009, got {other:?}"),
    }
}
