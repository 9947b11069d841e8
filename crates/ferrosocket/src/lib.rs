//! WebSocket (RFC 6455) server and client for tokio, with permessage-deflate (RFC 7692).
//!
//! - [`Upgrader`] turns an HTTP/1.1 upgrade request into a [`Conn`] (server side), checking
//!   the origin, choosing a subprotocol and deciding per request ([`Upgrader::on_request`]).
//! - [`Dialer`] connects to `ws://` and `wss://` URLs, directly, through an `http://` or
//!   `https://` proxy, or over a transport of your own ([`Dialer::connector`]) (client side).
//! - [`Conn`] sends and receives messages, answers pings, runs handlers, enforces limits,
//!   deadlines and timers, and reports how the session ended as a [`CloseError`]; [`Conn::split`]
//!   gives a reader and a writer half for two tasks.
//! - [`ConnOptions`] are a connection's limits, buffers, compression and timers, the same for
//!   both sides.
//! - [`PreparedMessage`] frames a message once for many connections; [`Shutdown`] closes every
//!   connection of a server with 1001 (going away).
//! - [`Upgrader::decide`] decides an upgrade request without I/O, for any HTTP server; with
//!   feature `hyper` (off by default), `Upgrader::upgrade_hyper` upgrades a hyper 1 request
//!   (hyper-util's server, or a framework on hyper; `ferrosocket-axum` is the axum extractor),
//!   and with `http2` an HTTP/2 extended CONNECT (RFC 8441): the same [`Conn`] over a stream of
//!   a shared HTTP/2 connection.
//!
//! All protocol rules live in the sans-I/O crate [`ferrosocket_proto`] (re-exported as
//! [`proto`]); this crate moves bytes. The [`http`] crate is re-exported for requests and
//! headers.
//!
//! The long-form guide is in [`docs`]: [Buffers and memory](docs#buffers-and-memory),
//! [Origin](docs#origin), [Compression](docs#compression),
//! [Limits and defaults](docs#limits-and-defaults),
//! [Errors and close codes](docs#errors-and-close-codes), [Streaming](docs#streaming), and
//! [Coming from gorilla/websocket](docs#coming-from-gorillawebsocket).
//!
//! # Quick start: a client
//! Against the echo server of the `ferrosocket` command (`ferrosocket echo`, or
//! `cargo run -p ferrosocket-cli -- echo` in the repository), with `tokio` (features
//! `rt-multi-thread` and `macros`) beside this crate:
//!
//! ```no_run
//! use ferrosocket::Dialer;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), ferrosocket::Error> {
//!     let (mut conn, _response) = Dialer::new().connect("ws://127.0.0.1:8080/ws").await?;
//!     conn.send("hello").await?;
//!     let reply = conn.recv().await?;
//!     println!("received: {reply}");
//!     conn.close(None).await?;
//!     Ok(())
//! }
//! ```
//!
//! # Quick start: an echo server
//! ```no_run
//! # async fn run() -> Result<(), ferrosocket::Error> {
//! let upgrader = ferrosocket::Upgrader::new();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! loop {
//!     let (stream, _) = listener.accept().await?;
//!     let upgrader = upgrader.clone();
//!     tokio::spawn(async move {
//!         let mut conn = upgrader.accept(stream).await?;
//!         loop {
//!             let msg = conn.recv().await?;
//!             conn.feed(msg).await?; // replies leave together when recv has to wait
//!         }
//!         #[allow(unreachable_code)]
//!         Ok::<_, ferrosocket::Error>(())
//!     });
//! }
//! # }
//! ```
//!
//! # Features
//! | feature | default | what it adds |
//! |---|---|---|
//! | `rustls` | on | `wss://` in the [`Dialer`], and the `tls` module's helpers for clients and servers, with rustls and its *ring* provider (building *ring* needs a C compiler) |
//! | `stream` | on | `futures` `Stream` and `Sink` for [`Conn`] and the split halves |
//! | `json` | off | `send_json` / `recv_json` on [`Conn`] and the split halves, with serde_json |
//! | `hyper` | off | `Upgrader::upgrade_hyper`: upgrades of hyper 1 requests (hyper-util servers, frameworks on hyper) |
//! | `http2` | off | WebSockets over HTTP/2 (RFC 8441), both roles: `upgrade_hyper` accepts extended CONNECTs from hyper's HTTP/2 server; the [`Dialer`] opens its connections as streams of one shared HTTP/2 connection with `Dialer::http_version` (implies `hyper`) |
//! | `http3` | off | WebSockets over HTTP/3 (RFC 9220), both roles, over quinn: `Upgrader::accept_http3`, `Dialer::connect_http3`, [`Http3Session`], module `http3` (implies `rustls`) |
//! | `metrics` | off | connection, message, byte, close-code, ping and queue metrics through the `metrics` facade (module `metrics` lists them) |
//!
//! # Close errors
//! A session ends with [`Error::Closed`], carrying the peer's close code, or 1006 (abnormal
//! closure) when the transport ended without a close frame; see
//! [Errors and close codes](docs#errors-and-close-codes) for every case.
//!
//! ```
//! use ferrosocket::{CloseCode, Error, is_unexpected_close_error};
//! fn log_end(err: &Error) {
//!     if is_unexpected_close_error(err, &[CloseCode::NORMAL_CLOSURE, CloseCode::GOING_AWAY]) {
//!         eprintln!("connection lost: {err}");
//!     }
//! }
//! ```
//!
//! A liveness check: send a ping; if the write fails, the peer is gone.
//!
//! ```no_run
//! # async fn check(conn: &mut ferrosocket::Conn<tokio::net::TcpStream>) {
//! use ferrosocket::{CloseCode, is_close_error};
//! if let Err(err) = conn.ping(b"are you there").await {
//!     if is_close_error(&err, &[CloseCode::ABNORMAL_CLOSURE]) {
//!         // the peer vanished without a close frame
//!     }
//! }
//! # }
//! ```
//!
//! # Concurrency
//! `Conn` methods take `&mut self`: one task reads and writes. To read and write from two
//! tasks, use [`Conn::split`]; the reader keeps answering pings, and the writer half can be
//! cloned. [`ReadHalf::reunite`] puts the halves back together.
//!
//! # Cancel safety
//! [`Conn::recv`] and [`Conn::flush`] are cancel safe: a `recv` dropped in `tokio::select!`
//! loses no byte, even mid-frame.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod addr;
mod client;
mod conn;
pub mod docs;
mod error;
#[cfg(feature = "http3")]
#[cfg_attr(docsrs, doc(cfg(feature = "http3")))]
pub mod http3;
#[cfg(feature = "hyper")]
mod hyper;
#[cfg(feature = "json")]
mod json;
mod maybe_tls;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
#[cfg(not(feature = "metrics"))]
mod metrics;
mod pool;
mod prepared;
mod shutdown;
mod slot;
#[cfg(feature = "stream")]
mod stream;
#[cfg(feature = "rustls")]
#[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
pub mod tls;
mod upgrader;

