//! PE/COFF Authenticode SHA-384 of an EFI image (the Linux bzImage's EFI stub), as TDVF/OVMF measures it into RTMR1.
//!
//! Spec: `docs/specs/tdx-measurement.md`, "RTMR1"; Microsoft "Windows Authenticode Portable Executable Signature
//! Format", "Calculating the PE Image Hash"; edk2 `DxeTpm2MeasureBootLib` (`Tcg2MeasurePeImage`), which the
//! firmware follows: hash the headers without the checksum and the certificate-table directory entry, then the
//! sections in `PointerToRawData` order, then any trailing data except the certificate table.

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use sha2::{Digest, Sha384 as Sha384Hasher};
use thiserror::Error;

use super::Sha384;
use crate::reader::{ReadError, Reader};

/// Offset of `e_lfanew` in the DOS header.
const E_LFANEW_AT: u64 = 0x3c;
/// Bytes in the COFF file header after the `PE\0\0` signature.
const COFF_HEADER_LEN: usize = 20;
/// Bytes in one section header.
const SECTION_HEADER_LEN: usize = 40;
/// Offset of `CheckSum` within the optional header (same for PE32 and PE32+).
const CHECKSUM_AT: usize = 64;
/// Index of the certificate table in the data directories.
const SECURITY_DIRECTORY: u32 = 4;
/// Bytes in one data-directory entry.
const DIRECTORY_ENTRY_LEN: usize = 8;

/// Why an image cannot be hashed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PeError {
    /// No `MZ` or no `PE\0\0` signature: the kernel was built without an EFI stub.
    #[error("not a PE image: the kernel has no EFI stub / MZ/PE signature at offset {offset:#x} (found {found:02x?})")]
    NotPe {
        /// Where the signature was expected.
        offset: usize,
        /// The bytes found there.
        found: Vec<u8>,
    },
    /// The optional header's magic is neither PE32 (0x10b) nor PE32+ (0x20b).
    #[error("PE optional header at offset {offset:#x} has magic {magic:#x}, expected 0x10b (PE32) or 0x20b (PE32+)")]
    BadMagic {
        /// Offset of the magic.
        offset: usize,
        /// The value found.
        magic: u16,
    },
    /// A header field's value is inconsistent with the file.
    #[error("PE field `{field}` at offset {offset:#x} is {value:#x}, but {expected}")]
    BadField {
        /// The field.
        field: &'static str,
        /// Offset of the field.
        offset: usize,
        /// Its value.
        value: u64,
        /// What it must be.
        expected: &'static str,
    },
    /// A section's raw data lies outside the file.
    #[error("PE section {index} (`{name}`): PointerToRawData {pointer:#x} + SizeOfRawData {size:#x} runs past the end of the {len}-byte image")]
    SectionOutOfBounds {
        /// Section index.
        index: usize,
        /// Section name (lossy).
        name: String,
        /// PointerToRawData.
        pointer: u32,
        /// SizeOfRawData.
        size: u32,
        /// File length.
        len: usize,
    },
    /// The certificate table plus the hashed bytes exceed the file.
    #[error(
        "PE certificate table ({cert_size:#x} bytes) plus the {hashed:#x} hashed bytes exceed the {len}-byte image"
    )]
    CertificateTooLarge {
        /// Certificate table size.
        cert_size: u32,
        /// Bytes hashed so far (headers and sections).
        hashed: u64,
        /// File length.
        len: usize,
    },
    /// A low-level read failed.
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// One section's raw-data range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RawRange {
    pointer: u32,
    size: u32,
}

/// The parts of a PE image that Authenticode needs, validated against the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeImage {
    checksum_at: usize,
    /// Offset of the certificate-table directory entry, if the image has one.
    cert_entry_at: Option<usize>,
    size_of_headers: usize,
    sections: Vec<RawRange>,
    /// Size of the certificate table (0 when there is none: the image is unsigned).
    pub cert_size: u32,
}

