//! tar, the format of the publishing bundle `<name>-<version>.cvm.tar`: the deterministic ustar writer ([`mod@write`]),
//! the bounded ustar/GNU/pax reader of untrusted bundles ([`read`]), a whole bundle read into memory ([`bundle`]), and
//! the comparison of our reader with the `tar` crate's ([`differential`]).
//! See `docs/specs/reproducibility.md` ("tar").

pub mod bundle;
pub mod differential;
pub mod read;
pub mod write;

pub use bundle::{read_bundle, Bundle};
pub use read::{TarEntry, TarReader};
pub use write::{TarError, TarWriter, BLOCK, MAX_SIZE};
