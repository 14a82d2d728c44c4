//! The `cvmforge` command: parses arguments, calls the library, renders the outcome, and exits
//! 0 (ok), 1 (failed) or 2 (usage error).

use std::process::ExitCode;

mod cli;

fn main() -> ExitCode {
    cli::main()
}
