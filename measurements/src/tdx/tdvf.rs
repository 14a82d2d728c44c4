//! The TDVF metadata descriptor: which parts of the firmware file become which TD private pages.
//!
//! Spec: `docs/specs/tdx-measurement.md`, "MRTD"; Intel TDVF Design Guide, section 11 ("TDVF metadata").
//! The OVMF footer GUID table entry [`TDX_METADATA_OFFSET`] holds a u32 distance from the end of the file to the
//! descriptor: ASCII `TDVF`, u32 length, u32 version (1), u32 section count, then 32-byte sections.

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::fmt;

use crate::firmware_table::{FirmwareTable, TableError};
use crate::guid::TDX_METADATA_OFFSET;
use crate::reader::{ReadError, Reader};
use thiserror::Error;

/// Descriptor signature.
pub const SIGNATURE: [u8; 4] = *b"TDVF";
/// The only descriptor version defined (TDVF Design Guide 11.1).
pub const VERSION: u32 = 1;
/// Bytes in the descriptor header (signature, length, version, section count).
pub const HEADER_LEN: usize = 16;
/// Bytes in one section entry.
pub const SECTION_LEN: usize = 32;
/// TD private memory is added in 4 KiB pages.
pub const PAGE_SIZE: u64 = 0x1000;

/// A TDVF section type (TDVF Design Guide Table 11-3); unknown values are rejected at parse time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SectionType {
    /// Boot firmware volume (code).
    Bfv,
    /// Configuration firmware volume (UEFI variables).
    Cfv,
    /// The TD HOB built by the VMM.
    TdHob,
    /// Temporary memory used during early boot.
    TempMem,
    /// Permanent memory.
    PermMem,
    /// A payload (e.g. a kernel) loaded by the VMM.
    Payload,
    /// The payload's parameters.
    PayloadParam,
}

/// The section types in wire order: the value is the index; `TryFrom`, `Display` and `FromStr` derive from it.
const SECTION_TYPES: [(SectionType, &str); 7] = [
    (SectionType::Bfv, "BFV"),
    (SectionType::Cfv, "CFV"),
    (SectionType::TdHob, "TD_HOB"),
    (SectionType::TempMem, "TempMem"),
    (SectionType::PermMem, "PermMem"),
    (SectionType::Payload, "Payload"),
    (SectionType::PayloadParam, "PayloadParam"),
];

impl SectionType {
    /// The wire value.
    pub fn value(self) -> u32 {
        // The table has 7 entries, so the index always fits.
        SECTION_TYPES.iter().position(|(t, _)| *t == self).and_then(|i| u32::try_from(i).ok()).unwrap_or(u32::MAX)
    }
    /// The name used in the TDVF Design Guide.
    pub fn name(self) -> &'static str {
        SECTION_TYPES.iter().find(|(t, _)| *t == self).map_or("?", |(_, n)| n)
    }
}

impl TryFrom<u32> for SectionType {
    type Error = u32;
    fn try_from(value: u32) -> Result<Self, u32> {
        usize::try_from(value).ok().and_then(|i| SECTION_TYPES.get(i)).map(|(t, _)| *t).ok_or(value)
    }
}

impl fmt::Display for SectionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for SectionType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        SECTION_TYPES
            .iter()
            .find(|(_, n)| *n == s)
            .map(|(t, _)| *t)
            .ok_or_else(|| format!("unknown section type `{s}`"))
    }
}

/// Section attributes (TDVF Design Guide Table 11-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Attributes(u32);

impl Attributes {
    /// Bit 0: the pages' contents are extended into MRTD (`TDH.MR.EXTEND`).
    pub const MR_EXTEND: u32 = 1 << 0;
    /// Bit 1: the pages are added later with `TDH.MEM.PAGE.AUG` and so are not part of MRTD.
    pub const PAGE_AUG: u32 = 1 << 1;
    /// All defined bits.
    pub const KNOWN: u32 = Self::MR_EXTEND | Self::PAGE_AUG;

