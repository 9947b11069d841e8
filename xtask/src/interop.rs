//! `cargo xtask interop`: permessage-deflate interop of ferrosocket with Python `websockets` and
//! Node `ws`, compression on.
//!
//! 1. `ferrosocket echo` as the server, with clients: websockets (its default offer, and one with
//!    every parameter and small windows) and ws; each sends text and random binary messages of
//!    every size, checks the echo byte for byte and that permessage-deflate was negotiated.
//!    Then python-hyper's `h2` drives RFC 8441 by hand (`scripts/interop/h2_client.py`): two
//!    WebSockets on one HTTP/2 connection, cleartext (prior knowledge) and over TLS (ALPN h2,
//!    a certificate made for the run), compression done by the script; and aioquic drives RFC
//!    9220 (`scripts/interop/h3_client.py`) against `echo --http3`.
//! 2. `ferrosocket client URL --once` (stdin -> one message -> reply on stdout) against a
//!    websockets and a ws echo server with compression on (the servers report what they
//!    negotiated); skipped with a message if the binary has no `client --once`.
//!
//! Installs what it needs on first use: `.venv-interop/` (websockets; h2 and aioquic for the
//! HTTP/2 and HTTP/3 peers) and
//! `scripts/interop/node_modules` (ws, pinned in `scripts/interop/package.json`). Everything
//! listens on 127.0.0.1 only. Prints a table; fails on any mismatch, error, or compression not
//! negotiated. Environment: `INTEROP_TIMEOUT` seconds per message (default 60),
//! `INTEROP_RUN_TIMEOUT` seconds per client program (default 900), `FERROSOCKET_BIN` another
//! ferrosocket binary (never built).

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{cert, proc};

const WEBSOCKETS_VERSION: &str = "17.4";
/// python-hyper's HTTP/2 stack, for RFC 8441 by hand (scripts/interop/h2_client.py).
const H2_VERSION: &str = "4.1.0";
/// aioquic, for the HTTP/3 (RFC 9220) peer `scripts/interop/h3_client.py`.
const AIOQUIC_VERSION: &str = "1.7.2";
const WS_VERSION: &str = "8.23.0";

/// Arguments of `cargo xtask interop`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Message sizes in bytes, comma-separated.
    #[arg(long, default_value = "0,1,125,65536,1048576,16777216")]
    sizes: String,
    /// Use target/release/ferrosocket as it is.
    #[arg(long)]
    no_build: bool,
}

fn log(msg: impl AsRef<str>) {
    println!("interop: {}", msg.as_ref());
}

fn env_secs(name: &str, default: u64) -> Result<Duration> {
    Ok(Duration::from_secs(match std::env::var(name) {
        Ok(v) => v.parse().with_context(|| format!("{name}={v:?}"))?,
        Err(_) => default,
    }))
}

/// One message's outcome.
#[derive(Debug, Clone)]
struct Row {
    peer: String,
    kind: String,
    size: u64,
    status: String,
    ext: String,
    ms: String,
    detail: String,
}

impl Row {
    fn new(peer: &str, kind: &str, size: u64, status: &str, ext: &str, ms: u128, detail: String) -> Row {
        Row {
            peer: peer.into(),
            kind: kind.into(),
            size,
            status: status.into(),
            ext: ext.into(),
            ms: ms.to_string(),
            detail,
        }
    }

    /// A `RESULT\tpeer\tkind\tsize\tstatus\text\tms\tdetail` line of a helper.
    fn parse(line: &str) -> Option<Row> {
        let mut f = line.strip_prefix("RESULT\t")?.split('\t');
        let mut next = || f.next().unwrap_or("").to_string();
        let (peer, kind, size) = (next(), next(), next());
        Some(Row {
            peer,
            kind,
            size: size.parse().ok()?,
            status: next(),
            ext: next(),
            ms: next(),
            detail: next(),
        })
    }
}

/// Replaces tabs and newlines with spaces and keeps the last `n` bytes (as `tr | tail -c`).
fn flat_tail(text: &str, n: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c == '\t' || c == '\n' { ' ' } else { c })
        .collect();
    let mut start = flat.len().saturating_sub(n);
    while !flat.is_char_boundary(start) {
        start += 1;
    }
    flat[start..].to_string()
}

