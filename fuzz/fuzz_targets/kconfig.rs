//! Untrusted kernel configurations (`.config` text, and bzImages with IKCONFIG): no panics, and every parsed
//! configuration survives a render-and-reparse round trip.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cvmforge::fuzzing::kconfig(data));
