//! QEMU command lines: the confidential launch of each measured VM shape (recorded in the manifest), and the plain,
//! non-confidential boot `cvmforge run` uses for smoke tests.
//!
//! Everything here is a pure function from typed inputs to argv items (`Vec<String>`, one item per argument, so no
//! shell quoting is involved); [`shell_line`] renders argv as one POSIX-shell-quoted line for humans. Nothing here
//! spawns a process.
//!
//! Sources for the confidential fragments:
//! - SEV-SNP: QEMU `qapi/qom.json` (`SevCommonProperties`: `cbitpos`, `reduced-phys-bits`, `kernel-hashes`;
//!   `SevSnpGuestProperties`: `policy`, `id-block`, `id-auth`, `author-key-enabled`), QEMU
//!   `docs/system/i386/amd-memory-encryption.rst`, and AMD's SNP launch examples (memfd RAM backend, `-bios`).
//!   The measurement facts are in `docs/specs/snp-launch-digest.md`: the kernel, initrd and command line are only
//!   measured with `kernel-hashes=on`; the firmware must be given with `-bios` (not pflash); the `-cpu` *model*
//!   (not the host CPU) sets the vCPU signature in every VMSA; `-smp` sets the number of VMSAs.
//! - TDX: QEMU `docs/system/i386/tdx.rst` ("Launching a TD": `tdx-guest` object, split kernel irqchip, TDVF via
//!   `-bios`). QEMU's `tdx-guest` sets the SEPT_VE_DISABLE attribute by default, which Linux guests require. RAM size
//!   matters for RTMR1 on QEMU ≤ 10.1 (`docs/specs/tdx-measurement.md`), so `-m` must be the measured size.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use thiserror::Error;

use crate::units::qemu_size;

/// The QEMU binary for x86-64 guests.
pub const QEMU_BINARY: &str = "qemu-system-x86_64";
/// The kernel's name in the output directory and the bundle.
pub const KERNEL_FILE: &str = "kernel";
/// The initrd's name in the output directory and the bundle.
pub const INITRD_FILE: &str = "initrd.img";
/// The kernel command line's name in the output directory and the bundle.
pub const CMDLINE_FILE: &str = "cmdline";
/// The SEV-SNP firmware's name in the output directory (recipe role `firmware:snp`).
pub const FIRMWARE_SNP_FILE: &str = "firmware-snp.fd";
/// The TDX firmware's name in the output directory (recipe role `firmware:tdx`).
pub const FIRMWARE_TDX_FILE: &str = "firmware-tdx.fd";
/// The manifest's name in the output directory and the bundle.
pub const MANIFEST_FILE: &str = "manifest.json";

/// C-bit position of every SNP-capable EPYC (Milan, Genoa): CPUID 0x8000001F EBX[5:0]. It is not measured.
const SNP_CBITPOS: u32 = 51;
/// Physical address bits lost to memory encryption on those hosts (CPUID 0x8000001F EBX[11:6]). Not measured.
const SNP_REDUCED_PHYS_BITS: u32 = 1;

/// A QEMU command-line fragment: argv items to append after [`QEMU_BINARY`], and notes for whoever runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QemuFragment {
    /// The arguments, one item each (file names relative to the output directory).
    pub args: Vec<String>,
    /// Things the fragment cannot say by itself (e.g. a vCPU model that the shape does not name).
    pub notes: Vec<String>,
}

impl QemuFragment {
    /// The whole command (`qemu-system-x86_64 ...`) as one shell-quoted line.
    pub fn command_line(&self) -> String {
        let mut argv = Vec::with_capacity(self.args.len() + 1);
        argv.push(QEMU_BINARY.to_owned());
        argv.extend(self.args.iter().cloned());
        shell_line(&argv)
    }
}

/// The manifest fields that record a shape's QEMU launch, read back by `cvmforge run --print-command`:
/// `qemu_args` (argv after [`QEMU_BINARY`]) and `qemu_notes` for a fragment, `qemu_unavailable` (the reason) for a
/// shape without one. Merge them into the shape's JSON object.
pub fn manifest_fields(fragment: &Result<QemuFragment, FragmentError>) -> BTreeMap<String, serde_json::Value> {
    let mut fields = BTreeMap::new();
    match fragment {
        Ok(f) => {
            fields.insert("qemu_args".to_owned(), serde_json::Value::from(f.args.clone()));
            fields.insert("qemu_notes".to_owned(), serde_json::Value::from(f.notes.clone()));
        }
        Err(e) => {
            fields.insert("qemu_unavailable".to_owned(), serde_json::Value::from(e.to_string()));
        }
    }
    fields
}

