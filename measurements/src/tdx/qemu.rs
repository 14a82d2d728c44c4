//! QEMU's patching of the Linux setup header before the firmware measures the kernel (QEMU ≤ 10.1).
//!
//! Spec: `docs/specs/tdx-measurement.md`, "RTMR1"; QEMU `x86_load_linux` (hw/i386/x86-common.c, formerly x86.c).
//! QEMU ≥ 10.2 (commit a7542a38f399) hands confidential guests the file unmodified. Older versions write the boot
//! protocol fields into the header, so the measured kernel depends on the RAM size and the initrd size.

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::bzimage::{
    SetupHeader, SetupHeaderError, CAN_USE_HEAP, CMD_LINE_PTR, HEAP_END_PTR, LOADFLAGS, PROTOCOL_2_03, PROTOCOL_2_12,
    RAMDISK_IMAGE, RAMDISK_SIZE, TYPE_OF_LOADER, VID_MODE, XLF_CAN_BE_LOADED_ABOVE_4G,
};

/// The first QEMU version that no longer patches the header for confidential guests.
pub const FIRST_UNPATCHED: QemuVersion = QemuVersion { major: 10, minor: 2, micro: 0 };
/// QEMU's ACPI data area below the top of low memory (`acpi_data_size`: 0x20000 + 0x8000 for current machine types).
pub const ACPI_DATA_SIZE: u64 = 0x28000;
/// On q35, RAM of at least this size is split at [`Q35_LOWMEM_SPLIT`] (`pc_q35_init`).
pub const Q35_LOWMEM_THRESHOLD: u64 = 0xb000_0000;
/// Low memory size when RAM is split.
pub const Q35_LOWMEM_SPLIT: u64 = 0x8000_0000;
/// `real_addr` for a "high and recent" kernel (protocol ≥ 2.02).
const REAL_ADDR: u32 = 0x10000;
/// `cmdline_addr` for protocol ≥ 2.02.
const CMDLINE_ADDR: u32 = 0x20000;

/// A QEMU version such as `10.1` or `9.2.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct QemuVersion {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Micro version (0 when not given).
    pub micro: u32,
}

impl QemuVersion {
    /// True when this QEMU patches the setup header of a confidential guest's kernel before it is measured.
    pub fn patches_kernel(self) -> bool {
        self < FIRST_UNPATCHED
    }
}

impl fmt::Display for QemuVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

impl FromStr for QemuVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid QEMU version `{s}` (expected MAJOR.MINOR or MAJOR.MINOR.MICRO, e.g. `10.1`)");
        let parts: Vec<u32> = s.split('.').map(|p| p.parse::<u32>().map_err(|_| bad())).collect::<Result<_, _>>()?;
        match parts[..] {
            [major, minor] => Ok(QemuVersion { major, minor, micro: 0 }),
            [major, minor, micro] => Ok(QemuVersion { major, minor, micro }),
            _ => Err(bad()),
        }
    }
}

/// Why QEMU would refuse (or this model cannot reproduce) the kernel load.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum QemuError {
    /// The setup header cannot be read (no `HdrS` magic, or a field past the end).
    #[error(transparent)]
    SetupHeader(#[from] SetupHeaderError),
    /// Boot protocol older than 2.02, which QEMU loads differently and no EFI-stub kernel uses.
    #[error("kernel boot protocol {version:#x} is older than 2.02; QEMU's low-kernel loading is not modelled")]
    OldProtocol {
        /// The protocol version.
        version: u16,
    },
    /// The initrd does not fit below `initrd_max` (QEMU exits with "initrd is too large").
    #[error("initrd of {size} bytes is too large for QEMU: the maximum is {max} bytes with this RAM size")]
    InitrdTooLarge {
        /// Initrd size.
        size: u64,
        /// `initrd_max`.
        max: u64,
    },
    /// RAM too small to hold the ACPI data.
    #[error("RAM size {memory} bytes is too small for QEMU's {ACPI_DATA_SIZE:#x}-byte ACPI data area")]
    MemoryTooSmall {
        /// RAM size.
        memory: u64,
    },
}

/// Size of RAM below 4 GiB on q35 (the machine type TDX requires).
pub fn below_4g_mem_size(memory: u64) -> u64 {
    if memory >= Q35_LOWMEM_THRESHOLD {
        Q35_LOWMEM_SPLIT
    } else {
        memory
    }
}

