//! `cvmforge completions <shell>`: prints a completion script generated from the clap definitions.

use std::process::ExitCode;

use clap_complete::Shell;

use super::CliResult;

/// Arguments of `cvmforge completions`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  cvmforge completions bash > ~/.local/share/bash-completion/completions/cvmforge\n  cvmforge completions zsh > ~/.zfunc/_cvmforge"
)]
pub(crate) struct Args {
    /// The shell to generate completions for.
    pub(crate) shell: Shell,
}

/// Writes the completion script to stdout.
pub(crate) fn run(args: Args, command: &mut clap::Command) -> CliResult {
    clap_complete::generate(args.shell, command, "cvmforge", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}
