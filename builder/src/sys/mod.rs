//! Operating-system glue shared by the layers above: opening untrusted input files without following links or
//! blocking ([`regular_file`]), reading and hashing streams ([`io`]), memory-mapping inputs safely ([`mapped`], with the SIGBUS guard of `sigbus`), and
//! starting helper threads at once ([`sched`]). Nothing here knows about recipes, formats or images.

pub mod io;
pub mod mapped;
pub mod regular_file;
pub mod sched;
mod sigbus;