impl PeImage {
    /// Parses the headers of `image` and checks every range Authenticode will hash.
    pub fn parse(image: &[u8]) -> Result<Self, PeError> {
        let mut r = Reader::new(image);
        let mz = r.take("DOS signature", 2.min(image.len()))?;
        if mz != b"MZ" {
            return Err(PeError::NotPe { offset: 0, found: mz.to_vec() });
        }
        let pe_at = Reader::at(image, "e_lfanew", E_LFANEW_AT)?.u32_le("e_lfanew")?;
        let mut r = Reader::at(image, "PE signature", u64::from(pe_at))?;
        let sig_at = r.offset();
        let sig = r.take("PE signature", 4.min(r.remaining()))?;
        if sig != b"PE\0\0" {
            return Err(PeError::NotPe { offset: sig_at, found: sig.to_vec() });
        }
        let mut coff = r.sub("COFF header", COFF_HEADER_LEN)?;
        coff.skip("Machine", 2)?;
        let section_count = coff.u16_le("NumberOfSections")?;
        coff.skip("TimeDateStamp, PointerToSymbolTable, NumberOfSymbols", 12)?;
        let opt_size_at = coff.offset();
        let opt_size = coff.u16_le("SizeOfOptionalHeader")?;
        coff.skip("Characteristics", 2)?;
        let opt_at = r.offset();
        let mut opt = r.sub("optional header", usize::from(opt_size))?;
        let image = Self::optional_header(&mut opt, opt_at, opt_size_at, image.len())?;
        let table_at = r.offset();
        if table_at + usize::from(section_count) * SECTION_HEADER_LEN > image.size_of_headers {
            return Err(PeError::BadField {
                field: "NumberOfSections",
                offset: sig_at + 4 + 2,
                value: u64::from(section_count),
                expected: "the section table must end within SizeOfHeaders",
            });
        }
        let sections = Self::sections(&mut r, section_count, table_at)?;
        Ok(PeImage { sections, ..image })
    }

    fn optional_header(opt: &mut Reader<'_>, opt_at: usize, opt_size_at: usize, len: usize) -> Result<Self, PeError> {
        let magic = opt.u16_le("optional header magic")?;
        let (dirs_at, count_at) = match magic {
            0x10b => (96, 92),
            0x20b => (112, 108),
            _ => return Err(PeError::BadMagic { offset: opt_at, magic }),
        };
        let mut h = opt.clone();
        h.skip("optional header fields", 60 - 2)?;
        let size_of_headers_at = h.offset();
        let size_of_headers = h.u32_le("SizeOfHeaders")?;
        h.skip("CheckSum", 4)?;
        let mut c = opt.clone();
        c.skip("optional header fields", count_at - 2)?;
        let count = c.u32_le("NumberOfRvaAndSizes")?;
        let (cert_entry_at, cert_size) = if count > SECURITY_DIRECTORY {
            let at = dirs_at + DIRECTORY_ENTRY_LEN * 4;
            let mut d = opt.clone();
            d.skip("data directories", at - 2).map_err(|_| PeError::BadField {
                field: "SizeOfOptionalHeader",
                offset: opt_size_at,
                value: u64::try_from(opt.remaining() + 2).unwrap_or(u64::MAX),
                expected: "it must hold the certificate-table directory entry that NumberOfRvaAndSizes declares",
            })?;
            let entry_at = d.offset();
            d.skip("certificate table VirtualAddress", 4)?;
            (Some(entry_at), d.u32_le("certificate table Size")?)
        } else {
            (None, 0)
        };
        let headers = usize::try_from(size_of_headers).unwrap_or(usize::MAX);
        let checksum_at = opt_at + CHECKSUM_AT;
        if headers > len
            || headers < checksum_at + 4
            || cert_entry_at.is_some_and(|e| headers < e + DIRECTORY_ENTRY_LEN)
        {
            return Err(PeError::BadField {
                field: "SizeOfHeaders",
                offset: size_of_headers_at,
                value: u64::from(size_of_headers),
                expected: "it must cover the optional header's CheckSum and directory entries and fit in the file",
            });
        }
        Ok(PeImage { checksum_at, cert_entry_at, size_of_headers: headers, sections: Vec::new(), cert_size })
    }

