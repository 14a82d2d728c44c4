//! The one integration-test binary of the `cvmforge` crate: runs the built `cvmforge` binary and the library, and checks
//! outputs, stderr and exit codes.

// Helpers outside #[test] functions may unwrap too: a failure there is a test failure, not input handling.
#![allow(clippy::unwrap_used)]

mod util;

mod bad_input;
mod build;
mod diff;
mod erofs;
mod evidence;
mod id_block;
mod inspect;
mod layers;
mod log;
mod log_interop;
mod measure_build;
mod measure_snp;
mod measure_tdx;
mod publish;
mod reproducible;
mod run;
mod seal;
mod sealed_build;
mod sealing;
mod tar_crate;
mod verify;
mod verity;
mod volume;
