//! `Conn`: a WebSocket connection over any `AsyncRead + AsyncWrite` transport.

use crate::error::{CloseError, Error, TimeoutKind};
use crate::pool::BufferPool;
use bytes::Bytes;
use ferrosocket_proto::{CloseFrame, Connection, Event, Message, ReadError, Role, State};
use std::future::{Future, poll_fn};
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};

/// What to do with a ping (the return value of a [ping handler](Conn::set_ping_handler)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PingAction {
    /// Answer with a pong carrying the ping's payload (the default).
    Pong,
    /// Send nothing.
    Ignore,
}

/// How to answer the peer's close frame (the return value of a
/// [close handler](Conn::set_close_handler)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseAction {
    /// Reply with the peer's code (the default; RFC 6455 §5.5.1).
    Echo,
    /// Reply with this frame instead.
    Reply(CloseFrame),
}

type ShutdownSignal = Pin<Box<dyn Future<Output = ()> + Send>>;
type PingHandler = Box<dyn FnMut(&[u8]) -> PingAction + Send>;
type PongHandler = Box<dyn FnMut(&[u8]) + Send>;
type CloseHandler = Box<dyn FnMut(Option<&CloseFrame>) -> CloseAction + Send>;

/// The application's ping, pong and close handlers, and how their answers reach the core.
/// Shared by [`Conn`] and the split [`ReadHalf`](crate::ReadHalf).
#[derive(Default)]
pub(crate) struct Handlers {
    ping: Option<PingHandler>,
    pong: Option<PongHandler>,
    close: Option<CloseHandler>,
}

impl Handlers {
    pub(crate) fn set_ping(&mut self, core: &mut Connection, handler: PingHandler) {
        core.set_auto_pong(false);
        self.ping = Some(handler);
    }

    pub(crate) fn set_pong(&mut self, handler: PongHandler) {
        self.pong = Some(handler);
    }

    pub(crate) fn set_close(&mut self, core: &mut Connection, handler: CloseHandler) {
        core.set_auto_close_reply(false);
        self.close = Some(handler);
    }

    /// Runs the handler for a control event (the core answered it already when no handler
    /// is set). Returns the close to report, for [`Event::Close`].
    pub(crate) fn on_control(&mut self, core: &mut Connection, event: Event) -> Option<CloseError> {
        match event {
            Event::Ping(p) => {
                if let Some(h) = &mut self.ping
                    && h(&p) == PingAction::Pong
                {
                    // Fails only when closing, when no pong is owed.
                    let _ = core.send_pong(&p);
                }
                None
            }
            Event::Pong(p) => {
                if let Some(h) = &mut self.pong {
                    h(&p);
                }
                None
            }
            Event::Close(frame) => {
                if let Some(h) = &mut self.close {
                    let reply = match h(frame.as_ref()) {
                        CloseAction::Echo => frame.as_ref().map(|f| CloseFrame::new(f.code, "")),
                        CloseAction::Reply(f) => Some(f),
                    };
                    // Only fails if a close was already sent: then nothing more is owed.
                    let _ = core.send_close(reply);
                }
                Some(CloseError::from_frame(frame.as_ref()))
            }
            // The shell reads whole messages: it never sets `ReadMode::Streamed`.
            Event::Message(_) | Event::Chunk(_) => None,
        }
    }
}

/// What to do with a peer that does not read what we send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlowPeerPolicy {
    /// Wait as long as it takes (memory stays bounded: a connection with more than its
    /// maximum write buffer queued stops reading, and writers wait).
    Wait,
    /// When no byte could be written for `after`, fail the connection with `code` (usually
    /// 1008 policy violation or 1013 try again later) and close the transport.
    Close {
        /// How long the output may stall.
        after: Duration,
        /// The close code to send (it may not arrive: the peer is not reading).
        code: ferrosocket_proto::CloseCode,
    },
}

impl Default for SlowPeerPolicy {
    /// Close with 1008 after 60 s without progress: a stuck peer must not hold a connection
    /// and its buffers forever.
    fn default() -> Self {
        Self::Close {
            after: Duration::from_secs(60),
            code: ferrosocket_proto::CloseCode::POLICY_VIOLATION,
        }
    }
}

