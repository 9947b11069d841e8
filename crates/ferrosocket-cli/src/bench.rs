//! `ferrosocket bench URL`: a load generator for any RFC 6455 echo server.
//!
//! It is built not to be the bottleneck:
//!
//! - the handshake uses ferrosocket's sans-I/O client handshake, then each connection is a
//!   raw `TcpStream`;
//! - the K frames a connection keeps in flight are built and masked once per run (one fixed
//!   mask key: fine for a load generator, never for a real client) and shared by every
//!   connection; K frames leave with one write, and the r frames due after a read leave with
//!   one (vectored) write;
//! - replies are read into one reusable buffer per connection and parsed in place with
//!   `FrameHeader::decode` (server frames are unmasked); payloads are only compared
//!   (`--verify`) or skipped, never copied, and nothing is allocated per message;
//! - one `Instant::now()` per read: replies that arrive together share a receive time, and
//!   frames written together share a send time; latency (send to echo, per message) goes to
//!   an HDR histogram, locked once per read;
//! - everything runs on a tokio current_thread runtime by default (`--threads N` for more),
//!   so `taskset -c 1 ferrosocket bench ...` keeps the load on one core.
//!
//! Every loop is bounded: connecting and the handshake by `--timeout`, the load by
//! `--duration` (and `--messages`), and a server that stops answering is left at the deadline.
//! With `--compress` (permessage-deflate) the client promises `client_no_context_takeover`,
//! so the compressed frames are still built once; replies go through a client
//! [`Connection`] to be inflated (that path allocates per message).

use ferrosocket_proto::{
    ClientHandshake, Config, Connection, DeflateConfig, DeflateParams, Event, FrameHeader, Limits,
    MAX_HEADER_LEN, Message, OpCode, Role, SharedCompression, apply_mask, parse_response, request_from_url,
    url_target, write_request,
};
use hdrhistogram::Histogram;
use std::io::{IoSlice, IsTerminal};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// The largest message `--size` accepts.
const MAX_SIZE: usize = 64 << 20;
/// The most messages in flight per connection.
const MAX_IN_FLIGHT: usize = 4096;
/// Handshakes in progress at once (a single-threaded server's accept backlog is finite).
const HANDSHAKES_AT_ONCE: usize = 256;

/// Options of `ferrosocket bench`.
#[derive(clap::Args, Debug)]
pub(crate) struct BenchArgs {
    /// The echo server's ws:// URL (e.g. ws://127.0.0.1:8080/ws).
    url: String,
    /// Connections to open.
    #[arg(long, default_value_t = 100)]
    connections: usize,
    /// Payload size of each message, in bytes.
    #[arg(long, default_value_t = 16)]
    size: usize,
    /// Messages outstanding per connection (sent and not yet echoed).
    #[arg(long, default_value_t = 1)]
    in_flight: usize,
    /// Seconds to measure for (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Stop after this many messages in total, if that comes before --duration.
    #[arg(long)]
    messages: Option<u64>,
    /// Send text messages.
    #[arg(long, conflicts_with = "binary")]
    text: bool,
    /// Send binary messages (the default).
    #[arg(long)]
    binary: bool,
    /// Offer permessage-deflate (with client_no_context_takeover) and fail without it.
    #[arg(long)]
    compress: bool,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// Print one JSON object on stdout instead of the text report.
    #[arg(long)]
    json: bool,
    /// Check every echoed payload byte for byte (a mismatch fails its connection).
    #[arg(long)]
    verify: bool,
    /// Runtime threads (1: a current_thread runtime, which `taskset` keeps on one core).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Seconds allowed for each connect and handshake.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    /// Also report this (server) process's CPU time (utime+stime from /proc/PID/stat) over
    /// the measured interval, in total and per message.
    #[arg(long)]
    server_pid: Option<u32>,
    /// The server is a plain TCP echo (the ceiling): skip the handshake and accept our own
    /// masked frames coming back.
    #[arg(long)]
    raw_echo: bool,
}

/// A checked run configuration.
struct Plan {
    connections: usize,
    size: usize,
    in_flight: usize,
    text: bool,
    verify: bool,
    raw_echo: bool,
    compress: bool,
}

/// The K frames of every connection, built once.
struct Frames {
    /// K frames back to back, masked, ready for the wire.
    wire: Vec<u8>,
    /// The length of each frame (all frames have the same length).
    frame_len: usize,
    /// Where the payload starts in a frame.
    header_len: usize,
    /// K unmasked payloads back to back (what a WebSocket echo must send back).
    plain: Vec<u8>,
    /// A masked close frame (1000), sent when a connection ends normally.
    close: Vec<u8>,
}

