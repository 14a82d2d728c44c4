//! Integration tests of the `cvmforge` binary: stdout, stderr and exit codes.

#![allow(clippy::unwrap_used, reason = "test helpers: a failure here is a test failure")]

mod measure_snp;
