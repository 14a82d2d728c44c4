//! Kernel modules from a distribution kernel's module tree (`lib/modules/<release>` of an extracted
//! `linux-image-*.deb`): dependency resolution, a deterministic load order, vermagic checks and the bytes to place
//! in the initrd.
//!
//! Dependencies come from `modules.dep` when the tree has one (depmod's output); Debian packages ship without it
//! (their postinst runs depmod), so otherwise they come from each module's own `.modinfo` `depends=` field, which
//! is what depmod reads too. Modules listed in `modules.builtin` are part of the kernel image and need no file.
//! Names match with `-` and `_` as equals, as in `modprobe`; reported names use `_`, as the kernel does.
//!
//! Compressed modules (`.ko.xz`, `.ko.zst`, `.ko.gz`) are decompressed at build time (with a size bound), unless
//! the caller says the kernel decompresses them itself (`CONFIG_MODULE_DECOMPRESS=y`); either way the
//! decompressed ELF's `vermagic` must start with the kernel release.
//!
//! # Example
//!
//! ```no_run
//! use cvmforge::seal::modules::{collect, ModuleRequest};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let names = vec!["virtio_net".to_string(), "sev-guest".to_string()];
//! let set = collect(&ModuleRequest {
//!     modules_dir: "root/lib/modules/6.1.0-56-amd64".as_ref(),
//!     kernel_release: "6.1.0-56-amd64",
//!     names: &names,
//!     keep_compressed: false,
//! })?;
//! for m in &set.modules {
//!     println!("{} -> {} sha256:{}", m.entry.source_path.display(), m.entry.dest, m.entry.sha256);
//! }
//! # Ok(()) }
//! ```

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::format::elf::{self, ElfError};
use cvmforge_measure::bzimage::SetupHeaderError;

use crate::format::bzimage;
use crate::format::compress::decode::{decompress, DecodeError};

/// Largest decompressed module accepted (the largest in-tree modules are a few tens of MiB).
pub const MAX_MODULE_SIZE: u64 = 256 << 20;
/// Deepest directory nesting walked under the module tree.
const MAX_DEPTH: usize = 16;
/// Module file suffixes, the compressed ones with their compression.
const SUFFIXES: [(&str, bool); 4] = [(".ko", false), (".ko.xz", true), (".ko.zst", true), (".ko.gz", true)];

