//! [`H3Stream`]: one HTTP/3 request stream as a byte stream. Writes become DATA frames; reads
//! deliver DATA payloads.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::codes;
use super::frame::{self, FrameHead};
use super::session::SessionGuard;
use super::varint;

/// The largest DATA frame one write makes: a write of more is split (the rest goes into the
/// next frame), so a partly accepted write never commits the stream to a huge frame.
const MAX_DATA_FRAME: usize = 1 << 20;
/// How long a dropped stream's last bytes may take to be acknowledged before the QUIC
/// connection (when this was its last stream) is closed.
const LINGER: Duration = Duration::from_secs(5);

/// A WebSocket's transport over HTTP/3 (RFC 9220): one request stream of a QUIC connection,
/// after the extended CONNECT and its `200`.
///
/// Writes are sent as DATA frames; reads return the payloads of DATA frames, skipping frames
/// of unknown types. Trailing HEADERS or the end of the peer's stream is the end of input; a
/// peer that resets the stream or loses the connection makes reads and writes fail with
/// [`io::ErrorKind::ConnectionReset`] (a [`Conn`](crate::Conn) then reports 1006).
/// `poll_shutdown` finishes our side of the stream. Other streams of the same QUIC
/// connection are unaffected by this one stalling: QUIC flow control is per stream.
///
/// The QUIC connection is closed (`H3_NO_ERROR`) once its last stream and its
/// [`Http3Session`](crate::Http3Session) or [`Http3Server`](super::Http3Server) are dropped.
pub struct H3Stream {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    rbuf: BytesMut,
    read: ReadState,
    header: [u8; 16],
    header_len: u8,
    header_pos: u8,
    payload_left: usize,
    peer: SocketAddr,
    conn: quinn::Connection,
    session: Arc<SessionGuard>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadState {
    Head,
    Data(u64),
    Skip(u64),
    Eof,
}

impl fmt::Debug for H3Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("H3Stream")
            .field("stream", &self.send.id())
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl H3Stream {
    /// `leftover` holds stream bytes read after the HEADERS frame (the start of DATA frames)
    /// and how much of a frame being skipped is still to come.
    pub(crate) fn new(
        send: quinn::SendStream,
        recv: quinn::RecvStream,
        (rbuf, skip): (BytesMut, u64),
        conn: quinn::Connection,
        session: Arc<SessionGuard>,
    ) -> Self {
        H3Stream {
            send,
            recv,
            rbuf,
            read: if skip > 0 {
                ReadState::Skip(skip)
            } else {
                ReadState::Head
            },
            header: [0; 16],
            header_len: 0,
            header_pos: 0,
            payload_left: 0,
            peer: conn.remote_address(),
            conn,
            session,
        }
    }

    /// The peer's UDP address (the QUIC connection's remote address).
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The QUIC connection this stream belongs to (for its statistics, RTT, or to open more
    /// streams).
    pub fn connection(&self) -> &quinn::Connection {
        &self.conn
    }

    /// The QUIC stream's id.
    pub fn stream_id(&self) -> u64 {
        self.send.id().into()
    }

    /// Aborts the stream in both directions with `H3_REQUEST_CANCELLED` (RFC 9114 §8.1): the
    /// peer's reads and writes fail; a [`Conn`](crate::Conn) on the other side reports 1006.
    pub fn reset(&mut self) {
        let code = quinn::VarInt::from_u32(codes::H3_REQUEST_CANCELLED as u32);
        let _ = self.send.reset(code);
        let _ = self.recv.stop(code);
    }

    /// Reads more stream bytes into `rbuf`: `Ok(0)` at the end of the stream.
    fn fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.rbuf.reserve(4096);
        let recv = Pin::new(&mut self.recv);
        tokio_util::io::poll_read_buf(recv, cx, &mut self.rbuf).map_err(lost)
    }
}

/// Every failure of the peer's stream or of the connection is a lost transport for the
/// WebSocket above (1006), as a TCP reset is.
fn lost(e: io::Error) -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        format!("http/3 stream failed: {e}"),
    )
}

fn frame_error(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("http/3: {msg}"))
}