/// Connection options the async layer adds to the core's [`Config`](ferrosocket_proto::Config).
#[derive(Clone)]
pub(crate) struct IoOptions {
    pub(crate) write_buffer_size: usize,
    pub(crate) max_write_buffer_size: usize,
    pub(crate) close_timeout: Duration,
    pub(crate) pool: Option<Arc<dyn BufferPool>>,
    pub(crate) keepalive: Option<(Duration, Duration)>,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) slow_peer: SlowPeerPolicy,
}

impl Default for IoOptions {
    fn default() -> Self {
        Self {
            write_buffer_size: 64 << 10,
            max_write_buffer_size: 4 << 20,
            close_timeout: Duration::from_secs(10),
            pool: None,
            keepalive: None,
            idle_timeout: None,
            slow_peer: SlowPeerPolicy::default(),
        }
    }
}

/// Ping when the peer has been silent for `interval`; give up when nothing at all arrives
/// within `timeout` of the ping.
struct Keepalive {
    interval: Duration,
    timeout: Duration,
    timer: Pin<Box<Sleep>>,
    last_rx: Instant,
    ping_sent: Option<Instant>,
}

/// Close when no message went either way for `after`.
struct Idle {
    after: Duration,
    timer: Pin<Box<Sleep>>,
    last_message: Instant,
}

/// What the timers decided while `recv` waits.
enum Tick {
    /// Nothing to do: stay pending.
    Wait,
    /// Something was queued or re-armed: run the receive loop again.
    Again,
    /// End the session with this error.
    End(Error),
}

/// A WebSocket connection: read and write whole messages, send pings and closes, with
/// deadlines and handlers. Made by an [`Upgrader`](crate::Upgrader) (server) or a
/// [`Dialer`](crate::Dialer) (client).
///
/// # Reading
/// [`recv`](Self::recv) returns the next text or binary message. While waiting it answers pings,
/// runs the handlers, writes out anything queued (replies go out in batches: see below), and
/// enforces the read deadline and limits. When the session ends it returns
/// [`Error::Closed`] with the peer's close code, or 1006 if the transport dropped.
///
/// # Writing
/// [`send`](Self::send) queues a message and writes it out. [`feed`](Self::feed) only queues
/// it; queued messages leave together at the next [`flush`](Self::flush), when the queue passes
/// the write buffer size, or when `recv` is about to wait for input. An echo loop built on
/// `recv` + `feed` therefore answers a burst of messages with one write.
///
/// # Cancel safety
/// `recv` and `flush` are cancel safe: all state lives in the connection, so a `recv` dropped
/// inside `tokio::select!` (even mid-frame) loses nothing, and the next call continues where it
/// stopped. A cancelled `send` has queued its message; the next write or `flush` sends it.
pub struct Conn<S> {
    io: S,
    core: Connection,
    /// Shared by every connection of an `Upgrader`/`Dialer` (copied on write).
    opts: Arc<IoOptions>,
    subprotocol: Option<String>,
    handlers: Handlers,
    read_deadline: Option<Pin<Box<Sleep>>>,
    read_deadline_at: Option<Instant>,
    write_deadline: Option<Pin<Box<Sleep>>>,
    close_timer: Option<Pin<Box<Sleep>>>,
    keepalive: Option<Box<Keepalive>>,
    idle: Option<Box<Idle>>,
    shutdown: Option<(crate::ShutdownToken, ShutdownSignal)>,
    write_stall: Option<Pin<Box<Sleep>>>,
    ending: Option<Error>,
    /// The upgrader's connection place this connection holds, if it counts connections.
    slot: Option<crate::upgrader::ConnSlot>,
    finished: bool,
    read_closed: bool,
    shut_down: bool,
}

