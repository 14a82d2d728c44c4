//! Recognising and decompressing an initrd: gzip (RFC 1952), zstd (RFC 8878) or a plain newc archive.
//!
//! The readable compression parameters are reported so that a diff can explain "same cpio, different compressed
//! bytes": the gzip header's MTIME, XFL, OS and optional fields; the zstd frame header's window, checksum flag and
//! content-size field (see `docs/specs/reproducibility.md`, "gzip" and "zstd").

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::collections::BTreeMap;
use std::io::{Cursor, Read};

use crate::format::cpio::read::{read_all, CpioEntry};
use crate::format::error::{escape, UnpackError};
use crate::format::io::{cap_exceeded, Capped};
use crate::format::Limits;
use crate::sys::io::HashingReader;

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// gzip magic `1f 8b`.
    Gzip,
    /// zstd frame magic `28 b5 2f fd`.
    Zstd,
    /// newc cpio magic `070701` / `070702`.
    Cpio,
    /// `ustar` magic at offset 257.
    Tar,
    /// None of the above.
    Other,
}

/// Recognises a container from its first bytes (at least 263 for tar).
pub fn sniff(head: &[u8]) -> Container {
    if head.starts_with(&[0x1f, 0x8b]) {
        Container::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Container::Zstd
    } else if head.starts_with(b"070701") || head.starts_with(b"070702") {
        Container::Cpio
    } else if head.get(257..262) == Some(b"ustar") {
        Container::Tar
    } else {
        Container::Other
    }
}

/// The fields of the first gzip member header (RFC 1952 section 2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GzipHeader {
    /// MTIME (0 means none).
    pub mtime: u32,
    /// XFL: 2 = slowest/best compression (level 9), 4 = fastest (level 1), 0 otherwise.
    pub xfl: u8,
    /// OS byte (3 = Unix, 255 = unknown).
    pub os: u8,
    /// FNAME, if present.
    pub fname: Option<String>,
    /// FCOMMENT present.
    pub fcomment: bool,
    /// FEXTRA present.
    pub fextra: bool,
    /// FHCRC present.
    pub fhcrc: bool,
    /// FTEXT flag.
    pub ftext: bool,
}

/// The fields of the first zstd frame header (RFC 8878 section 3.1.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZstdHeader {
    /// Window size in bytes (the content size for single-segment frames).
    pub window_size: Option<u64>,
    /// Single_Segment_flag.
    pub single_segment: bool,
    /// Content_Checksum_flag.
    pub checksum: bool,
    /// Frame_Content_Size, if present.
    pub content_size: Option<u64>,
    /// Dictionary_ID, if present.
    pub dictionary_id: Option<u32>,
}

/// How an initrd is compressed, with the parameters its header reveals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompressionInfo {
    /// A plain cpio archive.
    None,
    /// gzip.
    Gzip(GzipHeader),
    /// zstd.
    Zstd(ZstdHeader),
}

impl CompressionInfo {
    /// `none`, `gzip` or `zstd`.
    pub fn algorithm(&self) -> &'static str {
        match self {
            CompressionInfo::None => "none",
            CompressionInfo::Gzip(_) => "gzip",
            CompressionInfo::Zstd(_) => "zstd",
        }
    }

    /// The header fields by display name, e.g. `gzip MTIME` → `0`.
    pub fn fields(&self) -> BTreeMap<&'static str, String> {
        let mut map = BTreeMap::new();
        match self {
            CompressionInfo::None => {}
            CompressionInfo::Gzip(h) => {
                map.insert("gzip MTIME", h.mtime.to_string());
                let level = match h.xfl {
                    2 => " (level 9, best compression)",
                    4 => " (level 1, fastest)",
                    _ => "",
                };
                map.insert("gzip XFL", format!("{}{level}", h.xfl));
                map.insert("gzip OS", h.os.to_string());
                map.insert("gzip FNAME", h.fname.clone().unwrap_or_else(|| "(absent)".to_string()));
                map.insert("gzip FCOMMENT", presence(h.fcomment));
                map.insert("gzip FEXTRA", presence(h.fextra));
                map.insert("gzip FHCRC", presence(h.fhcrc));
                map.insert("gzip FTEXT", presence(h.ftext));
            }
            CompressionInfo::Zstd(h) => {
                map.insert("zstd window size", h.window_size.map_or("(absent)".to_string(), |w| w.to_string()));
                map.insert("zstd single segment", presence(h.single_segment));
                map.insert("zstd checksum flag", presence(h.checksum));
                map.insert("zstd content size", h.content_size.map_or("(absent)".to_string(), |c| c.to_string()));
                map.insert("zstd dictionary id", h.dictionary_id.map_or("(absent)".to_string(), |d| d.to_string()));
            }
        }
        map
    }
}

