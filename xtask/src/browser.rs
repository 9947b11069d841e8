//! `cargo xtask browser`: the browser end-to-end tests, in headless Debian Chromium driven by
//! playwright-core:
//! 1. the echo page: starts `ferrosocket echo` on a free loopback port and drives
//!    `http://127.0.0.1:PORT/` (`scripts/browser/echo-page.mjs`); screenshot
//!    `target/browser-echo.png`;
//! 2. the same page over https with a certificate made here, Chromium ignoring certificate
//!    errors: once with the server's defaults (ALPN offers h2), where the page and six
//!    WebSockets (the page's, its reconnect, four more at once) must be streams of ONE HTTP/2
//!    connection, checked in the server's log (RFC 8441); once with `--http1-only`, where
//!    they must all be HTTP/1.1 (screenshots `target/browser-echo-h2.png`,
//!    `target/browser-echo-h1-tls.png`);
//! 3. the chat example's page: builds and starts `examples/chat` (debug: CI's test stage has
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

use crate::{cert, interop, proc};

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
    let own_server = !matches!(std::env::var("FERROSOCKET_ECHO_CMD"), Ok(c) if !c.is_empty());
    serve_and_run_page(
        &root,
        &browser_dir,
        "echo",
        "echo",
        cmd,
        &format!("http://{addr}/"),
        &[],
        left(),
    )?;
    log("PASS: echo page (screenshot: target/browser-echo.png)");

    if own_server {
        let (cert, key) = cert::test_certificate(&root.join("target/browser-tls"))?;
        for (run, extra, http2) in [
            ("echo-h2", None, true),
            ("echo-h1-tls", Some("--http1-only"), false),
        ] {
            let addr = SocketAddr::from(([127, 0, 0, 1], proc::free_port()?));
            let mut cmd = Command::new(proc::ferrosocket_release()?);
            cmd.args(["echo", "--listen", &addr.to_string(), "--tls-cert"])
                .arg(&cert)
                .arg("--tls-key")
                .arg(&key)
                .args(extra);
            let url = format!("https://{addr}/");
            let env = [("EXTRA_SOCKETS", "4")];
            serve_and_run_page(&root, &browser_dir, "echo", run, cmd, &url, &env, left())?;
            let srvlog = root.join(format!("target/browser-{run}-server.log"));
            let verdict = check_protocols(&std::fs::read_to_string(&srvlog)?, http2, 6)?;
            log(format!(
                "PASS: {run}: {verdict} (screenshot: target/browser-{run}.png)"
            ));
        }
    }

    // The chat example's page, two users at once.
    let addr = SocketAddr::from(([127, 0, 0, 1], proc::free_port()?));
    log("building the chat example");
    let chat = chat_example()?;
    let mut cmd = Command::new(chat);
    cmd.args(["--listen", &addr.to_string()]);
    serve_and_run_page(
        &root,
        &browser_dir,
        "chat",
        "chat",
        cmd,
        &format!("http://{addr}/"),
        &[],
        left(),
    )?;
    log(
        "PASS: chat page, two users (screenshots: target/browser-chat-alice.png, target/browser-chat-bob.png)",
    );
    Ok(())
}

/// Starts the testee `cmd` listening on `addr` (log: `target/browser-RUN-server.log`), runs
/// `scripts/browser/SCRIPT-page.mjs` against `url` with `env` (screenshot:
/// `target/browser-RUN.png`), and stops it.
#[allow(clippy::too_many_arguments)]
fn serve_and_run_page(
    root: &Path,
    browser_dir: &Path,
    script: &str,
    run: &str,
    mut cmd: Command,
    url: &str,
    env: &[(&str, &str)],
    left: Duration,
) -> Result<()> {
    log(format!("starting testee: {}", proc::describe(&cmd)));
    let srvlog = root.join(format!("target/browser-{run}-server.log"));
    let mut server = proc::spawn(&mut cmd, &srvlog)?;
    let addr: SocketAddr = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.trim_end_matches('/').parse().ok())
        .with_context(|| format!("no address in {url}"))?;
    proc::wait_port(addr, &mut server, Duration::from_secs(30))?;
    let screenshot = root.join(format!("target/browser-{run}.png"));
    let script = browser_dir.join(format!("{script}-page.mjs"));
    run_page(&script, url, env, &screenshot, &srvlog, &mut server, left)?;
    server.stop()
}

