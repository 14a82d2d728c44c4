//! The x86 Linux boot protocol setup header of a bzImage (Documentation/arch/x86/boot.rst).
//!
//! cvmforge checks that a recipe's kernel really is a bzImage before it builds anything, and reads the boot protocol
//! version and the kernel version string for the summary and the manifest.

use thiserror::Error;

/// Offset of the `HdrS` magic.
pub const HEADER_MAGIC_OFFSET: usize = 0x202;
/// The setup header magic.
pub const HEADER_MAGIC: &[u8; 4] = b"HdrS";
/// Offset of the 0xAA55 boot flag.
pub const BOOT_FLAG_OFFSET: usize = 0x1fe;
/// Offset of the u16 boot protocol version.
pub const VERSION_OFFSET: usize = 0x206;
/// Offset of the u16 pointer to the kernel version string (relative to 0x200).
pub const KERNEL_VERSION_PTR_OFFSET: usize = 0x20e;
/// The oldest boot protocol that can be loaded above 1 MiB with an initrd the way QEMU and OVMF do (2.06 adds
/// `cmdline_size`).
pub const MIN_PROTOCOL: u16 = 0x0206;

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
    /// The `HdrS` magic is missing.
    #[error(
        "not a bzImage: expected the setup header magic `HdrS` at offset {HEADER_MAGIC_OFFSET:#x}, found {found:02x?}"
    )]
    NoMagic {
        /// The four bytes found there.
        found: [u8; 4],
    },
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
        let needed = VERSION_OFFSET + 2;
        let header = bytes.get(..needed).ok_or(BzImageError::TooShort { len: bytes.len(), needed })?;
        let mut found = [0u8; 4];
        found.copy_from_slice(&header[HEADER_MAGIC_OFFSET..HEADER_MAGIC_OFFSET + 4]);
        if &found != HEADER_MAGIC {
            return Err(BzImageError::NoMagic { found });
        }
        let protocol = u16::from_le_bytes([header[VERSION_OFFSET], header[VERSION_OFFSET + 1]]);
        let [minor, major] = protocol.to_le_bytes();
        if protocol < MIN_PROTOCOL {
            return Err(BzImageError::TooOld { major, minor });
        }
        Ok(BzImage { protocol, kernel_version: kernel_version(bytes) })
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

/// Reads the NUL-terminated kernel version string that the header's pointer names, if it is in bounds and UTF-8.
fn kernel_version(bytes: &[u8]) -> Option<String> {
    let ptr = bytes.get(KERNEL_VERSION_PTR_OFFSET..KERNEL_VERSION_PTR_OFFSET + 2)?;
    // A zero pointer means "no version string" (boot.rst), not "the string at 0x200" (which is the jump instruction).
    let ptr = u16::from_le_bytes([ptr[0], ptr[1]]);
    if ptr == 0 {
        return None;
    }
    let start = usize::from(ptr).checked_add(0x200)?;
    let tail = bytes.get(start..)?;
    let end = tail.iter().take(512).position(|&b| b == 0)?;
    let version = std::str::from_utf8(&tail[..end]).ok()?;
    (!version.is_empty()).then(|| version.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_kernel(version: u16) -> Vec<u8> {
        let mut k = vec![0u8; 0x400];
        k[BOOT_FLAG_OFFSET..BOOT_FLAG_OFFSET + 2].copy_from_slice(&[0x55, 0xaa]);
        k[HEADER_MAGIC_OFFSET..HEADER_MAGIC_OFFSET + 4].copy_from_slice(HEADER_MAGIC);
        k[VERSION_OFFSET..VERSION_OFFSET + 2].copy_from_slice(&version.to_le_bytes());
        k[KERNEL_VERSION_PTR_OFFSET..KERNEL_VERSION_PTR_OFFSET + 2].copy_from_slice(&0x100u16.to_le_bytes());
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
        k[KERNEL_VERSION_PTR_OFFSET..KERNEL_VERSION_PTR_OFFSET + 2].copy_from_slice(&[0, 0]);
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
