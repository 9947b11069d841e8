//! The I/O engine: the one receive loop, the one writer and the one way a session ends, shared
//! by [`Conn`](crate::Conn) and the split halves. It owns the protocol core and every piece of
//! per-connection state except the transport, which callers lend to each poll: `Conn` owns it,
//! the halves keep it behind a lock with the engine.
//!
//! Every poll takes two wakers: `own` (the polling task: read readiness and its sleep) and
//! `write` (write readiness; the split halves pass one that wakes every task waiting to write).

use super::handlers::Handlers;
use super::options::ConnOptions;
use super::spare;
use crate::error::{CloseError, Error, TimeoutKind};
use crate::metrics::ConnMetrics;
use crate::shutdown::ShutdownToken;
use bytes::{Bytes, BytesMut};
use ferrosocket_proto::{
    Chunk, CloseCode, CloseFrame, Connection, Event, Message, MessageKind, ReadError, ReadMode, Role, State,
    Timer,
};
use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// After we sent a close frame that the peer has not answered, at most this many bytes are
/// read and discarded before the transport is dropped (a lingering close: dropping a socket
/// with unread input makes the kernel send RST, which can destroy our close frame before the
/// peer reads it). Reading into a stack buffer, so memory stays flat; time is bounded by the
/// close timeout.
const LINGER_MAX_BYTES: usize = 64 << 20;

/// Slices gathered per vectored write. Output is the write buffer plus large payloads queued
/// as chunks of their own, so a handful covers every frame of a burst; whatever is left goes
/// with the next write.
const MAX_SLICES: usize = 16;

/// Where the session stands, from the engine's side.
enum Phase {
    /// Messages flow (the close handshake may have started).
    Open,
    /// The transport refused our output, but what the peer sent before may still be readable:
    /// over HTTP/2 a reset stream fails every write at once while the peer's last frames (its
    /// close frame, say) wait unread. Read and deliver those without writing; end with this
    /// error when nothing more arrives.
    Draining(Box<Error>),
    /// The session is over for the application: write out what is owed, close the transport
    /// (lingering when the peer may still be sending), then report this error (boxed: every
    /// connection carries the phase, few ever end with it).
    Ending(Box<Error>),
    /// Reported; every later call returns [`Error::AlreadyClosed`].
    Finished,
}

/// A data event: a whole message or a piece of a streamed one.
enum Data {
    Message(Message),
    Chunk(Chunk),
}

/// What a wait for input decided.
enum Wait {
    /// Stay pending: every source of progress has registered a waker.
    Pending,
    /// Something changed (input, a timer queued a frame): run the loop again.
    Again,
    /// End the session with this error.
    End(Error),
    /// Report this error without ending the session (the read deadline).
    Report(Error),
}

/// One timer of the tokio clock, armed for a deadline that may move.
#[derive(Default)]
pub(crate) struct Alarm(Option<Pin<Box<Sleep>>>);

impl Alarm {
    /// Whether the alarm is set for `deadline` (or earlier) and has not gone off: a poll with
    /// the same waker would change nothing.
    fn armed_for(&self, deadline: Option<Instant>) -> bool {
        match (&self.0, deadline) {
            (Some(sleep), Some(d)) => !sleep.is_elapsed() && sleep.deadline() <= d,
            _ => false,
        }
    }

