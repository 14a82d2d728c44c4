//! Two untrusted files (split at the first NUL byte) through `cvmforge diff`'s detection and comparison: a file never
//! differs from itself, and the report says "identical" exactly when the bytes are.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cvmforge::fuzzing::manifest_diff(data));