/// The values QEMU writes into the header (protocol ≥ 2.02).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderPatch {
    /// `ramdisk_image` (0x218), when an initrd is given.
    pub ramdisk_image: Option<u32>,
    /// `ramdisk_size` (0x21c), when an initrd is given.
    pub ramdisk_size: Option<u32>,
    /// `vid_mode` (0x1fa), when the command line has `vga=`.
    pub vid_mode: Option<u16>,
}

/// The initrd's highest address (`initrd_max`), as `x86_load_linux` computes it.
fn initrd_max(header: &SetupHeader<'_>, memory: u64) -> Result<u64, QemuError> {
    let protocol = header.version();
    let mut max = if protocol >= PROTOCOL_2_12 && header.xloadflags()? & XLF_CAN_BE_LOADED_ABOVE_4G != 0 {
        u64::from(u32::MAX)
    } else if protocol >= PROTOCOL_2_03 {
        u64::from(header.initrd_addr_max()?)
    } else {
        0x37ff_ffff
    };
    let top = below_4g_mem_size(memory).checked_sub(ACPI_DATA_SIZE).ok_or(QemuError::MemoryTooSmall { memory })?;
    if max >= top {
        max = top.saturating_sub(1);
    }
    Ok(max)
}

/// QEMU's `vga=` parsing: `normal`, `ext`, `ask`, or a number (C `strtoul` base 0).
fn vga_mode(cmdline: &[u8]) -> Option<u16> {
    let at = cmdline.windows(4).position(|w| w == b"vga=")?;
    let rest = cmdline.get(at + 4..).unwrap_or_default();
    let word: Vec<u8> = rest.iter().copied().take_while(|&b| b != b' ').collect();
    match word.as_slice() {
        w if w.starts_with(b"normal") => Some(0xffff),
        w if w.starts_with(b"ext") => Some(0xfffe),
        w if w.starts_with(b"ask") => Some(0xfffd),
        w => {
            let s = std::str::from_utf8(w).ok()?;
            let v = if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                u32::from_str_radix(hex, 16).ok()?
            } else if s.len() > 1 && s.starts_with('0') {
                u32::from_str_radix(&s[1..], 8).ok()?
            } else {
                s.parse().ok()?
            };
            // QEMU stores the low 16 bits (stw_le_p); it exits on unparsable values, which we treat as "no patch".
            u16::try_from(v & 0xffff).ok()
        }
    }
}

