//! `cargo xtask browser`: the browser end-to-end tests, in headless Debian Chromium driven by
//! playwright-core:
//! 1. the echo page: starts `ferrosocket echo` on a free loopback port and drives
//!    `http://127.0.0.1:PORT/` (`scripts/browser/echo-page.mjs`); screenshot
//!    `target/browser-echo.png`;
//! 2. the chat example's page: builds and starts `examples/chat` (debug: CI's test stage has
//!    built it already, and a release build would compile every dev-dependency again), opens the page
//!    twice, types a message in each and checks both pages show both messages
//!    (`scripts/browser/chat-page.mjs`); screenshots `target/browser-chat-{alice,bob}.png`.
//!
//! Installs what it needs when missing: Debian's chromium (apt-get) and playwright-core (npm,
//! into `scripts/browser/node_modules`, version pinned in `scripts/browser/package.json`).
//! Environment: `FERROSOCKET_ECHO_CMD` testee command instead of target/release/ferrosocket
//! ("{addr}" is replaced by 127.0.0.1:PORT; it must serve the page at / and echo on /ws);
//! `BROWSER_TEST_TIMEOUT` overall limit in seconds (default 1200, installs included).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{interop, proc};

const CHROMIUM: &str = "/usr/bin/chromium";

/// Arguments of `cargo xtask browser`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

fn log(msg: impl AsRef<str>) {
    println!("browser-test: {}", msg.as_ref());
}

/// Installs Debian's chromium with apt-get unless /usr/bin/chromium exists.
pub(crate) fn ensure_chromium(timeout: Duration) -> Result<()> {
    if Path::new(CHROMIUM).is_file() {
        return Ok(());
    }
    log("installing Debian chromium (apt-get)");
    let aptlog = std::env::temp_dir().join(format!("browser-apt.{}.log", std::process::id()));
    let t = timeout.min(Duration::from_secs(1200));
    let script = "apt-get update -q && apt-get install -y -q chromium";
    let mut child = proc::spawn(
        Command::new("bash")
            .args(["-c", script])
            .env("DEBIAN_FRONTEND", "noninteractive"),
        &aptlog,
    )?;
    if !proc::wait_timeout(&mut child, t)?.is_some_and(|s| s.success()) {
        eprintln!("{}", proc::log_tail(&aptlog, 40));
        bail!("apt-get install chromium failed");
    }
    let _ = std::fs::remove_file(aptlog);
    Ok(())
}

/// Installs playwright-core (the version package.json pins) unless it is there.
pub(crate) fn ensure_playwright(browser_dir: &Path) -> Result<()> {
    let text = std::fs::read_to_string(browser_dir.join("package.json"))?;
    let pkg: serde_json::Value = serde_json::from_str(&text)?;
    let want = pkg
        .pointer("/dependencies/playwright-core")
        .and_then(serde_json::Value::as_str)
        .context("package.json pins no playwright-core")?;
    let have = interop::node_package_version(&browser_dir.join("node_modules/playwright-core/package.json"));
    if have.as_deref() != Some(want) {
        log(format!("installing playwright-core {want} (npm)"));
        proc::run_timeout(
            Command::new("npm").current_dir(browser_dir).args([
                "install",
                "--no-audit",
                "--no-fund",
                "--no-package-lock",
                "--loglevel=error",
            ]),
            Duration::from_secs(600),
        )
        .context("npm install playwright-core failed")?;
    }
    Ok(())
}

