//! The initial vCPU save area (VMSA) page that SEV-ES and SEV-SNP measure, one per vCPU.
//!
//! Spec: `docs/specs/snp-launch-digest.md`, "VMSA"; AMD APM Vol. 2, Table B-4 (VMSA layout) and Table B-2 (segment
//! layout). Field names follow Linux `struct sev_es_save_area`; reserved ranges are named by their offset.
//! Only the fields that a VMM sets at reset are modelled; every other byte of the page is zero.

use crate::snp::gctx::PAGE_SIZE;
use crate::snp::vmm_types::VmmType;

/// EIP at which the bootstrap processor starts (the reset vector just below 4 GiB).
pub const BSP_EIP: u32 = 0xffff_fff0;
/// Default PAT MSR value (AMD APM Vol. 2, Section A.3).
const DEFAULT_G_PAT: u64 = 0x0007_0406_0007_0406;
/// The PAT value that the GCE hypervisor writes instead.
const GCE_G_PAT: u64 = 0x0007_0106;

/// One segment register as stored in the VMSA (APM Table B-2, `struct vmcb_seg`): 16 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Segment {
    /// Selector.
    pub selector: u16,
    /// Attributes (type, S, DPL, P, AVL, L, D/B, G).
    pub attrib: u16,
    /// Limit.
    pub limit: u32,
    /// Base address.
    pub base: u64,
}

impl Segment {
    const fn real_mode(attrib: u16) -> Self {
        Segment { selector: 0, attrib, limit: 0xffff, base: 0 }
    }

    fn encode(&self, page: &mut [u8; PAGE_SIZE], at: usize) {
        put(page, at, &self.selector.to_le_bytes());
        put(page, at + 2, &self.attrib.to_le_bytes());
        put(page, at + 4, &self.limit.to_le_bytes());
        put(page, at + 8, &self.base.to_le_bytes());
    }
}

/// The reset-time register state a VMM writes into a VMSA (APM Table B-4). Unlisted fields are zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaveArea {
    /// Segments at 0x000 (es), 0x010 (cs), 0x020 (ss), 0x030 (ds), 0x040 (fs), 0x050 (gs), 0x060 (gdtr),
    /// 0x070 (ldtr), 0x080 (idtr), 0x090 (tr), in that order.
    pub segments: [Segment; 10],
    /// 0x0d0 EFER.
    pub efer: u64,
    /// 0x148 CR4.
    pub cr4: u64,
    /// 0x158 CR0.
    pub cr0: u64,
    /// 0x160 DR7.
    pub dr7: u64,
    /// 0x168 DR6.
    pub dr6: u64,
    /// 0x170 RFLAGS.
    pub rflags: u64,
    /// 0x178 RIP.
    pub rip: u64,
    /// 0x268 G_PAT.
    pub g_pat: u64,
    /// 0x310 RDX (the CPUID signature at reset).
    pub rdx: u64,
    /// 0x3b0 SEV_FEATURES.
    pub sev_features: u64,
    /// 0x3e8 XCR0.
    pub xcr0: u64,
    /// 0x408 MXCSR.
    pub mxcsr: u32,
    /// 0x410 x87 FCW.
    pub x87_fcw: u16,
}

/// Segment indices in [`SaveArea::segments`].
const ES: usize = 0;
const CS: usize = 1;
const SS: usize = 2;
const DS: usize = 3;
const FS: usize = 4;
const GS: usize = 5;
const GDTR: usize = 6;
const LDTR: usize = 7;
const IDTR: usize = 8;
const TR: usize = 9;

fn put(page: &mut [u8; PAGE_SIZE], at: usize, bytes: &[u8]) {
    page[at..at + bytes.len()].copy_from_slice(bytes);
}

impl SaveArea {
    /// The real-mode reset state a SEV-ES/SNP vCPU starts in, as `vmm` sets it up (spec table "Per VMM type").
    ///
    /// `eip` is [`BSP_EIP`] for the first vCPU and the firmware's AP reset EIP for the others.
    pub fn reset(eip: u32, sev_features: u64, vcpu_sig: u64, vmm: VmmType) -> Self {
        let mut s = SaveArea {
            segments: [
                Segment::real_mode(0x93),
                Segment { selector: 0xf000, attrib: 0x9b, limit: 0xffff, base: u64::from(eip & 0xffff_0000) },
                Segment::real_mode(0x93),
                Segment::real_mode(0x93),
                Segment::real_mode(0x93),
                Segment::real_mode(0x93),
                Segment::real_mode(0),
                Segment::real_mode(0x82),
                Segment::real_mode(0),
                Segment::real_mode(0x8b),
            ],
            efer: 0x1000, // KVM sets EFER.SVME.
            cr4: 0x40,    // KVM sets CR4.MCE.
            cr0: 0x10,
            dr7: 0x400,
            dr6: 0xffff_0ff0,
            rflags: 0x2,
            rip: u64::from(eip & 0xffff),
            g_pat: DEFAULT_G_PAT,
            rdx: vcpu_sig,
            sev_features,
            xcr0: 0x1,
            mxcsr: 0x1f80,
            x87_fcw: 0x37f,
        };
        match vmm {
            VmmType::Qemu => {}
            VmmType::Ec2 => {
                if eip == BSP_EIP {
                    s.segments[CS].attrib = 0x9a;
                }
                s.segments[SS].attrib = 0x92;
                s.segments[TR].attrib = 0x83;
                s.rdx = 0x600;
                s.mxcsr = 0;
                s.x87_fcw = 0;
            }
            VmmType::Gce => {
                s.g_pat = GCE_G_PAT;
                s.rdx = 0x600;
                s.mxcsr = 0;
                s.x87_fcw = 0;
            }
        }
        s
    }

