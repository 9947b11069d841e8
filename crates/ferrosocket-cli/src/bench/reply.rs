//! Reading the echoes: the core's [`Connection`] parses the server's frames (limits, control
//! frames, pongs, permessage-deflate), and this module checks each message against what was
//! sent.
//!
//! A message that fits the read buffer (64 KiB at most) is delivered whole, split off the
//! read buffer without a copy: nothing is allocated per message. A larger one is streamed in
//! chunks as it arrives ([`ReadMode::Streamed`]), so that a connection's memory stays at its
//! read buffer whatever `--size` is; that costs one small allocation per message, next to at
//! least 64 KiB of payload. `--raw-echo` sends our own masked frames back, so there the
//! connection plays the server role, which expects masked frames and unmasks them.

use super::plan::{Frames, Plan};
use bytes::BytesMut;
use ferrosocket_proto::extensions::deflate::{DeflateConfig, DeflateParams};
use ferrosocket_proto::{Config, Connection, Event, MessageKind, ProtocolError, ReadError, ReadMode, Role};

/// The largest read buffer: the core gives a drained buffer above 64 KiB back to the
/// allocator, which would cost an allocation per read.
const MAX_READ_BUFFER: usize = 64 << 10;

/// One connection's reply reader.
pub(super) struct Replies {
    conn: Connection,
    /// Bytes of the streamed message in progress received so far.
    msg_len: usize,
    /// Messages echoed so far on this connection (which slot comes back next).
    replies: u64,
}

impl Replies {
    /// A reader for `plan`, whose frames are `frame_len` bytes on the wire, with the
    /// permessage-deflate parameters the server agreed to and the bytes that came after the
    /// handshake answer.
    pub(super) fn new(
        plan: &Plan,
        frame_len: usize,
        deflate: Option<&DeflateParams>,
        leftover: &[u8],
    ) -> Self {
        // Room for a window of replies, within the cap.
        let rsize = plan
            .in_flight
            .saturating_mul(frame_len)
            .clamp(4 << 10, MAX_READ_BUFFER)
            .next_power_of_two();
        let role = if plan.raw_echo { Role::Server } else { Role::Client };
        let config = Config::default()
            .read_buffer_size(rsize)
            .stream_chunk_size(rsize)
            .max_frame_size(None)
            .max_message_size(Some(plan.size))
            .max_streamed_message_size(Some(plan.size as u64));
        let mut conn = Connection::new(role, config);
        if let Some(params) = deflate {
            conn.enable_deflate(params, &DeflateConfig::default().client_no_context_takeover(true));
        }
        if plan.size.max(frame_len) > rsize {
            conn.set_read_mode(ReadMode::Streamed);
        }
        // Frames that came with the handshake answer (none from an echo server).
        conn.receive(leftover);
        Self {
            conn,
            msg_len: 0,
            replies: 0,
        }
    }

    /// Whether bytes were read that [`poll`](Self::poll) has not looked at.
    pub(super) fn has_input(&self) -> bool {
        self.conn.buffered_input() > 0
    }

    /// The buffer to read the socket into (append only).
    pub(super) fn read_buffer(&mut self) -> &mut BytesMut {
        self.conn.read_buffer()
    }

    /// Whether the connection has frames to send (pongs).
    pub(super) fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// The next bytes of those frames.
    pub(super) fn output(&self) -> &[u8] {
        self.conn.pending_output_first()
    }

    /// `n` bytes of [`output`](Self::output) were written.
    pub(super) fn advance_output(&mut self, n: usize) {
        self.conn.advance_output(n);
    }

    /// Parses what was read and checks every message that came back; returns how many did.
    pub(super) fn poll(&mut self, plan: &Plan, frames: &Frames) -> Result<usize, String> {
        let mut completed = 0;
        loop {
            match self.conn.poll_event() {
                Ok(Some(Event::Message(m))) => {
                    check_kind(m.kind(), plan)?;
                    if m.len() != plan.size {
                        return Err(format!("the echo has {} bytes, {} were sent", m.len(), plan.size));
                    }
                    if plan.verify {
                        let want = self.expected(plan, frames);
                        if m.as_bytes()[..] != *want {
                            let at = m.as_bytes().iter().zip(want).take_while(|(a, b)| a == b).count();
                            return Err(self.differs(at));
                        }
                    }
                    self.replies += 1;
                    completed += 1;
                }
                Ok(Some(Event::Chunk(c))) => {
                    if c.first {
                        check_kind(c.kind, plan)?;
                        self.msg_len = 0;
                    }
                    let end = self.msg_len + c.data.len();
                    if end > plan.size {
                        return Err(too_long(plan));
                    }
                    if plan.verify && c.data[..] != self.expected(plan, frames)[self.msg_len..end] {
                        return Err(self.differs(self.msg_len));
                    }
                    self.msg_len = end;
                    if c.last {
                        if self.msg_len != plan.size {
                            return Err(format!(
                                "the echo has {} bytes, {} were sent",
                                self.msg_len, plan.size
                            ));
                        }
                        self.replies += 1;
                        completed += 1;
                    }
                }
                // The connection answers pings itself (see `output`).
                Ok(Some(Event::Ping(_) | Event::Pong(_))) => {}
                Ok(Some(Event::Close(frame))) => {
                    let code = frame.map_or("none".to_string(), |f| f.code.as_u16().to_string());
                    return Err(format!("the server sent a close frame (code {code})"));
                }
                Ok(None) => return Ok(completed),
                Err(ReadError::Protocol(
                    ProtocolError::MessageTooLarge { .. } | ProtocolError::FrameTooLarge { .. },
                )) => return Err(too_long(plan)),
                Err(e) => return Err(format!("bad frame from the server: {e}")),
            }
        }
    }

    /// The bytes the next reply must carry.
    fn expected<'a>(&self, plan: &Plan, frames: &'a Frames) -> &'a [u8] {
        let slot = (self.replies % plan.in_flight as u64) as usize;
        frames.expected(plan.size, slot)
    }

    fn differs(&self, at: usize) -> String {
        format!(
            "echo differs from what was sent (message {} of this connection, near byte {at})",
            self.replies + 1
        )
    }
}

fn check_kind(kind: MessageKind, plan: &Plan) -> Result<(), String> {
    if (kind == MessageKind::Text) != plan.text {
        return Err(format!("the echo is a {kind:?} message: wrong type"));
    }
    Ok(())
}

fn too_long(plan: &Plan) -> String {
    format!("the echo is longer than the {} bytes sent", plan.size)
}
