//! `Upgrader::upgrade_hyper` (feature `hyper`) behind a real hyper-util HTTP/1.1 server on
//! 127.0.0.1, with ferrosocket's `Dialer` (or the raw test client) as the client: every
//! upgrader option applies, refusals carry their status and body, bytes pipelined after the
//! request head reach the connection, and plain HTTP routes beside the upgrade still work.

#![cfg(feature = "hyper")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::{Client, Req, masked, within};
use ferrosocket::proto::OpCode;
use ferrosocket::{
    Accept, CloseCode, CloseFrame, Dialer, Error, Message, PeerAddr, Reject, Shutdown, Upgrader,
};
use http::header::{ORIGIN, SEC_WEBSOCKET_EXTENSIONS};
use http::{HeaderValue, StatusCode};
use http_body_util::{Either, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Body = Either<Empty<Bytes>, Full<Bytes>>;

/// A hyper-util server: `/` answers plain text, every other path upgrades and echoes. The
/// service puts the peer address in the request as a `PeerAddr`.
async fn serve(upgrader: Upgrader) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                return;
            };
            let upgrader = upgrader.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| route(upgrader.clone(), peer, req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

async fn route(
    upgrader: Upgrader,
    peer: SocketAddr,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    if req.uri().path() == "/" {
        return Ok(Response::new(Either::Right(Full::new(Bytes::from_static(
            b"plain http\n",
        )))));
    }
    req.extensions_mut().insert(PeerAddr(peer));
    match upgrader.upgrade_hyper(req) {
        Ok((response, upgrade)) => {
            tokio::spawn(async move {
                let Ok(mut conn) = upgrade.await else { return };
                while let Ok(msg) = conn.recv().await {
                    if conn.send(msg).await.is_err() {
                        break;
                    }
                }
            });
            Ok(response.map(Either::Left))
        }
        Err(refusal) => Ok(refusal.into_response().map(|b| Either::Right(Full::new(b)))),
    }
}

fn url(addr: SocketAddr) -> String {
    format!("ws://{addr}/ws")
}

/// The status and body of a refused handshake, as the Dialer reports them.
async fn refused(dialer: &Dialer, addr: SocketAddr) -> (StatusCode, Bytes) {
    match within("a refused dial", dialer.connect(url(addr))).await {
        Err(Error::BadHandshake(resp)) => (resp.status, resp.body),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn echo_with_compression_negotiated() {
    let addr = serve(Upgrader::new().enable_compression(true)).await;
    let dialer = Dialer::new().enable_compression(true);
    let (mut conn, response) = within("dial", dialer.connect(url(addr))).await.unwrap();
    let ext = response
        .headers()
        .get(SEC_WEBSOCKET_EXTENSIONS)
        .expect("extension accepted");
    assert!(ext.to_str().unwrap().starts_with("permessage-deflate"), "{ext:?}");
    let big = "compressible ".repeat(1000);
    for msg in [
        Message::from("hello"),
        Message::from(big.as_str()),
        Message::from(vec![0u8, 1, 2, 255]),
    ] {
        within("send", conn.send(msg.clone())).await.unwrap();
        assert_eq!(within("echo", conn.recv()).await.unwrap(), msg);
    }
    let bye = CloseFrame::new(CloseCode::NORMAL_CLOSURE, "bye");
    let close = within("close", conn.close(Some(bye))).await.unwrap();
    assert_eq!(close.code, CloseCode::NORMAL_CLOSURE);
}

#[tokio::test]
async fn subprotocol_is_chosen_and_callback_sees_the_peer() {
    let seen = Arc::new(Mutex::new(None));
    let seen_in_callback = seen.clone();
    let upgrader = Upgrader::new().subprotocols(["v2", "v1"]).on_request(move |req| {
        *seen_in_callback.lock().unwrap() = req.peer_addr();
        Ok(Accept::new().header(
            http::header::HeaderName::from_static("x-seen"),
            HeaderValue::from_static("yes"),
        ))
    });
    let addr = serve(upgrader).await;
    let (mut conn, response) = within(
        "dial",
        Dialer::new().subprotocols(["v1", "v2"]).connect(url(addr)),
    )
    .await
    .unwrap();
    assert_eq!(conn.subprotocol(), Some("v2"));
    assert_eq!(response.headers()["x-seen"], "yes");
    assert_eq!(*seen.lock().unwrap(), Some(conn.local_addr().unwrap()));
    within("send", conn.send("x")).await.unwrap();
    assert_eq!(within("echo", conn.recv()).await.unwrap(), Message::from("x"));
}

#[tokio::test]
async fn foreign_origin_is_refused_with_403() {
    let addr = serve(Upgrader::new()).await;
    let dialer = Dialer::new().header(ORIGIN, HeaderValue::from_static("http://evil.example"));
    let (status, body) = refused(&dialer, addr).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(String::from_utf8_lossy(&body).contains("origin"), "{body:?}");
}

#[tokio::test]
async fn callback_refusal_sends_its_status_and_body() {
    let upgrader = Upgrader::new().on_request(|req| match req.query_param("token") {
        Some(t) if t == "ok" => Ok(Accept::new()),
        _ => Err(Reject::new(StatusCode::UNAUTHORIZED).body("bad token\n")),
    });
    let addr = serve(upgrader).await;
    let (status, body) = refused(&Dialer::new(), addr).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(&body[..], b"bad token\n");
    let ok = within("dial", Dialer::new().connect(format!("ws://{addr}/ws?token=ok"))).await;
    assert!(ok.is_ok(), "{ok:?}");
}

#[tokio::test]
async fn message_over_the_read_limit_closes_with_1009() {
    let addr = serve(Upgrader::new().max_message_size(Some(64))).await;
    let (mut conn, _) = within("dial", Dialer::new().connect(url(addr))).await.unwrap();
    within("send", conn.send(vec![7u8; 65])).await.unwrap();
    match within("the close", conn.recv()).await {
        Err(Error::Closed(close)) => assert_eq!(close.code, CloseCode::MESSAGE_TOO_BIG),
        other => panic!("expected close 1009, got {other:?}"),
    }
}

#[tokio::test]
async fn frame_pipelined_with_the_request_reaches_the_connection() {
    let addr = serve(Upgrader::new()).await;
    let mut io = within("connect", TcpStream::connect(addr)).await.unwrap();
    // The request head and a first masked frame, in one write (one packet on loopback).
    let mut bytes = Req::valid().bytes();
    bytes.extend_from_slice(&masked(OpCode::Text, b"sent with the request"));
    within("write", io.write_all(&bytes)).await.unwrap();
    let mut client = Client::after_handshake(io).await;
    assert_eq!(client.response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(client.recv().await, Message::from("sent with the request"));
}

#[tokio::test]
async fn plain_http_route_beside_the_upgrade_and_non_upgrade_get() {
    let addr = serve(Upgrader::new()).await;
    let get = |path: &'static str| async move {
        let mut io = TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        io.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        io.read_to_string(&mut out).await.unwrap();
        out
    };
    let page = within("GET /", get("/")).await;
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(page.ends_with("\r\n\r\nplain http\n"), "{page}");
    // The upgrade route without upgrade headers: the core's 400 (no Upgrade: websocket).
    let refused = within("GET /ws", get("/ws")).await;
    assert!(refused.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{refused}");
}

#[tokio::test]
async fn connection_limit_and_shutdown_apply() {
    let shutdown = Shutdown::new();
    let upgrader = Upgrader::new().max_connections(Some(1)).shutdown(&shutdown);
    let addr = serve(upgrader.clone()).await;
    let (mut first, _) = within("dial", Dialer::new().connect(url(addr))).await.unwrap();
    within("send", first.send("x")).await.unwrap();
    assert_eq!(within("echo", first.recv()).await.unwrap(), Message::from("x"));
    assert_eq!(upgrader.live_connections(), 1);
    assert_eq!(shutdown.live(), 1);
    let (status, _) = refused(&Dialer::new(), addr).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    shutdown.trigger();
    match within("the shutdown close", first.recv()).await {
        Err(Error::Closed(close)) => assert_eq!(close.code, CloseCode::GOING_AWAY),
        other => panic!("expected close 1001, got {other:?}"),
    }
    assert!(shutdown.wait(common::WAIT).await);
    assert_eq!(upgrader.live_connections(), 0);
}
