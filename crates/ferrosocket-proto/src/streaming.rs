//! Streamed reception: a data message handed to the application chunk by chunk as its bytes
//! arrive ([`ReadMode::Streamed`]), instead of reassembled in memory.
//!
//! The frame machinery is the whole-message one: [`Connection::poll_event`] parses the header,
//! unmasks and (for uncompressed text) UTF-8-checks the payload in place as it arrives. For a
//! streamed message it then splits whatever prefix of the frame is ready off the read buffer
//! (at most [`Config::stream_chunk_size`](crate::Config::stream_chunk_size), zero copy), or
//! feeds it to the inflater with the same bound on the output, and reports it as a [`Chunk`].

use super::{Connection, Event, InFrame, State};
use crate::extensions::deflate::TAIL;
use crate::frame::OpCode;
use crate::{MessageKind, ProtocolError, ReadError};
use bytes::{Buf, Bytes};

/// How data messages are delivered; see [`Connection::set_read_mode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadMode {
    /// Each message is delivered whole, as one [`Event::Message`], after its last byte
    /// arrived. Bounded by [`Config::max_message_size`](crate::Config::max_message_size).
    #[default]
    Whole,
    /// Each message is delivered as it arrives, as one or more [`Event::Chunk`]s of at most
    /// [`Config::stream_chunk_size`](crate::Config::stream_chunk_size) bytes. Bounded by
    /// [`Config::max_streamed_message_size`](crate::Config::max_streamed_message_size);
    /// `max_message_size` does not apply.
    Streamed,
}

/// A piece of a message received in [`ReadMode::Streamed`], in order.
///
/// A message yields one or more chunks: exactly one has `first` set (the first) and exactly
/// one has `last` set (the final one; it may be the same chunk). Only the last chunk may be
/// empty (an empty message is a single empty chunk, `first` and `last`). A chunk of a text
/// message may end inside a code point; the bytes delivered so far are always a prefix of
/// valid UTF-8, and the whole message is checked before its last chunk is delivered.
///
/// Concatenating the `data` of a message's chunks gives exactly the payload
/// [`ReadMode::Whole`] would have delivered (inflated, when compressed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Text or binary, from the message's first frame.
    pub kind: MessageKind,
    /// The bytes; for an uncompressed message a slice of the read buffer (no copy).
    pub data: Bytes,
    /// The message's first chunk.
    pub first: bool,
    /// The message's last chunk: the message is complete (and, for text, valid UTF-8).
    pub last: bool,
}

/// The streamed message in progress.
#[derive(Debug)]
pub(super) struct Stream {
    kind: MessageKind,
    compressed: bool,
    /// Whether the first chunk has been delivered.
    started: bool,
    /// Payload bytes declared by the headers of its frames so far (uncompressed messages).
    declared: u64,
    /// Bytes delivered so far (inflated, for a compressed message).
    delivered: u64,
    /// How much of the RFC 7692 tail the inflater has taken (after the last frame).
    tail: usize,
}

/// What one step of a streamed frame produced.
pub(super) enum Step {
    /// An event for the application.
    Event(Event),
    /// Nothing until more input arrives (the frame stays pending).
    NeedMore,
    /// The frame is over without an event: parse the next one.
    Next,
}

