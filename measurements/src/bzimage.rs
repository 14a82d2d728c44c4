//! The Linux x86 boot protocol setup header of a bzImage: the one parser of it in the workspace.
//!
//! Spec: `Documentation/arch/x86/boot.rst`, "The Real-Mode Kernel Header" (offsets below are file offsets). The
//! builder reads the boot protocol, the kernel version string and the compressed payload from it; the TDX
//! measurement reads the fields QEMU ≤ 10.1 consults before it patches the header ([`crate::tdx::qemu`]). Every
//! field is read through [`Reader`], so a short or hostile file gives a [`SetupHeaderError`], never a panic.
//!
//! ```
//! use cvmforge_measure::bzimage::SetupHeader;
//! let mut kernel = vec![0u8; 0x400];
//! kernel[0x202..0x206].copy_from_slice(b"HdrS");
//! kernel[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
//! kernel[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes()); // the version string at 0x300
//! kernel[0x300..0x30e].copy_from_slice(b"6.1.0-28-amd64");
//! let header = SetupHeader::parse(&kernel).unwrap();
//! assert_eq!(header.protocol_string(), "2.15");
//! assert_eq!(header.kernel_version().unwrap(), "6.1.0-28-amd64");
//! ```

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use thiserror::Error;

use crate::reader::{ReadError, Reader};

/// `setup_sects` (u8): size of the real-mode setup in 512-byte sectors; 0 means 4.
pub const SETUP_SECTS: u64 = 0x1f1;
/// `vid_mode` (u16).
pub const VID_MODE: u64 = 0x1fa;
/// `header`: the magic [`MAGIC`].
pub const HEADER: u64 = 0x202;
/// `version` (u16): the boot protocol version, e.g. `0x020f` for 2.15.
pub const VERSION: u64 = 0x206;
/// `kernel_version` (u16): pointer to the NUL-terminated version string, minus 0x200; 0 means none.
pub const KERNEL_VERSION: u64 = 0x20e;
/// `type_of_loader` (u8).
pub const TYPE_OF_LOADER: u64 = 0x210;
/// `loadflags` (u8).
pub const LOADFLAGS: u64 = 0x211;
/// `ramdisk_image` (u32).
pub const RAMDISK_IMAGE: u64 = 0x218;
/// `ramdisk_size` (u32).
pub const RAMDISK_SIZE: u64 = 0x21c;
/// `heap_end_ptr` (u16).
pub const HEAP_END_PTR: u64 = 0x224;
/// `cmd_line_ptr` (u32).
pub const CMD_LINE_PTR: u64 = 0x228;
/// `initrd_addr_max` (u32, protocol 2.03+).
pub const INITRD_ADDR_MAX: u64 = 0x22c;
/// `xloadflags` (u16, protocol 2.12+).
pub const XLOADFLAGS: u64 = 0x236;
/// `payload_offset` (u32, protocol 2.08+), relative to the protected-mode code.
pub const PAYLOAD_OFFSET: u64 = 0x248;
/// `payload_length` (u32, protocol 2.08+).
pub const PAYLOAD_LENGTH: u64 = 0x24c;

/// `loadflags` bit 7, `CAN_USE_HEAP`: `heap_end_ptr` is valid.
pub const CAN_USE_HEAP: u8 = 0x80;
/// `xloadflags` bit 1, `XLF_CAN_BE_LOADED_ABOVE_4G`: the initrd may be above 4 GiB.
pub const XLF_CAN_BE_LOADED_ABOVE_4G: u16 = 0x2;

/// The setup header magic at [`HEADER`].
pub const MAGIC: [u8; 4] = *b"HdrS";
/// Bytes a file needs to hold the magic and the protocol version.
pub const MIN_LEN: usize = 0x208;
/// Longest kernel version string read.
pub const MAX_VERSION_LEN: usize = 512;
/// The boot protocol that introduced `initrd_addr_max`.
pub const PROTOCOL_2_03: u16 = 0x0203;
/// The boot protocol that introduced `payload_offset`/`payload_length`.
pub const PROTOCOL_2_08: u16 = 0x0208;
/// The boot protocol that introduced `xloadflags`.
pub const PROTOCOL_2_12: u16 = 0x020c;

