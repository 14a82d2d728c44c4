//! Untrusted SEV-SNP attestation reports: every field read as `check-evidence` reads it once the signature held (the
//! `sev` crate's parser, policy, TCB and key checks); any result but a panic is acceptable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cvmforge::fuzzing::snp_report(data));
