//! Reader and writer halves of a [`Conn`], for using it from two tasks.

use crate::conn::{CloseAction, Conn, Handlers, IoOptions, PingAction};
use crate::error::{CloseError, Error, TimeoutKind};
use bytes::{Bytes, BytesMut};
use ferrosocket_proto::{CloseFrame, Connection, Event, Message, ReadError, Role, State};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// What both halves share: the protocol core behind a lock that is never held across an
/// `.await`, and the transport's write half behind an async lock that orders writes.
struct Shared<S> {
    core: Mutex<Connection>,
    writer: tokio::sync::Mutex<tokio::io::WriteHalf<S>>,
    opts: Arc<IoOptions>,
    /// Held until both halves are gone (the upgrader's connection count).
    _slot: Option<crate::upgrader::ConnSlot>,
}

impl<S> Shared<S> {
    fn core(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave the core half-updated in a way that
        // matters more than losing the connection, so recover the guard.
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<S: AsyncWrite> Shared<S> {
    /// Writes out everything queued in the core. Cancel safe: bytes are removed from the core
    /// only after the transport took them.
    async fn flush(&self) -> Result<(), Error> {
        let mut w = self.writer.lock().await;
        let mut chunk = Vec::new();
        loop {
            chunk.clear();
            {
                let core = self.core();
                if !core.wants_write() {
                    break;
                }
                let first = core.pending_output_first();
                chunk.extend_from_slice(&first[..first.len().min(256 << 10)]);
            }
            let n = w.write(&chunk).await?;
            if n == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into());
            }
            self.core().advance_output(n);
        }
        w.flush().await?;
        // The guard must not live across the await below (the future would not be `Send`).
        let close = {
            let core = self.core();
            core.role() == Role::Server && core.should_close_transport()
        };
        if close {
            let _ = w.shutdown().await;
        }
        Ok(())
    }
}

/// The reading half of a split [`Conn`]. It also answers pings and the peer's close, through
/// the shared writer, so keep calling [`recv`](Self::recv).
pub struct ReadHalf<S> {
    shared: Arc<Shared<S>>,
    reader: tokio::io::ReadHalf<S>,
    buf: BytesMut,
    handlers: Handlers,
    read_deadline: Option<Instant>,
    finished: bool,
}

