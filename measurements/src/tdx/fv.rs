//! Detects the LoadOptions layout ([`CmdlineLayout`]) from the firmware itself.
//!
//! Spec: `docs/specs/tdx-measurement.md`, "RTMR2" (the format strings sit in the LZMA-compressed volume); UEFI PI
//! spec vol. 3: firmware volume header (2.2.1, signature `_FVH` at offset 40), FFS file header (2.2.3), section
//! headers (2.2.4), `EFI_SECTION_GUID_DEFINED` (2.2.4.5). The compressed section's GUID is edk2's
//! `LzmaCustomDecompress` (`ee4e5898-3914-4259-9d6e-dc7bd79403cf`) and its data is an LZMA-alone stream.
//!
//! In the Debian fixtures the strings are NUL-terminated ASCII: edk2 2026.08 has `"initrd=initrd "` (prefix
//! layout), edk2 2025.02 has `" initrd=initrd"` (suffix layout); both carry `"%a%a%a"`. UTF-16 forms are also
//! searched, in case a build stores them as `L"..."` literals.

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use thiserror::Error;

use super::load_options::CmdlineLayout;
use crate::guid::Guid;
use crate::reader::{ReadError, Reader};

/// edk2's LZMA custom-decompress GUID.
pub const LZMA_CUSTOM_DECOMPRESS: Guid =
    Guid::from_fields(0xee4e5898, 0x3914, 0x4259, [0x9d, 0x6e, 0xdc, 0x7b, 0xd7, 0x94, 0x03, 0xcf]);
/// The largest decompressed volume accepted (the Debian volumes are 12-16 MiB).
pub const MAX_DECOMPRESSED: u64 = 64 << 20;
/// Memory the LZMA decoder may use: bounds the dictionary a hostile header can ask for (edk2 uses 8 MiB at most).
const LZMA_MEMLIMIT: u64 = 256 << 20;
/// Firmware volumes start on 4 KiB boundaries in flash images.
const FV_ALIGN: usize = 0x1000;
/// Offset of `_FVH` in the volume header.
const FVH_SIGNATURE_AT: usize = 40;
/// `EFI_SECTION_GUID_DEFINED`.
const SECTION_GUID_DEFINED: u8 = 0x02;
/// `FFS_ATTRIB_LARGE_FILE`.
const FFS_ATTRIB_LARGE_FILE: u8 = 0x01;
/// `EFI_FV_FILETYPE_RAW`, `EFI_FV_FILETYPE_FFS_PAD`: files without sections.
const FILES_WITHOUT_SECTIONS: [u8; 2] = [0x01, 0xf0];

/// How the layout was determined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutSource {
    /// Given explicitly by the user.
    Override,
    /// Found in the firmware.
    Firmware {
        /// Offset in the firmware file of the LZMA section that held the string.
        section_offset: usize,
        /// The string found, as text.
        marker: &'static str,
        /// `ascii` or `utf-16`.
        encoding: &'static str,
    },
}

/// A detected (or given) layout and how it was determined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutDetection {
    /// The layout.
    pub layout: CmdlineLayout,
    /// Where it came from.
    pub source: LayoutSource,
}

impl std::fmt::Display for LayoutSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LayoutSource::Override => f.write_str("given with --cmdline-layout"),
            LayoutSource::Firmware { section_offset, marker, encoding } => write!(
                f,
                "detected from the firmware: {encoding} string {marker:?} in the LZMA volume at offset {section_offset:#x}"
            ),
        }
    }
}

/// Why the layout could not be detected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FvError {
    /// No LZMA-compressed section in any firmware volume.
    #[error("no LZMA-compressed section (GUID {LZMA_CUSTOM_DECOMPRESS}) found in the firmware's volumes")]
    NoCompressedVolume,
    /// The compressed section is not a valid LZMA stream.
    #[error("LZMA section at offset {offset:#x} does not decompress: {reason}")]
    Decompress {
        /// Offset of the section.
        offset: usize,
        /// liblzma's message.
        reason: String,
    },
    /// The LZMA header declares more than [`MAX_DECOMPRESSED`] bytes (or an unknown size).
    #[error("LZMA section at offset {offset:#x} declares {size:#x} decompressed bytes; at most {MAX_DECOMPRESSED:#x} are accepted")]
    TooLarge {
        /// Offset of the section.
        offset: usize,
        /// Declared size.
        size: u64,
    },
    /// Neither or both format strings were found.
    #[error(
        "cannot tell the LoadOptions layout from the firmware: found prefix marker: {prefix}, suffix marker: {suffix}"
    )]
    Ambiguous {
        /// `"initrd=initrd "` was found.
        prefix: bool,
        /// `" initrd=initrd"` was found.
        suffix: bool,
    },
    /// A low-level read failed.
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// Decompresses an LZMA-alone stream whose header declares at most [`MAX_DECOMPRESSED`] bytes.
pub fn decompress_lzma(data: &[u8], offset: usize) -> Result<Vec<u8>, FvError> {
    let mut r = Reader::new(data);
    r.skip("LZMA properties and dictionary size", 5)?;
    let size = r.u64_le("LZMA unpacked size")?;
    let limit =
        usize::try_from(size).ok().filter(|_| size <= MAX_DECOMPRESSED).ok_or(FvError::TooLarge { offset, size })?;
    let failed = |reason: String| FvError::Decompress { offset, reason };
    let mut stream =
        liblzma::stream::Stream::new_lzma_decoder(LZMA_MEMLIMIT).map_err(|e| failed(format!("decoder setup: {e}")))?;
    // `process_vec` writes only into the spare capacity, so the output can never grow past the declared size.
    let mut out = Vec::with_capacity(limit);
    let status =
        stream.process_vec(data, &mut out, liblzma::stream::Action::Finish).map_err(|e| failed(e.to_string()))?;
    if status != liblzma::stream::Status::StreamEnd || out.len() != limit {
        return Err(failed(format!("the stream ends after {} of the {limit} declared bytes", out.len())));
    }
    Ok(out)
}

