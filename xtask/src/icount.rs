//! `cargo xtask icount`: the instruction-count regression guard (issue 13, item 6).
//!
//! Builds the echo driver (`bench/icount`, crate `ferrosocket-icount`) in release with debug
//! info, runs every scenario under `valgrind --tool=callgrind` for N and for 2N messages and
//! takes instructions per message = (I(2N) - I(N)) / N, so setup and warm-up cancel. Callgrind
//! counts instructions, not time: the figures do not move when other processes share the
//! machine. The guarded figure is the server side: the whole process minus the inclusive cost
//! of the client's polls (`ClientSide::poll` in the driver), so what the client does to check
//! the echoes never counts. Allocations per message (the driver's counting allocator, the
//! client's own excluded) are guarded too: they are exact.
//!
//! Fails when a scenario's server instructions per message are more than 5 % above
//! `bench/icount-baseline.json`, or its allocations per message above the baseline's.
//! `--update` rewrites the baseline. `--profile DIR` keeps the callgrind files and prints each
//! scenario's per-message profile: the top functions by self and by inclusive instructions per
//! message, computed from the difference of the two runs, so setup is gone from it too.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use crate::proc;

/// More than this fraction above the baseline fails.
const TOLERANCE: f64 = 0.05;
/// Where the baseline lives, from the workspace root.
const BASELINE: &str = "bench/icount-baseline.json";
/// Default message count (the second run sends twice as many).
const DEFAULT_MESSAGES: usize = 2_000;
/// Bound on one callgrind run.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);
/// Functions listed per table with `--profile`.
const TOP: usize = 20;

/// Arguments of `cargo xtask icount`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Rewrite bench/icount-baseline.json with this run's figures instead of checking them.
    #[arg(long)]
    update: bool,
    /// Keep the callgrind files in DIR and print each scenario's per-message profile (top
    /// functions, self and inclusive); with --only, just those scenarios.
    #[arg(long, value_name = "DIR")]
    profile: Option<PathBuf>,
    /// Run only this scenario (repeatable), e.g. `--only plain-16b-k1`; default: all.
    #[arg(long, value_name = "SCENARIO")]
    only: Vec<String>,
    /// N: messages in the first run (the second sends 2N); a multiple of 16.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MESSAGES)]
    messages: usize,
    /// Use the driver as built (target/release), do not run cargo.
    #[arg(long)]
    no_build: bool,
}

/// One scenario's figures per message.
#[derive(Debug, Clone)]
struct Figures {
    /// Instructions of the whole process per message.
    total: f64,
    /// Instructions inside the client's polls per message.
    client: f64,
    /// Allocations per message, the client's own excluded.
    allocs: f64,
    /// Bytes allocated per message, the client's own excluded.
    alloc_bytes: f64,
}

impl Figures {
    /// What the guard compares: everything but the client.
    fn server(&self) -> f64 {
        self.total - self.client
    }
}

/// What one callgrind run gave.
struct Run {
    /// Total instructions.
    total: u64,
    /// Inclusive instructions of the client's polls.
    client: u64,
    /// The driver's `key=value` report.
    report: HashMap<String, u64>,
    /// Per-function costs (with `--profile`).
    functions: Option<BTreeMap<String, FnCost>>,
}

