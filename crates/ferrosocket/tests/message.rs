//! `send(impl Into<Message>)` takes text- and byte-like values as they are, without type
//! annotations, on `Conn` and on `WriteHalf`; the peer sees the right kind and payload.
//!
//! The client is the raw test client of tests/common (never ferrosocket's own client).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::{connect, within};
use ferrosocket::{Message, Upgrader, Utf8Bytes};

/// What each `send` below must arrive as, in order.
fn expected() -> Vec<Message> {
    vec![
        Message::text("hi"),
        Message::text("owned"),
        Message::text("borrowed"),
        Message::text("utf8"),
        Message::binary(vec![1u8]),
        Message::binary(&b"ab"[..]),
        Message::binary(&b"cd"[..]),
        Message::binary(Bytes::from_static(b"ef")),
    ]
}

#[tokio::test]
async fn conn_send_takes_str_string_bytes_and_slices_without_annotations() {
    let (mut conn, mut client) = connect(&Upgrader::new()).await;
    let borrowed = String::from("borrowed");
    within("sends", async {
        conn.send("hi").await?;
        conn.send(String::from("owned")).await?;
        conn.send(&borrowed).await?;
        conn.send(Utf8Bytes::from_static("utf8")).await?;
        conn.send(vec![1u8]).await?;
        conn.send(&b"ab"[..]).await?;
        conn.send(b"cd").await?;
        conn.send(Bytes::from_static(b"ef")).await
    })
    .await
    .unwrap();
    for want in expected() {
        assert_eq!(client.recv().await, want);
    }
}

#[tokio::test]
async fn write_half_send_takes_the_same_values() {
    let (conn, mut client) = connect(&Upgrader::new()).await;
    let (_reader, writer) = conn.split();
    let borrowed = String::from("borrowed");
    within("sends", async {
        writer.send("hi").await?;
        writer.send(String::from("owned")).await?;
        writer.send(&borrowed).await?;
        writer.send(Utf8Bytes::from_static("utf8")).await?;
        writer.send(vec![1u8]).await?;
        writer.send(&b"ab"[..]).await?;
        writer.send(b"cd").await?;
        writer.send(Bytes::from_static(b"ef")).await
    })
    .await
    .unwrap();
    for want in expected() {
        assert_eq!(client.recv().await, want);
    }
}
