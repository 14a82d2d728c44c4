//! Fuzzes PE/COFF parsing, Authenticode hashing and QEMU's header patch (`cvmforge_measure::tdx::fuzzing::pe`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cvmforge_measure::tdx::fuzzing::pe(data));