struct Ctx {
    root: PathBuf,
    work: PathBuf,
    py: PathBuf,
    helpers: PathBuf,
    bin: PathBuf,
    sizes: Vec<u64>,
    msg_timeout: Duration,
    run_timeout: Duration,
    rows: Vec<Row>,
}

/// Runs `cargo xtask interop`.
pub(crate) fn run(args: Args) -> Result<()> {
    let sizes: Vec<u64> = args
        .sizes
        .split(',')
        .map(|s| s.parse::<u64>())
        .collect::<Result<_, _>>()
        .context("--sizes takes numbers separated by commas")?;
    let root = proc::root();
    let work = std::env::temp_dir().join(format!("interop.{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let mut ctx = Ctx {
        py: root.join(".venv-interop/bin/python"),
        helpers: root.join("scripts/interop"),
        bin: root.join("target/release/ferrosocket"),
        root,
        work,
        sizes,
        msg_timeout: env_secs("INTEROP_TIMEOUT", 60)?,
        run_timeout: env_secs("INTEROP_RUN_TIMEOUT", 900)?,
        rows: Vec::new(),
    };
    let result = interop(&mut ctx, args.no_build);
    let _ = std::fs::remove_dir_all(&ctx.work);
    result
}

fn interop(ctx: &mut Ctx, no_build: bool) -> Result<()> {
    setup_python(ctx)?;
    setup_node(&ctx.helpers)?;
    if let Some(bin) = std::env::var_os("FERROSOCKET_BIN") {
        ctx.bin = PathBuf::from(bin);
    } else if !no_build {
        log("building ferrosocket (release)");
        ctx.bin = proc::ferrosocket_release()?;
    }
    if !ctx.bin.is_file() {
        bail!("{} is missing (and --no-build was given)", ctx.bin.display());
    }
    let t0 = Instant::now();

    // 1. Peers as clients of `ferrosocket echo`.
    let port = proc::free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut echo = proc::spawn(
        Command::new(&ctx.bin).args(["echo", "--listen", &addr.to_string(), "--quiet"]),
        &ctx.work.join("echo.log"),
    )?;
    proc::wait_port(addr, &mut echo, Duration::from_secs(30))?;
    let url = format!("ws://{addr}/ws");
    let sizes = ctx.sizes.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    let secs = ctx.msg_timeout.as_secs().to_string();
    for (peer, extra) in [
        ("websockets→echo", None),
        ("websockets(params)→echo", Some("params")),
    ] {
        let mut cmd = Command::new(&ctx.py);
        cmd.arg(ctx.helpers.join("py_client.py"))
            .args([&url, peer, "--sizes", &sizes, "--timeout", &secs]);
        if let Some(offer) = extra {
            cmd.args(["--offer", offer]);
        }
        run_client(ctx, peer, &mut cmd)?;
    }
    let mut cmd = Command::new("node");
    cmd.arg(ctx.helpers.join("node_client.mjs"))
        .args([&url, "ws→echo", &sizes, &secs]);
    run_client(ctx, "ws→echo", &mut cmd)?;
    // HTTP/2 (RFC 8441) by python-hyper's h2, cleartext with prior knowledge: several
    // WebSockets on one connection, permessage-deflate done by the script with zlib.
    // Up to 1 MiB: the websockets and ws runs above cover 16 MiB, and Python builds and masks
    // every h2 frame itself (16 MiB would take half a minute per run).
    let h2_sizes: Vec<u64> = ctx.sizes.iter().copied().filter(|&s| s <= 1 << 20).collect();
    let h2_size_list = h2_sizes.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    let (py, h2_script) = (ctx.py.clone(), ctx.helpers.join("h2_client.py"));
    let h2_args = |peer: &str| {
        let mut cmd = Command::new(&py);
        cmd.arg(&h2_script);
        cmd.args([
            "--label",
            peer,
            "--sockets",
            "2",
            "--deflate",
            "--sizes",
            &h2_size_list,
            "--timeout",
            &secs,
        ]);
        cmd
    };
    let peer = "h2(python)→echo h2c";
    let mut cmd = h2_args(peer);
    cmd.args(["127.0.0.1", &port.to_string(), "/ws"]);
    run_client_sizes(ctx, peer, &mut cmd, &h2_sizes)?;
    if !echo.is_running() {
        eprintln!("{}", proc::log_tail(echo.log(), 40));
        bail!("ferrosocket echo died during the run");
    }
    echo.stop()?;

    // The same over TLS, HTTP/2 chosen by ALPN.
    let (cert, key) = cert::test_certificate(&ctx.work.join("tls"))?;
    let port = proc::free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut tls_echo = proc::spawn(
        Command::new(&ctx.bin)
            .args(["echo", "--listen", &addr.to_string(), "--quiet", "--tls-cert"])
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key),
        &ctx.work.join("echo-tls.log"),
    )?;
    proc::wait_port(addr, &mut tls_echo, Duration::from_secs(30))?;
    let peer = "h2(python)→echo tls";
    let mut cmd = h2_args(peer);
    cmd.args(["127.0.0.1", &port.to_string(), "/ws", "--tls"]);
    run_client_sizes(ctx, peer, &mut cmd, &h2_sizes)?;
    if !tls_echo.is_running() {
        eprintln!("{}", proc::log_tail(tls_echo.log(), 40));
        bail!("ferrosocket echo (tls) died during the run");
    }
    tls_echo.stop()?;

    // HTTP/3 (RFC 9220) by aioquic, WebSocket frames made by the script, against
    // `echo --http3` (QUIC on the same port, UDP).
    let port = proc::free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut h3_echo = proc::spawn(
        Command::new(&ctx.bin)
            .args([
                "echo",
                "--listen",
                &addr.to_string(),
                "--quiet",
                "--http3",
                "--tls-cert",
            ])
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key),
        &ctx.work.join("echo-h3.log"),
    )?;
    proc::wait_port(addr, &mut h3_echo, Duration::from_secs(30))?;
    let mut cmd = Command::new(&ctx.py);
    cmd.arg(ctx.helpers.join("h3_client.py"))
        .args(["127.0.0.1", &port.to_string(), "/ws", "--cafile"])
        .arg(&cert);
    run_check(
        ctx,
        "h3(aioquic)→echo",
        "text+binary 70000 B, close",
        70_000,
        &mut cmd,
    )?;
    if !h3_echo.is_running() {
        eprintln!("{}", proc::log_tail(h3_echo.log(), 40));
        bail!("ferrosocket echo (http3) died during the run");
    }
    h3_echo.stop()?;

    // 2. `ferrosocket client --once` against the peers' echo servers.
    let has_once = Command::new(&ctx.bin)
        .args(["client", "--help"])
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--once"));
    if has_once {
        let mut py = Command::new(&ctx.py);
        py.arg(ctx.helpers.join("py_server.py"));
        run_against_server(
            ctx,
            "client→websockets",
            &mut py,
            "websockets server",
            "py_server.log",
        )?;
        let mut node = Command::new("node");
        node.arg(ctx.helpers.join("node_server.mjs"));
        run_against_server(ctx, "client→ws", &mut node, "ws server", "node_server.log")?;
    } else {
        log(format!(
            "SKIP: {} has no working 'client --once' yet; the ferrosocket-as-client part is skipped",
            ctx.bin.display()
        ));
        for peer in ["client→websockets", "client→ws"] {
            for kind in ["text", "binary"] {
                for &size in &ctx.sizes {
                    ctx.rows.push(Row::new(
                        peer,
                        kind,
                        size,
                        "skip",
                        "-",
                        0,
                        "no ferrosocket client --once".into(),
                    ));
                }
            }
        }
    }
    log(format!("runs finished in {} s", t0.elapsed().as_secs()));
    print_table(&ctx.rows)
}

