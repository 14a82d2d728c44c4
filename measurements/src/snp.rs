//! AMD SEV, SEV-ES and SEV-SNP launch digests. See docs/specs/snp-launch-digest.md.
