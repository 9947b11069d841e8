//! Reader and writer halves of a [`Conn`], for using it from two tasks.
//!
//! Both halves drive the same [`Engine`] as `Conn`, behind a lock that is never held across an
//! `.await` (every engine call is a non-blocking poll), so they keep every guarantee of a whole
//! connection: keepalive, idle and close timers, deadlines, the slow-peer policy, the shutdown
//! token, the read limit and the handlers.

use crate::conn::engine::Engine;
use crate::conn::{CloseAction, Conn, PingAction, SlowPeerPolicy};
use crate::error::Error;
use bytes::Bytes;
use ferrosocket_proto::{Chunk, CloseFrame, Keepalive, Message, State};
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

/// The transport and the engine, locked together.
struct Inner<S> {
    io: S,
    engine: Engine,
}

/// Every task waiting for the transport to become writable. Both halves write (the reader
/// answers pings and closes), and a transport keeps one waker per direction, so writes are
/// polled with this waker, which wakes them all.
#[derive(Default)]
struct WriteWaiters(Mutex<Vec<Waker>>);

impl WriteWaiters {
    fn register(&self, waker: &Waker) {
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !list.iter().any(|w| w.will_wake(waker)) {
            list.push(waker.clone());
        }
    }
}

impl Wake for WriteWaiters {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let waiting = std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
        for w in waiting {
            w.wake();
        }
    }
}

/// What both halves share.
struct Shared<S> {
    inner: Mutex<Inner<S>>,
    waiters: Arc<WriteWaiters>,
    write_waker: Waker,
}

impl<S> Shared<S> {
    fn lock(&self) -> MutexGuard<'_, Inner<S>> {
        // A panic while holding the lock cannot leave the engine half-updated in a way that
        // matters more than losing the connection, so recover the guard.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with_engine<R>(&self, f: impl FnOnce(&mut Engine) -> R) -> R {
        f(&mut self.lock().engine)
    }
}

impl<S> Shared<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Result<Message, Error>> {
        self.waiters.register(cx.waker());
        let mut inner = self.lock();
        let Inner { io, engine } = &mut *inner;
        engine.poll_recv(io, cx.waker(), &self.write_waker)
    }

    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.waiters.register(cx.waker());
        let mut inner = self.lock();
        let Inner { io, engine } = &mut *inner;
        engine.poll_flush(io, cx.waker(), &self.write_waker)
    }

    async fn flush(&self) -> Result<(), Error> {
        poll_fn(|cx| self.poll_flush(cx)).await
    }
}

/// The reading half of a split [`Conn`]. It also answers pings and the peer's close, runs the
/// handlers and the connection's timers, so keep calling [`recv`](Self::recv).
pub struct ReadHalf<S> {
    shared: Arc<Shared<S>>,
}

/// The writing half of a split [`Conn`]. Cheap to clone: every clone writes to the same
/// connection; frames are queued whole, so messages from several tasks never interleave
/// mid-frame.
pub struct WriteHalf<S> {
    shared: Arc<Shared<S>>,
}

impl<S> Clone for WriteHalf<S> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<S> std::fmt::Debug for ReadHalf<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadHalf").finish_non_exhaustive()
    }
}

impl<S> std::fmt::Debug for WriteHalf<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteHalf").finish_non_exhaustive()
    }
}

/// [`ReadHalf::reunite`] was given halves of two different connections, or a clone of the
/// writer is still alive; both halves are handed back.
pub struct ReuniteError<S>(pub ReadHalf<S>, pub WriteHalf<S>);

impl<S> std::fmt::Debug for ReuniteError<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ReuniteError").finish_non_exhaustive()
    }
}

impl<S> std::fmt::Display for ReuniteError<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cannot reunite: the halves belong to different connections, or another clone of the writer is alive")
    }
}

impl<S> std::error::Error for ReuniteError<S> {}

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Splits the connection into a reader and a writer for two tasks (one reader and one
    /// writer at a time: the types enforce it; the writer half can be cloned).
    ///
    /// Both halves keep every setting of the connection: the reader runs the handlers,
    /// keepalive, the idle and close timers, the shutdown token and the read deadline and
    /// limit, and answers pings even while the writer is busy; the writer applies the write
    /// deadline and the slow-peer policy. [`ReadHalf::reunite`] puts them back together.
    pub fn split(self) -> (ReadHalf<S>, WriteHalf<S>) {
        let waiters = Arc::new(WriteWaiters::default());
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                io: self.io,
                engine: self.engine,
            }),
            write_waker: Waker::from(waiters.clone()),
            waiters,
        });
        (
            ReadHalf {
                shared: shared.clone(),
            },
            WriteHalf { shared },
        )
    }
}

