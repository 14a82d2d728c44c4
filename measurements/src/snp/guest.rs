//! Orchestration: from the launch inputs to the SEV, SEV-ES or SEV-SNP launch digest, for one or many vCPU counts.
//!
//! Spec: `docs/specs/snp-launch-digest.md`, "SNP page-update chain (GCTX)" (order of updates), "SEV and SEV-ES",
//! "snp:svsm". This module only sequences the objects of the other modules; it holds no format knowledge.
//!
//! VMSA pages come last in every mode, so [`launch_digests`] measures the shared prefix once and extends it one
//! vCPU at a time, recording the digest at each requested count.
//!
//! # Example
//!
//! ```
//! use cvmforge_measure::snp::guest::{launch_digest, Mode, SnpMeasurementArgs};
//! use cvmforge_measure::snp::sev_hashes::sha256;
//!
//! // Plain SEV without a kernel measures the firmware file alone: its SHA-256.
//! let firmware = vec![0u8; 8192];
//! let args = SnpMeasurementArgs::new(Mode::Sev, &firmware, 0);
//! let digest = launch_digest(&args, 1)?;
//! assert_eq!(digest.as_bytes(), &sha256(&firmware)[..]);
//! # Ok::<(), cvmforge_measure::snp::guest::GuestError>(())
//! ```

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::snp::gctx::{Gctx, GctxError, PageType, Sha384, PAGE_SIZE, VMSA_GPA};
use crate::snp::ovmf::{Firmware, OvmfError, SectionType};
use crate::snp::page_digests::page_digests;
use crate::snp::sev_hashes::{KernelHashes, TableOffsetError};
use crate::snp::svsm::SvsmLayout;
use crate::snp::vmm_types::VmmType;
use crate::snp::vmsa::{SaveArea, BSP_EIP};

/// Guest modes, as spelt by `sev-snp-measure --mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mode {
    /// SEV: SHA-256 over firmware and hashes table.
    Sev,
    /// SEV-ES: SEV plus the VMSA pages.
    SevEs,
    /// SEV-SNP.
    Snp,
    /// SEV-SNP digest of the firmware pages only (a seed for `--snp-ovmf-hash`).
    SnpOvmfHash,
    /// SEV-SNP with Coconut-SVSM.
    SnpSvsm,
}

/// Every mode with its command-line spelling and the name the reference prints with `--verbose`.
pub const MODES: &[(&str, Mode, &str)] = &[
    ("sev", Mode::Sev, "SEV"),
    ("seves", Mode::SevEs, "SEV_ES"),
    ("snp", Mode::Snp, "SEV_SNP"),
    ("snp:ovmf-hash", Mode::SnpOvmfHash, "SEV_SNP"),
    ("snp:svsm", Mode::SnpSvsm, "SEV_SNP_SVSM"),
];

impl Mode {
    fn entry(self) -> (&'static str, &'static str) {
        MODES.iter().find(|(_, m, _)| *m == self).map_or(("snp", "SEV_SNP"), |(n, _, v)| (*n, *v))
    }

    /// The command-line spelling.
    pub fn name(self) -> &'static str {
        self.entry().0
    }

    /// The name `sev-snp-measure --verbose` prints (`SEV_SNP`, ...).
    pub fn verbose_name(self) -> &'static str {
        self.entry().1
    }

    /// True for the modes whose digest is an SNP page-update chain.
    pub fn is_snp(self) -> bool {
        matches!(self, Mode::Snp | Mode::SnpOvmfHash | Mode::SnpSvsm)
    }
}

/// A mode name that is not in [`MODES`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown mode `{name}`; expected one of: sev, seves, snp, snp:ovmf-hash, snp:svsm")]
pub struct UnknownMode {
    /// The name given.
    pub name: String,
}

