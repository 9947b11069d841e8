//! The WebSocket state machine: bytes in, events out; commands in, bytes out.
//!
//! See the [crate documentation](crate) for the call-order contract.

use crate::close::{ClosePayloadError, close_reply, parse_close_payload, truncate_reason};
use crate::extensions::deflate::{DeflateCodec, DeflateConfig, DeflateParams, SharedCompression};
use crate::frame::{FrameHeader, MAX_HEADER_LEN, OpCode};
use crate::mask::{MaskSource, OsMaskSource, RandomnessError, apply_mask};
use crate::output::OutQueue;
use crate::timers::{Clocks, Due, Facts, Timer};
use crate::utf8::Utf8Validator;
use crate::{
    CloseCode, CloseFrame, Config, Message, MessageKind, ProtocolError, ReadError, SendError, Utf8Bytes,
};
use bytes::{Buf, Bytes, BytesMut};
use std::io::IoSlice;
use std::sync::Arc;
use std::time::Instant;

#[path = "commands.rs"]
mod commands;
#[path = "streaming.rs"]
mod streaming;
#[path = "time.rs"]
mod time;
pub use streaming::{Chunk, ReadMode};
use streaming::{Step, Stream};

/// Which end of the connection this is. It decides masking (RFC 6455 §5.1) and who closes the
/// transport first (RFC 6455 §7.1.1: the server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The end that sent the upgrade request; masks what it sends.
    Client,
    /// The end that accepted the upgrade; expects masked frames.
    Server,
}

/// Where the close handshake stands (RFC 6455 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Data flows both ways.
    Open,
    /// One close frame has been sent or received, not both.
    Closing,
    /// Both close frames were exchanged, the connection failed, or the transport ended.
    Closed,
}

/// Something the peer sent, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete text or binary message ([`ReadMode::Whole`]).
    Message(Message),
    /// A ping with its payload. Already answered when [`Config::auto_pong`] is on.
    Ping(Bytes),
    /// A pong with its payload.
    Pong(Bytes),
    /// The peer's close frame (`None`: it carried no status code, reported as 1005). Already
    /// answered when [`Config::auto_close_reply`] is on. No event follows it.
    Close(Option<CloseFrame>),
    /// A piece of a streamed message ([`ReadMode::Streamed`]; see
    /// [`Connection::set_read_mode`]).
    Chunk(Chunk),
}

/// The frame being received: its header and how much of its payload has been unmasked and
/// checked in place at the front of the read buffer.
#[derive(Debug, Clone, Copy)]
struct InFrame {
    fin: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    len: usize,
    done: usize,
    check_utf8: bool,
    /// RSV1 on the first frame: the message is permessage-deflate compressed.
    compressed: bool,
}

/// How far the connection's life has gone. The close handshake itself is recorded by the close
/// frames sent and received (`close_sent`, `close_received`), the timers by `Clocks::expired`,
/// and the end of the transport's read side (`eof`, an input fact) apart: each of those can
/// happen in any of these states.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Lifecycle {
    /// Events may still come (the close handshake may be under way).
    Open,
    /// The peer's close frame was handed out as an event; nothing follows it.
    CloseReported,
    /// The peer broke the protocol; we queued a close frame with the error's code. Sticky.
    Failed(ProtocolError),
    /// Ended by [`Connection::fail`] (the application, the slow-peer policy, a compression
    /// fault).
    Aborted,
    /// The transport ended without a close frame (1006).
    Abnormal,
    /// A client mask key could not be drawn: nothing more can be sent.
    NoRandomness(RandomnessError),
}

impl Lifecycle {
    /// Whether the connection ended other than by the close handshake: it is closed and
    /// sends nothing more.
    fn ended(&self) -> bool {
        matches!(
            self,
            Self::Failed(_) | Self::Aborted | Self::Abnormal | Self::NoRandomness(_)
        )
    }
}

/// A fragmented message being reassembled.
#[derive(Debug)]
struct Assembly {
    kind: MessageKind,
    /// The payload so far (inflated, for a compressed message).
    buf: BytesMut,
    compressed: bool,
    inflated: Vec<u8>,
}

/// Payloads above this size are queued as their own chunk instead of being copied next to
/// their header (server role only: client payloads are masked, hence always copied).
const COPY_THRESHOLD: usize = 4096;