/// Counters and the histogram, shared by all connections.
struct Shared {
    plan: Plan,
    frames: Frames,
    /// When latencies start to count (after the warm-up).
    measure_start: Instant,
    /// When the measurement ends.
    end: Instant,
    /// Messages left to send under `--messages` (`u64::MAX`: unlimited).
    budget: AtomicU64,
    /// Measured messages sent.
    sent: AtomicU64,
    /// Measured messages echoed.
    done: AtomicU64,
    /// Micros after `measure_start` of the last measured echo.
    last_done_us: AtomicU64,
    histogram: Mutex<Histogram<u64>>,
}

impl Shared {
    /// Takes up to `want` messages from the `--messages` budget.
    fn claim(&self, want: u64) -> u64 {
        if want == 0 {
            return 0;
        }
        let mut granted = 0;
        let _ = self
            .budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                if left == u64::MAX {
                    granted = want;
                    return None;
                }
                granted = want.min(left);
                (granted > 0).then(|| left - granted)
            });
        granted
    }
}

pub(crate) fn run(args: BenchArgs) -> Result<(), Box<dyn std::error::Error>> {
    check_args(&args)?;
    let mut builder = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(args.threads);
        b
    };
    let runtime = builder.enable_all().build()?;
    let report = runtime.block_on(bench(&args))?;
    if args.json {
        println!("{}", report.json(&args));
    } else {
        report.print(&args);
    }
    if report.connections == 0 {
        return Err("no connection could be established".into());
    }
    if report.errors > 0 && args.verify {
        return Err(format!("{} connection(s) failed", report.errors).into());
    }
    Ok(())
}

fn check_args(args: &BenchArgs) -> Result<(), String> {
    if !(1..=100_000).contains(&args.connections) {
        return Err("--connections must be 1 to 100000".into());
    }
    if args.size > MAX_SIZE {
        return Err(format!("--size must be at most {MAX_SIZE}"));
    }
    if !(1..=MAX_IN_FLIGHT).contains(&args.in_flight) {
        return Err(format!("--in-flight must be 1 to {MAX_IN_FLIGHT}"));
    }
    if !(args.duration.is_finite() && args.duration > 0.0 && args.duration <= 86_400.0) {
        return Err("--duration must be more than 0 and at most 86400 seconds".into());
    }
    if !(args.warmup.is_finite() && (0.0..=3600.0).contains(&args.warmup)) {
        return Err("--warmup must be 0 to 3600 seconds".into());
    }
    if !(args.timeout.is_finite() && args.timeout > 0.0 && args.timeout <= 600.0) {
        return Err("--timeout must be more than 0 and at most 600 seconds".into());
    }
    if !(1..=256).contains(&args.threads) {
        return Err("--threads must be 1 to 256".into());
    }
    if args.messages == Some(0) {
        return Err("--messages must be at least 1".into());
    }
    if args.compress && args.raw_echo {
        return Err("--compress needs a WebSocket server, not --raw-echo".into());
    }
    Ok(())
}

// ---- payloads and frames ----------------------------------------------------------------

/// The payload of slot `slot`: text-like words for text (and for compression), a byte
/// pattern otherwise. Slots differ so that `--verify` also catches reordered echoes.
fn payload(size: usize, slot: usize, text_like: bool) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "socket ", "frame ", "the ", "echo ", "message ", "of ", "server ", "client ", "mask ", "bytes ",
        "and ", "a ", "latency ", "to ", "ping ", "close ",
    ];
    let mut out = Vec::with_capacity(size);
    if text_like {
        let mut x = (slot as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        while out.len() < size {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend_from_slice(WORDS[(x % 16) as usize].as_bytes());
        }
        out.truncate(size);
    } else {
        out.extend((0..size).map(|i| (i as u64 * 31 + slot as u64 * 101 + 7) as u8));
    }
    out
}

fn mask_key() -> [u8; 4] {
    let mut key = [0u8; 4];
    if getrandom::fill(&mut key).is_err() {
        key = [0x37, 0xfa, 0x21, 0x3d];
    }
    key
}

fn build_frames(plan: &Plan, deflate: Option<&DeflateParams>) -> Result<Frames, String> {
    let key = mask_key();
    let opcode = if plan.text { OpCode::Text } else { OpCode::Binary };
    let k = plan.in_flight;
    // With compression every slot carries the same payload, so that every frame has the
    // same length.
    let slots: Vec<Vec<u8>> = (0..k)
        .map(|s| {
            let slot = if plan.compress { 0 } else { s };
            payload(plan.size, slot, plan.text || plan.compress)
        })
        .collect();
    let mut wire = Vec::new();
    let mut frame_len = 0;
    let mut header_len = 0;
    for p in &slots {
        let (body, rsv1) = match deflate {
            Some(params) => {
                let shared = SharedCompression {
                    window_bits: params.client_max_window_bits,
                    level: DeflateConfig::default().level,
                    threshold: 0,
                };
                let body = shared.compress(p).ok_or("compressing the payload failed")?;
                (body, true)
            }
            None => (p.clone(), false),
        };
        let mut h = FrameHeader::new(opcode, true, body.len() as u64);
        h.rsv1 = rsv1;
        h.mask = Some(key);
        let mut hbuf = [0u8; MAX_HEADER_LEN];
        header_len = h.encode(&mut hbuf);
        let start = wire.len();
        wire.extend_from_slice(&hbuf[..header_len]);
        wire.extend_from_slice(&body);
        apply_mask(&mut wire[start + header_len..], key, 0);
        frame_len = wire.len() - start;
    }
    let mut close = Vec::with_capacity(8);
    let mut h = FrameHeader::new(OpCode::Close, true, 2);
    h.mask = Some(key);
    let mut hbuf = [0u8; MAX_HEADER_LEN];
    let n = h.encode(&mut hbuf);
    close.extend_from_slice(&hbuf[..n]);
    close.extend_from_slice(&1000u16.to_be_bytes());
    apply_mask(&mut close[n..], key, 0);
    Ok(Frames {
        wire,
        frame_len,
        header_len,
        plain: slots.concat(),
        close,
    })
}