/// A failure to collect kernel modules.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ModuleError {
    /// A requested module or a dependency is neither a file in the tree nor built in.
    #[error("kernel module `{name}`{} not found: looked for `{name}.ko[.xz|.zst|.gz]` under `{looked_in}` ({how}) and in modules.builtin", needed_by.as_ref().map(|n| format!(" (needed by `{n}`)")).unwrap_or_default())]
    Missing {
        /// The module name.
        name: String,
        /// The module that depends on it, if it was not requested directly.
        needed_by: Option<String>,
        /// The module directory searched.
        looked_in: PathBuf,
        /// How the tree was indexed (`modules.dep` or a directory walk).
        how: &'static str,
    },
    /// Modules that depend on each other in a loop.
    #[error("kernel module dependency cycle: {}", chain.join(" -> "))]
    Cycle {
        /// The loop, first module repeated at the end.
        chain: Vec<String>,
    },
    /// A module built for another kernel.
    #[error("kernel module `{name}` was built for `{vermagic}`, but the kernel is `{expected}` (take the modules from the same linux-image package as the kernel)")]
    Vermagic {
        /// The module.
        name: String,
        /// Its full vermagic string.
        vermagic: String,
        /// The kernel release.
        expected: String,
    },
    /// A module without `.modinfo` or without `vermagic=`.
    #[error("kernel module `{path}` has no {what}")]
    NoModinfo {
        /// The module file.
        path: PathBuf,
        /// What is missing (`.modinfo section`, `vermagic= field`).
        what: &'static str,
    },
    /// A module file is not a valid x86-64 ELF object.
    #[error("kernel module `{path}` is not a valid ELF object")]
    Elf {
        /// The module file.
        path: PathBuf,
        /// The parse error.
        source: ElfError,
    },
    /// A compressed module does not decompress.
    #[error("cannot decompress kernel module `{path}`")]
    Decompress {
        /// The module file.
        path: PathBuf,
        /// The decoder error.
        source: DecodeError,
    },
    /// A file could not be read.
    #[error("cannot read `{path}`")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// Two module files with the same name and no `modules.dep` to choose between them.
    #[error("kernel module `{name}` exists twice, as `{first}` and `{second}`, and there is no modules.dep to choose (run depmod)")]
    Duplicate {
        /// The module name.
        name: String,
        /// First path (relative to the module directory).
        first: String,
        /// Second path.
        second: String,
    },
    /// A `modules.dep` line that is not `path: dep dep…`.
    #[error("`{path}` line {line}: expected `kernel/…/name.ko: dependency.ko …`")]
    BadDepLine {
        /// The modules.dep file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// A requested name that cannot be a module name.
    #[error("`{name}` is not a kernel module name (expected letters, digits, `-` and `_`, e.g. `virtio_net`)")]
    BadName {
        /// The name as given.
        name: String,
    },
    /// The kernel release could not be read from the bzImage.
    #[error("cannot read the kernel release from the bzImage")]
    Release(#[from] SetupHeaderError),
}

/// The kernel release (`uname -r`) from a bzImage's setup header (`kernel_version` at 0x20e), e.g.
/// `6.1.0-56-amd64`.
pub fn kernel_release(bzimage: &[u8]) -> Result<String, ModuleError> {
    Ok(bzimage::kernel_release(bzimage)?)
}

/// What to collect.
#[derive(Debug, Clone)]
pub struct ModuleRequest<'a> {
    /// `lib/modules/<release>` of the extracted kernel package.
    pub modules_dir: &'a Path,
    /// The kernel release the modules must match (from [`kernel_release`]).
    pub kernel_release: &'a str,
    /// Module names to load (with their dependencies).
    pub names: &'a [String],
    /// Keep compressed modules compressed (`CONFIG_MODULE_DECOMPRESS=y`).
    pub keep_compressed: bool,
}

/// One module placed in the initrd (the manifest entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModuleEntry {
    /// Module name (with `_`).
    pub name: String,
    /// Source file, relative to the module directory (so that manifests do not depend on where the kernel package
    /// was extracted).
    pub source: String,
    /// Source file on this machine (not serialized).
    #[serde(skip)]
    pub source_path: PathBuf,
    /// Destination path in the initrd: `/lib/modules/<release>/<relative path>`, minus the compression suffix when
    /// decompressed.
    pub dest: String,
    /// sha256 of the bytes placed in the initrd, lowercase hex.
    pub sha256: String,
    /// Whether the placed bytes are compressed.
    pub compressed: bool,
    /// Direct dependencies (files and built-ins), sorted.
    pub depends: Vec<String>,
}

/// A module with the bytes to place in the initrd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedModule {
    /// The manifest entry.
    pub entry: ModuleEntry,
    /// The bytes for `entry.dest`.
    pub bytes: Vec<u8>,
}

/// The result: modules in load order and the requested or needed modules that are built in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleSet {
    /// Modules in load order: each after its dependencies; otherwise by name.
    pub modules: Vec<StagedModule>,
    /// Names (with `_`) that are built into the kernel, sorted.
    pub builtin: Vec<String>,
    /// Where dependencies came from: `modules.dep` or `.modinfo`.
    pub dependency_source: &'static str,
}

/// The serializable summary of a [`ModuleSet`] for the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModuleReport {
    /// Entries in load order.
    pub modules: Vec<ModuleEntry>,
    /// Built-in names, sorted.
    pub builtin: Vec<String>,
    /// `modules.dep` or `.modinfo`.
    pub dependency_source: &'static str,
}

impl ModuleSet {
    /// The manifest summary.
    pub fn report(&self) -> ModuleReport {
        ModuleReport {
            modules: self.modules.iter().map(|m| m.entry.clone()).collect(),
            builtin: self.builtin.clone(),
            dependency_source: self.dependency_source,
        }
    }
}

/// Normalizes a module name: `-` becomes `_`.
pub fn normalize_name(name: &str) -> String {
    name.replace('-', "_")
}

