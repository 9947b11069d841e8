//! The sans-I/O WebSocket protocol core of ferrosocket: RFC 6455 framing, masking, UTF-8,
//! the close handshake, limits, and the HTTP/1.1 upgrade handshake, with no sockets, no async
//! runtime and no clock.
//!
//! ```text
//!   transport bytes ──► read_buffer()/receive() ──► poll_event() ──► Event (Message, Chunk, Ping, Pong, Close)
//!                                                     │ (auto-pong, close reply, errors → close codes)
//!   application ──► send()/send_ping()/send_close() ──┴──► pending_output() ──► transport
//! ```
//!
//! The tokio crate `ferrosocket` drives a [`Connection`]; so do the fuzzers and the tests. Any
//! other runtime can do the same:
//!
//! 1. after the handshake, create a [`Connection`] for your [`Role`] and feed it any bytes that
//!    arrived after the HTTP head;
//! 2. read from the transport into [`Connection::read_buffer`] and call
//!    [`Connection::poll_event`] until it returns `Ok(None)`;
//! 3. after every input or command, write [`Connection::pending_output`] to the transport;
//! 4. when [`Connection::should_close_transport`] says so, close the transport.
//!
//! Data messages come whole ([`Event::Message`]) or, after
//! [`Connection::set_read_mode`]`(`[`ReadMode::Streamed`]`)`, as [`Event::Chunk`]s handed out as
//! their bytes arrive, so that a large message never has to fit in memory.
//!
//! Peer errors never panic: they become a close frame with the right code (1002, 1007, 1009)
//! and a sticky [`ReadError`].

//! # What is public
//!
//! Every type and function is at the crate root; the modules are private. `ferrosocket`, the
//! CLI and anyone driving the core from another runtime need: the connection
//! ([`Connection`], [`Event`], [`Config`], errors), frames for tools that speak the wire
//! themselves ([`FrameHeader`], [`OpCode`], [`apply_mask`]), close codes, messages framed
//! ahead of time ([`server_frame`], [`PreparedForm`]), permessage-deflate settings
//! ([`DeflateConfig`], [`DeflateParams`], [`SharedCompression`]) and the HTTP upgrade
//! ([`ServerHandshake`], [`ClientHandshake`], [`parse_request`], [`write_response`], ...).
//! Internals that only fuzzers, benches and tests need (a fixed mask key, the incremental
//! UTF-8 validator, the raw extension negotiation) are in [`fuzzing`](crate#fuzzing), behind
//! the `fuzzing` cargo feature.
//!
//! # Fuzzing
//!
//! With the `fuzzing` feature, the module `fuzzing` re-exports internals for the fuzz
//! targets and benches. It is not part of the stable API.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod close;
mod config;
mod connection;
mod error;
mod extensions;
mod frame;
mod handshake;
mod mask;
mod message;
mod output;
mod prepared;
#[cfg(test)]
mod test_wire;
mod timers;
mod utf8;

pub use close::{CloseCode, CloseFrame, MAX_REASON_LEN, close_reply};
pub use config::Config;
pub use connection::{Chunk, Connection, Event, IdleBuffers, ReadMode, Role, State};
pub use error::{ProtocolError, ReadError, SendError};
pub use extensions::deflate::{DeflateConfig, DeflateNegotiationError, DeflateParams, SharedCompression};
pub use extensions::{ExtensionOffer, ExtensionSyntaxError, parse_extensions};
pub use frame::{FrameHeader, HeaderError, MAX_HEADER_LEN, OpCode};
pub use handshake::body::{BodyDecoder, DEFAULT_BODY_CAP};
pub use handshake::client::{
    ClientHandshake, MANAGED_HEADERS, Target, request_from_url, uri_target, url_target,
};
pub use handshake::http::{parse_request, parse_response, write_request, write_response};
pub use handshake::proxy::{ConnectAnswer, connect_authority, parse_connect_response, write_connect_request};
pub use handshake::server::{Accepted, Rejection, ServerHandshake, check_same_origin};
pub use handshake::{
    HandshakeError, Limits, Negotiated, accept_key, generate_key, header_has_token, header_tokens,
};
pub use mask::{MaskSource, RandomnessError, apply_mask};
pub use message::{Message, MessageKind, Utf8Bytes};
pub use prepared::{PreparedForm, compressed_server_frame, server_frame};
pub use timers::{Keepalive, SlowPeerPolicy, Timer};
pub use utf8::Utf8Error;

/// Internals for the fuzz targets, benches and tests (feature `fuzzing`): not a stable API,
/// and nothing a WebSocket user needs.
#[cfg(feature = "fuzzing")]
#[cfg_attr(docsrs, doc(cfg(feature = "fuzzing")))]
pub mod fuzzing {
    pub use crate::extensions::deflate::{client_offer, negotiate_client, negotiate_server};
    pub use crate::mask::FixedMaskSource;
    pub use crate::utf8::Utf8Validator;
}

// The crate README's example compiles and runs as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
