//! `cargo xtask bench-memory`: memory per connection of each echo server.
//!
//! ```text
//! cargo xtask bench-memory [--connections N] [--size BYTES] [--settle SECS]
//!                          [--servers "ferrosocket fastwebsockets tokio-tungstenite"] [--out FILE]
//! FERROSOCKET_ECHO_ARGS="--keepalive 0" adds arguments to `ferrosocket echo`.
//! ```
//!
//! Opens N (default 10,000) WebSocket connections to each server with bench/peers' `ws-hold`,
//! and reads the server's RSS (VmRSS in /proc/PID/status)
//!   1. before any connection,
//!   2. with every connection upgraded and idle,
//!   3. after every connection echoed one 64 KiB message and went idle again,
//!
//! then reports (RSS - RSS before) / N for 2 and 3. Servers are single-threaded and pinned to
//! core 0, the client to core 1. Loopback only; every wait is bounded.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{PipeWriter, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{benchkit, proc, procfs};

/// Options of `cargo xtask bench-memory`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Connections held open per server.
    #[arg(long, default_value_t = 10_000)]
    connections: u64,
    /// Bytes of the one message each connection echoes.
    #[arg(long, default_value_t = 65_536)]
    size: u64,
    /// Seconds to wait after each step before reading the RSS.
    #[arg(long, default_value_t = 2)]
    settle: u64,
    /// The servers, space-separated: ferrosocket fastwebsockets tokio-tungstenite.
    #[arg(long, default_value = "ferrosocket fastwebsockets tokio-tungstenite")]
    servers: String,
    /// Markdown output (default bench/results/memory-DATE.md).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// How long ws-hold may take to upgrade or echo on every connection.
const STEP_LIMIT: Duration = Duration::from_secs(300);

/// Measures every server and writes the table.
pub(crate) fn run(args: Args) -> Result<()> {
    let servers: Vec<&str> = args.servers.split_whitespace().collect();
    if let Some(bad) = servers
        .iter()
        .find(|s| !["ferrosocket", "fastwebsockets", "tokio-tungstenite"].contains(s))
    {
        bail!("unknown server {bad}");
    }
    let out = benchkit::at_root(
        &args
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("bench/results/memory-{}.md", benchkit::today()))),
    );
    // Both ends hold one descriptor per connection.
    benchkit::raise_nofile(args.connections * 2 + 1024);

    eprintln!("building (release): ferrosocket-cli and bench/peers");
    let fs_bin = proc::ferrosocket_release()?;
    let peers = benchkit::build_peers()?;
    let logs = std::env::temp_dir().join(format!("ferrosocket-bench-memory.{}", std::process::id()));
    fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;

    let mut rows = String::new();
    for name in servers {
        let row = measure(name, &args, &fs_bin, &peers, &logs);
        let row = match row {
            Ok(row) => row,
            Err(e) => {
                eprintln!("logs kept in {}", logs.display());
                return Err(e);
            }
        };
        rows.push_str(&row);
    }
    let _ = fs::remove_dir_all(&logs);

    let mut text = String::new();
    let _ = writeln!(text, "# Memory per connection ({})\n", benchkit::today());
    let _ = writeln!(
        text,
        "{} connections per server (single-threaded, core 0); RSS from /proc/PID/status VmRSS, {} s after each step.",
        args.connections, args.settle
    );
    let _ = writeln!(
        text,
        "Per connection = (RSS - RSS before any connection) / connections upgraded. Echo: one {}-byte binary message per connection, then idle.\n",
        args.size
    );
    let _ = writeln!(
        text,
        "| server | upgraded | echoed | RSS before (KiB) | RSS idle (KiB) | per conn, idle | RSS after echo (KiB) | per conn, after echo |"
    );
    let _ = writeln!(text, "|---|---|---|---|---|---|---|---|");
    text.push_str(&rows);
    if let Some(dir) = out.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    fs::write(&out, &text).with_context(|| format!("writing {}", out.display()))?;
    print!("{text}");
    println!("written to {}", out.display());
    Ok(())
}

/// `ws-hold`, fed one line per step on its stdin (a pipe); its process group is killed when
/// dropped.
struct Holder {
    child: proc::Child,
    stdin: Option<PipeWriter>,
    log: PathBuf,
}

