//! The echo driver of the instruction-count guard (`cargo xtask icount`, issue 13).
//!
//! One tokio current_thread runtime runs, over a real 127.0.0.1 TCP connection, a server
//! `Conn` with the loop of `ferrosocket echo` (`recv`, then `feed`; replies leave together when
//! `recv` next waits for input) and, in the same runtime, a small hand-made client: each round
//! it writes a burst of K masked frames built ahead of time in one write, then reads the K
//! echoes back and checks them byte for byte. Everything is deterministic (one thread, fixed
//! payloads and mask keys, the same order of events every round), so `valgrind --tool=callgrind`
//! counts the same instructions on every run; the xtask runs N and 2N messages and takes the
//! difference over N, so setup and warm-up cancel.
//!
//! ```text
//! icount SCENARIO N     run one scenario for N messages, print one `icount ...` line
//! icount --list         the scenario names
//! icount [--bench]      every scenario once without valgrind (a smoke run; `cargo bench`)
//! ```
//!
//! Scenarios are `MODE-SIZE-kK`: MODE `plain` (binary messages, no extension), `deflate`
//! (permessage-deflate, server context takeover, JSON-like text; the client compresses without
//! context takeover so its frames can be built once) or `raw` (a plain tokio read/write echo,
//! no WebSocket: the floor); SIZE `16b` or `1k`; K 1 or 16 messages per burst.
//!
//! The client's own work runs inside [`ClientSide`]'s `poll` (never inlined), so the xtask can
//! subtract its inclusive cost from the total and report the server side alone. A counting
//! global allocator reports the allocations made outside the client's synchronous code (the
//! server, the runtime and the client's socket calls).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use ferrosocket::proto::{
    ClientHandshake, Config, Connection, DeflateConfig, DeflateParams, Event, FrameHeader, Limits,
    MAX_HEADER_LEN, Message, OpCode, Role, SharedCompression, apply_mask, parse_response, request_from_url,
    write_request,
};
use ferrosocket::{Shutdown, Upgrader};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// ---- allocation counts ------------------------------------------------------------------

/// Counts allocations, frees and bytes, apart for the client's synchronous code (see
/// [`client_side`]) and everything else.
struct Counting;

/// `[allocs, frees, reallocs, bytes]`, indexed by side: 0 server (everything else), 1 client.
static COUNTS: [[AtomicU64; 4]; 2] = [
    [
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
    ],
    [
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
    ],
];
const ALLOCS: usize = 0;
const FREES: usize = 1;
const REALLOCS: usize = 2;
const BYTES: usize = 3;

thread_local! {
    /// Set while the client's own code runs: its allocations are counted apart.
    static IN_CLIENT: Cell<bool> = const { Cell::new(false) };
}

fn side() -> usize {
    usize::from(IN_CLIENT.try_with(Cell::get).unwrap_or(false))
}

