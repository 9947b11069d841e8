//! `cargo xtask ci`: every CI stage in order, each stage's name and duration printed and a
//! summary table at the end (what `.ci/run` runs once it has installed the tools). Stages that
//! are xtask subcommands run as child processes of this one, so each is as it is run by hand.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::proc;

/// The test command; it must match README.md's second command.
const TEST_CMD: &str = "cargo test --workspace";
/// Seconds allowed for each full Autobahn run in CI.
const AUTOBAHN_TIMEOUT: &str = "2400";

/// Arguments of `cargo xtask ci`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Run only this stage (repeatable), e.g. `--only doc --only package`; default: all.
    #[arg(long, value_name = "STAGE")]
    only: Vec<String>,
}

struct Stages {
    t0: Instant,
    done: Vec<(String, &'static str, u64)>,
    /// The stages to run; empty: all.
    only: Vec<String>,
}

impl Stages {
    fn stage(&mut self, name: &str, body: impl FnOnce() -> Result<()>) -> Result<()> {
        if !self.only.is_empty() && !self.only.iter().any(|o| o == name) {
            return Ok(());
        }
        println!();
        println!("== stage {name}");
        let t0 = Instant::now();
        let result = body();
        let secs = t0.elapsed().as_secs();
        match &result {
            Ok(()) => {
                println!("== stage {name} done in {secs}s");
                self.done.push((name.into(), "ok", secs));
            }
            Err(err) => {
                eprintln!("xtask: ERROR: {err:#}");
                println!("== stage {name} FAILED after {secs}s (exit 1)");
                self.done.push((name.into(), "FAILED", secs));
            }
        }
        result
    }