/// Why the setup header (or a field it points to) cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SetupHeaderError {
    /// No `HdrS` magic at 0x202: not a bzImage.
    #[error("not a bzImage: expected the setup header magic `HdrS` at offset 0x202, found {found:02x?}")]
    NoMagic {
        /// The four bytes found there.
        found: [u8; 4],
    },
    /// The boot protocol predates a field that is needed.
    #[error("boot protocol {version:#06x} has no `{field}` (needs {needed:#06x} or later)")]
    FieldMissing {
        /// Protocol version found.
        version: u16,
        /// The field.
        field: &'static str,
        /// The protocol that introduced it.
        needed: u16,
    },
    /// The kernel version string is absent, empty, or not NUL-terminated UTF-8 text.
    #[error("the kernel version string at offset {offset:#x} is not NUL-terminated UTF-8 text")]
    BadVersionString {
        /// File offset of the string (0x200 when the pointer is 0).
        offset: u64,
    },
    /// A field lies past the end of the file.
    #[error("bzImage setup header: {0}")]
    Read(#[from] ReadError),
}

/// A bzImage whose setup header magic was found: its boot protocol, and readers of the other fields.
#[derive(Debug, Clone, Copy)]
pub struct SetupHeader<'a> {
    kernel: &'a [u8],
    version: u16,
}

impl<'a> SetupHeader<'a> {
    /// Finds the magic and reads the boot protocol version; `kernel` is the whole file (or a prefix of it, enough
    /// for the fields that are read later).
    pub fn parse(kernel: &'a [u8]) -> Result<Self, SetupHeaderError> {
        let found = Reader::at(kernel, "setup header magic", HEADER)?.array::<4>("setup header magic")?;
        if found != MAGIC {
            return Err(SetupHeaderError::NoMagic { found });
        }
        let version = Reader::at(kernel, "version", VERSION)?.u16_le("version")?;
        Ok(SetupHeader { kernel, version })
    }

    /// The boot protocol version, e.g. `0x020f`.
    pub fn version(&self) -> u16 {
        self.version
    }

    /// The boot protocol as `major.minor`, e.g. `2.15`.
    pub fn protocol_string(&self) -> String {
        let [minor, major] = self.version.to_le_bytes();
        format!("{major}.{minor:02}")
    }

