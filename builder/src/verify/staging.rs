//! The staging tree of a verification: the recipe and its inputs, hard-linked (else copied) into a temporary tree that
//! mirrors the recipe's relative paths, so that the rebuild writes nothing next to the user's files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use super::VerifyError;
use crate::manifest::Manifest;
use crate::recipe::Recipe;

/// Writes the recipe at its tree-relative path inside `stage` and links every input (and the kernel module tree) at
/// the path the recipe names; returns the staged recipe.
pub(super) fn stage_tree(
    stage: &Path,
    recipe_rel: &str,
    recipe_bytes: &[u8],
    loaded: &crate::recipe::LoadedRecipe,
    sources: &BTreeMap<String, PathBuf>,
    modules: Option<&BTreeSet<String>>,
) -> Result<PathBuf, VerifyError> {
    let staged_recipe = confined(stage, Path::new(recipe_rel), "recipe path", recipe_rel)?;
    let recipe_dir = staged_recipe.parent().unwrap_or(stage).to_path_buf();
    write_staged(&staged_recipe, recipe_bytes)?;
    let paths = input_paths(&loaded.recipe);
    for (role, path) in &paths {
        let Some(source) = sources.get(role) else { continue };
        let dest = confined(stage, &recipe_dir.strip_prefix(stage).unwrap_or(Path::new("")).join(path), role, path)?;
        link_or_copy(source, &dest)?;
    }
    if let Some(spec) = &loaded.recipe.kernel.modules {
        let rel = recipe_dir.strip_prefix(stage).unwrap_or(Path::new("")).join(&spec.tree);
        let dest = confined(stage, &rel, "kernel.modules.tree", &spec.tree)?;
        let from = loaded.dir.join(&spec.tree);
        copy_tree(&from, &from, &dest, modules)?;
    }
    // Data volumes: their files are not recipe inputs (the manifest pins them by path and digest per volume, and
    // the rebuilt root hash must match), so they are staged from the recipe's own paths.
    let rel_dir = recipe_dir.strip_prefix(stage).unwrap_or(Path::new("")).to_path_buf();
    for (i, v) in loaded.recipe.volumes.iter().enumerate() {
        if let Some(source) = &v.source {
            let dest = confined(stage, &rel_dir.join(source), &format!("volumes[{i}].source"), source)?;
            let from = loaded.dir.join(source);
            copy_tree(&from, &from, &dest, None)?;
        }
        for (j, f) in v.files.iter().enumerate() {
            let dest = confined(stage, &rel_dir.join(&f.src), &format!("volumes[{i}].files[{j}].src"), &f.src)?;
            link_or_copy(&loaded.dir.join(&f.src), &dest)?;
        }
    }
    Ok(staged_recipe)
}

/// The module files (`source`, relative to `lib/modules/<release>`) the published manifest put into the initrd.
/// Staging only those, and not the thousands of other modules of a distribution kernel package, keeps verify close to
/// the cost of a build; a rebuild that needs any other module then fails naming it.
pub(super) fn published_module_sources(manifest: &Manifest) -> Option<BTreeSet<String>> {
    let list = manifest.sealing.get("modules")?.get("modules")?.as_array()?;
    list.iter().map(|m| m.get("source").and_then(|s| s.as_str()).map(str::to_owned)).collect()
}

/// True for a kernel module file (`.ko`, possibly compressed).
pub(super) fn is_module_file(name: &str) -> bool {
    [".ko", ".ko.xz", ".ko.zst", ".ko.gz"].iter().any(|ext| name.ends_with(ext))
}

/// The recipe's input paths by role (the same roles the build records in the manifest).
pub(super) fn input_paths(r: &Recipe) -> Vec<(String, String)> {
    let mut roles = vec![("kernel".to_string(), r.kernel.path.clone()), ("init".to_string(), r.initrd.init.clone())];
    roles.extend(r.kernel.config.iter().map(|p| ("kernel-config".to_string(), p.clone())));
    roles.extend(r.initrd.files.iter().map(|f| (format!("file:{}", f.dst), f.src.clone())));
    roles.extend(r.firmware.snp.iter().map(|p| ("firmware:snp".to_string(), p.clone())));
    roles.extend(r.firmware.tdx.iter().map(|p| ("firmware:tdx".to_string(), p.clone())));
    roles
}

/// `stage/rel`, normalised lexically; refused if it is absolute or climbs out of `stage`.
pub(super) fn confined(stage: &Path, rel: &Path, what: &str, shown: &str) -> Result<PathBuf, VerifyError> {
    let outside = || VerifyError::OutsideTree { what: what.to_string(), path: shown.to_string() };
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for component in rel.components() {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop().ok_or_else(outside)?;
            }
            Component::RootDir | Component::Prefix(_) => return Err(outside()),
        }
    }
    if parts.is_empty() {
        return Err(outside());
    }
    Ok(parts.iter().fold(stage.to_path_buf(), |path, part| path.join(part)))
}

pub(super) fn write_staged(path: &Path, bytes: &[u8]) -> Result<(), VerifyError> {
    let err = |source| VerifyError::Stage { path: path.to_path_buf(), source };
    if let Some(parent) = path.parent() {
        fs_err::create_dir_all(parent).map_err(err)?;
    }
    fs_err::write(path, bytes).map_err(err)
}

/// Hard-links `from` at `to` (no copy of large inputs), else copies it; an existing `to` (two roles naming one file)
/// is kept.
pub(super) fn link_or_copy(from: &Path, to: &Path) -> Result<(), VerifyError> {
    let err = |source| VerifyError::Stage { path: to.to_path_buf(), source };
    if to.exists() {
        return Ok(());
    }
    if let Some(parent) = to.parent() {
        fs_err::create_dir_all(parent).map_err(err)?;
    }
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    fs_err::copy(from, to).map(drop).map_err(err)
}

/// Mirrors the tree `from` at `to` with hard links; with `wanted`, module files other than those listed are skipped.
/// Directories are made only where a file is linked (`link_or_copy`): a distribution kernel has about a thousand.
pub(super) fn copy_tree(
    root: &Path,
    from: &Path,
    to: &Path,
    wanted: Option<&BTreeSet<String>>,
) -> Result<(), VerifyError> {
    let io = |source| VerifyError::Io { path: from.to_path_buf(), source };
    for entry in fs_err::read_dir(from).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        let meta = fs_err::metadata(&path).map_err(|source| VerifyError::Io { path: path.clone(), source })?;
        if meta.is_dir() {
            copy_tree(root, &path, &to.join(entry.file_name()), wanted)?;
        } else if meta.is_file() && is_wanted(root, &path, wanted) {
            link_or_copy(&path, &to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

/// Whether `path` (under `root`) is staged: every file but modules that the manifest does not list.
pub(super) fn is_wanted(root: &Path, path: &Path, wanted: Option<&BTreeSet<String>>) -> bool {
    let Some(wanted) = wanted else { return true };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if !is_module_file(name) {
        return true;
    }
    let rel = path.strip_prefix(root).unwrap_or(path).to_string_lossy().into_owned();
    wanted.iter().any(|source| rel == *source || rel.ends_with(&format!("/{source}")))
}
