//! The sealing step of a build: one call, [`check`], that the build pipeline makes after resolving the recipe's
//! paths and before writing the initrd.
//!
//! It checks that the image can start and has no way in, and stages the kernel modules the recipe asks for:
//!
//! 1. the init (`/init`) is a static or static-pie ELF executable ([`linkage::require_static_init`]);
//! 2. the payload command (`initrd.command[0]`, followed through initrd symlinks) is in the initrd and is static,
//!    or its ELF interpreter (or `#!` interpreter) is in the initrd ([`linkage::require_interpreter`]);
//! 3. the kernel modules of `kernel.modules` are resolved from a distribution module tree, checked against the
//!    kernel release, and returned in load order ([`modules::collect`]);
//! 4. every file and symlink of the initrd, modules included, is scanned for forbidden programs; the kernel command
//!    line and the kernel configuration (the `kernel.config` file, else the kernel's IKCONFIG, else reported as
//!    unavailable) are checked; required options built as modules must have their module loaded
//!    ([`crate::seal::policy::Checker`]);
//! 5. the recipe's waivers are applied; in strict mode (the default) any remaining violation fails the build,
//!    listing them all.
//!
//! Failures of steps 1–3 are hard errors: the image would not boot. Policy violations are errors only in strict
//! mode; otherwise they are recorded in the manifest's `sealing` section (verdict `violations`) and returned as
//! warnings.
//!
//! # Recipe sections
//!
//! ```yaml
//! kernel:
//!   modules:                 # optional -> ModulesSpec
//!     # a module directory (lib/modules/<release>), or the root of an extracted linux-image package, in which
//!     # case lib/modules/<release of the bzImage> is used
//!     tree: ../build/kernel/root/lib/modules/6.1.0-56-amd64
//!     load: [virtio_net, sev-guest]      # with their dependencies; `-` and `_` are equal
//!   config: ../build/demo/kernel.config  # optional; else IKCONFIG from the bzImage; else "unavailable"
//! sealing:                   # optional -> SealingSpec
//!   strict: true             # the default: any unwaived violation fails the build. `false` (or
//!                            # `cvmforge build --allow-unsealed`) records them instead, with a loud warning
//!   waivers:
//!     - {item: CONFIG_KEXEC, reason: "stock Debian kernel; sealed kernel tracked in kernel-config/"}
//! ```
//!
//! A waiver's `item` is the item of the violation it waives, as printed in the build's warnings and in the
//! manifest:
//!
//! | violation | item |
//! |---|---|
//! | a forbidden program in the initrd | its program name: `sh`, `bash`, `busybox`, `dash`, `zsh`, `sshd`, `dropbear`, `telnetd`, `getty`, `login` |
//! | a kernel command-line parameter | `cmdline:<name>`, e.g. `cmdline:earlyprintk`, `cmdline:lockdown`, `cmdline:panic` |
//! | a word after `--` on the command line | `cmdline:init-arg:<word>`, e.g. `cmdline:init-arg:single` |
//! | a kernel option (required, forbidden, or `=m` without its module) | the option, e.g. `CONFIG_KEXEC` |
//! | no kernel configuration to check | `kconfig:unavailable` |
//! | a setuid or setgid file or directory in the initrd | `setid:<path>`, e.g. `setid:/usr/bin/server` |
//!
//! # Example
//!
//! ```
//! use cvmforge::recipe::seal_spec::SealingSpec;
//! use cvmforge::seal::check::{check, Content, SealEntry, SealEntryKind, SealInputs};
//! use cvmforge::seal::policy::Verdict;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let init = dir.path().join("init");
//! std::fs::write(&init, cvmforge::format::elf::testing::executable(None))?; // a static-pie ELF
//! let kernel = cvmforge::format::bzimage::testing::bzimage("6.1.0-test", b"no ikconfig here");
//! let entries = vec![
//!     SealEntry { dest: "/init".into(), kind: SealEntryKind::File(Content::Path(init.clone())) },
//!     SealEntry { dest: "/bin/sh".into(), kind: SealEntryKind::Symlink { target: "/init".into() } },
//! ];
//! let spec: SealingSpec = serde_norway::from_str("waivers: [{item: kconfig:unavailable, reason: test kernel}]")?;
//! let outcome = check(&SealInputs {
//!     kernel: &kernel,
//!     kernel_config: None,
//!     cmdline: "console=ttyS0 panic=-1 lockdown=confidentiality",
//!     entries: &entries,
//!     init: &init,
//!     command: "/init",
//!     modules: None,
//!     sealing: &spec,
//!     strict: false,
//!     modes: &[],
//!     allow_unsealed: true, // the default (false) would fail on the shell
//! })?;
//! assert_eq!(outcome.policy.verdict, Verdict::Violations);
//! assert_eq!(outcome.policy.violations[0].item, "sh");
//! assert!(outcome.warnings[1].contains("remove `/bin/sh`"));
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::format::elf::{self, ElfInfo};
use crate::format::kconfig::KernelConfig;
use crate::recipe::seal_spec::SealingSpec;
use crate::seal::linkage::{self};
use crate::seal::modules::{self, ModuleReport, ModuleRequest, ModuleSet};
use crate::seal::policy::{Checker, EntryKind, InitrdEntry, KconfigPolicy, PolicyReport};

