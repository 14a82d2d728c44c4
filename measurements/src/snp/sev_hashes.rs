//! The SEV kernel hashes table that QEMU (`kernel-hashes=on`) places in the firmware's hashes page.
//!
//! Spec: `docs/specs/snp-launch-digest.md`, "Kernel hashes table"; QEMU `target/i386/sev.c` (`SevHashTable`).
//! 168 bytes (header GUID, u16 length, then cmdline, initrd and kernel entries of `GUID ‖ u16 50 ‖ SHA-256`),
//! padded with zeros to a 16-byte multiple (176).

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::io::{self, Read};

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::guid::Guid;
use crate::reader::write_at;
use crate::snp::gctx::PAGE_SIZE;

/// Bytes in a SHA-256 digest.
pub const SHA256_LEN: usize = 32;
/// Length of one entry: GUID, u16 length, SHA-256.
const ENTRY_LEN: u16 = 16 + 2 + 32;
/// Length of the table without padding: header GUID, u16 length, three entries.
const TABLE_LEN: u16 = 16 + 2 + 3 * ENTRY_LEN;
/// Length of the table padded to 16 bytes, as QEMU copies it into guest memory.
pub const PADDED_TABLE_LEN: usize = 176;

/// Table header: `9438d606-4f22-4cc9-b479-a793d411fd21`.
pub const HASH_TABLE_HEADER: Guid =
    Guid::from_fields(0x9438d606, 0x4f22, 0x4cc9, [0xb4, 0x79, 0xa7, 0x93, 0xd4, 0x11, 0xfd, 0x21]);
/// Kernel entry: `4de79437-abd2-427f-b835-d5b172d2045b`.
pub const KERNEL_ENTRY: Guid =
    Guid::from_fields(0x4de79437, 0xabd2, 0x427f, [0xb8, 0x35, 0xd5, 0xb1, 0x72, 0xd2, 0x04, 0x5b]);
/// Initrd entry: `44baf731-3a2f-4bd7-9af1-41e29169781d`.
pub const INITRD_ENTRY: Guid =
    Guid::from_fields(0x44baf731, 0x3a2f, 0x4bd7, [0x9a, 0xf1, 0x41, 0xe2, 0x91, 0x69, 0x78, 0x1d]);
/// Command-line entry: `97d02dd8-bd20-4c94-aa78-e7714d36ab2a`.
pub const CMDLINE_ENTRY: Guid =
    Guid::from_fields(0x97d02dd8, 0xbd20, 0x4c94, [0xaa, 0x78, 0xe7, 0x71, 0x4d, 0x36, 0xab, 0x2a]);

/// A SHA-256 digest of a kernel, initrd or command line.
pub type Sha256Digest = [u8; SHA256_LEN];

/// The table does not fit in the page at the offset the firmware gives.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("the {PADDED_TABLE_LEN}-byte kernel hashes table does not fit in a 4 KiB page at offset {offset:#x}")]
pub struct TableOffsetError {
    /// Offset of the table within its page.
    pub offset: usize,
}

/// The three digests that make up the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelHashes {
    /// SHA-256 of the kernel file, unmodified.
    pub kernel: Sha256Digest,
    /// SHA-256 of the initrd file (of the empty string when there is none).
    pub initrd: Sha256Digest,
    /// SHA-256 of the command line plus one NUL.
    pub cmdline: Sha256Digest,
}

