//! `cvmforge measure tdx`: Intel TDX MRTD and RTMRs for a TD booted by TDVF with QEMU direct kernel boot.
//!
//! Spec: `docs/specs/tdx-measurement.md`. The computation lives in `cvmforge_measure::tdx`; this module reads the
//! files, renders text or JSON, and writes the optional event log.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use cvmforge::units::parse_size;
use cvmforge_measure::tdx::guest::{
    measure, measure_reading_initrd, KernelPatching, TdxError, TdxInputs, TdxMeasurement,
};
use cvmforge_measure::tdx::load_options::CmdlineLayout;
use cvmforge_measure::tdx::mrtd::PageOrder;
use cvmforge_measure::tdx::qemu::QemuVersion;
use cvmforge_measure::tdx::rtmr::{
    Replay, EV_EFI_ACTION, EV_EFI_BOOT_SERVICES_APPLICATION, EV_EVENT_TAG, EV_SEPARATOR,
};
use cvmforge_measure::tdx::Sha384;
use serde::Serialize;

use super::{CliResult, Failure, Ui};

/// Version of the JSON document printed by `--json`.
pub(crate) const SCHEMA_VERSION: u32 = 1;
/// The ACPI blobs `--acpi-tables` expects.
const ACPI_BLOBS: [&str; 3] = ["table-loader", "rsdp", "tables"];
/// Why RTMR0 is not printed.
const RTMR0_NOT_MODELLED: &str = "RTMR0 is not modelled for this firmware: its TD HOB, CFV and ACPI events are not \
reproduced exactly yet, so no value is printed rather than a guess";

/// Arguments of `cvmforge measure tdx`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cvmforge measure tdx --firmware OVMF.inteltdx.fd
  cvmforge measure tdx --firmware OVMF.inteltdx.fd --kernel vmlinuz --initrd initrd.img \\
      --append 'console=ttyS0' --qemu-version 10.1 --memory 4G --explain
  cvmforge measure tdx --firmware OVMF.inteltdx.fd --kernel vmlinuz --page-order two-pass --json")]
pub(crate) struct Args {
    /// The TDVF firmware image (OvmfPkg/IntelTdx build, e.g. Debian's OVMF.inteltdx.fd).
    #[arg(long, value_name = "FILE")]
    pub(crate) firmware: PathBuf,
    /// The kernel (bzImage with EFI stub) given to QEMU's -kernel; needed for RTMR1 and RTMR2.
    #[arg(long, value_name = "FILE")]
    pub(crate) kernel: Option<PathBuf>,
    /// The initrd given to QEMU's -initrd.
    #[arg(long, value_name = "FILE", requires = "kernel")]
    pub(crate) initrd: Option<PathBuf>,
    /// The kernel command line given to QEMU's -append (bytes as given; no UTF-8 decoding).
    #[arg(long, value_name = "STRING", default_value = "", requires = "kernel")]
    pub(crate) append: String,
    /// Guest RAM (bytes, or with a K/M/G/T suffix); needed when QEMU ≤ 10.1 patches the kernel header.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub(crate) memory: Option<u64>,
    /// vCPU count (affects only RTMR0's ACPI tables, which are taken from --acpi-tables; recorded in the output).
    #[arg(long, value_name = "N")]
    pub(crate) vcpus: Option<u32>,
    /// The order in which the VMM adds and extends TDVF pages: single-pass (upstream KVM, QEMU ≥ 9) or two-pass.
    #[arg(long, value_name = "ORDER", default_value = "single-pass", value_parser = parse_page_order)]
    pub(crate) page_order: PageOrder,
    /// The QEMU version: ≤ 10.1 patches the kernel's setup header before it is measured; ≥ 10.2 does not (default).
    #[arg(long, value_name = "VERSION", value_parser = parse_qemu_version)]
    pub(crate) qemu_version: Option<QemuVersion>,
    /// A directory with QEMU's fw_cfg ACPI blobs (`table-loader`, `rsdp`, `tables`) for RTMR0.
    #[arg(long, value_name = "DIR")]
    pub(crate) acpi_tables: Option<PathBuf>,
    /// Where OVMF puts its hidden `initrd=initrd` token; detected from the firmware when not given.
    #[arg(long, value_name = "LAYOUT", value_parser = parse_layout)]
    pub(crate) cmdline_layout: Option<CmdlineLayout>,
    /// Print every event per register with its digest and the running register value.
    #[arg(long)]
    pub(crate) explain: bool,
    /// Write the events as a JSON event log (for replay against the TD's CCEL).
    #[arg(long, value_name = "FILE")]
    pub(crate) event_log: Option<PathBuf>,
}

