//! Pushes a file's content to every open page whenever the file changes (gorilla's
//! `examples/filewatch`).
//!
//! One task polls the file's modification time and length every `--interval-ms` (default 500)
//! with tokio's timer, no file-notification dependency, and publishes each new content on a
//! `tokio::sync::watch` channel; every connection sends the current content when it opens and
//! the new one after each change. A connection that falls behind skips straight to the
//! latest content (a watch channel keeps only the last value), so a slow page costs nothing.
//!
//! ```text
//! cargo run -p ferrosocket --example filewatch -- --listen 127.0.0.1:8080 --file notes.txt
//! ```
//! then open <http://127.0.0.1:8080/> and edit `notes.txt`.

#[allow(dead_code)]
#[path = "common/mod.rs"]
mod common;

use ferrosocket::{Conn, Upgrader};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Files bigger than this are cut (a page is not the place for more).
const MAX_CONTENT: u64 = 1 << 20;

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ferrosocket filewatch</title></head>
<body>
<p>The file, as it is now: <span id="status">connecting…</span></p>
<pre id="file"></pre>
<script>
"use strict";
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
ws.onopen = () => { document.getElementById("status").textContent = "watching"; };
ws.onclose = (ev) => { document.getElementById("status").textContent = "closed (" + ev.code + ")"; };
ws.onmessage = (ev) => { document.getElementById("file").textContent = ev.data; };
</script>
</body></html>
"#;

/// What identifies a version of the file without reading it.
#[derive(PartialEq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

/// Reads the file (at most `MAX_CONTENT` bytes, invalid UTF-8 replaced), or says why not.
async fn read(path: &PathBuf) -> String {
    use tokio::io::AsyncReadExt;
    let mut content = Vec::new();
    let read = async {
        let file = tokio::fs::File::open(path).await?;
        file.take(MAX_CONTENT).read_to_end(&mut content).await
    };
    match read.await {
        Ok(_) => String::from_utf8_lossy(&content).into_owned(),
        Err(e) => format!("({}: {e})", path.display()),
    }
}

impl Stamp {
    async fn of(path: &PathBuf) -> Self {
        match tokio::fs::metadata(path).await {
            Ok(meta) => Stamp {
                modified: meta.modified().ok(),
                len: meta.len(),
            },
            Err(_) => Stamp {
                modified: None,
                len: u64::MAX, // gone: a change too, and again a change when it comes back
            },
        }
    }
}

/// Polls the file and publishes its content whenever its time or length changes. The stamp
/// is taken before the content is read: a write that lands during the read changes the
/// stamp, so the next poll reads again and the page never keeps a half-written version.
async fn watch_file(path: PathBuf, mut last: Stamp, interval: Duration, content: watch::Sender<String>) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let stamp = Stamp::of(&path).await;
        if stamp != last {
            last = stamp;
            let text = read(&path).await;
            println!("{} changed ({} bytes)", path.display(), text.len());
            content.send_replace(text);
        }
    }
}

/// One page: the current content now, then each new one, until the page goes away.
async fn serve(mut conn: Conn<TcpStream>, mut content: watch::Receiver<String>) {
    loop {
        let text = content.borrow_and_update().clone();
        if conn.send_text(text).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                changed = content.changed() => match changed {
                    Ok(()) => break,
                    Err(_) => return,
                },
                // The page sends nothing we use; reading notices it leaving and answers its pings.
                received = conn.recv() => if received.is_err() { return },
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = PathBuf::from(
        common::arg("file").ok_or("usage: filewatch --file PATH [--listen ADDR] [--interval-ms N]")?,
    );
    let interval = Duration::from_millis(common::arg_or("interval-ms", 500u64)?.max(10));
    let listener = common::listen(common::DEFAULT_LISTEN).await?;
    let stamp = Stamp::of(&path).await;
    let (content, _) = watch::channel(read(&path).await);
    let receiver = content.subscribe();
    tokio::spawn(watch_file(path, stamp, interval, content));
    let upgrader = Upgrader::new();
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = tokio::signal::ctrl_c() => break,
        };
        let (upgrader, receiver) = (upgrader.clone(), receiver.clone());
        tokio::spawn(async move {
            if let Some(conn) = common::route(&upgrader, stream, PAGE).await {
                serve(conn, receiver).await;
            }
        });
    }
    println!("shutting down");
    Ok(())
}