    /// The 32-bit flat protected-mode state in which Coconut-SVSM starts every vCPU under QEMU.
    ///
    /// `x87_fcw` stays zero: the reference passes it under a misspelt keyword that ctypes ignores, and the digest
    /// must match the reference.
    pub fn svsm(rip: u64, vcpu_sig: u64) -> Self {
        let flat = |selector| Segment { selector, attrib: 0xc93, limit: 0xffff_ffff, base: 0 };
        let mut segments = [Segment::real_mode(0); 10];
        segments[ES] = flat(16);
        segments[CS] = Segment { selector: 8, attrib: 0xc9b, limit: 0xffff_ffff, base: 0 };
        segments[SS] = flat(16);
        segments[DS] = flat(16);
        segments[FS] = flat(16);
        segments[GS] = Segment::real_mode(0x93);
        segments[GDTR] = Segment::real_mode(0);
        segments[LDTR] = Segment::real_mode(0x82);
        segments[IDTR] = Segment::real_mode(0);
        segments[TR] = Segment::real_mode(0x8b);
        SaveArea {
            segments,
            efer: 0x1000,
            cr4: 0x40,
            cr0: 0x11,
            dr7: 0x400,
            dr6: 0xffff_0ff0,
            rflags: 0x2,
            rip,
            g_pat: DEFAULT_G_PAT,
            rdx: vcpu_sig,
            sev_features: 0x1,
            xcr0: 0x1,
            mxcsr: 0x1f80,
            x87_fcw: 0,
        }
    }

    /// The 4 KiB VMSA page (APM Table B-4 offsets).
    pub fn to_page(&self) -> [u8; PAGE_SIZE] {
        let mut page = [0u8; PAGE_SIZE];
        for (i, seg) in self.segments.iter().enumerate() {
            seg.encode(&mut page, i * 16);
        }
        put(&mut page, 0x0d0, &self.efer.to_le_bytes());
        put(&mut page, 0x148, &self.cr4.to_le_bytes());
        put(&mut page, 0x158, &self.cr0.to_le_bytes());
        put(&mut page, 0x160, &self.dr7.to_le_bytes());
        put(&mut page, 0x168, &self.dr6.to_le_bytes());
        put(&mut page, 0x170, &self.rflags.to_le_bytes());
        put(&mut page, 0x178, &self.rip.to_le_bytes());
        put(&mut page, 0x268, &self.g_pat.to_le_bytes());
        put(&mut page, 0x310, &self.rdx.to_le_bytes());
        put(&mut page, 0x3b0, &self.sev_features.to_le_bytes());
        put(&mut page, 0x3e8, &self.xcr0.to_le_bytes());
        put(&mut page, 0x408, &self.mxcsr.to_le_bytes());
        put(&mut page, 0x410, &self.x87_fcw.to_le_bytes());
        page
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u64_at(page: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(page[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn bsp_page_has_reset_vector_and_signature() {
        let page = SaveArea::reset(BSP_EIP, 1, 0xa00f11, VmmType::Qemu).to_page();
        assert_eq!(&page[0x10..0x20], &[0x00, 0xf0, 0x9b, 0, 0xff, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0]);
        assert_eq!(u64_at(&page, 0x178), 0xfff0);
        assert_eq!(u64_at(&page, 0x310), 0xa00f11);
        assert_eq!(u64_at(&page, 0x3b0), 1);
        assert_eq!(u64_at(&page, 0x268), 0x0007_0406_0007_0406);
    }

    #[test]
    fn ec2_bsp_uses_non_accessed_code_segment() {
        let bsp = SaveArea::reset(BSP_EIP, 1, 0, VmmType::Ec2);
        let ap = SaveArea::reset(0x80b004, 1, 0, VmmType::Ec2);
        assert_eq!((bsp.segments[CS].attrib, ap.segments[CS].attrib), (0x9a, 0x9b));
        assert_eq!((ap.segments[CS].base, ap.rip, ap.rdx), (0x800000, 0xb004, 0x600));
    }
}
