//! SEV facts read from an OVMF image: the AP reset EIP, the kernel hashes table location, and the `ASEV` metadata
//! sections that SNP pre-validates.
//!
//! Spec: `docs/specs/snp-launch-digest.md`, "Firmware (OVMF) parsing"; edk2 `OvmfPkg/ResetVector/X64/OvmfSevMetadata.asm`.
//! The footer GUID table itself is parsed by [`crate::firmware_table`].
//!
//! Parsing follows what `sev-snp-measure` 0.0.13 accepts: a file without a footer GUID table is not an error here
//! (plain SEV measures any file), but every offset and length is checked, and a section type is only interpreted
//! (and rejected when unknown) by the SNP modes that use it.

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::fmt;

use thiserror::Error;

use crate::firmware_table::{FirmwareTable, TableError, ENTRY_TRAILER_LEN};
use crate::guid::{SEV_ES_RESET_BLOCK, SEV_HASH_TABLE_RV, SEV_METADATA, SVSM_INFO};
use crate::reader::{ReadError, Reader};

/// The firmware is mapped so that it ends here.
pub const FOUR_GIB: u64 = 0x1_0000_0000;
/// Length of the `ASEV` metadata header: signature, size, version, item count.
pub const METADATA_HEADER_LEN: usize = 16;
/// Length of one metadata section descriptor: gpa, size, type.
pub const METADATA_ITEM_LEN: usize = 12;
/// Signature of the metadata header.
pub const METADATA_SIGNATURE: [u8; 4] = *b"ASEV";
/// The only metadata version defined.
pub const METADATA_VERSION: u32 = 1;

/// The kinds of memory that the metadata describes (`OvmfSevMetadata.asm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SectionType {
    /// Memory the firmware expects to be pre-validated and zero.
    SnpSecMem,
    /// The SNP secrets page.
    SnpSecrets,
    /// The SNP CPUID page.
    Cpuid,
    /// The SVSM calling-area page.
    SvsmCaa,
    /// The page that QEMU fills with the kernel hashes table.
    SnpKernelHashes,
}

/// Every section type with its wire value and name; `TryFrom<u32>` and `Display` derive from it.
pub const SECTION_TYPES: &[(u32, SectionType, &str)] = &[
    (1, SectionType::SnpSecMem, "SNP_SEC_MEM"),
    (2, SectionType::SnpSecrets, "SNP_SECRETS"),
    (3, SectionType::Cpuid, "CPUID"),
    (4, SectionType::SvsmCaa, "SVSM_CAA"),
    (0x10, SectionType::SnpKernelHashes, "SNP_KERNEL_HASHES"),
];

impl SectionType {
    /// The wire value.
    pub fn value(self) -> u32 {
        SECTION_TYPES.iter().find(|(_, t, _)| *t == self).map_or(0, |(v, _, _)| *v)
    }

    /// The edk2 name.
    pub fn name(self) -> &'static str {
        SECTION_TYPES.iter().find(|(_, t, _)| *t == self).map_or("?", |(_, _, n)| *n)
    }
}

impl TryFrom<u32> for SectionType {
    type Error = u32;
    fn try_from(value: u32) -> Result<Self, u32> {
        SECTION_TYPES.iter().find(|(v, _, _)| *v == value).map(|(_, t, _)| *t).ok_or(value)
    }
}

impl fmt::Display for SectionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why the firmware's SEV data could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum OvmfError {
    /// The footer GUID table is malformed.
    #[error(transparent)]
    Table(#[from] TableError),
    /// A field could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The metadata pointer points before the start of the file.
    #[error("SEV metadata offset {offset_from_end:#x} (counted from the end) points before the start of the {len}-byte firmware")]
    MetadataOffset {
        /// The offset as stored.
        offset_from_end: u32,
        /// File length.
        len: usize,
    },
    /// The metadata header does not start with `ASEV`.
    #[error("wrong SEV metadata signature at offset {offset:#x}: expected `ASEV`, found {found:02x?}")]
    BadSignature {
        /// Offset of the header.
        offset: usize,
        /// The four bytes found.
        found: [u8; 4],
    },
    /// The metadata header has an unsupported version.
    #[error("wrong SEV metadata version at offset {offset:#x}: expected 1, found {version}")]
    BadVersion {
        /// Offset of the version field.
        offset: usize,
        /// The version found.
        version: u32,
    },
    /// The item count runs past the header's size or the end of the file.
    #[error("SEV metadata at offset {offset:#x} declares {count} sections ({count} x 12 bytes), but only {available} bytes are available")]
    ItemsPastEnd {
        /// Offset of the first item.
        offset: usize,
        /// Declared count.
        count: u32,
        /// Bytes available for items.
        available: usize,
    },
    /// A section type that the SNP launch does not know.
    #[error("SEV metadata section {index} at offset {offset:#x} has unknown type {value:#x}; expected 1 (SNP_SEC_MEM), 2 (SNP_SECRETS), 3 (CPUID), 4 (SVSM_CAA) or 0x10 (SNP_KERNEL_HASHES)")]
    UnknownSectionType {
        /// Index of the section in the metadata.
        index: usize,
        /// Offset of the descriptor in the file.
        offset: usize,
        /// The type value found.
        value: u32,
    },
    /// The firmware does not fit below its end address.
    #[error("a {len}-byte image cannot end at {end_at:#x}: it would start below address 0")]
    TooLarge {
        /// Image length.
        len: usize,
        /// Where it should end.
        end_at: i128,
    },
}

