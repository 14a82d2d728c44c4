#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cvmforge::diff::fuzzing::manifest_diff(data));