    fn summary(&self, ok: bool) {
        println!();
        println!("== summary");
        println!("{:<18} {:<10} {:>8}", "stage", "result", "seconds");
        for (name, result, secs) in &self.done {
            println!("{name:<18} {result:<10} {secs:>8}");
        }
        println!(
            "{:<18} {:<10} {:>8}",
            "total",
            if ok { "ok" } else { "FAILED" },
            self.t0.elapsed().as_secs()
        );
    }
}

fn cargo() -> Command {
    let mut cmd = Command::new(proc::cargo());
    cmd.current_dir(proc::root());
    cmd
}

/// This program, to run a subcommand as a child.
fn xtask() -> Result<Command> {
    let mut cmd = Command::new(std::env::current_exe().context("locating the xtask binary")?);
    cmd.current_dir(proc::root());
    Ok(cmd)
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", proc::describe(cmd)))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `cargo xtask ci`.
pub(crate) fn run(args: Args) -> Result<()> {
    let mut s = Stages {
        t0: Instant::now(),
        done: Vec::new(),
        only: args.only,
    };
    let result = stages(&mut s).and_then(|()| {
        // Every stage was reached: a name in --only that ran nothing is a typo.
        match s
            .only
            .iter()
            .find(|o| !s.done.iter().any(|(name, ..)| name == *o))
        {
            Some(unknown) => bail!("--only {unknown}: no such stage (see xtask/src/ci.rs)"),
            None => Ok(()),
        }
    });
    s.summary(result.is_ok());
    result
}

fn stages(s: &mut Stages) -> Result<()> {
    let root = proc::root();
    s.stage("toolchain", toolchain)?;
    s.stage("fmt+clippy", || {
        proc::run(cargo().args(["fmt", "--all", "--", "--check"]))?;
        proc::run(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))
    })?;
    s.stage("deps-rule", deps_rule)?;
    // Every public item documented, every intra-doc link resolving.
    s.stage("doc", || {
        proc::run(
            cargo()
                .args(["doc", "--workspace", "--no-deps"])
                .env("RUSTDOCFLAGS", "-D warnings"),
        )
    })?;
    s.stage("test", || {
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap_or_default();
        if !readme.contains(TEST_CMD) {
            println!("warning: README.md does not contain '{TEST_CMD}'; keep TEST_CMD in xtask/src/ci.rs in sync with it");
        }
        proc::run(cargo().args(["test", "--workspace"]))
    })?;
    // Instruction counts per echoed message (callgrind: the same figure on a busy machine),
    // each scenario against bench/icount-baseline.json; more than 5 % above fails.
    s.stage("icount", || proc::run(xtask()?.arg("icount")))?;
    // The publishable crates as crates.io would receive them: each packaged and built from its
    // own tarball (workspace path dependencies resolved to the packages made in the same run).
    // Every member but xtask and the icount driver (`publish = false`, which `cargo package`
    // would still pack), so a new crate is included without touching this list. `--allow-dirty` because the stage
    // checks what goes into the packages, not whether the checkout has uncommitted changes.
    s.stage("package", || {
        forget_packaged_workspace_crates()?;
        proc::run(cargo().args([
            "package",
            "--workspace",
            "--exclude",
            "xtask",
            "--exclude",
            "ferrosocket-icount",
            "--allow-dirty",
        ]))
    })?;
    s.stage("build-release", || {
        proc::ferrosocket_release()?;
        proc::run(
            Command::new("ls")
                .arg("-l")
                .arg(root.join("target/release/ferrosocket")),
        )
    })?;
    // Every case, compression (12.x, 13.x) included, both roles. wstest is single-threaded
    // Python and these are the longest stages, so the server and client suites run side by side
    // on the two cores (ports 9001 and 9002); each writes its own log, printed below.
    s.stage("autobahn", || {
        proc::run(xtask()?.args(["autobahn", "setup"]))?;
        autobahn_pair(false)
    })?;
    // The same 517 cases in both roles through the streamed-message API (`echo --stream`,
    // `autobahn-client --stream`: messages echoed piece by piece as they arrive), ports 9003/9004.
    s.stage("autobahn-stream", || autobahn_pair(true))?;
    // One 1 GiB message streamed through `ferrosocket echo --stream` (a separate process) in
    // both directions at once, byte for byte; fails if the server's peak RSS reaches 32 MiB.
    s.stage("stream-1gib", || {
        proc::run(cargo().args([
            "test",
            "--release",
            "-p",
            "ferrosocket-cli",
            "--test",
            "stream_echo",
            "--",
            "--nocapture",
        ]))
    })?;
    s.stage("browser", || proc::run(xtask()?.arg("browser")))?;
    // Issue 11 end to end: two chat nodes per broker (Redis, NATS) in headless Chromium, lines
    // crossing both ways, history, and a broker restart.
    s.stage("chat-browser", || proc::run(xtask()?.arg("chat-browser")))?;
    // The fan-out benchmark at CI size (1,000 subscribers over two nodes; naive, hub, Redis,
    // NATS): every row runs and no delivery is missing or doubled. Its figures go to target/.
    s.stage("fanout", || {
        proc::run(xtask()?.args(["bench-fanout", "--smoke", "--out", "target/ci-fanout.jsonl"]))
    })?;
    // 20,000 idle connections to one `ferrosocket echo` (the million-connection run, at the
    // size a CI machine's descriptor limit allows), every echo of a sample checked.
    s.stage("connections", || {
        proc::run(xtask()?.args(["million", "--count", "20000", "--deadline", "120"]))
    })?;
    // Python websockets and Node ws, compression on, as clients of our server and servers of
    // our client.
    s.stage("interop", || proc::run(xtask()?.arg("interop")))?;
    // Correctness under load (every echo byte for byte), not speed.
    s.stage("bench-smoke", || {
        proc::run(xtask()?.args(["bench-smoke", "--no-build"]))
    })?;
    // Every cargo-fuzz target (libFuzzer + ASan on stable via RUSTC_BOOTSTRAP=1) for 10 s each, two at a time
    // (a smoke run that keeps the whole CI under an hour; longer runs: `cargo xtask fuzz SECS`),
    // after replaying the committed regressions.
    s.stage("fuzz", || proc::run(xtask()?.args(["fuzz", "10"])))?;
    // 60 s of verified load with faults mixed in (RST, half-open, mid-frame close, invalid
    // frames, slow readers, garbage, oversized heads, slowloris); checks RSS and fds come back.
    s.stage("soak", || proc::run(xtask()?.args(["soak", "--quick"])))?;
    Ok(())
}

/// Removes the unpacked copies of this workspace's crates that an earlier `cargo package
/// --workspace` left in `$CARGO_HOME/registry/src/-<hash>/` (the local overlay registry, whose
/// directory names start with `-`). Cargo reuses such a directory when it holds the same name and
/// version, so on a machine that packaged an older commit the verify build compiled that old
/// `ferrosocket-proto 0.1.0` against the new `ferrosocket` and failed (stop 17's CI).
fn forget_packaged_workspace_crates() -> Result<()> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    for kind in ["src", "cache"] {
        let Ok(registries) = std::fs::read_dir(home.join("registry").join(kind)) else {
            continue;
        };
        for registry in registries.flatten() {
            if !registry.file_name().to_string_lossy().starts_with('-') {
                continue;
            }
            for entry in std::fs::read_dir(registry.path())?.flatten() {
                if entry.file_name().to_string_lossy().starts_with("ferrosocket") {
                    let path = entry.path();
                    let removed = if path.is_dir() {
                        std::fs::remove_dir_all(&path)
                    } else {
                        std::fs::remove_file(&path)
                    };
                    removed.with_context(|| format!("removing {}", path.display()))?;
                    println!("removed the stale overlay copy {}", path.display());
                }
            }
        }
    }
    Ok(())
}

