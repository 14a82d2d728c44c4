//! The few x86 boot-protocol setup-header fields cvmforge reads from a bzImage
//! (`Documentation/arch/x86/boot.rst`, "The Real-Mode Kernel Header"), and bounded decompression of the payload.

use std::io::{self, Read, Write};

use cvmforge_measure::reader::{ReadError, Reader};
use thiserror::Error;

/// Offset of `setup_sects` (u8; 0 means 4).
const SETUP_SECTS: u64 = 0x1f1;
/// Offset of the `HdrS` magic.
const HEADER_MAGIC: u64 = 0x202;
/// Offset of `version` (boot protocol version).
const VERSION: u64 = 0x206;
/// Offset of `kernel_version` (pointer to the version string, minus 0x200).
const KERNEL_VERSION: u64 = 0x20e;
/// Offset of `payload_offset` (protocol 2.08+), relative to the protected-mode code.
const PAYLOAD_OFFSET: u64 = 0x248;
/// The boot protocol that introduced `payload_offset`/`payload_length`.
const PROTOCOL_2_08: u16 = 0x0208;
/// Longest kernel version string read.
const MAX_VERSION_LEN: usize = 512;
/// Memory the xz/lzma decoder may use: bounds the dictionary a hostile header can ask for (kernels use 32 MiB,
/// `scripts/xz_wrap.sh`; modules 1 MiB).
const XZ_MEMLIMIT: u64 = 256 << 20;
/// Upper bound on a decompressed kernel (`vmlinux` of distribution kernels is 30-70 MiB).
pub const MAX_KERNEL_SIZE: u64 = 512 << 20;

/// A failure to read the bzImage setup header or its payload.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SetupError {
    /// No `HdrS` magic at 0x202.
    #[error("not a bzImage: no `HdrS` setup-header magic at offset 0x202 (found {found:02x?})")]
    NotBzImage {
        /// The four bytes found.
        found: [u8; 4],
    },
    /// The boot protocol predates the field that is needed.
    #[error("boot protocol {version:#06x} has no `{field}` (needs {needed:#06x} or later)")]
    OldProtocol {
        /// Protocol version found.
        version: u16,
        /// Field needed.
        field: &'static str,
        /// Protocol version that introduced it.
        needed: u16,
    },
    /// The kernel version string is not NUL-terminated text.
    #[error("the kernel version string at offset {offset:#x} is not NUL-terminated UTF-8 text")]
    BadVersionString {
        /// File offset of the string.
        offset: u64,
    },
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
    /// A field ran past the end of the file.
    #[error("bzImage setup header: {0}")]
    Read(#[from] ReadError),
}

fn u32_at(bytes: &[u8], what: &'static str, offset: u64) -> Result<u32, ReadError> {
    Reader::at(bytes, what, offset)?.u32_le(what)
}

fn u16_at(bytes: &[u8], what: &'static str, offset: u64) -> Result<u16, ReadError> {
    Reader::at(bytes, what, offset)?.u16_le(what)
}

fn protocol(bytes: &[u8]) -> Result<u16, SetupError> {
    let found = Reader::at(bytes, "setup header magic", HEADER_MAGIC)?.array::<4>("setup header magic")?;
    if &found != b"HdrS" {
        return Err(SetupError::NotBzImage { found });
    }
    Ok(u16_at(bytes, "version", VERSION)?)
}

/// The kernel release (`uname -r`, e.g. `6.1.0-56-amd64`): the first word of the string that `kernel_version` at
/// 0x20e points to (plus 0x200).
pub fn kernel_release(bytes: &[u8]) -> Result<String, SetupError> {
    protocol(bytes)?;
    let pointer = u16_at(bytes, "kernel_version", KERNEL_VERSION)?;
    let offset = u64::from(pointer) + 0x200;
    if pointer == 0 {
        // boot.rst: "kernel_version ... if set to a nonzero value".
        return Err(SetupError::BadVersionString { offset });
    }
    let mut r = Reader::at(bytes, "kernel_version string", offset)?;
    let tail = r.take("kernel_version string", r.remaining().min(MAX_VERSION_LEN))?;
    let bad = SetupError::BadVersionString { offset };
    let end = tail.iter().position(|&b| b == 0).ok_or(SetupError::BadVersionString { offset })?;
    let text = std::str::from_utf8(tail.get(..end).unwrap_or_default()).map_err(|_| bad)?;
    text.split_whitespace().next().map(str::to_string).ok_or(SetupError::BadVersionString { offset })
}

