//! `cargo xtask soak`: a bounded soak test of `ferrosocket echo`.
//!
//! ```text
//! cargo xtask soak [--duration SECS] [--quick] [--seed N] [--keep]   (--quick: 60 s, for CI; default 300 s)
//! FERROSOCKET=path/to/binary to test another build; SOAK_KEEP=1 keeps the logs on PASS.
//! ```
//!
//! 1. Starts `ferrosocket echo --listen 127.0.0.1:PORT --path /ws --quiet --keepalive 2
//!    --keepalive-timeout 2` on a free port (a copy of the binary, so that a concurrent rebuild
//!    cannot swap it mid-run), warms it up, then measures its RSS and open fds.
//! 2. Well-behaved load for the whole duration: `ferrosocket bench --verify --json` runs back to
//!    back, 20 connections each, cycling 16 B / 4 KiB / 64 KiB messages at 1 and 8 in flight.
//! 3. Faults in parallel ([`faults`]: RSTs, half-open connections, mid-frame disconnects, invalid
//!    frames, slow readers, garbage/oversized/slowloris handshakes).
//! 4. Samples the server's VmRSS and fd count every 3 s, then lets it settle (15 s, long enough
//!    for keepalive to reap half-open sockets) and measures again.
//!
//! PASS only if: the server stayed alive; its output has no "panicked"; final fds <= start + 5;
//! final RSS <= start + 32 MiB; every bench run exited 0 with errors == 0, 20 connections and
//! messages echoed (each byte compared by --verify); every fault saw the server behave as due.
//! Prints a summary; fails on FAIL. Every step and loop is bounded in count and time.

mod faults;
pub(crate) mod wire;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::procfs::{self, Sample};
use crate::{benchkit, proc};

/// How long the server gets after the load to come back down.
const SETTLE: Duration = Duration::from_secs(15);
const RSS_SLACK_MIB: u64 = 32;
const FD_SLACK: u64 = 5;
/// Connections per bench run.
const BENCH_CONNS: u64 = 20;
/// (payload bytes, messages in flight) of the bench runs, in turn.
const CONFIGS: [(u64, u64); 6] = [(16, 1), (65536, 8), (4096, 1), (16, 8), (65536, 1), (4096, 8)];

/// Options of `cargo xtask soak`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Seconds of load and faults (10 to 86400).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(10..=86_400))]
    duration: u64,
    /// 60 s, for CI (overrides --duration).
    #[arg(long)]
    quick: bool,
    /// Seed of the fault injector's choices (default: random; the summary prints it).
    #[arg(long)]
    seed: Option<u64>,
    /// Keep the logs on PASS too (also with SOAK_KEEP=1); they are always kept on FAIL.
    #[arg(long)]
    keep: bool,
}

/// Runs the soak and prints its summary; an error on FAIL.
pub(crate) fn run(args: Args) -> Result<()> {
    let duration = if args.quick { 60 } else { args.duration };
    let keep = args.keep || std::env::var_os("SOAK_KEEP").is_some_and(|v| !v.is_empty());
    let src_bin = match std::env::var_os("FERROSOCKET").filter(|v| !v.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => proc::ferrosocket_release()?,
    };
    if !src_bin.is_file() {
        bail!("soak: no binary at {}", src_bin.display());
    }
    let work = work_dir()?;
    let bin = work.join("ferrosocket");
    fs::copy(&src_bin, &bin).with_context(|| format!("copying {}", src_bin.display()))?;

    let outcome = soak(&bin, &work, duration, args.seed);
    let passed = matches!(outcome, Ok(true));
    if passed && !keep {
        let _ = fs::remove_dir_all(&work);
    } else {
        eprintln!("soak: logs kept in {}", work.display());
    }
    match outcome {
        Ok(true) => Ok(()),
        Ok(false) => bail!("soak: FAIL"),
        Err(e) => Err(e),
    }
}

