//! WebSockets over HTTP/3 (RFC 9220), server and client, over [`quinn`] (feature `http3`).
//!
//! RFC 9220 carries a WebSocket on one HTTP/3 request stream opened by an extended CONNECT
//! (`:method CONNECT`, `:protocol websocket`); after a `200` answer the stream's DATA frames
//! carry the WebSocket bytes, and [`Conn`](crate::Conn) runs over them unchanged. Many
//! WebSockets share one QUIC connection, each on its own stream: one that stalls does not
//! hold up the others (QUIC flow control is per stream).
//!
//! The `h3` crate cannot carry `:protocol websocket`, so this module speaks the part of
//! HTTP/3 RFC 9220 needs itself: control streams with SETTINGS (QPACK without a dynamic
//! table, `SETTINGS_ENABLE_CONNECT_PROTOCOL = 1`), HEADERS and DATA frames on request
//! streams. Plain HTTP/3 requests are answered by [`Upgrader::decide`](crate::Upgrader::decide)'s
//! refusal.

mod codes;
mod frame;
mod huffman;
mod huffman_table;
mod qpack;
mod static_table;
mod varint;
