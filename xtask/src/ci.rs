//! Not yet ported.

use anyhow::Result;

/// Arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

/// Not yet ported.
pub(crate) fn run(_args: Args) -> Result<()> {
    anyhow::bail!("not yet ported")
}
