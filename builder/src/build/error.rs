//! Why a build failed: [`BuildError`], one variant per stage, each naming the file or field concerned.

use std::path::PathBuf;

use thiserror::Error;

use super::measure::MeasureError;
use crate::format::bzimage::BzImageError;
use crate::format::cpio::CpioError;
use crate::format::tar::TarError;
use crate::recipe::lock::LockError;
use crate::recipe::RecipeError;

/// Why a build failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The recipe could not be loaded.
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    /// The image cannot start or is not sealed (strict mode).
    #[error(transparent)]
    Sealing(#[from] crate::seal::check::SealError),
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
    /// A data volume could not be planned or written.
    #[error("volume `{name}` ({field}) cannot be built")]
    Volume {
        /// `volumes[i]`.
        field: String,
        /// The volume's name.
        name: String,
        /// What went wrong.
        source: super::volume::VolumeError,
    },
    /// The kernel command line with the volumes' parameters is too long.
    #[error("the kernel command line with the `cvm.volume=` parameters is {len} bytes; x86 takes at most 2047")]
    CmdlineTooLong {
        /// Its length.
        len: usize,
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

impl BuildError {
    /// What the user can do about this error, when there is a usual remedy (printed as `hint:` by the CLI).
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            BuildError::OutputExists { .. } => Some("pass --force to replace it, or choose another -o directory"),
            BuildError::InputOutsideTree { .. } => Some(
                "set `root:` in the recipe to a directory that contains the input, or `follow_symlinks: true` to allow it",
            ),
            BuildError::Lock(LockError::Differs { .. }) => Some(
                "if the new inputs are intended, build once without --locked to update the lock file, and commit it",
            ),
            BuildError::Lock(LockError::Missing { .. }) => {
                Some("build once without --locked to create the lock file, and commit it")
            }
            _ => None,
        }
    }
}
