//! Reading the echoes: what comes back is parsed in place and checked against what was sent.
//!
//! Frame headers are decoded by the core ([`FrameHeader::decode`]); server frames are
//! unmasked, so payloads are only compared (`--verify`) or skipped, never copied, in one
//! reusable buffer per connection: nothing is allocated per message. A full client-role
//! [`Connection`] would apply the same rules, but costs about 30 % more instructions per
//! message (measured with callgrind), so it is used only where it is needed: to inflate
//! replies under `--compress` (that path allocates per message).

use super::plan::{Frames, Plan};
use ferrosocket_proto::apply_mask;
use ferrosocket_proto::{Config, Connection, Event, Message, Role};
use ferrosocket_proto::{DeflateConfig, DeflateParams};
use ferrosocket_proto::{FrameHeader, MAX_HEADER_LEN, OpCode};
use tokio::net::TcpStream;

/// What the frame reader is in the middle of.
#[derive(Clone, Copy)]
enum ReadState {
    Header,
    Payload { left: usize, kind: FrameKind, fin: bool },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FrameKind {
    Data,
    Ping,
    Pong,
    Close,
}

/// One connection's reply reader. Nothing here is allocated per message.
pub(super) struct Replies {
    rbuf: Box<[u8]>,
    filled: usize,
    state: ReadState,
    /// Bytes of the message being received so far.
    msg_len: usize,
    msg_open: bool,
    /// Control frame payload being received (pings and closes: at most 125 bytes).
    ctrl_in: [u8; 125],
    ctrl_len: usize,
    /// Control frames to send (pongs), written between data frames.
    ctrl_out: Vec<u8>,
    /// Messages echoed so far on this connection (which slot comes back next).
    replies: u64,
    /// The client connection that inflates replies, with `--compress`.
    inflater: Option<Connection>,
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
        // Room for a window of replies; up to 256 KiB for large messages (64 KiB above 100
        // connections, to bound the generator's own memory).
        let want = plan.in_flight.saturating_mul(frame_len);
        let most = if plan.connections > 100 {
            64 << 10
        } else {
            256 << 10
        };
        let rsize = want.clamp(4 << 10, most).next_power_of_two();
        let inflater = deflate.map(|params| {
            let mut c = Connection::new(Role::Client, Config::default().max_frame_size(None));
            c.enable_deflate(params, &DeflateConfig::default().client_no_context_takeover(true));
            c
        });
        let mut replies = Self {
            rbuf: vec![0u8; rsize].into_boxed_slice(),
            filled: 0,
            state: ReadState::Header,
            msg_len: 0,
            msg_open: false,
            ctrl_in: [0; 125],
            ctrl_len: 0,
            ctrl_out: Vec::new(),
            replies: 0,
            inflater,
        };
        // Frames that came with the handshake answer (none from an echo server).
        let n = leftover.len().min(replies.rbuf.len());
        replies.rbuf[..n].copy_from_slice(&leftover[..n]);
        replies.filled = n;
        replies
    }

    /// Whether bytes were read that [`poll`](Self::poll) has not looked at.
    pub(super) fn has_input(&self) -> bool {
        self.filled > 0
    }

    /// Reads what the socket has into the free end of the buffer: `Ok((read, room))`.
    pub(super) fn try_read(&mut self, stream: &TcpStream) -> std::io::Result<(usize, usize)> {
        let room = self.rbuf.len() - self.filled;
        let n = stream.try_read(&mut self.rbuf[self.filled..])?;
        self.filled += n;
        Ok((n, room))
    }

    /// Whether there are frames to send (pongs).
    pub(super) fn wants_write(&self) -> bool {
        !self.ctrl_out.is_empty()
    }

    /// Those frames.
    pub(super) fn output(&self) -> &[u8] {
        &self.ctrl_out
    }

    /// `n` bytes of [`output`](Self::output) were written.
    pub(super) fn advance_output(&mut self, n: usize) {
        self.ctrl_out.drain(..n);
    }

