//! `cargo xtask bench-http`: WebSockets over HTTP/1.1, HTTP/2 and HTTP/3 compared like for
//! like (issue 14): the same client (`ferrosocket bench` through Dialer and Conn: `--conn`,
//! `--http2`, `--http3`) against `ferrosocket echo`, and against sockudo-ws's RFC 8441 server
//! (`bench/peers`' `sockudo-h2`, cleartext h2) in the same run.
//!
//! Rows: 100 WebSockets as 100 TCP connections (HTTP/1.1), as 100 streams of one HTTP/2
//! connection, in cleartext and over TLS, and as 100 streams of one QUIC connection. Each
//! server is single-threaded on core 0, the load on core 1; every (cell, row) runs `--reps`
//! times, rows interleaved within a rep, and the table shows medians: messages/s, the ratio to
//! the cleartext HTTP/1.1 row of the same cell, p99 latency and the server's CPU per message.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::{benchkit, cert, proc};

/// Arguments of `cargo xtask bench-http`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Repetitions of every (cell, row).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Seconds measured per run (after a 0.5 s warm-up).
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    /// WebSockets per run.
    #[arg(long, default_value_t = 100)]
    connections: usize,
    /// Write the markdown table here as well (relative to the repository root).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// One row: which server, and how the client reaches it.
