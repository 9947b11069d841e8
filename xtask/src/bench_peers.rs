//! `cargo xtask bench-peers`: ferrosocket's echo server against its peers, all single-threaded:
//! a raw TCP echo (the ceiling), fastwebsockets, sockudo-ws (its example's one-at-a-time loop,
//! and the batched loop its README recommends), tokio-tungstenite (`bench/peers`, its own cargo
//! workspace) and gorilla/websocket (`bench/peers/go`, built with `go` when it is installed;
//! without it that server is left out with a note saying how to install it).
//!
//! ```text
//! cargo xtask bench-peers [--reps N] [--duration SECS] [--warmup SECS] [--quick] [--compress]
//!                         [--servers "raw ferrosocket fastwebsockets sockudo sockudo-batched
//!                                     tokio-tungstenite gorilla"]   (the default: all of them)
//!                         (also "ferrosocket-before": the binary named by $FERROSOCKET_BEFORE)
//!                         [--cap-mib MIB] [--out FILE]
//! BENCH_CELLS="1024:100:16 16384:1:16" (payload:connections:in-flight) to pick cells.
//! ```
//!
//! --compress runs the compressed echo: `ferrosocket bench --compress` (it offers
//! permessage-deflate with client_no_context_takeover and fails a connection that does not get
//! it), `ferrosocket echo` with its default compression, sockudo-ws with `--compress`
//! (`DeflateConfig::default()`: context takeover, level 6) and gorilla with `-compress`
//! (`EnableCompression`; gorilla has no context takeover). Servers without permessage-deflate
//! (raw, fastwebsockets, tokio-tungstenite) are left out, with a note in the output, and the
//! ratios in parentheses are to gorilla instead of raw TCP.
//!
//! For each cell (payload 16 B, 1 KiB, 16 KiB, 1 MiB x connections 1, 100, 1000 x in flight 1,
//! 16) every server runs pinned to core 0 and `ferrosocket bench` to core 1; servers are
//! interleaved (A B C D A B C D ...) over --reps repetitions, each run --duration seconds after
//! a --warmup. Each run starts a fresh server. Cells whose bytes in flight (payload x
//! connections x in flight) exceed --cap-mib are skipped: 1 MiB x 1000 x 1, 1 MiB x 100 x 16 and
//! 1 MiB x 1000 x 16.
//!
//! Recorded per run: msgs/s and the server's CPU time (utime+stime from /proc/PID/stat, sampled
//! by the bench tool at the start and end of the measured interval) per message. Writes a
//! markdown table of medians (ratios to raw TCP: median of a server over median of raw) to
//! `bench/results/peers-DATE[-compress][-quick].md`, the raw JSON lines next to it, and prints it.
//! --quick: 5 cells, 2 repetitions of 2 s (a smoke run). Loopback only; every run is bounded by
//! a timeout. The bench tool counts every echoed frame and checks its length (a wrong echo is
//! an error of that run).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{benchkit, proc};

/// Options of `cargo xtask bench-peers`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Repetitions per cell and server (default 3; 2 with --quick).
    #[arg(long)]
    reps: Option<u32>,
    /// Seconds measured per run (default 5; 2 with --quick).
    #[arg(long)]
    duration: Option<f64>,
    /// Seconds of load before each measurement (0.5 with --quick).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// A smoke run: 5 cells, 2 repetitions of 2 s.
    #[arg(long)]
    quick: bool,
    /// Compressed echo (permessage-deflate) on every server that has it; the others are left
    /// out, and ratios are to gorilla instead of raw TCP.
    #[arg(long)]
    compress: bool,
    /// The servers, space-separated: raw ferrosocket ferrosocket-before fastwebsockets sockudo
    /// sockudo-batched tokio-tungstenite gorilla.
    #[arg(
        long,
        default_value = "raw ferrosocket fastwebsockets sockudo sockudo-batched tokio-tungstenite gorilla"
    )]
    servers: String,
    /// Skip cells with more than this many MiB in flight.
    #[arg(long, default_value_t = 256)]
    cap_mib: u64,
    /// Markdown output (default `bench/results/peers-DATE[-compress][-quick].md`; the .jsonl goes beside it).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// A cell of the grid: payload bytes, connections, messages in flight per connection.