fn toolchain() -> Result<()> {
    let _ = Command::new("rustup")
        .args(["show", "active-toolchain"])
        .stdin(Stdio::null())
        .status();
    proc::run(Command::new("rustc").arg("--version"))?;
    proc::run(cargo().arg("--version"))?;
    let installed = output(Command::new("rustup").args(["component", "list", "--installed"]))?;
    let missing: Vec<&str> = ["clippy", "rustfmt"]
        .into_iter()
        .filter(|c| !installed.lines().any(|l| l.starts_with(c)))
        .collect();
    if !missing.is_empty() {
        println!("installing rustup components: {}", missing.join(" "));
        proc::run(Command::new("rustup").args(["component", "add"]).args(&missing))?;
    }
    proc::run(cargo().args(["clippy", "--version"]))?;
    proc::run(cargo().args(["fmt", "--version"]))?;
    let v = |prog: &str, arg: &str| output(Command::new(prog).arg(arg)).map(|s| s.trim().to_string());
    println!(
        "node {}, npm {}, {}",
        v("node", "--version")?,
        v("npm", "--version")?,
        v("python3", "--version")?
    );
    Ok(())
}

/// Crates the sans-I/O core must not depend on, even transitively.
const FORBIDDEN: [&str; 5] = ["tokio", "futures", "hyper", "mio", "axum"];

/// The lines of `cargo tree` output naming a forbidden crate (a name token followed by " vX",
/// not a path).
fn forbidden_lines(tree: &str) -> Vec<&str> {
    lines_naming(tree, &FORBIDDEN)
}

/// The lines of a `cargo tree` output naming a crate whose name contains one of `names`.
fn lines_naming<'a>(tree: &'a str, names: &[&str]) -> Vec<&'a str> {
    tree.lines()
        .filter(|line| {
            let words: Vec<&str> = line
                .split(|c: char| c.is_whitespace() || "─│├└".contains(c))
                .collect();
            words.windows(2).any(|w| {
                let name_ok = w[0]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                let version = w[1]
                    .strip_prefix('v')
                    .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()));
                name_ok && version && names.iter().any(|f| w[0].contains(f))
            })
        })
        .collect()
}

