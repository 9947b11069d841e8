//! Streamed messages: receive one as a sequence of chunks ([`MessageReader`], an
//! `AsyncRead`), send one through an `AsyncWrite` ([`MessageWriter`]) whose `shutdown` ends it.
//! For messages larger than memory.
//!
//! Both work on a whole [`Conn`] and on the split halves. Memory stays bounded by the chunk
//! size ([`Config::stream_chunk_size`](ferrosocket_proto::Config::stream_chunk_size), 64 KiB by
//! default) and the write buffer, whatever the message size; limits still apply (the frame
//! limit per frame, [`Config::max_streamed_message_size`](ferrosocket_proto::Config::max_streamed_message_size)
//! per message), text is UTF-8-checked as it arrives, and compression works both ways.

use super::Conn;
use crate::conn::split::{ReadHalf, WriteHalf};
use crate::error::Error;
use bytes::{Buf, Bytes, BytesMut};
use ferrosocket_proto::{Chunk, MessageKind};
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Where a [`MessageReader`] takes its chunks from.
enum Source<'a, S> {
    Conn(&'a mut Conn<S>),
    Half(&'a mut ReadHalf<S>),
}

impl<S> Source<'_, S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Result<Chunk, Error>> {
        match self {
            Source::Conn(c) => c.poll_recv_chunk(cx),
            Source::Half(h) => h.poll_recv_chunk(cx),
        }
    }
}

/// The first chunk of the next message, skipping what is left of one the application stopped
/// reading.
pub(crate) fn poll_first_chunk(
    mut poll: impl FnMut(&mut Context<'_>) -> Poll<Result<Chunk, Error>>,
    cx: &mut Context<'_>,
) -> Poll<Result<Chunk, Error>> {
    loop {
        let chunk = ready!(poll(cx))?;
        if chunk.first {
            return Poll::Ready(Ok(chunk));
        }
    }
}

/// A message being received piece by piece (from [`Conn::recv_stream`] or
/// [`ReadHalf::recv_stream`]).
///
/// Read it with [`next_chunk`](Self::next_chunk) (zero copy: each chunk is a slice of the read
/// buffer) or as an [`AsyncRead`] (e.g. `tokio::io::copy` into a file). Dropping it before the
/// end is fine: the rest of the message is skipped by the next receive.
pub struct MessageReader<'a, S> {
    source: Source<'a, S>,
    kind: MessageKind,
    /// The chunk being handed out (`AsyncRead` copies from it).
    current: Bytes,
    /// The last chunk has been taken from the connection.
    done: bool,
}

impl<S> std::fmt::Debug for MessageReader<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageReader")
            .field("kind", &self.kind)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<'a, S> MessageReader<'a, S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn new(source: Source<'a, S>, first: Chunk) -> Self {
        Self {
            source,
            kind: first.kind,
            current: first.data,
            done: first.last,
        }
    }

    /// Text or binary. A text message's chunks may end in the middle of a character; the
    /// message as a whole is valid UTF-8 (checked as it arrives: a bad byte fails the
    /// connection with 1007 before it is handed out).
    pub fn kind(&self) -> MessageKind {
        self.kind
    }

    /// The next piece of the message, or `None` after the last one.
    ///
    /// # Errors
    /// Whatever ended the session mid-message (see [`Conn::recv`]).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, Error> {
        poll_fn(|cx| self.poll_next_chunk(cx)).await
    }

    /// The poll form of [`next_chunk`](Self::next_chunk).
    pub fn poll_next_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Error>> {
        loop {
            if !self.current.is_empty() {
                return Poll::Ready(Ok(Some(std::mem::take(&mut self.current))));
            }
            if self.done {
                return Poll::Ready(Ok(None));
            }
            let chunk = ready!(self.source.poll_chunk(cx))?;
            self.done = chunk.last;
            self.current = chunk.data;
        }
    }

    /// Reads the rest of the message into memory (bounded by `limit` bytes: past it, the
    /// rest is left unread and an `InvalidData` error returned).
    pub async fn read_to_end(&mut self, limit: usize) -> Result<BytesMut, Error> {
        let mut all = BytesMut::new();
        while let Some(chunk) = self.next_chunk().await? {
            if all.len() + chunk.len() > limit {
                return Err(Error::Io(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("streamed message exceeds the {limit}-byte limit given to read_to_end"),
                )));
            }
            all.extend_from_slice(&chunk);
        }
        Ok(all)
    }
}

