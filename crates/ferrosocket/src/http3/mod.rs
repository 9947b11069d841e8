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

pub(crate) mod codes;
pub(crate) mod frame;
#[cfg(any(test, feature = "fuzzing"))]
mod fuzzing;
mod huffman;
mod huffman_table;
pub(crate) mod qpack;
mod server;
pub(crate) mod session;
mod static_table;
mod stream;
mod varint;

pub use crate::error::Http3Error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use fuzzing::fuzz_decode;
pub use server::{Http3Server, server_config};
pub use stream::H3Stream;

/// The QUIC implementation underneath, for endpoints and configurations
/// ([`quinn::Endpoint::server`], [`server_config`]).
pub use quinn;

/// The ALPN protocol id of HTTP/3 (RFC 9114 §3.1).
pub const ALPN: &[u8] = b"h3";

/// The largest header section we accept (SETTINGS_MAX_FIELD_SECTION_SIZE, counted as RFC
/// 9114 §4.2.2 does): far more than any WebSocket handshake needs.
pub(crate) const MAX_FIELD_SECTION_SIZE: usize = 64 * 1024;

/// The largest refusal body a client keeps (like the HTTP/1.1 Dialer's).
pub(crate) const MAX_ERROR_BODY: usize = 64 * 1024;
