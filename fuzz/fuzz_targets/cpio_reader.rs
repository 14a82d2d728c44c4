//! Untrusted initrds (plain, gzip or zstd newc) through the bounded cpio reader: any result but a panic is acceptable,
//! and whatever parses must round-trip through the crate's `CpioWriter`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cvmforge::fuzzing::cpio_reader(data));
