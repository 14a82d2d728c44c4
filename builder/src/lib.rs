//! cvmforge: a deterministic builder for sealed confidential-VM images.
//!
//! A recipe names a kernel, a command line, the initrd contents and the firmware; the build turns it into
//! bit-for-bit reproducible outputs (a compressed newc initrd, copies of the kernel and firmware, a manifest and a
//! publishing tar) and records the SEV-SNP and TDX launch measurements of every VM shape the recipe lists.
//!
//! The `cvmforge` binary is a thin layer over this library.

pub mod build;
pub mod bzimage;
pub mod cli;
pub mod compress;
pub mod cpio;
pub mod diff;
pub mod display;
pub mod elf;
pub mod kconfig;
pub mod lock;
pub mod manifest;
pub mod mapped;
pub mod modules;
pub mod policy;
pub mod qemu;
pub mod recipe;
pub mod regular_file;
pub mod sched;
pub mod sealing;
mod sigbus;
pub mod tar;
pub mod unpack;
pub mod verify;
