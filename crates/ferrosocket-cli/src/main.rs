//! `ferrosocket`: the WebSocket echo server (default), and more tools over the public API.

mod autobahn_client;
mod bench;
mod chat;
mod client;
mod echo;
mod metrics;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// WebSocket tools built on ferrosocket.
#[derive(Parser, Debug)]
#[command(
    name = "ferrosocket",
    version,
    about,
    after_help = "Without a command, runs `echo` with its defaults (ws://127.0.0.1:8080/ws, page at \
                  http://127.0.0.1:8080/).\n`ferrosocket help COMMAND` shows a command's options."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Echo every message back, and serve a browser page at / to try it (the default job).
    ///
    /// Each connection, message and close is printed (messages escaped and cut short: they
    /// are the peer's text) unless --quiet. Ctrl-C or SIGTERM closes every connection with
    /// 1001 and stops the server. Exit status: 0 after a stop, 1 when it cannot start.
    Echo(echo::EchoArgs),
    /// A chat node: rooms, names and history, shared with other nodes through Redis or NATS.
    ///
    /// Serves the chat page at /, the node's hub counters as JSON at /stats and sessions at
    /// /ws?room=ROOM&name=NAME (JSON lines; the room's history first) or /ws?room=ROOM&raw=1
    /// (messages published and delivered verbatim). Each --listen is a node with its own hub;
    /// without --redis or --nats the nodes of the process share rooms in memory. Prints
    /// `chat node listening on http://ADDR/ (ws://ADDR/ws)` per node once bound. Ctrl-C or
    /// SIGTERM closes every connection with 1001; exit status 0 after a stop, 1 when it
    /// cannot start.
    Chat(chat::ChatArgs),
    /// Connect to a ws:// or wss:// URL: stdin lines become messages, replies go to stdout.
    ///
    /// How the session ended goes to stderr. Exit status: 0 clean close, 1 connect or
    /// handshake error, 2 abnormal close.
    Client(client::ClientArgs),
    /// The Autobahn|Testsuite client testee: run every case of a `wstest -m fuzzingserver`.
    AutobahnClient(autobahn_client::AutobahnClientArgs),
    /// Load-test any WebSocket echo server: throughput and latency (HDR histogram).
    Bench(bench::BenchArgs),
    /// Fan-out benchmark: one publisher, many subscribers over chat nodes in raw mode;
    /// deliveries/s, publish-to-receive latency, missing and duplicate deliveries.
    Fanout(bench::fanout::FanoutArgs),
}

/// The runtime of a server command: `threads` 1 is a current_thread runtime, 0 one worker
/// per core, N that many workers.
fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if threads > 1 {
            b.worker_threads(threads);
        }
        b
    };
    builder.enable_all().build()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli
        .command
        .unwrap_or_else(|| Command::Echo(echo::EchoArgs::parse_from(["echo"])));
    let result = match command {
        Command::Echo(args) => echo::run(args),
        Command::Chat(args) => chat::run(args),
        Command::Client(args) => return client::run(args),
        Command::AutobahnClient(args) => autobahn_client::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Fanout(args) => bench::fanout::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrosocket: {e}");
            ExitCode::FAILURE
        }
    }
}