fn count(what: usize, bytes: usize) {
    let s = side();
    COUNTS[s][what].fetch_add(1, Ordering::Relaxed);
    if bytes > 0 {
        COUNTS[s][BYTES].fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

// SAFETY (the trait's contract): every method forwards to `System` with the caller's
// arguments unchanged; the counters touch no allocator state.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(ALLOCS, layout.size());
        // SAFETY: forwarded as received.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(ALLOCS, layout.size());
        // SAFETY: forwarded as received.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(FREES, 0);
        // SAFETY: forwarded as received.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(REALLOCS, new_size.saturating_sub(layout.size()));
        // SAFETY: forwarded as received.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` with its allocations counted as the client's.
fn client_side<T>(f: impl FnOnce() -> T) -> T {
    IN_CLIENT.with(|c| c.set(true));
    let out = f();
    IN_CLIENT.with(|c| c.set(false));
    out
}

// ---- scenarios --------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A tokio read/write echo, no WebSocket.
    Raw,
    /// Binary messages, no extension.
    Plain,
    /// permessage-deflate with server context takeover; JSON-like text.
    Deflate,
}

#[derive(Debug, Clone, Copy)]
struct Scenario {
    mode: Mode,
    size: usize,
    k: usize,
}

const SCENARIOS: [&str; 12] = [
    "plain-16b-k1",
    "plain-16b-k16",
    "plain-1k-k1",
    "plain-1k-k16",
    "deflate-16b-k1",
    "deflate-16b-k16",
    "deflate-1k-k1",
    "deflate-1k-k16",
    "raw-16b-k1",
    "raw-16b-k16",
    "raw-1k-k1",
    "raw-1k-k16",
];

fn parse_scenario(name: &str) -> Option<Scenario> {
    let mut parts = name.split('-');
    let mode = match parts.next()? {
        "raw" => Mode::Raw,
        "plain" => Mode::Plain,
        "deflate" => Mode::Deflate,
        _ => return None,
    };
    let size = match parts.next()? {
        "16b" => 16,
        "1k" => 1024,
        _ => return None,
    };
    let k = match parts.next()? {
        "k1" => 1,
        "k16" => 16,
        _ => return None,
    };
    parts.next().is_none().then_some(Scenario { mode, size, k })
}

/// Distinct JSON-like texts in the deflate scenarios, sent in turn. 64 KiB of 1 KiB texts is
/// twice the 32 KiB window: a text is never compressed against its own earlier copy, as a
/// real stream of similar but different messages would not be.
const POOL: usize = 64;

/// A JSON-like text of exactly `size` ASCII bytes: records with the same keys and varying
/// values, so deflate finds what it finds in real traffic (about 3x at level 1 on 1 KiB).
fn json_like(size: usize, seed: usize) -> Vec<u8> {
    const USERS: [&str; 8] = [
        "ada", "grace", "linus", "ken", "barbara", "edsger", "donald", "margaret",
    ];
    const OPS: [&str; 6] = ["update", "insert", "delete", "subscribe", "ping", "snapshot"];
    const TAGS: [&str; 8] = ["alpha", "beta", "gamma", "delta", "red", "green", "blue", "prod"];
    let mut x = (seed as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = String::from("[");
    while out.len() < size {
        let (a, b, c, d, e) = (next(), next(), next(), next(), next());
        out.push_str(&format!(
            "{{\"seq\":{},\"user\":\"{}{}\",\"op\":\"{}\",\"price\":{}.{:02},\"tags\":[\"{}\",\"{}\"],\"ok\":{}}},",
            a % 1_000_000,
            USERS[(b % 8) as usize],
            b % 100,
            OPS[(c % 6) as usize],
            d % 10_000,
            d % 100,
            TAGS[(e % 8) as usize],
            TAGS[((e >> 8) % 8) as usize],
            e % 2 == 0,
        ));
    }
    out.truncate(size);
    out.into_bytes()
}

/// A binary payload for burst slot `slot` (slots differ, so a reordered echo is caught).
fn binary(size: usize, slot: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 31 + slot * 101 + 7) as u8).collect()
}

/// One frame as the client sends it: masked with a key fixed by `slot`.
fn client_frame(opcode: OpCode, rsv1: bool, body: &[u8], slot: usize, out: &mut Vec<u8>) {
    let key = (0x3d21_fa37u32 ^ (slot as u32).wrapping_mul(0x0101_0101)).to_be_bytes();
    let mut h = FrameHeader::new(opcode, true, body.len() as u64);
    h.rsv1 = rsv1;
    h.mask = Some(key);
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = h.encode(&mut head);
    out.extend_from_slice(&head[..n]);
    let start = out.len();
    out.extend_from_slice(body);
    apply_mask(&mut out[start..], key, 0);
}

/// One frame as the server sends it (unmasked, uncompressed).
fn server_frame(opcode: OpCode, body: &[u8], out: &mut Vec<u8>) {
    let h = FrameHeader::new(opcode, true, body.len() as u64);
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = h.encode(&mut head);
    out.extend_from_slice(&head[..n]);
    out.extend_from_slice(body);
}

// ---- the server -------------------------------------------------------------------------

/// Marks the server task's polls in a profile (never inlined, so it has its own symbol).
struct ServerSide<F>(Pin<Box<F>>);

impl<F: Future> Future for ServerSide<F> {
    type Output = F::Output;
    #[inline(never)]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.0.as_mut().poll(cx)
    }
}

/// The client's polls: the xtask subtracts this function's inclusive cost from the total.
struct ClientSide<F>(Pin<Box<F>>);

impl<F: Future> Future for ClientSide<F> {
    type Output = F::Output;
    #[inline(never)]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.0.as_mut().poll(cx)
    }
}

