//! Server side over real sockets: handshake, echo, control frames, close and limits.
//!
//! The client is a raw test client (tests/common): hand-written upgrade requests, and frames
//! built by hand or by a sans-I/O client `Connection`. Deadlines, cancel safety, split halves,
//! Stream/Sink and broadcast are in tests/conn.rs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::{
    Client, Req, assert_waited, close_payload, connect, connect_duplex, connect_with, frame, handshake,
    handshake_duplex, masked, refused, spawn_echo, within,
};
use ferrosocket::proto::HandshakeError;
use ferrosocket::proto::OpCode;
use ferrosocket::proto::{Event, MessageKind, ProtocolError, SendError};
use ferrosocket::{
    CloseAction, CloseCode, CloseFrame, Error, Message, PingAction, TimeoutKind, Upgrader,
    is_unexpected_close_error,
};
use http::header::{HeaderName, HeaderValue};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

fn text_of(len: usize) -> String {
    (0..len).map(|i| char::from(b'a' + (i % 26) as u8)).collect()
}

fn binary_of(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// Ends a session from the client with 1000 and checks the whole close handshake.
async fn close_normally(client: &mut Client, echo: tokio::task::JoinHandle<Error>) {
    client
        .write(&masked(OpCode::Close, &close_payload(1000, "")))
        .await;
    assert_eq!(client.expect_close(1000).await, "");
    client.expect_eof().await;
    let end = within("the echo task", echo).await.unwrap();
    assert!(
        matches!(&end, Error::Closed(c) if c.code == CloseCode::NORMAL_CLOSURE),
        "{end:?}"
    );
}

// ---- 1. handshake --------------------------------------------------------------------------

#[tokio::test]
async fn handshake_rejections_have_their_statuses() {
    let mut post = Req::valid();
    post.method = "POST";
    let mut http10 = Req::valid();
    http10.version = "HTTP/1.0";
    let cases: Vec<(&str, Req, u16, HandshakeError)> = vec![
        ("not GET", post, 405, HandshakeError::MethodNotGet),
        ("HTTP/1.0", http10, 505, HandshakeError::HttpVersion),
        (
            "no Host",
            Req::valid().without("host"),
            400,
            HandshakeError::MissingHost,
        ),
        (
            "no Upgrade",
            Req::valid().without("upgrade"),
            400,
            HandshakeError::NotUpgrade,
        ),
        (
            "Upgrade: h2c",
            Req::valid().set("Upgrade", "h2c"),
            400,
            HandshakeError::NotUpgrade,
        ),
        (
            "Connection: keep-alive",
            Req::valid().set("Connection", "keep-alive"),
            400,
            HandshakeError::ConnectionNotUpgrade,
        ),
        (
            "no Connection",
            Req::valid().without("connection"),
            400,
            HandshakeError::ConnectionNotUpgrade,
        ),
        (
            "version 8",
            Req::valid().set("Sec-WebSocket-Version", "8"),
            426,
            HandshakeError::UnsupportedVersion,
        ),
        (
            "bad key",
            Req::valid().set("Sec-WebSocket-Key", "not base64!"),
            400,
            HandshakeError::BadKey,
        ),
        (
            "short key",
            Req::valid().set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25j"),
            400,
            HandshakeError::BadKey,
        ),
        (
            "cross origin",
            Req::valid().add("Origin", "http://evil.example"),
            403,
            HandshakeError::OriginNotAllowed,
        ),
    ];
    let upgrader = Upgrader::new();
    for (name, req, status, error) in cases {
        let r = refused(&upgrader, &req.bytes()).await;
        assert_eq!(r.response.status(), status, "{name}");
        match &r.error {
            Error::Handshake(e) => assert_eq!(e, &error, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        assert_eq!(r.body, format!("{error}\n").into_bytes(), "{name}: default body");
        let headers = r.response.headers();
        assert_eq!(headers["connection"], "close", "{name}");
        match status {
            405 => assert_eq!(headers["allow"], "GET", "{name}"),
            426 => assert_eq!(headers["sec-websocket-version"], "13", "{name}"),
            _ => {
                assert!(!headers.contains_key("allow"), "{name}");
                assert!(!headers.contains_key("sec-websocket-version"), "{name}");
            }
        }
    }
}

#[tokio::test]
async fn handshake_accepts_connection_lists_same_origin_and_no_origin() {
    let upgrader = Upgrader::new();
    for req in [
        Req::valid().set("Connection", "keep-alive, Upgrade"),
        Req::valid()
            .set("Connection", "keep-alive")
            .add("Connection", "upgrade"),
        Req::valid().add("Origin", "http://localhost"),
        Req::valid()
            .set("Host", "localhost:8080")
            .add("Origin", "https://LOCALHOST:8080"),
        Req::valid(),
    ] {
        let (conn, mut client) = connect_with(&upgrader, req.clone()).await;
        let h = client.response.headers();
        assert_eq!(h["upgrade"], "websocket");
        assert!(h["connection"].to_str().unwrap().eq_ignore_ascii_case("upgrade"));
        assert!(!h.contains_key("sec-websocket-protocol"));
        let echo = spawn_echo(conn);
        client.send("hi").await;
        assert_eq!(client.recv().await, Message::text("hi"), "{req:?}");
        close_normally(&mut client, echo).await;
    }
}

#[tokio::test]
async fn check_origin_can_accept_any_origin() {
    let req = Req::valid().add("Origin", "http://evil.example");
    let upgrader = Upgrader::new().check_origin(|parts| parts.headers.contains_key("origin"));
    let (conn, client) = connect_with(&upgrader, req.clone()).await;
    assert_eq!(client.response.status(), 101);
    drop(conn);
    let upgrader = Upgrader::new().check_origin(|_| true);
    let (_conn, client) = connect_with(&upgrader, req).await;
    assert_eq!(client.response.status(), 101);
    // A refusing check gives 403 even without Origin.
    let r = refused(&Upgrader::new().check_origin(|_| false), &Req::valid().bytes()).await;
    assert_eq!(r.response.status(), 403);
}

#[tokio::test]
async fn oversized_request_head_gets_431() {
    let pad = "a".repeat(2000);
    let upgrader = Upgrader::new().max_header_bytes(1024);
    let r = refused(&upgrader, &Req::valid().add("X-Pad", &pad).bytes()).await;
    assert_eq!(r.response.status(), 431);
    assert!(matches!(
        r.error,
        Error::Handshake(HandshakeError::HeaderTooLarge)
    ));
    // The same request fits the default limit (16 KiB) ...
    let (_conn, client) = connect_with(&Upgrader::new(), Req::valid().add("X-Pad", &pad)).await;
    assert_eq!(client.response.status(), 101);
    // ... which a 17 KiB head exceeds.
    let pad = "a".repeat(17 << 10);
    let r = refused(&Upgrader::new(), &Req::valid().add("X-Pad", &pad).bytes()).await;
    assert_eq!(r.response.status(), 431);
}

#[tokio::test]
async fn custom_error_response_is_used() {
    let upgrader = Upgrader::new().error_response(|status, err| {
        http::Response::builder()
            .status(status)
            .header(
                "x-reason",
                if matches!(err, HandshakeError::BadKey) {
                    "key"
                } else {
                    "other"
                },
            )
            .body(Bytes::from_static(b"custom body"))
            .unwrap()
    });
    let r = refused(&upgrader, &Req::valid().set("Sec-WebSocket-Key", "x").bytes()).await;
    assert_eq!(r.response.status(), 400);
    assert_eq!(r.body, b"custom body");
    assert_eq!(r.response.headers()["x-reason"], "key");
    // The headers the protocol requires are still added.
    let r = refused(&upgrader, &Req::valid().set("Sec-WebSocket-Version", "8").bytes()).await;
    assert_eq!(r.response.status(), 426);
    assert_eq!(r.body, b"custom body");
    assert_eq!(r.response.headers()["sec-websocket-version"], "13");
    assert_eq!(r.response.headers()["x-reason"], "other");
}

#[tokio::test]
async fn response_header_is_in_the_101() {
    let upgrader = Upgrader::new()
        .response_header(
            HeaderName::from_static("set-cookie"),
            HeaderValue::from_static("id=1"),
        )
        .response_header(
            HeaderName::from_static("x-server"),
            HeaderValue::from_static("ferro"),
        );
    let (_conn, client) = connect(&upgrader).await;
    let h = client.response.headers();
    assert_eq!(h["set-cookie"], "id=1");
    assert_eq!(h["x-server"], "ferro");
    assert_eq!(h["sec-websocket-accept"], common::ACCEPT);
}

#[tokio::test]
async fn subprotocol_negotiation_follows_server_preference() {
    let upgrader = Upgrader::new().subprotocols(["v3", "v2", "v1"]);
    let req = Req::valid()
        .add("Sec-WebSocket-Protocol", "v1, v2")
        .add("Sec-WebSocket-Protocol", "v3");
    let (conn, client) = connect_with(&upgrader, req).await;
    assert_eq!(conn.subprotocol(), Some("v3"));
    assert_eq!(client.response.headers()["sec-websocket-protocol"], "v3");

    let req = Req::valid().add("Sec-WebSocket-Protocol", "v1,v2");
    let (conn, client) = connect_with(&upgrader, req).await;
    assert_eq!(conn.subprotocol(), Some("v2"));
    assert_eq!(client.response.headers()["sec-websocket-protocol"], "v2");

    for req in [
        Req::valid().add("Sec-WebSocket-Protocol", "chat, V1"),
        Req::valid(),
    ] {
        let (conn, client) = connect_with(&upgrader, req).await;
        assert_eq!(conn.subprotocol(), None);
        assert!(!client.response.headers().contains_key("sec-websocket-protocol"));
    }
}

#[tokio::test(start_paused = true)]
async fn stalled_handshake_times_out_and_is_dropped() {
    let upgrader = Upgrader::new().handshake_timeout(Some(Duration::from_millis(200)));
    let req = Req::valid().bytes();
    let start = Instant::now();
    let (result, mut client) = handshake_duplex(&upgrader, &req[..req.len() / 2]).await;
    let elapsed = start.elapsed();
    assert!(
        matches!(result, Err(Error::Timeout(TimeoutKind::Handshake))),
        "{result:?}"
    );
    assert_waited(elapsed, Duration::from_millis(200));
    let mut rest = Vec::new();
    let n = within("EOF", client.read_to_end(&mut rest)).await.unwrap();
    assert_eq!(n, 0, "no response to a stalled request, then EOF");
}

#[tokio::test]
async fn frames_sent_with_the_request_are_the_first_messages() {
    let mut bytes = Req::valid().bytes();
    bytes.extend(masked(OpCode::Text, b"first"));
    bytes.extend(masked(OpCode::Binary, &[1, 2, 3]));
    bytes.extend(&masked(OpCode::Text, b"third")[..4]); // and part of a third
    let (result, io) = handshake(&Upgrader::new(), &bytes).await;
    let mut conn = result.unwrap();
    let mut client = Client::after_handshake(io).await;
    assert_eq!(client.response.status(), 101);
    assert_eq!(within("recv", conn.recv()).await.unwrap(), Message::text("first"));
    assert_eq!(
        within("recv", conn.recv()).await.unwrap(),
        Message::binary(vec![1, 2, 3])
    );
    client.write(&masked(OpCode::Text, b"third")[4..]).await;
    assert_eq!(within("recv", conn.recv()).await.unwrap(), Message::text("third"));
}

// ---- 2. echo -------------------------------------------------------------------------------

#[tokio::test]
async fn echo_is_byte_exact_at_every_length_form() {
    let (conn, mut client) = connect(&Upgrader::new()).await;
    let echo = spawn_echo(conn);
    for size in [0, 1, 125, 126, 127, 65535, 65536, 16 << 20] {
        let text = Message::text(text_of(size));
        client.send(text.clone()).await;
        let back = client.recv().await;
        assert_eq!(back.kind(), MessageKind::Text, "size {size}");
        assert!(back == text, "text of {size} bytes differs");
        let binary = Message::binary(binary_of(size));
        client.send(binary.clone()).await;
        let back = client.recv().await;
        assert_eq!(back.kind(), MessageKind::Binary, "size {size}");
        assert!(back == binary, "binary of {size} bytes differs");
    }
    // The wire form of a 126-byte echo: 16-bit length, unmasked.
    client.send(Message::binary(binary_of(126))).await;
    let f = client.read_frame().await;
    assert_eq!((f.fin, f.opcode, f.payload.len()), (true, OpCode::Binary, 126));
    assert_eq!(f.payload, binary_of(126));
    close_normally(&mut client, echo).await;
}

#[tokio::test]
async fn fragmented_message_with_interleaved_pings_is_echoed_whole() {
    let (conn, mut client) = connect(&Upgrader::new()).await;
    let echo = spawn_echo(conn);
    let whole = text_of(100 * 50);
    for (i, piece) in whole.as_bytes().chunks(50).enumerate() {
        client
            .core
            .send_fragment(MessageKind::Text, Bytes::copy_from_slice(piece), i == 99)
            .unwrap();
        if i % 20 == 10 {
            client.core.send_ping(format!("p{i}").as_bytes()).unwrap();
        }
    }
    client.flush().await;
    for i in [10, 30, 50, 70, 90] {
        let f = client.read_frame().await;
        assert_eq!(
            (f.opcode, f.payload),
            (OpCode::Pong, format!("p{i}").into_bytes())
        );
    }
    let f = client.read_frame().await;
    assert!(f.fin, "echoed as one frame");
    assert_eq!(f.opcode, OpCode::Text);
    assert_eq!(f.payload, whole.as_bytes());
    close_normally(&mut client, echo).await;
}

#[tokio::test]
async fn hundred_messages_in_one_write_come_back_in_order() {
    let (conn, mut client) = connect(&Upgrader::new()).await;
    let echo = spawn_echo(conn);
    // Small frames (gathered in one buffer) and large ones (queued apart, > 4 KiB) mixed,
    // with a ping in the middle: its pong must sit between the echoes around it.
    let message = |i: usize| {
        if i % 2 == 1 {
            Message::binary(binary_of(i * 50))
        } else {
            Message::text(format!("message {i}"))
        }
    };
    for i in 0..100 {
        client.core.send(message(i)).unwrap();
        if i == 49 {
            client.core.send_ping(b"middle").unwrap();
        }
    }
    client.flush().await;
    for i in 0..100 {
        let f = client.read_frame().await;
        assert_eq!(f, common::RawFrame::of(&message(i)), "message {i}");
        if i == 49 {
            let f = client.read_frame().await;
            assert_eq!((f.opcode, &f.payload[..]), (OpCode::Pong, &b"middle"[..]));
        }
    }
    close_normally(&mut client, echo).await;
}

// ---- 3. control frames ---------------------------------------------------------------------

#[tokio::test]
async fn ping_is_answered_with_the_same_payload() {
    let (conn, mut client) = connect(&Upgrader::new()).await;
    let echo = spawn_echo(conn);
    client.write(&masked(OpCode::Ping, b"hello")).await;
    assert_eq!(client.read_exact_raw(7).await, b"\x8a\x05hello");
    client.write(&masked(OpCode::Ping, b"")).await;
    assert_eq!(client.read_exact_raw(2).await, b"\x8a\x00");
    let big = [7u8; 125];
    client.write(&masked(OpCode::Ping, &big)).await;
    let f = client.read_frame().await;
    assert_eq!((f.opcode, &f.payload[..]), (OpCode::Pong, &big[..]));
    close_normally(&mut client, echo).await;
}

#[tokio::test]
async fn ping_handler_can_suppress_the_pong() {
    let (mut conn, mut client) = connect(&Upgrader::new()).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    conn.set_ping_handler(move |p| {
        tx.send(p.to_vec()).unwrap();
        PingAction::Ignore
    });
    let echo = spawn_echo(conn);
    client.write(&masked(OpCode::Ping, b"quiet")).await;
    client.write(&masked(OpCode::Text, b"after")).await;
    // The echo is the first frame: no pong before it.
    let f = client.read_frame().await;
    assert_eq!((f.opcode, &f.payload[..]), (OpCode::Text, &b"after"[..]));
    assert_eq!(rx.try_recv().unwrap(), b"quiet");
    close_normally(&mut client, echo).await;
}

#[tokio::test]
async fn ping_handler_can_keep_the_pong() {
    let (mut conn, mut client) = connect(&Upgrader::new()).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    conn.set_ping_handler(move |p| {
        tx.send(p.to_vec()).unwrap();
        PingAction::Pong
    });
    let echo = spawn_echo(conn);
    client.write(&masked(OpCode::Ping, b"loud")).await;
    assert_eq!(client.read_exact_raw(6).await, b"\x8a\x04loud");
    assert_eq!(rx.recv().await.unwrap(), b"loud");
    close_normally(&mut client, echo).await;
}

#[tokio::test]
async fn pong_handler_sees_pongs() {
    let (mut conn, mut client) = connect(&Upgrader::new()).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    conn.set_pong_handler(move |p| tx.send(p.to_vec()).unwrap());
    // A pong answering the server's ping, then an unsolicited one.
    within("ping", conn.ping(b"srv")).await.unwrap();
    let echo = spawn_echo(conn);
    let f = client.read_frame().await;
    assert_eq!((f.opcode, &f.payload[..]), (OpCode::Ping, &b"srv"[..]));
    client.write(&masked(OpCode::Pong, b"srv")).await;
    client.write(&masked(OpCode::Pong, b"beat")).await;
    client.send("sync").await;
    assert_eq!(client.recv().await, Message::text("sync"));
    assert_eq!(rx.try_recv().unwrap(), b"srv");
    assert_eq!(rx.try_recv().unwrap(), b"beat");
    assert!(rx.try_recv().is_err());
    close_normally(&mut client, echo).await;
}

#[tokio::test]
async fn server_ping_arrives_at_the_client() {
    let (mut conn, mut client) = connect(&Upgrader::new()).await;
    within("ping", conn.ping(b"are you there")).await.unwrap();
    assert_eq!(client.read_exact_raw(15).await, b"\x89\x0dare you there");
    within("ping", conn.ping(b"")).await.unwrap();
    assert_eq!(
        client.next_event().await,
        Event::Ping(Bytes::new()),
        "the client core answers it"
    );
    assert!(matches!(
        conn.ping([0u8; 126]).await,
        Err(Error::Send(SendError::ControlTooLong(126)))
    ));
}

// ---- 4. close ------------------------------------------------------------------------------

#[tokio::test]
async fn client_close_1000_is_echoed_and_server_closes_tcp_first() {
    let (mut conn, mut client) = connect(&Upgrader::new()).await;
    client
        .write(&masked(OpCode::Close, &close_payload(1000, "done")))
        .await;
    let (err, ()) = tokio::join!(
        async { within("recv", conn.recv()).await.unwrap_err() },
        client.read_to_eof_and_close()
    );
    let close = err.close_error().expect("a close error");
    assert_eq!(
        (close.code, close.reason.as_str()),
        (CloseCode::NORMAL_CLOSURE, "done")
    );
    assert!(err.is_normal_close());
    // The reply echoes the code, then the server shuts TCP down while `conn` still exists.
    assert_eq!(client.read_exact_raw(4).await, b"\x88\x02\x03\xe8");
    client.expect_eof().await;
    assert!(matches!(conn.recv().await, Err(Error::AlreadyClosed)));
    // Sending after the end is an error, not a hang.
    assert!(matches!(conn.send("late").await, Err(Error::AlreadyClosed)));
    assert!(conn.ping(b"").await.is_err());
}

#[tokio::test]
async fn close_reason_surfaces_in_close_error() {
    let (mut conn, mut client) = connect(&Upgrader::new()).await;
    client
        .write(&masked(OpCode::Close, &close_payload(4000, "custom reason ✓")))
        .await;
    match within("recv", conn.recv()).await {
        Err(Error::Closed(c)) => {
            assert_eq!(c.code, CloseCode::from(4000));
            assert_eq!(c.reason, "custom reason ✓");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(client.expect_close(4000).await, "");
    client.expect_eof().await;
    let (err, ()) = tokio::join!(
        async { within("recv", conn.recv()).await.unwrap_err() },
        client.read_to_eof_and_close()
    );
    assert!(matches!(err, Error::AlreadyClosed));
}

#[tokio::test]
async fn close_without_code_is_1005_and_answered_without_code() {
    let (mut conn, mut client) = connect(&Upgrader::new()).await;
    client.write(&masked(OpCode::Close, b"")).await;
    let (err, ()) = tokio::join!(
        async { within("recv", conn.recv()).await.unwrap_err() },
        client.read_to_eof_and_close()
    );
    assert_eq!(err.close_error().unwrap().code, CloseCode::NO_STATUS_RECEIVED);
    assert_eq!(client.read_exact_raw(2).await, b"\x88\x00");
    client.expect_eof().await;
}

#[tokio::test]
async fn close_handler_reply_replaces_the_echo() {
    let (mut conn, mut client) = connect(&Upgrader::new()).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    conn.set_close_handler(move |frame| {
        tx.send(frame.cloned()).unwrap();
        CloseAction::Reply(CloseFrame::new(4001, "bye from server"))
    });
    client
        .write(&masked(OpCode::Close, &close_payload(1001, "leaving")))
        .await;
    let (err, ()) = tokio::join!(
        async { within("recv", conn.recv()).await.unwrap_err() },
        client.read_to_eof_and_close()
    );
    assert_eq!(err.close_error().unwrap().code, CloseCode::GOING_AWAY);
    assert_eq!(client.expect_close(4001).await, "bye from server");
    client.expect_eof().await;
    assert_eq!(rx.try_recv().unwrap(), Some(CloseFrame::new(1001, "leaving")));
}

#[tokio::test(start_paused = true)]
async fn server_close_waits_for_the_client_answer() {
    let upgrader = Upgrader::new().close_timeout(Duration::from_secs(5));
    let (mut conn, mut client) = connect_duplex(&upgrader).await;
    let start = Instant::now();
    let server = tokio::spawn(async move {
        let r = conn
            .close(Some(CloseFrame::new(CloseCode::GOING_AWAY, "shutting down")))
            .await;
        (r, start.elapsed(), conn)
    });
    assert_eq!(client.expect_close(1001).await, "shutting down");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!server.is_finished(), "close returned before the client answered");
    // Data still in flight is discarded; then the answer.
    client.send("late message").await;
    client
        .write(&masked(OpCode::Close, &close_payload(1000, "")))
        .await;
    let (r, elapsed, mut conn) = within("close", server).await.unwrap();
    let c = r.unwrap();
    assert_eq!(c.code, CloseCode::NORMAL_CLOSURE);
    // The answer came 150 ms after the close, and `close` returned then.
    assert_waited(elapsed, Duration::from_millis(150));
    client.expect_eof().await;
    assert!(conn.send("after").await.is_err());
}

#[tokio::test(start_paused = true)]
async fn server_close_gives_up_after_the_close_timeout() {
    let upgrader = Upgrader::new().close_timeout(Duration::from_millis(200));
    let (mut conn, mut client) = connect_duplex(&upgrader).await;
    let start = Instant::now();
    let r = within("close", conn.close(Some(CloseFrame::new(1001, "")))).await;
    let elapsed = start.elapsed();
    assert!(matches!(r, Err(Error::Timeout(_))), "{r:?}");
    assert_waited(elapsed, Duration::from_millis(200));
    assert_eq!(client.expect_close(1001).await, "");
    client.expect_eof().await;
    assert!(conn.send("x").await.is_err());
}

#[tokio::test]
async fn vanished_client_is_an_unexpected_1006() {
    let (mut conn, client) = connect(&Upgrader::new()).await;
    client.send_and_vanish(b"").await;
    let err = within("recv", conn.recv()).await.unwrap_err();
    assert_eq!(err.close_error().unwrap().code, CloseCode::ABNORMAL_CLOSURE);
    assert!(is_unexpected_close_error(
        &err,
        &[CloseCode::NORMAL_CLOSURE, CloseCode::GOING_AWAY]
    ));
    assert!(!err.is_normal_close());
    // Also when it vanishes in the middle of a frame.
    let (mut conn, client) = connect(&Upgrader::new()).await;
    client
        .send_and_vanish(&masked(OpCode::Text, b"half a frame")[..6])
        .await;
    let err = within("recv", conn.recv()).await.unwrap_err();
    assert!(
        is_unexpected_close_error(&err, &[CloseCode::NORMAL_CLOSURE]),
        "{err:?}"
    );
    // And when it resets the connection: reading and writing both report 1006.
    let (mut conn, client) = connect(&Upgrader::new()).await;
    client.io.set_zero_linger().unwrap();
    drop(client);
    let err = within("recv", conn.recv()).await.unwrap_err();
    assert_eq!(
        err.close_error().unwrap().code,
        CloseCode::ABNORMAL_CLOSURE,
        "{err:?}"
    );
    let (mut conn, client) = connect(&Upgrader::new()).await;
    client.io.set_zero_linger().unwrap();
    drop(client);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let err = within("ping", conn.ping(b"are you there")).await.unwrap_err();
    assert!(
        ferrosocket::is_close_error(&err, &[CloseCode::ABNORMAL_CLOSURE]),
        "{err:?}"
    );
}

impl Client {
    /// Writes `bytes`, then drops the socket without a close frame.
    async fn send_and_vanish(mut self, bytes: &[u8]) {
        self.write(bytes).await;
    }
}

#[tokio::test]
async fn unmasked_frame_is_a_protocol_error_with_1002() {
    let (mut conn, mut client) = connect(&Upgrader::new()).await;
    client.write(&frame(OpCode::Text, true, b"naked", None)).await;
    let (err, ()) = tokio::join!(
        async { within("recv", conn.recv()).await.unwrap_err() },
        client.read_to_eof_and_close()
    );
    assert!(
        matches!(err, Error::Protocol(ProtocolError::UnmaskedFrame)),
        "{err:?}"
    );
    client.expect_close(1002).await;
    client.expect_eof().await;
    assert!(matches!(conn.send("x").await, Err(Error::AlreadyClosed)));
}

#[tokio::test]
async fn other_protocol_violations_close_with_1002() {
    let mut reserved_opcode = masked(OpCode::Text, b"x");
    reserved_opcode[0] = 0x83;
    let mut rsv1 = masked(OpCode::Text, b"x");
    rsv1[0] |= 0x40;
    let cases = [
        ("reserved opcode", reserved_opcode),
        ("rsv1 without extension", rsv1),
        ("continuation without start", masked(OpCode::Continuation, b"x")),
        (
            "fragmented ping",
            frame(OpCode::Ping, false, b"x", Some(common::MASK)),
        ),
        ("ping over 125 bytes", masked(OpCode::Ping, &[0; 126])),
        (
            "close code 1005 on the wire",
            masked(OpCode::Close, &close_payload(1005, "")),
        ),
        ("close code 2999", masked(OpCode::Close, &close_payload(2999, ""))),
        ("one-byte close payload", masked(OpCode::Close, &[3])),
    ];
    for (name, bytes) in cases {
        let (mut conn, mut client) = connect(&Upgrader::new()).await;
        client.write(&bytes).await;
        let (err, ()) = tokio::join!(
            async { within("recv", conn.recv()).await.unwrap_err() },
            client.read_to_eof_and_close()
        );
        assert!(matches!(err, Error::Protocol(_)), "{name}: {err:?}");
        client.expect_close(1002).await;
        client.expect_eof().await;
    }
}

#[tokio::test]
async fn invalid_utf8_closes_with_1007() {
    let (mut conn, mut client) = connect(&Upgrader::new()).await;
    client.write(&masked(OpCode::Text, b"ok \xff\xfe")).await;
    let (err, ()) = tokio::join!(
        async { within("recv", conn.recv()).await.unwrap_err() },
        client.read_to_eof_and_close()
    );
    assert!(
        matches!(err, Error::Protocol(ProtocolError::InvalidUtf8)),
        "{err:?}"
    );
    client.expect_close(1007).await;
    client.expect_eof().await;
    // Also in a close reason.
    let (mut conn, mut client) = connect(&Upgrader::new()).await;
    let mut payload = close_payload(1000, "");
    payload.extend_from_slice(b"\xc3\x28");
    client.write(&masked(OpCode::Close, &payload)).await;
    let (err, ()) = tokio::join!(
        async { within("recv", conn.recv()).await.unwrap_err() },
        client.read_to_eof_and_close()
    );
    assert!(
        matches!(err, Error::Protocol(ProtocolError::InvalidUtf8)),
        "{err:?}"
    );
    client.expect_close(1007).await;
    client.expect_eof().await;
    // A text message split inside a character is fine.
    let (conn, mut client) = connect(&Upgrader::new()).await;
    let echo = spawn_echo(conn);
    let euro = "€".as_bytes();
    client
        .write(&frame(OpCode::Text, false, &euro[..1], Some(common::MASK)))
        .await;
    client
        .write(&frame(OpCode::Continuation, true, &euro[1..], Some(common::MASK)))
        .await;
    assert_eq!(client.recv().await, Message::text("€"));
    close_normally(&mut client, echo).await;
}

#[tokio::test]
async fn sends_after_close_are_errors() {
    let (mut conn, mut client) = connect(&Upgrader::new()).await;
    within("send_close", conn.send_close(Some(CloseFrame::new(1000, ""))))
        .await
        .unwrap();
    assert!(matches!(
        conn.send("x").await,
        Err(Error::Send(SendError::Closed))
    ));
    assert!(matches!(
        conn.ping(b"p").await,
        Err(Error::Send(SendError::Closed))
    ));
    assert!(matches!(
        conn.send_close(None).await,
        Err(Error::Send(SendError::Closed))
    ));
    client.expect_close(1000).await;
    client
        .write(&masked(OpCode::Close, &close_payload(1000, "")))
        .await;
    let (err, ()) = tokio::join!(
        async { within("recv", conn.recv()).await.unwrap_err() },
        client.read_to_eof_and_close()
    );
    assert!(err.is_normal_close(), "{err:?}");
    client.expect_eof().await;
    assert!(matches!(conn.send("x").await, Err(Error::AlreadyClosed)));
    assert!(matches!(conn.recv().await, Err(Error::AlreadyClosed)));
}

// ---- 5. limits -----------------------------------------------------------------------------

#[tokio::test]
async fn message_over_max_message_size_closes_with_1009() {
    let upgrader = Upgrader::new().max_message_size(Some(1000));
    let (conn, mut client) = connect(&upgrader).await;
    let echo = spawn_echo(conn);
    client.send(Message::binary(binary_of(1000))).await;
    assert_eq!(client.recv().await.len(), 1000, "the limit itself is allowed");
    client.send(Message::binary(binary_of(1001))).await;
    client.expect_close(1009).await;
    client.expect_eof().await;
    // The server lingers (reading and discarding) until the peer closes too.
    client.io.shutdown().await.unwrap();
    let err = within("echo", echo).await.unwrap();
    assert!(
        matches!(
            err,
            Error::Protocol(ProtocolError::MessageTooLarge { limit: 1000, .. })
        ),
        "{err:?}"
    );

    // Fragments under the limit adding up to more than it.
    let (conn, mut client) = connect(&upgrader).await;
    let echo = spawn_echo(conn);
    for i in 0..3 {
        client
            .core
            .send_fragment(MessageKind::Text, Bytes::from(text_of(400)), i == 2)
            .unwrap();
    }
    client.flush().await;
    client.expect_close(1009).await;
    client.expect_eof().await;
    client.io.shutdown().await.unwrap();
    assert!(matches!(within("echo", echo).await.unwrap(), Error::Protocol(_)));
}

#[tokio::test]
async fn set_read_limit_closes_with_1009() {
    let (mut conn, mut client) = connect(&Upgrader::new()).await;
    conn.set_read_limit(Some(1000));
    let echo = spawn_echo(conn);
    client.send(text_of(1000)).await;
    assert_eq!(client.recv().await.len(), 1000);
    client.send(text_of(1001)).await;
    client.expect_close(1009).await;
    client.expect_eof().await;
    // The server lingers (reading and discarding) until the peer closes too.
    client.io.shutdown().await.unwrap();
    let err = within("echo", echo).await.unwrap();
    assert!(
        matches!(err, Error::Protocol(ProtocolError::MessageTooLarge { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn frame_over_max_frame_size_closes_with_1009() {
    let upgrader = Upgrader::new().max_frame_size(Some(1000)).max_message_size(None);
    let (conn, mut client) = connect(&upgrader).await;
    let echo = spawn_echo(conn);
    // A 3000-byte message in 1000-byte frames is fine ...
    for i in 0..3 {
        client
            .core
            .send_fragment(MessageKind::Binary, Bytes::from(binary_of(1000)), i == 2)
            .unwrap();
    }
    client.flush().await;
    assert_eq!(client.recv().await.len(), 3000);
    // ... one 1001-byte frame is not.
    client.send(Message::binary(binary_of(1001))).await;
    client.expect_close(1009).await;
    client.expect_eof().await;
    // The server lingers (reading and discarding) until the peer closes too.
    client.io.shutdown().await.unwrap();
    let err = within("echo", echo).await.unwrap();
    assert!(
        matches!(
            err,
            Error::Protocol(ProtocolError::FrameTooLarge {
                size: 1001,
                limit: 1000
            })
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn oversized_frame_is_refused_from_its_header_alone() {
    // Only the header of a 1 GiB frame is sent: the 1009 must come without its payload.
    for (upgrader, frame_limit) in [
        (Upgrader::new(), true),                       // 16 MiB frame limit
        (Upgrader::new().max_frame_size(None), false), // 64 MiB message limit
    ] {
        let (mut conn, mut client) = connect(&upgrader).await;
        let mut h = ferrosocket::proto::FrameHeader::new(OpCode::Binary, true, 1 << 30);
        h.mask = Some(common::MASK);
        let mut buf = [0u8; ferrosocket::proto::MAX_HEADER_LEN];
        let n = h.encode(&mut buf);
        client.write(&buf[..n]).await;
        let (err, ()) = tokio::join!(
            async { within("recv", conn.recv()).await.unwrap_err() },
            client.read_to_eof_and_close()
        );
        match err {
            Error::Protocol(ProtocolError::FrameTooLarge { size, .. }) if frame_limit => {
                assert_eq!(size, 1 << 30)
            }
            Error::Protocol(ProtocolError::MessageTooLarge { size, .. }) if !frame_limit => {
                assert_eq!(size, 1 << 30)
            }
            other => panic!("{other:?}"),
        }
        client.expect_close(1009).await;
        client.expect_eof().await;
    }
}
