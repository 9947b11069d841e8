//! Helpers shared by every integration test of `ferrosocket`.
//!
//! - here: bounded waits ([`within`]), elapsed-time checks for tests on virtual time
//!   ([`assert_waited`]), the two transports a test runs on ([`tcp_pair`] over 127.0.0.1,
//!   [`duplex_pair`] in memory) and a listener ([`listen`]);
//! - [`server`]: hand-written upgrade requests ([`Req`]) and the server end of a test
//!   ([`connect`], [`connect_duplex`], [`handshake`], [`refused`], [`spawn_echo`]);
//! - [`client`]: the raw test client ([`Client`]) and frames built by hand.
//!
//! The client never uses ferrosocket's own client. It writes hand-made upgrade requests and
//! either hand-built frames (`FrameHeader` + `apply_mask`) or the output of a sans-I/O
//! `ferrosocket_proto::Connection` in the client role, and reads the server's frames raw.
//! Every wait is bounded by [`WAIT`], so no test can hang.
//!
//! **Time.** Tests whose subject is a timer (deadlines, keepalive, idle, close and handshake
//! timeouts, the slow-peer policy) run on `#[tokio::test(start_paused = true)]` over
//! [`duplex_pair`]: the runtime jumps the clock to the next timer whenever every task waits,
//! so they take no wall time and assert exact durations. A paused clock must not meet a real
//! socket (the clock would jump while the kernel is still delivering bytes), so tests on
//! 127.0.0.1 keep the real clock.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub(crate) mod client;
pub(crate) mod server;

#[allow(unused_imports)]
pub(crate) use client::*;
#[allow(unused_imports)]
pub(crate) use server::*;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::DuplexStream;
use tokio::net::{TcpListener, TcpStream};

/// The longest any single wait of a test may take. On a paused clock a stuck wait fails at
/// once (the clock jumps to this bound), not after ten seconds.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// How late a timer may fire on a paused clock. Zero: every converted test observed its
/// timer at exactly its duration; the constant names the tolerance should tokio's timer
/// resolution (one millisecond) ever show.
pub(crate) const TICK: Duration = Duration::ZERO;

/// The in-memory pipe's buffer in each direction: about what a loopback socket takes before
/// a writer blocks.
pub(crate) const DUPLEX_CAPACITY: usize = 256 << 10;

/// The RFC 6455 §1.3 sample key and its accept value.
pub(crate) const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub(crate) const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The mask key of hand-built client frames.
pub(crate) const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Awaits `fut`, failing the test if it takes longer than [`WAIT`].
pub(crate) async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// On a paused clock: checks that `elapsed` is exactly `expected` (never early, at most
/// [`TICK`] late).
#[track_caller]
pub(crate) fn assert_waited(elapsed: Duration, expected: Duration) {
    assert!(
        elapsed >= expected && elapsed <= expected + TICK,
        "waited {elapsed:?}, expected {expected:?}"
    );
}

/// A listener on `127.0.0.1:0` and its address.
pub(crate) async fn listen() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    (listener, addr)
}

/// A connected pair of sockets through a `127.0.0.1:0` listener: (server side, client side).
pub(crate) async fn tcp_pair() -> (TcpStream, TcpStream) {
    let (listener, addr) = listen().await;
    let (client, server) = within("tcp connect", async {
        tokio::join!(TcpStream::connect(addr), listener.accept())
    })
    .await;
    let client = client.expect("connect");
    client.set_nodelay(true).expect("nodelay");
    (server.expect("accept").0, client)
}

/// A connected in-memory pair with `capacity` bytes of buffer each way: (server side, client
/// side). A writer blocks once its direction holds `capacity` unread bytes.
pub(crate) fn duplex_pair(capacity: usize) -> (DuplexStream, DuplexStream) {
    let (server, client) = tokio::io::duplex(capacity);
    (server, client)
}

/// A client's split halves against an echo server: one task writes `n` binary messages
/// (3 B to 256 KiB, more than an HTTP/2 stream's window) while another reads their echoes
/// and checks each; then the writer sends a close with 1000 and `reason`. Returns the reader,
/// for the caller to see the close handshake end.
pub(crate) async fn split_echo_round_trip<S>(
    conn: ferrosocket::Conn<S>,
    n: usize,
    reason: &'static str,
) -> ferrosocket::ReadHalf<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use ferrosocket::{CloseCode, CloseFrame, Message};
    fn payload(i: usize) -> bytes::Bytes {
        let len = [3usize, 125, 4096, 70_000, 256 << 10][i % 5] + i % 7;
        (0..len)
            .map(|j| ((i + j) % 251) as u8)
            .collect::<Vec<u8>>()
            .into()
    }
    let (mut reader, writer) = conn.split();
    let w = writer.clone();
    let writing = tokio::spawn(async move {
        for i in 0..n {
            within("a send", w.send(Message::binary(payload(i))))
                .await
                .unwrap();
        }
    });
    let reading = tokio::spawn(async move {
        for i in 0..n {
            let m = within("an echo", reader.recv()).await.unwrap();
            assert!(m.as_bytes() == &payload(i)[..], "message {i}");
        }
        reader
    });
    within("the writer", writing).await.unwrap();
    let reader = within("the reader", reading).await.unwrap();
    within(
        "the close",
        writer.send_close(Some(CloseFrame::new(CloseCode::NORMAL_CLOSURE, reason))),
    )
    .await
    .unwrap();
    reader
}

/// A cookie jar that sends back the `name=value` of the last `Set-Cookie` it got, whatever
/// the URL.
#[derive(Default)]
pub(crate) struct LastCookie(std::sync::Mutex<Option<http::HeaderValue>>);

impl ferrosocket::CookieJar for LastCookie {
    fn cookies(&self, _uri: &http::Uri) -> Option<http::HeaderValue> {
        self.0.lock().unwrap().clone()
    }

    fn set_cookies(&self, _uri: &http::Uri, set_cookie: &mut dyn Iterator<Item = &http::HeaderValue>) {
        if let Some(last) = set_cookie.last() {
            let pair = last.to_str().unwrap().split(';').next().unwrap();
            *self.0.lock().unwrap() = Some(pair.parse().unwrap());
        }
    }
}

/// An upgrader that answers every handshake with `Set-Cookie: n=N+1`, N being the request's
/// cookie `n` (0 without one): a handshake's answer shows which cookie it carried.
pub(crate) fn counting_cookies(upgrader: ferrosocket::Upgrader) -> ferrosocket::Upgrader {
    upgrader.on_request(|req| {
        let n = req.cookie("n").map_or(0, |v| v.parse::<u32>().unwrap()) + 1;
        let set = http::HeaderValue::try_from(format!("n={n}; Path=/")).unwrap();
        Ok(ferrosocket::Accept::new().header(http::header::SET_COOKIE, set))
    })
}
