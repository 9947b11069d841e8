//! Parity between a whole `Conn` and its split halves: the same test body runs on both, so a
//! guarantee that holds for one and not the other shows up as one failing half of a pair.
//!
//! Every setting of a connection (keepalive, idle timeout, read and write deadlines, the
//! slow-peer policy, the shutdown token, the read limit, the handlers, `Stream`/`Sink`) is
//! checked against the raw test client of `tests/common` (a client-role core). Each parity test
//! is a module with two tests, `whole` and `split`; the split-only guarantees (pongs while the
//! writer is busy, `reunite`, the shutdown count of split halves) follow at the end.
//!
//! Tests whose subject is a timer run on a paused clock over an in-memory pipe
//! (`parity!(paused ...)`, `start_paused`) and assert exact durations; the others run over real
//! sockets on 127.0.0.1. Every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::{Client, assert_waited, connect, connect_duplex, connect_duplex_with, within};
use ferrosocket::proto::{Event, ProtocolError};
use ferrosocket::{
    CloseAction, CloseCode, CloseFrame, Conn, Error, Message, PingAction, ReadHalf, Shutdown, ShutdownToken,
    SlowPeerPolicy, TimeoutKind, Upgrader, WriteHalf, is_unexpected_close_error,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

// ---- one body, two shapes --------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Whole,
    Split,
}

/// The server end under test: a whole connection or its two halves, with the same calls.
enum Side<S> {
    Whole(Box<Conn<S>>),
    Split(ReadHalf<S>, WriteHalf<S>),
}

impl<S: AsyncRead + AsyncWrite + Unpin> Side<S> {
    fn new(conn: Conn<S>, mode: Mode) -> Self {
        match mode {
            Mode::Whole => Self::Whole(Box::new(conn)),
            Mode::Split => {
                let (r, w) = conn.split();
                Self::Split(r, w)
            }
        }
    }

    async fn recv(&mut self) -> Result<Message, Error> {
        match self {
            Self::Whole(c) => c.recv().await,
            Self::Split(r, _) => r.recv().await,
        }
    }

    /// Receives until the session reports its end.
    async fn recv_until_error(&mut self) -> Error {
        loop {
            if let Err(e) = self.recv().await {
                return e;
            }
        }
    }

    async fn send(&mut self, msg: impl Into<Message>) -> Result<(), Error> {
        match self {
            Self::Whole(c) => c.send(msg).await,
            Self::Split(_, w) => w.send(msg).await,
        }
    }

    async fn feed(&mut self, msg: impl Into<Message>) -> Result<(), Error> {
        match self {
            Self::Whole(c) => c.feed(msg).await,
            Self::Split(_, w) => w.feed(msg).await,
        }
    }

    fn set_read_deadline(&mut self, deadline: Option<Instant>) {
        match self {
            Self::Whole(c) => c.set_read_deadline(deadline),
            Self::Split(r, _) => r.set_read_deadline(deadline),
        }
    }

    fn set_write_deadline(&mut self, deadline: Option<Instant>) {
        match self {
            Self::Whole(c) => c.set_write_deadline(deadline),
            Self::Split(_, w) => w.set_write_deadline(deadline),
        }
    }

    fn set_read_limit(&mut self, bytes: Option<usize>) {
        match self {
            Self::Whole(c) => c.set_read_limit(bytes),
            Self::Split(r, _) => r.set_read_limit(bytes),
        }
    }

    fn set_shutdown(&mut self, token: ShutdownToken) {
        match self {
            Self::Whole(c) => c.set_shutdown(token),
            Self::Split(r, _) => r.set_shutdown(token),
        }
    }

    fn set_ping_handler(&mut self, h: impl FnMut(&[u8]) -> PingAction + Send + 'static) {
        match self {
            Self::Whole(c) => c.set_ping_handler(h),
            Self::Split(r, _) => r.set_ping_handler(h),
        }
    }

    fn set_pong_handler(&mut self, h: impl FnMut(&[u8]) + Send + 'static) {
        match self {
            Self::Whole(c) => c.set_pong_handler(h),
            Self::Split(r, _) => r.set_pong_handler(h),
        }
    }

    fn set_close_handler(&mut self, h: impl FnMut(Option<&CloseFrame>) -> CloseAction + Send + 'static) {
        match self {
            Self::Whole(c) => c.set_close_handler(h),
            Self::Split(r, _) => r.set_close_handler(h),
        }
    }
}

/// Runs a parity body as two tests, `whole` and `split`, in a module named after it.
macro_rules! parity {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn whole() {
                super::$name(super::Mode::Whole).await
            }
            #[tokio::test]
            async fn split() {
                super::$name(super::Mode::Split).await
            }
        }
    };
    (paused $name:ident) => {
        mod $name {
            #[tokio::test(start_paused = true)]
            async fn whole() {
                super::$name(super::Mode::Whole).await
            }
            #[tokio::test(start_paused = true)]
            async fn split() {
                super::$name(super::Mode::Split).await
            }
        }
    };
    (multi_thread $name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn whole() {
                super::$name(super::Mode::Whole).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn split() {
                super::$name(super::Mode::Split).await
            }
        }
    };
}

