//! SNP: guest (to be written). See docs/specs/snp-launch-digest.md.
