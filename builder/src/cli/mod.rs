//! The command-line interface: argument parsing (clap), rendering, and exit codes.
//!
//! Each subcommand lives in its own module with an `Args` struct and a `run` function that calls the library and
//! renders its result as text or, with `--json`, as one JSON document on stdout.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

pub(crate) mod build;
pub(crate) mod completions;
pub(crate) mod diff;
pub(crate) mod id_block;
pub(crate) mod inspect;
pub(crate) mod measure_snp;
pub(crate) mod measure_tdx;
pub(crate) mod run;
pub(crate) mod verify;

/// Exit code of a failed command (a build error, a verify mismatch).
pub(crate) const EXIT_FAILED: u8 = 1;
/// Exit code of a usage error (bad flags, unreadable recipe path given on the command line).
pub(crate) const EXIT_USAGE: u8 = 2;

/// cvmforge builds sealed confidential-VM images bit for bit and computes their SEV-SNP and TDX launch measurements.
#[derive(Debug, Parser)]
#[command(name = "cvmforge", version, about, long_about = None, propagate_version = true)]
#[command(
    after_help = "Examples:\n  cvmforge build recipes/demo.yaml -o out/\n  cvmforge measure snp --ovmf OVMF.amdsev.fd --kernel vmlinuz --vcpus 4\n  cvmforge completions bash > /etc/bash_completion.d/cvmforge"
)]
pub(crate) struct Cli {
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// The command to run.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Build an image from a recipe.
    Build(build::Args),
    /// Compute launch measurements.
    #[command(subcommand)]
    Measure(MeasureCommand),
    /// Make an SEV-SNP ID block and ID auth structure for a launch digest.
    IdBlock(id_block::Args),
    /// List the contents of an initrd, bundle or manifest and the sealing-policy verdict.
    Inspect(inspect::Args),
    /// Boot an image locally under QEMU (no confidential computing), for smoke tests.
    Run(run::Args),
    /// Rebuild a published image and check that every output and measurement is identical.
    Verify(verify::Args),
    /// Explain the differences between two builds.
    Diff(diff::Args),
    /// Print a shell completion script.
    Completions(completions::Args),
}

/// `cvmforge measure ...`
#[derive(Debug, Subcommand)]
pub(crate) enum MeasureCommand {
    /// AMD SEV / SEV-ES / SEV-SNP launch digest (drop-in for sev-snp-measure 0.0.13).
    Snp(measure_snp::Args),
    /// Intel TDX MRTD and RTMRs.
    Tdx(measure_tdx::Args),
}

/// How the command renders its output.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ui {
    /// `--json` was given.
    pub(crate) json: bool,
    /// Progress bars may be drawn (stderr is a terminal and output is not JSON).
    pub(crate) progress: bool,
}

/// An error in how the command was invoked; exits with [`EXIT_USAGE`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub String);

/// An error with a suggestion for the user, printed after the cause chain as `hint:`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct Hinted {
    /// What went wrong.
    pub(crate) message: String,
    /// What to do about it.
    pub(crate) hint: String,
}

/// Parses the command line, runs the command, and maps the outcome to an exit code.
pub(crate) fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help and version to stdout with exit 0, usage errors to stderr with exit 2.
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    let ui = Ui { json: cli.json, progress: !cli.json && std::io::stderr().is_terminal() };
    match dispatch(cli.command, &ui) {
        Ok(code) => code,
        Err(err) => {
            report_error(&err, &ui);
            if err.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::from(EXIT_FAILED)
            }
        }
    }
}

fn dispatch(command: Command, ui: &Ui) -> anyhow::Result<ExitCode> {
    match command {
        Command::Build(args) => build::run(args, ui),
        Command::Measure(MeasureCommand::Snp(args)) => measure_snp::run(args, ui),
        Command::Measure(MeasureCommand::Tdx(args)) => measure_tdx::run(args, ui),
        Command::IdBlock(args) => id_block::run(args, ui),
        Command::Inspect(args) => inspect::run(args, ui),
        Command::Run(args) => run::run(args, ui),
        Command::Verify(args) => verify::run(args, ui),
        Command::Diff(args) => diff::run(args, ui),
        Command::Completions(args) => completions::run(args, &mut Cli::command()),
    }
}

/// The most characters of one error line that are printed (a line quotes at most a few names and paths).
const MAX_ERROR_CHARS: usize = 2048;

/// Prints `error:`, each `caused by:`, and a `hint:` if one is attached; with `--json` also one JSON object on stdout.
fn report_error(err: &anyhow::Error, ui: &Ui) {
    let causes: Vec<String> = err.chain().skip(1).map(|c| c.to_string()).collect();
    // `downcast_ref` also sees a `Hinted` attached with `.context(..)`, which `chain()` items (ContextError) hide.
    let hint = err
        .downcast_ref::<Hinted>()
        .or_else(|| err.chain().find_map(|c| c.downcast_ref::<Hinted>()))
        .map(|h| h.hint.clone());
    // Messages quote paths, names and values from untrusted input; escaping every line here (errors are one line
    // each) keeps a hostile name from adding or hiding lines, whichever error carries it.
    // A message of several lines (the sealing verdict lists each violation) keeps its lines, each escaped, and every
    // line after the first is indented, so that nothing inside a message can pass for a line of its own.
    let shown = |text: &str| {
        let lines: Vec<String> =
            text.split('\n').map(|l| cvmforge::display::untrusted_bounded(l, MAX_ERROR_CHARS).to_string()).collect();
        lines.join("\n    ")
    };
    eprintln!("error: {}", shown(&err.to_string()));
    for cause in &causes {
        eprintln!("  caused by: {}", shown(cause));
    }
    if let Some(hint) = &hint {
        eprintln!("hint: {}", shown(hint));
    }
    if ui.json {
        let doc = serde_json::json!({
            "schema_version": 1,
            "type": "error",
            "error": err.to_string(),
            "causes": causes,
            "hint": hint,
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
}

/// Prints `value` as pretty JSON with keys sorted (through `serde_json::Value`, whose maps are ordered).
pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let value = serde_json::to_value(value)?;
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}
