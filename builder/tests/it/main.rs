//! The one integration-test binary of the `cvmforge` crate: runs the built `cvmforge` binary and checks stdout,
//! stderr and the exit code.

mod id_block;
mod run;
