//! Placeholder until the Rust port lands: forwards its arguments to `scripts/soak.sh`.

use std::process::Command;

use anyhow::Result;

use crate::proc;

/// Arguments, passed through to `scripts/soak.sh` unchanged.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Arguments for the script.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// Runs `scripts/soak.sh` with the given arguments.
pub(crate) fn run(args: Args) -> Result<()> {
    let root = proc::root();
    proc::run(
        Command::new(root.join("scripts/soak.sh"))
            .current_dir(&root)
            .args(&args.args),
    )
}