impl Connection {
    /// Sets how the next data message is delivered (default [`ReadMode::Whole`]).
    ///
    /// The mode is sampled when a message's *first* frame header is parsed; a message already
    /// in progress (see [`streaming_message`](Self::streaming_message)) keeps the mode it
    /// started with. Since [`poll_event`](Self::poll_event) parses lazily, setting the mode
    /// between two events decides the mode of every message whose first frame comes after
    /// the event just returned.
    ///
    /// In [`ReadMode::Streamed`] a data message yields [`Event::Chunk`]s instead of one
    /// [`Event::Message`]:
    ///
    /// - payload is delivered as it arrives, without waiting for the frame to complete:
    ///   whatever prefix of the current frame is buffered, unmasked and (for text) UTF-8
    ///   checked, at most [`Config::stream_chunk_size`](crate::Config::stream_chunk_size) per
    ///   event, split off the read buffer without copying. Memory stays within the read buffer
    ///   plus the chunks the application still holds, whatever the frame or message size;
    /// - control frames between fragments come as their usual events between chunks; a close
    ///   frame inside a message ends it (no `last` chunk follows);
    /// - [`Config::max_frame_size`](crate::Config::max_frame_size) still applies to each
    ///   frame, and [`Config::max_streamed_message_size`](crate::Config::max_streamed_message_size)
    ///   replaces `max_message_size` for the message: a frame header that would pass it fails
    ///   with 1009 before any of its payload is delivered (for a compressed message, the
    ///   inflated bytes are counted, and the chunk that would pass it is not delivered);
    /// - text is validated as it arrives: a chunk is never delivered with an invalid byte in
    ///   it (1007 instead), and a message ending inside a code point fails with 1007 in place
    ///   of its last chunk;
    /// - a compressed message (permessage-deflate) is inflated as its compressed bytes arrive,
    ///   at most `stream_chunk_size` bytes of output per event: input that inflates further
    ///   stays buffered until the application polls again. Context takeover carries over
    ///   between messages whatever their mode.
    ///
    /// ```
    /// use ferrosocket_proto::{Config, Connection, Event, ReadMode, Role};
    /// let mut client = Connection::new(Role::Client, Config::default().stream_chunk_size(4));
    /// client.set_read_mode(ReadMode::Streamed);
    /// client.receive(&[0x82, 0x06, 1, 2, 3]); // half of a 6-byte binary frame
    /// let Some(Event::Chunk(c)) = client.poll_event().unwrap() else { panic!() };
    /// assert_eq!((&c.data[..], c.first, c.last), (&[1, 2, 3][..], true, false));
    /// assert!(client.streaming_message());
    /// client.receive(&[4, 5, 6]);
    /// let Some(Event::Chunk(c)) = client.poll_event().unwrap() else { panic!() };
    /// assert_eq!((&c.data[..], c.first, c.last), (&[4, 5, 6][..], false, true));
    /// assert!(!client.streaming_message());
    /// ```
    pub fn set_read_mode(&mut self, mode: ReadMode) {
        self.read_mode = mode;
    }

    /// How the next data message will be delivered.
    pub fn read_mode(&self) -> ReadMode {
        self.read_mode
    }

    /// Whether a streamed message has started (its first frame header was parsed) and its last
    /// chunk has not been delivered yet: the next data event is then an [`Event::Chunk`]
    /// whatever the [`read_mode`](Self::read_mode). False once the connection is closed or
    /// failed, and after a close frame ended the message.
    pub fn streaming_message(&self) -> bool {
        self.stream.is_some() && self.state() != State::Closed
    }

    /// Whether a frame of this opcode belongs to a streamed message (a new one when the read
    /// mode says so, or the continuation of the one in progress).
    pub(super) fn streams(&self, opcode: OpCode) -> bool {
        match opcode {
            OpCode::Continuation => self.stream.is_some(),
            OpCode::Text | OpCode::Binary => self.read_mode == ReadMode::Streamed,
            _ => false,
        }
    }

    /// The kind and compression of the data message in progress, whole or streamed.
    pub(super) fn open_message(&self) -> Option<(MessageKind, bool)> {
        match (&self.assembly, &self.stream) {
            (Some(a), _) => Some((a.kind, a.compressed)),
            (None, Some(s)) => Some((s.kind, s.compressed)),
            (None, None) => None,
        }
    }

    /// Checks a streamed data frame's header against `max_streamed_message_size` and records
    /// it (starting the stream on a first frame). The frame size limit and the frame order
    /// are checked by the caller.
    pub(super) fn accept_streamed_header(
        &mut self,
        opcode: OpCode,
        payload_len: u64,
        compressed: bool,
    ) -> Result<(), ProtocolError> {
        let limit = self.config.max_streamed_message_size;
        let so_far = match &self.stream {
            Some(s) if opcode == OpCode::Continuation && !s.compressed => s.declared,
            _ => 0,
        };
        if let Some(limit) = limit {
            // Compressed bytes say little about the inflated size (counted as it is
            // delivered); allow them the same 1/128 slack whole messages get.
            let allowed = if compressed {
                limit.saturating_add((limit >> 7) + 1024)
            } else {
                limit
            };
            let size = so_far.saturating_add(payload_len);
            if size > allowed {
                return Err(too_large(size, limit));
            }
        }
        match &mut self.stream {
            Some(s) if opcode == OpCode::Continuation => {
                s.declared = s.declared.saturating_add(payload_len);
            }
            _ => {
                let kind = if opcode == OpCode::Text {
                    MessageKind::Text
                } else {
                    MessageKind::Binary
                };
                self.stream = Some(Box::new(Stream {
                    kind,
                    compressed,
                    started: false,
                    declared: payload_len,
                    delivered: 0,
                    tail: 0,
                }));
            }
        }
        Ok(())
    }

    /// Delivers what is ready of a streamed data frame whose first `f.done` buffered bytes
    /// are unmasked (and, for uncompressed text, UTF-8 checked). Sets `self.frame`.
    pub(super) fn stream_step(&mut self, f: InFrame) -> Result<Step, ReadError> {
        match &self.stream {
            Some(s) if s.compressed => self.stream_inflated(f),
            Some(_) => self.stream_plain(f),
            None => Err(self.fail_with(ProtocolError::UnexpectedContinuation)),
        }
    }