impl FromStr for Mode {
    type Err = UnknownMode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MODES.iter().find(|(n, _, _)| *n == s).map(|(_, m, _)| *m).ok_or(UnknownMode { name: s.to_owned() })
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything the launch digest depends on (cf. virtee `SnpMeasurementArgs`).
#[derive(Debug, Clone)]
pub struct SnpMeasurementArgs<'a> {
    /// Guest mode.
    pub mode: Mode,
    /// The OVMF image (`-bios`).
    pub ovmf: &'a [u8],
    /// Kernel, initrd and command-line digests when QEMU boots a kernel directly (`kernel-hashes=on`).
    pub kernel: Option<KernelHashes>,
    /// CPUID signature of the vCPU model (ignored by SEV, and by ec2/gce which put 0x600 in `rdx`).
    pub vcpu_sig: u64,
    /// SEV_FEATURES of SNP vCPUs (the reference's `--guest-features`, default 0x1).
    pub guest_features: u64,
    /// The VMM.
    pub vmm: VmmType,
    /// A precomputed firmware digest that replaces hashing `ovmf` (SNP only).
    pub ovmf_hash: Option<Sha384>,
    /// The SVSM image (`snp:svsm` only).
    pub svsm: Option<&'a [u8]>,
    /// Size of the OVMF variable store between SVSM and OVMF (`snp:svsm` only).
    pub vars_size: i128,
    /// The SHA-384 of every 4 KiB page of `ovmf`, when the caller computed them ahead with
    /// [`PageDigestPool`](crate::snp::page_digests::PageDigestPool) (for example on the thread that finished hashing
    /// the kernel). Ignored unless it has one digest per page.
    pub ovmf_page_digests: Option<&'a [Sha384]>,
}

impl<'a> SnpMeasurementArgs<'a> {
    /// Arguments with the reference's defaults: QEMU, guest features 0x1, no kernel, no SVSM.
    pub fn new(mode: Mode, ovmf: &'a [u8], vcpu_sig: u64) -> Self {
        SnpMeasurementArgs {
            mode,
            ovmf,
            kernel: None,
            vcpu_sig,
            guest_features: 0x1,
            vmm: VmmType::Qemu,
            ovmf_hash: None,
            svsm: None,
            vars_size: 0,
            ovmf_page_digests: None,
        }
    }
}

/// A launch digest: SHA-256 for SEV and SEV-ES, the SHA-384 chain for SNP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaunchDigest {
    /// SEV / SEV-ES.
    Sha256([u8; 32]),
    /// SEV-SNP.
    Snp(Sha384),
}

impl LaunchDigest {
    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            LaunchDigest::Sha256(d) => d,
            LaunchDigest::Snp(d) => d.as_bytes(),
        }
    }
}

impl fmt::Display for LaunchDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.as_bytes()))
    }
}

/// What a measured page belongs to, for `--explain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    /// The OVMF image.
    Firmware,
    /// The SVSM image.
    Svsm,
    /// A metadata section.
    Section {
        /// Index in the metadata table.
        index: usize,
        /// Its type.
        kind: SectionType,
    },
    /// The save area of one vCPU.
    Vmsa {
        /// vCPU index (0 is the BSP).
        vcpu: u32,
    },
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Region::Firmware => f.write_str("firmware"),
            Region::Svsm => f.write_str("svsm"),
            Region::Section { index, kind } => write!(f, "metadata[{index}] {kind}"),
            Region::Vmsa { vcpu } => write!(f, "vmsa[{vcpu}]"),
        }
    }
}

/// One `SNP_LAUNCH_UPDATE` page and the running digest after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageUpdate {
    /// Guest-physical address recorded in PAGE_INFO.
    pub gpa: u64,
    /// Page type.
    pub page_type: PageType,
    /// What the page belongs to.
    pub region: Region,
    /// The launch digest after this page.
    pub digest: Sha384,
}

