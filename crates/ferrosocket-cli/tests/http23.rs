//! `ferrosocket echo` over HTTP/2 and HTTP/3, end to end on 127.0.0.1: with a certificate it
//! speaks HTTP/1.1 and HTTP/2 by ALPN (and HTTP/3 over UDP with `--http3`), in cleartext it
//! takes HTTP/2 with prior knowledge, its log names the protocol of every WebSocket, SIGTERM
//! closes HTTP/2 and HTTP/3 WebSockets with 1001 (HTTP/3 with a GOAWAY first), and `bench --conn / --http2 / --http3` drive all three.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ferrosocket::{CloseCode, Dialer, Error, HttpVersion, Message};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::time::timeout;

const BIN: &str = env!("CARGO_BIN_EXE_ferrosocket");
const WAIT: Duration = Duration::from_secs(20);

/// A running `ferrosocket echo`, killed when dropped.
struct Echo {
    child: Child,
    addr: String,
    stdout: UnboundedReceiver<String>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Echo {
    async fn start(args: &[&str]) -> Echo {
        let mut child = Command::new(BIN)
            .args(["echo", "--threads", "1", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, mut stdout) = unbounded_channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let first = timeout(WAIT, stdout.recv()).await.unwrap().unwrap();
        let rest = first
            .split_once("://")
            .unwrap_or_else(|| panic!("first line: {first}"))
            .1;
        let addr = rest[..rest.find('/').unwrap()].to_owned();
        Echo { child, addr, stdout }
    }

    /// Sends SIGTERM (a graceful shutdown).
    fn terminate(&self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
    }

    /// Lines printed so far, waiting until `want` of them satisfy `pred` (bounded).
    async fn lines_until(&mut self, pred: impl Fn(&str) -> bool, want: usize) -> Vec<String> {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        while seen.iter().filter(|l: &&String| pred(l)).count() < want {
            match tokio::time::timeout_at(deadline, self.stdout.recv()).await {
                Ok(Some(line)) => seen.push(line),
                _ => panic!("wanted {want} matching lines, saw: {seen:#?}"),
            }
        }
        seen
    }
}

/// A self-signed certificate for 127.0.0.1 in `dir`: (cert.pem, key.pem).
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

fn temp_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("ferrosocket-http23-{name}-{}", std::process::id()))
}

