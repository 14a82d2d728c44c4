//! Why sealing failed ([`SealError`]), and how to fix or accept a policy violation ([`remedy`]).

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use crate::format::elf::ElfError;
use crate::format::kconfig::KconfigError;
use crate::seal::check::MAX_SYMLINK_HOPS;
use crate::seal::linkage::LinkError;
use crate::seal::modules::ModuleError;
use crate::seal::policy::{Category, PolicyError, Violation};

/// A sealing failure.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SealError {
    /// A file could not be read.
    #[error("cannot read {what} `{path}`")]
    Io {
        /// What the file is (`init`, `kernel config`, `initrd file /usr/bin/x`).
        what: String,
        /// The file on disk.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The init or payload is not a valid x86-64 ELF file.
    #[error("`{path}` in the initrd is not a valid x86-64 ELF executable")]
    Elf {
        /// Initrd path.
        path: String,
        /// The parse error.
        source: ElfError,
    },
    /// The init is not static, or the payload's interpreter is missing.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// `initrd.command[0]` names no initrd entry (directly or through a symlink).
    #[error(
        "the payload command `{command}` is not in the initrd{}: add a file with `dst: {missing}` under \
         initrd.files, or change initrd.command[0]",
        if command == missing { String::new() } else { format!(" (its symlink leads to `{missing}`, which is missing)") }
    )]
    CommandMissing {
        /// `initrd.command[0]`.
        command: String,
        /// The path that is missing (differs from `command` after symlinks).
        missing: String,
    },
    /// `initrd.command[0]` is a directory or device.
    #[error("the payload command `{command}` resolves to `{path}`, which is a {what}, not a file")]
    CommandNotFile {
        /// `initrd.command[0]`.
        command: String,
        /// The resolved path.
        path: String,
        /// `directory` or `device node`.
        what: &'static str,
    },
    /// Too many symlinks, or a loop.
    #[error("the payload command `{command}` goes through more than {MAX_SYMLINK_HOPS} symlinks (a symlink loop?)")]
    SymlinkLoop {
        /// `initrd.command[0]`.
        command: String,
    },
    /// A `#!` script whose interpreter is not in the initrd.
    #[error(
        "`{path}` is a script for `{interpreter}`, which is not in the initrd (add the interpreter, or use a \
         compiled, statically linked payload)"
    )]
    ScriptInterpreterMissing {
        /// Initrd path of the script.
        path: String,
        /// Its `#!` interpreter.
        interpreter: String,
    },
    /// A bad waiver or policy file.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The `kernel.config` file does not parse.
    #[error("kernel config `{path}`")]
    Kconfig {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: KconfigError,
    },
    /// Modules could not be collected (missing, built for another kernel, unreadable).
    #[error(transparent)]
    Modules(#[from] ModuleError),
    /// The module tree is a `lib/modules/<release>` directory of another kernel release.
    #[error(
        "kernel.modules.tree `{tree}` holds modules for kernel `{tree_release}`, but the kernel is \
         `{kernel_release}`: use the lib/modules directory from the same linux-image package as the kernel"
    )]
    TreeRelease {
        /// The tree.
        tree: PathBuf,
        /// The release its directory name says.
        tree_release: String,
        /// The bzImage's release.
        kernel_release: String,
    },
    /// A package root without `lib/modules/<release>` for this kernel.
    #[error(
        "kernel.modules.tree `{tree}` has no lib/modules/{kernel_release} for the kernel `{kernel_release}` (it has: \
         {}): use the linux-image package the kernel came from",
        if found.is_empty() { "nothing".to_string() } else { found.join(", ") }
    )]
    NoReleaseDir {
        /// The package root.
        tree: PathBuf,
        /// The bzImage's release.
        kernel_release: String,
        /// The releases present under `lib/modules`.
        found: Vec<String>,
    },
    /// Strict mode and unwaived violations remain.
    #[error("{}", not_sealed_message(violations))]
    NotSealed {
        /// Every unwaived violation.
        violations: Vec<Violation>,
    },
}

/// How to fix or accept one violation.
pub fn remedy(v: &Violation) -> String {
    let fix = match v.category {
        Category::RemoteAccess | Category::ConsoleLogin | Category::Shell => {
            let path = v.detail.split('`').nth(1).unwrap_or(&v.item);
            format!("remove `{path}` from the initrd")
        }
        Category::KernelCmdline => "change kernel.cmdline (or the kernel's built-in CONFIG_CMDLINE)".to_string(),
        Category::PrivilegeBit => "drop the setuid/setgid bits from its `mode` in the recipe".to_string(),
        Category::KernelConfig if v.item == crate::seal::policy::KCONFIG_UNAVAILABLE => {
            "set kernel.config to the kernel's config file".to_string()
        }
        Category::KernelConfig => {
            "use a kernel built with kernel-config/sealed-guest.config (or add the module to kernel.modules.load)"
                .to_string()
        }
    };
    format!("{fix}, or add a waiver `{{item: {}, reason: ...}}` under sealing.waivers", v.item)
}

fn not_sealed_message(violations: &[Violation]) -> String {
    let mut out = format!("the image is not sealed: {} policy violation(s) and strict mode is on", violations.len());
    for v in violations {
        out.push_str(&format!("\n  - `{}`: {}\n    fix: {}", v.item, v.detail, remedy(v)));
    }
    out
}
