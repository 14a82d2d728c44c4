//! `cvmforge diff`: not implemented yet (placeholder so that the CLI skeleton compiles).

use std::process::ExitCode;

use super::Ui;

/// Arguments of this subcommand.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Not implemented yet.
pub fn run(_args: Args, _ui: &Ui) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`diff` is not implemented yet")
}
