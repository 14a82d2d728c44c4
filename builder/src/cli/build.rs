//! `cvmforge build RECIPE -o DIR`: builds an image from a recipe and prints what it wrote.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use cvmforge::build::{self, BuildError, BuildOptions, BuildReport, Progress, Step};
use cvmforge::seal::policy::Verdict;

use super::{CliResult, Failure, Ui};

/// Arguments of `cvmforge build`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cvmforge build recipes/demo.yaml -o out/demo
  cvmforge build recipes/demo.yaml -o out/demo --locked      # CI: refuse inputs that differ from recipes/demo.lock
  cvmforge build recipes/demo.yaml -o out/demo --force --jobs 1
  cvmforge build recipes/demo.yaml -o out/demo --json | jq .outputs

Exit codes: 0 built, 1 build failed (bad recipe, input, lock mismatch, existing output), 2 usage error.")]
pub(crate) struct Args {
    /// The recipe (YAML); input paths in it are relative to its directory.
    pub(crate) recipe: PathBuf,
    /// Output directory; must not exist or be empty unless --force. Written atomically.
    #[arg(short, long, value_name = "DIR")]
    pub(crate) output: PathBuf,
    /// Refuse to build if any input differs from the lock file `<recipe stem>.lock`; the lock is not rewritten.
    #[arg(long)]
    pub(crate) locked: bool,
    /// Replace an existing non-empty output directory (atomically).
    #[arg(long)]
    pub(crate) force: bool,
    /// Compression threads [default: the number of CPUs]; the output bytes do not depend on it.
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub(crate) jobs: Option<u32>,
    /// Fail on any sealing-policy violation that the recipe does not waive, even if the recipe says
    /// `sealing.strict: false` (failing is already the default).
    #[arg(long, conflicts_with = "allow_unsealed")]
    pub(crate) strict: bool,
    /// Build even if the image breaks the sealing policy: the violations are recorded in the manifest (verdict
    /// `violations`) and a loud warning is printed. For development only; never publish such an image.
    #[arg(long)]
    pub(crate) allow_unsealed: bool,
}

/// Runs the build and prints the summary (or the [`BuildReport`] as JSON).
pub(crate) fn run(args: Args, ui: &Ui) -> CliResult {
    if !args.recipe.is_file() {
        let what = if args.recipe.is_dir() { "is a directory" } else { "does not exist" };
        return Err(Failure::usage(format!("recipe `{}` {what}", args.recipe.display())));
    }
    let jobs = match args.jobs {
        Some(n) => usize::try_from(n)?,
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    // Ctrl-C (or SIGTERM, SIGHUP) during a build removes its temporary directories before the process exits.
    cvmforge::build::leftovers::install_signal_cleanup().context("cannot install the signal handler")?;
    let options = BuildOptions {
        recipe: args.recipe.clone(),
        output: args.output,
        locked: args.locked,
        force: args.force,
        jobs,
        strict: args.strict,
        allow_unsealed: args.allow_unsealed,
    };
    let result = if ui.progress {
        let bar = Bar::new();
        let result = build::build_with_progress(&options, &bar);
        bar.bar.finish_and_clear();
        result
    } else {
        build::build(&options)
    };
    let report = result.map_err(|err| with_hint(err, &options))?;
    // With --json the warnings are in the report; stderr stays empty.
    for warning in report.warnings.iter().filter(|_| !ui.json) {
        eprintln!("warning: {warning}");
    }
    if ui.json {
        super::print_json(&report)?;
    } else {
        print_stdout(&summary(&report))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn with_hint(err: BuildError, options: &BuildOptions) -> Failure {
    let hint = err.hint();
    Failure::from(anyhow::Error::new(err).context(format!("cannot build `{}`", options.recipe.display())))
        .with_hint(hint)
}

/// The human summary of a build.
pub(crate) fn summary(report: &BuildReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = render(&mut out, report);
    return out;

    fn render(out: &mut String, report: &BuildReport) -> std::fmt::Result {
        writeln!(out, "built {} {} into {}\n", report.recipe.name, report.recipe.version, report.output_dir)?;
        let width = report.outputs.iter().map(|o| o.name.len()).max().unwrap_or(0);
        for output in &report.outputs {
            writeln!(out, "  {:width$}  {}  {:>12} bytes", output.name, output.sha256, output.size)?;
        }
        let c = &report.initrd.compression;
        writeln!(
            out,
            "\ninitrd:       {} entries, {} level {} ({} {})",
            report.initrd.entries, c.algorithm, c.level, c.implementation, c.implementation_version
        )?;
        let version = report.kernel.version.as_deref().map(|v| format!(", {v}")).unwrap_or_default();
        writeln!(out, "kernel:       boot protocol {}{version}", report.kernel.boot_protocol)?;
        writeln!(out, "lock:         {} ({})", report.lock.path, report.lock.status)?;
        let s = &report.sealing;
        writeln!(
            out,
            "sealing:      {} ({} violation(s), {} waiver(s) applied, kernel config: {}{})",
            verdict_name(s.verdict),
            s.violations,
            s.waivers_applied,
            s.kernel_config,
            if s.strict { ", strict" } else { "" }
        )?;
        if !s.modules.is_empty() {
            writeln!(out, "modules:      {}", s.modules.join(", "))?;
        }
        let rows = measurement_rows(&report.measurements);
        if rows.is_empty() {
            writeln!(out, "measurements: none")?;
            return Ok(());
        }
        writeln!(out, "measurements:")?;
        let shape_width = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max("shape".len());
        let what_width = rows.iter().map(|r| r.2.len()).max().unwrap_or(0).max("value".len());
        writeln!(out, "  platform  {:shape_width$}  {:what_width$}  digest", "shape", "value")?;
        for (platform, shape, what, digest) in rows {
            writeln!(out, "  {platform:8}  {shape:shape_width$}  {what:what_width$}  {digest}")?;
        }
        Ok(())
    }
}

/// One line of the measurement table: platform, shape, which value, digest.
fn measurement_rows(m: &cvmforge::manifest::Measurements) -> Vec<(&'static str, String, &'static str, String)> {
    let mut rows = Vec::new();
    for e in &m.snp {
        let cpu = e.vcpu_type.clone().unwrap_or_else(|| format!("sig {}", e.vcpu_sig));
        let shape = format!("[{}] {} vCPU {cpu} {}", e.shape, e.vcpus, e.vmm_type);
        rows.push(("snp", shape, "launch", e.digest.clone()));
    }
    for e in &m.tdx {
        let shape = format!("[{}] {} vCPU {} {}", e.shape, e.vcpus, e.memory, e.page_order);
        let rtmr0 = e.rtmr0.clone().unwrap_or_else(|| "(not computed)".to_owned());
        for (what, value) in
            [("MRTD", &e.mrtd), ("RTMR0", &rtmr0), ("RTMR1", &e.rtmr1), ("RTMR2", &e.rtmr2), ("RTMR3", &e.rtmr3)]
        {
            rows.push(("tdx", shape.clone(), what, value.clone()));
        }
    }
    rows
}

/// The verdict as the manifest spells it.
fn verdict_name(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Sealed => "sealed",
        Verdict::SealedWithWaivers => "sealed-with-waivers",
        Verdict::Violations => "violations",
    }
}

/// Writes to stdout; a closed pipe (`cvmforge build ... | head -1`) is not an error.
fn print_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
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