fn parse_page_order(s: &str) -> Result<PageOrder, String> {
    s.parse()
}
fn parse_qemu_version(s: &str) -> Result<QemuVersion, String> {
    s.parse()
}
fn parse_layout(s: &str) -> Result<CmdlineLayout, String> {
    s.parse()
}

/// One event of the JSON event log.
#[derive(Debug, Serialize)]
pub(crate) struct LogEvent {
    /// RTMR index (0-3).
    pub(crate) rtmr: u8,
    /// CCEL `MrIndex` (RTMR index + 1; 0 is MRTD).
    pub(crate) cc_mr_index: u8,
    /// The TCG PCR the event is defined for.
    pub(crate) pcr: u8,
    /// TCG event type, hex.
    pub(crate) event_type: String,
    /// TCG event type name.
    pub(crate) event_type_name: &'static str,
    /// SHA-384 digest extended.
    pub(crate) digest: String,
    /// What was measured.
    pub(crate) description: String,
    /// The register value after this event.
    pub(crate) rtmr_after: String,
}

/// The `--json` document.
#[derive(Debug, Serialize)]
pub(crate) struct Output {
    /// Schema version.
    pub(crate) schema_version: u32,
    /// MRTD, hex.
    pub(crate) mrtd: String,
    /// RTMR0, or null when not modelled.
    pub(crate) rtmr0: Option<String>,
    /// Why RTMR0 is null.
    pub(crate) rtmr0_note: &'static str,
    /// RTMR1, or null without a kernel.
    pub(crate) rtmr1: Option<String>,
    /// RTMR2, or null without a kernel.
    pub(crate) rtmr2: Option<String>,
    /// RTMR3.
    pub(crate) rtmr3: String,
    /// `single-pass` or `two-pass`.
    pub(crate) page_order: String,
    /// `prefix` or `suffix`, or null without a kernel.
    pub(crate) cmdline_layout: Option<String>,
    /// How the layout was determined.
    pub(crate) cmdline_layout_source: Option<String>,
    /// QEMU's kernel-header patching.
    pub(crate) qemu_kernel_patching: BTreeMap<&'static str, serde_json::Value>,
    /// vCPUs, as given.
    pub(crate) vcpus: Option<u32>,
    /// Warnings.
    pub(crate) warnings: Vec<String>,
    /// SHA-384 of each `--acpi-tables` blob: the digests of RTMR0's "ACPI DATA" events (not RTMR0 itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) acpi_blob_digests: Option<BTreeMap<&'static str, String>>,
    /// Every event, with `--explain`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) events: Option<Vec<LogEvent>>,
}

fn event_type_name(t: u32) -> &'static str {
    match t {
        EV_SEPARATOR => "EV_SEPARATOR",
        EV_EVENT_TAG => "EV_EVENT_TAG",
        EV_EFI_BOOT_SERVICES_APPLICATION => "EV_EFI_BOOT_SERVICES_APPLICATION",
        EV_EFI_ACTION => "EV_EFI_ACTION",
        _ => "unknown",
    }
}

fn log_events(m: &TdxMeasurement) -> Vec<LogEvent> {
    [&m.rtmr1, &m.rtmr2]
        .into_iter()
        .flatten()
        .flat_map(|r: &Replay| r.steps.iter())
        .map(|(e, after)| LogEvent {
            rtmr: e.rtmr,
            cc_mr_index: e.rtmr + 1,
            pcr: e.pcr,
            event_type: format!("{:#010x}", e.event_type),
            event_type_name: event_type_name(e.event_type),
            digest: e.digest.to_string(),
            description: e.description.clone(),
            rtmr_after: after.to_string(),
        })
        .collect()
}