pub use crate::seal::error::{remedy, SealError};

/// Initrd path of the init program.
pub const INIT_DEST: &str = "/init";
/// Permission bits of module files placed in the initrd.
pub const MODULE_MODE: u32 = 0o644;
/// Symlinks followed when resolving the payload command (Linux `MAXSYMLINKS`, `include/linux/namei.h`).
pub(crate) const MAX_SYMLINK_HOPS: usize = 40;

/// Where the bytes of an initrd file come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A file on disk (already resolved).
    Path(PathBuf),
    /// Bytes generated by the builder (e.g. `/etc/cvmforge/init.json`).
    Bytes(Vec<u8>),
}

/// The kind of an initrd entry, with what the checks need of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealEntryKind {
    /// A regular file.
    File(Content),
    /// A symbolic link.
    Symlink {
        /// The link target, as stored.
        target: String,
    },
    /// A directory.
    Dir,
    /// A device node, FIFO or socket.
    Other,
}

/// One initrd entry (the recipe's layout, before modules are added).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealEntry {
    /// Absolute destination path, e.g. `/usr/bin/server`.
    pub dest: String,
    /// What it is.
    pub kind: SealEntryKind,
}

/// `kernel.modules` with its tree resolved.
#[derive(Debug, Clone, Copy)]
pub struct ModuleTree<'a> {
    /// The module directory or package root ([`crate::recipe::seal_spec::ModulesSpec::tree`], resolved).
    pub tree: &'a Path,
    /// [`crate::recipe::seal_spec::ModulesSpec::load`].
    pub load: &'a [String],
}

/// Everything [`check`] needs, with paths already resolved by the caller.
#[derive(Debug, Clone, Copy)]
pub struct SealInputs<'a> {
    /// The bzImage bytes (its release is needed for modules, its IKCONFIG when there is no config file).
    pub kernel: &'a [u8],
    /// `kernel.config`, resolved.
    pub kernel_config: Option<&'a Path>,
    /// `kernel.cmdline`.
    pub cmdline: &'a str,
    /// Every initrd entry of the recipe's layout (including `/init` and generated files).
    pub entries: &'a [SealEntry],
    /// The init's source file (`initrd.init`, resolved), installed as [`INIT_DEST`].
    pub init: &'a Path,
    /// `initrd.command[0]`: the payload's initrd path.
    pub command: &'a str,
    /// `kernel.modules`, resolved.
    pub modules: Option<ModuleTree<'a>>,
    /// `sealing:`.
    pub sealing: &'a SealingSpec,
    /// `--strict` on the command line: strict whatever the recipe says.
    pub strict: bool,
    /// Every initrd entry's permission bits (path, mode), for the setuid/setgid check.
    pub modes: &'a [(String, u32)],
    /// `--allow-unsealed` on the command line: unwaived violations are recorded and warned about, not fatal (unless
    /// `--strict` is also given).
    pub allow_unsealed: bool,
}

/// A kernel module file to add to the initrd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleFile {
    /// Destination path, `/lib/modules/<release>/…`.
    pub dest: String,
    /// The bytes (decompressed unless the kernel decompresses modules itself).
    pub bytes: Vec<u8>,
    /// Permission bits ([`MODULE_MODE`]).
    pub mode: u32,
    /// sha256 of `bytes`, lowercase hex.
    pub sha256: String,
}

/// Where the checked kernel configuration came from (the manifest's `sealing.kernel_config`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelConfigReport {
    /// `file` (`kernel.config`), `ikconfig` (embedded in the bzImage) or `unavailable`.
    pub source: &'static str,
    /// sha256 of the configuration text, lowercase hex (absent when unavailable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Why no configuration could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The result of [`check`].