fn presence(flag: bool) -> String {
    if flag { "set" } else { "unset" }.to_string()
}

/// Parses a gzip member header from the start of `head`.
pub(crate) fn gzip_header(head: &[u8]) -> Result<GzipHeader, UnpackError> {
    let bad = |reason| UnpackError::BadCompressionHeader { format: "gzip", reason };
    let fixed = head.get(..10).ok_or_else(|| bad("shorter than the 10-byte fixed header"))?;
    let [_, _, cm, flg, m0, m1, m2, m3, xfl, os] = <[u8; 10]>::try_from(fixed).map_err(|_| bad("short header"))?;
    if cm != 8 {
        return Err(bad("compression method is not 8 (deflate)"));
    }
    let mut rest = head.get(10..).unwrap_or_default();
    if flg & 0x04 != 0 {
        let xlen = rest.get(..2).ok_or_else(|| bad("FEXTRA length missing"))?;
        let xlen =
            usize::from(u16::from_le_bytes([xlen.first().copied().unwrap_or(0), xlen.get(1).copied().unwrap_or(0)]));
        rest = rest.get(2 + xlen..).ok_or_else(|| bad("FEXTRA field longer than the data read"))?;
    }
    let fname = if flg & 0x08 != 0 {
        let end =
            rest.iter().position(|&b| b == 0).ok_or_else(|| bad("FNAME not NUL-terminated within the data read"))?;
        let name = String::from_utf8_lossy(rest.get(..end).unwrap_or_default()).into_owned();
        Some(name)
    } else {
        None
    };
    Ok(GzipHeader {
        mtime: u32::from_le_bytes([m0, m1, m2, m3]),
        xfl,
        os,
        fname,
        fcomment: flg & 0x10 != 0,
        fextra: flg & 0x04 != 0,
        fhcrc: flg & 0x02 != 0,
        ftext: flg & 0x01 != 0,
    })
}

/// Parses a zstd frame header from the start of `head`.
pub(crate) fn zstd_header(head: &[u8]) -> Result<ZstdHeader, UnpackError> {
    let bad = |reason| UnpackError::BadCompressionHeader { format: "zstd", reason };
    let fhd = *head.get(4).ok_or_else(|| bad("missing frame header descriptor"))?;
    let fcs_flag = fhd >> 6;
    let single_segment = fhd & 0x20 != 0;
    let checksum = fhd & 0x04 != 0;
    let did_len = [0usize, 1, 2, 4].get(usize::from(fhd & 0x03)).copied().unwrap_or(0);
    let mut at = 5usize;
    let window_size = if single_segment {
        None
    } else {
        let wd = *head.get(at).ok_or_else(|| bad("missing window descriptor"))?;
        at += 1;
        let exponent = u32::from(wd >> 3);
        let base = 1u64 << (10 + exponent);
        Some(base + (base / 8) * u64::from(wd & 0x07))
    };
    let le = |bytes: &[u8]| bytes.iter().rev().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    let did = head.get(at..at + did_len).ok_or_else(|| bad("truncated dictionary id"))?;
    at += did_len;
    let dictionary_id = (did_len > 0).then(|| u32::try_from(le(did)).unwrap_or(u32::MAX));
    let fcs_len = match (fcs_flag, single_segment) {
        (0, false) => 0,
        (0, true) => 1,
        (1, _) => 2,
        (2, _) => 4,
        _ => 8,
    };
    let fcs = head.get(at..at + fcs_len).ok_or_else(|| bad("truncated frame content size"))?;
    // A 2-byte content size is stored minus 256 (RFC 8878 3.1.1.1.4).
    let content_size = (fcs_len > 0).then(|| le(fcs) + if fcs_len == 2 { 256 } else { 0 });
    let window_size = if single_segment { content_size } else { window_size };
    Ok(ZstdHeader { window_size, single_segment, checksum, content_size, dictionary_id })
}

