//! Server-side `Conn` over real sockets: deadlines, cancel safety, split halves, Stream/Sink,
//! prepared messages, write-buffer pools, and the `Send`/`Sync` guarantees.
//!
//! The client is the raw test client of tests/common (never ferrosocket's own client).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::{Bytes, BytesMut};
use common::{
    Client, assert_waited, close_payload, connect, connect_duplex, connect_duplex_with, masked, server_frame,
    spawn_echo, tcp_pair, within,
};
use ferrosocket::proto::OpCode;
use ferrosocket::proto::{Config, Connection, Event, Role};
use ferrosocket::{
    BufferPool, CloseCode, CloseFrame, Conn, Error, Message, PreparedMessage, ReadHalf, TimeoutKind,
    Upgrader, WriteBufferPool, WriteHalf,
};
use std::sync::Arc;
use std::time::Duration;
#[cfg(feature = "stream")]
use std::{future::poll_fn, pin::Pin};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

// ---- 6. deadlines --------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn read_deadline_times_out_and_the_connection_stays_usable() {
    let (mut conn, mut client) = connect_duplex(&Upgrader::new()).await;
    let start = Instant::now();
    conn.set_read_deadline(Some(Instant::now() + Duration::from_millis(100)));
    let r = within("recv", conn.recv()).await;
    assert!(matches!(r, Err(Error::Timeout(TimeoutKind::Read))), "{r:?}");
    assert_waited(start.elapsed(), Duration::from_millis(100));

    conn.set_read_deadline(None);
    client.send("still here").await;
    assert_eq!(
        within("recv", conn.recv()).await.unwrap(),
        Message::text("still here")
    );
    within("send", conn.send("and so am I")).await.unwrap();
    assert_eq!(client.recv().await, Message::text("and so am I"));

    // A deadline in the future does not disturb a message that arrives in time.
    conn.set_read_deadline(Some(Instant::now() + Duration::from_secs(5)));
    client.send("in time").await;
    assert_eq!(
        within("recv", conn.recv()).await.unwrap(),
        Message::text("in time")
    );
}

#[tokio::test(start_paused = true)]
async fn read_deadline_mid_frame_loses_nothing() {
    let (mut conn, mut client) = connect_duplex(&Upgrader::new()).await;
    let frame = masked(OpCode::Binary, &[9u8; 300]);
    client.write(&frame[..100]).await;
    let start = Instant::now();
    conn.set_read_deadline(Some(start + Duration::from_millis(50)));
    let r = within("recv", conn.recv()).await;
    assert!(matches!(r, Err(Error::Timeout(TimeoutKind::Read))), "{r:?}");
    assert_waited(start.elapsed(), Duration::from_millis(50));
    conn.set_read_deadline(None);
    client.write(&frame[100..]).await;
    assert_eq!(
        within("recv", conn.recv()).await.unwrap(),
        Message::binary(vec![9u8; 300])
    );
}

#[tokio::test(start_paused = true)]
async fn write_deadline_with_a_client_that_never_reads() {
    // The pipe holds a few of the 1 MiB messages, as socket buffers would.
    let (mut conn, _client) = connect_duplex_with(&Upgrader::new(), 4 << 20).await;
    conn.set_write_deadline(Some(Instant::now() + Duration::from_millis(200)));
    let big = Bytes::from(vec![0u8; 1 << 20]);
    let start = Instant::now();
    let mut sent = 0;
    let err = within("the write deadline", async {
        loop {
            match conn.send(Message::Binary(big.clone())).await {
                Ok(()) => sent += 1,
                Err(e) => return e,
            }
            assert!(sent < 512, "512 MiB went into a socket nobody reads");
        }
    })
    .await;
    assert!(matches!(err, Error::Timeout(TimeoutKind::Write)), "{err:?}");
    assert_waited(start.elapsed(), Duration::from_millis(200));
    assert!(sent >= 1, "some messages fit in the pipe");
}

