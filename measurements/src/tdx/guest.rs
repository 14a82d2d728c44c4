//! Orchestrates a TD's measurements from its inputs: MRTD from the firmware, RTMR1 from the kernel, RTMR2 from the
//! command line and initrd. RTMR0 is not modelled (see [`TdxMeasurement::rtmr0`]).
//!
//! Spec: `docs/specs/tdx-measurement.md`.

use std::io::Read;

use thiserror::Error;

use super::fv::{detect_layout, FvError, LayoutDetection, LayoutSource};
use super::load_options::CmdlineLayout;
use super::mrtd::{self, PageOrder};
use super::pe::{authenticode_sha384, PeError, PeImage};
use super::qemu::{patch_kernel, QemuError, QemuVersion};
use super::rtmr::{replay, rtmr1_events, rtmr2_events, sha384_reader, Replay};
use super::secure_boot::{secure_boot_keys, SecureBootKeys};
use super::tdvf::{Descriptor, TdvfError};
use super::Sha384;
use crate::reader::ReadError;

/// How the VMM hands the kernel to the firmware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelPatching {
    /// QEMU ≤ 10.1 patches the setup header for this RAM size (bytes) before the firmware measures the kernel.
    Qemu {
        /// The QEMU version.
        version: QemuVersion,
        /// Guest RAM in bytes.
        memory: u64,
    },
    /// The file is measured unmodified (QEMU ≥ 10.2).
    Unmodified {
        /// The QEMU version.
        version: QemuVersion,
    },
}

impl KernelPatching {
    /// The patching a given QEMU version applies.
    pub fn for_qemu(version: QemuVersion, memory: u64) -> Self {
        if version.patches_kernel() {
            KernelPatching::Qemu { version, memory }
        } else {
            KernelPatching::Unmodified { version }
        }
    }
}

/// The initrd as the measurement needs it (its digest is computed by streaming; see [`super::rtmr::sha384_reader`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitrdDigest {
    /// SHA-384 of the file.
    pub digest: Sha384,
    /// Its size in bytes (QEMU ≤ 10.1 writes it into the kernel header).
    pub size: u64,
}

/// Everything the measurement depends on.
#[derive(Debug, Clone)]
pub struct TdxInputs<'a> {
    /// The TDVF image.
    pub firmware: &'a [u8],
    /// The kernel (bzImage with EFI stub), if RTMR1/RTMR2 are wanted.
    pub kernel: Option<&'a [u8]>,
    /// The initrd, if one is given to QEMU.
    pub initrd: Option<InitrdDigest>,
    /// The `-append` bytes.
    pub cmdline: &'a [u8],
    /// MRTD page-add order.
    pub page_order: PageOrder,
    /// How the kernel reaches the firmware.
    pub patching: KernelPatching,
    /// An explicit LoadOptions layout, instead of detecting it from the firmware.
    pub layout: Option<CmdlineLayout>,
}

/// Something the user should know about the inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// The firmware enforces Secure Boot with enrolled keys, but the kernel has no Authenticode signature.
    UnsignedKernelUnderSecureBoot {
        /// The db holds Microsoft certificates.
        microsoft_db: bool,
    },
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Warning::UnsignedKernelUnderSecureBoot { microsoft_db } => write!(
                f,
                "the firmware enforces Secure Boot (PK enrolled{}) but the kernel has no Authenticode certificate table: it will not boot",
                if *microsoft_db { ", Microsoft keys in db" } else { "" }
            ),
        }
    }
}

/// The computed values.
#[derive(Debug, Clone)]
pub struct TdxMeasurement {
    /// MRTD.
    pub mrtd: Sha384,
    /// The page order used for MRTD.
    pub page_order: PageOrder,
    /// RTMR0 is not modelled: it depends on the TD HOB, the CFV, the ACPI blobs and the firmware's event list
    /// (docs/specs/tdx-measurement.md, "RTMR0"), which this crate cannot yet reproduce exactly. Always `None`.
    pub rtmr0: Option<Replay>,
    /// RTMR1 (with a kernel).
    pub rtmr1: Option<Replay>,
    /// RTMR2 (with a kernel).
    pub rtmr2: Option<Replay>,
    /// RTMR3: zero unless the guest extends it.
    pub rtmr3: Sha384,
    /// The LoadOptions layout used (with a kernel).
    pub layout: Option<LayoutDetection>,
    /// How the kernel was handed to the firmware.
    pub patching: KernelPatching,
    /// The firmware's Secure Boot keys.
    pub secure_boot: SecureBootKeys,
    /// Warnings.
    pub warnings: Vec<Warning>,
}