/// A parsed initrd.
#[derive(Debug, Clone)]
pub struct Initrd {
    /// The compression and its header fields.
    pub compression: CompressionInfo,
    /// SHA-256 of the file as given.
    pub file_sha256: [u8; 32],
    /// Size of the file as given.
    pub file_size: u64,
    /// SHA-256 of the decompressed cpio stream.
    pub cpio_sha256: [u8; 32],
    /// Size of the decompressed cpio stream.
    pub cpio_size: u64,
    /// Number of concatenated cpio archives.
    pub archives: u32,
    /// The entries in archive order.
    pub entries: Vec<CpioEntry>,
}

/// Reads an initrd (plain, gzip or zstd newc cpio) from a stream, within `limits`.
pub fn read_initrd<R: Read>(input: R, limits: &Limits) -> Result<Initrd, UnpackError> {
    let mut input = input;
    let mut head = Vec::with_capacity(4096);
    (&mut input).take(4096).read_to_end(&mut head).map_err(|source| UnpackError::Io {
        format: "initrd",
        offset: 0,
        source,
    })?;
    let container = sniff(&head);
    let compression = match container {
        Container::Gzip => CompressionInfo::Gzip(gzip_header(&head)?),
        Container::Zstd => CompressionInfo::Zstd(zstd_header(&head)?),
        _ => CompressionInfo::None,
    };
    let mut raw = HashingReader::new(Cursor::new(head).chain(input));
    let (entries, archives, cpio_sha256, cpio_size) = match container {
        Container::Gzip => decode(flate2::read::MultiGzDecoder::new(&mut raw), "gzip", limits)?,
        Container::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(&mut raw).map_err(|source| UnpackError::Io {
                format: "zstd",
                offset: 0,
                source,
            })?;
            decode(decoder, "zstd", limits)?
        }
        _ => decode(&mut raw, "none", limits)?,
    };
    let (file_sha256, file_size) =
        raw.finish().map_err(|source| UnpackError::Io { format: "initrd", offset: 0, source })?;
    Ok(Initrd { compression, file_sha256, file_size, cpio_sha256, cpio_size, archives, entries })
}

type Decoded = (Vec<CpioEntry>, u32, [u8; 32], u64);

/// Parses the decompressed stream as cpio, under the total-size cap, hashing all of it.
fn decode<R: Read>(decoder: R, compression: &'static str, limits: &Limits) -> Result<Decoded, UnpackError> {
    let mut plain = HashingReader::new(Capped::new(decoder, limits.max_total_size));
    let mut magic = Vec::with_capacity(6);
    (&mut plain).take(6).read_to_end(&mut magic).map_err(|source| stream_error(source, compression, limits))?;
    if !(magic.starts_with(b"070701") || magic.starts_with(b"070702")) {
        return Err(UnpackError::NotCpio { compression, found: escape(&magic) });
    }
    let (entries, archives) = read_all(Cursor::new(magic).chain(&mut plain), limits).map_err(|e| match e {
        UnpackError::TotalTooLarge { max, .. } => UnpackError::TotalTooLarge { format: decompressed(compression), max },
        other => other,
    })?;
    let (sha, size) = plain.finish().map_err(|source| stream_error(source, compression, limits))?;
    Ok((entries, archives, sha, size))
}

fn decompressed(compression: &'static str) -> &'static str {
    match compression {
        "gzip" => "decompressed gzip",
        "zstd" => "decompressed zstd",
        _ => "cpio",
    }
}

fn stream_error(source: std::io::Error, compression: &'static str, limits: &Limits) -> UnpackError {
    match cap_exceeded(&source) {
        Some(_) => UnpackError::TotalTooLarge { format: decompressed(compression), max: limits.max_total_size },
        None => UnpackError::Io { format: compression, offset: 0, source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_zstd_frame_header() {
        // FHD 0x84: FCS flag 2 (4 bytes), checksum, no single segment; window descriptor 0x58 = 2^(10+11) = 2 MiB.
        let head = [0x28, 0xb5, 0x2f, 0xfd, 0x84, 0x58, 0x10, 0x00, 0x00, 0x00];
        let h = zstd_header(&head).unwrap();
        assert_eq!(h.window_size, Some(2 << 20));
        assert_eq!(h.content_size, Some(16));
        assert!(h.checksum && !h.single_segment);
    }

    #[test]
    fn parses_a_gzip_header_with_a_name() {
        let head = [0x1f, 0x8b, 8, 0x08, 0x00, 0xf1, 0x53, 0x65, 2, 3, b'a', b'\0'];
        let h = gzip_header(&head).unwrap();
        assert_eq!((h.mtime, h.xfl, h.os, h.fname.as_deref()), (0x6553_f100, 2, 3, Some("a")));
    }
}
