//! A hyper 1 server (hyper-util) that serves an HTML page at `/` and a WebSocket echo at
//! `/ws`, with compression, through `Upgrader::upgrade_hyper` (feature `hyper`).
//!
//! ```text
//! cargo run -p ferrosocket --features hyper --example hyper -- [--listen 127.0.0.1:8080]
//! ```
//!
//! Prints `listening on ADDR` first, then open `http://ADDR/` in a browser. Ctrl-C stops it.

use bytes::Bytes;
use ferrosocket::{PeerAddr, Upgrader};
use http_body_util::{Either, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;

type Body = Either<Empty<Bytes>, Full<Bytes>>;

const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8"><title>ferrosocket hyper echo</title>
<input id="msg" value="hello"><button id="send">send</button><pre id="log"></pre>
<script>
const log = (line) => { document.getElementById("log").textContent += line + "\n"; };
const ws = new WebSocket(`ws://${location.host}/ws`);
ws.onopen = () => log("open");
ws.onmessage = (e) => log("received: " + e.data);
ws.onclose = (e) => log("closed: " + e.code);
document.getElementById("send").onclick = () => ws.send(document.getElementById("msg").value);
</script>
"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut listen = String::from("127.0.0.1:8080");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--listen", Some(addr)) => listen = addr,
            _ => return Err("usage: hyper [--listen ADDR]".into()),
        }
    }
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on {}", listener.local_addr()?);
    let upgrader = Upgrader::new().enable_compression(true);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let upgrader = upgrader.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| serve(upgrader.clone(), peer, req));
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            if let Err(e) = conn.await {
                eprintln!("{peer}: {e}");
            }
        });
    }
}

async fn serve(
    upgrader: Upgrader,
    peer: SocketAddr,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    match req.uri().path() {
        "/" => Ok(Response::new(Either::Right(Full::new(Bytes::from_static(
            PAGE.as_bytes(),
        ))))),
        "/ws" => {
            // The on_request callback (if any) sees the peer address through this extension.
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
        _ => {
            let mut response = Response::new(Either::Right(Full::new(Bytes::from_static(b"not found\n"))));
            *response.status_mut() = StatusCode::NOT_FOUND;
            Ok(response)
        }
    }
}
