//! `cargo xtask bench-memory`: memory per connection of each echo server.
//!
//! ```text
//! cargo xtask bench-memory [--connections N] [--size BYTES] [--settle SECS]
//!                          [--servers "raw-hold ferrosocket fastwebsockets sockudo
//!                                      tokio-tungstenite gorilla"]   (the default; also
//!                                      sockudo-batched)
//!                          [--out FILE]
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
//! core 0 (gorilla with GOMAXPROCS=1), the client to core 1; none compresses. Loopback only;
//! every wait is bounded.
//!
//! `raw-hold` is the floor: a tokio server that answers the upgrade and then keeps only the
//! socket and its task (it echoes through one buffer shared by all connections). With it in the
//! run, two more columns say how far above it every other server sits, per connection. gorilla
//! is built with `go` when it is installed and left out, with a note, when it is not.

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
    /// The servers, space-separated: raw-hold ferrosocket fastwebsockets sockudo
    /// sockudo-batched tokio-tungstenite gorilla.
    #[arg(
        long,
        default_value = "raw-hold ferrosocket fastwebsockets sockudo tokio-tungstenite gorilla"
    )]
    servers: String,
    /// Markdown output (default bench/results/memory-DATE.md).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// How long ws-hold may take to upgrade or echo on every connection.
const STEP_LIMIT: Duration = Duration::from_secs(300);

const SERVERS: [&str; 7] = [
    "raw-hold",
    "ferrosocket",
    "fastwebsockets",
    "sockudo",
    "sockudo-batched",
    "tokio-tungstenite",
    "gorilla",
];

/// The server that is the floor.
const FLOOR: &str = "raw-hold";