// ---- 7. cancel safety ----------------------------------------------------------------------

#[tokio::test]
async fn recv_cancelled_mid_frame_loses_nothing() {
    let (mut conn, mut client) = connect(&Upgrader::new()).await;
    let payload: Vec<u8> = (0..64 << 10).map(|i| (i % 253) as u8).collect();
    let frame = masked(OpCode::Binary, &payload);
    let half = frame.len() / 2;
    let (first, rest) = frame.split_at(half);
    let writer = async {
        client.write(first).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        client.write(rest).await;
    };
    let reader = async {
        let mut cancelled = 0;
        loop {
            tokio::select! {
                r = conn.recv() => return (r.unwrap(), cancelled),
                () = tokio::time::sleep(Duration::from_millis(5)) => cancelled += 1,
            }
        }
    };
    let ((), (msg, cancelled)) = within("the message", async { tokio::join!(writer, reader) }).await;
    assert!(
        cancelled >= 3,
        "recv was cancelled mid-frame only {cancelled} times"
    );
    assert_eq!(msg, Message::binary(payload));
    // Nothing is left over or duplicated.
    client.send("next").await;
    assert_eq!(within("recv", conn.recv()).await.unwrap(), Message::text("next"));
}

#[tokio::test]
async fn recv_cancelled_every_millisecond_delivers_each_message_once_in_order() {
    let (mut conn, mut client) = connect(&Upgrader::new()).await;
    let messages: Vec<Message> = (0..8)
        .map(|i| {
            if i % 2 == 1 {
                Message::binary(vec![i as u8; 3 + i])
            } else {
                Message::text(format!("msg {i} ✓"))
            }
        })
        .collect();
    let mut wire = Vec::new();
    for m in &messages {
        client.core.send(m.clone()).unwrap();
        if wire.is_empty() {
            // A ping in the trickle too: answered between cancellations.
            client.core.send_ping(b"mid").unwrap();
        }
        wire.extend(client.core.take_output());
    }
    let writer = async {
        for b in &wire {
            client.write(std::slice::from_ref(b)).await;
            tokio::time::sleep(Duration::from_micros(300)).await;
        }
    };
    let reader = async {
        let mut got = Vec::new();
        let mut cancelled = 0;
        while got.len() < messages.len() {
            tokio::select! {
                r = conn.recv() => got.push(r.unwrap()),
                () = tokio::time::sleep(Duration::from_millis(1)) => cancelled += 1,
            }
        }
        (got, cancelled)
    };
    let ((), (got, cancelled)) = within("the messages", async { tokio::join!(writer, reader) }).await;
    assert_eq!(got, messages);
    assert!(cancelled >= 20, "only {cancelled} cancellations");
    // Exactly once: the next message is the next one sent, and the ping got its pong.
    client.send("end").await;
    assert_eq!(within("recv", conn.recv()).await.unwrap(), Message::text("end"));
    assert_eq!(client.next_event().await, Event::Pong(Bytes::from_static(b"mid")));
}

