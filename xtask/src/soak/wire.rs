//! The fault injector's side of the wire, built on `ferrosocket-proto`: client frames from its
//! [`FrameHeader`] encoder and [`apply_mask`] (so that invalid frames can be made on purpose),
//! server frames read with its header decoder, and upgrade requests and answers through its
//! client handshake. Blocking `std` sockets to 127.0.0.1 only, every operation with a timeout.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ferrosocket_proto::{
    ClientHandshake, FrameHeader, HandshakeError, Limits, MAX_HEADER_LEN, apply_mask, parse_response,
    request_from_url, write_request,
};
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use rand::Rng;
use rand::rngs::StdRng;
use rustix::event::{PollFd, PollFlags, Timespec, poll};

/// The timeout of every connect, send and receive.
pub(crate) const OP_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest response head read before giving up on it.
const MAX_HEAD: usize = 65536;

/// Why a fault did not pass.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Fault {
    /// The server did something it must not, or failed to do something due.
    #[error("{0}")]
    Failure(String),
    /// A socket operation failed where nothing was due to fail (refused, timed out, reset).
    #[error("{}: {}", io_kind(.0), .0)]
    Io(#[from] io::Error),
}

fn io_kind(e: &io::Error) -> String {
    match e.kind() {
        // A timeout set with SO_RCVTIMEO/SO_SNDTIMEO surfaces as EAGAIN.
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timeout".into(),
        kind => format!("{kind:?}"),
    }
}

/// A [`Fault::Failure`].
pub(crate) fn failure(why: impl Into<String>) -> Fault {
    Fault::Failure(why.into())
}

/// Whether `e` means that the peer reset or closed the connection under us.
pub(crate) fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionAborted
    )
}

/// Whether `e` is a socket timeout.
pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// How to build one client frame, valid or not.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameSpec {
    opcode: u8,
    fin: bool,
    masked: bool,
    /// RSV bits as they sit in the first byte (0x40, 0x20, 0x10).
    rsv: u8,
    /// The payload length to declare, when it is not the payload's.
    declared_len: Option<u64>,
}

impl FrameSpec {
    /// A final, masked frame with no reserved bits; `opcode` is the raw 4-bit value.
    pub(crate) fn new(opcode: u8) -> Self {
        Self {
            opcode,
            fin: true,
            masked: true,
            rsv: 0,
            declared_len: None,
        }
    }

    /// Without FIN.
    pub(crate) fn not_fin(mut self) -> Self {
        self.fin = false;
        self
    }

    /// Unmasked (a protocol violation from a client).
    pub(crate) fn unmasked(mut self) -> Self {
        self.masked = false;
        self
    }

    /// With the RSV bits `bits` (0x40, 0x20, 0x10) set.
    pub(crate) fn rsv(mut self, bits: u8) -> Self {
        self.rsv = bits;
        self
    }

    /// Declaring `len` payload bytes whatever the payload passed to [`encode`](Self::encode).
    pub(crate) fn declare(mut self, len: u64) -> Self {
        self.declared_len = Some(len);
        self
    }

    /// Header and (masked) payload, ready for the wire.
    pub(crate) fn encode(self, payload: &[u8], rng: &mut StdRng) -> Vec<u8> {
        let key: Option<[u8; 4]> = self.masked.then(|| rng.random());
        let header = FrameHeader {
            fin: self.fin,
            rsv1: self.rsv & 0x40 != 0,
            rsv2: self.rsv & 0x20 != 0,
            rsv3: self.rsv & 0x10 != 0,
            opcode: self.opcode,
            mask: key,
            payload_len: self.declared_len.unwrap_or(payload.len() as u64),
        };
        let mut head = [0u8; MAX_HEADER_LEN];
        let n = header.encode(&mut head);
        let mut out = Vec::with_capacity(n + payload.len());
        out.extend_from_slice(&head[..n]);
        out.extend_from_slice(payload);
        if let Some(key) = key {
            apply_mask(&mut out[n..], key, 0);
        }
        out
    }
}

/// A well-formed, final, masked client frame.
pub(crate) fn frame(opcode: u8, payload: &[u8], rng: &mut StdRng) -> Vec<u8> {
    FrameSpec::new(opcode).encode(payload, rng)
}

/// `n` random bytes.
pub(crate) fn random_bytes(n: usize, rng: &mut StdRng) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rng.fill(&mut v[..]);
    v
}

/// A frame from the server.
#[derive(Debug)]
pub(crate) struct ServerFrame {
    pub(crate) opcode: u8,
    pub(crate) payload: Vec<u8>,
}

/// Takes the first whole server frame off the front of `buf`, or `None` if it is incomplete.
pub(crate) fn take_frame(buf: &mut Vec<u8>) -> Result<Option<ServerFrame>, Fault> {
    let (header, n) = match FrameHeader::decode(buf) {
        Ok(Some(h)) => h,
        Ok(None) => return Ok(None),
        Err(e) => return Err(failure(format!("server sent a bad frame header: {e}"))),
    };
    if header.mask.is_some() {
        return Err(failure("server sent a masked frame"));
    }
    let end = usize::try_from(header.payload_len)
        .ok()
        .and_then(|len| len.checked_add(n))
        .ok_or_else(|| failure("server declared an impossible frame length"))?;
    if buf.len() < end {
        return Ok(None);
    }
    let payload = buf[n..end].to_vec();
    buf.drain(..end);
    Ok(Some(ServerFrame {
        opcode: header.opcode,
        payload,
    }))
}

