//! The OVMF footer GUID table (OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm), shared by SEV and TDX firmware.
//!
//! Spec: `docs/specs/snp-launch-digest.md`, "Firmware (OVMF) parsing", and `docs/specs/tdx-measurement.md`, "MRTD".
//!
//! The table sits just below the last 32 bytes of the image. Its footer is an entry whose GUID is
//! [`crate::guid::OVMF_TABLE_FOOTER`] and whose size covers the whole table. Entries are read
//! backwards from the footer; each is `[data][u16 size][GUID]`, where `size` includes the 18-byte trailer.

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use crate::guid::{Guid, GUID_LEN, OVMF_TABLE_FOOTER};
use crate::reader::{ReadError, Reader};
use thiserror::Error;

/// Bytes between the footer entry's end and the end of the firmware file (the reset vector lives there).
pub const FOOTER_DISTANCE_FROM_END: usize = 32;
/// The trailer of every entry: u16 size then the GUID.
pub const ENTRY_TRAILER_LEN: usize = 2 + GUID_LEN;

/// Why the GUID table could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TableError {
    /// The file is too small to hold the footer at all.
    #[error("firmware is {len} bytes, too small to hold the OVMF GUID table footer (needs at least {needed})")]
    TooSmall {
        /// File length.
        len: usize,
        /// Minimum length.
        needed: usize,
    },
    /// No footer GUID where it should be: this is not an OVMF build with a GUID table.
    #[error("no OVMF GUID table footer (GUID {expected}) at offset {offset:#x}; found {found}")]
    NoFooter {
        /// Offset where the footer GUID was expected.
        offset: usize,
        /// The footer GUID.
        expected: Guid,
        /// What was there instead.
        found: Guid,
    },
    /// The footer's size field claims more bytes than the file holds, or fewer than a trailer.
    #[error(
        "OVMF GUID table footer at offset {offset:#x} declares size {size}, but it must be between {min} and {max}"
    )]
    BadTableSize {
        /// Offset of the size field.
        offset: usize,
        /// The declared size.
        size: u16,
        /// Smallest valid size.
        min: usize,
        /// Largest size the file allows.
        max: usize,
    },
    /// An entry's size field is smaller than its trailer or larger than what is left of the table.
    #[error("OVMF GUID table entry {guid} at offset {offset:#x} declares size {size}, but it must be between {min} and {max}")]
    BadEntrySize {
        /// The entry's GUID.
        guid: Guid,
        /// Offset of the entry's size field.
        offset: usize,
        /// The declared size.
        size: u16,
        /// Smallest valid size.
        min: usize,
        /// Largest size that fits in the rest of the table.
        max: usize,
    },
    /// Bytes left in the table that cannot form an entry.
    #[error("{count} stray bytes at offset {offset:#x} at the start of the OVMF GUID table")]
    StrayBytes {
        /// Offset of the first stray byte.
        offset: usize,
        /// How many.
        count: usize,
    },
    /// An entry that a caller needs is absent.
    #[error("the firmware's OVMF GUID table has no entry {guid} ({name})")]
    MissingEntry {
        /// The GUID looked for.
        guid: Guid,
        /// What that entry holds.
        name: &'static str,
    },
    /// An entry is present but its data has the wrong length.
    #[error(
        "OVMF GUID table entry {guid} ({name}) at offset {offset:#x} holds {len} bytes, expected at least {expected}"
    )]
    ShortEntry {
        /// The GUID.
        guid: Guid,
        /// What the entry holds.
        name: &'static str,
        /// Offset of its data.
        offset: usize,
        /// Its data length.
        len: usize,
        /// Bytes needed.
        expected: usize,
    },
    /// A low-level read failed.
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// One entry of the table: its GUID and the absolute file offset and bytes of its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEntry<'a> {
    /// The entry's GUID.
    pub guid: Guid,
    /// Absolute offset of the data in the firmware file.
    pub offset: usize,
    /// The entry's data (without its trailer).
    pub data: &'a [u8],
}

/// The parsed GUID table, entries in the order they were read (from the footer downwards).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareTable<'a> {
    entries: Vec<TableEntry<'a>>,
}

