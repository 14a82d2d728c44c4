//! The build pipeline: recipe → checked, hashed inputs → initrd, kernel, command line, firmware copies, manifest and
//! publishing tar, written atomically into the output directory, plus the lock file beside the recipe.
//!
//! Every output is a function of the recipe and the input bytes only (see `docs/specs/reproducibility.md`): entries
//! are sorted, owners are 0, the only time is the recipe's `source_date_epoch`, and the compressor's bytes do not
//! depend on the thread count. The library never prints; progress goes through [`Progress`].
//!
//! Order of work, so that a refused build writes nothing: load and validate the recipe and its VM shapes
//! (`measure::plan`); check the output target; resolve, confine and hash every input; compare with the lock
//! (`--locked`); check the kernel's setup header; only then create the staging directory, write, measure the staged
//! outputs (`measure::measure`), write the manifest and bundle, and rename the directory into place; finally write the lock
//! file.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use thiserror::Error;

use crate::bzimage::{BzImage, BzImageError};
use crate::compress::{self, Compression, CompressorInfo};
use crate::cpio::CpioError;
use crate::lock::{Lock, LockError, LockedInput};
use crate::manifest::{
    InitrdRecord, KernelRecord, Manifest, Measurements, OutputRecord, RecipeRecord, MANIFEST_SCHEMA,
};
use crate::recipe::dest::Layout;
use crate::recipe::{LoadedRecipe, Problem, Recipe, RecipeError};
use crate::tar::{TarError, TarWriter};

mod hashing;
mod initrd;
mod inputs;
pub mod leftovers;
pub mod measure;
mod output;

pub use measure::MeasureError;

/// Name of the compressed initrd in the output directory.
pub const INITRD_FILE: &str = "initrd.img";
/// Name of the kernel copy.
pub const KERNEL_FILE: &str = "kernel";
/// Name of the command line file: the exact command line bytes, no trailing newline (what QEMU `-append` and the
/// SEV hashes table measure, before the NUL the VMM adds).
pub const CMDLINE_FILE: &str = "cmdline";
/// Name of the manifest.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Bytes of the kernel's start read for the setup-header check (covers the version-string pointer's whole range).
const KERNEL_HEADER_READ: u64 = 0x10000 + 0x200 + 512;

/// What to build and where.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The recipe file.
    pub recipe: PathBuf,
    /// The output directory (must not exist, be empty, or `force` must be set).
    pub output: PathBuf,
    /// Refuse to build if any input differs from the lock file.
    pub locked: bool,
    /// Replace an existing non-empty output directory.
    pub force: bool,
    /// Compressor threads (>= 1); does not change the output bytes.
    pub jobs: usize,
    /// Fail on any unwaived sealing-policy violation even if the recipe says `sealing.strict: false` (`--strict`).
    pub strict: bool,
    /// Record unwaived violations instead of failing (`--allow-unsealed`); the default is to fail.
    pub allow_unsealed: bool,
}

/// A stage of the build, for progress reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Reading and hashing the inputs.
    HashInputs,
    /// Writing and compressing the initrd.
    Initrd,
    /// Copying the kernel and firmware.
    Copy,
    /// Computing the launch measurements.
    Measure,
    /// Writing the manifest and the bundle.
    Bundle,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::HashInputs => "hashing inputs",
            Step::Initrd => "writing initrd",
            Step::Copy => "copying kernel and firmware",
            Step::Measure => "measuring",
            Step::Bundle => "writing bundle",
        })
    }
}

/// Receives progress from [`build_with_progress`]. All methods default to doing nothing.
pub trait Progress {
    /// A step starts; `total_bytes` is the amount of input it will read.
    fn begin(&self, _step: Step, _total_bytes: u64) {}
    /// `bytes` more were processed.
    fn advance(&self, _bytes: u64) {}
    /// The current step ended.
    fn end(&self) {}
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// What a successful build produced (the `--json` output of `cvmforge build`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildReport {
    /// Version of this report's layout.
    pub schema_version: u32,
    /// The recipe.
    pub recipe: RecipeRecord,
    /// The output directory as given.
    pub output_dir: String,
    /// Every file in the output directory (including the manifest and the bundle), sorted by name.
    pub outputs: Vec<OutputRecord>,
    /// Summary of the initrd.
    pub initrd: InitrdSummary,
    /// The kernel.
    pub kernel: KernelRecord,
    /// Launch measurements, one entry per platform, shape and vCPU count (as in the manifest).
    pub measurements: Measurements,
    /// The lock file.
    pub lock: LockSummary,
    /// Sealing warnings (unwaived violations outside strict mode, unused waivers), then measurement warnings
    /// (a guest policy that allows debugging or a migration agent, ...).
    pub warnings: Vec<String>,
    /// The sealing verdict in brief (the manifest's `sealing` section has the whole report).
    pub sealing: SealingSummary,
}

