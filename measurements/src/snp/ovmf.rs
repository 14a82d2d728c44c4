//! SNP: ovmf (to be written). See docs/specs/snp-launch-digest.md.
