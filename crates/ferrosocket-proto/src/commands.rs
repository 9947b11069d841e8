//! Commands and output of a [`Connection`]: what the application sends (messages, fragments,
//! prepared frames, pings, pongs, close) and the queue the transport drains. A child module of
//! `connection`, so it sees the connection's private state.

use super::*;

impl Connection {
    // ---- commands ------------------------------------------------------------------------

    /// Queues a whole message as one frame.
    pub fn send(&mut self, message: Message) -> Result<(), SendError> {
        self.check_can_send()?;
        if self.sending.is_some() {
            return Err(SendError::MessageInProgress);
        }
        let kind = message.kind();
        self.send_fragment(kind, message.into_bytes(), true)
    }

    /// Queues one fragment of a message: the first call sets the kind, later calls continue it
    /// (their `kind` is ignored), and `fin` ends it. Use it to stream a message of unknown size.
    pub fn send_fragment(&mut self, kind: MessageKind, payload: Bytes, fin: bool) -> Result<(), SendError> {
        self.check_can_send()?;
        let opcode = match self.sending {
            Some(_) => OpCode::Continuation,
            None => OpCode::from(kind),
        };
        if self.sending.is_none() {
            self.sending_compressed = self.write_compression
                && self
                    .deflate
                    .as_ref()
                    .is_some_and(|c| !fin || payload.len() >= c.threshold);
        }
        self.sending = if fin { None } else { Some(kind) };
        self.clocks.message_activity = true;
        if self.sending_compressed {
            let mut out = Vec::with_capacity(payload.len() / 2 + 16);
            let result = match &mut self.deflate {
                Some(codec) => codec.compress(&payload, fin, &mut out),
                None => Err(ProtocolError::Inflate("no compression context".into())),
            };
            if let Err(e) = result {
                // Only a zlib bug gets here. Sending the data uncompressed instead would corrupt
                // the peer's inflate stream (inside a compressed message, or with context
                // takeover), so the connection fails with 1011.
                self.fail(CloseCode::INTERNAL_ERROR, "compression failed");
                return Err(SendError::Compression(e.to_string()));
            }
            let first = opcode != OpCode::Continuation;
            return self
                .write_payload(opcode, fin, first, Bytes::from(out))
                .map_err(|e| self.send_failed(e));
        }
        self.write_payload(opcode, fin, false, payload)
            .map_err(|e| self.send_failed(e))
    }

    /// A send needed a mask key and got none: the connection ends (see
    /// [`SendError::Randomness`]).
    pub(super) fn send_failed(&mut self, error: RandomnessError) -> SendError {
        self.lose_randomness(error.clone());
        SendError::Randomness(error)
    }

    /// Queues a message's ready-made wire bytes: a frame that was encoded once, unmasked, for
    /// many server connections (see `PreparedMessage`). Server role only.
    pub fn send_raw_frame(&mut self, frame: Bytes) -> Result<(), SendError> {
        self.check_can_send()?;
        if self.sending.is_some() {
            return Err(SendError::MessageInProgress);
        }
        self.clocks.message_activity = true;
        if frame.len() > COPY_THRESHOLD {
            self.out.push_chunk(frame);
        } else {
            self.out.tail_mut(frame.len()).extend_from_slice(&frame);
        }
        Ok(())
    }

    /// Queues a ping (payload at most 125 bytes).
    pub fn send_ping(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.send_control(OpCode::Ping, payload)
    }

    /// Queues a pong (payload at most 125 bytes). An unsolicited pong is a valid heartbeat.
    pub fn send_pong(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.send_control(OpCode::Pong, payload)
    }

    /// Starts (or, after the peer's close, completes) the close handshake. `None` sends a
    /// close frame without a status code. Reasons longer than 123 bytes are cut.
    pub fn send_close(&mut self, frame: Option<CloseFrame>) -> Result<(), SendError> {
        if self.close_sent.is_some() || self.lifecycle.ended() || self.timed_out().is_some() {
            return Err(SendError::Closed);
        }
        if let Some(f) = &frame
            && !f.code.is_sendable()
        {
            return Err(SendError::InvalidCloseCode(f.code.as_u16()));
        }
        self.queue_close(frame.as_ref()).map_err(|e| self.send_failed(e))
    }

