//! An echo server with a page to try it from a browser (gorilla's `examples/echo`).
//!
//! Shows routing on the request with [`Upgrader::read_request`]: `GET /` answers a plain HTML
//! page, `GET /ws` is upgraded and every message is sent back, anything else gets 404.
//! Ctrl-C closes every connection with 1001 (going away) before the program exits.
//!
//! ```text
//! cargo run -p ferrosocket --example echo -- --listen 127.0.0.1:8080
//! ```
//! then open <http://127.0.0.1:8080/>, or run `cargo run -p ferrosocket --example client`.

#[allow(dead_code)]
#[path = "common/mod.rs"]
mod common;

use ferrosocket::{Shutdown, Upgrader};
use std::time::Duration;

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ferrosocket echo</title></head>
<body>
<p>Messages are sent to <code>/ws</code> and come back. <span id="status">connecting…</span></p>
<form id="form"><input id="msg" autocomplete="off" autofocus> <button>Send</button></form>
<ul id="log"></ul>
<script>
"use strict";
const log = (text) => {
  const li = document.createElement("li");
  li.textContent = text; // text, never HTML: messages are untrusted
  document.getElementById("log").append(li);
};
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
ws.onopen = () => { document.getElementById("status").textContent = "open"; };
ws.onclose = (ev) => { document.getElementById("status").textContent = "closed (" + ev.code + ")"; };
ws.onmessage = (ev) => log("received: " + ev.data);
document.getElementById("form").onsubmit = (ev) => {
  ev.preventDefault();
  const input = document.getElementById("msg");
  if (ws.readyState !== WebSocket.OPEN || input.value === "") return;
  ws.send(input.value);
  log("sent: " + input.value);
  input.value = "";
};
</script>
</body></html>
"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = common::listen(common::DEFAULT_LISTEN).await?;
    let upgrader = Upgrader::new();
    let shutdown = Shutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = tokio::signal::ctrl_c() => break,
        };
        let upgrader = upgrader.clone();
        let token = shutdown.token();
        tokio::spawn(async move {
            let Some(mut conn) = common::route(&upgrader, stream, PAGE).await else {
                return;
            };
            // After Ctrl-C, `recv` sends 1001 and finishes the close handshake itself.
            conn.set_shutdown(token);
            println!("{peer} connected");
            let end = loop {
                match conn.recv().await {
                    Ok(msg) => {
                        println!("{peer} sent: {}", common::printable(&msg));
                        if let Err(e) = conn.send(msg).await {
                            break e;
                        }
                    }
                    Err(e) => break e,
                }
            };
            println!("{peer} gone: {end}");
        });
    }
    println!("shutting down: closing {} connections with 1001", shutdown.live());
    shutdown.trigger();
    shutdown.wait(Duration::from_secs(5)).await;
    Ok(())
}