type Cell = (u64, u64, u64);

const SERVERS: [&str; 8] = [
    "raw",
    "ferrosocket",
    "ferrosocket-before",
    "fastwebsockets",
    "sockudo",
    "sockudo-batched",
    "tokio-tungstenite",
    "gorilla",
];

/// Whether `server` can echo compressed (permessage-deflate) messages.
fn compresses(server: &str) -> bool {
    matches!(
        server,
        "ferrosocket" | "ferrosocket-before" | "sockudo" | "sockudo-batched" | "gorilla"
    )
}

/// The servers to run (in order) and a note for each one left out: under `compress`, those
/// without permessage-deflate; gorilla when it could not be built (`gorilla_built`).
fn select(servers: &[String], compress: bool, gorilla_built: bool) -> (Vec<String>, Vec<String>) {
    let mut run = Vec::new();
    let mut no_deflate = Vec::new();
    let mut notes = Vec::new();
    for s in servers {
        if compress && !compresses(s) {
            no_deflate.push(s.as_str());
        } else if s == "gorilla" && !gorilla_built {
            notes.push(format!(
                "gorilla left out: `go` or gorilla/websocket is missing ({}).",
                benchkit::GORILLA_INSTALL
            ));
        } else if !run.contains(s) {
            run.push(s.clone());
        }
    }
    if !no_deflate.is_empty() {
        notes.insert(
            0,
            format!(
                "Left out of the compressed echo (no permessage-deflate): {}.",
                no_deflate.join(", ")
            ),
        );
    }
    (run, notes)
}