    /// Parses what was read and checks every message that came back; returns how many did.
    pub(super) fn poll(&mut self, plan: &Plan, frames: &Frames) -> Result<usize, String> {
        if self.inflater.is_some() {
            self.parse_inflating(plan, frames)
        } else {
            self.parse(plan, frames)
        }
    }

    /// The bytes a reply for the current slot must carry.
    fn expected<'a>(&self, plan: &Plan, frames: &'a Frames) -> &'a [u8] {
        let size = plan.size;
        let slot = (self.replies % plan.in_flight as u64) as usize;
        if plan.raw_echo {
            let start = slot * frames.frame_len + frames.header_len;
            &frames.wire[start..start + size]
        } else {
            &frames.plain[slot * size..(slot + 1) * size]
        }
    }

    /// Parses server frames in place; returns how many messages completed. Leaves a partial
    /// header at the front of the buffer for the next read.
    fn parse(&mut self, plan: &Plan, frames: &Frames) -> Result<usize, String> {
        let mut pos = 0;
        let mut completed = 0;
        loop {
            match self.state {
                ReadState::Header => {
                    let (h, n) = match FrameHeader::decode(&self.rbuf[pos..self.filled]) {
                        Ok(Some(x)) => x,
                        Ok(None) => break,
                        Err(e) => return Err(format!("bad frame from the server: {e}")),
                    };
                    pos += n;
                    let (kind, left) = self.check_header(&h, plan)?;
                    self.state = ReadState::Payload {
                        left,
                        kind,
                        fin: h.fin,
                    };
                    if left == 0 && self.end_frame(kind, h.fin, plan)? {
                        completed += 1;
                    }
                }
                ReadState::Payload { left, kind, fin } => {
                    if pos == self.filled {
                        break;
                    }
                    let take = left.min(self.filled - pos);
                    let chunk = pos..pos + take;
                    match kind {
                        FrameKind::Data => {
                            if plan.verify {
                                let want = &self.expected(plan, frames)[self.msg_len..self.msg_len + take];
                                if self.rbuf[chunk.clone()] != *want {
                                    return Err(format!(
                                        "echo differs from what was sent (message {} of this connection, near byte {})",
                                        self.replies + 1,
                                        self.msg_len
                                    ));
                                }
                            }
                            self.msg_len += take;
                        }
                        FrameKind::Ping | FrameKind::Close => {
                            let dst = &mut self.ctrl_in[self.ctrl_len..self.ctrl_len + take];
                            dst.copy_from_slice(&self.rbuf[chunk]);
                            self.ctrl_len += take;
                        }
                        FrameKind::Pong => {}
                    }
                    pos += take;
                    let left = left - take;
                    self.state = ReadState::Payload { left, kind, fin };
                    if left == 0 && self.end_frame(kind, fin, plan)? {
                        completed += 1;
                    }
                }
            }
        }
        if pos < self.filled {
            self.rbuf.copy_within(pos..self.filled, 0);
        }
        self.filled -= pos;
        Ok(completed)
    }

    /// Checks a server frame header; returns what the frame is and its payload length.
    fn check_header(&mut self, h: &FrameHeader, plan: &Plan) -> Result<(FrameKind, usize), String> {
        if h.mask.is_some() && !plan.raw_echo {
            return Err("the server sent a masked frame (RFC 6455 section 5.1)".into());
        }
        if h.rsv1 || h.rsv2 || h.rsv3 {
            return Err("the server set reserved bits that were not negotiated".into());
        }
        let len = usize::try_from(h.payload_len).unwrap_or(usize::MAX);
        let kind = match OpCode::from_u8(h.opcode) {
            Some(op @ (OpCode::Text | OpCode::Binary)) => {
                if self.msg_open {
                    return Err("the server started a message inside another one".into());
                }
                if (op == OpCode::Text) != plan.text {
                    return Err(format!("the echo is a {op:?} message: wrong type"));
                }
                self.msg_open = true;
                self.msg_len = 0;
                FrameKind::Data
            }
            Some(OpCode::Continuation) => {
                if !self.msg_open {
                    return Err("the server sent a continuation frame outside a message".into());
                }
                FrameKind::Data
            }
            Some(op) => {
                if len > 125 || !h.fin {
                    return Err(format!("bad {op:?} frame from the server"));
                }
                self.ctrl_len = 0;
                match op {
                    OpCode::Ping => FrameKind::Ping,
                    OpCode::Pong => FrameKind::Pong,
                    _ => FrameKind::Close,
                }
            }
            None => return Err(format!("reserved opcode {:#x} from the server", h.opcode)),
        };
        if kind == FrameKind::Data && len > plan.size - self.msg_len {
            return Err(format!("the echo is longer than the {} bytes sent", plan.size));
        }
        Ok((kind, len))
    }

    /// A frame ended; returns whether it completed a message.
    fn end_frame(&mut self, kind: FrameKind, fin: bool, plan: &Plan) -> Result<bool, String> {
        self.state = ReadState::Header;
        match kind {
            FrameKind::Data if fin => {
                if self.msg_len != plan.size {
                    return Err(format!(
                        "the echo has {} bytes, {} were sent",
                        self.msg_len, plan.size
                    ));
                }
                self.msg_open = false;
                self.replies += 1;
                Ok(true)
            }
            FrameKind::Data | FrameKind::Pong => Ok(false),
            FrameKind::Ping => {
                self.queue_pong();
                Ok(false)
            }
            FrameKind::Close => {
                let code = match self.ctrl_in.get(..2) {
                    Some(&[a, b]) if self.ctrl_len >= 2 => u16::from_be_bytes([a, b]).to_string(),
                    _ => "none".to_string(),
                };
                Err(format!("the server sent a close frame (code {code})"))
            }
        }
    }

    fn queue_pong(&mut self) {
        let mut h = FrameHeader::new(OpCode::Pong, true, self.ctrl_len as u64);
        let key = super::plan::mask_key();
        h.mask = Some(key);
        let mut hbuf = [0u8; MAX_HEADER_LEN];
        let n = h.encode(&mut hbuf);
        self.ctrl_out.extend_from_slice(&hbuf[..n]);
        let start = self.ctrl_out.len();
        self.ctrl_out.extend_from_slice(&self.ctrl_in[..self.ctrl_len]);
        apply_mask(&mut self.ctrl_out[start..], key, 0);
    }

    /// `--compress`: feeds what was read to the inflating client connection.
    fn parse_inflating(&mut self, plan: &Plan, frames: &Frames) -> Result<usize, String> {
        let Some(mut conn) = self.inflater.take() else {
            return Ok(0);
        };
        conn.receive(&self.rbuf[..self.filled]);
        self.filled = 0;
        let mut completed = 0;
        let result = loop {
            match conn.poll_event() {
                Ok(Some(Event::Message(m))) => {
                    if let Err(e) = self.check_message(&m, plan, frames) {
                        break Err(e);
                    }
                    completed += 1;
                }
                Ok(Some(Event::Ping(_) | Event::Pong(_) | Event::Chunk(_))) => {}
                Ok(Some(Event::Close(frame))) => {
                    let code = frame.map_or("none".to_string(), |f| f.code.as_u16().to_string());
                    break Err(format!("the server sent a close frame (code {code})"));
                }
                Ok(None) => break Ok(completed),
                Err(e) => break Err(format!("bad frames from the server: {e}")),
            }
        };
        if conn.wants_write() {
            // Pongs (the connection answers pings itself).
            let out = conn.take_output();
            self.ctrl_out.extend_from_slice(&out);
        }
        self.inflater = Some(conn);
        result
    }

    fn check_message(&mut self, m: &Message, plan: &Plan, frames: &Frames) -> Result<(), String> {
        if matches!(m, Message::Text(_)) != plan.text {
            return Err("the echo has the wrong message type".into());
        }
        if m.len() != plan.size {
            return Err(format!("the echo has {} bytes, {} were sent", m.len(), plan.size));
        }
        if plan.verify && m.as_bytes()[..] != *self.expected(plan, frames) {
            return Err(format!(
                "echo differs from what was sent (message {} of this connection)",
                self.replies + 1
            ));
        }
        self.replies += 1;
        Ok(())
    }
}
