//! MRTD: the SHA-384 over the TDX module's `TDH.MEM.PAGE.ADD` and `TDH.MR.EXTEND` records for the TDVF sections.
//!
//! Spec: `docs/specs/tdx-measurement.md`, "MRTD"; Intel TDX Module ABI spec (TDH.MEM.PAGE.ADD, TDH.MR.EXTEND).

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha384 as Sha384Hasher};

use super::tdvf::{Descriptor, Section, PAGE_SIZE};
use super::Sha384;
use crate::reader::write_at;

/// Bytes in each record header fed to the MRTD hash.
pub const RECORD_LEN: usize = 128;
/// Bytes of data covered by one `TDH.MR.EXTEND`.
pub const EXTEND_CHUNK: usize = 256;
/// Offset of the GPA inside a record.
const RECORD_GPA_AT: usize = 16;

/// In which order the VMM adds and extends pages; the two orders give different MRTDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PageOrder {
    /// For each page: ADD, then its EXTENDs (upstream KVM `tdx_gmem_post_populate`, Linux ≥ 6.16, QEMU ≥ 9).
    #[default]
    SinglePass,
    /// For each section: all ADDs, then all EXTENDs (Intel's older KVM/QEMU-TDX trees, Canonical's QEMU 8.2).
    TwoPass,
}

/// The page orders; `FromStr` and `Display` derive from this table.
const PAGE_ORDERS: [(PageOrder, &str); 2] = [(PageOrder::SinglePass, "single-pass"), (PageOrder::TwoPass, "two-pass")];

impl fmt::Display for PageOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PAGE_ORDERS.iter().find(|(o, _)| o == self).map_or("?", |(_, n)| n))
    }
}

impl FromStr for PageOrder {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        PAGE_ORDERS
            .iter()
            .find(|(_, n)| *n == s)
            .map(|(o, _)| *o)
            .ok_or_else(|| format!("unknown page order `{s}` (expected `single-pass` or `two-pass`)"))
    }
}

/// A running MRTD computation.
struct Mrtd(Sha384Hasher);

impl Mrtd {
    fn record(&mut self, op: &[u8], gpa: u64) {
        let mut rec = [0u8; RECORD_LEN];
        write_at(&mut rec, 0, op);
        write_at(&mut rec, RECORD_GPA_AT, &gpa.to_le_bytes());
        self.0.update(rec);
    }

    fn page_add(&mut self, gpa: u64) {
        self.record(b"MEM.PAGE.ADD", gpa);
    }

    /// Extends one page in 256-byte chunks; bytes past the section's file data are zero.
    fn extend_page(&mut self, gpa: u64, page: &[u8]) {
        let mut buf = [0u8; PAGE_SIZE as usize];
        write_at(&mut buf, 0, page);
        for (i, chunk) in buf.chunks(EXTEND_CHUNK).enumerate() {
            self.record(b"MR.EXTEND", gpa + (i * EXTEND_CHUNK) as u64);
            self.0.update(chunk);
        }
    }
}

/// The file bytes of page `index` of `section` (may be short or empty past the raw data).
fn page_data(data: &[u8], index: u64) -> &[u8] {
    let start = usize::try_from(index * PAGE_SIZE).unwrap_or(usize::MAX).min(data.len());
    let end = start.saturating_add(PAGE_SIZE as usize).min(data.len());
    data.get(start..end).unwrap_or_default()
}

fn measure_section(m: &mut Mrtd, section: &Section, firmware: &[u8], order: PageOrder) {
    if section.attributes.page_aug() {
        return;
    }
    let data = section.data(firmware);
    let pages = section.memory_data_size / PAGE_SIZE;
    let gpa = |i: u64| section.memory_address + i * PAGE_SIZE;
    let extend = section.attributes.mr_extend();
    match order {
        PageOrder::SinglePass => {
            for i in 0..pages {
                m.page_add(gpa(i));
                if extend {
                    m.extend_page(gpa(i), page_data(data, i));
                }
            }
        }
        PageOrder::TwoPass => {
            (0..pages).for_each(|i| m.page_add(gpa(i)));
            if extend {
                (0..pages).for_each(|i| m.extend_page(gpa(i), page_data(data, i)));
            }
        }
    }
}

/// Computes MRTD for a parsed descriptor and the firmware file it came from.
pub fn compute(descriptor: &Descriptor, firmware: &[u8], order: PageOrder) -> Sha384 {
    let mut m = Mrtd(Sha384Hasher::new());
    for section in &descriptor.sections {
        measure_section(&mut m, section, firmware, order);
    }
    Sha384(m.0.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tdx::tdvf::tests::synth_tdvf;
    use crate::tdx::test_fixtures::tdx_firmware;

    const SINGLE: &str =
        "a7a1f751abc454f9cbab198ca8d2edb2821935df525c74182b5e776cb0929e8c59aefecce725b0d08a5e9d3d3183bd08";
    const TWO: &str =
        "b90b236113eb4c0d4df4ef590568c14e6028a3a31d7e8ac63dee9845df5008d3ebf82d4f5974e933798f65d7a279b9a9";

    #[test]
    fn matches_reference_mrtd_for_both_orders() {
        let fw = tdx_firmware();
        let d = Descriptor::parse(&fw).unwrap();
        assert_eq!(d.sections.len(), 6);
        assert_eq!(compute(&d, &fw, PageOrder::SinglePass).to_string(), SINGLE);
        assert_eq!(compute(&d, &fw, PageOrder::TwoPass).to_string(), TWO);
    }

    #[test]
    fn page_order_table_round_trips() {
        for (o, n) in PAGE_ORDERS {
            assert_eq!(o.to_string(), n);
            assert_eq!(n.parse::<PageOrder>(), Ok(o));
        }
        assert!("both".parse::<PageOrder>().is_err());
    }

    #[test]
    fn single_page_stream_is_add_then_sixteen_extends() {
        // Independent construction of the byte stream for one extended page at GPA 0x1000.
        let fw = synth_tdvf(0x1000, &[[0, 0x1000, 0x1000, 0x1000, 0, 1]]);
        let d = Descriptor::parse(&fw).unwrap();
        let mut stream = Vec::new();
        let mut rec = [0u8; 128];
        rec[..12].copy_from_slice(b"MEM.PAGE.ADD");
        rec[16..24].copy_from_slice(&0x1000u64.to_le_bytes());
        stream.extend_from_slice(&rec);
        for i in 0..16u64 {
            let mut rec = [0u8; 128];
            rec[..9].copy_from_slice(b"MR.EXTEND");
            rec[16..24].copy_from_slice(&(0x1000 + i * 256).to_le_bytes());
            stream.extend_from_slice(&rec);
            stream.extend_from_slice(&fw[(i * 256) as usize..(i * 256 + 256) as usize]);
        }
        let expect = hex::encode(Sha384Hasher::digest(&stream));
        assert_eq!(compute(&d, &fw, PageOrder::SinglePass).to_string(), expect);
        assert_eq!(compute(&d, &fw, PageOrder::TwoPass).to_string(), expect);
    }
}
