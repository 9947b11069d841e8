//! `ferrosocket echo --metrics ADDR` as a separate process: after known traffic (three messages
//! of ten bytes, a close with 4000, a refused handshake), a plain HTTP GET of the endpoint shows
//! the exact counts in the Prometheus text format.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ferrosocket::{CloseCode, CloseFrame, Dialer, Message};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The echo server, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the echo server on port 0 with metrics on port 0; returns it with the WebSocket and
/// metrics addresses it printed.
fn start() -> (Server, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrosocket"))
        .args([
            "echo",
            "--quiet",
            "--threads",
            "1",
            "--listen",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut ws, mut metrics) = (None, None);
    while ws.is_none() || metrics.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the echo server printed its addresses within 10 s");
        if let Some(rest) = line.split("metrics at http://").nth(1) {
            metrics = Some(rest.trim_end_matches("/metrics").to_owned());
        }
        if let Some(rest) = line.split("listening on ws://").nth(1) {
            // `ws://127.0.0.1:PORT/ws (page at ...)`: keep the address.
            ws = Some(rest.split(['/', ' ']).next().unwrap().to_owned());
        }
    }
    (server, ws.unwrap(), metrics.unwrap())
}

/// One HTTP/1.1 GET over a plain TCP connection: the status line and the body.
async fn get(addr: &str, path: &str) -> (String, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

const EXPECTED: &[&str] = &[
    "ferrosocket_connections_accepted_total 1",
    "ferrosocket_connections_rejected_total{status=\"400\"} 1",
    "ferrosocket_connections_open{role=\"server\"} 0",
    "ferrosocket_messages_received_total{role=\"server\"} 3",
    "ferrosocket_messages_sent_total{role=\"server\"} 3",
    "ferrosocket_payload_bytes_received_total{role=\"server\"} 30",
    "ferrosocket_payload_bytes_sent_total{role=\"server\"} 30",
    // 3 x (2 header + 4 mask + 10) + close (2 + 4 + 2 code + "bye").
    "ferrosocket_wire_bytes_received_total{role=\"server\"} 59",
    // 3 x (2 + 10) + the close reply (the code echoed without the reason).
    "ferrosocket_wire_bytes_sent_total{role=\"server\"} 40",
    "ferrosocket_close_frames_received_total{role=\"server\",code=\"4xxx\"} 1",
    "ferrosocket_close_frames_sent_total{role=\"server\",code=\"4xxx\"} 1",
    "ferrosocket_queued_bytes{role=\"server\"} 0",
];

#[tokio::test]
async fn echo_serves_prometheus_metrics_that_count_the_traffic() {
    let (_server, ws, metrics) = start();

    let (mut conn, _) = Dialer::new()
        .proxy_from_env(false)
        .connect(format!("ws://{ws}/ws"))
        .await
        .unwrap();
    for i in 0..3 {
        let text = format!("message {i:02}");
        conn.send(Message::text(text.clone())).await.unwrap();
        assert_eq!(conn.recv().await.unwrap().as_text(), Some(text.as_str()));
    }
    let end = conn
        .close(Some(CloseFrame::new(CloseCode::from(4000), "bye")))
        .await
        .unwrap();
    assert_eq!(end.code, CloseCode::from(4000));

    // Not a WebSocket request (no Sec-WebSocket-Key): the Upgrader answers 400.
    let mut tcp = TcpStream::connect(&ws).await.unwrap();
    tcp.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 400"));

    // The server finishes the connection in its own task: scrape until it has (bounded).
    let mut body = String::new();
    for _ in 0..100 {
        let (status, text) = get(&metrics, "/metrics").await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        body = text;
        if EXPECTED.iter().all(|line| body.lines().any(|l| l == *line)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for line in EXPECTED {
        assert!(body.lines().any(|l| l == *line), "missing {line:?} in:\n{body}");
    }
    assert!(
        body.contains("# HELP ferrosocket_messages_received_total"),
        "described:\n{body}"
    );

    // `/` serves the same text; other paths are 404.
    let (status, root) = get(&metrics, "/").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(root.contains("ferrosocket_connections_accepted_total 1"));
    assert_eq!(get(&metrics, "/nope").await.0, "HTTP/1.1 404 Not Found");
}
