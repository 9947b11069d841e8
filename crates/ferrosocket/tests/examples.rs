//! The example programs (`examples/`), each run as a process and driven over 127.0.0.1.
//!
//! `cargo test -p ferrosocket` (and `--workspace`) builds the examples into
//! `target/<profile>/examples/`; these tests find them next to their own `deps/` directory.
//! `cargo test --test examples` alone does not build them: run
//! `cargo build -p ferrosocket --examples` first (a missing or outdated binary fails the test
//! with that advice rather than testing old code). Every server is started with
//! `--listen 127.0.0.1:0` and announces its address on its first line; children are killed
//! when a test ends, and every wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::within;
use ferrosocket::{CloseCode, CloseFrame, Dialer, Error, MaybeTlsStream, Message, Upgrader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// The compiled example `name`, checked to be newer than its sources.
fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = profile_dir.join("examples").join(name);
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; build the examples first: cargo build -p ferrosocket --examples",
                bin.display()
            )
        });
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for source in [sources.join(format!("{name}.rs")), sources.join("common/mod.rs")] {
        let changed = std::fs::metadata(&source).and_then(|m| m.modified()).unwrap();
        assert!(
            changed <= built,
            "{} is older than {}: rebuild with cargo build -p ferrosocket --examples",
            bin.display(),
            source.display()
        );
    }
    bin
}

/// A running example: killed when dropped; its standard output arrives line by line.
struct Running {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    addr: SocketAddr,
}

impl Running {
    /// Starts example `name` with `--listen 127.0.0.1:0` and `args`, and reads its address
    /// from its first line (`listening on ADDR`).
    async fn start(name: &str, args: &[&str]) -> Self {
        let mut child = Command::new(example_binary(name))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, mut lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = within("the example's first line", lines.recv()).await.unwrap();
        let addr = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line {first:?} does not say where it listens"))
            .parse()
            .unwrap();
        Self { child, lines, addr }
    }

    /// Waits for an output line containing `text` and returns it.
    async fn line_with(&mut self, text: &str) -> String {
        within(&format!("a line with {text:?}"), async {
            loop {
                let line = self.lines.recv().await.expect("the example ended");
                if line.contains(text) {
                    return line;
                }
            }
        })
        .await
    }

    /// An output line containing `text`, if one has arrived already (consumes what it reads).
    fn seen(&mut self, text: &str) -> bool {
        while let Ok(line) = self.lines.try_recv() {
            if line.contains(text) {
                return true;
            }
        }
        false
    }

    /// Sends SIGINT, what Ctrl-C sends.
    async fn interrupt(&mut self) {
        let pid = self.child.id().expect("the example already exited").to_string();
        let sent = Command::new("kill").args(["-INT", &pid]).status().await.unwrap();
        assert!(sent.success(), "kill -INT {pid} failed");
    }

    /// Waits for the program to exit; its exit status.
    async fn exited(&mut self) -> std::process::ExitStatus {
        within("the example to exit", self.child.wait()).await.unwrap()
    }

    fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    async fn dial(&self) -> ferrosocket::Conn<MaybeTlsStream> {
        let dialer = Dialer::new().proxy_from_env(false);
        within("connect", dialer.connect(self.ws_url())).await.unwrap().0
    }
}

/// `GET path` over a raw socket; the whole response as text.
async fn http_get(addr: SocketAddr, path: &str) -> String {
    within("http get", async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    })
    .await
}

