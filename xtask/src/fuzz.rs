//! `cargo xtask fuzz [SECS]`: builds the cargo-fuzz targets in `fuzz/` and runs each for SECS
//! (default 30), two targets at a time (one per core); fails on any crash, leak, timeout or OOM.
//!
//! Stable toolchain only: cargo-fuzz passes -Zsanitizer=address, which RUSTC_BOOTSTRAP=1
//! unlocks; the stable toolchain ships the AddressSanitizer runtime. If that build fails anyway,
//! the targets are built without a sanitizer (still coverage-guided libFuzzer). The committed
//! regressions (`fuzz/regressions/<target>-*`) are replayed first. New inputs go to a scratch
//! directory, never into `fuzz/corpus/` (the committed seeds); a crashing input is left in
//! `fuzz/artifacts/<target>/` and printed in hex. `FUZZ_TARGETS="a b"` runs only those targets.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::proc;

/// cargo-fuzz's version, installed on first use.
pub(crate) const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Arguments of `cargo xtask fuzz`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Seconds per target.
    #[arg(default_value_t = 30)]
    secs: u64,
}

fn cargo_fuzz(fuzz_dir: &Path) -> Command {
    let mut cmd = Command::new(proc::cargo());
    cmd.current_dir(fuzz_dir).arg("fuzz").env("RUSTC_BOOTSTRAP", "1");
    if std::env::var_os("CARGO_BUILD_JOBS").is_none() {
        cmd.env("CARGO_BUILD_JOBS", "2");
    }
    cmd
}

/// Installs cargo-fuzz unless `cargo fuzz --version` works.
pub(crate) fn ensure_cargo_fuzz() -> Result<()> {
    let ok = Command::new(proc::cargo())
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        println!("fuzz: installing cargo-fuzz");
        proc::run(Command::new(proc::cargo()).args([
            "install",
            "cargo-fuzz",
            "--locked",
            "--version",
            CARGO_FUZZ_VERSION,
        ]))?;
    }
    Ok(())
}

/// Runs `cargo xtask fuzz`.
pub(crate) fn run(args: Args) -> Result<()> {
    let root = proc::root();
    let fuzz_dir = root.join("fuzz");
    let started = Instant::now();
    ensure_cargo_fuzz()?;
    let mut sanitizer = "address";
    if proc::run(cargo_fuzz(&fuzz_dir).args(["build", "--sanitizer", "address"])).is_err() {
        eprintln!("fuzz: AddressSanitizer build failed; building without a sanitizer");
        sanitizer = "none";
        proc::run(cargo_fuzz(&fuzz_dir).args(["build", "--sanitizer", "none"]))?;
    }
    let host = String::from_utf8(Command::new("rustc").arg("-vV").output()?.stdout)?
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(String::from))
        .context("rustc -vV names no host")?;
    let bin = fuzz_dir.join("target").join(&host).join("release");
    let built = started.elapsed().as_secs();

    let targets: Vec<String> = match std::env::var("FUZZ_TARGETS") {
        Ok(t) => t.split_whitespace().map(String::from).collect(),
        Err(_) => String::from_utf8(
            cargo_fuzz(&fuzz_dir)
                .arg("list")
                .stdin(Stdio::null())
                .output()?
                .stdout,
        )?
        .split_whitespace()
        .map(String::from)
        .collect(),
    };
    let scratch = std::env::temp_dir().join(format!("xtask-fuzz.{}", std::process::id()));
    let result = fuzz_targets(&root, &bin, &scratch, &targets, args.secs);
    let _ = std::fs::remove_dir_all(&scratch);
    let (summary, failed) = result?;
    println!();
    println!(
        "fuzz: sanitizer={sanitizer}, install+build {built}s, total {}s",
        started.elapsed().as_secs()
    );
    for line in &summary {
        println!("  {line}");
    }
    if !failed.is_empty() {
        bail!("fuzz: FAILED: {}", failed.join(" "));
    }
    println!("fuzz: {} passed, 0 failed", summary.len());
    Ok(())
}

