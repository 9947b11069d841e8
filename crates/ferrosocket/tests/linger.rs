//! The lingering close: after failing a connection, the server sends its close frame, shuts
//! its write side down and reads and discards what the peer still sends until the peer closes
//! (bounded by the close timeout and 64 MiB), so that the kernel does not answer unread input
//! with a reset that destroys the close frame before the peer reads it.
//!
//! The peer is a raw client over TCP that streams one oversized message as 64 KiB masked
//! fragments, as fast as the socket takes them, from one task while another task reads. Only
//! 127.0.0.1; every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::{Bytes, BytesMut};
use common::{Client, within};
use ferrosocket::proto::{Config, Connection, Event, ProtocolError, Role};
use ferrosocket::{CloseCode, CloseFrame, Error, MessageKind, Upgrader};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The server's message limit.
const LIMIT: usize = 1 << 20;

/// One fragment's payload.
const FRAGMENT: usize = 64 << 10;

/// The most one client writes in one message.
const MAX_STREAM: usize = 64 << 20;

fn limited() -> Upgrader {
    Upgrader::new().max_message_size(Some(LIMIT))
}

/// Connects and upgrades; returns the two halves of the socket.
async fn connect(addr: SocketAddr) -> (OwnedReadHalf, OwnedWriteHalf) {
    let client = Client::connect_to(addr).await;
    assert!(client.raw.is_empty(), "bytes after the 101: {:?}", client.raw);
    client.io.into_split()
}

/// The first fragment of a binary message and one continuation fragment, masked by a client
/// core; the continuation is written again and again (one mask key for all is valid).
fn fragments() -> (Vec<u8>, Vec<u8>) {
    let mut core = Connection::new(Role::Client, Config::default());
    let payload = Bytes::from(vec![0x5au8; FRAGMENT]);
    core.send_fragment(MessageKind::Binary, payload.clone(), false)
        .unwrap();
    let first = core.take_output();
    core.send_fragment(MessageKind::Binary, payload, false).unwrap();
    (first, core.take_output())
}

/// What the client's reading task saw.
#[derive(Debug)]
struct Seen {
    /// The close frame the server sent.
    close: Option<CloseFrame>,
    /// When it arrived.
    close_at: Instant,
    /// How the read side ended after the close: `Ok` for EOF, the error (a reset) otherwise.
    end: std::io::Result<()>,
}

/// Reads through a client core until the server's close frame (then raises `stop`), then
/// until EOF. Panics on anything but a close frame; a read error before the close is
/// reported as the close never coming.
fn spawn_reader(mut rd: OwnedReadHalf, stop: Arc<AtomicBool>) -> JoinHandle<Seen> {
    tokio::spawn(async move {
        let mut core = Connection::new(Role::Client, Config::default());
        let mut buf = BytesMut::with_capacity(64 << 10);
        let close = loop {
            match core.poll_event() {
                Ok(Some(Event::Close(f))) => break f,
                Ok(Some(other)) => panic!("expected only a close frame, got {other:?}"),
                Ok(None) => {}
                Err(e) => panic!("client core: {e:?}"),
            }
            buf.clear();
            match rd.read_buf(&mut buf).await {
                Ok(0) => panic!("EOF before the close frame"),
                Ok(_) => core.receive(&buf),
                Err(e) => panic!("the close frame was lost to {e} (a reset before it was read)"),
            }
        };
        let close_at = Instant::now();
        stop.store(true, Ordering::SeqCst);
        buf.clear();
        let end = match rd.read_buf(&mut buf).await {
            Ok(0) => Ok(()),
            Ok(n) => panic!("{n} bytes after the close frame"),
            Err(e) => Err(e),
        };
        Seen { close, close_at, end }
    })
}

/// Streams the oversized message until `stop` (or [`MAX_STREAM`]); returns the bytes written
/// and the first write error. Fragment writes go on while `stop` is not raised.
async fn stream_until(wr: &mut OwnedWriteHalf, stop: &AtomicBool) -> (usize, std::io::Result<()>) {
    let (first, next) = fragments();
    if let Err(e) = wr.write_all(&first).await {
        return (0, Err(e));
    }
    let mut written = first.len();
    while !stop.load(Ordering::SeqCst) && written < MAX_STREAM {
        if let Err(e) = wr.write_all(&next).await {
            return (written, Err(e));
        }
        written += next.len();
    }
    (written, Ok(()))
}

fn assert_1009(seen: &Seen) {
    let close = seen.close.as_ref().expect("a close code");
    assert_eq!(close.code, CloseCode::MESSAGE_TOO_BIG, "{close:?}");
    assert!(!close.reason.is_empty(), "1009 without a reason");
}

fn assert_too_large(err: &Error) {
    assert!(
        matches!(
            err,
            Error::Protocol(ProtocolError::MessageTooLarge { limit: LIMIT, .. })
        ),
        "{err:?}"
    );
}

/// A client streaming past the limit at full speed reads the 1009 and its reason, then a
/// clean EOF, never a reset; its writes never fail; the server reports `MessageTooLarge`.
/// Ten rounds, so that a reset racing the close frame (the server dropping a socket with
/// unread input) would show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_stream_at_full_speed_gets_1009_with_its_reason() {
    for round in 0..10 {
        let (addr, server) = common::serve_echo_once(limited()).await;
        let (rd, mut wr) = connect(addr).await;
        let stop = Arc::new(AtomicBool::new(false));
        let reader = spawn_reader(rd, stop.clone());
        let (written, result) = within("the stream", stream_until(&mut wr, &stop)).await;
        result.unwrap_or_else(|e| panic!("round {round}: write failed after {written} bytes: {e}"));
        assert!(
            stop.load(Ordering::SeqCst),
            "round {round}: no close after {written} bytes"
        );
        assert!(
            written > LIMIT,
            "round {round}: closed after only {written} bytes"
        );
        within("shutdown", wr.shutdown()).await.unwrap();
        let seen = within("the reader", reader).await.unwrap();
        assert_1009(&seen);
        seen.end
            .unwrap_or_else(|e| panic!("round {round}: a reset after the close frame: {e}"));
        let err = within("the server", server).await.unwrap();
        assert_too_large(&err);
    }
}