/// Returns the kernel as QEMU ≤ 10.1 hands it to the firmware: the setup header patched for this RAM size,
/// initrd size and command line.
pub fn patch_kernel(
    kernel: &[u8],
    memory: u64,
    initrd_size: Option<u64>,
    cmdline: &[u8],
) -> Result<Vec<u8>, QemuError> {
    let header = SetupHeader::parse(kernel)?;
    if header.version() < 0x202 {
        return Err(QemuError::OldProtocol { version: header.version() });
    }
    let max = initrd_max(&header, memory)?;
    let mut out = kernel.to_vec();
    let mut put = |at: u64, bytes: &[u8]| {
        let at = usize::try_from(at).unwrap_or(usize::MAX);
        if let Some(dst) = at.checked_add(bytes.len()).and_then(|end| out.get_mut(at..end)) {
            dst.copy_from_slice(bytes);
        }
    };
    put(CMD_LINE_PTR, &CMDLINE_ADDR.to_le_bytes());
    if let Some(mode) = vga_mode(cmdline) {
        put(VID_MODE, &mode.to_le_bytes());
    }
    put(TYPE_OF_LOADER, &[0xb0]);
    put(LOADFLAGS, &[header.loadflags()? | CAN_USE_HEAP]);
    // heap_end_ptr = cmdline_addr - real_addr - 0x200 = 0xfe00.
    let heap_end = u16::try_from(CMDLINE_ADDR - REAL_ADDR - 0x200).unwrap_or(0xfe00);
    put(HEAP_END_PTR, &heap_end.to_le_bytes());
    if let Some(size) = initrd_size {
        if size >= max {
            return Err(QemuError::InitrdTooLarge { size, max });
        }
        let addr = (max - size) & !4095;
        let addr32 = u32::try_from(addr).map_err(|_| QemuError::InitrdTooLarge { size, max })?;
        let size32 = u32::try_from(size).map_err(|_| QemuError::InitrdTooLarge { size, max })?;
        put(RAMDISK_IMAGE, &addr32.to_le_bytes());
        put(RAMDISK_SIZE, &size32.to_le_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake bzImage header: protocol 2.15, XLF_CAN_BE_LOADED_ABOVE_4G, initrd_addr_max 0x7fffffff.
    fn header(xlf_above_4g: bool) -> Vec<u8> {
        let mut k = vec![0u8; 0x4000];
        k[0x202..0x206].copy_from_slice(b"HdrS");
        k[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
        k[0x211] = 0x01;
        k[0x22c..0x230].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
        k[0x236..0x238].copy_from_slice(&(if xlf_above_4g { 0x3u16 } else { 0x1 }).to_le_bytes());
        k
    }

    fn u32_at(k: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(k[at..at + 4].try_into().unwrap())
    }

    const GIB: u64 = 1 << 30;

    #[test]
    fn patches_fixed_fields_as_the_spec_says() {
        let k = patch_kernel(&header(true), 2 * GIB, Some(0x12345), b"console=ttyS0").unwrap();
        assert_eq!(k[0x210], 0xb0);
        assert_eq!(k[0x211], 0x81);
        assert_eq!(&k[0x224..0x226], &0xfe00u16.to_le_bytes());
        assert_eq!(u32_at(&k, 0x228), 0x20000);
        assert_eq!(u32_at(&k, 0x21c), 0x12345);
        // (low_mem − 0x28000 − 1 − initrd_size) rounded down to 4 KiB, per docs/specs/tdx-measurement.md.
        assert_eq!(u64::from(u32_at(&k, 0x218)), (2 * GIB - 0x28000 - 1 - 0x12345) & !0xfff);
    }

    #[test]
    fn ramdisk_image_depends_on_memory_only_below_the_q35_split() {
        let image = |mem| u32_at(&patch_kernel(&header(true), mem, Some(0x80_0000), b"").unwrap(), 0x218);
        let one = image(GIB);
        let rest: Vec<u32> = [2, 3, 8, 64].iter().map(|g| image(g * GIB)).collect();
        assert!(rest.iter().all(|&v| v == rest[0]), "{rest:x?}");
        assert_ne!(one, rest[0]);
        assert_eq!(u64::from(one), (GIB - 0x28000 - 1 - 0x80_0000) & !0xfff);
        assert_eq!(u64::from(rest[0]), (0x8000_0000 - 0x28000 - 1 - 0x80_0000) & !0xfff);
    }

    #[test]
    fn caps_at_initrd_addr_max_without_xlf_flag() {
        let mut h = header(false);
        h[0x22c..0x230].copy_from_slice(&0x3fff_ffffu32.to_le_bytes());
        let k = patch_kernel(&h, 8 * GIB, Some(0x1000), b"").unwrap();
        assert_eq!(u32_at(&k, 0x218), (0x3fff_ffff - 0x1000) & !0xfff);
    }

    #[test]
    fn leaves_ramdisk_fields_without_initrd_and_handles_vga() {
        let k = patch_kernel(&header(true), 2 * GIB, None, b"vga=0x317 quiet").unwrap();
        assert_eq!(u32_at(&k, 0x218), 0);
        assert_eq!(u32_at(&k, 0x21c), 0);
        assert_eq!(&k[0x1fa..0x1fc], &0x317u16.to_le_bytes());
    }

    #[test]
    fn parses_versions() {
        assert_eq!("10.1".parse::<QemuVersion>(), Ok(QemuVersion { major: 10, minor: 1, micro: 0 }));
        assert_eq!("9.2.0".parse::<QemuVersion>(), Ok(QemuVersion { major: 9, minor: 2, micro: 0 }));
        assert!("10.1".parse::<QemuVersion>().unwrap().patches_kernel());
        assert!(!"10.2".parse::<QemuVersion>().unwrap().patches_kernel());
        assert!(!"11.0.1".parse::<QemuVersion>().unwrap().patches_kernel());
        for bad in ["10", "ten.1", "10.1.2.3", ""] {
            assert!(bad.parse::<QemuVersion>().is_err(), "{bad}");
        }
    }

    #[test]
    fn rejects_kernel_without_setup_header_or_huge_initrd() {
        assert!(matches!(
            patch_kernel(&[0u8; 0x300], GIB, None, b""),
            Err(QemuError::SetupHeader(SetupHeaderError::NoMagic { .. }))
        ));
        assert!(matches!(
            patch_kernel(&[0u8; 0x10], GIB, None, b""),
            Err(QemuError::SetupHeader(SetupHeaderError::Read(_)))
        ));
        assert!(matches!(patch_kernel(&header(true), GIB, Some(GIB), b""), Err(QemuError::InitrdTooLarge { .. })));
    }
}
