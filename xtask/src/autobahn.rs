//! `cargo xtask autobahn server|client|setup`: the Autobahn|Testsuite (wstest) against
//! ferrosocket, checked case by case against `autobahn/expected.json`.
//!
//! server: starts `ferrosocket echo` on 127.0.0.1:9001 and runs `wstest -m fuzzingclient` at it.
//! client: starts `wstest -m fuzzingserver` on 127.0.0.1:9002 and runs `ferrosocket
//! autobahn-client`. `--stream` drives the streamed-message API (`echo --stream`,
//! `autobahn-client --stream`) on ports 9003/9004 with its own report files, so all four can run
//! side by side. Then the report (`autobahn/reports/<mode>[-stream]/index.json`) is compared with
//! the expected results of the selected cases, and `autobahn/summary-<mode>[-stream].md` is
//! written. Default selection: "*" minus "12.*,13.*" (301 cases; all = 517).
//!
//! `server --axum` runs the server suite against the axum example app instead
//! (`crates/ferrosocket-axum/examples/axum.rs`, built in release, `--any-origin`, route `/ws`) on
//! port 9005, with its own report (`autobahn/reports/server-axum/`) and summary
//! (`autobahn/summary-server-axum.md`), judged against the same expected server results.
//!
//! Environment overrides (stand-ins for the testee):
//! `FERROSOCKET_ECHO_CMD` (server-mode testee, run by bash; "{addr}" is replaced by the address),
//! `FERROSOCKET_CLIENT_CMD` (client-mode testee), `AUTOBAHN_TIMEOUT` (seconds for the run,
//! default 1200; `--timeout` wins), `AUTOBAHN_AGENT` (agent name in the report, default
//! ferrosocket).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::proc;

/// wstest's version; `wstest -a` must report exactly this.
const WSTEST_VERSION: &str = "25.10.1";
/// The committed expected results: role -> case id -> behavior and behaviorClose.
const EXPECTED_FILE: &str = "autobahn/expected.json";
/// Result names in the order the summaries list them.
const ORDER: [&str; 6] = [
    "OK",
    "NON-STRICT",
    "INFORMATIONAL",
    "UNIMPLEMENTED",
    "WRONG CODE",
    "FAILED",
];

/// Which side ferrosocket plays (or only install wstest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Mode {
    /// `ferrosocket echo` under wstest's fuzzingclient.
    Server,
    /// `ferrosocket autobahn-client` against wstest's fuzzingserver.
    Client,
    /// Only install wstest into `.venv-autobahn`.
    Setup,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Server => "server",
            Mode::Client => "client",
            Mode::Setup => "setup",
        }
    }
}

/// Arguments of `cargo xtask autobahn`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    /// server, client or setup.
    #[arg(value_enum)]
    pub(crate) mode: Mode,
    /// Case patterns, comma-separated (wstest's syntax: `*` wildcards, prefix match).
    #[arg(long, default_value = "*")]
    pub(crate) cases: String,
    /// Case patterns to leave out, comma-separated, or `none`.
    #[arg(long, default_value = "12.*,13.*")]
    pub(crate) exclude: String,
    /// Drive the streamed-message API (ports 9003/9004, reports and summaries suffixed -stream).
    #[arg(long)]
    pub(crate) stream: bool,
    /// Server mode only: test the axum example app (ferrosocket-axum) instead of `ferrosocket
    /// echo` (port 9005, reports and summaries suffixed -axum).
    #[arg(long, conflicts_with = "stream")]
    pub(crate) axum: bool,
    /// Seconds allowed for the wstest run / the client run (default: $AUTOBAHN_TIMEOUT or 1200).
    #[arg(long)]
    pub(crate) timeout: Option<u64>,
}

fn log(msg: impl AsRef<str>) {
    println!("autobahn: {}", msg.as_ref());
}

