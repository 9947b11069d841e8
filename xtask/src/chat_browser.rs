//! `cargo xtask chat-browser`: `ferrosocket chat` across nodes, in headless Debian Chromium
//! driven by playwright-core (`scripts/browser/chat-node-page.mjs`).
//!
//! For each broker (Redis, then NATS): starts the broker on a free loopback port
//! (`redis-server`, `nats-server -js`), two `ferrosocket chat` nodes as separate processes on
//! their own ports (`--redis URL` / `--nats URL`), and the page driver, which opens alice's
//! page on node one and bob's on node two (room "lobby"), checks a line typed in each page
//! appears in the other, and that carol's page, opened later, shows both as history. When
//! the driver asks, the broker is restarted on the same port; the driver then checks that a
//! line typed after the restart still crosses the nodes, both ways (bounded retries). Prints a
//! pass/fail summary; fails if any broker failed. `--only local` runs the same pages against
//! two nodes of one process (the in-process bus, no broker to restart).
//!
//! Logs: `target/chat-browser-BROKER-{broker,node1,node2}.log`; screenshots
//! `target/chat-browser-BROKER-{alice,bob,carol}.png`. Installs chromium and playwright-core
//! when missing (as `cargo xtask browser`). Environment: `CHAT_BROWSER_TIMEOUT` overall limit
//! in seconds (default 900, installs and the release build included).

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{brokers, browser, proc};

use crate::brokers::{NATS, REDIS};
/// Bound on one broker's page run (three pages, the restart and its retries).
const PAGE_LIMIT: Duration = Duration::from_secs(240);

/// Arguments of `cargo xtask chat-browser`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Run only this broker (repeatable): redis, nats, or local (both nodes in one process,
    /// joined by the in-process bus: no broker, so no restart). Default: redis and nats.
    #[arg(long = "only", value_name = "BROKER")]
    only: Vec<String>,
    /// Use this `ferrosocket` binary instead of building target/release/ferrosocket.
    #[arg(long, value_name = "PATH")]
    bin: Option<PathBuf>,
}

fn log(msg: impl AsRef<str>) {
    println!("chat-browser: {}", msg.as_ref());
}

/// A broker to run the nodes over.
#[derive(Clone, Copy, Debug)]
enum Broker {
    Redis,
    Nats,
    /// No broker: both nodes in one process.
    Local,
}

impl Broker {
    fn name(self) -> &'static str {
        match self {
            Broker::Redis => "redis",
            Broker::Nats => "nats",
            Broker::Local => "local",
        }
    }

    fn url(self, port: u16) -> String {
        match self {
            Broker::Redis => format!("redis://127.0.0.1:{port}/"),
            Broker::Nats | Broker::Local => format!("nats://127.0.0.1:{port}"),
        }
    }

    /// The broker's command on `port` (NATS with JetStream, its store in `dir`).
    fn command(self, port: u16, dir: &Path) -> Command {
        match self {
            Broker::Redis => brokers::redis_command(port),
            Broker::Nats | Broker::Local => brokers::nats_command(port, dir),
        }
    }

    fn binary(self) -> &'static str {
        match self {
            Broker::Redis => REDIS,
            Broker::Nats | Broker::Local => NATS,
        }
    }
}

/// Runs `cargo xtask chat-browser`.
pub(crate) fn run(args: Args) -> Result<()> {
    let limit = Duration::from_secs(match std::env::var("CHAT_BROWSER_TIMEOUT") {
        Ok(v) => v.parse().with_context(|| format!("CHAT_BROWSER_TIMEOUT={v:?}"))?,
        Err(_) => 900,
    });
    let t0 = Instant::now();
    let root = proc::root();
    let browser_dir = root.join("scripts/browser");
    let mut brokers = Vec::new();
    for b in [Broker::Redis, Broker::Nats, Broker::Local] {
        let default = !matches!(b, Broker::Local);
        if (args.only.is_empty() && default) || args.only.iter().any(|o| o == b.name()) {
            brokers.push(b);
        }
    }
    if brokers.is_empty() {
        bail!("--only takes redis, nats or local, not {:?}", args.only);
    }
    for b in &brokers {
        if !matches!(b, Broker::Local) && !Path::new(b.binary()).is_file() {
            bail!(
                "{} is missing: install Debian's {} package (.ci/run does)",
                b.binary(),
                if matches!(b, Broker::Redis) {
                    "redis-server"
                } else {
                    "nats-server"
                }
            );
        }
    }
    browser::ensure_chromium(limit)?;
    browser::ensure_playwright(&browser_dir)?;
    let bin = match args.bin {
        Some(bin) => bin,
        None => {
            log("building ferrosocket (release)");
            proc::ferrosocket_release()?
        }
    };

    let mut results = Vec::new();
    for broker in brokers {
        let started = Instant::now();
        let left = limit.saturating_sub(t0.elapsed());
        let outcome = run_broker(&root, &browser_dir, &bin, broker, left.min(PAGE_LIMIT));
        match &outcome {
            Ok(()) => log(format!(
                "PASS: {} ({:.1}s)",
                broker.name(),
                started.elapsed().as_secs_f64()
            )),
            Err(e) => log(format!("FAIL: {}: {e:#}", broker.name())),
        }
        results.push((broker, outcome.is_ok(), started.elapsed()));
    }
    println!();
    println!("chat-browser summary (total {:.1}s):", t0.elapsed().as_secs_f64());
    for (broker, ok, took) in &results {
        println!(
            "  {:<6} {:<4} {:>6.1}s",
            broker.name(),
            if *ok { "pass" } else { "FAIL" },
            took.as_secs_f64()
        );
    }
    let failed: Vec<&str> = results.iter().filter(|r| !r.1).map(|r| r.0.name()).collect();
    if !failed.is_empty() {
        bail!("chat-browser failed over: {}", failed.join(", "));
    }
    Ok(())
}

