//! The SEV-SNP guest policy: the 64-bit value that the guest owner binds into the ID block and that every attestation
//! report repeats at offset 0x08.
//!
//! Spec: AMD SEV Secure Nested Paging Firmware ABI Specification (publication 56860), section "Guest Policy" (bits
//! 21..=25 were added in later revisions; PAGE_SWAP_DISABLE needs firmware ABI 1.58); summarised in
//! `docs/specs/snp-launch-digest.md` ("ID block") and `docs/specs/attestation-layouts.md`. Bit numbers cross-checked
//! against Linux `include/linux/psp-sev.h` (`SNP_POLICY_MASK_*`) and the virtee `sev` crate's `GuestPolicy`.
//!
//! | bits   | field               | meaning when set                                                      |
//! |--------|---------------------|-----------------------------------------------------------------------|
//! | 7:0    | ABI_MINOR           | minimum firmware ABI minor version                                    |
//! | 15:8   | ABI_MAJOR           | minimum firmware ABI major version                                    |
//! | 16     | SMT                 | SMT may be enabled on the host                                        |
//! | 17     | reserved, must be 1 | firmware rejects the launch when clear                                |
//! | 18     | MIGRATE_MA          | a migration agent may be associated with the guest                   |
//! | 19     | DEBUG               | the host may debug (read and write) guest memory                      |
//! | 20     | SINGLE_SOCKET       | the guest may only be activated on one socket                        |
//! | 21     | CXL_ALLOW           | CXL may be populated with devices or memory                           |
//! | 22     | MEM_AES_256_XTS     | AES-256-XTS memory encryption is required                             |
//! | 23     | RAPL_DIS            | Running Average Power Limit must be disabled                          |
//! | 24     | CIPHERTEXT_HIDING   | ciphertext hiding for DRAM must be enabled                            |
//! | 25     | PAGE_SWAP_DISABLE   | the SNP page move / swap commands are disabled for this guest         |
//! | 63:26  | reserved            | must be zero                                                          |

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// Bit 17 of the policy is reserved and must be one (ABI spec, Guest Policy).
pub const RESERVED_MUST_BE_ONE: u64 = 1 << 17;

/// Bits 63:26 of the policy are reserved and must be zero (ABI spec, Guest Policy).
pub const RESERVED_MUST_BE_ZERO: u64 = !((1 << 26) - 1);

/// One named field of the guest policy, as a bit range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyField {
    /// Name as in the ABI spec (upper case).
    pub name: &'static str,
    /// Lowest bit of the field.
    pub lsb: u32,
    /// Width of the field in bits.
    pub width: u32,
    /// What the field means when set (or, for the ABI version fields, what the value is).
    pub meaning: &'static str,
}

impl PolicyField {
    /// The mask of this field's bits within the policy.
    pub const fn mask(&self) -> u64 {
        ((1u64 << self.width) - 1) << self.lsb
    }

    /// This field's value within `policy`.
    pub const fn get(&self, policy: u64) -> u64 {
        (policy & self.mask()) >> self.lsb
    }
}

/// Every defined field of the guest policy, in bit order (ABI spec, Guest Policy). Accessors, validation and the
/// [`fmt::Display`] table all derive from this one array.
pub const POLICY_FIELDS: [PolicyField; 12] = [
    PolicyField { name: "ABI_MINOR", lsb: 0, width: 8, meaning: "minimum firmware ABI minor version" },
    PolicyField { name: "ABI_MAJOR", lsb: 8, width: 8, meaning: "minimum firmware ABI major version" },
    PolicyField { name: "SMT", lsb: 16, width: 1, meaning: "SMT allowed on the host" },
    PolicyField { name: "RESERVED_MBO", lsb: 17, width: 1, meaning: "reserved, must be one" },
    PolicyField { name: "MIGRATE_MA", lsb: 18, width: 1, meaning: "migration agent allowed" },
    PolicyField { name: "DEBUG", lsb: 19, width: 1, meaning: "debugging allowed (host can read guest memory)" },
    PolicyField { name: "SINGLE_SOCKET", lsb: 20, width: 1, meaning: "guest restricted to a single socket" },
    PolicyField { name: "CXL_ALLOW", lsb: 21, width: 1, meaning: "CXL devices or memory allowed" },
    PolicyField { name: "MEM_AES_256_XTS", lsb: 22, width: 1, meaning: "AES-256-XTS memory encryption required" },
    PolicyField { name: "RAPL_DIS", lsb: 23, width: 1, meaning: "RAPL must be disabled" },
    PolicyField { name: "CIPHERTEXT_HIDING", lsb: 24, width: 1, meaning: "DRAM ciphertext hiding required" },
    PolicyField { name: "PAGE_SWAP_DISABLE", lsb: 25, width: 1, meaning: "page move/swap commands disabled" },
];

