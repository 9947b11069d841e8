//! sockudo-ws 3.1 over HTTP/2 (RFC 8441): WebSockets as extended CONNECT streams on path `/ws`,
//! many on one TCP connection, in cleartext with prior knowledge (h2c: the client opens with the
//! HTTP/2 preface; no TLS, no `Upgrade: h2c`). sockudo-ws's HTTP/2 server takes any byte stream,
//! so it needs no TLS here.
//!
//! Without `--compress` it is the library's own server, as its README and `http2_echo` example
//! write it: `WebSocketServer<Http2>` with `Config::default()` (up to 100 streams a connection,
//! 1 MiB stream and 2 MiB connection windows), `serve_with_filter` to answer other paths 403,
//! and the example's echo loop (`next()`, then `send()` for each text or binary message:
//! `ferrosocket_bench_peers::sockudo::echo`).
//!
//! That server never answers `sec-websocket-extensions`, so with `--compress` the same steps are
//! done here: the `h2` handshake with the settings it uses (extended CONNECT enabled), then for
//! each request its `ExtendedConnectRequest`, permessage-deflate negotiated with
//! `negotiate_server_deflate` (`DeflateConfig::default()`, as sockudo-echo), the 200 answer from
//! `build_extended_connect_response`, and a `CompressedWebSocketStream` over `Stream<Http2>`
//! with `with_immediate_write_shutdown`, as its server makes the uncompressed one. One thread.

use bytes::Bytes;
use ferrosocket_bench_peers::sockudo::echo;
use http::StatusCode;
use sockudo_ws::deflate::{DeflateConfig, negotiate_server_deflate};
use sockudo_ws::{
    CompressedWebSocketStream, Config, ExtendedConnectRequest, Http2, Role, WebSocketServer, WebSocketStream,
    build_extended_connect_error, build_extended_connect_response,
};
use tokio::net::{TcpListener, TcpStream};

const NAME: &str = "sockudo-h2";
/// The one path WebSockets are served on.
const PATH: &str = "/ws";

/// One HTTP/2 connection served by sockudo-ws's `WebSocketServer<Http2>`.
async fn serve(server: WebSocketServer<Http2>, stream: TcpStream) {
    let on_path = |req: &ExtendedConnectRequest| req.path == PATH;
    let _ = server
        .serve_with_filter(stream, on_path, |ws, _req| echo(ws))
        .await;
}

/// One HTTP/2 connection with permessage-deflate: sockudo-ws's HTTP/2 server steps, plus the
/// `sec-websocket-extensions` answer.
async fn serve_deflate(stream: TcpStream, config: Config) -> Result<(), h2::Error> {
    let h2c = &config.http2;
    let mut builder = h2::server::Builder::new();
    builder
        .max_frame_size(h2c.max_frame_size)
        .initial_window_size(h2c.initial_stream_window_size)
        .initial_connection_window_size(h2c.initial_connection_window_size)
        .max_concurrent_streams(h2c.max_concurrent_streams)
        .enable_connect_protocol();
    let mut conn = builder.handshake(stream).await?;
    while let Some(request) = conn.accept().await {
        let (request, respond) = request?;
        tokio::spawn(answer(request, respond, config.clone()));
    }
    Ok(())
}

/// Answers one request: 200 and an echoed WebSocket for an extended CONNECT `websocket` on
/// `/ws`, an error status for anything else (403 for another path, as the filter of the
/// uncompressed server).
async fn answer(
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    config: Config,
) {
    // `h2` keeps `:protocol` in the request's extensions, not its headers.
    let protocol = request.extensions().get::<h2::ext::Protocol>();
    let status = match ExtendedConnectRequest::from_request(&request) {
        None => Some(StatusCode::METHOD_NOT_ALLOWED),
        Some(mut req) => {
            req.protocol = protocol.map(|p| p.as_str().to_owned());
            match req.validate() {
                Ok(()) if req.path != PATH => Some(StatusCode::FORBIDDEN),
                Ok(()) => None,
                Err(status) => Some(status),
            }
        }
    };
    if let Some(status) = status {
        let _ = respond.send_response(build_extended_connect_error(status, None), true);
        return;
    }
    let negotiated = request
        .headers()
        .get("sec-websocket-extensions")
        .and_then(|v| v.to_str().ok())
        .and_then(|offers| negotiate_server_deflate(offers, &DeflateConfig::default()));
    let header = negotiated.as_ref().map(|n| n.to_response_header());
    let response = build_extended_connect_response(None, header.as_deref());
    let Ok(send) = respond.send_response(response, false) else {
        return;
    };
    let stream = sockudo_ws::Stream::<Http2>::from_h2(send, request.into_body());
    match negotiated {
        Some(n) => {
            let ws = CompressedWebSocketStream::server(stream, config, n.config);
            echo(ws.with_immediate_write_shutdown()).await
        }
        None => {
            let ws = WebSocketStream::from_raw(stream, Role::Server, config);
            echo(ws.with_immediate_write_shutdown()).await
        }
    }
}

fn main() {
    let opts = match ferrosocket_bench_peers::options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{NAME}: {e}");
            std::process::exit(2);
        }
    };
    // sockudo-ws asks for its clock to be calibrated before the runtime starts.
    sockudo_ws::init_clock();
    let result: std::io::Result<()> = ferrosocket_bench_peers::runtime().and_then(|rt| {
        rt.block_on(async move {
            let listener = TcpListener::bind(opts.listen).await?;
            let deflate = if opts.compress { ", permessage-deflate" } else { "" };
            let addr = listener.local_addr()?;
            println!("{NAME}: listening on {addr} (h2c, WebSockets on {PATH}){deflate}");
            let config = Config::default();
            let server = WebSocketServer::<Http2>::new(config.clone());
            loop {
                let (stream, _) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                if opts.compress {
                    tokio::spawn(serve_deflate(stream, config.clone()));
                } else {
                    tokio::spawn(serve(server.clone(), stream));
                }
            }
        })
    });
    if let Err(e) = result {
        eprintln!("{NAME}: {e}");
        std::process::exit(1);
    }
}