/// `ferrosocket echo`'s upgrader as the CLI configures it by default (64 MiB messages,
/// keepalive 30 s / 20 s, compression offered).
fn upgrader() -> Upgrader {
    Upgrader::new()
        .max_message_size(Some(64 << 20))
        .deflate(Some(DeflateConfig::default()))
        .keepalive(Duration::from_secs(30), Duration::from_secs(20))
}

/// The echo of `ferrosocket echo` (crates/ferrosocket-cli/src/echo.rs `echo`, quiet).
async fn ws_server(stream: TcpStream) -> Result<u64, String> {
    let upgrader = upgrader();
    let mut conn = upgrader
        .accept(stream)
        .await
        .map_err(|e| format!("server handshake: {e}"))?;
    let shutdown = Shutdown::new();
    conn.set_shutdown(shutdown.token());
    let mut echoed = 0u64;
    loop {
        match conn.recv().await {
            Ok(msg) => {
                if conn.feed(msg).await.is_err() {
                    break;
                }
                echoed += 1;
            }
            Err(e) if e.is_normal_close() => break,
            Err(e) => return Err(format!("server: {e}")),
        }
    }
    Ok(echoed)
}

/// A tokio read/write echo: what a WebSocket echo is compared with.
async fn raw_server(mut stream: TcpStream) -> Result<u64, String> {
    let mut buf = vec![0u8; 64 << 10];
    let mut bytes = 0u64;
    loop {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("raw server read: {e}"))?;
        if n == 0 {
            break;
        }
        stream
            .write_all(&buf[..n])
            .await
            .map_err(|e| format!("raw server write: {e}"))?;
        bytes += n as u64;
    }
    let _ = stream.shutdown().await;
    Ok(bytes)
}

// ---- the client -------------------------------------------------------------------------

/// The client's handshake: the request built and the answer checked by the core.
async fn client_handshake(stream: &mut TcpStream, deflate: bool) -> Result<Option<DeflateParams>, String> {
    let request = request_from_url("ws://127.0.0.1/ws").map_err(|e| e.to_string())?;
    let (mut hs, mut request) =
        ClientHandshake::new(request, *b"icount-fixed-key").map_err(|e| e.to_string())?;
    if deflate {
        hs.offer_deflate(client_deflate(), &mut request);
    }
    let mut out = Vec::new();
    write_request(&request, &mut out);
    stream.write_all(&out).await.map_err(|e| e.to_string())?;
    let mut buf = bytes::BytesMut::with_capacity(1024);
    let response = loop {
        if stream.read_buf(&mut buf).await.map_err(|e| e.to_string())? == 0 {
            return Err("server closed during the handshake".into());
        }
        if let Some(r) = parse_response(&mut buf, &Limits::default()).map_err(|e| e.to_string())? {
            break r;
        }
    };
    if !buf.is_empty() {
        return Err("bytes after the handshake response".into());
    }
    let negotiated = hs.verify(&response).map_err(|e| e.to_string())?;
    match (deflate, negotiated.deflate) {
        (false, None) => Ok(None),
        (true, Some(p)) if !p.server_no_context_takeover && p.client_no_context_takeover => Ok(Some(p)),
        (_, other) => Err(format!("unexpected compression agreement: {other:?}")),
    }
}

/// The client's compression settings: no context takeover, so each message's frame is the
/// same bytes every time and can be built once.
fn client_deflate() -> DeflateConfig {
    DeflateConfig::default().client_no_context_takeover(true)
}

/// Frames built before the first round.
struct Plan {
    /// Frames to send, back to back. Plain and raw: one burst of K. Deflate: the POOL texts,
    /// compressed and framed; round r sends the K frames starting at text (r * K) % POOL.
    wire: Vec<u8>,
    /// Where each frame of `wire` starts (and the end, last).
    offsets: Vec<usize>,
    /// Plain and raw: the bytes the echo must send back for one burst.
    reply: Vec<u8>,
    /// Deflate: the texts, to check the inflated echoes against.
    texts: Vec<Vec<u8>>,
}