/// One metadata section descriptor, with its type still raw (only SNP modes interpret it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataSection {
    /// Index in the metadata table.
    pub index: usize,
    /// Offset of the descriptor in the file.
    pub offset: usize,
    /// Guest-physical start.
    pub gpa: u32,
    /// Length in bytes.
    pub size: u32,
    /// Raw type value.
    pub raw_type: u32,
}

impl MetadataSection {
    /// The typed section type, or [`OvmfError::UnknownSectionType`].
    pub fn section_type(&self) -> Result<SectionType, OvmfError> {
        SectionType::try_from(self.raw_type).map_err(|value| OvmfError::UnknownSectionType {
            index: self.index,
            offset: self.offset,
            value,
        })
    }
}

/// A parsed firmware image (OVMF, or an SVSM binary laid out the same way).
#[derive(Debug, Clone)]
pub struct Firmware<'a> {
    data: &'a [u8],
    table: Option<FirmwareTable<'a>>,
    sections: Vec<MetadataSection>,
}

impl<'a> Firmware<'a> {
    /// Parses the footer GUID table and the SEV metadata. An image without a GUID table parses with no entries.
    pub fn parse(data: &'a [u8]) -> Result<Self, OvmfError> {
        let table = match FirmwareTable::parse(data) {
            Ok(table) => Some(table),
            // The reference treats a missing footer, or a footer whose size is smaller than its own trailer,
            // as "no table" rather than as an error.
            Err(TableError::NoFooter { .. }) => None,
            Err(TableError::BadTableSize { size, .. }) if usize::from(size) < ENTRY_TRAILER_LEN => None,
            Err(e) => return Err(e.into()),
        };
        let mut fw = Firmware { data, table, sections: Vec::new() };
        fw.sections = fw.parse_metadata()?;
        Ok(fw)
    }

    fn parse_metadata(&self) -> Result<Vec<MetadataSection>, OvmfError> {
        let Some(table) = &self.table else { return Ok(Vec::new()) };
        if table.find(SEV_METADATA).is_none() {
            return Ok(Vec::new());
        }
        let offset_from_end = table.u32_at(SEV_METADATA, "SEV metadata offset")?;
        let len = self.data.len();
        let start = usize::try_from(offset_from_end)
            .ok()
            .and_then(|o| len.checked_sub(o))
            .ok_or(OvmfError::MetadataOffset { offset_from_end, len })?;
        let mut header = Reader::at(self.data, "SEV metadata header", u64::try_from(start).unwrap_or(u64::MAX))?;
        let signature: [u8; 4] = header.array("SEV metadata signature")?;
        let size = header.u32_le("SEV metadata size")?;
        let version = header.u32_le("SEV metadata version")?;
        let count = header.u32_le("SEV metadata item count")?;
        if signature != METADATA_SIGNATURE {
            return Err(OvmfError::BadSignature { offset: start, found: signature });
        }
        if version != METADATA_VERSION {
            return Err(OvmfError::BadVersion { offset: start + 8, version });
        }
        // Items live between the header and `start + size`, clipped to the file, as the reference slices them.
        let items_at = header.offset();
        let region_end = usize::try_from(size).ok().and_then(|s| start.checked_add(s)).unwrap_or(usize::MAX).min(len);
        let available = region_end.saturating_sub(items_at);
        let needed = usize::try_from(count).ok().and_then(|c| c.checked_mul(METADATA_ITEM_LEN));
        if needed.is_none_or(|n| n > available) {
            return Err(OvmfError::ItemsPastEnd { offset: items_at, count, available });
        }
        let mut items = header.sub("SEV metadata items", needed.unwrap_or(0))?;
        let mut sections = Vec::new();
        for index in 0..sections_len(count) {
            let offset = items.offset();
            let gpa = items.u32_le("SEV metadata section gpa")?;
            let size = items.u32_le("SEV metadata section size")?;
            let raw_type = items.u32_le("SEV metadata section type")?;
            sections.push(MetadataSection { index, offset, gpa, size, raw_type });
        }
        Ok(sections)
    }

    /// The whole image.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The metadata sections, in table order.
    pub fn sections(&self) -> &[MetadataSection] {
        &self.sections
    }

