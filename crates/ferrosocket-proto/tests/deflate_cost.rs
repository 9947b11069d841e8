//! What permessage-deflate costs a server connection: heap held by an idle compressed
//! connection with context takeover (measured with a counting allocator), and, as an
//! `#[ignore]`d driver for callgrind, the instructions of one compressed echo (inflate the
//! client's message, compress the reply).
//!
//! The driver: build with `cargo test --release -p ferrosocket-proto --test deflate_cost
//! --no-run`, then run the binary under
//! `valgrind --tool=callgrind --toggle-collect='*measured_echo*' BIN --ignored --exact
//! echo_cost_driver`, with `FS_SIZE` (bytes, default 1024), `FS_KIND` (`json` or `text`),
//! `FS_N` (messages, default 1000), `FS_LEVEL`, `FS_WBITS`: instructions / `FS_N` is the cost
//! of one echoed message.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, unsafe_code)]

use ferrosocket_proto::{Config, Connection, DeflateConfig, DeflateParams, Event, Message, Role};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::Mutex;
use std::sync::atomic::{AtomicIsize, Ordering};

/// Counts the bytes live on the heap (all threads: the tests take `SERIAL`).
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static SERIAL: Mutex<()> = Mutex::new(());

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// A small xorshift generator: the payloads are the same on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// JSON-like records: repeated keys, varying numbers and names (what chat and market-data
/// apps send).
fn json(rng: &mut Rng, len: usize) -> String {
    const NAMES: [&str; 8] = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"];
    const SIDES: [&str; 2] = ["buy", "sell"];
    let mut s = String::from("[");
    while s.len() < len {
        s.push_str(&format!(
            "{{\"id\":{},\"user\":\"{}{}\",\"side\":\"{}\",\"price\":{}.{:02},\"qty\":{},\"ok\":{}}},",
            rng.below(1_000_000),
            NAMES[rng.below(8) as usize],
            rng.below(100),
            SIDES[rng.below(2) as usize],
            rng.below(10_000),
            rng.below(100),
            rng.below(500),
            rng.below(2) == 1,
        ));
    }
    s.truncate(len);
    s
}

/// Random-ish text in the manner of Autobahn's compression cases: random words of random
/// lowercase letters, so deflate finds little to match and mostly entropy-codes.
fn text(rng: &mut Rng, len: usize) -> String {
    let mut s = String::with_capacity(len + 16);
    while s.len() < len {
        for _ in 0..1 + rng.below(9) {
            s.push((b'a' + rng.below(26) as u8) as char);
        }
        s.push(' ');
    }
    s.truncate(len);
    s
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn params(server_bits: u8) -> DeflateParams {
    DeflateParams {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: server_bits,
        client_max_window_bits: 15,
    }
}

fn pair(server_bits: u8, cfg: &DeflateConfig) -> (Connection, Connection) {
    let mut client = Connection::new(Role::Client, Config::default());
    client.enable_deflate(&params(server_bits), &DeflateConfig::default());
    let mut server = Connection::new(Role::Server, Config::default());
    server.enable_deflate(&params(server_bits), cfg);
    (client, server)
}

/// The server's half of an echo: inflate `wire` (one client message), compress the reply.
#[inline(never)]
fn measured_echo(server: &mut Connection, wire: &[u8]) -> usize {
    server.receive(wire);
    let mut out = 0;
    while let Some(ev) = server.poll_event().unwrap() {
        if let Event::Message(m) = ev {
            server.send(m).unwrap();
            out += server.take_output().len();
        }
    }
    out
}

/// Client messages, each its wire bytes: compressed with context takeover, in order.
fn client_frames(client: &mut Connection, kind: &str, size: usize, n: usize) -> (Vec<Vec<u8>>, usize) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut raw = 0;
    let frames = (0..n)
        .map(|_| {
            let body = if kind == "json" {
                json(&mut rng, size)
            } else {
                text(&mut rng, size)
            };
            raw += body.len();
            client.send(Message::text(body)).unwrap();
            client.take_output().to_vec()
        })
        .collect();
    (frames, raw)
}

