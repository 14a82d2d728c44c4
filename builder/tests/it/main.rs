//! The integration tests of the `cvmforge` binary: one test binary, one module per area.

// Helpers outside #[test] functions may unwrap too: a failure there is a test failure, not input handling.
#![allow(clippy::unwrap_used)]

mod util;

mod bad_input;
mod build;
mod reproducible;
