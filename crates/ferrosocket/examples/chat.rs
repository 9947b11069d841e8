//! A chat room (gorilla's `examples/chat`): every message a client sends is broadcast to every
//! connected client, and the page at `/` is the chat window.
//!
//! It shows:
//! - a **hub** task that owns the set of clients and is told about registrations,
//!   departures and messages over one channel (a Rust enum instead of gorilla's three
//!   channels: one `select!` fewer, same ordering);
//! - for each client, a **read pump** and a **write pump** running on the two halves of
//!   [`Conn::split`](ferrosocket::Conn::split), so a slow writer never stops the reader from
//!   answering pings;
//! - **keepalive** from the library ([`Upgrader::keepalive`]): the reader half pings a silent
//!   client and ends the connection when no answer comes (gorilla's ping period and pong
//!   wait, without the hand-written ticker and deadlines);
//! - a broadcast framed **once** as a [`PreparedMessage`], whatever the number of clients;
//! - a **slow client is dropped**, not waited for: each client has a bounded queue, and when
//!   it is full the hub removes the client (its pumps stop, its connection is closed) and
//!   goes on serving the others.
//!
//! ```text
//! cargo run -p ferrosocket --example chat -- --listen 127.0.0.1:8080
//! ```
//! then open <http://127.0.0.1:8080/> in two browser windows.

#[allow(dead_code)]
#[path = "common/mod.rs"]
mod common;

use ferrosocket::{Message, PreparedMessage, Shutdown, Upgrader};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Messages waiting for one client's write pump; a client that lets more pile up is dropped.
const CLIENT_QUEUE: usize = 64;
/// Ping a client after this much silence (gorilla's `pingPeriod`) ...
const PING_PERIOD: Duration = Duration::from_secs(54);
/// ... and drop it when nothing arrives this long after the ping (gorilla's `pongWait`).
const PONG_WAIT: Duration = Duration::from_secs(60);
/// Largest message a client may send (a chat line; gorilla takes 512 bytes).
const MAX_MESSAGE: usize = 64 << 10;

/// What the hub is told.
enum Event {
    /// A client connected: where to send it the broadcasts. Dropping the `Client` tells its
    /// pumps to stop.
    Register(SocketAddr, Client),
    /// A client's read pump ended.
    Unregister(SocketAddr),
    /// A client said something.
    Broadcast(Message),
}

/// The hub's handle on one client.
struct Client {
    queue: mpsc::Sender<Arc<PreparedMessage>>,
    /// Never sent on: dropped with the `Client`, which wakes the pumps at once, even one stuck
    /// writing to a peer that does not read.
    _kick: oneshot::Sender<()>,
}

/// Owns the clients; the only task that touches the set.
async fn hub(mut events: mpsc::Receiver<Event>) {
    let mut clients: HashMap<SocketAddr, Client> = HashMap::new();
    while let Some(event) = events.recv().await {
        match event {
            Event::Register(addr, client) => {
                clients.insert(addr, client);
                println!("{addr} joined ({} clients)", clients.len());
            }
            Event::Unregister(addr) => {
                if clients.remove(&addr).is_some() {
                    println!("{addr} left ({} clients)", clients.len());
                }
            }
            Event::Broadcast(msg) => {
                // Framed once here; every connection sends the same bytes.
                let prepared = Arc::new(PreparedMessage::new(msg));
                clients.retain(|addr, client| match client.queue.try_send(prepared.clone()) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        println!("{addr} dropped: too slow ({CLIENT_QUEUE} messages queued)");
                        false
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                });
            }
        }
    }
}

/// One client's life: register, run both pumps, unregister.
async fn serve_client(
    conn: ferrosocket::Conn<tokio::net::TcpStream>,
    addr: SocketAddr,
    hub: mpsc::Sender<Event>,
) {
    let (mut reader, writer) = conn.split();
    let (queue, mut outbox) = mpsc::channel::<Arc<PreparedMessage>>(CLIENT_QUEUE);
    let (kick, mut kicked) = oneshot::channel::<()>();
    let (writer_done, mut writer_gone) = oneshot::channel::<()>();
    if hub
        .send(Event::Register(addr, Client { queue, _kick: kick }))
        .await
        .is_err()
    {
        return;
    }

    // Write pump: sends what the hub queued, until the hub drops the client.
    let write_pump = tokio::spawn(async move {
        loop {
            tokio::select! {
                // The hub dropped us (too slow, or shutting down): stop, even mid-write.
                _ = &mut kicked => break,
                next = outbox.recv() => {
                    let Some(msg) = next else { break };
                    tokio::select! {
                        _ = &mut kicked => break,
                        sent = writer.send_prepared(&msg) => if sent.is_err() { break },
                    }
                }
            }
        }
        drop(writer_done);
    });

    // Read pump: hands every message to the hub, until the peer leaves, keepalive gives up,
    // or the write pump stopped.
    reader.set_read_limit(Some(MAX_MESSAGE));
    loop {
        tokio::select! {
            received = reader.recv() => match received {
                Ok(msg) => {
                    if hub.send(Event::Broadcast(msg)).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    if !e.is_normal_close() {
                        println!("{addr} error: {e}");
                    }
                    break;
                }
            },
            _ = &mut writer_gone => break,
        }
    }
    let _ = hub.send(Event::Unregister(addr)).await;
    let _ = write_pump.await;
}

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ferrosocket chat</title>
<style>
  body { font: 15px system-ui, sans-serif; margin: 1rem; }
  #log { height: 60vh; overflow-y: auto; border: 1px solid #888; padding: .5rem; margin: 0 0 .5rem;
         list-style: none; font-family: ui-monospace, monospace; }
  #msg { width: 30rem; }
</style></head>
<body>
<h1>ferrosocket chat <small id="status">connecting…</small></h1>
<ul id="log"></ul>
<form id="form"><input id="msg" autocomplete="off" autofocus> <button id="send">Send</button></form>
<script>
"use strict";
const log = document.getElementById("log");
const append = (text) => {
  const li = document.createElement("li");
  li.textContent = text; // text, never HTML: messages come from other people
  log.append(li);
  log.scrollTop = log.scrollHeight;
};
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
ws.onopen = () => { document.getElementById("status").textContent = "open"; };
ws.onclose = (ev) => {
  document.getElementById("status").textContent = "closed";
  append("connection closed (" + ev.code + ")");
};
ws.onmessage = (ev) => append(ev.data);
document.getElementById("form").onsubmit = (ev) => {
  ev.preventDefault();
  const input = document.getElementById("msg");
  if (ws.readyState !== WebSocket.OPEN || input.value === "") return;
  ws.send(input.value);
  input.value = "";
};
</script>
</body></html>
"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = common::listen(common::DEFAULT_LISTEN).await?;
    let upgrader = Upgrader::new().keepalive(PING_PERIOD, PONG_WAIT);
    let (events, inbox) = mpsc::channel(256);
    tokio::spawn(hub(inbox));
    let shutdown = Shutdown::new();
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = tokio::signal::ctrl_c() => break,
        };
        let (upgrader, events, token) = (upgrader.clone(), events.clone(), shutdown.token());
        tokio::spawn(async move {
            if let Some(mut conn) = common::route(&upgrader, stream, PAGE).await {
                // On Ctrl-C the reader half sends 1001 (going away) and ends the session.
                conn.set_shutdown(token);
                serve_client(conn, addr, events).await;
            }
        });
    }
    println!("shutting down: closing {} connections with 1001", shutdown.live());
    shutdown.trigger();
    shutdown.wait(Duration::from_secs(5)).await;
    Ok(())
}