/// The VMM that launches an SEV-SNP guest; only QEMU launches can be written as a QEMU command line (ec2 and gce
/// instance types fix the launch themselves).
pub use cvmforge_measure::snp::vmm_types::VmmType as SnpVmm;

/// The SEV-SNP ID block and its authentication structure, as QEMU takes them (base64; see `cvmforge id-block`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnpIdArgs {
    /// `id-block`: the 96-byte ID block, base64.
    pub id_block: String,
    /// `id-auth`: the 4096-byte ID authentication structure, base64.
    pub id_auth: String,
    /// Whether `id-auth` carries an author key (`author-key-enabled=on`).
    pub author_key: bool,
}

/// One measured SEV-SNP VM shape, as far as the QEMU command line is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnpLaunchShape {
    /// Who launches the guest.
    pub vmm: SnpVmm,
    /// Number of vCPUs (`-smp`): one VMSA each in the launch digest.
    pub vcpus: u32,
    /// The QEMU vCPU model (`-cpu`, e.g. `EPYC-v4`) whose CPUID signature was measured; `None` when the shape gives
    /// only a signature.
    pub vcpu_type: Option<String>,
    /// Guest RAM in bytes (not measured, but part of the shape).
    pub memory_bytes: u64,
    /// The guest policy; `None` leaves QEMU's default (0x30000).
    pub policy: Option<u64>,
    /// The ID block and ID auth, when the image is launched with one.
    pub id: Option<SnpIdArgs>,
    /// SEV_FEATURES of every VMSA as measured (the recipe's `guest_features`, normally 0x1, "SNP active").
    pub guest_features: u64,
}

/// SEV_FEATURES that QEMU (with KVM_SEV_INIT2, QEMU ≥ 9.1) gives an SNP guest unless told otherwise: SNP active.
pub const DEFAULT_GUEST_FEATURES: u64 = 0x1;

/// One measured TDX VM shape, as far as the QEMU command line is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdxLaunchShape {
    /// Number of vCPUs (`-smp`).
    pub vcpus: u32,
    /// Guest RAM in bytes (`-m`); measured into RTMR1 on QEMU ≤ 10.1.
    pub memory_bytes: u64,
}

/// Why a shape has no QEMU command line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FragmentError {
    /// The shape is launched by a cloud VMM, not by QEMU.
    #[error("shape is launched by `{vmm}`, whose instance configuration (not a QEMU command line) fixes the launch")]
    NotQemu {
        /// The VMM.
        vmm: SnpVmm,
    },
    /// A value would change the meaning of QEMU's comma-separated option syntax.
    #[error("{field} `{value}` is not valid in a QEMU option: expected {expected}")]
    InvalidValue {
        /// The shape field.
        field: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        expected: &'static str,
    },
    /// Zero vCPUs.
    #[error("a VM shape needs at least one vCPU")]
    NoVcpus,
}

/// `-kernel kernel -initrd initrd.img -append <cmdline>`: direct kernel boot from the output directory's files.
fn direct_boot(cmdline: &str) -> [String; 6] {
    ["-kernel", KERNEL_FILE, "-initrd", INITRD_FILE, "-append", cmdline].map(str::to_owned)
}

/// Checks that `value` only has characters from `allowed` (so it cannot add or split QEMU option fields).
fn check_value(
    field: &'static str,
    value: &str,
    allowed: fn(char) -> bool,
    expected: &'static str,
) -> Result<(), FragmentError> {
    if value.is_empty() || !value.chars().all(allowed) {
        return Err(FragmentError::InvalidValue { field, value: value.to_owned(), expected });
    }
    Ok(())
}

fn is_model_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

fn is_base64_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=')
}

/// The `sev-snp-guest` object: fixed host parameters, measured kernel hashes, then the policy and ID block.
fn snp_guest_object(shape: &SnpLaunchShape) -> Result<String, FragmentError> {
    // kernel-hashes=on puts the SHA-256 of kernel, initrd and cmdline into the firmware's hashes page, which is
    // measured (snp-launch-digest.md, "Kernel hashes table"); without it they are not part of the launch digest.
    let mut object = format!(
        "sev-snp-guest,id=sev0,cbitpos={SNP_CBITPOS},reduced-phys-bits={SNP_REDUCED_PHYS_BITS},kernel-hashes=on"
    );
    if let Some(policy) = shape.policy {
        object.push_str(&format!(",policy={policy:#x}"));
    }
    if let Some(id) = &shape.id {
        let expected = "base64 (A-Z a-z 0-9 + / =)";
        check_value("id_block", &id.id_block, is_base64_char, expected)?;
        check_value("id_auth", &id.id_auth, is_base64_char, expected)?;
        object.push_str(&format!(",id-block={},id-auth={}", id.id_block, id.id_auth));
        if id.author_key {
            object.push_str(",author-key-enabled=on");
        }
    }
    Ok(object)
}

