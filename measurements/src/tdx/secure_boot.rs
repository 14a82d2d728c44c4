//! Secure Boot keys enrolled in the TDVF configuration volume (CFV), to warn when a Secure-Boot-enforcing firmware
//! (Debian's `.ms.fd`, Microsoft keys) is paired with an unsigned kernel, which it will refuse to boot.
//!
//! Spec: `docs/specs/tdx-measurement.md`, last paragraph of "RTMRs"; edk2 `MdeModulePkg/Include/Guid/VariableFormat.h`
//! (`VARIABLE_STORE_HEADER`, `AUTHENTICATED_VARIABLE_HEADER`), UEFI PI vol. 3 2.2.1 (the FV header in front of it).

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use super::tdvf::{Descriptor, SectionType};
use crate::guid::Guid;
use crate::reader::{ReadError, Reader};

/// `gEfiAuthenticatedVariableGuid`: the store holds authenticated-variable headers.
pub const AUTHENTICATED_VARIABLE_STORE: Guid =
    Guid::from_fields(0xaaf32c78, 0x947b, 0x439a, [0xa1, 0x80, 0x2e, 0x14, 0x4e, 0xc3, 0x77, 0x92]);
/// `EFI_GLOBAL_VARIABLE` (PK, KEK).
pub const EFI_GLOBAL_VARIABLE: Guid =
    Guid::from_fields(0x8be4df61, 0x93ca, 0x11d2, [0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c]);
/// `EFI_IMAGE_SECURITY_DATABASE_GUID` (db, dbx).
pub const IMAGE_SECURITY_DATABASE: Guid =
    Guid::from_fields(0xd719b2cb, 0x3d3a, 0x4596, [0xa3, 0xbc, 0xda, 0xd0, 0x0e, 0x67, 0x65, 0x6f]);
/// `VARIABLE_DATA` start marker.
const START_ID: u16 = 0x55aa;
/// `VAR_ADDED`: the state of a live variable.
const VAR_ADDED: u8 = 0x3f;
/// Bytes in `VARIABLE_STORE_HEADER`.
const STORE_HEADER_LEN: usize = 28;

/// One live UEFI variable of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable<'a> {
    /// Vendor GUID.
    pub vendor: Guid,
    /// Name (UTF-16LE decoded, without the NUL).
    pub name: String,
    /// Data.
    pub data: &'a [u8],
}

/// What the CFV says about Secure Boot.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecureBootKeys {
    /// A platform key (PK) is enrolled: Secure Boot is in user mode and enforced.
    pub pk_enrolled: bool,
    /// The db names a Microsoft certificate.
    pub microsoft_db: bool,
}

fn variables(store: &[u8]) -> Result<Vec<Variable<'_>>, ReadError> {
    let mut r = Reader::new(store);
    r.skip("FV header up to HeaderLength", 48)?;
    let header_len = usize::from(r.u16_le("HeaderLength")?);
    let mut r = Reader::at(store, "variable store header", header_len as u64)?;
    let sig = Guid::from_wire_bytes(r.array("variable store signature")?);
    if sig != AUTHENTICATED_VARIABLE_STORE {
        return Ok(Vec::new());
    }
    r.skip("variable store Size, Format, State, reserved", STORE_HEADER_LEN - 16)?;
    let mut out = Vec::new();
    while r.remaining() >= 60 {
        let mut h = r.clone();
        if h.u16_le("StartId")? != START_ID {
            break;
        }
        let state = h.u8("State")?;
        h.skip("Reserved, Attributes, MonotonicCount, TimeStamp, PubKeyIndex", 1 + 4 + 8 + 16 + 4)?;
        let name_len = usize::try_from(h.u32_le("NameSize")?).unwrap_or(usize::MAX);
        let data_len = usize::try_from(h.u32_le("DataSize")?).unwrap_or(usize::MAX);
        let vendor = Guid::from_wire_bytes(h.array("VendorGuid")?);
        let name = h.take("variable name", name_len)?;
        let data = h.take("variable data", data_len)?;
        if state == VAR_ADDED {
            let units: Vec<u16> =
                name.chunks_exact(2).filter_map(|c| <[u8; 2]>::try_from(c).ok()).map(u16::from_le_bytes).collect();
            let name = String::from_utf16_lossy(&units).trim_end_matches('\0').to_string();
            out.push(Variable { vendor, name, data });
        }
        let used = h.offset() - r.offset();
        let aligned = used.div_ceil(4) * 4;
        r.skip("variable", aligned.min(r.remaining()))?;
    }
    Ok(out)
}

/// Reads the CFV's variable store and reports the enrolled Secure Boot keys (nothing when there is no CFV).
pub fn secure_boot_keys(firmware: &[u8], descriptor: &Descriptor) -> Result<SecureBootKeys, ReadError> {
    let mut keys = SecureBootKeys::default();
    for cfv in descriptor.sections.iter().filter(|s| s.section_type == SectionType::Cfv) {
        for v in variables(cfv.data(firmware))? {
            keys.pk_enrolled |= v.vendor == EFI_GLOBAL_VARIABLE && v.name == "PK" && !v.data.is_empty();
            keys.microsoft_db |= v.vendor == IMAGE_SECURITY_DATABASE
                && v.name == "db"
                && v.data.windows(21).any(|w| w == b"Microsoft Corporation");
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tdx::test_fixtures::tdx_firmware;

    #[test]
    fn ms_firmware_enrolls_pk_and_microsoft_db() {
        let fw = tdx_firmware();
        let d = Descriptor::parse(&fw).unwrap();
        let keys = secure_boot_keys(&fw, &d).unwrap();
        assert_eq!(keys, SecureBootKeys { pk_enrolled: true, microsoft_db: true });
    }

    #[test]
    fn empty_store_has_no_keys() {
        let mut store = vec![0xffu8; 0x2000];
        store[48..50].copy_from_slice(&72u16.to_le_bytes());
        store[72..88].copy_from_slice(&AUTHENTICATED_VARIABLE_STORE.to_wire_bytes());
        assert_eq!(variables(&store).unwrap(), vec![]);
    }
}
