//! The `cvmforge` integration tests (one binary; one module per area).

// Test helpers outside #[test] functions build fixtures from known-good values; a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod diff;
