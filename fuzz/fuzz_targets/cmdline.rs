//! Untrusted kernel command lines through the tokenizer and the sealing rules: no panics, and tokens rendered back
//! into a command line tokenize the same.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cvmforge::fuzzing::cmdline(data));
