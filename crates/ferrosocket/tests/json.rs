//! JSON helpers (feature `json`, which this package's dev-dependency on itself turns on for
//! every `cargo test`): round trips on `Conn` and the split halves, bad JSON from the peer
//! leaving the connection open, and serialization failures sending nothing.
//!
//! The client is the raw test client of tests/common (never ferrosocket's own client).

#![cfg(feature = "json")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Client, connect, within};
use ferrosocket::{Error, Message, State, Upgrader};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Point {
    x: i32,
    y: i32,
    label: String,
}

fn point() -> Point {
    Point {
        x: 3,
        y: -4,
        label: "héllo".into(),
    }
}

/// A value serde_json refuses: map keys must serialize as strings.
fn unserializable() -> BTreeMap<(i32, i32), i32> {
    BTreeMap::from([((1, 2), 3)])
}

/// Messages that are not a `Point`: broken JSON, the wrong shape, invalid UTF-8 in binary.
fn bad_messages() -> Vec<Message> {
    vec![
        Message::text("{\"x\": 1,"),
        Message::text("[1, 2, 3]"),
        Message::text("{\"x\": \"three\", \"y\": 0, \"label\": \"\"}"),
        Message::binary(&b"\xff\xfe"[..]),
        Message::text(""),
    ]
}

/// Reads the client's next message and parses it.
async fn client_recv_point(client: &mut Client) -> Point {
    let msg = client.recv().await;
    assert!(msg.is_text(), "send_json sends text, got {msg:?}");
    serde_json::from_slice(msg.as_bytes()).expect("the server sent a Point")
}

#[tokio::test]
async fn conn_round_trips_text_and_binary_json() {
    let (mut conn, mut client) = connect(&Upgrader::new()).await;
    let text = serde_json::to_string(&point()).unwrap();
    client.send(text.clone()).await;
    client.send(text.into_bytes()).await;
    assert_eq!(
        within("text json", conn.recv_json::<Point>()).await.unwrap(),
        point()
    );
    assert_eq!(
        within("binary json", conn.recv_json::<Point>()).await.unwrap(),
        point()
    );

    within("send_json", conn.send_json(&point())).await.unwrap();
    assert_eq!(client_recv_point(&mut client).await, point());
    // Unsized values serialize too.
    within("send_json slice", conn.send_json(&[1, 2, 3][..]))
        .await
        .unwrap();
    assert_eq!(client.recv().await, Message::text("[1,2,3]"));
}

#[tokio::test]
async fn bad_json_is_consumed_and_the_connection_stays_open() {
    let (mut conn, mut client) = connect(&Upgrader::new()).await;
    for bad in bad_messages() {
        client.send(bad.clone()).await;
        let r = within("bad json", conn.recv_json::<Point>()).await;
        let Err(Error::Json(e)) = &r else {
            panic!("{bad:?} gave {r:?}, not Error::Json");
        };
        let shown = r.as_ref().unwrap_err().to_string();
        assert!(shown.contains("connection remains open"), "{shown}");
        assert!(shown.contains(&e.to_string()), "{shown}");
        assert_eq!(conn.state(), State::Open);

        // The next message is read normally, by recv_json and by recv.
        client.send(serde_json::to_string(&point()).unwrap()).await;
        assert_eq!(
            within("good json", conn.recv_json::<Point>()).await.unwrap(),
            point()
        );
        client.send("plain").await;
        assert_eq!(within("recv", conn.recv()).await.unwrap(), Message::text("plain"));
    }
    // Both directions still work, and nothing was sent on the server's side meanwhile.
    conn.send("still open").await.unwrap();
    assert_eq!(client.recv().await, Message::text("still open"));
}

#[tokio::test]
async fn conn_serialization_failure_sends_nothing() {
    let (mut conn, mut client) = connect(&Upgrader::new()).await;
    let r = within("send_json", conn.send_json(&unserializable())).await;
    assert!(matches!(r, Err(Error::JsonEncode(_))), "{r:?}");
    assert_eq!(conn.queued_bytes(), 0);
    assert_eq!(conn.state(), State::Open);
    conn.send_json(&point()).await.unwrap();
    // The first thing the client sees is the value sent after the failure.
    assert_eq!(client_recv_point(&mut client).await, point());
}

#[tokio::test]
async fn split_halves_round_trip_and_survive_bad_json() {
    let (conn, mut client) = connect(&Upgrader::new()).await;
    let (mut reader, writer) = conn.split();

    for bad in bad_messages() {
        client.send(bad).await;
        let r = within("bad json", reader.recv_json::<Point>()).await;
        assert!(matches!(r, Err(Error::Json(_))), "{r:?}");
    }
    client.send(serde_json::to_vec(&point()).unwrap()).await;
    assert_eq!(
        within("good json", reader.recv_json::<Point>()).await.unwrap(),
        point()
    );

    let r = within("send_json", writer.send_json(&unserializable())).await;
    assert!(matches!(r, Err(Error::JsonEncode(_))), "{r:?}");
    within("send_json", writer.send_json(&point())).await.unwrap();
    assert_eq!(client_recv_point(&mut client).await, point());
    assert_eq!(writer.state(), State::Open);

    client.send("after").await;
    assert_eq!(
        within("recv", reader.recv()).await.unwrap(),
        Message::text("after")
    );
}