/// `ferrosocket bench URL ARGS --json`, checked to have echoed every one of `messages`.
async fn bench(url: &str, args: &[&str], messages: u64) {
    let out = tokio::task::spawn_blocking({
        let (url, args) = (
            url.to_owned(),
            args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        );
        move || {
            Command::new(BIN)
                .args([
                    "bench",
                    &url,
                    "--json",
                    "--verify",
                    "--connections",
                    "5",
                    "--in-flight",
                    "4",
                ])
                .args([
                    "--messages",
                    &messages.to_string(),
                    "--duration",
                    "15",
                    "--timeout",
                    "10",
                ])
                .args(&args)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "bench {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            report["connections"].as_u64(),
            report["messages"].as_u64(),
            report["errors"].as_u64()
        ),
        (Some(5), Some(messages), Some(0)),
        "bench {args:?}: {report}"
    );
}

#[tokio::test]
async fn with_a_certificate_echo_serves_http1_http2_and_http3_and_logs_which() {
    let dir = temp_dir("tls");
    let (cert, key) = certificate(&dir);
    let (cert_s, key_s) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let mut echo = Echo::start(&["--tls-cert", cert_s, "--tls-key", key_s, "--http3"]).await;
    let url = format!("wss://{}/ws", echo.addr);
    for (carrier, flag) in [
        ("HTTP/1.1", "--conn"),
        ("HTTP/2", "--http2"),
        ("HTTP/3", "--http3"),
    ] {
        bench(&url, &[flag, "--tls-ca", cert_s], 400).await;
        let over = format!("connected over {carrier}");
        let lines = echo
            .lines_until(
                |l| l.ends_with(" connected") && carrier == "HTTP/1.1" || l.ends_with(&over),
                5,
            )
            .await;
        if carrier != "HTTP/1.1" {
            // Five WebSockets, one connection: one client address (one TCP or QUIC connection).
            let mut peers: Vec<&str> = lines
                .iter()
                .filter(|l| l.ends_with(&over))
                .filter_map(|l| l.split(' ').next())
                .collect();
            peers.dedup();
            assert_eq!(peers.len(), 1, "{carrier}: {lines:#?}");
        }
    }
    drop(echo);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn cleartext_echo_takes_http2_with_prior_knowledge_unless_http1_only() {
    let echo = Echo::start(&[]).await;
    let url = format!("ws://{}/ws", echo.addr);
    bench(&url, &["--http2"], 200).await;
    bench(&url, &["--conn"], 200).await;
    drop(echo);

    let echo = Echo::start(&["--http1-only"]).await;
    let url = format!("ws://{}/ws", echo.addr);
    let dialer = Dialer::new().http_version(HttpVersion::Http2);
    let refused = timeout(WAIT, dialer.connect(url.as_str())).await.unwrap();
    assert!(
        refused.is_err(),
        "an HTTP/1.1-only server took an HTTP/2 connection"
    );
    bench(&url, &["--conn"], 200).await;
}

#[tokio::test]
async fn sigterm_closes_http2_websockets_with_1001() {
    let echo = Echo::start(&[]).await;
    let url = format!("ws://{}/ws", echo.addr);
    let dialer = Dialer::new().http_version(HttpVersion::Http2);
    let (mut a, _) = timeout(WAIT, dialer.connect(url.as_str()))
        .await
        .unwrap()
        .unwrap();
    let (mut b, _) = timeout(WAIT, dialer.connect(url.as_str()))
        .await
        .unwrap()
        .unwrap();
    for conn in [&mut a, &mut b] {
        conn.send(Message::text("before")).await.unwrap();
        assert_eq!(
            timeout(WAIT, conn.recv()).await.unwrap().unwrap(),
            Message::text("before")
        );
    }
    echo.terminate();
    for conn in [&mut a, &mut b] {
        match timeout(WAIT, conn.recv()).await.unwrap() {
            Err(Error::Closed(e)) => assert_eq!(e.code, CloseCode::GOING_AWAY),
            other => panic!("expected 1001, got {other:?}"),
        }
    }
    drop(echo);
}

/// SIGTERM over HTTP/3: the QUIC connection says GOAWAY (the session takes no new WebSocket)
/// and its WebSockets get 1001.
#[tokio::test]
async fn sigterm_sends_goaway_and_1001_over_http3() {
    let dir = temp_dir("goaway");
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let (cert_s, key_s) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let echo = Echo::start(&["--tls-cert", cert_s, "--tls-key", key_s, "--http3"]).await;
    let mut roots = ferrosocket::tls::rustls::RootCertStore::empty();
    roots.add(made.cert.der().clone()).unwrap();
    let dialer = Dialer::new().tls_config(ferrosocket::tls::client_config_with_roots(roots).unwrap());
    let session = timeout(WAIT, dialer.http3_session(&format!("https://{}/", echo.addr)))
        .await
        .unwrap()
        .unwrap();
    let url = format!("https://{}/ws", echo.addr);
    let (mut a, _) = timeout(WAIT, session.connect(url.as_str()))
        .await
        .unwrap()
        .unwrap();
    a.send(Message::text("before")).await.unwrap();
    assert_eq!(
        timeout(WAIT, a.recv()).await.unwrap().unwrap(),
        Message::text("before")
    );
    echo.terminate();
    match timeout(WAIT, a.recv()).await.unwrap() {
        Err(Error::Closed(e)) => assert_eq!(e.code, CloseCode::GOING_AWAY),
        other => panic!("expected 1001, got {other:?}"),
    }
    timeout(WAIT, async {
        while !session.is_going_away() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the server's GOAWAY");
    drop(echo);
    let _ = std::fs::remove_dir_all(dir);
}

/// Waiting for a cleartext client's first bytes (HTTP/1.1 or the HTTP/2 preface) is bounded:
/// a client that sends nothing is dropped after 10 s.
#[tokio::test]
async fn a_silent_cleartext_client_is_dropped() {
    use tokio::io::AsyncReadExt;
    let echo = Echo::start(&[]).await;
    let mut tcp = tokio::net::TcpStream::connect(&echo.addr).await.unwrap();
    let start = std::time::Instant::now();
    let mut byte = [0u8; 1];
    let n = timeout(WAIT, tcp.read(&mut byte)).await.expect("dropped in time");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    assert!(start.elapsed() >= Duration::from_secs(9), "{:?}", start.elapsed());
}