/// A connected socket to 127.0.0.1:`port` with [`OP_TIMEOUT`] on every operation.
pub(crate) fn connect(port: u16) -> io::Result<TcpStream> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let s = TcpStream::connect_timeout(&addr, OP_TIMEOUT)?;
    s.set_read_timeout(Some(OP_TIMEOUT))?;
    s.set_write_timeout(Some(OP_TIMEOUT))?;
    s.set_nodelay(true)?;
    Ok(s)
}

fn handshake_failure(e: HandshakeError) -> Fault {
    failure(format!("cannot build the request: {e}"))
}

/// A GET request for `path` on 127.0.0.1:`port` with `headers` added.
pub(crate) fn request(port: u16, path: &str, headers: &[(String, String)]) -> Result<Request<()>, Fault> {
    let mut req = request_from_url(&format!("ws://127.0.0.1:{port}{path}")).map_err(handshake_failure)?;
    for (name, value) in headers {
        let name = HeaderName::try_from(name.as_str()).map_err(|e| failure(format!("header name: {e}")))?;
        let value =
            HeaderValue::try_from(value.as_str()).map_err(|e| failure(format!("header value: {e}")))?;
        req.headers_mut().append(name, value);
    }
    Ok(req)
}

/// The bytes of a plain (not upgrade) request.
pub(crate) fn plain_request(req: &Request<()>) -> Vec<u8> {
    let mut out = Vec::new();
    write_request(req, &mut out);
    out
}

/// An upgrade request (with an `X-Pad` header of `pad` bytes when `pad > 0`) and the state to
/// check its answer with.
pub(crate) fn upgrade_request(
    port: u16,
    path: &str,
    pad: usize,
    rng: &mut StdRng,
) -> Result<(ClientHandshake, Vec<u8>), Fault> {
    let headers = if pad > 0 {
        vec![("x-pad".to_owned(), "p".repeat(pad))]
    } else {
        Vec::new()
    };
    let (hs, req) =
        ClientHandshake::new(request(port, path, &headers)?, rng.random()).map_err(handshake_failure)?;
    Ok((hs, plain_request(&req)))
}

/// Reads a response head; what followed it stays in `buf`.
pub(crate) fn read_head(
    s: &mut TcpStream,
    buf: &mut BytesMut,
    deadline: Instant,
) -> Result<Response<()>, Fault> {
    let limits = Limits {
        max_header_bytes: MAX_HEAD,
        max_headers: 64,
    };
    let mut chunk = vec![0u8; 65536];
    loop {
        match parse_response(buf, &limits) {
            Ok(Some(resp)) => return Ok(resp),
            Ok(None) => {}
            Err(e) => return Err(failure(format!("unparsable response head: {e}"))),
        }
        if Instant::now() > deadline || buf.len() > MAX_HEAD {
            return Err(failure("no complete HTTP response head"));
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            let start = String::from_utf8_lossy(&buf[..buf.len().min(40)]).into_owned();
            return Err(failure(format!(
                "connection closed before a complete response head ({start:?})"
            )));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A connected, upgraded socket and the bytes that followed the `101` head.
pub(crate) fn handshake(port: u16, path: &str, rng: &mut StdRng) -> Result<(TcpStream, Vec<u8>), Fault> {
    let mut s = connect(port)?;
    let (hs, req) = upgrade_request(port, path, 0, rng)?;
    s.write_all(&req)?;
    let mut buf = BytesMut::new();
    let resp = read_head(&mut s, &mut buf, Instant::now() + OP_TIMEOUT)?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Err(failure(format!("handshake refused: {}", resp.status())));
    }
    hs.verify(&resp)
        .map_err(|e| failure(format!("bad 101 answer: {e}")))?;
    Ok((s, buf.to_vec()))
}

/// Abortive close: SO_LINGER 0, then the close sends an RST.
pub(crate) fn reset(s: TcpStream) {
    let _ = rustix::net::sockopt::set_socket_linger(&s, Some(Duration::ZERO));
    drop(s);
}

/// Half-closes the sending side (FIN).
pub(crate) fn shutdown_write(s: &TcpStream) -> io::Result<()> {
    s.shutdown(Shutdown::Write)
}

/// True when the peer closed (EOF or reset) within `timeout`; reads and drops data meanwhile.
pub(crate) fn wait_eof(s: &mut TcpStream, timeout: Duration) -> io::Result<bool> {
    let deadline = Instant::now() + timeout;
    let mut chunk = vec![0u8; 65536];
    // Bounded by the deadline: each read waits at most until it.
    while let Some(left) = deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
    {
        s.set_read_timeout(Some(left.max(Duration::from_millis(50))))?;
        match s.read(&mut chunk) {
            Ok(0) => return Ok(true),
            Ok(_) => {}
            Err(e) if is_reset(&e) => return Ok(true),
            Err(e) if is_timeout(&e) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

fn poll_now(s: &TcpStream, flags: PollFlags) -> PollFlags {
    let mut fds = [PollFd::new(s, flags)];
    match poll(
        &mut fds,
        Some(&Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        }),
    ) {
        Ok(_) => fds[0].revents(),
        Err(_) => PollFlags::ERR,
    }
}

/// Whether the peer has ended the connection (FIN or RST), without reading anything: what the
/// TCP state leaving ESTABLISHED shows, seen through `POLLRDHUP`.
pub(crate) fn peer_gone(s: &TcpStream) -> bool {
    poll_now(s, PollFlags::RDHUP).intersects(PollFlags::RDHUP | PollFlags::HUP | PollFlags::ERR)
}

/// Whether a read would not block (data, EOF or an error is waiting).
pub(crate) fn readable(s: &TcpStream) -> bool {
    !poll_now(s, PollFlags::IN).is_empty()
}
