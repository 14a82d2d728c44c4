//! TDX shapes (`docs/specs/tdx-measurement.md`): MRTD, RTMR1, RTMR2 and RTMR3 of each shape, from the staged
//! `firmware-tdx.fd`, `kernel` and `initrd.img`.
//!
//! This sequences the same library steps as `cvmforge_measure::tdx::guest::measure` (which `cvmforge measure tdx`
//! uses, and against which the integration tests check every value), but shares work between shapes: the TDVF
//! descriptor, the Secure Boot keys, the LoadOptions layout and the kernel's PE parse once per build, MRTD once per
//! page order, the unpatched kernel's Authenticode digest once, and one SHA-384 pass over the initrd.

use cvmforge_measure::tdx::fv::{detect_layout, LayoutDetection, LayoutSource};
use cvmforge_measure::tdx::guest::{KernelPatching, TdxError, Warning};
use cvmforge_measure::tdx::load_options::CmdlineLayout;
use cvmforge_measure::tdx::mrtd::{self, PageOrder};
use cvmforge_measure::tdx::pe::{authenticode_sha384, PeImage};
use cvmforge_measure::tdx::qemu::{patch_kernel, QemuVersion, FIRST_UNPATCHED};
use cvmforge_measure::tdx::rtmr::{replay, rtmr1_events, rtmr2_events, sha384_reader};
use cvmforge_measure::tdx::secure_boot::{secure_boot_keys, SecureBootKeys};
use cvmforge_measure::tdx::tdvf::Descriptor;
use cvmforge_measure::tdx::Sha384;

use super::{qemu_fields, read_output, MeasureError, Sources, MAX_VCPUS};
use crate::manifest::{SecureBootRecord, TdxInputs, TdxMeasurement};
use crate::qemu::{self, TdxLaunchShape};
use crate::recipe::TdxShape;

/// Why RTMR0 is null: the library does not model it (`cvmforge_measure::tdx::guest::TdxMeasurement::rtmr0`).
pub(super) const RTMR0_UNAVAILABLE: &str =
    "RTMR0 is not modelled: it depends on the TD HOB, the CFV and the ACPI tables QEMU \
builds for this VM, which cvmforge does not yet reproduce exactly (docs/specs/tdx-measurement.md, \"RTMR0\"), so no \
value is recorded rather than a guess";

/// One validated TDX shape.
pub(super) struct TdxPlan {
    index: usize,
    memory: String,
    memory_bytes: u64,
    vcpus: u32,
    page_order: PageOrder,
    qemu_version: QemuVersion,
    qemu_version_assumed: bool,
    layout: Option<CmdlineLayout>,
}

/// Validates one `measure.tdx` shape.
pub(super) fn plan(index: usize, shape: &TdxShape) -> Result<TdxPlan, MeasureError> {
    let field = |name: &str| format!("measure.tdx[{index}].{name}");
    let bad = |name: &str, value: &str, expected: &'static str| MeasureError::BadValue {
        field: field(name),
        value: value.to_owned(),
        expected,
    };
    if shape.vcpus == 0 || shape.vcpus > MAX_VCPUS {
        return Err(bad("vcpus", &shape.vcpus.to_string(), "a vCPU count from 1 to 1024"));
    }
    let (qemu_version, qemu_version_assumed) = match shape.qemu_version {
        None => (FIRST_UNPATCHED, true),
        Some(version) => (version, false),
    };
    Ok(TdxPlan {
        index,
        memory: shape.memory.as_str().to_owned(),
        memory_bytes: shape.memory.bytes(),
        vcpus: shape.vcpus,
        page_order: shape.page_order.unwrap_or_default(),
        qemu_version,
        qemu_version_assumed,
        layout: shape.cmdline_layout,
    })
}

/// What every shape shares: parsed once per build.
struct Shared {
    firmware: Vec<u8>,
    descriptor: Descriptor,
    secure_boot: SecureBootKeys,
    kernel: Vec<u8>,
    initrd: (Sha384, u64),
    warnings: Vec<Warning>,
    /// MRTD per page order, computed on first use.
    mrtd: Vec<(PageOrder, Sha384)>,
    /// The firmware's own layout, detected on first use.
    detected: Option<LayoutDetection>,
    /// Authenticode digest of the unmodified kernel, computed on first use.
    unpatched: Option<Sha384>,
}

/// Measures every TDX shape; returns the entries and the build warnings.
pub(super) fn measure(
    plans: &[TdxPlan],
    sources: &Sources<'_>,
) -> Result<(Vec<TdxMeasurement>, Vec<String>), MeasureError> {
    let file = qemu::FIRMWARE_TDX_FILE;
    let firmware_sha256 =
        sources.firmware_tdx_sha256.ok_or(MeasureError::NoFirmware { platform: "tdx", shapes: plans.len() })?;
    let mut shared = shared(sources)?;
    let inputs = TdxInputs {
        firmware_sha256: hex::encode(firmware_sha256),
        kernel_sha256: hex::encode(sources.kernel_sha256),
        initrd_sha384: shared.initrd.0.to_string(),
        initrd_size: shared.initrd.1,
    };
    let warnings: Vec<String> = shared.warnings.iter().map(ToString::to_string).collect();
    let mut entries = Vec::with_capacity(plans.len());
    for plan in plans {
        entries.push(entry(plan, &mut shared, &inputs, &warnings, sources.cmdline)?);
    }
    let build_warnings = warnings.iter().map(|w| format!("`firmware.tdx` ({file}) with this kernel: {w}")).collect();
    Ok((entries, build_warnings))
}

/// Wraps a library error with the shape (none for per-build work) and the output file it concerns.
fn fail<E: Into<TdxError>>(shape: Option<usize>, file: &'static str) -> impl Fn(E) -> MeasureError {
    move |e| MeasureError::Tdx { shape, file, source: e.into() }
}

