//! `snp:svsm` mode: Coconut-SVSM loaded below OVMF and its variable store.
//!
//! Spec: `docs/specs/snp-launch-digest.md`, "snp:svsm"; coconut-svsm QEMU `target/i386/sev.c` (SVSM entry point).
//! OVMF ends at 4 GiB; the OVMF_VARS store sits just below it; the SVSM image ends where the store begins. Every
//! vCPU starts at the SVSM entry point in 32-bit flat mode.

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use crate::snp::ovmf::{Firmware, OvmfError};

/// Where the SVSM image is loaded and where its vCPUs start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SvsmLayout {
    /// Guest-physical start of the SVSM image.
    pub gpa: u64,
    /// Entry point: the SVSM_INFO offset plus the load address (wrapped to 64 bits, as the VMSA field is).
    pub rip: u64,
}

impl SvsmLayout {
    /// Places `svsm` so that it ends `vars_size` bytes below `ovmf_gpa`.
    ///
    /// `vars_size` is signed because the reference takes any integer; a result outside the 64-bit address space is
    /// an error.
    pub fn new(svsm: &Firmware<'_>, ovmf_gpa: u64, vars_size: i128) -> Result<Self, OvmfError> {
        let end_at = i128::from(ovmf_gpa)
            .checked_sub(vars_size)
            .ok_or(OvmfError::TooLarge { len: svsm.data().len(), end_at: i128::MAX })?;
        let gpa = svsm.gpa_ending_at(end_at)?;
        let entry = svsm.svsm_entry_offset()?;
        Ok(SvsmLayout { gpa, rip: gpa.wrapping_add(u64::from(entry)) })
    }
}