    fn sections(r: &mut Reader<'_>, count: u16, table_at: usize) -> Result<Vec<RawRange>, PeError> {
        let len = r.offset() + r.remaining();
        let mut out = Vec::with_capacity(usize::from(count));
        for index in 0..usize::from(count) {
            let mut s = r.sub("section header", SECTION_HEADER_LEN).map_err(|_| PeError::BadField {
                field: "NumberOfSections",
                offset: table_at,
                value: u64::from(count),
                expected: "the section table must fit in the file",
            })?;
            let name = s.take("section Name", 8)?;
            s.skip("VirtualSize, VirtualAddress", 8)?;
            let size = s.u32_le("SizeOfRawData")?;
            let pointer = s.u32_le("PointerToRawData")?;
            if u64::from(pointer) + u64::from(size) > len as u64 {
                let name = String::from_utf8_lossy(name).trim_end_matches('\0').to_string();
                return Err(PeError::SectionOutOfBounds { index, name, pointer, size, len });
            }
            out.push(RawRange { pointer, size });
        }
        out.sort_by_key(|s| s.pointer);
        Ok(out)
    }

    /// True when the image has a certificate table (is Authenticode-signed, or at least claims to be).
    pub fn is_signed(&self) -> bool {
        self.cert_size > 0
    }

    /// The byte ranges Authenticode hashes, in order.
    fn ranges(&self, len: usize) -> Result<Vec<(usize, usize)>, PeError> {
        let mut out = vec![(0, self.checksum_at)];
        match self.cert_entry_at {
            Some(entry) => {
                out.push((self.checksum_at + 4, entry));
                out.push((entry + DIRECTORY_ENTRY_LEN, self.size_of_headers));
            }
            None => out.push((self.checksum_at + 4, self.size_of_headers)),
        }
        let mut hashed = self.size_of_headers as u64;
        for s in self.sections.iter().filter(|s| s.size > 0) {
            let start = usize::try_from(s.pointer).unwrap_or(usize::MAX);
            let end = start.saturating_add(usize::try_from(s.size).unwrap_or(usize::MAX));
            out.push((start, end));
            hashed += u64::from(s.size);
        }
        let tail_end = (len as u64).checked_sub(u64::from(self.cert_size)).filter(|&e| e >= hashed.min(len as u64));
        match tail_end {
            Some(end) if end > hashed => {
                out.push((usize::try_from(hashed).unwrap_or(usize::MAX), usize::try_from(end).unwrap_or(usize::MAX)))
            }
            Some(_) => {}
            None => return Err(PeError::CertificateTooLarge { cert_size: self.cert_size, hashed, len }),
        }
        Ok(out)
    }
}