/// The largest partial-frame tail [`Connection::release_idle_buffers`] moves out of the read
/// buffer so that the buffer itself can be lent to another connection.
const IDLE_TAIL_MAX: usize = 4096;

/// The buffers an idle connection gives back (see [`Connection::release_idle_buffers`]).
#[derive(Debug, Default)]
#[must_use = "the buffers are freed when dropped; lend them to the next connection instead"]
pub struct IdleBuffers {
    /// The read buffer, emptied.
    pub read: Option<BytesMut>,
    /// The write buffer, emptied.
    pub write: Option<BytesMut>,
}

/// A buffer grown for a large frame may keep this much spare room while idle.
const IDLE_READ_CAPACITY: usize = 64 << 10;

/// Room made ahead of the data actually received when a large frame is pending, so that a
/// peer's declared length alone cannot make us allocate much.
const MIN_GROWTH: usize = 256 << 10;

/// A WebSocket connection with no I/O: the RFC 6455 state machine.
///
/// Methods come in four groups; after any input or command, write out
/// [`pending_output`](Self::pending_output):
///
/// - **input**: [`read_buffer`](Self::read_buffer) (read from the socket straight into it),
///   [`receive`](Self::receive) (copying), [`receive_eof`](Self::receive_eof);
/// - **events**: [`poll_event`](Self::poll_event), called until it returns `Ok(None)` (needs
///   more input) or an error (closed or failed: sticky);
/// - **commands**: [`send`](Self::send), [`send_fragment`](Self::send_fragment),
///   [`send_ping`](Self::send_ping), [`send_pong`](Self::send_pong),
///   [`send_close`](Self::send_close), [`fail`](Self::fail);
/// - **output**: [`pending_output`](Self::pending_output) + [`advance_output`](Self::advance_output),
///   then close the transport when [`should_close_transport`](Self::should_close_transport).
///
/// Frames are parsed lazily, one event at a time, so whatever the application sends in answer
/// to an event is queued before any error a later frame causes: replies to messages that came
/// before a bad frame still go out, in order, ahead of the close frame.
///
/// ```
/// use ferrosocket_proto::{Connection, Role, Config, Event, Message};
/// let mut server = Connection::new(Role::Server, Config::default());
/// // A masked "Hello" from RFC 6455 §5.7.
/// server.receive(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
/// let Some(Event::Message(msg)) = server.poll_event().unwrap() else { panic!() };
/// assert_eq!(msg.as_text(), Some("Hello"));
/// server.send(msg).unwrap();
/// assert_eq!(server.take_output(), [0x81, 0x05, b'H', b'e', b'l', b'l', b'o']);
/// ```
pub struct Connection {
    role: Role,
    /// Shared by every connection made with the same settings (a setter copies it on its
    /// first change): 160 bytes less per connection.
    config: Arc<Config>,
    deflate_negotiated: bool,
    /// Boxed: zlib's stream handles make the codec ~300 bytes, which idle connections
    /// without compression should not carry.
    deflate: Option<Box<DeflateCodec>>,
    write_compression: bool,
    sending_compressed: bool,

    rbuf: BytesMut,
    frame: Option<InFrame>,
    assembly: Option<Box<Assembly>>,
    read_mode: ReadMode,
    stream: Option<Box<Stream>>,
    utf8: Utf8Validator,
    eof: bool,

    out: OutQueue,
    sending: Option<MessageKind>,
    /// Client mask keys; created on first use so a server connection never holds one.
    keys: Option<Box<dyn MaskSource>>,

    close_sent: Option<Option<CloseFrame>>,
    close_received: Option<Option<CloseFrame>>,
    lifecycle: Lifecycle,

    clocks: Clocks,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("role", &self.role)
            .field("state", &self.state())
            .field("buffered", &self.rbuf.len())
            .field("queued", &self.out.len())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A connection in the open state, right after the handshake.
    pub fn new(role: Role, config: Config) -> Self {
        Self::with_shared_config(role, Arc::new(config))
    }

