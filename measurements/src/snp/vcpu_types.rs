//! SNP: vcpu_types (to be written). See docs/specs/snp-launch-digest.md.