/// Runs `cargo xtask icount`.
pub(crate) fn run(args: Args) -> Result<()> {
    if args.messages == 0 || !args.messages.is_multiple_of(16) {
        bail!("--messages must be a positive multiple of 16 (the largest burst)");
    }
    let valgrind = valgrind_version()?;
    let driver = build_driver(args.no_build)?;
    let all = list_scenarios(&driver)?;
    for name in &args.only {
        if !all.contains(name) {
            bail!("--only {name}: no such scenario (there are: {})", all.join(", "));
        }
    }
    let scenarios: Vec<String> = if args.only.is_empty() {
        all
    } else {
        args.only.clone()
    };
    let work = match &args.profile {
        Some(dir) => dir.clone(),
        None => proc::root().join("target/icount"),
    };
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let baseline = read_baseline()?;
    let n = args.messages;
    println!(
        "icount: {valgrind}, N = {n} and 2N messages per scenario, driver {}",
        driver.display()
    );

    let t0 = Instant::now();
    let mut results: Vec<(String, Figures)> = Vec::new();
    for name in &scenarios {
        let started = Instant::now();
        let keep = args.profile.is_some();
        let small = callgrind(&driver, name, n, &work, keep)?;
        let large = callgrind(&driver, name, 2 * n, &work, keep)?;
        let per = |a: u64, b: u64| (b as f64 - a as f64) / n as f64;
        let key = |r: &Run, k: &str| r.report.get(k).copied().unwrap_or(0);
        let figures = Figures {
            total: per(small.total, large.total),
            client: per(small.client, large.client),
            allocs: per(key(&small, "allocs"), key(&large, "allocs")),
            alloc_bytes: per(key(&small, "alloc_bytes"), key(&large, "alloc_bytes")),
        };
        println!(
            "icount: {name}: {:.0} instructions/message on the server side, {:.2} allocations/message ({:.1} s)",
            figures.server(),
            figures.allocs,
            started.elapsed().as_secs_f64()
        );
        if let (Some(a), Some(b), Some(dir)) = (&small.functions, &large.functions, &args.profile) {
            print!("{}", profile_tables(name, a, b, n, figures.total));
            annotate(dir, name, 2 * n);
        }
        results.push((name.clone(), figures));
    }
    println!(
        "icount: {} scenarios in {:.0} s",
        results.len(),
        t0.elapsed().as_secs_f64()
    );
    println!();
    let (table, failures) = compare(&results, &baseline);
    print!("{table}");
    print!("{}", raw_ratios(&results));
    if let Some(dir) = &args.profile {
        println!(
            "callgrind files kept in {} (callgrind_annotate --inclusive=yes FILE, or kcachegrind)",
            dir.display()
        );
    }
    if args.update {
        write_baseline(&results, &valgrind, n, baseline.as_ref())?;
        println!("icount: wrote {BASELINE}");
        return Ok(());
    }
    if !failures.is_empty() {
        bail!(
            "icount: {} (more than {:.0} % above the baseline, or more allocations); if the change is intended, `cargo xtask icount --update` and commit {BASELINE}",
            failures.join("; "),
            TOLERANCE * 100.0
        );
    }
    println!(
        "icount: ok (every scenario within {:.0} % of {BASELINE})",
        TOLERANCE * 100.0
    );
    Ok(())
}