    /// [`new`](Self::new) with a configuration shared by many connections: each holds a
    /// pointer to it instead of its own copy, and a setter (`set_keepalive`, ...) that changes
    /// a value copies it for that connection first.
    ///
    /// ```
    /// use ferrosocket_proto::{Config, Connection, Role};
    /// use std::sync::Arc;
    /// let config = Arc::new(Config::default().max_message_size(Some(1 << 20)));
    /// let mut a = Connection::with_shared_config(Role::Server, config.clone());
    /// let b = Connection::with_shared_config(Role::Server, config);
    /// a.set_max_message_size(Some(4096));
    /// assert_eq!(a.config().max_message_size, Some(4096));
    /// assert_eq!(b.config().max_message_size, Some(1 << 20));
    /// ```
    pub fn with_shared_config(role: Role, config: Arc<Config>) -> Self {
        Self {
            role,
            config,
            deflate_negotiated: false,
            deflate: None,
            write_compression: true,
            sending_compressed: false,
            rbuf: BytesMut::new(),
            frame: None,
            assembly: None,
            read_mode: ReadMode::Whole,
            stream: None,
            utf8: Utf8Validator::new(),
            eof: false,
            out: OutQueue::default(),
            sending: None,
            keys: None,
            close_sent: None,
            close_received: None,
            lifecycle: Lifecycle::Open,
            clocks: Clocks::default(),
        }
    }

    /// Replaces where client mask keys come from (default: the OS CSPRNG).
    pub fn set_mask_source(&mut self, keys: Box<dyn MaskSource>) {
        self.keys = Some(keys);
    }

    /// Turns on permessage-deflate with the parameters the handshake agreed on. Call it before
    /// any frame is exchanged.
    pub fn enable_deflate(&mut self, params: &DeflateParams, config: &DeflateConfig) {
        self.deflate_negotiated = true;
        self.deflate = Some(Box::new(DeflateCodec::new(
            params,
            config,
            self.role == Role::Server,
        )));
    }

    /// Whether permessage-deflate is in use.
    pub fn deflate_enabled(&self) -> bool {
        self.deflate.is_some()
    }

    /// Compress outgoing messages (when permessage-deflate is in use and they pass the size
    /// threshold). Default: on.
    pub fn set_write_compression(&mut self, on: bool) {
        self.write_compression = on;
    }

    /// Sets the zlib level (0-9) of the messages sent from now on, when permessage-deflate is
    /// in use: 1 (default) is fast, 9 compresses best.
    pub fn set_compression_level(&mut self, level: u32) {
        if let Some(codec) = &mut self.deflate {
            codec.set_level(level);
        }
    }

    /// Tests: the next compression fails as a zlib fault would.
    #[cfg(test)]
    pub(crate) fn fail_next_compression(&mut self) {
        if let Some(codec) = &mut self.deflate {
            codec.fail_next_compress = true;
        }
    }

    /// When messages we send are compressed without carrying context between them, the
    /// settings that decide their bytes: a compressed frame can then be shared between
    /// connections with equal settings (see `PreparedMessage`). `None` otherwise.
    pub fn shared_compression(&self) -> Option<SharedCompression> {
        if !self.write_compression {
            return None;
        }
        self.deflate.as_ref().and_then(|c| c.shareable())
    }

    /// Whether messages sent now would go through permessage-deflate (context takeover or
    /// not).
    pub fn compresses_writes(&self) -> bool {
        self.write_compression && self.deflate.is_some()
    }

    // ---- getters -------------------------------------------------------------------------

    /// Client or server.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Frees what permessage-deflate can rebuild while the connection is idle: the compressor
    /// (about 370 KiB in zlib-rs), keeping context takeover through the last 4 KiB sent as the
    /// next compressor's dictionary, and a reset inflater when the peer does not take over
    /// context. The next message pays for a new compressor (about 0.5 M instructions).
    /// Nothing happens in the middle of a message. The keepalive timer calls it when it sends
    /// its ping (the connection was silent for a whole interval); call it yourself for other
    /// idle policies.
    pub fn shed_idle_memory(&mut self) {
        if let Some(codec) = &mut self.deflate {
            codec.shed_idle();
        }
    }

    /// Changes the largest message accepted from now on.
    pub fn set_max_message_size(&mut self, bytes: Option<usize>) {
        if self.config.max_message_size != bytes {
            Arc::make_mut(&mut self.config).max_message_size = bytes;
        }
    }

