//! `cargo xtask bench-peers`: ferrosocket's echo server against its peers, a raw TCP echo (the
//! ceiling), fastwebsockets and tokio-tungstenite (`bench/peers`, its own cargo workspace), all
//! single-threaded.
//!
//! ```text
//! cargo xtask bench-peers [--reps N] [--duration SECS] [--warmup SECS] [--quick]
//!                         [--servers "raw ferrosocket fastwebsockets tokio-tungstenite"]
//!                         (also "ferrosocket-before": the binary named by $FERROSOCKET_BEFORE)
//!                         [--cap-mib MIB] [--out FILE]
//! BENCH_CELLS="1024:100:16 16384:1:16" (payload:connections:in-flight) to pick cells.
//! ```
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
//! bench/results/peers-DATE.md, the raw JSON lines next to it, and prints it. --quick: 5 cells,
//! 2 repetitions of 2 s (a smoke run). Loopback only; every run is bounded by a timeout.

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
    /// The servers, space-separated: raw ferrosocket ferrosocket-before fastwebsockets tokio-tungstenite.
    #[arg(long, default_value = "raw ferrosocket fastwebsockets tokio-tungstenite")]
    servers: String,
    /// Skip cells with more than this many MiB in flight.
    #[arg(long, default_value_t = 256)]
    cap_mib: u64,
    /// Markdown output (default bench/results/peers-DATE[-quick].md; the .jsonl goes beside it).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// A cell of the grid: payload bytes, connections, messages in flight per connection.
type Cell = (u64, u64, u64);

const SERVERS: [&str; 5] = [
    "raw",
    "ferrosocket",
    "ferrosocket-before",
    "fastwebsockets",
    "tokio-tungstenite",
];

/// Runs the grid and writes the tables.
pub(crate) fn run(args: Args) -> Result<()> {
    let (reps, duration, warmup) = if args.quick {
        (args.reps.unwrap_or(2), args.duration.unwrap_or(2.0), 0.5)
    } else {
        (args.reps.unwrap_or(3), args.duration.unwrap_or(5.0), args.warmup)
    };
    let servers: Vec<String> = args.servers.split_whitespace().map(str::to_owned).collect();
    if let Some(bad) = servers.iter().find(|s| !SERVERS.contains(&s.as_str())) {
        bail!("unknown server {bad} (known: {})", SERVERS.join(" "));
    }
    let before = std::env::var_os("FERROSOCKET_BEFORE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    if servers.iter().any(|s| s == "ferrosocket-before") && before.is_none() {
        bail!("set FERROSOCKET_BEFORE to a ferrosocket binary");
    }
    let cells = cells(args.quick, std::env::var("BENCH_CELLS").ok().as_deref())?;
    let out = benchkit::at_root(&args.out.unwrap_or_else(|| {
        let suffix = if args.quick { "-quick" } else { "" };
        PathBuf::from(format!("bench/results/peers-{}{suffix}.md", benchkit::today()))
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
                let mut server = start_server(name, addr, &fs_bin, before.as_deref(), &peers, &logs)?;
                proc::wait_port(addr, &mut server, Duration::from_secs(5))
                    .with_context(|| format!("server {name} did not start on {addr}"))?;
                let mut cmd = Command::new("taskset");
                cmd.args(["-c", "1"])
                    .arg(&fs_bin)
                    .args(["bench", &format!("ws://{addr}/ws")]);
                if name == "raw" {
                    cmd.arg("--raw-echo");
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

/// Starts server `name` on `addr`, pinned to core 0.
fn start_server(
    name: &str,
    addr: SocketAddr,
    fs_bin: &Path,
    before: Option<&Path>,
    peers: &Path,
    logs: &Path,
) -> Result<proc::Child> {
    let listen = addr.to_string();
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", "0"]);
    match name {
        "raw" => cmd.arg(peers.join("raw-tcp-echo")),
        "ferrosocket" => cmd
            .arg(fs_bin)
            .args(["echo", "--threads", "1", "--quiet", "--no-compression"]),
        // Another build of ferrosocket (e.g. main before a change), from $FERROSOCKET_BEFORE.
        "ferrosocket-before" => match before {
            Some(bin) => cmd
                .arg(bin)
                .args(["echo", "--threads", "1", "--quiet", "--no-compression"]),
            None => bail!("set FERROSOCKET_BEFORE to a ferrosocket binary"),
        },
        "fastwebsockets" => cmd.arg(peers.join("fastwebsockets-echo")),
        "tokio-tungstenite" => cmd.arg(peers.join("tokio-tungstenite-echo")),
        other => bail!("unknown server {other}"),
    };
    cmd.args(["--listen", &listen]);
    proc::spawn(&mut cmd, &logs.join(format!("{name}.log")))
}

/// The results as markdown tables.
struct Table<'a> {
    reps: u32,
    duration: f64,
    warmup: f64,
    cap_mib: u64,
    servers: &'a [String],
    results: &'a [(Cell, String, Value)],
    skipped: &'a [Cell],
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
    let mut v: Vec<f64> = runs
        .iter()
        .filter(|r| errors(r) == 0)
        .filter_map(|r| r.get(field)?.as_f64())
        .collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
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
        let name = |s: &str| match s {
            "raw" => "raw TCP".to_owned(),
            "fastwebsockets" => "fastwebsockets 0.10".to_owned(),
            "tokio-tungstenite" => "tokio-tungstenite 0.30".to_owned(),
            other => other.to_owned(),
        };
        let (model, cpus, release, load) = machine();
        let mut lines: Vec<String> = Vec::new();
        lines.push(format!(
            "# ferrosocket vs peers: echo throughput ({})\n",
            benchkit::today()
        ));
        lines.push(format!(
            "Machine: {model}, {cpus} cores, Linux {release}; load average at the end {load:.1}. \
             Each server single-threaded, pinned to core 0; `ferrosocket bench` (current_thread) on core 1. \
             Medians of {} runs per server, interleaved; {} s measured after {} s warm-up; fresh server per run. \
             Cells with more than {} MiB in flight skipped. Runs with errors are left out of the medians (shown as n/a or marked).\n",
            self.reps, self.duration, self.warmup, self.cap_mib
        ));
        let mut hdr: Vec<String> = ["payload", "conns", "in flight"].map(String::from).to_vec();
        hdr.extend(servers.iter().map(|s| name(s)));
        if has_fs {
            hdr.extend([
                "ferrosocket / raw".to_owned(),
                "ferrosocket / best peer".to_owned(),
            ]);
        }
        lines.push("## Throughput, msgs/s (median; ratio vs raw TCP in parentheses)\n".into());
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
            let raw = rate("raw");
            let mut row = vec![size_label(size), conns.to_string(), k.to_string()];
            for s in servers {
                let v = rates.get(s.as_str()).copied().flatten();
                let mut cell = fmt_rate(v);
                if let (Some(raw), Some(v), false) = (raw, rate(s), s == "raw") {
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
