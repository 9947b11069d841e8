//! The raw test client ([`Client`]) and frames built by hand ([`frame`], [`masked`],
//! [`RawFrame`]).

use super::server::Req;
use super::{MASK, within};
use bytes::BytesMut;
use ferrosocket_proto::apply_mask;
use ferrosocket_proto::{CloseFrame, Config, Connection, Event, Message, ReadError, Role};
use ferrosocket_proto::{FrameHeader, MAX_HEADER_LEN, OpCode};
use ferrosocket_proto::{Limits, parse_response};
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

// ---- frames built by hand ------------------------------------------------------------------

/// One frame on the wire; masked with `mask` when given.
pub(crate) fn frame(opcode: OpCode, fin: bool, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let header = FrameHeader {
        mask,
        ..FrameHeader::new(opcode, fin, payload.len() as u64)
    };
    let mut hbuf = [0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut hbuf);
    let mut out = hbuf[..n].to_vec();
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut out[start..], key, 0);
    }
    out
}

/// A masked, final frame (what a client sends).
pub(crate) fn masked(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    frame(opcode, true, payload, Some(MASK))
}

/// The payload of a close frame.
pub(crate) fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_bytes());
    p
}

/// The unmasked frame a server sends for `msg`, as one frame.
pub(crate) fn server_frame(msg: &Message) -> Vec<u8> {
    frame(OpCode::from(msg.kind()), true, msg.as_bytes(), None)
}

/// A frame the server sent, read raw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawFrame {
    pub(crate) fin: bool,
    pub(crate) opcode: OpCode,
    pub(crate) payload: Vec<u8>,
}

impl RawFrame {
    /// The single unmasked frame a server sends for `msg`.
    pub(crate) fn of(msg: &Message) -> Self {
        Self {
            fin: true,
            opcode: OpCode::from(msg.kind()),
            payload: msg.as_bytes().to_vec(),
        }
    }

    /// The code and reason of a close frame (`None`: no code).
    pub(crate) fn close(&self) -> Option<(u16, String)> {
        assert_eq!(self.opcode, OpCode::Close, "expected a close frame, got {self:?}");
        match &self.payload[..] {
            [] => None,
            [hi, lo, reason @ ..] => Some((
                u16::from_be_bytes([*hi, *lo]),
                String::from_utf8(reason.to_vec()).expect("utf-8 reason"),
            )),
            _ => panic!("one-byte close payload"),
        }
    }
}

// ---- the test client -----------------------------------------------------------------------

/// The client end of an upgraded connection, over TCP or an in-memory pipe.
///
/// Three ways to read, each a different peer:
/// - [`next_event`](Self::next_event) drives a sans-I/O client `Connection` and writes its
///   automatic replies (pongs, the close reply) at once;
/// - [`next`](Self::next) drives the same core but leaves those replies queued until
///   [`flush`](Self::flush), so a test decides when (or whether) the server sees them, and
///   [`next_answering`](Self::next_answering) writes them after each event;
/// - [`read_frame`](Self::read_frame) parses the server's frames by hand.
///
/// Bytes read but not parsed stay in `raw`.
pub(crate) struct Client<S = TcpStream> {
    pub(crate) io: S,
    pub(crate) core: Connection,
    pub(crate) raw: BytesMut,
    pub(crate) response: http::Response<()>,
}

