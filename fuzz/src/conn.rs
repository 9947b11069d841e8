//! Drives a `Connection` with fuzz input, as a transport and an echo application would, and
//! checks what it writes with a second `Connection` of the other role (the "peer").
//!
//! Input layout (missing bytes read as 0):
//!
//! | byte | meaning |
//! | --- | --- |
//! | 0 | flags: 0x01 deflate, 0x02 auto_pong, 0x04 auto_close_reply, 0x08 accept unmasked (server), 0x10 feed through `read_buffer()` (else `receive()`), 0x20 EOF at the end, 0x40 write compression, 0x80 the application closes after the first message |
//! | 1 | deflate parameters: 0x01 server_no_context_takeover, 0x02 client_no_context_takeover, bits 2-4 server window - 8, bits 5-7 client window - 8 |
//! | 2 | deflate config: bits 0-3 level, bits 4-5 threshold (0, 1, 64, 1000), 0x40 low_memory, 0x80 echo as two fragments |
//! | 3 | limits: bits 0-1 max message (64 KiB, 1 KiB, 200, 0), bits 2-3 max frame (none, 16 KiB, 125, 10), bits 4-5 read buffer size (64, 8 KiB, 100, 1000), 0x40 halve the message limit after each message |
//! | 4 | schedule length - 1 (bits 0-2), 0x08 streamed read mode, 0x10 switch read mode after each message, bits 5-6 stream chunk size (64 KiB, 1, 7, 100); then that many chunk sizes (0: all the rest) |
//! | ... | the bytes fed to the connection, in chunks of the schedule's sizes, cycling |
//!
//! In streamed mode the streamed message limit equals the message limit, and the application
//! echoes each chunk as a fragment as it arrives.
//!
//! Invariants: no panic; every event is within the limits (message size, UTF-8 text, control
//! payloads <= 125); streamed chunks keep their contract (one `first`, one `last`, only the
//! last may be empty, at most the chunk size, `streaming_message()` in step); our output is a sequence of whole, well-formed frames (masked iff we are
//! the client, at most one close frame, nothing after it) that the peer decodes into exactly
//! the messages we echoed, the pongs and the close frame we owe; after
//! `Err(ReadError::Protocol(e))` the last frame out is a close frame with `e.close_code()`
//! unless a close was already sent; errors are sticky; buffers stay proportional to the input
//! and the limits.

use crate::{Input, alloc};
use bytes::Bytes;
use ferrosocket_proto::{DeflateConfig, DeflateParams};
use ferrosocket_proto::{FrameHeader, OpCode};
use ferrosocket_proto::apply_mask;
use ferrosocket_proto::fuzzing::FixedMaskSource;
use ferrosocket_proto::{
    Chunk, CloseFrame, Config, Connection, Event, Message, MessageKind, ReadError, ReadMode, Role, SendError,
    State,
};
use std::collections::VecDeque;

/// What the peer must see next, in order.
#[derive(Debug)]
enum Expect {
    Message(Message),
    Pong(Bytes),
    Close(Option<u16>),
}

struct Harness {
    role: Role,
    conn: Connection,
    peer: Connection,
    deflate: bool,
    auto_pong: bool,
    auto_close_reply: bool,
    use_read_buffer: bool,
    app_close: bool,
    fragment_echo: bool,
    halve_limit: bool,
    max_message: usize,
    limit_now: usize,
    fed: usize,
    messages: usize,
    close_event: bool,
    first_err: Option<ReadError>,
    expect: VecDeque<Expect>,
    close_frames_out: usize,
    last_out: Option<(OpCode, Option<u16>)>,
    switch_mode: bool,
    chunk_size: usize,
    /// The streamed message received so far, while its chunks arrive.
    partial: Option<(MessageKind, Vec<u8>)>,
}