/// Why a launch digest cannot be computed. Each case is one the reference also refuses.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum GuestError {
    /// The OVMF image is malformed or lacks a needed entry.
    #[error("OVMF image: {0}")]
    Firmware(OvmfError),
    /// The SVSM image is malformed or lacks a needed entry.
    #[error("SVSM image: {0}")]
    Svsm(OvmfError),
    /// A region cannot be measured page by page.
    #[error("cannot measure {region}: {error}")]
    Pages {
        /// The region.
        region: Region,
        /// Why.
        error: GctxError,
    },
    /// A kernel was given but the SNP firmware has no page for its hashes.
    #[error("a kernel was given, but the firmware's SEV metadata has no SNP_KERNEL_HASHES section, so its hashes cannot be measured")]
    NoKernelHashesSection,
    /// A kernel was given but the firmware declares no hashes table (SEV, SEV-ES).
    #[error("a kernel was given, but the firmware declares no SEV kernel hashes table (GUID 7255371f-3a3b-4b04-927b-1da6efa8d454, non-zero address)")]
    KernelHashesUnsupported,
    /// The SNP_KERNEL_HASHES section is not exactly one page.
    #[error("SEV metadata section {index} (SNP_KERNEL_HASHES) is {size:#x} bytes; exactly one 4 KiB page is needed to hold the kernel hashes")]
    HashesSectionSize {
        /// Section index.
        index: usize,
        /// Its size.
        size: u32,
    },
    /// The hashes table does not fit in its page.
    #[error(transparent)]
    HashesTableOffset(#[from] TableOffsetError),
    /// More than one vCPU, but the firmware's AP reset EIP is 0.
    #[error("{vcpus} vCPUs need an AP reset EIP, but the firmware's SEV-ES reset block holds 0")]
    NoApResetEip {
        /// Requested vCPUs.
        vcpus: u32,
    },
    /// `ovmf_hash` was given in a mode other than `snp`.
    #[error("a precomputed OVMF hash only works in mode `snp`, not `{mode}`")]
    OvmfHashNotSnp {
        /// The mode.
        mode: Mode,
    },
    /// `snp:svsm` without an SVSM image.
    #[error("mode `snp:svsm` needs an SVSM image")]
    MissingSvsm,
    /// `snp:svsm` is only defined for QEMU.
    #[error("mode `snp:svsm` is only implemented for QEMU, not `{vmm}`")]
    SvsmNeedsQemu {
        /// The VMM given.
        vmm: VmmType,
    },
    /// `explain` was asked for a SHA-256 mode.
    #[error("mode `{mode}` is a plain SHA-256 digest, not a chain of page updates")]
    NotAPageChain {
        /// The mode.
        mode: Mode,
    },
}

/// The SNP chain with an optional log of every update.
struct Chain<'l> {
    gctx: Gctx,
    log: Option<&'l mut Vec<PageUpdate>>,
}

impl Chain<'_> {
    fn record(&mut self, page_type: PageType, gpa: u64, region: Region, contents: &Sha384) {
        let digest = self.gctx.update(page_type, gpa, contents);
        if let Some(log) = self.log.as_deref_mut() {
            log.push(PageUpdate { gpa, page_type, region, digest });
        }
    }

    fn normal_pages(
        &mut self,
        gpa: u64,
        data: &[u8],
        region: Region,
        prehashed: Option<&[Sha384]>,
    ) -> Result<(), GuestError> {
        let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
        Gctx::page_count(gpa, len).map_err(|error| GuestError::Pages { region, error })?;
        let digests = match prehashed {
            Some(d) if d.len() == data.len().div_ceil(PAGE_SIZE) => d.to_vec(),
            _ => page_digests(data),
        };
        for (page_gpa, digest) in (gpa..).step_by(PAGE_SIZE).zip(digests) {
            self.record(PageType::Normal, page_gpa, region, &digest);
        }
        Ok(())
    }

    fn empty_pages(&mut self, page_type: PageType, gpa: u64, len: u32, region: Region) -> Result<(), GuestError> {
        let count = Gctx::page_count(gpa, u64::from(len)).map_err(|error| GuestError::Pages { region, error })?;
        for page_gpa in (gpa..).step_by(PAGE_SIZE).take(usize::try_from(count).unwrap_or(0)) {
            self.record(page_type, page_gpa, region, &Sha384::ZERO);
        }
        Ok(())
    }
}

