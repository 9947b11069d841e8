//! `ferrosocket chat` end to end, on 127.0.0.1: two nodes in one process (joined by the
//! in-process bus), the JSON lines, history on join, the raw mode, refusals, the line limit,
//! `/stats`, SIGTERM; then two processes sharing rooms through a real `redis-server` and a
//! real `nats-server`, each started here on a free port. Every wait is bounded.
//!
//! A broker binary that is missing fails the test when `CI` is set, and skips it loudly
//! otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ferrosocket::{CloseCode, Conn, Dialer, Error, MaybeTlsStream, Message};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::time::timeout;

const BIN: &str = env!("CARGO_BIN_EXE_ferrosocket");
/// Bound on every single wait.
const WAIT: Duration = Duration::from_secs(10);
const LISTENING: &str = "chat node listening on http://";

type Client = Conn<MaybeTlsStream>;

/// A running `ferrosocket chat`, killed when dropped.
struct Chat {
    child: Child,
    /// `host:port` of each node, in `--listen` order.
    addrs: Vec<String>,
    stdout: UnboundedReceiver<String>,
}

impl Drop for Chat {
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

impl Chat {
    /// Starts `ferrosocket chat --threads 1` with `nodes` listeners on 127.0.0.1:0 and `args`,
    /// and reads each node's address from its line.
    async fn start(nodes: usize, args: &[&str]) -> Chat {
        let mut cmd = Command::new(BIN);
        cmd.args(["chat", "--threads", "1"]);
        for _ in 0..nodes {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        let mut child = cmd
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut stdout = lines(child.stdout.take().unwrap());
        let mut addrs = Vec::new();
        while addrs.len() < nodes {
            let line = timeout(WAIT, stdout.recv())
                .await
                .expect("the chat node printed its address in time")
                .expect("the chat node printed its address before exiting");
            if let Some(rest) = line.strip_prefix(LISTENING) {
                let (addr, tail) = rest.split_once('/').unwrap();
                assert_eq!(tail, format!(" (ws://{addr}/ws)"), "{line}");
                addrs.push(addr.to_owned());
            }
        }
        Chat { child, addrs, stdout }
    }

    /// Sends SIGTERM.
    fn terminate(&self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    /// The exit status (bounded wait).
    async fn exited(&mut self) -> std::process::ExitStatus {
        for _ in 0..500 {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the chat node did not exit within 10 s of SIGTERM");
    }
}

async fn connect(addr: &str, query: &str) -> Client {
    let url = format!("ws://{addr}/ws?{query}");
    let (conn, _) = timeout(WAIT, Dialer::new().connect(url.as_str()))
        .await
        .expect("connected in time")
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    conn
}

async fn recv(conn: &mut Client) -> Message {
    timeout(WAIT, conn.recv())
        .await
        .expect("a message in time")
        .expect("a message")
}

async fn recv_json(conn: &mut Client) -> Value {
    let m = recv(conn).await;
    serde_json::from_str(m.as_text().expect("a text message")).expect("JSON")
}

/// Joins `room` on `addr` as `name` and takes the history frame; returns it too.
async fn join(addr: &str, room: &str, name: &str) -> (Client, Vec<Value>) {
    let mut conn = connect(addr, &format!("room={room}&name={name}")).await;
    let history = recv_json(&mut conn).await;
    assert_eq!(history["type"], "history", "{history}");
    let messages = history["messages"].as_array().expect("messages").clone();
    (conn, messages)
}

/// Asserts `v` is the documented chat line.
fn assert_line(v: &Value, room: &str, name: &str, text: &str) {
    assert_eq!(v["type"], "message", "{v}");
    assert_eq!(v["room"], room, "{v}");
    assert_eq!(v["name"], name, "{v}");
    assert_eq!(v["text"], text, "{v}");
    let ts = v["ts"].as_u64().expect("ts in milliseconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(ts <= now && now - ts < 60_000, "ts {ts}, now {now}");
    assert_eq!(
        v.as_object().unwrap().len(),
        5,
        "exactly the documented fields: {v}"
    );
}

/// `GET path` over a fresh connection: status line and body.
async fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    read_response(s).await
}

async fn read_response(mut s: TcpStream) -> (String, String) {
    let mut buf = Vec::new();
    timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("response in time")
        .unwrap();
    let text = String::from_utf8(buf).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

async fn stats(addr: &str) -> Value {
    let (status, body) = http_get(addr, "/stats").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn two_nodes_deliver_each_line_once_to_everyone_in_the_room_the_sender_too() {
    let chat = Chat::start(2, &[]).await;
    let (a, b) = (&chat.addrs[0], &chat.addrs[1]);
    let (mut alice, h1) = join(a, "r1", "alice").await;
    let (mut bob, h2) = join(b, "r1", "bob").await;
    assert!(h1.is_empty() && h2.is_empty());
    // Someone in another room hears nothing.
    let (mut carol, _) = join(b, "r2", "carol").await;

    alice.send_text("hello <b>bob</b> \"quoted\"").await.unwrap();
    for conn in [&mut alice, &mut bob] {
        assert_line(
            &recv_json(conn).await,
            "r1",
            "alice",
            "hello <b>bob</b> \"quoted\"",
        );
    }
    bob.send_text("hi alice").await.unwrap();
    // The next line each one receives is bob's: alice's arrived exactly once.
    for conn in [&mut alice, &mut bob] {
        assert_line(&recv_json(conn).await, "r1", "bob", "hi alice");
    }
    carol.send_text("anyone?").await.unwrap();
    assert_line(&recv_json(&mut carol).await, "r2", "carol", "anyone?");

    let sa = stats(a).await;
    assert_eq!(sa["published"], 1, "{sa}");
    assert_eq!(sa["received"], 1, "{sa}");
    assert_eq!(sa["subscribers"], 1, "{sa}");
    assert_eq!(sa["topics"], 1, "{sa}");
    assert_eq!(sa["delivered"], 2, "{sa}");
    assert_eq!(sa["backplane_up"], true, "{sa}");
    let sb = stats(b).await;
    assert_eq!(sb["published"], 2, "{sb}");
    assert_eq!(sb["received"], 1, "{sb}");
    assert_eq!(sb["subscribers"], 2, "{sb}");
    assert_eq!(sb["topics"], 2, "{sb}");
    assert_eq!(sb["delivered"], 3, "{sb}");
    assert_eq!(sb["dropped"], 0, "{sb}");
    for field in ["queued", "disconnected", "publish_failed", "malformed", "outages"] {
        assert!(sb.get(field).is_some_and(Value::is_u64), "{field} in {sb}");
    }
    let (status, page) = http_get(a, "/").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(page.contains("<title>ferrosocket chat</title>"));
    assert!(!page.contains("innerHTML ="), "the page sets text only");
    assert_eq!(http_get(a, "/nope").await.0, "HTTP/1.1 404 Not Found");
}

#[tokio::test]
async fn a_client_that_joins_gets_the_last_50_lines_in_order() {
    let chat = Chat::start(2, &["--history", "50", "--quiet"]).await;
    let (mut alice, _) = join(&chat.addrs[0], "hist", "alice").await;
    for i in 0..60 {
        alice.feed(format!("line {i}")).await.unwrap();
    }
    alice.flush().await.unwrap();
    for i in 0..60 {
        assert_line(
            &recv_json(&mut alice).await,
            "hist",
            "alice",
            &format!("line {i}"),
        );
    }
    for addr in &chat.addrs {
        let (_bob, history) = join(addr, "hist", "bob").await;
        assert_eq!(history.len(), 50);
        for (i, line) in (10..60).zip(&history) {
            assert_line(line, "hist", "alice", &format!("line {i}"));
        }
    }
}

#[tokio::test]
async fn raw_sessions_publish_and_receive_text_and_binary_verbatim() {
    raw_sessions(&[]).await;
}

#[tokio::test]
async fn naive_writes_deliver_the_same() {
    raw_sessions(&["--naive"]).await;
}

async fn raw_sessions(args: &[&str]) {
    let chat = Chat::start(2, args).await;
    let mut one = connect(&chat.addrs[0], "room=bench&raw=1").await;
    let mut two = connect(&chat.addrs[1], "room=bench&raw=1").await;
    one.send_text("not json {").await.unwrap();
    one.send_binary(vec![0u8, 1, 2, 255]).await.unwrap();
    // No history frame: the first message is the first publication.
    for conn in [&mut one, &mut two] {
        assert_eq!(recv(conn).await, Message::text("not json {"));
        assert_eq!(recv(conn).await, Message::binary(vec![0u8, 1, 2, 255]));
    }
    // A chat client of the same room skips the history of raw bytes and receives the chat
    // lines (the raw bytes too: the page ignores what is not a chat line).
    let (mut carol, history) = join(&chat.addrs[0], "bench", "carol").await;
    assert!(history.is_empty(), "{history:?}");
    carol.send_text("hi").await.unwrap();
    assert_line(&recv_json(&mut carol).await, "bench", "carol", "hi");
    let m = recv(&mut two).await;
    assert_line(
        &serde_json::from_str(m.as_text().unwrap()).unwrap(),
        "bench",
        "carol",
        "hi",
    );
}

#[tokio::test]
async fn an_invalid_or_missing_room_is_refused_with_400() {
    let chat = Chat::start(1, &["--quiet"]).await;
    let addr = &chat.addrs[0];
    let long_name = format!("room=a&name={}", "n".repeat(65));
    for query in [
        "room=a.b",
        "room=",
        "name=x",
        "room=%E2%9C%93",
        long_name.as_str(),
    ] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "GET /ws?{query} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let (status, body) = read_response(s).await;
        assert_eq!(status, "HTTP/1.1 400 Bad Request", "{query}");
        assert!(body.contains("room") || body.contains("name"), "{query}: {body}");
    }
    // The node still serves.
    let (_ok, _) = join(addr, "fine", "x").await;
}

#[tokio::test]
async fn a_line_over_4_kib_closes_with_1009() {
    let chat = Chat::start(1, &["--quiet"]).await;
    let (mut alice, _) = join(&chat.addrs[0], "big", "alice").await;
    let max = "x".repeat(4096);
    alice.send_text(max.clone()).await.unwrap();
    assert_line(&recv_json(&mut alice).await, "big", "alice", &max);
    alice.send_text("y".repeat(5 << 10)).await.unwrap();
    match timeout(WAIT, alice.recv()).await.expect("closed in time") {
        Err(Error::Closed(c)) => assert_eq!(c.code, CloseCode::MESSAGE_TOO_BIG),
        other => panic!("expected the server's close 1009, got {other:?}"),
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_with_1013() {
    let chat = Chat::start(
        1,
        &[
            "--queue",
            "4",
            "--slow-consumer",
            "disconnect",
            "--no-compression",
        ],
    )
    .await;
    let addr = &chat.addrs[0];
    let mut stalled = connect(addr, "room=slow&raw=1").await;
    let mut publisher = connect(addr, "room=slow&raw=1").await;
    // 256 KiB at a time, read back by the publisher itself, until the node gives up on the
    // client that reads nothing (its socket buffers, the pump's high-water mark, then 4
    // queued messages); bounded at 64 MiB.
    let payload = vec![7u8; 256 << 10];
    let mut kicked = false;
    for _ in 0..256 {
        publisher.send_binary(payload.clone()).await.unwrap();
        assert_eq!(recv(&mut publisher).await.len(), payload.len());
        if stats(addr).await["disconnected"] == 1 {
            kicked = true;
            break;
        }
    }
    assert!(kicked, "the stalled client was not disconnected");
    assert_eq!(stats(addr).await["dropped"], 0);
    // What was already on its way arrives, then the close.
    loop {
        match timeout(WAIT, stalled.recv())
            .await
            .expect("the close arrives in time")
        {
            Ok(m) => assert_eq!(m.len(), payload.len()),
            Err(Error::Closed(c)) => {
                assert_eq!(c.code, CloseCode::TRY_AGAIN_LATER);
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    // Its session is over: only the publisher is left (bounded wait for the node to notice).
    for _ in 0..250 {
        if stats(addr).await["subscribers"] == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "the disconnected client's subscriber is still counted: {}",
        stats(addr).await
    );
}

#[tokio::test]
async fn sigterm_closes_every_client_with_1001_and_exits_0() {
    let mut chat = Chat::start(2, &[]).await;
    let (mut alice, _) = join(&chat.addrs[0], "bye", "alice").await;
    let mut raw = connect(&chat.addrs[1], "room=bye&raw=1").await;
    chat.terminate();
    for conn in [&mut alice, &mut raw] {
        match timeout(WAIT, conn.recv()).await.expect("closed in time") {
            Err(Error::Closed(c)) => assert_eq!(c.code, CloseCode::GOING_AWAY),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(chat.exited().await.code(), Some(0));
    let mut rest = Vec::new();
    while let Ok(Some(line)) = timeout(WAIT, chat.stdout.recv()).await {
        rest.push(line);
    }
    assert!(rest.iter().any(|l| l == "chat: stopped"), "{rest:#?}");
}

// ---- real brokers ---------------------------------------------------------------------

/// A broker process on a free port, killed when dropped.
struct Broker {
    child: Child,
    port: u16,
    _dir: Option<TempDir>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory removed when dropped (NATS's JetStream store).
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether `bin` exists; if not, fails under CI and says loudly that the test is skipped.
fn have(bin: &str) -> bool {
    if Path::new(bin).is_file() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{bin} is missing and CI is set: install it (.ci/run does)");
    }
    eprintln!("\n**** SKIPPED: {bin} is not installed; this broker test did not run ****\n");
    false
}

impl Broker {
    async fn start(bin: &str, args: &[String], port: u16, dir: Option<TempDir>) -> Broker {
        let child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let broker = Broker {
            child,
            port,
            _dir: dir,
        };
        for _ in 0..250 {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return broker;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{bin} did not listen on port {port} within 5 s");
    }

    async fn redis() -> Option<Broker> {
        const BIN: &str = "/usr/bin/redis-server";
        if !have(BIN) {
            return None;
        }
        let port = free_port();
        let args = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ];
        Some(Self::start(BIN, &args.map(String::from), port, None).await)
    }

    async fn nats() -> Option<Broker> {
        const BIN: &str = "/usr/sbin/nats-server";
        if !have(BIN) {
            return None;
        }
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("chat-test-nats-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let args = [
            "-a".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-js".into(),
            "-sd".into(),
            dir.display().to_string(),
        ];
        Some(Self::start(BIN, &args, port, Some(TempDir(dir))).await)
    }
}

/// Two `ferrosocket chat` processes on `flag URL`: each delivers the other's lines, and a
/// client that joins later gets both in the history.
async fn two_processes_share_a_room(flag: &str, url: &str) {
    let room = format!("shared{}", free_port());
    let one = Chat::start(1, &[flag, url, "--quiet"]).await;
    let two = Chat::start(1, &[flag, url, "--quiet"]).await;
    let (mut alice, _) = join(&one.addrs[0], &room, "alice").await;
    let (mut bob, _) = join(&two.addrs[0], &room, "bob").await;
    // The backplanes subscribe in the background: probe until a line crosses (bounded).
    let mut crossed = false;
    for i in 0..50 {
        alice.send_text(format!("probe {i}")).await.unwrap();
        assert_eq!(recv_json(&mut alice).await["text"], format!("probe {i}"));
        if let Ok(Ok(m)) = timeout(Duration::from_millis(200), bob.recv()).await {
            assert!(m.as_text().unwrap().contains("probe"), "{m:?}");
            crossed = true;
            break;
        }
    }
    assert!(
        crossed,
        "no line from node one reached node two through {flag} within 10 s"
    );
    // Drain probes that are still on their way.
    while let Ok(Ok(_)) = timeout(Duration::from_millis(300), bob.recv()).await {}

    alice.send_text("from alice").await.unwrap();
    assert_line(&recv_json(&mut bob).await, &room, "alice", "from alice");
    bob.send_text("from bob").await.unwrap();
    // Alice sees her own line, then bob's: each once.
    let mut got = Vec::new();
    while got.len() < 2 {
        let v = recv_json(&mut alice).await;
        if v["text"].as_str().is_some_and(|t| t.starts_with("probe")) {
            continue;
        }
        got.push(v);
    }
    assert_line(&got[0], &room, "alice", "from alice");
    assert_line(&got[1], &room, "bob", "from bob");
    assert_line(&recv_json(&mut bob).await, &room, "bob", "from bob");

    // The history is the broker's: both nodes show the same last lines. (The broker may
    // store a line a moment after delivering it: a few joins are allowed, bounded.)
    for chat in [&one, &two] {
        let mut history = Vec::new();
        for _ in 0..25 {
            history = join(&chat.addrs[0], &room, "carol").await.1;
            let texts: Vec<&str> = history.iter().filter_map(|v| v["text"].as_str()).collect();
            if texts.ends_with(&["from alice", "from bob"]) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let n = history.len();
        assert!(n >= 2, "{history:?}");
        assert_line(&history[n - 2], &room, "alice", "from alice");
        assert_line(&history[n - 1], &room, "bob", "from bob");
    }
    let s = stats(&one.addrs[0]).await;
    assert_eq!(s["backplane_up"], true, "{s}");
    assert!(s["received"].as_u64().unwrap() >= 1, "{s}");
}

#[tokio::test]
async fn two_processes_share_rooms_and_history_through_redis() {
    let Some(redis) = Broker::redis().await else {
        return;
    };
    two_processes_share_a_room("--redis", &format!("redis://127.0.0.1:{}/", redis.port)).await;
}

#[tokio::test]
async fn two_processes_share_rooms_and_history_through_nats() {
    let Some(nats) = Broker::nats().await else { return };
    two_processes_share_a_room("--nats", &format!("nats://127.0.0.1:{}", nats.port)).await;
}