/// Paths relative to the workspace root, for messages.
fn rel(path: &Path) -> String {
    path.strip_prefix(proc::root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Sets the environment wstest's Python and pip run with.
fn python_env(cmd: &mut Command) -> &mut Command {
    cmd.env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("PYTHONWARNINGS", "ignore")
        .env("PYTHONDONTWRITEBYTECODE", "1")
}

/// Runs `cmd` with its output in `log` and a timeout; on failure prints the log.
fn run_logged(cmd: &mut Command, log: &Path, timeout: Duration) -> Result<()> {
    let name = proc::describe(cmd);
    let mut child = proc::spawn(cmd, log)?;
    let status = proc::wait_timeout(&mut child, timeout)?;
    match status {
        Some(s) if s.success() => Ok(()),
        other => {
            eprintln!("{}", proc::log_tail(log, 60));
            match other {
                Some(s) => bail!("{name} failed ({s})"),
                None => bail!("{name} timed out after {}s", timeout.as_secs()),
            }
        }
    }
}

// ---------------------------------------------------------------- wstest setup

fn venv() -> PathBuf {
    proc::root().join(".venv-autobahn")
}

fn wstest() -> PathBuf {
    venv().join("bin/wstest")
}

fn wstest_ok() -> bool {
    let Ok(out) = python_env(&mut Command::new(wstest())).arg("-a").output() else {
        return false;
    };
    let want = format!("AutobahnTestSuite {WSTEST_VERSION}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim_end() == want)
}

fn python27() -> Result<PathBuf> {
    let pyroot = match Command::new("pyenv").arg("root").output() {
        Ok(out) if out.status.success() => PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()),
        _ => std::env::var_os("PYENV_ROOT").map_or_else(
            || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".pyenv"),
            PathBuf::from,
        ),
    };
    let py = pyroot.join("versions/2.7.18/bin/python");
    if !py.is_file() {
        bail!(
            "Python 2.7.18 not found at {} (needed by autobahntestsuite)",
            py.display()
        );
    }
    Ok(py)
}

/// Installs wstest into `.venv-autobahn` unless the right version is there. Two runs may start
/// side by side (CI runs both roles at once): the install happens under a file lock.
pub(crate) fn setup() -> Result<()> {
    let root = proc::root();
    std::fs::create_dir_all(root.join("autobahn"))?;
    let lock_path = root.join("autobahn/.setup.lock");
    let lock = File::create(&lock_path).with_context(|| format!("creating {}", lock_path.display()))?;
    lock.lock().context("locking autobahn/.setup.lock")?;
    if wstest_ok() {
        log(format!(
            "wstest {WSTEST_VERSION} already installed in .venv-autobahn"
        ));
        return Ok(());
    }
    let py27 = python27()?;
    let logdir = std::env::temp_dir().join(format!("autobahn-setup.{}", std::process::id()));
    log(format!(
        "installing wstest {WSTEST_VERSION} into .venv-autobahn (logs: {})",
        logdir.display()
    ));
    let venv = venv();
    let install = || -> Result<()> {
        let has_virtualenv = python_env(&mut Command::new(&py27))
            .args(["-m", "virtualenv", "--version"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !has_virtualenv {
            run_logged(
                python_env(Command::new(&py27).args(["-m", "pip", "install", "-q", "virtualenv<20.22"])),
                &logdir.join("virtualenv-install.log"),
                Duration::from_secs(600),
            )?;
        }
        if venv.exists() {
            std::fs::remove_dir_all(&venv)?;
        }
        run_logged(
            python_env(Command::new(&py27).args(["-m", "virtualenv", "-q"]).arg(&venv)),
            &logdir.join("virtualenv.log"),
            Duration::from_secs(300),
        )?;
        run_logged(
            python_env(
                Command::new(venv.join("bin/pip"))
                    .args(["install", "-q", "-c"])
                    .arg(root.join("autobahn/wstest-constraints.txt"))
                    .arg(format!("autobahntestsuite=={WSTEST_VERSION}")),
            ),
            &logdir.join("pip-install.log"),
            Duration::from_secs(900),
        )
    };
    if let Err(err) = install() {
        let _ = std::fs::remove_dir_all(&venv);
        return Err(err.context("wstest installation failed"));
    }
    run_logged(
        python_env(Command::new(wstest()).arg("--help")),
        &logdir.join("wstest-help.log"),
        Duration::from_secs(60),
    )
    .context("wstest --help does not work")?;
    if !wstest_ok() {
        bail!("wstest -a does not report AutobahnTestSuite {WSTEST_VERSION}");
    }
    let _ = std::fs::remove_dir_all(&logdir);
    let about = python_env(&mut Command::new(wstest())).arg("-a").output()?;
    log(format!(
        "wstest installed: {}",
        String::from_utf8_lossy(&about.stdout).replace('\n', " ")
    ));
    Ok(())
}

// ---------------------------------------------------------------- case selection

/// A case id's sort key: "7.13.2" -> [7, 13, 2].
fn case_key(id: &str) -> Vec<u64> {
    id.split('.').map(|p| p.parse().unwrap_or(u64::MAX)).collect()
}

fn sort_cases<'a>(ids: impl IntoIterator<Item = &'a String>) -> Vec<&'a String> {
    let mut v: Vec<&String> = ids.into_iter().collect();
    v.sort_by_key(|id| case_key(id));
    v
}

/// wstest's pattern match (`CaseSet.resolveCasePatternList`): a pattern with `*` becomes a regex
/// (`.` literal, `*` any run) matched at the start of the id only, so it is a prefix match.
fn glob_prefix(pattern: &[u8], id: &[u8]) -> bool {
    match pattern.split_first() {
        None => true,
        Some((b'*', rest)) => (0..=id.len()).any(|i| glob_prefix(rest, &id[i..])),
        Some((c, rest)) => id.first() == Some(c) && glob_prefix(rest, &id[1..]),
    }
}

fn split_patterns(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect()
}

/// The ids of `all` that wstest selects for `cases` minus `exclude` (`CaseSet.parseSpecCases`).
/// A pattern without `*` names one case, which must exist.
fn select(all: &BTreeSet<String>, cases: &[String], exclude: &[String]) -> Result<BTreeSet<String>> {
    let resolve = |patterns: &[String]| -> Result<BTreeSet<String>> {
        let mut out = BTreeSet::new();
        for p in patterns {
            if p.contains('*') {
                out.extend(
                    all.iter()
                        .filter(|id| glob_prefix(p.as_bytes(), id.as_bytes()))
                        .cloned(),
                );
            } else if all.contains(p) {
                out.insert(p.clone());
            } else {
                bail!("no Autobahn case {p:?}");
            }
        }
        Ok(out)
    };
    let excluded = resolve(exclude)?;
    Ok(resolve(cases)?.difference(&excluded).cloned().collect())
}

/// Expected (behavior, behaviorClose) per case id, for one role.
type Expected = BTreeMap<String, (String, String)>;

fn load_expected(mode: Mode) -> Result<Expected> {
    let path = proc::root().join(EXPECTED_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    parse_expected(&text, mode.name()).with_context(|| format!("in {EXPECTED_FILE}"))
}

fn parse_expected(text: &str, role: &str) -> Result<Expected> {
    let doc: Value = serde_json::from_str(text)?;
    let cases = doc
        .get(role)
        .and_then(Value::as_object)
        .with_context(|| format!("no object {role:?}"))?;
    let mut out = Expected::new();
    for (id, v) in cases {
        let field = |k: &str| v.get(k).and_then(Value::as_str).map(String::from);
        match (field("behavior"), field("behaviorClose")) {
            (Some(b), Some(bc)) => out.insert(id.clone(), (b, bc)),
            _ => bail!("case {id} lacks behavior or behaviorClose"),
        };
    }
    Ok(out)
}

// ---------------------------------------------------------------- the run

/// Runs `cargo xtask autobahn`.
pub(crate) fn run(args: Args) -> Result<()> {
    setup()?;
    if args.mode == Mode::Setup {
        return Ok(());
    }
    let root = proc::root();
    let mode = args.mode;
    let agent = std::env::var("AUTOBAHN_AGENT").unwrap_or_else(|_| "ferrosocket".into());
    let timeout = Duration::from_secs(match args.timeout {
        Some(t) => t,
        None => match std::env::var("AUTOBAHN_TIMEOUT") {
            Ok(v) => v.parse().with_context(|| format!("AUTOBAHN_TIMEOUT={v:?}"))?,
            Err(_) => 1200,
        },
    });
    if args.axum && mode != Mode::Server {
        bail!("--axum tests the axum example as a server: use `autobahn server --axum`");
    }
    let (suffix, sport, cport, stream_flag) = if args.stream {
        ("-stream", 9003, 9004, " --stream")
    } else if args.axum {
        ("-axum", 9005, 9006, "")
    } else {
        ("", 9001, 9002, "")
    };
    let testee = if args.axum { Testee::Axum } else { Testee::Echo };
    let cases = split_patterns(&args.cases);
    let exclude = if args.exclude == "none" {
        Vec::new()
    } else {
        split_patterns(&args.exclude)
    };
    let exclude_text = if exclude.is_empty() {
        "none".to_string()
    } else {
        args.exclude.clone()
    };

    let expected = load_expected(mode)?;
    let all: BTreeSet<String> = expected.keys().cloned().collect();
    let selected = select(&all, &cases, &exclude)?;
    if selected.is_empty() {
        bail!(
            "case selection '{}' minus '{exclude_text}' selects no case",
            args.cases
        );
    }

    let reports = root.join("autobahn/reports");
    let outdir = reports.join(format!("{}{suffix}", mode.name()));
    std::fs::create_dir_all(&reports)?;
    if outdir.exists() {
        std::fs::remove_dir_all(&outdir)?;
    }
    let spec_file = reports.join(format!(
        "{}{suffix}.json",
        if mode == Mode::Server {
            "fuzzingclient"
        } else {
            "fuzzingserver"
        }
    ));
    let mut spec = json!({
        "options": {"failByDrop": false},
        "outdir": outdir,
        "cases": cases,
        "exclude-cases": exclude,
        "exclude-agent-cases": {},
    });
    if mode == Mode::Server {
        spec["servers"] = json!([{"agent": agent, "url": format!("ws://127.0.0.1:{sport}/ws")}]);
    } else {
        spec["url"] = json!(format!("ws://127.0.0.1:{cport}"));
    }
    std::fs::write(&spec_file, serde_json::to_string_pretty(&spec)? + "\n")?;
    log(format!(
        "mode={} cases={} exclude={exclude_text} -> {} cases (spec: {})",
        mode.name(),
        args.cases,
        selected.len(),
        rel(&spec_file)
    ));
    let t0 = Instant::now();
    if mode == Mode::Server {
        run_server(&reports, &spec_file, suffix, sport, stream_flag, testee, timeout)?;
    } else {
        run_client(&reports, &spec_file, suffix, cport, stream_flag, &agent, timeout)?;
    }
    log(format!("run finished in {}s", t0.elapsed().as_secs()));

    let index = outdir.join("index.json");
    if !index.is_file() {
        bail!("no report: {} is missing", rel(&index));
    }
    let selection = format!("cases: {}; excluded: {exclude_text}", args.cases);
    let markdown = root.join(format!("autobahn/summary-{}{suffix}.md", mode.name()));
    check_report(&index, &agent, mode, &selection, &selected, &expected, &markdown)
}

/// Fails if something listens on `port` already.
fn ensure_free(port: u16) -> Result<SocketAddr> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    if proc::port_open(addr) {
        bail!("{addr} is already in use; stop whatever listens there");
    }
    Ok(addr)
}

/// A testee command from the environment, run by bash as the scripts did.
fn shell(cmdline: &str) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(format!("exec {cmdline}"));
    cmd
}