impl<S> ReadHalf<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Receives the next message; see [`Conn::recv`].
    ///
    /// # Cancel safety
    /// Cancel safe: all read state lives in the shared connection.
    pub async fn recv(&mut self) -> Result<Message, Error> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The poll form of [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Message, Error>> {
        self.shared.poll_recv(cx)
    }

    /// The poll form of [`recv_chunk`](Self::recv_chunk).
    pub fn poll_recv_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Result<Chunk, Error>> {
        self.shared.waiters.register(cx.waker());
        let mut inner = self.shared.lock();
        let Inner { io, engine } = &mut *inner;
        engine.poll_chunk(io, cx.waker(), &self.shared.write_waker)
    }

    /// Puts the halves back together into a [`Conn`]. Fails (handing both back) when they
    /// come from different connections or another clone of the writer is alive.
    pub fn reunite(self, writer: WriteHalf<S>) -> Result<Conn<S>, ReuniteError<S>> {
        if !Arc::ptr_eq(&self.shared, &writer.shared) || Arc::strong_count(&self.shared) != 2 {
            return Err(ReuniteError(self, writer));
        }
        drop(writer);
        match Arc::try_unwrap(self.shared) {
            Ok(shared) => {
                let inner = shared.inner.into_inner().unwrap_or_else(|e| e.into_inner());
                Ok(Conn {
                    io: inner.io,
                    engine: inner.engine,
                })
            }
            Err(shared) => Err(ReuniteError(
                ReadHalf {
                    shared: shared.clone(),
                },
                WriteHalf { shared },
            )),
        }
    }

    /// See [`Conn::set_ping_handler`].
    pub fn set_ping_handler(&mut self, handler: impl FnMut(&[u8]) -> PingAction + Send + 'static) {
        self.shared
            .with_engine(|e| e.handlers.set_ping(&mut e.core, Box::new(handler)));
    }

    /// See [`Conn::set_pong_handler`].
    pub fn set_pong_handler(&mut self, handler: impl FnMut(&[u8]) + Send + 'static) {
        self.shared
            .with_engine(|e| e.handlers.set_pong(Box::new(handler)));
    }

    /// See [`Conn::set_close_handler`].
    pub fn set_close_handler(
        &mut self,
        handler: impl FnMut(Option<&CloseFrame>) -> CloseAction + Send + 'static,
    ) {
        self.shared
            .with_engine(|e| e.handlers.set_close(&mut e.core, Box::new(handler)));
    }

    /// See [`Conn::reset_handlers`].
    pub fn reset_handlers(&mut self) {
        self.shared.with_engine(|e| e.handlers.reset(&mut e.core));
    }

    /// See [`Conn::set_read_deadline`].
    pub fn set_read_deadline(&mut self, deadline: Option<Instant>) {
        self.shared.with_engine(|e| e.read_deadline = deadline);
    }

    /// See [`Conn::set_read_limit`].
    pub fn set_read_limit(&mut self, bytes: Option<usize>) {
        self.shared.with_engine(|e| e.core.set_max_message_size(bytes));
    }

    /// See [`Conn::set_keepalive`].
    pub fn set_keepalive(&mut self, keepalive: Option<(Duration, Duration)>) {
        self.shared
            .with_engine(|e| e.core.set_keepalive(keepalive.map(|(i, t)| Keepalive::new(i, t))));
    }

    /// See [`Conn::set_idle_timeout`].
    pub fn set_idle_timeout(&mut self, after: Option<Duration>) {
        self.shared.with_engine(|e| e.core.set_idle_timeout(after));
    }

    /// See [`Conn::set_shutdown`].
    pub fn set_shutdown(&mut self, token: crate::ShutdownToken) {
        self.shared.with_engine(|e| e.set_shutdown(token));
    }

    /// Where the close handshake stands.
    pub fn state(&self) -> State {
        self.shared.with_engine(|e| e.core.state())
    }

    /// The subprotocol both ends agreed on, if any.
    pub fn subprotocol(&self) -> Option<String> {
        self.shared.with_engine(|e| e.subprotocol.clone())
    }
}

