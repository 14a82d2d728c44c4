//! `cvmforge measure snp`: AMD SEV / SEV-ES / SEV-SNP launch digests, a drop-in for `sev-snp-measure` 0.0.13.
//!
//! Every option of the reference is accepted with the same spelling and meaning, and for the same arguments the
//! same line is printed. Integers are parsed as Python's `int()` does, because the reference does. Beyond the
//! reference: `--vcpus 1-64` / `--vcpus 1,2,4` (a table computed in one pass), `--json`, and `--explain`.
//! Spec: `docs/specs/snp-launch-digest.md`.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::Engine;
use cvmforge_measure::snp::gctx::Sha384;
use cvmforge_measure::snp::guest::{self, LaunchDigest, Mode, PageUpdate, SnpMeasurementArgs};
use cvmforge_measure::snp::page_digests::PageDigestPool;
use cvmforge_measure::snp::sev_hashes::{sha256, KernelHashes, Sha256Digest};
use cvmforge_measure::snp::vcpu_types::{cpu_sig, wrap_u64, VcpuType};
use cvmforge_measure::snp::vmm_types::VmmType;
use serde::Serialize;

use super::{CliResult, Failure, Ui};
use cvmforge::sys::mapped::InputBytes;
use cvmforge::sys::sched::spawn_promptly;

const MODE_NAMES: [&str; 5] = ["sev", "seves", "snp", "snp:ovmf-hash", "snp:svsm"];

/// Arguments of `cvmforge measure snp` (the options of `sev-snp-measure` 0.0.13, plus `--explain`).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cvmforge measure snp --mode snp --vcpus 4 --vcpu-type EPYC-v4 --ovmf OVMF.amdsev.fd \\
      --kernel vmlinuz --initrd initrd.img --append 'console=ttyS0'
  cvmforge measure snp --vcpus 1-64 --vcpu-type EPYC-Milan --ovmf OVMF.amdsev.fd --json
  cvmforge measure snp --vcpus 2 --vcpu-sig 0xa00f11 --vmm-type ec2 --ovmf OVMF.amdsev.fd --explain
  cvmforge measure snp --mode snp:ovmf-hash --ovmf OVMF.amdsev.fd")]
#[command(args_override_self = true, infer_long_args = true)]
pub(crate) struct Args {
    /// The options (boxed: they are many, and the subcommand enum should stay small).
    #[command(flatten)]
    pub(crate) opts: Box<Opts>,
}