fn patching_json(p: KernelPatching, assumed: bool) -> BTreeMap<&'static str, serde_json::Value> {
    let mut out = BTreeMap::new();
    // True when no --qemu-version was given and QEMU ≥ 10.2 (no patching) was assumed.
    out.insert("assumed", assumed.into());
    match p {
        KernelPatching::Qemu { version, memory } => {
            out.insert("patched", true.into());
            out.insert("qemu_version", version.to_string().into());
            out.insert("memory", memory.into());
        }
        KernelPatching::Unmodified { version } => {
            out.insert("patched", false.into());
            out.insert("qemu_version", version.to_string().into());
        }
    }
    out
}

fn output(m: &TdxMeasurement, args: &Args, acpi: Option<BTreeMap<&'static str, String>>) -> Output {
    let hex = |r: &Option<Replay>| r.as_ref().map(|r| r.value.to_string());
    Output {
        schema_version: SCHEMA_VERSION,
        mrtd: m.mrtd.to_string(),
        rtmr0: None,
        rtmr0_note: RTMR0_NOT_MODELLED,
        rtmr1: hex(&m.rtmr1),
        rtmr2: hex(&m.rtmr2),
        rtmr3: m.rtmr3.to_string(),
        page_order: m.page_order.to_string(),
        cmdline_layout: m.layout.as_ref().map(|l| l.layout.to_string()),
        cmdline_layout_source: m.layout.as_ref().map(|l| l.source.to_string()),
        qemu_kernel_patching: patching_json(m.patching, args.qemu_version.is_none()),
        vcpus: args.vcpus,
        warnings: m.warnings.iter().map(ToString::to_string).collect(),
        acpi_blob_digests: acpi,
        events: args.explain.then(|| log_events(m)),
    }
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    fs_err::read(path).with_context(|| format!("cannot read the {what}"))
}

/// The initrd file and its size; it is hashed while the firmware and kernel are measured.
fn open_initrd(path: &Path) -> anyhow::Result<(fs_err::File, u64)> {
    let file = fs_err::File::open(path).context("cannot read the initrd")?;
    let size = file.metadata().context("cannot read the initrd")?.len();
    Ok((file, size))
}

/// Checks the ACPI directory and returns the SHA-384 of each blob.
fn acpi_digests(dir: &Path) -> CliResult<BTreeMap<&'static str, String>> {
    let mut out = BTreeMap::new();
    for blob in ACPI_BLOBS {
        let path = dir.join(blob);
        if !path.is_file() {
            return Err(Failure::usage(format!(
                "--acpi-tables `{}` has no `{blob}` file (expected `table-loader`, `rsdp` and `tables`)",
                dir.display()
            )));
        }
        out.insert(blob, Sha384::of(&read(&path, "ACPI blob")?).to_string());
    }
    Ok(out)
}