/// Measures the metadata sections in the order the reference does (spec "Order", step 2).
fn metadata_pages(
    chain: &mut Chain<'_>,
    fw: &Firmware<'_>,
    kernel: Option<&KernelHashes>,
    vmm: VmmType,
    wrap: fn(OvmfError) -> GuestError,
) -> Result<(), GuestError> {
    let mut cpuid_later = Vec::new();
    for section in fw.sections() {
        let kind = section.section_type().map_err(wrap)?;
        let region = Region::Section { index: section.index, kind };
        let gpa = u64::from(section.gpa);
        match kind {
            SectionType::SnpSecMem if vmm == VmmType::Gce => {
                chain.empty_pages(PageType::Unmeasured, gpa, section.size, region)?
            }
            SectionType::SnpSecMem | SectionType::SvsmCaa => {
                chain.empty_pages(PageType::Zero, gpa, section.size, region)?
            }
            // One page regardless of the declared size, as QEMU and the reference do.
            SectionType::SnpSecrets => chain.record(PageType::Secrets, gpa, region, &Sha384::ZERO),
            // EC2 adds the CPUID page after every other section.
            SectionType::Cpuid if vmm == VmmType::Ec2 => cpuid_later.push((gpa, region)),
            SectionType::Cpuid => chain.record(PageType::Cpuid, gpa, region, &Sha384::ZERO),
            SectionType::SnpKernelHashes => match kernel {
                Some(hashes) => {
                    if section.size != PAGE_SIZE as u32 {
                        return Err(GuestError::HashesSectionSize { index: section.index, size: section.size });
                    }
                    let table_gpa = fw.sev_hashes_table_gpa().map_err(wrap)?;
                    let page = hashes.page(usize::try_from(table_gpa & 0xfff).unwrap_or(0))?;
                    chain.record(PageType::Normal, gpa, region, &Sha384::of(&page));
                }
                None => chain.empty_pages(PageType::Zero, gpa, section.size, region)?,
            },
        }
    }
    for (gpa, region) in cpuid_later {
        chain.record(PageType::Cpuid, gpa, region, &Sha384::ZERO);
    }
    if kernel.is_some() && !fw.has_section(SectionType::SnpKernelHashes) {
        return Err(GuestError::NoKernelHashesSection);
    }
    Ok(())
}

/// The BSP and AP save areas; the AP one is `None` when the firmware's AP EIP is 0 (then only one vCPU works).
#[derive(Debug, Clone, Copy)]
struct VmsaPair {
    bsp: [u8; PAGE_SIZE],
    ap: Option<[u8; PAGE_SIZE]>,
}

impl VmsaPair {
    fn page(&self, vcpu: u32) -> Result<&[u8; PAGE_SIZE], GuestError> {
        match (vcpu, &self.ap) {
            (0, _) => Ok(&self.bsp),
            (_, Some(ap)) => Ok(ap),
            (_, None) => Err(GuestError::NoApResetEip { vcpus: vcpu + 1 }),
        }
    }
}

/// The state shared by all vCPU counts: everything measured before the first VMSA page.
enum Prefix {
    Sha256(Sha256),
    Snp(Gctx),
}

fn vmsa_pair(args: &SnpMeasurementArgs<'_>, fw: &Firmware<'_>, features: u64) -> Result<VmsaPair, GuestError> {
    let ap_eip = fw.sev_es_reset_eip().map_err(GuestError::Firmware)?;
    let build = |eip| SaveArea::reset(eip, features, args.vcpu_sig, args.vmm).to_page();
    Ok(VmsaPair { bsp: build(BSP_EIP), ap: (ap_eip != 0).then(|| build(ap_eip)) })
}

