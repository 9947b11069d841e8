//! Misbehaving clients against `ferrosocket echo`, run beside the soak's verified load.
//!
//! Each fault runs on a fresh connection to 127.0.0.1 and counts as failed when the server does
//! not behave as it must (no close code where one is due, a wrong code or status, a connection
//! it never drops, a handshake it refuses). The server runs with `--keepalive 2
//! --keepalive-timeout 2`. Kinds:
//!
//! - `rst_after_handshake`: handshake, then SO_LINGER 0 + close (RST).
//! - `rst_mid_frame`: handshake, 0-3 whole 64 KiB messages then part of one, then RST.
//! - `half_open`: handshake, then silence; the server must drop it within [`HALF_OPEN_DROP_S`]
//!   (watched with `POLLRDHUP`, which reads nothing); closed by us after 10 s; at most 50 open
//!   at once.
//! - `mid_frame_close`: a header declaring 64 KiB, 1 KiB of payload, then FIN: the server must
//!   close the connection (EOF) within 5 s.
//! - `invalid:*`: a bad frame (after one good message half of the time, whose echo must come
//!   first); a close frame with the right code (1002/1007) and then EOF are due.
//! - `slow_reader`: 64 KiB messages, never read, closed after 5 s; the server must stop reading
//!   (backpressure: at most [`SLOW_READER_MAX_MIB`] accepted).
//! - `http:garbage`: not HTTP/1.1: 400 due; the HTTP/2 preface alone (echo speaks h2c with
//!   prior knowledge) gets the server's SETTINGS frame instead. `http:oversized`: a 16.5-40 KiB head or more than 64
//!   header lines: 431 due.
//! - `slowloris`: a handshake one byte per 100 ms: dropped by the 10 s handshake timeout (9-13 s
//!   after connecting); no more than 2 at once, none started unless it fits before the deadline.
//!
//! Every socket operation has a timeout; every loop is bounded in time and count.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use super::wire::{
    Fault, FrameSpec, OP_TIMEOUT, ServerFrame, connect, failure, frame, handshake, is_reset, is_timeout,
    peer_gone, plain_request, random_bytes, read_head, readable, request, reset, shutdown_write, take_frame,
    upgrade_request, wait_eof,
};

const HALF_OPEN_MAX: usize = 50;
const HALF_OPEN_LIFE: Duration = Duration::from_secs(10);
/// Keepalive 2 s + timeout 2 s, plus slack for a loaded 2-core machine.
pub(crate) const HALF_OPEN_DROP_S: f64 = 6.0;
const SLOW_READER: Duration = Duration::from_secs(5);
/// The most a peer that reads nothing may get the server to accept.
pub(crate) const SLOW_READER_MAX_MIB: f64 = 64.0;
const SLOWLORIS_INTERVAL: Duration = Duration::from_millis(100);
/// The server's handshake timeout is 10 s.
const SLOWLORIS_WINDOW: (f64, f64) = (9.0, 13.0);
const SLOWLORIS_MAX_S: f64 = 16.0;
const MAX_FAULTS_PER_THREAD: usize = 100_000;
/// How long after the deadline the fault threads may take to finish before they count as stuck.
const JOIN_SLACK: Duration = Duration::from_secs(40);

/// A note on a fault kind beside its counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Note {
    /// Something counted.
    Count(u64),
    /// The largest value seen, shown with `decimals` decimals.
    Max { value: f64, decimals: usize },
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Note::Count(n) => write!(f, "{n}"),
            Note::Max { value, decimals } => write!(f, "{value:.decimals$}"),
        }
    }
}

/// The outcome of one fault kind.
#[derive(Debug, Clone, Default)]
pub(crate) struct KindStats {
    pub(crate) run: u64,
    pub(crate) ok: u64,
    pub(crate) fail: u64,
    /// The first few failure reasons.
    pub(crate) errors: Vec<String>,
    /// Notes in the order they were first made.
    pub(crate) notes: Vec<(&'static str, Note)>,
}

impl KindStats {
    fn note(&mut self, key: &'static str) -> Option<&mut Note> {
        self.notes.iter_mut().find(|(k, _)| *k == key).map(|(_, n)| n)
    }
}

/// What the fault injector saw.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub(crate) seed: u64,
    pub(crate) seconds: f64,
    /// Faults run (each on its own connection).
    pub(crate) connections: u64,
    pub(crate) failed: u64,
    /// Fault threads that had not finished by the deadline plus [`JOIN_SLACK`] (or panicked).
    pub(crate) stuck_threads: usize,
    pub(crate) kinds: BTreeMap<String, KindStats>,
}

