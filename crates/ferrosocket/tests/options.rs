//! `ConnOptions`: one set of connection options for the `Upgrader` and the `Dialer`. The
//! timers the `Dialer` gains through it (keepalive, idle timeout, slow-peer policy) run on a
//! paused clock over an in-memory pipe, a `Dialer`-made client against an `Upgrader` server,
//! and are asserted exactly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::{DUPLEX_CAPACITY, assert_waited, duplex_pair, within};
use ferrosocket::proto::request_from_url;
use ferrosocket::{
    CloseCode, Conn, ConnOptions, Dialer, Error, Message, SlowPeerPolicy, TimeoutKind, Upgrader,
    is_unexpected_close_error,
};
use std::time::Duration;
use tokio::io::DuplexStream;
use tokio::time::Instant;

/// A handshake between `dialer` (client) and `upgrader` (server) over an in-memory pipe:
/// (server connection, client connection).
async fn dial_duplex(upgrader: &Upgrader, dialer: &Dialer) -> (Conn<DuplexStream>, Conn<DuplexStream>) {
    let (server_io, client_io) = duplex_pair(DUPLEX_CAPACITY);
    let request = request_from_url("ws://localhost/chat").unwrap();
    let (server, client) = within("the handshake", async {
        tokio::join!(
            upgrader.accept(server_io),
            dialer.connect_with_stream(client_io, request)
        )
    })
    .await;
    (server.unwrap(), client.unwrap().0)
}

#[tokio::test(start_paused = true)]
async fn dialer_keepalive_detects_a_server_that_never_answers_pings() {
    let dialer = Dialer::new().keepalive(Duration::from_millis(100), Duration::from_millis(200));
    // The server connection is never polled: it reads nothing and answers no ping.
    let (_server, mut client) = dial_duplex(&Upgrader::new(), &dialer).await;
    let start = Instant::now();
    let err = within("keepalive", client.recv()).await.unwrap_err();
    assert!(
        is_unexpected_close_error(&err, &[CloseCode::NORMAL_CLOSURE, CloseCode::GOING_AWAY]),
        "{err}"
    );
    assert_eq!(err.close_error().unwrap().code, CloseCode::ABNORMAL_CLOSURE);
    // interval 100 ms + timeout 200 ms
    assert_waited(start.elapsed(), Duration::from_millis(300));
}

#[tokio::test(start_paused = true)]
async fn dialer_idle_timeout_closes_with_1001() {
    let dialer = Dialer::new().idle_timeout(Some(Duration::from_millis(150)));
    let (mut server, mut client) = dial_duplex(&Upgrader::new(), &dialer).await;
    let server = tokio::spawn(async move { server.recv().await });
    let start = Instant::now();
    let err = within("idle timeout", client.recv()).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(TimeoutKind::Idle)), "{err}");
    assert_waited(start.elapsed(), Duration::from_millis(150));
    let server_err = within("the server's end", server).await.unwrap().unwrap_err();
    assert_eq!(
        server_err.close_error().unwrap().code,
        CloseCode::GOING_AWAY,
        "{server_err}"
    );
}

#[tokio::test(start_paused = true)]
async fn dialer_slow_peer_policy_ends_a_server_that_never_reads() {
    let dialer = Dialer::new().slow_peer_policy(SlowPeerPolicy::Close {
        after: Duration::from_millis(300),
        code: CloseCode::POLICY_VIOLATION,
    });
    let (_server, mut client) = dial_duplex(&Upgrader::new(), &dialer).await;
    let payload = Bytes::from(vec![7u8; 64 << 10]);
    let start = Instant::now();
    let mut sent = 0usize;
    let err = within("the slow-peer policy", async {
        loop {
            if let Err(e) = client.send(Message::Binary(payload.clone())).await {
                return e;
            }
            sent += 1;
            assert!(sent < 8192, "512 MiB went into a pipe nobody reads");
        }
    })
    .await;
    assert!(matches!(err, Error::Timeout(TimeoutKind::Write)), "{err}");
    assert!(sent >= 1, "some messages fit in the pipe");
    // Nothing moves on a paused clock until the pipe is full: the stall starts at `start`.
    assert_waited(start.elapsed(), Duration::from_millis(300));
}

#[tokio::test(start_paused = true)]
async fn one_options_value_configures_both_sides() {
    let options = ConnOptions::new()
        .max_message_size(Some(16))
        .close_timeout(Duration::from_millis(250));
    let upgrader = Upgrader::new().options(options.clone());
    let dialer = Dialer::new().options(options);
    assert_eq!(
        format!("{:?}", upgrader.conn_options()),
        format!("{:?}", dialer.conn_options())
    );
    let (mut server, mut client) = dial_duplex(&upgrader, &dialer).await;
    // The server's limit: a 17-byte message closes the connection with 1009.
    client.send(Message::text("seventeen bytes!!")).await.unwrap();
    let err = within("the server's limit", server.recv()).await.unwrap_err();
    assert!(matches!(err, Error::Protocol(_)), "{err}");
    // The client's limit, the same way round.
    let (mut server, mut client) = dial_duplex(&upgrader, &dialer).await;
    server.send(Message::text("seventeen bytes!!")).await.unwrap();
    let err = within("the client's limit", client.recv()).await.unwrap_err();
    assert!(matches!(err, Error::Protocol(_)), "{err}");
}

#[test]
fn setters_on_the_builders_equal_the_same_options() {
    let by_setters = Upgrader::new()
        .read_buffer_size(8 << 10)
        .write_buffer_size(10)
        .max_frame_size(None)
        .idle_timeout(Some(Duration::from_secs(5)))
        .enable_compression(true);
    let by_options = Upgrader::new().options(
        ConnOptions::new()
            .read_buffer_size(8 << 10)
            .write_buffer_size(10)
            .max_frame_size(None)
            .idle_timeout(Some(Duration::from_secs(5)))
            .enable_compression(true),
    );
    assert_eq!(
        format!("{:?}", by_setters.conn_options()),
        format!("{:?}", by_options.conn_options())
    );
    let dialer = Dialer::new().write_buffer_size(10);
    assert!(format!("{:?}", dialer.conn_options()).contains("write_buffer_size: 1024"));
}