/// Offsets and data of every LZMA GUID-defined section in the firmware's volumes.
pub fn lzma_sections(firmware: &[u8]) -> Vec<(usize, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + FVH_SIGNATURE_AT + 4 <= firmware.len() {
        match volume(firmware, at) {
            Ok(Some(len)) => {
                out.extend(files(firmware, at, len).unwrap_or_default());
                at += len.div_ceil(FV_ALIGN).max(1) * FV_ALIGN;
            }
            _ => at += FV_ALIGN,
        }
    }
    out
}

/// The length of the volume at `at`, if there is one.
fn volume(firmware: &[u8], at: usize) -> Result<Option<usize>, ReadError> {
    let mut r = Reader::at(firmware, "firmware volume header", at as u64)?;
    r.skip("ZeroVector, FileSystemGuid", 32)?;
    let len = r.u64_le("FvLength")?;
    let sig = r.array::<4>("FV signature")?;
    let fits = usize::try_from(len).ok().filter(|&l| l > 0 && at.checked_add(l).is_some_and(|e| e <= firmware.len()));
    Ok(if sig == *b"_FVH" { fits } else { None })
}

/// Walks the FFS files of the volume at `fv` and collects the LZMA sections.
fn files(firmware: &[u8], fv: usize, fv_len: usize) -> Result<Vec<(usize, &[u8])>, ReadError> {
    let mut h = Reader::at(firmware, "firmware volume header", (fv + 48) as u64)?;
    let header_len = usize::from(h.u16_le("HeaderLength")?);
    h.skip("Checksum", 2)?;
    let ext = usize::from(h.u16_le("ExtHeaderOffset")?);
    let mut at = fv + header_len;
    if ext != 0 {
        let ext_size = Reader::at(firmware, "FV extended header", (fv + ext + 16) as u64)?.u32_le("ExtHeaderSize")?;
        at = fv + ext + usize::try_from(ext_size).unwrap_or(usize::MAX).min(fv_len);
    }
    let end = fv + fv_len;
    let mut out = Vec::new();
    while at.div_ceil(8) * 8 + 24 <= end {
        at = at.div_ceil(8) * 8;
        let mut f = Reader::at(firmware, "FFS file header", at as u64)?;
        f.skip("Name, IntegrityCheck", 18)?;
        let file_type = f.u8("FFS file Type")?;
        let attributes = f.u8("FFS file Attributes")?;
        let size3 = f.array::<3>("FFS file Size")?;
        f.skip("FFS file State", 1)?;
        let (size, header) = if attributes & FFS_ATTRIB_LARGE_FILE != 0 {
            (usize::try_from(f.u64_le("FFS ExtendedSize")?).unwrap_or(usize::MAX), 32)
        } else {
            (usize::from(size3[0]) | usize::from(size3[1]) << 8 | usize::from(size3[2]) << 16, 24)
        };
        if file_type == 0xff || size < header || at.checked_add(size).is_none_or(|e| e > end) {
            break;
        }
        if !FILES_WITHOUT_SECTIONS.contains(&file_type) {
            out.extend(sections(firmware, at + header, at + size)?);
        }
        at += size;
    }
    Ok(out)
}