/// Waits for a foreground step of the run; its log tail and a clear message on failure.
fn finish(mut child: proc::Child, what: &str, timeout: Duration) -> Result<()> {
    let log = child.log().to_path_buf();
    match proc::wait_timeout(&mut child, timeout)? {
        Some(s) if s.success() => Ok(()),
        Some(s) => {
            eprintln!("{}", proc::log_tail(&log, 40));
            bail!("{what} exited with {s} (log: {})", rel(&log))
        }
        None => {
            eprintln!("{}", proc::log_tail(&log, 20));
            bail!("{what} timed out after {}s", timeout.as_secs())
        }
    }
}

fn ensure_alive(child: &mut proc::Child, what: &str) -> Result<()> {
    if !child.is_running() {
        eprintln!("{}", proc::log_tail(child.log(), 40));
        bail!("{what} died during the run (log: {})", rel(child.log()));
    }
    Ok(())
}

/// The server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Testee {
    /// `ferrosocket echo`.
    Echo,
    /// The axum example app of ferrosocket-axum.
    Axum,
}

/// Builds the axum example app in release and returns its path.
fn axum_example_release() -> Result<PathBuf> {
    let root = proc::root();
    proc::run(Command::new(proc::cargo()).current_dir(&root).args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "ferrosocket-axum",
        "--example",
        "axum",
    ]))?;
    let bin = root.join("target/release/examples/axum");
    if !bin.is_file() {
        bail!("{} was not built", bin.display());
    }
    Ok(bin)
}