// ---- 1. keepalive ----------------------------------------------------------------------------

parity!(paused keepalive_detects_a_peer_that_stops_answering);
/// A peer that completes the handshake and then neither reads nor writes is found dead after
/// interval + timeout: `recv` ends with a 1006 close error.
async fn keepalive_detects_a_peer_that_stops_answering(mode: Mode) {
    let upgrader = Upgrader::new().keepalive(Duration::from_millis(100), Duration::from_millis(200));
    let (conn, _client) = connect_duplex(&upgrader).await;
    let mut side = Side::new(conn, mode);
    let start = Instant::now();
    let err = within("keepalive to give up", side.recv()).await.unwrap_err();
    let elapsed = start.elapsed();
    assert!(
        is_unexpected_close_error(&err, &[CloseCode::NORMAL_CLOSURE, CloseCode::GOING_AWAY]),
        "{err}"
    );
    assert_eq!(err.close_error().unwrap().code, CloseCode::ABNORMAL_CLOSURE);
    // interval 100 ms + timeout 200 ms
    assert_waited(elapsed, Duration::from_millis(300));
    assert!(matches!(side.recv().await, Err(Error::AlreadyClosed)));
}

parity!(paused keepalive_keeps_a_peer_that_answers_pings);
/// A quiet peer that answers every ping stays connected over many intervals.
async fn keepalive_keeps_a_peer_that_answers_pings(mode: Mode) {
    let upgrader = Upgrader::new().keepalive(Duration::from_millis(50), Duration::from_millis(150));
    let (conn, mut client) = connect_duplex(&upgrader).await;
    let mut side = Side::new(conn, mode);
    let server = tokio::spawn(async move {
        let r = side.recv().await;
        (side, r)
    });
    let mut pings = 0;
    let until = Instant::now() + Duration::from_millis(700);
    while let Ok(ev) = tokio::time::timeout_at(until, client.next_answering()).await {
        match ev {
            Some(Event::Ping(_)) => pings += 1,
            other => panic!("the server dropped a live peer: {other:?}"),
        }
    }
    assert!(pings >= 3, "the server sent {pings} pings in 700 ms");
    assert!(!server.is_finished(), "recv ended while the peer answered");
    client.send("still here").await;
    let (mut side, got) = within("the message", server).await.unwrap();
    assert_eq!(got.unwrap(), Message::text("still here"));
    within("send", side.send("you too")).await.unwrap();
    let reply = loop {
        match within("the reply", client.next_answering()).await {
            Some(Event::Message(m)) => break m,
            Some(Event::Ping(_)) => {}
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(reply, Message::text("you too"));
}

// ---- 2. idle timeout -------------------------------------------------------------------------

parity!(paused idle_timeout_closes_with_1001);
/// No message either way for the idle timeout: close 1001 on the wire, `recv` reports
/// `TimeoutKind::Idle` once the peer answered, and the server closes TCP.
async fn idle_timeout_closes_with_1001(mode: Mode) {
    let upgrader = Upgrader::new().idle_timeout(Some(Duration::from_millis(150)));
    let (conn, mut client) = connect_duplex(&upgrader).await;
    let mut side = Side::new(conn, mode);
    let server = tokio::spawn(async move {
        let start = Instant::now();
        let e = side.recv().await.unwrap_err();
        (side, e, start.elapsed())
    });
    let frame = client.next_close().await.expect("a close code");
    assert_eq!(frame.code, CloseCode::GOING_AWAY);
    client.flush().await; // the close reply
    let (mut side, err, elapsed) = within("the server", server).await.unwrap();
    assert!(matches!(err, Error::Timeout(TimeoutKind::Idle)), "{err}");
    assert_waited(elapsed, Duration::from_millis(150));
    client.expect_eof().await;
    assert!(matches!(side.recv().await, Err(Error::AlreadyClosed)));
    assert!(side.send("late").await.is_err());
}

// ---- 3. read deadline ------------------------------------------------------------------------

parity!(paused read_deadline_times_out_and_the_connection_stays_usable);
async fn read_deadline_times_out_and_the_connection_stays_usable(mode: Mode) {
    let (conn, mut client) = connect_duplex(&Upgrader::new()).await;
    let mut side = Side::new(conn, mode);
    let start = Instant::now();
    side.set_read_deadline(Some(start + Duration::from_millis(100)));
    let r = within("recv", side.recv()).await;
    assert!(matches!(r, Err(Error::Timeout(TimeoutKind::Read))), "{r:?}");
    assert_waited(start.elapsed(), Duration::from_millis(100));
    // Still usable both ways.
    side.set_read_deadline(None);
    client.send("after the deadline").await;
    assert_eq!(
        within("recv", side.recv()).await.unwrap(),
        Message::text("after the deadline")
    );
    within("send", side.send("and back")).await.unwrap();
    match within("the reply", client.next()).await {
        Some(Event::Message(m)) => assert_eq!(m, Message::text("and back")),
        other => panic!("{other:?}"),
    }
}

// ---- 4. write deadline -----------------------------------------------------------------------

parity!(paused write_deadline_against_a_peer_that_never_reads);
async fn write_deadline_against_a_peer_that_never_reads(mode: Mode) {
    // The pipe holds a few of the 1 MiB messages, as socket buffers would.
    let (conn, _client) = connect_duplex_with(&Upgrader::new(), 4 << 20).await;
    let mut side = Side::new(conn, mode);
    let start = Instant::now();
    side.set_write_deadline(Some(start + Duration::from_millis(200)));
    let big = Bytes::from(vec![0u8; 1 << 20]);
    let mut sent = 0;
    let err = within("the write deadline", async {
        loop {
            match side.send(Message::Binary(big.clone())).await {
                Ok(()) => sent += 1,
                Err(e) => return e,
            }
            assert!(sent < 512, "512 MiB went into a socket nobody reads");
        }
    })
    .await;
    assert!(matches!(err, Error::Timeout(TimeoutKind::Write)), "{err:?}");
    assert!(sent >= 1, "some messages fit in the pipe");
    assert_waited(start.elapsed(), Duration::from_millis(200));
}

// ---- 5. slow-peer policy ---------------------------------------------------------------------

fn slow_peer_upgrader() -> Upgrader {
    Upgrader::new().slow_peer_policy(SlowPeerPolicy::Close {
        after: Duration::from_millis(300),
        code: CloseCode::POLICY_VIOLATION,
    })
}

parity!(paused slow_peer_policy_ends_a_peer_that_never_reads);
/// The server keeps sending to a peer that never reads: once no byte could be written for
/// the policy's delay, the send fails with `TimeoutKind::Write`, and so does the next `recv`
/// (the session is over; the transport is dropped).
async fn slow_peer_policy_ends_a_peer_that_never_reads(mode: Mode) {
    let (conn, _client) = connect_duplex(&slow_peer_upgrader()).await;
    let mut side = Side::new(conn, mode);
    let payload = Bytes::from(vec![7u8; 64 << 10]);
    let start = Instant::now();
    let mut sent = 0usize;
    let err = within("the slow-peer policy", async {
        loop {
            if let Err(e) = side.send(Message::Binary(payload.clone())).await {
                return e;
            }
            sent += 1;
            assert!(sent < 8192, "512 MiB went into a socket nobody reads");
        }
    })
    .await;
    let elapsed = start.elapsed();
    assert!(matches!(err, Error::Timeout(TimeoutKind::Write)), "{err}");
    assert!(sent >= 1, "some messages fit in the pipe");
    // Nothing moves on a paused clock until the pipe is full: the stall starts at `start`.
    assert_waited(elapsed, Duration::from_millis(300));
    let r = within("recv after the policy", side.recv()).await;
    assert!(matches!(r, Err(Error::Timeout(TimeoutKind::Write))), "{r:?}");
    assert!(matches!(side.recv().await, Err(Error::AlreadyClosed)));
}

parity!(paused slow_peer_policy_ends_an_echo_loop_whose_peer_never_reads);
/// The whole-Conn liveness test's shape: an echo loop (recv + feed) whose peer writes as fast
/// as it can and never reads. The loop ends with `TimeoutKind::Write`.
async fn slow_peer_policy_ends_an_echo_loop_whose_peer_never_reads(mode: Mode) {
    let (conn, client) = connect_duplex(&slow_peer_upgrader()).await;
    let mut side = Side::new(conn, mode);
    let server = tokio::spawn(async move {
        loop {
            match side.recv().await {
                Ok(m) => {
                    if let Err(e) = side.feed(m).await {
                        return e;
                    }
                }
                Err(e) => return e,
            }
        }
    });
    let Client {
        io: mut stream,
        mut core,
        ..
    } = client;
    let writer = tokio::spawn(async move {
        let payload = Bytes::from(vec![7u8; 64 << 10]);
        let deadline = Instant::now() + Duration::from_secs(4);
        while Instant::now() < deadline {
            core.send(Message::Binary(payload.clone())).unwrap();
            let out = core.take_output();
            match tokio::time::timeout(Duration::from_millis(300), stream.write_all(&out)).await {
                Ok(Ok(())) => {}
                // Backpressure reached us, or the server gave up and reset.
                _ => break,
            }
        }
        stream
    });
    let err = within("the echo loop to end", server).await.unwrap();
    assert!(matches!(err, Error::Timeout(TimeoutKind::Write)), "{err}");
    let _stream = within("the writer", writer).await.unwrap();
}

// ---- 6. shutdown -----------------------------------------------------------------------------

parity!(shutdown_sends_1001_after_everything_queued);
/// After `trigger`, the client receives every message queued before it, then close 1001; the
/// server's recv ends with that close once the client answered; `Shutdown::wait` returns true
/// only then, and the token is released although the connection (or its halves) still exists.
async fn shutdown_sends_1001_after_everything_queued(mode: Mode) {
    const QUEUED: usize = 100;
    let shutdown = Shutdown::new();
    let (conn, mut client) = connect(&Upgrader::new()).await;
    let mut side = Side::new(conn, mode);
    side.set_shutdown(shutdown.token());
    assert_eq!(shutdown.live(), 1);
    for i in 0..QUEUED {
        side.feed(Message::text(format!("m{i}"))).await.unwrap();
    }
    shutdown.trigger();
    let server = tokio::spawn(async move {
        let e = side.recv_until_error().await;
        (side, e)
    });
    let mut received = 0;
    let close = loop {
        match within("the messages and the close", client.next()).await {
            Some(Event::Message(m)) => {
                assert_eq!(m, Message::text(format!("m{received}")));
                received += 1;
            }
            Some(Event::Close(f)) => break f,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(received, QUEUED, "every queued message arrives before the close");
    assert_eq!(close.unwrap().code, CloseCode::GOING_AWAY);
    // The client has not answered: the connection is still in its close handshake.
    assert!(!shutdown.wait(Duration::from_millis(150)).await);
    assert_eq!(shutdown.live(), 1);
    assert!(!server.is_finished());
    client.flush().await; // the close reply
    assert!(shutdown.wait(Duration::from_secs(5)).await);
    let (mut side, err) = within("the server", server).await.unwrap();
    assert!(err.is_normal_close(), "{err}");
    assert_eq!(err.close_error().unwrap().code, CloseCode::GOING_AWAY);
    // Still alive (whole or both halves), yet no longer counted: the session is over.
    assert_eq!(shutdown.live(), 0);
    client.expect_eof().await;
    assert!(side.send("late").await.is_err());
}

// ---- 7. read limit ---------------------------------------------------------------------------

parity!(read_limit_closes_with_1009);
/// A message over the read limit: close 1009 with a reason on the wire, `recv` returns
/// `MessageTooLarge` once the client closed its side, and the server closes TCP cleanly.
async fn read_limit_closes_with_1009(mode: Mode) {
    let (conn, mut client) = connect(&Upgrader::new()).await;
    let mut side = Side::new(conn, mode);
    side.set_read_limit(Some(1000));
    client.send(Message::binary(vec![1u8; 1000])).await;
    assert_eq!(
        within("recv", side.recv()).await.unwrap(),
        Message::binary(vec![1u8; 1000])
    );
    let server = tokio::spawn(async move {
        let r = side.recv().await;
        (side, r)
    });
    client.send(Message::binary(vec![2u8; 1001])).await;
    let close = client.next_close().await.expect("a close code");
    assert_eq!(close.code, CloseCode::MESSAGE_TOO_BIG);
    assert!(!close.reason.is_empty());
    client.flush().await; // the close reply
    client.expect_eof().await;
    client.io.shutdown().await.unwrap();
    let (mut side, r) = within("the server", server).await.unwrap();
    match r {
        Err(Error::Protocol(ProtocolError::MessageTooLarge { size, limit })) => {
            assert_eq!((size, limit), (1001, 1000));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(side.recv().await, Err(Error::AlreadyClosed)));
}

// ---- 8. handlers -----------------------------------------------------------------------------

parity!(handlers_decide_pongs_and_the_close_reply);
/// The ping handler sees every ping and its `Ignore` sends no pong; the pong handler sees an
/// unsolicited pong; the close handler's `Reply` frame is what goes on the wire.
async fn handlers_decide_pongs_and_the_close_reply(mode: Mode) {
    let (conn, mut client) = connect(&Upgrader::new()).await;
    let mut side = Side::new(conn, mode);
    let pings = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
    let pongs = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
    let closes = Arc::new(Mutex::new(Vec::<Option<CloseFrame>>::new()));
    let p = pings.clone();
    side.set_ping_handler(move |payload| {
        p.lock().unwrap().push(payload.to_vec());
        if payload == b"quiet" {
            PingAction::Ignore
        } else {
            PingAction::Pong
        }
    });
    let p = pongs.clone();
    side.set_pong_handler(move |payload| p.lock().unwrap().push(payload.to_vec()));
    let c = closes.clone();
    side.set_close_handler(move |frame| {
        c.lock().unwrap().push(frame.cloned());
        CloseAction::Reply(CloseFrame::new(4000, "custom reply"))
    });

    client.ping(b"quiet").await;
    client.ping(b"loud").await;
    client.pong(b"heartbeat").await;
    client.send("after the controls").await;
    assert_eq!(
        within("recv", side.recv()).await.unwrap(),
        Message::text("after the controls")
    );
    assert_eq!(*pings.lock().unwrap(), vec![b"quiet".to_vec(), b"loud".to_vec()]);
    assert_eq!(*pongs.lock().unwrap(), vec![b"heartbeat".to_vec()]);
    // The only pong is the one for "loud": "quiet" was ignored (it came first).
    match within("the pong", client.next()).await {
        Some(Event::Pong(p)) => assert_eq!(&p[..], b"loud"),
        other => panic!("{other:?}"),
    }

    client.close(Some(CloseFrame::new(1000, "bye"))).await;
    let err = within("recv", side.recv()).await.unwrap_err();
    let c = err.close_error().expect("a close");
    assert_eq!((c.code, c.reason.as_str()), (CloseCode::NORMAL_CLOSURE, "bye"));
    assert_eq!(*closes.lock().unwrap(), vec![Some(CloseFrame::new(1000, "bye"))]);
    let reply = client.next_close().await;
    assert_eq!(reply, Some(CloseFrame::new(4000, "custom reply")));
    client.expect_eof().await;
}

// ---- 10. Stream and Sink ---------------------------------------------------------------------

#[cfg(feature = "stream")]
mod stream_sink {
    use super::{Mode, Side};
    use crate::common::{Client, connect, within};
    use ferrosocket::proto::Event;
    use ferrosocket::{CloseCode, Error, Message, Upgrader};
    use futures_core::Stream;
    use futures_sink::Sink;
    use std::future::poll_fn;
    use std::pin::Pin;
    use tokio::io::{AsyncRead, AsyncWrite};

    impl<S: AsyncRead + AsyncWrite + Unpin> Side<S> {
        async fn next_item(&mut self) -> Option<Result<Message, Error>> {
            poll_fn(|cx| match self {
                Side::Whole(c) => Pin::new(&mut **c).poll_next(cx),
                Side::Split(r, _) => Pin::new(r).poll_next(cx),
            })
            .await
        }

        async fn sink_send(&mut self, msg: Message) -> Result<(), Error> {
            poll_fn(|cx| match self {
                Side::Whole(c) => Pin::new(&mut **c).poll_ready(cx),
                Side::Split(_, w) => Pin::new(w).poll_ready(cx),
            })
            .await?;
            match self {
                Side::Whole(c) => Pin::new(&mut **c).start_send(msg),
                Side::Split(_, w) => Pin::new(w).start_send(msg),
            }
        }

        async fn sink_flush(&mut self) -> Result<(), Error> {
            poll_fn(|cx| match self {
                Side::Whole(c) => Sink::poll_flush(Pin::new(&mut **c), cx),
                Side::Split(_, w) => Sink::poll_flush(Pin::new(w), cx),
            })
            .await
        }

        async fn sink_close(&mut self) -> Result<(), Error> {
            poll_fn(|cx| match self {
                Side::Whole(c) => Pin::new(&mut **c).poll_close(cx),
                Side::Split(_, w) => Pin::new(w).poll_close(cx),
            })
            .await
        }
    }

    parity!(stream_and_sink);
    /// Messages in through `Stream`, out through `Sink`; `poll_close` sends 1000; the stream
    /// ends (no error) when the peer's close reply arrives, and stays ended.
    async fn stream_and_sink(mode: Mode) {
        let (conn, mut client): (_, Client) = connect(&Upgrader::new()).await;
        let mut side = Side::new(conn, mode);
        client.send("one").await;
        client.send(Message::binary(vec![2])).await;
        assert_eq!(
            within("item", side.next_item()).await.unwrap().unwrap(),
            Message::text("one")
        );
        assert_eq!(
            within("item", side.next_item()).await.unwrap().unwrap(),
            Message::binary(vec![2])
        );
        for i in 0..3 {
            within("sink send", side.sink_send(Message::text(format!("item {i}"))))
                .await
                .unwrap();
        }
        within("sink flush", side.sink_flush()).await.unwrap();
        for i in 0..3 {
            match within("item", client.next()).await {
                Some(Event::Message(m)) => assert_eq!(m, Message::text(format!("item {i}"))),
                other => panic!("{other:?}"),
            }
        }
        within("sink close", side.sink_close()).await.unwrap();
        let close = client.next_close().await.unwrap();
        assert_eq!(
            (close.code, close.reason.as_str()),
            (CloseCode::NORMAL_CLOSURE, "")
        );
        assert!(
            within("late send", side.sink_send(Message::text("late")))
                .await
                .is_err()
        );
        client.flush().await; // the close reply
        assert!(within("end of stream", side.next_item()).await.is_none());
        assert!(within("end of stream", side.next_item()).await.is_none(), "fused");
        client.expect_eof().await;

        // An abnormal end is yielded once as an error, then the stream ends.
        let (conn, client) = connect(&Upgrader::new()).await;
        let mut side = Side::new(conn, mode);
        drop(client);
        match within("item", side.next_item()).await {
            Some(Err(Error::Closed(c))) => assert_eq!(c.code, CloseCode::ABNORMAL_CLOSURE),
            other => panic!("{other:?}"),
        }
        assert!(within("end of stream", side.next_item()).await.is_none());
    }
}

// ---- split only ------------------------------------------------------------------------------

/// The reader answers a ping and delivers a message while the writer is stuck on a peer that
/// does not read; the pong goes out between the writer's messages, long before it finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_reader_works_and_pongs_while_the_writer_is_blocked() {
    const N: usize = 2000; // 2000 × 16 KiB = 32 MiB: far more than the socket buffers hold
    let (conn, mut client) = connect(&Upgrader::new()).await;
    let (mut reader, writer) = conn.split();
    let busy = tokio::spawn(async move {
        for i in 0..N {
            let mut payload = vec![0u8; 16 << 10];
            payload[..4].copy_from_slice(&(i as u32).to_be_bytes());
            writer.send(Message::binary(payload)).await.unwrap();
        }
        writer
    });
    // Let the writer fill the socket buffers: the client reads nothing yet.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!busy.is_finished(), "the writer should be blocked");
    client.ping(b"alive?").await;
    client.send("hello").await;
    let m = within("the reader, while the writer is blocked", reader.recv())
        .await
        .unwrap();
    assert_eq!(m, Message::text("hello"));
    assert!(
        !busy.is_finished(),
        "the client has not read: the writer is still blocked"
    );

    let mut messages = 0usize;
    let mut pong_after = None;
    while messages < N {
        match within("the writer's messages", client.next()).await {
            Some(Event::Message(m)) => {
                let idx = u32::from_be_bytes(m.as_bytes()[..4].try_into().unwrap()) as usize;
                assert_eq!(idx, messages, "in order");
                messages += 1;
            }
            Some(Event::Pong(p)) => {
                assert_eq!(&p[..], b"alive?");
                assert!(pong_after.is_none(), "one pong");
                pong_after = Some(messages);
            }
            other => panic!("{other:?}"),
        }
    }
    let pong_after = pong_after.expect("the ping was answered");
    assert!(
        pong_after < N / 2,
        "the pong waited for the writer: it came after {pong_after} of {N} messages"
    );
    let _writer = within("the writer", busy).await.unwrap();
}

#[tokio::test]
async fn split_exchange_reunite_and_continue() {
    let (conn, mut client) = connect(&Upgrader::new()).await;
    let (mut reader, writer) = conn.split();
    within("send", writer.send("from the writer")).await.unwrap();
    client.send("to the reader").await;
    assert_eq!(
        within("recv", reader.recv()).await.unwrap(),
        Message::text("to the reader")
    );
    match within("message", client.next()).await {
        Some(Event::Message(m)) => assert_eq!(m, Message::text("from the writer")),
        other => panic!("{other:?}"),
    }

    // A live clone of the writer keeps them apart; both come back.
    let clone = writer.clone();
    let ferrosocket::ReuniteError(reader, writer) = reader.reunite(writer).unwrap_err();
    drop(clone);
    let mut conn = reader.reunite(writer).expect("reunite");

    within("send", conn.send("from the whole conn")).await.unwrap();
    client.send("to the whole conn").await;
    assert_eq!(
        within("recv", conn.recv()).await.unwrap(),
        Message::text("to the whole conn")
    );
    match within("message", client.next()).await {
        Some(Event::Message(m)) => assert_eq!(m, Message::text("from the whole conn")),
        other => panic!("{other:?}"),
    }
    // And the close handshake still completes on the reunited connection.
    client.close(Some(CloseFrame::new(1000, ""))).await;
    let err = within("recv", conn.recv()).await.unwrap_err();
    assert!(err.is_normal_close(), "{err}");
    assert_eq!(client.next_close().await.unwrap().code, CloseCode::NORMAL_CLOSURE);
    client.expect_eof().await;
}

#[tokio::test]
async fn reunite_of_two_connections_fails_and_hands_both_back() {
    let (a, mut client_a) = connect(&Upgrader::new()).await;
    let (b, mut client_b) = connect(&Upgrader::new()).await;
    let (read_a, write_a) = a.split();
    let (read_b, write_b) = b.split();
    let err = read_a.reunite(write_b).unwrap_err();
    assert!(!err.to_string().is_empty());
    let ferrosocket::ReuniteError(read_a, write_b) = err;
    // Both came back intact: each still belongs to its own connection.
    let mut a = read_a.reunite(write_a).expect("a reunites");
    let mut b = read_b.reunite(write_b).expect("b reunites");
    for (conn, client, name) in [(&mut a, &mut client_a, "a"), (&mut b, &mut client_b, "b")] {
        within("send", conn.send(format!("from {name}"))).await.unwrap();
        match within("message", client.next()).await {
            Some(Event::Message(m)) => assert_eq!(m, Message::text(format!("from {name}"))),
            other => panic!("{other:?}"),
        }
        client.send(format!("to {name}")).await;
        assert_eq!(
            within("recv", conn.recv()).await.unwrap(),
            Message::text(format!("to {name}"))
        );
    }
}

/// A token set before the split is held by the halves: the shutdown counts the connection
/// until both halves are gone (the reader never ran), and not a moment longer.
#[tokio::test]
async fn shutdown_counts_split_halves_until_both_are_dropped() {
    let shutdown = Shutdown::new();
    let (mut conn, _client) = connect(&Upgrader::new()).await;
    conn.set_shutdown(shutdown.token());
    let (reader, writer) = conn.split();
    let clone = writer.clone();
    assert_eq!(shutdown.live(), 1);
    drop(reader);
    drop(writer);
    assert_eq!(shutdown.live(), 1, "a writer clone still holds the connection");
    assert!(!shutdown.wait(Duration::from_millis(50)).await);
    drop(clone);
    assert_eq!(shutdown.live(), 0);
    assert!(shutdown.wait(Duration::from_millis(50)).await);
}

/// With the token set before the split, triggering ends the session through the reader
/// while a writer task runs; the writer then fails, and `wait` returns once the reader ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_set_before_split_ends_reader_and_writer() {
    let shutdown = Shutdown::new();
    let (mut conn, mut client) = connect(&Upgrader::new()).await;
    conn.set_shutdown(shutdown.token());
    let (mut reader, writer) = conn.split();
    let server_reader = tokio::spawn(async move {
        let e = loop {
            if let Err(e) = reader.recv().await {
                break e;
            }
        };
        (reader, e)
    });
    let server_writer = tokio::spawn(async move {
        let mut sent = 0usize;
        loop {
            if let Err(e) = writer.send(Message::text(format!("w{sent}"))).await {
                return (writer, sent, e);
            }
            sent += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    // A few messages flow, then the switch.
    let mut received = 0usize;
    while received < 5 {
        match within("the writer's messages", client.next()).await {
            Some(Event::Message(m)) => {
                assert_eq!(m, Message::text(format!("w{received}")));
                received += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    shutdown.trigger();
    let close = loop {
        match within("the close", client.next()).await {
            Some(Event::Message(m)) => {
                assert_eq!(m, Message::text(format!("w{received}")));
                received += 1;
            }
            Some(Event::Close(f)) => break f,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(close.unwrap().code, CloseCode::GOING_AWAY);
    assert_eq!(shutdown.live(), 1, "the close handshake is not over");
    client.flush().await; // the close reply
    assert!(shutdown.wait(Duration::from_secs(5)).await);
    let (_reader, err) = within("the reader", server_reader).await.unwrap();
    assert!(err.is_normal_close(), "{err}");
    let (_writer, sent, err) = within("the writer", server_writer).await.unwrap();
    // Every message reported sent arrived before the close (one more may have been queued
    // just before the reader finished, its flush then reporting the end).
    assert!(
        received == sent || received == sent + 1,
        "sent {sent}, received {received}"
    );
    assert!(!matches!(err, Error::Timeout(_)), "{err}");
    client.expect_eof().await;
}

/// The slow-peer policy with the halves in two tasks: the reader waits in `recv` (nothing to
/// read, no timer due) while the writer keeps sending to a peer that never reads. The writer's
/// flush finds the stall and fails with `TimeoutKind::Write`; the session is over, so the
/// reader, too, must end (`TimeoutKind::Write`) at that moment, as `recv` does on a whole `Conn`.
#[tokio::test(start_paused = true)]
async fn split_slow_peer_ends_reader_and_writer_in_separate_tasks() {
    let (conn, _client) = connect_duplex(&slow_peer_upgrader()).await;
    let (mut reader, writer) = conn.split();
    let start = Instant::now();
    let server_reader = tokio::spawn(async move { reader.recv().await });
    let server_writer = tokio::spawn(async move {
        let payload = Bytes::from(vec![7u8; 64 << 10]);
        for _ in 0..8192 {
            if let Err(e) = writer.send(Message::Binary(payload.clone())).await {
                return e;
            }
        }
        panic!("512 MiB went into a socket nobody reads");
    });
    let w = within("the writer", server_writer).await.unwrap();
    assert!(
        matches!(w, Error::Timeout(TimeoutKind::Write) | Error::AlreadyClosed),
        "{w:?}"
    );
    let r = tokio::time::timeout(Duration::from_secs(3), server_reader)
        .await
        .expect("the reader still waits in recv after the writer's slow-peer timeout")
        .unwrap();
    assert!(matches!(r, Err(Error::Timeout(TimeoutKind::Write))), "{r:?}");
    // The pipe fills at once on a paused clock: the policy's 300 ms count from `start`.
    assert_waited(start.elapsed(), Duration::from_millis(300));
}

parity!(paused close_timeout_bounds_a_close_the_peer_never_answers);
/// `send_close`, then `recv`: a peer that never answers is given up after the close timeout
/// (`TimeoutKind::Close`).
async fn close_timeout_bounds_a_close_the_peer_never_answers(mode: Mode) {
    let upgrader = Upgrader::new().close_timeout(Duration::from_millis(300));
    let (conn, mut client) = connect_duplex(&upgrader).await;
    let mut side = Side::new(conn, mode);
    let start = Instant::now();
    match &mut side {
        Side::Whole(c) => c.send_close(Some(CloseFrame::new(1000, "bye"))).await,
        Side::Split(_, w) => w.send_close(Some(CloseFrame::new(1000, "bye"))).await,
    }
    .unwrap();
    let r = within("the close timeout", side.recv()).await;
    assert!(matches!(r, Err(Error::Timeout(TimeoutKind::Close))), "{r:?}");
    assert_waited(start.elapsed(), Duration::from_millis(300));
    let close = client.next_close().await.unwrap();
    assert_eq!(
        (close.code, close.reason.as_str()),
        (CloseCode::NORMAL_CLOSURE, "bye")
    );
    client.expect_eof().await;
}

/// The reader already waits in `recv` (no timer due) when the writer sends close and the peer
/// never answers: the close timeout must still end the session through the reader, as it
/// does when `recv` starts after `send_close`.
#[tokio::test(start_paused = true)]
async fn split_close_timeout_applies_when_the_reader_was_already_waiting() {
    let upgrader = Upgrader::new().close_timeout(Duration::from_millis(300));
    let (conn, mut client) = connect_duplex(&upgrader).await;
    let (mut reader, writer) = conn.split();
    let server_reader = tokio::spawn(async move { reader.recv().await });
    tokio::time::sleep(Duration::from_millis(100)).await; // the reader parks
    let start = Instant::now();
    within(
        "send_close",
        writer.send_close(Some(CloseFrame::new(1000, "bye"))),
    )
    .await
    .unwrap();
    let close = client.next_close().await.unwrap();
    assert_eq!(close.code, CloseCode::NORMAL_CLOSURE);
    // The client never answers and never closes.
    let r = tokio::time::timeout(Duration::from_secs(3), server_reader)
        .await
        .expect("the reader ignored the close timeout (300 ms)")
        .unwrap();
    assert!(matches!(r, Err(Error::Timeout(TimeoutKind::Close))), "{r:?}");
    assert_waited(start.elapsed(), Duration::from_millis(300));
    client.expect_eof().await;
}

/// Keepalive finds a dead peer through the reader while the writer task is blocked sending
/// to it (the peer reads nothing). The session is over, so the blocked writer must be
/// released promptly too, not left waiting for the slow-peer policy (60 s by default) or
/// forever.
#[tokio::test(start_paused = true)]
async fn split_keepalive_releases_a_writer_blocked_on_a_dead_peer() {
    let upgrader = Upgrader::new().keepalive(Duration::from_millis(100), Duration::from_millis(200));
    let (conn, _client) = connect_duplex(&upgrader).await;
    let (mut reader, writer) = conn.split();
    let server_writer = tokio::spawn(async move {
        let payload = Bytes::from(vec![7u8; 256 << 10]);
        for _ in 0..2048 {
            if let Err(e) = writer.send(Message::Binary(payload.clone())).await {
                return e;
            }
        }
        panic!("512 MiB went into a socket nobody reads");
    });
    let err = within("keepalive to give up", reader.recv()).await.unwrap_err();
    assert_eq!(
        err.close_error().map(|c| c.code),
        Some(CloseCode::ABNORMAL_CLOSURE),
        "{err}"
    );
    let ended = Instant::now();
    let w = tokio::time::timeout(Duration::from_secs(3), server_writer)
        .await
        .expect("the writer is still blocked after the reader ended the session")
        .unwrap();
    // Released at the moment the session ended, not by a timer of its own.
    assert_waited(ended.elapsed(), Duration::ZERO);
    assert!(
        w.close_error().is_some() || matches!(w, Error::AlreadyClosed),
        "{w:?}"
    );
}