/// The writing half of a split [`Conn`]. Cheap to clone: every clone writes to the same
/// connection, and writes are ordered by an async lock (so control frames and messages from
/// several tasks never interleave mid-frame).
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

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Splits the connection into a reader and a writer for two tasks (gorilla allows one
    /// concurrent reader and one writer; here the types enforce it).
    ///
    /// The reader keeps answering pings and the close handshake. Handlers and the read
    /// deadline move to the reader. The split halves copy outgoing frames once more than
    /// `Conn` does; use `Conn` itself when one task suffices.
    pub fn split(self) -> (ReadHalf<S>, WriteHalf<S>) {
        let parts = self.into_split_parts();
        let (reader, writer) = tokio::io::split(parts.io);
        let shared = Arc::new(Shared {
            core: Mutex::new(parts.core),
            writer: tokio::sync::Mutex::new(writer),
            opts: parts.opts,
            _slot: parts.slot,
        });
        (
            ReadHalf {
                shared: shared.clone(),
                reader,
                buf: BytesMut::new(),
                handlers: parts.handlers,
                read_deadline: parts.read_deadline,
                finished: false,
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
    /// Cancel safe: bytes read are handed to the core before any other await.
    pub async fn recv(&mut self) -> Result<Message, Error> {
        if self.finished {
            return Err(Error::AlreadyClosed);
        }
        let result = self.recv_inner().await;
        if matches!(&result, Err(e) if !matches!(e, Error::Timeout(_))) {
            self.finished = true;
        }
        result
    }

    async fn recv_inner(&mut self) -> Result<Message, Error> {
        loop {
            let event = self.shared.core().poll_event();
            match event {
                Ok(Some(Event::Message(m))) => return Ok(m),
                Ok(Some(control)) => {
                    let is_ping = matches!(control, Event::Ping(_));
                    let closed = self.handlers.on_control(&mut self.shared.core(), control);
                    if let Some(closed) = closed {
                        let _ =
                            tokio::time::timeout(self.shared.opts.close_timeout, self.shared.flush()).await;
                        return Err(Error::Closed(closed));
                    }
                    if is_ping {
                        self.shared.flush().await?;
                    }
                }
                Ok(None) => {
                    if self.shared.core().wants_write() {
                        self.shared.flush().await?;
                    }
                    self.read_more().await?;
                }
                Err(ReadError::Protocol(e)) => {
                    let _ = tokio::time::timeout(self.shared.opts.close_timeout, self.shared.flush()).await;
                    return Err(Error::Protocol(e));
                }
                Err(ReadError::AbnormalClosure) => {
                    return Err(Error::Closed(CloseError::abnormal(
                        "connection ended without a close frame",
                    )));
                }
                Err(_) => return Err(Error::AlreadyClosed),
            }
        }
    }

    async fn read_more(&mut self) -> Result<(), Error> {
        let want = self.shared.core().config().read_buffer_size;
        if self.buf.capacity() - self.buf.len() < want {
            self.buf.reserve(want);
        }
        let read = self.reader.read_buf(&mut self.buf);
        let n = match self.read_deadline {
            Some(d) => tokio::time::timeout_at(d, read)
                .await
                .map_err(|_| Error::Timeout(TimeoutKind::Read))??,
            None => read.await?,
        };
        let mut core = self.shared.core();
        if n == 0 {
            core.receive_eof();
        } else {
            core.receive_owned(self.buf.split());
        }
        Ok(())
    }

    /// See [`Conn::set_ping_handler`].
    pub fn set_ping_handler(&mut self, handler: impl FnMut(&[u8]) -> PingAction + Send + 'static) {
        self.handlers.set_ping(&mut self.shared.core(), Box::new(handler));
    }

    /// See [`Conn::set_pong_handler`].
    pub fn set_pong_handler(&mut self, handler: impl FnMut(&[u8]) + Send + 'static) {
        self.handlers.set_pong(Box::new(handler));
    }

    /// See [`Conn::set_close_handler`].
    pub fn set_close_handler(
        &mut self,
        handler: impl FnMut(Option<&CloseFrame>) -> CloseAction + Send + 'static,
    ) {
        self.handlers
            .set_close(&mut self.shared.core(), Box::new(handler));
    }

    /// See [`Conn::set_read_deadline`].
    pub fn set_read_deadline(&mut self, deadline: Option<Instant>) {
        self.read_deadline = deadline;
    }

    /// See [`Conn::set_read_limit`].
    pub fn set_read_limit(&mut self, bytes: Option<usize>) {
        self.shared.core().set_max_message_size(bytes);
    }
}

impl<S> WriteHalf<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Sends a message and writes it out.
    pub async fn send(&self, msg: impl Into<Message>) -> Result<(), Error> {
        self.shared.core().send(msg.into())?;
        self.shared.flush().await
    }

    /// Queues a message; it leaves with the next write (see [`Conn::feed`]).
    pub async fn feed(&self, msg: impl Into<Message>) -> Result<(), Error> {
        let over = {
            let mut core = self.shared.core();
            core.send(msg.into())?;
            core.pending_output_len() >= self.shared.opts.write_buffer_size
        };
        if over {
            self.shared.flush().await?;
        }
        Ok(())
    }

    /// Writes out everything queued.
    pub async fn flush(&self) -> Result<(), Error> {
        self.shared.flush().await
    }

    /// Sends a frame prepared once for many connections.
    pub async fn send_prepared(&self, msg: &crate::PreparedMessage) -> Result<(), Error> {
        msg.queue_on(&mut self.shared.core())?;
        self.shared.flush().await
    }

    /// Sends a ping.
    pub async fn ping(&self, payload: impl AsRef<[u8]>) -> Result<(), Error> {
        self.shared.core().send_ping(payload.as_ref())?;
        self.shared.flush().await
    }

    /// Sends an unsolicited pong.
    pub async fn pong(&self, payload: impl AsRef<[u8]>) -> Result<(), Error> {
        self.shared.core().send_pong(payload.as_ref())?;
        self.shared.flush().await
    }

    /// Sends a close frame; the reader then receives the peer's close and returns
    /// [`Error::Closed`].
    pub async fn send_close(&self, frame: Option<CloseFrame>) -> Result<(), Error> {
        self.shared.core().send_close(frame)?;
        self.shared.flush().await
    }

    /// Sends binary data as one message.
    pub async fn send_binary(&self, data: impl Into<Bytes>) -> Result<(), Error> {
        self.send(Message::Binary(data.into())).await
    }

    /// Where the close handshake stands.
    pub fn state(&self) -> State {
        self.shared.core().state()
    }
}