// Indices into POLICY_FIELDS, so that accessors cannot drift from the table.
const SMT: usize = 2;
const MIGRATE_MA: usize = 4;
const DEBUG: usize = 5;
const SINGLE_SOCKET: usize = 6;
const CXL_ALLOW: usize = 7;
const MEM_AES_256_XTS: usize = 8;
const RAPL_DIS: usize = 9;
const CIPHERTEXT_HIDING: usize = 10;
const PAGE_SWAP_DISABLE: usize = 11;

/// An invalid guest policy value or string.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The string is not a decimal or `0x`-prefixed hexadecimal `u64`.
    #[error("invalid guest policy `{input}`: expected a decimal or 0x-prefixed hexadecimal 64-bit number")]
    Syntax {
        /// The string as given.
        input: String,
    },
    /// Bit 17 is clear; the firmware rejects such a policy (ABI spec, Guest Policy: reserved, must be one).
    #[error(
        "guest policy {policy:#x} has bit 17 clear; the ABI reserves it and requires it to be one (try {fixed:#x})"
    )]
    ReservedBitClear {
        /// The policy value.
        policy: u64,
        /// The same policy with bit 17 set.
        fixed: u64,
    },
    /// Bits 63:26 are reserved and must be zero.
    #[error("guest policy {policy:#x} sets reserved bits {bits:#x} (bits 63:26 must be zero)")]
    ReservedBitsSet {
        /// The policy value.
        policy: u64,
        /// The reserved bits that are set.
        bits: u64,
    },
}

/// A policy setting that is valid but weakens the guest's confidentiality; shown to the user, never silently ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum PolicyWarning {
    /// DEBUG (bit 19) is set.
    DebugAllowed,
    /// MIGRATE_MA (bit 18) is set.
    MigrationAgentAllowed,
}

impl PolicyWarning {
    /// True for warnings that must be shown prominently: a measurement with this policy is not a release.
    pub fn is_loud(self) -> bool {
        matches!(self, PolicyWarning::DebugAllowed)
    }
}

impl fmt::Display for PolicyWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PolicyWarning::DebugAllowed => {
                "debug allowed: the host can read and modify guest memory; never publish this as a release measurement"
            }
            PolicyWarning::MigrationAgentAllowed => {
                "migration agent allowed: a migration agent chosen at launch can export the guest's memory"
            }
        })
    }
}

/// The 64-bit SEV-SNP guest policy (ABI spec, Guest Policy). Any `u64` can be held (so that a policy read from
/// a report survives unchanged); [`GuestPolicy::validate`] says whether the firmware would accept it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GuestPolicy(pub u64);

impl Default for GuestPolicy {
    /// `0x30000`: SMT allowed, bit 17 set, nothing else; the policy that `sev-snp-measure`'s
    /// `snp-create-id-block` hard-codes and QEMU's `sev-snp-guest` default.
    fn default() -> Self {
        GuestPolicy(0x30000)
    }
}

impl GuestPolicy {
    /// The raw value.
    pub fn bits(self) -> u64 {
        self.0
    }

    fn field(self, index: usize) -> u64 {
        POLICY_FIELDS.get(index).map_or(0, |f| f.get(self.0))
    }

    fn flag(self, index: usize) -> bool {
        self.field(index) != 0
    }

    /// Minimum firmware ABI minor version (bits 7:0).
    pub fn abi_minor(self) -> u8 {
        self.0.to_le_bytes()[0]
    }

    /// Minimum firmware ABI major version (bits 15:8).
    pub fn abi_major(self) -> u8 {
        self.0.to_le_bytes()[1]
    }

    /// SMT may be enabled on the host (bit 16).
    pub fn smt_allowed(self) -> bool {
        self.flag(SMT)
    }

    /// A migration agent may be associated with the guest (bit 18).
    pub fn migrate_ma_allowed(self) -> bool {
        self.flag(MIGRATE_MA)
    }

    /// The host may debug the guest, i.e. decrypt and modify its memory (bit 19).
    pub fn debug_allowed(self) -> bool {
        self.flag(DEBUG)
    }

    /// The guest may only run on a single socket (bit 20).
    pub fn single_socket(self) -> bool {
        self.flag(SINGLE_SOCKET)
    }

    /// CXL may be populated with devices or memory (bit 21).
    pub fn cxl_allowed(self) -> bool {
        self.flag(CXL_ALLOW)
    }

    /// AES-256-XTS memory encryption is required (bit 22).
    pub fn mem_aes_256_xts(self) -> bool {
        self.flag(MEM_AES_256_XTS)
    }