/// Measures everything before the VMSA pages and returns the VMSA pages to append.
fn prefix(args: &SnpMeasurementArgs<'_>, log: Option<&mut Vec<PageUpdate>>) -> Result<(Prefix, VmsaPair), GuestError> {
    if args.ovmf_hash.is_some() && !matches!(args.mode, Mode::Snp | Mode::SnpOvmfHash) {
        return Err(GuestError::OvmfHashNotSnp { mode: args.mode });
    }
    let fw = Firmware::parse(args.ovmf).map_err(GuestError::Firmware)?;
    match args.mode {
        Mode::Sev | Mode::SevEs => {
            let mut hasher = Sha256::new();
            hasher.update(args.ovmf);
            if let Some(kernel) = &args.kernel {
                if !fw.sev_hashes_table_supported() {
                    return Err(GuestError::KernelHashesUnsupported);
                }
                hasher.update(kernel.table());
            }
            let pair = if args.mode == Mode::SevEs {
                vmsa_pair(args, &fw, 0)?
            } else {
                VmsaPair { bsp: [0; PAGE_SIZE], ap: None }
            };
            Ok((Prefix::Sha256(hasher), pair))
        }
        Mode::SnpOvmfHash => {
            let mut chain = Chain { gctx: Gctx::new(), log };
            chain.normal_pages(
                fw.gpa().map_err(GuestError::Firmware)?,
                args.ovmf,
                Region::Firmware,
                args.ovmf_page_digests,
            )?;
            Ok((Prefix::Snp(chain.gctx), VmsaPair { bsp: [0; PAGE_SIZE], ap: None }))
        }
        Mode::Snp => {
            let mut chain = Chain { gctx: Gctx::new(), log };
            match args.ovmf_hash {
                Some(seed) => chain.gctx = Gctx::with_seed(seed),
                None => chain.normal_pages(
                    fw.gpa().map_err(GuestError::Firmware)?,
                    args.ovmf,
                    Region::Firmware,
                    args.ovmf_page_digests,
                )?,
            }
            metadata_pages(&mut chain, &fw, args.kernel.as_ref(), args.vmm, GuestError::Firmware)?;
            let pair = vmsa_pair(args, &fw, args.guest_features)?;
            Ok((Prefix::Snp(chain.gctx), pair))
        }
        Mode::SnpSvsm => svsm_prefix(args, &fw, log),
    }
}

fn svsm_prefix(
    args: &SnpMeasurementArgs<'_>,
    fw: &Firmware<'_>,
    log: Option<&mut Vec<PageUpdate>>,
) -> Result<(Prefix, VmsaPair), GuestError> {
    if args.vmm != VmmType::Qemu {
        return Err(GuestError::SvsmNeedsQemu { vmm: args.vmm });
    }
    let svsm_bytes = args.svsm.ok_or(GuestError::MissingSvsm)?;
    let ovmf_gpa = fw.gpa().map_err(GuestError::Firmware)?;
    let svsm = Firmware::parse(svsm_bytes).map_err(GuestError::Svsm)?;
    let layout = SvsmLayout::new(&svsm, ovmf_gpa, args.vars_size).map_err(GuestError::Svsm)?;
    let mut chain = Chain { gctx: Gctx::new(), log };
    chain.normal_pages(ovmf_gpa, args.ovmf, Region::Firmware, args.ovmf_page_digests)?;
    chain.normal_pages(layout.gpa, svsm_bytes, Region::Svsm, None)?;
    metadata_pages(&mut chain, &svsm, None, VmmType::Qemu, GuestError::Svsm)?;
    let page = SaveArea::svsm(layout.rip, args.vcpu_sig).to_page();
    Ok((Prefix::Snp(chain.gctx), VmsaPair { bsp: page, ap: Some(page) }))
}

/// The launch digest for `vcpus` vCPUs.
pub fn launch_digest(args: &SnpMeasurementArgs<'_>, vcpus: u32) -> Result<LaunchDigest, GuestError> {
    let mut all = launch_digests(args, &[vcpus])?;
    Ok(all.pop().map_or(LaunchDigest::Sha256([0; 32]), |(_, d)| d))
}

