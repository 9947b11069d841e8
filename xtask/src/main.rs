//! `cargo xtask SUBCOMMAND`: ferrosocket's CI stages and test drivers (Autobahn, interop with
//! Python and Node peers, the browser, fuzzing, load smoke tests, soak, instruction counts), in Rust instead of
//! bash. Each subcommand lives in its own module with its own `Args`; `proc` holds the process
//! handling they share.

mod autobahn;
mod bench_fanout;
mod bench_memory;
mod bench_peers;
mod bench_smoke;
mod benchkit;
mod brokers;
mod browser;
mod cert;
mod chat_browser;
mod ci;
mod fuzz;
mod icount;
mod interop;
mod million;
mod proc;
mod procfs;
mod soak;

use clap::{Parser, Subcommand};

/// ferrosocket's project tasks.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// The Autobahn|Testsuite (wstest) in either role, or only its installation.
    Autobahn(autobahn::Args),
    /// Python websockets and Node ws against our server and client, compression on.
    Interop(interop::Args),
    /// Chromium (headless) against `ferrosocket echo`.
    Browser(browser::Args),
    /// Chromium (headless) against two `ferrosocket chat` nodes over Redis and over NATS,
    /// with a broker restart.
    ChatBrowser(chat_browser::Args),
    /// Every cargo-fuzz target for SECS seconds each, after replaying the regressions.
    Fuzz(fuzz::Args),
    /// Correctness under load: `ferrosocket bench` against `ferrosocket echo`.
    BenchSmoke(bench_smoke::Args),
    /// Verified load with faults mixed in; checks RSS and fds come back.
    Soak(soak::Args),
    /// Throughput and latency against peer implementations.
    BenchPeers(bench_peers::Args),
    /// Fan-out: one publisher, 10,000 subscribers over two chat nodes (naive, hub, Redis, NATS).
    BenchFanout(bench_fanout::Args),
    /// Memory per idle connection.
    BenchMemory(bench_memory::Args),
    /// Instruction counts per echoed message under callgrind, checked against
    /// bench/icount-baseline.json (more than 5 % above fails); `--update` rewrites it.
    Icount(icount::Args),
    /// N idle WebSocket connections (default 1,000,000) to one `ferrosocket echo`: RSS per
    /// connection, kernel socket memory, time to open, and a sample of echoes.
    Million(million::Args),
    /// Every CI stage in order, with durations and a summary table (what `.ci/run` runs).
    Ci(ci::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Err(err) = proc::install_signal_handler() {
        eprintln!("xtask: ERROR: {err:#}");
        return std::process::ExitCode::FAILURE;
    }
    let result = match cli.task {
        Task::Autobahn(args) => autobahn::run(args),
        Task::Interop(args) => interop::run(args),
        Task::Browser(args) => browser::run(args),
        Task::ChatBrowser(args) => chat_browser::run(args),
        Task::Fuzz(args) => fuzz::run(args),
        Task::BenchSmoke(args) => bench_smoke::run(args),
        Task::Soak(args) => soak::run(args),
        Task::BenchPeers(args) => bench_peers::run(args),
        Task::BenchFanout(args) => bench_fanout::run(args),
        Task::BenchMemory(args) => bench_memory::run(args),
        Task::Icount(args) => icount::run(args),
        Task::Million(args) => million::run(args),
        Task::Ci(args) => ci::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: ERROR: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