/// Echoes `n` client messages through a server; returns the server's reply bytes.
fn echo_run(server: &mut Connection, frames: &[Vec<u8>]) -> usize {
    frames.iter().map(|f| measured_echo(server, black_box(f))).sum()
}

#[test]
#[ignore = "a callgrind driver: see the module docs"]
fn echo_cost_driver() {
    let size = env("FS_SIZE", 1024usize);
    let n = env("FS_N", 1000usize);
    let kind: String = env("FS_KIND", "json".to_string());
    let bits = env("FS_WBITS", 15u8);
    let cfg = DeflateConfig::default()
        .level(env("FS_LEVEL", DeflateConfig::default().level))
        .low_memory(env("FS_LOW", false));
    let (mut client, mut server) = pair(bits, &cfg);
    let (frames, raw) = client_frames(&mut client, &kind, size, n);
    let out = echo_run(&mut server, &frames);
    eprintln!(
        "{kind} {size} B x {n}: reply wire / payload = {:.3}",
        out as f64 / raw as f64
    );
}

/// Echoes `n` JSON-like messages of `size` from a client through a server and back, checking
/// each reply; returns the bytes of heap the server connection then holds (what its drop
/// gives back).
fn server_heap_after_echo(cfg: &DeflateConfig, bits: u8, size: usize, n: usize) -> isize {
    let (mut client, mut server) = pair(bits, cfg);
    let mut rng = Rng(7);
    for i in 0..n {
        let body = json(&mut rng, size);
        client.send(Message::text(body.clone())).unwrap();
        let wire = client.take_output();
        assert!(wire.len() < size, "compressed");
        measured_echo_into(&mut server, &wire, &mut client);
        match client.poll_event().unwrap() {
            Some(Event::Message(Message::Text(t))) => assert_eq!(t.as_str(), body, "message {i}"),
            other => panic!("message {i}: {other:?}"),
        }
    }
    drop(client);
    let before = live();
    drop(server);
    before - live()
}

/// The server echoes `wire` and the client receives the reply.
fn measured_echo_into(server: &mut Connection, wire: &[u8], client: &mut Connection) {
    server.receive(wire);
    while let Some(ev) = server.poll_event().unwrap() {
        if let Event::Message(m) = ev {
            server.send(m).unwrap();
            client.receive(&server.take_output());
        }
    }
}

/// The same for a connection without compression: its buffers, which are not the codec's.
fn plain_server_heap_after_echo(size: usize, n: usize) -> isize {
    let mut client = Connection::new(Role::Client, Config::default());
    let mut server = Connection::new(Role::Server, Config::default());
    let mut rng = Rng(7);
    for _ in 0..n {
        client.send(Message::text(json(&mut rng, size))).unwrap();
        let wire = client.take_output();
        measured_echo_into(&mut server, &wire, &mut client);
        assert!(matches!(client.poll_event(), Ok(Some(Event::Message(_)))));
    }
    drop(client);
    let before = live();
    drop(server);
    before - live()
}

#[test]
fn idle_compressed_connection_heap() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The inflater alone: zlib-rs allocates its state and a 32 KiB window together.
    let before = live();
    let inflater = flate2::Decompress::new_with_window_bits(false, 15);
    let inflater_bytes = live() - before;
    drop(inflater);
    for size in [1 << 10, 16 << 10] {
        let plain = plain_server_heap_after_echo(size, 50);
        let kept = server_heap_after_echo(&DeflateConfig::default(), 15, size, 50);
        let shed = server_heap_after_echo(&DeflateConfig::default().low_memory(true), 15, size, 50);
        eprintln!(
            "server after 50 echoes of {size} B, context takeover both ways: {kept} B kept, \
             {shed} B with low_memory; without compression {plain} B; an inflater {inflater_bytes} B"
        );
        // With low_memory the compressor goes after each message (the last 4 KiB sent stay
        // as the next one's dictionary); the inflater keeps the client's 32 KiB window.
        // The rest is the connection's own buffers (`plain` is their size uncompressed).
        assert!(shed < 64 << 10, "{shed} B");
        assert!(
            shed >= inflater_bytes + (4 << 10),
            "{shed} B: inflater and history are the floor"
        );
        assert!(
            kept > shed + (300 << 10),
            "{kept} B: the compressor stays without low_memory"
        );
    }
}