/// A fresh directory for this run's logs.
fn work_dir() -> Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!("ferrosocket-soak.{}.{nanos:09}", std::process::id()));
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// The whole run; `Ok(pass)`.
fn soak(bin: &Path, work: &Path, duration: u64, seed: Option<u64>) -> Result<bool> {
    let port = proc::free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let url = format!("ws://{addr}/ws");
    let server_log = work.join("server.log");
    let mut server = proc::spawn(
        Command::new(bin)
            .args(["echo", "--listen", &addr.to_string(), "--path", "/ws", "--quiet"])
            .args(["--keepalive", "2", "--keepalive-timeout", "2"]),
        &server_log,
    )?;
    proc::wait_port(addr, &mut server, Duration::from_secs(5))?;
    let pid = server.pid();
    let bench = Bench { bin, url: &url, work };

    // Warm-up (the allocator's arenas and buffers reach their working size), then the baseline.
    let mut runs = vec![bench.run("warmup", 65536, 8, 3), bench.run("warmup", 4096, 1, 2)];
    thread::sleep(Duration::from_secs(2));
    let t0 = Instant::now();
    let samples = Arc::new(Mutex::new(vec![procfs::sample(pid, 0)]));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (samples, stop) = (Arc::clone(&samples), Arc::clone(&stop));
        let rounds = (duration + SETTLE.as_secs()) / 3 + 40;
        thread::spawn(move || {
            'outer: for _ in 0..rounds {
                for _ in 0..30 {
                    thread::sleep(Duration::from_millis(100));
                    if stop.load(Ordering::Relaxed) {
                        break 'outer;
                    }
                }
                let s = procfs::sample(pid, t0.elapsed().as_secs());
                samples.lock().unwrap_or_else(PoisonError::into_inner).push(s);
            }
        })
    };
    let fault_run = thread::spawn(move || faults::run(port, "/ws", Duration::from_secs(duration), seed));

    eprintln!(
        "soak: server pid {pid} on {url}, {duration} s of load and faults, then {} s to settle",
        SETTLE.as_secs()
    );
    let per_run = if duration >= 120 { 10 } else { 6 };
    let end = t0 + Duration::from_secs(duration);
    for run in 0..duration {
        let left = end.saturating_duration_since(Instant::now()).as_secs();
        if left < 3 {
            break;
        }
        let (size, k) = CONFIGS[run as usize % CONFIGS.len()];
        let r = bench.run(&format!("run{run}"), size, k, left.min(per_run));
        if !r.problems().is_empty() {
            thread::sleep(Duration::from_secs(1));
        }
        runs.push(r);
    }

    let faults = fault_run.join().ok();
    let load_end = t0.elapsed().as_secs();
    thread::sleep(SETTLE);
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let mut samples = std::mem::take(&mut *samples.lock().unwrap_or_else(PoisonError::into_inner));
    samples.push(procfs::sample(pid, t0.elapsed().as_secs()));
    write_logs(work, &samples, &runs, faults.as_ref());

    // Not a pass criterion: how the server takes SIGTERM (1001 to everyone, then exit).
    let term = sigterm(&mut server);
    let log = fs::read(&server_log)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let summary = Summary {
        duration,
        load_end,
        url: &url,
        pid,
        samples: &samples,
        runs: &runs,
        faults: faults.as_ref(),
        server_log: &log,
        term: &term,
    };
    let (text, pass) = summary.render();
    print!("{text}");
    Ok(pass)
}

/// Sends SIGTERM and waits up to 15 s: "exit N within S s", "still running after 15 s" or "gone".
fn sigterm(server: &mut proc::Child) -> String {
    if !server.is_running() {
        return "gone".into();
    }
    let Some(pid) = i32::try_from(server.pid())
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return "gone".into();
    };
    if rustix::process::kill_process(pid, rustix::process::Signal::TERM).is_err() {
        return "gone".into();
    }
    let t = Instant::now();
    for _ in 0..150 {
        if let Some(status) = server.exit_status() {
            let code = status
                .code()
                .map_or_else(|| status.to_string(), |c| c.to_string());
            return format!("exit {code} within {} s", t.elapsed().as_secs() + 1);
        }
        thread::sleep(Duration::from_millis(100));
    }
    "still running after 15 s".into()
}

