//! The SEV-SNP guest context launch digest: the chain of `SNP_LAUNCH_UPDATE` page measurements.
//!
//! Spec: `docs/specs/snp-launch-digest.md`, "SNP page-update chain (GCTX)"; SNP ABI spec 8.17.2 Table 67 (PAGE_INFO).
//!
//! Each page update replaces the digest `ld` with `SHA-384(PAGE_INFO)`, where PAGE_INFO is the old `ld`, the page
//! contents digest, and the page metadata. The digest is only readable after [`Gctx::finish`], so that no caller
//! can print a half-built measurement by mistake (a typestate, as in virtee `sev::measurement::gctx`).

use std::fmt;
use std::marker::PhantomData;

use thiserror::Error;

pub use crate::digest::Sha384;
use crate::digest::SHA384_LEN;

/// Bytes in a SHA-384 digest, the size of the launch digest.
pub const LD_LEN: usize = SHA384_LEN;
/// Bytes in a guest page.
pub const PAGE_SIZE: usize = 4096;
/// Length of the PAGE_INFO structure (SNP ABI spec Table 67); also stored inside it.
const PAGE_INFO_LEN: u16 = 0x70;
/// The GPA recorded for VMSA pages: `(u64)-1`, page-aligned, with bits above 51 cleared.
pub const VMSA_GPA: u64 = 0xFFFF_FFFF_F000;

/// The page types of `SNP_LAUNCH_UPDATE` (SNP ABI spec Table 67, PAGE_TYPE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum PageType {
    /// Measured contents.
    Normal = 1,
    /// A vCPU save area.
    Vmsa = 2,
    /// Zeroed by the firmware; contents not hashed.
    Zero = 3,
    /// Not measured at all (GCE's view of SEC_MEM).
    Unmeasured = 4,
    /// The secrets page filled in by the PSP.
    Secrets = 5,
    /// The CPUID page filled in by the PSP.
    Cpuid = 6,
}

impl PageType {
    /// The lowercase name used in `--explain` output.
    pub fn name(self) -> &'static str {
        match self {
            PageType::Normal => "normal",
            PageType::Vmsa => "vmsa",
            PageType::Zero => "zero",
            PageType::Unmeasured => "unmeasured",
            PageType::Secrets => "secrets",
            PageType::Cpuid => "cpuid",
        }
    }
}

impl fmt::Display for PageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a page update could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum GctxError {
    /// A region to be measured is not a whole number of pages.
    #[error("region at gpa {gpa:#x} is {len:#x} bytes, not a multiple of the 4 KiB page size")]
    NotPageAligned {
        /// Start of the region.
        gpa: u64,
        /// Its length.
        len: u64,
    },
    /// A page's address does not fit in 64 bits.
    #[error("region at gpa {gpa:#x} of {len:#x} bytes runs past the 64-bit address space")]
    GpaOverflow {
        /// Start of the region.
        gpa: u64,
        /// Its length.
        len: u64,
    },
}

/// Typestate: pages may still be added.
#[derive(Debug, Clone, Copy)]
pub struct Updating;
/// Typestate: the digest is final and readable.
#[derive(Debug, Clone, Copy)]
pub struct Completed;

/// The guest context: the running launch digest. Cloning copies 48 bytes, so that many vCPU counts can share a prefix.
#[derive(Debug, Clone, Copy)]
pub struct Gctx<S = Updating> {
    ld: Sha384,
    state: PhantomData<S>,
}

impl Default for Gctx<Updating> {
    fn default() -> Self {
        Self::new()
    }
}

impl Gctx<Updating> {
    /// A fresh context: `ld` is 48 zero bytes.
    pub fn new() -> Self {
        Self::with_seed(Sha384::ZERO)
    }

    /// A context that continues from a precomputed digest (`--snp-ovmf-hash`).
    pub fn with_seed(seed: Sha384) -> Self {
        Gctx { ld: seed, state: PhantomData }
    }