/// The options of `sev-snp-measure` 0.0.13, plus `--explain`.
#[derive(Debug, clap::Args)]
pub(crate) struct Opts {
    /// Print `Calculated <MODE> guest measurement: <digest>` instead of the bare digest.
    #[arg(short, long)]
    pub(crate) verbose: bool,
    /// Guest mode.
    #[arg(long, default_value = "snp", value_parser = MODE_NAMES)]
    pub(crate) mode: String,
    /// Number of guest vCPUs: N, a range A-B, or a list A,B,C (a range or list prints one digest per count).
    #[arg(long, allow_negative_numbers = true, value_name = "N")]
    pub(crate) vcpus: Option<String>,
    /// Type of guest vCPU (QEMU CPU model).
    #[arg(long, value_name = "CPUTYPE", value_parser = VcpuType::names().collect::<Vec<_>>())]
    pub(crate) vcpu_type: Option<String>,
    /// Guest vCPU signature value (CPUID Fn0000_0001_EAX), e.g. 0xa00f11.
    #[arg(long, allow_negative_numbers = true, value_name = "VALUE")]
    pub(crate) vcpu_sig: Option<String>,
    /// Guest vCPU family (with --vcpu-model and --vcpu-stepping).
    #[arg(long, allow_negative_numbers = true, value_name = "FAMILY")]
    pub(crate) vcpu_family: Option<String>,
    /// Guest vCPU model.
    #[arg(long, allow_negative_numbers = true, value_name = "MODEL")]
    pub(crate) vcpu_model: Option<String>,
    /// Guest vCPU stepping.
    #[arg(long, allow_negative_numbers = true, value_name = "STEPPING")]
    pub(crate) vcpu_stepping: Option<String>,
    /// Type of guest VMM (QEMU, ec2, gce).
    #[arg(long, value_name = "VMMTYPE", default_value = "QEMU")]
    pub(crate) vmm_type: String,
    /// OVMF file to calculate the hash from.
    #[arg(long, value_name = "PATH")]
    pub(crate) ovmf: PathBuf,
    /// Kernel file to calculate the hash from.
    #[arg(long, value_name = "PATH")]
    pub(crate) kernel: Option<OsString>,
    /// Initrd file to calculate the hash from (use with --kernel).
    #[arg(long, value_name = "PATH")]
    pub(crate) initrd: Option<OsString>,
    /// Kernel command line to calculate the hash from (use with --kernel).
    #[arg(long, value_name = "CMDLINE", allow_hyphen_values = false)]
    pub(crate) append: Option<String>,
    /// Guest kernel features expected in SEV_FEATURES (default 0x1).
    #[arg(long, allow_negative_numbers = true, value_name = "VALUE", default_value = "0x1")]
    pub(crate) guest_features: String,
    /// Measurement output format.
    #[arg(long, default_value = "hex", value_parser = ["hex", "base64"])]
    pub(crate) output_format: String,
    /// Precalculated hash of the OVMF binary (hex string).
    #[arg(long, value_name = "HASH")]
    pub(crate) snp_ovmf_hash: Option<String>,
    /// Write measured VMSAs to `vmsa<N>.bin` (seves, snp, and snp:svsm modes only).
    #[arg(long)]
    pub(crate) dump_vmsa: bool,
    /// SVSM binary (snp:svsm mode).
    #[arg(long, value_name = "PATH")]
    pub(crate) svsm: Option<OsString>,
    /// Size of the OVMF_VARS file in bytes (snp:svsm mode; conflicts with --vars-file).
    #[arg(long, allow_negative_numbers = true, value_name = "SIZE", conflicts_with = "vars_file")]
    pub(crate) vars_size: Option<String>,
    /// OVMF_VARS file (snp:svsm mode; conflicts with --vars-size).
    #[arg(long, value_name = "PATH")]
    pub(crate) vars_file: Option<OsString>,
    /// List every page update with the running digest (SNP modes).
    #[arg(long)]
    pub(crate) explain: bool,
}

/// Parses an integer as Python's `int(s)` (base 10) or `int(s, 0)` (auto base) does: surrounding whitespace, a
/// sign, `_` between digits, and for base 0 the `0x`/`0o`/`0b` prefixes. Values beyond 128 bits are refused.
pub(crate) fn parse_py_int(s: &str, auto_base: bool) -> Option<i128> {
    let t = s.trim();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let lower = t.to_ascii_lowercase();
    let (radix, digits, prefixed) = match lower.get(..2) {
        Some("0x") if auto_base => (16, &t[2..], true),
        Some("0o") if auto_base => (8, &t[2..], true),
        Some("0b") if auto_base => (2, &t[2..], true),
        _ => (10, t, false),
    };
    // An underscore may follow a prefix, and may sit between two digits, never at the end or doubled.
    let body = if prefixed { digits.strip_prefix('_').unwrap_or(digits) } else { digits };
    if body.is_empty() || body.starts_with('_') || body.ends_with('_') || body.contains("__") {
        return None;
    }
    let clean: String = body.chars().filter(|&c| c != '_').collect();
    if !clean.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    // Base 0 forbids leading zeros in a non-zero decimal number.
    if auto_base && !prefixed && clean.starts_with('0') && clean.chars().any(|c| c != '0') {
        return None;
    }
    let value = i128::from_str_radix(&clean, radix).ok()?;
    Some(if neg { -value } else { value })
}

fn int_arg(flag: &str, value: &str, auto_base: bool) -> CliResult<i128> {
    parse_py_int(value, auto_base).ok_or_else(|| {
        let kind = if auto_base { "integer (decimal, 0x, 0o or 0b)" } else { "decimal integer" };
        Failure::usage(format!("argument {flag}: invalid value `{value}`, expected a {kind}"))
    })
}

/// The vCPU counts asked for: one count (the reference's behaviour) or a table.
#[derive(Debug, Clone, PartialEq, Eq)]
enum VcpuCounts {
    One(u32),
    Table(Vec<u32>),
}

