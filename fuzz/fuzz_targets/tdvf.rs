//! Fuzzes TDVF descriptor parsing and MRTD (`cvmforge_measure::tdx::fuzzing::tdvf`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cvmforge_measure::tdx::fuzzing::tdvf(data));