fn run_server(
    reports: &Path,
    spec: &Path,
    suffix: &str,
    port: u16,
    stream_flag: &str,
    testee: Testee,
    timeout: Duration,
) -> Result<()> {
    let addr = ensure_free(port)?;
    let mut cmd = match std::env::var("FERROSOCKET_ECHO_CMD") {
        Ok(c) if !c.is_empty() => {
            let c = c.replace("{addr}", &addr.to_string());
            log(format!("starting testee: {c}"));
            shell(&c)
        }
        _ if testee == Testee::Axum => {
            log("building the axum example (release)");
            let mut cmd = Command::new(axum_example_release()?);
            // wstest sends no Origin header today; --any-origin keeps the run independent of it.
            cmd.args(["--listen", &addr.to_string(), "--any-origin", "--quiet"]);
            log(format!("starting testee: {}", proc::describe(&cmd)));
            cmd
        }
        _ => {
            log("building ferrosocket (release)");
            let mut cmd = Command::new(proc::ferrosocket_release()?);
            cmd.args(["echo", "--listen", &addr.to_string(), "--quiet"]);
            if !stream_flag.is_empty() {
                cmd.arg("--stream");
            }
            log(format!("starting testee: {}", proc::describe(&cmd)));
            cmd
        }
    };
    let mut testee = proc::spawn(&mut cmd, &reports.join(format!("server-testee{suffix}.log")))?;
    proc::wait_port(addr, &mut testee, Duration::from_secs(60))?;
    log(format!(
        "running wstest -m fuzzingclient (timeout {}s)",
        timeout.as_secs()
    ));
    let wstest = proc::spawn(
        python_env(wstest_run().args(["-m", "fuzzingclient", "-s"]).arg(spec)),
        &reports.join(format!("wstest-server{suffix}.log")),
    )?;
    finish(wstest, "wstest", timeout)?;
    ensure_alive(&mut testee, "the testee server")?;
    testee.stop()
}