/// Reads the staged firmware, kernel and initrd and does the per-build work.
fn shared(sources: &Sources<'_>) -> Result<Shared, MeasureError> {
    let fw_file = qemu::FIRMWARE_TDX_FILE;
    let firmware = read_output(sources.dir, fw_file)?;
    let descriptor = Descriptor::parse(&firmware).map_err(fail(None, fw_file))?;
    let secure_boot = secure_boot_keys(&firmware, &descriptor).map_err(fail(None, fw_file))?;
    let kernel = read_output(sources.dir, qemu::KERNEL_FILE)?;
    let pe = PeImage::parse(&kernel).map_err(fail(None, qemu::KERNEL_FILE))?;
    let mut warnings = Vec::new();
    // Same rule as `tdx::guest::measure`: an enforcing firmware refuses to start an unsigned EFI application.
    if secure_boot.pk_enrolled && !pe.is_signed() {
        warnings.push(Warning::UnsignedKernelUnderSecureBoot { microsoft_db: secure_boot.microsoft_db });
    }
    let initrd_path = sources.dir.join(qemu::INITRD_FILE);
    let initrd = std::fs::File::open(&initrd_path)
        .and_then(|f| sha384_reader(std::io::BufReader::new(f)))
        .map_err(|source| MeasureError::Read { path: initrd_path.clone(), source })?;
    Ok(Shared {
        firmware,
        descriptor,
        secure_boot,
        kernel,
        initrd,
        warnings,
        mrtd: Vec::new(),
        detected: None,
        unpatched: None,
    })
}

fn entry(
    plan: &TdxPlan,
    shared: &mut Shared,
    inputs: &TdxInputs,
    warnings: &[String],
    cmdline: &str,
) -> Result<TdxMeasurement, MeasureError> {
    let fw_file = qemu::FIRMWARE_TDX_FILE;
    let shape = Some(plan.index);
    let mrtd = match shared.mrtd.iter().find(|(order, _)| *order == plan.page_order) {
        Some((_, digest)) => *digest,
        None => {
            let digest = mrtd::compute(&shared.descriptor, &shared.firmware, plan.page_order);
            shared.mrtd.push((plan.page_order, digest));
            digest
        }
    };
    let patching = KernelPatching::for_qemu(plan.qemu_version, plan.memory_bytes);
    let authenticode = match patching {
        KernelPatching::Qemu { memory, .. } => {
            let patched = patch_kernel(&shared.kernel, memory, Some(shared.initrd.1), cmdline.as_bytes())
                .map_err(fail(shape, qemu::KERNEL_FILE))?;
            authenticode_sha384(&patched).map_err(fail(shape, qemu::KERNEL_FILE))?
        }
        KernelPatching::Unmodified { .. } => match shared.unpatched {
            Some(digest) => digest,
            None => {
                let digest = authenticode_sha384(&shared.kernel).map_err(fail(shape, qemu::KERNEL_FILE))?;
                shared.unpatched = Some(digest);
                digest
            }
        },
    };
    let layout = match plan.layout {
        Some(layout) => LayoutDetection { layout, source: LayoutSource::Override },
        None => match &shared.detected {
            Some(detected) => detected.clone(),
            None => {
                let detected = detect_layout(&shared.firmware).map_err(fail(shape, fw_file))?;
                shared.detected = Some(detected.clone());
                detected
            }
        },
    };
    let rtmr1 = replay(1, &rtmr1_events(authenticode));
    let rtmr2 = replay(2, &rtmr2_events(cmdline.as_bytes(), Some(shared.initrd.0), layout.layout));
    let source = match layout.source {
        LayoutSource::Override => format!("measure.tdx[{}].cmdline_layout", plan.index),
        other => other.to_string(),
    };
    let mut entry = TdxMeasurement {
        platform: "tdx".to_owned(),
        name: format!("tdx-shape{}", plan.index),
        shape: plan.index,
        memory: plan.memory.clone(),
        memory_bytes: plan.memory_bytes,
        vcpus: plan.vcpus,
        page_order: plan.page_order.to_string(),
        qemu_version: plan.qemu_version.to_string(),
        qemu_version_assumed: plan.qemu_version_assumed,
        qemu_kernel_patching: matches!(patching, KernelPatching::Qemu { .. }),
        cmdline_layout: layout.layout.to_string(),
        cmdline_layout_source: source,
        mrtd: mrtd.to_string(),
        rtmr0: None,
        rtmr0_unavailable: Some(RTMR0_UNAVAILABLE.to_owned()),
        rtmr1: rtmr1.value.to_string(),
        rtmr2: rtmr2.value.to_string(),
        rtmr3: Sha384::ZERO.to_string(),
        inputs: inputs.clone(),
        secure_boot: SecureBootRecord {
            pk_enrolled: shared.secure_boot.pk_enrolled,
            microsoft_db: shared.secure_boot.microsoft_db,
        },
        warnings: warnings.to_vec(),
        qemu_args: None,
        qemu_notes: None,
        qemu_unavailable: None,
    };
    let launch = TdxLaunchShape { vcpus: plan.vcpus, memory_bytes: plan.memory_bytes };
    (entry.qemu_args, entry.qemu_notes, entry.qemu_unavailable) = qemu_fields(&qemu::tdx_fragment(&launch, cmdline));
    if let (Some(notes), true) = (&mut entry.qemu_notes, plan.qemu_version_assumed) {
        notes.push(format!(
            "RTMR1 assumes QEMU {FIRST_UNPATCHED} or later, which measures the kernel unmodified; older QEMU patches \
             the kernel header first: set `qemu_version` in the shape to measure for it"
        ));
    }
    Ok(entry)
}
