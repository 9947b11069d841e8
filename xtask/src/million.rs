//! `cargo xtask million`: N idle WebSocket connections to one `ferrosocket echo` process.
//!
//! ```text
//! cargo xtask million [--count 1000000] [--deadline SECS] [--threads 4] [--sample 1000]
//! ```
//!
//! 1. Reports the limits that decide how far it can go (`fs.nr_open`, `fs.file-max`,
//!    `ip_local_port_range`, RLIMIT_NOFILE, MemAvailable). Run as root it raises `fs.nr_open`
//!    when the count needs it (and puts the old value back at the end) and the hard
//!    RLIMIT_NOFILE; otherwise the count is cut to what the descriptor limit allows, and the
//!    report says so.
//! 2. Starts `ferrosocket echo` (release build, `--quiet --keepalive 0 --no-compression`: an
//!    idle connection is pinged by no one and holds no deflate state) on a free port of
//!    127.0.0.1.
//! 3. Opens the connections with a lean holder: per connection one socket, bound before
//!    connecting to a source address 127.0.0.2, 127.0.0.3, ... (each source has the whole
//!    ephemeral port range to itself), the upgrade request written, the `101` read, and then
//!    only the descriptor kept (4 bytes each). Each thread pipelines [`BATCH`] handshakes.
//! 4. Reports how many opened and how fast, the server's VmRSS per connection (after minus
//!    before), the kernel's TCP memory from /proc/net/sockstat and MemAvailable's drop (both
//!    ends of every connection live in this machine's kernel).
//! 5. Sends a masked text message on a random sample of the connections and checks each echo.
//! 6. Closes everything and stops the server.
//!
//! Loopback only; every step is bounded by `--deadline` (opening stops there and the rest is
//! reported), socket operations by [`OP_TIMEOUT`].

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{RngCore, SeedableRng};
use rustix::net::{AddressFamily, SocketType};

use crate::soak::wire;
use crate::{proc, procfs};

/// Options of `cargo xtask million`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Connections to open.
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    /// Seconds for the whole run; opening stops at 80 % of it and what opened is measured.
    #[arg(long, default_value_t = 900)]
    deadline: u64,
    /// Holder threads (each pipelines its handshakes).
    #[arg(long, default_value_t = 4)]
    threads: u64,
    /// Connections that echo one message each at the end.
    #[arg(long, default_value_t = 1_000)]
    sample: u64,
    /// Server worker threads (`ferrosocket echo --threads`).
    #[arg(long, default_value_t = 2)]
    server_threads: u64,
}

/// Handshakes in flight per holder thread.
const BATCH: usize = 64;
/// Bound on each socket operation.
const OP_TIMEOUT: Duration = Duration::from_secs(10);
/// Descriptors kept aside for everything else a process opens.
const FD_SPARE: u64 = 100;

/// What the kernel allows, read before the run.
#[derive(Debug, Default)]
struct Limits {
    nr_open: u64,
    file_max: u64,
    port_range: (u32, u32),
    nofile_soft: u64,
    nofile_hard: u64,
    mem_available_kib: u64,
}

fn read_num(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn limits() -> Limits {
    use rustix::process::{Resource, getrlimit};
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut it = range.split_whitespace().filter_map(|s| s.parse::<u32>().ok());
    let port_range = (it.next().unwrap_or(32_768), it.next().unwrap_or(60_999));
    let r = getrlimit(Resource::Nofile);
    Limits {
        nr_open: read_num("/proc/sys/fs/nr_open").unwrap_or(0),
        file_max: std::fs::read_to_string("/proc/sys/fs/file-max")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0),
        port_range,
        nofile_soft: r.current.unwrap_or(u64::MAX),
        nofile_hard: r.maximum.unwrap_or(u64::MAX),
        mem_available_kib: meminfo("MemAvailable").unwrap_or(0),
    }
}

