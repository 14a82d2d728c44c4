//! The EFI LoadOptions that TDVF/OVMF builds from QEMU's `-append` command line, measured by the Linux EFI stub
//! (≥ 6.9 into RTMR2; into TPM PCR9 since the stub's LoadOptions event) as the first RTMR2 event.
//!
//! Spec: `docs/specs/tdx-measurement.md`, "RTMR2". OVMF formats the options with `UnicodeSPrintAsciiFormat` and
//! `%a`, which widens each byte to `XX 00` without decoding UTF-8, then NUL-terminates them (two zero bytes).

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::fmt;
use std::str::FromStr;

/// The hidden token OVMF adds when QEMU was given an initrd (the EFI stub ignores it when LoadFile2 serves the initrd).
pub const INITRD_TOKEN: &str = "initrd=initrd";

/// Where OVMF puts the `initrd=initrd` token, which depends on the edk2 version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmdlineLayout {
    /// edk2 ≥ stable202508 ("Prefix initrd=initrd in cmdline"): `initrd=initrd <cmdline>`.
    Prefix,
    /// edk2 ≤ stable202505: `<cmdline> initrd=initrd`.
    Suffix,
}

/// The layouts; `FromStr` and `Display` derive from this table.
const LAYOUTS: [(CmdlineLayout, &str); 2] = [(CmdlineLayout::Prefix, "prefix"), (CmdlineLayout::Suffix, "suffix")];

impl fmt::Display for CmdlineLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(LAYOUTS.iter().find(|(l, _)| l == self).map_or("?", |(_, n)| n))
    }
}

impl FromStr for CmdlineLayout {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        LAYOUTS
            .iter()
            .find(|(_, n)| *n == s)
            .map(|(l, _)| *l)
            .ok_or_else(|| format!("unknown command-line layout `{s}` (expected `prefix` or `suffix`)"))
    }
}

/// The ASCII command line OVMF formats, before widening: the token is added only when an initrd was given.
pub fn ascii_options(cmdline: &[u8], has_initrd: bool, layout: CmdlineLayout) -> Vec<u8> {
    let mut out = Vec::with_capacity(cmdline.len() + INITRD_TOKEN.len() + 1);
    match (has_initrd, layout) {
        (false, _) => out.extend_from_slice(cmdline),
        (true, CmdlineLayout::Prefix) => {
            out.extend_from_slice(INITRD_TOKEN.as_bytes());
            out.push(b' ');
            out.extend_from_slice(cmdline);
        }
        (true, CmdlineLayout::Suffix) => {
            out.extend_from_slice(cmdline);
            out.push(b' ');
            out.extend_from_slice(INITRD_TOKEN.as_bytes());
        }
    }
    out
}

/// Widens every byte to `XX 00` (not UTF-16: UTF-8 sequences stay byte-wise) and appends the `00 00` terminator.
pub fn widen(ascii: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ascii.len() * 2 + 2);
    for &b in ascii {
        out.extend_from_slice(&[b, 0]);
    }
    out.extend_from_slice(&[0, 0]);
    out
}

/// The LoadOptions bytes the EFI stub measures for `cmdline` (the exact bytes given to QEMU's `-append`).
pub fn load_options(cmdline: &[u8], has_initrd: bool, layout: CmdlineLayout) -> Vec<u8> {
    widen(&ascii_options(cmdline, has_initrd, layout))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tdx::Sha384;

    fn digest(cmdline: &str, initrd: bool, layout: CmdlineLayout) -> String {
        Sha384::of(&load_options(cmdline.as_bytes(), initrd, layout)).to_string()
    }

    #[test]
    fn matches_measured_prefix_values_from_2026_08() {
        // Known values measured on Debian 2026.08 generic OVMF (docs/specs/tdx-measurement.md, "RTMR2", which gives
        // their first and last digits); compared in full, as computed independently with Python hashlib over the
        // UTF-16LE, NUL-terminated load options.
        let with = digest("console=ttyS0", true, CmdlineLayout::Prefix);
        assert_eq!(
            with,
            "f9f8fb4b0e1dce36006d4f4a67381bc02cb5fb2fe7143f3091569254993fb8edfa15f5b55ebdbf24cb189af4c6dbb8ff"
        );
        assert_eq!(load_options(b"console=ttyS0", true, CmdlineLayout::Prefix).len(), 56);
        let without = digest("console=ttyS0", false, CmdlineLayout::Prefix);
        assert_eq!(
            without,
            "0c55ff8ce3ea9389db345e81fd8f0ef3cd0737c952cfc38197b2c6ac6af0fba4b56f7e027577357654dd00e43a82be63"
        );
        assert_eq!(load_options(b"console=ttyS0", false, CmdlineLayout::Prefix).len(), 28);
    }

    #[test]
    fn matches_measured_suffix_value_from_2025_02() {
        let v = digest("console=ttyS0", true, CmdlineLayout::Suffix);
        assert_eq!(
            v,
            "1d26f8aff8992fdfc37e88b4fdf4a1a0ebb815a2ce925ea3046b3ba1f24a933e75a163af2af579268c20ca5f476f5386"
        );
    }

    #[test]
    fn widens_bytes_not_characters() {
        assert_eq!(widen("π".as_bytes()), vec![0xcf, 0, 0x80, 0, 0, 0]);
        assert_eq!(ascii_options(b"", true, CmdlineLayout::Prefix), b"initrd=initrd ");
    }

    #[test]
    fn layout_table_round_trips() {
        for (l, n) in LAYOUTS {
            assert_eq!(l.to_string(), n);
            assert_eq!(n.parse::<CmdlineLayout>(), Ok(l));
        }
        assert!("middle".parse::<CmdlineLayout>().is_err());
    }
}