    /// Turns automatic pongs on or off (see [`Config::auto_pong`]).
    pub fn set_auto_pong(&mut self, on: bool) {
        if self.config.auto_pong != on {
            Arc::make_mut(&mut self.config).auto_pong = on;
        }
    }

    /// Turns the automatic close reply on or off (see [`Config::auto_close_reply`]).
    pub fn set_auto_close_reply(&mut self, on: bool) {
        if self.config.auto_close_reply != on {
            Arc::make_mut(&mut self.config).auto_close_reply = on;
        }
    }

    /// Where the close handshake stands.
    pub fn state(&self) -> State {
        let timed_out = self.clocks.expired.is_some_and(|t| t != Timer::Idle);
        if self.lifecycle.ended() || timed_out {
            return State::Closed;
        }
        match (self.close_sent.is_some(), self.close_received.is_some()) {
            (false, false) => State::Open,
            (true, true) => State::Closed,
            _ => State::Closing,
        }
    }

    /// The close frame we sent, if any (`Some(None)`: sent without a status code).
    pub fn close_sent(&self) -> Option<&Option<CloseFrame>> {
        self.close_sent.as_ref()
    }

    /// The close frame the peer sent, if any (`Some(None)`: it carried no status code).
    pub fn close_received(&self) -> Option<&Option<CloseFrame>> {
        self.close_received.as_ref()
    }