impl Client<TcpStream> {
    /// Connects to a server on `addr`, sends the valid upgrade request and checks the 101.
    pub(crate) async fn connect_to(addr: SocketAddr) -> Self {
        let mut io = within("tcp connect", TcpStream::connect(addr))
            .await
            .expect("connect");
        io.set_nodelay(true).expect("nodelay");
        within("writing the request", io.write_all(&Req::valid().bytes()))
            .await
            .expect("write request");
        let client = Self::after_handshake(io).await;
        assert_eq!(client.response.status(), 101, "{:?}", client.response);
        client
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    /// Reads the response head from `io` (anything after it stays buffered).
    pub(crate) async fn after_handshake(mut io: S) -> Self {
        let mut raw = BytesMut::with_capacity(1024);
        let response = within("the handshake response", async {
            loop {
                if let Some(r) = parse_response(&mut raw, &Limits::default()).expect("valid response") {
                    return r;
                }
                let n = io.read_buf(&mut raw).await.expect("read response");
                assert_ne!(n, 0, "EOF before the response head; got {raw:?}");
            }
        })
        .await;
        Self {
            io,
            core: Connection::new(Role::Client, Config::default()),
            raw,
            response,
        }
    }

    /// Writes raw bytes.
    pub(crate) async fn write(&mut self, bytes: &[u8]) {
        within("a client write", self.io.write_all(bytes))
            .await
            .expect("client write");
    }

    /// Writes out what the client core queued.
    pub(crate) async fn flush(&mut self) {
        let out = self.core.take_output();
        self.write(&out).await;
    }

    /// Sends a message through the client core.
    pub(crate) async fn send(&mut self, msg: impl Into<Message>) {
        self.core.send(msg.into()).expect("client send");
        self.flush().await;
    }

    /// Sends a ping through the client core.
    pub(crate) async fn ping(&mut self, payload: &[u8]) {
        self.core.send_ping(payload).expect("client ping");
        self.flush().await;
    }

    /// Sends a pong through the client core.
    pub(crate) async fn pong(&mut self, payload: &[u8]) {
        self.core.send_pong(payload).expect("client pong");
        self.flush().await;
    }

    /// Sends a close frame through the client core.
    pub(crate) async fn close(&mut self, frame: Option<CloseFrame>) {
        self.core.send_close(frame).expect("client close");
        self.flush().await;
    }

    /// Reads once more from the socket into `raw`; `false` on EOF.
    async fn read_more(&mut self) -> bool {
        let n = within("data from the server", self.io.read_buf(&mut self.raw))
            .await
            .expect("client read");
        n != 0
    }

    /// The next event through the client core, or why there is none.
    pub(crate) async fn try_next_event(&mut self) -> Result<Event, ReadError> {
        loop {
            if !self.raw.is_empty() {
                self.core.receive(&self.raw);
                self.raw.clear();
            }
            let event = self.core.poll_event();
            // Automatic pongs and close replies; the server may be gone already.
            let out = self.core.take_output();
            if !out.is_empty() {
                let _ = self.io.write_all(&out).await;
            }
            match event? {
                Some(e) => return Ok(e),
                None => {
                    if !self.read_more().await {
                        self.core.receive_eof();
                    }
                }
            }
        }
    }

    /// The next event through the client core.
    pub(crate) async fn next_event(&mut self) -> Event {
        self.try_next_event().await.expect("an event")
    }

    /// The next event, or `None` at EOF (or once the core has nothing more to say). Automatic
    /// replies stay queued until [`flush`](Self::flush). A read error (a reset) fails the
    /// test; the wait is not bounded here (wrap it in [`within`] or a timeout).
    pub(crate) async fn next(&mut self) -> Option<Event> {
        loop {
            if !self.raw.is_empty() {
                self.core.receive(&self.raw);
                self.raw.clear();
            }
            match self.core.poll_event() {
                Ok(Some(ev)) => return Some(ev),
                Ok(None) => {}
                Err(_) => return None,
            }
            let n = self
                .io
                .read_buf(&mut self.raw)
                .await
                .expect("client read: EOF or data, not a reset");
            if n == 0 {
                return None;
            }
        }
    }

    /// [`next`](Self::next), then writes the automatic replies (a live peer; a write error is
    /// ignored, the server may be gone).
    pub(crate) async fn next_answering(&mut self) -> Option<Event> {
        let ev = self.next().await;
        let out = self.core.take_output();
        if !out.is_empty() {
            let _ = self.io.write_all(&out).await;
        }
        ev
    }

    /// The next close frame through [`next`](Self::next), skipping everything before it;
    /// panics at EOF. Its reply stays queued.
    pub(crate) async fn next_close(&mut self) -> Option<CloseFrame> {
        loop {
            match within("a close frame", self.next()).await {
                Some(Event::Close(f)) => return f,
                Some(_) => continue,
                None => panic!("EOF before a close frame"),
            }
        }
    }

    /// The next message; pings and pongs on the way are skipped.
    pub(crate) async fn recv(&mut self) -> Message {
        loop {
            match self.next_event().await {
                Event::Message(m) => return m,
                Event::Ping(_) | Event::Pong(_) => {}
                Event::Close(c) => panic!("expected a message, got close {c:?}"),
                Event::Chunk(c) => panic!("expected a message, got chunk {c:?}"),
            }
        }
    }

    /// The next frame the server sent, parsed by hand (server frames must not be masked).
    pub(crate) async fn read_frame(&mut self) -> RawFrame {
        loop {
            if let Some((h, n)) = FrameHeader::decode(&self.raw).expect("valid header") {
                let len = usize::try_from(h.payload_len).expect("length fits");
                if self.raw.len() >= n + len {
                    assert_eq!(h.mask, None, "server frames are not masked");
                    let bytes = self.raw.split_to(n + len);
                    return RawFrame {
                        fin: h.fin,
                        opcode: OpCode::from_u8(h.opcode).expect("known opcode"),
                        payload: bytes[n..].to_vec(),
                    };
                }
            }
            assert!(
                self.read_more().await,
                "EOF inside or before a frame: {:?}",
                self.raw
            );
        }
    }

    /// Reads exactly `n` raw bytes.
    pub(crate) async fn read_exact_raw(&mut self, n: usize) -> Vec<u8> {
        while self.raw.len() < n {
            assert!(
                self.read_more().await,
                "EOF after {} of {n} bytes",
                self.raw.len()
            );
        }
        self.raw.split_to(n).to_vec()
    }

    /// Reads the next frame and checks that it is a close frame with `code`; returns its reason.
    pub(crate) async fn expect_close(&mut self, code: u16) -> String {
        let f = self.read_frame().await;
        let (got, reason) = f.close().expect("a close code");
        assert_eq!(got, code, "close code on the wire (reason {reason:?})");
        reason
    }

    /// Plays the polite peer while the server fails the connection: reads everything the
    /// server sends until it closes its side (kept in `raw` for `expect_close`), then closes
    /// ours. The server lingers, reading, until the peer does this (or its close timeout).
    pub(crate) async fn read_to_eof_and_close(&mut self) {
        within("the server's EOF", async {
            while self.io.read_buf(&mut self.raw).await.expect("read until EOF") > 0 {}
        })
        .await;
        let _ = self.io.shutdown().await;
    }

    /// Checks that the server closed the TCP connection, with nothing more sent.
    pub(crate) async fn expect_eof(&mut self) {
        assert!(self.raw.is_empty(), "unexpected bytes before EOF: {:?}", self.raw);
        let n = within("EOF", self.io.read_buf(&mut self.raw))
            .await
            .expect("clean EOF, not an error");
        assert_eq!(n, 0, "expected EOF, got {:?}", self.raw);
    }
}