/// Measures every server and writes the table.
pub(crate) fn run(args: Args) -> Result<()> {
    let mut servers: Vec<&str> = args.servers.split_whitespace().collect();
    if let Some(bad) = servers.iter().find(|s| !SERVERS.contains(s)) {
        bail!("unknown server {bad} (known: {})", SERVERS.join(" "));
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
    let mut notes = Vec::new();
    let gorilla = if servers.contains(&"gorilla") {
        benchkit::build_gorilla()
    } else {
        None
    };
    if servers.contains(&"gorilla") && gorilla.is_none() {
        servers.retain(|s| *s != "gorilla");
        notes.push(format!(
            "gorilla left out: `go` or gorilla/websocket is missing ({}).",
            benchkit::GORILLA_INSTALL
        ));
    }
    let bins = Bins {
        ferrosocket: &fs_bin,
        peers: &peers,
        gorilla: gorilla.as_deref(),
    };
    let logs = std::env::temp_dir().join(format!("ferrosocket-bench-memory.{}", std::process::id()));
    fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;

    let mut rows = Vec::new();
    for name in servers {
        match measure(name, &args, &bins, &logs) {
            Ok(row) => rows.push(row),
            Err(e) => {
                eprintln!("logs kept in {}", logs.display());
                return Err(e);
            }
        }
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
    text.push_str(&table(&rows));
    for note in &notes {
        let _ = writeln!(text, "\n{note}");
    }
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

/// "12.3 KiB" from bytes, truncated to a tenth as the script's integer arithmetic did (toward
/// zero, so a small negative difference reads "-0.3 KiB").
fn kib_tenths(bytes: i64) -> String {
    let sign = if bytes < 0 { "-" } else { "" };
    let b = bytes.unsigned_abs();
    format!("{sign}{}.{} KiB", b / 1024, (b % 1024) * 10 / 1024)
}

/// Where the servers' binaries are.
struct Bins<'a> {
    ferrosocket: &'a Path,
    /// bench/peers/target/release.
    peers: &'a Path,
    /// bench/peers/target/go/gorilla-echo, if it was built.
    gorilla: Option<&'a Path>,
}

/// Adds server `name`'s program and options (all but `--listen`) to `cmd`.
fn server_command(cmd: &mut Command, name: &str, bins: &Bins<'_>) -> Result<()> {
    let peer = |bin: &str| bins.peers.join(bin);
    match name {
        "ferrosocket" => {
            cmd.arg(bins.ferrosocket)
                .args(["echo", "--threads", "1", "--quiet", "--no-compression"]);
            if let Ok(extra) = std::env::var("FERROSOCKET_ECHO_ARGS") {
                cmd.args(extra.split_whitespace());
            }
        }
        "raw-hold" => drop(cmd.arg(peer("raw-hold"))),
        "fastwebsockets" => drop(cmd.arg(peer("fastwebsockets-echo"))),
        "sockudo" => drop(cmd.arg(peer("sockudo-echo"))),
        "sockudo-batched" => drop(cmd.arg(peer("sockudo-batched-echo"))),
        "tokio-tungstenite" => drop(cmd.arg(peer("tokio-tungstenite-echo"))),
        "gorilla" => match bins.gorilla {
            Some(bin) => drop(cmd.arg(bin).env("GOMAXPROCS", "1")),
            None => bail!("gorilla-echo was not built ({})", benchkit::GORILLA_INSTALL),
        },
        other => bail!("unknown server {other}"),
    }
    Ok(())
}

/// One server's measurements.
#[derive(Debug, Clone)]
struct Row {
    name: String,
    /// Connections upgraded and echoed (ws-hold's counts).
    upgraded: i64,
    echoed: i64,
    /// RSS, KiB: before any connection, idle, after the echo.
    base: i64,
    idle: i64,
    after: i64,
}

impl Row {
    /// Bytes per upgraded connection, idle and after the echo.
    fn per_conn(&self) -> (i64, i64) {
        let n = self.upgraded.max(1);
        (
            (self.idle - self.base) * 1024 / n,
            (self.after - self.base) * 1024 / n,
        )
    }
}

/// The markdown table of `rows`, with the distance to the floor when raw-hold is among them.
fn table(rows: &[Row]) -> String {
    let floor = rows.iter().find(|r| r.name == FLOOR).map(Row::per_conn);
    let mut text = String::from(
        "| server | upgraded | echoed | RSS before (KiB) | RSS idle (KiB) | per conn, idle | RSS after echo (KiB) | per conn, after echo |",
    );
    if floor.is_some() {
        text.push_str(" above raw-hold, idle | above raw-hold, after echo |");
    }
    text.push_str("\n|---|---|---|---|---|---|---|---|");
    if floor.is_some() {
        text.push_str("---|---|");
    }
    text.push('\n');
    for r in rows {
        let (idle, after) = r.per_conn();
        let _ = write!(
            text,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            r.upgraded,
            r.echoed,
            r.base,
            r.idle,
            kib_tenths(idle),
            r.after,
            kib_tenths(after)
        );
        if let Some((f_idle, f_after)) = floor {
            if r.name == FLOOR {
                text.push_str(" (floor) | (floor) |");
            } else {
                let _ = write!(
                    text,
                    " {} | {} |",
                    kib_tenths(idle - f_idle),
                    kib_tenths(after - f_after)
                );
            }
        }
        text.push('\n');
    }
    text
}

/// One server's measurements.
fn measure(name: &str, args: &Args, bins: &Bins<'_>, logs: &Path) -> Result<Row> {
    let port = proc::free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", "0"]);
    server_command(&mut cmd, name, bins)?;
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
        bins.peers,
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
    let row = Row {
        name: name.to_owned(),
        upgraded: count(&up),
        echoed: count(&echoed),
        base,
        idle,
        after,
    };
    let (per_idle, per_after) = row.per_conn();
    eprintln!(
        "{name}: base {base} KiB, {up} -> {idle} KiB ({per_idle} B/conn), {echoed} -> {after} KiB ({per_after} B/conn)"
    );
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenths_truncate_like_the_script() {
        assert_eq!(kib_tenths(2150), "2.0 KiB");
        assert_eq!(kib_tenths(2355), "2.2 KiB");
        assert_eq!(kib_tenths(7987), "7.7 KiB");
        assert_eq!(kib_tenths(-300), "-0.2 KiB");
    }

    fn row(name: &str, idle: i64, after: i64) -> Row {
        // 1000 connections: per connection = (RSS - base) KiB * 1024 / 1000 bytes.
        Row {
            name: name.into(),
            upgraded: 1000,
            echoed: 1000,
            base: 1000,
            idle: 1000 + idle,
            after: 1000 + after,
        }
    }

    #[test]
    fn distance_to_the_floor() {
        let rows = [row("raw-hold", 500, 1000), row("ferrosocket", 2500, 3000)];
        let text = table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].ends_with("above raw-hold, idle | above raw-hold, after echo |"));
        assert_eq!(lines[1].matches("---").count(), 10);
        // raw-hold: 512 B idle, 1024 B after; ferrosocket: 2560 B and 3072 B.
        assert!(
            lines[2].ends_with("| 0.5 KiB | 2000 | 1.0 KiB | (floor) | (floor) |"),
            "{}",
            lines[2]
        );
        assert!(
            lines[3].ends_with("| 2.5 KiB | 4000 | 3.0 KiB | 2.0 KiB | 2.0 KiB |"),
            "{}",
            lines[3]
        );
        // Without the floor, no extra columns.
        let text = table(&rows[1..]);
        assert!(text.lines().next().unwrap().ends_with("per conn, after echo |"));
        assert_eq!(text.lines().nth(1).unwrap().matches("---").count(), 8);
    }

    #[test]
    fn server_commands() {
        let bins = Bins {
            ferrosocket: Path::new("/fs"),
            peers: Path::new("/p"),
            gorilla: None,
        };
        let mut cmd = Command::new("taskset");
        server_command(&mut cmd, "raw-hold", &bins).unwrap();
        assert_eq!(cmd.get_args().collect::<Vec<_>>(), ["/p/raw-hold"]);
        let mut cmd = Command::new("taskset");
        server_command(&mut cmd, "sockudo", &bins).unwrap();
        assert_eq!(cmd.get_args().collect::<Vec<_>>(), ["/p/sockudo-echo"]);
        assert!(server_command(&mut Command::new("x"), "gorilla", &bins).is_err());
        let bins = Bins {
            gorilla: Some(Path::new("/g")),
            ..bins
        };
        let mut cmd = Command::new("taskset");
        server_command(&mut cmd, "gorilla", &bins).unwrap();
        assert_eq!(cmd.get_args().collect::<Vec<_>>(), ["/g"]);
        let env: Vec<_> = cmd.get_envs().collect();
        assert_eq!(env, [("GOMAXPROCS".as_ref(), Some("1".as_ref()))]);
    }
}