#[derive(Default)]
struct Stats(Mutex<BTreeMap<String, KindStats>>);

impl Stats {
    fn with(&self, kind: &str, f: impl FnOnce(&mut KindStats)) {
        let mut kinds = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        f(kinds.entry(kind.to_owned()).or_default());
    }

    fn record(&self, kind: &str, result: Result<(), Fault>) {
        self.with(kind, |k| {
            k.run += 1;
            match result {
                Ok(()) => k.ok += 1,
                Err(e) => {
                    k.fail += 1;
                    if k.errors.len() < 5 {
                        k.errors.push(e.to_string());
                    }
                }
            }
        });
    }

    fn maximum(&self, kind: &str, key: &'static str, value: f64, decimals: usize) {
        let scale = 10f64.powi(decimals as i32);
        let value = (value * scale).round() / scale;
        self.with(kind, |k| match k.note(key) {
            Some(Note::Max { value: v, .. }) => *v = v.max(value),
            _ => k.notes.push((key, Note::Max { value, decimals })),
        });
    }

    fn add(&self, kind: &str, key: &'static str) {
        self.with(kind, |k| match k.note(key) {
            Some(Note::Count(n)) => *n += 1,
            _ => k.notes.push((key, Note::Count(1))),
        });
    }
}

/// What every fault needs: where the server is and where to count.
struct Ctx {
    port: u16,
    path: String,
    stats: Stats,
}

/// The invalid frames, each with the close code it is due.
#[derive(Debug, Clone, Copy)]
enum Invalid {
    Unmasked,
    ReservedOpcode,
    RsvBits,
    BadUtf8,
    ControlTooLong,
    CloseBadUtf8Reason,
    Misc1002,
}

impl Invalid {
    const ALL: [Invalid; 7] = [
        Invalid::Unmasked,
        Invalid::ReservedOpcode,
        Invalid::RsvBits,
        Invalid::BadUtf8,
        Invalid::ControlTooLong,
        Invalid::CloseBadUtf8Reason,
        Invalid::Misc1002,
    ];

    fn name(self) -> &'static str {
        match self {
            Invalid::Unmasked => "invalid:unmasked",
            Invalid::ReservedOpcode => "invalid:reserved_opcode",
            Invalid::RsvBits => "invalid:rsv_bits",
            Invalid::BadUtf8 => "invalid:bad_utf8",
            Invalid::ControlTooLong => "invalid:control_too_long",
            Invalid::CloseBadUtf8Reason => "invalid:close_bad_utf8_reason",
            Invalid::Misc1002 => "invalid:misc_1002",
        }
    }

    fn want(self) -> u16 {
        match self {
            Invalid::BadUtf8 | Invalid::CloseBadUtf8Reason => 1007,
            _ => 1002,
        }
    }

    fn build(self, rng: &mut StdRng) -> Vec<u8> {
        match self {
            Invalid::Unmasked => FrameSpec::new(0x2).unmasked().encode(b"hello", rng),
            Invalid::ReservedOpcode => {
                let op = *[3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF].choose(rng).unwrap_or(&3);
                frame(op, b"x", rng)
            }
            Invalid::RsvBits => {
                let bits = *[0x40, 0x20, 0x10].choose(rng).unwrap_or(&0x40);
                FrameSpec::new(0x1).rsv(bits).encode(b"hi", rng)
            }
            Invalid::BadUtf8 => {
                let text = bad_utf8(rng);
                frame(0x1, text, rng)
            }
            Invalid::ControlTooLong => {
                let op = *[0x8, 0x9, 0xA].choose(rng).unwrap_or(&0x9);
                let payload = vec![b'c'; rng.random_range(126..=300)];
                frame(op, &payload, rng)
            }
            Invalid::CloseBadUtf8Reason => {
                let mut payload = 1000u16.to_be_bytes().to_vec();
                payload.extend_from_slice(bad_utf8(rng));
                frame(0x8, &payload, rng)
            }
            Invalid::Misc1002 => match rng.random_range(0..5) {
                0 => frame(0x0, b"orphan continuation", rng),
                1 => FrameSpec::new(0x9).not_fin().encode(b"fragmented ping", rng),
                2 => frame(0x8, b"\x03", rng), // a one-byte close payload
                3 => {
                    let code: u16 = *[999, 1005, 1006, 1015, 2000].choose(rng).unwrap_or(&999);
                    frame(0x8, &code.to_be_bytes(), rng)
                }
                _ => {
                    // A new message in the middle of a fragmented one.
                    let mut v = FrameSpec::new(0x1).not_fin().encode(b"a", rng);
                    v.extend(frame(0x2, b"b", rng));
                    v
                }
            },
        }
    }
}