    /// Fails the connection: queues a close frame with `code` and stops reading. For
    /// conditions the application detects itself (e.g. 1008 policy violation).
    pub fn fail(&mut self, code: CloseCode, reason: &str) {
        if self.close_sent.is_none() {
            let code = if code.is_sendable() {
                code
            } else {
                CloseCode::PROTOCOL_ERROR
            };
            // A client that cannot draw a mask key sends none: the peer sees 1006.
            let _ = self.queue_close(Some(&CloseFrame::new(code, truncate_reason(reason))));
        }
        // A protocol error or a lost random source stays the reason reported.
        if !matches!(self.lifecycle, Lifecycle::Failed(_) | Lifecycle::NoRandomness(_)) {
            self.lifecycle = Lifecycle::Aborted;
        }
        self.stop_reading();
    }

    pub(super) fn check_can_send(&self) -> Result<(), SendError> {
        if self.close_sent.is_some() || self.lifecycle.ended() || self.timed_out().is_some() {
            Err(SendError::Closed)
        } else {
            Ok(())
        }
    }

    pub(super) fn send_control(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), SendError> {
        self.check_can_send()?;
        if payload.len() > 125 {
            return Err(SendError::ControlTooLong(payload.len()));
        }
        self.write_frame(opcode, true, payload)
            .map_err(|e| self.send_failed(e))
    }

    /// Queues a close frame and records it as sent (unless no mask key could be drawn).
    pub(super) fn queue_close(&mut self, frame: Option<&CloseFrame>) -> Result<(), RandomnessError> {
        let mut payload = [0u8; 125];
        let len = match frame {
            Some(f) => {
                let reason = truncate_reason(&f.reason).as_bytes();
                payload[..2].copy_from_slice(&f.code.as_u16().to_be_bytes());
                payload[2..2 + reason.len()].copy_from_slice(reason);
                2 + reason.len()
            }
            None => 0,
        };
        self.write_frame(OpCode::Close, true, &payload[..len])?;
        self.close_sent = Some(frame.cloned());
        self.sending = None;
        Ok(())
    }

    /// The header of a frame we send; a client's carries a fresh mask key, and fails when
    /// none can be drawn (nothing is queued then).
    pub(super) fn header(
        &mut self,
        opcode: OpCode,
        fin: bool,
        len: usize,
    ) -> Result<FrameHeader, RandomnessError> {
        let mut h = FrameHeader::new(opcode, fin, len as u64);
        if self.role == Role::Client {
            let keys = self.keys.get_or_insert_with(|| Box::new(OsMaskSource::new()));
            h.mask = Some(keys.next_key()?);
        }
        Ok(h)
    }

    /// Queues a frame, copying the payload next to its header (masking it for a client).
    pub(super) fn write_frame(
        &mut self,
        opcode: OpCode,
        fin: bool,
        payload: &[u8],
    ) -> Result<(), RandomnessError> {
        self.write_frame_rsv(opcode, fin, false, payload)
    }

    pub(super) fn write_frame_rsv(
        &mut self,
        opcode: OpCode,
        fin: bool,
        rsv1: bool,
        payload: &[u8],
    ) -> Result<(), RandomnessError> {
        let mut h = self.header(opcode, fin, payload.len())?;
        h.rsv1 = rsv1;
        let mut hbuf = [0u8; MAX_HEADER_LEN];
        let hlen = h.encode(&mut hbuf);
        let tail = self.out.tail_mut(hlen + payload.len());
        tail.extend_from_slice(&hbuf[..hlen]);
        let start = tail.len();
        tail.extend_from_slice(payload);
        if let Some(key) = h.mask {
            apply_mask(&mut tail[start..], key, 0);
        }
        Ok(())
    }

    /// Queues a data frame, without copying a large payload when no masking is needed.
    pub(super) fn write_payload(
        &mut self,
        opcode: OpCode,
        fin: bool,
        rsv1: bool,
        payload: Bytes,
    ) -> Result<(), RandomnessError> {
        if self.role == Role::Server && payload.len() > COPY_THRESHOLD {
            let mut h = self.header(opcode, fin, payload.len())?;
            h.rsv1 = rsv1;
            let mut hbuf = [0u8; MAX_HEADER_LEN];
            let hlen = h.encode(&mut hbuf);
            self.out.tail_mut(hlen).extend_from_slice(&hbuf[..hlen]);
            self.out.push_chunk(payload);
            Ok(())
        } else {
            self.write_frame_rsv(opcode, fin, rsv1, &payload)
        }
    }

