//! Placeholder until the Rust port lands: forwards its arguments to `scripts/bench-peers.sh`.

use std::process::Command;

use anyhow::Result;

use crate::proc;

/// Arguments, passed through to `scripts/bench-peers.sh` unchanged.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Arguments for the script.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// Runs `scripts/bench-peers.sh` with the given arguments.
pub(crate) fn run(args: Args) -> Result<()> {
    let root = proc::root();
    proc::run(
        Command::new(root.join("scripts/bench-peers.sh"))
            .current_dir(&root)
            .args(&args.args),
    )
}