impl VcpuCounts {
    fn list(&self) -> Vec<u32> {
        match self {
            VcpuCounts::One(n) => vec![*n],
            VcpuCounts::Table(v) => v.clone(),
        }
    }
}

const MAX_VCPUS: i128 = 1 << 20;

fn count(value: &str, n: i128) -> CliResult<u32> {
    if n > MAX_VCPUS {
        return Err(Failure::usage(format!("argument --vcpus: `{value}` is more than {MAX_VCPUS} vCPUs")));
    }
    // sev-snp-measure accepts 0 and negative counts and measures no VMSA page; no guest launches that way, and a
    // recipe refuses 0, so this is refused (docs/NOTES.md records the difference).
    if n < 1 {
        return Err(Failure::usage(format!(
            "argument --vcpus: `{value}` has a count below 1; a guest has at least one vCPU"
        )));
    }
    Ok(u32::try_from(n).unwrap_or(0))
}

fn parse_vcpus(value: &str) -> CliResult<VcpuCounts> {
    let bad = || Failure::usage(format!("argument --vcpus: invalid value `{value}`, expected N, A-B or A,B,C"));
    if let Some(n) = parse_py_int(value, false) {
        return Ok(VcpuCounts::One(count(value, n)?));
    }
    let mut out = Vec::new();
    if value.contains(',') {
        for part in value.split(',') {
            let n = parse_py_int(part, false).filter(|n| *n >= 0).ok_or_else(bad)?;
            out.push(count(value, n)?);
        }
    } else {
        let (a, b) = value.split_once('-').ok_or_else(bad)?;
        let a = parse_py_int(a, false).filter(|n| *n >= 0).ok_or_else(bad)?;
        let b = parse_py_int(b, false).filter(|n| *n >= a).ok_or_else(bad)?;
        let (a, b) = (count(value, a)?, count(value, b)?);
        out.extend(a..=b);
    }
    Ok(VcpuCounts::Table(out))
}

fn usage(msg: impl Into<String>) -> Failure {
    Failure::usage(msg.into())
}

/// Every integer argument, parsed up front as argparse does (a bad value is refused even when unused).
struct Ints {
    sig: Option<i128>,
    family: Option<i128>,
    model: Option<i128>,
    stepping: Option<i128>,
    features: i128,
    vars_size: Option<i128>,
    vcpus: Option<VcpuCounts>,
}

fn parse_ints(args: &Opts) -> CliResult<Ints> {
    let opt = |flag: &str, v: &Option<String>, auto| v.as_deref().map(|s| int_arg(flag, s, auto)).transpose();
    Ok(Ints {
        sig: opt("--vcpu-sig", &args.vcpu_sig, true)?,
        family: opt("--vcpu-family", &args.vcpu_family, false)?,
        model: opt("--vcpu-model", &args.vcpu_model, false)?,
        stepping: opt("--vcpu-stepping", &args.vcpu_stepping, false)?,
        features: int_arg("--guest-features", &args.guest_features, true)?,
        vars_size: opt("--vars-size", &args.vars_size, false)?,
        vcpus: args.vcpus.as_deref().map(parse_vcpus).transpose()?,
    })
}

/// The reference's `get_vcpu_sig`: family/model/stepping, else `--vcpu-sig`, else `--vcpu-type`; zero values count
/// as absent, as Python's truthiness makes them.
fn vcpu_sig(args: &Opts, ints: &Ints, mode: Mode, vmm: VmmType) -> CliResult<u64> {
    if mode == Mode::Sev {
        return Ok(0);
    }
    if let Some(family) = ints.family.filter(|f| *f != 0) {
        let (Some(model), Some(stepping)) = (ints.model, ints.stepping) else {
            return Err(usage("--vcpu-family needs --vcpu-model and --vcpu-stepping"));
        };
        return Ok(cpu_sig(family, model, stepping));
    }
    if let Some(sig) = ints.sig.filter(|s| *s != 0) {
        return Ok(wrap_u64(sig));
    }
    if let Some(name) = &args.vcpu_type {
        let t: VcpuType = name.parse()?;
        return Ok(t.signature());
    }
    if vmm == VmmType::Qemu {
        return Err(usage(format!("missing --vcpu-type or --vcpu-sig or --vcpu-family in guest mode '{mode}'")));
    }
    Ok(0)
}