    fn stream_plain(&mut self, mut f: InFrame) -> Result<Step, ReadError> {
        let n = f.done.min(self.config.stream_chunk_size.max(1));
        let data = self.rbuf.split_to(n).freeze();
        consume(&mut f, n);
        let frame_over = f.len == 0;
        self.frame = if frame_over { None } else { Some(f) };
        let last = frame_over && f.fin;
        if n == 0 && !last {
            return Ok(if frame_over { Step::Next } else { Step::NeedMore });
        }
        self.emit(data, last).map(Step::Event)
    }

    fn stream_inflated(&mut self, mut f: InFrame) -> Result<Step, ReadError> {
        let cap = self.config.stream_chunk_size.max(1);
        let tail_fed = self.stream.as_ref().map_or(0, |s| s.tail);
        let mut out = Vec::new();
        let Some(codec) = self.deflate.as_deref_mut() else {
            return Err(self.fail_with(ProtocolError::ReservedBits));
        };
        let input = self.rbuf.get(..f.done).unwrap_or_default();
        let mut result = codec.inflate_some(input, &mut out, cap);
        let mut used = 0;
        if let Ok(n) = result {
            // With room left over the inflater takes no more of this input (it only stops
            // short after an error): drop the rest, as the whole-message path does.
            used = if out.len() < cap { f.done } else { n };
        }
        let frame_in = result.is_ok() && f.len == used;
        let mut tail = tail_fed;
        if frame_in && f.fin && out.len() < cap {
            result = codec.inflate_some(TAIL.get(tail_fed..).unwrap_or_default(), &mut out, cap);
            if let Ok(n) = result {
                tail = if out.len() < cap { TAIL.len() } else { tail_fed + n };
            }
        }
        if let Err(e) = result {
            return Err(self.fail_with(e));
        }
        self.rbuf.advance(used);
        consume(&mut f, used);
        let delivered = self.stream.as_ref().map_or(0, |s| s.delivered);
        let size = delivered.saturating_add(out.len() as u64);
        if let Some(limit) = self.config.max_streamed_message_size
            && size > limit
        {
            return Err(self.fail_with(too_large(size, limit)));
        }
        let text = self.stream.as_ref().is_some_and(|s| s.kind == MessageKind::Text);
        if text && self.utf8.feed(&out).is_err() {
            return Err(self.fail_with(ProtocolError::InvalidUtf8));
        }
        if let Some(s) = &mut self.stream {
            s.tail = tail;
        }
        let drained = out.len() < cap;
        let last = frame_in && f.fin && tail == TAIL.len() && drained;
        if last {
            if let Some(codec) = self.deflate.as_deref_mut() {
                codec.end_received_message();
            }
            self.frame = None;
            return self.emit(Bytes::from(out), true).map(Step::Event);
        }
        let frame_over = frame_in && !f.fin && drained;
        self.frame = if frame_over { None } else { Some(f) };
        if out.is_empty() {
            return Ok(if frame_over { Step::Next } else { Step::NeedMore });
        }
        self.emit(Bytes::from(out), false).map(Step::Event)
    }

    /// The chunk event for `data`; `last` ends the message (checking that text ends on a
    /// code point boundary first).
    fn emit(&mut self, data: Bytes, last: bool) -> Result<Event, ReadError> {
        let Some(s) = self.stream.as_deref_mut() else {
            return Err(self.fail_with(ProtocolError::UnexpectedContinuation));
        };
        let kind = s.kind;
        let first = !s.started;
        s.started = true;
        s.delivered = s.delivered.saturating_add(data.len() as u64);
        if last {
            self.stream = None;
            if kind == MessageKind::Text && self.utf8.finish().is_err() {
                return Err(self.fail_with(ProtocolError::InvalidUtf8));
            }
        }
        Ok(Event::Chunk(Chunk {
            kind,
            data,
            first,
            last,
        }))
    }
}

/// Marks the first `n` bytes of the frame's remaining payload as taken off the read buffer.
fn consume(f: &mut InFrame, n: usize) {
    f.len -= n;
    f.done -= n;
    // The byte at payload offset `n` was masked with key[n % 4]: rotate so that offsets
    // count from the new front.
    if let Some(key) = &mut f.mask {
        key.rotate_left(n % 4);
    }
}

fn too_large(size: u64, limit: u64) -> ProtocolError {
    ProtocolError::MessageTooLarge {
        size,
        limit: usize::try_from(limit).unwrap_or(usize::MAX),
    }
}
