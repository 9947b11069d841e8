//! `cargo xtask bench-fanout`: the fan-out benchmark of issue 11.
//!
//! ```text
//! cargo xtask bench-fanout [--subscribers 10000] [--messages 1000] [--rate 100] [--size 64]
//!                          [--rows "naive hub redis nats"] [--smoke] [--out FILE]
//! ```
//!
//! Starts `redis-server` and `nats-server` (with JetStream, a temporary store) on free ports
//! of 127.0.0.1, then for each row starts two `ferrosocket chat` nodes on free ports:
//!
//! | row | nodes |
//! |---|---|
//! | naive | one process, `--naive --listen A --listen B` (LocalBus; every delivery framed and flushed per subscriber) |
//! | hub | one process, `--listen A --listen B` (the in-process hub: LocalBus, prepared fan-out, batched pumps) |
//! | redis | two processes, `--listen A --redis URL` and `--listen B --redis URL` |
//! | nats | two processes, `--listen A --nats URL` and `--listen B --nats URL` |
//!
//! and runs `ferrosocket fanout` against `ws://A/ws?room=bench&raw=1` and `ws://B/...`: the
//! subscribers split over both nodes, one publisher on A sending `--messages` at `--rate` per
//! second (offered load = rate x subscribers deliveries per second). Prints a markdown table
//! (deliveries/s, p50, p99, max, missing, duplicates) and appends every row's JSON report to
//! `bench/results/fanout-DATE.jsonl`. `--smoke` is the CI size: 1,000 subscribers, 300
//! messages. A row whose broker is missing or whose nodes do not start is reported as failed
//! and the others still run. Everything is bounded (`--row-timeout`) and on loopback; every
//! process started is stopped.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{benchkit, brokers, proc};

/// Options of `cargo xtask bench-fanout`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Subscriber connections (split over the two nodes).
    #[arg(long, default_value_t = 10_000)]
    subscribers: u64,
    /// Messages the publisher sends.
    #[arg(long, default_value_t = 1_000)]
    messages: u64,
    /// Messages published per second.
    #[arg(long, default_value_t = 100)]
    rate: u64,
    /// Payload bytes (at least 16).
    #[arg(long, default_value_t = 64)]
    size: u64,
    /// The rows, space-separated: naive hub redis nats.
    #[arg(long, default_value = "naive hub redis nats")]
    rows: String,
    /// The CI size: 1,000 subscribers and 300 messages (overrides both).
    #[arg(long)]
    smoke: bool,
    /// Seconds allowed for each row's generator.
    #[arg(long, default_value_t = 300)]
    row_timeout: u64,
    /// Where the JSON lines go (default bench/results/fanout-DATE.jsonl).
    #[arg(long)]
    out: Option<PathBuf>,
}

const ROWS: [&str; 4] = ["naive", "hub", "redis", "nats"];

/// A row's outcome.
struct Row {
    name: String,
    report: Option<Value>,
    error: Option<String>,
}

/// Runs every row and writes the table and the JSON lines.
pub(crate) fn run(mut args: Args) -> Result<()> {
    if args.smoke {
        args.subscribers = 1_000;
        args.messages = 300;
    }
    let rows: Vec<String> = args.rows.split_whitespace().map(str::to_owned).collect();
    if let Some(bad) = rows.iter().find(|r| !ROWS.contains(&r.as_str())) {
        bail!("unknown row {bad:?} (rows: {})", ROWS.join(" "));
    }
    benchkit::raise_nofile(args.subscribers * 2 + 4_096);
    let bin = proc::ferrosocket_release()?;
    let logs = std::env::temp_dir().join(format!("xtask-bench-fanout-{}", std::process::id()));
    fs::create_dir_all(&logs)?;

    let mut results = Vec::new();
    for name in &rows {
        println!("row {name}: starting");
        let row = match run_row(name, &args, &bin, &logs) {
            Ok(report) => Row {
                name: name.clone(),
                error: report
                    .get("first_error")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                report: Some(report),
            },
            Err(e) => Row {
                name: name.clone(),
                report: None,
                error: Some(format!("{e:#}")),
            },
        };
        if let Some(e) = &row.error {
            println!("row {name}: {e}");
        }
        results.push(row);
    }

    let out = args.out.clone().map_or_else(
        || {
            benchkit::at_root(Path::new(&format!(
                "bench/results/fanout-{}.jsonl",
                benchkit::today()
            )))
        },
        |p| benchkit::at_root(&p),
    );
    if let Some(dir) = out.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&out)
        .with_context(|| format!("opening {}", out.display()))?;
    for r in &results {
        let mut v = r
            .report
            .clone()
            .unwrap_or_else(|| Value::Object(serde_json::Map::new()));
        if let Value::Object(m) = &mut v {
            m.insert("row".into(), Value::from(r.name.clone()));
            m.insert("rate".into(), Value::from(args.rate));
            if let (Some(e), None) = (&r.error, &r.report) {
                m.insert("error".into(), Value::from(e.clone()));
            }
        }
        writeln!(file, "{v}")?;
    }
    println!("{}", table(&args, &results));
    println!("JSON lines appended to {}", out.display());
    if results.iter().all(|r| r.report.is_none()) {
        bail!("no row ran");
    }
    // The CI size is a check, not a measurement: every row must run and lose nothing.
    if args.smoke {
        for r in &results {
            let Some(v) = &r.report else {
                bail!(
                    "row {} failed: {}",
                    r.name,
                    r.error.as_deref().unwrap_or("no report")
                );
            };
            let (missing, dups) = (v["missing"].as_u64(), v["duplicates"].as_u64());
            if missing != Some(0) || dups != Some(0) {
                bail!(
                    "row {}: {missing:?} missing and {dups:?} duplicate deliveries",
                    r.name
                );
            }
        }
    }
    Ok(())
}