    /// True when the metadata has a section of `kind`.
    pub fn has_section(&self, kind: SectionType) -> bool {
        self.sections.iter().any(|s| s.raw_type == kind.value())
    }

    /// The guest-physical address at which the image starts when it ends at `end_at`.
    pub fn gpa_ending_at(&self, end_at: i128) -> Result<u64, OvmfError> {
        let len = self.data.len();
        i128::try_from(len)
            .ok()
            .and_then(|l| end_at.checked_sub(l))
            .and_then(|gpa| u64::try_from(gpa).ok())
            .ok_or(OvmfError::TooLarge { len, end_at })
    }

    /// The guest-physical address of the image when it ends at 4 GiB.
    pub fn gpa(&self) -> Result<u64, OvmfError> {
        self.gpa_ending_at(i128::from(FOUR_GIB))
    }

    fn table_u32(&self, guid: crate::guid::Guid, name: &'static str) -> Result<u32, OvmfError> {
        match &self.table {
            Some(table) => Ok(table.u32_at(guid, name)?),
            None => Err(TableError::MissingEntry { guid, name }.into()),
        }
    }

    /// The EIP at which application processors start (SEV-ES reset block).
    pub fn sev_es_reset_eip(&self) -> Result<u32, OvmfError> {
        self.table_u32(SEV_ES_RESET_BLOCK, "SEV-ES AP reset block")
    }

    /// The guest-physical address of the kernel hashes table.
    pub fn sev_hashes_table_gpa(&self) -> Result<u32, OvmfError> {
        self.table_u32(SEV_HASH_TABLE_RV, "SEV kernel hashes table")
    }

    /// The kernel hashes table's guest-physical address and size, as the firmware declares them.
    pub fn sev_hashes_table_location(&self) -> Result<(u32, u32), OvmfError> {
        let name = "SEV kernel hashes table";
        let entry = match &self.table {
            Some(table) => table.require(SEV_HASH_TABLE_RV, name)?,
            None => return Err(TableError::MissingEntry { guid: SEV_HASH_TABLE_RV, name }.into()),
        };
        let mut r = Reader::at(self.data, name, u64::try_from(entry.offset).unwrap_or(u64::MAX))?
            .sub(name, entry.data.len())?;
        Ok((r.u32_le("SEV kernel hashes table gpa")?, r.u32_le("SEV kernel hashes table size")?))
    }

    /// True when the firmware declares a non-zero hashes-table address (needed to measure a kernel under SEV/SEV-ES).
    pub fn sev_hashes_table_supported(&self) -> bool {
        matches!(self.sev_hashes_table_gpa(), Ok(gpa) if gpa != 0)
    }

    /// The SVSM entry point's offset within an SVSM image (SVSM_INFO entry).
    pub fn svsm_entry_offset(&self) -> Result<u32, OvmfError> {
        self.table_u32(SVSM_INFO, "SVSM information block")
    }
}

/// The number of descriptors to read; `count` was already checked to fit in memory.
fn sections_len(count: u32) -> usize {
    usize::try_from(count).unwrap_or(0)
}

/// Synthetic firmware images for tests.
#[cfg(test)]
pub(crate) mod synth {
    use super::*;
    use crate::firmware_table::synth::firmware_with_table;

    /// A 64 KiB image whose metadata (at `meta_at`) holds `items`, plus a reset block and a hashes-table entry.
    pub(crate) fn synth_firmware(items: &[(u32, u32, u32)]) -> Vec<u8> {
        let mut meta = Vec::new();
        meta.extend_from_slice(b"ASEV");
        meta.extend_from_slice(&u32::try_from(16 + 12 * items.len()).unwrap().to_le_bytes());
        meta.extend_from_slice(&1u32.to_le_bytes());
        meta.extend_from_slice(&u32::try_from(items.len()).unwrap().to_le_bytes());
        for (gpa, size, kind) in items {
            for v in [gpa, size, kind] {
                meta.extend_from_slice(&v.to_le_bytes());
            }
        }
        let tail = firmware_with_table(
            0,
            &[
                (SEV_HASH_TABLE_RV, [0xffff_0c00u32.to_le_bytes(), 0x400u32.to_le_bytes()].concat()),
                (SEV_ES_RESET_BLOCK, 0xffff_b004u32.to_le_bytes().to_vec()),
                (SEV_METADATA, 0u32.to_le_bytes().to_vec()),
            ],
        );
        let total = 0x10000;
        let mut fw = vec![0u8; total - tail.len()];
        fw[0x100..0x100 + meta.len()].copy_from_slice(&meta);
        fw.extend_from_slice(&tail);
        let off = u32::try_from(total - 0x100).unwrap();
        set_metadata_offset(&mut fw, off);
        fw
    }

