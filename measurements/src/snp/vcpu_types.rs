//! Named vCPU models and their CPUID signatures, which QEMU puts in `rdx` of every VMSA.
//!
//! Spec: `docs/specs/snp-launch-digest.md`, "VMSA" (vCPU signatures); AMD CPUID Specification #25481,
//! "CPUID Fn0000_0001_EAX Family, Model, Stepping Identifiers". The names are QEMU's `builtin_x86_defs`.
//!
//! [`VCPU_TYPES`] is the one table: parsing, printing and listing all derive from it.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// A family/model/stepping triple as QEMU's CPU model defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fms {
    /// Display family (e.g. 25 for Zen 3).
    pub family: u32,
    /// Display model.
    pub model: u32,
    /// Stepping.
    pub stepping: u32,
}

/// Every named vCPU type, in the order `sev-snp-measure` 0.0.13 lists them.
pub const VCPU_TYPES: &[(&str, Fms)] = &[
    ("EPYC", Fms { family: 23, model: 1, stepping: 2 }),
    ("EPYC-v1", Fms { family: 23, model: 1, stepping: 2 }),
    ("EPYC-v2", Fms { family: 23, model: 1, stepping: 2 }),
    ("EPYC-IBPB", Fms { family: 23, model: 1, stepping: 2 }),
    ("EPYC-v3", Fms { family: 23, model: 1, stepping: 2 }),
    ("EPYC-v4", Fms { family: 23, model: 1, stepping: 2 }),
    ("EPYC-Rome", Fms { family: 23, model: 49, stepping: 0 }),
    ("EPYC-Rome-v1", Fms { family: 23, model: 49, stepping: 0 }),
    ("EPYC-Rome-v2", Fms { family: 23, model: 49, stepping: 0 }),
    ("EPYC-Rome-v3", Fms { family: 23, model: 49, stepping: 0 }),
    ("EPYC-Milan", Fms { family: 25, model: 1, stepping: 1 }),
    ("EPYC-Milan-v1", Fms { family: 25, model: 1, stepping: 1 }),
    ("EPYC-Milan-v2", Fms { family: 25, model: 1, stepping: 1 }),
    ("EPYC-Genoa", Fms { family: 25, model: 17, stepping: 0 }),
    ("EPYC-Genoa-v1", Fms { family: 25, model: 17, stepping: 0 }),
    ("EPYC-Turin", Fms { family: 26, model: 0, stepping: 0 }),
];

/// A named vCPU type: an index into [`VCPU_TYPES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VcpuType(usize);

/// A vCPU type name that is not in [`VCPU_TYPES`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown vCPU type `{name}`; expected one of: {}", VcpuType::names().collect::<Vec<_>>().join(", "))]
pub struct UnknownVcpuType {
    /// The name given.
    pub name: String,
}

impl VcpuType {
    /// Every named type, in table order.
    pub fn all() -> impl Iterator<Item = VcpuType> {
        (0..VCPU_TYPES.len()).map(VcpuType)
    }

    /// Every name, in table order.
    pub fn names() -> impl Iterator<Item = &'static str> {
        VCPU_TYPES.iter().map(|(name, _)| *name)
    }

    /// The QEMU model name.
    pub fn name(self) -> &'static str {
        VCPU_TYPES[self.0].0
    }

    /// The family/model/stepping of this model.
    pub fn fms(self) -> Fms {
        VCPU_TYPES[self.0].1
    }

    /// The CPUID Fn0000_0001_EAX signature.
    pub fn signature(self) -> u64 {
        let f = self.fms();
        cpu_sig(f.family.into(), f.model.into(), f.stepping.into())
    }
}

impl FromStr for VcpuType {
    type Err = UnknownVcpuType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        VCPU_TYPES.iter().position(|(name, _)| *name == s).map(VcpuType).ok_or(UnknownVcpuType { name: s.to_owned() })
    }
}

impl fmt::Display for VcpuType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Encodes family, model and stepping as CPUID Fn0000_0001_EAX (AMD #25481).
///
/// Families above 0xf put 0xf in the base family and the excess in the extended family. Arguments are wide signed
/// integers, and the result wraps to 64 bits, because the reference accepts any Python integer and stores the
/// result in a 64-bit register field.
pub fn cpu_sig(family: i128, model: i128, stepping: i128) -> u64 {
    let (family_low, family_high) = if family > 0xf { (0xf, (family - 0xf) & 0xff) } else { (family, 0) };
    let model_low = model & 0xf;
    let model_high = (model >> 4) & 0xf;
    let stepping_low = stepping & 0xf;
    let sig = (family_high << 20) | (model_high << 16) | family_low.wrapping_shl(8) | (model_low << 4) | stepping_low;
    wrap_u64(sig)
}

/// The low 64 bits of `value` in two's complement, as ctypes stores a Python integer into a `c_uint64` field.
pub fn wrap_u64(value: i128) -> u64 {
    let b = value.to_le_bytes();
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_from_str_and_display() {
        for t in VcpuType::all() {
            assert_eq!(t.to_string().parse::<VcpuType>().unwrap(), t);
        }
        assert_eq!(VcpuType::all().count(), VCPU_TYPES.len());
    }

    #[test]
    fn signatures_match_the_spec_table() {
        // docs/specs/snp-launch-digest.md, "vCPU signatures".
        let sig = |n: &str| n.parse::<VcpuType>().unwrap().signature();
        assert_eq!(sig("EPYC-v4"), 0x800f12);
        assert_eq!(sig("EPYC-IBPB"), 0x800f12);
        assert_eq!(sig("EPYC-Rome-v3"), 0x830f10);
        assert_eq!(sig("EPYC-Milan-v2"), 0xa00f11);
        assert_eq!(sig("EPYC-Genoa"), 0xa10f10);
        assert_eq!(sig("EPYC-Turin"), 0xb00f00);
    }

    #[test]
    fn encodes_small_families_without_extension() {
        assert_eq!(cpu_sig(6, 0x55, 7), 0x50657);
        assert_eq!(cpu_sig(-1, 0, 0), 0xffff_ffff_ffff_ff00);
    }

    #[test]
    fn rejects_unknown_name_listing_the_valid_ones() {
        let err = "EPYC-Zen9".parse::<VcpuType>().unwrap_err();
        assert!(err.to_string().starts_with("unknown vCPU type `EPYC-Zen9`; expected one of: EPYC, EPYC-v1,"));
    }
}