fn setup_python(ctx: &Ctx) -> Result<()> {
    let check = format!(
        "import sys, websockets, aioquic, importlib.metadata as m; \
         sys.exit(websockets.__version__ != '{WEBSOCKETS_VERSION}' or m.version('h2') != '{H2_VERSION}' \
         or aioquic.__version__ != '{AIOQUIC_VERSION}')"
    );
    let env = |c: &mut Command| {
        c.env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1");
    };
    let mut probe = Command::new(&ctx.py);
    env(&mut probe);
    if probe
        .args(["-c", &check])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        return Ok(());
    }
    let venv = ctx.root.join(".venv-interop");
    log(format!(
        "installing websockets {WEBSOCKETS_VERSION}, h2 {H2_VERSION} and aioquic {AIOQUIC_VERSION} into .venv-interop"
    ));
    if venv.exists() {
        std::fs::remove_dir_all(&venv)?;
    }
    proc::run_timeout(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        Duration::from_secs(300),
    )
    .with_context(|| format!("cannot create {}", venv.display()))?;
    let mut pip = Command::new(&ctx.py);
    env(&mut pip);
    if let Err(err) = proc::run_timeout(
        pip.args([
            "-m",
            "pip",
            "install",
            "-q",
            &format!("websockets=={WEBSOCKETS_VERSION}"),
            &format!("h2=={H2_VERSION}"),
            &format!("aioquic=={AIOQUIC_VERSION}"),
        ]),
        Duration::from_secs(600),
    ) {
        let _ = std::fs::remove_dir_all(&venv);
        return Err(err.context("pip install websockets h2 aioquic failed"));
    }
    proc::run(Command::new(&ctx.py).args(["-c", "import websockets.asyncio.client, h2.connection, aioquic"]))
        .context("websockets, h2 or aioquic does not import")
}

