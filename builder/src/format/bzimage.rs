//! A bzImage as cvmforge uses it: the checks before a build (a setup header, boot protocol 2.06 or newer), the boot
//! protocol and kernel version for the summary and the manifest, the kernel release, and the compressed payload.
//!
//! The setup header itself is parsed by the measurements crate ([`cvmforge_measure::bzimage::SetupHeader`], the one
//! parser of it in the workspace); this module adds what only the builder needs.

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use cvmforge_measure::bzimage::{SetupHeader, SetupHeaderError, MIN_LEN};
use thiserror::Error;

use crate::format::compress::decode::{decompress, DecodeError};

/// The oldest boot protocol that can be loaded above 1 MiB with an initrd the way QEMU and OVMF do (2.06 adds
/// `cmdline_size`).
pub const MIN_PROTOCOL: u16 = 0x0206;
/// Upper bound on a decompressed kernel (`vmlinux` of distribution kernels is 30-70 MiB).
pub const MAX_KERNEL_SIZE: u64 = 512 << 20;

/// Why a file is not a usable bzImage.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BzImageError {
    /// The file is shorter than the setup header.
    #[error(
        "not a bzImage: the file is {len} bytes, too short to hold the x86 boot setup header (needs at least {needed})"
    )]
    TooShort {
        /// File length.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// The setup header cannot be read (no `HdrS` magic).
    #[error(transparent)]
    Header(#[from] SetupHeaderError),
    /// The boot protocol is too old.
    #[error("bzImage boot protocol {major}.{minor:02} is too old: cvmforge needs 2.06 or newer")]
    TooOld {
        /// Major version.
        major: u8,
        /// Minor version.
        minor: u8,
    },
}

/// What cvmforge reads from a bzImage's setup header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BzImage {
    /// Boot protocol version, e.g. `0x020f` for 2.15.
    pub protocol: u16,
    /// The kernel version string (`6.1.0-28-amd64 (debian-kernel@...) #1 SMP ...`), if the pointer is valid.
    pub kernel_version: Option<String>,
}

impl BzImage {
    /// Checks the setup header of `bytes` (the first few KiB of the kernel file are enough).
    pub fn parse(bytes: &[u8]) -> Result<Self, BzImageError> {
        if bytes.len() < MIN_LEN {
            return Err(BzImageError::TooShort { len: bytes.len(), needed: MIN_LEN });
        }
        let header = SetupHeader::parse(bytes)?;
        let protocol = header.version();
        if protocol < MIN_PROTOCOL {
            let [minor, major] = protocol.to_le_bytes();
            return Err(BzImageError::TooOld { major, minor });
        }
        // The version string is informative: a kernel without one (or with a broken pointer) still boots.
        let kernel_version = header.kernel_version().ok().map(str::to_string);
        Ok(BzImage { protocol, kernel_version })
    }

    /// The boot protocol as `major.minor`, e.g. `2.15`.
    pub fn protocol_string(&self) -> String {
        let [minor, major] = self.protocol.to_le_bytes();
        format!("{major}.{minor:02}")
    }

    /// The release part of the kernel version string (its first word), e.g. `6.1.0-28-amd64`.
    pub fn release(&self) -> Option<&str> {
        self.kernel_version.as_deref().and_then(|v| v.split_whitespace().next())
    }
}

/// The kernel release (`uname -r`, e.g. `6.1.0-56-amd64`) of a bzImage.
pub fn kernel_release(bytes: &[u8]) -> Result<String, SetupHeaderError> {
    Ok(SetupHeader::parse(bytes)?.kernel_release()?.to_string())
}

/// Why a bzImage's kernel could not be decompressed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// The setup header or its payload fields cannot be read.
    #[error(transparent)]
    Header(#[from] SetupHeaderError),
    /// The payload does not decompress.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// The decompressed kernel (`vmlinux`) of a bzImage, at most [`MAX_KERNEL_SIZE`] bytes.
pub fn decompressed_kernel(bytes: &[u8]) -> Result<Vec<u8>, PayloadError> {
    let payload = SetupHeader::parse(bytes)?.payload()?;
    Ok(decompress(payload, "kernel payload", MAX_KERNEL_SIZE)?)
}

/// Builds a minimal bzImage around a compressed payload, for tests.
#[doc(hidden)]
#[allow(clippy::indexing_slicing)] // builds synthetic inputs at fixed offsets; never reads untrusted bytes
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_kernel(version: u16) -> Vec<u8> {
        let mut k = vec![0u8; 0x400];
        k[0x1fe..0x200].copy_from_slice(&[0x55, 0xaa]);
        k[0x202..0x206].copy_from_slice(b"HdrS");
        k[0x206..0x208].copy_from_slice(&version.to_le_bytes());
        k[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        k[0x300..0x300 + 18].copy_from_slice(b"6.1.0-9-amd64 (x)\0");
        k
    }

    #[test]
    fn reads_protocol_and_kernel_version() {
        let k = BzImage::parse(&fake_kernel(0x020f)).unwrap();
        assert_eq!(k.protocol_string(), "2.15");
        assert_eq!(k.release(), Some("6.1.0-9-amd64"));
    }

    #[test]
    fn zero_version_pointer_means_no_version_string() {
        let mut k = fake_kernel(0x020f);
        k[0x20e..0x210].copy_from_slice(&[0, 0]);
        k[0x200..0x202].copy_from_slice(&[0xeb, 0x66]); // the jmp at 0x200
        assert_eq!(BzImage::parse(&k).unwrap().kernel_version, None);
    }

    #[test]
    fn rejects_file_without_hdrs_magic() {
        let err = BzImage::parse(&[0u8; 0x300]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "not a bzImage: expected the setup header magic `HdrS` at offset 0x202, found [00, 00, 00, 00]"
        );
    }

    #[test]
    fn rejects_short_file() {
        assert_eq!(BzImage::parse(b"MZ").unwrap_err(), BzImageError::TooShort { len: 2, needed: 0x208 });
    }

    #[test]
    fn rejects_old_protocol() {
        let err = BzImage::parse(&fake_kernel(0x0204)).unwrap_err();
        assert_eq!(err.to_string(), "bzImage boot protocol 2.04 is too old: cvmforge needs 2.06 or newer");
    }
}