    /// The raw bits.
    pub fn bits(self) -> u32 {
        self.0
    }
    /// True when MR.EXTEND is set.
    pub fn mr_extend(self) -> bool {
        self.0 & Self::MR_EXTEND != 0
    }
    /// True when PAGE.AUG is set.
    pub fn page_aug(self) -> bool {
        self.0 & Self::PAGE_AUG != 0
    }
}

/// One validated TDVF section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Offset of the section's data in the firmware file.
    pub data_offset: u32,
    /// Bytes of data in the file (0 for memory-only sections).
    pub raw_data_size: u32,
    /// Guest-physical address of the section (4 KiB aligned).
    pub memory_address: u64,
    /// Bytes of guest memory (4 KiB aligned, at least `raw_data_size`).
    pub memory_data_size: u64,
    /// What the section holds.
    pub section_type: SectionType,
    /// How it is measured.
    pub attributes: Attributes,
}

/// The parsed descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// Offset of the descriptor in the firmware file.
    pub offset: usize,
    /// The sections, in file order (which is also the order the VMM adds them).
    pub sections: Vec<Section>,
}

/// Why the TDVF descriptor is invalid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TdvfError {
    /// The GUID table is missing or has no TDX metadata entry: not a TDVF (OvmfPkg/IntelTdx) build.
    #[error("not a TDVF firmware (no TDX metadata GUID in the OVMF GUID table): {source}")]
    NoMetadata {
        /// The table error.
        source: TableError,
    },
    /// The metadata offset points before the start of the file.
    #[error("TDX metadata offset {distance:#x} (from the end of the {len}-byte file) points before its start")]
    BadOffset {
        /// The u32 distance from the end of the file.
        distance: u32,
        /// File length.
        len: usize,
    },
    /// Wrong signature.
    #[error("TDVF descriptor at offset {offset:#x}: signature {found:02x?}, expected `TDVF`")]
    BadSignature {
        /// Descriptor offset.
        offset: usize,
        /// Bytes found.
        found: [u8; 4],
    },
    /// Unsupported version.
    #[error("TDVF descriptor at offset {offset:#x}: version {found}, expected {VERSION}")]
    BadVersion {
        /// Offset of the version field.
        offset: usize,
        /// Version found.
        found: u32,
    },
    /// The length field disagrees with the section count.
    #[error(
        "TDVF descriptor at offset {offset:#x}: length {length} does not match {count} sections (expected {expected})"
    )]
    BadLength {
        /// Descriptor offset.
        offset: usize,
        /// Declared length.
        length: u32,
        /// Declared section count.
        count: u32,
        /// `16 + 32 × count`.
        expected: u64,
    },
    /// A section type outside Table 11-3.
    #[error("TDVF section {index} at offset {offset:#x}: unknown section type {value}")]
    UnknownType {
        /// Section index.
        index: usize,
        /// Offset of the type field.
        offset: usize,
        /// The value.
        value: u32,
    },
    /// Attribute bits outside Table 11-4.
    #[error("TDVF section {index} at offset {offset:#x}: unknown attribute bits {value:#x}")]
    UnknownAttributes {
        /// Section index.
        index: usize,
        /// Offset of the attributes field.
        offset: usize,
        /// The value.
        value: u32,
    },
    /// A GPA or size is not 4 KiB aligned.
    #[error("TDVF section {index} at offset {offset:#x}: {field} {value:#x} is not 4 KiB aligned")]
    Unaligned {
        /// Section index.
        index: usize,
        /// Offset of the section entry.
        offset: usize,
        /// `MemoryAddress` or `MemoryDataSize`.
        field: &'static str,
        /// The value.
        value: u64,
    },
    /// The data range runs past the end of the file, or more data than memory.
    #[error("TDVF section {index} at offset {offset:#x}: DataOffset {data_offset:#x} + RawDataSize {raw_data_size:#x} runs past the end of the {len}-byte file or exceeds MemoryDataSize {memory_data_size:#x}")]
    DataOutOfBounds {
        /// Section index.
        index: usize,
        /// Offset of the section entry.
        offset: usize,
        /// DataOffset.
        data_offset: u32,
        /// RawDataSize.
        raw_data_size: u32,
        /// MemoryDataSize.
        memory_data_size: u64,
        /// File length.
        len: usize,
    },
    /// The memory range wraps around the address space.
    #[error("TDVF section {index}: MemoryAddress {address:#x} + MemoryDataSize {size:#x} overflows")]
    AddressOverflow {
        /// Section index.
        index: usize,
        /// GPA.
        address: u64,
        /// Size.
        size: u64,
    },
    /// Two sections cover the same guest memory (each page may be added only once).
    #[error("TDVF sections {first} and {second} overlap in guest memory at GPA {gpa:#x}")]
    Overlap {
        /// Lower-numbered section.
        first: usize,
        /// Higher-numbered section.
        second: usize,
        /// Start of the overlap.
        gpa: u64,
    },
    /// A low-level read failed.
    #[error(transparent)]
    Read(#[from] ReadError),
}

