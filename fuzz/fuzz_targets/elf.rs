//! Untrusted initrd files through the ELF parser, section reader, linkage checks and content scanner: any result
//! but a panic is acceptable, and whatever parses as ELF must scan as ELF.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cvmforge::fuzzing::elf(data));