impl Holder {
    fn spawn(peers: &Path, url: &str, args: &Args, log: &Path) -> Result<Self> {
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let (reader, writer) = std::io::pipe().context("creating ws-hold's stdin")?;
        let child = proc::spawn_stdio(
            Command::new("taskset")
                .args(["-c", "1"])
                .arg(peers.join("ws-hold"))
                .args(["--url", url, "--connections", &args.connections.to_string()])
                .args(["--size", &args.size.to_string(), "--timeout", "550"])
                .stdin(reader)
                .stdout(out.try_clone()?)
                .stderr(out),
        )?;
        Ok(Self {
            child,
            stdin: Some(writer),
            log: log.to_path_buf(),
        })
    }

    /// Lets ws-hold go on to its next step.
    fn next(&mut self) -> Result<()> {
        let stdin = self.stdin.as_mut().context("ws-hold's stdin is closed")?;
        stdin
            .write_all(b"go\n")
            .and_then(|()| stdin.flush())
            .context("writing to ws-hold")
    }

    /// The first line of ws-hold's output that starts with `word`, waiting up to `limit`.
    fn wait_for(&mut self, word: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let text = fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.starts_with(word)) {
                return Some(line.to_owned());
            }
            if !self.child.is_running() {
                return None;
            }
            thread::sleep(Duration::from_millis(100));
        }
        None
    }

    fn output(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Closes stdin (ws-hold closes everything and exits) and waits up to 30 s for it.
    fn finish(mut self) {
        self.stdin = None;
        let _ = proc::wait_timeout(&mut self.child, Duration::from_secs(30));
    }
}

/// "12.3 KiB" from bytes, truncated to a tenth as the script's integer arithmetic did.
fn kib_tenths(bytes: i64) -> String {
    format!("{}.{} KiB", bytes / 1024, (bytes % 1024) * 10 / 1024)
}

/// One server's row of the table.
fn measure(name: &str, args: &Args, fs_bin: &Path, peers: &Path, logs: &Path) -> Result<String> {
    let port = proc::free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", "0"]);
    match name {
        "ferrosocket" => {
            cmd.arg(fs_bin)
                .args(["echo", "--threads", "1", "--quiet", "--no-compression"]);
            if let Ok(extra) = std::env::var("FERROSOCKET_ECHO_ARGS") {
                cmd.args(extra.split_whitespace());
            }
        }
        "fastwebsockets" => {
            cmd.arg(peers.join("fastwebsockets-echo"));
        }
        _ => {
            cmd.arg(peers.join("tokio-tungstenite-echo"));
        }
    }
    cmd.args(["--listen", &addr.to_string()]);
    let mut server = proc::spawn(&mut cmd, &logs.join(format!("{name}.log")))?;
    proc::wait_port(addr, &mut server, Duration::from_secs(5))?;
    thread::sleep(Duration::from_millis(500));
    let pid = server.pid(); // taskset execs the server: same process
    let rss = || {
        procfs::rss_kib(pid)
            .map(|k| k as i64)
            .context("the server exited")
    };
    let base = rss()?;

    let mut holder = Holder::spawn(
        peers,
        &format!("ws://{addr}/ws"),
        args,
        &logs.join(format!("hold-{name}.log")),
    )?;
    let Some(up) = holder.wait_for("upgraded", STEP_LIMIT) else {
        bail!(
            "{name}: connections were not all upgraded in time: {}",
            holder.output()
        );
    };
    thread::sleep(Duration::from_secs(args.settle));
    let idle = rss()?;
    holder.next()?;
    let Some(echoed) = holder.wait_for("echoed", STEP_LIMIT) else {
        bail!("{name}: echoes did not complete in time: {}", holder.output());
    };
    thread::sleep(Duration::from_secs(args.settle));
    let after = rss()?;
    let _ = holder.next();
    holder.finish();
    server.stop()?;

    let count = |line: &str| {
        line.split_whitespace()
            .nth(1)
            .and_then(|n| n.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let (ok, eok) = (count(&up), count(&echoed));
    let per_idle = (idle - base) * 1024 / ok.max(1);
    let per_after = (after - base) * 1024 / ok.max(1);
    eprintln!(
        "{name}: base {base} KiB, {up} -> {idle} KiB ({per_idle} B/conn), {echoed} -> {after} KiB ({per_after} B/conn)"
    );
    Ok(format!(
        "| {name} | {ok} | {eok} | {base} | {idle} | {} | {after} | {} |\n",
        kib_tenths(per_idle),
        kib_tenths(per_after)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenths_truncate_like_the_script() {
        assert_eq!(kib_tenths(2150), "2.0 KiB");
        assert_eq!(kib_tenths(2355), "2.2 KiB");
        assert_eq!(kib_tenths(7987), "7.7 KiB");
    }
}