fn deps_rule() -> Result<()> {
    // ferrosocket-proto is the sans-IO core: no async runtime or HTTP stack may reach it.
    let out = cargo()
        .args(["tree", "-p", "ferrosocket-proto", "-e", "normal"])
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        bail!("cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let tree = String::from_utf8_lossy(&out.stdout);
    println!("{}", tree.trim_end());
    let bad = forbidden_lines(&tree);
    if !bad.is_empty() {
        eprintln!(
            "deps-rule: FAIL: ferrosocket-proto must not depend (even transitively) on tokio, futures, hyper, mio or axum; found:"
        );
        eprintln!("{}", bad.join("\n"));
        bail!("deps-rule failed");
    }
    println!("deps-rule: ok (no tokio|futures|hyper|mio|axum under ferrosocket-proto)");
    // ferrosocket itself never depends on axum, with any feature: axum's major versions are
    // ferrosocket-axum's business (hyper is fine, behind the `hyper` feature).
    let out = cargo()
        .args(["tree", "-p", "ferrosocket", "-e", "normal", "--all-features"])
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        bail!("cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let tree = String::from_utf8_lossy(&out.stdout);
    let bad = lines_naming(&tree, &["axum", "redis", "async-nats"]);
    if !bad.is_empty() {
        eprintln!(
            "deps-rule: FAIL: ferrosocket must not depend (even transitively) on axum or a broker client; found:"
        );
        eprintln!("{}", bad.join("\n"));
        bail!("deps-rule failed");
    }
    println!("deps-rule: ok (no axum, redis or async-nats under ferrosocket, all features)");
    // ferrosocket-hub's broker clients come only with the feature that names them, so a hub
    // user who needs no broker builds none.
    let out = cargo()
        .args([
            "tree",
            "-p",
            "ferrosocket-hub",
            "-e",
            "normal",
            "--no-default-features",
        ])
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        bail!("cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let tree = String::from_utf8_lossy(&out.stdout);
    let bad = lines_naming(&tree, &["redis", "async-nats"]);
    if !bad.is_empty() {
        eprintln!(
            "deps-rule: FAIL: ferrosocket-hub without features must not depend on a broker client; found:"
        );
        eprintln!("{}", bad.join("\n"));
        bail!("deps-rule failed");
    }
    println!("deps-rule: ok (no broker client under ferrosocket-hub without its features)");
    Ok(())
}

/// Both Autobahn roles side by side, each with its log in `autobahn/reports/ci-*.log`; the last
/// 25 lines of each printed after both finish.
fn autobahn_pair(stream: bool) -> Result<()> {
    let reports = proc::root().join("autobahn/reports");
    let suffix = if stream { "-stream" } else { "" };
    let mut runs = Vec::new();
    // The plain pair also runs the server suite against the axum example app (a third wstest,
    // port 9005): wstest is single-threaded and mostly waits, so three share the two cores.
    let modes: &[&str] = if stream {
        &["server", "client"]
    } else {
        &["server", "client", "server-axum"]
    };
    for &mode in modes {
        let mut cmd = xtask()?;
        let (mode_arg, axum) = match mode {
            "server-axum" => ("server", true),
            other => (other, false),
        };
        cmd.args([
            "autobahn",
            mode_arg,
            "--exclude",
            "none",
            "--timeout",
            AUTOBAHN_TIMEOUT,
        ]);
        if stream {
            cmd.arg("--stream");
        }
        if axum {
            cmd.arg("--axum");
        }
        let log: PathBuf = reports.join(format!("ci-{mode}{suffix}.log"));
        runs.push((mode, proc::spawn(&mut cmd, &log)?));
    }
    let mut codes = Vec::new();
    for (mode, child) in &mut runs {
        // Each run bounds itself by --timeout; this is a backstop.
        let status = proc::wait_timeout(child, Duration::from_secs(3 * 3600))?;
        codes.push((*mode, status.and_then(|s| s.code()).unwrap_or(-1)));
    }
    let (kind, streamed) = if stream {
        (", streamed", " --stream")
    } else {
        ("", "")
    };
    for (mode, child) in &runs {
        if *mode == "server-axum" {
            println!("---- autobahn server suite (the axum example app under wstest's fuzzingclient)");
        } else if *mode == "server" {
            println!(
                "---- autobahn server suite{kind} (ferrosocket echo{streamed} under wstest's fuzzingclient)"
            );
        } else {
            println!(
                "---- autobahn client suite{kind} (ferrosocket autobahn-client{streamed} against wstest's fuzzingserver)"
            );
        }
        println!("{}", proc::log_tail(child.log(), 25));
    }
    if codes.iter().any(|(_, c)| *c != 0) {
        let name = if stream { "autobahn-stream" } else { "autobahn" };
        let exits: Vec<String> = codes.iter().map(|(m, c)| format!("{m} exit {c}")).collect();
        bail!("{name}: FAIL ({})", exits.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deps_rule_matches_crate_names_not_paths() {
        let tree = "ferrosocket-proto v0.1.0 (/work/tokio-fork/crates/ferrosocket-proto)\n\
                    ├── bytes v1.8.0\n\
                    │   └── tokio-util v0.7.1\n\
                    └── futures-core v0.3.31\n";
        assert_eq!(
            forbidden_lines(tree),
            ["│   └── tokio-util v0.7.1", "└── futures-core v0.3.31"]
        );
        assert!(forbidden_lines("ferrosocket-proto v0.1.0 (/x/mio/y)\n└── bytes v1.8.0\n").is_empty());
    }

    #[test]
    fn axum_under_ferrosocket_is_found() {
        let tree = "ferrosocket v0.1.0 (/work/axum-checkout/crates/ferrosocket)\n\
                    ├── hyper v1.12.0\n\
                    └── axum-core v0.5.5\n";
        assert_eq!(lines_naming(tree, &["axum"]), ["└── axum-core v0.5.5"]);
    }
}
