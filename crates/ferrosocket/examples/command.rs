//! A program's standard input and output over a WebSocket (gorilla's `examples/command`).
//!
//! Every connection to `/ws` starts its own copy of the command: each message the page sends
//! becomes a line on the command's standard input, each line the command prints becomes a
//! text message. When the socket closes, the process is killed and reaped; when the process
//! exits, the socket is closed with 1000 and the exit status as the reason.
//!
//! ```text
//! cargo run -p ferrosocket --example command                       # runs `cat`
//! cargo run -p ferrosocket --example command -- --listen 127.0.0.1:8080 -- sh -c 'while read l; do echo "you said: $l"; done'
//! ```
//! then open <http://127.0.0.1:8080/>. For each connection it prints
//! `ADDR started pid PID`, so the process can be followed.
//!
//! Do not expose it beyond your machine: anyone who reaches the port runs the command.

#[allow(dead_code)]
#[path = "common/mod.rs"]
mod common;

use ferrosocket::{CloseCode, CloseFrame, Conn, Message, Upgrader};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// Longest message (and so line) accepted from the page.
const MAX_MESSAGE: usize = 64 << 10;
/// How long a process that closed its standard output may take to exit before it is killed.
const EXIT_WAIT: Duration = Duration::from_secs(1);

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ferrosocket command</title></head>
<body>
<p>Lines typed here go to the command's standard input; its output appears below.
<span id="status">connecting…</span></p>
<form id="form"><input id="msg" autocomplete="off" autofocus> <button>Send</button></form>
<pre id="out"></pre>
<script>
"use strict";
const out = document.getElementById("out");
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
ws.onopen = () => { document.getElementById("status").textContent = "open"; };
ws.onclose = (ev) => {
  document.getElementById("status").textContent = "closed (" + ev.code + " " + ev.reason + ")";
};
ws.onmessage = (ev) => { out.textContent += ev.data + "\n"; };
document.getElementById("form").onsubmit = (ev) => {
  ev.preventDefault();
  const input = document.getElementById("msg");
  if (ws.readyState === WebSocket.OPEN) ws.send(input.value);
  input.value = "";
};
</script>
</body></html>
"#;

/// Runs one copy of `command` for the connection, until either side ends.
async fn run(mut conn: Conn<TcpStream>, addr: SocketAddr, command: Arc<Vec<String>>) {
    let Some((program, args)) = command.split_first() else {
        return;
    };
    let spawned = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true) // a last resort; the paths below kill and reap it themselves
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let reason = format!("cannot start {program}: {e}");
            eprintln!("{addr} {reason}");
            let reason: String = reason.chars().take(100).collect(); // a close reason is short
            let _ = conn
                .close(Some(CloseFrame::new(CloseCode::INTERNAL_ERROR, reason)))
                .await;
            return;
        }
    };
    println!("{addr} started pid {}", child.id().unwrap_or(0));
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        stop(&mut child, addr).await;
        return;
    };
    let mut lines = BufReader::new(stdout).lines();

    // Output pump: its own task, so the process never blocks on a full stdout pipe while we
    // are busy writing to its stdin. It hands the writer back when the output ends.
    let (mut reader, writer) = conn.split();
    let mut output = tokio::spawn(async move {
        loop {
            match lines.next_line().await {
                Ok(Some(line)) => {
                    if writer.send_text(line).await.is_err() {
                        return (writer, false);
                    }
                }
                // End of output (or unreadable output): the process is done with us.
                Ok(None) | Err(_) => return (writer, true),
            }
        }
    });

    // Input: each message becomes a line on the process's stdin.
    let writer = loop {
        tokio::select! {
            received = reader.recv() => match received {
                Ok(msg) => {
                    let mut line = match msg {
                        Message::Text(text) => text.as_bytes().to_vec(),
                        Message::Binary(bytes) => bytes.to_vec(),
                    };
                    line.push(b'\n');
                    // An error means the process stopped reading; its exit ends the output.
                    let _ = stdin.write_all(&line).await;
                }
                Err(e) => {
                    println!("{addr} socket closed ({e}): killing pid {}", child.id().unwrap_or(0));
                    output.abort();
                    stop(&mut child, addr).await;
                    return;
                }
            },
            pumped = &mut output => match pumped {
                Ok((writer, true)) => break writer,
                _ => {
                    stop(&mut child, addr).await;
                    return;
                }
            },
        }
    };
    drop(stdin);
    let status = match tokio::time::timeout(EXIT_WAIT, child.wait()).await {
        Ok(Ok(status)) => status.to_string(),
        _ => {
            stop(&mut child, addr).await;
            "killed".to_owned()
        }
    };
    println!("{addr} process exited ({status}): closing with 1000");
    let frame = CloseFrame::new(CloseCode::NORMAL_CLOSURE, format!("process exited: {status}"));
    if let Ok(mut conn) = reader.reunite(writer) {
        let _ = conn.close(Some(frame)).await;
    }
}

/// Kills the process and waits for it, so it does not stay a zombie.
async fn stop(child: &mut Child, addr: SocketAddr) {
    let pid = child.id().unwrap_or(0);
    match child.kill().await {
        Ok(()) => println!("{addr} pid {pid} killed and reaped"),
        Err(e) => eprintln!("{addr} cannot kill pid {pid}: {e}"),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut command: Vec<String> = std::env::args().skip_while(|a| a != "--").skip(1).collect();
    if command.is_empty() {
        command.push("cat".to_owned());
    }
    let command = Arc::new(command);
    let listener = common::listen(common::DEFAULT_LISTEN).await?;
    let upgrader = Upgrader::new().max_message_size(Some(MAX_MESSAGE));
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = tokio::signal::ctrl_c() => break,
        };
        let (upgrader, command) = (upgrader.clone(), command.clone());
        tokio::spawn(async move {
            if let Some(conn) = common::route(&upgrader, stream, PAGE).await {
                run(conn, addr, command).await;
            }
        });
    }
    // Returning drops the tasks, and with them every child (`kill_on_drop`).
    println!("shutting down");
    Ok(())
}
