//! Kernel modules: path validation, the `finit_module(2)` flag choice, loading.
//!
//! The builder lists modules already dependency-sorted; we load them in order.
//! Compressed modules (`.ko.xz`, `.ko.zst`, `.ko.gz`) are handed to the kernel
//! as they are with `MODULE_INIT_COMPRESSED_FILE` (Linux >= 5.17,
//! `include/uapi/linux/module.h`), which needs `CONFIG_MODULE_DECOMPRESS`.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::kmod::{finit_module, ModuleInitFlags};

/// `MODULE_INIT_COMPRESSED_FILE` from `include/uapi/linux/module.h` (not in `libc`).
pub(crate) const MODULE_INIT_COMPRESSED_FILE: u32 = 4;

/// Suffixes accepted for module files, and whether each is compressed.
const SUFFIXES: [(&str, bool); 4] = [(".ko", false), (".ko.xz", true), (".ko.zst", true), (".ko.gz", true)];

/// A validated module path from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Module {
    /// Absolute path inside the initrd.
    pub(crate) path: PathBuf,
    /// Module name for logs (file name without the suffix).
    pub(crate) name: String,
    /// Whether the kernel must decompress it.
    pub(crate) compressed: bool,
}

/// Why a module path was rejected or could not be loaded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ModuleError {
    /// Not absolute, or contains `..` / `.` components.
    #[error("module path `{path}` must be absolute and normalised")]
    NotAbsolute { path: String },
    /// No known module suffix.
    #[error("module path `{path}` must end in .ko, .ko.xz, .ko.zst or .ko.gz")]
    BadSuffix { path: String },
    /// The module file could not be opened.
    #[error("cannot open module `{path}`")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The kernel refused the module.
    #[error("finit_module(`{path}`) failed: {errno}")]
    Load { path: String, errno: Errno },
}

/// True for `/a/b/c`: absolute, no empty, `.` or `..` segments, no NUL.
pub(crate) fn is_normal_absolute(path: &str) -> bool {
    path.strip_prefix('/')
        .is_some_and(|rest| !path.contains('\0') && rest.split('/').all(|seg| !matches!(seg, "" | "." | "..")))
}

impl Module {
    /// Validates a module path from the config.
    pub(crate) fn parse(path: &str) -> Result<Module, ModuleError> {
        if !is_normal_absolute(path) {
            return Err(ModuleError::NotAbsolute { path: path.into() });
        }
        let p = Path::new(path);
        let file = p.file_name().and_then(|f| f.to_str()).unwrap_or_default();
        let (name, compressed) = SUFFIXES
            .iter()
            .find_map(|(suffix, compressed)| {
                file.strip_suffix(suffix)
                    .filter(|stem| !stem.is_empty() && !stem.contains('.'))
                    .map(|stem| (stem.to_owned(), *compressed))
            })
            .ok_or_else(|| ModuleError::BadSuffix { path: path.into() })?;
        Ok(Module { path: p.to_path_buf(), name, compressed })
    }

    /// The `finit_module` flags for this file.
    pub(crate) fn flags(&self) -> ModuleInitFlags {
        if self.compressed {
            ModuleInitFlags::from_bits_retain(MODULE_INIT_COMPRESSED_FILE)
        } else {
            ModuleInitFlags::empty()
        }
    }

    /// Loads the module.
    pub(crate) fn load(&self) -> Result<Loaded, ModuleError> {
        let display = self.path.display().to_string();
        let file = File::open(&self.path).map_err(|source| ModuleError::Open { path: display.clone(), source })?;
        outcome(finit_module(&file, c"", self.flags())).map_err(|errno| ModuleError::Load { path: display, errno })
    }
}

/// What loading one module did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loaded {
    /// The module is now loaded.
    Yes,
    /// The kernel already had it (`EEXIST`).
    AlreadyHad,
    /// Its init found no device (`ENODEV`), so the kernel unloaded it again: a driver for hardware this VM does
    /// not have, e.g. `sev-guest` outside an SEV-SNP guest. The image can still do its job (the payload finds no
    /// device node), so this is not fatal; any other refusal (bad signature, wrong kernel, ...) is.
    NoDevice,
}

impl Loaded {
    /// The console line for module `name`.
    pub(crate) fn describe(self, name: &str) -> String {
        match self {
            Loaded::Yes => format!("loaded module {name}"),
            Loaded::AlreadyHad => format!("already had module {name}"),
            Loaded::NoDevice => format!("module {name} found no device (ENODEV); not loaded"),
        }
    }
}

/// Maps `finit_module`'s result.
fn outcome(result: Result<(), Errno>) -> Result<Loaded, Errno> {
    match result {
        Ok(()) => Ok(Loaded::Yes),
        Err(Errno::EEXIST) => Ok(Loaded::AlreadyHad),
        Err(Errno::ENODEV) => Ok(Loaded::NoDevice),
        Err(errno) => Err(errno),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_compressed_modules() {
        let m = Module::parse("/lib/modules/6.1.0/kernel/drivers/net/virtio_net.ko").unwrap();
        assert_eq!((m.name.as_str(), m.compressed), ("virtio_net", false));
        assert_eq!(m.flags().bits(), 0);
        for suffix in ["xz", "zst", "gz"] {
            let m = Module::parse(&format!("/lib/modules/x/net_failover.ko.{suffix}")).unwrap();
            assert_eq!((m.name.as_str(), m.compressed), ("net_failover", true));
            // include/uapi/linux/module.h: #define MODULE_INIT_COMPRESSED_FILE 4
            assert_eq!(m.flags().bits(), 4);
        }
    }

    #[test]
    fn only_eexist_and_enodev_are_not_fatal() {
        assert_eq!(outcome(Ok(())), Ok(Loaded::Yes));
        assert_eq!(outcome(Err(Errno::EEXIST)), Ok(Loaded::AlreadyHad));
        assert_eq!(outcome(Err(Errno::ENODEV)), Ok(Loaded::NoDevice));
        for errno in [Errno::EKEYREJECTED, Errno::ENOEXEC, Errno::EPERM, Errno::ENOENT, Errno::EINVAL] {
            assert_eq!(outcome(Err(errno)), Err(errno));
        }
    }

    #[test]
    fn rejects_bad_module_paths() {
        for p in ["lib/virtio_net.ko", "/lib/../virtio_net.ko", "/lib/./a.ko", "/a.ko/", ""] {
            assert!(matches!(Module::parse(p), Err(ModuleError::NotAbsolute { .. })), "{p}");
        }
        for p in ["/lib/virtio_net.o", "/lib/virtio_net.ko.bz2", "/lib/.ko", "/lib/a.b.ko"] {
            assert!(matches!(Module::parse(p), Err(ModuleError::BadSuffix { .. })), "{p}");
        }
    }
}