impl<'a> FirmwareTable<'a> {
    /// Parses the table of a whole firmware image.
    pub fn parse(firmware: &'a [u8]) -> Result<Self, TableError> {
        let needed = FOOTER_DISTANCE_FROM_END + ENTRY_TRAILER_LEN;
        let footer_start =
            firmware.len().checked_sub(needed).ok_or(TableError::TooSmall { len: firmware.len(), needed })?;
        let mut footer = Reader::at(firmware, "GUID table footer", footer_start as u64)?;
        let table_size = footer.u16_le("GUID table size")?;
        let found = Guid::from_wire_bytes(footer.array("GUID table footer GUID")?);
        if found != OVMF_TABLE_FOOTER {
            return Err(TableError::NoFooter { offset: footer_start + 2, expected: OVMF_TABLE_FOOTER, found });
        }
        let body_len = usize::from(table_size)
            .checked_sub(ENTRY_TRAILER_LEN)
            .filter(|&len| len <= footer_start)
            .ok_or(TableError::BadTableSize {
                offset: footer_start,
                size: table_size,
                min: ENTRY_TRAILER_LEN,
                max: footer_start + ENTRY_TRAILER_LEN,
            })?;
        let body_start = footer_start - body_len;
        Self::parse_entries(firmware, body_start, footer_start)
    }

    /// Reads entries backwards from `end` down to `start`.
    fn parse_entries(firmware: &'a [u8], start: usize, mut end: usize) -> Result<Self, TableError> {
        let mut entries = Vec::new();
        while end - start >= ENTRY_TRAILER_LEN {
            let trailer_at = end - ENTRY_TRAILER_LEN;
            let mut trailer = Reader::at(firmware, "GUID table entry", trailer_at as u64)?;
            let size = trailer.u16_le("GUID table entry size")?;
            let guid = Guid::from_wire_bytes(trailer.array("GUID table entry GUID")?);
            let max = end - start;
            let entry_len = usize::from(size);
            if entry_len < ENTRY_TRAILER_LEN || entry_len > max {
                return Err(TableError::BadEntrySize { guid, offset: trailer_at, size, min: ENTRY_TRAILER_LEN, max });
            }
            let data_at = end - entry_len;
            let data = Reader::at(firmware, "GUID table entry data", data_at as u64)?
                .take("GUID table entry data", trailer_at - data_at)?;
            entries.push(TableEntry { guid, offset: data_at, data });
            end = data_at;
        }
        if end > start {
            return Err(TableError::StrayBytes { offset: start, count: end - start });
        }
        Ok(FirmwareTable { entries })
    }

    /// All entries, in the order read (nearest the footer first).
    pub fn entries(&self) -> &[TableEntry<'a>] {
        &self.entries
    }

    /// The entry with `guid`, if any. When a GUID repeats, the one read last wins, as in the reference tool.
    pub fn find(&self, guid: Guid) -> Option<&TableEntry<'a>> {
        self.entries.iter().rev().find(|e| e.guid == guid)
    }

    /// The entry with `guid`, or [`TableError::MissingEntry`].
    pub fn require(&self, guid: Guid, name: &'static str) -> Result<&TableEntry<'a>, TableError> {
        self.find(guid).ok_or(TableError::MissingEntry { guid, name })
    }

    /// The leading little-endian `u32` of the entry `guid`.
    pub fn u32_at(&self, guid: Guid, name: &'static str) -> Result<u32, TableError> {
        let entry = self.require(guid, name)?;
        let bytes: [u8; 4] = entry.data.get(..4).and_then(|b| b.try_into().ok()).ok_or(TableError::ShortEntry {
            guid,
            name,
            offset: entry.offset,
            len: entry.data.len(),
            expected: 4,
        })?;
        Ok(u32::from_le_bytes(bytes))
    }
}

/// Test helpers that build synthetic firmware images with a GUID table.
#[cfg(test)]
pub(crate) mod synth {
    use super::*;

