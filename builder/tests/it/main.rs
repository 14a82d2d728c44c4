//! Integration tests of the `cvmforge` binary: one module per subcommand.

#![allow(clippy::unwrap_used, reason = "test helpers: a panic is a test failure with its message")]

mod measure_tdx;