/// The markdown table of a run.
fn table(args: &Args, rows: &[Row]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\nfan-out: {} subscribers over two nodes, {} messages of {} bytes at {}/s (offered {} deliveries/s)\n",
        args.subscribers,
        args.messages,
        args.size,
        args.rate,
        args.rate * args.subscribers
    );
    let _ = writeln!(
        t,
        "| row | deliveries/s | p50 ms | p99 ms | max ms | delivered | missing | duplicates | connect s |"
    );
    let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let ms = |v: &Value, k: &str| {
        v["latency_us"][k]
            .as_u64()
            .map_or("-".into(), |us| format!("{:.2}", us as f64 / 1000.0))
    };
    for r in rows {
        match &r.report {
            Some(v) => {
                let _ = writeln!(
                    t,
                    "| {} | {:.0} | {} | {} | {} | {} of {} | {} | {} | {} |",
                    r.name,
                    v["deliveries_per_sec"].as_f64().unwrap_or(0.0),
                    ms(v, "p50"),
                    ms(v, "p99"),
                    ms(v, "max"),
                    v["delivered"],
                    v["expected"],
                    v["missing"],
                    v["duplicates"],
                    v["connect_seconds"]
                );
            }
            None => {
                let e = r.error.as_deref().unwrap_or("failed").replace('|', "/");
                let _ = writeln!(
                    t,
                    "| {} | failed: {} | | | | | | | |",
                    r.name,
                    e.lines().next().unwrap_or("")
                );
            }
        }
    }
    t
}

/// A broker started for one row.
struct Broker {
    child: proc::Child,
    url: String,
}

fn start_redis(logs: &Path) -> Result<Broker> {
    let port = proc::free_port()?;
    let child = start_broker(brokers::redis_command(port), port, &logs.join("redis.log"))?;
    Ok(Broker {
        child,
        url: format!("redis://127.0.0.1:{port}/"),
    })
}

fn start_nats(logs: &Path) -> Result<Broker> {
    let port = proc::free_port()?;
    let command = brokers::nats_command(port, &logs.join("nats-store"));
    let child = start_broker(command, port, &logs.join("nats.log"))?;
    Ok(Broker {
        child,
        url: format!("nats://127.0.0.1:{port}"),
    })
}

/// Spawns a broker and waits until it accepts on `port`.
fn start_broker(mut command: Command, port: u16, log: &Path) -> Result<proc::Child> {
    let mut child = proc::spawn(&mut command, log)?;
    proc::wait_port(
        SocketAddr::from(([127, 0, 0, 1], port)),
        &mut child,
        Duration::from_secs(10),
    )?;
    Ok(child)
}

/// Starts a row's broker and nodes, runs the generator, stops everything.
fn run_row(name: &str, args: &Args, bin: &Path, logs: &Path) -> Result<Value> {
    let broker = match name {
        "redis" => Some(start_redis(logs)?),
        "nats" => Some(start_nats(logs)?),
        _ => None,
    };
    let (a, b) = (proc::free_port()?, proc::free_port()?);
    let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    let node = |ports: &[u16], extra: &[&str], log: &str| -> Result<proc::Child> {
        let mut cmd = Command::new(bin);
        cmd.args(["chat", "--quiet"]);
        for p in ports {
            cmd.args(["--listen", &addr(*p).to_string()]);
        }
        cmd.args(extra);
        proc::spawn(&mut cmd, &logs.join(log))
    };
    let mut nodes = Vec::new();
    match (name, &broker) {
        ("naive", _) => nodes.push(node(&[a, b], &["--naive"], "naive.log")?),
        ("hub", _) => nodes.push(node(&[a, b], &[], "hub.log")?),
        (flag, Some(br)) => {
            let flag = format!("--{flag}");
            nodes.push(node(&[a], &[&flag, &br.url], &format!("{name}-a.log"))?);
            nodes.push(node(&[b], &[&flag, &br.url], &format!("{name}-b.log"))?);
        }
        _ => bail!("row {name} has no broker"),
    }
    let ready = (|| -> Result<()> {
        let last = nodes.len() - 1;
        proc::wait_port(addr(a), &mut nodes[0], Duration::from_secs(20))?;
        proc::wait_port(addr(b), &mut nodes[last], Duration::from_secs(20))?;
        Ok(())
    })();
    let result = ready.and_then(|()| {
        let url = |p: u16| format!("ws://{}/ws?room=bench&raw=1", addr(p));
        let mut cmd = Command::new(bin);
        cmd.args(["fanout", "--json", "--url", &url(a), "--url", &url(b)]);
        cmd.args(["--subscribers", &args.subscribers.to_string()]);
        cmd.args(["--messages", &args.messages.to_string()]);
        cmd.args(["--rate", &args.rate.to_string()]);
        cmd.args(["--size", &args.size.to_string()]);
        let log = logs.join(format!("fanout-{name}.log"));
        let out = benchkit::run_bench(&mut cmd, &log, Duration::from_secs(args.row_timeout));
        match out.exit {
            Some(0) => Ok(out.report),
            Some(code) => bail!("the generator exited with {code}: {}", out.other.trim()),
            None => bail!("the generator ran over {} s and was stopped", args.row_timeout),
        }
    });
    for n in nodes {
        let _ = n.stop();
    }
    if let Some(br) = broker {
        let _ = br.child.stop();
    }
    result
}