/// Walks the sections in `[at, end)` and returns the LZMA GUID-defined ones.
fn sections(firmware: &[u8], mut at: usize, end: usize) -> Result<Vec<(usize, &[u8])>, ReadError> {
    let mut out = Vec::new();
    while at.div_ceil(4) * 4 + 4 <= end {
        at = at.div_ceil(4) * 4;
        let mut s = Reader::at(firmware, "section header", at as u64)?;
        let size3 = s.array::<3>("section Size")?;
        let kind = s.u8("section Type")?;
        let mut size = usize::from(size3[0]) | usize::from(size3[1]) << 8 | usize::from(size3[2]) << 16;
        if size == 0xff_ffff {
            size = usize::try_from(s.u32_le("section ExtendedSize")?).unwrap_or(usize::MAX);
        }
        if size < 4 || at.checked_add(size).is_none_or(|e| e > end) {
            break;
        }
        if kind == SECTION_GUID_DEFINED {
            let guid = Guid::from_wire_bytes(s.array("SectionDefinitionGuid")?);
            let data_offset = usize::from(s.u16_le("GUID section DataOffset")?);
            if guid == LZMA_CUSTOM_DECOMPRESS && data_offset <= size {
                out.push((at, firmware.get(at + data_offset..at + size).unwrap_or(&[])));
            }
        }
        at += size;
    }
    Ok(out)
}

/// The NUL-terminated markers: each layout's `initrd=initrd` token with its space where edk2 puts it.
const MARKERS: [(CmdlineLayout, &str); 2] =
    [(CmdlineLayout::Prefix, "initrd=initrd \0"), (CmdlineLayout::Suffix, " initrd=initrd\0")];

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

/// Detects the layout by decompressing the firmware's LZMA volumes and looking for edk2's format strings.
pub fn detect_layout(firmware: &[u8]) -> Result<LayoutDetection, FvError> {
    let sections = lzma_sections(firmware);
    if sections.is_empty() {
        return Err(FvError::NoCompressedVolume);
    }
    let mut found = Vec::new();
    for (offset, data) in sections {
        let volume = decompress_lzma(data, offset)?;
        for (layout, marker) in MARKERS {
            for (encoding, bytes) in [("ascii", marker.as_bytes().to_vec()), ("utf-16", utf16(marker))] {
                if contains(&volume, &bytes) {
                    let marker = marker.trim_end_matches('\0');
                    found.push(LayoutDetection {
                        layout,
                        source: LayoutSource::Firmware { section_offset: offset, marker, encoding },
                    });
                }
            }
        }
    }
    let prefix = found.iter().any(|d| d.layout == CmdlineLayout::Prefix);
    let suffix = found.iter().any(|d| d.layout == CmdlineLayout::Suffix);
    match (prefix, suffix, found.into_iter().next()) {
        (true, false, Some(d)) | (false, true, Some(d)) => Ok(d),
        _ => Err(FvError::Ambiguous { prefix, suffix }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tdx::test_fixtures::{fixture, tdx_firmware};

    #[test]
    fn detects_prefix_layout_in_the_2026_08_tdx_firmware() {
        let d = detect_layout(&tdx_firmware()).unwrap();
        assert_eq!(d.layout, CmdlineLayout::Prefix);
        assert_eq!(
            d.source,
            LayoutSource::Firmware { section_offset: 0x84090, marker: "initrd=initrd ", encoding: "ascii" }
        );
    }

    #[test]
    fn detects_suffix_layout_in_the_2025_02_generic_firmware() {
        let fw = fixture("OVMF.fd", "14954040cc754ade0c625ac3470ea46d4c14318b5b1396de4ef77090203d76db");
        assert_eq!(detect_layout(&fw).unwrap().layout, CmdlineLayout::Suffix);
    }

    #[test]
    fn rejects_firmware_without_compressed_volume() {
        assert_eq!(detect_layout(&[0u8; 0x4000]), Err(FvError::NoCompressedVolume));
    }

    #[test]
    fn rejects_lzma_streams_shorter_or_longer_than_declared() {
        let volume = b"initrd=initrd \0 and more".repeat(100);
        let mut stream =
            liblzma::stream::Stream::new_lzma_encoder(&liblzma::stream::LzmaOptions::new_preset(6).unwrap()).unwrap();
        let mut alone = Vec::with_capacity(volume.len() + 1024);
        stream.process_vec(&volume, &mut alone, liblzma::stream::Action::Finish).unwrap();
        // lzma_alone_encoder writes "size unknown" (all ones); a firmware section declares the size.
        let with_size = |size: u64| {
            let mut s = alone.clone();
            s[5..13].copy_from_slice(&size.to_le_bytes());
            s
        };
        let len = volume.len() as u64;
        assert_eq!(decompress_lzma(&with_size(len), 0).unwrap(), volume);
        for wrong in [len - 1, len + 1] {
            let err = decompress_lzma(&with_size(wrong), 9).unwrap_err();
            assert!(matches!(err, FvError::Decompress { offset: 9, .. }), "{wrong}: {err}");
        }
        assert!(matches!(decompress_lzma(&with_size(len)[..40], 0), Err(FvError::Decompress { .. })));
    }

    #[test]
    fn rejects_oversized_lzma_header() {
        let mut data = vec![0x5d, 0, 0, 0x80, 0];
        data.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(decompress_lzma(&data, 7), Err(FvError::TooLarge { offset: 7, size: u64::MAX })));
    }
}