/// Runs the grid and writes the tables.
pub(crate) fn run(args: Args) -> Result<()> {
    let (reps, duration, warmup) = if args.quick {
        (args.reps.unwrap_or(2), args.duration.unwrap_or(2.0), 0.5)
    } else {
        (args.reps.unwrap_or(3), args.duration.unwrap_or(5.0), args.warmup)
    };
    let asked: Vec<String> = args.servers.split_whitespace().map(str::to_owned).collect();
    if let Some(bad) = asked.iter().find(|s| !SERVERS.contains(&s.as_str())) {
        bail!("unknown server {bad} (known: {})", SERVERS.join(" "));
    }
    let before = std::env::var_os("FERROSOCKET_BEFORE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    if asked.iter().any(|s| s == "ferrosocket-before") && before.is_none() {
        bail!("set FERROSOCKET_BEFORE to a ferrosocket binary");
    }
    let cells = cells(args.quick, std::env::var("BENCH_CELLS").ok().as_deref())?;
    let out = benchkit::at_root(&args.out.unwrap_or_else(|| {
        let compress = if args.compress { "-compress" } else { "" };
        let quick = if args.quick { "-quick" } else { "" };
        PathBuf::from(format!(
            "bench/results/peers-{}{compress}{quick}.md",
            benchkit::today()
        ))
    }));
    let jsonl = out.with_extension("jsonl");
    if let Some(dir) = out.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // 1000 connections need more than the usual 1024 descriptors, on both ends.
    benchkit::raise_nofile(65_536);

    eprintln!("building (release): ferrosocket-cli and bench/peers");
    let fs_bin = proc::ferrosocket_release()?;
    let peers = benchkit::build_peers()?;
    let gorilla = if asked.iter().any(|s| s == "gorilla") {
        benchkit::build_gorilla()
    } else {
        None
    };
    let (servers, notes) = select(&asked, args.compress, gorilla.is_some());
    for note in &notes {
        eprintln!("{note}");
    }
    if servers.is_empty() {
        bail!("no server left to run");
    }
    let bins = Bins {
        ferrosocket: &fs_bin,
        before: before.as_deref(),
        peers: &peers,
        gorilla: gorilla.as_deref(),
    };
    let logs = std::env::temp_dir().join(format!("ferrosocket-bench-peers.{}", std::process::id()));

    let mut lines = String::new();
    let mut results: Vec<(Cell, String, Value)> = Vec::new();
    let mut skipped = Vec::new();
    let run_timeout = Duration::from_secs_f64(duration + warmup + 60.0);
    for (n, &(size, conns, k)) in cells.iter().enumerate() {
        let tag = format!("[{}/{}]", n + 1, cells.len());
        let bytes = size * conns * k;
        if bytes > args.cap_mib << 20 {
            eprintln!(
                "{tag} skip {size} B x {conns} x {k} in flight: {} MiB in flight > {} MiB cap",
                bytes >> 20,
                args.cap_mib
            );
            let _ = writeln!(
                lines,
                r#"{{"server":"*","size":{size},"conns":{conns},"k":{k},"skipped":true}}"#
            );
            skipped.push((size, conns, k));
            continue;
        }
        for rep in 1..=reps {
            for name in &servers {
                let port = proc::free_port()?;
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                let mut server = start_server(name, addr, &bins, args.compress, &logs)?;
                proc::wait_port(addr, &mut server, Duration::from_secs(5))
                    .with_context(|| format!("server {name} did not start on {addr}"))?;
                let mut cmd = Command::new("taskset");
                cmd.args(["-c", "1"])
                    .arg(&fs_bin)
                    .args(["bench", &format!("ws://{addr}/ws")]);
                if name == "raw" {
                    cmd.arg("--raw-echo");
                }
                if args.compress {
                    cmd.arg("--compress");
                }
                cmd.args(["--connections", &conns.to_string(), "--size", &size.to_string()])
                    .args(["--in-flight", &k.to_string(), "--duration", &duration.to_string()])
                    .args([
                        "--warmup",
                        &warmup.to_string(),
                        "--json",
                        "--server-pid",
                        &server.pid().to_string(),
                    ])
                    .args(["--timeout", "10"]);
                let outcome = benchkit::run_bench(&mut cmd, &logs.join("bench.log"), run_timeout);
                server.stop()?;
                let line = if outcome.json_line.is_empty() {
                    r#"{"messages":0,"msgs_per_sec":0,"errors":-1,"first_error":"bench failed or timed out"}"#
                        .to_owned()
                } else {
                    outcome.json_line
                };
                let _ = writeln!(
                    lines,
                    r#"{{"server":"{name}","size":{size},"conns":{conns},"k":{k},"rep":{rep},"result":{line}}}"#
                );
                fs::write(&jsonl, &lines).with_context(|| format!("writing {}", jsonl.display()))?;
                let result: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                let rate = result
                    .get("msgs_per_sec")
                    .and_then(Value::as_f64)
                    .map_or("?".into(), |r| (r as u64).to_string());
                eprintln!("{tag} {size} B x {conns} conns x {k} in flight, rep {rep}, {name}: {rate} msgs/s");
                results.push(((size, conns, k), name.clone(), result));
            }
        }
    }
    fs::write(&jsonl, &lines).with_context(|| format!("writing {}", jsonl.display()))?;
    let _ = fs::remove_dir_all(&logs);

    let table = Table {
        compress: args.compress,
        notes: &notes,
        reps,
        duration,
        warmup,
        cap_mib: args.cap_mib,
        servers: &servers,
        results: &results,
        skipped: &skipped,
    };
    let text = table.markdown();
    fs::write(&out, &text).with_context(|| format!("writing {}", out.display()))?;
    println!("{text}");
    println!("written to {} (raw results: {})", out.display(), jsonl.display());
    Ok(())
}

