//! `Conn`: a WebSocket connection over any `AsyncRead + AsyncWrite` transport.
//!
//! - `engine.rs`: the receive loop, the writer, timers and the end of a session, shared with
//!   the split halves;
//! - `handlers.rs`: ping, pong and close handlers;
//! - `options.rs`: `ConnOptions`, the options an `Upgrader`/`Dialer` shares between its
//!   connections, and the macro giving both builders its setters;
//! - `streamed.rs`: messages received as chunks and sent through an `AsyncWrite`.

pub(crate) mod engine;
pub(crate) mod handlers;
pub(crate) mod options;
mod spare;
pub(crate) mod split;
pub(crate) mod streamed;

use crate::error::{CloseError, Error};
use bytes::Bytes;
use engine::Engine;
pub use ferrosocket_proto::SlowPeerPolicy;
use ferrosocket_proto::{CloseFrame, Connection, Keepalive, Message, Role, State};
pub use handlers::{CloseAction, PingAction};
pub use options::ConnOptions;
pub(crate) use options::conn_options_setters;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

/// A WebSocket connection: read and write whole messages, send pings and closes, with
/// deadlines and handlers. Made by an [`Upgrader`](crate::Upgrader) (server) or a
/// [`Dialer`](crate::Dialer) (client).
///
/// # Reading
/// [`recv`](Self::recv) returns the next text or binary message. While waiting it answers pings,
/// runs the handlers, writes out anything queued (replies go out in batches: see below), runs
/// the connection's timers (keepalive, idle, close handshake, slow peer) and enforces the read
/// deadline and limits. When the session ends it returns [`Error::Closed`] with the peer's
/// close code, or 1006 if the transport dropped.
///
/// # Writing
/// [`send`](Self::send) queues a message and writes it out. [`feed`](Self::feed) only queues
/// it; queued messages leave together at the next [`flush`](Self::flush), when the queue passes
/// the write buffer size, or when `recv` is about to wait for input. An echo loop built on
/// `recv` + `feed` therefore answers a burst of messages with one write.
///
/// # Ending
/// When we fail the connection (the peer broke the protocol or a limit), `recv` sends the close
/// frame, shuts the transport's write side down, and reads and discards what the peer still
/// sends until it closes (bounded by the close timeout and 64 MiB): dropping a socket with
/// unread input would make the kernel reset it and could destroy the close frame before the
/// peer reads why it was cut off.
///
/// # Cancel safety
/// `recv` and `flush` are cancel safe: all state lives in the connection, so a `recv` dropped
/// inside `tokio::select!` (even mid-frame) loses nothing, and the next call continues where it
/// stopped. A cancelled `send` has queued its message; the next write or `flush` sends it.
pub struct Conn<S> {
    pub(crate) io: S,
    pub(crate) engine: Engine,
}

