//! SNP: sev_hashes (to be written). See docs/specs/snp-launch-digest.md.
