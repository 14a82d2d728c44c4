//! Untrusted TDX quotes: the v4/v5 structure (header, body type and size, signature data length, padding) and every
//! register of the body; any result but a panic is acceptable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cvmforge::fuzzing::tdx_quote(data));