/// Fuzzes every target for `secs`, two at a time (libFuzzer is single-threaded and CI has two
/// cores); the summary keeps the targets' order, and each target's output is printed whole.
fn fuzz_targets(
    root: &Path,
    bin: &Path,
    scratch: &Path,
    targets: &[String],
    secs: u64,
) -> Result<(Vec<String>, Vec<String>)> {
    const JOBS: usize = 2;
    let next = std::sync::atomic::AtomicUsize::new(0);
    // One slot per target, filled by whichever worker ran it.
    let results: std::sync::Mutex<Vec<Option<Result<Outcome>>>> =
        std::sync::Mutex::new((0..targets.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..JOBS {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(t) = targets.get(i) else { break };
                    let outcome = fuzz_one(root, bin, scratch, t, secs);
                    if let Ok(o) = &outcome
                        && !o.output.is_empty()
                    {
                        println!("{}", o.output);
                    }
                    if let Ok(mut slots) = results.lock() {
                        slots[i] = Some(outcome);
                    }
                }
            });
        }
    });
    let results = results
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a fuzz worker panicked"))?;
    let mut summary = Vec::new();
    let mut failed = Vec::new();
    for (t, r) in targets.iter().zip(results) {
        let o = r.with_context(|| format!("fuzz: {t} did not run"))??;
        summary.push(o.summary);
        if !o.ok {
            failed.push(o.failed);
        }
    }
    Ok((summary, failed))
}

/// What one target's run gave: its summary line, whether it passed (else the name to report),
/// and the output to show (the log's tail and the crash inputs in hex), if it failed.
struct Outcome {
    summary: String,
    ok: bool,
    failed: String,
    output: String,
}

fn fuzz_one(root: &Path, bin: &Path, scratch: &Path, t: &str, secs: u64) -> Result<Outcome> {
    let artifacts = root.join("fuzz/artifacts").join(t);
    let corpus_new = scratch.join(t);
    std::fs::create_dir_all(&corpus_new)?;
    std::fs::create_dir_all(&artifacts)?;
    // Replay the minimized crashes first: they must stay fixed.
    let mut regressions: Vec<_> = std::fs::read_dir(root.join("fuzz/regressions"))
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{t}-")))
                })
                .collect()
        })
        .unwrap_or_default();
    regressions.sort();
    if !regressions.is_empty() {
        let log = scratch.join(format!("{t}.replay.log"));
        let mut child = proc::spawn(Command::new(bin.join(t)).args(&regressions), &log)?;
        let ok =
            proc::wait_timeout(&mut child, std::time::Duration::from_secs(600))?.is_some_and(|s| s.success());
        if !ok {
            return Ok(Outcome {
                summary: format!("{t:<20} REGRESSION FAILED"),
                ok: false,
                failed: format!("{t} (regression replay)"),
                output: proc::log_tail(&log, 40),
            });
        }
    }
    println!("fuzz: {t} for {secs}s");
    let t0 = Instant::now();
    let log = scratch.join(format!("{t}.log"));
    let mut child = proc::spawn(
        Command::new(bin.join(t))
            .arg(&corpus_new)
            .arg(root.join("fuzz/corpus").join(t))
            .arg(format!("-max_total_time={secs}"))
            .args(["-timeout=20", "-rss_limit_mb=2048", "-print_final_stats=1"])
            .arg(format!("-artifact_prefix={}/", artifacts.display())),
        &log,
    )?;
    // libFuzzer stops itself after max_total_time; the bound is only for a hang.
    let status = proc::wait_timeout(&mut child, std::time::Duration::from_secs(secs + 600))?;
    let took = t0.elapsed().as_secs();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let execs = text
        .lines()
        .filter_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .map(|v| v.trim().to_string())
        .next_back()
        .unwrap_or_else(|| "?".into());
    if status.is_some_and(|s| s.success()) {
        return Ok(Outcome {
            summary: format!("{t:<20} {execs:>10} execs in {took}s"),
            ok: true,
            failed: String::new(),
            output: String::new(),
        });
    }
    let mut output = proc::log_tail(&log, 60);
    let prefix = format!("{}/", artifacts.display());
    let mut files: Vec<&str> = text
        .split_whitespace()
        .filter(|w| w.starts_with(&prefix))
        .collect();
    files.sort_unstable();
    files.dedup();
    for f in files {
        if Path::new(f).is_file() {
            let hex = Command::new("xxd")
                .arg(f)
                .output()
                .map(|o| o.stdout)
                .unwrap_or_default();
            let hex = String::from_utf8_lossy(&hex);
            output.push_str(&format!(
                "\n--- {f}\n{}",
                hex.lines().take(64).collect::<Vec<_>>().join("\n")
            ));
        }
    }
    Ok(Outcome {
        summary: format!("{t:<20} CRASH after {execs} execs in {took}s"),
        ok: false,
        failed: t.to_string(),
        output,
    })
}
