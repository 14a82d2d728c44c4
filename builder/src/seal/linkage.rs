//! Whether an initrd executable can start: the init must be static, and a dynamic payload's ELF interpreter must be in
//! the initrd. The facts come from the ELF reader ([`crate::format::elf`]); the rules are the sealing stage's.
//!
//! ```
//! use std::collections::BTreeSet;
//! use cvmforge::format::elf::ElfInfo;
//! use cvmforge::seal::linkage::require_interpreter;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let bytes = cvmforge::format::elf::testing::executable(Some("/lib64/ld-linux-x86-64.so.2"));
//! let info = ElfInfo::parse(&bytes)?;
//! let initrd: BTreeSet<String> = ["/init".to_string(), "/bin/server".to_string()].into();
//! let err = require_interpreter("/bin/server", &info, &initrd).unwrap_err();
//! assert!(err.to_string().contains("/lib64/ld-linux-x86-64.so.2"));
//! # Ok(()) }
//! ```

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::collections::BTreeSet;

use thiserror::Error;

use crate::format::elf::{ElfInfo, ElfType, Linkage};

/// A linkage problem that makes an initrd executable unable to start.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum LinkError {
    /// A dynamically linked binary whose loader is not in the initrd.
    #[error(
        "`{path}` is dynamically linked and needs the interpreter `{interpreter}`, which is not in the initrd \
         (link it statically, e.g. with `--target x86_64-unknown-linux-musl`, or add the loader and its libraries)"
    )]
    MissingInterpreter {
        /// Initrd path of the binary.
        path: String,
        /// The `PT_INTERP` path that is absent.
        interpreter: String,
    },
    /// The init program is not statically linked.
    #[error(
        "the init program `{path}` is not statically linked ({linkage}): PID 1 must start before anything else \
         exists, so it must be a static or static-pie executable"
    )]
    InitNotStatic {
        /// Initrd path of the init.
        path: String,
        /// What it is instead.
        linkage: String,
    },
    /// A payload that the kernel cannot execute.
    #[error("`{path}` is not an executable ELF file (e_type {kind:?})")]
    NotExecutable {
        /// Initrd path.
        path: String,
        /// Its `e_type`.
        kind: ElfType,
    },
}

fn normalize(path: &str) -> String {
    format!("/{}", path.trim_start_matches('/'))
}

/// Checks that an initrd executable can be started: it is executable and, when dynamic, its interpreter is one of
/// `initrd_paths` (destination paths of files or symlinks, with or without a leading `/`).
pub fn require_interpreter(path: &str, info: &ElfInfo, initrd_paths: &BTreeSet<String>) -> Result<(), LinkError> {
    match &info.linkage {
        Linkage::Static | Linkage::StaticPie => Ok(()),
        Linkage::NotExecutable => Err(LinkError::NotExecutable { path: path.to_string(), kind: info.kind }),
        Linkage::Dynamic { interpreter } => {
            let wanted = normalize(interpreter);
            if initrd_paths.iter().any(|p| normalize(p) == wanted) {
                Ok(())
            } else {
                Err(LinkError::MissingInterpreter { path: path.to_string(), interpreter: interpreter.clone() })
            }
        }
    }
}

/// Checks that the init program is a static or static-pie executable.
pub fn require_static_init(path: &str, info: &ElfInfo) -> Result<(), LinkError> {
    match &info.linkage {
        Linkage::Static | Linkage::StaticPie => Ok(()),
        Linkage::Dynamic { interpreter } => Err(LinkError::InitNotStatic {
            path: path.to_string(),
            linkage: format!("dynamic, interpreter `{interpreter}`"),
        }),
        Linkage::NotExecutable => Err(LinkError::NotExecutable { path: path.to_string(), kind: info.kind }),
    }
}

#[cfg(test)]
mod tests {
    use crate::format::elf::testing::executable;

    use super::*;

    #[test]
    fn rejects_dynamic_payload_without_loader_naming_interpreter() {
        let info = ElfInfo::parse(&executable(Some("/lib64/ld-linux-x86-64.so.2"))).unwrap();
        let paths: BTreeSet<String> = ["/init".into(), "usr/bin/server".into()].into();
        let err = require_interpreter("/usr/bin/server", &info, &paths).unwrap_err();
        assert_eq!(
            err,
            LinkError::MissingInterpreter {
                path: "/usr/bin/server".into(),
                interpreter: "/lib64/ld-linux-x86-64.so.2".into()
            }
        );
        assert!(err.to_string().contains("`/lib64/ld-linux-x86-64.so.2`"));
        let with_loader: BTreeSet<String> = ["lib64/ld-linux-x86-64.so.2".into()].into();
        require_interpreter("/usr/bin/server", &info, &with_loader).unwrap();
    }

    #[test]
    fn rejects_dynamic_init() {
        let info = ElfInfo::parse(&executable(Some("/lib/ld-musl-x86_64.so.1"))).unwrap();
        let err = require_static_init("/init", &info).unwrap_err();
        assert!(err.to_string().contains("`/init` is not statically linked"), "{err}");
        require_static_init("/init", &ElfInfo::parse(&executable(None)).unwrap()).unwrap();
    }
}