fn plan(sc: Scenario, deflate: Option<&DeflateParams>) -> Result<Plan, String> {
    let mut plan = Plan {
        wire: Vec::new(),
        offsets: vec![0],
        reply: Vec::new(),
        texts: Vec::new(),
    };
    match (sc.mode, deflate) {
        (Mode::Raw, _) => {
            for slot in 0..sc.k {
                plan.wire.extend_from_slice(&binary(sc.size, slot));
                plan.offsets.push(plan.wire.len());
            }
            plan.reply = plan.wire.clone();
        }
        (Mode::Plain, _) => {
            for slot in 0..sc.k {
                let body = binary(sc.size, slot);
                client_frame(OpCode::Binary, false, &body, slot, &mut plan.wire);
                plan.offsets.push(plan.wire.len());
                server_frame(OpCode::Binary, &body, &mut plan.reply);
            }
        }
        (Mode::Deflate, Some(params)) => {
            let shared = SharedCompression {
                window_bits: params.client_max_window_bits,
                level: client_deflate().level,
                threshold: 0,
            };
            for slot in 0..POOL {
                let text = json_like(sc.size, slot);
                let body = shared.compress(&text).ok_or("compressing a text failed")?;
                client_frame(OpCode::Text, true, &body, slot, &mut plan.wire);
                plan.offsets.push(plan.wire.len());
                plan.texts.push(text);
            }
        }
        (Mode::Deflate, None) => return Err("deflate scenario without compression".into()),
    }
    Ok(plan)
}

/// What the client saw.
struct ClientReport {
    messages: u64,
}

async fn client(mut stream: TcpStream, sc: Scenario, n: usize) -> Result<ClientReport, String> {
    let params = if sc.mode == Mode::Raw {
        None
    } else {
        client_handshake(&mut stream, sc.mode == Mode::Deflate).await?
    };
    let plan = client_side(|| plan(sc, params.as_ref()))?;
    let rounds = n / sc.k;
    let mut buf = vec![0u8; 256 << 10];
    let mut inflater = params.map(|p| {
        client_side(|| {
            let mut c = Connection::new(Role::Client, Config::default());
            c.enable_deflate(&p, &client_deflate());
            c
        })
    });
    let mut messages = 0u64;
    for round in 0..rounds {
        match &mut inflater {
            None => {
                stream
                    .write_all(&plan.wire)
                    .await
                    .map_err(|e| format!("client write: {e}"))?;
                let want = plan.reply.len();
                let mut got = 0;
                while got < want {
                    let r = stream
                        .read(&mut buf[got..want])
                        .await
                        .map_err(|e| format!("client read: {e}"))?;
                    if r == 0 {
                        return Err(format!("server closed in round {round}"));
                    }
                    got += r;
                }
                if buf[..want] != plan.reply[..] {
                    return Err(format!("wrong echo in round {round}"));
                }
                messages += sc.k as u64;
            }
            Some(conn) => {
                let first = (round * sc.k) % POOL;
                let burst = &plan.wire[plan.offsets[first]..plan.offsets[first + sc.k]];
                stream
                    .write_all(burst)
                    .await
                    .map_err(|e| format!("client write: {e}"))?;
                let mut seen = 0;
                while seen < sc.k {
                    let r = stream
                        .read(&mut buf)
                        .await
                        .map_err(|e| format!("client read: {e}"))?;
                    if r == 0 {
                        return Err(format!("server closed in round {round}"));
                    }
                    seen = client_side(|| check_inflated(conn, &buf[..r], &plan.texts, first, seen, sc.k))?;
                }
                messages += sc.k as u64;
            }
        }
    }
    // The end: a close handshake (WebSocket) or a half close (raw), then the server's EOF.
    if sc.mode == Mode::Raw {
        stream.shutdown().await.map_err(|e| e.to_string())?;
    } else {
        let mut close = Vec::new();
        client_frame(OpCode::Close, false, &1000u16.to_be_bytes(), 0, &mut close);
        stream.write_all(&close).await.map_err(|e| e.to_string())?;
    }
    while stream.read(&mut buf).await.map_err(|e| e.to_string())? > 0 {}
    Ok(ClientReport { messages })
}