fn meminfo(name: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// `TCP: inuse N orphan N tw N alloc N mem PAGES` from /proc/net/sockstat: (inuse, mem pages).
fn sockstat() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
    let Some(line) = s.lines().find(|l| l.starts_with("TCP:")) else {
        return (0, 0);
    };
    let words: Vec<&str> = line.split_whitespace().collect();
    let get = |key: &str| {
        words
            .iter()
            .position(|w| *w == key)
            .and_then(|i| words.get(i + 1)?.parse().ok())
            .unwrap_or(0)
    };
    (get("inuse"), get("mem"))
}

/// Raises fs.nr_open (root only) and RLIMIT_NOFILE so that `want` descriptors fit; returns
/// what was changed (to say so, and to put fs.nr_open back) and the descriptor limit now.
fn raise_limits(want: u64, before: &Limits, notes: &mut Vec<String>) -> (Option<u64>, u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let mut old_nr_open = None;
    if want > before.nr_open {
        match std::fs::write("/proc/sys/fs/nr_open", want.to_string()) {
            Ok(()) => {
                notes.push(format!(
                    "raised fs.nr_open from {} to {want} (put back at the end)",
                    before.nr_open
                ));
                old_nr_open = Some(before.nr_open);
            }
            Err(e) => notes.push(format!(
                "could not raise fs.nr_open ({}) to {want}: {e} (run as root to go further)",
                before.nr_open
            )),
        }
    }
    let cap = read_num("/proc/sys/fs/nr_open").unwrap_or(before.nr_open);
    let target = want.min(cap);
    if setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(target),
            maximum: Some(target.max(before.nofile_hard.min(cap))),
        },
    )
    .is_err()
    {
        let r = getrlimit(Resource::Nofile);
        let hard = r.maximum.unwrap_or(u64::MAX);
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(target.min(hard)),
                maximum: r.maximum,
            },
        );
        notes.push(format!(
            "the hard RLIMIT_NOFILE ({hard}) could not be raised: that needs CAP_SYS_RESOURCE, which this process lacks"
        ));
    }
    let now = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    (old_nr_open, now)
}

/// The upgrade request every connection sends (the key need not be unique).
fn upgrade_request(port: u16) -> Vec<u8> {
    format!(
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// One socket from `src` to the server, connected (blocking, bounded by [`OP_TIMEOUT`]).
fn open(src: Ipv4Addr, server: SocketAddrV4) -> std::io::Result<TcpStream> {
    let fd = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None)?;
    rustix::net::sockopt::set_socket_timeout(&fd, rustix::net::sockopt::Timeout::Send, Some(OP_TIMEOUT))?;
    rustix::net::sockopt::set_socket_timeout(&fd, rustix::net::sockopt::Timeout::Recv, Some(OP_TIMEOUT))?;
    rustix::net::bind(&fd, &SocketAddrV4::new(src, 0))?;
    rustix::net::connect(&fd, &server)?;
    Ok(TcpStream::from(fd))
}

/// Reads one `101` head (nothing follows it: the server sends nothing unasked).
fn read_101(s: &mut TcpStream) -> Result<(), String> {
    let mut buf = [0u8; 512];
    let mut n = 0;
    while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
        if n == buf.len() {
            return Err("a response head over 512 bytes".into());
        }
        match s.read(&mut buf[n..]) {
            Ok(0) => return Err("closed before the 101".into()),
            Ok(k) => n += k,
            Err(e) => return Err(format!("reading the 101: {e}")),
        }
    }
    if !buf.starts_with(b"HTTP/1.1 101") {
        let head = String::from_utf8_lossy(&buf[..n.min(40)]).into_owned();
        return Err(format!("not a 101: {head:?}"));
    }
    Ok(())
}

/// What one holder thread did.
struct Held {
    streams: Vec<TcpStream>,
    error: Option<String>,
}

