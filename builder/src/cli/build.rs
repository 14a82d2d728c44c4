//! `cvmforge build RECIPE -o DIR`: builds an image from a recipe and prints what it wrote.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::build::{self, BuildError, BuildOptions, BuildReport, Progress, Step};
use crate::lock::LockError;

use super::{Hinted, Ui, UsageError};

/// Arguments of `cvmforge build`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cvmforge build recipes/demo.yaml -o out/demo
  cvmforge build recipes/demo.yaml -o out/demo --locked      # CI: refuse inputs that differ from recipes/demo.lock
  cvmforge build recipes/demo.yaml -o out/demo --force --jobs 1
  cvmforge build recipes/demo.yaml -o out/demo --json | jq .outputs

Exit codes: 0 built, 1 build failed (bad recipe, input, lock mismatch, existing output), 2 usage error.")]
pub struct Args {
    /// The recipe (YAML); input paths in it are relative to its directory.
    pub recipe: PathBuf,
    /// Output directory; must not exist or be empty unless --force. Written atomically.
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,
    /// Refuse to build if any input differs from the lock file `<recipe stem>.lock`; the lock is not rewritten.
    #[arg(long)]
    pub locked: bool,
    /// Replace an existing non-empty output directory (atomically).
    #[arg(long)]
    pub force: bool,
    /// Compression threads [default: the number of CPUs]; the output bytes do not depend on it.
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub jobs: Option<u32>,
}

/// Runs the build and prints the summary (or the [`BuildReport`] as JSON).
pub fn run(args: Args, ui: &Ui) -> anyhow::Result<ExitCode> {
    if !args.recipe.is_file() {
        let what = if args.recipe.is_dir() { "is a directory" } else { "does not exist" };
        return Err(UsageError(format!("recipe `{}` {what}", args.recipe.display())).into());
    }
    let jobs = match args.jobs {
        Some(n) => usize::try_from(n)?,
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    let options =
        BuildOptions { recipe: args.recipe.clone(), output: args.output, locked: args.locked, force: args.force, jobs };
    let result = if ui.progress {
        let bar = Bar::new();
        let result = build::build_with_progress(&options, &bar);
        bar.bar.finish_and_clear();
        result
    } else {
        build::build(&options)
    };
    let report = result.map_err(|err| with_hint(err, &options))?;
    if ui.json {
        super::print_json(&report)?;
    } else {
        print_summary(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn with_hint(err: BuildError, options: &BuildOptions) -> anyhow::Error {
    let hint = match &err {
        BuildError::OutputExists { .. } => {
            Some("pass --force to replace it, or choose another -o directory".to_string())
        }
        BuildError::InputOutsideTree { .. } => Some(
            "set `root:` in the recipe to a directory that contains the input, or `follow_symlinks: true` to allow it"
                .to_string(),
        ),
        BuildError::Lock(LockError::Differs { .. }) => Some(
            "if the new inputs are intended, build once without --locked to update the lock file, and commit it"
                .to_string(),
        ),
        BuildError::Lock(LockError::Missing { .. }) => {
            Some("build once without --locked to create the lock file, and commit it".to_string())
        }
        _ => None,
    };
    let message = format!("cannot build `{}`", options.recipe.display());
    match hint {
        Some(hint) => anyhow::Error::new(err).context(Hinted { message, hint }),
        None => anyhow::Error::new(err).context(message),
    }
}

fn print_summary(report: &BuildReport) {
    println!("built {} {} into {}", report.recipe.name, report.recipe.version, report.output_dir);
    println!();
    let width = report.outputs.iter().map(|o| o.name.len()).max().unwrap_or(0);
    for output in &report.outputs {
        println!("  {:width$}  {}  {:>12} bytes", output.name, output.sha256, output.size);
    }
    println!();
    let c = &report.initrd.compression;
    println!(
        "initrd:       {} entries, {} level {} ({} {})",
        report.initrd.entries, c.algorithm, c.level, c.implementation, c.implementation_version
    );
    println!(
        "kernel:       boot protocol {}{}",
        report.kernel.boot_protocol,
        report.kernel.version.as_deref().map(|v| format!(", {v}")).unwrap_or_default()
    );
    println!("lock:         {} ({})", report.lock.path, report.lock.status);
    let m = &report.measurements;
    if m.snp.is_empty() && m.tdx.is_empty() {
        println!("measurements: none");
    } else {
        for (platform, list) in [("snp", &m.snp), ("tdx", &m.tdx)] {
            for value in list {
                println!("measurement:  {platform} {value}");
            }
        }
    }
}

/// An indicatif bar on stderr.
struct Bar {
    bar: indicatif::ProgressBar,
}

impl Bar {
    fn new() -> Bar {
        let bar = indicatif::ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::stderr());
        if let Ok(style) = indicatif::ProgressStyle::with_template("{msg:28} [{bar:30}] {bytes}/{total_bytes}") {
            bar.set_style(style.progress_chars("=> "));
        }
        Bar { bar }
    }
}

impl Progress for Bar {
    fn begin(&self, step: Step, total_bytes: u64) {
        self.bar.set_message(step.to_string());
        self.bar.set_length(total_bytes);
        self.bar.set_position(0);
    }

    fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }
}
