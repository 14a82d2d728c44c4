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

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::format::bzimage::BzImage;
use crate::format::compress::Compression;
use crate::manifest::RecipeRecord;
use crate::recipe::dest::Layout;
use crate::recipe::lock::{Lock, LockedInput};
use crate::recipe::{LoadedRecipe, Problem, Recipe, RecipeError};

mod error;
mod hashing;
mod initrd;
mod inputs;
pub mod leftovers;
mod locking;
pub mod measure;
mod output;
mod report;
mod sealing;
pub mod volume;
mod write;

pub use error::BuildError;
pub use report::{BuildReport, InitrdSummary, LockSummary, SealingSummary};

use locking::{check_lock, lock_recipe_name, stage_lock, StagedLock, MODULE_ROLE};
use sealing::seal;
use write::write_outputs;

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
    // The volumes' files are hashed while their images are written, so they join the lock (or are checked against
    // it) only now, before anything is published.
    let volume_lock = volume::lock_entries(&checked.loaded.recipe, &written.manifest.volumes);
    if let Some(locked) = &checked.locked {
        check_lock(&checked.lock_path, locked, &volume_lock, |role| role.starts_with(volume::LOCK_ROLE))?;
    }
    let mut full_lock = checked.lock.clone();
    full_lock.inputs.extend(volume_lock);
    // Outputs and lock are one transaction: the lock is written to a temporary file beside it first, so that a lock
    // that cannot be written (a read-only recipe directory, a full disk) fails the build before any output appears.
    // Only the two renames are left after that.
    let lock = if options.locked { StagedLock::Verified } else { stage_lock(&checked.lock_path, &full_lock)? };
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
    sealed: crate::seal::check::SealOutcome,
    /// The validated VM shapes to measure.
    plan: measure::Plan,
    /// The data volumes' files, walked but not yet read.
    volumes: Vec<volume::PlannedVolume>,
    /// With `--locked`: the lock file read before the build.
    locked: Option<Lock>,
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
        let later = |role: &str| role.starts_with(MODULE_ROLE) || role.starts_with(volume::LOCK_ROLE);
        check_lock(&lock_path, locked, &lock.inputs, |role| !later(role))?;
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
    layout
        .add_modules(sealed.module_files.iter().map(|m| (m.dest.as_str(), m.mode)))
        .map_err(|problem| invalid(&loaded, problem))?;
    crate::recipe::volume::check_hidden(&layout, &loaded.recipe.volumes)
        .map_err(|problem| invalid(&loaded, problem))?;
    let volumes = volume::plan_all(&loaded, &root)?;
    Ok(Checked {
        loaded,
        layout,
        compression,
        existing,
        recipe_record,
        inputs,
        lock_path,
        lock,
        bzimage,
        sealed,
        plan,
        volumes,
        locked,
    })
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

fn check_kernel(input: &inputs::Input) -> Result<BzImage, BuildError> {
    let mut head = Vec::new();
    inputs::open(input)?
        .take(KERNEL_HEADER_READ)
        .read_to_end(&mut head)
        .map_err(|source| inputs::input_io(input, source))?;
    BzImage::parse(&head).map_err(|source| BuildError::Kernel { path: input.path.clone(), source })
}

/// Debug builds only (the integration tests): with `CVMFORGE_TEST_PAUSE_AFTER_STAGING=FILE`, create FILE once the
/// staging directory exists and wait there until FILE is removed (at most a minute), so that a test can signal, kill
/// or change the inputs of a build at a known step without depending on timing. Release builds never read it.
fn test_hook_pause_after_staging() {
    #[cfg(debug_assertions)]
    if let Some(marker) = std::env::var_os("CVMFORGE_TEST_PAUSE_AFTER_STAGING") {
        let _ = std::fs::write(&marker, b"paused");
        // Resumes when the test removes the marker (or after a minute).
        for _ in 0..3000 {
            if !std::path::Path::new(&marker).exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::write::{copy_blaming, CopyFailure};
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
        std::fs::write(dir.path().join("init"), crate::format::elf::testing::executable(None)).unwrap();
        std::fs::write(dir.path().join("app"), crate::format::elf::testing::executable(None)).unwrap();
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