/// A path given as an empty string is "absent" to the reference (Python truthiness).
/// (The options are `OsString`, not `PathBuf`, because clap's path parser refuses an empty value.)
fn given(path: &Option<OsString>) -> Option<&Path> {
    path.as_deref().filter(|p| !p.is_empty()).map(Path::new)
}

/// SHA-256 of a kernel or initrd file.
fn hash_file(path: &Path) -> anyhow::Result<Sha256Digest> {
    sha256_unchanged(&InputBytes::open(path)?)
}

/// SHA-256 of an input, failing if the file changed while it was being hashed (so the check comes after).
fn sha256_unchanged(bytes: &InputBytes) -> anyhow::Result<Sha256Digest> {
    let digest = sha256(bytes);
    bytes.check_unchanged()?;
    Ok(digest)
}

/// The inputs of a measurement with everything that is hashed once already hashed.
struct HashedInputs {
    ovmf: InputBytes,
    /// SHA-384 of each firmware page (SNP modes only; empty otherwise).
    page_digests: Vec<Sha384>,
    kernel: Option<KernelHashes>,
    svsm: Option<InputBytes>,
}

/// Hashes every input once, on two threads. The kernel's SHA-256 is the longest step that cannot be split (a
/// 12 MiB kernel takes about 7 ms), so this thread starts on it at once. A helper first maps the kernel's pages
/// (so that this thread takes no page faults), then hashes the initrd and the firmware pages; whoever finishes first
/// helps with the pages that are left. The page digests land in page order whoever computed them.
fn hash_inputs(args: &Opts, mode: Mode) -> CliResult<HashedInputs> {
    let ovmf = InputBytes::open(&args.ovmf)?;
    let kernel = given(&args.kernel).map(InputBytes::open).transpose()?;
    let pool = PageDigestPool::new(if mode.is_snp() { &ovmf } else { &[] });
    let (kernel, page_digests) = std::thread::scope(|s| -> anyhow::Result<_> {
        let helper = spawn_promptly(s, || {
            if let Some(kernel) = &kernel {
                kernel.prefault();
            }
            let initrd = given(&args.initrd).map(hash_file).transpose();
            (initrd, pool.help())
        });
        let kernel = kernel.as_ref().map(sha256_unchanged);
        let mine = pool.help();
        let (initrd, theirs) = helper.join().map_err(|_| anyhow::anyhow!("bug: the initrd hashing thread panicked"))?;
        let (kernel, initrd) = (kernel.transpose()?, initrd?);
        let page_digests = pool.collect([mine, theirs]);
        Ok((kernel.map(|k| KernelHashes::new(k, initrd, args.append.as_deref())), page_digests))
    })?;
    ovmf.check_unchanged()?;
    let svsm = args.svsm.as_deref().filter(|_| mode == Mode::SnpSvsm).map(|p| InputBytes::open(Path::new(p)));
    Ok(HashedInputs { ovmf, page_digests, kernel, svsm: svsm.transpose()? })
}

/// `bytes.fromhex`: pairs of hex digits, optionally separated by ASCII whitespace.
fn parse_ovmf_hash(s: &str) -> CliResult<Sha384> {
    let compact: String = s.split_ascii_whitespace().collect();
    let hint = || {
        Failure::hinted(
            anyhow::anyhow!("--snp-ovmf-hash `{s}` is not a 48-byte hex string"),
            "use the output of `cvmforge measure snp --mode snp:ovmf-hash --ovmf <file>`",
        )
    };
    let bytes = hex::decode(&compact).map_err(|_| hint())?;
    Sha384::from_slice(&bytes).map_err(|_| hint())
}