/// After the 1009 the server keeps the socket and absorbs what the client still sends (a few
/// MiB: no error on the client's writes or reads); it finishes only once the client shut its
/// write side down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_keeps_reading_until_the_peer_closes() {
    let (addr, mut server) = common::serve_echo_once(limited()).await;
    let (rd, mut wr) = connect(addr).await;
    let stop = Arc::new(AtomicBool::new(false));
    let reader = spawn_reader(rd, stop.clone());
    let (go_on_tx, go_on_rx) = oneshot::channel::<()>();
    let (extra_tx, extra_rx) = oneshot::channel::<usize>();
    let writer = tokio::spawn(async move {
        let (written, result) = stream_until(&mut wr, &stop).await;
        result.unwrap_or_else(|e| panic!("write failed after {written} bytes: {e}"));
        // After the close frame: a few MiB more (the message goes on, as far as we care).
        let (_, next) = fragments();
        let mut extra = 0;
        while extra < 4 << 20 {
            wr.write_all(&next)
                .await
                .unwrap_or_else(|e| panic!("write after the close failed after {extra} bytes: {e}"));
            extra += next.len();
        }
        wr.flush().await.unwrap();
        extra_tx.send(extra).unwrap();
        go_on_rx.await.unwrap();
        wr.shutdown().await.unwrap();
        wr
    });
    let extra = within("the extra writes", extra_rx).await.unwrap();
    assert!(extra >= 4 << 20);
    // The client has not closed its side: the server is still lingering.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut server)
            .await
            .is_err(),
        "the server finished before the peer closed"
    );
    go_on_tx.send(()).unwrap();
    let _wr = within("the writer", writer).await.unwrap();
    let err = within("the server after our shutdown", server).await.unwrap();
    assert_too_large(&err);
    let seen = within("the reader", reader).await.unwrap();
    assert_1009(&seen);
    seen.end
        .unwrap_or_else(|e| panic!("a reset after the close frame: {e}"));
}

/// With a 300 ms close timeout, a client that never closes (silent, or still trickling data)
/// holds the server for about the close timeout, not longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linger_is_bounded_by_the_close_timeout() {
    for trickle in [false, true] {
        let upgrader = limited().close_timeout(Duration::from_millis(300));
        let (addr, server) = common::serve_echo_once(upgrader).await;
        let (rd, mut wr) = connect(addr).await;
        let stop = Arc::new(AtomicBool::new(false));
        let reader = spawn_reader(rd, stop.clone());
        let (written, result) = within("the stream", stream_until(&mut wr, &stop)).await;
        result.unwrap_or_else(|e| panic!("write failed after {written} bytes: {e}"));
        let trickler = tokio::spawn(async move {
            // Never shuts down; with `trickle`, keeps sending 1 KiB every 20 ms until the
            // server is gone (then the writes fail: expected).
            let (_, next) = fragments();
            if trickle {
                let deadline = Instant::now() + Duration::from_secs(5);
                while Instant::now() < deadline {
                    for chunk in next.chunks(1024) {
                        if wr.write_all(chunk).await.is_err() {
                            return wr;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            wr
        });
        let seen = within("the reader", reader).await.unwrap();
        assert_1009(&seen);
        let err = within("the server", server).await.unwrap();
        let elapsed = seen.close_at.elapsed();
        assert_too_large(&err);
        assert!(
            elapsed < Duration::from_millis(1500),
            "trickle {trickle}: the server lingered {elapsed:?} after the close (timeout 300 ms)"
        );
        let _wr = within("the trickler", trickler).await.unwrap();
    }
}

/// A client that ignores the close and streams on at full speed is cut off by the 64 MiB
/// budget, long before the (default, 10 s) close timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linger_is_bounded_by_its_byte_budget() {
    let (addr, server) = common::serve_echo_once(limited()).await;
    let (rd, mut wr) = connect(addr).await;
    let reader = spawn_reader(rd, Arc::new(AtomicBool::new(false)));
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        let (first, next) = fragments();
        wr.write_all(&first).await.unwrap();
        let mut written = first.len();
        // Until the server drops the socket (a write fails), bounded at 1 GiB.
        while written < 1 << 30 {
            if wr.write_all(&next).await.is_err() {
                break;
            }
            written += next.len();
        }
        written
    });
    let err = within("the server", server).await.unwrap();
    let elapsed = start.elapsed();
    assert_too_large(&err);
    assert!(
        elapsed < Duration::from_secs(9),
        "ended by the budget, not the timer: {elapsed:?}"
    );
    let written = within("the writer", writer).await.unwrap();
    assert!(
        written > 64 << 20,
        "the server stopped after only {written} bytes"
    );
    assert!(written < 1 << 30, "the server never dropped the socket");
    // The close frame reached the client before the server gave up (it may see a reset
    // afterwards: it kept sending into a closed socket).
    let seen = within("the reader", reader).await.unwrap();
    assert_1009(&seen);
}