/// Checks from the echo server's log which protocol the page's WebSockets came over.
/// `http2`: the page (`ADDR GET / over HTTP/2`) and at least `sockets` WebSockets (`ADDR
/// connected over HTTP/2`) share one client address, that is one TCP connection, and no
/// WebSocket came over HTTP/1.1. Otherwise at least `sockets` WebSockets came over HTTP/1.1
/// and none over HTTP/2. Returns a one-line summary.
fn check_protocols(serverlog: &str, http2: bool, sockets: usize) -> Result<String> {
    let opened: Vec<(&str, bool)> = serverlog
        .lines()
        .filter_map(|l| {
            let (addr, rest) = l.split_once(' ')?;
            rest.starts_with("connected")
                .then(|| (addr, rest.starts_with("connected over HTTP/2")))
        })
        .collect();
    let over_h2 = opened.iter().filter(|(_, h2)| *h2).count();
    if !http2 {
        if over_h2 > 0 || opened.len() < sockets {
            bail!(
                "expected {sockets} or more WebSockets over HTTP/1.1 and none over HTTP/2; \
                 the server log shows {} over HTTP/1.1 and {over_h2} over HTTP/2",
                opened.len() - over_h2
            );
        }
        return Ok(format!(
            "{} WebSockets over HTTP/1.1 (TLS), none over HTTP/2",
            opened.len()
        ));
    }
    let page = serverlog
        .lines()
        .find_map(|l| l.strip_suffix(" GET / over HTTP/2"))
        .context("the server log shows no page served over HTTP/2")?;
    let shared = opened.iter().filter(|(a, h2)| *h2 && *a == page).count();
    if shared < sockets || over_h2 != opened.len() {
        bail!(
            "expected the page and {sockets} or more WebSockets on the HTTP/2 connection from {page}; \
             the server log shows {shared} there, {over_h2} over HTTP/2 in all and {} over HTTP/1.1",
            opened.len() - over_h2
        );
    }
    Ok(format!(
        "the page and {shared} WebSockets on one HTTP/2 connection from {page} (RFC 8441)"
    ))
}

/// Runs the page driver `script` against `url` (at most 180 s or what is left of the
/// overall limit); on failure prints the end of the testee's log. Fails if the testee died.
fn run_page(
    script: &Path,
    url: &str,
    env: &[(&str, &str)],
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
            .arg(url)
            .arg(screenshot)
            .envs(env.iter().copied())
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

#[cfg(test)]
mod tests {
    use super::check_protocols;

    const H2: &str = "ferrosocket echo: listening\n\
        127.0.0.1:5 GET / over HTTP/2\n\
        127.0.0.1:5 connected over HTTP/2\n\
        127.0.0.1:5 sent: hi\n\
        127.0.0.1:5 connected over HTTP/2 (subprotocol chat)\n";

    #[test]
    fn http2_needs_the_page_and_the_sockets_on_one_connection() {
        assert!(check_protocols(H2, true, 2).is_ok());
        assert!(check_protocols(H2, true, 3).is_err());
        assert!(check_protocols(H2, false, 1).is_err());
        let elsewhere = H2.replace("127.0.0.1:5 GET", "127.0.0.1:6 GET");
        assert!(check_protocols(&elsewhere, true, 1).is_err());
        let mixed = format!("{H2}127.0.0.1:7 connected\n");
        assert!(check_protocols(&mixed, true, 2).is_err());
    }

    #[test]
    fn http1_needs_no_http2_at_all() {
        let h1 = "127.0.0.1:5 connected\n127.0.0.1:6 connected (subprotocol chat)\n";
        assert!(check_protocols(h1, false, 2).is_ok());
        assert!(check_protocols(h1, false, 3).is_err());
        assert!(check_protocols(h1, true, 1).is_err());
    }
}