/// wstest through `autobahn/wstest_run.py`, which binds the fuzzingserver to 127.0.0.1 and
/// hashes the compression cases' echoes with OpenSSL's SHA-1 (same digests, ~9x faster than
/// the SHA-1 of pyenv's OpenSSL-less Python 2.7; the file says why and how it is checked).
fn wstest_run() -> Command {
    let mut cmd = Command::new(venv().join("bin/python"));
    cmd.arg(proc::root().join("autobahn/wstest_run.py"));
    cmd
}

fn run_client(
    reports: &Path,
    spec: &Path,
    suffix: &str,
    port: u16,
    stream_flag: &str,
    agent: &str,
    timeout: Duration,
) -> Result<()> {
    let addr = ensure_free(port)?;
    let mut client = match std::env::var("FERROSOCKET_CLIENT_CMD") {
        Ok(c) if !c.is_empty() => shell(&c),
        _ => {
            log("building ferrosocket (release)");
            let mut cmd = Command::new(proc::ferrosocket_release()?);
            cmd.args([
                "autobahn-client",
                "--url",
                &format!("ws://{addr}"),
                "--agent",
                agent,
            ]);
            if !stream_flag.is_empty() {
                cmd.arg("--stream");
            }
            cmd
        }
    };
    log(format!("starting wstest -m fuzzingserver on {addr}"));
    let mut server = proc::spawn(
        python_env(
            wstest_run()
                .args(["-m", "fuzzingserver", "-s"])
                .arg(spec)
                // no web server
                .args(["-u", "0"]),
        ),
        &reports.join(format!("wstest-client{suffix}.log")),
    )?;
    proc::wait_port(addr, &mut server, Duration::from_secs(60))?;
    log(format!(
        "running testee client: {} (timeout {}s)",
        proc::describe(&client),
        timeout.as_secs()
    ));
    let testee = proc::spawn(&mut client, &reports.join(format!("client-testee{suffix}.log")))?;
    finish(testee, "testee client", timeout)?;
    ensure_alive(&mut server, "wstest fuzzingserver")?;
    server.stop()
}

// ---------------------------------------------------------------- the report

/// One case of the report that is not OK/OK or not as expected.
struct Problem {
    id: String,
    behavior: String,
    behavior_close: String,
    code: String,
    expected: bool,
    detail: String,
}

fn one_line(text: &str, limit: usize) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() <= limit {
        text
    } else {
        text.chars().take(limit - 1).collect::<String>() + "…"
    }
}