impl<S> std::fmt::Debug for Conn<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("core", &self.core)
            .field("subprotocol", &self.subprotocol)
            .finish_non_exhaustive()
    }
}

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    pub(crate) fn from_parts(
        io: S,
        core: Connection,
        opts: Arc<IoOptions>,
        subprotocol: Option<String>,
    ) -> Self {
        let (keepalive, idle) = (opts.keepalive, opts.idle_timeout);
        let mut conn = Self {
            io,
            core,
            opts,
            subprotocol,
            handlers: Handlers::default(),
            read_deadline: None,
            read_deadline_at: None,
            write_deadline: None,
            close_timer: None,
            keepalive: None,
            idle: None,
            shutdown: None,
            write_stall: None,
            ending: None,
            slot: None,
            finished: false,
            read_closed: false,
            shut_down: false,
        };
        if let Some((interval, timeout)) = keepalive {
            conn.set_keepalive(Some((interval, timeout)));
        }
        conn.set_idle_timeout(idle);
        conn
    }

    /// Wraps a transport whose handshake already happened elsewhere.
    ///
    /// `leftover` holds bytes that arrived after the HTTP head (they are processed before the
    /// first read). Prefer [`Upgrader`](crate::Upgrader) and [`Dialer`](crate::Dialer).
    pub fn from_raw(io: S, role: Role, config: ferrosocket_proto::Config, leftover: &[u8]) -> Self {
        let mut core = Connection::new(role, config);
        core.receive(leftover);
        Self::from_parts(io, core, Arc::new(IoOptions::default()), None)
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
    /// dropped), [`Error::Protocol`] when the peer broke the protocol (we sent 1002/1007/1009),
    /// [`Error::Timeout`] when the read deadline passed (the connection stays usable),
    /// [`Error::AlreadyClosed`] after any of the others but a timeout.
    ///
    /// # Cancel safety
    /// Cancel safe: see the type's documentation.
    pub async fn recv(&mut self) -> Result<Message, Error> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The poll form of [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Message, Error>> {
        loop {
            if self.finished {
                return Poll::Ready(Err(Error::AlreadyClosed));
            }
            if self.ending.is_some() {
                return self.poll_finish(cx);
            }
            match self.core.poll_event() {
                Ok(Some(Event::Message(m))) => {
                    if let Some(idle) = &mut self.idle {
                        idle.last_message = Instant::now();
                    }
                    return Poll::Ready(Ok(m));
                }
                Ok(Some(control)) => {
                    if let Some(closed) = self.handlers.on_control(&mut self.core, control) {
                        self.ending = Some(Error::Closed(closed));
                    }
                }
                Ok(None) => {
                    if let Poll::Ready(Err(e)) = self.poll_write_some(cx) {
                        self.ending = Some(e);
                        continue;
                    }
                    if self.core.pending_output_len() > self.opts.max_write_buffer_size {
                        // The peer does not read what we send: stop reading until it does,
                        // so that memory stays bounded. The write above registered the waker.
                        if let Some(e) = self.check_write_stall(cx) {
                            self.ending = Some(e);
                            continue;
                        }
                    } else {
                        match self.poll_read_more(cx) {
                            Poll::Ready(Ok(())) => continue,
                            Poll::Ready(Err(e)) => {
                                self.ending = Some(e);
                                continue;
                            }
                            Poll::Pending => self.release_idle_buffers(),
                        }
                    }
                    if let Some(d) = &mut self.read_deadline
                        && d.as_mut().poll(cx).is_ready()
                    {
                        return Poll::Ready(Err(Error::Timeout(TimeoutKind::Read)));
                    }
                    match self.poll_timers(cx) {
                        Tick::Wait => return Poll::Pending,
                        Tick::Again => continue,
                        Tick::End(e) => self.ending = Some(e),
                    }
                }
                Err(ReadError::Protocol(e)) => self.ending = Some(Error::Protocol(e)),
                Err(ReadError::AbnormalClosure) => {
                    self.ending = Some(Error::Closed(CloseError::abnormal(
                        "connection ended without a close frame",
                    )))
                }
                Err(ReadError::Closed) => {
                    self.ending = Some(match self.core.close_received() {
                        Some(f) => Error::Closed(CloseError::from_frame(f.as_ref())),
                        None => Error::AlreadyClosed,
                    })
                }
                Err(_) => self.ending = Some(Error::AlreadyClosed),
            }
        }
    }

    /// Runs the shutdown signal, the close timer, keepalive and the idle timer while `recv`
    /// waits for input.
    fn poll_timers(&mut self, cx: &mut Context<'_>) -> Tick {
        if let Some((_, signal)) = &mut self.shutdown
            && signal.as_mut().poll(cx).is_ready()
        {
            self.shutdown = None;
            let frame = CloseFrame::new(ferrosocket_proto::CloseCode::GOING_AWAY, "server shutting down");
            // Fails only when a close was already sent: the handshake is under way.
            let _ = self.core.send_close(Some(frame));
            return Tick::Again;
        }
        if self.core.close_expected() {
            let timeout = self.opts.close_timeout;
            let timer = self
                .close_timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
            if timer.as_mut().poll(cx).is_ready() {
                return Tick::End(Error::Timeout(TimeoutKind::Close));
            }
        }
        if let Some(k) = &mut self.keepalive
            && k.timer.as_mut().poll(cx).is_ready()
        {
            let now = Instant::now();
            match k.ping_sent {
                Some(sent) if k.last_rx < sent => {
                    return Tick::End(Error::Closed(CloseError::abnormal(format!(
                        "keepalive: nothing received within {:?} of a ping",
                        k.timeout
                    ))));
                }
                Some(_) => {
                    k.ping_sent = None;
                    let at = k.last_rx + k.interval;
                    k.timer.as_mut().reset(at);
                }
                None if now >= k.last_rx + k.interval => {
                    if self.core.state() == State::Open {
                        let _ = self.core.send_ping(b"keepalive");
                    }
                    k.ping_sent = Some(now);
                    k.timer.as_mut().reset(now + k.timeout);
                }
                None => {
                    let at = k.last_rx + k.interval;
                    k.timer.as_mut().reset(at);
                }
            }
            return Tick::Again;
        }
        if let Some(idle) = &mut self.idle
            && idle.timer.as_mut().poll(cx).is_ready()
        {
            let due = idle.last_message + idle.after;
            if Instant::now() < due {
                idle.timer.as_mut().reset(due);
                return Tick::Again;
            }
            self.idle = None;
            let frame = CloseFrame::new(ferrosocket_proto::CloseCode::GOING_AWAY, "idle timeout");
            let _ = self.core.send_close(Some(frame));
            return Tick::End(Error::Timeout(TimeoutKind::Idle));
        }
        Tick::Wait
    }

    /// Applies the slow-peer policy while output cannot be written; `Some` ends the session.
    fn check_write_stall(&mut self, cx: &mut Context<'_>) -> Option<Error> {
        let SlowPeerPolicy::Close { after, code } = self.opts.slow_peer else {
            return None;
        };
        let timer = self
            .write_stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(after)));
        if timer.as_mut().poll(cx).is_ready() {
            self.write_stall = None;
            self.core.fail(code, "peer too slow to read");
            // Nothing more can be written: drop what is queued with the transport.
            self.shut_down = true;
            let _ = Pin::new(&mut self.io).poll_shutdown(cx);
            return Some(Error::Timeout(TimeoutKind::Write));
        }
        None
    }

    /// Reads once from the transport into the core.
    fn poll_read_more(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.read_closed {
            self.core.receive_eof();
            return Poll::Ready(Ok(()));
        }
        let buf = self.core.read_buffer();
        let n = ready!(tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, buf))?;
        if let Some(k) = &mut self.keepalive {
            k.last_rx = Instant::now();
        }
        if n == 0 {
            self.read_closed = true;
            self.core.receive_eof();
        }
        Poll::Ready(Ok(()))
    }

    /// Ends the session: write out the close frame (if any), close the transport, report.
    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<Message, Error>> {
        let peer_gone = matches!(&self.ending, Some(Error::Closed(c)) if c.code == ferrosocket_proto::CloseCode::ABNORMAL_CLOSURE)
            || matches!(&self.ending, Some(Error::Io(_)));
        if !peer_gone && !self.shut_down {
            if self.close_timer.is_none() {
                self.close_timer = Some(Box::pin(tokio::time::sleep(self.opts.close_timeout)));
            }
            let timed_out = self
                .close_timer
                .as_mut()
                .is_some_and(|t| t.as_mut().poll(cx).is_ready());
            if !timed_out {
                match self.poll_write_some(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(_)) => {}
                    Poll::Ready(Ok(())) => {
                        // RFC 6455 §7.1.1: the server closes the TCP connection first; the
                        // client waits for that (bounded by the close timeout).
                        if self.core.role() == Role::Client
                            && !self.read_closed
                            && self.core.state() == State::Closed
                            && self.poll_drain_until_eof(cx).is_pending()
                        {
                            return Poll::Pending;
                        }
                    }
                }
            }
            let _ = Pin::new(&mut self.io).poll_shutdown(cx);
            self.shut_down = true;
        }
        self.finished = true;
        self.close_timer = None;
        let err = self.ending.take().unwrap_or(Error::AlreadyClosed);
        Poll::Ready(Err(err))
    }

    fn poll_drain_until_eof(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut scratch = bytes::BytesMut::with_capacity(256);
        loop {
            scratch.clear();
            match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut scratch) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                    self.read_closed = true;
                    return Poll::Ready(());
                }
                Poll::Ready(Ok(_)) => continue,
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    // ---- writing -------------------------------------------------------------------------

    /// Nothing to read now: give the buffers back so an idle connection holds none.
    fn release_idle_buffers(&mut self) {
        if let Some(buf) = self.core.release_idle_buffers()
            && let Some(pool) = &self.opts.pool
        {
            pool.put(buf);
        }
    }

    fn before_send(&mut self) {
        if let Some(pool) = &self.opts.pool
            && !self.core.wants_write()
            && let Some(buf) = pool.get()
        {
            self.core.give_write_buffer(buf);
        }
    }

    /// Writes as much queued output as the transport takes now; `Ready(Ok)` when all is out.
    fn poll_write_some(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        while self.core.wants_write() {
            let n = if self.io.is_write_vectored() {
                let mut slices = [IoSlice::new(&[]); 64];
                let count = self.core.pending_output(&mut slices);
                ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..count]))?
            } else {
                ready!(Pin::new(&mut self.io).poll_write(cx, self.core.pending_output_first()))?
            };
            if n == 0 {
                return Poll::Ready(Err(Error::from(std::io::Error::from(
                    std::io::ErrorKind::WriteZero,
                ))));
            }
            self.core.advance_output(n);
            self.write_stall = None;
        }
        ready!(Pin::new(&mut self.io).poll_flush(cx))?;
        match &self.opts.pool {
            Some(pool) => {
                if let Some(buf) = self.core.take_write_buffer() {
                    pool.put(buf);
                }
            }
            None => self
                .core
                .shrink_buffers(self.opts.write_buffer_size.max(64 << 10)),
        }
        Poll::Ready(Ok(()))
    }

    /// The poll form of [`flush`](Self::flush).
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.finished {
            return Poll::Ready(Err(Error::AlreadyClosed));
        }
        match self.poll_write_some(cx) {
            Poll::Ready(r) => {
                self.close_transport_if_done(cx);
                Poll::Ready(r)
            }
            Poll::Pending => {
                if let Some(d) = &mut self.write_deadline
                    && d.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(Err(Error::Timeout(TimeoutKind::Write)));
                }
                if let Some(e) = self.check_write_stall(cx) {
                    self.finished = true;
                    return Poll::Ready(Err(e));
                }
                Poll::Pending
            }
        }
    }

    fn close_transport_if_done(&mut self, cx: &mut Context<'_>) {
        if self.core.role() == Role::Server && self.core.should_close_transport() && !self.shut_down {
            let _ = Pin::new(&mut self.io).poll_shutdown(cx);
            self.shut_down = true;
        }
    }

    /// Writes out everything queued.
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
        if self.core.pending_output_len() >= self.opts.write_buffer_size {
            self.flush().await?;
        }
        Ok(())
    }

    /// Queues a message synchronously (what [`feed`](Self::feed) does before any write).
    pub fn queue(&mut self, msg: Message) -> Result<(), Error> {
        if self.finished {
            return Err(Error::AlreadyClosed);
        }
        self.before_send();
        self.core.send(msg)?;
        if let Some(idle) = &mut self.idle {
            idle.last_message = Instant::now();
        }
        Ok(())
    }

    /// Bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.core.pending_output_len()
    }

    pub(crate) fn write_buffer_size(&self) -> usize {
        self.opts.write_buffer_size
    }

    pub(crate) fn queue_close(&mut self, frame: CloseFrame) -> Result<(), Error> {
        self.core.send_close(Some(frame))?;
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
    /// size is not known in advance (gorilla's `NextWriter`).
    pub async fn send_fragment(
        &mut self,
        kind: ferrosocket_proto::MessageKind,
        data: impl Into<Bytes>,
        fin: bool,
    ) -> Result<(), Error> {
        if self.finished {
            return Err(Error::AlreadyClosed);
        }
        self.before_send();
        self.core.send_fragment(kind, data.into(), fin)?;
        self.flush().await
    }

    /// Sends a frame prepared once for many connections.
    pub async fn send_prepared(&mut self, msg: &crate::PreparedMessage) -> Result<(), Error> {
        self.feed_prepared(msg)?;
        self.flush().await
    }

    /// Queues a prepared frame without writing it.
    pub fn feed_prepared(&mut self, msg: &crate::PreparedMessage) -> Result<(), Error> {
        if self.finished {
            return Err(Error::AlreadyClosed);
        }
        self.before_send();
        msg.queue_on(&mut self.core)?;
        Ok(())
    }

    /// Sends a ping (payload at most 125 bytes). Use it to check liveness: if the peer is gone
    /// the write fails with a [`CloseError`] of code 1006 (see [`is_unexpected_close_error`]).
    ///
    /// [`is_unexpected_close_error`]: crate::is_unexpected_close_error
    pub async fn ping(&mut self, payload: impl AsRef<[u8]>) -> Result<(), Error> {
        if self.finished {
            return Err(Error::AlreadyClosed);
        }
        self.core.send_ping(payload.as_ref())?;
        self.flush().await
    }

    /// Sends an unsolicited pong (a one-way heartbeat).
    pub async fn pong(&mut self, payload: impl AsRef<[u8]>) -> Result<(), Error> {
        if self.finished {
            return Err(Error::AlreadyClosed);
        }
        self.core.send_pong(payload.as_ref())?;
        self.flush().await
    }

    /// Sends a close frame and writes it out, without waiting for the peer's reply: keep
    /// calling [`recv`](Self::recv) to receive the peer's close (it returns [`Error::Closed`]).
    pub async fn send_close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        if self.finished {
            return Err(Error::AlreadyClosed);
        }
        self.core.send_close(frame)?;
        self.flush().await
    }

    /// Closes the session: sends `frame`, waits (up to the close timeout, default 10 s) for the
    /// peer's close frame while discarding messages that still arrive, then closes the
    /// transport. Returns how the peer closed.
    pub async fn close(&mut self, frame: Option<CloseFrame>) -> Result<CloseError, Error> {
        if !self.finished && self.core.close_sent().is_none() {
            self.core.send_close(frame)?;
        }
        let timeout = self.opts.close_timeout;
        let wait = async {
            loop {
                match self.recv().await {
                    Ok(_) => continue,
                    Err(Error::Closed(c)) => return Ok(c),
                    Err(e) => return Err(e),
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(r) => r,
            Err(_) => {
                let _ = poll_fn(|cx| Pin::new(&mut self.io).poll_shutdown(cx)).await;
                self.finished = true;
                Err(Error::Timeout(TimeoutKind::Close))
            }
        }
    }

    // ---- handlers, deadlines, limits -----------------------------------------------------

    /// Runs `handler` for every ping; its answer decides whether a pong is sent (gorilla's
    /// `SetPingHandler`). The default handler answers every ping.
    pub fn set_ping_handler(&mut self, handler: impl FnMut(&[u8]) -> PingAction + Send + 'static) {
        self.handlers.set_ping(&mut self.core, Box::new(handler));
    }

    /// Runs `handler` for every pong (gorilla's `SetPongHandler`); e.g. to extend a deadline.
    pub fn set_pong_handler(&mut self, handler: impl FnMut(&[u8]) + Send + 'static) {
        self.handlers.set_pong(Box::new(handler));
    }

    /// Runs `handler` when the peer's close frame arrives; its answer is the close frame sent
    /// back (gorilla's `SetCloseHandler`). `recv` then returns [`Error::Closed`].
    pub fn set_close_handler(
        &mut self,
        handler: impl FnMut(Option<&CloseFrame>) -> CloseAction + Send + 'static,
    ) {
        self.handlers.set_close(&mut self.core, Box::new(handler));
    }

    /// After `deadline`, a pending [`recv`](Self::recv) returns [`TimeoutKind::Read`]; `None`
    /// removes the deadline. Unlike gorilla, the connection stays usable after a timeout.
    pub fn set_read_deadline(&mut self, deadline: Option<Instant>) {
        self.read_deadline_at = deadline;
        self.read_deadline = deadline.map(|d| Box::pin(tokio::time::sleep_until(d)));
    }

    /// After `deadline`, a pending write returns [`TimeoutKind::Write`]; `None` removes it.
    pub fn set_write_deadline(&mut self, deadline: Option<Instant>) {
        self.write_deadline = deadline.map(|d| Box::pin(tokio::time::sleep_until(d)));
    }

    /// Compress the messages sent from now on, when permessage-deflate was negotiated
    /// (gorilla's `EnableWriteCompression`). Default: on.
    pub fn set_write_compression(&mut self, on: bool) {
        self.core.set_write_compression(on);
    }

    pub(crate) fn set_slot(&mut self, slot: crate::upgrader::ConnSlot) {
        self.slot = Some(slot);
    }

    /// Sends a ping whenever the peer has been silent for `interval`, and ends the session
    /// with a 1006 [`CloseError`] (see [`is_unexpected_close_error`]) when nothing at all
    /// arrives within `timeout` of that ping: dead-peer detection. `None` turns it off (the
    /// default in the library). It runs while a [`recv`](Self::recv) is waiting.
    ///
    /// [`is_unexpected_close_error`]: crate::is_unexpected_close_error
    pub fn set_keepalive(&mut self, keepalive: Option<(Duration, Duration)>) {
        self.keepalive = keepalive.map(|(interval, timeout)| {
            let now = Instant::now();
            Box::new(Keepalive {
                interval,
                timeout,
                timer: Box::pin(tokio::time::sleep_until(now + interval)),
                last_rx: now,
                ping_sent: None,
            })
        });
    }

    /// Closes the session with 1001 ("idle timeout") when no message went either way for
    /// `after`; `recv` then returns [`TimeoutKind::Idle`]. `None` (default) turns it off.
    pub fn set_idle_timeout(&mut self, after: Option<Duration>) {
        self.idle = after.map(|after| {
            let now = Instant::now();
            Box::new(Idle {
                after,
                timer: Box::pin(tokio::time::sleep_until(now + after)),
                last_message: now,
            })
        });
    }

    /// Ties this connection to a server-wide [`Shutdown`](crate::Shutdown): when it is
    /// triggered, the connection sends close 1001 (going away) and finishes the close
    /// handshake inside [`recv`](Self::recv).
    pub fn set_shutdown(&mut self, token: crate::ShutdownToken) {
        let signal = token.triggered_owned();
        self.shutdown = Some((token, signal));
    }

    /// What to do when the peer stops reading (default: close with 1008 after 60 s).
    pub fn set_slow_peer_policy(&mut self, policy: SlowPeerPolicy) {
        Arc::make_mut(&mut self.opts).slow_peer = policy;
    }

    /// The largest message accepted from now on; bigger ones close the connection with 1009
    /// (gorilla's `SetReadLimit`). `None` means unlimited.
    pub fn set_read_limit(&mut self, bytes: Option<usize>) {
        self.core.set_max_message_size(bytes);
    }

    // ---- information ---------------------------------------------------------------------

    /// The subprotocol both ends agreed on, if any.
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// Client or server.
    pub fn role(&self) -> Role {
        self.core.role()
    }

    /// Where the close handshake stands.
    pub fn state(&self) -> State {
        self.core.state()
    }

    /// The protocol core, for inspection.
    pub fn core(&self) -> &Connection {
        &self.core
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

/// A `Conn` taken apart for [`Conn::split`].
pub(crate) struct SplitParts<S> {
    pub(crate) io: S,
    pub(crate) core: Connection,
    pub(crate) opts: Arc<IoOptions>,
    pub(crate) handlers: Handlers,
    pub(crate) read_deadline: Option<Instant>,
    pub(crate) slot: Option<crate::upgrader::ConnSlot>,
}

impl<S> Conn<S> {
    pub(crate) fn into_split_parts(self) -> SplitParts<S> {
        SplitParts {
            io: self.io,
            core: self.core,
            opts: self.opts,
            handlers: self.handlers,
            read_deadline: self.read_deadline_at,
            slot: self.slot,
        }
    }
}

impl Conn<tokio::net::TcpStream> {
    /// The peer's address.
    pub fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.io.peer_addr()
    }

    /// Our local address.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.io.local_addr()
    }
}