// ---- 8. split ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_halves_read_and_write_concurrently() {
    const N: usize = 1000;
    let (conn, client) = connect(&Upgrader::new()).await;
    let (mut reader, writer) = conn.split();
    let Client { io, raw, .. } = client;
    let (mut client_rd, mut client_wr) = io.into_split();

    // Server: one task reads the client's N messages, another sends N of its own.
    let server_reader = tokio::spawn(async move {
        for i in 0..N {
            let m = reader.recv().await.unwrap();
            assert_eq!(m, Message::text(format!("c{i}")));
        }
        let end = reader.recv().await;
        (reader, end)
    });
    let w = writer.clone();
    let server_writer = tokio::spawn(async move {
        for i in 0..N {
            w.send(Message::binary(format!("s{i}").into_bytes()))
                .await
                .unwrap();
        }
    });

    // Client: writes N messages with a ping every 100, in many writes; reads everything.
    let client_writer = tokio::spawn(async move {
        let mut enc = Connection::new(Role::Client, Config::default());
        for i in 0..N {
            enc.send(Message::text(format!("c{i}"))).unwrap();
            if i % 100 == 50 {
                enc.send_ping(format!("p{i}").as_bytes()).unwrap();
            }
            if i % 10 == 9 {
                client_wr.write_all(&enc.take_output()).await.unwrap();
            }
        }
        (enc, client_wr)
    });
    let client_reader = tokio::spawn(async move {
        let mut dec = Connection::new(Role::Client, Config::default());
        dec.receive(&raw);
        let mut messages = 0;
        let mut pongs = Vec::new();
        let mut buf = BytesMut::with_capacity(16 << 10);
        while messages < N || pongs.len() < N / 100 {
            match dec.poll_event().unwrap() {
                Some(Event::Message(m)) => {
                    assert_eq!(m, Message::binary(format!("s{messages}").into_bytes()));
                    messages += 1;
                }
                Some(Event::Pong(p)) => pongs.push(p),
                Some(other) => panic!("{other:?}"),
                None => {
                    buf.clear();
                    assert_ne!(client_rd.read_buf(&mut buf).await.unwrap(), 0, "EOF");
                    dec.receive(&buf);
                }
            }
        }
        let expected: Vec<Bytes> = (0..N / 100)
            .map(|k| Bytes::from(format!("p{}", k * 100 + 50)))
            .collect();
        assert_eq!(pongs, expected);
        (dec, client_rd)
    });

    within("the server writer", server_writer).await.unwrap();
    let (mut dec, mut client_rd) = within("the client reader", client_reader).await.unwrap();
    let (_enc, mut client_wr) = within("the client writer", client_writer).await.unwrap();

    // The writer half closes; the client answers; the reader half sees the close.
    within(
        "send_close",
        writer.send_close(Some(CloseFrame::new(1000, "done"))),
    )
    .await
    .unwrap();
    let mut buf = BytesMut::new();
    let close = loop {
        match dec.poll_event().unwrap() {
            Some(Event::Close(c)) => break c,
            Some(other) => panic!("{other:?}"),
            None => {
                within("the close", client_rd.read_buf(&mut buf)).await.unwrap();
                dec.receive(&buf.split());
            }
        }
    };
    assert_eq!(close, Some(CloseFrame::new(1000, "done")));
    client_wr.write_all(&dec.take_output()).await.unwrap();
    let (mut reader, end) = within("the server reader", server_reader).await.unwrap();
    match end {
        Err(Error::Closed(c)) => assert_eq!(c.code, CloseCode::NORMAL_CLOSURE),
        other => panic!("{other:?}"),
    }
    assert!(matches!(reader.recv().await, Err(Error::AlreadyClosed)));
    assert!(writer.send("late").await.is_err());
    let n = within("EOF", client_rd.read_buf(&mut buf)).await.unwrap();
    assert_eq!(n, 0, "the server closed TCP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_reader_answers_pings_while_the_writer_is_busy() {
    let (conn, mut client) = connect(&Upgrader::new()).await;
    let (mut reader, writer) = conn.split();
    let busy = tokio::spawn(async move {
        for i in 0..200 {
            writer.feed(Message::binary(vec![i as u8; 1000])).await.unwrap();
        }
        writer.flush().await.unwrap();
        writer
    });
    let server_reader = tokio::spawn(async move {
        let m = reader.recv().await.unwrap();
        (reader, m)
    });
    client.ping(b"alive?").await;
    client.send("stop").await;
    let mut pong = false;
    let mut messages = 0;
    while !pong || messages < 200 {
        match client.next_event().await {
            Event::Pong(p) => {
                assert_eq!(&p[..], b"alive?");
                pong = true;
            }
            Event::Message(m) => {
                assert_eq!(m, Message::binary(vec![messages as u8; 1000]));
                messages += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    let (_reader, m) = within("the reader", server_reader).await.unwrap();
    assert_eq!(m, Message::text("stop"));
    within("the writer", busy).await.unwrap();
}

/// A transport that takes every write and fails every flush once `reset` is set, as an
/// HTTP/2 stream does when the peer that read our close frame answers and resets the stream
/// while hyper's send task still holds our flush. `input` (what the peer sent before the
/// reset) stays readable, then the input ends.
struct ResetAfterWrite {
    input: std::io::Cursor<Vec<u8>>,
    written: Vec<u8>,
    reset: bool,
}

impl tokio::io::AsyncRead for ResetAfterWrite {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let input = &mut self.input;
        let start = input.position() as usize;
        let n = (input.get_ref().len() - start).min(buf.remaining());
        buf.put_slice(&input.get_ref()[start..start + n]);
        input.set_position((start + n) as u64);
        std::task::Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for ResetAfterWrite {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.written.extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(match self.reset {
            true => Err(std::io::ErrorKind::ConnectionReset.into()),
            false => Ok(()),
        })
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}

/// Our close frame went to the transport whole and the flush after it failed (the peer reset
/// the stream once it had read the close). `send_close` succeeds, as it would had the same
/// bytes gone into a TCP socket; `recv` then tells how the session ended: the peer's close
/// frame when one arrived before the reset, 1006 with the transport's error when none did.
/// Whole and split connections alike.
#[tokio::test]
async fn a_reset_after_our_close_was_written_fails_recv_not_send_close() {
    for (split, peer_close) in [(false, true), (true, true), (false, false), (true, false)] {
        let input = match peer_close {
            true => masked(OpCode::Close, &close_payload(1000, "seen")),
            false => Vec::new(),
        };
        let io = ResetAfterWrite {
            input: std::io::Cursor::new(input),
            written: Vec::new(),
            reset: false,
        };
        let mut conn = Conn::from_raw(io, Role::Server, Config::default(), &[]);
        conn.send(Message::text("a")).await.unwrap();
        conn.get_mut().reset = true;
        let frame = CloseFrame::new(CloseCode::NORMAL_CLOSURE, "bye");
        let end = if split {
            let (mut reader, writer) = conn.split();
            within("the close", writer.send_close(Some(frame))).await.unwrap();
            let end = within("recv", reader.recv()).await.unwrap_err();
            let conn = reader.reunite(writer).unwrap();
            assert_eq!(conn.get_ref().written, b"\x81\x01a\x88\x05\x03\xe8bye");
            end
        } else {
            within("the close", conn.send_close(Some(frame))).await.unwrap();
            assert_eq!(conn.get_ref().written, b"\x81\x01a\x88\x05\x03\xe8bye");
            within("recv", conn.recv()).await.unwrap_err()
        };
        let Error::Closed(c) = end else { panic!("{end:?}") };
        match peer_close {
            true => assert_eq!((c.code, c.reason.as_str()), (CloseCode::NORMAL_CLOSURE, "seen")),
            false => assert_eq!(c.code, CloseCode::ABNORMAL_CLOSURE, "{c:?}"),
        }
    }
}

// ---- 9. Stream / Sink ----------------------------------------------------------------------

#[cfg(feature = "stream")]
async fn next_item(conn: &mut Conn<TcpStream>) -> Option<Result<Message, Error>> {
    use futures_core::Stream;
    within("the stream", poll_fn(|cx| Pin::new(&mut *conn).poll_next(cx))).await
}

#[cfg(feature = "stream")]
#[tokio::test]
async fn stream_yields_messages_and_ends_after_a_normal_close() {
    let (mut conn, mut client) = connect(&Upgrader::new()).await;
    client.send("one").await;
    client.send(Message::binary(vec![2])).await;
    assert_eq!(next_item(&mut conn).await.unwrap().unwrap(), Message::text("one"));
    assert_eq!(
        next_item(&mut conn).await.unwrap().unwrap(),
        Message::binary(vec![2])
    );
    client
        .write(&masked(OpCode::Close, &close_payload(1000, "")))
        .await;
    assert!(next_item(&mut conn).await.is_none());
    assert!(next_item(&mut conn).await.is_none(), "fused after the end");
    client.expect_close(1000).await;
    client.expect_eof().await;

    // An abnormal end is yielded once as an error, then the stream ends.
    let (mut conn, client) = connect(&Upgrader::new()).await;
    drop(client);
    match next_item(&mut conn).await {
        Some(Err(Error::Closed(c))) => assert_eq!(c.code, CloseCode::ABNORMAL_CLOSURE),
        other => panic!("{other:?}"),
    }
    assert!(next_item(&mut conn).await.is_none());
}

#[cfg(feature = "stream")]
#[tokio::test]
async fn sink_sends_messages_and_close_sends_1000() {
    use futures_sink::Sink;
    let (mut conn, mut client) = connect(&Upgrader::new()).await;
    for i in 0..3 {
        within("poll_ready", poll_fn(|cx| Pin::new(&mut conn).poll_ready(cx)))
            .await
            .unwrap();
        Pin::new(&mut conn)
            .start_send(Message::text(format!("item {i}")))
            .unwrap();
    }
    within(
        "poll_flush",
        poll_fn(|cx| Sink::poll_flush(Pin::new(&mut conn), cx)),
    )
    .await
    .unwrap();
    for i in 0..3 {
        assert_eq!(client.recv().await, Message::text(format!("item {i}")));
    }
    within("poll_close", poll_fn(|cx| Pin::new(&mut conn).poll_close(cx)))
        .await
        .unwrap();
    assert_eq!(client.expect_close(1000).await, "");
    assert!(Pin::new(&mut conn).start_send(Message::text("late")).is_err());
    // The close handshake completes through recv.
    client
        .write(&masked(OpCode::Close, &close_payload(1000, "")))
        .await;
    let (err, ()) = tokio::join!(
        async { within("recv", conn.recv()).await.unwrap_err() },
        client.read_to_eof_and_close()
    );
    assert!(err.is_normal_close(), "{err:?}");
    client.expect_eof().await;
}

// ---- 10. PreparedMessage and WriteBufferPool -----------------------------------------------

#[tokio::test]
async fn prepared_message_reaches_fifty_connections_byte_exact() {
    let upgrader = Upgrader::new();
    let small = PreparedMessage::new(Message::text("broadcast ✓"));
    let large = PreparedMessage::new(Message::binary(
        (0..70_000).map(|i| (i % 241) as u8).collect::<Vec<u8>>(),
    ));
    let mut expected = server_frame(&small.message());
    expected.extend(server_frame(&large.message()));
    let mut pairs = Vec::new();
    for _ in 0..50 {
        pairs.push(connect(&upgrader).await);
    }
    for (conn, _) in &mut pairs {
        within("send_prepared", conn.send_prepared(&small)).await.unwrap();
        within("send_prepared", conn.send_prepared(&large)).await.unwrap();
    }
    for (_, client) in &mut pairs {
        assert_eq!(client.read_exact_raw(expected.len()).await, expected);
    }
    // The frames are usable after a normal message too, on a fresh connection.
    let (mut conn, mut client) = connect(&upgrader).await;
    conn.feed("before").await.unwrap();
    conn.feed_prepared(&small).unwrap();
    within("flush", conn.flush()).await.unwrap();
    assert_eq!(client.recv().await, Message::text("before"));
    assert_eq!(client.recv().await, Message::text("broadcast ✓"));
}

#[tokio::test]
async fn write_buffer_pool_shared_by_fifty_connections() {
    let pool = Arc::new(WriteBufferPool::new(64, 64 << 10));
    let upgrader = Upgrader::new().write_buffer_pool(pool.clone());
    let mut clients = Vec::new();
    let mut echoes = Vec::new();
    for _ in 0..50 {
        let (conn, client) = connect(&upgrader).await;
        echoes.push(spawn_echo(conn));
        clients.push(client);
    }
    for round in 0..2 {
        for (i, client) in clients.iter_mut().enumerate() {
            client.send(format!("hello {i} round {round}")).await;
            client.send(Message::binary(vec![i as u8; 10_000])).await;
        }
        for (i, client) in clients.iter_mut().enumerate() {
            assert_eq!(
                client.recv().await,
                Message::text(format!("hello {i} round {round}"))
            );
            assert_eq!(client.recv().await, Message::binary(vec![i as u8; 10_000]));
        }
        // Every connection is idle: the pool holds the buffers they wrote with.
        tokio::task::yield_now().await;
        let mut held = Vec::new();
        while let Some(b) = pool.get() {
            assert!(b.is_empty());
            held.push(b);
        }
        assert!(!held.is_empty(), "round {round}: the pool holds no buffer");
        // Real buffers, not the empty tail of one: each had room for a text frame it carried.
        let frame_len = format!("hello 49 round {round}").len() + 2;
        assert!(held.iter().all(|b| b.capacity() >= frame_len), "{held:?}");
        for b in held {
            pool.put(b);
        }
    }
    for (client, echo) in clients.iter_mut().zip(echoes) {
        client
            .write(&masked(OpCode::Close, &close_payload(1000, "")))
            .await;
        client.expect_close(1000).await;
        client.expect_eof().await;
        assert!(within("echo", echo).await.unwrap().is_normal_close());
    }
}

// ---- 11. Send and Sync ---------------------------------------------------------------------

fn assert_send<T: Send>(_: &T) {}
fn assert_send_type<T: Send>() {}
fn assert_sync_type<T: Sync>() {}

#[test]
fn public_types_are_send_and_sync_where_promised() {
    assert_send_type::<Conn<TcpStream>>();
    assert_send_type::<Upgrader>();
    assert_sync_type::<Upgrader>();
    assert_send_type::<ReadHalf<TcpStream>>();
    assert_send_type::<WriteHalf<TcpStream>>();
    assert_send_type::<PreparedMessage>();
    assert_sync_type::<PreparedMessage>();
    assert_send_type::<Error>();
}

#[allow(dead_code)]
fn futures_are_send(conn: &mut Conn<TcpStream>, upgrader: &Upgrader, stream: TcpStream) {
    assert_send(&conn.recv());
    assert_send(&conn.send("x"));
    assert_send(&conn.close(None));
    assert_send(&upgrader.accept(stream));
}

#[allow(dead_code)]
fn split_futures_are_send(reader: &mut ReadHalf<TcpStream>, writer: &WriteHalf<TcpStream>) {
    assert_send(&reader.recv());
    assert_send(&writer.send("x"));
}

#[tokio::test]
async fn accept_of_a_raw_socket_pair_works_from_spawned_tasks() {
    // The accept future is Send in practice: run it on a spawned task.
    let (server, io) = tcp_pair().await;
    let upgrader = Upgrader::new();
    let accept = tokio::spawn(async move { upgrader.accept(server).await.map(spawn_echo) });
    let mut io = io;
    io.write_all(&common::Req::valid().bytes()).await.unwrap();
    let echo = within("accept", accept).await.unwrap().unwrap();
    let mut client = Client::after_handshake(io).await;
    client.send("spawned").await;
    assert_eq!(client.recv().await, Message::text("spawned"));
    client
        .write(&masked(OpCode::Close, &close_payload(1000, "")))
        .await;
    client.expect_close(1000).await;
    assert!(within("echo", echo).await.unwrap().is_normal_close());
}
