//! `cvmforge verify MANIFEST|BUNDLE`: rebuild a published image and check that it is identical.
//!
//! Exit codes: 0 everything identical; 1 a difference, a missing or changed input, a changed recipe, or a publication
//! that contradicts its own manifest; 2 usage errors (bad flags, a target path that does not exist).

use std::path::PathBuf;
use std::process::ExitCode;

use super::{print_json, CliResult, Failure, Ui};
use cvmforge::diff::short;
use cvmforge::diff::shown_line;
use cvmforge::verify::{verify, Status, VerifyError, VerifyOptions, VerifyReport};

/// Findings printed in the text output (the JSON report has them all).
const SHOWN_FINDINGS: usize = 20;
/// Detail lines printed under each finding.
const SHOWN_DETAIL: usize = 12;

/// Arguments of `cvmforge verify`.
#[derive(Debug, clap::Args)]
#[command(after_help = "The recipe is `--recipe`, else the manifest's recipe path (relative to the recipe's tree) \
resolved from the current directory. Inputs are looked for at the recipe's paths, then by SHA-256 in every `--inputs` \
directory. The rebuild runs in a temporary directory; nothing is written beside your files.\n\n\
Exit status: 0 identical, 1 different (or an input is missing or changed), 2 usage error.\n\n\
Examples:\n  cvmforge verify out/demo-0.1.0.cvm.tar\n  cvmforge verify manifest.json --recipe recipes/demo.yaml \
--inputs ~/downloads")]
pub(crate) struct Args {
    /// The published `manifest.json` or `.cvm.tar` bundle.
    pub(crate) target: PathBuf,
    /// The recipe (default: the manifest's recipe path, from the current directory).
    #[arg(long)]
    pub(crate) recipe: Option<PathBuf>,
    /// A directory searched recursively for inputs by SHA-256 (repeatable).
    #[arg(long = "inputs", value_name = "DIR")]
    pub(crate) inputs: Vec<PathBuf>,
    /// Compressor threads for the rebuild (default: the number of CPUs); never changes the bytes.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) jobs: Option<u16>,
}

/// Verifies and prints one line per input, artifact and measurement (or, with `--json`, the report).
pub(crate) fn run(args: Args, ui: &Ui) -> CliResult {
    if !args.target.exists() {
        return Err(Failure::usage(format!("`{}` does not exist", args.target.display())));
    }
    for dir in &args.inputs {
        if !dir.is_dir() {
            return Err(Failure::usage(format!("--inputs `{}` is not a directory", dir.display())));
        }
    }
    let mut options = VerifyOptions::new(args.target.clone());
    options.recipe = args.recipe.clone();
    options.inputs = args.inputs.clone();
    if let Some(jobs) = args.jobs {
        options.jobs = usize::from(jobs);
    }
    let report = verify(&options).map_err(hint)?;
    if ui.json {
        print_json(&report)?;
    } else {
        print!("{}", render(&report));
    }
    Ok(ExitCode::from(if report.identical { 0 } else { super::EXIT_FAILED }))
}

fn hint(err: VerifyError) -> Failure {
    let hint = err.hint();
    Failure::from(err).with_hint(hint)
}

/// A value from the published manifest or bundle (untrusted), escaped and bounded for a line of output.
fn u(text: &str) -> String {
    cvmforge::display::untrusted(text).to_string()
}

/// The text rendering: one line per item, then the explanation and the verdict.
fn render(report: &VerifyReport) -> String {
    let mut out = String::new();
    let r = &report.recipe;
    out.push_str(&format!("recipe       {:<7} {}", r.status.to_string(), u(&r.path)));
    if r.status != Status::Ok {
        out.push_str(&format!(": sha256 {} but the manifest lists {}", r.actual_sha256, r.expected_sha256));
    }
    out.push('\n');
    for i in &report.inputs {
        out.push_str(&format!("input        {:<7} {} ({})", i.status.to_string(), u(&i.role), u(&i.path)));
        match i.status {
            Status::Ok => {
                if let Some(at) = &i.found_at {
                    out.push_str(&format!(" found at {}", u(&at.to_string())));
                }
            }
            Status::Differs => out.push_str(&format!(
                ": sha256 {} but the manifest lists {}",
                u(i.actual_sha256.as_deref().unwrap_or("-")),
                u(&i.expected_sha256)
            )),
            Status::Missing => out.push_str(&format!(
                ": not found; expected sha256 {} ({} bytes)",
                u(&i.expected_sha256),
                i.expected_size
            )),
        }
        out.push('\n');
    }
    for o in &report.outputs {
        out.push_str(&format!("output       {:<7} {}", o.status.to_string(), u(&o.name)));
        if o.status != Status::Ok {
            let side = |d: &Option<String>| u(&d.as_deref().map_or("-".to_string(), short));
            out.push_str(&format!(": sha256 {} vs rebuilt {}", side(&o.expected_sha256), side(&o.actual_sha256)));
        }
        out.push('\n');
    }
    for m in &report.measurements {
        out.push_str(&format!("measurement  {:<7} {}\n", m.status.to_string(), u(&m.name)));
    }
    if !report.findings.is_empty() {
        out.push_str("\nwhy (published vs rebuilt):\n");
        for f in report.findings.iter().take(SHOWN_FINDINGS) {
            out.push_str(&format!("  {}\n", shown_line(&f.headline())));
            for line in f.detail_lines().iter().take(SHOWN_DETAIL) {
                out.push_str(&format!("      {}\n", shown_line(line)));
            }
        }
        if report.findings.len() > SHOWN_FINDINGS {
            out.push_str(&format!("  ... {} more (see --json)\n", report.findings.len() - SHOWN_FINDINGS));
        }
        out.push('\n');
    }
    out.push_str(&verdict(report));
    out
}

fn verdict(report: &VerifyReport) -> String {
    if report.identical {
        return "verified: the rebuild is identical\n".to_string();
    }
    let bad_inputs = report.inputs.iter().filter(|i| i.status != Status::Ok).count();
    if bad_inputs > 0 {
        return format!("NOT verified: {bad_inputs} input(s) missing or changed; nothing was rebuilt\n");
    }
    let outputs = report.outputs.iter().filter(|o| o.status != Status::Ok).count();
    let measurements = report.measurements.iter().filter(|m| m.status != Status::Ok).count();
    let recipe = if report.recipe.status == Status::Ok { "" } else { "the recipe differs; " };
    format!("NOT verified: {recipe}{outputs} artifact(s) and {measurements} measurement(s) differ\n")
}
