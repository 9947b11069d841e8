//! The `hyper` example (`cargo run -p ferrosocket --features hyper --example hyper`): started on
//! port 0, it serves its page at `/` and echoes on `/ws` with compression.

#![cfg(feature = "hyper")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ferrosocket::{Dialer, Message};
use http::header::SEC_WEBSOCKET_EXTENSIONS;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(10);

/// The example binary `cargo test` built beside this test (`target/<profile>/examples/NAME`).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    profile_dir.join("examples").join(name)
}

/// The running example, killed (and reaped) when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the example on port 0 and reads the address from its first line.
fn start(name: &str, extra: &[&str]) -> (Running, SocketAddr) {
    let path = example(name);
    assert!(
        path.is_file(),
        "{} was not built (run through cargo test)",
        path.display()
    );
    let mut child = Command::new(&path)
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    // The first line comes within WAIT, or the reader thread's answer never arrives.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(WAIT).expect("the example printed its address");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .expect("listening on ADDR")
        .parse()
        .unwrap();
    (running, addr)
}

async fn check_page_and_echo(addr: SocketAddr) {
    tokio::time::timeout(WAIT, async {
        let mut io = TcpStream::connect(addr).await.unwrap();
        io.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut page = String::new();
        io.read_to_string(&mut page).await.unwrap();
        assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
        assert!(page.contains("new WebSocket("), "{page}");

        let dialer = Dialer::new().enable_compression(true);
        let (mut conn, response) = dialer.connect(format!("ws://{addr}/ws")).await.unwrap();
        assert!(
            response.headers().contains_key(SEC_WEBSOCKET_EXTENSIONS),
            "compression is on"
        );
        for msg in [
            Message::from("hello"),
            Message::from("x".repeat(100_000)),
            Message::from(vec![0u8, 255]),
        ] {
            conn.send(msg.clone()).await.unwrap();
            assert_eq!(conn.recv().await.unwrap(), msg);
        }
    })
    .await
    .expect("the example answered in time");
}

#[tokio::test]
async fn hyper_example_serves_page_and_echo() {
    let (_running, addr) = start("hyper", &[]);
    check_page_and_echo(addr).await;
}