    /// The protocol error that failed the connection, if any (sticky).
    pub fn error(&self) -> Option<&ProtocolError> {
        match &self.lifecycle {
            Lifecycle::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// Whether we sent a close frame and still wait for the peer's: arm a close timer.
    pub fn close_expected(&self) -> bool {
        self.close_sent.is_some() && self.close_received.is_none() && self.state() == State::Closing
    }

    /// Whether the transport should now be closed: the connection is closed and every queued
    /// byte has been written. A client should first wait a little for the server to close
    /// (RFC 6455 §7.1.1); a server closes at once.
    pub fn should_close_transport(&self) -> bool {
        self.state() == State::Closed && self.out.is_empty()
    }

    /// Bytes received but not yet turned into events.
    pub fn buffered_input(&self) -> usize {
        self.rbuf.len()
    }

    // ---- input ---------------------------------------------------------------------------

    /// The buffer to read from the transport into, with spare capacity made for the next read.
    ///
    /// Append only (e.g. `AsyncReadExt::read_buf`); then call [`poll_event`](Self::poll_event).
    pub fn read_buffer(&mut self) -> &mut BytesMut {
        let base = self.config.read_buffer_size;
        let want = match &self.frame {
            // Room for the rest of a large frame, but never far ahead of what actually arrived.
            // (A streamed frame is handed out as it arrives: no room made for the rest.)
            Some(f) if f.len > self.rbuf.len() && (self.stream.is_none() || f.opcode.is_control()) => {
                let missing = f.len - self.rbuf.len() + MAX_HEADER_LEN;
                missing.clamp(base, base.max(MIN_GROWTH).max(self.rbuf.len()))
            }
            _ => base,
        };
        if self.rbuf.capacity() - self.rbuf.len() < want {
            self.rbuf.reserve(want);
        }
        &mut self.rbuf
    }

    /// Feeds bytes received from the peer, copying them.
    pub fn receive(&mut self, bytes: &[u8]) {
        if self.state() != State::Closed && self.close_received.is_none() {
            self.rbuf.extend_from_slice(bytes);
        }
    }

    /// Feeds a buffer received from the peer, without copying when nothing is buffered yet.
    pub fn receive_owned(&mut self, bytes: BytesMut) {
        if self.state() == State::Closed || self.close_received.is_some() {
            return;
        }
        if self.rbuf.is_empty() {
            self.rbuf = bytes;
        } else {
            self.rbuf.extend_from_slice(&bytes);
        }
    }

    /// Reports that the transport's read side ended.
    pub fn receive_eof(&mut self) {
        self.eof = true;
    }

    /// Whether the transport's read side has ended.
    pub fn is_eof(&self) -> bool {
        self.eof
    }

    // ---- events --------------------------------------------------------------------------

    /// The next event, `Ok(None)` if more input is needed, or why no event will ever come.
    ///
    /// Errors are sticky: after `Err`, every call returns the same error.
    pub fn poll_event(&mut self) -> Result<Option<Event>, ReadError> {
        loop {
            // Timers are sticky, with two exceptions: the idle timeout is reported once, after
            // which the close handshake it started goes on (the peer's close frame is still an
            // event); and a close timer that runs out after the connection already ended
            // (protocol error, close handshake done, `fail`) does not replace the error already
            // reported.
            if let Some(timer) = self.clocks.expired
                && !(timer == Timer::Idle && std::mem::replace(&mut self.clocks.reported, true))
                && (timer != Timer::CloseHandshake
                    || !matches!(
                        self.lifecycle,
                        Lifecycle::Failed(_)
                            | Lifecycle::CloseReported
                            | Lifecycle::Aborted
                            | Lifecycle::NoRandomness(_)
                    ))
            {
                return Err(ReadError::TimedOut(timer));
            }
            match &self.lifecycle {
                Lifecycle::Open => {}
                Lifecycle::Failed(e) => return Err(ReadError::Protocol(e.clone())),
                Lifecycle::CloseReported | Lifecycle::Aborted => return Err(ReadError::Closed),
                Lifecycle::Abnormal => return Err(ReadError::AbnormalClosure),
                Lifecycle::NoRandomness(e) => return Err(ReadError::Randomness(e.clone())),
            }
            let mut f = match self.frame {
                Some(f) => f,
                None => match FrameHeader::decode(&self.rbuf) {
                    Ok(Some((header, n))) => {
                        let f = self.check_header(&header).map_err(|e| self.fail_with(e))?;
                        self.rbuf.advance(n);
                        f
                    }
                    Ok(None) => return self.need_more(),
                    Err(_) => return Err(self.fail_with(ProtocolError::LengthTooLarge)),
                },
            };
            let avail = self.rbuf.len().min(f.len);
            if avail > f.done {
                let fresh = &mut self.rbuf[f.done..avail];
                if let Some(key) = f.mask {
                    apply_mask(fresh, key, f.done);
                }
                if f.check_utf8 && self.utf8.feed(fresh).is_err() {
                    return Err(self.fail_with(ProtocolError::InvalidUtf8));
                }
                f.done = avail;
            }
            if self.stream.is_some() && !f.opcode.is_control() {
                match self.stream_step(f)? {
                    Step::Event(event) => return Ok(Some(event)),
                    Step::NeedMore => return self.need_more(),
                    Step::Next => continue,
                }
            }
            if avail < f.len {
                self.frame = Some(f);
                return self.need_more();
            }
            self.frame = None;
            let payload = self.rbuf.split_to(f.len);
            if let Some(event) = self.on_frame(f, payload)? {
                return Ok(Some(event));
            }
        }
    }

    fn need_more(&mut self) -> Result<Option<Event>, ReadError> {
        if self.eof {
            self.lifecycle = Lifecycle::Abnormal;
            self.rbuf = BytesMut::new();
            return Err(ReadError::AbnormalClosure);
        }
        if self.rbuf.is_empty() && self.frame.is_none() && self.rbuf.capacity() > IDLE_READ_CAPACITY {
            self.rbuf = BytesMut::new();
        }
        Ok(None)
    }

    /// Applies RFC 6455 §5.2-§5.5 and the size limits to a header, before any payload arrives.
    fn check_header(&mut self, h: &FrameHeader) -> Result<InFrame, ProtocolError> {
        let opcode = OpCode::from_u8(h.opcode).ok_or(ProtocolError::ReservedOpcode(h.opcode))?;
        if h.rsv2
            || h.rsv3
            || (h.rsv1 && (!self.deflate_negotiated || opcode.is_control() || opcode == OpCode::Continuation))
        {
            return Err(ProtocolError::ReservedBits);
        }
        match (self.role, h.mask.is_some()) {
            (Role::Server, false) if !self.config.dangerous_accept_unmasked_frames => {
                return Err(ProtocolError::UnmaskedFrame);
            }
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        if opcode.is_control() {
            if !h.fin {
                return Err(ProtocolError::FragmentedControl);
            }
            if h.payload_len > 125 {
                return Err(ProtocolError::ControlTooLong(h.payload_len));
            }
        } else {
            // Deflate grows incompressible data slightly (0.03 % in stored blocks, about 0.25 %
            // from zlib at level 6 on random bytes): allow a compressed frame up to 1/128 over
            // the limit, which is meant for the data it carries; the inflated size is checked
            // exactly against max_message_size.
            let compressed = match (self.open_message(), opcode) {
                (Some((_, compressed)), OpCode::Continuation) => compressed,
                _ => h.rsv1,
            };
            let allow = |limit: usize| {
                if compressed {
                    limit.saturating_add((limit >> 7) + 1024)
                } else {
                    limit
                }
            };
            if let Some(limit) = self.config.max_frame_size
                && h.payload_len > allow(limit) as u64
            {
                return Err(ProtocolError::FrameTooLarge {
                    size: h.payload_len,
                    limit,
                });
            }
            let so_far = match (self.open_message(), &self.assembly, opcode) {
                (None, _, OpCode::Continuation) => return Err(ProtocolError::UnexpectedContinuation),
                (Some(_), _, OpCode::Text | OpCode::Binary) => {
                    return Err(ProtocolError::ExpectedContinuation);
                }
                (_, Some(a), _) => a.buf.len() as u64,
                (_, None, _) => 0,
            };
            if self.streams(opcode) {
                self.accept_streamed_header(opcode, h.payload_len, compressed)?;
            } else if let Some(limit) = self.config.max_message_size {
                let size = so_far.saturating_add(h.payload_len);
                if size > allow(limit) as u64 {
                    return Err(ProtocolError::MessageTooLarge { size, limit });
                }
            }
        }
        // Within the limits above the length fits in memory; on 32-bit targets refuse outright.
        let len = usize::try_from(h.payload_len).map_err(|_| ProtocolError::FrameTooLarge {
            size: h.payload_len,
            limit: usize::MAX,
        })?;
        let compressed = match (self.open_message(), opcode) {
            (Some((_, compressed)), OpCode::Continuation) => compressed,
            _ => h.rsv1,
        };
        let check_utf8 = match opcode {
            OpCode::Text => {
                self.utf8.reset();
                !compressed
            }
            OpCode::Continuation => self.open_message() == Some((MessageKind::Text, false)),
            _ => false,
        };
        Ok(InFrame {
            fin: h.fin,
            opcode,
            mask: h.mask,
            len,
            done: 0,
            check_utf8,
            compressed,
        })
    }

    /// Handles a complete frame whose payload is unmasked and already UTF-8 checked.
    fn on_frame(&mut self, f: InFrame, payload: BytesMut) -> Result<Option<Event>, ReadError> {
        match f.opcode {
            OpCode::Ping => {
                if self.config.auto_pong
                    && self.close_sent.is_none()
                    && let Err(e) = self.write_frame(OpCode::Pong, true, &payload)
                {
                    self.lose_randomness(e);
                }
                Ok(Some(Event::Ping(payload.freeze())))
            }
            OpCode::Pong => Ok(Some(Event::Pong(payload.freeze()))),
            OpCode::Close => {
                let frame = match parse_close_payload(&payload) {
                    Ok(frame) => frame,
                    Err(ClosePayloadError::InvalidUtf8) => {
                        return Err(self.fail_with(ProtocolError::InvalidUtf8));
                    }
                    Err(_) => return Err(self.fail_with(ProtocolError::InvalidClosePayload)),
                };
                // RFC 6455 §5.5.1: reply with a close frame (`close_reply`). A close inside a
                // fragmented message ends that message.
                self.assembly = None;
                self.stream = None;
                self.close_received = Some(frame.clone());
                self.lifecycle = Lifecycle::CloseReported;
                self.rbuf = BytesMut::new();
                if self.close_sent.is_none()
                    && self.config.auto_close_reply
                    && let Err(e) = self.queue_close(close_reply(frame.as_ref()).as_ref())
                {
                    self.lose_randomness(e);
                }
                Ok(Some(Event::Close(frame)))
            }
            OpCode::Text | OpCode::Binary => {
                let kind = if f.opcode == OpCode::Text {
                    MessageKind::Text
                } else {
                    MessageKind::Binary
                };
                if f.compressed {
                    let mut inflated = Vec::new();
                    self.inflate(kind, &payload, f.fin, &mut inflated)?;
                    if f.fin {
                        return self.complete(kind, Bytes::from(inflated)).map(Some);
                    }
                    self.assembly = Some(Box::new(Assembly {
                        kind,
                        buf: BytesMut::new(),
                        compressed: true,
                        inflated,
                    }));
                    return Ok(None);
                }
                if f.fin {
                    return self.complete(kind, payload.freeze()).map(Some);
                }
                self.assembly = Some(Box::new(Assembly {
                    kind,
                    buf: payload,
                    compressed: false,
                    inflated: Vec::new(),
                }));
                Ok(None)
            }
            OpCode::Continuation => {
                let Some(mut a) = self.assembly.take() else {
                    return Err(self.fail_with(ProtocolError::UnexpectedContinuation));
                };
                if a.compressed {
                    self.inflate(a.kind, &payload, f.fin, &mut a.inflated)?;
                } else {
                    a.buf.extend_from_slice(&payload);
                }
                if !f.fin {
                    self.assembly = Some(a);
                    return Ok(None);
                }
                let body = if a.compressed {
                    Bytes::from(a.inflated)
                } else {
                    a.buf.freeze()
                };
                self.complete(a.kind, body).map(Some)
            }
        }
    }

    /// Inflates one frame of a compressed message into `out`, checking the inflated size
    /// against the message limit and the inflated text as UTF-8 as it grows.
    fn inflate(
        &mut self,
        kind: MessageKind,
        payload: &[u8],
        fin: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), ReadError> {
        let start = out.len();
        let limit = self.config.max_message_size;
        let result = match &mut self.deflate {
            Some(codec) => codec.decompress(payload, fin, out, limit),
            None => Err(ProtocolError::ReservedBits),
        };
        if let Err(e) = result {
            return Err(self.fail_with(e));
        }
        if kind == MessageKind::Text && self.utf8.feed(&out[start..]).is_err() {
            return Err(self.fail_with(ProtocolError::InvalidUtf8));
        }
        Ok(())
    }

    fn complete(&mut self, kind: MessageKind, payload: Bytes) -> Result<Event, ReadError> {
        self.clocks.message_activity = true;
        Ok(Event::Message(match kind {
            MessageKind::Binary => Message::Binary(payload),
            MessageKind::Text => {
                if self.utf8.finish().is_err() {
                    return Err(self.fail_with(ProtocolError::InvalidUtf8));
                }
                // SAFETY: every byte of the message went through `self.utf8` (in place as it
                // arrived, or as it was inflated) and `finish` just confirmed that the text
                // does not end inside a code point.
                #[allow(unsafe_code)]
                let text = unsafe { Utf8Bytes::from_bytes_unchecked(payload) };
                Message::Text(text)
            }
        }))
    }

    fn fail_with(&mut self, error: ProtocolError) -> ReadError {
        if let Lifecycle::Failed(first) = &self.lifecycle {
            return ReadError::Protocol(first.clone());
        }
        // At most one close frame: if ours is already out, just stop reading. (A client that
        // cannot draw a mask key sends none: the peer sees 1006.)
        if self.close_sent.is_none() {
            let reason = error.to_string();
            let _ = self.queue_close(Some(&CloseFrame::new(
                error.close_code(),
                truncate_reason(&reason),
            )));
        }
        self.lifecycle = Lifecycle::Failed(error.clone());
        self.stop_reading();
        ReadError::Protocol(error)
    }

    /// Drops every byte and partial message received: the connection reads nothing more.
    fn stop_reading(&mut self) {
        self.rbuf = BytesMut::new();
        self.frame = None;
        self.assembly = None;
        self.stream = None;
    }

    /// Ends the connection because a client mask key could not be drawn. The close frame
    /// (1011) needs a key too: one more is asked for, and if none comes nothing is sent.
    fn lose_randomness(&mut self, error: RandomnessError) {
        if self.close_sent.is_none() {
            let frame = CloseFrame::new(CloseCode::INTERNAL_ERROR, "no randomness for a mask key");
            let _ = self.queue_close(Some(&frame));
        }
        if !matches!(self.lifecycle, Lifecycle::Failed(_)) {
            self.lifecycle = Lifecycle::NoRandomness(error);
        }
        self.stop_reading();
    }
}

#[cfg(test)]
#[path = "connection_tests.rs"]
pub(crate) mod tests;

#[cfg(test)]
#[path = "streaming_tests.rs"]
mod streaming_tests;