#[cfg(feature = "http2")]
pub use self::hyper::{HTTP2_CONNECTION_WINDOW, HTTP2_STREAM_WINDOW};
#[cfg(feature = "hyper")]
#[cfg_attr(docsrs, doc(cfg(feature = "hyper")))]
pub use self::hyper::{HyperConn, HyperUpgrade};
pub use addr::SocketAddrs;
#[cfg(feature = "http3")]
#[cfg_attr(docsrs, doc(cfg(feature = "http3")))]
pub use client::Http3Session;
#[cfg(feature = "http2")]
#[cfg_attr(docsrs, doc(cfg(feature = "http2")))]
pub use client::HttpVersion;
pub use client::{CookieJar, Dialer, IntoClientRequest, NoProxy, ProxyConfig};
pub use conn::split::{ReadHalf, ReuniteError, WriteHalf};
pub use conn::streamed::{MessageReader, MessageWriter};
pub use conn::{CloseAction, Conn, ConnOptions, PingAction, SlowPeerPolicy};
#[cfg(feature = "http2")]
#[cfg_attr(docsrs, doc(cfg(feature = "http2")))]
pub use error::Http2Error;
pub use error::{
    CloseError, DecisionError, Error, HandshakeResponse, ProxyError, RequestError, TimeoutKind,
    is_close_error, is_unexpected_close_error,
};
#[cfg(feature = "http2")]
#[cfg_attr(docsrs, doc(cfg(feature = "http2")))]
pub use maybe_tls::H2Stream;
pub use maybe_tls::{LayeredStream, MaybeTlsStream, Transport};
pub use pool::{BufferPool, WriteBufferPool};
pub use prepared::PreparedMessage;
pub use shutdown::{Shutdown, ShutdownToken};
pub use upgrader::{
    Accept, ConnectProtocol, IncomingRequest, PeerAddr, Refusal, Reject, Upgrade, UpgradeRequest, Upgrader,
};

pub use ferrosocket_proto as proto;
pub use ferrosocket_proto::{Chunk, CloseCode, CloseFrame, Message, MessageKind, Role, State, Utf8Bytes};
pub use http;

// The crate README's Rust examples (the client quick start among them) compile as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