/// The version of an installed npm package, if any.
pub(crate) fn node_package_version(package_json: &Path) -> Option<String> {
    let text = std::fs::read_to_string(package_json).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("version")?.as_str().map(String::from)
}

fn setup_node(helpers: &Path) -> Result<()> {
    if !Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        bail!("node is not installed (Node.js >= 20 is needed for ws)");
    }
    if node_package_version(&helpers.join("node_modules/ws/package.json")).as_deref() == Some(WS_VERSION) {
        return Ok(());
    }
    log(format!(
        "installing ws {WS_VERSION} into scripts/interop/node_modules"
    ));
    proc::run_timeout(
        Command::new("npm")
            .current_dir(helpers)
            .args(["ci", "--no-audit", "--no-fund", "--silent"]),
        Duration::from_secs(600),
    )
    .context("npm ci failed")
}

/// Runs a helper client, keeping its RESULT lines; a run that crashes or times out leaves its
/// missing rows as failures.
fn run_client(ctx: &mut Ctx, peer: &str, cmd: &mut Command) -> Result<()> {
    let sizes = ctx.sizes.clone();
    run_client_sizes(ctx, peer, cmd, &sizes)
}

/// [`run_client`] for a client told to send only `sizes`.
fn run_client_sizes(ctx: &mut Ctx, peer: &str, cmd: &mut Command, sizes: &[u64]) -> Result<()> {
    log(format!("running {peer}"));
    let out_path = ctx.work.join(format!("{peer}.out"));
    let err_path = ctx.work.join(format!("{peer}.err"));
    cmd.stdin(Stdio::null())
        .stdout(File::create(&out_path)?)
        .stderr(File::create(&err_path)?);
    let mut child = proc::spawn_stdio(cmd)?;
    let rc = match proc::wait_timeout(&mut child, ctx.run_timeout)? {
        Some(s) => s.code().map_or_else(|| s.to_string(), |c| c.to_string()),
        None => "124".into(),
    };
    let out = std::fs::read_to_string(&out_path).unwrap_or_default();
    let got: Vec<Row> = out.lines().filter_map(Row::parse).collect();
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    for kind in ["text", "binary"] {
        for &size in sizes {
            if !got
                .iter()
                .any(|r| r.peer == peer && r.kind == kind && r.size == size)
            {
                let detail = format!("no result (exit {rc}): {}", flat_tail(&err, 300));
                ctx.rows.push(Row::new(peer, kind, size, "FAIL", "?", 0, detail));
            }
        }
    }
    ctx.rows.extend(got);
    Ok(())
}