impl<S> std::fmt::Debug for Conn<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("core", &self.engine.core)
            .field("subprotocol", &self.engine.subprotocol)
            .finish_non_exhaustive()
    }
}

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// The one way every connection is put together (upgrader, hyper, dialer, `from_raw*`):
    /// the core was made by [`ConnOptions::new_core`] and fed any leftover bytes; the engine
    /// applies the timers, and the shutdown token is taken here.
    pub(crate) fn from_parts(
        io: S,
        core: Connection,
        opts: Arc<ConnOptions>,
        subprotocol: Option<String>,
    ) -> Self {
        let token = opts.shutdown.as_ref().map(crate::Shutdown::token);
        let mut engine = Engine::new(core, opts, subprotocol);
        if let Some(token) = token {
            engine.set_shutdown(token);
        }
        Self { io, engine }
    }

    /// Wraps a transport whose handshake already happened elsewhere, with the protocol core's
    /// `config` and every other option at its default (no compression, no subprotocol): the
    /// same as [`from_raw_with`](Self::from_raw_with) with
    /// `ConnOptions::new().config(config)` and `Negotiated::default()`.
    ///
    /// `leftover` holds bytes that arrived after the HTTP head (they are processed before the
    /// first read). Prefer [`Upgrader`](crate::Upgrader) and [`Dialer`](crate::Dialer).
    pub fn from_raw(io: S, role: Role, config: ferrosocket_proto::Config, leftover: &[u8]) -> Self {
        Self::from_raw_with(
            io,
            role,
            ConnOptions::new().config(config),
            &ferrosocket_proto::Negotiated::default(),
            leftover,
        )
    }

    /// Wraps a transport whose handshake already happened elsewhere, with every connection
    /// option (limits, buffers, compression, keepalive, idle timeout, slow-peer policy,
    /// write-buffer pool, shutdown) and what the handshake agreed on: the subprotocol and the
    /// permessage-deflate parameters, as [`ServerHandshake::validate`] or
    /// [`ClientHandshake::verify`] return them in a [`Negotiated`]. A connection built here
    /// is the one an [`Upgrader`](crate::Upgrader) or a [`Dialer`](crate::Dialer) with the
    /// same options builds (only an upgrader's connection limit is an upgrader's own: see
    /// [`Upgrader::decide`](crate::Upgrader::decide) for a handshake done elsewhere that
    /// keeps it).
    ///
    /// Compression is on when `negotiated.deflate` is set and `options` enable it (the
    /// parameters are the handshake's, the memory settings and level are `options`').
    /// `options` may be an `Arc<ConnOptions>` shared by many connections or a `ConnOptions`.
    /// `leftover` holds bytes that arrived after the HTTP head (processed before the first read).
    ///
    /// [`ServerHandshake::validate`]: ferrosocket_proto::ServerHandshake::validate
    /// [`ClientHandshake::verify`]: ferrosocket_proto::ClientHandshake::verify
    /// [`Negotiated`]: ferrosocket_proto::Negotiated
    pub fn from_raw_with(
        io: S,
        role: Role,
        options: impl Into<Arc<ConnOptions>>,
        negotiated: &ferrosocket_proto::Negotiated,
        leftover: &[u8],
    ) -> Self {
        let options = options.into();
        let mut core = options.new_core(role, negotiated.deflate.as_ref());
        core.receive(leftover);
        Self::from_parts(io, core, options, negotiated.subprotocol.clone())
    }

    // ---- reading -------------------------------------------------------------------------

    /// Receives the next text or binary message.
    ///
    /// A message that arrived in a single frame is a slice of the buffer the socket was read
    /// into (no copy). Keeping it keeps that buffer (up to the read buffer size, 64 KiB by
    /// default) alive: to store many small messages for long, copy them
    /// (`Bytes::copy_from_slice`).
    ///
    /// # Errors
    /// [`Error::Closed`] when the session ends (peer's close code, or 1006 when the transport
    /// dropped or keepalive found the peer gone), [`Error::Protocol`] when the peer broke the
    /// protocol (we sent 1002/1007/1009), [`Error::Timeout`] when the read deadline passed (the
    /// connection stays usable) or a timer ended the session (idle, close, slow peer),
    /// [`Error::AlreadyClosed`] after any of the others but a read-deadline timeout.
    ///
    /// # Cancel safety
    /// Cancel safe: see the type's documentation.
    pub async fn recv(&mut self) -> Result<Message, Error> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The poll form of [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Message, Error>> {
        let waker = cx.waker();
        self.engine.poll_recv(&mut self.io, waker, waker)
    }

    // ---- writing -------------------------------------------------------------------------

    /// The poll form of [`flush`](Self::flush).
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let waker = cx.waker();
        self.engine.poll_flush(&mut self.io, waker, waker)
    }

    /// Writes out everything queued.
    ///
    /// # Errors
    /// [`TimeoutKind::Write`](crate::TimeoutKind::Write) when the write deadline passed or the
    /// slow-peer policy gave up on the peer; I/O errors of the transport.
    ///
    /// # Cancel safety
    /// Cancel safe: what was not written stays queued for the next call.
    pub async fn flush(&mut self) -> Result<(), Error> {
        poll_fn(|cx| self.poll_flush(cx)).await
    }

    /// Queues a message without writing it, unless the queue is past the write buffer size.
    /// See the type's documentation on batching.
    pub async fn feed(&mut self, msg: impl Into<Message>) -> Result<(), Error> {
        self.queue(msg.into())?;
        if self.engine.core.pending_output_len() >= self.engine.opts.write_buffer_size {
            self.flush().await?;
        }
        Ok(())
    }

    /// Queues a message synchronously (what [`feed`](Self::feed) does before any write).
    pub fn queue(&mut self, msg: Message) -> Result<(), Error> {
        self.engine.queue(msg)
    }

    /// Bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.engine.core.pending_output_len()
    }

    pub(crate) fn write_buffer_size(&self) -> usize {
        self.engine.opts.write_buffer_size
    }

    #[cfg(feature = "stream")]
    pub(crate) fn queue_close(&mut self, frame: CloseFrame) -> Result<(), Error> {
        self.engine.core.send_close(Some(frame))?;
        Ok(())
    }

    /// Sends a message and writes it out.
    pub async fn send(&mut self, msg: impl Into<Message>) -> Result<(), Error> {
        self.queue(msg.into())?;
        self.flush().await
    }

    /// Sends a text message.
    pub async fn send_text(&mut self, text: impl Into<ferrosocket_proto::Utf8Bytes>) -> Result<(), Error> {
        self.send(Message::Text(text.into())).await
    }

    /// Sends a binary message.
    pub async fn send_binary(&mut self, data: impl Into<Bytes>) -> Result<(), Error> {
        self.send(Message::Binary(data.into())).await
    }

    /// Sends one fragment of a message; the last one has `fin` set. Streams a message whose
    /// size is not known in advance (or use [`send_stream`](Self::send_stream)).
    pub async fn send_fragment(
        &mut self,
        kind: ferrosocket_proto::MessageKind,
        data: impl Into<Bytes>,
        fin: bool,
    ) -> Result<(), Error> {
        self.engine.queue_fragment(kind, data.into(), fin)?;
        self.flush().await
    }

    /// Sends a frame prepared once for many connections.
    pub async fn send_prepared(&mut self, msg: &crate::PreparedMessage) -> Result<(), Error> {
        self.feed_prepared(msg)?;
        self.flush().await
    }

    /// Queues a prepared frame without writing it.
    pub fn feed_prepared(&mut self, msg: &crate::PreparedMessage) -> Result<(), Error> {
        self.engine.queue_prepared(msg)?;
        Ok(())
    }

    /// Sends a ping (payload at most 125 bytes). Use it to check liveness: if the peer is gone
    /// the write fails with a [`CloseError`] of code 1006 (see [`is_unexpected_close_error`]).
    ///
    /// [`is_unexpected_close_error`]: crate::is_unexpected_close_error
    pub async fn ping(&mut self, payload: impl AsRef<[u8]>) -> Result<(), Error> {
        self.engine.ping(payload.as_ref())?;
        self.flush().await
    }

    /// Sends an unsolicited pong (a one-way heartbeat).
    pub async fn pong(&mut self, payload: impl AsRef<[u8]>) -> Result<(), Error> {
        self.engine.check_usable()?;
        self.engine.core.send_pong(payload.as_ref())?;
        self.flush().await
    }

    /// Sends a close frame and writes it out, without waiting for the peer's reply: keep
    /// calling [`recv`](Self::recv) to receive the peer's close (it returns [`Error::Closed`]).
    ///
    /// Once the close frame went to the transport whole, a transport that fails after it (an
    /// HTTP/2 peer that read the close, answered and reset its stream while the flush was
    /// still waiting) does not fail this call: the close is as sent as a TCP write is, and
    /// `recv` reports how the session ended (the peer's close if it arrived, else 1006).
    pub async fn send_close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        self.engine.send_close(frame)?;
        self.flush().await
    }

    /// Closes the session: sends `frame`, waits (up to the close timeout, default 10 s) for the
    /// peer's close frame while discarding messages that still arrive, then closes the
    /// transport. Returns how the peer closed.
    ///
    /// # Errors
    /// [`TimeoutKind::Close`](crate::TimeoutKind::Close) when the peer did not answer in time;
    /// whatever else ended the session first.
    pub async fn close(&mut self, frame: Option<CloseFrame>) -> Result<CloseError, Error> {
        if !self.engine.is_finished() && self.engine.core.close_sent().is_none() {
            self.engine.core.send_close(frame)?;
        }
        loop {
            match self.recv().await {
                Ok(_) => continue,
                Err(Error::Closed(c)) => return Ok(c),
                Err(e) => return Err(e),
            }
        }
    }

    /// Gives back the transport, dropping the WebSocket state. Bytes
    /// received but not yet processed and output not yet written are lost.
    pub fn into_inner(self) -> S {
        self.io
    }

    // ---- handlers, deadlines, limits -----------------------------------------------------

    /// Runs `handler` for every ping; its answer decides whether a pong is sent. The default
    /// handler answers every ping
    /// ([`PingAction::default`]).
    pub fn set_ping_handler(&mut self, handler: impl FnMut(&[u8]) -> PingAction + Send + 'static) {
        self.engine
            .handlers
            .set_ping(&mut self.engine.core, Box::new(handler));
    }

    /// Runs `handler` for every pong; e.g. to extend a deadline.
    /// The default does nothing.
    pub fn set_pong_handler(&mut self, handler: impl FnMut(&[u8]) + Send + 'static) {
        self.engine.handlers.set_pong(Box::new(handler));
    }

    /// Runs `handler` when the peer's close frame arrives; its answer is the close frame sent
    /// back. `recv` then returns [`Error::Closed`]. The default
    /// echoes the peer's code ([`CloseAction::default`]).
    pub fn set_close_handler(
        &mut self,
        handler: impl FnMut(Option<&CloseFrame>) -> CloseAction + Send + 'static,
    ) {
        self.engine
            .handlers
            .set_close(&mut self.engine.core, Box::new(handler));
    }

    /// Puts the default ping, pong and close handlers back (answer pings, ignore pongs, echo
    /// the peer's close code).
    pub fn reset_handlers(&mut self) {
        self.engine.handlers.reset(&mut self.engine.core);
    }

    /// After `deadline`, a pending [`recv`](Self::recv) returns [`TimeoutKind::Read`]; `None`
    /// removes the deadline. The connection stays usable after the timeout.
    ///
    /// [`TimeoutKind::Read`]: crate::TimeoutKind::Read
    pub fn set_read_deadline(&mut self, deadline: Option<Instant>) {
        self.engine.read_deadline = deadline;
    }

    /// After `deadline`, a pending write returns [`TimeoutKind::Write`]; `None` removes it.
    ///
    /// [`TimeoutKind::Write`]: crate::TimeoutKind::Write
    pub fn set_write_deadline(&mut self, deadline: Option<Instant>) {
        self.engine.write_deadline = deadline;
    }

    /// Compress the messages sent from now on, when permessage-deflate was negotiated.
    /// Default: on.
    pub fn set_write_compression(&mut self, on: bool) {
        self.engine.core.set_write_compression(on);
    }

    /// The zlib level (0-9) of the messages sent from now on, when permessage-deflate was
    /// negotiated (default from the upgrader's or dialer's
    /// [`DeflateConfig`](ferrosocket_proto::DeflateConfig), 1).
    pub fn set_compression_level(&mut self, level: u32) {
        self.engine.core.set_compression_level(level);
    }

    pub(crate) fn set_slot(&mut self, slot: crate::slot::ConnSlot) {
        self.engine.slot = Some(slot);
    }

    /// Sends a ping whenever the peer has been silent for `interval`, and ends the session
    /// with a 1006 [`CloseError`] (see [`is_unexpected_close_error`]) when nothing at all
    /// arrives within `timeout` of that ping: dead-peer detection. `None` turns it off (the
    /// default in the library). It runs while a [`recv`](Self::recv) is waiting.
    ///
    /// [`is_unexpected_close_error`]: crate::is_unexpected_close_error
    pub fn set_keepalive(&mut self, keepalive: Option<(Duration, Duration)>) {
        self.engine
            .core
            .set_keepalive(keepalive.map(|(i, t)| Keepalive::new(i, t)));
    }

    /// Closes the session with 1001 ("idle timeout") when no message went either way for
    /// `after`; `recv` then returns [`TimeoutKind::Idle`](crate::TimeoutKind::Idle). `None`
    /// (default) turns it off.
    pub fn set_idle_timeout(&mut self, after: Option<Duration>) {
        self.engine.core.set_idle_timeout(after);
    }

    /// Ties this connection to a server-wide [`Shutdown`](crate::Shutdown): when it is
    /// triggered, the connection sends close 1001 (going away) and finishes the close
    /// handshake inside [`recv`](Self::recv).
    pub fn set_shutdown(&mut self, token: crate::ShutdownToken) {
        self.engine.set_shutdown(token);
    }

    /// What to do when the peer stops reading (default: close with 1008 after 60 s).
    pub fn set_slow_peer_policy(&mut self, policy: SlowPeerPolicy) {
        self.engine.core.set_slow_peer_policy(policy);
    }

    /// The largest message accepted from now on; bigger ones close the connection with 1009
    /// (message too big). `None` means unlimited.
    pub fn set_read_limit(&mut self, bytes: Option<usize>) {
        self.engine.core.set_max_message_size(bytes);
    }

    // ---- information ---------------------------------------------------------------------

    /// The subprotocol both ends agreed on, if any.
    pub fn subprotocol(&self) -> Option<&str> {
        self.engine.subprotocol.as_deref()
    }

    /// Client or server.
    pub fn role(&self) -> Role {
        self.engine.core.role()
    }

    /// Where the close handshake stands.
    pub fn state(&self) -> State {
        self.engine.core.state()
    }

    /// The protocol core, for inspection.
    pub fn core(&self) -> &Connection {
        &self.engine.core
    }

    /// The transport.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// The transport, mutably. Writing to it directly corrupts the WebSocket stream.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }
}

impl<S> Conn<S>
where
    S: crate::addr::SocketAddrs + AsyncRead + AsyncWrite + Unpin,
{
    /// The address of the peer: for TLS, that of the transport
    /// beneath it. See [`SocketAddrs`](crate::SocketAddrs) for the transports that have one.
    pub fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.get_ref().peer_addr()
    }

    /// Our own address: for TLS, that of the transport beneath it.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.get_ref().local_addr()
    }
}