impl Descriptor {
    /// Finds and validates the descriptor of a whole firmware image.
    pub fn parse(firmware: &[u8]) -> Result<Self, TdvfError> {
        let table = FirmwareTable::parse(firmware).map_err(|source| TdvfError::NoMetadata { source })?;
        let distance = table
            .u32_at(TDX_METADATA_OFFSET, "TDX metadata offset")
            .map_err(|source| TdvfError::NoMetadata { source })?;
        let offset = usize::try_from(distance)
            .ok()
            .and_then(|d| firmware.len().checked_sub(d))
            .ok_or(TdvfError::BadOffset { distance, len: firmware.len() })?;
        Self::parse_at(firmware, offset)
    }

    /// Parses the descriptor at `offset` of `firmware` (which is needed whole, to bound each section's data).
    pub fn parse_at(firmware: &[u8], offset: usize) -> Result<Self, TdvfError> {
        let mut r = Reader::at(firmware, "TDVF descriptor", offset as u64)?;
        let found = r.array::<4>("TDVF signature")?;
        if found != SIGNATURE {
            return Err(TdvfError::BadSignature { offset, found });
        }
        let length = r.u32_le("TDVF length")?;
        let version_at = r.offset();
        let version = r.u32_le("TDVF version")?;
        if version != VERSION {
            return Err(TdvfError::BadVersion { offset: version_at, found: version });
        }
        let count = r.u32_le("TDVF section count")?;
        let expected = u64::from(count) * SECTION_LEN as u64 + HEADER_LEN as u64;
        if u64::from(length) != expected {
            return Err(TdvfError::BadLength { offset, length, count, expected });
        }
        let mut sections = Vec::new();
        for index in 0..usize::try_from(count).unwrap_or(usize::MAX) {
            let entry_at = r.offset();
            let mut e = r.sub("TDVF section", SECTION_LEN)?;
            sections.push(Self::section(&mut e, index, entry_at, firmware.len())?);
            e.finish("TDVF section")?;
        }
        check_overlaps(&sections)?;
        Ok(Descriptor { offset, sections })
    }