/// Runs `cargo xtask browser`.
pub(crate) fn run(_args: Args) -> Result<()> {
    let limit = Duration::from_secs(match std::env::var("BROWSER_TEST_TIMEOUT") {
        Ok(v) => v.parse().with_context(|| format!("BROWSER_TEST_TIMEOUT={v:?}"))?,
        Err(_) => 1200,
    });
    let t0 = Instant::now();
    let left = || limit.saturating_sub(t0.elapsed());
    let root = proc::root();
    let browser_dir = root.join("scripts/browser");
    ensure_chromium(left())?;
    let version = Command::new(CHROMIUM).arg("--version").output();
    log(match version {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => "chromium: version unknown".into(),
    });
    ensure_playwright(&browser_dir)?;

    let addr = SocketAddr::from(([127, 0, 0, 1], proc::free_port()?));
    let cmd = match std::env::var("FERROSOCKET_ECHO_CMD") {
        Ok(c) if !c.is_empty() => {
            let mut cmd = Command::new("bash");
            cmd.arg("-c")
                .arg(format!("exec {}", c.replace("{addr}", &addr.to_string())));
            cmd
        }
        _ => {
            log("building ferrosocket (release)");
            let mut cmd = Command::new(proc::ferrosocket_release()?);
            cmd.args(["echo", "--listen", &addr.to_string()]);
            cmd
        }
    };
    serve_and_run_page(&root, &browser_dir, "echo", cmd, addr, left())?;
    log("PASS: echo page (screenshot: target/browser-echo.png)");

    // The chat example's page, two users at once.
    let addr = SocketAddr::from(([127, 0, 0, 1], proc::free_port()?));
    log("building the chat example");
    let chat = chat_example()?;
    let mut cmd = Command::new(chat);
    cmd.args(["--listen", &addr.to_string()]);
    serve_and_run_page(&root, &browser_dir, "chat", cmd, addr, left())?;
    log(
        "PASS: chat page, two users (screenshots: target/browser-chat-alice.png, target/browser-chat-bob.png)",
    );
    Ok(())
}

/// Starts the testee `cmd` listening on `addr` (log: `target/browser-NAME-server.log`), runs
/// `scripts/browser/NAME-page.mjs` against it (screenshot: `target/browser-NAME.png`), and
/// stops it.
fn serve_and_run_page(
    root: &Path,
    browser_dir: &Path,
    name: &str,
    mut cmd: Command,
    addr: SocketAddr,
    left: Duration,
) -> Result<()> {
    log(format!("starting testee: {}", proc::describe(&cmd)));
    let srvlog = root.join(format!("target/browser-{name}-server.log"));
    let mut server = proc::spawn(&mut cmd, &srvlog)?;
    proc::wait_port(addr, &mut server, Duration::from_secs(30))?;
    let screenshot = root.join(format!("target/browser-{name}.png"));
    let script = browser_dir.join(format!("{name}-page.mjs"));
    run_page(&script, addr, &screenshot, &srvlog, &mut server, left)?;
    server.stop()
}

/// Runs the page driver `script` against `http://ADDR/` (at most 180 s or what is left of the
/// overall limit); on failure prints the end of the testee's log. Fails if the testee died.
fn run_page(
    script: &Path,
    addr: SocketAddr,
    screenshot: &Path,
    srvlog: &Path,
    server: &mut proc::Child,
    left: Duration,
) -> Result<()> {
    let _ = std::fs::remove_file(screenshot);
    let name = script.file_name().map_or_else(
        || script.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut node = proc::spawn_stdio(
        Command::new("node")
            .arg(script)
            .arg(format!("http://{addr}/"))
            .arg(screenshot)
            .stdin(std::process::Stdio::null()),
    )?;
    let page_limit = Duration::from_secs(180).min(left);
    match proc::wait_timeout(&mut node, page_limit)? {
        Some(s) if s.success() => {}
        other => {
            eprintln!("---- testee output (last 30 lines) ----");
            eprintln!("{}", proc::log_tail(srvlog, 30));
            match other {
                None => bail!("{name} timed out after {}s", page_limit.as_secs()),
                Some(s) => bail!("{name} failed ({s})"),
            }
        }
    }
    if !server.is_running() {
        bail!("testee died during {name}");
    }
    Ok(())
}

/// Builds the chat example (debug profile, like the tests' build of it); its path.
fn chat_example() -> Result<std::path::PathBuf> {
    let root = proc::root();
    proc::run(Command::new(proc::cargo()).current_dir(&root).args([
        "build",
        "--quiet",
        "-p",
        "ferrosocket",
        "--example",
        "chat",
    ]))?;
    let bin = root.join("target/debug/examples/chat");
    if !bin.is_file() {
        bail!("{} was not built", bin.display());
    }
    Ok(bin)
}