/// The launch digests for each of `counts` (in the order given), measuring the shared prefix once.
pub fn launch_digests(args: &SnpMeasurementArgs<'_>, counts: &[u32]) -> Result<Vec<(u32, LaunchDigest)>, GuestError> {
    let (prefix, pair) = prefix(args, None)?;
    let max = counts.iter().copied().max().unwrap_or(0);
    let uses_vmsa = !matches!(args.mode, Mode::Sev | Mode::SnpOvmfHash);
    let steps = if uses_vmsa { max } else { 0 };
    // at[n] is the digest after n VMSA pages.
    let mut at = Vec::new();
    match prefix {
        Prefix::Sha256(mut hasher) => {
            at.push(LaunchDigest::Sha256(hasher.clone().finalize().into()));
            for vcpu in 0..steps {
                hasher.update(pair.page(vcpu)?);
                at.push(LaunchDigest::Sha256(hasher.clone().finalize().into()));
            }
        }
        Prefix::Snp(mut gctx) => {
            at.push(LaunchDigest::Snp(gctx.finish().digest()));
            let bsp = Sha384::of(&pair.bsp);
            let ap = pair.ap.map(|p| Sha384::of(&p));
            for vcpu in 0..steps {
                let digest = if vcpu == 0 { Some(bsp) } else { ap };
                let digest = digest.ok_or(GuestError::NoApResetEip { vcpus: vcpu + 1 })?;
                gctx.update(PageType::Vmsa, VMSA_GPA, &digest);
                at.push(LaunchDigest::Snp(gctx.finish().digest()));
            }
        }
    }
    let pick = |n: u32| {
        let i = if uses_vmsa { usize::try_from(n).unwrap_or(usize::MAX) } else { 0 };
        at.get(i).copied().unwrap_or(LaunchDigest::Sha256([0; 32]))
    };
    Ok(counts.iter().map(|&n| (n, pick(n))).collect())
}

/// Every page update of an SNP launch with `vcpus` vCPUs, with the running digest after each.
pub fn explain(args: &SnpMeasurementArgs<'_>, vcpus: u32) -> Result<Vec<PageUpdate>, GuestError> {
    if !args.mode.is_snp() {
        return Err(GuestError::NotAPageChain { mode: args.mode });
    }
    let mut log = Vec::new();
    let (prefix, pair) = prefix(args, Some(&mut log))?;
    let (Prefix::Snp(gctx), Mode::Snp | Mode::SnpSvsm) = (prefix, args.mode) else { return Ok(log) };
    let mut chain = Chain { gctx, log: Some(&mut log) };
    for vcpu in 0..vcpus {
        let page = pair.page(vcpu)?;
        chain.record(PageType::Vmsa, VMSA_GPA, Region::Vmsa { vcpu }, &Sha384::of(page));
    }
    Ok(log)
}

/// The VMSA pages measured for `vcpus` vCPUs (what the reference's `--dump-vmsa` writes), in vCPU order.
pub fn vmsa_pages(args: &SnpMeasurementArgs<'_>, vcpus: u32) -> Result<Vec<[u8; PAGE_SIZE]>, GuestError> {
    if matches!(args.mode, Mode::Sev | Mode::SnpOvmfHash) {
        return Ok(Vec::new());
    }
    let (_, pair) = prefix(args, None)?;
    (0..vcpus).map(|vcpu| pair.page(vcpu).copied()).collect()
}