    /// Arms the alarm for `deadline` (never later than it: an earlier alarm is kept, fires
    /// early, and the caller re-evaluates) and polls it. `true`: the deadline passed.
    fn poll_at(&mut self, deadline: Option<Instant>, waker: &Waker) -> bool {
        let Some(deadline) = deadline else {
            return false;
        };
        match &mut self.0 {
            Some(sleep) if !sleep.is_elapsed() && sleep.deadline() <= deadline => {}
            Some(sleep) => sleep.as_mut().reset(deadline),
            None => self.0 = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
        self.0
            .as_mut()
            .is_some_and(|s| s.as_mut().poll(&mut Context::from_waker(waker)).is_ready())
    }
}

/// The tokio clock as the core's `std` instant (virtual under `tokio::time::pause`).
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// The earlier of two optional deadlines.
fn earliest(a: Option<std::time::Instant>, b: Option<Instant>) -> Option<Instant> {
    let a = a.map(Instant::from_std);
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The protocol core and the per-connection state around it.
pub(crate) struct Engine {
    pub(crate) core: Connection,
    /// Shared by every connection of an `Upgrader`/`Dialer` (copied on write).
    pub(crate) opts: Arc<ConnOptions>,
    pub(crate) subprotocol: Option<String>,
    pub(crate) handlers: Handlers,
    pub(crate) read_deadline: Option<Instant>,
    pub(crate) write_deadline: Option<Instant>,
    /// The reading side's alarm: the core's next timer or the read deadline.
    read_alarm: Alarm,
    /// The writing side's alarm: the write deadline and the slow-peer timer while a flush waits.
    write_alarm: Alarm,
    /// The server-wide switch, and whether its close is still to be sent.
    shutdown: Option<(ShutdownToken, bool)>,
    /// The upgrader's connection place this connection holds, if it counts connections.
    pub(crate) slot: Option<crate::slot::ConnSlot>,
    phase: Phase,
    /// The transport's read side ended.
    read_eof: bool,
    /// We shut the transport's write side down.
    write_shut: bool,
    /// Bytes discarded while lingering.
    lingered: usize,
    /// The task waiting in a receive, and the deadline its alarm is armed for: a writer in
    /// another task (split halves) wakes it when it starts an earlier timer or ends the session.
    reader: Option<Waker>,
    reader_alarm_at: Option<Instant>,
    /// The read alarm was last polled with the waker in `reader`.
    read_alarm_synced: bool,
    /// The waker last registered with the shutdown switch.
    shutdown_waker: Option<Waker>,
    /// Counts for the `metrics` feature (zero-sized without it).
    metrics: ConnMetrics,
}

impl Engine {
    pub(crate) fn new(mut core: Connection, opts: Arc<ConnOptions>, subprotocol: Option<String>) -> Self {
        opts.apply_timers(&mut core);
        let metrics = ConnMetrics::new(&opts.metrics, &core);
        Self {
            core,
            opts,
            subprotocol,
            handlers: Handlers::default(),
            read_deadline: None,
            write_deadline: None,
            read_alarm: Alarm::default(),
            write_alarm: Alarm::default(),
            shutdown: None,
            slot: None,
            phase: Phase::Open,
            read_eof: false,
            write_shut: false,
            lingered: 0,
            reader: None,
            reader_alarm_at: None,
            read_alarm_synced: false,
            shutdown_waker: None,
            metrics,
        }
    }

    pub(crate) fn set_shutdown(&mut self, token: ShutdownToken) {
        self.shutdown = Some((token, true));
    }

    /// Whether the session was reported over.
    pub(crate) fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Finished)
    }

    pub(crate) fn check_usable(&self) -> Result<(), Error> {
        if self.is_finished() {
            Err(Error::AlreadyClosed)
        } else {
            Ok(())
        }
    }

    // ---- reading -------------------------------------------------------------------------