/// Runs the subcommand.
pub(crate) fn run(args: Args, ui: &Ui) -> CliResult {
    let args = *args.opts;
    let ints = parse_ints(&args)?;
    let mode: Mode = args.mode.parse()?;
    if mode == Mode::SnpOvmfHash {
        // The reference prints this mode in hex before checking any other option.
        let ovmf = InputBytes::open(&args.ovmf)?;
        let base = SnpMeasurementArgs::new(mode, &ovmf, 0);
        return render(&args, ui, mode, &base, &VcpuCounts::One(0), true);
    }
    if given(&args.initrd).is_some() && args.kernel.is_none() {
        return Err(usage("--kernel required when using --initrd"));
    }
    if args.append.as_deref().is_some_and(|a| !a.is_empty()) && args.kernel.is_none() {
        return Err(usage("--kernel required when using --append"));
    }
    let counts = match (&ints.vcpus, mode) {
        (Some(c), _) => c.clone(),
        (None, Mode::Sev) => VcpuCounts::One(0),
        (None, _) => return Err(usage(format!("missing --vcpus N in guest mode '{mode}'"))),
    };
    let vmm: VmmType = args.vmm_type.parse().map_err(|e| usage(format!("{e}")))?;
    let sig = vcpu_sig(&args, &ints, mode, vmm)?;
    let vars_size = vars_size(&args, &ints, mode)?;
    if args.dump_vmsa && mode == Mode::Sev {
        return Err(usage("--dump-vmsa is not available in mode `sev`"));
    }
    let inputs = hash_inputs(&args, mode)?;
    let mut margs = SnpMeasurementArgs::new(mode, &inputs.ovmf, sig);
    margs.ovmf_page_digests = Some(&inputs.page_digests);
    margs.kernel = inputs.kernel;
    margs.guest_features = wrap_u64(ints.features);
    margs.vmm = vmm;
    margs.svsm = inputs.svsm.as_deref();
    margs.vars_size = vars_size;
    margs.ovmf_hash = args.snp_ovmf_hash.as_deref().filter(|s| !s.is_empty()).map(parse_ovmf_hash).transpose()?;
    if margs.ovmf_hash.is_some() && mode != Mode::Snp {
        return Err(guest::GuestError::OvmfHashNotSnp { mode }.into());
    }
    if args.dump_vmsa {
        dump_vmsa(&margs, &counts)?;
    }
    render(&args, ui, mode, &margs, &counts, false)
}

fn vars_size(args: &Opts, ints: &Ints, mode: Mode) -> CliResult<i128> {
    if mode != Mode::SnpSvsm {
        return Ok(0);
    }
    if let Some(path) = given(&args.vars_file) {
        let len = fs_err::metadata(path)?.len();
        return Ok(i128::from(len));
    }
    match ints.vars_size.filter(|v| *v != 0) {
        Some(v) => Ok(v),
        None => Err(usage("snp:svsm mode requires --vars-size or --vars-file")),
    }
}

fn dump_vmsa(margs: &SnpMeasurementArgs<'_>, counts: &VcpuCounts) -> CliResult<()> {
    let max = counts.list().into_iter().max().unwrap_or(0);
    for (i, page) in guest::vmsa_pages(margs, max)?.iter().enumerate() {
        fs_err::write(format!("vmsa{i}.bin"), page)?;
    }
    Ok(())
}

/// One row of the digest table.
#[derive(Debug, Serialize)]
struct DigestRow {
    vcpus: u32,
    digest: String,
}

/// One row of `--explain`.
#[derive(Debug, Serialize)]
struct PageRow {
    gpa: String,
    page_type: &'static str,
    region: String,
    digest: String,
}

/// The `--json` document.
#[derive(Debug, Serialize)]
struct Report {
    schema_version: u32,
    mode: &'static str,
    vmm_type: &'static str,
    /// The `rdx` value of the VMSAs (CPUID signature), lowercase hex.
    vcpu_sig: String,
    /// SEV_FEATURES of the SNP VMSAs, lowercase hex.
    guest_features: String,
    /// `hex` or `base64`: how `digest` is written.
    output_format: String,
    digests: Vec<DigestRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pages: Option<Vec<PageRow>>,
}

fn encode(digest: &LaunchDigest, format: &str) -> String {
    match format {
        "base64" => base64::engine::general_purpose::STANDARD.encode(digest.as_bytes()),
        _ => digest.to_string(),
    }
}

