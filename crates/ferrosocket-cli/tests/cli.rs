//! The `ferrosocket` binary end to end, on 127.0.0.1: what `echo` prints about untrusted
//! peers, its `--path`, `--listen` and `--subprotocol`, what it says when it cannot start and
//! when it stops, `bench` without a server, and the help texts. Every wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ferrosocket::{CloseCode, CloseFrame, Dialer, Message};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::time::timeout;

const BIN: &str = env!("CARGO_BIN_EXE_ferrosocket");
/// Bound on every single wait.
const WAIT: Duration = Duration::from_secs(10);

/// A running `ferrosocket echo`, killed when dropped; its output lines arrive on channels.
struct Echo {
    child: Child,
    /// `host:port` it listens on (from its first line).
    addr: String,
    stdout: UnboundedReceiver<String>,
    stderr: UnboundedReceiver<String>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Forwards `reader`'s lines to a channel, from a thread of its own.
fn lines(reader: impl std::io::Read + Send + 'static) -> UnboundedReceiver<String> {
    let (tx, rx) = unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

impl Echo {
    /// Starts `ferrosocket echo ARGS` (on 127.0.0.1:0 unless ARGS say `--listen`) and reads
    /// its address from the first line.
    async fn start(args: &[&str]) -> Echo {
        let mut cmd = Command::new(BIN);
        cmd.args(["echo", "--threads", "1"]).args(args);
        if !args.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = lines(child.stdout.take().unwrap());
        let stderr = lines(child.stderr.take().unwrap());
        let first = timeout(WAIT, stdout.recv())
            .await
            .expect("the echo server printed its address in time")
            .expect("the echo server printed a first line");
        let rest = first
            .split_once("listening on ws://")
            .unwrap_or_else(|| panic!("first line: {first}"))
            .1;
        let addr = rest[..rest.find('/').unwrap()].to_owned();
        Echo {
            child,
            addr,
            stdout,
            stderr,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// SIGTERM, then waits (bounded) for the exit; returns the status and the rest of stdout
    /// and stderr.
    async fn stop(mut self) -> (ExitStatus, Vec<String>, Vec<String>) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let mut status = None;
        for _ in 0..500 {
            if let Some(s) = self.child.try_wait().unwrap() {
                status = Some(s);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let status = status.expect("the echo server exited within 10 s of SIGTERM");
        let out = drain(&mut self.stdout).await;
        let err = drain(&mut self.stderr).await;
        (status, out, err)
    }
}

/// Every line until the channel closes (the process ended), bounded.
async fn drain(rx: &mut UnboundedReceiver<String>) -> Vec<String> {
    let mut all = Vec::new();
    while let Some(line) = timeout(WAIT, rx.recv()).await.expect("output ended in time") {
        all.push(line);
    }
    all
}

/// Reads lines until one satisfies `want`; panics with what was seen after [`WAIT`].
async fn expect_line(rx: &mut UnboundedReceiver<String>, want: impl Fn(&str) -> bool) -> String {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(line)) if want(&line) => return line,
            Ok(Some(line)) => seen.push(line),
            Ok(None) | Err(_) => panic!("no such line; saw {seen:#?}"),
        }
    }
}

/// Runs the binary to completion (bounded): `ferrosocket ARGS < stdin`.
async fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = tokio::process::Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).await.unwrap();
    drop(input);
    timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("the command finished within 30 s")
        .unwrap()
}