    // ---- output --------------------------------------------------------------------------

    /// Whether bytes are waiting to be written.
    pub fn wants_write(&self) -> bool {
        !self.out.is_empty()
    }

    /// How many bytes are waiting to be written.
    pub fn pending_output_len(&self) -> usize {
        self.out.len()
    }

    /// Fills `dst` with the bytes waiting to be written, in order, for one vectored write;
    /// returns how many slices were filled. Call [`advance_output`](Self::advance_output) with
    /// the number of bytes the transport took.
    pub fn pending_output<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        self.out.slices(dst)
    }

    /// The first contiguous run of bytes waiting to be written (for transports without
    /// vectored writes).
    pub fn pending_output_first(&self) -> &[u8] {
        self.out.first()
    }

    /// Marks `n` bytes of the pending output as written (progress stops the slow-peer timer).
    pub fn advance_output(&mut self, n: usize) {
        self.out.advance(n);
        if n > 0 {
            self.clocks.stall_since = None;
        }
    }

    /// Takes all pending output as one `Vec` (convenient for tests and simple transports).
    pub fn take_output(&mut self) -> Vec<u8> {
        let mut v = Vec::new();
        self.out.drain_to_vec(&mut v);
        if !v.is_empty() {
            // Output progressed, as with `advance_output`.
            self.clocks.stall_since = None;
        }
        v
    }

    /// Takes the output buffer's allocation when nothing is queued, to return it to a pool.
    pub fn take_write_buffer(&mut self) -> Option<BytesMut> {
        self.out.take_buffer()
    }

    /// Lends an (empty) buffer to gather small frames in. Returns it when the connection
    /// already holds one (or has output queued), so the caller can keep it for another.
    pub fn give_write_buffer(&mut self, buf: BytesMut) -> Option<BytesMut> {
        self.out.give_buffer(buf)
    }

    /// Lends a buffer to read into, for a connection that holds none (it released it when
    /// idle) or only the short tail of a partial frame, which moves into the lent buffer.
    /// Returns it when the connection keeps its own.
    ///
    /// With [`release_idle_buffers`](Self::release_idle_buffers) this lets every connection
    /// on a thread share one read buffer and one write buffer: an idle connection holds
    /// neither, and a busy one allocates nothing per message.
    pub fn give_read_buffer(&mut self, mut buf: BytesMut) -> Option<BytesMut> {
        let holds_tail_only = self.rbuf.len() <= IDLE_TAIL_MAX && self.rbuf.capacity() <= IDLE_TAIL_MAX;
        if self.rbuf.capacity() != 0 && !holds_tail_only {
            return Some(buf);
        }
        buf.clear();
        buf.extend_from_slice(&self.rbuf);
        self.rbuf = buf;
        None
    }

    /// Hands back the buffers an idle connection does not need, for the caller to lend to
    /// another connection (or drop). Call it when the transport has no data ready.
    ///
    /// - The read buffer, when it holds nothing, or only the tail of a partial frame of at
    ///   most 4 KiB, which is copied into a buffer of its own size first (so a peer that sends
    ///   a few bytes and stops pins no large buffer).
    /// - The write buffer, when nothing is queued.
    ///
    /// An idle connection then holds no buffer at all.
    pub fn release_idle_buffers(&mut self) -> IdleBuffers {
        let read = if self.rbuf.capacity() == 0 || self.eof {
            None
        } else if self.rbuf.is_empty() && self.frame.is_none() {
            Some(std::mem::take(&mut self.rbuf))
        } else if self.rbuf.len() <= IDLE_TAIL_MAX && self.rbuf.capacity() > IDLE_TAIL_MAX {
            let tail = BytesMut::from(&self.rbuf[..]);
            let mut big = std::mem::replace(&mut self.rbuf, tail);
            big.clear();
            Some(big)
        } else {
            None
        };
        IdleBuffers {
            read,
            write: self.out.take_buffer(),
        }
    }

    /// Drops idle buffers above `keep` bytes of capacity (call when the connection goes idle).
    pub fn shrink_buffers(&mut self, keep: usize) {
        self.out.shrink(keep);
        if self.rbuf.is_empty() && self.frame.is_none() && self.rbuf.capacity() > keep {
            self.rbuf = BytesMut::new();
        }
    }
}
