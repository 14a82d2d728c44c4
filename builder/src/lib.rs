//! cvmforge: a deterministic builder for sealed confidential-VM images.
//!
//! A recipe names a kernel, a command line, the initrd contents and the firmware; the build turns it into
//! bit-for-bit reproducible outputs (a compressed newc initrd, copies of the kernel and firmware, a manifest and a
//! publishing tar) and records the SEV-SNP and TDX launch measurements of every VM shape the recipe lists.
//!
//! The modules are layers (see `ARCHITECTURE.md` at the repository root); data flows one way, from the recipe to
//! the published image, and a layer only uses the layers listed before it:
//!
//! - [`sys`]: operating-system glue (safe file opening, memory maps, thread scheduling).
//! - [`display`]: escaping untrusted text before it is shown.
//! - [`units`]: sizes (`512M`) and durations (`2m`) as people write them: the one parser of each.
//! - [`mod@format`]: file formats, each with its reader and writer (cpio, tar, compression, ELF, kconfig, bzImage).
//! - [`recipe`]: the recipe schema, its validation, the initrd layout and the lock file.
//! - [`seal`]: the sealing stage (policy, checks, signatures, command line, kernel modules).
//! - [`qemu`]: QEMU command lines (pure argv builders).
//! - [`manifest`]: the typed record of a build.
//! - [`build`]: the build pipeline (inputs, initrd, outputs, measurements).
//! - [`diff`]: explaining the differences between two builds.
//! - [`verify`]: rebuilding a publication and comparing.
//!
//! The `cvmforge` binary (its `cli` module is not part of this library) parses arguments, calls the library and
//! renders the outcome. The library never prints.

pub mod build;
pub mod diff;
pub mod display;
pub mod evidence;
pub mod format;
pub mod fuzzing;
pub mod manifest;
pub mod publish;
pub mod qemu;
pub mod recipe;
pub mod seal;
pub mod sys;
pub mod units;
pub mod verify;