/// Runs a peer program that checks a whole exchange itself (exit status 0 when everything
/// matched) and records it as one row of `kind` and `size`.
fn run_check(ctx: &mut Ctx, peer: &str, kind: &str, size: u64, cmd: &mut Command) -> Result<()> {
    log(format!("running {peer}"));
    let out_path = ctx.work.join(format!("{peer}.out"));
    cmd.stdin(Stdio::null())
        .stdout(File::create(&out_path)?)
        .stderr(Stdio::from(File::create(&out_path)?.try_clone()?));
    let t0 = Instant::now();
    let mut child = proc::spawn_stdio(cmd)?;
    let status = proc::wait_timeout(&mut child, ctx.run_timeout)?;
    let ms = t0.elapsed().as_millis();
    let out = std::fs::read_to_string(&out_path).unwrap_or_default();
    let (status, detail) = match status {
        Some(s) if s.success() => ("ok", String::new()),
        Some(s) => ("FAIL", format!("exit {s}: {}", flat_tail(&out, 300))),
        None => ("FAIL", "timed out".to_owned()),
    };
    ctx.rows
        .push(Row::new(peer, kind, size, status, "none", ms, detail));
    Ok(())
}

/// The port a helper server reports (`LISTENING <port>`) within 30 s.
fn wait_listening(child: &mut proc::Child, name: &str) -> Result<u16> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(child.log()).unwrap_or_default();
        let port = text.lines().find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some("LISTENING"))
                .then(|| f.next().and_then(|p| p.parse().ok()))
                .flatten()
        });
        if let Some(port) = port {
            return Ok(port);
        }
        if !child.is_running() {
            eprintln!("{text}");
            bail!("{name} exited before listening");
        }
        if Instant::now() >= deadline {
            eprintln!("{text}");
            bail!("{name} did not report its port within 30 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `ferrosocket client --once` against a helper server whose log reports "EXT ..." per
/// connection.
fn run_against_server(ctx: &mut Ctx, peer: &str, cmd: &mut Command, name: &str, logname: &str) -> Result<()> {
    let mut server = proc::spawn(cmd, &ctx.work.join(logname))?;
    let port = wait_listening(&mut server, name)?;
    let url = format!("ws://127.0.0.1:{port}/");
    log(format!("running {peer}"));
    let exts = |log: &Path| -> Vec<String> {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                l.strip_prefix("EXT")
                    .filter(|r| r.is_empty() || r.starts_with(' '))
            })
            .map(|r| r.trim_start().to_string())
            .collect()
    };
    for kind in ["text", "binary"] {
        for size in ctx.sizes.clone() {
            let input = ctx.work.join("in.bin");
            let out_path = ctx.work.join("out.txt");
            let err_path = ctx.work.join("err.txt");
            let payload = Command::new(&ctx.py)
                .arg(ctx.helpers.join("payload.py"))
                .args([kind, &size.to_string()])
                .stdin(Stdio::null())
                .output()?;
            if !payload.status.success() {
                bail!("payload.py {kind} {size} failed");
            }
            std::fs::write(&input, &payload.stdout)?;
            let mut args = vec!["client", &url, "--once", "--timeout", "10"];
            if kind == "binary" {
                args.extend(["--binary", "--binary-hex"]);
            }
            let before = exts(server.log()).len();
            let t0 = Instant::now();
            let mut client = proc::spawn_stdio(
                Command::new(&ctx.bin)
                    .args(&args)
                    .stdin(File::open(&input)?)
                    .stdout(File::create(&out_path)?)
                    .stderr(File::create(&err_path)?),
            )?;
            let status = proc::wait_timeout(&mut client, ctx.msg_timeout)?;
            let ms = t0.elapsed().as_millis();
            // The reply is printed with a newline; binary as hex.
            let mut expected = if kind == "binary" {
                payload
                    .stdout
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
                    .into_bytes()
            } else {
                payload.stdout.clone()
            };
            expected.push(b'\n');
            let out = std::fs::read(&out_path).unwrap_or_default();
            let ext = exts(server.log()).get(before).cloned().unwrap_or_default();
            let (mut status_text, mut detail) = ("ok", String::new());
            match status {
                Some(s) if s.success() => {
                    if out != expected {
                        status_text = "FAIL";
                        detail = format!("reply differs ({} bytes printed)", out.len());
                    }
                }
                other => {
                    let rc = other
                        .and_then(|s| s.code())
                        .map_or_else(|| "124".to_string(), |c| c.to_string());
                    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
                    status_text = "FAIL";
                    detail = format!("exit {rc}: {}", flat_tail(&err, 300));
                }
            }
            if !ext.starts_with("permessage-deflate") {
                status_text = "FAIL";
                detail = if detail.is_empty() {
                    "compression not negotiated".into()
                } else {
                    format!("{detail}; compression not negotiated")
                };
            }
            let ext = if ext.is_empty() { "none".to_string() } else { ext };
            ctx.rows
                .push(Row::new(peer, kind, size, status_text, &ext, ms, detail));
        }
    }
    server.stop()
}