impl<S> WriteHalf<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Sends a message and writes it out.
    pub async fn send(&self, msg: impl Into<Message>) -> Result<(), Error> {
        self.queue(msg.into())?;
        self.shared.flush().await
    }

    /// Queues a message; it leaves with the next write (see [`Conn::feed`]).
    pub async fn feed(&self, msg: impl Into<Message>) -> Result<(), Error> {
        let over = self.shared.with_engine(|e| {
            e.queue(msg.into())
                .map(|()| e.core.pending_output_len() >= e.opts.write_buffer_size)
        })?;
        if over {
            self.shared.flush().await?;
        }
        Ok(())
    }

    pub(crate) fn queue_fragment(
        &self,
        kind: ferrosocket_proto::MessageKind,
        data: Bytes,
        fin: bool,
    ) -> Result<(), Error> {
        self.shared.with_engine(|e| e.queue_fragment(kind, data, fin))
    }

    /// Queues a message without writing it (see [`Conn::queue`]).
    pub fn queue(&self, msg: Message) -> Result<(), Error> {
        self.shared.with_engine(|e| e.queue(msg))
    }

    /// Writes out everything queued; see [`Conn::flush`].
    pub async fn flush(&self) -> Result<(), Error> {
        self.shared.flush().await
    }

    /// The poll form of [`flush`](Self::flush).
    pub fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.shared.poll_flush(cx)
    }

    /// Sends one fragment of a message; see [`Conn::send_fragment`].
    pub async fn send_fragment(
        &self,
        kind: ferrosocket_proto::MessageKind,
        data: impl Into<Bytes>,
        fin: bool,
    ) -> Result<(), Error> {
        self.queue_fragment(kind, data.into(), fin)?;
        self.shared.flush().await
    }

    /// Sends a frame prepared once for many connections.
    pub async fn send_prepared(&self, msg: &crate::PreparedMessage) -> Result<(), Error> {
        self.feed_prepared(msg)?;
        self.shared.flush().await
    }

    /// Queues a prepared frame without writing it.
    pub fn feed_prepared(&self, msg: &crate::PreparedMessage) -> Result<(), Error> {
        self.shared.with_engine(|e| e.queue_prepared(msg))
    }

    /// Sends a ping.
    pub async fn ping(&self, payload: impl AsRef<[u8]>) -> Result<(), Error> {
        self.shared.with_engine(|e| e.ping(payload.as_ref()))?;
        self.shared.flush().await
    }

    /// Sends an unsolicited pong.
    pub async fn pong(&self, payload: impl AsRef<[u8]>) -> Result<(), Error> {
        self.shared.with_engine(|e| {
            e.check_usable()?;
            e.core.send_pong(payload.as_ref())?;
            Ok::<_, Error>(())
        })?;
        self.shared.flush().await
    }

    /// Sends a close frame; the reader then receives the peer's close and returns
    /// [`Error::Closed`]. Once the frame went to the transport whole, a transport that fails
    /// after it (a peer that read the close and reset its HTTP/2 stream) fails the reader's
    /// `recv`, not this call, as with [`Conn::send_close`](crate::Conn::send_close).
    pub async fn send_close(&self, frame: Option<CloseFrame>) -> Result<(), Error> {
        self.shared.with_engine(|e| e.send_close(frame))?;
        self.shared.flush().await
    }

    /// Sends text as one message.
    pub async fn send_text(&self, text: impl Into<ferrosocket_proto::Utf8Bytes>) -> Result<(), Error> {
        self.send(Message::Text(text.into())).await
    }

    /// Sends binary data as one message.
    pub async fn send_binary(&self, data: impl Into<Bytes>) -> Result<(), Error> {
        self.send(Message::Binary(data.into())).await
    }

    /// See [`Conn::set_write_deadline`].
    pub fn set_write_deadline(&self, deadline: Option<Instant>) {
        self.shared.with_engine(|e| e.write_deadline = deadline);
    }

    /// See [`Conn::set_write_compression`].
    pub fn set_write_compression(&self, on: bool) {
        self.shared.with_engine(|e| e.core.set_write_compression(on));
    }

    /// See [`Conn::set_compression_level`].
    pub fn set_compression_level(&self, level: u32) {
        self.shared.with_engine(|e| e.core.set_compression_level(level));
    }

    /// See [`Conn::set_slow_peer_policy`].
    pub fn set_slow_peer_policy(&self, policy: SlowPeerPolicy) {
        self.shared.with_engine(|e| e.core.set_slow_peer_policy(policy));
    }

    /// Bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.shared.with_engine(|e| e.core.pending_output_len())
    }

    /// Queues a normal close (1000) unless a close was already sent or the session is over.
    #[cfg(feature = "stream")]
    pub(crate) fn queue_close_if_open(&self) {
        self.shared.with_engine(|e| {
            if e.core.close_sent().is_none() && e.core.state() != State::Closed {
                let frame = CloseFrame::new(ferrosocket_proto::CloseCode::NORMAL_CLOSURE, "");
                let _ = e.send_close(Some(frame));
            }
        });
    }

    pub(crate) fn write_buffer_size(&self) -> usize {
        self.shared.with_engine(|e| e.opts.write_buffer_size)
    }

    /// Where the close handshake stands.
    pub fn state(&self) -> State {
        self.shared.with_engine(|e| e.core.state())
    }
}

macro_rules! half_addrs {
    ($half:ident) => {
        impl<S: crate::SocketAddrs> $half<S> {
            /// The peer's address (see [`Conn::peer_addr`]).
            pub fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
                self.shared.lock().io.peer_addr()
            }

            /// Our local address (see [`Conn::local_addr`]).
            pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
                self.shared.lock().io.local_addr()
            }
        }
    };
}
half_addrs!(ReadHalf);
half_addrs!(WriteHalf);
