//! ferrosocket: WebSocket server and client for tokio, with gorilla/websocket's feature set.
//!
//! - [`Upgrader`] turns an HTTP/1.1 upgrade request into a [`Conn`] (server side).
//! - [`Conn`] reads and writes messages, answers pings, runs handlers, enforces limits and
//!   deadlines, and reports how the session ended as a [`CloseError`].
//! - [`Dialer`] connects to `ws://` and `wss://` URLs, directly, through an `http://` or
//!   `https://` proxy, or over a transport of your own ([`Dialer::connector`]) (client side);
//!   the `tls` module has the rustls helpers (feature `rustls`, on by default). The [`http`]
//!   crate is re-exported for building requests and headers.
//! - [`PreparedMessage`] frames a message once for many connections.
//! - [`Upgrader::decide`] decides an upgrade request without I/O, for any HTTP server; with
//!   feature `hyper` (off by default), `Upgrader::upgrade_hyper` upgrades a hyper 1 request
//!   (hyper-util's server, or a framework on hyper; `ferrosocket-axum` is the axum extractor).
//! - With feature `json` (off by default), `Conn::send_json` / `Conn::recv_json` and the same
//!   on the split halves exchange serde values as JSON text messages (gorilla's `WriteJSON` /
//!   `ReadJSON`).
//!
//! All protocol rules live in the sans-I/O crate [`ferrosocket_proto`]; this crate moves bytes.
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
//! # Close errors
//! A session ends with [`Error::Closed`], carrying the peer's close code, or 1006 (abnormal
//! closure) when the transport ended without a close frame. Classify it as gorilla does:
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
//! A liveness check in the same style: send a ping; if the write fails, the peer is gone.
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
//! tasks, use [`Conn::split`]; the reader keeps answering pings.
//!
//! # Cancel safety
//! [`Conn::recv`] and [`Conn::flush`] are cancel safe: a `recv` dropped in `tokio::select!`
//! loses no byte, even mid-frame.

mod addr;
mod client;
mod conn;
mod error;
#[cfg(feature = "hyper")]
mod hyper;
#[cfg(feature = "json")]
mod json;
mod maybe_tls;
mod pool;
mod prepared;
mod shutdown;
mod slot;
#[cfg(feature = "stream")]
mod stream;
#[cfg(feature = "rustls")]
pub mod tls;
mod upgrader;

#[cfg(feature = "hyper")]
pub use self::hyper::{HyperConn, HyperUpgrade};
pub use addr::SocketAddrs;
pub use client::{Dialer, IntoClientRequest, NoProxy, ProxyConfig};
pub use conn::split::{ReadHalf, ReuniteError, WriteHalf};
pub use conn::streamed::{MessageReader, MessageWriter};
pub use conn::{CloseAction, Conn, ConnOptions, PingAction, SlowPeerPolicy};
pub use error::{
    CloseError, DecisionError, Error, HandshakeResponse, ProxyError, RequestError, TimeoutKind,
    is_close_error, is_unexpected_close_error,
};
pub use maybe_tls::{LayeredStream, MaybeTlsStream, Transport};
pub use pool::{BufferPool, WriteBufferPool};
pub use prepared::PreparedMessage;
pub use shutdown::{Shutdown, ShutdownToken};
pub use upgrader::{Accept, IncomingRequest, PeerAddr, Refusal, Reject, Upgrade, UpgradeRequest, Upgrader};

pub use ferrosocket_proto as proto;
pub use ferrosocket_proto::{Chunk, CloseCode, CloseFrame, Message, MessageKind, Role, State, Utf8Bytes};
pub use http;