impl AsyncRead for H3Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            match this.read {
                ReadState::Eof => return Poll::Ready(Ok(())),
                ReadState::Data(0) | ReadState::Skip(0) => this.read = ReadState::Head,
                ReadState::Data(left) => {
                    let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.remaining());
                    if !this.rbuf.is_empty() {
                        let n = want.min(this.rbuf.len());
                        buf.put_slice(&this.rbuf[..n]);
                        this.rbuf.advance(n);
                        this.read = ReadState::Data(left - n as u64);
                        return Poll::Ready(Ok(()));
                    }
                    // Straight into the caller's buffer: no copy of the payload.
                    let dst = buf.initialize_unfilled_to(want);
                    let n = ready!(this.recv.poll_read(cx, dst)).map_err(|e| lost(e.into()))?;
                    if n == 0 {
                        return Poll::Ready(Err(lost(frame_error("stream ended inside a DATA frame"))));
                    }
                    buf.advance(n);
                    this.read = ReadState::Data(left - n as u64);
                    return Poll::Ready(Ok(()));
                }
                ReadState::Skip(left) => {
                    if this.rbuf.is_empty() && ready!(this.fill(cx))? == 0 {
                        return Poll::Ready(Err(lost(frame_error("stream ended inside a frame"))));
                    }
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(this.rbuf.len());
                    this.rbuf.advance(n);
                    this.read = ReadState::Skip(left - n as u64);
                }
                ReadState::Head => match FrameHead::decode(&this.rbuf) {
                    Some((head, used)) => {
                        this.rbuf.advance(used);
                        this.read = match head.ty {
                            frame::DATA => ReadState::Data(head.len),
                            // Trailers: the message, and so the WebSocket's input, ends.
                            frame::HEADERS => ReadState::Eof,
                            frame::PUSH_PROMISE => {
                                return Poll::Ready(Err(frame_error("PUSH_PROMISE without MAX_PUSH_ID")));
                            }
                            _ if head.is_http2_only() => {
                                return Poll::Ready(Err(frame_error(
                                    "an HTTP/2 frame type on a request stream",
                                )));
                            }
                            frame::SETTINGS | frame::GOAWAY => {
                                return Poll::Ready(Err(frame_error("a control frame on a request stream")));
                            }
                            _ => ReadState::Skip(head.len),
                        };
                    }
                    None => {
                        if ready!(this.fill(cx))? == 0 {
                            if this.rbuf.is_empty() {
                                this.read = ReadState::Eof;
                            } else {
                                return Poll::Ready(Err(lost(frame_error(
                                    "stream ended inside a frame header",
                                ))));
                            }
                        }
                    }
                },
            }
        }
    }
}

impl H3Stream {
    /// Starts a DATA frame of `len` bytes unless one is under way.
    fn begin_frame(&mut self, len: usize) {
        if self.payload_left > 0 || self.header_pos < self.header_len {
            return;
        }
        let len = len.min(MAX_DATA_FRAME);
        let mut head = Vec::with_capacity(16);
        FrameHead {
            ty: frame::DATA,
            len: len as u64,
        }
        .encode(&mut head);
        debug_assert!(head.len() <= 1 + varint::len(len as u64));
        self.header[..head.len()].copy_from_slice(&head);
        self.header_len = head.len() as u8;
        self.header_pos = 0;
        self.payload_left = len;
    }

    /// Writes what is left of the current frame's header.
    fn poll_header(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.header_pos < self.header_len {
            let pending = &self.header[usize::from(self.header_pos)..usize::from(self.header_len)];
            let n = ready!(Pin::new(&mut self.send).poll_write(cx, pending)).map_err(|e| lost(e.into()))?;
            self.header_pos += n as u8;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for H3Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        this.begin_frame(buf.len());
        ready!(this.poll_header(cx))?;
        let take = buf.len().min(this.payload_left);
        let n = ready!(Pin::new(&mut this.send).poll_write(cx, &buf[..take])).map_err(|e| lost(e.into()))?;
        this.payload_left -= n;
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total == 0 {
            return Poll::Ready(Ok(0));
        }
        // One frame for the whole gather list, not one per slice.
        this.begin_frame(total);
        ready!(this.poll_header(cx))?;
        let mut written = 0;
        for b in bufs {
            let take = b.len().min(this.payload_left);
            if take == 0 {
                if this.payload_left == 0 {
                    break;
                }
                continue;
            }
            match Pin::new(&mut this.send).poll_write(cx, &b[..take]) {
                Poll::Ready(Ok(n)) => {
                    this.payload_left -= n;
                    written += n;
                    if n < take {
                        break;
                    }
                }
                Poll::Ready(Err(e)) => {
                    if written > 0 {
                        break;
                    }
                    return Poll::Ready(Err(lost(e.into())));
                }
                Poll::Pending => {
                    if written > 0 {
                        break;
                    }
                    return Poll::Pending;
                }
            }
        }
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // quinn sends what it accepted without being asked.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.payload_left > 0 {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "shutdown in the middle of a DATA frame: write the rest of the last buffer first",
            )));
        }
        ready!(this.poll_header(cx))?;
        // Finishing twice, or after a reset, is not an error for the caller.
        let _ = this.send.finish();
        Poll::Ready(Ok(()))
    }
}

impl Drop for H3Stream {
    fn drop(&mut self) {
        // Keep the QUIC connection open until the peer has our last bytes (the closing frame),
        // then let the session close it if this was the last user.
        let acked = self.send.stopped();
        let session = self.session.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = tokio::time::timeout(LINGER, acked).await;
                drop(session);
            });
        }
    }
}

/// The peer's UDP address; `local_addr` is the QUIC endpoint's, which quinn does not expose
/// per connection: `Unsupported`.
impl crate::SocketAddrs for H3Stream {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.peer)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "an HTTP/3 stream has no local socket address of its own; ask the quinn Endpoint",
        ))
    }
}