/// Splits a module file name into (module name, is compressed), or `None` if it is not a module file.
fn module_file_name(file: &str) -> Option<(String, bool)> {
    let base = file.rsplit('/').next().unwrap_or(file);
    SUFFIXES.iter().find_map(|(suffix, compressed)| {
        base.strip_suffix(suffix).filter(|n| !n.is_empty()).map(|n| (normalize_name(n), *compressed))
    })
}

/// The indexed module tree.
struct Tree {
    root: PathBuf,
    /// Name → path relative to `root`.
    files: BTreeMap<String, String>,
    /// Name → dependency names, when `modules.dep` exists.
    dep_file: Option<BTreeMap<String, Vec<String>>>,
    builtin: BTreeSet<String>,
}

fn read(path: &Path) -> Result<Vec<u8>, ModuleError> {
    crate::sys::regular_file::read_input(path).map_err(|source| ModuleError::Io { path: path.to_path_buf(), source })
}

fn read_optional_text(path: &Path) -> Result<Option<String>, ModuleError> {
    match crate::sys::regular_file::read_input(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ModuleError::Io { path: path.to_path_buf(), source }),
    }
}

impl Tree {
    fn open(root: &Path) -> Result<Tree, ModuleError> {
        let builtin = read_optional_text(&root.join("modules.builtin"))?
            .unwrap_or_default()
            .lines()
            .filter_map(module_file_name)
            .map(|(name, _)| name)
            .collect();
        let dep_path = root.join("modules.dep");
        let (files, dep_file) = match read_optional_text(&dep_path)? {
            Some(text) => {
                let (files, deps) = parse_modules_dep(&text, &dep_path)?;
                (files, Some(deps))
            }
            None => (walk(root)?, None),
        };
        Ok(Tree { root: root.to_path_buf(), files, dep_file, builtin })
    }

    fn how(&self) -> &'static str {
        if self.dep_file.is_some() {
            "indexed by modules.dep"
        } else {
            "walked the directory"
        }
    }
}

/// Parses depmod's `modules.dep`: `path: dep-path dep-path…` per line.
type DepIndex = (BTreeMap<String, String>, BTreeMap<String, Vec<String>>);

fn parse_modules_dep(text: &str, path: &Path) -> Result<DepIndex, ModuleError> {
    let mut files = BTreeMap::new();
    let mut deps = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = || ModuleError::BadDepLine { path: path.to_path_buf(), line: index + 1 };
        let (module, rest) = line.split_once(':').ok_or_else(bad)?;
        let module = module.trim();
        // Paths are relative to the module directory; anything else would read outside the tree.
        if !is_inside(module) {
            return Err(bad());
        }
        let (name, _) = module_file_name(module).ok_or_else(bad)?;
        let needs = rest
            .split_whitespace()
            .map(|d| module_file_name(d).map(|(n, _)| n).ok_or_else(bad))
            .collect::<Result<Vec<_>, _>>()?;
        files.insert(name.clone(), module.to_string());
        deps.insert(name, needs);
    }
    Ok((files, deps))
}

/// True for a relative path without `..` components.
fn is_inside(rel: &str) -> bool {
    !rel.starts_with('/') && rel.split('/').all(|c| c != ".." && !c.is_empty())
}

/// Indexes every module file under `root` (sorted, symlinks not followed).
fn walk(root: &Path) -> Result<BTreeMap<String, String>, ModuleError> {
    let mut files = BTreeMap::new();
    let mut stack = vec![(root.to_path_buf(), String::new(), 0usize)];
    while let Some((dir, rel, depth)) = stack.pop() {
        let io_err = |source| ModuleError::Io { path: dir.clone(), source };
        let mut entries = std::fs::read_dir(&dir)
            .map_err(io_err)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| ModuleError::Io { path: dir.clone(), source })?;
        entries.sort();
        for name in entries {
            let path = dir.join(&name);
            let rel_path = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
            let meta =
                std::fs::symlink_metadata(&path).map_err(|source| ModuleError::Io { path: path.clone(), source })?;
            if meta.is_dir() && depth < MAX_DEPTH {
                stack.push((path, rel_path, depth + 1));
            } else if let Some((module, _)) = meta.is_file().then(|| module_file_name(&name)).flatten() {
                if let Some(first) = files.insert(module.clone(), rel_path.clone()) {
                    return Err(ModuleError::Duplicate { name: module, first, second: rel_path });
                }
            }
        }
    }
    Ok(files)
}