/// The sealing part of a [`BuildReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SealingSummary {
    /// `sealed`, `sealed-with-waivers` or `violations`.
    pub verdict: crate::policy::Verdict,
    /// Whether unwaived violations fail the build (`--strict` or `sealing.strict`).
    pub strict: bool,
    /// Number of unwaived violations.
    pub violations: usize,
    /// Number of waivers that matched a violation.
    pub waivers_applied: usize,
    /// Where the checked kernel configuration came from: `file`, `ikconfig` or `unavailable`.
    pub kernel_config: &'static str,
    /// Kernel modules placed in the initrd, in load order (names).
    pub modules: Vec<String>,
}

impl SealingSummary {
    fn of(outcome: &crate::sealing::SealOutcome) -> SealingSummary {
        let modules = outcome.modules.as_ref().map(|m| m.modules.iter().map(|e| e.name.clone()).collect());
        SealingSummary {
            verdict: outcome.policy.verdict,
            strict: outcome.strict,
            violations: outcome.policy.violations.len(),
            waivers_applied: outcome.policy.waivers_applied.len(),
            kernel_config: outcome.kernel_config.source,
            modules: modules.unwrap_or_default(),
        }
    }
}

/// The initrd part of a [`BuildReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InitrdSummary {
    /// Number of archive entries (without the trailer).
    pub entries: usize,
    /// The compressor.
    pub compression: CompressorInfo,
    /// SHA-256 of the uncompressed archive.
    pub uncompressed_sha256: String,
    /// Size of the uncompressed archive.
    pub uncompressed_size: u64,
}

/// The lock part of a [`BuildReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockSummary {
    /// The lock file path.
    pub path: String,
    /// `written`, `unchanged` or `verified` (with `--locked`).
    pub status: &'static str,
}

