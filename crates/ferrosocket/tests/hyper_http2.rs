//! The server side of RFC 8441 (feature `http2`): `Upgrader::upgrade_hyper` behind hyper's
//! HTTP/2 server with extended CONNECT enabled, driven by hyper's HTTP/2 client by hand (not
//! ferrosocket's `Dialer`), over 127.0.0.1. WebSockets share one TCP connection, each stream
//! is flow-controlled on its own, malformed extended CONNECTs get their statuses, and a stream
//! that ends without a close frame is a 1006 on the server.

#![cfg(feature = "http2")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::{WAIT, within};
use ferrosocket::{CloseCode, CloseFrame, Conn, Error, Message, Role, Upgrader};
use http::{HeaderValue, Method, StatusCode, Version};
use http_body_util::{Either, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper::ext::Protocol;
use hyper::service::service_fn;
use hyper::upgrade::Upgraded;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

type Body = Either<Empty<Bytes>, Full<Bytes>>;

/// An HTTP/2 server (prior knowledge, no TLS) whose every request upgrades and echoes. Counts
/// TCP connections, and reports how each WebSocket ended.
struct Server {
    addr: SocketAddr,
    tcp_connections: Arc<AtomicUsize>,
    ends: mpsc::UnboundedReceiver<Error>,
}

async fn serve(upgrader: Upgrader) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tcp_connections = Arc::new(AtomicUsize::new(0));
    let (ends_tx, ends) = mpsc::unbounded_channel();
    let count = tcp_connections.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let (upgrader, ends_tx) = (upgrader.clone(), ends_tx.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req| route(upgrader.clone(), ends_tx.clone(), req));
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .enable_connect_protocol()
                    .initial_stream_window_size(ferrosocket::HTTP2_STREAM_WINDOW)
                    .initial_connection_window_size(ferrosocket::HTTP2_CONNECTION_WINDOW)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Server {
        addr,
        tcp_connections,
        ends,
    }
}

async fn route(
    upgrader: Upgrader,
    ends: mpsc::UnboundedSender<Error>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    match upgrader.upgrade_hyper(req) {
        Ok((response, upgrade)) => {
            tokio::spawn(async move {
                let Ok(mut conn) = upgrade.await else { return };
                let end = loop {
                    match conn.recv().await {
                        Ok(msg) => {
                            if let Err(e) = conn.send(msg).await {
                                break e;
                            }
                        }
                        Err(e) => break e,
                    }
                };
                let _ = ends.send(end);
            });
            Ok(response.map(Either::Left))
        }
        Err(refusal) => Ok(refusal.into_response().map(|b| Either::Right(Full::new(b)))),
    }
}

/// One HTTP/2 connection from hyper's client. Its first request (a GET, refused 405) also
/// proves the server's SETTINGS (extended CONNECT allowed) arrived before any CONNECT goes.
async fn h2_connect(addr: SocketAddr) -> SendRequest<Empty<Bytes>> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let get = Request::get(format!("http://{addr}/ws"))
        .body(Empty::new())
        .unwrap();
    let refused = within("a GET's answer", send.send_request(get)).await.unwrap();
    assert_eq!(refused.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(refused.headers()["allow"], "CONNECT");
    send
}

fn extended_connect(addr: SocketAddr, protocol: &'static str) -> http::request::Builder {
    let mut req = Request::builder()
        .method(Method::CONNECT)
        .version(Version::HTTP_2)
        .uri(format!("http://{addr}/ws"))
        .header("sec-websocket-version", "13");
    req.extensions_mut()
        .unwrap()
        .insert(Protocol::from_static(protocol));
    req
}

async fn open_stream(send: &mut SendRequest<Empty<Bytes>>, addr: SocketAddr) -> Conn<TokioIo<Upgraded>> {
    let req = extended_connect(addr, "websocket").body(Empty::new()).unwrap();
    let response = within("the 200", send.send_request(req)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("sec-websocket-accept").is_none());
    let upgraded = within("the stream", hyper::upgrade::on(response)).await.unwrap();
    Conn::from_raw(TokioIo::new(upgraded), Role::Client, Default::default(), &[])
}

