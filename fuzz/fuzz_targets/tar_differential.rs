#![no_main]
//! Untrusted tars through our bounded reader and the `tar` crate's: whatever ours accepts, the `tar` crate must read
//! as the same entries (a member one reader sees and the other does not is how content is smuggled past a checker).
libfuzzer_sys::fuzz_target!(|data: &[u8]| cvmforge::fuzzing::tar_differential(data));
