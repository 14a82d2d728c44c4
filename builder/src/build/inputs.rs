//! Resolving, confining and hashing the recipe's input files.
//!
//! An input's path is relative to the recipe file. It must resolve (after following symlinks and `..`) inside the
//! recipe's tree (`root:`, default the recipe's directory) unless the recipe sets `follow_symlinks: true`: a build
//! that silently reads `/etc/shadow` through a planted symlink is not reproducible by anyone else.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use super::hashing::ProgressReader;
use super::{BuildError, Progress, Step};
use crate::manifest::InputRecord;
use crate::recipe::lock::LockedInput;
use crate::recipe::LoadedRecipe;
use crate::sys::io::sha256_of;

/// One input file, resolved and hashed.
#[derive(Debug, Clone)]
pub(crate) struct Input {
    /// `kernel`, `init`, `file:/dst`, `firmware:snp`, `firmware:tdx`.
    pub(crate) role: String,
    /// As written in the recipe.
    pub(crate) path: String,
    /// Where it was read from (never recorded in outputs).
    pub(crate) resolved: PathBuf,
    /// SHA-256 of the content when it was hashed.
    pub(crate) sha256: [u8; 32],
    /// Size when it was hashed.
    pub(crate) size: u64,
}

impl Input {
    /// The manifest's record of this input.
    pub(crate) fn record(&self) -> InputRecord {
        InputRecord {
            role: self.role.clone(),
            path: self.path.clone(),
            sha256: hex::encode(self.sha256),
            size: self.size,
        }
    }

    /// The lock-file view of this input.
    pub(crate) fn locked(&self) -> LockedInput {
        LockedInput { path: self.path.clone(), sha256: hex::encode(self.sha256), size: self.size }
    }
}

/// The recipe's inputs in recipe order: kernel, init, files, firmware.
pub(crate) fn roles(loaded: &LoadedRecipe) -> Vec<(String, String)> {
    let r = &loaded.recipe;
    let mut roles = vec![("kernel".to_string(), r.kernel.path.clone()), ("init".to_string(), r.initrd.init.clone())];
    if let Some(p) = &r.kernel.config {
        roles.push(("kernel-config".to_string(), p.clone()));
    }
    for f in &r.initrd.files {
        roles.push((format!("file:{}", f.dst), f.src.clone()));
    }
    if let Some(p) = &r.firmware.snp {
        roles.push(("firmware:snp".to_string(), p.clone()));
    }
    if let Some(p) = &r.firmware.tdx {
        roles.push(("firmware:tdx".to_string(), p.clone()));
    }
    roles
}

/// The canonical recipe tree.
pub(crate) fn tree_root(loaded: &LoadedRecipe) -> Result<PathBuf, BuildError> {
    let root = loaded.dir.join(loaded.recipe.root.as_deref().unwrap_or("."));
    let canonical = root.canonicalize().map_err(|source| BuildError::Root { path: root.clone(), source })?;
    if !canonical.is_dir() {
        return Err(BuildError::Root { path: root, source: std::io::Error::other("not a directory") });
    }
    Ok(canonical)
}

/// Resolves and hashes every input.
pub(crate) fn resolve_all(
    loaded: &LoadedRecipe,
    root: &Path,
    progress: &dyn Progress,
) -> Result<Vec<Input>, BuildError> {
    let roles = roles(loaded);
    let mut inputs = Vec::with_capacity(roles.len());
    for (role, path) in roles {
        let resolved = resolve(loaded, root, &role, &path)?;
        inputs.push(Input { role, path, resolved, sha256: [0; 32], size: 0 });
    }
    let total = inputs.iter().filter_map(|i| i.resolved.metadata().ok()).map(|m| m.len()).sum();
    progress.begin(Step::HashInputs, total);
    for input in &mut inputs {
        let mut file = open(input)?;
        let mut reader = ProgressReader { inner: &mut file, progress };
        let (digest, size) = sha256_of(&mut reader).map_err(|source| input_io(input, source))?;
        input.sha256 = digest;
        input.size = size;
    }
    progress.end();
    Ok(inputs)
}

/// The inputs as the lock file records them.
pub(crate) fn as_lock(inputs: &[Input]) -> BTreeMap<String, LockedInput> {
    inputs.iter().map(|i| (i.role.clone(), i.locked())).collect()
}

/// Opens an input for reading.
pub(crate) fn open(input: &Input) -> Result<File, BuildError> {
    crate::sys::regular_file::open_input(&input.resolved).map_err(|source| input_io(input, source))
}

pub(crate) fn input_io(input: &Input, source: std::io::Error) -> BuildError {
    BuildError::InputIo { role: input.role.clone(), path: input.path.clone(), source }
}

/// Resolves a directory the recipe names (the kernel module tree): relative to the recipe, inside its tree unless
/// `follow_symlinks`.
pub(crate) fn resolve_dir(loaded: &LoadedRecipe, root: &Path, field: &str, path: &str) -> Result<PathBuf, BuildError> {
    let joined = loaded.dir.join(path);
    let io = |source| BuildError::InputIo { role: field.to_string(), path: path.to_string(), source };
    let canonical = joined.canonicalize().map_err(io)?;
    if !canonical.is_dir() {
        return Err(io(std::io::Error::other("not a directory")));
    }
    if !loaded.recipe.follow_symlinks && !canonical.starts_with(root) {
        return Err(BuildError::InputOutsideTree {
            role: field.to_string(),
            path: path.to_string(),
            resolved: canonical,
            root: root.to_path_buf(),
        });
    }
    Ok(canonical)
}

pub(crate) fn resolve(loaded: &LoadedRecipe, root: &Path, role: &str, path: &str) -> Result<PathBuf, BuildError> {
    let joined = loaded.dir.join(path);
    let metadata = match joined.metadata() {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BuildError::InputMissing { role: role.to_string(), path: path.to_string(), resolved: joined });
        }
        Err(source) => return Err(BuildError::InputIo { role: role.to_string(), path: path.to_string(), source }),
    };
    if !metadata.is_file() {
        let found = if metadata.is_dir() { "a directory" } else { "not a regular file" };
        return Err(BuildError::InputNotFile { role: role.to_string(), path: path.to_string(), found });
    }
    let canonical = joined.canonicalize().map_err(|source| BuildError::InputIo {
        role: role.to_string(),
        path: path.to_string(),
        source,
    })?;
    if !loaded.recipe.follow_symlinks && !canonical.starts_with(root) {
        return Err(BuildError::InputOutsideTree {
            role: role.to_string(),
            path: path.to_string(),
            resolved: canonical,
            root: root.to_path_buf(),
        });
    }
    Ok(canonical)
}