/// The QEMU arguments that launch `shape` as an SEV-SNP guest, booting the output directory's `kernel`,
/// `initrd.img` and `firmware-snp.fd` with `cmdline` (byte for byte what was measured).
pub fn snp_fragment(shape: &SnpLaunchShape, cmdline: &str) -> Result<QemuFragment, FragmentError> {
    if shape.vmm != SnpVmm::Qemu {
        return Err(FragmentError::NotQemu { vmm: shape.vmm });
    }
    if shape.vcpus == 0 {
        return Err(FragmentError::NoVcpus);
    }
    let memory = qemu_size(shape.memory_bytes);
    let mut args: Vec<String> = vec![
        "-accel".into(),
        "kvm".into(),
        "-machine".into(),
        "q35,confidential-guest-support=sev0,memory-backend=ram1".into(),
        // SNP guest RAM must be shareable memfd memory: QEMU converts pages between private and shared.
        "-object".into(),
        format!("memory-backend-memfd,id=ram1,size={memory},share=true,prealloc=false"),
        "-object".into(),
        snp_guest_object(shape)?,
    ];
    let mut notes = Vec::new();
    match &shape.vcpu_type {
        Some(model) => {
            check_value("vcpu_type", model, is_model_char, "a QEMU CPU model name such as `EPYC-v4`")?;
            args.extend(["-cpu".into(), model.clone()]);
        }
        None => notes.push(
            "the shape names no vCPU model, only its CPUID signature: add the `-cpu` model whose family, model and \
             stepping give that signature, or the guest's VMSAs will not match the measurement"
                .to_owned(),
        ),
    }
    if shape.guest_features != DEFAULT_GUEST_FEATURES {
        // The VMSA's SEV_FEATURES are measured (snp-launch-digest.md, "What users trip on"). Which QEMU property or
        // host setting yields which bit depends on the QEMU and KVM versions, so this is said, not guessed.
        notes.push(format!(
            "the measured guest features (SEV_FEATURES) are {:#x}, not QEMU's default {DEFAULT_GUEST_FEATURES:#x}: \
             the host must give the guest exactly these (e.g. bit 5, DebugSwap, is `debug-swap=on` on QEMU 10.2 \
             and later), or the VMSAs will not match the measurement",
            shape.guest_features
        ));
    }
    // The firmware must be loaded with -bios: a pflash firmware is not measured the same way.
    args.extend(shape_and_boot(shape.vcpus, memory, FIRMWARE_SNP_FILE, cmdline));
    Ok(QemuFragment { args, notes })
}

/// The QEMU arguments that launch `shape` as a TDX trust domain, booting the output directory's `kernel`,
/// `initrd.img` and `firmware-tdx.fd` with `cmdline`.
pub fn tdx_fragment(shape: &TdxLaunchShape, cmdline: &str) -> Result<QemuFragment, FragmentError> {
    if shape.vcpus == 0 {
        return Err(FragmentError::NoVcpus);
    }
    let memory = qemu_size(shape.memory_bytes);
    let mut args: Vec<String> = vec![
        "-accel".into(),
        "kvm".into(),
        "-cpu".into(),
        "host".into(),
        "-object".into(),
        "tdx-guest,id=tdx0".into(),
        // tdx.rst, "Restrictions": kernel-irqchip must be split.
        "-machine".into(),
        "q35,kernel-irqchip=split,confidential-guest-support=tdx0,memory-backend=ram1".into(),
        "-object".into(),
        format!("memory-backend-ram,id=ram1,size={memory}"),
    ];
    // tdx.rst, "TDVF": TDX has no read-only memslots, so TDVF cannot be pflash; it is loaded with -bios.
    args.extend(shape_and_boot(shape.vcpus, memory, FIRMWARE_TDX_FILE, cmdline));
    Ok(QemuFragment { args, notes: Vec::new() })
}

/// The end every confidential launch shares: vCPUs, memory, the firmware as `-bios`, and the direct kernel boot.
fn shape_and_boot(vcpus: u32, memory: String, firmware: &str, cmdline: &str) -> Vec<String> {
    let mut args = vec!["-smp".into(), vcpus.to_string(), "-m".into(), memory, "-bios".into(), firmware.into()];
    args.extend(direct_boot(cmdline));
    args
}

/// How QEMU runs the guest's CPUs for a smoke test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Hardware virtualization through `/dev/kvm`, with the host CPU model.
    Kvm,
    /// QEMU's software emulation, with the `max` CPU model.
    Tcg,
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

/// A TCP port forwarded from the host's loopback address to the guest (`HOSTPORT:GUESTPORT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortForward {
    /// Port on 127.0.0.1.
    pub host: u16,
    /// Port in the guest.
    pub guest: u16,
}

