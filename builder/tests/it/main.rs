//! Integration tests of the cvmforge library and binary.

mod seal;
