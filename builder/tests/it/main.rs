//! The integration tests of the `cvmforge` binary: one test binary, one module per area.

mod util;

mod bad_input;
mod build;
mod reproducible;
