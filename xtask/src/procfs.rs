//! A process's state, resident memory and open descriptors, read from `/proc` (Linux).

use std::path::PathBuf;

fn status(pid: u32) -> Option<String> {
    std::fs::read_to_string(PathBuf::from(format!("/proc/{pid}/status"))).ok()
}

fn field<'a>(status: &'a str, name: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// Whether the process exists and is neither a zombie nor dead (a child that exited stays a
/// zombie until it is waited for).
pub fn alive(pid: u32) -> bool {
    status(pid)
        .as_deref()
        .and_then(|s| field(s, "State"))
        .is_some_and(|state| !state.starts_with('Z') && !state.starts_with('X'))
}

/// `VmRSS` in KiB, if the process exists.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = status(pid)?;
    field(&s, "VmRSS")?.trim_end_matches("kB").trim().parse().ok()
}

/// The number of open file descriptors, if the process exists.
pub fn fd_count(pid: u32) -> Option<u64> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(dir.count() as u64)
}

/// One measurement of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Seconds since the start of the measurement.
    pub t: u64,
    /// `VmRSS` in KiB (0 when dead).
    pub rss_kib: u64,
    /// Open descriptors (0 when dead).
    pub fds: u64,
    /// Whether it was alive (not a zombie).
    pub alive: bool,
}

/// Measures process `pid` at time `t`.
pub fn sample(pid: u32, t: u64) -> Sample {
    if alive(pid) {
        Sample {
            t,
            rss_kib: rss_kib(pid).unwrap_or(0),
            fds: fd_count(pid).unwrap_or(0),
            alive: true,
        }
    } else {
        Sample {
            t,
            rss_kib: 0,
            fds: 0,
            alive: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_measured() {
        let s = sample(std::process::id(), 7);
        assert!(s.alive && s.rss_kib > 0 && s.fds >= 3 && s.t == 7, "{s:?}");
        assert!(!alive(u32::MAX));
    }
}