/// The cells to run: --quick's five, `BENCH_CELLS`, or the whole grid.
fn cells(quick: bool, env: Option<&str>) -> Result<Vec<Cell>> {
    if quick {
        return Ok(vec![
            (16, 1, 1),
            (16, 100, 1),
            (16, 100, 16),
            (16384, 100, 1),
            (1_048_576, 1, 1),
        ]);
    }
    if let Some(spec) = env.filter(|s| !s.trim().is_empty()) {
        return spec
            .split_whitespace()
            .map(|cell| {
                let parts: Vec<u64> = cell
                    .split(':')
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .with_context(|| format!("BENCH_CELLS: bad cell {cell:?}"))?;
                match parts[..] {
                    [size, conns, k] => Ok((size, conns, k)),
                    _ => bail!("BENCH_CELLS: {cell:?} is not payload:connections:in-flight"),
                }
            })
            .collect();
    }
    let mut all = Vec::new();
    for size in [16, 1024, 16384, 1_048_576] {
        for conns in [1, 100, 1000] {
            for k in [1, 16] {
                all.push((size, conns, k));
            }
        }
    }
    Ok(all)
}

/// Where the servers' binaries are.
struct Bins<'a> {
    ferrosocket: &'a Path,
    /// `$FERROSOCKET_BEFORE`.
    before: Option<&'a Path>,
    /// bench/peers/target/release.
    peers: &'a Path,
    /// bench/peers/target/go/gorilla-echo, if it was built.
    gorilla: Option<&'a Path>,
}

/// Starts server `name` on `addr`, pinned to core 0, compressing if `compress`.
fn start_server(
    name: &str,
    addr: SocketAddr,
    bins: &Bins<'_>,
    compress: bool,
    logs: &Path,
) -> Result<proc::Child> {
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", "0"]);
    server_command(&mut cmd, name, bins, compress)?;
    cmd.args(["--listen", &addr.to_string()]);
    proc::spawn(&mut cmd, &logs.join(format!("{name}.log")))
}

/// Adds server `name`'s program and options (all but `--listen`) to `cmd`.
fn server_command(cmd: &mut Command, name: &str, bins: &Bins<'_>, compress: bool) -> Result<()> {
    let echo = |cmd: &mut Command, bin: &Path| {
        cmd.arg(bin).args(["echo", "--threads", "1", "--quiet"]);
        // `ferrosocket echo` compresses unless told not to.
        if !compress {
            cmd.arg("--no-compression");
        }
    };
    match name {
        "raw" => drop(cmd.arg(bins.peers.join("raw-tcp-echo"))),
        "ferrosocket" => echo(cmd, bins.ferrosocket),
        // Another build of ferrosocket (e.g. main before a change), from $FERROSOCKET_BEFORE.
        "ferrosocket-before" => match bins.before {
            Some(bin) => echo(cmd, bin),
            None => bail!("set FERROSOCKET_BEFORE to a ferrosocket binary"),
        },
        "fastwebsockets" => drop(cmd.arg(bins.peers.join("fastwebsockets-echo"))),
        "sockudo" => drop(cmd.arg(bins.peers.join("sockudo-echo"))),
        "sockudo-batched" => drop(cmd.arg(bins.peers.join("sockudo-batched-echo"))),
        "tokio-tungstenite" => drop(cmd.arg(bins.peers.join("tokio-tungstenite-echo"))),
        "gorilla" => match bins.gorilla {
            // One OS thread running Go code, as every other server has one thread.
            Some(bin) => drop(cmd.arg(bin).env("GOMAXPROCS", "1")),
            None => bail!("gorilla-echo was not built ({})", benchkit::GORILLA_INSTALL),
        },
        other => bail!("unknown server {other}"),
    }
    if compress && name != "ferrosocket" && name != "ferrosocket-before" {
        if !compresses(name) {
            bail!("{name} has no permessage-deflate");
        }
        // Go's flag package takes --compress as well as -compress.
        cmd.arg("--compress");
    }
    Ok(())
}

