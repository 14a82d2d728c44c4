//! The inputs of a verification: found at the recipe's own paths (hashed while the bundle is read) or, by SHA-256,
//! among the files of the `--inputs` directories, and checked against the manifest's digests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::staging::input_paths;
use super::{InputCheck, Status, VerifyError};
use crate::manifest::InputRecord;
use crate::recipe::Recipe;
use crate::sys::io::sha256_file;

/// Checks every input; returns the checks and, for the inputs found, where to read them (by role).
pub(super) fn check_inputs(
    records: &[InputRecord],
    loaded: &crate::recipe::LoadedRecipe,
    search: &[PathBuf],
    prehashed: &Prehashed,
) -> Result<(Vec<InputCheck>, BTreeMap<String, PathBuf>), VerifyError> {
    // Each input is looked for where the recipe (not the untrusted manifest) puts it.
    let recipe_paths: BTreeMap<String, String> = input_paths(&loaded.recipe).into_iter().collect();
    let mut checks = Vec::with_capacity(records.len());
    let mut sources = BTreeMap::new();
    let mut index: Option<BTreeMap<String, PathBuf>> = None;
    for record in records {
        let at_recipe = recipe_paths.get(&record.role).map(|p| loaded.dir.join(p));
        let actual = match at_recipe.as_ref().filter(|p| p.is_file()) {
            Some(path) => match prehashed.get(&record.role) {
                Some((hashed, digest)) if hashed == path => Some(digest.clone()),
                _ => Some(hex::encode(hash_file(path)?.0)),
            },
            None => None,
        };
        let mut check = InputCheck {
            role: record.role.clone(),
            path: record.path.clone(),
            status: Status::Ok,
            expected_sha256: record.sha256.clone(),
            expected_size: record.size,
            actual_sha256: None,
            found_at: None,
        };
        if let Some(at_recipe) = at_recipe.filter(|_| actual.as_deref() == Some(record.sha256.as_str())) {
            sources.insert(record.role.clone(), at_recipe);
        } else {
            let index = match &mut index {
                Some(index) => index,
                None => index.insert(index_inputs(search, records)?),
            };
            if let Some(found) = index.get(&record.sha256) {
                check.found_at = Some(found.display().to_string());
                sources.insert(record.role.clone(), found.clone());
            } else {
                check.status = if actual.is_some() { Status::Differs } else { Status::Missing };
                check.actual_sha256 = actual;
            }
        }
        checks.push(check);
    }
    Ok((checks, sources))
}

/// Digests (hex) of the recipe's inputs at the recipe's paths, by role, with the path hashed.
pub(super) type Prehashed = BTreeMap<String, (PathBuf, String)>;

/// Hashes every input the recipe names that exists; anything unreadable is left to [`check_inputs`] to report.
pub(super) fn prehash(recipe: &Path) -> Prehashed {
    let Ok(loaded) = Recipe::load(recipe) else { return Prehashed::new() };
    input_paths(&loaded.recipe)
        .into_iter()
        .filter_map(|(role, rel)| {
            let path = loaded.dir.join(rel);
            let (digest, _) = hash_file(&path).ok()?;
            Some((role, (path, hex::encode(digest))))
        })
        .collect()
}

/// Hashes the files under the `--inputs` directories whose size matches some input, indexed by SHA-256.
pub(super) fn index_inputs(
    dirs: &[PathBuf],
    records: &[InputRecord],
) -> Result<BTreeMap<String, PathBuf>, VerifyError> {
    let sizes: BTreeSet<u64> = records.iter().map(|r| r.size).collect();
    let mut index = BTreeMap::new();
    let mut pending: Vec<PathBuf> = dirs.to_vec();
    while let Some(dir) = pending.pop() {
        let io = |source| VerifyError::Io { path: dir.clone(), source };
        let mut entries: Vec<PathBuf> =
            fs_err::read_dir(&dir).map_err(io)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>().map_err(io)?;
        entries.sort();
        for path in entries {
            // Symlinked directories are not descended into (no loops); symlinked files are hashed.
            let link =
                fs_err::symlink_metadata(&path).map_err(|source| VerifyError::Io { path: path.clone(), source })?;
            if link.is_dir() {
                pending.push(path);
                continue;
            }
            let Ok(meta) = std::fs::metadata(&path) else { continue };
            if meta.is_file() && sizes.contains(&meta.len()) {
                let (digest, _) = hash_file(&path)?;
                index.entry(hex::encode(digest)).or_insert(path);
            }
        }
    }
    Ok(index)
}

/// SHA-256 and size of a file.
pub(super) fn hash_file(path: &Path) -> Result<([u8; 32], u64), VerifyError> {
    sha256_file(path).map_err(|source| VerifyError::Io { path: path.to_path_buf(), source })
}