/// Why the measurement failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TdxError {
    /// The firmware's TDVF descriptor.
    #[error("firmware: {0}")]
    Tdvf(#[from] TdvfError),
    /// The firmware's variable store.
    #[error("firmware CFV variable store: {0}")]
    VariableStore(#[from] ReadError),
    /// The LoadOptions layout could not be detected.
    #[error("firmware: {0}")]
    Layout(#[from] FvError),
    /// The kernel is not a PE image.
    #[error("kernel: {0}")]
    Pe(#[from] PeError),
    /// QEMU's header patching cannot be applied.
    #[error("kernel: {0}")]
    Qemu(#[from] QemuError),
    /// The initrd could not be read.
    #[error("initrd: {0}")]
    InitrdRead(#[source] std::io::Error),
    /// The initrd's length is not the size it was declared with (the file changed while it was read).
    #[error("initrd: {read} bytes were read but its size was given as {declared} (did the file change?)")]
    InitrdSize {
        /// The size given (which QEMU ≤ 10.1 writes into the kernel header).
        declared: u64,
        /// The bytes actually read.
        read: u64,
    },
}

/// Where the initrd's digest comes from.
enum InitrdSource<R> {
    /// Known already ([`TdxInputs::initrd`]).
    Known(Option<InitrdDigest>),
    /// Read and hashed while the rest is measured.
    Stream {
        /// The size the file was opened with.
        size: u64,
        /// Its bytes.
        reader: R,
    },
}

/// Computes the measurements.
///
/// MRTD, the firmware-volume scan that detects the LoadOptions layout, and the kernel's Authenticode digest are
/// independent, so they run on their own threads; the results do not depend on the scheduling.
pub fn measure(inputs: &TdxInputs<'_>) -> Result<TdxMeasurement, TdxError> {
    measure_with(inputs, InitrdSource::<std::io::Empty>::Known(inputs.initrd))
}

/// Like [`measure`], with the initrd read from `reader` (`size` bytes) and hashed on a thread of its own while the
/// firmware and the kernel are measured ([`TdxInputs::initrd`] is not used). The initrd is the largest input (tens of
/// MiB against a 4 MiB firmware), so its SHA-384 sets the time of the whole measurement; the rest runs beside it.
pub fn measure_reading_initrd<R: Read + Send>(
    inputs: &TdxInputs<'_>,
    size: u64,
    reader: R,
) -> Result<TdxMeasurement, TdxError> {
    measure_with(inputs, InitrdSource::Stream { size, reader })
}

fn measure_with<R: Read + Send>(inputs: &TdxInputs<'_>, initrd: InitrdSource<R>) -> Result<TdxMeasurement, TdxError> {
    let descriptor = Descriptor::parse(inputs.firmware)?;
    let (initrd_size, known) = match &initrd {
        InitrdSource::Known(known) => (known.map(|i| i.size), Some(*known)),
        InitrdSource::Stream { size, .. } => (Some(*size), None),
    };
    std::thread::scope(|s| {
        let hashing = match initrd {
            InitrdSource::Stream { size, reader } => Some(s.spawn(move || hash_initrd(size, reader))),
            InitrdSource::Known(_) => None,
        };
        let mrtd = s.spawn(|| mrtd::compute(&descriptor, inputs.firmware, inputs.page_order));
        let detection = match (inputs.kernel, inputs.layout) {
            (Some(_), None) => Some(s.spawn(|| detect_layout(inputs.firmware))),
            _ => None,
        };
        let kernel = measure_kernel(inputs, &descriptor, initrd_size);
        let mrtd = join(mrtd);
        let detected = detection.map(join).transpose();
        let initrd = match (known, hashing) {
            (Some(known), _) => known,
            (None, Some(hashing)) => Some(join(hashing)?),
            (None, None) => None,
        };
        let (secure_boot, kernel) = kernel?;
        let mut m = TdxMeasurement {
            mrtd,
            page_order: inputs.page_order,
            rtmr0: None,
            rtmr1: None,
            rtmr2: None,
            rtmr3: Sha384::ZERO,
            layout: None,
            patching: inputs.patching,
            secure_boot,
            warnings: Vec::new(),
        };
        let Some((authenticode, signed)) = kernel else { return Ok(m) };
        if m.secure_boot.pk_enrolled && !signed {
            m.warnings.push(Warning::UnsignedKernelUnderSecureBoot { microsoft_db: m.secure_boot.microsoft_db });
        }
        let layout = match (inputs.layout, detected?) {
            (Some(layout), _) => LayoutDetection { layout, source: LayoutSource::Override },
            (None, Some(detection)) => detection,
            (None, None) => detect_layout(inputs.firmware)?,
        };
        m.rtmr1 = Some(replay(1, &rtmr1_events(authenticode)));
        m.rtmr2 = Some(replay(2, &rtmr2_events(inputs.cmdline, initrd.map(|i| i.digest), layout.layout)));
        m.layout = Some(layout);
        Ok(m)
    })
}

/// The Secure Boot keys of the firmware and, with a kernel, its Authenticode SHA-384 (as QEMU presents it) and
/// whether it carries a signature.
type KernelPart = (SecureBootKeys, Option<(Sha384, bool)>);

/// SHA-384 of the initrd, which must be `size` bytes long.
fn hash_initrd(size: u64, reader: impl Read) -> Result<InitrdDigest, TdxError> {
    let (digest, read) = sha384_reader(reader).map_err(TdxError::InitrdRead)?;
    if read != size {
        return Err(TdxError::InitrdSize { declared: size, read });
    }
    Ok(InitrdDigest { digest, size })
}

fn measure_kernel(
    inputs: &TdxInputs<'_>,
    descriptor: &Descriptor,
    initrd_size: Option<u64>,
) -> Result<KernelPart, TdxError> {
    let secure_boot = secure_boot_keys(inputs.firmware, descriptor)?;
    let Some(kernel) = inputs.kernel else { return Ok((secure_boot, None)) };
    let pe = PeImage::parse(kernel)?;
    let authenticode = match inputs.patching {
        KernelPatching::Qemu { memory, .. } => {
            authenticode_sha384(&patch_kernel(kernel, memory, initrd_size, inputs.cmdline)?)?
        }
        KernelPatching::Unmodified { .. } => authenticode_sha384(kernel)?,
    };
    Ok((secure_boot, Some((authenticode, pe.is_signed()))))
}

/// Joins a worker thread, passing a panic on (the workers do not panic on any input; a panic is a bug).
fn join<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tdx::pe::tests::synth_pe;
    use crate::tdx::qemu::FIRST_UNPATCHED;
    use crate::tdx::test_fixtures::tdx_firmware;

    fn inputs<'a>(firmware: &'a [u8], kernel: &'a [u8], initrd: Option<InitrdDigest>) -> TdxInputs<'a> {
        TdxInputs {
            firmware,
            kernel: Some(kernel),
            initrd,
            cmdline: b"console=ttyS0",
            page_order: PageOrder::SinglePass,
            patching: KernelPatching::for_qemu(FIRST_UNPATCHED, 0),
            layout: None,
        }
    }

    #[test]
    fn reading_the_initrd_beside_the_rest_gives_the_same_measurement() {
        let (firmware, kernel) = (tdx_firmware(), synth_pe());
        let initrd = b"an initrd".repeat(100_000);
        let (digest, size) = sha384_reader(&initrd[..]).unwrap();
        let known = measure(&inputs(&firmware, &kernel, Some(InitrdDigest { digest, size }))).unwrap();
        let streamed = measure_reading_initrd(&inputs(&firmware, &kernel, None), size, &initrd[..]).unwrap();
        assert_eq!(streamed.rtmr2.as_ref().map(|r| r.value), known.rtmr2.as_ref().map(|r| r.value));
        assert_eq!((streamed.mrtd, streamed.rtmr1.map(|r| r.value)), (known.mrtd, known.rtmr1.map(|r| r.value)));
        assert_eq!(streamed.layout, known.layout);
        let without = measure(&inputs(&firmware, &kernel, None)).unwrap();
        assert_ne!(without.rtmr2.map(|r| r.value), known.rtmr2.map(|r| r.value), "the initrd must count");
    }

    #[test]
    fn rejects_an_initrd_that_is_not_its_declared_size() {
        let (firmware, kernel) = (tdx_firmware(), synth_pe());
        let err = measure_reading_initrd(&inputs(&firmware, &kernel, None), 10, &b"12345"[..]).unwrap_err();
        assert!(matches!(err, TdxError::InitrdSize { declared: 10, read: 5 }), "{err}");
        assert!(err.to_string().contains("5 bytes were read but its size was given as 10"), "{err}");
    }
}
