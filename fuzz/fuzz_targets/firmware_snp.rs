//! Untrusted firmware bytes through every SEV / SEV-ES / SEV-SNP mode: any result but a panic is acceptable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = cvmforge_measure::snp::guest::fuzz_firmware(data);
});