/// The results as markdown tables.
struct Table<'a> {
    /// A compressed-echo grid: ratios are to gorilla, not raw TCP.
    compress: bool,
    /// Lines to print under the tables (servers left out and why).
    notes: &'a [String],
    reps: u32,
    duration: f64,
    warmup: f64,
    cap_mib: u64,
    servers: &'a [String],
    results: &'a [(Cell, String, Value)],
    skipped: &'a [Cell],
}

/// A server's name in the tables.
fn name(server: &str) -> String {
    match server {
        "raw" => "raw TCP".to_owned(),
        "fastwebsockets" => "fastwebsockets 0.10".to_owned(),
        "sockudo" => "sockudo-ws 3.1".to_owned(),
        "sockudo-batched" => "sockudo-ws 3.1 batched".to_owned(),
        "tokio-tungstenite" => "tokio-tungstenite 0.30".to_owned(),
        "gorilla" => "gorilla/websocket 1.5".to_owned(),
        other => other.to_owned(),
    }
}

fn size_label(b: u64) -> String {
    if b >= 1 << 20 {
        format!("{} MiB", b >> 20)
    } else if b >= 1 << 10 {
        format!("{} KiB", b >> 10)
    } else {
        format!("{b} B")
    }
}

fn fmt_rate(v: Option<f64>) -> String {
    match v {
        None => "n/a".into(),
        Some(v) if v >= 1e6 => format!("{:.2}M", v / 1e6),
        Some(v) if v >= 1e4 => format!("{:.0}k", v / 1e3),
        Some(v) if v >= 1e3 => format!("{:.1}k", v / 1e3),
        Some(v) => format!("{v:.0}"),
    }
}

fn errors(r: &Value) -> i64 {
    r.get("errors").and_then(Value::as_i64).unwrap_or(0)
}

/// The median of `field` over the runs without errors.
fn median(runs: &[&Value], field: &str) -> Option<f64> {
    benchkit::median(
        runs.iter()
            .filter(|r| errors(r) == 0)
            .filter_map(|r| r.get(field)?.as_f64()),
    )
}

/// The first line of /proc/cpuinfo's "model name", the processors it lists, the kernel release
/// and the 1-minute load average.
fn machine() -> (String, usize, String, f64) {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or(String::new(), |(_, v)| v.trim().to_owned());
    let cpus = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
    let release = fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let load = fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    (model, cpus, release, load)
}