/// Why a build failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The recipe could not be loaded.
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    /// The image cannot start or is not sealed (strict mode).
    #[error(transparent)]
    Sealing(#[from] crate::sealing::SealError),
    /// The recipe file's name (relative to its tree) is not UTF-8, so the manifest cannot record it.
    #[error("recipe path `{}` is not UTF-8; the manifest records it as text", path.display())]
    RecipePathNotUtf8 {
        /// The path.
        path: PathBuf,
    },
    /// The recipe file ends in `.lock`, so its lock file would overwrite it.
    #[error("recipe `{}` ends in `.lock`; its lock file would overwrite it: rename it to `.yaml`", path.display())]
    RecipeNamedLikeLock {
        /// The recipe.
        path: PathBuf,
    },
    /// The recipe file is outside its own tree (`root:`).
    #[error("recipe `{}` is outside its tree `{}` (set by `root:`)", recipe.display(), root.display())]
    RecipeOutsideTree {
        /// The recipe.
        recipe: PathBuf,
        /// The tree.
        root: PathBuf,
    },
    /// The recipe's tree cannot be resolved.
    #[error("cannot use `{}` as the recipe's tree (`root:`)", path.display())]
    Root {
        /// The tree.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An input file does not exist.
    #[error("input `{role}`: file `{path}` not found (looked for `{}`)", resolved.display())]
    InputMissing {
        /// The input's role.
        role: String,
        /// As written in the recipe.
        path: String,
        /// Where it was looked for.
        resolved: PathBuf,
    },
    /// An input is a directory or a special file.
    #[error("input `{role}`: `{path}` is {found}, expected a regular file")]
    InputNotFile {
        /// The input's role.
        role: String,
        /// As written in the recipe.
        path: String,
        /// What it is.
        found: &'static str,
    },
    /// An input resolves outside the recipe's tree.
    #[error("input `{role}`: `{path}` resolves to `{}`, outside the recipe's tree `{}`; refused because `follow_symlinks` is false", resolved.display(), root.display())]
    InputOutsideTree {
        /// The input's role.
        role: String,
        /// As written in the recipe.
        path: String,
        /// Where it resolves to.
        resolved: PathBuf,
        /// The tree.
        root: PathBuf,
    },
    /// Reading an input failed.
    #[error("input `{role}`: cannot read `{path}`")]
    InputIo {
        /// The input's role.
        role: String,
        /// As written in the recipe.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An input's content changed between hashing and copying.
    #[error("input `{role}`: `{path}` changed while the build was reading it")]
    InputChanged {
        /// The input's role.
        role: String,
        /// As written in the recipe.
        path: String,
    },
    /// A VM shape cannot be measured (boxed: the measurement errors are large and rare).
    #[error(transparent)]
    Measure(Box<MeasureError>),
    /// The kernel is not a usable bzImage.
    #[error("kernel `{path}` cannot be used")]
    Kernel {
        /// As written in the recipe.
        path: String,
        /// Why.
        #[source]
        source: BzImageError,
    },
    /// The lock file is missing, unreadable, or differs.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The output directory exists and is not empty.
    #[error("output directory `{}` exists and is not empty", path.display())]
    OutputExists {
        /// The directory.
        path: PathBuf,
    },
    /// `--force` was given, but the output directory is not one that cvmforge wrote, so it is not replaced.
    #[error("refusing to replace `{}` with --force: {reason}; cvmforge replaces only an empty directory or an earlier output of its own", path.display())]
    OutputNotOurs {
        /// The directory.
        path: PathBuf,
        /// What was found there.
        reason: String,
    },
    /// The output path exists and is not a directory.
    #[error("output path `{}` exists and is not a directory", path.display())]
    OutputNotDirectory {
        /// The path.
        path: PathBuf,
    },
    /// The output path does not end in a directory name (`.`, `..`, `/`).
    #[error("output path `{}` must end in a directory name (not `.`, `..` or `/`)", path.display())]
    OutputPath {
        /// The path.
        path: PathBuf,
    },
    /// `--force` would delete the recipe or an input, which live inside the output directory.
    #[error("refusing to replace `{}`: it contains `{}`, which this build reads", output.display(), input.display())]
    OutputContainsInput {
        /// The output directory.
        output: PathBuf,
        /// The recipe or input inside it.
        input: PathBuf,
    },
    /// Writing an output failed.
    #[error("cannot write output `{}`", path.display())]
    Output {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing the initrd archive failed.
    #[error("cannot write the initrd archive")]
    Cpio(#[from] CpioError),
    /// Writing the bundle failed.
    #[error("cannot write the bundle")]
    Tar(#[from] TarError),
    /// A bug in cvmforge.
    #[error("internal error (a bug in cvmforge): inconsistent {what}")]
    Internal {
        /// What was inconsistent.
        what: &'static str,
    },
}

impl From<MeasureError> for BuildError {
    fn from(error: MeasureError) -> Self {
        BuildError::Measure(Box::new(error))
    }
}

/// Builds without progress reporting.
pub fn build(options: &BuildOptions) -> Result<BuildReport, BuildError> {
    build_with_progress(options, &NoProgress)
}

/// Builds, reporting progress to `progress`.
pub fn build_with_progress(options: &BuildOptions, progress: &dyn Progress) -> Result<BuildReport, BuildError> {
    let checked = check(options, progress)?;
    let parent = output::parent_of(&options.output)?;
    // Leftovers of earlier builds that were killed (SIGKILL cannot be cleaned up after), beside the output and the lock.
    let lock_dir = match checked.lock_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut stale = leftovers::remove_stale(&parent);
    if lock_dir != parent {
        stale.extend(leftovers::remove_stale(&lock_dir));
    }
    let stale_warnings: Vec<String> =
        stale.iter().map(|p| format!("removed `{}`, left by an earlier build that was killed", p.display())).collect();
    let staging = output::staging(&parent)?;
    test_hook_pause_after_staging();
    let written = write_outputs(&checked, staging.path(), options.jobs.max(1), progress)?;
    // Outputs and lock are one transaction: the lock is written to a temporary file beside it first, so that a lock
    // that cannot be written (a read-only recipe directory, a full disk) fails the build before any output appears.
    // Only the two renames are left after that.
    let lock = if options.locked { StagedLock::Verified } else { stage_lock(&checked.lock_path, &checked.lock)? };
    output::publish(staging, &options.output, &parent, checked.existing)?;
    let status = match lock.commit(&checked.lock_path) {
        Ok(status) => status,
        Err(e) => {
            // The rename failed after all: take back the output this build created, so that a rerun starts clean.
            if checked.existing != output::Existing::NonEmpty {
                let _ = std::fs::remove_dir_all(&options.output);
            }
            return Err(e);
        }
    };
    let manifest = written.manifest.clone();
    Ok(BuildReport {
        schema_version: 1,
        recipe: manifest.recipe,
        output_dir: options.output.display().to_string(),
        outputs: written.all_outputs,
        initrd: InitrdSummary {
            entries: manifest.initrd.entries.len(),
            compression: manifest.initrd.compression,
            uncompressed_sha256: manifest.initrd.uncompressed_sha256,
            uncompressed_size: manifest.initrd.uncompressed_size,
        },
        kernel: manifest.kernel,
        measurements: manifest.measurements,
        lock: LockSummary { path: checked.lock_path.display().to_string(), status },
        warnings: stale_warnings.iter().chain(&checked.sealed.warnings).chain(&written.warnings).cloned().collect(),
        sealing: SealingSummary::of(&checked.sealed),
    })
}

/// Everything known once the checks passed, before anything is written.
struct Checked {
    loaded: LoadedRecipe,
    layout: Layout,
    compression: Compression,
    existing: output::Existing,
    recipe_record: RecipeRecord,
    inputs: Vec<inputs::Input>,
    lock_path: PathBuf,
    lock: Lock,
    bzimage: BzImage,
    /// The sealing checks' outcome (policy report, staged kernel modules).
    sealed: crate::sealing::SealOutcome,
    /// The validated VM shapes to measure.
    plan: measure::Plan,
}

/// The outcome of [`write_outputs`].
struct Written {
    manifest: Manifest,
    /// Every file in the output directory, sorted by name.
    all_outputs: Vec<OutputRecord>,
    /// Warnings of the measurement step.
    warnings: Vec<String>,
}

/// The lock role of a kernel module: `module:<initrd path>`.
const MODULE_ROLE: &str = "module:";

/// Compares the entries whose role `part` selects, in the lock file and in this build.
fn check_lock(
    path: &Path,
    locked: &Lock,
    actual: &std::collections::BTreeMap<String, LockedInput>,
    part: impl Fn(&str) -> bool,
) -> Result<(), BuildError> {
    let select = |map: &std::collections::BTreeMap<String, LockedInput>| {
        map.iter().filter(|(role, _)| part(role)).map(|(r, i)| (r.clone(), i.clone())).collect()
    };
    let expected = Lock { inputs: select(&locked.inputs), ..locked.clone() };
    expected
        .check(&select(actual))
        .map_err(|differences| LockError::Differs { path: path.to_path_buf(), differences }.into())
}

/// Every check that can refuse the build, in an order that writes nothing: recipe, output target, inputs, lock,
/// kernel.
fn check(options: &BuildOptions, progress: &dyn Progress) -> Result<Checked, BuildError> {
    let loaded = Recipe::load(&options.recipe)?;
    let plan = measure::plan(&loaded)?;
    let mut layout = Layout::from_recipe(&loaded.recipe).map_err(|problem| invalid(&loaded, problem))?;
    let compression = loaded.recipe.compression().map_err(|problem| invalid(&loaded, problem))?;
    let existing = output::check_target(&options.output, options.force)?;
    let root = inputs::tree_root(&loaded)?;
    let recipe_record = recipe_record(&loaded, &root)?;
    let lock_path = Lock::path_for(&loaded.path);
    if lock_path == loaded.path {
        return Err(BuildError::RecipeNamedLikeLock { path: loaded.path.clone() });
    }
    let inputs = inputs::resolve_all(&loaded, &root, progress)?;
    let mut lock = Lock::new(&lock_recipe_name(&loaded)?);
    lock.inputs = inputs::as_lock(&inputs);
    lock.inputs.extend(plan.locked_keys());
    // `--locked` checks the recipe's inputs before anything reads them further, and the modules once the sealing step
    // has selected them (below).
    let locked = if options.locked { Some(Lock::read(&lock_path)?) } else { None };
    if let Some(locked) = &locked {
        check_lock(&lock_path, locked, &lock.inputs, |role| !role.starts_with(MODULE_ROLE))?;
    }
    if existing == output::Existing::NonEmpty {
        let read = inputs.iter().map(|i| i.resolved.clone()).chain(std::iter::once(root.join(&recipe_record.path)));
        output::check_not_inside(&options.output, read)?;
    }
    let bzimage = check_kernel(find(&inputs, "kernel")?)?;
    let sealed = seal(&loaded, &root, &layout, &inputs, options)?;
    // The lock covers every input byte that reaches an output: the recipe's inputs and the kernel modules that the
    // sealing step took from `kernel.modules.tree` (their bytes as they go into the initrd).
    lock.inputs.extend(sealed.module_files.iter().map(|m| {
        let locked = LockedInput { path: m.dest.clone(), sha256: m.sha256.clone(), size: m.bytes.len() as u64 };
        (format!("{MODULE_ROLE}{}", m.dest), locked)
    }));
    if let Some(locked) = &locked {
        check_lock(&lock_path, locked, &lock.inputs, |role| role.starts_with(MODULE_ROLE))?;
    }
    layout.add_modules(&sealed.module_files).map_err(|problem| invalid(&loaded, problem))?;
    Ok(Checked { loaded, layout, compression, existing, recipe_record, inputs, lock_path, lock, bzimage, sealed, plan })
}

/// Writes every output into the staging directory `dir`.
fn write_outputs(c: &Checked, dir: &Path, jobs: usize, progress: &dyn Progress) -> Result<Written, BuildError> {
    let recipe = &c.loaded.recipe;
    let files = recipe
        .initrd
        .files
        .iter()
        .map(|f| find(&c.inputs, &format!("file:{}", f.dst)))
        .collect::<Result<Vec<_>, _>>()?;
    let init = find(&c.inputs, "init")?;
    let modules = &c.sealed.module_files;
    let job = initrd::InitrdJob { recipe, layout: &c.layout, init, files, compression: c.compression, jobs, modules };
    let initrd = initrd::write(&job, &dir.join(INITRD_FILE), progress)?;
    let mut names = copy_inputs(&c.inputs, dir, progress)?;
    write_file(&dir.join(CMDLINE_FILE), recipe.kernel.cmdline.as_bytes())?;

    names.extend([INITRD_FILE.to_string(), CMDLINE_FILE.to_string()]);
    names.sort();
    let outputs = names.iter().map(|n| output_record(dir, n)).collect::<Result<Vec<_>, _>>()?;
    progress.begin(Step::Measure, 0);
    let (measurements, warnings) = measure_outputs(c, dir, &outputs)?;
    progress.end();
    progress.begin(Step::Bundle, 0);
    let manifest = Manifest {
        schema: MANIFEST_SCHEMA.to_string(),
        cvmforge_version: env!("CARGO_PKG_VERSION").to_string(),
        recipe: c.recipe_record.clone(),
        source_date_epoch: recipe.source_date_epoch,
        inputs: c.inputs.iter().map(inputs::Input::record).collect(),
        outputs,
        initrd: InitrdRecord {
            compression: compress::describe(&c.compression),
            uncompressed_sha256: hex::encode(initrd.uncompressed_sha256),
            uncompressed_size: initrd.uncompressed_size,
            entries: initrd.entries,
        },
        kernel: KernelRecord {
            boot_protocol: c.bzimage.protocol_string(),
            version: c.bzimage.kernel_version.clone(),
            cmdline: recipe.kernel.cmdline.clone(),
        },
        measurements,
        sealing: c.sealed.manifest_sealing(),
    };
    let manifest_json = manifest.to_json();
    // The same limit every reader applies: a manifest that `verify` or `inspect` would refuse is never written.
    if manifest_json.len() as u64 > crate::manifest::MAX_MANIFEST_SIZE {
        let source = std::io::Error::other(format!(
            "{} bytes is more than the manifest limit of {} bytes",
            manifest_json.len(),
            crate::manifest::MAX_MANIFEST_SIZE
        ));
        return Err(BuildError::Output { path: dir.join(MANIFEST_FILE), source });
    }
    write_file(&dir.join(MANIFEST_FILE), manifest_json.as_bytes())?;
    names.push(MANIFEST_FILE.to_string());
    names.sort();
    let bundle = format!("{}-{}.cvm.tar", recipe.name, recipe.version);
    write_bundle(dir, &bundle, &names, recipe.source_date_epoch)?;
    names.push(bundle);
    names.sort();
    let all_outputs = names.iter().map(|n| output_record(dir, n)).collect::<Result<Vec<_>, _>>()?;
    progress.end();
    Ok(Written { manifest, all_outputs, warnings })
}

/// The launch measurements of the staged outputs, reusing the digests already computed for them.
fn measure_outputs(
    c: &Checked,
    dir: &Path,
    outputs: &[OutputRecord],
) -> Result<(Measurements, Vec<String>), BuildError> {
    let initrd = outputs.iter().find(|o| o.name == INITRD_FILE).ok_or(BuildError::Internal { what: "outputs" })?;
    let mut initrd_sha256 = [0u8; 32];
    hex::decode_to_slice(&initrd.sha256, &mut initrd_sha256).map_err(|_| BuildError::Internal { what: "digest" })?;
    let sources = measure::Sources {
        dir,
        kernel_sha256: find(&c.inputs, "kernel")?.sha256,
        initrd_sha256,
        firmware_snp_sha256: c.inputs.iter().find(|i| i.role == "firmware:snp").map(|i| i.sha256),
        firmware_tdx_sha256: c.inputs.iter().find(|i| i.role == "firmware:tdx").map(|i| i.sha256),
        cmdline: &c.loaded.recipe.kernel.cmdline,
    };
    Ok(measure::measure(&c.plan, &sources)?)
}

/// Copies the kernel (`kernel`) and firmware (`firmware-<platform>.fd`); returns the names written.
fn copy_inputs(inputs: &[inputs::Input], dir: &Path, progress: &dyn Progress) -> Result<Vec<String>, BuildError> {
    let copies: Vec<(&inputs::Input, String)> = inputs
        .iter()
        .filter_map(|i| match i.role.as_str() {
            "kernel" => Some((i, KERNEL_FILE.to_string())),
            role => role.strip_prefix("firmware:").map(|p| (i, format!("firmware-{p}.fd"))),
        })
        .collect();
    progress.begin(Step::Copy, copies.iter().map(|(i, _)| i.size).sum());
    for (input, name) in &copies {
        copy_input(input, &dir.join(name), progress)?;
    }
    progress.end();
    Ok(copies.into_iter().map(|(_, n)| n).collect())
}

/// Runs the sealing checks over the recipe's layout and stages its kernel modules.
fn seal(
    loaded: &LoadedRecipe,
    root: &Path,
    layout: &Layout,
    inputs: &[inputs::Input],
    options: &BuildOptions,
) -> Result<crate::sealing::SealOutcome, BuildError> {
    use crate::recipe::dest::{FileSource, Kind};
    use crate::sealing::{Content, ModuleTree, SealEntry, SealEntryKind, SealInputs};
    use sha2::Digest;
    let recipe = &loaded.recipe;
    let kernel_input = find(inputs, "kernel")?;
    let kernel = crate::regular_file::read_input(&kernel_input.resolved)
        .map_err(|source| inputs::input_io(kernel_input, source))?;
    // The checks must see the kernel that was hashed (and will be copied).
    if <[u8; 32]>::from(sha2::Sha256::digest(&kernel)) != kernel_input.sha256 {
        let (role, path) = (kernel_input.role.clone(), kernel_input.path.clone());
        return Err(BuildError::InputChanged { role, path });
    }
    let init = find(inputs, "init")?;
    let modes: Vec<(String, u32)> = layout
        .entries
        .iter()
        .filter_map(|(dest, e)| match e.kind {
            Kind::Directory { mode, .. } | Kind::File { mode, .. } | Kind::CharDevice { mode, .. } => {
                Some((dest.clone(), mode))
            }
            _ => None,
        })
        .collect();
    let mut entries = Vec::with_capacity(layout.entries.len());
    for (dest, entry) in &layout.entries {
        let kind = match &entry.kind {
            Kind::Directory { .. } => SealEntryKind::Dir,
            Kind::CharDevice { .. } => SealEntryKind::Other,
            Kind::Symlink { target } => SealEntryKind::Symlink { target: target.clone() },
            Kind::File { source: FileSource::InitConfig, .. } => {
                SealEntryKind::File(Content::Bytes(recipe.init_config()))
            }
            Kind::File { source: FileSource::Init, .. } => SealEntryKind::File(Content::Path(init.resolved.clone())),
            Kind::File { source: FileSource::Payload(i), .. } => {
                let f = recipe.initrd.files.get(*i).ok_or(BuildError::Internal { what: "payload index" })?;
                let input = find(inputs, &format!("file:{}", f.dst))?;
                SealEntryKind::File(Content::Path(input.resolved.clone()))
            }
            Kind::File { source: FileSource::Module(_), .. } => continue,
        };
        entries.push(SealEntry { dest: dest.clone(), kind });
    }
    let config = match &recipe.kernel.config {
        Some(_) => Some(find(inputs, "kernel-config")?.resolved.clone()),
        None => None,
    };
    let tree = match &recipe.kernel.modules {
        Some(m) => Some(inputs::resolve_dir(loaded, root, "kernel.modules.tree", &m.tree)?),
        None => None,
    };
    let command = recipe.initrd.command.first().map(String::as_str).unwrap_or_default();
    Ok(crate::sealing::check(&SealInputs {
        kernel: &kernel,
        kernel_config: config.as_deref(),
        cmdline: &recipe.kernel.cmdline,
        entries: &entries,
        init: &init.resolved,
        command,
        modules: tree
            .as_deref()
            .zip(recipe.kernel.modules.as_ref())
            .map(|(tree, m)| ModuleTree { tree, load: &m.load }),
        sealing: &recipe.sealing,
        strict: options.strict,
        modes: &modes,
        allow_unsealed: options.allow_unsealed,
    })?)
}

fn invalid(loaded: &LoadedRecipe, problem: Problem) -> BuildError {
    BuildError::Recipe(RecipeError::Invalid { path: loaded.path.clone(), problem })
}

fn find<'a>(inputs: &'a [inputs::Input], role: &str) -> Result<&'a inputs::Input, BuildError> {
    inputs.iter().find(|i| i.role == role).ok_or(BuildError::Internal { what: "input roles" })
}

/// The recipe's identity for the manifest; its path is relative to the recipe's tree, so it does not depend on
/// where the tree is checked out or on the working directory.
fn recipe_record(loaded: &LoadedRecipe, root: &Path) -> Result<RecipeRecord, BuildError> {
    let dir = loaded.dir.canonicalize().map_err(|source| BuildError::Root { path: loaded.dir.clone(), source })?;
    let file_name = loaded.path.file_name().ok_or(BuildError::Internal { what: "recipe file name" })?;
    let full = dir.join(file_name);
    let relative = full
        .strip_prefix(root)
        .map_err(|_| BuildError::RecipeOutsideTree { recipe: loaded.path.clone(), root: root.to_path_buf() })?;
    let path = relative.to_str().ok_or_else(|| BuildError::RecipePathNotUtf8 { path: loaded.path.clone() })?;
    Ok(RecipeRecord {
        name: loaded.recipe.name.clone(),
        version: loaded.recipe.version.clone(),
        path: path.to_string(),
        sha256: hex::encode(loaded.sha256),
    })
}

fn lock_recipe_name(loaded: &LoadedRecipe) -> Result<String, BuildError> {
    let name = loaded.path.file_name().ok_or(BuildError::Internal { what: "recipe file name" })?;
    name.to_str().map(str::to_string).ok_or_else(|| BuildError::RecipePathNotUtf8 { path: loaded.path.clone() })
}

fn check_kernel(input: &inputs::Input) -> Result<BzImage, BuildError> {
    let mut head = Vec::new();
    inputs::open(input)?
        .take(KERNEL_HEADER_READ)
        .read_to_end(&mut head)
        .map_err(|source| inputs::input_io(input, source))?;
    BzImage::parse(&head).map_err(|source| BuildError::Kernel { path: input.path.clone(), source })
}

/// Copies an input, checking that its digest is still the one hashed earlier.
fn copy_input(input: &inputs::Input, to: &Path, progress: &dyn Progress) -> Result<(), BuildError> {
    let out_err = |source| BuildError::Output { path: to.to_path_buf(), source };
    let mut writer = hashing::HashWriter::new(File::create(to).map_err(out_err)?);
    let mut reader = hashing::ProgressReader { inner: inputs::open(input)?, progress };
    copy_blaming(&mut reader, &mut writer).map_err(|failure| match failure {
        CopyFailure::Read(source) => inputs::input_io(input, source),
        CopyFailure::Write(source) => out_err(source),
    })?;
    let (file, digest, size) = writer.into_parts();
    if digest != input.sha256 || size != input.size {
        return Err(BuildError::InputChanged { role: input.role.clone(), path: input.path.clone() });
    }
    file.sync_all().map_err(out_err)
}

/// Which side of a copy failed: a full output disk is the output's failure, not the input's.
#[derive(Debug)]
enum CopyFailure {
    Read(std::io::Error),
    Write(std::io::Error),
}

/// `io::copy` that says which side failed.
fn copy_blaming(reader: &mut dyn Read, writer: &mut dyn Write) -> Result<u64, CopyFailure> {
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyFailure::Read(e)),
        };
        writer.write_all(buf.get(..n).unwrap_or_default()).map_err(CopyFailure::Write)?;
        total += n as u64;
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    let out_err = |source| BuildError::Output { path: path.to_path_buf(), source };
    let mut file = File::create(path).map_err(out_err)?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(out_err)
}

fn output_record(dir: &Path, name: &str) -> Result<OutputRecord, BuildError> {
    let path = dir.join(name);
    let mut file = File::open(&path).map_err(|source| BuildError::Output { path: path.clone(), source })?;
    let (digest, size) =
        hashing::hash_reader(&mut file).map_err(|source| BuildError::Output { path: path.clone(), source })?;
    Ok(OutputRecord { name: name.to_string(), sha256: hex::encode(digest), size })
}

/// Writes the publishing tar: every named output, sorted, mode 0644, mtime `source_date_epoch`.
fn write_bundle(dir: &Path, bundle: &str, names: &[String], mtime: u32) -> Result<(), BuildError> {
    let path = dir.join(bundle);
    let out_err = |source| BuildError::Output { path: path.clone(), source };
    let mut tar = TarWriter::new(std::io::BufWriter::new(File::create(&path).map_err(out_err)?), u64::from(mtime));
    for name in names {
        let member = dir.join(name);
        let mut file = File::open(&member).map_err(|source| BuildError::Output { path: member.clone(), source })?;
        let size = file.metadata().map_err(|source| BuildError::Output { path: member.clone(), source })?.len();
        tar.add_file(name, 0o644, size, &mut file)?;
    }
    let writer = tar.finish()?;
    let file = writer.into_inner().map_err(|e| out_err(e.into_error()))?;
    file.sync_all().map_err(out_err)
}

/// Debug builds only (the integration tests): with `CVMFORGE_TEST_PAUSE_AFTER_STAGING=FILE`, create FILE once the
/// staging directory exists and wait there, so that a test can signal or kill a build at a known step without
/// depending on timing. Release builds never read it.
fn test_hook_pause_after_staging() {
    #[cfg(debug_assertions)]
    if let Some(marker) = std::env::var_os("CVMFORGE_TEST_PAUSE_AFTER_STAGING") {
        let _ = std::fs::write(&marker, b"paused");
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
}

/// A lock file ready to be put in place.
enum StagedLock {
    /// `--locked`: the lock was checked, not rewritten.
    Verified,
    /// The lock on disk already has these bytes.
    Unchanged,
    /// The new lock, written and synced beside its final path.
    Written(tempfile::NamedTempFile),
}

impl StagedLock {
    /// Renames a written lock into place (atomic within its directory).
    fn commit(self, path: &Path) -> Result<&'static str, BuildError> {
        match self {
            StagedLock::Verified => Ok("verified"),
            StagedLock::Unchanged => Ok("unchanged"),
            StagedLock::Written(tmp) => {
                let tmp_path = tmp.path().to_path_buf();
                tmp.persist(path).map_err(|e| lock_io(path, e.error))?;
                leftovers::unregister(&tmp_path);
                Ok("written")
            }
        }
    }
}

fn lock_io(path: &Path, source: std::io::Error) -> BuildError {
    BuildError::Lock(LockError::Io { action: "write", path: path.to_path_buf(), source })
}

/// Writes the lock's bytes to a temporary file beside `path`, unless the lock there already has them.
fn stage_lock(path: &Path, lock: &Lock) -> Result<StagedLock, BuildError> {
    let text = lock.to_json();
    let io = |source| lock_io(path, source);
    // Only the final rename is left after this, so anything that would make it fail is refused here.
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.is_file() => {
            return Err(io(std::io::Error::other("exists and is not a regular file, so it cannot be replaced")));
        }
        _ => {}
    }
    if std::fs::read(path).is_ok_and(|old| old == text.as_bytes()) {
        return Ok(StagedLock::Unchanged);
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp =
        tempfile::Builder::new().prefix(&leftovers::prefix(".cvmforge-lock-")).tempfile_in(dir).map_err(io)?;
    leftovers::register(tmp.path());
    tmp.write_all(text.as_bytes()).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    // tempfile creates 0600 files; a lock file is meant to be committed and read by everyone.
    std::fs::set_permissions(tmp.path(), std::os::unix::fs::PermissionsExt::from_mode(0o644)).map_err(io)?;
    Ok(StagedLock::Written(tmp))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rewrites an input as soon as the initrd step starts, i.e. after the staging directory exists.
    struct Sabotage {
        path: PathBuf,
    }

    impl Progress for Sabotage {
        fn begin(&self, step: Step, _total: u64) {
            if step == Step::Initrd {
                std::fs::write(&self.path, b"a different payload").unwrap();
            }
        }
    }

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let mut kernel = vec![0u8; 0x400];
        kernel[0x202..0x206].copy_from_slice(b"HdrS");
        kernel[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
        std::fs::write(dir.path().join("vmlinuz"), kernel).unwrap();
        std::fs::write(dir.path().join("init"), crate::elf::testing::executable(None)).unwrap();
        std::fs::write(dir.path().join("app"), crate::elf::testing::executable(None)).unwrap();
        let recipe = "name: t\nversion: '1'\nsource_date_epoch: 0\nkernel: {path: vmlinuz}\n\
            initrd: {init: init, command: [/app], user: 1000, files: [{src: app, dst: /app}]}\n";
        std::fs::write(dir.path().join("t.yaml"), recipe).unwrap();
        dir
    }

    fn options(dir: &Path) -> BuildOptions {
        BuildOptions {
            recipe: dir.join("t.yaml"),
            output: dir.join("out"),
            locked: false,
            force: false,
            jobs: 2,
            strict: false,
            // The fake kernel has no readable configuration: these tests are about the output, not the policy.
            allow_unsealed: true,
        }
    }

    /// Issue 11, item 13: a full output disk is reported as the output's failure, not as a failure to read an input.
    #[test]
    fn a_failed_write_is_blamed_on_the_output() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::from_raw_os_error(28)) // ENOSPC
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let failure = copy_blaming(&mut &b"kernel bytes"[..], &mut Full).unwrap_err();
        assert!(matches!(&failure, CopyFailure::Write(e) if e.raw_os_error() == Some(28)), "{failure:?}");
        let mut out = Vec::new();
        assert_eq!(copy_blaming(&mut &b"kernel bytes"[..], &mut out).unwrap(), 12);
        assert_eq!(out, b"kernel bytes");
    }

    #[test]
    fn rejects_input_that_changes_during_the_build_and_leaves_nothing() {
        let dir = tree();
        let err = build_with_progress(&options(dir.path()), &Sabotage { path: dir.path().join("app") }).unwrap_err();
        assert_eq!(err.to_string(), "input `file:/app`: `app` changed while the build was reading it");
        let mut left: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, ["app", "init", "t.yaml", "vmlinuz"], "no output, staging directory or lock file");
    }

    #[test]
    fn failed_forced_build_keeps_the_previous_output() {
        let dir = tree();
        build(&options(dir.path())).unwrap();
        let before = std::fs::read(dir.path().join("out/manifest.json")).unwrap();
        let forced = BuildOptions { force: true, ..options(dir.path()) };
        build_with_progress(&forced, &Sabotage { path: dir.path().join("app") }).unwrap_err();
        assert_eq!(std::fs::read(dir.path().join("out/manifest.json")).unwrap(), before);
    }
}
