//! `ferrosocket`: the WebSocket echo server (default), and more tools over the public API.

mod echo;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// WebSocket tools built on ferrosocket.
#[derive(Parser, Debug)]
#[command(name = "ferrosocket", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Echo every message back, and serve a browser page at / to try it (the default job).
    Echo(echo::EchoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli
        .command
        .unwrap_or_else(|| Command::Echo(echo::EchoArgs::parse_from(["echo"])));
    let result = match command {
        Command::Echo(args) => echo::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrosocket: {e}");
            ExitCode::FAILURE
        }
    }
}