/// A hand-written upgrade request; returns the response head.
async fn raw_handshake(addr: &str, path: &str, extra: &str) -> String {
    let mut s = timeout(WAIT, TcpStream::connect(addr)).await.unwrap().unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = timeout(WAIT, s.read(&mut byte)).await.unwrap().unwrap();
        assert!(n == 1, "connection ended in the response head: {head:?}");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// `GET path` on a fresh connection; the whole response (the server closes after it).
async fn http_get(addr: &str, path: &str) -> String {
    let mut s = timeout(WAIT, TcpStream::connect(addr)).await.unwrap().unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut all = Vec::new();
    timeout(WAIT, s.read_to_end(&mut all)).await.unwrap().unwrap();
    String::from_utf8(all).unwrap()
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn untrusted_messages_are_escaped_and_cut_short() {
    let mut echo = Echo::start(&[]).await;
    let (mut conn, _) = timeout(WAIT, Dialer::new().connect(echo.url("/ws")))
        .await
        .unwrap()
        .unwrap();
    let forged = "hi\n127.0.0.1:1 sent: forged\r\x1b[31mred\u{9b}2J\x7f";
    let huge = format!("\n{}", "x".repeat(1 << 20));
    conn.send(Message::text(forged)).await.unwrap();
    conn.send(Message::text(huge.clone())).await.unwrap();
    conn.send(Message::binary(vec![0x1b, b'\n', 0xff])).await.unwrap();
    for _ in 0..3 {
        timeout(WAIT, conn.recv()).await.unwrap().unwrap();
    }
    let mut sent = Vec::new();
    for _ in 0..3 {
        sent.push(expect_line(&mut echo.stdout, |l| l.contains(" sent: ")).await);
    }
    assert!(
        sent[0].ends_with(r" sent: hi\n127.0.0.1:1 sent: forged\r\u{1b}[31mred\u{9b}2J\u{7f}"),
        "{}",
        sent[0]
    );
    let cut = format!(r" sent: \n{}… ({} more bytes)", "x".repeat(199), huge.len() - 200);
    assert!(
        sent[1].ends_with(&cut),
        "{} bytes: {:.80}",
        sent[1].len(),
        sent[1]
    );
    assert!(
        sent[1].len() < 300,
        "a 1 MiB message became a {} byte line",
        sent[1].len()
    );
    assert!(
        sent[2].ends_with(" sent: <binary 3 bytes: 1b0aff>"),
        "{}",
        sent[2]
    );
    for line in &sent {
        assert!(!line.contains(['\x1b', '\u{9b}', '\x7f', '\r']), "{line:?}");
    }
    let peer = conn.local_addr().unwrap().to_string();
    conn.close(Some(CloseFrame::new(CloseCode::NORMAL_CLOSURE, "")))
        .await
        .unwrap();
    let (status, rest, _) = echo.stop().await;
    assert!(status.success());
    // Every line is the server's own: none was started by the peer's text.
    for line in sent.iter().chain(&rest) {
        assert!(
            line.starts_with(&format!("{peer} ")) || line.starts_with("ferrosocket echo: "),
            "{line:.120}"
        );
    }
}

#[tokio::test]
async fn a_path_without_its_slash_is_normalised_and_escaped_in_the_page() {
    let echo = Echo::start(&["--path", "api/it's"]).await;
    // The banner and the page use /api/it's; the page as an escaped JavaScript literal.
    let page = http_get(&echo.addr, "/").await;
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page:.100}");
    assert!(page.contains(r#"const path = "/api/it\u0027s";"#), "{page}");
    let head = raw_handshake(&echo.addr, "/api/it's", "").await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let head = http_get(&echo.addr, "/api/other").await;
    assert!(head.starts_with("HTTP/1.1 404 "), "{head}");
    let (status, ..) = echo.stop().await;
    assert!(status.success());
}

#[tokio::test]
async fn paths_that_are_not_uri_paths_are_refused_before_listening() {
    for (path, says) in [
        ("/a b", "percent-encode"),
        ("/\"</script>", "percent-encode"),
        ("/ws?token=1", "query"),
        ("/", "page"),
    ] {
        let out = run(&["echo", "--listen", "127.0.0.1:0", "--path", path], b"").await;
        assert_eq!(out.status.code(), Some(2), "--path {path:?}");
        assert!(out.stdout.is_empty(), "--path {path:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--path") && err.contains(says),
            "--path {path:?}: {err}"
        );
    }
}

#[tokio::test]
async fn listen_accepts_a_host_name_and_clients_dial_one() {
    let echo = Echo::start(&["--listen", "localhost:0", "--quiet"]).await;
    let port = echo.addr.rsplit_once(':').unwrap().1.to_owned();
    assert!(
        echo.addr.starts_with("127.0.0.1:") || echo.addr.starts_with("[::1]:"),
        "{}",
        echo.addr
    );
    let url = format!("ws://localhost:{port}/ws");
    let (mut conn, _) = timeout(WAIT, Dialer::new().connect(url.as_str()))
        .await
        .unwrap()
        .unwrap();
    conn.send(Message::text("by name")).await.unwrap();
    let reply = timeout(WAIT, conn.recv()).await.unwrap().unwrap();
    assert_eq!(reply, Message::text("by name"));
    conn.close(None).await.unwrap();
    // bench resolves the name too.
    let out = run(
        &["bench", &url, "--connections", "2", "--messages", "20", "--json"],
        b"",
    )
    .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["connections"].as_u64(), report["messages"].as_u64()),
        (Some(2), Some(20))
    );
    drop(echo);
}