/// The compressed payload (`vmlinux.bin.*` plus the 4-byte size the kernel build appends).
pub fn payload(bytes: &[u8]) -> Result<&[u8], SetupError> {
    let version = protocol(bytes)?;
    if version < PROTOCOL_2_08 {
        return Err(SetupError::OldProtocol { version, field: "payload_offset", needed: PROTOCOL_2_08 });
    }
    let sects = match Reader::at(bytes, "setup_sects", SETUP_SECTS)?.u8("setup_sects")? {
        0 => 4,
        n => u64::from(n),
    };
    let offset = u64::from(u32_at(bytes, "payload_offset", PAYLOAD_OFFSET)?);
    let length = u32_at(bytes, "payload_length", PAYLOAD_OFFSET + 4)?;
    let start = (sects + 1) * 512 + offset;
    let len = usize::try_from(length).map_err(|_| SetupError::TooLarge { what: "payload", limit: 0 })?;
    Ok(Reader::at(bytes, "payload_offset", start)?.take("payload", len)?)
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
    pub fn detect(data: &[u8]) -> Result<Format, SetupError> {
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
                return format.ok_or_else(|| SetupError::UnsupportedCompression { format: name.to_string() });
            }
        }
        let head: Vec<u8> = data.iter().take(6).copied().collect();
        Err(SetupError::UnsupportedCompression { format: format!("an unknown format (magic {head:02x?})") })
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
pub fn decompress(data: &[u8], what: &'static str, limit: u64) -> Result<Vec<u8>, SetupError> {
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
        _ if sink.exceeded => Err(SetupError::TooLarge { what, limit }),
        Ok(_) => Ok(sink.out),
        Err(source) => Err(SetupError::Decompress { what, format: format.name(), source }),
    }
}

/// Reads a decoder (`format` names its compression) to the end, failing past `limit` bytes.
pub fn read_bounded(
    reader: impl Read,
    what: &'static str,
    format: &'static str,
    limit: u64,
) -> Result<Vec<u8>, SetupError> {
    let mut out = Vec::new();
    reader.take(limit.saturating_add(1)).read_to_end(&mut out).map_err(|source| SetupError::Decompress {
        what,
        format,
        source,
    })?;
    if u64::try_from(out.len()).unwrap_or(u64::MAX) > limit {
        return Err(SetupError::TooLarge { what, limit });
    }
    Ok(out)
}

/// Builds a minimal bzImage around a compressed payload, for tests.
#[doc(hidden)]
pub mod testing {
    /// Setup sectors of the synthetic image.
    const SECTS: u8 = 1;

    /// A bzImage with protocol 2.15, the given version string and compressed payload.
    pub fn bzimage(version: &str, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; 0x400];
        out[0x1f1] = SECTS;
        out[0x202..0x206].copy_from_slice(b"HdrS");
        out[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
        out[0x20e..0x210].copy_from_slice(&(0x300u16 - 0x200).to_le_bytes());
        out[0x300..0x300 + version.len()].copy_from_slice(version.as_bytes());
        out[0x248..0x24c].copy_from_slice(&16u32.to_le_bytes());
        out[0x24c..0x250].copy_from_slice(&(payload.len() as u32 + 4).to_le_bytes());
        out.extend_from_slice(&[0u8; 16]);
        out.extend_from_slice(payload);
        out.extend_from_slice(&0x1234u32.to_le_bytes());
        out
    }
}
