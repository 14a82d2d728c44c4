//! The command-line interface: argument parsing (clap), rendering, and exit codes.
//!
//! Each subcommand lives in its own module with an `Args` struct and a `run` function that calls the library and
//! renders its result as text or, with `--json`, as one JSON document on stdout.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

pub(crate) mod attest;
pub(crate) mod build;
pub(crate) mod check_evidence;
pub(crate) mod completions;
pub(crate) mod diff;
pub(crate) mod id_block;
pub(crate) mod inspect;
pub(crate) mod keygen;
pub(crate) mod log;
pub(crate) mod measure_snp;
pub(crate) mod measure_tdx;
pub(crate) mod run;
pub(crate) mod sign;
pub(crate) mod verify;
pub(crate) mod verify_statement;

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
    /// Check an SEV-SNP report or a TDX quote against a published release.
    CheckEvidence(Box<check_evidence::Args>),
    /// Make an Ed25519 key pair for signing release statements.
    Keygen(keygen::Args),
    /// Write the in-toto statements of a release (provenance and launch measurements).
    Attest(attest::Args),
    /// Sign a statement into a DSSE envelope.
    Sign(sign::Args),
    /// Check a DSSE envelope's signature and print its statement.
    VerifyStatement(verify_statement::Args),
    /// Keep, prove, audit and witness the transparency log of signed statements.
    #[command(subcommand)]
    Log(log::LogCommand),
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

/// A failed command, as data: the error (its message and cause chain), whether the command was invoked wrongly
/// (exit [`EXIT_USAGE`]) or failed (exit [`EXIT_FAILED`]), and a hint printed after the causes as `hint:`. Commands
/// return it and [`main`] prints it; nothing is recovered by downcasting the error.
#[derive(Debug)]
pub(crate) struct Failure {
    error: anyhow::Error,
    usage: bool,
    hint: Option<String>,
}

impl Failure {
    /// A usage error (bad flags, a missing argument file): exit 2.
    pub(crate) fn usage(message: impl std::fmt::Display) -> Failure {
        Failure { error: anyhow::anyhow!("{message}"), usage: true, hint: None }
    }

    /// A failure with a hint.
    pub(crate) fn hinted(error: impl Into<anyhow::Error>, hint: impl Into<String>) -> Failure {
        Failure { error: error.into(), usage: false, hint: Some(hint.into()) }
    }

    /// Adds a hint (a library error's own, from its `hint()`), if there is one.
    pub(crate) fn with_hint(mut self, hint: Option<impl Into<String>>) -> Failure {
        if let Some(hint) = hint {
            self.hint = Some(hint.into());
        }
        self
    }

    /// Makes this a usage error (exit 2).
    pub(crate) fn usage_error(mut self) -> Failure {
        self.usage = true;
        self
    }

    /// Wraps the error in a message of what was being done, like `anyhow::Context`.
    pub(crate) fn context(mut self, context: impl std::fmt::Display + Send + Sync + 'static) -> Failure {
        self.error = self.error.context(context);
        self
    }
}

/// The top-level message (the causes and the hint are printed by `report_error`).
impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

/// Any error becomes a failure (exit 1) without a hint. `Failure` is deliberately not an `std::error::Error`, so
/// that this conversion does not overlap with `From<Failure> for Failure` (the design of `anyhow::Error`).
impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure { error: error.into(), usage: false, hint: None }
    }
}

/// What a command returns.
pub(crate) type CliResult<T = ExitCode> = Result<T, Failure>;

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
        Err(failure) => {
            report_error(&failure, &ui);
            ExitCode::from(if failure.usage { EXIT_USAGE } else { EXIT_FAILED })
        }
    }
}

fn dispatch(command: Command, ui: &Ui) -> CliResult {
    match command {
        Command::Build(args) => build::run(args, ui),
        Command::Measure(MeasureCommand::Snp(args)) => measure_snp::run(args, ui),
        Command::Measure(MeasureCommand::Tdx(args)) => measure_tdx::run(args, ui),
        Command::IdBlock(args) => id_block::run(args, ui),
        Command::Inspect(args) => inspect::run(args, ui),
        Command::Run(args) => run::run(args, ui),
        Command::Verify(args) => verify::run(args, ui),
        Command::Diff(args) => diff::run(args, ui),
        Command::CheckEvidence(args) => check_evidence::run(*args, ui),
        Command::Keygen(args) => keygen::run(args, ui),
        Command::Attest(args) => attest::run(args, ui),
        Command::Sign(args) => sign::run(args, ui),
        Command::VerifyStatement(args) => verify_statement::run(args, ui),
        Command::Log(command) => log::run(command, ui),
        Command::Completions(args) => completions::run(args, &mut Cli::command()),
    }
}

/// The most characters of one error line that are printed (a line quotes at most a few names and paths).
const MAX_ERROR_CHARS: usize = 2048;

/// Prints `error:`, each `caused by:`, and a `hint:` if one is attached; with `--json` also one JSON object on stdout.
fn report_error(failure: &Failure, ui: &Ui) {
    let err = &failure.error;
    let causes: Vec<String> = err.chain().skip(1).map(|c| c.to_string()).collect();
    let hint = failure.hint.clone();
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
/// Reads the manifest of a release file: a `.cvm.tar` bundle, recognised by its first 512 bytes (not by its name), or
/// a `manifest.json`. Returns the manifest's bytes and whether the file was a bundle. `check-evidence` and `attest`
/// load releases through this one function.
pub(crate) fn read_release_manifest(path: &std::path::Path) -> anyhow::Result<(Vec<u8>, bool)> {
    use anyhow::Context;
    use cvmforge::format::{publication_limits, read_bundle, sniff, Container, Limits};
    let shown = path.display();
    let mut file = cvmforge::sys::regular_file::open_input(path).with_context(|| format!("cannot read `{shown}`"))?;
    let mut head = [0u8; 512];
    let n = cvmforge::sys::io::read_full(&mut file, &mut head).with_context(|| format!("cannot read `{shown}`"))?;
    if sniff(head.get(..n).unwrap_or_default()) != Container::Tar {
        let max = cvmforge::manifest::MAX_MANIFEST_SIZE;
        let bytes =
            cvmforge::sys::regular_file::read_capped(path, max).with_context(|| format!("cannot read `{shown}`"))?;
        return Ok((bytes, false));
    }
    let file = cvmforge::sys::regular_file::open_input(path).with_context(|| format!("cannot read `{shown}`"))?;
    let len = file.metadata().map(|m| m.len()).ok();
    let bundle = read_bundle(std::io::BufReader::new(file), len, &publication_limits(&Limits::default()))
        .with_context(|| format!("cannot read the bundle `{shown}`"))?;
    let member = bundle
        .member(cvmforge::build::MANIFEST_FILE)
        .ok_or_else(|| anyhow::anyhow!("the bundle `{shown}` has no manifest.json"))?;
    Ok((member.to_vec(), true))
}

pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let value = serde_json::to_value(value)?;
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}
