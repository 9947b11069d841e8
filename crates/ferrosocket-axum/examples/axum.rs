//! An axum app with an HTML page at `/` and a WebSocket echo at `/ws` (compression on), through
//! ferrosocket-axum's `WebSocketUpgrade`, configured once in the app's state.
//!
//! ```text
//! cargo run -p ferrosocket-axum --example axum -- [--listen 127.0.0.1:8080] [--any-origin] [--quiet]
//! ```
//!
//! Prints `listening on ADDR` first; open `http://ADDR/` in a browser. `--any-origin` accepts
//! pages of any origin (the default is same origin only). Ctrl-C closes every WebSocket with
//! 1001 and stops. `cargo xtask autobahn server --axum` runs the Autobahn server suite (517
//! cases) against this app.

use axum::Router;
use axum::extract::State;
use axum::response::{Html, Response};
use axum::routing::{any, get};
use ferrosocket::{Shutdown, Upgrader};
use ferrosocket_axum::{WebSocket, WebSocketUpgrade};
use std::time::Duration;

const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8"><title>ferrosocket axum echo</title>
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

#[derive(Clone)]
struct App {
    upgrader: Upgrader,
    quiet: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut listen = String::from("127.0.0.1:8080");
    let mut any_origin = false;
    let mut quiet = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().ok_or("--listen needs an address")?,
            "--any-origin" => any_origin = true,
            "--quiet" => quiet = true,
            _ => return Err("usage: axum [--listen ADDR] [--any-origin] [--quiet]".into()),
        }
    }
    let shutdown = Shutdown::new();
    // Compression with context takeover, the default 64 MiB message limit (Autobahn needs 16).
    let mut upgrader = Upgrader::new().enable_compression(true).shutdown(&shutdown);
    if any_origin {
        upgrader = upgrader.check_origin(|_| true);
    }
    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        // `any`: a GET over HTTP/1.1, a CONNECT over HTTP/2 (axum serves h2c with its `http2` feature).
        .route("/ws", any(ws))
        .with_state(App { upgrader, quiet });
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    shutdown.trigger();
    shutdown.wait(Duration::from_secs(5)).await;
    Ok(())
}

async fn ws(State(app): State<App>, ws: WebSocketUpgrade) -> Response {
    let quiet = app.quiet;
    ws.with_upgrader(app.upgrader)
        .on_failed_upgrade(move |e| {
            if !quiet {
                eprintln!("upgrade failed: {e}");
            }
        })
        .on_upgrade(echo)
}

/// Echoes every message whole; replies queued with `feed` leave together when `recv` waits.
async fn echo(mut socket: WebSocket) {
    while let Ok(msg) = socket.recv().await {
        if socket.feed(msg).await.is_err() {
            break;
        }
    }
}