#[tokio::test]
async fn an_address_in_use_is_named_with_a_hint() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(&["echo", "--listen", &addr], b"").await;
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!("ferrosocket: cannot listen on {addr}: ")),
        "{err}"
    );
    assert!(err.contains("--listen"), "{err}");

    let out = run(&["echo", "--listen", "localhost"], b"").await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"localhost\"") && err.contains("HOST:PORT"),
        "{err}"
    );
}

/// The traffic both logging tests send: one session closed normally, one refused handshake.
async fn session_and_refusal(echo: &Echo) {
    let (mut conn, _) = timeout(WAIT, Dialer::new().connect(echo.url("/ws")))
        .await
        .unwrap()
        .unwrap();
    conn.send(Message::text("one")).await.unwrap();
    timeout(WAIT, conn.recv()).await.unwrap().unwrap();
    let end = timeout(
        WAIT,
        conn.close(Some(CloseFrame::new(CloseCode::NORMAL_CLOSURE, "bye"))),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(end.code, CloseCode::NORMAL_CLOSURE);
    let head = raw_handshake(&echo.addr, "/ws", "Origin: http://evil.example\r\n").await;
    assert!(head.starts_with("HTTP/1.1 403 "), "{head}");
}

#[tokio::test]
async fn connections_are_logged_and_the_server_says_when_it_stopped() {
    let mut echo = Echo::start(&[]).await;
    session_and_refusal(&echo).await;
    let opened = expect_line(&mut echo.stdout, |l| l.ends_with(" connected")).await;
    let peer = opened.trim_end_matches(" connected").to_owned();
    expect_line(&mut echo.stdout, |l| l == format!("{peer} sent: one")).await;
    expect_line(&mut echo.stdout, |l| {
        l == format!("{peer} closed: 1000 (normal closure): bye")
    })
    .await;
    let refused = expect_line(&mut echo.stderr, |l| l.contains("origin not allowed")).await;
    assert!(
        refused.contains(" websocket handshake failed: origin not allowed"),
        "{refused}"
    );
    assert_eq!(refused.matches("handshake failed").count(), 1, "{refused}");
    let (status, out, err) = echo.stop().await;
    assert!(status.success(), "{status}");
    assert_eq!(
        out.last().map(String::as_str),
        Some("ferrosocket echo: server stopped after 1 connection"),
        "{out:#?}"
    );
    assert!(err.is_empty(), "{err:#?}");
}

#[tokio::test]
async fn quiet_silences_every_connection_line() {
    let echo = Echo::start(&["--quiet"]).await;
    session_and_refusal(&echo).await;
    // The refusal was answered; give the server a moment to (not) print, then stop it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, out, err) = echo.stop().await;
    assert!(status.success(), "{status}");
    assert_eq!(
        out,
        [
            "ferrosocket echo: shutting down (0 connections)",
            "ferrosocket echo: server stopped after 1 connection"
        ],
        "{out:#?}"
    );
    assert!(err.is_empty(), "{err:#?}");
}

#[tokio::test]
async fn bench_without_any_connection_prints_only_the_error() {
    let url = format!("ws://127.0.0.1:{}/ws", closed_port());
    for json in [false, true] {
        let mut args = vec!["bench", url.as_str(), "--connections", "2", "--duration", "1"];
        if json {
            args.push("--json");
        }
        let out = run(&args, b"").await;
        assert_eq!(out.status.code(), Some(1));
        assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with(&format!("ferrosocket: no connection to {url}")),
            "{err}"
        );
        assert!(
            err.contains("2 attempt(s) failed; first error: connect:"),
            "{err}"
        );
        assert!(!err.contains("latency"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[tokio::test]
async fn the_first_accepted_subprotocol_the_client_offers_is_chosen() {
    let mut echo = Echo::start(&["--subprotocol", "chat", "--subprotocol", "superchat"]).await;
    // The server's order of preference decides, not the client's.
    let head = raw_handshake(&echo.addr, "/ws", "Sec-WebSocket-Protocol: superchat, chat\r\n").await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("\r\nsec-websocket-protocol: chat\r\n"),
        "{head}"
    );
    let head = raw_handshake(&echo.addr, "/ws", "Sec-WebSocket-Protocol: v9, superchat\r\n").await;
    assert!(
        head.to_ascii_lowercase()
            .contains("\r\nsec-websocket-protocol: superchat\r\n"),
        "{head}"
    );
    // None in common: accepted without one.
    let head = raw_handshake(&echo.addr, "/ws", "Sec-WebSocket-Protocol: v9\r\n").await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("sec-websocket-protocol"),
        "{head}"
    );
    // A client that insists on `chat` (as a browser's `new WebSocket(url, ["chat"])` does).
    let (conn, resp) = timeout(
        WAIT,
        Dialer::new().subprotocols(["chat"]).connect(echo.url("/ws")),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "chat");
    assert_eq!(conn.subprotocol(), Some("chat"));
    expect_line(&mut echo.stdout, |l| l.ends_with(" connected (subprotocol chat)")).await;
    drop(conn);
    // The client command offers with --subprotocol (and --protocol, its other name).
    for flag in ["--subprotocol", "--protocol"] {
        let out = run(
            &["client", &echo.url("/ws"), flag, "superchat", "--once"],
            b"hello",
        )
        .await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.stdout, b"hello\n");
    }
    expect_line(&mut echo.stdout, |l| {
        l.ends_with(" connected (subprotocol superchat)")
    })
    .await;
    // A name that is not a token is refused up front.
    let out = run(&["echo", "--listen", "127.0.0.1:0", "--subprotocol", "a b"], b"").await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a valid subprotocol name"));
}

#[tokio::test]
async fn help_texts_read_well_and_errors_exit_non_zero() {
    let out = run(&["--help"], b"").await;
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for sub in ["echo", "chat", "client", "bench", "autobahn-client"] {
        assert!(help.contains(&format!("\n  {sub} ")), "{sub} in {help}");
    }
    let out = run(&["echo", "--help"], b"").await;
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen <HOST:PORT>",
        "--path <PATH>",
        "--subprotocol <NAME>",
        "--quiet",
    ] {
        assert!(help.contains(flag), "{flag} in {help}");
    }
    let out = run(&["client", "--help"], b"").await;
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(
        help.contains("--subprotocol <NAME>") && help.contains("[alias: --protocol]"),
        "{help}"
    );
    let out = run(&["echo", "--no-such-flag"], b"").await;
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"));
    let out = run(&["client", "ws://127.0.0.1:1/ws", "--once"], b"x").await;
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("ferrosocket client: cannot connect"));
}