/// Opens `count` connections from `sources`, [`BATCH`] handshakes at a time, until `stop`.
fn hold(
    count: u64,
    sources: Vec<Ipv4Addr>,
    per_source: u64,
    server: SocketAddrV4,
    stop: Instant,
    opened: &AtomicU64,
) -> Held {
    let request = upgrade_request(server.port());
    let mut held = Held {
        streams: Vec::with_capacity(usize::try_from(count).unwrap_or(0)),
        error: None,
    };
    let (mut src, mut used) = (0usize, 0u64);
    let mut batch = Vec::with_capacity(BATCH);
    'outer: while (held.streams.len() as u64) < count {
        if Instant::now() >= stop {
            held.error = Some("the deadline came first".into());
            break;
        }
        batch.clear();
        while batch.len() < BATCH && ((held.streams.len() + batch.len()) as u64) < count {
            if used >= per_source {
                src += 1;
                used = 0;
            }
            let Some(&ip) = sources.get(src) else {
                held.error = Some("out of source addresses (ephemeral ports)".into());
                break 'outer;
            };
            match open(ip, server) {
                Ok(s) => {
                    used += 1;
                    batch.push(s);
                }
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::ADDRNOTAVAIL.raw_os_error()) => {
                    // This source's ports are used up: the next one.
                    used = per_source;
                }
                Err(e) => {
                    held.error = Some(format!("connect from {ip}: {e} ({})", describe_errno(&e)));
                    break;
                }
            }
        }
        for s in &mut batch {
            if let Err(e) = s.write_all(&request) {
                held.error = Some(format!("writing the upgrade: {e}"));
            }
        }
        for mut s in batch.drain(..) {
            match read_101(&mut s) {
                Ok(()) => {
                    held.streams.push(s);
                    opened.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    held.error.get_or_insert(e);
                }
            }
        }
        if held.error.is_some() {
            break;
        }
    }
    held
}

/// What ran out, by the error.
fn describe_errno(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(24) => "this process's descriptor limit (EMFILE)",
        Some(23) => "the system's file table (ENFILE, fs.file-max)",
        Some(12) | Some(105) => "kernel memory (ENOMEM/ENOBUFS)",
        Some(99) => "ephemeral ports (EADDRNOTAVAIL)",
        Some(110) | Some(11) => "the server did not accept in time (its backlog or descriptor limit)",
        Some(111) => "the server refused (is it still running?)",
        _ => "see the error",
    }
}

