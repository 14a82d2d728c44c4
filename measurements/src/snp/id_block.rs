//! SNP: id_block (to be written). See docs/specs/snp-launch-digest.md.