/// Runs every mode on untrusted firmware bytes (as OVMF, and as an SVSM image), for fuzzing: any outcome but a panic
/// is fine. Returns how many modes produced a digest.
pub fn fuzz_firmware(data: &[u8]) -> usize {
    let hashes = KernelHashes::new([1; 32], None, Some("console=ttyS0"));
    let mut ok = 0;
    for mode in [Mode::Sev, Mode::SevEs, Mode::Snp, Mode::SnpOvmfHash] {
        for vmm in [VmmType::Qemu, VmmType::Ec2, VmmType::Gce] {
            for kernel in [None, Some(hashes)] {
                let mut args = SnpMeasurementArgs::new(mode, data, 0xa00f11);
                args.vmm = vmm;
                args.kernel = kernel;
                ok += usize::from(launch_digests(&args, &[0, 1, 2]).is_ok());
            }
        }
    }
    let ovmf = [0u8; PAGE_SIZE];
    let mut svsm = SnpMeasurementArgs::new(Mode::SnpSvsm, &ovmf, 1);
    svsm.svsm = Some(data);
    svsm.vars_size = 0x1000;
    ok += usize::from(launch_digests(&svsm, &[2]).is_ok());
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snp::ovmf::synth::synth_firmware;
    use proptest::prelude::*;

    fn base() -> Vec<u8> {
        synth_firmware(&[
            (0x1000, 0x2000, 1),
            (0x3000, 0x1000, 2),
            (0x4000, 0x1000, 3),
            (0x5000, 0x1000, 0x10),
            (0x6000, 0x1000, 4),
        ])
    }

    #[test]
    fn synthetic_firmware_measures_in_every_mode() {
        let fw = base();
        // Sev, SevEs, Snp and SnpOvmfHash for 3 VMMs, with and without kernel: the image has a hashes-table entry
        // (page offset 0xc00) and a KERNEL_HASHES section. As an SVSM image it fails: it has no SVSM_INFO entry.
        assert_eq!(fuzz_firmware(&fw), 4 * 3 * 2);
    }

    #[test]
    fn rejects_unaligned_sec_mem() {
        let fw = synth_firmware(&[(0x1000, 0x1800, 1)]);
        let err = launch_digest(&SnpMeasurementArgs::new(Mode::Snp, &fw, 1), 1).unwrap_err();
        assert!(matches!(err, GuestError::Pages { error: GctxError::NotPageAligned { len: 0x1800, .. }, .. }), "{err}");
        // SEV does not look at the sections, like the reference.
        assert!(launch_digest(&SnpMeasurementArgs::new(Mode::Sev, &fw, 1), 1).is_ok());
    }

    #[test]
    fn rejects_unknown_section_type_in_snp() {
        let fw = synth_firmware(&[(0x1000, 0x1000, 9)]);
        let err = launch_digest(&SnpMeasurementArgs::new(Mode::Snp, &fw, 1), 1).unwrap_err();
        assert!(matches!(err, GuestError::Firmware(OvmfError::UnknownSectionType { value: 9, .. })), "{err}");
    }

    #[test]
    fn rejects_unaligned_firmware_length() {
        let mut fw = vec![0u8; 100];
        fw.extend_from_slice(&base());
        let err = launch_digest(&SnpMeasurementArgs::new(Mode::SnpOvmfHash, &fw, 1), 0).unwrap_err();
        assert!(matches!(err, GuestError::Pages { region: Region::Firmware, .. }), "{err}");
    }

    #[test]
    fn rejects_second_vcpu_without_ap_eip() {
        let mut fw = base();
        let guid = crate::guid::SEV_ES_RESET_BLOCK.to_wire_bytes();
        let pos = fw.windows(16).rposition(|w| w == guid).unwrap();
        fw[pos - 6..pos - 2].copy_from_slice(&[0; 4]);
        let args = SnpMeasurementArgs::new(Mode::Snp, &fw, 1);
        assert!(launch_digest(&args, 1).is_ok());
        assert_eq!(launch_digest(&args, 2), Err(GuestError::NoApResetEip { vcpus: 2 }));
    }

    #[test]
    fn streaming_table_equals_separate_runs() {
        let fw = base();
        for mode in [Mode::SevEs, Mode::Snp] {
            let args = SnpMeasurementArgs::new(mode, &fw, 7);
            let table = launch_digests(&args, &[5, 0, 3]).unwrap();
            for (n, d) in table {
                assert_eq!(d, launch_digest(&args, n).unwrap());
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Random byte and word mutations (biased towards the metadata and the footer table) never panic.
        #[test]
        fn mutated_firmware_never_panics(
            writes in proptest::collection::vec((0usize..0x10000, any::<u32>(), any::<bool>()), 1..6),
            cut in prop_oneof![Just(None), (0usize..0x10000).prop_map(Some)],
        ) {
            let mut fw = base();
            let len = fw.len();
            for (pos, value, near_end) in writes {
                let at = if near_end { len - 1 - (pos % 160) } else if pos % 2 == 0 { 0x100 + pos % 0x60 } else { pos };
                let bytes = value.to_le_bytes();
                for (i, b) in bytes.iter().enumerate() {
                    if let Some(slot) = fw.get_mut(at + i) { *slot = *b; }
                }
            }
            if let Some(cut) = cut { fw.truncate(cut); }
            let _ = fuzz_firmware(&fw);
        }
    }
}