    /// Appends a table made of `entries` (listed from lowest in the file to nearest the footer) and the 32-byte tail.
    pub(crate) fn firmware_with_table(prefix_len: usize, entries: &[(Guid, Vec<u8>)]) -> Vec<u8> {
        let mut fw = vec![0u8; prefix_len];
        let mut table = Vec::new();
        for (guid, data) in entries {
            table.extend_from_slice(data);
            table.extend_from_slice(&((data.len() + ENTRY_TRAILER_LEN) as u16).to_le_bytes());
            table.extend_from_slice(&guid.to_wire_bytes());
        }
        fw.extend_from_slice(&table);
        fw.extend_from_slice(&((table.len() + ENTRY_TRAILER_LEN) as u16).to_le_bytes());
        fw.extend_from_slice(&OVMF_TABLE_FOOTER.to_wire_bytes());
        fw.extend_from_slice(&[0u8; FOOTER_DISTANCE_FROM_END]);
        fw
    }
}

#[cfg(test)]
mod tests {
    use super::synth::firmware_with_table;
    use super::*;
    use crate::guid::{SEV_ES_RESET_BLOCK, SEV_METADATA};

    #[test]
    fn reads_entries_backwards_from_the_footer() {
        let fw = firmware_with_table(
            64,
            &[(SEV_METADATA, 0x1234u32.to_le_bytes().to_vec()), (SEV_ES_RESET_BLOCK, vec![4, 0, 0, 0, 9])],
        );
        let table = FirmwareTable::parse(&fw).unwrap();
        assert_eq!(table.entries().len(), 2);
        assert_eq!(table.entries()[0].guid, SEV_ES_RESET_BLOCK);
        assert_eq!(table.u32_at(SEV_METADATA, "metadata").unwrap(), 0x1234);
        assert_eq!(table.require(SEV_ES_RESET_BLOCK, "reset").unwrap().data, &[4, 0, 0, 0, 9]);
        assert_eq!(table.entries()[1].offset, 64);
    }

    #[test]
    fn rejects_missing_footer() {
        let err = FirmwareTable::parse(&[0u8; 100]).unwrap_err();
        assert!(matches!(err, TableError::NoFooter { offset: 52, .. }), "{err}");
        assert!(err.to_string().contains("96b582de-1fb2-45f7-baea-a366c55a082d"));
    }

    #[test]
    fn rejects_tiny_file() {
        assert!(matches!(FirmwareTable::parse(&[0u8; 10]), Err(TableError::TooSmall { len: 10, needed: 50 })));
    }

    #[test]
    fn rejects_table_size_past_start_of_file() {
        let mut fw = firmware_with_table(0, &[]);
        let at = fw.len() - 50;
        fw[at..at + 2].copy_from_slice(&0xffffu16.to_le_bytes());
        assert!(matches!(FirmwareTable::parse(&fw), Err(TableError::BadTableSize { size: 0xffff, .. })));
    }

    #[test]
    fn rejects_entry_size_smaller_than_trailer() {
        let mut fw = firmware_with_table(8, &[(SEV_METADATA, vec![1, 2, 3, 4])]);
        let size_at = 8 + 4;
        fw[size_at..size_at + 2].copy_from_slice(&3u16.to_le_bytes());
        let err = FirmwareTable::parse(&fw).unwrap_err();
        assert!(matches!(err, TableError::BadEntrySize { size: 3, offset: 12, .. }), "{err}");
    }

    #[test]
    fn reports_missing_and_short_entries() {
        let fw = firmware_with_table(0, &[(SEV_METADATA, vec![1, 2])]);
        let table = FirmwareTable::parse(&fw).unwrap();
        let missing = table.u32_at(SEV_ES_RESET_BLOCK, "SEV-ES reset block").unwrap_err();
        assert_eq!(
            missing.to_string(),
            "the firmware's OVMF GUID table has no entry 00f771de-1a7e-4fcb-890e-68c77e2fb44e (SEV-ES reset block)"
        );
        assert!(matches!(table.u32_at(SEV_METADATA, "m"), Err(TableError::ShortEntry { len: 2, .. })));
    }
}