impl<S> AsyncRead for MessageReader<'_, S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.current.is_empty() {
            match ready!(this.poll_next_chunk(cx)) {
                Ok(Some(chunk)) => this.current = chunk,
                Ok(None) => return Poll::Ready(Ok(())),
                Err(e) => return Poll::Ready(Err(io::Error::other(e))),
            }
        }
        let n = this.current.len().min(buf.remaining());
        buf.put_slice(&this.current[..n]);
        this.current.advance(n);
        Poll::Ready(Ok(()))
    }
}

#[cfg(feature = "stream")]
impl<S> futures_core::Stream for MessageReader<'_, S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    type Item = Result<Bytes, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_next_chunk(cx).map(Result::transpose)
    }
}

/// Where a [`MessageWriter`] sends its fragments.
enum Sink<'a, S> {
    Conn(&'a mut Conn<S>),
    Half(&'a WriteHalf<S>),
}

impl<S> Sink<'_, S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn queue_fragment(&mut self, kind: MessageKind, data: Bytes, fin: bool) -> Result<(), Error> {
        match self {
            Sink::Conn(c) => c.engine.queue_fragment(kind, data, fin),
            Sink::Half(h) => h.queue_fragment(kind, data, fin),
        }
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        match self {
            Sink::Conn(c) => c.poll_flush(cx),
            Sink::Half(h) => h.poll_flush(cx),
        }
    }

    fn backlog(&self) -> (usize, usize) {
        match self {
            Sink::Conn(c) => (c.queued_bytes(), c.write_buffer_size()),
            Sink::Half(h) => (h.queued_bytes(), h.write_buffer_size()),
        }
    }
}

/// A message being sent piece by piece (from [`Conn::send_stream`] or
/// [`WriteHalf::send_stream`]): an [`AsyncWrite`] whose `shutdown` (or
/// [`finish`](Self::finish)) ends the message.
///
/// Written bytes are gathered into frames of the write buffer size (64 KiB by default) and
/// sent as fragments; the writer waits while the connection's queue is full, so memory stays
/// bounded however large the message. Dropping it without finishing ends the message with
/// what was written (an empty final fragment is queued, and leaves with the next write).
///
/// ```no_run
/// # async fn run(conn: &mut ferrosocket::Conn<tokio::net::TcpStream>) -> Result<(), Box<dyn std::error::Error>> {
/// use ferrosocket::MessageKind;
/// let mut file = tokio::fs::File::open("big.bin").await?;
/// let mut message = conn.send_stream(MessageKind::Binary);
/// tokio::io::copy(&mut file, &mut message).await?;
/// message.finish().await?;
/// # Ok(()) }
/// ```
pub struct MessageWriter<'a, S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    sink: Sink<'a, S>,
    kind: MessageKind,
    pending: BytesMut,
    frame_size: usize,
    finished: bool,
}

impl<S> std::fmt::Debug for MessageWriter<'_, S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageWriter")
            .field("kind", &self.kind)
            .field("pending", &self.pending.len())
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

fn to_io(e: Error) -> io::Error {
    match e {
        Error::Io(e) => e,
        e => io::Error::other(e),
    }
}

impl<'a, S> MessageWriter<'a, S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn new(sink: Sink<'a, S>, kind: MessageKind) -> Self {
        let frame_size = sink.backlog().1.max(1);
        Self {
            sink,
            kind,
            pending: BytesMut::new(),
            frame_size,
            finished: false,
        }
    }

    /// Sets the largest fragment sent (default: the write buffer size).
    pub fn set_frame_size(&mut self, bytes: usize) {
        self.frame_size = bytes.max(1);
    }

    /// Ends the message and writes everything out.
    ///
    /// # Errors
    /// Whatever the connection's writes fail with.
    pub async fn finish(mut self) -> Result<(), Error> {
        poll_fn(|cx| self.poll_finish(cx)).await
    }

    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if !self.finished {
            let last = self.pending.split().freeze();
            self.sink.queue_fragment(self.kind, last, true)?;
            self.finished = true;
        }
        self.sink.poll_flush(cx)
    }

    /// Sends what is gathered as a fragment (not the last).
    fn send_pending(&mut self) -> Result<(), Error> {
        if !self.pending.is_empty() {
            let data = self.pending.split().freeze();
            self.sink.queue_fragment(self.kind, data, false)?;
        }
        Ok(())
    }
}