/// Runs `ferrosocket bench` against the server.
struct Bench<'a> {
    bin: &'a Path,
    url: &'a str,
    work: &'a Path,
}

/// One bench run and what it reported.
#[derive(Debug)]
struct BenchRun {
    label: String,
    size: u64,
    k: u64,
    /// Exit code, or `None` when it timed out or could not start.
    exit: Option<i32>,
    report: Value,
}

impl Bench<'_> {
    fn run(&self, label: &str, size: u64, k: u64, secs: u64) -> BenchRun {
        let log = self.work.join("bench-run.log");
        let mut cmd = Command::new(self.bin);
        cmd.args(["bench", self.url, "--connections", &BENCH_CONNS.to_string()])
            .args(["--size", &size.to_string(), "--in-flight", &k.to_string()])
            .args(["--duration", &secs.to_string(), "--verify", "--json"]);
        let out = benchkit::run_bench(&mut cmd, &log, Duration::from_secs(secs + 30));
        if !out.other.is_empty() {
            let lines: String = out.other.lines().map(|l| format!("{label}: {l}\n")).collect();
            append(&self.work.join("bench.err"), &lines);
        }
        let (exit, report) = (out.exit, out.report);
        BenchRun {
            label: label.to_owned(),
            size,
            k,
            exit,
            report,
        }
    }
}

impl BenchRun {
    fn int(&self, key: &str) -> Option<u64> {
        self.report.get(key).and_then(Value::as_u64)
    }

    /// Why this run does not count as good (empty when it does).
    fn problems(&self) -> Vec<String> {
        let mut why = Vec::new();
        match self.exit {
            Some(0) => {}
            Some(code) => why.push(format!("exit {code}")),
            None => why.push("timed out".into()),
        }
        if self.int("errors") != Some(0) {
            let first = self
                .report
                .get("first_error")
                .and_then(Value::as_str)
                .unwrap_or("");
            let errors = self
                .report
                .get("errors")
                .map_or_else(|| "None".into(), Value::to_string);
            why.push(format!(
                "errors {errors}: {}",
                first.chars().take(120).collect::<String>()
            ));
        }
        if self.int("connections") != Some(BENCH_CONNS) {
            let c = self
                .report
                .get("connections")
                .map_or_else(|| "None".into(), Value::to_string);
            why.push(format!("connections {c}"));
        }
        let messages = self.int("messages").unwrap_or(0);
        let sent = self.int("sent").unwrap_or(0);
        if messages == 0 {
            why.push("no message echoed".into());
        } else if sent.saturating_sub(messages) > BENCH_CONNS * self.k {
            why.push(format!("sent {sent} but {messages} echoed"));
        }
        why
    }
}

fn append(path: &Path, text: &str) {
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
        let _ = f.write_all(text.as_bytes());
    }
}

/// samples.tsv, bench.tsv and faults.json beside the server's log, for a FAIL's post-mortem.
fn write_logs(work: &Path, samples: &[Sample], runs: &[BenchRun], faults: Option<&faults::Report>) {
    let mut s = String::new();
    for x in samples {
        let _ = writeln!(
            s,
            "{} {} {} {}",
            x.t,
            x.rss_kib,
            x.fds,
            if x.alive { "alive" } else { "dead" }
        );
    }
    let _ = fs::write(work.join("samples.tsv"), s);
    let mut b = String::new();
    for r in runs {
        let exit = r.exit.map_or_else(|| "timeout".into(), |c| c.to_string());
        let _ = writeln!(b, "{}\t{}\t{}\t{exit}\t{}", r.label, r.size, r.k, r.report);
    }
    let _ = fs::write(work.join("bench.tsv"), b);
    if let Some(f) = faults {
        let kinds: serde_json::Map<String, Value> = f
            .kinds
            .iter()
            .map(|(name, k)| {
                let mut o = serde_json::json!({"run": k.run, "ok": k.ok, "fail": k.fail, "errors": k.errors});
                for (note, v) in &k.notes {
                    o[*note] = Value::String(v.to_string());
                }
                (name.clone(), o)
            })
            .collect();
        let json = serde_json::json!({
            "seed": f.seed, "seconds": f.seconds, "connections": f.connections,
            "failed": f.failed, "stuck_threads": f.stuck_threads, "kinds": kinds,
        });
        let _ = fs::write(work.join("faults.json"), json.to_string());
    }
}