/// Feeds echoed bytes to the client's core and checks each whole message against the text
/// sent; returns how many of the burst's `k` have arrived.
fn check_inflated(
    conn: &mut Connection,
    bytes: &[u8],
    texts: &[Vec<u8>],
    first: usize,
    mut seen: usize,
    k: usize,
) -> Result<usize, String> {
    conn.receive(bytes);
    while seen < k {
        match conn.poll_event().map_err(|e| format!("client read: {e}"))? {
            Some(Event::Message(Message::Text(t))) if t.as_bytes() == texts[first + seen].as_slice() => {
                seen += 1
            }
            Some(other) => return Err(format!("unexpected echo: {other:?}")),
            None => break,
        }
    }
    Ok(seen)
}

// ---- running ----------------------------------------------------------------------------

/// Runs one scenario for `n` messages; returns what the server counted.
fn run(sc: Scenario, n: usize) -> Result<(u64, u64), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let work = async {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| e.to_string())?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            let (client_stream, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
            let client_stream = client_stream.map_err(|e| format!("connect: {e}"))?;
            let (server_stream, _) = accepted.map_err(|e| format!("accept: {e}"))?;
            drop(listener);
            // As `ferrosocket echo` and `ferrosocket bench` do.
            server_stream.set_nodelay(true).map_err(|e| e.to_string())?;
            client_stream.set_nodelay(true).map_err(|e| e.to_string())?;
            let server = tokio::spawn(ServerSide(Box::pin(async move {
                match sc.mode {
                    Mode::Raw => raw_server(server_stream).await,
                    _ => ws_server(server_stream).await,
                }
            })));
            let report = ClientSide(Box::pin(client(client_stream, sc, n))).await?;
            let served = server.await.map_err(|e| format!("server task: {e}"))??;
            Ok::<_, String>((report.messages, served))
        };
        // No timeout here: a timer of the driver's own would be runtime work counted on the
        // server side. The xtask bounds each run (it kills the process), and every read
        // here ends when the server answers or closes.
        work.await
    })
}

fn counts(side: usize) -> [u64; 4] {
    [ALLOCS, FREES, REALLOCS, BYTES].map(|i| COUNTS[side][i].load(Ordering::Relaxed))
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let result = match args.as_slice() {
        [flag] if flag == "--list" => {
            for name in SCENARIOS {
                println!("{name}");
            }
            Ok(())
        }
        [name, n] => one(name, n),
        [] => smoke(),
        _ => Err("usage: icount SCENARIO N | icount --list | icount (every scenario, a smoke run)".into()),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("icount: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// One scenario; prints `icount scenario=.. messages=.. allocs=.. frees=.. reallocs=..
/// alloc_bytes=.. client_allocs=..` (counts over the whole run: setup included).
fn one(name: &str, n: &str) -> Result<(), String> {
    let sc = parse_scenario(name).ok_or_else(|| format!("unknown scenario {name:?} (see --list)"))?;
    let n: usize = n.parse().map_err(|_| format!("N must be a number, not {n:?}"))?;
    if n == 0 || !n.is_multiple_of(sc.k) {
        return Err(format!("N must be a positive multiple of K = {}", sc.k));
    }
    let (messages, served) = run(sc, n)?;
    let [allocs, frees, reallocs, bytes] = counts(0);
    let [client_allocs, ..] = counts(1);
    println!(
        "icount scenario={name} messages={messages} served={served} allocs={allocs} frees={frees} reallocs={reallocs} alloc_bytes={bytes} client_allocs={client_allocs}"
    );
    if messages != n as u64 {
        return Err(format!("{messages} of {n} messages came back"));
    }
    Ok(())
}

/// Every scenario natively (`cargo run --release -p ferrosocket-icount`): checks they run and
/// shows their allocations per message (wall time here is only a sanity figure).
fn smoke() -> Result<(), String> {
    const N: usize = 4_000;
    println!("{:<18} {:>12} {:>12}", "scenario", "msgs/s", "allocs/msg");
    for name in SCENARIOS {
        let sc = parse_scenario(name).ok_or("bad scenario table")?;
        let a0 = counts(0)[0];
        run(sc, N)?;
        let a1 = counts(0)[0];
        let t1 = Instant::now();
        run(sc, 2 * N)?;
        let a2 = counts(0)[0];
        let rate = (2 * N) as f64 / t1.elapsed().as_secs_f64();
        let per = ((a2 - a1) as f64 - (a1 - a0) as f64) / N as f64;
        println!("{name:<18} {rate:>12.0} {per:>12.3}");
    }
    Ok(())
}
