//! Atomic output: the build writes into a temporary directory beside the target and renames it into place, so a
//! failed build leaves no output directory and a reader never sees a half-written one.

use std::fs;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::BuildError;

/// Prefix of the staging directory.
pub(crate) const STAGING_PREFIX: &str = ".cvmforge-tmp-";
/// Prefix of the directory an existing output is moved to during `--force`.
pub(crate) const OLD_PREFIX: &str = ".cvmforge-old-";

/// The state of the target before the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Existing {
    /// Nothing there.
    Absent,
    /// An empty directory (rename replaces it).
    Empty,
    /// A non-empty directory (only with `--force`).
    NonEmpty,
}

/// Checks the target: a non-empty directory needs `force`; anything that is not a directory is refused.
pub(crate) fn check_target(target: &Path, force: bool) -> Result<Existing, BuildError> {
    if !matches!(target.components().next_back(), Some(std::path::Component::Normal(_))) {
        return Err(BuildError::OutputPath { path: target.to_path_buf() });
    }
    let metadata = match fs::symlink_metadata(target) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Existing::Absent),
        Err(source) => return Err(BuildError::Output { path: target.to_path_buf(), source }),
    };
    if !metadata.is_dir() {
        return Err(BuildError::OutputNotDirectory { path: target.to_path_buf() });
    }
    let mut entries =
        fs::read_dir(target).map_err(|source| BuildError::Output { path: target.to_path_buf(), source })?;
    match entries.next() {
        None => Ok(Existing::Empty),
        Some(_) if force => {
            check_ours(target)?;
            Ok(Existing::NonEmpty)
        }
        Some(_) => Err(BuildError::OutputExists { path: target.to_path_buf() }),
    }
}

/// The largest `manifest.json` that `--force` reads to recognise an earlier output (the limit `verify` applies).
const MAX_MANIFEST: u64 = crate::manifest::MAX_MANIFEST_SIZE;

/// `--force` replaces (and so deletes) only what cvmforge wrote: a directory whose `manifest.json` has cvmforge's
/// schema and which holds nothing but the regular files that manifest lists (its outputs and the bundle). Anything
/// else (a signing key, a symlink, a foreign directory) is refused and named, so that nothing is deleted by mistake.
fn check_ours(target: &Path) -> Result<(), BuildError> {
    let refuse = |reason: String| BuildError::OutputNotOurs { path: target.to_path_buf(), reason };
    let manifest_path = target.join("manifest.json");
    let text = crate::manifest::read_manifest_file(&manifest_path, MAX_MANIFEST)
        .map_err(|e| refuse(format!("it has no readable cvmforge `manifest.json` ({e})")))?;
    let manifest = crate::manifest::Manifest::from_json(&text)
        .map_err(|e| refuse(format!("its `manifest.json` is not a cvmforge manifest ({e})")))?;
    let mut ours: std::collections::BTreeSet<String> = manifest.outputs.iter().map(|o| o.name.clone()).collect();
    ours.insert("manifest.json".to_string());
    ours.insert(format!("{}-{}.cvm.tar", manifest.recipe.name, manifest.recipe.version));
    let entries = fs::read_dir(target).map_err(|source| BuildError::Output { path: target.to_path_buf(), source })?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| BuildError::Output { path: target.to_path_buf(), source })?;
        let file_type = entry.file_type().map_err(|source| BuildError::Output { path: entry.path(), source })?;
        names.push((entry.file_name(), file_type));
    }
    names.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, file_type) in names {
        let shown = crate::display::untrusted(&name.to_string_lossy()).to_string();
        let listed = name.to_str().is_some_and(|n| ours.contains(n));
        if !listed {
            return Err(refuse(format!("`{shown}` is not an output its manifest lists")));
        }
        if !file_type.is_file() {
            return Err(refuse(format!("`{shown}` is not a regular file")));
        }
    }
    Ok(())
}

/// Refuses to replace an output directory that holds the recipe or an input (`-o . --force` in the source tree).
pub(crate) fn check_not_inside(target: &Path, read: impl Iterator<Item = PathBuf>) -> Result<(), BuildError> {
    let output = target.canonicalize().map_err(|source| BuildError::Output { path: target.to_path_buf(), source })?;
    for input in read {
        if input.starts_with(&output) {
            return Err(BuildError::OutputContainsInput { output: target.to_path_buf(), input });
        }
    }
    Ok(())
}

/// The directory that will hold the output (created if missing).
pub(crate) fn parent_of(target: &Path) -> Result<PathBuf, BuildError> {
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(|source| BuildError::Output { path: parent.clone(), source })?;
    Ok(parent)
}

/// Creates the staging directory beside the target.
pub(crate) fn staging(parent: &Path) -> Result<TempDir, BuildError> {
    let dir = tempfile::Builder::new()
        .prefix(&super::leftovers::prefix(STAGING_PREFIX))
        .tempdir_in(parent)
        .map_err(|source| BuildError::Output { path: parent.to_path_buf(), source })?;
    super::leftovers::register(dir.path());
    Ok(dir)
}

/// Moves the finished staging directory to `target`, replacing an existing one when `existing` is `NonEmpty`.
pub(crate) fn publish(staging: TempDir, target: &Path, parent: &Path, existing: Existing) -> Result<(), BuildError> {
    set_mode(staging.path(), 0o755)
        .map_err(|source| BuildError::Output { path: staging.path().to_path_buf(), source })?;
    let error = |source| BuildError::Output { path: target.to_path_buf(), source };
    if existing != Existing::NonEmpty {
        // rename(2) onto an empty directory replaces it; onto a non-empty one (created meanwhile) it fails.
        fs::rename(staging.path(), target).map_err(error)?;
        super::leftovers::unregister(staging.path());
        let _ = staging.keep();
        return Ok(());
    }
    let old = tempfile::Builder::new()
        .prefix(&super::leftovers::prefix(OLD_PREFIX))
        .tempdir_in(parent)
        .map_err(|source| BuildError::Output { path: parent.to_path_buf(), source })?;
    super::leftovers::register(old.path());
    // `old` is an empty directory, so the existing output can be renamed onto it.
    fs::rename(target, old.path()).map_err(error)?;
    if let Err(source) = fs::rename(staging.path(), target) {
        let _ = fs::rename(old.path(), target);
        super::leftovers::unregister(old.path());
        let _ = old.keep();
        return Err(error(source));
    }
    super::leftovers::unregister(staging.path());
    let _ = staging.keep();
    // Dropping `old` deletes the previous output.
    let old_path = old.path().to_path_buf();
    drop(old);
    super::leftovers::unregister(&old_path);
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}
