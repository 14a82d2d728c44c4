//! Untrusted bundles through the bounded ustar/GNU/pax tar reader: any result but a panic is acceptable, knowing the
//! stream length must not change the outcome, and regular files must round-trip through the crate's `TarWriter`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cvmforge::fuzzing::tar_reader(data));