/// Everything the verdict is made of.
struct Summary<'a> {
    duration: u64,
    load_end: u64,
    url: &'a str,
    pid: u32,
    samples: &'a [Sample],
    runs: &'a [BenchRun],
    faults: Option<&'a faults::Report>,
    server_log: &'a str,
    term: &'a str,
}

/// `n` with thousands separators: 1234567 -> "1,234,567".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl Summary<'_> {
    /// The printed summary and whether it is a PASS.
    fn render(&self) -> (String, bool) {
        let mut problems = Vec::new();
        let start = self.samples.first().copied().unwrap_or(Sample {
            t: 0,
            rss_kib: 0,
            fds: 0,
            alive: false,
        });
        let end = self.samples.last().copied().unwrap_or(start);
        let all_alive = self.samples.iter().all(|s| s.alive);
        if let Some(dead) = self.samples.iter().find(|s| !s.alive) {
            problems.push(format!("server not alive at t={} s", dead.t));
        }
        let panicked = self.server_log.lines().find(|l| l.contains("panicked"));
        if let Some(line) = panicked {
            problems.push(format!(
                "server stderr: {}",
                line.trim().chars().take(200).collect::<String>()
            ));
        }
        let peak_rss = self.samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
        let peak_fds = self.samples.iter().map(|s| s.fds).max().unwrap_or(0);
        if end.alive {
            if end.fds > start.fds + FD_SLACK {
                problems.push(format!("fds {} -> {} (> start + {FD_SLACK})", start.fds, end.fds));
            }
            if end.rss_kib > start.rss_kib + RSS_SLACK_MIB * 1024 {
                problems.push(format!(
                    "RSS {:.1} -> {:.1} MiB (> start + {RSS_SLACK_MIB} MiB)",
                    mib(start.rss_kib),
                    mib(end.rss_kib)
                ));
            }
        }

        let (mut runs, mut warm, mut bench_conns, mut msgs) = (0, 0, 0, 0);
        let mut per_config: BTreeMap<(u64, u64), (u64, u64, Vec<f64>)> = BTreeMap::new();
        let mut bad_runs = Vec::new();
        for r in self.runs {
            bench_conns += r.int("connections").unwrap_or(0);
            if r.label == "warmup" {
                warm += 1;
            } else {
                runs += 1;
                let m = r.int("messages").unwrap_or(0);
                msgs += m;
                let c = per_config.entry((r.size, r.k)).or_default();
                c.0 += 1;
                c.1 += m;
                c.2.push(
                    r.report
                        .get("msgs_per_sec")
                        .and_then(Value::as_f64)
                        .unwrap_or(0.0),
                );
            }
            let why = r.problems();
            if !why.is_empty() {
                bad_runs.push(format!("{} ({} B x{}): {}", r.label, r.size, r.k, why.join("; ")));
            }
        }
        if runs == 0 {
            problems.push("no bench run".into());
        }
        problems.extend(bad_runs.iter().take(5).map(|b| format!("bench {b}")));
        if bad_runs.len() > 5 {
            problems.push(format!("... {} more failed bench runs", bad_runs.len() - 5));
        }

        let empty = BTreeMap::new();
        let (kinds, fault_conns, seed) = match self.faults {
            Some(f) => {
                if f.stuck_threads > 0 {
                    problems.push(format!(
                        "faults: {} fault threads did not finish",
                        f.stuck_threads
                    ));
                }
                (&f.kinds, f.connections, f.seed.to_string())
            }
            None => {
                problems.push("the fault injector produced no report (it panicked)".into());
                (&empty, 0, "None".into())
            }
        };
        for (kind, k) in kinds {
            problems.extend(k.errors.iter().take(2).map(|e| format!("fault {kind}: {e}")));
            if k.fail > 2 {
                problems.push(format!("fault {kind}: {} failures in all", k.fail));
            }
        }

        let pass = problems.is_empty();
        let mut o = String::new();
        let _ = writeln!(
            o,
            "soak: {}  ({} s of load and faults, {} s settle; server {}, pid {})",
            if pass { "PASS" } else { "FAIL" },
            self.duration,
            SETTLE.as_secs(),
            self.url,
            self.pid
        );
        let _ = writeln!(
            o,
            "  bench: {runs} runs (+{warm} warm-up), {BENCH_CONNS} connections each, 16 B / 4 KiB / 64 KiB x in-flight 1/8: \
             {} messages echoed and verified byte for byte, {} failed runs",
            thousands(msgs),
            bad_runs.len()
        );
        let configs: Vec<String> = per_config
            .iter()
            .map(|((size, k), (n, m, rates))| {
                let mut rates = rates.clone();
                rates.sort_by(f64::total_cmp);
                let median = rates.get(rates.len() / 2).copied().unwrap_or(0.0);
                format!(
                    "{size} B x{k}: {n} runs, {} msgs, {} msgs/s",
                    thousands(*m),
                    thousands(median.round() as u64)
                )
            })
            .collect();
        let _ = writeln!(o, "    {}", configs.join("; "));
        let _ = writeln!(
            o,
            "  connections handled: {} bench + {} faults = {}",
            thousands(bench_conns),
            thousands(fault_conns),
            thousands(bench_conns + fault_conns)
        );
        let _ = writeln!(
            o,
            "  faults (seed {seed}):  kind                          run     ok   fail  notes"
        );
        for (kind, k) in kinds {
            let notes: Vec<String> = k.notes.iter().map(|(n, v)| format!("{n} {v}")).collect();
            let _ = writeln!(
                o,
                "    {kind:40} {:6} {:6} {:6}  {}",
                k.run,
                k.ok,
                k.fail,
                notes.join(", ")
            );
        }
        let _ = writeln!(
            o,
            "  server RSS (MiB): start {:.1}, peak {:.1}, end {:.1}  (limit start + {RSS_SLACK_MIB} = {:.1})",
            mib(start.rss_kib),
            mib(peak_rss),
            mib(end.rss_kib),
            mib(start.rss_kib) + RSS_SLACK_MIB as f64
        );
        let _ = writeln!(
            o,
            "  server fds: start {}, peak {peak_fds}, end {}  (limit start + {FD_SLACK} = {}); {} samples, load ended at {} s",
            start.fds,
            end.fds,
            start.fds + FD_SLACK,
            self.samples.len(),
            self.load_end
        );
        let _ = writeln!(
            o,
            "  server alive throughout: {}; 'panicked' in stderr: {}; SIGTERM afterwards: {}",
            if all_alive { "yes" } else { "NO" },
            if panicked.is_some() { "YES" } else { "no" },
            self.term
        );
        for p in &problems {
            let _ = writeln!(o, "  FAIL: {p}");
        }
        (o, pass)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn a_bench_run_needs_every_connection_and_no_error() {
        let run = |exit, report: &str| BenchRun {
            label: "run0".into(),
            size: 16,
            k: 1,
            exit,
            report: serde_json::from_str(report).unwrap(),
        };
        let good = r#"{"connections":20,"errors":0,"messages":100,"sent":110}"#;
        assert!(run(Some(0), good).problems().is_empty());
        assert_eq!(run(None, good).problems(), ["timed out"]);
        let short = r#"{"connections":19,"errors":0,"messages":100,"sent":200}"#;
        assert_eq!(
            run(Some(0), short).problems(),
            ["connections 19", "sent 200 but 100 echoed"]
        );
        assert_eq!(run(Some(1), "{}").problems().len(), 4);
    }
}