/// Runs one fuzz input against a connection of `role`.
pub fn run(role: Role, data: &[u8]) {
    let base = alloc::start();
    let mut input = Input::new(data);
    let flags = input.byte();
    let dp = input.byte();
    let dc = input.byte();
    let lim = input.byte();
    let sched_byte = input.byte();
    let sched_len = usize::from(sched_byte & 7) + 1;
    let mut sched: Vec<usize> = input
        .bytes(sched_len)
        .iter()
        .map(|&b| if b == 0 { usize::MAX } else { usize::from(b) })
        .collect();
    if sched.is_empty() {
        sched.push(usize::MAX);
    }
    let payload = input.rest();

    let max_message = [64 << 10, 1 << 10, 200, 0][usize::from(lim & 3)];
    let max_frame = [None, Some(16 << 10), Some(125), Some(10)][usize::from((lim >> 2) & 3)];
    let read_buffer_size = [64, 8 << 10, 100, 1000][usize::from((lim >> 4) & 3)];
    let chunk_size = [64 << 10, 1, 7, 100][usize::from((sched_byte >> 5) & 3)];
    let deflate = flags & 0x01 != 0;
    let auto_pong = flags & 0x02 != 0;
    let auto_close_reply = flags & 0x04 != 0;
    let config = Config::default()
        .max_message_size(Some(max_message))
        .max_frame_size(max_frame)
        .read_buffer_size(read_buffer_size)
        .max_streamed_message_size(Some(max_message as u64))
        .stream_chunk_size(chunk_size)
        .auto_pong(auto_pong)
        .auto_close_reply(auto_close_reply)
        .dangerous_accept_unmasked_frames(flags & 0x08 != 0 && role == Role::Server);
    let params = DeflateParams {
        server_no_context_takeover: dp & 0x01 != 0,
        client_no_context_takeover: dp & 0x02 != 0,
        server_max_window_bits: 8 + ((dp >> 2) & 7),
        client_max_window_bits: 8 + ((dp >> 5) & 7),
    };
    let dcfg = DeflateConfig::default()
        .level(u32::from(dc & 0x0f))
        .threshold([0, 1, 64, 1000][usize::from((dc >> 4) & 3)])
        .low_memory(dc & 0x40 != 0);

    let mut conn = Connection::new(role, config);
    let peer_role = match role {
        Role::Client => Role::Server,
        Role::Server => Role::Client,
    };
    let mut peer = Connection::new(
        peer_role,
        Config::default()
            .max_message_size(None)
            .max_frame_size(None)
            .auto_pong(false)
            .auto_close_reply(false),
    );
    // Deterministic mask keys: the run must be reproducible.
    conn.set_mask_source(Box::new(FixedMaskSource([0x37, 0xfa, 0x21, 0x3d])));
    peer.set_mask_source(Box::new(FixedMaskSource([1, 2, 3, 4])));
    if deflate {
        conn.enable_deflate(&params, &dcfg);
        peer.enable_deflate(&params, &DeflateConfig::default());
    }
    conn.set_write_compression(flags & 0x40 != 0);
    if sched_byte & 0x08 != 0 {
        conn.set_read_mode(ReadMode::Streamed);
    }

    let mut h = Harness {
        role,
        conn,
        peer,
        deflate,
        auto_pong,
        auto_close_reply,
        use_read_buffer: flags & 0x10 != 0,
        app_close: flags & 0x80 != 0,
        fragment_echo: dc & 0x80 != 0,
        halve_limit: lim & 0x40 != 0,
        max_message,
        limit_now: max_message,
        fed: 0,
        messages: 0,
        close_event: false,
        first_err: None,
        expect: VecDeque::new(),
        close_frames_out: 0,
        last_out: None,
        switch_mode: sched_byte & 0x10 != 0,
        chunk_size,
        partial: None,
    };

    h.poll_all();
    let mut pos = 0;
    let mut i = 0;
    while pos < payload.len() {
        let size = sched[i % sched.len()].min(payload.len() - pos);
        i += 1;
        h.feed(&payload[pos..pos + size]);
        pos += size;
        h.poll_all();
    }
    if flags & 0x20 != 0 {
        h.conn.receive_eof();
        h.poll_all();
        assert!(h.first_err.is_some(), "EOF must end the event stream");
    }

    assert!(h.close_frames_out <= 1);
    assert!(h.expect.is_empty(), "peer never saw {:?}", h.expect);
    let peak = alloc::peak_since(base);
    let bound = 4 * h.fed + 8 * h.max_message + (4 << 20);
    assert!(
        peak <= bound,
        "heap peak {peak} above {bound} (fed {}, limit {})",
        h.fed,
        h.max_message
    );
}

impl Harness {
    fn feed(&mut self, chunk: &[u8]) {
        self.fed += chunk.len();
        if self.use_read_buffer {
            let buf = self.conn.read_buffer();
            let cap = buf.capacity();
            let bound = 2 * (self.fed + self.max_message) + (1 << 20);
            assert!(cap <= bound, "read buffer capacity {cap} above {bound}");
            buf.extend_from_slice(chunk);
        } else {
            self.conn.receive(chunk);
        }
        assert!(self.conn.buffered_input() <= self.fed);
    }

