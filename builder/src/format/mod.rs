//! File formats: one module per format, each with its reader and its writer side by side.
//!
//! - [`cpio`]: newc initrds (`write`: the deterministic writer; `read`: the bounded reader).
//! - [`tar`]: the publishing bundle (`write`: the deterministic ustar writer; `read`: the bounded ustar/GNU/pax
//!   reader; `bundle`: a whole bundle read into memory).
//! - [`compress`]: deterministic gzip/zstd compression of the initrd, the reader that recognises and decompresses
//!   an initrd ([`read_initrd`], [`sniff`]), and bounded decoding of kernel payloads and modules (`decode`).
//! - [`elf`]: the ELF reader (linkage, sections) for initrd files.
//! - [`kconfig`]: kernel configurations (`.config` text and a bzImage's IKCONFIG).
//! - [`bzimage`]: what the builder needs of a bzImage (its setup header is parsed by
//!   `cvmforge_measure::bzimage`, the one parser of it).
//! - [`init_config`]: `/etc/cvmforge/init.json`, the guest init's configuration.
//!
//! Everything here is bytes in, typed values out (or typed values in, bytes out): no file system paths, no policy.
//! The readers of untrusted archives stream over `impl Read`, never allocate an amount taken from the input, never
//! panic, and stop at the [`Limits`]: entry count, name length, per-entry size, total (decompressed) size and the
//! amount of content kept in memory. Each error names the entry index and the byte offset where the problem is (see
//! `docs/specs/reproducibility.md` for the formats).
//!
//! ```
//! use cvmforge::format::cpio::CpioWriter;
//! use cvmforge::format::{read_initrd, Limits};
//! let mut w = CpioWriter::new(Vec::new(), 0);
//! w.add_file("init", 0o755, 2, &mut &b"#!"[..]).unwrap();
//! let initrd = read_initrd(&w.finish().unwrap()[..], &Limits::default()).unwrap();
//! assert_eq!(initrd.entries[0].path, "init");
//! assert_eq!(initrd.compression.algorithm(), "none");
//! ```

pub mod bzimage;
pub mod compress;
pub mod cpio;
pub mod elf;
pub mod erofs;
mod error;
pub mod fuzzing;
pub mod init_config;
pub mod io;
pub mod kconfig;
pub mod tar;
pub mod verity;

pub use compress::read::{read_initrd, sniff, CompressionInfo, Container, GzipHeader, Initrd, ZstdHeader};
pub use cpio::read::{CpioEntry, CpioReader};
pub use error::{PathProblem, UnpackError};
pub use tar::bundle::{publication_limits, read_bundle, Bundle};
pub use tar::read::{TarEntry, TarReader};

/// The type of an archive entry (from the cpio mode's `S_IFMT` bits or the tar type flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryType {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link (its target is the content).
    Symlink,
    /// A tar hard link to an earlier entry.
    Hardlink,
    /// A character device node.
    CharDevice,
    /// A block device node.
    BlockDevice,
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
}

impl std::fmt::Display for EntryType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            EntryType::Regular => "regular file",
            EntryType::Directory => "directory",
            EntryType::Symlink => "symlink",
            EntryType::Hardlink => "hard link",
            EntryType::CharDevice => "character device",
            EntryType::BlockDevice => "block device",
            EntryType::Fifo => "fifo",
            EntryType::Socket => "socket",
        };
        f.write_str(name)
    }
}

/// Bounds on what a reader accepts; exceeding one is an error, never an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most entries in one archive (the trailer is not counted).
    pub max_entries: u64,
    /// Longest entry name or link target in bytes (Linux `PATH_MAX` is 4096).
    pub max_name_len: u64,
    /// Largest single entry.
    pub max_entry_size: u64,
    /// Most (decompressed) archive bytes read in total: the decompression-bomb cap.
    pub max_total_size: u64,
    /// Content of entries up to this size is kept in memory (for text and byte diffs); larger ones keep only the digest.
    pub max_kept_entry: u64,
    /// Most content bytes kept in memory over all entries.
    pub max_kept_total: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 1_000_000,
            max_name_len: 4096,
            max_entry_size: 4 << 30,
            max_total_size: 8 << 30,
            max_kept_entry: 64 << 20,
            max_kept_total: 1 << 30,
        }
    }
}
