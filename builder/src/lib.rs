//! cvmforge: a deterministic builder for sealed confidential-VM images.
//!
//! A recipe names a kernel, a command line, the initrd contents and the firmware; [`build`] turns it into
//! bit-for-bit reproducible outputs (a compressed newc initrd, copies of the kernel and firmware, a manifest and a
//! publishing tar) and records the SEV-SNP and TDX launch measurements of every VM shape the recipe lists.
//!
//! The `cvmforge` binary is a thin layer over this library.

pub mod cli;