fn bad_utf8(rng: &mut StdRng) -> &'static [u8] {
    const BAD: [&[u8]; 4] = [
        b"\xff",
        b"ok\xc0\xaf",
        b"\xed\xa0\x80",
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80",
    ];
    BAD.choose(rng).copied().unwrap_or(b"\xff")
}

/// The faults the two mixed workers draw from.
#[derive(Debug, Clone, Copy)]
enum Quick {
    RstAfterHandshake,
    RstMidFrame,
    MidFrameClose,
    HttpGarbage,
    HttpOversized,
    Invalid(Invalid),
}

impl Quick {
    fn name(self) -> &'static str {
        match self {
            Quick::RstAfterHandshake => "rst_after_handshake",
            Quick::RstMidFrame => "rst_mid_frame",
            Quick::MidFrameClose => "mid_frame_close",
            Quick::HttpGarbage => "http:garbage",
            Quick::HttpOversized => "http:oversized",
            Quick::Invalid(i) => i.name(),
        }
    }

    fn run(self, ctx: &Ctx, rng: &mut StdRng) -> Result<(), Fault> {
        match self {
            Quick::RstAfterHandshake => rst_after_handshake(ctx, rng),
            Quick::RstMidFrame => rst_mid_frame(ctx, rng),
            Quick::MidFrameClose => mid_frame_close(ctx, rng),
            Quick::HttpGarbage => http_garbage(ctx, rng),
            Quick::HttpOversized => http_oversized(ctx, rng),
            Quick::Invalid(i) => invalid_frame(i, ctx, rng),
        }
    }

    /// Every kind as often as its weight: the connection-level faults twice as often.
    fn weighted() -> Vec<Quick> {
        let mut v = vec![
            Quick::RstAfterHandshake,
            Quick::RstAfterHandshake,
            Quick::RstMidFrame,
            Quick::RstMidFrame,
            Quick::MidFrameClose,
            Quick::MidFrameClose,
            Quick::HttpGarbage,
            Quick::HttpOversized,
        ];
        v.extend(Invalid::ALL.map(Quick::Invalid));
        v
    }
}

// ---- faults --------------------------------------------------------------------------------

fn rst_after_handshake(ctx: &Ctx, rng: &mut StdRng) -> Result<(), Fault> {
    let (s, _) = handshake(ctx.port, &ctx.path, rng)?;
    reset(s);
    Ok(())
}

fn rst_mid_frame(ctx: &Ctx, rng: &mut StdRng) -> Result<(), Fault> {
    let (mut s, _) = handshake(ctx.port, &ctx.path, rng)?;
    let whole = rng.random_range(0..=3);
    let payload = random_bytes(65536, rng);
    let part = rng.random_range(0..=4096);
    let wire = frame(0x2, &payload, rng);
    let result = (|| {
        for _ in 0..whole {
            s.write_all(&wire)?;
        }
        let head = FrameSpec::new(0x2).declare(65536).encode(&payload, rng);
        s.write_all(&head[..14 + part])
    })();
    reset(s);
    Ok(result?)
}

