//! Child processes for the tasks: spawn into their own process group with output to a log, wait
//! for a port, stop by group (SIGTERM, then SIGKILL), and kill on drop so no task leaves a
//! server behind when it fails or is interrupted.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

/// How long [`Child::stop`] waits after SIGTERM before it sends SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Process groups of the children alive now, for the SIGINT/SIGTERM handler: a signal ends this
/// process without running destructors, so the handler kills them.
static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn live() -> std::sync::MutexGuard<'static, Vec<u32>> {
    LIVE.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// On SIGINT or SIGTERM, stops every live child's process group (SIGTERM, up to 2 s, SIGKILL)
/// and exits with 130 (SIGINT) or 143.
pub fn install_signal_handler() -> Result<()> {
    ctrlc::set_handler(|| {
        let groups: Vec<u32> = live().clone();
        for &g in &groups {
            signal_group(g, "TERM");
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline && groups.iter().any(|&g| group_alive(g)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        for &g in &groups {
            signal_group(g, "KILL");
        }
        eprintln!("xtask: interrupted");
        std::process::exit(130);
    })
    .context("installing the SIGINT/SIGTERM handler")
}

/// Whether any process of group `pgid` exists.
fn group_alive(pgid: u32) -> bool {
    Command::new("kill")
        .args(["-0", "--", &format!("-{pgid}")])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Removes the variables `cargo run` set for this program (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`,
/// ...) from a child's environment: build scripts track some of them (ring's does
/// `CARGO_MANIFEST_DIR`), so a `cargo build` started from here would otherwise rebuild what a
/// `cargo build` from the shell built, and the other way round.
fn scrub_cargo_run_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        let set_by_run = k.starts_with("CARGO_PKG_")
            || matches!(
                &*k,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_RUSTC_CURRENT_DIR"
            );
        if set_by_run {
            cmd.env_remove(&key);
        }
    }
}

fn adopt(inner: std::process::Child, name: String, log: PathBuf) -> Child {
    live().push(inner.id());
    Child {
        inner,
        name,
        log,
        status: None,
    }
}

/// A spawned process that leads its own process group; the group is killed when this is dropped.
#[derive(Debug)]
pub struct Child {
    inner: std::process::Child,
    name: String,
    log: PathBuf,
    /// Set once the leader has been reaped (its exit status collected).
    status: Option<ExitStatus>,
}

impl Child {
    /// The process id, which is also the process group id.
    pub fn pid(&self) -> u32 {
        self.inner.id()
    }

    /// Whether the process (the group leader) is still running.
    pub fn is_running(&mut self) -> bool {
        if self.status.is_some() {
            return false;
        }
        match self.inner.try_wait() {
            Ok(Some(status)) => {
                self.status = Some(status);
                false
            }
            Ok(None) => true,
            Err(_) => false,
        }
    }

    /// The exit status, if the process has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.is_running();
        self.status
    }

    /// The pipe to the process's stdin, if it was spawned with one (once).
    pub fn take_stdin(&mut self) -> Option<std::process::ChildStdin> {
        self.inner.stdin.take()
    }

    /// The pipe from the process's stdout, if it was spawned with one (once).
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.inner.stdout.take()
    }

    /// The log file the process writes its stdout and stderr to.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Stops the process group: SIGTERM, wait up to 10 s for the leader, then SIGKILL.
    pub fn stop(mut self) -> Result<()> {
        self.terminate()
    }

    fn terminate(&mut self) -> Result<()> {
        if !self.is_running() {
            // The leader is gone; members of its group may not be.
            signal_group(self.pid(), "KILL");
            return Ok(());
        }
        signal_group(self.pid(), "TERM");
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if !self.is_running() {
                signal_group(self.pid(), "KILL");
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!(
            "xtask: {} (pid {}) ignored SIGTERM, killing",
            self.name,
            self.pid()
        );
        signal_group(self.pid(), "KILL");
        let status = self
            .inner
            .wait()
            .with_context(|| format!("waiting for {}", self.name))?;
        self.status = Some(status);
        Ok(())
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // The leader may be gone while members of its group are not: kill the group anyway.
        signal_group(self.pid(), "KILL");
        if self.status.is_none()
            && let Ok(status) = self.inner.wait()
        {
            self.status = Some(status);
        }
        let pid = self.pid();
        live().retain(|&g| g != pid);
    }
}

/// Sends `SIG` to every process of group `pgid` (errors, e.g. an empty group, are ignored).
fn signal_group(pgid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg("--")
        .arg(format!("-{pgid}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Describes a command for messages: the program and its arguments.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// Spawns `cmd` in its own process group, stdin null, stdout and stderr to `log` (truncated).
pub fn spawn(cmd: &mut Command, log: &Path) -> Result<Child> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let err = out.try_clone()?;
    let name = describe(cmd);
    scrub_cargo_run_env(cmd);
    let inner = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    Ok(adopt(inner, name, log.to_path_buf()))
}

/// Spawns `cmd` in its own process group with the stdin, stdout and stderr the caller set
/// (for commands that read a file or whose stdout and stderr must stay apart).
pub fn spawn_stdio(cmd: &mut Command) -> Result<Child> {
    let name = describe(cmd);
    let inner = cmd
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    Ok(adopt(inner, name, PathBuf::new()))
}

/// The last `lines` lines of a log file (empty if it cannot be read).
pub fn log_tail(log: &Path, lines: usize) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(log) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        // The tail of a long log is enough; do not read gigabytes.
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(256 * 1024)));
        let mut bytes = Vec::new();
        let _ = f.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Whether something accepts TCP connections on `addr`.
pub fn port_open(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// Waits until `addr` accepts connections; fails early (with the child's log tail) if the
/// child exits first, and after `timeout`.
pub fn wait_port(addr: SocketAddr, child: &mut Child, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if !child.is_running() {
            eprintln!("---- {} output ({}) ----", child.name, child.log.display());
            eprintln!("{}", log_tail(&child.log, 40));
            bail!(
                "{} exited ({:?}) before listening on {addr}",
                child.name,
                child.status
            );
        }
        if port_open(addr) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            eprintln!("---- {} output ({}) ----", child.name, child.log.display());
            eprintln!("{}", log_tail(&child.log, 40));
            bail!(
                "{} did not listen on {addr} within {}s",
                child.name,
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// The workspace root (the parent of this crate's directory).
pub fn root() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    dir.parent().map_or_else(|| dir.to_path_buf(), Path::to_path_buf)
}

/// Builds the CLI (`cargo build --release -p ferrosocket-cli`) and returns the binary's path.
pub fn ferrosocket_release() -> Result<PathBuf> {
    let root = root();
    run(Command::new(cargo()).current_dir(&root).args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "ferrosocket-cli",
    ]))?;
    let bin = root.join("target/release/ferrosocket");
    if !bin.is_file() {
        bail!("{} was not built", bin.display());
    }
    Ok(bin)
}

/// The cargo that runs this task (`$CARGO`), or `cargo` from PATH.
pub fn cargo() -> PathBuf {
    std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from)
}

/// Runs `cmd` with inherited output (stdin null), in its own process group (stopped with this
/// process on SIGINT/SIGTERM); a non-zero exit is an error naming it.
pub fn run(cmd: &mut Command) -> Result<()> {
    let name = describe(cmd);
    let mut child = spawn_stdio(cmd.stdin(Stdio::null()))?;
    let status = child
        .inner
        .wait()
        .with_context(|| format!("waiting for {name}"))?;
    child.status = Some(status);
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    Ok(())
}

/// Like [`run`], in its own process group, killed (the whole group) after `timeout`.
pub fn run_timeout(cmd: &mut Command, timeout: Duration) -> Result<()> {
    let name = describe(cmd);
    let mut child = spawn_stdio(cmd.stdin(Stdio::null()))?;
    let status = wait_timeout(&mut child, timeout)?
        .ok_or_else(|| anyhow!("{name} timed out after {}s", timeout.as_secs()))?;
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    Ok(())
}

/// Waits up to `timeout` for `child` to exit; on timeout kills its group (SIGTERM, 10 s,
/// SIGKILL) and returns `None`.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.exit_status() {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            child.terminate()?;
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_kills_the_whole_group() {
        let dir = std::env::temp_dir().join(format!("xtask-proc-{}", std::process::id()));
        let log = dir.join("sleep.log");
        // The shell's child `sleep` is in the same group and must die with it.
        let mut child = spawn(
            Command::new("sh").args(["-c", "sleep 30 & echo started; wait"]),
            &log,
        )
        .expect("spawn");
        assert!(child.is_running());
        let pgid = child.pid();
        child.stop().expect("stop");
        // The orphaned `sleep` is reaped by init a moment after it dies; until then it shows.
        let deadline = Instant::now() + Duration::from_secs(5);
        let group_alive = || {
            Command::new("kill")
                .args(["-0", "--", &format!("-{pgid}")])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        while group_alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!group_alive(), "a process of the group survived");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn wait_port_fails_early_when_the_child_exits() {
        let dir = std::env::temp_dir().join(format!("xtask-port-{}", std::process::id()));
        let log = dir.join("false.log");
        let mut child = spawn(Command::new("sh").args(["-c", "echo boom; exit 3"]), &log).expect("spawn");
        let port = free_port().expect("port");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let t0 = Instant::now();
        let err = wait_port(addr, &mut child, Duration::from_secs(30)).expect_err("must fail");
        assert!(t0.elapsed() < Duration::from_secs(10));
        assert!(err.to_string().contains("exited"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn run_timeout_kills_a_hanging_command() {
        let t0 = Instant::now();
        let err =
            run_timeout(Command::new("sleep").arg("30"), Duration::from_millis(300)).expect_err("timeout");
        assert!(err.to_string().contains("timed out"), "{err}");
        assert!(t0.elapsed() < Duration::from_secs(10));
        run_timeout(&mut Command::new("true"), Duration::from_secs(10)).expect("true");
        assert!(run_timeout(&mut Command::new("false"), Duration::from_secs(10)).is_err());
    }
}
