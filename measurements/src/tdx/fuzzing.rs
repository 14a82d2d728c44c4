//! Entry points for the `fuzz/` targets `tdvf` and `pe`, and for the no-panic property tests: each parses untrusted
//! bytes and, when they parse, runs the computation over them. They must never panic.

use super::mrtd::{compute, PageOrder};
use super::pe::{authenticode_sha384, PeImage};
use super::qemu::patch_kernel;
use super::tdvf::Descriptor;

/// Parses `data` as a TDVF image and, if it parses, computes MRTD in both orders (bounded: fuzz inputs are small,
/// and sections must lie within the input or be memory-only).
pub fn tdvf(data: &[u8]) {
    if let Ok(d) = Descriptor::parse(data) {
        // Memory-only sections can declare huge sizes; cap the work so a fuzzer is not stalled by a valid input.
        let pages: u64 = d.sections.iter().map(|s| s.memory_data_size / super::tdvf::PAGE_SIZE).sum();
        if pages <= 4096 {
            let _ = compute(&d, data, PageOrder::SinglePass);
            let _ = compute(&d, data, PageOrder::TwoPass);
        }
    }
}

/// Parses `data` as a PE image, hashes it, and applies QEMU's header patch to it.
pub fn pe(data: &[u8]) {
    let parsed = PeImage::parse(data).is_ok();
    let hashed = authenticode_sha384(data);
    assert!(parsed || hashed.is_err(), "an image that does not parse must not hash");
    if let Ok(patched) = patch_kernel(data, 1 << 30, Some(4096), b"vga=0x317") {
        let _ = authenticode_sha384(&patched);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tdx::pe::tests::synth_pe;
    use crate::tdx::tdvf::tests::synth_tdvf;
    use proptest::prelude::*;

    fn mutate(mut base: Vec<u8>, edits: &[(usize, u8)], cut: usize) -> Vec<u8> {
        let len = base.len();
        for &(at, b) in edits {
            base[at % len] = b;
        }
        base.truncate(len - cut % len);
        base
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn mutated_tdvf_never_panics(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..16), cut in 0usize..64) {
            let base = synth_tdvf(0x2000, &[[0, 0x2000, 0x10_0000, 0x2000, 0, 1], [0, 0, 0x20_0000, 0x1000, 2, 0]]);
            // Edits concentrated on the descriptor and GUID table (the last 0x120 bytes) and anywhere.
            let tail = base.len() - 0x120;
            let near: Vec<(usize, u8)> = edits.iter().map(|&(a, b)| (tail + a % 0x120, b)).collect();
            tdvf(&mutate(base.clone(), &near, 0));
            tdvf(&mutate(base, &edits, cut));
        }

        #[test]
        fn mutated_firmware_volumes_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..16), cut in 0usize..0x1000) {
            // The CFV and the start of the BFV: FV headers, FFS file headers and the LZMA section header.
            let base = crate::tdx::test_fixtures::tdx_firmware()[..0x85000].to_vec();
            let near: Vec<(usize, u8)> = edits.iter().map(|&(a, b)| (0x84000 + a % 0x100, b)).collect();
            let _ = crate::tdx::fv::lzma_sections(&mutate(base.clone(), &near, 0));
            let _ = crate::tdx::fv::lzma_sections(&mutate(base, &edits, cut));
        }

        #[test]
        fn mutated_pe_never_panics(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..16), cut in 0usize..0x580) {
            let base = synth_pe();
            let near: Vec<(usize, u8)> = edits.iter().map(|&(a, b)| (a % 0x260, b)).collect();
            pe(&mutate(base.clone(), &near, 0));
            pe(&mutate(base, &edits, cut));
        }
    }
}