    /// Measures one page given its contents digest; returns the new running digest.
    pub fn update(&mut self, page_type: PageType, gpa: u64, contents: &Sha384) -> Sha384 {
        // SNP ABI spec 8.17.2 Table 67: DIGEST_CUR, CONTENTS, LENGTH, PAGE_TYPE, IMI_PAGE, VMPL3..1 perms, reserved, GPA.
        let mut info = [0u8; PAGE_INFO_LEN as usize];
        info[..LD_LEN].copy_from_slice(&self.ld.0);
        info[LD_LEN..2 * LD_LEN].copy_from_slice(&contents.0);
        info[0x60..0x62].copy_from_slice(&PAGE_INFO_LEN.to_le_bytes());
        info[0x62] = page_type as u8;
        // 0x63 IMI_PAGE, 0x64..0x67 VMPL permissions and reserved: all zero for a launch.
        info[0x68..0x70].copy_from_slice(&gpa.to_le_bytes());
        self.ld = Sha384::of(&info);
        self.ld
    }

    /// Measures one page of contents `page` (a VMSA or a firmware page).
    pub fn update_page(&mut self, page_type: PageType, gpa: u64, page: &[u8; PAGE_SIZE]) -> Sha384 {
        self.update(page_type, gpa, &Sha384::of(page))
    }

    /// Checks that `len` bytes from `gpa` are whole pages inside the address space; returns the page count.
    pub fn page_count(gpa: u64, len: u64) -> Result<u64, GctxError> {
        if !len.is_multiple_of(PAGE_SIZE as u64) {
            return Err(GctxError::NotPageAligned { gpa, len });
        }
        gpa.checked_add(len).ok_or(GctxError::GpaOverflow { gpa, len })?;
        Ok(len / PAGE_SIZE as u64)
    }

    /// The running digest, for `--explain`. Not the launch digest until [`Gctx::finish`].
    pub fn running(&self) -> Sha384 {
        self.ld
    }

    /// Ends the launch; the digest becomes readable.
    pub fn finish(self) -> Gctx<Completed> {
        Gctx { ld: self.ld, state: PhantomData }
    }
}

impl Gctx<Completed> {
    /// The launch digest, as reported in the attestation report's `MEASUREMENT` field.
    pub fn digest(&self) -> Sha384 {
        self.ld
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_zero_page_matches_a_hand_built_page_info() {
        // Independent construction of PAGE_INFO from Table 67 for a single Zero page at gpa 0x1000.
        let mut info = Vec::new();
        info.extend_from_slice(&[0u8; 48]);
        info.extend_from_slice(&[0u8; 48]);
        info.extend_from_slice(&[0x70, 0x00, 3, 0, 0, 0, 0, 0]);
        info.extend_from_slice(&0x1000u64.to_le_bytes());
        assert_eq!(info.len(), 0x70);
        let mut g = Gctx::new();
        g.update(PageType::Zero, 0x1000, &Sha384::ZERO);
        assert_eq!(g.finish().digest(), Sha384::of(&info));
    }

    #[test]
    fn clone_shares_the_prefix() {
        let mut a = Gctx::new();
        a.update(PageType::Cpuid, 0x2000, &Sha384::ZERO);
        let mut b = a;
        a.update(PageType::Secrets, 0x3000, &Sha384::ZERO);
        b.update(PageType::Secrets, 0x3000, &Sha384::ZERO);
        assert_eq!(a.finish().digest(), b.finish().digest());
    }

    #[test]
    fn rejects_unaligned_region() {
        assert_eq!(Gctx::page_count(0, 0x1001), Err(GctxError::NotPageAligned { gpa: 0, len: 0x1001 }));
        assert_eq!(
            Gctx::page_count(u64::MAX - 0xfff, 0x2000),
            Err(GctxError::GpaOverflow { gpa: u64::MAX - 0xfff, len: 0x2000 })
        );
        assert_eq!(Gctx::page_count(0x1000, 0x3000), Ok(3));
    }
}
