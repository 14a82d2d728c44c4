//! EFI GUIDs as typed constants.
//!
//! A GUID is written `aabbccdd-eeff-gghh-iijj-kkllmmnnoopp`; on the wire (EFI_GUID) the first three groups are
//! little-endian and the last two are bytes in order.

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::fmt;

/// Bytes in an encoded GUID.
pub const GUID_LEN: usize = 16;

/// An EFI GUID, held in its on-the-wire (mixed-endian) byte order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Guid([u8; GUID_LEN]);

impl Guid {
    /// Builds a GUID from its textual groups, as it is written in specs: `Guid::from_fields(0x96b582de, 0x1fb2, 0x45f7, [0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d])`.
    pub const fn from_fields(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Self {
        let a = d1.to_le_bytes();
        let b = d2.to_le_bytes();
        let c = d3.to_le_bytes();
        Guid([a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4], d4[5], d4[6], d4[7]])
    }

    /// Wraps 16 bytes that are already in wire order.
    pub const fn from_wire_bytes(bytes: [u8; GUID_LEN]) -> Self {
        Guid(bytes)
    }

    /// The wire encoding (mixed-endian), as it appears in firmware and in hashed structures.
    pub const fn to_wire_bytes(self) -> [u8; GUID_LEN] {
        self.0
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
        )
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

/// Footer of the OVMF GUID table (OvmfPkg/ResetVector): `96b582de-1fb2-45f7-baea-a366c55a082d`.
pub const OVMF_TABLE_FOOTER: Guid =
    Guid::from_fields(0x96b582de, 0x1fb2, 0x45f7, [0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d]);
/// SEV hashes table location (u32 gpa, u32 size): `7255371f-3a3b-4b04-927b-1da6efa8d454`.
pub const SEV_HASH_TABLE_RV: Guid =
    Guid::from_fields(0x7255371f, 0x3a3b, 0x4b04, [0x92, 0x7b, 0x1d, 0xa6, 0xef, 0xa8, 0xd4, 0x54]);
/// SEV-ES AP reset block (u32 reset EIP): `00f771de-1a7e-4fcb-890e-68c77e2fb44e`.
pub const SEV_ES_RESET_BLOCK: Guid =
    Guid::from_fields(0x00f771de, 0x1a7e, 0x4fcb, [0x89, 0x0e, 0x68, 0xc7, 0x7e, 0x2f, 0xb4, 0x4e]);
/// SEV metadata (u32 offset from the end of the file): `dc886566-984a-4798-a75e-5585a7bf67cc`.
pub const SEV_METADATA: Guid =
    Guid::from_fields(0xdc886566, 0x984a, 0x4798, [0xa7, 0x5e, 0x55, 0x85, 0xa7, 0xbf, 0x67, 0xcc]);
/// TDX metadata (u32 offset from the end of the file to the TDVF descriptor): `e47a6535-984a-4798-865e-4685a7bf8ec2`.
pub const TDX_METADATA_OFFSET: Guid =
    Guid::from_fields(0xe47a6535, 0x984a, 0x4798, [0x86, 0x5e, 0x46, 0x85, 0xa7, 0xbf, 0x8e, 0xc2]);
/// SVSM information block: `a789a612-0597-4c4b-a49f-cbb1fe9d1ddd`.
pub const SVSM_INFO: Guid =
    Guid::from_fields(0xa789a612, 0x0597, 0x4c4b, [0xa4, 0x9f, 0xcb, 0xb1, 0xfe, 0x9d, 0x1d, 0xdd]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_round_trips_the_textual_form() {
        assert_eq!(OVMF_TABLE_FOOTER.to_string(), "96b582de-1fb2-45f7-baea-a366c55a082d");
        assert_eq!(SEV_METADATA.to_string(), "dc886566-984a-4798-a75e-5585a7bf67cc");
    }

    #[test]
    fn wire_order_is_mixed_endian() {
        assert_eq!(
            OVMF_TABLE_FOOTER.to_wire_bytes(),
            [0xde, 0x82, 0xb5, 0x96, 0xb2, 0x1f, 0xf7, 0x45, 0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d]
        );
    }
}