fn human(n: u64) -> String {
    for (unit, k) in [("MiB", 1u64 << 20), ("KiB", 1 << 10)] {
        if n >= k && n.is_multiple_of(k) {
            return format!("{} {unit}", n / k);
        }
    }
    format!("{n} B")
}

fn print_table(rows: &[Row]) -> Result<()> {
    let mut peers: Vec<&str> = Vec::new();
    let mut details = Vec::new();
    let mut negotiated: Vec<(&str, std::collections::BTreeSet<&str>)> = Vec::new();
    for r in rows {
        if !peers.contains(&r.peer.as_str()) {
            peers.push(&r.peer);
            negotiated.push((&r.peer, Default::default()));
        }
        if r.ext != "?"
            && r.ext != "-"
            && let Some((_, set)) = negotiated.iter_mut().find(|(p, _)| *p == r.peer)
        {
            set.insert(&r.ext);
        }
        if r.status == "FAIL" {
            details.push(format!("  {} {} {}: {}", r.peer, r.kind, human(r.size), r.detail));
        }
    }
    let cell = |peer: &str, size: u64, kind: &str| -> String {
        rows.iter()
            .rfind(|r| r.peer == peer && r.size == size && r.kind == kind)
            .map_or_else(
                || "-".into(),
                |r| {
                    if r.status == "ok" {
                        format!("ok {} ms", r.ms)
                    } else {
                        r.status.clone()
                    }
                },
            )
    };
    let mut sizes: Vec<u64> = rows.iter().map(|r| r.size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let w = peers.iter().map(|p| p.chars().count()).max().unwrap_or(0).max(4);
    // Pad by characters (the arrows are one character, three bytes).
    let pad = |s: &str, w: usize| format!("{s}{}", " ".repeat(w.saturating_sub(s.chars().count())));
    println!(
        "\n{}  {:>7}  {:<12}  {:<12}",
        pad("peer", w),
        "size",
        "text",
        "binary"
    );
    for p in &peers {
        for &s in &sizes {
            println!(
                "{}  {:>7}  {:<12}  {:<12}",
                pad(p, w),
                human(s),
                cell(p, s, "text"),
                cell(p, s, "binary")
            );
        }
    }
    println!("\nnegotiated (Sec-WebSocket-Extensions):");
    for (p, set) in &negotiated {
        let list = if set.is_empty() {
            "-".to_string()
        } else {
            set.iter().copied().collect::<Vec<_>>().join(" | ")
        };
        println!("  {p}: {list}");
    }
    if !details.is_empty() {
        println!("\nfailures:");
        println!("{}", details.join("\n"));
    }
    let n = |s: &str| rows.iter().filter(|r| r.status == s).count();
    let (ok, fail, skip) = (n("ok"), n("FAIL"), n("skip"));
    println!("\ninterop: {ok} passed, {fail} failed, {skip} skipped");
    if fail > 0 || ok == 0 {
        bail!("interop: {fail} failed, {ok} passed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_result_lines_and_sizes() {
        let r = Row::parse("RESULT\tws→echo\ttext\t125\tok\tpermessage-deflate\t3\t").expect("row");
        assert_eq!(
            (r.peer.as_str(), r.size, r.status.as_str()),
            ("ws→echo", 125, "ok")
        );
        assert!(Row::parse("EXT none").is_none());
        assert_eq!(human(16 << 20), "16 MiB");
        assert_eq!(human(65536), "64 KiB");
        assert_eq!(human(125), "125 B");
        assert_eq!(flat_tail("a\tb\nc", 3), "b c");
    }
}
