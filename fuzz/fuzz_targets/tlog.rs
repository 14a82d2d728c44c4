//! Untrusted transparency-log files: signed notes and checkpoints, tlog-proofs, entry bundles and tile paths, as
//! `cvmforge log audit|verify-proof|witness` read them from a log or a website; parsing must never panic, and what
//! parses must round-trip.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cvmforge::fuzzing::tlog(data));
