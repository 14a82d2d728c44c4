#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cvmforge::unpack::fuzzing::tar_reader(data));
