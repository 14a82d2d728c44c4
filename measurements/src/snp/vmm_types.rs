//! The VMMs whose initial vCPU register state differs: QEMU/KVM, AWS EC2 and Google Compute Engine.
//!
//! Spec: `docs/specs/snp-launch-digest.md`, "VMSA" (per-VMM table). [`VMM_TYPES`] is the one table that parsing and
//! printing derive from; the spellings are those of `sev-snp-measure --vmm-type`.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// A VMM that builds the initial VMSA.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VmmType {
    /// QEMU with KVM (the default).
    #[default]
    Qemu,
    /// Amazon EC2.
    Ec2,
    /// Google Compute Engine.
    Gce,
}

/// Every VMM type with its command-line spelling.
pub const VMM_TYPES: &[(&str, VmmType)] = &[("QEMU", VmmType::Qemu), ("ec2", VmmType::Ec2), ("gce", VmmType::Gce)];

/// A VMM name that is not in [`VMM_TYPES`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown VMM type `{name}`; expected one of: QEMU, ec2, gce")]
pub struct UnknownVmmType {
    /// The name given.
    pub name: String,
}

impl VmmType {
    /// The command-line spelling.
    pub fn name(self) -> &'static str {
        VMM_TYPES.iter().find(|(_, t)| *t == self).map_or("QEMU", |(n, _)| *n)
    }
}

impl FromStr for VmmType {
    type Err = UnknownVmmType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        VMM_TYPES.iter().find(|(n, _)| *n == s).map(|(_, t)| *t).ok_or(UnknownVmmType { name: s.to_owned() })
    }
}

impl fmt::Display for VmmType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for (name, t) in VMM_TYPES {
            assert_eq!(name.parse::<VmmType>().unwrap(), *t);
            assert_eq!(t.to_string(), *name);
        }
    }

    #[test]
    fn rejects_wrong_case() {
        assert_eq!("qemu".parse::<VmmType>(), Err(UnknownVmmType { name: "qemu".into() }));
    }
}
