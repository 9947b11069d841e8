//! What the benchmark tasks share: running `ferrosocket bench` and reading its JSON report,
//! building the peer servers of `bench/peers` (the Rust ones with cargo, the gorilla/websocket
//! one with `go` when it is installed), raising the descriptor limit, and today's date.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Result;
use serde_json::Value;

use crate::proc;

/// One `ferrosocket bench` run.
#[derive(Debug)]
pub struct BenchOutput {
    /// Exit code; `None` if it timed out (its process group was killed) or could not start.
    pub exit: Option<i32>,
    /// The JSON report line as printed (empty if there was none).
    pub json_line: String,
    /// The report parsed (an empty object if there was none).
    pub report: Value,
    /// Every other line of its output.
    pub other: String,
}

/// Runs `cmd` (a `ferrosocket bench ... --json`, possibly behind `taskset`) with its output in
/// `log`, killed after `timeout`, and picks out its JSON report.
pub fn run_bench(cmd: &mut Command, log: &Path, timeout: Duration) -> BenchOutput {
    let exit = proc::spawn(cmd, log)
        .and_then(|mut child| proc::wait_timeout(&mut child, timeout))
        .ok()
        .flatten()
        .map(|status| status.code().unwrap_or(-1));
    let out = fs::read(log)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let mut json_line = String::new();
    let mut report = Value::Object(serde_json::Map::new());
    let mut other = String::new();
    for line in out.lines() {
        match serde_json::from_str::<Value>(line) {
            Ok(v @ Value::Object(_)) => {
                json_line = line.to_owned();
                report = v;
            }
            _ => {
                other.push_str(line);
                other.push('\n');
            }
        }
    }
    BenchOutput {
        exit,
        json_line,
        report,
        other,
    }
}

/// Builds `bench/peers` (its own workspace) in release and returns its binaries' directory.
pub fn build_peers() -> Result<PathBuf> {
    let root = proc::root();
    let manifest = root.join("bench/peers/Cargo.toml");
    proc::run(
        Command::new(proc::cargo())
            .current_dir(&root)
            .args(["build", "--release", "-q", "--manifest-path"])
            .arg(&manifest),
    )?;
    Ok(root.join("bench/peers/target/release"))
}

/// How to get what [`build_gorilla`] needs, on Debian or Ubuntu.
pub const GORILLA_INSTALL: &str = "apt-get install -y golang-go golang-github-gorilla-websocket-dev";

/// Builds `bench/peers/go/gorilla-echo` into `bench/peers/target/go/gorilla-echo` and returns
/// its path, or `None` (having said why and how to install what is missing) when `go` or the
/// gorilla/websocket package is not there, so that a grid can go on without it.
///
/// No Go module proxy is used: the build runs in GOPATH mode (`GO111MODULE=off`) against
/// Debian's packaged sources in `/usr/share/gocode`, after any `$GOPATH` of the caller's.
pub fn build_gorilla() -> Option<PathBuf> {
    let go_version = Command::new("go")
        .arg("version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !go_version.is_ok_and(|s| s.success()) {
        eprintln!("gorilla: skipped: `go` is not installed (to include it: {GORILLA_INSTALL})");
        return None;
    }
    let root = proc::root();
    let out = root.join("bench/peers/target/go/gorilla-echo");
    let gopath = match std::env::var("GOPATH") {
        Ok(p) if !p.is_empty() => format!("{p}:/usr/share/gocode"),
        _ => "/usr/share/gocode".to_owned(),
    };
    let mut cmd = Command::new("go");
    cmd.current_dir(&root)
        .env("GO111MODULE", "off")
        .env("GOPATH", gopath)
        .args(["build", "-o"])
        .arg(&out)
        .arg("./bench/peers/go/gorilla-echo");
    match proc::run_timeout(&mut cmd, Duration::from_secs(600)) {
        Ok(()) if out.is_file() => Some(out),
        Ok(()) => {
            eprintln!("gorilla: skipped: go build wrote no {}", out.display());
            None
        }
        Err(e) => {
            eprintln!(
                "gorilla: skipped: building bench/peers/go/gorilla-echo failed ({e:#}); \
                 is gorilla/websocket installed? ({GORILLA_INSTALL})"
            );
            None
        }
    }
}

/// Raises this process's soft limit on open descriptors to `want` (or the hard limit, if lower);
/// the servers and clients it starts inherit it.
pub fn raise_nofile(want: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let current = getrlimit(Resource::Nofile);
    let target = current.maximum.map_or(want, |max| want.min(max));
    if current.current.is_some_and(|cur| cur < target) {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(target),
                maximum: current.maximum,
            },
        );
    }
}

/// The median of `values` (the mean of the middle two for an even count); `None` when empty.
pub fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.into_iter().collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// Today's date (UTC) as YYYY-MM-DD.
pub fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The proleptic Gregorian date of `days` since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `path`, relative to the repository root when it is relative (the scripts ran from there).
pub fn at_root(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        proc::root().join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(20_453), (2025, 12, 31));
    }
}