/// Echoes one masked text message on each sampled connection; returns (ok, first failure).
fn echo_sample(streams: &mut [TcpStream], n: u64, rng: &mut StdRng, stop: Instant) -> (u64, Option<String>) {
    let picks = sample(
        rng,
        streams.len(),
        usize::try_from(n).unwrap_or(0).min(streams.len()),
    );
    let mut ok = 0u64;
    let mut first = None;
    for i in picks.iter() {
        if Instant::now() >= stop {
            first.get_or_insert_with(|| "the deadline came during the sample".to_string());
            break;
        }
        let payload = format!("million sample {i} {:016x}", rng.next_u64());
        let frame = wire::frame(0x1, payload.as_bytes(), rng);
        let s = &mut streams[i];
        let result = (|| -> Result<(), String> {
            s.write_all(&frame).map_err(|e| format!("write: {e}"))?;
            let mut buf = Vec::with_capacity(64);
            let mut chunk = [0u8; 256];
            loop {
                if let Some(f) = wire::take_frame(&mut buf).map_err(|e| format!("{e:?}"))? {
                    if f.opcode != 0x1 || f.payload != payload.as_bytes() {
                        return Err(format!("connection {i}: the echo differs (opcode {})", f.opcode));
                    }
                    return Ok(());
                }
                let k = s.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
                if k == 0 {
                    return Err(format!("connection {i}: closed before the echo"));
                }
                buf.extend_from_slice(&chunk[..k]);
            }
        })();
        match result {
            Ok(()) => ok += 1,
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    (ok, first)
}

/// Runs the whole measurement.
pub(crate) fn run(args: Args) -> Result<()> {
    if args.count == 0 || args.threads == 0 || args.threads > 64 {
        bail!("--count must be at least 1 and --threads 1 to 64");
    }
    // The release build comes first: the deadline is for the run itself.
    let bin = proc::ferrosocket_release()?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.deadline);
    let open_stop = start + Duration::from_secs(args.deadline * 8 / 10);
    let before = limits();
    println!(
        "limits: fs.nr_open {}, fs.file-max {}, ip_local_port_range {}-{}, RLIMIT_NOFILE {}/{}, MemAvailable {} MiB",
        before.nr_open,
        before.file_max,
        before.port_range.0,
        before.port_range.1,
        before.nofile_soft,
        before.nofile_hard,
        before.mem_available_kib / 1024
    );
    let mut notes = Vec::new();
    // The server and the holder each hold one descriptor per connection.
    let (old_nr_open, nofile) = raise_limits(args.count + FD_SPARE, &before, &mut notes);
    let mut count = args.count;
    if nofile < count + FD_SPARE {
        count = nofile.saturating_sub(FD_SPARE);
        notes.push(format!(
            "RLIMIT_NOFILE is {nofile}: opening {count} connections, not {}",
            args.count
        ));
    }
    if before.file_max < 2 * count + 2 * FD_SPARE {
        notes.push(format!(
            "fs.file-max {} is below the {} descriptors both ends need: expect ENFILE",
            before.file_max,
            2 * count
        ));
    }
    for n in &notes {
        println!("note: {n}");
    }
    let result = measure(&args, &bin, count, deadline, open_stop);
    if let Some(old) = old_nr_open {
        // Processes that raised their limit keep it; only new ones see the old cap again.
        if let Err(e) = std::fs::write("/proc/sys/fs/nr_open", old.to_string()) {
            eprintln!("xtask: could not put fs.nr_open back to {old}: {e}");
        }
    }
    println!("total time {:.1} s", start.elapsed().as_secs_f64());
    result
}

fn measure(
    args: &Args,
    bin: &std::path::Path,
    count: u64,
    deadline: Instant,
    open_stop: Instant,
) -> Result<()> {
    let port = proc::free_port()?;
    let server = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let log = std::env::temp_dir().join(format!("xtask-million-echo-{port}.log"));
    let mut child = proc::spawn(
        Command::new(bin).args([
            "echo",
            "--listen",
            &server.to_string(),
            "--quiet",
            "--keepalive",
            "0",
            "--no-compression",
            "--threads",
            &args.server_threads.to_string(),
        ]),
        &log,
    )?;
    proc::wait_port(server.into(), &mut child, Duration::from_secs(20))?;
    thread::sleep(Duration::from_millis(500));
    let pid = child.pid();
    let rss0 = procfs::rss_kib(pid).context("reading the server's VmRSS")?;
    let (tcp0, mem0) = sockstat();
    let avail0 = meminfo("MemAvailable").unwrap_or(0);

    // Sources: each holds most of the ephemeral range (a margin for other users of the port).
    let range = limits().port_range;
    let per_source = (u64::from(range.1.saturating_sub(range.0)) * 9 / 10).max(1);
    let per_thread = count.div_ceil(args.threads);
    let sources_per_thread = per_thread.div_ceil(per_source) + 1;
    println!(
        "opening {count} connections to {server} from {} threads, {} source addresses (127.0.0.2...), {per_source} per source",
        args.threads,
        sources_per_thread * args.threads
    );
    let opened = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut handles = Vec::new();
    for t in 0..args.threads {
        let n = per_thread.min(count.saturating_sub(t * per_thread));
        let sources: Vec<Ipv4Addr> = (0..sources_per_thread)
            .map(|k| {
                let idx = 2 + t * sources_per_thread + k; // 127.0.0.2 onwards
                Ipv4Addr::new(
                    127,
                    ((idx >> 16) & 0xff) as u8,
                    ((idx >> 8) & 0xff) as u8,
                    (idx & 0xff) as u8,
                )
            })
            .collect();
        let opened = opened.clone();
        handles.push(thread::spawn(move || {
            hold(n, sources, per_source, server, open_stop, &opened)
        }));
    }
    let progress = {
        let opened = opened.clone();
        thread::spawn(move || {
            let mut last = 0;
            while Instant::now() < open_stop {
                thread::sleep(Duration::from_secs(5));
                let now = opened.load(Ordering::Relaxed);
                if now >= count || now == last && now > 0 {
                    return;
                }
                println!("  {now} open after {:.0} s", t0.elapsed().as_secs_f64());
                last = now;
            }
        })
    };
    let mut streams = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut errors = Vec::new();
    for h in handles {
        match h.join() {
            Ok(held) => {
                streams.extend(held.streams);
                if let Some(e) = held.error {
                    errors.push(e);
                }
            }
            Err(_) => errors.push("a holder thread panicked".into()),
        }
    }
    let open_secs = t0.elapsed().as_secs_f64();
    let _ = progress.join();
    let n = streams.len() as u64;
    thread::sleep(Duration::from_secs(2)); // let the server finish its last accepts
    let rss1 = procfs::rss_kib(pid).unwrap_or(0);
    let (tcp1, mem1) = sockstat();
    let avail1 = meminfo("MemAvailable").unwrap_or(0);
    let server_alive = procfs::alive(pid);

    let mut rng = StdRng::from_os_rng();
    let (echo_ok, echo_err) = echo_sample(&mut streams, args.sample, &mut rng, deadline);
    let sampled = args.sample.min(n);

    let mut out = String::new();
    let _ = writeln!(out, "\n## cargo xtask million (count {count})\n");
    let _ = writeln!(out, "| figure | value |\n|---|---|");
    let _ = writeln!(out, "| connections opened | {n} of {count} |");
    let _ = writeln!(
        out,
        "| time to open | {open_secs:.1} s ({:.0} connections/s) |",
        n as f64 / open_secs.max(1e-6)
    );
    let per = |kib: u64| {
        if n == 0 {
            0.0
        } else {
            kib as f64 * 1024.0 / n as f64
        }
    };
    let _ = writeln!(
        out,
        "| server VmRSS | {rss0} KiB before, {rss1} KiB after: {:.0} bytes per connection |",
        per(rss1.saturating_sub(rss0))
    );
    let _ = writeln!(
        out,
        "| kernel TCP sockets in use (sockstat) | {tcp0} before, {tcp1} after |"
    );
    let _ = writeln!(
        out,
        "| kernel TCP buffer memory (sockstat mem) | {} KiB before, {} KiB after |",
        mem0 * 4,
        mem1 * 4
    );
    let _ = writeln!(
        out,
        "| MemAvailable drop (both ends, kernel + server + holder; machine-wide, so other processes add noise) | {} MiB: {:.0} bytes per connection |",
        avail0.saturating_sub(avail1) / 1024,
        per(avail0.saturating_sub(avail1))
    );
    let _ = writeln!(out, "| echo sample | {echo_ok} of {sampled} echoed correctly |");
    let _ = writeln!(out, "| server alive after opening | {server_alive} |");
    if let Some(e) = errors.first() {
        let _ = writeln!(out, "| stopped because | {e} |");
    }
    if let Some(e) = &echo_err {
        let _ = writeln!(out, "| first echo failure | {e} |");
    }
    println!("{out}");

    let t_close = Instant::now();
    drop(streams);
    child.stop()?;
    println!(
        "closed every connection and stopped the server in {:.1} s",
        t_close.elapsed().as_secs_f64()
    );
    if echo_ok < sampled {
        bail!(
            "{} of {sampled} sampled connections did not echo",
            sampled - echo_ok
        );
    }
    if n < count && count <= 20_000 {
        bail!("only {n} of {count} connections opened: {}", errors.join("; "));
    }
    Ok(())
}
