//! Decoding the compressed payloads cvmforge meets besides the initrd: a bzImage's kernel payload and compressed
//! kernel modules (`.ko.gz`, `.ko.xz`, `.ko.zst`), in gzip, xz (with the x86 BCJ filter kernels use), legacy lzma or
//! zstd, detected by their magic bytes. Output is bounded: a hostile stream cannot grow past the caller's limit, and
//! the xz/lzma decoder's memory is capped.

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::io::{self, Read, Write};

use thiserror::Error;

/// Memory the xz/lzma decoder may use: bounds the dictionary a hostile header can ask for (kernels use 32 MiB,
/// `scripts/xz_wrap.sh`; modules 1 MiB).
const XZ_MEMLIMIT: u64 = 256 << 20;

/// Why a payload could not be decoded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The payload uses a compression cvmforge cannot decompress.
    #[error("the kernel payload is compressed with {format}, which cvmforge cannot decompress (supported: gzip, xz, lzma, zstd)")]
    UnsupportedCompression {
        /// The detected format, or its first bytes.
        format: String,
    },
    /// Decompression failed.
    #[error("cannot decompress the {format} {what}")]
    Decompress {
        /// What was being decompressed.
        what: &'static str,
        /// The compression format.
        format: &'static str,
        /// The decoder's error.
        source: io::Error,
    },
    /// The decompressed output exceeds the limit.
    #[error("the decompressed {what} exceeds the {limit}-byte limit")]
    TooLarge {
        /// What was being decompressed.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
}

/// Compression formats, detected by magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// RFC 1952.
    Gzip,
    /// `.xz` container (possibly with the x86 BCJ filter, as kernels use).
    Xz,
    /// Legacy `.lzma` ("lzma_alone").
    Lzma,
    /// zstd frame.
    Zstd,
}

impl Format {
    /// Name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Format::Gzip => "gzip",
            Format::Xz => "xz",
            Format::Lzma => "lzma",
            Format::Zstd => "zstd",
        }
    }

    /// Detects the format of `data` from its magic bytes.
    pub fn detect(data: &[u8]) -> Result<Format, DecodeError> {
        let known: [(&[u8], Option<Format>, &str); 8] = [
            (b"\x1f\x8b", Some(Format::Gzip), "gzip"),
            (b"\xfd7zXZ\x00", Some(Format::Xz), "xz"),
            (b"\x5d\x00\x00", Some(Format::Lzma), "lzma"),
            (b"\x28\xb5\x2f\xfd", Some(Format::Zstd), "zstd"),
            (b"BZh", None, "bzip2"),
            (b"\x02\x21\x4c\x18", None, "lz4"),
            (b"\x89LZO", None, "lzo"),
            (b"\x7fELF", None, "nothing (an uncompressed ELF)"),
        ];
        for (magic, format, name) in known {
            if data.starts_with(magic) {
                return format.ok_or_else(|| DecodeError::UnsupportedCompression { format: name.to_string() });
            }
        }
        let head: Vec<u8> = data.iter().take(6).copied().collect();
        Err(DecodeError::UnsupportedCompression { format: format!("an unknown format (magic {head:02x?})") })
    }
}

/// A writer that refuses to grow past `limit` bytes.
struct Limited {
    out: Vec<u8>,
    limit: u64,
    exceeded: bool,
}

impl Write for Limited {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let total = u64::try_from(self.out.len().saturating_add(buf.len())).unwrap_or(u64::MAX);
        if total > self.limit {
            self.exceeded = true;
            return Err(io::Error::other("decompressed size limit exceeded"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Decompresses the first stream of `data` (trailing bytes, such as the kernel's appended size, are ignored),
/// producing at most `limit` bytes.
pub fn decompress(data: &[u8], what: &'static str, limit: u64) -> Result<Vec<u8>, DecodeError> {
    let format = Format::detect(data)?;
    let mut sink = Limited { out: Vec::new(), limit, exceeded: false };
    let result = match format {
        Format::Gzip => io::copy(&mut flate2::read::GzDecoder::new(data), &mut sink),
        Format::Xz => liblzma::stream::Stream::new_stream_decoder(XZ_MEMLIMIT, 0)
            .map_err(io::Error::other)
            .and_then(|s| io::copy(&mut liblzma::read::XzDecoder::new_stream(data, s), &mut sink)),
        Format::Lzma => liblzma::stream::Stream::new_lzma_decoder(XZ_MEMLIMIT)
            .map_err(io::Error::other)
            .and_then(|s| io::copy(&mut liblzma::read::XzDecoder::new_stream(data, s), &mut sink)),
        Format::Zstd => zstd::stream::read::Decoder::with_buffer(data)
            .map(zstd::stream::read::Decoder::single_frame)
            .and_then(|mut d| io::copy(&mut d, &mut sink)),
    };
    match result {
        _ if sink.exceeded => Err(DecodeError::TooLarge { what, limit }),
        Ok(_) => Ok(sink.out),
        Err(source) => Err(DecodeError::Decompress { what, format: format.name(), source }),
    }
}

/// Reads a decoder (`format` names its compression) to the end, failing past `limit` bytes.
pub fn read_bounded(
    reader: impl Read,
    what: &'static str,
    format: &'static str,
    limit: u64,
) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    reader.take(limit.saturating_add(1)).read_to_end(&mut out).map_err(|source| DecodeError::Decompress {
        what,
        format,
        source,
    })?;
    if u64::try_from(out.len()).unwrap_or(u64::MAX) > limit {
        return Err(DecodeError::TooLarge { what, limit });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_decompression_bombs() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&vec![0u8; 1 << 20]).unwrap();
        let err = decompress(&gz.finish().unwrap(), "kernel", 1000).unwrap_err();
        assert!(matches!(err, DecodeError::TooLarge { limit: 1000, .. }), "{err}");
    }

    #[test]
    fn names_what_it_cannot_decode() {
        let err = decompress(b"BZh91AY&SY", "kernel payload", 1000).unwrap_err();
        assert!(err.to_string().contains("compressed with bzip2"), "{err}");
        let err = decompress(b"\x01\x02\x03", "kernel payload", 1000).unwrap_err();
        assert!(err.to_string().contains("an unknown format (magic [01, 02, 03])"), "{err}");
    }
}