/// The broker, two nodes over it, and the page driver, with the restart in the middle.
fn run_broker(root: &Path, browser_dir: &Path, bin: &Path, broker: Broker, limit: Duration) -> Result<()> {
    let name = broker.name();
    let target = root.join("target");
    let store = std::env::temp_dir().join(format!("chat-browser-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&store).with_context(|| format!("creating {}", store.display()))?;
    let _cleanup = RemoveOnDrop(store.clone());
    let port = proc::free_port()?;
    let broker_addr = SocketAddr::from(([127, 0, 0, 1], port));
    let broker_log = target.join(format!("chat-browser-{name}-broker.log"));
    let start_broker = || -> Result<proc::Child> {
        let mut server = proc::spawn(&mut broker.command(port, &store), &broker_log)?;
        proc::wait_port(broker_addr, &mut server, Duration::from_secs(20))?;
        Ok(server)
    };
    let mut server = match broker {
        Broker::Local => None,
        _ => {
            log(format!("starting {name} on {broker_addr}"));
            Some(start_broker()?)
        }
    };

    let addrs = [
        SocketAddr::from(([127, 0, 0, 1], proc::free_port()?)),
        SocketAddr::from(([127, 0, 0, 1], proc::free_port()?)),
    ];
    let node_urls: Vec<String> = addrs.iter().map(|a| format!("http://{a}/")).collect();
    // Two processes over the broker; without one, one process with both nodes.
    let mut commands = Vec::new();
    match broker {
        Broker::Local => {
            let mut cmd = Command::new(bin);
            cmd.arg("chat");
            for a in &addrs {
                cmd.args(["--listen", &a.to_string()]);
            }
            commands.push((cmd, addrs.to_vec()));
        }
        _ => {
            for a in &addrs {
                let mut cmd = Command::new(bin);
                cmd.args([
                    "chat",
                    "--listen",
                    &a.to_string(),
                    &format!("--{name}"),
                    &broker.url(port),
                ]);
                commands.push((cmd, vec![*a]));
            }
        }
    }
    let mut nodes = Vec::new();
    for (i, (mut cmd, listens)) in commands.into_iter().enumerate() {
        let node_log = target.join(format!("chat-browser-{name}-node{}.log", i + 1));
        log(format!(
            "starting node process {}: {}",
            i + 1,
            proc::describe(&cmd)
        ));
        let mut node = proc::spawn(&mut cmd, &node_log)?;
        for a in listens {
            proc::wait_port(a, &mut node, Duration::from_secs(30))?;
        }
        nodes.push((node, node_log));
    }

    let screenshot = target.join(format!("chat-browser-{name}.png"));
    let mut driver = proc::spawn_stdio(
        Command::new("node")
            .arg(browser_dir.join("chat-node-page.mjs"))
            .args(&node_urls)
            .arg(&screenshot)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
    )?;
    let mut to_driver = driver.take_stdin().context("the page driver's stdin")?;
    let from_driver = driver.take_stdout().context("the page driver's stdout")?;
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(from_driver).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });

    let deadline = Instant::now() + limit;
    let fail = |what: String, nodes: &[(proc::Child, PathBuf)]| -> anyhow::Error {
        for (_, node_log) in nodes {
            eprintln!("---- {} (last 20 lines) ----", node_log.display());
            eprintln!("{}", proc::log_tail(node_log, 20));
        }
        if !matches!(broker, Broker::Local) {
            eprintln!("---- {} (last 10 lines) ----", broker_log.display());
            eprintln!("{}", proc::log_tail(&broker_log, 10));
        }
        anyhow::anyhow!(what)
    };
    loop {
        let wait = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(wait.min(Duration::from_millis(500))) {
            Ok(line) => {
                println!("  {line}");
                if line == "chat-node-page: restart the broker now" {
                    if let Some(old) = server.take() {
                        log(format!("restarting {name} on {broker_addr}"));
                        old.stop()?;
                        // Let each node notice the outage before the broker comes back.
                        std::thread::sleep(Duration::from_secs(1));
                        server = Some(start_broker()?);
                        log(format!("{name} is back"));
                    }
                    writeln!(to_driver, "go").context("telling the page driver to go on")?;
                    to_driver.flush()?;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if Instant::now() >= deadline {
                    break;
                }
            }
        }
    }
    let status = proc::wait_timeout(&mut driver, deadline.saturating_duration_since(Instant::now()))?;
    if let Some(i) = nodes.iter_mut().position(|(node, _)| !node.is_running()) {
        return Err(fail(
            format!("node process {} died during the run", i + 1),
            &nodes,
        ));
    }
    match status {
        Some(s) if s.success() => {}
        None => {
            return Err(fail(
                format!("the page driver timed out after {}s", limit.as_secs()),
                &nodes,
            ));
        }
        Some(s) => return Err(fail(format!("the page driver failed ({s})"), &nodes)),
    }
    for (node, _) in nodes {
        node.stop()?;
    }
    match server {
        Some(server) => server.stop(),
        None => Ok(()),
    }
}

/// A directory removed when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