    /// Running Average Power Limit must be disabled (bit 23).
    pub fn rapl_disabled(self) -> bool {
        self.flag(RAPL_DIS)
    }

    /// Ciphertext hiding for DRAM must be enabled (bit 24).
    pub fn ciphertext_hiding(self) -> bool {
        self.flag(CIPHERTEXT_HIDING)
    }

    /// The SNP page move and swap commands are disabled for this guest (bit 25).
    pub fn page_swap_disabled(self) -> bool {
        self.flag(PAGE_SWAP_DISABLE)
    }

    /// Every field of [`POLICY_FIELDS`] with its value, in bit order.
    pub fn fields(self) -> impl Iterator<Item = (&'static PolicyField, u64)> {
        POLICY_FIELDS.iter().map(move |f| (f, f.get(self.0)))
    }

    /// Checks the reserved bits as the firmware does at SNP_LAUNCH_START: bit 17 must be one, bits 63:26 zero.
    pub fn validate(self) -> Result<(), PolicyError> {
        if self.0 & RESERVED_MUST_BE_ONE == 0 {
            return Err(PolicyError::ReservedBitClear { policy: self.0, fixed: self.0 | RESERVED_MUST_BE_ONE });
        }
        let bits = self.0 & RESERVED_MUST_BE_ZERO;
        if bits != 0 {
            return Err(PolicyError::ReservedBitsSet { policy: self.0, bits });
        }
        Ok(())
    }

    /// The settings that weaken the guest's confidentiality, most severe first.
    pub fn warnings(self) -> Vec<PolicyWarning> {
        let mut warnings = Vec::new();
        if self.debug_allowed() {
            warnings.push(PolicyWarning::DebugAllowed);
        }
        if self.migrate_ma_allowed() {
            warnings.push(PolicyWarning::MigrationAgentAllowed);
        }
        warnings
    }
}

impl FromStr for GuestPolicy {
    type Err = PolicyError;

    /// Parses `0x30000` (hexadecimal, `0x` or `0X` prefix) or `196608` (decimal); `_` separators are allowed.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || PolicyError::Syntax { input: s.to_owned() };
        let cleaned: String = s.trim().chars().filter(|&c| c != '_').collect();
        let value = match cleaned.strip_prefix("0x").or_else(|| cleaned.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => cleaned.parse::<u64>(),
        };
        value.map(GuestPolicy).map_err(|_| syntax())
    }
}

impl fmt::Display for GuestPolicy {
    /// A table of every field, one per line, preceded by the raw value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "policy {:#x}", self.0)?;
        for (field, value) in self.fields() {
            let bits = match field.width {
                1 => format!("{}", field.lsb),
                w => format!("{}:{}", field.lsb + w - 1, field.lsb),
            };
            writeln!(f, "  {bits:>5}  {:<18} {value:>3}  {}", field.name, field.meaning)?;
        }
        let reserved = self.0 & RESERVED_MUST_BE_ZERO;
        write!(f, "  63:26  {:<18} {reserved:#x}  reserved, must be zero", "RESERVED")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_reference_policy() {
        // sev-snp-measure id_block.py: DefaultPolicy = 196608 = 0x30000.
        let p = GuestPolicy::default();
        assert_eq!(p.bits(), 196608);
        assert!(p.smt_allowed());
        assert!(!p.debug_allowed());
        assert!(p.validate().is_ok());
        assert!(p.warnings().is_empty());
    }

    #[test]
    fn decodes_every_field() {
        // ABI 1.55, every flag set.
        let p = GuestPolicy(0x03ff_0137);
        assert_eq!((p.abi_major(), p.abi_minor()), (1, 0x37));
        assert!(p.smt_allowed() && p.migrate_ma_allowed() && p.debug_allowed() && p.single_socket());
        assert!(p.cxl_allowed() && p.mem_aes_256_xts() && p.rapl_disabled());
        assert!(p.ciphertext_hiding() && p.page_swap_disabled());
        assert!(p.validate().is_ok());
        let none = GuestPolicy(RESERVED_MUST_BE_ONE);
        assert!(!none.smt_allowed() && !none.migrate_ma_allowed() && !none.debug_allowed());
        assert!(!none.single_socket() && !none.cxl_allowed() && !none.mem_aes_256_xts());
        assert!(!none.rapl_disabled() && !none.ciphertext_hiding() && !none.page_swap_disabled());
    }