fn valgrind_version() -> Result<String> {
    let out = Command::new("valgrind")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| anyhow!("valgrind not found ({e}): apt-get install -y valgrind"))?;
    if !out.status.success() {
        bail!("valgrind --version failed");
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Builds the driver (release profile: optimised, debug info) and returns its path.
fn build_driver(no_build: bool) -> Result<PathBuf> {
    let root = proc::root();
    if no_build {
        let driver = root.join("target/release/icount");
        if !driver.exists() {
            bail!("no icount driver at {}: run without --no-build", driver.display());
        }
        return Ok(driver);
    }
    let out = Command::new(proc::cargo())
        .current_dir(&root)
        .args([
            "build",
            "--release",
            "-p",
            "ferrosocket-icount",
            "--bin",
            "icount",
            "--message-format=json-render-diagnostics",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo build for the icount driver")?;
    if !out.status.success() {
        bail!("building the icount driver failed ({})", out.status);
    }
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact"
            && msg["target"]["name"] == "icount"
            && let Some(exe) = msg["executable"].as_str()
        {
            return Ok(PathBuf::from(exe));
        }
    }
    bail!("cargo built no icount executable")
}

fn list_scenarios(driver: &Path) -> Result<Vec<String>> {
    let out = Command::new(driver)
        .arg("--list")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} --list", driver.display()))?;
    if !out.status.success() {
        bail!("{} --list failed", driver.display());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect())
}

/// One run of the driver under callgrind.
fn callgrind(driver: &Path, scenario: &str, n: usize, work: &Path, keep: bool) -> Result<Run> {
    let out_file = work.join(format!("callgrind.out.{scenario}.{n}"));
    let log = work.join(format!("log.{scenario}.{n}"));
    let mut cmd = Command::new("valgrind");
    cmd.arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        // Instruction counts only: no cache or branch simulation to slow the run.
        .arg("--cache-sim=no")
        .arg(driver)
        .arg(scenario)
        .arg(n.to_string());
    let mut child = proc::spawn(&mut cmd, &log)?;
    let status = proc::wait_timeout(&mut child, RUN_TIMEOUT)?
        .ok_or_else(|| anyhow!("{scenario} N={n}: timed out after {} s", RUN_TIMEOUT.as_secs()))?;
    let text = std::fs::read_to_string(&log).with_context(|| format!("reading {}", log.display()))?;
    if !status.success() {
        bail!(
            "{scenario} N={n} failed ({status}):\n{}",
            proc::log_tail(&log, 20)
        );
    }
    let report = parse_report(&text)
        .ok_or_else(|| anyhow!("{scenario} N={n}: no `icount ...` line in {}", log.display()))?;
    let profile =
        std::fs::read_to_string(&out_file).with_context(|| format!("reading {}", out_file.display()))?;
    let parsed = parse_callgrind(&profile)?;
    let client = parsed
        .functions
        .iter()
        .filter(|(name, _)| is_client_poll(name))
        .map(|(_, c)| c.inclusive)
        .sum();
    if client == 0 {
        bail!("{scenario}: no ClientSide::poll in the profile (was it inlined?)");
    }
    if !keep {
        let _ = std::fs::remove_file(&out_file);
        let _ = std::fs::remove_file(&log);
    }
    Ok(Run {
        total: parsed.total,
        client,
        report,
        functions: keep.then_some(parsed.functions),
    })
}

/// The driver's client polls, whatever the demangler prints around the name.
fn is_client_poll(name: &str) -> bool {
    name.contains("ClientSide") && name.ends_with("::poll")
}

/// The `icount key=value ...` line of the driver's output.
fn parse_report(text: &str) -> Option<HashMap<String, u64>> {
    let line = text.lines().find(|l| l.starts_with("icount scenario="))?;
    Some(
        line.split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
            .collect(),
    )
}

// ---- callgrind's output format ------------------------------------------------------------

/// A function's instructions: its own, and with everything it called.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct FnCost {
    self_cost: u64,
    inclusive: u64,
}

struct Profile {
    total: u64,
    functions: BTreeMap<String, FnCost>,
}

/// Reads a callgrind output file (format of valgrind's docs, "Callgrind Format
/// Specification"): the first event (Ir) of every cost line, attributed to the current `fn=`
/// as self cost, and the cost line after each `calls=` as inclusive cost of the caller.
/// Names may be compressed (`(id) name` once, then `(id)`); functions of the same name in
/// several objects or files are summed.
fn parse_callgrind(text: &str) -> Result<Profile> {
    let mut positions = 1usize;
    let mut names: HashMap<String, String> = HashMap::new();
    let mut functions: BTreeMap<String, FnCost> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut after_calls = false;
    let mut total = None;
    let mut sum = 0u64;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("positions:") {
            positions = rest.split_whitespace().count().max(1);
        } else if let Some(rest) = line.strip_prefix("fn=") {
            current = Some(resolve(rest, &mut names));
            after_calls = false;
        } else if let Some(rest) = line.strip_prefix("cfn=") {
            // Only records the name (compression); the call's cost line follows `calls=`.
            resolve(rest, &mut names);
        } else if line.starts_with("calls=") {
            after_calls = true;
        } else if let Some(rest) = line
            .strip_prefix("summary:")
            .or_else(|| line.strip_prefix("totals:"))
        {
            total = rest.split_whitespace().next().and_then(|v| v.parse().ok());
        } else if line.starts_with(|c: char| c.is_ascii_digit() || c == '+' || c == '-' || c == '*') {
            let cost: u64 = line
                .split_whitespace()
                .nth(positions)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if let Some(f) = &current {
                let entry = functions.entry(f.clone()).or_default();
                entry.inclusive += cost;
                if !after_calls {
                    entry.self_cost += cost;
                    sum += cost;
                }
            }
            after_calls = false;
        }
    }
    let total = total.unwrap_or(sum);
    if total == 0 {
        bail!("no instruction counts in the callgrind output");
    }
    Ok(Profile { total, functions })
}

