//! The echo server over HTTP/2: the page and the WebSocket endpoint as streams of one
//! connection (RFC 8441 extended CONNECT), for a TLS connection whose ALPN chose `h2` or a
//! cleartext one that opened with the HTTP/2 preface (prior knowledge, "h2c").

use super::{Shared, open_line, refused_line};
use bytes::Bytes;
use ferrosocket::ShutdownToken;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::io::{AsyncRead, AsyncWrite};

/// HTTP/2 PING interval on a connection, and how long its answer may take.
const H2_KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(30);
const H2_KEEPALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// What a cleartext HTTP/2 connection starts with (RFC 9113 §3.4).
pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether a cleartext client opened with the HTTP/2 preface: its first four bytes are
/// `PRI `, which no HTTP/1.1 method is. Peeks (nothing is consumed); gives up after the
/// bytes stop coming for a second, and on any error, as HTTP/1.1 would.
pub(crate) async fn opens_with_preface(tcp: &tokio::net::TcpStream) -> bool {
    let mut first = [0u8; 4];
    for _ in 0..1000 {
        match tcp.peek(&mut first).await {
            Ok(n) if n < first.len() && n > 0 && first[..n] == PREFACE[..n] => {
                // Part of the preface so far: wait for the rest of the first bytes.
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            Ok(n) => return n == first.len() && first[..] == PREFACE[..first.len()],
            Err(_) => return false,
        }
    }
    false
}

/// Serves one HTTP/2 connection until the client leaves or the server shuts down (then the
/// connection says GOAWAY and its WebSockets get 1001 from their own shutdown tokens).
pub(crate) async fn serve<S>(shared: Arc<Shared>, io: S, addr: SocketAddr, stop: ShutdownToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = {
        let shared = shared.clone();
        service_fn(move |req| route(shared.clone(), addr, req))
    };
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    // A connection whose peer stops answering pings is closed, streams or not (a stream's
    // WebSocket has its own keepalive; this bounds a connection that carries none). A
    // connection window of 16 streams', so one socket that is not read leaves room for its
    // siblings.
    builder
        .enable_connect_protocol()
        .initial_stream_window_size(ferrosocket::HTTP2_STREAM_WINDOW)
        .initial_connection_window_size(ferrosocket::HTTP2_CONNECTION_WINDOW)
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_KEEPALIVE)
        .keep_alive_timeout(H2_KEEPALIVE_TIMEOUT);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        () = stop.triggered() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended
        && !shared.quiet
    {
        eprintln!("{addr} http/2 connection ended: {e}");
    }
}

async fn route(
    shared: Arc<Shared>,
    addr: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path();
    if path == shared.path {
        return Ok(upgrade(shared, addr, req));
    }
    let response = if path == "/" || path == "/index.html" {
        if !shared.quiet {
            println!("{addr} GET {path} over HTTP/2");
        }
        Response::builder()
            .header("content-type", "text/html; charset=utf-8")
            .header("cache-control", "no-store")
            .body(Full::new(Bytes::from(shared.page.clone())))
    } else {
        Response::builder()
            .status(StatusCode::NOT_FOUND)
            .header("content-type", "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from(format!(
                "not found: the page is at / and the websocket endpoint at {}\n",
                shared.path
            ))))
    };
    Ok(response.unwrap_or_else(|_| Response::new(Full::default())))
}

/// The WebSocket endpoint: the 200 (or the refusal) now, the echo once hyper hands the stream
/// over.
fn upgrade(shared: Arc<Shared>, addr: SocketAddr, req: Request<Incoming>) -> Response<Full<Bytes>> {
    match shared.upgrader.upgrade_hyper(req) {
        Ok((response, upgrade)) => {
            let stop = shared.shutdown.token();
            tokio::spawn(async move {
                let conn = match upgrade.await {
                    Ok(conn) => conn,
                    Err(e) => {
                        if !shared.quiet {
                            eprintln!("{}", refused_line(addr, &e));
                        }
                        return;
                    }
                };
                shared.connections.fetch_add(1, Ordering::Relaxed);
                if !shared.quiet {
                    println!("{}", open_line(addr, Some("HTTP/2"), conn.subprotocol()));
                }
                if shared.stream {
                    super::echo_streamed(conn, addr, shared.quiet, stop).await;
                } else {
                    super::echo(conn, addr, shared.quiet, stop).await;
                }
            });
            response.map(|_| Full::default())
        }
        Err(refusal) => {
            let (response, error) = refusal.into_parts();
            if !shared.quiet {
                eprintln!("{}", refused_line(addr, &error));
            }
            response.map(Full::new)
        }
    }
}
