//! `ferrosocket echo --stream` as a separate process, driven through the streamed-message API
//! of the library: a message far larger than the server's memory goes through the echo in
//! both directions at once, byte for byte, while the server's peak RSS stays small.
//!
//! The size is 1 GiB in release builds (CI runs `cargo test --release -p ferrosocket-cli --test
//! stream_echo`) and 64 MiB in debug builds; `FERROSOCKET_STREAM_BYTES` overrides it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ferrosocket::{Dialer, MessageKind};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// The server's peak resident set may not pass this.
const MAX_SERVER_RSS: u64 = 32 << 20;

/// The echo server, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Server {
    /// Peak resident set size, from /proc.
    fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib << 10
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_server(extra: &[&str]) -> (Server, String) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_ferrosocket"))
        .args([
            "echo",
            "--stream",
            "--quiet",
            "--threads",
            "1",
            "--listen",
            &listen,
        ])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    // Bounded wait for the port to accept.
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(&listen).await.is_ok() {
            return (server, format!("ws://{listen}/ws"));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the echo server did not start listening on {listen}");
}

/// The byte at offset `i` of the test message: cheap to make and to check, not periodic at
/// any chunk size.
fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 11)) as u8
}

fn message_size() -> u64 {
    if let Ok(v) = std::env::var("FERROSOCKET_STREAM_BYTES") {
        return v.parse().expect("FERROSOCKET_STREAM_BYTES is a byte count");
    }
    if cfg!(debug_assertions) { 64 << 20 } else { 1 << 30 }
}

/// Streams `size` bytes to the echo and checks them coming back, concurrently.
async fn stream_through(url: &str, size: u64, compression: bool) {
    let dialer = Dialer::new().enable_compression(compression);
    let (conn, _) = tokio::time::timeout(Duration::from_secs(10), dialer.connect(url))
        .await
        .unwrap()
        .unwrap();
    let (mut reader, writer) = conn.split();
    let send = tokio::spawn(async move {
        let mut message = writer.send_stream(MessageKind::Binary);
        let mut block = vec![0u8; 256 << 10];
        let mut at = 0u64;
        while at < size {
            let n = (size - at).min(block.len() as u64) as usize;
            for (k, b) in block[..n].iter_mut().enumerate() {
                *b = pattern(at + k as u64);
            }
            message.write_all(&block[..n]).await.unwrap();
            at += n as u64;
        }
        message.shutdown().await.unwrap();
        drop(message);
        writer
    });
    let mut message = reader.recv_stream().await.unwrap();
    assert_eq!(message.kind(), MessageKind::Binary);
    let mut at = 0u64;
    while let Some(chunk) = message.next_chunk().await.unwrap() {
        for (k, &b) in chunk.iter().enumerate() {
            assert_eq!(b, pattern(at + k as u64), "byte {} of the echo", at + k as u64);
        }
        at += chunk.len() as u64;
    }
    assert_eq!(at, size, "echoed message length");
    let writer = send.await.unwrap();
    writer.send_close(None).await.unwrap();
}

#[tokio::test]
async fn a_message_larger_than_memory_streams_through_the_echo() {
    let size = message_size();
    let (server, url) = start_server(&[]).await;
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(600), stream_through(&url, size, false))
        .await
        .expect("the streamed echo finished within 10 minutes");
    let rss = server.peak_rss();
    eprintln!(
        "streamed {size} bytes each way in {:.1} s; server peak RSS {:.1} MiB",
        started.elapsed().as_secs_f64(),
        rss as f64 / (1 << 20) as f64
    );
    assert!(rss < MAX_SERVER_RSS, "server peak RSS {rss} bytes");
}

#[tokio::test]
async fn compressed_streamed_messages_echo_byte_for_byte() {
    let (server, url) = start_server(&[]).await;
    for size in [0u64, 1, 125, 65_537, 3 << 20] {
        tokio::time::timeout(Duration::from_secs(60), stream_through(&url, size, true))
            .await
            .unwrap();
    }
    assert!(server.peak_rss() < MAX_SERVER_RSS);
}
