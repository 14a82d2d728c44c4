//! SNP: svsm (to be written). See docs/specs/snp-launch-digest.md.