async fn recv_text(conn: &mut ferrosocket::Conn<MaybeTlsStream>) -> String {
    match within("a message", conn.recv()).await.unwrap() {
        Message::Text(text) => text.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

#[tokio::test]
async fn echo_round_trips_messages_and_serves_its_page() {
    let echo = Running::start("echo", &[]).await;
    let mut conn = echo.dial().await;
    for text in ["hello", "héllo ✓ 🦀", ""] {
        within("send", conn.send_text(text)).await.unwrap();
        assert_eq!(recv_text(&mut conn).await, text);
    }
    within("send", conn.send_binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    assert_eq!(
        within("recv", conn.recv()).await.unwrap(),
        Message::binary(vec![0u8, 1, 2, 255])
    );
    let closed = within(
        "close",
        conn.close(Some(CloseFrame::new(CloseCode::NORMAL_CLOSURE, ""))),
    )
    .await
    .unwrap();
    assert_eq!(closed.code, CloseCode::NORMAL_CLOSURE);

    let page = http_get(echo.addr, "/").await;
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(page.contains("text/html"), "{page}");
    assert!(page.contains("new WebSocket("), "{page}");
    let missing = http_get(echo.addr, "/nope").await;
    assert!(missing.starts_with("HTTP/1.1 404 Not Found\r\n"), "{missing}");
}

#[tokio::test]
async fn echo_closes_its_connections_with_1001_on_ctrl_c() {
    let mut echo = Running::start("echo", &[]).await;
    let mut conn = echo.dial().await;
    echo.line_with("connected").await;
    echo.interrupt().await;
    // Our recv answers the server's close; the server then has no connection left and exits.
    match within("the close", conn.recv()).await {
        Err(Error::Closed(close)) => assert_eq!(close.code, CloseCode::GOING_AWAY),
        other => panic!("expected close 1001, got {other:?}"),
    }
    let status = echo.exited().await;
    assert!(status.success(), "{status}");
}

/// Runs the client example against `url`; its standard output.
async fn run_client(url: &str) -> String {
    let output = within(
        "the client example",
        Command::new(example_binary("client"))
            .args(["--url", url, "--count", "3"])
            .env_remove("http_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("all_proxy")
            .env_remove("ALL_PROXY")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "client failed ({}): {stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
async fn client_prints_replies_and_closes_with_1000() {
    // A server of the test's own: echoes and reports the close code it received.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut conn = Upgrader::new().accept(stream).await.unwrap();
        let mut seen = Vec::new();
        loop {
            match conn.recv().await {
                Ok(msg) => {
                    seen.push(msg.to_string());
                    conn.send(msg).await.unwrap();
                }
                Err(Error::Closed(close)) => return (seen, close),
                Err(e) => panic!("server: {e}"),
            }
        }
    });
    let stdout = run_client(&format!("ws://{addr}/ws")).await;
    for i in 1..=3 {
        assert!(stdout.contains(&format!("received: hello {i}\n")), "{stdout}");
    }
    assert!(stdout.contains("closed: 1000"), "{stdout}");
    let (seen, close) = within("the server", server).await.unwrap();
    assert_eq!(seen, ["hello 1", "hello 2", "hello 3"]);
    assert_eq!(close.code, CloseCode::NORMAL_CLOSURE);
    assert_eq!(close.reason, "bye");
}

#[tokio::test]
async fn client_works_against_the_echo_example() {
    let echo = Running::start("echo", &[]).await;
    let stdout = run_client(&echo.ws_url()).await;
    assert!(stdout.contains("received: hello 3\n"), "{stdout}");
    assert!(stdout.contains("closed: 1000"), "{stdout}");
}

#[tokio::test]
async fn chat_broadcasts_to_everyone_and_drops_a_client_that_does_not_read() {
    let mut chat = Running::start("chat", &[]).await;
    let mut reader = chat.dial().await;
    chat.line_with("joined (1 clients)").await;
    let mut idle = chat.dial().await;
    chat.line_with("joined (2 clients)").await;

    // A message from either reaches both.
    within("send", reader.send_text("from reader")).await.unwrap();
    assert_eq!(recv_text(&mut reader).await, "from reader");
    assert_eq!(recv_text(&mut idle).await, "from reader");
    within("send", idle.send_text("from idle")).await.unwrap();
    assert_eq!(recv_text(&mut reader).await, "from idle");
    assert_eq!(recv_text(&mut idle).await, "from idle");

    // `idle` stops reading. Broadcasts pile up in the socket buffers, then in its queue,
    // until the hub drops it; `reader` gets every message meanwhile.
    let big = "x".repeat(32 << 10);
    let mut sent = 0;
    while !chat.seen("dropped: too slow") {
        assert!(
            sent < 4000,
            "the idle client was not dropped after {sent} messages of 32 KiB"
        );
        let text = format!("{sent} {big}");
        within("send", reader.send_text(text.as_str())).await.unwrap();
        assert_eq!(recv_text(&mut reader).await, text);
        sent += 1;
    }
    within("send", reader.send_text("still here")).await.unwrap();
    assert_eq!(recv_text(&mut reader).await, "still here");

    // The dropped client's connection ends: what was buffered, then the end.
    within("the idle client's end", async {
        loop {
            match idle.recv().await {
                Ok(Message::Text(t)) => assert_ne!(t.as_str(), "still here"),
                Ok(other) => panic!("unexpected {other:?}"),
                Err(_) => break,
            }
        }
    })
    .await;
}

#[tokio::test]
async fn chat_closes_every_client_with_1001_on_ctrl_c() {
    let mut chat = Running::start("chat", &[]).await;
    let mut first = chat.dial().await;
    let mut second = chat.dial().await;
    chat.line_with("joined (2 clients)").await;
    chat.interrupt().await;
    for conn in [&mut first, &mut second] {
        match within("the close", conn.recv()).await {
            Err(Error::Closed(close)) => assert_eq!(close.code, CloseCode::GOING_AWAY),
            other => panic!("expected close 1001, got {other:?}"),
        }
    }
    let status = chat.exited().await;
    assert!(status.success(), "{status}");
}

/// The pid in a `ADDR started pid PID` line.
fn pid_in(line: &str) -> u32 {
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// Waits (bounded) until process `pid` is gone: no `/proc/PID`, so not even a zombie.
async fn gone(pid: u32) {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    within(&format!("pid {pid} to be reaped"), async {
        while proc_dir.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn command_connects_a_process_and_ends_with_it() {
    let script = r#"while read -r l; do if [ "$l" = exit ]; then exit 0; fi; echo "$l"; done"#;
    let mut command = Running::start("command", &["--", "sh", "-c", script]).await;

    // A message is a line in, the line out is a message; closing the socket kills the process.
    let mut conn = command.dial().await;
    let pid = pid_in(&command.line_with("started pid").await);
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    within("send", conn.send_text("hello process")).await.unwrap();
    assert_eq!(recv_text(&mut conn).await, "hello process");
    within(
        "close",
        conn.close(Some(CloseFrame::new(CloseCode::NORMAL_CLOSURE, ""))),
    )
    .await
    .unwrap();
    command.line_with(&format!("pid {pid} killed and reaped")).await;
    gone(pid).await;

    // The process exits: the socket is closed with 1000.
    let mut conn = command.dial().await;
    let pid = pid_in(&command.line_with("started pid").await);
    within("send", conn.send_text("one")).await.unwrap();
    assert_eq!(recv_text(&mut conn).await, "one");
    within("send", conn.send_text("exit")).await.unwrap();
    match within("the close", conn.recv()).await {
        Err(Error::Closed(close)) => {
            assert_eq!(close.code, CloseCode::NORMAL_CLOSURE);
            assert!(close.reason.starts_with("process exited"), "{close:?}");
        }
        other => panic!("expected close 1000, got {other:?}"),
    }
    gone(pid).await;
}

#[tokio::test]
async fn filewatch_pushes_the_new_content() {
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let path = std::env::temp_dir().join(format!(
        "ferrosocket-filewatch-{}-{stamp}.txt",
        std::process::id()
    ));
    std::fs::write(&path, "first version").unwrap();
    let watcher = Running::start(
        "filewatch",
        &["--file", path.to_str().unwrap(), "--interval-ms", "20"],
    )
    .await;
    let mut conn = watcher.dial().await;
    assert_eq!(recv_text(&mut conn).await, "first version");
    std::fs::write(&path, "second version, longer").unwrap();
    // A poll may catch the file half written (the new version follows at the next poll):
    // wait for the new content, whatever comes before it.
    within("the new content", async {
        while recv_text(&mut conn).await != "second version, longer" {}
    })
    .await;
    let _ = std::fs::remove_file(&path);
}

#[cfg(feature = "rustls")]
#[tokio::test]
async fn tls_example_checks_itself() {
    let output = within(
        "the tls example",
        Command::new(example_binary("tls")).kill_on_drop(true).output(),
    )
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "tls failed ({}): {stdout}",
        output.status
    );
    assert!(stdout.starts_with("listening on 127.0.0.1:"), "{stdout}");
    assert!(stdout.contains("tls: ok: wss://localhost:"), "{stdout}");
    assert!(stdout.contains("closed with 1000"), "{stdout}");
}

#[cfg(feature = "rustls")]
#[tokio::test]
async fn tls_example_serves_a_certificate_from_pem_files() {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = std::env::temp_dir();
    let stem = format!("ferrosocket-tls-example-{}", std::process::id());
    let (cert, key) = (dir.join(format!("{stem}.crt")), dir.join(format!("{stem}.key")));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let output = within(
        "the tls example",
        Command::new(example_binary("tls"))
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    let _ = (std::fs::remove_file(&cert), std::fs::remove_file(&key));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "tls failed ({}): {stdout}",
        output.status
    );
    assert!(!stdout.contains("self-signed certificate"), "{stdout}");
    assert!(stdout.contains("tls: ok: wss://localhost:"), "{stdout}");
}

/// The `hyper` example (`cargo run -p ferrosocket --features hyper --example hyper`): its page
/// at `/`, and a compressed echo at `/ws`.
#[cfg(feature = "hyper")]
#[tokio::test]
async fn hyper_example_serves_its_page_and_a_compressed_echo() {
    let server = Running::start("hyper", &[]).await;
    let page = http_get(server.addr, "/").await;
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(page.contains("new WebSocket("), "{page}");

    let dialer = Dialer::new().proxy_from_env(false).enable_compression(true);
    let (mut conn, response) = within("connect", dialer.connect(server.ws_url())).await.unwrap();
    assert!(
        response
            .headers()
            .contains_key(http::header::SEC_WEBSOCKET_EXTENSIONS),
        "compression is on"
    );
    for msg in [
        Message::from("hello"),
        Message::from("x".repeat(100_000)),
        Message::from(vec![0u8, 255]),
    ] {
        within("send", conn.send(msg.clone())).await.unwrap();
        assert_eq!(within("recv", conn.recv()).await.unwrap(), msg);
    }
}