/// A possibly compressed name: `(id) name` defines, `(id)` refers, anything else is literal.
fn resolve(spec: &str, names: &mut HashMap<String, String>) -> String {
    let spec = spec.trim();
    let Some(rest) = spec.strip_prefix('(') else {
        return spec.to_string();
    };
    let Some((id, name)) = rest.split_once(')') else {
        return spec.to_string();
    };
    let name = name.trim();
    if name.is_empty() {
        names.get(id).cloned().unwrap_or_else(|| format!("({id})"))
    } else {
        names.insert(id.to_string(), name.to_string());
        name.to_string()
    }
}

/// Top functions by self and by inclusive instructions per message (the 2N run minus the N
/// run, over N). The inclusive table leaves out the frames every message passes through
/// (`main`, `block_on`: more than 90 % of `total`), which say nothing.
fn profile_tables(
    scenario: &str,
    small: &BTreeMap<String, FnCost>,
    large: &BTreeMap<String, FnCost>,
    n: usize,
    total: f64,
) -> String {
    let per_message = |pick: fn(&FnCost) -> u64| {
        let mut rows: Vec<(f64, &str)> = large
            .iter()
            .map(|(name, cost)| {
                let before = small.get(name).map_or(0, pick);
                ((pick(cost) as f64 - before as f64) / n as f64, name.as_str())
            })
            .filter(|(v, _)| *v >= 0.5 && *v <= 0.9 * total)
            .collect();
        rows.sort_by(|a, b| b.0.total_cmp(&a.0));
        rows.truncate(TOP);
        rows
    };
    let mut s = String::new();
    for (title, rows) in [
        ("self", per_message(|c| c.self_cost)),
        ("inclusive", per_message(|c| c.inclusive)),
    ] {
        let _ = writeln!(
            s,
            "---- {scenario}: top {TOP} functions by {title} instructions per message"
        );
        for (v, name) in rows {
            let _ = writeln!(s, "{v:>10.1}  {}", shorten(name, 150));
        }
    }
    s
}

/// callgrind_annotate's whole-run listings of the 2N run beside its file (self and
/// inclusive), for reading with the source; a failure only loses the listing.
fn annotate(dir: &Path, scenario: &str, n: usize) {
    let file = dir.join(format!("callgrind.out.{scenario}.{n}"));
    for (kind, flag) in [("self", "--inclusive=no"), ("inclusive", "--inclusive=yes")] {
        let out = Command::new("callgrind_annotate")
            .arg(flag)
            .arg(&file)
            .stdin(Stdio::null())
            .output();
        let listing = dir.join(format!("annotate.{scenario}.{n}.{kind}.txt"));
        match out {
            Ok(out) if out.status.success() => {
                if std::fs::write(&listing, &out.stdout).is_ok() {
                    println!("     (callgrind_annotate {flag}: {})", listing.display());
                }
            }
            _ => println!("     (callgrind_annotate {flag} failed on {})", file.display()),
        }
    }
}

fn shorten(name: &str, max: usize) -> String {
    if name.chars().count() <= max {
        name.to_string()
    } else {
        let head: String = name.chars().take(max - 3).collect();
        head + "..."
    }
}

