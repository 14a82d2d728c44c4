//! Client bytes through the demo server's request reader: never a panic, limits always hold.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| summarize_server::http::fuzz_request(data));