/// A module file read and checked.
struct Loaded {
    rel_path: String,
    raw: Vec<u8>,
    elf: Vec<u8>,
    compressed: bool,
    depends: Vec<String>,
    vermagic: String,
}

/// The `key=value` fields of `.modinfo` (NUL-separated, `include/linux/moduleparam.h` `__MODULE_INFO`).
fn modinfo_fields(section: &[u8]) -> Vec<(&str, &str)> {
    section
        .split(|&b| b == 0)
        .filter_map(|field| std::str::from_utf8(field).ok())
        .filter_map(|field| field.split_once('='))
        .collect()
}

fn load(tree: &Tree, name: &str, rel_path: &str) -> Result<Loaded, ModuleError> {
    let path = tree.root.join(rel_path);
    let raw = read(&path)?;
    let compressed = module_file_name(rel_path).is_some_and(|(_, c)| c);
    let elf = if compressed {
        decompress(&raw, "kernel module", MAX_MODULE_SIZE)
            .map_err(|source| ModuleError::Decompress { path: path.clone(), source })?
    } else {
        raw.clone()
    };
    let elf_err = |source| ModuleError::Elf { path: path.clone(), source };
    elf::ElfInfo::parse(&elf).map_err(elf_err)?;
    let section = elf::section_bytes(&elf, ".modinfo")
        .map_err(|source| ModuleError::Elf { path: path.clone(), source })?
        .ok_or_else(|| ModuleError::NoModinfo { path: path.clone(), what: ".modinfo section" })?;
    let fields = modinfo_fields(section);
    let vermagic = fields
        .iter()
        .find(|(k, _)| *k == "vermagic")
        .map(|(_, v)| v.to_string())
        .ok_or_else(|| ModuleError::NoModinfo { path: path.clone(), what: "vermagic= field in .modinfo" })?;
    let depends = match &tree.dep_file {
        Some(deps) => deps.get(name).cloned().unwrap_or_default(),
        None => fields
            .iter()
            .filter(|(k, _)| *k == "depends")
            .flat_map(|(_, v)| v.split(','))
            .filter(|d| !d.is_empty())
            .map(normalize_name)
            .collect(),
    };
    Ok(Loaded { rel_path: rel_path.to_string(), raw, elf, compressed, depends, vermagic })
}

/// Depth-first closure of the requested modules, with cycle detection.
struct Closure<'t> {
    tree: &'t Tree,
    loaded: BTreeMap<String, Loaded>,
    builtin: BTreeSet<String>,
    /// Modules on the current DFS path, in order.
    path: Vec<String>,
}

impl Closure<'_> {
    fn visit(&mut self, name: &str, needed_by: Option<&str>) -> Result<(), ModuleError> {
        if let Some(start) = self.path.iter().position(|n| n == name) {
            let mut chain: Vec<String> = self.path.get(start..).unwrap_or_default().to_vec();
            chain.push(name.to_string());
            return Err(ModuleError::Cycle { chain });
        }
        if self.loaded.contains_key(name) || self.builtin.contains(name) {
            return Ok(());
        }
        let Some(rel_path) = self.tree.files.get(name) else {
            if self.tree.builtin.contains(name) {
                self.builtin.insert(name.to_string());
                return Ok(());
            }
            return Err(ModuleError::Missing {
                name: name.to_string(),
                needed_by: needed_by.map(str::to_string),
                looked_in: self.tree.root.clone(),
                how: self.tree.how(),
            });
        };
        let module = load(self.tree, name, rel_path)?;
        let depends = module.depends.clone();
        self.path.push(name.to_string());
        for dep in &depends {
            self.visit(dep, Some(name))?;
        }
        self.path.pop();
        self.loaded.insert(name.to_string(), module);
        Ok(())
    }
}