fn mid_frame_close(ctx: &Ctx, rng: &mut StdRng) -> Result<(), Fault> {
    let (mut s, _) = handshake(ctx.port, &ctx.path, rng)?;
    let payload = random_bytes(1024, rng);
    let wire = FrameSpec::new(0x2).declare(65536).encode(&payload, rng);
    s.write_all(&wire[..14 + 1024])?;
    shutdown_write(&s)?;
    if !wait_eof(&mut s, OP_TIMEOUT)? {
        return Err(failure("server did not close a connection that ended mid-frame"));
    }
    Ok(())
}

fn invalid_frame(kind: Invalid, ctx: &Ctx, rng: &mut StdRng) -> Result<(), Fault> {
    let want = kind.want();
    let (mut s, mut buf) = handshake(ctx.port, &ctx.path, rng)?;
    let echo_first = rng.random_bool(0.5);
    let good: &[u8] = b"before the bad frame";
    let mut data = if echo_first {
        frame(0x1, good, rng)
    } else {
        Vec::new()
    };
    data.extend(kind.build(rng));
    s.write_all(&data)?;
    let deadline = Instant::now() + OP_TIMEOUT;
    let mut seen_echo = false;
    let mut chunk = vec![0u8; 65536];
    // Bounded by the deadline (each read by OP_TIMEOUT) and by the bytes a frame can take.
    let (code, reason) = loop {
        let Some(ServerFrame { opcode, payload }) = take_frame(&mut buf)? else {
            if Instant::now() > deadline {
                return Err(failure(format!(
                    "no close frame within {} s (want {want})",
                    OP_TIMEOUT.as_secs()
                )));
            }
            match s.read(&mut chunk) {
                Ok(0) => {
                    return Err(failure(format!(
                        "connection closed without a close frame (want {want})"
                    )));
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if is_reset(&e) => {
                    return Err(failure(format!(
                        "connection reset without a close frame (want {want})"
                    )));
                }
                Err(e) => return Err(e.into()),
            }
            continue;
        };
        match opcode {
            0x8 => {
                let [a, b, rest @ ..] = payload.as_slice() else {
                    return Err(failure(format!("close frame without a code (want {want})")));
                };
                let reason = String::from_utf8_lossy(&rest[..rest.len().min(58)]).into_owned();
                break (u16::from_be_bytes([*a, *b]), reason);
            }
            0x1 if payload == good => seen_echo = true,
            0x9 | 0xA => {}
            op => {
                return Err(failure(format!(
                    "unexpected frame opcode {op:#x} before the close"
                )));
            }
        }
    };
    if code != want {
        return Err(failure(format!("close code {code}, want {want} ({reason:?})")));
    }
    if echo_first && !seen_echo {
        return Err(failure(
            "the good message before the bad frame was not echoed first",
        ));
    }
    if !wait_eof(&mut s, OP_TIMEOUT)? {
        return Err(failure(
            "server did not close the TCP connection after its close frame",
        ));
    }
    Ok(())
}

fn http_garbage(ctx: &Ctx, rng: &mut StdRng) -> Result<(), Fault> {
    let data: Vec<u8> = match rng.random_range(0..6) {
        0 => {
            let mut v = vec![rng.random_range(0x80..=0xFF)];
            let n = rng.random_range(0..=4096);
            v.extend(random_bytes(n, rng));
            v
        }
        1 => {
            // The start of a TLS ClientHello.
            let mut v = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec();
            v.extend(random_bytes(64, rng));
            v
        }
        2 => b"SSH-2.0-OpenSSH_9.6\r\n".to_vec(),
        // A cleartext HTTP/2 client's first bytes: not garbage to `echo`, which speaks h2c.
        3 => return expect_http2_settings(ctx),
        4 => b"GET /ws HTTP/9.9\r\n\r\n".to_vec(),
        _ => b"GET /ws HTTP/1.1\r\nHost: x\r\nBad Header Name: y\r\n\r\n".to_vec(),
    };
    expect_status(ctx, &data, 400)
}

/// Sends the HTTP/2 connection preface (RFC 9113 §3.4) and nothing more: the server must
/// answer with its SETTINGS frame (type 0x4 on stream 0), the first frame an HTTP/2 server
/// sends, and must not take the preface for a malformed HTTP/1.1 head.
fn expect_http2_settings(ctx: &Ctx) -> Result<(), Fault> {
    let mut s = connect(ctx.port)?;
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")?;
    let mut head = [0u8; 9];
    s.read_exact(&mut head)
        .map_err(|e| failure(format!("no HTTP/2 frame after the preface: {e}")))?;
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    if head[3] != 0x4 || stream != 0 {
        return Err(failure(format!(
            "the answer to the HTTP/2 preface is not a SETTINGS frame: {head:02x?}"
        )));
    }
    Ok(())
}

fn http_oversized(ctx: &Ctx, rng: &mut StdRng) -> Result<(), Fault> {
    let data = if rng.random_bool(0.7) {
        let pad = rng.random_range(16_900..=40_000);
        upgrade_request(ctx.port, &ctx.path, pad, rng)?.1
    } else {
        let lines: Vec<(String, String)> = (0..rng.random_range(70..=300))
            .map(|i| (format!("x-h{i}"), "v".to_owned()))
            .collect();
        plain_request(&request(ctx.port, &ctx.path, &lines)?)
    };
    expect_status(ctx, &data, 431)
}

fn expect_status(ctx: &Ctx, data: &[u8], status: u16) -> Result<(), Fault> {
    let mut s = connect(ctx.port)?;
    match s.write_all(data) {
        Ok(()) => {}
        Err(e) if is_reset(&e) => {} // the server may answer and close before reading all of it
        Err(e) => return Err(e.into()),
    }
    let mut buf = BytesMut::new();
    let resp = match read_head(&mut s, &mut buf, Instant::now() + OP_TIMEOUT) {
        Err(Fault::Io(e)) if is_reset(&e) => {
            return Err(failure(format!("reset before any answer (want {status})")));
        }
        other => other?,
    };
    if resp.status().as_u16() != status {
        return Err(failure(format!("answer {}, want {status}", resp.status())));
    }
    if !wait_eof(&mut s, OP_TIMEOUT)? {
        return Err(failure(format!(
            "connection not closed after the {status} answer"
        )));
    }
    Ok(())
}

fn slow_reader(ctx: &Ctx, rng: &mut StdRng) -> Result<(), Fault> {
    let (mut s, _) = handshake(ctx.port, &ctx.path, rng)?;
    let payload = random_bytes(65536, rng);
    let wire = frame(0x2, &payload, rng);
    let mut sent = 0usize;
    let mut dropped = false;
    let result = (|| {
        s.set_write_timeout(Some(Duration::from_millis(250)))?;
        let end = Instant::now() + SLOW_READER;
        let mut off = 0;
        for _ in 0..100_000 {
            if Instant::now() >= end {
                break;
            }
            match s.write(&wire[off..]) {
                Ok(n) => {
                    sent += n;
                    off = (off + n) % wire.len();
                }
                Err(e) if is_timeout(&e) => {}
                Err(e) if is_reset(&e) => {
                    dropped = true;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })();
    reset(s); // unread data: the close is an RST anyway
    result?;
    let mib = sent as f64 / f64::from(1u32 << 20);
    ctx.stats.maximum("slow_reader", "max_mib_accepted", mib, 1);
    if dropped {
        ctx.stats.add("slow_reader", "dropped_by_server");
    }
    if mib > SLOW_READER_MAX_MIB {
        return Err(failure(format!(
            "server accepted {mib:.0} MiB from a peer that reads nothing (no backpressure)"
        )));
    }
    Ok(())
}

fn slowloris(ctx: &Ctx, rng: &mut StdRng) -> Result<(), Fault> {
    let mut s = connect(ctx.port)?;
    let t0 = Instant::now();
    // About 370 bytes: 37 s at 10 bytes a second.
    let (_, data) = upgrade_request(ctx.port, &ctx.path, 200, rng)?;
    let mut dropped_at = None;
    let mut got = vec![0u8; 4096];
    for i in 0..data.len() {
        let elapsed = t0.elapsed().as_secs_f64();
        if elapsed > SLOWLORIS_MAX_S {
            break;
        }
        if readable(&s) {
            let n = match s.read(&mut got) {
                Ok(n) => n,
                Err(e) if is_reset(&e) => 0,
                Err(e) => return Err(e.into()),
            };
            if n > 0 {
                let start = String::from_utf8_lossy(&got[..n.min(40)]).into_owned();
                return Err(failure(format!("answer to an incomplete request: {start:?}")));
            }
            dropped_at = Some(elapsed);
            break;
        }
        match s.write(&data[i..=i]) {
            Ok(_) => {}
            Err(e) if is_reset(&e) => {
                dropped_at = Some(t0.elapsed().as_secs_f64());
                break;
            }
            Err(e) => return Err(e.into()),
        }
        thread::sleep(SLOWLORIS_INTERVAL);
    }
    drop(s);
    let Some(dropped_at) = dropped_at else {
        return Err(failure(format!(
            "not dropped within {SLOWLORIS_MAX_S:.0} s (handshake timeout is 10 s)"
        )));
    };
    ctx.stats.maximum("slowloris", "max_drop_s", dropped_at, 2);
    let (lo, hi) = SLOWLORIS_WINDOW;
    if !(lo..=hi).contains(&dropped_at) {
        return Err(failure(format!(
            "dropped after {dropped_at:.1} s, want {lo:.0}-{hi:.0} s"
        )));
    }
    Ok(())
}

// ---- workers -------------------------------------------------------------------------------

fn mixed_worker(ctx: &Ctx, deadline: Instant, rng: &mut StdRng) {
    let kinds = Quick::weighted();
    for _ in 0..MAX_FAULTS_PER_THREAD {
        if Instant::now() >= deadline {
            return;
        }
        let Some(&kind) = kinds.choose(rng) else { return };
        let result = kind.run(ctx, rng);
        ctx.stats.record(kind.name(), result);
        thread::sleep(Duration::from_secs_f64(rng.random_range(0.02..0.1)));
    }
}

type FaultFn = fn(&Ctx, &mut StdRng) -> Result<(), Fault>;
/// A fault thread's work.
type Work = Box<dyn FnOnce(&Ctx, &mut StdRng) + Send>;

/// Runs `fault` back to back while one more (taking up to `length`) fits before `deadline`.
fn sequential_worker(
    (kind, fault, length): (&str, FaultFn, Duration),
    ctx: &Ctx,
    deadline: Instant,
    start_delay: Duration,
    rng: &mut StdRng,
) {
    thread::sleep(start_delay);
    for _ in 0..MAX_FAULTS_PER_THREAD {
        if Instant::now() + length > deadline {
            return;
        }
        let result = fault(ctx, rng);
        ctx.stats.record(kind, result);
        thread::sleep(Duration::from_millis(200));
    }
}

struct HalfOpen {
    s: TcpStream,
    opened: Instant,
    dropped: Option<Instant>,
}

/// Keeps up to [`HALF_OPEN_MAX`] silent connections open (opening one per 0.2 s), watches
/// them without reading, and closes each after [`HALF_OPEN_LIFE`].
fn half_open_worker(ctx: &Ctx, deadline: Instant, rng: &mut StdRng) {
    const KIND: &str = "half_open";
    let mut live: Vec<HalfOpen> = Vec::new();
    let stop_opening = deadline.checked_sub(HALF_OPEN_LIFE).unwrap_or(deadline);
    let give_up = deadline + HALF_OPEN_LIFE + Duration::from_secs(30);
    let mut next_open = Instant::now();
    let mut peak = 0;
    for _ in 0..10_000_000 {
        let now = Instant::now();
        if (now >= stop_opening && live.is_empty()) || now > give_up {
            break;
        }
        if now < stop_opening && live.len() < HALF_OPEN_MAX && now >= next_open {
            next_open = now + Duration::from_millis(200);
            match handshake(ctx.port, &ctx.path, rng) {
                Ok((s, _)) => {
                    live.push(HalfOpen {
                        s,
                        opened: Instant::now(),
                        dropped: None,
                    });
                    peak = peak.max(live.len());
                }
                Err(e) => ctx.stats.record(KIND, Err(failure(format!("handshake: {e}")))),
            }
        }
        let now = Instant::now();
        let mut keep = Vec::with_capacity(live.len());
        for mut h in live {
            if h.dropped.is_none() && peer_gone(&h.s) {
                h.dropped = Some(now);
            }
            if now.duration_since(h.opened) < HALF_OPEN_LIFE {
                keep.push(h);
                continue;
            }
            let mut first = [0u8; 2];
            let pinged = h.s.set_nonblocking(true).is_ok()
                && matches!(h.s.peek(&mut first), Ok(n) if n >= 1 && first[0] == 0x89);
            if pinged {
                ctx.stats.add(KIND, "pinged");
            }
            reset(h.s);
            let Some(dropped) = h.dropped else {
                let why = format!("still open after {} s", HALF_OPEN_LIFE.as_secs());
                ctx.stats.record(KIND, Err(failure(why)));
                continue;
            };
            let after = dropped.duration_since(h.opened).as_secs_f64();
            ctx.stats.maximum(KIND, "max_drop_s", after, 2);
            if after > HALF_OPEN_DROP_S {
                ctx.stats
                    .record(KIND, Err(failure(format!("dropped after {after:.1} s"))));
            } else {
                ctx.stats.record(KIND, Ok(()));
            }
        }
        live = keep;
        thread::sleep(Duration::from_millis(100));
    }
    for h in live {
        reset(h.s);
    }
    ctx.stats.maximum(KIND, "peak_open", peak as f64, 0);
}

/// Runs every fault kind against 127.0.0.1:`port` for `duration` and reports what it saw.
///
/// Six threads: two draw the short faults at random, one keeps half-open connections, one runs
/// slow readers, two run slowloris handshakes (started 0.5 s and 5 s in). Returns when they
/// have all finished, or at the deadline plus 40 s with the late ones counted as stuck.
pub(crate) fn run(port: u16, path: &str, duration: Duration, seed: Option<u64>) -> Report {
    let seed = seed.unwrap_or_else(|| u64::from(StdRng::from_os_rng().random::<u32>()));
    let ctx = Arc::new(Ctx {
        port,
        path: path.to_owned(),
        stats: Stats::default(),
    });
    let t0 = Instant::now();
    let deadline = t0 + duration;
    let mut handles = Vec::new();
    let mut start = |name: &str, n: u64, work: Work| {
        let mine = Arc::clone(&ctx);
        let mut rng = StdRng::seed_from_u64(seed.wrapping_add(n));
        let spawned = thread::Builder::new()
            .name(format!("fault-{name}"))
            .spawn(move || work(&mine, &mut rng));
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => ctx
                .stats
                .record(name, Err(failure(format!("cannot start a thread: {e}")))),
        }
    };
    start("mixed-1", 1, Box::new(move |c, r| mixed_worker(c, deadline, r)));
    start("mixed-2", 2, Box::new(move |c, r| mixed_worker(c, deadline, r)));
    start(
        "half_open",
        3,
        Box::new(move |c, r| half_open_worker(c, deadline, r)),
    );
    let slow: (&str, FaultFn, Duration) = ("slow_reader", slow_reader, SLOW_READER + Duration::from_secs(1));
    start(
        "slow_reader",
        4,
        Box::new(move |c, r| sequential_worker(slow, c, deadline, Duration::from_secs(1), r)),
    );
    let loris: (&str, FaultFn, Duration) = (
        "slowloris",
        slowloris,
        Duration::from_secs_f64(SLOWLORIS_WINDOW.1 + 1.0),
    );
    for (n, delay) in [(5, 0.5), (6, 5.0)] {
        let delay = Duration::from_secs_f64(delay);
        start(
            "slowloris",
            n,
            Box::new(move |c, r| sequential_worker(loris, c, deadline, delay, r)),
        );
    }

    let hard = deadline + HALF_OPEN_LIFE + JOIN_SLACK;
    while Instant::now() < hard && !handles.iter().all(|h| h.is_finished()) {
        thread::sleep(Duration::from_millis(100));
    }
    let mut stuck = 0;
    for h in handles {
        // A thread still running is left behind (it is bounded too); a panicked one is stuck.
        if !h.is_finished() || h.join().is_err() {
            stuck += 1;
        }
    }
    let kinds = ctx.stats.0.lock().unwrap_or_else(PoisonError::into_inner).clone();
    Report {
        seed,
        seconds: t0.elapsed().as_secs_f64(),
        connections: kinds.values().map(|k| k.run).sum(),
        failed: kinds.values().map(|k| k.fail).sum(),
        stuck_threads: stuck,
        kinds,
    }
}