    /// Rewrites the SEV metadata pointer entry of a synthetic image.
    pub(crate) fn set_metadata_offset(fw: &mut [u8], off: u32) {
        let guid = SEV_METADATA.to_wire_bytes();
        let pos = fw.windows(16).rposition(|w| w == guid).unwrap();
        fw[pos - 6..pos - 2].copy_from_slice(&off.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::synth::{set_metadata_offset, synth_firmware};
    use super::*;

    #[test]
    fn parses_synthetic_metadata() {
        let fw = synth_firmware(&[(0x1000, 0x2000, 1), (0x3000, 0x1000, 0x10)]);
        let parsed = Firmware::parse(&fw).unwrap();
        assert_eq!(parsed.sev_es_reset_eip().unwrap(), 0xffff_b004);
        assert_eq!(parsed.sev_hashes_table_gpa().unwrap(), 0xffff_0c00);
        assert_eq!(parsed.sev_hashes_table_location().unwrap(), (0xffff_0c00, 0x400));
        assert_eq!(parsed.sections().len(), 2);
        assert_eq!(parsed.sections()[1].section_type().unwrap(), SectionType::SnpKernelHashes);
        assert!(parsed.has_section(SectionType::SnpKernelHashes));
        assert_eq!(parsed.gpa().unwrap(), FOUR_GIB - 0x10000);
    }

    #[test]
    fn section_types_round_trip() {
        for (value, kind, name) in SECTION_TYPES {
            assert_eq!(SectionType::try_from(*value), Ok(*kind));
            assert_eq!(kind.value(), *value);
            assert_eq!(kind.to_string(), *name);
        }
    }

    #[test]
    fn image_without_footer_has_no_entries() {
        let fw = vec![0u8; 8192];
        let parsed = Firmware::parse(&fw).unwrap();
        assert!(parsed.sections().is_empty());
        assert!(matches!(parsed.sev_es_reset_eip(), Err(OvmfError::Table(TableError::MissingEntry { .. }))));
    }

    #[test]
    fn rejects_unknown_section_type_when_interpreted() {
        let fw = synth_firmware(&[(0x1000, 0x1000, 7)]);
        let parsed = Firmware::parse(&fw).unwrap();
        let err = parsed.sections()[0].section_type().unwrap_err();
        assert_eq!(err, OvmfError::UnknownSectionType { index: 0, offset: 0x110, value: 7 });
        assert!(err.to_string().contains("unknown type 0x7"));
    }

    #[test]
    fn rejects_bad_signature() {
        let mut fw = synth_firmware(&[(0x1000, 0x1000, 1)]);
        fw[0x100] = b'X';
        assert!(matches!(Firmware::parse(&fw), Err(OvmfError::BadSignature { offset: 0x100, .. })));
    }

    #[test]
    fn rejects_bad_version() {
        let mut fw = synth_firmware(&[(0x1000, 0x1000, 1)]);
        fw[0x108] = 2;
        assert_eq!(Firmware::parse(&fw).unwrap_err(), OvmfError::BadVersion { offset: 0x108, version: 2 });
    }

    #[test]
    fn rejects_metadata_offset_past_start() {
        let mut fw = synth_firmware(&[]);
        set_metadata_offset(&mut fw, 0x20000);
        assert_eq!(
            Firmware::parse(&fw).unwrap_err(),
            OvmfError::MetadataOffset { offset_from_end: 0x20000, len: 0x10000 }
        );
    }

    #[test]
    fn rejects_metadata_header_past_end() {
        let mut fw = synth_firmware(&[]);
        set_metadata_offset(&mut fw, 4);
        assert!(matches!(Firmware::parse(&fw), Err(OvmfError::Read(ReadError::Truncated { .. }))));
    }

    #[test]
    fn rejects_item_count_past_region() {
        let mut fw = synth_firmware(&[(0x1000, 0x1000, 1)]);
        fw[0x10c..0x110].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = Firmware::parse(&fw).unwrap_err();
        assert_eq!(err, OvmfError::ItemsPastEnd { offset: 0x110, count: u32::MAX, available: 12 });
    }

    #[test]
    fn rejects_bad_guid_table_entry_length() {
        let mut fw = synth_firmware(&[]);
        let guid = SEV_METADATA.to_wire_bytes();
        let pos = fw.windows(16).rposition(|w| w == guid).unwrap();
        fw[pos - 2..pos].copy_from_slice(&3u16.to_le_bytes());
        assert!(matches!(Firmware::parse(&fw), Err(OvmfError::Table(TableError::BadEntrySize { size: 3, .. }))));
    }

    #[test]
    fn rejects_truncated_image() {
        let fw = synth_firmware(&[]);
        assert!(matches!(Firmware::parse(&fw[..20]), Err(OvmfError::Table(TableError::TooSmall { .. }))));
    }
}