/// Orders modules so that each comes after its dependencies, breaking ties by name (Kahn's algorithm over a sorted
/// ready set).
fn load_order(loaded: &BTreeMap<String, Loaded>) -> Vec<String> {
    let mut waiting: BTreeMap<&str, BTreeSet<&str>> = loaded
        .iter()
        .map(|(name, m)| {
            let deps = m.depends.iter().map(String::as_str).filter(|d| loaded.contains_key(*d)).collect();
            (name.as_str(), deps)
        })
        .collect();
    let mut order = Vec::new();
    while let Some(next) = waiting.iter().find(|(_, deps)| deps.is_empty()).map(|(n, _)| *n) {
        waiting.remove(next);
        for deps in waiting.values_mut() {
            deps.remove(next);
        }
        order.push(next.to_string());
    }
    order
}

fn check_name(name: &str) -> Result<String, ModuleError> {
    let ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then(|| normalize_name(name)).ok_or_else(|| ModuleError::BadName { name: name.to_string() })
}

fn stage(m: &Loaded, name: &str, req: &ModuleRequest<'_>, root: &Path) -> Result<StagedModule, ModuleError> {
    if m.vermagic.split_whitespace().next() != Some(req.kernel_release) {
        return Err(ModuleError::Vermagic {
            name: name.to_string(),
            vermagic: m.vermagic.trim().to_string(),
            expected: req.kernel_release.to_string(),
        });
    }
    let keep = m.compressed && req.keep_compressed;
    let rel = if m.compressed && !keep {
        SUFFIXES.iter().find_map(|(s, _)| m.rel_path.strip_suffix(s).map(|b| format!("{b}.ko"))).unwrap_or_default()
    } else {
        m.rel_path.clone()
    };
    let bytes = if keep { m.raw.clone() } else { m.elf.clone() };
    let entry = ModuleEntry {
        name: name.to_string(),
        source: m.rel_path.clone(),
        source_path: root.join(&m.rel_path),
        dest: format!("/lib/modules/{}/{rel}", req.kernel_release),
        sha256: hex::encode(Sha256::digest(&bytes)),
        compressed: keep,
        depends: m.depends.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect(),
    };
    Ok(StagedModule { entry, bytes })
}

/// Resolves, checks and reads the requested modules and their dependencies.
pub fn collect(req: &ModuleRequest<'_>) -> Result<ModuleSet, ModuleError> {
    let tree = Tree::open(req.modules_dir)?;
    let mut names = req.names.iter().map(|n| check_name(n)).collect::<Result<Vec<_>, _>>()?;
    names.sort();
    names.dedup();
    let mut closure = Closure { tree: &tree, loaded: BTreeMap::new(), builtin: BTreeSet::new(), path: Vec::new() };
    for name in &names {
        closure.visit(name, None)?;
    }
    let modules = load_order(&closure.loaded)
        .iter()
        .filter_map(|name| closure.loaded.get(name).map(|m| (name, m)))
        .map(|(name, m)| stage(m, name, req, &tree.root))
        .collect::<Result<Vec<_>, _>>()?;
    let dependency_source = if tree.dep_file.is_some() { "modules.dep" } else { ".modinfo" };
    Ok(ModuleSet { modules, builtin: closure.builtin.into_iter().collect(), dependency_source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_module_file_names() {
        assert_eq!(
            module_file_name("kernel/drivers/virt/coco/sev-guest/sev-guest.ko"),
            Some(("sev_guest".into(), false))
        );
        assert_eq!(module_file_name("a/dm-verity.ko.zst"), Some(("dm_verity".into(), true)));
        assert_eq!(module_file_name("modules.dep"), None);
        assert_eq!(module_file_name(".ko"), None);
    }

    #[test]
    fn reads_modinfo_fields() {
        let fields = modinfo_fields(b"license=GPL\0depends=virtio,net_failover\0\0vermagic=6.1 SMP\0junk\0");
        assert_eq!(fields, vec![("license", "GPL"), ("depends", "virtio,net_failover"), ("vermagic", "6.1 SMP")]);
    }

    #[test]
    fn rejects_bad_names() {
        assert!(matches!(check_name("../x"), Err(ModuleError::BadName { .. })));
        assert_eq!(check_name("sev-guest").unwrap(), "sev_guest");
    }
}
