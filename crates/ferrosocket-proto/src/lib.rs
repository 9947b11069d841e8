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

pub mod close;
pub mod config;
pub mod connection;
pub mod error;
pub mod extensions;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod message;
mod output;
#[cfg(test)]
mod test_wire;
mod timers;
pub mod utf8;

pub use close::{CloseCode, CloseFrame};
pub use config::Config;
pub use connection::{Chunk, Connection, Event, ReadMode, Role, State};
pub use error::{ProtocolError, ReadError, SendError};
pub use message::{Message, MessageKind, Utf8Bytes};
pub use timers::{Keepalive, SlowPeerPolicy, Timer};