fn render(
    args: &Opts,
    ui: &Ui,
    mode: Mode,
    margs: &SnpMeasurementArgs<'_>,
    counts: &VcpuCounts,
    ovmf_hash_mode: bool,
) -> CliResult {
    let list = counts.list();
    let digests = guest::launch_digests(margs, &list).map_err(with_hint)?;
    let format = if ovmf_hash_mode { "hex" } else { args.output_format.as_str() };
    let pages = if args.explain {
        let max = list.iter().copied().max().unwrap_or(0);
        Some(guest::explain(margs, max)?)
    } else {
        None
    };
    if ui.json {
        let report = Report {
            schema_version: 1,
            mode: mode.name(),
            vmm_type: margs.vmm.name(),
            vcpu_sig: format!("{:#x}", margs.vcpu_sig),
            guest_features: format!("{:#x}", margs.guest_features),
            output_format: format.to_owned(),
            digests: digests.iter().map(|(n, d)| DigestRow { vcpus: *n, digest: encode(d, format) }).collect(),
            pages: pages.as_deref().map(|p| p.iter().map(page_row).collect()),
        };
        super::print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    if let Some(pages) = &pages {
        for (i, p) in pages.iter().enumerate() {
            writeln!(
                out,
                "{i:>6}  {:#014x}  {:<10}  {:<28}  {}",
                p.gpa,
                p.page_type.name(),
                p.region.to_string(),
                p.digest
            )?;
        }
    }
    match counts {
        VcpuCounts::One(_) => {
            for (_, d) in &digests {
                let text = encode(d, format);
                if args.verbose && !ovmf_hash_mode {
                    writeln!(out, "Calculated {} guest measurement: {text}", mode.verbose_name())?;
                } else {
                    writeln!(out, "{text}")?;
                }
            }
        }
        VcpuCounts::Table(_) => {
            for (n, d) in &digests {
                writeln!(out, "{n:>5}  {}", encode(d, format))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Adds what to do about the refusals users meet most (docs/specs/snp-launch-digest.md, "What users trip on").
fn with_hint(err: guest::GuestError) -> Failure {
    let hint = match &err {
        guest::GuestError::NoKernelHashesSection | guest::GuestError::KernelHashesUnsupported => {
            "use a firmware built from OvmfPkg/AmdSev (e.g. Debian's OVMF.amdsev.fd) loaded with `-bios`, and start \
             QEMU with `kernel-hashes=on`"
        }
        guest::GuestError::NoApResetEip { .. } => "this firmware supports one vCPU only under SEV-ES/SNP",
        _ => return err.into(),
    };
    Failure::hinted(err, hint)
}

fn page_row(p: &PageUpdate) -> PageRow {
    PageRow {
        gpa: format!("{:#x}", p.gpa),
        page_type: p.page_type.name(),
        region: p.region.to_string(),
        digest: p.digest.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_int_rules() {
        assert_eq!(parse_py_int(" 0x1_f ", true), Some(0x1f));
        assert_eq!(parse_py_int("0x_1f", true), Some(0x1f));
        assert_eq!(parse_py_int("-12", false), Some(-12));
        assert_eq!(parse_py_int("012", false), Some(12));
        assert_eq!(parse_py_int("000", true), Some(0));
        assert_eq!(parse_py_int("0o17", true), Some(0o17));
        assert_eq!(parse_py_int("0B101", true), Some(5));
    }

    #[test]
    fn rejects_what_python_rejects() {
        for s in ["012", "1__0", "_1", "1_", "0x", "", "0x1g", "1.0"] {
            assert_eq!(parse_py_int(s, true), None, "{s}");
        }
        assert_eq!(parse_py_int("0x10", false), None);
    }

    #[test]
    fn vcpu_ranges_and_lists() {
        assert_eq!(parse_vcpus("4").unwrap(), VcpuCounts::One(4));
        // Issue 11, item 13: no 0-vCPU digest.
        for bad in ["0", "-3", "0-4", "0,1"] {
            let err = parse_vcpus(bad).unwrap_err().to_string();
            assert!(err.contains("below 1") || err.contains("invalid value"), "{bad}: {err}");
        }
        assert_eq!(parse_vcpus("1-3").unwrap(), VcpuCounts::Table(vec![1, 2, 3]));
        assert_eq!(parse_vcpus("1,2,8").unwrap(), VcpuCounts::Table(vec![1, 2, 8]));
        assert!(parse_vcpus("3-1").is_err());
        assert!(parse_vcpus("a").is_err());
    }
}