#[derive(Debug, Clone)]
pub struct SealOutcome {
    /// Module files to add to the initrd, in load order.
    pub module_files: Vec<ModuleFile>,
    /// Their destination paths in load order, for `/etc/cvmforge/init.json` `"modules"`.
    pub init_modules: Vec<String>,
    /// The policy report (the manifest's `sealing` section, see [`SealOutcome::manifest_sealing`]).
    pub policy: PolicyReport,
    /// The modules report, when the recipe has `kernel.modules`.
    pub modules: Option<ModuleReport>,
    /// Where the kernel configuration came from.
    pub kernel_config: KernelConfigReport,
    /// Whether the check ran in strict mode.
    pub strict: bool,
    /// Human-readable warnings for the build output: unwaived violations (non-strict mode), unused waivers and
    /// other findings, each saying what to do.
    pub warnings: Vec<String>,
}

impl SealOutcome {
    /// The manifest's `sealing` section: the [`PolicyReport`] fields, plus `kernel_config`, `strict` and (with
    /// modules) `modules`.
    pub fn manifest_sealing(&self) -> BTreeMap<String, serde_json::Value> {
        let mut map = match serde_json::to_value(&self.policy) {
            Ok(serde_json::Value::Object(fields)) => fields.into_iter().collect(),
            _ => BTreeMap::new(),
        };
        map.insert("kernel_config".into(), serde_json::to_value(&self.kernel_config).unwrap_or_default());
        map.insert("strict".into(), serde_json::Value::Bool(self.strict));
        if let Some(modules) = &self.modules {
            map.insert("modules".into(), serde_json::to_value(modules).unwrap_or_default());
        }
        map
    }
}

/// Runs every sealing check and stages the kernel modules (see the module docs).
pub fn check(inputs: &SealInputs<'_>) -> Result<SealOutcome, SealError> {
    let strict = inputs.strict || (!inputs.allow_unsealed && inputs.sealing.strict.unwrap_or(true));
    let mut checker = Checker::new(KconfigPolicy::builtin(), inputs.sealing.waivers.clone())?;
    check_init(inputs.init)?;
    check_command(inputs.entries, inputs.command)?;
    let (config, kernel_config) = kernel_config(inputs)?;
    let set = match &inputs.modules {
        Some(tree) => Some(collect_modules(inputs.kernel, tree, config.as_ref())?),
        None => None,
    };
    let module_files: Vec<ModuleFile> = set.iter().flat_map(|s| &s.modules).map(module_file).collect();
    scan_initrd(&mut checker, inputs.entries, &module_files)?;
    for (dest, mode) in inputs.modes {
        checker.check_mode(dest, *mode);
    }
    checker.check_cmdline(inputs.cmdline, config.as_ref());
    match &config {
        Some(config) => {
            checker.check_kernel_config(config);
            let loaded =
                set.iter().flat_map(|s| s.modules.iter().map(|m| m.entry.name.clone()).chain(s.builtin.clone()));
            checker.check_module_coverage(config, &loaded.collect());
        }
        None => checker.kernel_config_unavailable(kernel_config.reason.as_deref().unwrap_or("unknown")),
    }
    let policy = checker.finish();
    if strict && !policy.violations.is_empty() {
        return Err(SealError::NotSealed { violations: policy.violations });
    }
    let mut warnings: Vec<String> = Vec::new();
    if !policy.violations.is_empty() {
        warnings.push(format!(
            "THIS IMAGE IS NOT SEALED: {} policy violation(s) were allowed (--allow-unsealed or `sealing.strict: \
             false`); the manifest records the verdict `violations`. Do not publish it as a sealed release.",
            policy.violations.len()
        ));
    }
    warnings
        .extend(policy.violations.iter().map(|v| format!("not sealed: `{}`: {} ({})", v.item, v.detail, remedy(v))));
    warnings.extend(policy.warnings.iter().map(|w| format!("`{}`: {}", w.item, w.detail)));
    Ok(SealOutcome {
        init_modules: module_files.iter().map(|m| m.dest.clone()).collect(),
        module_files,
        policy,
        modules: set.as_ref().map(ModuleSet::report),
        kernel_config,
        strict,
        warnings,
    })
}

/// Reads at most [`elf::HEADER_PREFIX`] bytes (enough for the ELF and program headers and `PT_INTERP`).
fn read_prefix(content: &Content, what: &str) -> Result<Vec<u8>, SealError> {
    match content {
        Content::Bytes(b) => Ok(b.iter().take(elf::HEADER_PREFIX).copied().collect()),
        Content::Path(path) => {
            let io_err = |source| SealError::Io { what: what.to_string(), path: path.clone(), source };
            let mut out = Vec::new();
            let limit = u64::try_from(elf::HEADER_PREFIX).unwrap_or(u64::MAX);
            crate::sys::regular_file::open_input(path)
                .map_err(io_err)?
                .take(limit)
                .read_to_end(&mut out)
                .map_err(io_err)?;
            Ok(out)
        }
    }
}

