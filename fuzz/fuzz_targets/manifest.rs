//! Untrusted manifests through `Manifest::from_json`: never a panic, and what parses round-trips.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cvmforge::fuzzing::manifest(data));