    #[test]
    fn field_table_tiles_bits_0_to_25_without_overlap() {
        let mut seen = 0u64;
        for f in &POLICY_FIELDS {
            assert_eq!(seen & f.mask(), 0, "{} overlaps", f.name);
            seen |= f.mask();
        }
        assert_eq!(seen, !RESERVED_MUST_BE_ZERO);
    }

    #[test]
    fn each_flag_accessor_reads_its_own_bit() {
        type Accessor = fn(GuestPolicy) -> bool;
        let accessors: [(u32, Accessor); 9] = [
            (16, GuestPolicy::smt_allowed),
            (18, GuestPolicy::migrate_ma_allowed),
            (19, GuestPolicy::debug_allowed),
            (20, GuestPolicy::single_socket),
            (21, GuestPolicy::cxl_allowed),
            (22, GuestPolicy::mem_aes_256_xts),
            (23, GuestPolicy::rapl_disabled),
            (24, GuestPolicy::ciphertext_hiding),
            (25, GuestPolicy::page_swap_disabled),
        ];
        for (bit, get) in accessors {
            for other in 0..64 {
                assert_eq!(get(GuestPolicy(1 << other)), other == bit, "bit {other} vs accessor for {bit}");
            }
        }
    }

    #[test]
    fn parses_hex_and_decimal() {
        assert_eq!("0x30000".parse::<GuestPolicy>().unwrap().bits(), 0x30000);
        assert_eq!("0X3_0000".parse::<GuestPolicy>().unwrap().bits(), 0x30000);
        assert_eq!("196608".parse::<GuestPolicy>().unwrap().bits(), 0x30000);
        assert_eq!(" 0xb0000 ".parse::<GuestPolicy>().unwrap().bits(), 0xb0000);
    }

    #[test]
    fn rejects_malformed_policy_strings() {
        for bad in ["", "0x", "0x1g", "-1", "0x1_0000_0000_0000_0000", "thirty"] {
            let err = bad.parse::<GuestPolicy>().unwrap_err();
            assert_eq!(err, PolicyError::Syntax { input: bad.to_owned() });
            assert!(err.to_string().contains(&format!("`{bad}`")), "{err}");
        }
    }

    #[test]
    fn rejects_policy_with_bit_17_clear() {
        let err = GuestPolicy(0x10000).validate().unwrap_err();
        assert_eq!(err, PolicyError::ReservedBitClear { policy: 0x10000, fixed: 0x30000 });
        assert!(err.to_string().contains("bit 17"), "{err}");
    }

    #[test]
    fn rejects_policy_with_reserved_bits_set() {
        let err = GuestPolicy(0x30000 | 1 << 26 | 1 << 63).validate().unwrap_err();
        assert_eq!(err, PolicyError::ReservedBitsSet { policy: 0x8000_0000_0403_0000, bits: 0x8000_0000_0400_0000 });
    }

    #[test]
    fn debug_is_a_loud_warning_and_migration_a_quiet_one() {
        let w = GuestPolicy(0x30000 | 1 << 19 | 1 << 18).warnings();
        assert_eq!(w, vec![PolicyWarning::DebugAllowed, PolicyWarning::MigrationAgentAllowed]);
        assert!(w[0].is_loud() && !w[1].is_loud());
        assert!(w[0].to_string().starts_with("debug allowed: the host can read and modify guest memory"));
        assert!(w[0].to_string().contains("never publish this as a release measurement"));
    }

    #[test]
    fn display_lists_every_field() {
        let text = GuestPolicy(0x0008_0000 | 0x30000).to_string();
        assert!(text.starts_with("policy 0xb0000\n"), "{text}");
        for f in &POLICY_FIELDS {
            assert!(text.contains(f.name), "{} missing from\n{text}", f.name);
        }
        assert!(text.lines().any(|l| l.contains("DEBUG") && l.contains("  1  ")), "{text}");
    }

    proptest::proptest! {
        #[test]
        fn parse_round_trips_and_validate_matches_the_masks(v in proptest::prelude::any::<u64>()) {
            proptest::prop_assert_eq!(format!("{v:#x}").parse::<GuestPolicy>().unwrap(), GuestPolicy(v));
            proptest::prop_assert_eq!(v.to_string().parse::<GuestPolicy>().unwrap(), GuestPolicy(v));
            let valid = v & RESERVED_MUST_BE_ONE != 0 && v & RESERVED_MUST_BE_ZERO == 0;
            proptest::prop_assert_eq!(GuestPolicy(v).validate().is_ok(), valid);
            // The field table reassembles every defined bit.
            let rebuilt = GuestPolicy(v).fields().fold(0u64, |acc, (f, x)| acc | x << f.lsb);
            proptest::prop_assert_eq!(rebuilt, v & !RESERVED_MUST_BE_ZERO);
        }
    }
}