    fn section(e: &mut Reader<'_>, index: usize, offset: usize, len: usize) -> Result<Section, TdvfError> {
        let data_offset = e.u32_le("TDVF DataOffset")?;
        let raw_data_size = e.u32_le("TDVF RawDataSize")?;
        let memory_address = e.u64_le("TDVF MemoryAddress")?;
        let memory_data_size = e.u64_le("TDVF MemoryDataSize")?;
        let type_at = e.offset();
        let value = e.u32_le("TDVF section type")?;
        let section_type =
            SectionType::try_from(value).map_err(|value| TdvfError::UnknownType { index, offset: type_at, value })?;
        let attr_at = e.offset();
        let bits = e.u32_le("TDVF attributes")?;
        if bits & !Attributes::KNOWN != 0 {
            return Err(TdvfError::UnknownAttributes { index, offset: attr_at, value: bits });
        }
        for (field, value) in [("MemoryAddress", memory_address), ("MemoryDataSize", memory_data_size)] {
            if value % PAGE_SIZE != 0 {
                return Err(TdvfError::Unaligned { index, offset, field, value });
            }
        }
        let data_end = u64::from(data_offset) + u64::from(raw_data_size);
        if data_end > len as u64 || u64::from(raw_data_size) > memory_data_size {
            return Err(TdvfError::DataOutOfBounds {
                index,
                offset,
                data_offset,
                raw_data_size,
                memory_data_size,
                len,
            });
        }
        if memory_address.checked_add(memory_data_size).is_none() {
            return Err(TdvfError::AddressOverflow { index, address: memory_address, size: memory_data_size });
        }
        Ok(Section {
            data_offset,
            raw_data_size,
            memory_address,
            memory_data_size,
            section_type,
            attributes: Attributes(bits),
        })
    }
}

impl Section {
    /// The section's bytes in the file (validated at parse time to lie within it).
    pub fn data<'a>(&self, firmware: &'a [u8]) -> &'a [u8] {
        let start = usize::try_from(self.data_offset).unwrap_or(usize::MAX);
        let len = usize::try_from(self.raw_data_size).unwrap_or(usize::MAX);
        start.checked_add(len).and_then(|end| firmware.get(start..end)).unwrap_or(&[])
    }

    /// End of the guest memory range (validated not to overflow).
    pub fn memory_end(&self) -> u64 {
        self.memory_address.saturating_add(self.memory_data_size)
    }
}

