//! `cargo xtask bench-smoke`: a CI smoke test of the load generator and the echo path. Starts
//! `ferrosocket echo` on a free 127.0.0.1 port, sends 50,000 messages of 1 KiB over 50
//! connections with 16 in flight each, and fails unless every message came back byte for byte
//! (messages == sent == 50000, errors == 0). Bounded by timeouts; the server is killed on exit.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::proc;

const EXPECTED: u64 = 50_000;

/// Arguments of `cargo xtask bench-smoke`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Use target/release/ferrosocket (or $FERROSOCKET) as it is.
    #[arg(long)]
    no_build: bool,
}

/// Runs `cargo xtask bench-smoke`.
pub(crate) fn run(args: Args) -> Result<()> {
    let root = proc::root();
    if !args.no_build {
        proc::ferrosocket_release()?;
    }
    let bin = std::env::var_os("FERROSOCKET")
        .map_or_else(|| root.join("target/release/ferrosocket"), PathBuf::from);
    let addr = SocketAddr::from(([127, 0, 0, 1], proc::free_port()?));
    let log = root.join("target/bench-smoke-server.log");
    let mut server = proc::spawn(
        Command::new(&bin).args([
            "echo",
            "--listen",
            &addr.to_string(),
            "--path",
            "/ws",
            "--quiet",
            "--threads",
            "1",
        ]),
        &log,
    )?;
    proc::wait_port(addr, &mut server, Duration::from_secs(30))?;

    let out_path = root.join("target/bench-smoke.json");
    let mut bench = proc::spawn_stdio(
        Command::new(&bin)
            .arg("bench")
            .arg(format!("ws://{addr}/ws"))
            .args(["--connections", "50", "--in-flight", "16", "--size", "1024"])
            .args([
                "--messages",
                &EXPECTED.to_string(),
                "--duration",
                "60",
                "--verify",
                "--json",
            ])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_path)?),
    )?;
    let status = proc::wait_timeout(&mut bench, Duration::from_secs(120))?;
    let result = std::fs::read_to_string(&out_path).unwrap_or_default();
    if !status.is_some_and(|s| s.success()) {
        eprintln!("{}", proc::log_tail(&log, 40));
        let out = if result.trim().is_empty() {
            "no output"
        } else {
            result.trim()
        };
        bail!("bench-smoke: the bench run failed ({status:?}): {out}");
    }
    print!("{result}");
    check(&result)?;
    server.stop()
}

/// Checks the bench's JSON: every message sent and echoed, no error.
fn check(result: &str) -> Result<()> {
    let r: Value = serde_json::from_str(result.trim()).context("bench output is not JSON")?;
    let mut problems = Vec::new();
    let n = |k: &str| r.get(k).and_then(Value::as_u64);
    if n("messages") != Some(EXPECTED) {
        problems.push(format!("messages {:?} != {EXPECTED}", r.get("messages")));
    }
    if n("sent") != Some(EXPECTED) {
        problems.push(format!("sent {:?} != {EXPECTED}", r.get("sent")));
    }
    if n("errors") != Some(0) {
        problems.push(format!(
            "errors {:?}: {:?}",
            r.get("errors"),
            r.get("first_error")
        ));
    }
    if !problems.is_empty() {
        bail!("bench-smoke: FAILED: {}", problems.join("; "));
    }
    let rate = r.get("msgs_per_sec").and_then(Value::as_f64).unwrap_or(0.0);
    let p99 = r.pointer("/latency_us/p99").cloned().unwrap_or(Value::Null);
    println!(
        "bench-smoke: ok: {EXPECTED} messages of 1 KiB echoed byte for byte, {rate:.0} msgs/s, p99 {p99} us"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_counts_and_errors() {
        let good = r#"{"messages":50000,"sent":50000,"errors":0,"msgs_per_sec":1.5,"latency_us":{"p99":7}}"#;
        check(good).expect("good");
        assert!(check(&good.replace("\"errors\":0", "\"errors\":1")).is_err());
        assert!(check(&good.replace("\"sent\":50000", "\"sent\":49999")).is_err());
    }
}
