//! Helpers shared by the integration tests: a raw WebSocket test client over `TcpStream`.
//!
//! The client never uses ferrosocket's own client. It writes hand-made upgrade requests and
//! either hand-built frames (`FrameHeader` + `apply_mask`) or the output of a sans-I/O
//! `ferrosocket_proto::Connection` in the client role, and reads the server's frames raw.
//! Every wait is bounded by [`WAIT`], so no test can hang.

#![allow(dead_code)]

use bytes::BytesMut;
use ferrosocket::{Conn, Error, Upgrader};
use ferrosocket_proto::apply_mask;
use ferrosocket_proto::{CloseFrame, Config, Connection, Event, Message, ReadError, Role};
use ferrosocket_proto::{FrameHeader, MAX_HEADER_LEN, OpCode};
use ferrosocket_proto::{Limits, parse_response};
use std::future::Future;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The longest any single wait of a test may take.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// The RFC 6455 §1.3 sample key and its accept value.
pub(crate) const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub(crate) const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The mask key of hand-built client frames.
pub(crate) const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Awaits `fut`, failing the test if it takes longer than [`WAIT`].
pub(crate) async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// A connected pair of sockets through a `127.0.0.1:0` listener: (server side, client side).
pub(crate) async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (client, server) = within("tcp connect", async {
        tokio::join!(TcpStream::connect(addr), listener.accept())
    })
    .await;
    let client = client.expect("connect");
    client.set_nodelay(true).expect("nodelay");
    (server.expect("accept").0, client)
}

// ---- hand-written upgrade requests ---------------------------------------------------------

/// An upgrade request that can be broken header by header.
#[derive(Debug, Clone)]
pub(crate) struct Req {
    pub(crate) method: &'static str,
    pub(crate) version: &'static str,
    pub(crate) headers: Vec<(String, String)>,
}

impl Req {
    /// A valid request: `GET /chat HTTP/1.1` with Host `localhost`, the sample key, version 13.
    pub(crate) fn valid() -> Self {
        Self {
            method: "GET",
            version: "HTTP/1.1",
            headers: [
                ("Host", "localhost"),
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", KEY),
                ("Sec-WebSocket-Version", "13"),
            ]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        }
    }

    /// Removes every header called `name`.
    pub(crate) fn without(mut self, name: &str) -> Self {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self
    }

    /// Replaces the header `name` (or adds it).
    pub(crate) fn set(self, name: &str, value: &str) -> Self {
        self.without(name).add(name, value)
    }

    /// Adds a header line.
    pub(crate) fn add(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The request head on the wire.
    pub(crate) fn bytes(&self) -> Vec<u8> {
        let mut s = format!("{} /chat {}\r\n", self.method, self.version);
        for (k, v) in &self.headers {
            s.push_str(&format!("{k}: {v}\r\n"));
        }
        s.push_str("\r\n");
        s.into_bytes()
    }
}

/// What a refused handshake looked like from both ends.
pub(crate) struct Refused {
    pub(crate) error: Error,
    pub(crate) response: http::Response<()>,
    pub(crate) body: Vec<u8>,
}

/// Sends `request` (raw bytes) to `upgrader.accept` and returns the server's result and the
/// client socket, after the client has read the response head (if any).
pub(crate) async fn handshake(
    upgrader: &Upgrader,
    request: &[u8],
) -> (Result<Conn<TcpStream>, Error>, TcpStream) {
    let (server, mut client) = tcp_pair().await;
    within("writing the request", client.write_all(request))
        .await
        .expect("write request");
    let result = within("accept", upgrader.accept(server)).await;
    (result, client)
}

/// Runs a handshake that must be refused; returns the error and the whole response (the
/// server closes the connection after it).
pub(crate) async fn refused(upgrader: &Upgrader, request: &[u8]) -> Refused {
    let (result, mut client) = handshake(upgrader, request).await;
    let error = match result {
        Ok(conn) => panic!("handshake accepted: {conn:?}"),
        Err(e) => e,
    };
    let mut raw = Vec::new();
    // The server closes after the response; a reset after it was read is fine too.
    let _ = within("the rejection response", client.read_to_end(&mut raw)).await;
    let mut buf = BytesMut::from(&raw[..]);
    let response = parse_response(&mut buf, &Limits::default())
        .expect("a well-formed response")
        .expect("a complete response head");
    if let Some(len) = response.headers().get("content-length") {
        let len: usize = len.to_str().expect("ascii").parse().expect("a number");
        assert_eq!(buf.len(), len, "body length matches Content-Length");
    }
    Refused {
        error,
        response,
        body: buf.to_vec(),
    }
}

/// Upgrades a connection with `upgrader` and the valid request plus `extra` headers; checks
/// the 101 and its accept key. Returns the server's `Conn` and the test client.
pub(crate) async fn connect_with(upgrader: &Upgrader, req: Req) -> (Conn<TcpStream>, Client) {
    let (result, io) = handshake(upgrader, &req.bytes()).await;
    let conn = result.expect("handshake accepted");
    let client = Client::after_handshake(io).await;
    assert_eq!(client.response.status(), 101);
    assert_eq!(client.response.headers()["sec-websocket-accept"], ACCEPT);
    (conn, client)
}

/// [`connect_with`] the valid request.
pub(crate) async fn connect(upgrader: &Upgrader) -> (Conn<TcpStream>, Client) {
    connect_with(upgrader, Req::valid()).await
}

/// An upgrader whose connections echo every message (recv → feed) until the session ends;
/// the task returns how it ended.
pub(crate) fn spawn_echo(mut conn: Conn<TcpStream>) -> tokio::task::JoinHandle<Error> {
    tokio::spawn(async move {
        loop {
            match conn.recv().await {
                Ok(msg) => {
                    if let Err(e) = conn.feed(msg).await {
                        return e;
                    }
                }
                Err(e) => return e,
            }
        }
    })
}

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

/// The client end of an upgraded connection.
///
/// `next_event` drives a sans-I/O client `Connection` (it answers pings and closes by itself);
/// `read_frame` parses the server's frames by hand. Bytes read but not parsed stay in `raw`.
pub(crate) struct Client {
    pub(crate) io: TcpStream,
    pub(crate) core: Connection,
    pub(crate) raw: BytesMut,
    pub(crate) response: http::Response<()>,
}

impl Client {
    /// Reads the response head from `io` (anything after it stays buffered).
    pub(crate) async fn after_handshake(mut io: TcpStream) -> Self {
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