/// Rejects sections whose guest memory ranges overlap.
fn check_overlaps(sections: &[Section]) -> Result<(), TdvfError> {
    for (first, a) in sections.iter().enumerate() {
        for (second, b) in sections.iter().enumerate().skip(first + 1) {
            let start = a.memory_address.max(b.memory_address);
            if start < a.memory_end().min(b.memory_end()) {
                return Err(TdvfError::Overlap { first, second, gpa: start });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::firmware_table::synth::firmware_with_table;

    /// A synthetic TDVF: a `data_len`-byte data area, then a descriptor with `sections`, then the GUID table.
    pub(crate) fn synth_tdvf(data_len: usize, sections: &[[u64; 6]]) -> Vec<u8> {
        let mut desc = Vec::new();
        desc.extend_from_slice(b"TDVF");
        desc.extend_from_slice(&((16 + 32 * sections.len()) as u32).to_le_bytes());
        desc.extend_from_slice(&1u32.to_le_bytes());
        desc.extend_from_slice(&(sections.len() as u32).to_le_bytes());
        for s in sections {
            desc.extend_from_slice(&(s[0] as u32).to_le_bytes());
            desc.extend_from_slice(&(s[1] as u32).to_le_bytes());
            desc.extend_from_slice(&s[2].to_le_bytes());
            desc.extend_from_slice(&s[3].to_le_bytes());
            desc.extend_from_slice(&(s[4] as u32).to_le_bytes());
            desc.extend_from_slice(&(s[5] as u32).to_le_bytes());
        }
        let mut fw: Vec<u8> = (0..data_len).map(|i| (i * 7 % 251) as u8).collect();
        let desc_at = fw.len();
        fw.extend_from_slice(&desc);
        let probe = firmware_with_table(0, &[(TDX_METADATA_OFFSET, vec![0; 4])]);
        let distance = (fw.len() + probe.len() - desc_at) as u32;
        let tail = firmware_with_table(0, &[(TDX_METADATA_OFFSET, distance.to_le_bytes().to_vec())]);
        fw.extend_from_slice(&tail);
        fw
    }

    #[test]
    fn parses_synthetic_descriptor() {
        let fw = synth_tdvf(0x2000, &[[0, 0x2000, 0xffff_e000, 0x2000, 0, 1], [0, 0, 0x1000, 0x1000, 3, 0]]);
        let d = Descriptor::parse(&fw).unwrap();
        assert_eq!(d.offset, 0x2000);
        assert_eq!(d.sections.len(), 2);
        assert_eq!(d.sections[0].section_type, SectionType::Bfv);
        assert!(d.sections[0].attributes.mr_extend());
        assert_eq!(d.sections[1].section_type, SectionType::TempMem);
        assert_eq!(d.sections[0].data(&fw).len(), 0x2000);
    }

    #[test]
    fn section_type_table_round_trips() {
        for (t, name) in SECTION_TYPES {
            assert_eq!(SectionType::try_from(t.value()), Ok(t));
            assert_eq!(t.to_string(), name);
            assert_eq!(name.parse::<SectionType>(), Ok(t));
        }
        assert_eq!(SectionType::try_from(7), Err(7));
    }

    #[test]
    fn rejects_tdvf_without_metadata() {
        let fw = firmware_with_table(64, &[]);
        let err = Descriptor::parse(&fw).unwrap_err();
        assert!(matches!(err, TdvfError::NoMetadata { .. }), "{err}");
        assert!(err.to_string().contains("e47a6535-984a-4798-865e-4685a7bf8ec2"), "{err}");
        assert!(matches!(Descriptor::parse(&[0u8; 4096]), Err(TdvfError::NoMetadata { .. })));
    }

    #[test]
    fn rejects_bad_signature_and_version() {
        let mut fw = synth_tdvf(0x1000, &[]);
        fw[0x1004 + 4] = 2;
        assert!(matches!(Descriptor::parse(&fw), Err(TdvfError::BadVersion { offset: 0x1008, found: 2 })));
        fw[0x1000] = b'X';
        assert!(matches!(Descriptor::parse(&fw), Err(TdvfError::BadSignature { offset: 0x1000, .. })));
    }

    #[test]
    fn rejects_overlapping_sections() {
        let fw = synth_tdvf(0, &[[0, 0, 0x1000, 0x2000, 3, 0], [0, 0, 0x2000, 0x1000, 2, 0]]);
        let err = Descriptor::parse(&fw).unwrap_err();
        assert_eq!(err, TdvfError::Overlap { first: 0, second: 1, gpa: 0x2000 });
    }

    #[test]
    fn rejects_unaligned_sections() {
        let fw = synth_tdvf(0, &[[0, 0, 0x1800, 0x1000, 3, 0]]);
        let err = Descriptor::parse(&fw).unwrap_err();
        assert!(matches!(err, TdvfError::Unaligned { field: "MemoryAddress", value: 0x1800, .. }), "{err}");
        let fw = synth_tdvf(0, &[[0, 0, 0x1000, 0x1001, 3, 0]]);
        assert!(matches!(Descriptor::parse(&fw), Err(TdvfError::Unaligned { field: "MemoryDataSize", .. })));
    }

    #[test]
    fn rejects_data_past_end_of_file() {
        let fw = synth_tdvf(0x1000, &[[0x1000, 0x10_0000, 0x10_0000, 0x10_0000, 0, 1]]);
        let err = Descriptor::parse(&fw).unwrap_err();
        assert!(matches!(err, TdvfError::DataOutOfBounds { index: 0, data_offset: 0x1000, .. }), "{err}");
        assert!(err.to_string().contains("past the end"), "{err}");
    }

    #[test]
    fn rejects_unknown_type_and_attributes() {
        let fw = synth_tdvf(0, &[[0, 0, 0x1000, 0x1000, 9, 0]]);
        assert!(matches!(Descriptor::parse(&fw), Err(TdvfError::UnknownType { value: 9, .. })));
        let fw = synth_tdvf(0, &[[0, 0, 0x1000, 0x1000, 3, 4]]);
        assert!(matches!(Descriptor::parse(&fw), Err(TdvfError::UnknownAttributes { value: 4, .. })));
    }
}