// ---- connecting ---------------------------------------------------------------------------

/// An upgraded connection: the stream, bytes that came after the 101 head, and the
/// permessage-deflate parameters if the server agreed.
struct Upgraded {
    stream: TcpStream,
    leftover: Vec<u8>,
    deflate: Option<DeflateParams>,
}

async fn handshake(mut stream: TcpStream, url: &str, compress: bool) -> Result<Upgraded, String> {
    let req = request_from_url(url).map_err(|e| e.to_string())?;
    let mut nonce = [0u8; 16];
    if getrandom::fill(&mut nonce).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        nonce = t.to_le_bytes();
    }
    let (mut hs, mut req) = ClientHandshake::new(req, nonce).map_err(|e| e.to_string())?;
    let deflate_config = DeflateConfig::default().client_no_context_takeover(true);
    if compress {
        hs.offer_deflate(deflate_config.clone(), &mut req);
    }
    let mut out = Vec::with_capacity(256);
    write_request(&req, &mut out);
    stream
        .write_all(&out)
        .await
        .map_err(|e| format!("sending the handshake: {e}"))?;
    let mut buf = bytes::BytesMut::with_capacity(1024);
    let limits = Limits::default();
    let resp = loop {
        if let Some(resp) = parse_response(&mut buf, &limits).map_err(|e| e.to_string())? {
            break resp;
        }
        let n = stream
            .read_buf(&mut buf)
            .await
            .map_err(|e| format!("reading the handshake: {e}"))?;
        if n == 0 {
            return Err("the server closed the connection during the handshake".into());
        }
    };
    let negotiated = hs.verify(&resp).map_err(|e| e.to_string())?;
    if compress && negotiated.deflate.is_none() {
        return Err("the server did not accept permessage-deflate (--compress)".into());
    }
    Ok(Upgraded {
        stream,
        leftover: buf.to_vec(),
        deflate: negotiated.deflate,
    })
}

// ---- the load loop ------------------------------------------------------------------------

/// What the frame parser is in the middle of.
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

/// One connection's state. Nothing here is allocated per message.
struct Load {
    stream: TcpStream,
    shared: Arc<Shared>,
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
    /// When each outstanding message was sent, oldest first (a ring of K).
    sent_at: Box<[Instant]>,
    head: usize,
    outstanding: usize,
    /// Messages echoed so far on this connection (which slot comes back next).
    replies: u64,
    /// Next byte of `frames.wire` to write, and how many bytes are queued from there.
    wpos: usize,
    wleft: usize,
    budget_spent: bool,
    /// The client connection that inflates replies, with `--compress`.
    inflater: Option<Connection>,
}

enum Outcome {
    /// The deadline passed or the message budget is spent.
    Finished,
}

impl Load {
    fn new(up: Upgraded, shared: Arc<Shared>) -> Self {
        let plan = &shared.plan;
        let k = plan.in_flight;
        // Room for a window of replies; up to 256 KiB for large messages (64 KiB above 100
        // connections, to bound the generator's own memory).
        let want = k.saturating_mul(shared.frames.frame_len);
        let most = if plan.connections > 100 {
            64 << 10
        } else {
            256 << 10
        };
        let rsize = want.clamp(4 << 10, most).next_power_of_two();
        let inflater = up.deflate.as_ref().map(|params| {
            let mut c = Connection::new(Role::Client, Config::default().max_frame_size(None));
            c.enable_deflate(params, &DeflateConfig::default().client_no_context_takeover(true));
            c
        });
        let now = Instant::now();
        let mut load = Self {
            stream: up.stream,
            shared,
            rbuf: vec![0u8; rsize].into_boxed_slice(),
            filled: 0,
            state: ReadState::Header,
            msg_len: 0,
            msg_open: false,
            ctrl_in: [0; 125],
            ctrl_len: 0,
            ctrl_out: Vec::new(),
            sent_at: vec![now; k].into_boxed_slice(),
            head: 0,
            outstanding: 0,
            replies: 0,
            wpos: 0,
            wleft: 0,
            budget_spent: false,
            inflater,
        };
        if !up.leftover.is_empty() {
            // Frames that came with the handshake answer (none from an echo server).
            let n = up.leftover.len().min(load.rbuf.len());
            load.rbuf[..n].copy_from_slice(&up.leftover[..n]);
            load.filled = n;
        }
        load
    }