#[tokio::test]
async fn many_websockets_echo_over_one_tcp_connection() {
    let server = serve(Upgrader::new()).await;
    let mut send = h2_connect(server.addr).await;
    let mut conns = Vec::new();
    for _ in 0..8 {
        conns.push(open_stream(&mut send, server.addr).await);
    }
    let mut tasks = Vec::new();
    for (i, mut conn) in conns.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for size in [0usize, 125, 126, 65_535, 65_536, 1 << 20] {
                let payload = Bytes::from(vec![i as u8; size]);
                conn.send(Message::binary(payload.clone())).await.unwrap();
                let echoed = within("an echo", conn.recv()).await.unwrap();
                assert_eq!(echoed.into_data(), payload, "stream {i}, {size} bytes");
            }
            conn.send(Message::text(format!("stream {i}"))).await.unwrap();
            assert_eq!(
                within("a text echo", conn.recv()).await.unwrap(),
                Message::text(format!("stream {i}"))
            );
            within(
                "the close handshake",
                conn.close(Some(CloseFrame::new(CloseCode::NORMAL_CLOSURE, "done"))),
            )
            .await
            .unwrap();
        }));
    }
    for task in tasks {
        within("a socket's run", task).await.unwrap();
    }
    let mut server = server;
    for _ in 0..8 {
        match within("a socket's end on the server", server.ends.recv()).await {
            Some(Error::Closed(e)) => {
                assert_eq!((e.code, e.reason.as_str()), (CloseCode::NORMAL_CLOSURE, "done"))
            }
            other => panic!("expected the client's close, got {other:?}"),
        }
    }
    assert_eq!(server.tcp_connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn malformed_extended_connects_get_their_statuses() {
    let upgrader = Upgrader::new();
    let server = serve(upgrader).await;
    let mut send = h2_connect(server.addr).await; // a GET: 405 with Allow: CONNECT

    let other = extended_connect(server.addr, "webtransport")
        .body(Empty::new())
        .unwrap();
    let r = within("501", send.send_request(other)).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_IMPLEMENTED);

    let mut old = extended_connect(server.addr, "websocket")
        .body(Empty::new())
        .unwrap();
    old.headers_mut()
        .insert("sec-websocket-version", HeaderValue::from_static("8"));
    let r = within("400", send.send_request(old)).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.headers()["sec-websocket-version"], "13");

    let mut foreign = extended_connect(server.addr, "websocket")
        .body(Empty::new())
        .unwrap();
    foreign
        .headers_mut()
        .insert("origin", HeaderValue::from_static("https://evil.example"));
    let r = within("403", send.send_request(foreign)).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // The connection is still good for a WebSocket after every refusal.
    let mut conn = open_stream(&mut send, server.addr).await;
    conn.send(Message::text("still here")).await.unwrap();
    assert_eq!(
        within("echo", conn.recv()).await.unwrap(),
        Message::text("still here")
    );
}

#[tokio::test]
async fn the_negotiated_subprotocol_and_compression_are_in_the_200() {
    let upgrader = Upgrader::new().subprotocols(["chat"]).enable_compression(true);
    let server = serve(upgrader).await;
    let mut send = h2_connect(server.addr).await;
    let mut req = extended_connect(server.addr, "websocket")
        .body(Empty::new())
        .unwrap();
    let h = req.headers_mut();
    h.insert("sec-websocket-protocol", HeaderValue::from_static("other, chat"));
    h.insert(
        "sec-websocket-extensions",
        HeaderValue::from_static("permessage-deflate"),
    );
    let r = within("200", send.send_request(req)).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["sec-websocket-protocol"], "chat");
    assert!(
        r.headers()["sec-websocket-extensions"]
            .to_str()
            .unwrap()
            .starts_with("permessage-deflate")
    );
}

/// One socket whose client never reads while the server's echo fills its stream window: the
/// other socket on the same connection keeps echoing.
///
/// The flood is sized to stall for sure: the server's echo blocks once the client's window
/// and hyper's send buffer are full, the server then stops reading, and the client fills the
/// server's stream window with unread input. The sibling echoes while the flood runs and
/// again once it has stopped moving. With hyper's default windows (1 MiB for one stream and
/// 1 MiB for the whole connection) the sibling's message sometimes never left the client
/// while the flood was filling the windows (about one run in a hundred); the server here
/// has `HTTP2_CONNECTION_WINDOW`.
#[tokio::test]
async fn a_stalled_socket_does_not_stall_its_siblings() {
    const CHUNKS: usize = 256; // 16 MiB of 64 KiB messages, far past every window
    let server = serve(Upgrader::new()).await;
    let mut send = h2_connect(server.addr).await;
    let mut stalled = open_stream(&mut send, server.addr).await;
    let mut live = open_stream(&mut send, server.addr).await;
    let sent = Arc::new(AtomicUsize::new(0));
    let progress = sent.clone();
    let flood = tokio::spawn(async move {
        let chunk = Bytes::from(vec![7u8; 64 << 10]);
        for _ in 0..CHUNKS {
            if stalled.send(Message::binary(chunk.clone())).await.is_err() {
                break;
            }
            progress.fetch_add(1, Ordering::SeqCst);
        }
        stalled
    });
    let echo = async |live: &mut Conn<TokioIo<Upgraded>>, i: usize| {
        live.send(Message::text(format!("{i}"))).await.unwrap();
        assert_eq!(
            within("a sibling's echo", live.recv()).await.unwrap(),
            Message::text(format!("{i}"))
        );
    };
    for i in 0..100 {
        echo(&mut live, i).await;
    }
    // Until the flood has not moved for 200 ms (at most WAIT).
    let (mut last, mut still) = (usize::MAX, 0);
    for _ in 0..WAIT.as_millis() / 20 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = sent.load(Ordering::SeqCst);
        (last, still) = (now, if now == last { still + 1 } else { 0 });
        if still == 10 {
            break;
        }
    }
    assert!(
        still == 10 && last < CHUNKS,
        "the flood should stall on flow control ({last} of {CHUNKS} sent)"
    );
    for i in 100..200 {
        echo(&mut live, i).await;
    }
    assert_eq!(sent.load(Ordering::SeqCst), last, "the flood stays stalled");
    flood.abort();
}

#[tokio::test]
async fn a_stream_ending_without_a_close_frame_is_1006_on_the_server() {
    let mut server = serve(Upgrader::new()).await;
    let mut send = h2_connect(server.addr).await;
    let mut conn = open_stream(&mut send, server.addr).await;
    conn.send(Message::text("hello")).await.unwrap();
    assert_eq!(within("echo", conn.recv()).await.unwrap(), Message::text("hello"));
    drop(conn); // the stream goes, with no close frame
    match within("the server's end", server.ends.recv()).await {
        Some(Error::Closed(e)) => assert_eq!(e.code, CloseCode::ABNORMAL_CLOSURE),
        other => panic!("expected a 1006, got {other:?}"),
    }
}