struct Row {
    label: &'static str,
    server: Server,
    flag: &'static str,
    tls: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Server {
    /// `ferrosocket echo` in cleartext.
    Plain,
    /// `ferrosocket echo --tls-cert --tls-key --http3`.
    Tls,
    /// sockudo-ws's RFC 8441 server, cleartext h2.
    SockudoH2,
}

const ROWS: [Row; 6] = [
    Row {
        label: "ferrosocket, HTTP/1.1, 100 TCP connections",
        server: Server::Plain,
        flag: "--conn",
        tls: false,
    },
    Row {
        label: "ferrosocket, HTTP/2 (h2c), 1 TCP connection",
        server: Server::Plain,
        flag: "--http2",
        tls: false,
    },
    Row {
        label: "sockudo-ws 3.1, HTTP/2 (h2c), 1 TCP connection",
        server: Server::SockudoH2,
        flag: "--http2",
        tls: false,
    },
    Row {
        label: "ferrosocket, HTTP/1.1 + TLS, 100 TCP connections",
        server: Server::Tls,
        flag: "--conn",
        tls: true,
    },
    Row {
        label: "ferrosocket, HTTP/2 + TLS, 1 TCP connection",
        server: Server::Tls,
        flag: "--http2",
        tls: true,
    },
    Row {
        label: "ferrosocket, HTTP/3, 1 QUIC connection",
        server: Server::Tls,
        flag: "--http3",
        tls: true,
    },
];

/// (payload bytes, messages in flight per WebSocket).
const CELLS: [(usize, usize); 3] = [(16, 1), (16, 16), (16 << 10, 1)];

/// Runs `cargo xtask bench-http`.
pub(crate) fn run(args: Args) -> Result<()> {
    let root = proc::root();
    let logs = root.join("target/bench-http");
    std::fs::create_dir_all(&logs)?;
    println!("bench-http: building ferrosocket and bench/peers (release)");
    let fs_bin = proc::ferrosocket_release()?;
    let peers = benchkit::build_peers()?;
    let sockudo = peers.join("sockudo-h2");
    let (cert_pem, key_pem) = cert::test_certificate(&logs.join("tls"))?;

    let start = |server: Server| -> Result<(proc::Child, SocketAddr)> {
        let addr = SocketAddr::from(([127, 0, 0, 1], proc::free_port()?));
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", "0"]);
        match server {
            Server::Plain => {
                cmd.arg(&fs_bin).args(["echo", "--threads", "1", "--quiet"]);
            }
            Server::Tls => {
                cmd.arg(&fs_bin)
                    .args(["echo", "--threads", "1", "--quiet", "--http3", "--tls-cert"])
                    .arg(&cert_pem)
                    .arg("--tls-key")
                    .arg(&key_pem);
            }
            Server::SockudoH2 => {
                cmd.arg(&sockudo);
            }
        }
        cmd.args(["--listen", &addr.to_string()]);
        let name = match server {
            Server::Plain => "echo",
            Server::Tls => "echo-tls",
            Server::SockudoH2 => "sockudo-h2",
        };
        let mut child = proc::spawn(&mut cmd, &logs.join(format!("{name}.log")))?;
        proc::wait_port(addr, &mut child, Duration::from_secs(10))
            .with_context(|| format!("{name} did not start on {addr}"))?;
        Ok((child, addr))
    };
    let mut servers = Vec::new();
    for server in [Server::Plain, Server::Tls, Server::SockudoH2] {
        if server == Server::SockudoH2 && !sockudo.is_file() {
            eprintln!("bench-http: {} is missing; its row is skipped", sockudo.display());
            continue;
        }
        let (child, addr) = start(server)?;
        servers.push((server, child, addr));
    }

    // results[cell][row] = every rep's report
    let mut results: Vec<Vec<Vec<Value>>> = vec![vec![Vec::new(); ROWS.len()]; CELLS.len()];
    let run_timeout = Duration::from_secs_f64(args.duration + 30.0);
    for rep in 1..=args.reps {
        for (c, &(size, k)) in CELLS.iter().enumerate() {
            for (r, row) in ROWS.iter().enumerate() {
                let Some((_, child, addr)) = servers.iter().find(|(s, _, _)| *s == row.server) else {
                    continue;
                };
                let scheme = if row.tls { "wss" } else { "ws" };
                let mut cmd = Command::new("taskset");
                cmd.args(["-c", "1"])
                    .arg(&fs_bin)
                    .args(["bench", &format!("{scheme}://{addr}/ws"), row.flag])
                    .args(["--connections", &args.connections.to_string()])
                    .args(["--size", &size.to_string(), "--in-flight", &k.to_string()])
                    .args(["--duration", &args.duration.to_string(), "--warmup", "0.5"])
                    .args([
                        "--json",
                        "--timeout",
                        "10",
                        "--server-pid",
                        &child.pid().to_string(),
                    ]);
                if row.tls {
                    cmd.arg("--tls-ca").arg(&cert_pem);
                }
                let out = benchkit::run_bench(&mut cmd, &logs.join("bench.log"), run_timeout);
                let rate = out
                    .report
                    .get("msgs_per_sec")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0);
                eprintln!(
                    "bench-http: rep {rep}, {size} B x {k}, {}: {rate:.0} msgs/s",
                    row.label
                );
                results[c][r].push(out.report);
            }
        }
    }
    for (_, child, _) in servers {
        child.stop()?;
    }
    let table = markdown(&results, args.connections);
    println!("{table}");
    if let Some(out) = args.out {
        let out = benchkit::at_root(&out);
        std::fs::write(&out, &table).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

/// The median of the value at `pointer` over the runs without errors.
fn median(runs: &[Value], pointer: &str) -> Option<f64> {
    benchkit::median(
        runs.iter()
            .filter(|r| r.get("errors").and_then(Value::as_i64) == Some(0))
            .filter_map(|r| r.pointer(pointer)?.as_f64()),
    )
}

fn markdown(results: &[Vec<Vec<Value>>], connections: usize) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{connections} WebSockets per run; cells are median messages/s (ratio to the cleartext HTTP/1.1 row), \
         p99 latency, server CPU per message.\n"
    );
    let _ = write!(t, "| row |");
    for (size, k) in CELLS {
        let _ = write!(
            t,
            " {} x {k} in flight |",
            if size >= 1024 {
                format!("{} KiB", size >> 10)
            } else {
                format!("{size} B")
            }
        );
    }
    let _ = writeln!(t);
    let _ = writeln!(t, "|---|{}", "---|".repeat(CELLS.len()));
    for (r, row) in ROWS.iter().enumerate() {
        let _ = write!(t, "| {} |", row.label);
        for cell in results {
            let base = median(&cell[0], "/msgs_per_sec");
            let rate = median(&cell[r], "/msgs_per_sec");
            let p99 = median(&cell[r], "/latency_us/p99");
            let cpu = median(&cell[r], "/server_cpu_us_per_msg");
            match rate {
                None if cell[r].is_empty() => {
                    let _ = write!(t, " skipped |");
                }
                None => {
                    let _ = write!(t, " failed |");
                }
                Some(rate) => {
                    let ratio = base.map_or(String::new(), |b| format!(" ({:.2}x)", rate / b));
                    let p99 = p99.map_or("?".into(), |p| format!("{:.1} ms", p / 1000.0));
                    let cpu = cpu.map_or("?".into(), |c| format!("{c:.1} µs"));
                    let _ = write!(t, " {:.0}k{ratio}, p99 {p99}, {cpu} |", rate / 1000.0);
                }
            }
        }
        let _ = writeln!(t);
    }
    t
}