// ---- the baseline ---------------------------------------------------------------------------

fn read_baseline() -> Result<Option<Value>> {
    let path = proc::root().join(BASELINE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The table and the scenarios that fail the guard.
fn compare(results: &[(String, Figures)], baseline: &Option<Value>) -> (String, Vec<String>) {
    let mut s = String::new();
    let mut failures = Vec::new();
    let _ = writeln!(
        s,
        "{:<16} {:>11} {:>11} {:>8} {:>11} {:>9} {:>10} {:>10} {:>10}",
        "scenario",
        "server/msg",
        "baseline",
        "change",
        "total/msg",
        "client",
        "allocs/msg",
        "baseline",
        "bytes/msg"
    );
    for (name, f) in results {
        let base = baseline.as_ref().map(|b| &b["scenarios"][name]);
        let base_instr = base.and_then(|b| b["server_instructions_per_message"].as_f64());
        let base_allocs = base.and_then(|b| b["allocations_per_message"].as_f64());
        let (base_text, change) = match base_instr {
            Some(b) if b > 0.0 => {
                let change = f.server() / b - 1.0;
                if change > TOLERANCE {
                    failures.push(format!("{name} +{:.1} %", change * 100.0));
                }
                (format!("{b:.0}"), format!("{:+.1}%", change * 100.0))
            }
            _ => {
                failures.push(format!("{name} has no baseline"));
                ("-".to_string(), "-".to_string())
            }
        };
        let base_allocs_text = match base_allocs {
            Some(b) => {
                // Counts are exact: any rise is a new allocation on the path (0.01 absorbs
                // the division).
                if f.allocs > b + 0.01 {
                    failures.push(format!(
                        "{name} {:.2} allocations/message (baseline {b:.2})",
                        f.allocs
                    ));
                }
                format!("{b:.2}")
            }
            None => "-".to_string(),
        };
        let _ = writeln!(
            s,
            "{name:<16} {:>11.0} {base_text:>11} {change:>8} {:>11.0} {:>9.0} {:>10.2} {base_allocs_text:>10} {:>10.0}",
            f.server(),
            f.total,
            f.client,
            f.allocs,
            f.alloc_bytes
        );
    }
    (s, failures)
}

/// Each plain WebSocket scenario's server side against the raw TCP echo of the same size and
/// burst (issue 13's target: at most 1.5x).
fn raw_ratios(results: &[(String, Figures)]) -> String {
    let by_name: HashMap<&str, &Figures> = results.iter().map(|(n, f)| (n.as_str(), f)).collect();
    let mut s = String::new();
    for (name, f) in results {
        let Some((_, cell)) = name.split_once('-') else {
            continue;
        };
        // The target is about the plain echo: compression is work a raw echo does not do.
        if !name.starts_with("plain-") {
            continue;
        }
        if let Some(raw) = by_name.get(format!("raw-{cell}").as_str())
            && raw.server() > 0.0
        {
            if s.is_empty() {
                s.push_str(
                    "server instructions per message against the raw TCP echo (target: at most 1.5x)\n",
                );
            }
            let _ = writeln!(
                s,
                "  {name:<16} {:>6.2}x  ({:.0} / {:.0})",
                f.server() / raw.server(),
                f.server(),
                raw.server()
            );
        }
    }
    s
}

fn write_baseline(
    results: &[(String, Figures)],
    valgrind: &str,
    n: usize,
    old: Option<&Value>,
) -> Result<()> {
    let root = proc::root();
    let git = |args: &[&str]| -> String {
        Command::new("git")
            .current_dir(&root)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]);
    let dirty = !git(&["status", "--porcelain", "--untracked-files=no"]).is_empty();
    let rustc = Command::new("rustc")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default();
    // Scenarios not run this time keep their old figures.
    let mut scenarios = old
        .and_then(|o| o["scenarios"].as_object().cloned())
        .unwrap_or_default();
    for (name, f) in results {
        scenarios.insert(
            name.clone(),
            json!({
                "server_instructions_per_message": f.server().round(),
                "total_instructions_per_message": f.total.round(),
                "client_instructions_per_message": f.client.round(),
                "allocations_per_message": (f.allocs * 100.0).round() / 100.0,
                "allocated_bytes_per_message": f.alloc_bytes.round(),
            }),
        );
    }
    let doc = json!({
        "about": "Baseline of `cargo xtask icount` (xtask/src/icount.rs): callgrind instructions per echoed message, (I(2N) - I(N)) / N, server side = whole process minus the client's polls; allocations per message outside the client. The guard fails above server_instructions_per_message * 1.05 or above allocations_per_message. Rewrite with `cargo xtask icount --update`.",
        "commit": if dirty { format!("{commit} (with uncommitted changes)") } else { commit },
        "valgrind": valgrind,
        "rustc": rustc,
        "machine": format!("{} ({} cores), {}", cpu, std::thread::available_parallelism().map_or(0, usize::from), std::env::consts::ARCH),
        "messages": n,
        "scenarios": scenarios,
    });
    let text = serde_json::to_string_pretty(&doc)? + "\n";
    std::fs::write(root.join(BASELINE), text).with_context(|| format!("writing {BASELINE}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callgrind_costs_self_inclusive_and_compressed_names() {
        let text = "\
version: 1
positions: line
events: Ir
summary: 1000
fl=(1) a.rs
fn=(1) main
10 5
cfn=(2) <x::ClientSide<F> as core::future::future::Future>::poll
calls=2 20
11 300
fn=(2)
20 100
cfn=(3) memcpy
calls=1 0
21 200
fn=(3)
0 200
totals: 505
";
        let p = parse_callgrind(text).unwrap();
        assert_eq!(p.total, 505);
        assert_eq!(
            p.functions["main"],
            FnCost {
                self_cost: 5,
                inclusive: 305
            }
        );
        let client = &p.functions["<x::ClientSide<F> as core::future::future::Future>::poll"];
        assert_eq!((client.self_cost, client.inclusive), (100, 300));
        assert!(is_client_poll(
            "<x::ClientSide<F> as core::future::future::Future>::poll"
        ));
        assert_eq!(p.functions["memcpy"].self_cost, 200);
    }

    #[test]
    fn callgrind_instr_positions_skip_the_address_column() {
        let text = "positions: instr line\nevents: Ir\nfn=f\n0x10 3 7\n+2 4 8\n";
        let p = parse_callgrind(text).unwrap();
        assert_eq!(p.functions["f"].self_cost, 15);
        assert_eq!(p.total, 15);
    }

    #[test]
    fn report_line_is_read() {
        let r = parse_report("noise\nicount scenario=plain-16b-k1 messages=20 allocs=7\n").unwrap();
        assert_eq!(r["messages"], 20);
        assert_eq!(r["allocs"], 7);
    }

    #[test]
    fn guard_fails_above_five_percent_and_on_new_allocations() {
        let f = |server: f64, allocs: f64| Figures {
            total: server + 100.0,
            client: 100.0,
            allocs,
            alloc_bytes: 0.0,
        };
        let base = Some(json!({"scenarios": {
            "a": {"server_instructions_per_message": 1000.0, "allocations_per_message": 0.0},
            "b": {"server_instructions_per_message": 1000.0, "allocations_per_message": 1.0},
        }}));
        let ok = [
            ("a".to_string(), f(1049.0, 0.0)),
            ("b".to_string(), f(900.0, 1.0)),
        ];
        assert!(compare(&ok, &base).1.is_empty());
        let bad = [
            ("a".to_string(), f(1051.0, 0.0)),
            ("b".to_string(), f(1000.0, 2.0)),
            ("c".to_string(), f(1.0, 0.0)),
        ];
        assert_eq!(compare(&bad, &base).1.len(), 3);
    }
}
