//! The one integration-test binary of the `cvmforge` crate: runs the built `cvmforge` binary and the library, and checks
//! outputs, stderr and exit codes.

mod diff;
mod id_block;
mod seal;