impl<S> AsyncWrite for MessageWriter<'_, S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the streamed message was already finished",
            )));
        }
        let (queued, limit) = this.sink.backlog();
        if queued >= limit {
            ready!(this.sink.poll_flush(cx)).map_err(to_io)?;
        }
        let room = this.frame_size.saturating_sub(this.pending.len()).max(1);
        let n = data.len().min(room);
        this.pending.extend_from_slice(&data[..n]);
        if this.pending.len() >= this.frame_size {
            this.send_pending().map_err(to_io)?;
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.finished {
            this.send_pending().map_err(to_io)?;
        }
        this.sink.poll_flush(cx).map_err(to_io)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_finish(cx).map_err(to_io)
    }
}

impl<S> Drop for MessageWriter<'_, S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn drop(&mut self) {
        if !self.finished {
            // End the message so the connection can send others; fails only when the
            // connection is already over.
            let last = self.pending.split().freeze();
            let _ = self.sink.queue_fragment(self.kind, last, true);
        }
    }
}

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Receives the next message as a stream of chunks; see
    /// [`MessageReader`]. What is left of a message a previous reader did not finish is
    /// skipped.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub async fn recv_stream(&mut self) -> Result<MessageReader<'_, S>, Error> {
        let first = poll_fn(|cx| poll_first_chunk(|cx| self.poll_recv_chunk(cx), cx)).await?;
        Ok(MessageReader::new(Source::Conn(self), first))
    }

    /// Receives the next piece of a streamed message: the low-level form of
    /// [`recv_stream`](Self::recv_stream) (`first` and `last` mark message boundaries).
    pub async fn recv_chunk(&mut self) -> Result<Chunk, Error> {
        poll_fn(|cx| self.poll_recv_chunk(cx)).await
    }

    /// The poll form of [`recv_chunk`](Self::recv_chunk).
    pub fn poll_recv_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Result<Chunk, Error>> {
        let waker = cx.waker();
        self.engine.poll_chunk(&mut self.io, waker, waker)
    }

    /// Starts sending a message of `kind` through an [`AsyncWrite`]; see [`MessageWriter`].
    pub fn send_stream(&mut self, kind: MessageKind) -> MessageWriter<'_, S> {
        MessageWriter::new(Sink::Conn(self), kind)
    }

    /// Queues one fragment without writing it (the batching form of
    /// [`send_fragment`](Self::send_fragment)): it leaves with the next write, or now when the
    /// queue passes the write buffer size.
    pub async fn feed_fragment(
        &mut self,
        kind: MessageKind,
        data: impl Into<Bytes>,
        fin: bool,
    ) -> Result<(), Error> {
        self.engine.queue_fragment(kind, data.into(), fin)?;
        if self.queued_bytes() >= self.write_buffer_size() {
            self.flush().await?;
        }
        Ok(())
    }
}

impl<S> ReadHalf<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Receives the next message as a stream of chunks; see [`Conn::recv_stream`].
    pub async fn recv_stream(&mut self) -> Result<MessageReader<'_, S>, Error> {
        let first = poll_fn(|cx| poll_first_chunk(|cx| self.poll_recv_chunk(cx), cx)).await?;
        Ok(MessageReader::new(Source::Half(self), first))
    }

    /// Receives the next piece of a streamed message; see [`Conn::recv_chunk`].
    pub async fn recv_chunk(&mut self) -> Result<Chunk, Error> {
        poll_fn(|cx| self.poll_recv_chunk(cx)).await
    }
}

impl<S> WriteHalf<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Starts sending a message through an [`AsyncWrite`]; see [`Conn::send_stream`]. Other
    /// clones of the writer cannot send a message until this one is finished.
    pub fn send_stream(&self, kind: MessageKind) -> MessageWriter<'_, S> {
        MessageWriter::new(Sink::Half(self), kind)
    }
}