/// SHA-256 of everything `reader` yields, read in 128 KiB blocks (kernels and initrds can be large).
pub fn sha256_reader(mut reader: impl Read) -> io::Result<Sha256Digest> {
    let mut hasher = Sha256::new();
    // 128 KiB: large enough to amortise syscalls, small enough to stay in L2 between the copy and the hash.
    let mut buf = vec![0u8; 128 << 10];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(hasher.finalize().into()),
            Ok(n) => hasher.update(buf.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> Sha256Digest {
    Sha256::digest(bytes).into()
}

/// SHA-256 of the command line as QEMU measures it: its UTF-8 bytes and one NUL, not trimmed; `"\0"` when absent
/// or empty.
pub fn cmdline_sha256(append: Option<&str>) -> Sha256Digest {
    let mut hasher = Sha256::new();
    hasher.update(append.unwrap_or("").as_bytes());
    hasher.update([0u8]);
    hasher.finalize().into()
}

impl KernelHashes {
    /// Builds the digests from precomputed file hashes; `initrd` `None` means no initrd.
    pub fn new(kernel: Sha256Digest, initrd: Option<Sha256Digest>, append: Option<&str>) -> Self {
        KernelHashes { kernel, initrd: initrd.unwrap_or_else(|| sha256(b"")), cmdline: cmdline_sha256(append) }
    }

    /// Hashes a kernel, an optional initrd and the command line from readers (for callers that do not hash them
    /// on separate threads themselves; see [`sha256_reader`]).
    pub fn from_readers(kernel: impl Read, initrd: Option<impl Read>, append: Option<&str>) -> io::Result<Self> {
        let kernel = sha256_reader(kernel)?;
        let initrd = initrd.map(sha256_reader).transpose()?;
        Ok(Self::new(kernel, initrd, append))
    }

    /// The padded 176-byte table.
    pub fn table(&self) -> [u8; PADDED_TABLE_LEN] {
        let mut out = [0u8; PADDED_TABLE_LEN];
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            write_at(&mut out, at, bytes);
            at += bytes.len();
        };
        put(&HASH_TABLE_HEADER.to_wire_bytes());
        put(&TABLE_LEN.to_le_bytes());
        for (guid, digest) in
            [(CMDLINE_ENTRY, &self.cmdline), (INITRD_ENTRY, &self.initrd), (KERNEL_ENTRY, &self.kernel)]
        {
            put(&guid.to_wire_bytes());
            put(&ENTRY_LEN.to_le_bytes());
            put(digest);
        }
        out
    }

    /// A zero page holding the table at `offset` (the hashes-table GPA's offset within its page).
    pub fn page(&self, offset: usize) -> Result<[u8; PAGE_SIZE], TableOffsetError> {
        let mut page = [0u8; PAGE_SIZE];
        let dest = offset
            .checked_add(PADDED_TABLE_LEN)
            .and_then(|end| page.get_mut(offset..end))
            .ok_or(TableOffsetError { offset })?;
        dest.copy_from_slice(&self.table());
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_layout_matches_the_spec() {
        let h = KernelHashes::new([0xaa; 32], None, Some(" a b "));
        let t = h.table();
        assert_eq!(TABLE_LEN, 168);
        assert_eq!(&t[..16], &HASH_TABLE_HEADER.to_wire_bytes());
        assert_eq!(&t[16..18], &[168, 0]);
        assert_eq!(&t[18..34], &CMDLINE_ENTRY.to_wire_bytes());
        assert_eq!(&t[34..36], &[50, 0]);
        assert_eq!(&t[36..68], &sha256(b" a b \0"));
        assert_eq!(&t[86..118], &sha256(b""));
        assert_eq!(&t[136..168], &[0xaa; 32]);
        assert_eq!(&t[168..], &[0u8; 8]);
    }

    #[test]
    fn empty_and_missing_cmdline_hash_one_nul() {
        assert_eq!(cmdline_sha256(None), sha256(b"\0"));
        assert_eq!(cmdline_sha256(Some("")), sha256(b"\0"));
    }

    #[test]
    fn reader_hash_equals_slice_hash() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| i.to_le_bytes()[0] ^ 0x5a).collect();
        assert_eq!(sha256_reader(&data[..]).unwrap(), sha256(&data));
    }

    #[test]
    fn readers_equal_precomputed_digests() {
        let from_readers = KernelHashes::from_readers(&b"kernel"[..], Some(&b""[..]), Some("a")).unwrap();
        assert_eq!(from_readers, KernelHashes::new(sha256(b"kernel"), None, Some("a")));
    }

    #[test]
    fn rejects_table_crossing_page_end() {
        let h = KernelHashes::new([0; 32], None, None);
        assert!(h.page(4096 - 176).is_ok());
        assert_eq!(h.page(4096 - 175), Err(TableOffsetError { offset: 4096 - 175 }));
    }
}