    /// The next whole message. The rest of a streamed message the application stopped reading
    /// is skipped first.
    pub(crate) fn poll_recv<S>(
        &mut self,
        io: &mut S,
        own: &Waker,
        write: &Waker,
    ) -> Poll<Result<Message, Error>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.core.set_read_mode(ReadMode::Whole);
        loop {
            match ready!(self.poll_data(io, own, write))? {
                Data::Message(m) => return Poll::Ready(Ok(m)),
                Data::Chunk(_) => continue,
            }
        }
    }

    /// The next piece of a streamed message (a message that started whole, before streaming
    /// was asked for, comes as one chunk).
    pub(crate) fn poll_chunk<S>(
        &mut self,
        io: &mut S,
        own: &Waker,
        write: &Waker,
    ) -> Poll<Result<Chunk, Error>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.core.set_read_mode(ReadMode::Streamed);
        Poll::Ready(Ok(match ready!(self.poll_data(io, own, write))? {
            Data::Message(m) => Chunk {
                kind: m.kind(),
                data: m.into_bytes(),
                first: true,
                last: true,
            },
            Data::Chunk(c) => c,
        }))
    }

    /// Queues one fragment of a message being sent in pieces.
    pub(crate) fn queue_fragment(&mut self, kind: MessageKind, data: Bytes, fin: bool) -> Result<(), Error> {
        self.check_usable()?;
        self.before_send();
        let len = data.len();
        self.core.send_fragment(kind, data, fin)?;
        self.metrics.sent(&self.core, len, fin);
        Ok(())
    }

    /// The receive loop: events until a message or a chunk, waiting for input in between.
    fn poll_data<S>(&mut self, io: &mut S, own: &Waker, write: &Waker) -> Poll<Result<Data, Error>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        loop {
            match self.phase {
                Phase::Finished => return Poll::Ready(Err(Error::AlreadyClosed)),
                Phase::Ending(_) => return self.poll_finish(io, own, write),
                Phase::Open | Phase::Draining(_) => {}
            }
            match self.core.poll_event() {
                Ok(Some(Event::Message(m))) => {
                    self.metrics.received(m.len(), true);
                    return Poll::Ready(Ok(Data::Message(m)));
                }
                Ok(Some(Event::Chunk(c))) => {
                    self.metrics.received(c.data.len(), c.last);
                    return Poll::Ready(Ok(Data::Chunk(c)));
                }
                Ok(Some(control)) => {
                    self.metrics.control(&control);
                    if let Some(closed) = self.handlers.on_control(&mut self.core, control) {
                        self.phase = Phase::Ending(Box::new(Error::Closed(closed)));
                    } else if self.core.wants_write() && matches!(self.phase, Phase::Open) {
                        // Answer a ping now, even if the application does not call `recv` again
                        // soon (pings are rare: this costs the echo path nothing). What does not
                        // fit goes with the next write.
                        if let Poll::Ready(Err(e)) = self.poll_write_some(io, write) {
                            self.phase = Phase::Draining(Box::new(e));
                        }
                    }
                }
                Ok(None) => match self.poll_wait(io, own, write) {
                    Wait::Pending => return Poll::Pending,
                    Wait::Again => {}
                    Wait::End(e) => self.phase = Phase::Ending(Box::new(e)),
                    Wait::Report(e) => return Poll::Ready(Err(e)),
                },
                Err(e) => self.phase = Phase::Ending(Box::new(self.read_error(e))),
            }
        }
    }

    /// Nothing to deliver: write what is queued, read, or arm the timers.
    fn poll_wait<S>(&mut self, io: &mut S, own: &Waker, write: &Waker) -> Wait
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if matches!(self.phase, Phase::Draining(_)) {
            return self.poll_drain_input(io, own);
        }
        match self.poll_write_some(io, write) {
            Poll::Ready(Err(e)) => {
                self.phase = Phase::Draining(Box::new(e));
                return self.poll_drain_input(io, own);
            }
            Poll::Ready(Ok(())) => {}
            Poll::Pending => self.core.note_output_blocked(now()),
        }
        // The peer does not read what we send: stop reading until it does, so that memory
        // stays bounded. The write above registered the waker.
        if self.core.pending_output_len() <= self.opts.max_write_buffer_size {
            match self.poll_read_more(io, own) {
                Poll::Ready(Ok(())) => return Wait::Again,
                Poll::Ready(Err(e)) => return Wait::End(e),
                Poll::Pending => self.release_idle_buffers(),
            }
        }
        // Register this task with the switch when its waker changed (the switch keeps it),
        // then check the flag: a trigger between the two is seen here or wakes the task.
        if let Some((token, pending)) = &mut self.shutdown
            && *pending
        {
            if !self.shutdown_waker.as_ref().is_some_and(|w| w.will_wake(own)) {
                token.register(own);
                self.shutdown_waker = Some(own.clone());
            }
            if token.is_triggered() {
                *pending = false;
                let frame = CloseFrame::new(CloseCode::GOING_AWAY, "server shutting down");
                // Fails only when a close was already sent: the handshake is under way.
                let _ = self.core.send_close(Some(frame));
                return Wait::Again;
            }
        }
        self.poll_timers(own, self.read_deadline)
    }

    /// After a failed write: input that is already there goes to the core; once none is, the
    /// phase becomes `Ending` with the write's error. Either way the receive loop runs again.
    fn poll_drain_input<S>(&mut self, io: &mut S, own: &Waker) -> Wait
    where
        S: AsyncRead + Unpin,
    {
        if !self.read_eof {
            let read = self.poll_read_more(io, own);
            // Bytes arrived (not the end of input): the core has events to give.
            if matches!(read, Poll::Ready(Ok(()))) && !self.read_eof {
                return Wait::Again;
            }
        }
        if let Phase::Draining(e) = std::mem::replace(&mut self.phase, Phase::Finished) {
            self.phase = Phase::Ending(e);
        }
        Wait::Again
    }

    /// Lets the core's timers act, then arms the reading side's alarm for the next one.
    fn poll_timers(&mut self, own: &Waker, deadline: Option<Instant>) -> Wait {
        let mut now = now();
        loop {
            let queued = self.core.pending_output_len();
            self.core.handle_timeout(now);
            if self.core.timed_out().is_some_and(|t| t != Timer::Idle)
                || self.core.pending_output_len() != queued
            {
                return Wait::Again;
            }
            if let Some(d) = deadline
                && Instant::from_std(now) >= d
            {
                return Wait::Report(Error::Timeout(TimeoutKind::Read));
            }
            let next = earliest(self.core.poll_timeout(), deadline);
            // Already armed for this deadline with this task's waker: nothing to register.
            if self.read_alarm_synced
                && self.read_alarm.armed_for(next)
                && self.reader.as_ref().is_some_and(|w| w.will_wake(own))
            {
                self.reader_alarm_at = next;
                return Wait::Pending;
            }
            if !self.read_alarm.poll_at(next, own) {
                if !self.reader.as_ref().is_some_and(|w| w.will_wake(own)) {
                    self.reader = Some(own.clone());
                }
                self.reader_alarm_at = next;
                // Polled just now with `own`, which is also `reader`.
                self.read_alarm_synced = next.is_some();
                return Wait::Pending;
            }
            // The alarm says its deadline passed on the tokio clock: act at least at it.
            now = now.max(next.map_or(now, Instant::into_std));
        }
    }

    /// Reads once from the transport into the core.
    fn poll_read_more<S>(&mut self, io: &mut S, own: &Waker) -> Poll<Result<(), Error>>
    where
        S: AsyncRead + Unpin,
    {
        if self.read_eof {
            self.core.receive_eof();
            return Poll::Ready(Ok(()));
        }
        if let Some(buf) = spare::take_read()
            && let Some(back) = self.core.give_read_buffer(buf)
        {
            spare::put_read(back);
        }
        let buf = self.core.read_buffer();
        let mut cx = Context::from_waker(own);
        let n = ready!(tokio_util::io::poll_read_buf(Pin::new(io), &mut cx, buf))?;
        self.metrics.wire_in(n);
        if self.core.config().keepalive.is_some() {
            self.metrics.before_input(&self.core);
            self.core.note_input(now());
        }
        if n == 0 {
            self.read_eof = true;
            self.core.receive_eof();
        }
        Poll::Ready(Ok(()))
    }

    /// The error a session ends with, from the core's reason.
    fn read_error(&self, e: ReadError) -> Error {
        match e {
            ReadError::Protocol(e) => Error::Protocol(e),
            ReadError::AbnormalClosure => {
                Error::Closed(CloseError::abnormal("connection ended without a close frame"))
            }
            ReadError::Closed => match self.core.close_received() {
                Some(f) => Error::Closed(CloseError::from_frame(f.as_ref())),
                None => Error::AlreadyClosed,
            },
            ReadError::TimedOut(Timer::Keepalive) => {
                let timeout = self
                    .core
                    .config()
                    .keepalive
                    .map(|k| k.timeout)
                    .unwrap_or_default();
                Error::Closed(CloseError::abnormal(format!(
                    "keepalive: nothing received within {timeout:?} of a ping"
                )))
            }
            ReadError::TimedOut(Timer::Idle) => Error::Timeout(TimeoutKind::Idle),
            ReadError::TimedOut(Timer::SlowPeer) => Error::Timeout(TimeoutKind::Write),
            ReadError::TimedOut(_) => Error::Timeout(TimeoutKind::Close),
            // The OS random number generator failed: a client can mask nothing more.
            ReadError::Randomness(e) => Error::Io(std::io::Error::other(e)),
            _ => Error::AlreadyClosed,
        }
    }

    // ---- ending --------------------------------------------------------------------------

    /// Ends the session: write out the close frame (if any), close the transport (lingering
    /// while the peer may still be sending), report.
    fn poll_finish<S, T>(&mut self, io: &mut S, own: &Waker, write: &Waker) -> Poll<Result<T, Error>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let peer_gone = match &self.phase {
            Phase::Ending(e) => match &**e {
                Error::Closed(c) => c.code == CloseCode::ABNORMAL_CLOSURE,
                Error::Io(_) | Error::Timeout(TimeoutKind::Close | TimeoutKind::Write) => true,
                _ => false,
            },
            _ => false,
        };
        if !peer_gone {
            // `Err`: the transport failed or a timer ran out; drop it as it is.
            let _ = ready!(self.poll_finish_io(io, own, write));
        }
        if !self.write_shut {
            let _ = Pin::new(&mut *io).poll_shutdown(&mut Context::from_waker(write));
            self.write_shut = true;
        }
        let Phase::Ending(err) = std::mem::replace(&mut self.phase, Phase::Finished) else {
            return Poll::Ready(Err(Error::AlreadyClosed));
        };
        // Tell a server-wide shutdown that this connection is done.
        self.shutdown = None;
        Poll::Ready(Err(*err))
    }

    /// The graceful part of ending: write out, then close the transport the way RFC 6455
    /// §7.1.1 asks (the server first; a client waits for the server's close), lingering while
    /// the peer has not answered our close frame. `Err`: give up and drop the transport.
    fn poll_finish_io<S>(&mut self, io: &mut S, own: &Waker, write: &Waker) -> Poll<Result<(), ()>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        loop {
            match self.poll_write_some(io, write) {
                Poll::Ready(Ok(())) => break,
                Poll::Ready(Err(_)) => return Poll::Ready(Err(())),
                Poll::Pending => {
                    self.core.note_output_blocked(now());
                    ready!(self.poll_finish_timers(own))?;
                }
            }
        }
        let clean = self.core.state() == State::Closed && self.core.close_received().is_some();
        let answered = self.core.close_received().is_some() || self.core.close_sent().is_none();
        if self.core.role() == Role::Client && clean {
            // The server closes the TCP connection first; wait for that.
            ready!(self.poll_drain(io, own))?;
        }
        if !self.write_shut {
            let _ = ready!(Pin::new(&mut *io).poll_shutdown(&mut Context::from_waker(write)));
            self.write_shut = true;
        }
        if !answered {
            // Our close frame is unanswered: the peer may still be sending. Read and discard
            // until it closes, so that the kernel does not answer its data with a reset that
            // destroys our close frame before the peer reads it.
            ready!(self.poll_drain(io, own))?;
        }
        Poll::Ready(Ok(()))
    }

    /// Reads and discards until the transport ends, the peer answers our close (when the core
    /// can still tell: it did not fail), the close timer runs out or the linger budget is
    /// spent.
    fn poll_drain<S>(&mut self, io: &mut S, own: &Waker) -> Poll<Result<(), ()>>
    where
        S: AsyncRead + Unpin,
    {
        let mut scratch = [0u8; 4096];
        loop {
            if self.read_eof || self.lingered > LINGER_MAX_BYTES {
                return Poll::Ready(Ok(()));
            }
            if self.core.state() == State::Closing {
                // The core still reads (e.g. after the idle timeout's close): its close frame
                // ends the wait; messages still in flight are dropped.
                match self.core.poll_event() {
                    Ok(Some(close @ Event::Close(_))) => {
                        self.metrics.control(&close);
                        return Poll::Ready(Ok(()));
                    }
                    Err(_) => return Poll::Ready(Ok(())),
                    Ok(Some(_)) => continue,
                    Ok(None) => {}
                }
                let before = self.core.buffered_input();
                match self.poll_read_more(io, own) {
                    Poll::Ready(Ok(())) => {
                        self.lingered += self.core.buffered_input().saturating_sub(before);
                        continue;
                    }
                    Poll::Ready(Err(_)) => return Poll::Ready(Err(())),
                    Poll::Pending => {
                        ready!(self.poll_finish_timers(own))?;
                        continue;
                    }
                }
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut *io).poll_read(&mut Context::from_waker(own), &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => self.read_eof = true,
                Poll::Ready(Ok(())) => {
                    self.lingered += buf.filled().len();
                    self.metrics.wire_in(buf.filled().len());
                }
                Poll::Ready(Err(_)) => return Poll::Ready(Err(())),
                Poll::Pending => ready!(self.poll_finish_timers(own))?,
            }
        }
    }

    /// While ending: `Err` once the close timer (or the slow-peer timer) ran out, `Ready(Ok)`
    /// when the alarm fired early (try again), `Pending` otherwise.
    fn poll_finish_timers(&mut self, own: &Waker) -> Poll<Result<(), ()>> {
        let now = now();
        self.core.handle_timeout(now);
        if matches!(
            self.core.timed_out(),
            Some(Timer::CloseHandshake | Timer::SlowPeer)
        ) {
            return Poll::Ready(Err(()));
        }
        match self.core.poll_timeout() {
            None => Poll::Pending,
            Some(next) if self.read_alarm.poll_at(Some(Instant::from_std(next)), own) => {
                self.core.handle_timeout(now.max(next));
                Poll::Ready(Ok(()))
            }
            Some(_) => Poll::Pending,
        }
    }

    // ---- writing -------------------------------------------------------------------------

    /// Nothing to read now: give the buffers back so an idle connection holds none.
    fn release_idle_buffers(&mut self) {
        let idle = self.core.release_idle_buffers();
        if let Some(buf) = idle.read {
            spare::put_read(buf);
        }
        if let Some(buf) = idle.write {
            self.return_write_buffer(buf);
        }
    }

    /// Gives a write buffer back to the upgrader's pool, or else to the thread's spare.
    fn return_write_buffer(&self, buf: BytesMut) {
        match &self.opts.pool {
            Some(pool) => pool.put(buf),
            None => spare::put_write(buf),
        }
    }

    /// Lends the connection a write buffer (the pool's, or the thread's spare) when it holds
    /// none and has nothing queued (before queueing).
    pub(crate) fn before_send(&mut self) {
        if self.core.wants_write() {
            return;
        }
        let lent = match &self.opts.pool {
            Some(pool) => pool.get(),
            None => spare::take_write(),
        };
        if let Some(buf) = lent
            && let Some(back) = self.core.give_write_buffer(buf)
        {
            self.return_write_buffer(back);
        }
    }

    /// Wakes the task waiting in a receive (if another task is it) to re-evaluate its timers
    /// or wind the session down.
    pub(crate) fn wake_reader(&mut self) {
        if let Some(w) = self.reader.take() {
            w.wake();
        }
    }

    /// Queues a close frame (the close-handshake timer starts: the reader re-arms).
    pub(crate) fn send_close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        self.check_usable()?;
        self.core.send_close(frame)?;
        self.metrics.queued(&self.core);
        self.wake_reader();
        Ok(())
    }

    /// Queues a message without writing it.
    pub(crate) fn queue(&mut self, msg: Message) -> Result<(), Error> {
        self.check_usable()?;
        self.before_send();
        let len = msg.len();
        self.core.send(msg)?;
        self.metrics.sent(&self.core, len, true);
        Ok(())
    }

    /// Queues a message framed ahead of time, without writing it.
    pub(crate) fn queue_prepared(&mut self, msg: &crate::PreparedMessage) -> Result<(), Error> {
        self.check_usable()?;
        self.before_send();
        msg.queue_on(&mut self.core)?;
        self.metrics.sent(&self.core, msg.len(), true);
        Ok(())
    }

    /// Queues a ping (its round trip is measured when metrics are on).
    pub(crate) fn ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.check_usable()?;
        self.core.send_ping(payload)?;
        self.metrics.ping_sent(&self.core, payload);
        Ok(())
    }

    /// Writes as much queued output as the transport takes now; `Ready(Ok)` when all is out.
    pub(crate) fn poll_write_some<S>(&mut self, io: &mut S, write: &Waker) -> Poll<Result<(), Error>>
    where
        S: AsyncWrite + Unpin,
    {
        let polled = self.poll_write_out(io, write);
        self.metrics.after_write(&self.core);
        polled
    }

    fn poll_write_out<S>(&mut self, io: &mut S, write: &Waker) -> Poll<Result<(), Error>>
    where
        S: AsyncWrite + Unpin,
    {
        let mut cx = Context::from_waker(write);
        while self.core.wants_write() {
            let n = if io.is_write_vectored() {
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let count = self.core.pending_output(&mut slices);
                ready!(Pin::new(&mut *io).poll_write_vectored(&mut cx, &slices[..count]))?
            } else {
                ready!(Pin::new(&mut *io).poll_write(&mut cx, self.core.pending_output_first()))?
            };
            if n == 0 {
                return Poll::Ready(Err(Error::from(std::io::Error::from(
                    std::io::ErrorKind::WriteZero,
                ))));
            }
            self.core.advance_output(n);
            self.metrics.wire_out(n);
        }
        ready!(Pin::new(&mut *io).poll_flush(&mut cx))?;
        // The write buffer stays for the next reply; it goes back to the pool or the thread's
        // spare when the connection next waits for input (`release_idle_buffers`).
        Poll::Ready(Ok(()))
    }

    /// Writes out everything queued, within the write deadline and the slow-peer policy.
    pub(crate) fn poll_flush<S>(&mut self, io: &mut S, own: &Waker, write: &Waker) -> Poll<Result<(), Error>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.check_usable()?;
        let polled = self.poll_flush_inner(io, own, write);
        let Poll::Ready(Err(e)) = polled else {
            return polled;
        };
        // The reader (another task, for split halves) must learn the session is over.
        self.wake_reader();
        if self.core.close_sent().is_some()
            && !self.core.wants_write()
            && matches!(e, Error::Closed(_) | Error::Io(_))
            && matches!(self.phase, Phase::Open)
        {
            // Our close frame went to the transport whole, and the transport failed after:
            // over HTTP/2 a peer that read it answers and resets the stream, which a flush
            // still waiting on the stream's send task sees. The close is as sent as a TCP write
            // is; how the session ended (the peer's close, or 1006) is for `recv` to say.
            self.phase = Phase::Draining(Box::new(e));
            return Poll::Ready(Ok(()));
        }
        Poll::Ready(Err(e))
    }

    fn poll_flush_inner<S>(&mut self, io: &mut S, own: &Waker, write: &Waker) -> Poll<Result<(), Error>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        loop {
            if let Poll::Ready(r) = self.poll_write_some(io, write) {
                if r.is_ok()
                    && self.core.role() == Role::Server
                    && self.core.should_close_transport()
                    && !self.write_shut
                {
                    // The session is over and everything is out: the server closes the TCP
                    // connection first (a lingering read, if owed, happens in `recv`).
                    let _ = Pin::new(&mut *io).poll_shutdown(&mut Context::from_waker(write));
                    self.write_shut = true;
                }
                return Poll::Ready(r);
            }
            let now = now();
            self.core.note_output_blocked(now);
            self.core.handle_timeout(now);
            match self.core.timed_out() {
                Some(Timer::SlowPeer) => return Poll::Ready(Err(Error::Timeout(TimeoutKind::Write))),
                Some(Timer::CloseHandshake) => return Poll::Ready(Err(Error::Timeout(TimeoutKind::Close))),
                Some(Timer::Keepalive) => {
                    return Poll::Ready(Err(Error::Closed(CloseError::abnormal(
                        "keepalive: the peer stopped answering",
                    ))));
                }
                _ => {}
            }
            if let Some(d) = self.write_deadline
                && Instant::from_std(now) >= d
            {
                return Poll::Ready(Err(Error::Timeout(TimeoutKind::Write)));
            }
            if let Some(t) = self.core.poll_timeout().map(Instant::from_std)
                && self.reader_alarm_at.is_none_or(|r| t < r)
            {
                // A timer the reader's alarm does not cover (the slow-peer deadline): let it
                // re-arm.
                self.reader_alarm_at = Some(t);
                self.wake_reader();
            }
            let next = earliest(self.core.poll_timeout(), self.write_deadline);
            if !self.write_alarm.poll_at(next, own) {
                return Poll::Pending;
            }
        }
    }
}
