//! `cvmforge diff A B`: explain why two builds differ.
//!
//! Exit codes follow diff(1): 0 identical, 1 different, 2 for trouble (bad usage, unreadable or malformed input,
//! inputs of kinds that cannot be compared), so that a script never mistakes a broken input for "different".

use std::path::PathBuf;
use std::process::ExitCode;

use super::{print_json, CliResult, Failure, Ui};
use cvmforge::diff::{diff_paths, DiffError};
use cvmforge::format::Limits;

/// Arguments of `cvmforge diff`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "A and B may each be an output directory, a .cvm.tar bundle, an initrd (gzip, zstd or plain cpio), a \
manifest.json, or any other file (kernel, firmware, cmdline). A directory may be compared with a bundle.\n\n\
Exit status: 0 identical, 1 different, 2 trouble (usage, unreadable or malformed input).\n\n\
Examples:\n  cvmforge diff out-a/ out-b/\n  cvmforge diff --json a/demo-1.0.cvm.tar b/demo-1.0.cvm.tar\n  \
cvmforge diff a/initrd.img b/initrd.img"
)]
pub(crate) struct Args {
    /// The first build (or file).
    pub(crate) a: PathBuf,
    /// The second build (or file).
    pub(crate) b: PathBuf,
}

/// Compares the two builds and prints one line per difference (or, with `--json`, the report).
pub(crate) fn run(args: Args, ui: &Ui) -> CliResult {
    let report = match diff_paths(&args.a, &args.b, &Limits::default()) {
        Ok(report) => report,
        Err(err) => return Err(trouble(err, &args)),
    };
    if ui.json {
        print_json(&report)?;
    } else if report.identical {
        println!("`{}` and `{}` are identical", args.a.display(), args.b.display());
    } else {
        print!("{}", report.render_text());
        let n = report.findings.len();
        println!("{n} difference{}", if n == 1 { "" } else { "s" });
    }
    Ok(ExitCode::from(if report.identical { 0 } else { 1 }))
}

/// Every failure of `diff` exits 2 (see the module docs); a kind mismatch gets a hint.
fn trouble(err: DiffError, args: &Args) -> Failure {
    let summary = format!("cannot compare `{}` and `{}`", args.a.display(), args.b.display());
    let hint = err.hint();
    Failure::from(err).context(summary).with_hint(hint).usage_error()
}