    fn poll_all(&mut self) {
        loop {
            let close_sent_before = self.conn.close_sent().is_some();
            match self.conn.poll_event() {
                Ok(None) => {
                    assert!(self.first_err.is_none(), "Ok(None) after an error");
                    break;
                }
                Ok(Some(ev)) => {
                    assert!(self.first_err.is_none(), "event after an error");
                    assert!(!self.close_event, "event after the close event");
                    self.on_event(ev, close_sent_before);
                    self.drain();
                }
                Err(e) => {
                    match &self.first_err {
                        Some(first) => assert_eq!(&e, first, "errors must be sticky"),
                        None => self.on_error(&e, close_sent_before),
                    }
                    assert_eq!(self.conn.poll_event(), Err(e), "errors must be sticky");
                    self.drain();
                    break;
                }
            }
        }
    }

    fn on_error(&mut self, e: &ReadError, close_sent_before: bool) {
        match e {
            ReadError::Protocol(pe) => {
                assert_eq!(self.conn.state(), State::Closed);
                assert_eq!(self.conn.error(), Some(pe));
                let code = pe.close_code().as_u16();
                if close_sent_before {
                    // No second close frame: `drain` fails on any frame after our close.
                    self.drain();
                } else {
                    self.expect.push_back(Expect::Close(Some(code)));
                    self.drain();
                    assert_eq!(
                        self.last_out,
                        Some((OpCode::Close, Some(code))),
                        "output must end with a close frame with code {code} after {pe:?}"
                    );
                }
            }
            ReadError::Closed => assert!(self.close_event, "Closed without a close event"),
            ReadError::AbnormalClosure => assert!(self.conn.is_eof()),
            other => panic!("unexpected error {other:?}"),
        }
        self.first_err = Some(e.clone());
    }

    fn on_event(&mut self, ev: Event, close_sent_before: bool) {
        match ev {
            Event::Message(m) => {
                assert!(m.len() <= self.limit_now, "message of {} > limit {}", m.len(), self.limit_now);
                if let Message::Text(t) = &m {
                    assert!(std::str::from_utf8(t.as_bytes()).is_ok());
                }
                self.messages += 1;
                self.echo(m);
                self.message_done(close_sent_before);
            }
            Event::Chunk(c) => self.on_chunk(c),
            Event::Ping(p) => {
                assert!(p.len() <= 125);
                if self.auto_pong {
                    if !close_sent_before {
                        self.expect.push_back(Expect::Pong(p));
                    }
                } else if self.conn.send_pong(&p).is_ok() {
                    assert!(!close_sent_before);
                    self.expect.push_back(Expect::Pong(p));
                }
            }
            Event::Pong(p) => assert!(p.len() <= 125),
            Event::Close(f) => {
                self.close_event = true;
                // A close inside a streamed message ends it.
                self.partial = None;
                assert!(!self.conn.streaming_message());
                if let Some(f) = &f {
                    assert!(f.code.is_sendable());
                    assert!(f.reason.len() <= 123);
                }
                let code = f.as_ref().map(|f| f.code.as_u16());
                if close_sent_before {
                    assert_eq!(self.conn.state(), State::Closed);
                } else if self.auto_close_reply {
                    self.expect.push_back(Expect::Close(code));
                } else {
                    assert_eq!(self.conn.state(), State::Closing);
                    self.conn.send_close(None).expect("close reply");
                    self.expect.push_back(Expect::Close(None));
                }
            }
        }
    }

    /// After a whole message, or the last chunk of a streamed one.
    fn message_done(&mut self, close_sent_before: bool) {
        if self.app_close && self.messages == 1 {
            match self.conn.send_close(Some(CloseFrame::new(1000u16, "bye"))) {
                Ok(()) => self.expect.push_back(Expect::Close(Some(1000))),
                Err(e) => {
                    assert_eq!(e, SendError::Closed);
                    assert!(close_sent_before);
                }
            }
        }
        if self.halve_limit {
            self.limit_now = (self.limit_now / 2).max(16);
            self.conn.set_max_message_size(Some(self.limit_now));
        }
        if self.switch_mode {
            let next = match self.conn.read_mode() {
                ReadMode::Whole => ReadMode::Streamed,
                ReadMode::Streamed => ReadMode::Whole,
            };
            self.conn.set_read_mode(next);
        }
    }