/// Authenticode SHA-384 of a whole PE image.
pub fn authenticode_sha384(image: &[u8]) -> Result<Sha384, PeError> {
    let pe = PeImage::parse(image)?;
    let mut h = Sha384Hasher::new();
    for (start, end) in pe.ranges(image.len())? {
        // Every range was checked against the file length in `parse` or `ranges`.
        h.update(image.get(start..end).unwrap_or(&[]));
    }
    Ok(Sha384(h.finalize().into()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal PE32+ image: headers (0x200 bytes), two sections listed out of file order, 0x80 trailing bytes.
    pub(crate) fn synth_pe() -> Vec<u8> {
        let mut img = vec![0u8; 0x600];
        img[0..2].copy_from_slice(b"MZ");
        img[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        img[0x80..0x84].copy_from_slice(b"PE\0\0");
        let coff = 0x84;
        img[coff + 2..coff + 4].copy_from_slice(&2u16.to_le_bytes());
        img[coff + 16..coff + 18].copy_from_slice(&(112u16 + 16 * 8).to_le_bytes());
        let opt = coff + 20;
        img[opt..opt + 2].copy_from_slice(&0x20bu16.to_le_bytes());
        img[opt + 60..opt + 64].copy_from_slice(&0x200u32.to_le_bytes());
        img[opt + 64..opt + 68].copy_from_slice(&0xdeadbeefu32.to_le_bytes());
        img[opt + 108..opt + 112].copy_from_slice(&16u32.to_le_bytes());
        let table = opt + 112 + 16 * 8;
        for (i, (ptr, size)) in [(0x400u32, 0x100u32), (0x200, 0x200)].iter().enumerate() {
            let s = table + 40 * i;
            img[s..s + 5].copy_from_slice(b".sect");
            img[s + 16..s + 20].copy_from_slice(&size.to_le_bytes());
            img[s + 20..s + 24].copy_from_slice(&ptr.to_le_bytes());
        }
        for (i, b) in img.iter_mut().enumerate().skip(0x200) {
            *b = (i % 253) as u8;
        }
        img.truncate(0x580);
        img
    }

    #[test]
    fn hashes_headers_without_checksum_then_sorted_sections_then_tail() {
        let img = synth_pe();
        let opt = 0x84 + 20;
        let mut expect = Vec::new();
        expect.extend_from_slice(&img[..opt + 64]);
        expect.extend_from_slice(&img[opt + 68..opt + 112 + 32]);
        expect.extend_from_slice(&img[opt + 112 + 40..0x200]);
        expect.extend_from_slice(&img[0x200..0x400]);
        expect.extend_from_slice(&img[0x400..0x500]);
        expect.extend_from_slice(&img[0x500..0x580]);
        assert_eq!(authenticode_sha384(&img).unwrap(), Sha384::of(&expect));
        // The checksum and the certificate entry are not hashed.
        let mut other = img.clone();
        other[opt + 64] ^= 0xff;
        other[opt + 112 + 32] ^= 0xff;
        assert_eq!(authenticode_sha384(&other).unwrap(), Sha384::of(&expect));
        assert!(!PeImage::parse(&img).unwrap().is_signed());
    }

    #[test]
    fn excludes_the_certificate_table_from_the_tail() {
        let mut img = synth_pe();
        let opt = 0x84 + 20;
        img[opt + 112 + 36..opt + 112 + 40].copy_from_slice(&0x40u32.to_le_bytes());
        let pe = PeImage::parse(&img).unwrap();
        assert!(pe.is_signed());
        assert_eq!(pe.ranges(img.len()).unwrap().last(), Some(&(0x500, 0x540)));
    }

    #[test]
    fn rejects_image_without_pe_header() {
        let err = authenticode_sha384(b"\x7fELF\x02\x01\x01").unwrap_err();
        assert!(err.to_string().starts_with("not a PE image: the kernel has no EFI stub"), "{err}");
        let mut img = synth_pe();
        img[0x80] = b'X';
        assert!(matches!(authenticode_sha384(&img), Err(PeError::NotPe { offset: 0x80, .. })));
        assert!(matches!(authenticode_sha384(b""), Err(PeError::NotPe { offset: 0, .. })));
    }

    #[test]
    fn rejects_truncated_pe() {
        let img = synth_pe();
        for len in [0x3e, 0x82, 0x90, 0x150, 0x1f0, 0x450] {
            assert!(authenticode_sha384(&img[..len]).is_err(), "len {len:#x}");
        }
        let err = authenticode_sha384(&img[..0x450]).unwrap_err();
        assert!(matches!(err, PeError::SectionOutOfBounds { index: 0, pointer: 0x400, .. }), "{err}");
    }

    #[test]
    fn rejects_pe_with_bogus_section_table() {
        let mut img = synth_pe();
        img[0x84 + 2..0x84 + 4].copy_from_slice(&0xffffu16.to_le_bytes());
        let err = authenticode_sha384(&img).unwrap_err();
        assert!(matches!(err, PeError::BadField { field: "NumberOfSections", value: 0xffff, .. }), "{err}");
        let mut img = synth_pe();
        let s = 0x84 + 20 + 112 + 128;
        img[s + 20..s + 24].copy_from_slice(&0xffff_ff00u32.to_le_bytes());
        assert!(matches!(authenticode_sha384(&img), Err(PeError::SectionOutOfBounds { .. })));
    }

    #[test]
    fn rejects_oversized_certificate_table() {
        let mut img = synth_pe();
        let opt = 0x84 + 20;
        img[opt + 112 + 36..opt + 112 + 40].copy_from_slice(&0x1000u32.to_le_bytes());
        assert!(matches!(authenticode_sha384(&img), Err(PeError::CertificateTooLarge { cert_size: 0x1000, .. })));
    }
}
