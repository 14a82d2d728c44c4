//! tar, the format of the publishing bundle `<name>-<version>.cvm.tar`: the deterministic ustar writer ([`mod@write`]),
//! the bounded ustar/GNU/pax reader of untrusted bundles ([`read`]), and a whole bundle read into memory ([`bundle`]).
//! See `docs/specs/reproducibility.md` ("tar").

pub mod bundle;
pub mod read;
pub mod write;

pub use bundle::{read_bundle, Bundle};
pub use read::{TarEntry, TarReader};
pub use write::{TarError, TarWriter, BLOCK, MAX_SIZE};
