//! `Conn::from_raw_with` and `Upgrader::decide` + `Upgrade::into_conn`: a connection built
//! from a handshake done elsewhere gets every option (compression with the negotiated
//! parameters, the subprotocol, limits, shutdown, the connection slot), as one from
//! `Upgrader::accept` does. Both ends run over an in-memory pipe; the handshakes are the
//! core's pure ones.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{DUPLEX_CAPACITY, duplex_pair, within};
use ferrosocket::proto::{ClientHandshake, DeflateConfig, Negotiated, ServerHandshake};
use ferrosocket::{CloseCode, Conn, ConnOptions, Error, Message, Role, Shutdown, Upgrader};
use http::StatusCode;

/// Both ends' view of one handshake with a deflate offer and a subprotocol.
fn negotiate() -> (Negotiated, Negotiated, http::request::Parts) {
    let request = http::Request::get("ws://localhost/ws")
        .header("sec-websocket-protocol", "v1")
        .body(())
        .unwrap();
    let (mut client, mut request) = ClientHandshake::new(request, [7; 16]).unwrap();
    client.offer_deflate(DeflateConfig::default(), &mut request);
    let (parts, ()) = request.into_parts();
    let accepted = ServerHandshake::new()
        .subprotocols(["v1"])
        .deflate(Some(DeflateConfig::default()))
        .validate(&parts)
        .unwrap();
    let client_side = client.verify(&accepted.response).unwrap();
    (client_side, accepted.negotiated, parts)
}

#[tokio::test]
async fn from_raw_with_applies_compression_subprotocol_limits_and_shutdown() {
    let (client_side, server_side, _) = negotiate();
    assert!(server_side.deflate.is_some() && client_side.deflate.is_some());
    let shutdown = Shutdown::new();
    let options = ConnOptions::new()
        .enable_compression(true)
        .max_message_size(Some(40_000))
        .shutdown(&shutdown);
    let (a, b) = duplex_pair(DUPLEX_CAPACITY);
    let mut server = Conn::from_raw_with(a, Role::Server, options.clone(), &server_side, &[]);
    let mut client = Conn::from_raw_with(b, Role::Client, options, &client_side, &[]);
    assert_eq!(server.subprotocol(), Some("v1"));
    assert_eq!(client.subprotocol(), Some("v1"));
    assert_eq!(shutdown.live(), 2, "each connection holds a shutdown token");
    let echo = tokio::spawn(async move {
        while let Ok(msg) = server.recv().await {
            if server.send(msg).await.is_err() {
                break;
            }
        }
    });
    // 30,000 compressible bytes fit the limit; compressed on the wire both ways.
    let text = Message::from("a".repeat(30_000));
    within("send", client.send(text.clone())).await.unwrap();
    assert_eq!(within("echo", client.recv()).await.unwrap(), text);
    // Over the server's limit: 1009.
    within("send", client.send(vec![1u8; 40_001])).await.unwrap();
    match within("the close", client.recv()).await {
        Err(Error::Closed(close)) => assert_eq!(close.code, CloseCode::MESSAGE_TOO_BIG),
        other => panic!("expected close 1009, got {other:?}"),
    }
    within("the echo task", echo).await.unwrap();
}

#[tokio::test]
async fn decide_then_into_conn_holds_the_slot_and_answers_shutdown() {
    let (_, _, parts) = negotiate();
    let shutdown = Shutdown::new();
    let upgrader = Upgrader::new()
        .subprotocols(["v1"])
        .enable_compression(true)
        .max_connections(Some(1))
        .shutdown(&shutdown);
    let upgrade = upgrader.decide(&parts, None).unwrap();
    assert_eq!(upgrade.response().status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(upgrade.subprotocol(), Some("v1"));
    assert!(upgrade.deflate().is_some());
    let mut head = Vec::new();
    upgrade.write_response(&mut head);
    assert!(head.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
    // The place is taken by the decision: a second request is refused with 503.
    let refusal = upgrader.decide(&parts, None).unwrap_err();
    assert_eq!(refusal.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(matches!(refusal.error(), Error::Handshake(_)));

    let (a, b) = duplex_pair(DUPLEX_CAPACITY);
    let mut server = upgrade.into_conn(a, &[]);
    let mut client = Conn::from_raw(b, Role::Client, Default::default(), &[]);
    assert_eq!(upgrader.live_connections(), 1);
    assert_eq!(server.subprotocol(), Some("v1"));
    shutdown.trigger();
    let end = tokio::spawn(async move { server.recv().await });
    match within("the shutdown close", client.recv()).await {
        Err(Error::Closed(close)) => assert_eq!(close.code, CloseCode::GOING_AWAY),
        other => panic!("expected close 1001, got {other:?}"),
    }
    assert!(within("the server's end", end).await.unwrap().is_err());
    assert_eq!(
        upgrader.live_connections(),
        0,
        "the slot is given back with the connection"
    );
}