    async fn run(mut self) -> Result<Outcome, String> {
        let shared = self.shared.clone();
        let deadline = tokio::time::sleep_until(shared.end);
        tokio::pin!(deadline);
        let now = Instant::now();
        if self.filled > 0 {
            self.on_input(now)?;
        }
        self.refill(now);
        loop {
            self.write_some()?;
            if self.budget_spent && self.outstanding == 0 && !self.wants_write() {
                self.send_close();
                return Ok(Outcome::Finished);
            }
            let interest = if self.wants_write() {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let ready = tokio::select! {
                biased;
                r = self.stream.ready(interest) => r.map_err(|e| format!("i/o error: {e}"))?,
                () = &mut deadline => {
                    self.send_close();
                    return Ok(Outcome::Finished);
                }
            };
            if !(ready.is_readable() || ready.is_read_closed()) {
                continue;
            }
            let room = self.rbuf.len() - self.filled;
            let n = match self.stream.try_read(&mut self.rbuf[self.filled..]) {
                Ok(0) => return Err("the server closed the connection".into()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(format!("read error: {e}")),
            };
            if n < room {
                // A short read drained the socket: drop the cached readiness now rather than
                // spend a read syscall to learn it (edge-triggered epoll reports new data).
                let _ = self.stream.try_io(Interest::READABLE, || {
                    Err::<(), _>(std::io::ErrorKind::WouldBlock.into())
                });
            }
            self.filled += n;
            let now = Instant::now();
            if now >= shared.end {
                self.send_close();
                return Ok(Outcome::Finished);
            }
            self.on_input(now)?;
            self.refill(now);
        }
    }

    fn wants_write(&self) -> bool {
        self.wleft > 0 || !self.ctrl_out.is_empty()
    }

    /// Writes as much queued output as the socket takes now, in one vectored write.
    fn write_some(&mut self) -> Result<(), String> {
        let frame_len = self.shared.frames.frame_len;
        loop {
            // Control frames go out only between data frames.
            let at_boundary = self.wpos.is_multiple_of(frame_len.max(1));
            let n = if !self.ctrl_out.is_empty() && at_boundary {
                match self.stream.try_write(&self.ctrl_out) {
                    Ok(n) => {
                        self.ctrl_out.drain(..n);
                        n
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) => return Err(format!("write error: {e}")),
                }
            } else if self.wleft > 0 {
                let wire = &self.shared.frames.wire;
                let first_end = (self.wpos + self.wleft).min(wire.len());
                let first = &wire[self.wpos..first_end];
                let second = &wire[..self.wleft - first.len()];
                let slices = [IoSlice::new(first), IoSlice::new(second)];
                let count = if second.is_empty() { 1 } else { 2 };
                match self.stream.try_write_vectored(&slices[..count]) {
                    Ok(n) => {
                        self.wleft -= n;
                        self.wpos = (self.wpos + n) % wire.len().max(1);
                        n
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) => return Err(format!("write error: {e}")),
                }
            } else {
                return Ok(());
            };
            if n == 0 {
                return Err("write error: the socket took no bytes".into());
            }
        }
    }

    /// Best effort: a close frame if the socket takes it now (the run is over either way).
    fn send_close(&mut self) {
        if self.wleft == 0 && self.ctrl_out.is_empty() {
            let _ = self.stream.try_write(&self.shared.frames.close);
        }
    }

    /// Queues as many new messages as the window allows.
    fn refill(&mut self, now: Instant) {
        let k = self.shared.plan.in_flight;
        let want = (k - self.outstanding) as u64;
        if want == 0 || self.budget_spent {
            return;
        }
        let shared = &self.shared;
        let granted = if now < shared.measure_start {
            want
        } else {
            let g = shared.claim(want);
            if g < want {
                self.budget_spent = true;
            }
            if g > 0 {
                shared.sent.fetch_add(g, Ordering::Relaxed);
            }
            g
        };
        for _ in 0..granted {
            let i = (self.head + self.outstanding) % k;
            self.sent_at[i] = now;
            self.outstanding += 1;
        }
        self.wleft += granted as usize * shared.frames.frame_len;
    }

    /// Parses what was read, then accounts for the messages that came back.
    fn on_input(&mut self, now: Instant) -> Result<(), String> {
        let completed = if self.inflater.is_some() {
            self.parse_inflating()?
        } else {
            self.parse()?
        };
        if completed == 0 {
            return Ok(());
        }
        if completed > self.outstanding {
            return Err("the server sent more messages than it was sent".into());
        }
        let shared = self.shared.clone();
        let k = shared.plan.in_flight;
        let mut measured = 0u64;
        let mut last = None;
        {
            let mut hist = shared.histogram.lock().unwrap_or_else(|p| p.into_inner());
            for _ in 0..completed {
                let sent = self.sent_at[self.head];
                self.head = (self.head + 1) % k;
                self.outstanding -= 1;
                if sent >= shared.measure_start && now <= shared.end {
                    let us = now.saturating_duration_since(sent).as_micros();
                    hist.saturating_record(u64::try_from(us).unwrap_or(u64::MAX).max(1));
                    measured += 1;
                    last = Some(now);
                }
            }
        }
        if measured > 0 {
            shared.done.fetch_add(measured, Ordering::Relaxed);
            if let Some(t) = last {
                let us = t.saturating_duration_since(shared.measure_start).as_micros();
                shared
                    .last_done_us
                    .fetch_max(u64::try_from(us).unwrap_or(u64::MAX), Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// One message came back whole (the caller checks it was asked for).
    fn message_done(&mut self) {
        self.replies += 1;
    }

    /// The bytes a reply for the current slot must carry.
    fn expected(&self) -> &[u8] {
        let shared = &self.shared;
        let size = shared.plan.size;
        let slot = (self.replies % shared.plan.in_flight as u64) as usize;
        if shared.plan.raw_echo {
            let f = &shared.frames;
            let start = slot * f.frame_len + f.header_len;
            &f.wire[start..start + size]
        } else {
            &shared.frames.plain[slot * size..(slot + 1) * size]
        }
    }

    /// Parses server frames in place; returns how many messages completed. Leaves a partial
    /// header at the front of the buffer for the next read.
    fn parse(&mut self) -> Result<usize, String> {
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
                    let (kind, left) = self.check_header(&h)?;
                    self.state = ReadState::Payload {
                        left,
                        kind,
                        fin: h.fin,
                    };
                    if left == 0 && self.end_frame(kind, h.fin)? {
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
                            if self.shared.plan.verify {
                                let want = &self.expected()[self.msg_len..self.msg_len + take];
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
                    if left == 0 && self.end_frame(kind, fin)? {
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
    fn check_header(&mut self, h: &FrameHeader) -> Result<(FrameKind, usize), String> {
        let plan = &self.shared.plan;
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
    fn end_frame(&mut self, kind: FrameKind, fin: bool) -> Result<bool, String> {
        self.state = ReadState::Header;
        match kind {
            FrameKind::Data if fin => {
                if self.msg_len != self.shared.plan.size {
                    return Err(format!(
                        "the echo has {} bytes, {} were sent",
                        self.msg_len, self.shared.plan.size
                    ));
                }
                self.msg_open = false;
                self.message_done();
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
        let key = mask_key();
        h.mask = Some(key);
        let mut hbuf = [0u8; MAX_HEADER_LEN];
        let n = h.encode(&mut hbuf);
        self.ctrl_out.extend_from_slice(&hbuf[..n]);
        let start = self.ctrl_out.len();
        self.ctrl_out.extend_from_slice(&self.ctrl_in[..self.ctrl_len]);
        apply_mask(&mut self.ctrl_out[start..], key, 0);
    }

    /// `--compress`: feeds what was read to the inflating client connection.
    fn parse_inflating(&mut self) -> Result<usize, String> {
        let Some(mut conn) = self.inflater.take() else {
            return Ok(0);
        };
        conn.receive(&self.rbuf[..self.filled]);
        self.filled = 0;
        let mut completed = 0;
        let result = loop {
            match conn.poll_event() {
                Ok(Some(Event::Message(m))) => {
                    if let Err(e) = self.check_message(&m) {
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

    fn check_message(&mut self, m: &Message) -> Result<(), String> {
        let plan = &self.shared.plan;
        if matches!(m, Message::Text(_)) != plan.text {
            return Err("the echo has the wrong message type".into());
        }
        if m.len() != plan.size {
            return Err(format!("the echo has {} bytes, {} were sent", m.len(), plan.size));
        }
        if plan.verify && m.as_bytes()[..] != *self.expected() {
            return Err(format!(
                "echo differs from what was sent (message {} of this connection)",
                self.replies + 1
            ));
        }
        self.message_done();
        Ok(())
    }
}

// ---- the run ------------------------------------------------------------------------------

/// The outcome of a run.
struct Report {
    connections: usize,
    errors: u64,
    first_error: Option<String>,
    messages: u64,
    sent: u64,
    seconds: f64,
    histogram: Histogram<u64>,
    server_cpu_us: Option<u64>,
}

fn read_cpu_us(pid: Option<u32>) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    // The command name may hold spaces and parentheses: fields count from the last ')'.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // /proc reports clock ticks of USER_HZ, 100 per second on Linux.
    Some((utime + stime) * 10_000)
}

async fn bench(args: &BenchArgs) -> Result<Report, Box<dyn std::error::Error>> {
    let target = url_target(&args.url)?;
    if target.tls {
        return Err("bench speaks plain ws:// only (wss:// is not supported)".into());
    }
    let plan = Plan {
        connections: args.connections,
        size: args.size,
        in_flight: args.in_flight,
        text: args.text,
        verify: args.verify,
        raw_echo: args.raw_echo,
        compress: args.compress,
    };

    // Phase 1: connect and upgrade every connection.
    let timeout = Duration::from_secs_f64(args.timeout);
    let gate = Arc::new(tokio::sync::Semaphore::new(HANDSHAKES_AT_ONCE));
    let args_shared = Arc::new((
        args.url.clone(),
        target.host.clone(),
        target.port,
        args.raw_echo,
        args.compress,
    ));
    let mut set = JoinSet::new();
    for _ in 0..plan.connections {
        let (gate, a) = (gate.clone(), args_shared.clone());
        set.spawn(async move {
            let _permit = gate.acquire().await.map_err(|e| e.to_string())?;
            let (url, host, port, raw_echo, compress) = &*a;
            let fut = async {
                let stream = TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(|e| format!("connect: {e}"))?;
                let _ = stream.set_nodelay(true);
                if *raw_echo {
                    return Ok(Upgraded {
                        stream,
                        leftover: Vec::new(),
                        deflate: None,
                    });
                }
                handshake(stream, url, *compress).await
            };
            match tokio::time::timeout(timeout, fut).await {
                Ok(r) => r,
                Err(_) => Err("connect or handshake timed out".to_string()),
            }
        });
    }
    let mut upgraded = Vec::with_capacity(plan.connections);
    let mut errors = 0u64;
    let mut first_error = None;
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(u)) => upgraded.push(u),
            Ok(Err(e)) => {
                errors += 1;
                first_error.get_or_insert(e);
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(e.to_string());
            }
        }
    }

    // With compression every connection must have agreed on the same window.
    let deflate = upgraded.first().and_then(|u| u.deflate);
    if let Some(d) = deflate {
        let before = upgraded.len();
        upgraded.retain(|u| u.deflate.map(|x| x.client_max_window_bits) == Some(d.client_max_window_bits));
        if upgraded.len() < before {
            errors += (before - upgraded.len()) as u64;
            first_error.get_or_insert("connections agreed on different deflate windows".into());
        }
    }
    let connections = upgraded.len();
    let frames = build_frames(&plan, deflate.as_ref())?;

    // Phase 2: the load.
    let t0 = Instant::now();
    let measure_start = t0 + Duration::from_secs_f64(args.warmup);
    let end = measure_start + Duration::from_secs_f64(args.duration);
    let histogram = Histogram::new_with_bounds(1, 3_600_000_000, 3)?;
    let shared = Arc::new(Shared {
        plan,
        frames,
        measure_start,
        end,
        budget: AtomicU64::new(args.messages.unwrap_or(u64::MAX)),
        sent: AtomicU64::new(0),
        done: AtomicU64::new(0),
        last_done_us: AtomicU64::new(0),
        histogram: Mutex::new(histogram),
    });
    let progress = progress_bar(args, &shared);
    let mut cpu0 = if args.warmup == 0.0 {
        read_cpu_us(args.server_pid)
    } else {
        None
    };
    let mut load = JoinSet::new();
    for up in upgraded {
        load.spawn(Load::new(up, shared.clone()).run());
    }
    drop(set);
    if args.warmup > 0.0 {
        tokio::time::sleep_until(measure_start).await;
        cpu0 = read_cpu_us(args.server_pid);
    }
    let mut cpu1 = None;
    let end_timer = tokio::time::sleep_until(end);
    tokio::pin!(end_timer);
    loop {
        tokio::select! {
            r = load.join_next() => match r {
                None => break,
                Some(Ok(Ok(Outcome::Finished))) => {}
                Some(Ok(Err(e))) => {
                    errors += 1;
                    first_error.get_or_insert(e);
                }
                Some(Err(e)) => {
                    errors += 1;
                    first_error.get_or_insert(e.to_string());
                }
            },
            () = &mut end_timer, if cpu1.is_none() => {
                cpu1 = Some(read_cpu_us(args.server_pid));
            }
        }
    }
    let finished = Instant::now();
    let cpu1 = cpu1.unwrap_or_else(|| read_cpu_us(args.server_pid));
    if let Some((task, bar)) = progress {
        task.abort();
        bar.finish_and_clear();
    }

    let messages = shared.done.load(Ordering::Relaxed);
    let seconds = if finished < end {
        (shared.last_done_us.load(Ordering::Relaxed) as f64 / 1e6).max(1e-6)
    } else {
        args.duration
    };
    let histogram = shared
        .histogram
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|p| p.into_inner().clone());
    Ok(Report {
        connections,
        errors,
        first_error,
        messages,
        sent: shared.sent.load(Ordering::Relaxed),
        seconds,
        histogram,
        server_cpu_us: cpu0.zip(cpu1).map(|(a, b)| b.saturating_sub(a)),
    })
}

/// A progress bar on stderr (a tty only, and not with `--json`), updated 5 times a second.
fn progress_bar(
    args: &BenchArgs,
    shared: &Arc<Shared>,
) -> Option<(tokio::task::JoinHandle<()>, indicatif::ProgressBar)> {
    if args.json || !std::io::stderr().is_terminal() {
        return None;
    }
    let shared = shared.clone();
    let total_ms = ((args.warmup + args.duration) * 1000.0) as u64;
    let bar = indicatif::ProgressBar::new(total_ms);
    let style = indicatif::ProgressStyle::with_template("{bar:40} {elapsed}/{duration} {msg}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    let start = Instant::now();
    let handle = bar.clone();
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut last = (Instant::now(), 0u64);
        loop {
            tick.tick().await;
            let now = Instant::now();
            let done = shared.done.load(Ordering::Relaxed);
            let rate = (done - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-3);
            last = (now, done);
            bar.set_position((now.duration_since(start).as_millis() as u64).min(total_ms));
            let phase = if now < shared.measure_start {
                "warming up, "
            } else {
                ""
            };
            bar.set_message(format!("{phase}{done} msgs, {rate:.0} msgs/s"));
            if now >= shared.end {
                return;
            }
        }
    });
    Some((task, handle))
}

impl Report {
    fn percentile(&self, q: f64) -> u64 {
        if self.histogram.is_empty() {
            0
        } else {
            self.histogram.value_at_quantile(q)
        }
    }

    fn rates(&self, size: usize) -> (f64, f64) {
        let per_sec = self.messages as f64 / self.seconds;
        (per_sec, per_sec * size as f64 / 1e6)
    }

    fn json(&self, args: &BenchArgs) -> String {
        let (msgs, mb) = self.rates(args.size);
        let cpu = match self.server_cpu_us {
            Some(us) => format!(
                ",\"server_cpu_us\":{us},\"server_cpu_us_per_msg\":{:.3}",
                us as f64 / self.messages.max(1) as f64
            ),
            None => String::new(),
        };
        let err = match &self.first_error {
            Some(e) => format!(",\"first_error\":\"{}\"", json_escape(e)),
            None => String::new(),
        };
        format!(
            "{{\"url\":\"{}\",\"connections\":{},\"size\":{},\"in_flight\":{},\"messages\":{},\"sent\":{},\"seconds\":{:.6},\"msgs_per_sec\":{:.1},\"mb_per_sec\":{:.3},\"latency_us\":{{\"p50\":{},\"p90\":{},\"p99\":{},\"p999\":{},\"max\":{},\"mean\":{:.1}}},\"errors\":{}{cpu}{err}}}",
            json_escape(&args.url),
            self.connections,
            args.size,
            args.in_flight,
            self.messages,
            self.sent,
            self.seconds,
            msgs,
            mb,
            self.percentile(0.5),
            self.percentile(0.9),
            self.percentile(0.99),
            self.percentile(0.999),
            self.histogram.max(),
            if self.histogram.is_empty() {
                0.0
            } else {
                self.histogram.mean()
            },
            self.errors,
        )
    }

    fn print(&self, args: &BenchArgs) {
        let (msgs, mb) = self.rates(args.size);
        let kind = if args.text { "text" } else { "binary" };
        println!(
            "{}: {} connections ({} failed), {} B {kind} messages, {} in flight each{}",
            args.url,
            self.connections,
            self.errors,
            args.size,
            args.in_flight,
            if args.compress { ", permessage-deflate" } else { "" }
        );
        println!(
            "  {} messages echoed ({} sent) in {:.2} s: {msgs:.0} msgs/s, {mb:.2} MB/s of payload each way",
            self.messages, self.sent, self.seconds
        );
        println!(
            "  latency (us): p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            self.percentile(0.5),
            self.percentile(0.9),
            self.percentile(0.99),
            self.percentile(0.999),
            self.histogram.max()
        );
        if let Some(us) = self.server_cpu_us {
            println!(
                "  server cpu: {:.3} s, {:.2} us per message",
                us as f64 / 1e6,
                us as f64 / self.messages.max(1) as f64
            );
        }
        if let Some(e) = &self.first_error {
            println!("  errors: {} (first: {e})", self.errors);
        }
    }
}

fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn payload_slots_differ_and_text_is_ascii() {
        let a = payload(100, 0, true);
        let b = payload(100, 1, true);
        assert_eq!(a.len(), 100);
        assert_ne!(a, b);
        assert!(a.is_ascii());
        assert_ne!(payload(16, 0, false), payload(16, 1, false));
    }

    #[test]
    fn frames_decode_back_to_their_payloads() {
        for size in [0, 5, 125, 126, 70_000] {
            let plan = Plan {
                connections: 1,
                size,
                in_flight: 3,
                text: false,
                verify: true,
                raw_echo: false,
                compress: false,
            };
            let f = build_frames(&plan, None).unwrap();
            assert_eq!(f.wire.len(), 3 * f.frame_len);
            for slot in 0..3 {
                let frame = &f.wire[slot * f.frame_len..(slot + 1) * f.frame_len];
                let (h, n) = FrameHeader::decode(frame).unwrap().unwrap();
                assert_eq!((h.payload_len, n), (size as u64, f.header_len));
                let mut p = frame[n..].to_vec();
                apply_mask(&mut p, h.mask.unwrap(), 0);
                assert_eq!(p, f.plain[slot * size..(slot + 1) * size]);
            }
        }
    }

    #[test]
    fn cpu_time_parses_a_name_with_spaces() {
        assert_eq!(read_cpu_us(None), None);
        let me = std::process::id();
        assert!(read_cpu_us(Some(me)).is_some());
    }

    fn args(addr: std::net::SocketAddr, connections: usize, size: usize, in_flight: usize) -> BenchArgs {
        BenchArgs {
            url: format!("ws://{addr}/ws"),
            connections,
            size,
            in_flight,
            duration: 5.0,
            messages: None,
            text: false,
            binary: false,
            compress: false,
            warmup: 0.0,
            json: true,
            verify: true,
            threads: 1,
            timeout: 2.0,
            server_pid: None,
            raw_echo: false,
        }
    }

    /// A server that upgrades every connection and then runs `then` on it.
    async fn server<F, Fut>(then: F) -> std::net::SocketAddr
    where
        F: Fn(ferrosocket::Conn<TcpStream>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let then = Arc::new(then);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let then = then.clone();
                tokio::spawn(async move {
                    if let Ok(conn) = ferrosocket::Upgrader::new().accept(stream).await {
                        then(conn).await;
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn every_message_comes_back_from_a_real_echo() {
        let addr = server(|mut conn| async move {
            while let Ok(m) = conn.recv().await {
                if conn.feed(m).await.is_err() {
                    break;
                }
            }
        })
        .await;
        for (size, k, text) in [(300, 4, false), (70_000, 2, true), (0, 3, false)] {
            let mut a = args(addr, 3, size, k);
            a.messages = Some(200);
            a.text = text;
            let r = bench(&a).await.unwrap();
            assert_eq!(
                (r.connections, r.messages, r.sent, r.errors),
                (3, 200, 200, 0),
                "{:?}",
                r.first_error
            );
            assert!(r.histogram.len() == 200);
        }
    }

    #[tokio::test]
    async fn garbage_from_the_server_fails_its_connection_without_panicking() {
        let garbage: [&[u8]; 7] = [
            &[0x8f, 0x00],                               // reserved opcode
            &[0x82, 0x7f, 0xff, 0, 0, 0, 0, 0, 0, 0],    // 64-bit length with the top bit set
            &[0x82, 0x05, 1, 2, 3, 4, 5],                // not what was sent (--verify)
            &[0x81, 0x05, b'h', b'e', b'l', b'l', b'o'], // wrong type
            &[0x82, 0x85, 1, 2, 3, 4, 5, 6, 7, 8, 9],    // masked
            &[0x88, 0x02, 0x03, 0xe8],                   // close 1000
            &[0x82, 0x06, 0, 0, 0, 0, 0, 0],             // longer than sent
        ];
        for g in garbage {
            let addr = server(move |mut conn| async move {
                let _ = conn.recv().await;
                let _ = conn.get_mut().write_all(g).await;
                tokio::time::sleep(Duration::from_secs(3)).await;
            })
            .await;
            let r = bench(&args(addr, 1, 5, 1)).await.unwrap();
            assert_eq!((r.errors, r.messages), (1, 0), "{g:?}");
            assert!(r.first_error.is_some());
        }
    }

    #[tokio::test]
    async fn a_silent_server_ends_at_the_deadline() {
        let addr = server(|mut conn| async move {
            let _ = conn.recv().await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        })
        .await;
        let mut a = args(addr, 2, 16, 1);
        a.duration = 0.3;
        let start = std::time::Instant::now();
        let r = bench(&a).await.unwrap();
        assert!(start.elapsed() < Duration::from_secs(2));
        assert_eq!((r.connections, r.messages, r.errors), (2, 0, 0));
    }

    #[tokio::test]
    async fn a_server_that_is_not_websocket_is_an_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let _ = s
                    .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        let r = bench(&args(addr, 2, 16, 1)).await.unwrap();
        assert_eq!((r.connections, r.errors), (0, 2));
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_escape("a\"b\\c\n"), "a\\\"b\\\\c\\u000a");
    }
}