fn render_text(out: &Output, m: &TdxMeasurement, args_assumed: bool) {
    println!("MRTD   {}", out.mrtd);
    println!("RTMR0  (not computed) {RTMR0_NOT_MODELLED}");
    let none = "(no --kernel)".to_string();
    println!("RTMR1  {}", out.rtmr1.as_ref().unwrap_or(&none));
    println!("RTMR2  {}", out.rtmr2.as_ref().unwrap_or(&none));
    println!("RTMR3  {}", out.rtmr3);
    for (blob, digest) in out.acpi_blob_digests.iter().flatten() {
        println!("ACPI blob `{blob}` (an RTMR0 event digest, not RTMR0): {digest}");
    }
    let order_note = match m.page_order {
        PageOrder::SinglePass => "ADD then EXTEND per page: upstream KVM, Linux ≥ 6.16, QEMU ≥ 9",
        PageOrder::TwoPass => "all ADDs then all EXTENDs per section: Intel's older KVM/QEMU-TDX trees",
    };
    println!("page order: {} ({order_note})", out.page_order);
    if let Some(l) = &m.layout {
        println!("cmdline layout: {} ({})", l.layout, l.source);
    }
    match m.patching {
        _ if m.rtmr1.is_none() => {}
        KernelPatching::Qemu { version, memory } => {
            println!("kernel: measured with the setup header as QEMU {version} patches it for {memory} bytes of RAM")
        }
        KernelPatching::Unmodified { .. } if args_assumed => println!(
            "kernel: measured unmodified (QEMU ≥ 10.2 assumed; give --qemu-version for older QEMU, which patches the header)"
        ),
        KernelPatching::Unmodified { version } => println!("kernel: measured unmodified (QEMU {version} ≥ 10.2)"),
    }
    if let Some(events) = &out.events {
        for rtmr in [1u8, 2] {
            println!("RTMR{rtmr} events:");
            for e in events.iter().filter(|e| e.rtmr == rtmr) {
                println!("  PCR{} {} {}", e.pcr, e.event_type_name, e.description);
                println!("    digest {}", e.digest);
                println!("    RTMR{rtmr} → {}", e.rtmr_after);
            }
        }
    }
}

/// Runs `cvmforge measure tdx`.
pub(crate) fn run(args: Args, ui: &Ui) -> CliResult {
    let json = ui.json;
    let acpi = args.acpi_tables.as_deref().map(acpi_digests).transpose()?;
    let version = args.qemu_version.unwrap_or(cvmforge_measure::tdx::qemu::FIRST_UNPATCHED);
    let patching = match (version.patches_kernel(), args.memory, &args.kernel) {
        (true, None, Some(_)) => {
            return Err(Failure::usage(format!(
                "--qemu-version {version} patches the kernel header depending on RAM size: give --memory"
            )))
        }
        (true, Some(memory), _) => KernelPatching::Qemu { version, memory },
        _ => KernelPatching::for_qemu(version, 0),
    };
    let firmware = read(&args.firmware, "firmware")?;
    let kernel = args.kernel.as_ref().map(|k| read(k, "kernel")).transpose()?;
    let initrd = args.initrd.as_deref().map(open_initrd).transpose()?;
    let inputs = TdxInputs {
        firmware: &firmware,
        kernel: kernel.as_deref(),
        initrd: None,
        cmdline: args.append.as_bytes(),
        page_order: args.page_order,
        patching,
        layout: args.cmdline_layout,
    };
    let measured = match initrd {
        Some((file, size)) => measure_reading_initrd(&inputs, size, file),
        None => measure(&inputs),
    };
    let m = measured.map_err(|e| {
        let hint = match &e {
            TdxError::InitrdRead(_) | TdxError::InitrdSize { .. } => {
                let path = args.initrd.as_deref().unwrap_or(Path::new("-"));
                return Failure::from(anyhow::Error::new(e).context(format!("cannot read `{}`", path.display())));
            }
            TdxError::Pe(_) => "build the kernel with CONFIG_EFI_STUB=y (TDVF boots it as an EFI application)",
            TdxError::Layout(_) => "pass --cmdline-layout prefix (edk2 ≥ stable202508) or suffix (older)",
            TdxError::Tdvf(_) => "use an OvmfPkg/IntelTdx build (e.g. Debian's OVMF.inteltdx.fd)",
            _ => "check the input files",
        };
        Failure::hinted(e, hint)
    })?;
    let out = output(&m, &args, acpi);
    for w in &m.warnings {
        eprintln!("warning: {w}");
    }
    if let Some(path) = &args.event_log {
        let doc = serde_json::json!({ "schema_version": SCHEMA_VERSION, "events": log_events(&m) });
        fs_err::write(path, serde_json::to_string_pretty(&doc)? + "\n").context("cannot write the event log")?;
    }
    if json {
        super::print_json(&out)?;
    } else {
        render_text(&out, &m, args.qemu_version.is_none());
    }
    Ok(ExitCode::SUCCESS)
}
