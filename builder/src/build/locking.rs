//! The lock file of a build: comparing the inputs with `<stem>.lock` (`--locked`), and writing the new lock in one
//! transaction with the outputs (staged beside it, renamed after the output directory).

use std::io::Write;
use std::path::Path;

use super::{leftovers, BuildError};
use crate::recipe::lock::{Lock, LockError, LockedInput};
use crate::recipe::LoadedRecipe;

/// The lock role of a kernel module: `module:<initrd path>`.
pub(super) const MODULE_ROLE: &str = "module:";

/// Compares the entries whose role `part` selects, in the lock file and in this build.
pub(super) fn check_lock(
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

pub(super) fn lock_recipe_name(loaded: &LoadedRecipe) -> Result<String, BuildError> {
    let name = loaded.path.file_name().ok_or(BuildError::Internal { what: "recipe file name" })?;
    name.to_str().map(str::to_string).ok_or_else(|| BuildError::RecipePathNotUtf8 { path: loaded.path.clone() })
}

/// A lock file ready to be put in place.
pub(super) enum StagedLock {
    /// `--locked`: the lock was checked, not rewritten.
    Verified,
    /// The lock on disk already has these bytes.
    Unchanged,
    /// The new lock, written and synced beside its final path.
    Written(tempfile::NamedTempFile),
}

impl StagedLock {
    /// Renames a written lock into place (atomic within its directory).
    pub(super) fn commit(self, path: &Path) -> Result<&'static str, BuildError> {
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

pub(super) fn lock_io(path: &Path, source: std::io::Error) -> BuildError {
    BuildError::Lock(LockError::Io { action: "write", path: path.to_path_buf(), source })
}

/// Writes the lock's bytes to a temporary file beside `path`, unless the lock there already has them.
pub(super) fn stage_lock(path: &Path, lock: &Lock) -> Result<StagedLock, BuildError> {
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