    /// The kernel version string (`6.1.0-28-amd64 (debian-kernel@...) #1 SMP ...`) that `kernel_version` points to.
    pub fn kernel_version(&self) -> Result<&'a str, SetupHeaderError> {
        let pointer = Reader::at(self.kernel, "kernel_version", KERNEL_VERSION)?.u16_le("kernel_version")?;
        let offset = u64::from(pointer) + 0x200;
        // boot.rst: "kernel_version ... if set to a nonzero value"; 0 is not "the string at 0x200".
        let bad = SetupHeaderError::BadVersionString { offset };
        if pointer == 0 {
            return Err(bad);
        }
        let mut r = Reader::at(self.kernel, "kernel_version string", offset)?;
        let tail = r.take("kernel_version string", r.remaining().min(MAX_VERSION_LEN))?;
        let end = tail.iter().position(|&b| b == 0).ok_or(bad.clone())?;
        let text = std::str::from_utf8(tail.get(..end).unwrap_or_default()).map_err(|_| bad.clone())?;
        if text.trim().is_empty() {
            return Err(bad);
        }
        Ok(text)
    }

    /// The kernel release (`uname -r`, e.g. `6.1.0-56-amd64`): the first word of the version string.
    pub fn kernel_release(&self) -> Result<&'a str, SetupHeaderError> {
        let version = self.kernel_version()?;
        Ok(version.split_whitespace().next().unwrap_or(version))
    }

    /// `setup_sects`, with 0 read as 4 (boot.rst).
    pub fn setup_sects(&self) -> Result<u64, SetupHeaderError> {
        Ok(match Reader::at(self.kernel, "setup_sects", SETUP_SECTS)?.u8("setup_sects")? {
            0 => 4,
            n => u64::from(n),
        })
    }

    /// `loadflags`.
    pub fn loadflags(&self) -> Result<u8, SetupHeaderError> {
        Ok(Reader::at(self.kernel, "loadflags", LOADFLAGS)?.u8("loadflags")?)
    }

    /// `initrd_addr_max` (protocol 2.03+).
    pub fn initrd_addr_max(&self) -> Result<u32, SetupHeaderError> {
        self.require("initrd_addr_max", PROTOCOL_2_03)?;
        Ok(Reader::at(self.kernel, "initrd_addr_max", INITRD_ADDR_MAX)?.u32_le("initrd_addr_max")?)
    }

    /// `xloadflags` (protocol 2.12+).
    pub fn xloadflags(&self) -> Result<u16, SetupHeaderError> {
        self.require("xloadflags", PROTOCOL_2_12)?;
        Ok(Reader::at(self.kernel, "xloadflags", XLOADFLAGS)?.u16_le("xloadflags")?)
    }

    /// The compressed payload (`vmlinux.bin.*` plus the 4-byte size the kernel build appends), protocol 2.08+.
    pub fn payload(&self) -> Result<&'a [u8], SetupHeaderError> {
        self.require("payload_offset", PROTOCOL_2_08)?;
        let offset = Reader::at(self.kernel, "payload_offset", PAYLOAD_OFFSET)?.u32_le("payload_offset")?;
        let length = Reader::at(self.kernel, "payload_length", PAYLOAD_LENGTH)?.u32_le("payload_length")?;
        // The protected-mode code starts after the boot sector and the setup sectors.
        let start = (self.setup_sects()? + 1) * 512 + u64::from(offset);
        let len = usize::try_from(length).unwrap_or(usize::MAX);
        Ok(Reader::at(self.kernel, "payload_offset", start)?.take("payload", len)?)
    }

    fn require(&self, field: &'static str, needed: u16) -> Result<(), SetupHeaderError> {
        if self.version < needed {
            return Err(SetupHeaderError::FieldMissing { version: self.version, field, needed });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(version: u16, string: &[u8]) -> Vec<u8> {
        let mut k = vec![0u8; 0x600];
        k[0x1f1] = 1;
        k[0x202..0x206].copy_from_slice(b"HdrS");
        k[0x206..0x208].copy_from_slice(&version.to_le_bytes());
        k[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        k[0x300..0x300 + string.len()].copy_from_slice(string);
        k[0x248..0x24c].copy_from_slice(&16u32.to_le_bytes());
        k[0x24c..0x250].copy_from_slice(&8u32.to_le_bytes());
        k
    }

    #[test]
    fn reads_every_field_of_a_2_15_header() {
        let k = kernel(0x020f, b"6.1.0-28-amd64 (debian-kernel@lists.debian.org) #1 SMP\0");
        let h = SetupHeader::parse(&k).unwrap();
        assert_eq!((h.version(), h.protocol_string()), (0x020f, "2.15".to_string()));
        assert_eq!(h.kernel_release().unwrap(), "6.1.0-28-amd64");
        assert_eq!(h.setup_sects().unwrap(), 1);
        assert_eq!(h.payload().unwrap().len(), 8);
        assert_eq!(h.payload().unwrap().as_ptr(), k[2 * 512 + 16..].as_ptr());
        assert_eq!(h.xloadflags().unwrap(), 0);
    }

    #[test]
    fn rejects_files_without_the_magic_or_too_short() {
        let err = SetupHeader::parse(&[0u8; 0x300]).unwrap_err();
        assert_eq!(err, SetupHeaderError::NoMagic { found: [0; 4] });
        assert!(err.to_string().contains("expected the setup header magic `HdrS` at offset 0x202"), "{err}");
        assert!(matches!(SetupHeader::parse(&[0u8; 0x10]), Err(SetupHeaderError::Read(_))));
        let k = kernel(0x020f, b"x\0");
        for len in 0..k.len() {
            let _ = SetupHeader::parse(&k[..len]).map(|h| (h.kernel_version(), h.payload(), h.initrd_addr_max()));
        }
    }

    #[test]
    fn rejects_fields_the_protocol_does_not_have() {
        let k = kernel(0x0202, b"v\0");
        let h = SetupHeader::parse(&k).unwrap();
        let err = h.payload().unwrap_err();
        assert_eq!(err, SetupHeaderError::FieldMissing { version: 0x0202, field: "payload_offset", needed: 0x0208 });
        assert!(matches!(h.initrd_addr_max(), Err(SetupHeaderError::FieldMissing { .. })));
    }

    #[test]
    fn rejects_absent_empty_or_unterminated_version_strings() {
        for string in [&b"\0"[..], b"  \0", &[b'x'; 600], b"\xff\xfe\0"] {
            let k = kernel(0x020f, string);
            let err = SetupHeader::parse(&k).unwrap().kernel_version().unwrap_err();
            assert!(matches!(err, SetupHeaderError::BadVersionString { offset: 0x300 }), "{string:?}: {err}");
        }
        let mut k = kernel(0x020f, b"6.1\0");
        k[0x20e..0x210].copy_from_slice(&[0, 0]);
        assert!(matches!(
            SetupHeader::parse(&k).unwrap().kernel_version(),
            Err(SetupHeaderError::BadVersionString { .. })
        ));
    }
}
