//! AMD SEV, SEV-ES and SEV-SNP launch digests, bit-exact with `sev-snp-measure` 0.0.13.
//!
//! Spec: `docs/specs/snp-launch-digest.md`. One module per spec object; [`guest`] only orchestrates.

pub mod gctx;
pub mod guest;
pub mod id_block;
pub mod ovmf;
pub mod page_digests;
pub mod policy;
pub mod sev_hashes;
pub mod svsm;
pub mod vcpu_types;
pub mod vmm_types;
pub mod vmsa;