impl Table<'_> {
    fn markdown(&self) -> String {
        let servers = self.servers;
        let has_fs = servers.iter().any(|s| s == "ferrosocket");
        let peers: Vec<&String> = servers
            .iter()
            .filter(|s| *s != "raw" && *s != "ferrosocket")
            .collect();
        let mut by: BTreeMap<Cell, BTreeMap<&str, Vec<&Value>>> = BTreeMap::new();
        for (cell, server, r) in self.results {
            by.entry(*cell)
                .or_default()
                .entry(server.as_str())
                .or_default()
                .push(r);
        }
        // The ratios' denominator: the raw TCP ceiling, or gorilla for the compressed echo
        // (raw TCP does not compress; the issue's target there is a multiple of gorilla's).
        let base = if self.compress { "gorilla" } else { "raw" };
        let (model, cpus, release, load) = machine();
        let mut lines: Vec<String> = Vec::new();
        let what = if self.compress {
            "compressed echo (permessage-deflate) throughput"
        } else {
            "echo throughput"
        };
        lines.push(format!(
            "# ferrosocket vs peers: {what} ({})\n",
            benchkit::today()
        ));
        lines.push(format!(
            "Machine: {model}, {cpus} cores, Linux {release}; load average at the end {load:.1}. \
             Each server single-threaded, pinned to core 0; `ferrosocket bench` (current_thread) on core 1. \
             Medians of {} runs per server, interleaved; {} s measured after {} s warm-up; fresh server per run. \
             Cells with more than {} MiB in flight skipped. Runs with errors are left out of the medians (shown as n/a or marked).{}\n",
            self.reps,
            self.duration,
            self.warmup,
            self.cap_mib,
            if self.compress {
                " Compressed: `ferrosocket bench --compress` offers permessage-deflate with client_no_context_takeover; \
                 ferrosocket and sockudo-ws compress with context takeover, gorilla without (all it supports)."
            } else {
                ""
            }
        ));
        let mut hdr: Vec<String> = ["payload", "conns", "in flight"].map(String::from).to_vec();
        hdr.extend(servers.iter().map(|s| name(s)));
        if has_fs {
            hdr.extend([
                format!("ferrosocket / {}", name(base)),
                "ferrosocket / best peer".to_owned(),
            ]);
        }
        lines.push(format!(
            "## Throughput, msgs/s (median; ratio vs {} in parentheses)\n",
            name(base)
        ));
        lines.push(format!("| {} |", hdr.join(" | ")));
        lines.push(format!("|{}", "---|".repeat(hdr.len())));
        let mut cpu_rows = Vec::new();
        for (cell, runs) in &by {
            let (size, conns, k) = *cell;
            let runs_of = |s: &str| runs.get(s).map_or(&[][..], Vec::as_slice);
            let rates: BTreeMap<&str, Option<f64>> = servers
                .iter()
                .map(|s| (s.as_str(), median(runs_of(s), "msgs_per_sec")))
                .collect();
            let rate = |s: &str| rates.get(s).copied().flatten().filter(|v| *v != 0.0);
            let raw = rate(base);
            let mut row = vec![size_label(size), conns.to_string(), k.to_string()];
            for s in servers {
                let v = rates.get(s.as_str()).copied().flatten();
                let mut cell = fmt_rate(v);
                if let (Some(raw), Some(v), false) = (raw, rate(s), s == base) {
                    let _ = write!(cell, " ({:.2})", v / raw);
                }
                let errs = runs_of(s).iter().filter(|r| errors(r) != 0).count();
                if errs > 0 {
                    let _ = write!(cell, " [{errs} run(s) with errors]");
                }
                row.push(cell);
            }
            if has_fs {
                let fsr = rate("ferrosocket");
                let best = peers
                    .iter()
                    .filter_map(|p| rate(p))
                    .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
                let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
                    (Some(a), Some(b)) => format!("{:.2}", a / b),
                    _ => "n/a".into(),
                };
                row.push(ratio(fsr, raw));
                row.push(ratio(fsr, best));
            }
            lines.push(format!("| {} |", row.join(" | ")));
            let mut cpu_row = vec![size_label(size), conns.to_string(), k.to_string()];
            cpu_row.extend(servers.iter().map(|s| {
                median(runs_of(s), "server_cpu_us_per_msg").map_or("n/a".into(), |v| format!("{v:.2}"))
            }));
            cpu_rows.push(cpu_row);
        }
        lines.push(String::new());
        lines.push(
            "## Server CPU time per message, us (utime+stime over the measured interval / messages; median)\n".into(),
        );
        let mut h2: Vec<String> = ["payload", "conns", "in flight"].map(String::from).to_vec();
        h2.extend(servers.iter().map(|s| name(s)));
        lines.push(format!("| {} |", h2.join(" | ")));
        lines.push(format!("|{}", "---|".repeat(h2.len())));
        for r in cpu_rows {
            lines.push(format!("| {} |", r.join(" | ")));
        }
        if !self.skipped.is_empty() {
            let mut skipped = self.skipped.to_vec();
            skipped.sort_unstable();
            skipped.dedup();
            let list: Vec<String> = skipped
                .iter()
                .map(|(s, c, k)| format!("{} x {c} x {k}", size_label(*s)))
                .collect();
            lines.push(String::new());
            lines.push(format!(
                "Skipped (bytes in flight over the cap): {}.",
                list.join(", ")
            ));
        }
        let errs: Vec<String> = self
            .results
            .iter()
            .filter(|(_, _, r)| errors(r) != 0)
            .take(20)
            .map(|((size, conns, k), s, r)| {
                let e = r.get("first_error").map_or("None".into(), |e| {
                    e.as_str().map_or_else(|| e.to_string(), str::to_owned)
                });
                format!("{s} {}x{conns}x{k}: {e}", size_label(*size))
            })
            .collect();
        if !errs.is_empty() {
            lines.push(String::new());
            lines.push(format!("Runs with errors: {}", errs.join("; ")));
        }
        for note in self.notes {
            lines.push(String::new());
            lines.push(note.clone());
        }
        lines.join("\n") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_from_the_environment() {
        assert_eq!(
            cells(false, Some("16:10:1 1024:1:16")).unwrap(),
            [(16, 10, 1), (1024, 1, 16)]
        );
        assert!(cells(false, Some("16:10")).is_err());
        assert_eq!(cells(false, None).unwrap().len(), 24);
        assert_eq!(cells(true, Some("16:10:1")).unwrap().len(), 5);
    }

    #[test]
    fn compressed_grid_leaves_out_servers_without_deflate() {
        let asked: Vec<String> =
            "raw ferrosocket fastwebsockets sockudo sockudo-batched tokio-tungstenite gorilla"
                .split(' ')
                .map(String::from)
                .collect();
        let (run, notes) = select(&asked, true, true);
        assert_eq!(run, ["ferrosocket", "sockudo", "sockudo-batched", "gorilla"]);
        assert_eq!(
            notes,
            [
                "Left out of the compressed echo (no permessage-deflate): raw, fastwebsockets, tokio-tungstenite."
            ]
        );
        let (run, notes) = select(&asked, false, false);
        assert_eq!(run.len(), 6);
        assert!(!run.contains(&"gorilla".to_owned()));
        assert_eq!(notes.len(), 1);
        assert!(notes[0].starts_with("gorilla left out"), "{notes:?}");
        assert_eq!(select(&asked, false, true).0, asked);
    }

    #[test]
    fn each_server_gets_its_compression_flag() {
        let bins = Bins {
            ferrosocket: Path::new("/fs"),
            before: None,
            peers: Path::new("/p"),
            gorilla: Some(Path::new("/g")),
        };
        let argv = |name: &str, compress: bool| {
            let mut cmd = Command::new("taskset");
            server_command(&mut cmd, name, &bins, compress).map(|()| {
                cmd.get_args()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
        };
        assert_eq!(
            argv("ferrosocket", false).unwrap(),
            "/fs echo --threads 1 --quiet --no-compression"
        );
        assert_eq!(argv("ferrosocket", true).unwrap(), "/fs echo --threads 1 --quiet");
        assert_eq!(
            argv("sockudo-batched", true).unwrap(),
            "/p/sockudo-batched-echo --compress"
        );
        assert_eq!(argv("gorilla", true).unwrap(), "/g --compress");
        assert_eq!(argv("gorilla", false).unwrap(), "/g");
        assert_eq!(argv("raw", false).unwrap(), "/p/raw-tcp-echo");
        assert!(argv("raw", true).is_err());
        assert!(argv("fastwebsockets", true).is_err());
        assert!(argv("ferrosocket-before", false).is_err());
    }

    #[test]
    fn labels_and_rates() {
        assert_eq!(size_label(16), "16 B");
        assert_eq!(size_label(16384), "16 KiB");
        assert_eq!(size_label(1 << 20), "1 MiB");
        assert_eq!(fmt_rate(Some(2_830_000.0)), "2.83M");
        assert_eq!(fmt_rate(Some(276_000.0)), "276k");
        assert_eq!(fmt_rate(Some(1_500.0)), "1.5k");
        assert_eq!(fmt_rate(None), "n/a");
    }
}