fn check_init(init: &Path) -> Result<(), SealError> {
    let bytes = read_prefix(&Content::Path(init.to_path_buf()), "init")?;
    let info = ElfInfo::parse(&bytes).map_err(|source| SealError::Elf { path: INIT_DEST.into(), source })?;
    Ok(linkage::require_static_init(INIT_DEST, &info)?)
}

fn absolute(path: &str) -> String {
    format!("/{}", path.trim_start_matches('/'))
}

/// Joins a symlink target to the link's directory and removes `.` and `..` (as the kernel's path walk does; `..`
/// at the root stays at the root).
fn resolve_link(link: &str, target: &str) -> String {
    let base = if target.starts_with('/') { "" } else { link.rsplit_once('/').map_or("", |(dir, _)| dir) };
    let mut parts: Vec<&str> = Vec::new();
    for part in base.split('/').chain(target.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Follows `path` through initrd symlinks to a non-symlink entry.
fn follow<'e>(
    entries: &BTreeMap<String, &'e SealEntry>,
    command: &str,
    path: &str,
) -> Result<&'e SealEntry, SealError> {
    let mut current = absolute(path);
    for _ in 0..=MAX_SYMLINK_HOPS {
        let entry = *entries
            .get(&current)
            .ok_or_else(|| SealError::CommandMissing { command: command.to_string(), missing: current.clone() })?;
        match &entry.kind {
            SealEntryKind::Symlink { target } => current = resolve_link(&current, target),
            _ => return Ok(entry),
        }
    }
    Err(SealError::SymlinkLoop { command: command.to_string() })
}

fn check_command(entries: &[SealEntry], command: &str) -> Result<(), SealError> {
    let by_path: BTreeMap<String, &SealEntry> = entries.iter().map(|e| (absolute(&e.dest), e)).collect();
    let entry = follow(&by_path, command, command)?;
    let not_file = |what| SealError::CommandNotFile { command: command.into(), path: entry.dest.clone(), what };
    let content = match &entry.kind {
        SealEntryKind::File(content) => content,
        SealEntryKind::Dir => return Err(not_file("directory")),
        SealEntryKind::Other | SealEntryKind::Symlink { .. } => return Err(not_file("device node")),
    };
    let bytes = read_prefix(content, &format!("initrd file {}", entry.dest))?;
    if let Some(interpreter) = shebang(&bytes) {
        let found = follow(&by_path, command, &interpreter).is_ok_and(|e| matches!(e.kind, SealEntryKind::File(_)));
        if !found {
            return Err(SealError::ScriptInterpreterMissing { path: entry.dest.clone(), interpreter });
        }
        return Ok(());
    }
    let info = ElfInfo::parse(&bytes).map_err(|source| SealError::Elf { path: entry.dest.clone(), source })?;
    let present: BTreeSet<String> = entries
        .iter()
        .filter(|e| matches!(e.kind, SealEntryKind::File(_) | SealEntryKind::Symlink { .. }))
        .map(|e| e.dest.clone())
        .collect();
    Ok(linkage::require_interpreter(&entry.dest, &info, &present)?)
}

/// The interpreter path of a `#!` script (the first word after `#!`, as `fs/binfmt_script.c` reads it).
fn shebang(bytes: &[u8]) -> Option<String> {
    let rest = bytes.strip_prefix(b"#!")?;
    let line = rest.split(|&b| b == b'\n').next().unwrap_or_default();
    let word = line.split(|&b| b == b' ' || b == b'\t').find(|w| !w.is_empty()).unwrap_or_default();
    Some(String::from_utf8_lossy(word).into_owned())
}

fn kernel_config(inputs: &SealInputs<'_>) -> Result<(Option<KernelConfig>, KernelConfigReport), SealError> {
    let sha = |bytes: &[u8]| Some(hex::encode(Sha256::digest(bytes)));
    if let Some(path) = inputs.kernel_config {
        let io_err = |source| SealError::Io { what: "kernel config".into(), path: path.to_path_buf(), source };
        let bytes = crate::sys::regular_file::read_input(path).map_err(io_err)?;
        let config = KernelConfig::parse_bytes(&bytes)
            .map_err(|source| SealError::Kconfig { path: path.to_path_buf(), source })?;
        return Ok((Some(config), KernelConfigReport { source: "file", sha256: sha(&bytes), reason: None }));
    }
    match KernelConfig::from_bzimage_with_text(inputs.kernel) {
        Ok((config, text)) => {
            Ok((Some(config), KernelConfigReport { source: "ikconfig", sha256: sha(&text), reason: None }))
        }
        Err(err) => {
            let reason = format!("kernel.config is not set and the kernel's IKCONFIG cannot be read: {}", chain(&err));
            Ok((None, KernelConfigReport { source: "unavailable", sha256: None, reason: Some(reason) }))
        }
    }
}