    /// Checks a chunk against the streaming contract and echoes it as a fragment at once.
    fn on_chunk(&mut self, c: Chunk) {
        assert!(c.data.len() <= self.chunk_size, "chunk of {} > {}", c.data.len(), self.chunk_size);
        assert!(c.last || !c.data.is_empty(), "empty chunk before the last");
        assert_eq!(c.first, self.partial.is_none(), "first flag");
        assert_eq!(self.conn.streaming_message(), !c.last);
        let (kind, mut so_far) = self.partial.take().unwrap_or((c.kind, Vec::new()));
        assert_eq!(kind, c.kind, "kind changed inside a message");
        so_far.extend_from_slice(&c.data);
        assert!(so_far.len() <= self.max_message, "streamed message of {} > limit {}", so_far.len(), self.max_message);
        let close_sent_before = self.conn.close_sent().is_some();
        match self.conn.send_fragment(c.kind, c.data.clone(), c.last) {
            Ok(()) => assert!(!close_sent_before),
            Err(SendError::Closed) => assert!(close_sent_before),
            Err(e) => panic!("chunk echo failed: {e:?}"),
        }
        if !c.last {
            self.partial = Some((kind, so_far));
            return;
        }
        let m = match kind {
            MessageKind::Text => Message::text(String::from_utf8(so_far).expect("streamed text is UTF-8")),
            MessageKind::Binary => Message::binary(so_far),
        };
        if !close_sent_before {
            self.expect.push_back(Expect::Message(m));
        }
        self.messages += 1;
        self.message_done(close_sent_before);
    }

    fn echo(&mut self, m: Message) {
        let can_send = self.conn.close_sent().is_none();
        let result = if self.fragment_echo && m.len() >= 2 {
            let kind = m.kind();
            let b = m.as_bytes().clone();
            let mid = b.len() / 2;
            self.conn
                .send_fragment(kind, b.slice(..mid), false)
                .and_then(|()| self.conn.send_fragment(kind, b.slice(mid..), true))
        } else {
            self.conn.send(m.clone())
        };
        match result {
            Ok(()) => {
                assert!(can_send);
                self.expect.push_back(Expect::Message(m));
            }
            Err(SendError::Closed) => assert!(!can_send),
            Err(e) => panic!("echo failed: {e:?}"),
        }
    }

    /// Takes our output, checks its framing, and has the peer decode it.
    fn drain(&mut self) {
        let out = self.conn.take_output();
        if out.is_empty() {
            return;
        }
        let mut rest = &out[..];
        while !rest.is_empty() {
            let (h, n) = FrameHeader::decode(rest)
                .expect("our frame header decodes")
                .expect("our output holds whole frame headers");
            let len = usize::try_from(h.payload_len).expect("length fits");
            assert!(rest.len() >= n + len, "truncated frame in our output");
            assert_eq!(h.mask.is_some(), self.role == Role::Client, "masking by role");
            assert!(!h.rsv2 && !h.rsv3);
            assert!(!h.rsv1 || self.deflate);
            assert_eq!(self.close_frames_out, 0, "frame after our close frame");
            let op = OpCode::from_u8(h.opcode).expect("we send valid opcodes");
            assert!(!op.is_control() || (h.fin && len <= 125));
            let mut code = None;
            if op == OpCode::Close {
                self.close_frames_out += 1;
                let mut p = rest[n..n + len].to_vec();
                if let Some(k) = h.mask {
                    apply_mask(&mut p, k, 0);
                }
                assert!(p.len() != 1);
                if p.len() >= 2 {
                    code = Some(u16::from_be_bytes([p[0], p[1]]));
                    assert!(std::str::from_utf8(&p[2..]).is_ok(), "close reason not UTF-8");
                }
            }
            self.last_out = Some((op, code));
            rest = &rest[n + len..];
        }

        self.peer.receive(&out);
        loop {
            match self.peer.poll_event() {
                Ok(None) | Err(ReadError::Closed) => break,
                Ok(Some(ev)) => {
                    let exp = self
                        .expect
                        .pop_front()
                        .unwrap_or_else(|| panic!("peer saw {ev:?}, nothing was expected"));
                    match (ev, exp) {
                        (Event::Message(a), Expect::Message(b)) => assert_eq!(a, b, "echo differs"),
                        (Event::Pong(a), Expect::Pong(b)) => assert_eq!(a, b, "pong differs"),
                        (Event::Close(a), Expect::Close(b)) => {
                            assert_eq!(a.map(|f| f.code.as_u16()), b, "close code differs")
                        }
                        (ev, exp) => panic!("peer saw {ev:?}, expected {exp:?}"),
                    }
                }
                Err(e) => panic!("peer rejected our output: {e:?}"),
            }
        }
        assert!(self.expect.is_empty(), "peer did not see {:?}", self.expect);
    }
}