fn order_key(k: &str) -> (usize, String) {
    (ORDER.iter().position(|o| *o == k).unwrap_or(99), k.to_string())
}

/// What a report's case says, as Python's `str()` would print it (None for null).
fn py_str(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "None".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The report compared with the expectations: console lines, markdown, and the failures.
struct Verdict {
    console: String,
    markdown: String,
    failures: Vec<String>,
}

fn check_report(
    index: &Path,
    agent: &str,
    mode: Mode,
    selection: &str,
    selected: &BTreeSet<String>,
    expected: &Expected,
    markdown: &Path,
) -> Result<()> {
    let text = std::fs::read_to_string(index).with_context(|| format!("reading {}", index.display()))?;
    let doc: Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", index.display()))?;
    let report_dir = index.parent().unwrap_or(Path::new("."));
    let detail_of = |reportfile: &str, b_ok: bool, bc_ok: bool| -> String {
        let Ok(t) = std::fs::read_to_string(report_dir.join(reportfile)) else {
            return String::new();
        };
        let Ok(rep) = serde_json::from_str::<Value>(&t) else {
            return String::new();
        };
        let mut parts = Vec::new();
        if !b_ok {
            parts.push(
                rep.get("result")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            );
        }
        if !bc_ok {
            parts.push(
                rep.get("resultClose")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            );
        }
        parts.retain(|p| !p.is_empty());
        one_line(&parts.join(" / "), 160)
    };
    let verdict = judge(&doc, agent, mode, selection, selected, expected, &detail_of)?;
    print!("{}", verdict.console);
    std::fs::write(markdown, &verdict.markdown).with_context(|| format!("writing {}", markdown.display()))?;
    println!("summary written to {}", markdown.display());
    if verdict.failures.is_empty() {
        Ok(())
    } else {
        bail!("{}", verdict.failures.join("; "))
    }
}

fn judge(
    doc: &Value,
    agent: &str,
    mode: Mode,
    selection: &str,
    selected: &BTreeSet<String>,
    expected: &Expected,
    detail_of: &dyn Fn(&str, bool, bool) -> String,
) -> Result<Verdict> {
    let agents: Vec<&String> = doc.as_object().map(|o| o.keys().collect()).unwrap_or_default();
    let Some(cases) = doc.get(agent).and_then(Value::as_object) else {
        bail!("agent {agent:?} not in report (agents: {agents:?})");
    };
    let mut console = String::new();
    let others: Vec<&&String> = agents.iter().filter(|a| a.as_str() != agent).collect();
    if !others.is_empty() {
        writeln!(
            console,
            "autobahn: note: ignoring other agents in the report: {others:?}"
        )?;
    }

    let mut behavior: BTreeMap<String, usize> = BTreeMap::new();
    let mut behavior_close: BTreeMap<String, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut changed = Vec::new();
    let ids: Vec<String> = cases.keys().cloned().collect();
    for id in sort_cases(&ids) {
        let c = &cases[id.as_str()];
        let b = c
            .get("behavior")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let bc = c
            .get("behaviorClose")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        *behavior.entry(b.clone()).or_default() += 1;
        *behavior_close.entry(bc.clone()).or_default() += 1;
        let want = expected.get(id.as_str());
        let as_expected = selected.contains(id.as_str()) && want == Some(&(b.clone(), bc.clone()));
        if !as_expected {
            changed.push(match (selected.contains(id.as_str()), want) {
                (true, Some((wb, wbc))) => {
                    format!("{id}: {b} / {bc} (expected {wb} / {wbc})")
                }
                _ => format!("{id}: {b} / {bc} (not selected)"),
            });
        }
        if b == "OK" && bc == "OK" {
            continue;
        }
        let reportfile = c.get("reportfile").and_then(Value::as_str).unwrap_or("");
        let detail = if reportfile.is_empty() {
            String::new()
        } else {
            detail_of(reportfile, b == "OK", bc == "OK")
        };
        problems.push(Problem {
            id: id.clone(),
            behavior: b,
            behavior_close: bc,
            code: py_str(c.get("remoteCloseCode")),
            expected: as_expected,
            detail,
        });
    }
    let missing: Vec<&String> = sort_cases(selected.iter().filter(|id| !cases.contains_key(id.as_str())));

    let mut failures = Vec::new();
    if cases.len() != selected.len() {
        failures.push(format!(
            "report has {} cases for agent {agent:?}, expected {}",
            cases.len(),
            selected.len()
        ));
    }
    if !missing.is_empty() {
        let names: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
        failures.push(format!(
            "{} selected case(s) missing from the report: {}",
            missing.len(),
            names.join(", ")
        ));
    }
    if !changed.is_empty() {
        failures.push(format!("{} case(s) differ from {EXPECTED_FILE}", changed.len()));
    }

    let title = format!("Autobahn {} results for {agent}", mode.name());
    let mut rows: Vec<&String> = behavior.keys().chain(behavior_close.keys()).collect();
    rows.sort_by_key(|k| order_key(k));
    rows.dedup();
    let count = |m: &BTreeMap<String, usize>, k: &str| m.get(k).copied().unwrap_or(0);

    writeln!(
        console,
        "== {title}: {} cases (expected {})",
        cases.len(),
        selected.len()
    )?;
    writeln!(
        console,
        "  {:<15} {:>9} {:>14}",
        "result", "behavior", "behaviorClose"
    )?;
    for k in &rows {
        writeln!(
            console,
            "  {:<15} {:>9} {:>14}",
            k,
            count(&behavior, k),
            count(&behavior_close, k)
        )?;
    }
    if !problems.is_empty() {
        writeln!(console, "  cases that are not OK:")?;
        for p in &problems {
            writeln!(
                console,
                "    {:<9} {:<13} close={:<13} code={:<5} {}{}",
                p.id,
                p.behavior,
                p.behavior_close,
                p.code,
                if p.expected { "(expected) " } else { "" },
                p.detail
            )?;
        }
    }
    if !changed.is_empty() || !missing.is_empty() {
        writeln!(console, "  differences from {EXPECTED_FILE}:")?;
        for c in &changed {
            writeln!(console, "    {c}")?;
        }
        for m in &missing {
            writeln!(console, "    {m}: missing from the report")?;
        }
    }
    for f in &failures {
        writeln!(console, "FAIL: {f}")?;
    }
    if failures.is_empty() {
        let info: Vec<&String> = sort_cases(selected.iter().filter(|id| {
            expected
                .get(id.as_str())
                .is_some_and(|(b, bc)| b != "OK" || bc != "OK")
        }));
        let info: Vec<&str> = info.iter().map(|s| s.as_str()).collect();
        writeln!(
            console,
            "PASS: all {} cases as in {EXPECTED_FILE} (not OK there: {})",
            cases.len(),
            if info.is_empty() {
                "none".into()
            } else {
                info.join(", ")
            }
        )?;
    }

    let mut md = vec![format!("# {title}"), String::new()];
    if !selection.is_empty() {
        md.extend([format!("Selection: `{selection}`"), String::new()]);
    }
    md.extend([
        format!(
            "Cases: {} (expected {}). Verdict: **{}**",
            cases.len(),
            selected.len(),
            if failures.is_empty() { "PASS" } else { "FAIL" }
        ),
        String::new(),
        "| result | behavior | behaviorClose |".into(),
        "| --- | ---: | ---: |".into(),
    ]);
    for k in &rows {
        md.push(format!(
            "| {k} | {} | {} |",
            count(&behavior, k),
            count(&behavior_close, k)
        ));
    }
    md.push(String::new());
    if !problems.is_empty() {
        md.extend([
            "## Cases that are not OK".into(),
            String::new(),
            "| case | behavior | behaviorClose | close code | allowed | detail |".into(),
            "| --- | --- | --- | --- | --- | --- |".into(),
        ]);
        for p in &problems {
            md.push(format!(
                "| {} | {} | {} | {} | {} | {} |",
                p.id,
                p.behavior,
                p.behavior_close,
                p.code,
                if p.expected { "yes" } else { "**no**" },
                p.detail.replace('|', "\\|")
            ));
        }
        md.push(String::new());
    }
    if !changed.is_empty() || !missing.is_empty() {
        md.extend([format!("## Differences from `{EXPECTED_FILE}`"), String::new()]);
        md.extend(changed.iter().map(|c| format!("- {c}")));
        md.extend(missing.iter().map(|m| format!("- {m}: missing from the report")));
        md.push(String::new());
    }
    for f in &failures {
        md.push(format!("- FAIL: {f}"));
    }
    if !failures.is_empty() {
        md.push(String::new());
    }
    Ok(Verdict {
        console,
        markdown: md.join("\n"),
        failures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected_server() -> Expected {
        let text = std::fs::read_to_string(proc::root().join(EXPECTED_FILE)).expect("expected.json");
        parse_expected(&text, "server").expect("parse")
    }

    fn pats(s: &str) -> Vec<String> {
        split_patterns(s)
    }

    #[test]
    fn selection_matches_wstest_counts() {
        for role in ["server", "client"] {
            let text = std::fs::read_to_string(proc::root().join(EXPECTED_FILE)).expect("expected.json");
            let exp = parse_expected(&text, role).expect("parse");
            let all: BTreeSet<String> = exp.keys().cloned().collect();
            assert_eq!(select(&all, &pats("*"), &[]).expect("all").len(), 517);
            assert_eq!(
                select(&all, &pats("*"), &pats("12.*,13.*"))
                    .expect("default")
                    .len(),
                301
            );
            let not_ok: Vec<&String> = exp
                .iter()
                .filter(|(_, (b, bc))| b != "OK" || bc != "OK")
                .map(|(k, _)| k)
                .collect();
            assert_eq!(not_ok, ["7.1.6", "7.13.1", "7.13.2"]);
        }
        let all: BTreeSet<String> = expected_server().keys().cloned().collect();
        // Prefix semantics: "1.*" is 1.x only, "1*" also takes 10.x.
        let one = select(&all, &pats("1.*"), &[]).expect("1.*");
        assert!(one.iter().all(|id| id.starts_with("1.")));
        assert!(
            select(&all, &pats("1*"), &[])
                .expect("1*")
                .iter()
                .any(|id| id.starts_with("10."))
        );
        assert_eq!(select(&all, &pats("7.1.6"), &[]).expect("one").len(), 1);
        assert!(select(&all, &pats("99.1.1"), &[]).is_err());
    }

    fn report(cases: &[(&str, &str, &str)]) -> Value {
        let mut m = serde_json::Map::new();
        for (id, b, bc) in cases {
            m.insert(
                (*id).into(),
                json!({"behavior": b, "behaviorClose": bc, "remoteCloseCode": 1000}),
            );
        }
        json!({ "ferrosocket": m })
    }

    #[test]
    fn any_change_is_reported_by_name() {
        let exp = expected_server();
        let all: BTreeSet<String> = exp.keys().cloned().collect();
        let selected = select(&all, &pats("7.1.*"), &[]).expect("sel");
        let no_detail = |_: &str, _: bool, _: bool| String::new();
        let mut cases: Vec<(String, &str, &str)> = selected
            .iter()
            .map(|id| {
                if id == "7.1.6" {
                    (id.clone(), "INFORMATIONAL", "INFORMATIONAL")
                } else {
                    (id.clone(), "OK", "OK")
                }
            })
            .collect();
        let as_ref = |v: &[(String, &str, &str)]| -> Value {
            report(&v.iter().map(|(a, b, c)| (a.as_str(), *b, *c)).collect::<Vec<_>>())
        };
        let ok = judge(
            &as_ref(&cases),
            "ferrosocket",
            Mode::Server,
            "",
            &selected,
            &exp,
            &no_detail,
        )
        .expect("judge");
        assert!(ok.failures.is_empty(), "{:?}", ok.failures);
        assert!(ok.markdown.contains("Verdict: **PASS**"));

        // An INFORMATIONAL case that turns OK is a change too, and so is a missing case.
        cases[5] = (cases[5].0.clone(), "OK", "OK");
        let removed = cases.remove(0);
        let v = judge(
            &as_ref(&cases),
            "ferrosocket",
            Mode::Server,
            "",
            &selected,
            &exp,
            &no_detail,
        )
        .expect("judge");
        assert!(
            v.console
                .contains("7.1.6: OK / OK (expected INFORMATIONAL / INFORMATIONAL)"),
            "{}",
            v.console
        );
        assert!(
            v.console
                .contains(&format!("{}: missing from the report", removed.0)),
            "{}",
            v.console
        );
        assert!(v.markdown.contains("Verdict: **FAIL**"));
    }

    #[test]
    fn one_line_collapses_and_cuts() {
        assert_eq!(one_line(" a \n b ", 160), "a b");
        assert_eq!(one_line("abcdef", 4), "abc…");
    }
}