/// An error and its sources, joined with `: ` (for a reason recorded as text in the manifest).
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

/// The module directory for `release`: `tree` itself, `tree/<release>` when `tree` is a `lib/modules` directory,
/// or `tree/lib/modules/<release>` for a package root.
fn module_dir(tree: &Path, release: &str) -> Result<PathBuf, SealError> {
    let tree_is_modules = tree.file_name().is_some_and(|n| n == "modules") && tree.join(release).is_dir();
    let lib_modules = if tree_is_modules { tree.to_path_buf() } else { tree.join("lib").join("modules") };
    if lib_modules.is_dir() {
        let dir = lib_modules.join(release);
        if dir.is_dir() {
            return Ok(dir);
        }
        let mut found: Vec<String> = std::fs::read_dir(&lib_modules)
            .map_err(|source| SealError::Io { what: "module tree".into(), path: lib_modules.clone(), source })?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        found.sort();
        return Err(SealError::NoReleaseDir { tree: tree.to_path_buf(), kernel_release: release.into(), found });
    }
    // `…/lib/modules/<name>`: the directory name is the release it was built for.
    let parent_is_modules = tree.parent().and_then(Path::file_name).is_some_and(|n| n == "modules");
    if let Some(name) = tree.file_name().map(|n| n.to_string_lossy()).filter(|_| parent_is_modules) {
        if name != release {
            return Err(SealError::TreeRelease {
                tree: tree.to_path_buf(),
                tree_release: name.into_owned(),
                kernel_release: release.into(),
            });
        }
    }
    Ok(tree.to_path_buf())
}

fn collect_modules(
    kernel: &[u8],
    tree: &ModuleTree<'_>,
    config: Option<&KernelConfig>,
) -> Result<ModuleSet, SealError> {
    let release = modules::kernel_release(kernel)?;
    let dir = module_dir(tree.tree, &release)?;
    // With CONFIG_MODULE_DECOMPRESS=y the kernel's finit_module decompresses `.ko.xz` itself.
    let keep_compressed = config.is_some_and(|c| c.is_builtin("CONFIG_MODULE_DECOMPRESS"));
    let request = ModuleRequest { modules_dir: &dir, kernel_release: &release, names: tree.load, keep_compressed };
    Ok(modules::collect(&request)?)
}

fn module_file(m: &modules::StagedModule) -> ModuleFile {
    ModuleFile { dest: m.entry.dest.clone(), bytes: m.bytes.clone(), mode: MODULE_MODE, sha256: m.entry.sha256.clone() }
}

fn scan_initrd(checker: &mut Checker, entries: &[SealEntry], module_files: &[ModuleFile]) -> Result<(), SealError> {
    let mut contents: BTreeMap<String, &Content> = BTreeMap::new();
    let mut list = Vec::new();
    for e in entries {
        let kind = match &e.kind {
            SealEntryKind::File(content) => {
                contents.insert(e.dest.clone(), content);
                EntryKind::File
            }
            SealEntryKind::Symlink { target } => EntryKind::Symlink { target: target.clone() },
            SealEntryKind::Dir => EntryKind::Dir,
            SealEntryKind::Other => EntryKind::Other,
        };
        list.push(InitrdEntry { dest: e.dest.clone(), kind });
    }
    let module_bytes: BTreeMap<&str, &[u8]> = module_files.iter().map(|m| (m.dest.as_str(), &m.bytes[..])).collect();
    list.extend(module_files.iter().map(|m| InitrdEntry { dest: m.dest.clone(), kind: EntryKind::File }));
    checker.check_initrd(&list, |entry| -> io::Result<Box<dyn Read + '_>> {
        if let Some(bytes) = module_bytes.get(entry.dest.as_str()) {
            return Ok(Box::new(*bytes));
        }
        match contents.get(&entry.dest) {
            Some(Content::Bytes(b)) => Ok(Box::new(&b[..])),
            Some(Content::Path(p)) => Ok(Box::new(crate::sys::regular_file::open_input(p)?)),
            None => Err(io::Error::new(io::ErrorKind::NotFound, "no content for this entry")),
        }
    })?;
    Ok(())
}