/// Why a `HOSTPORT:GUESTPORT` could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid port forward `{input}`: expected HOSTPORT:GUESTPORT with ports from 1 to 65535, e.g. `8080:80`")]
pub struct PortForwardError {
    /// The text given.
    pub input: String,
}

impl FromStr for PortForward {
    type Err = PortForwardError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || PortForwardError { input: s.to_owned() };
        let (host, guest) = s.split_once(':').ok_or_else(err)?;
        let port = |p: &str| -> Result<u16, PortForwardError> {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            p.parse::<u16>().ok().filter(|&n| n != 0).ok_or_else(err)
        };
        Ok(PortForward { host: port(host)?, guest: port(guest)? })
    }
}

/// A plain (non-confidential) boot of an image for smoke tests. Paths are used as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmokeBoot<'a> {
    /// KVM or TCG.
    pub accel: Accel,
    /// Guest RAM in bytes.
    pub memory_bytes: u64,
    /// Number of vCPUs.
    pub vcpus: u32,
    /// The kernel file.
    pub kernel: &'a str,
    /// The initrd file.
    pub initrd: &'a str,
    /// The kernel command line, as built.
    pub cmdline: &'a str,
    /// Host-to-guest TCP forwards on the one user-mode NIC.
    pub forwards: &'a [PortForward],
    /// A raw disk image attached as a virtio disk, for images that want scratch space.
    pub scratch_disk: Option<&'a str>,
    /// Data volumes, as (name, image file): each a read-only virtio disk whose serial is the name, by which
    /// guest-init finds it.
    pub volumes: &'a [(String, String)],
}

/// The QEMU arguments that attach a data volume: a read-only virtio disk with the volume's name as its serial.
pub fn volume_args(name: &str, file: &str) -> [String; 4] {
    [
        "-drive".into(),
        format!("file={},if=none,id=vol-{name},format=raw,readonly=on", file.replace(',', ",,")),
        "-device".into(),
        format!("virtio-blk-pci,drive=vol-{name},serial={name}"),
    ]
}

/// The QEMU arguments (after [`QEMU_BINARY`]) of a smoke-test boot: no display, no monitor, no default devices,
/// the first serial port (the guest's `ttyS0`) on QEMU's stdout, and `-no-reboot` so that a guest reboot, like a
/// power-off, ends QEMU.
pub fn smoke_boot_args(boot: &SmokeBoot<'_>) -> Vec<String> {
    let (machine, cpu) = match boot.accel {
        Accel::Kvm => ("q35,accel=kvm", "host"),
        Accel::Tcg => ("q35,accel=tcg", "max"),
    };
    let mut args: Vec<String> = [
        "-machine",
        machine,
        "-cpu",
        cpu,
        "-m",
        &qemu_size(boot.memory_bytes),
        "-smp",
        &boot.vcpus.to_string(),
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
        "-kernel",
        boot.kernel,
        "-initrd",
        boot.initrd,
        "-append",
        boot.cmdline,
    ]
    .map(str::to_owned)
    .into();
    let mut netdev = "user,id=n0".to_owned();
    for f in boot.forwards {
        // Loopback only: a smoke test must not expose the guest to the network.
        netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:{}-:{}", f.host, f.guest));
    }
    args.extend(["-netdev".into(), netdev, "-device".into(), "virtio-net-pci,netdev=n0".into()]);
    if let Some(disk) = boot.scratch_disk {
        // A comma inside a QEMU option value is written as two commas.
        args.extend(["-drive".into(), format!("file={},if=virtio,format=raw", disk.replace(',', ",,"))]);
    }
    // After the scratch disk, so that it stays the first virtio disk (`vda`); volumes are found by serial.
    for (name, file) in boot.volumes {
        args.extend(volume_args(name, file));
    }
    args
}

/// Whether a console line reports a kernel panic (Linux prints `Kernel panic - not syncing: ...`).
pub fn is_kernel_panic(line: &str) -> bool {
    line.contains("Kernel panic")
}

/// Quotes one argument for a POSIX shell: unchanged if it only has safe characters, else in single quotes.
pub fn shell_quote(arg: &str) -> Cow<'_, str> {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-+=/.,:@%".contains(c);
    if !arg.is_empty() && arg.chars().all(safe) {
        Cow::Borrowed(arg)
    } else {
        Cow::Owned(format!("'{}'", arg.replace('\'', r"'\''")))
    }
}

/// Renders argv as one shell-quoted line.
pub fn shell_line<S: AsRef<str>>(argv: &[S]) -> String {
    argv.iter().map(|a| shell_quote(a.as_ref())).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests;
