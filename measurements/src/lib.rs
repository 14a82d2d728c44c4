//! Launch measurements for confidential VMs, computed from the bytes that the VMM loads.
//!
//! This crate is pure computation: it takes byte slices and readers, opens no files and never prints.
//! Each module follows one concept of the specifications in `docs/specs/`:
//!
//! - [`reader`]: the one bounds-checked reader that every parser of untrusted bytes goes through;
//! - [`guid`]: typed EFI GUID constants;
//! - [`digest`]: [`digest::Sha384`], the one 48-byte digest type;
//! - [`bzimage`]: the Linux x86 boot protocol setup header of a bzImage;
//! - [`firmware_table`]: the OVMF footer GUID table shared by SEV and TDX firmware;
//! - [`snp`]: AMD SEV, SEV-ES and SEV-SNP launch digests (bit-exact with `sev-snp-measure` 0.0.13);
//! - [`tdx`]: Intel TDX MRTD and RTMRs.

pub mod bzimage;
pub mod digest;
pub mod firmware_table;
pub mod guid;
pub mod reader;
pub mod snp;
pub mod tdx;
