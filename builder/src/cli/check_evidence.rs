//! `cvmforge check-evidence RELEASE (--snp-report R | --tdx-quote Q)`: is this VM running exactly a published
//! release, with a safe policy? A thin layer over [`cvmforge::evidence`].
//!
//! Exit codes: 0 every check passed; 1 a check failed (the table says which); 2 usage errors.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;

use super::{print_json, CliResult, Failure, Ui};
use cvmforge::evidence::snp::{self, MinTcb, SnpCerts, SnpOptions};
use cvmforge::evidence::tdx::{self, TdxOptions};
use cvmforge::evidence::{parse_hex, time::parse_rfc3339, EvidenceError, Release, Verdict};
use cvmforge::manifest::Manifest;
use cvmforge::sys::regular_file::read_capped;

/// Largest certificate, chain or report file read.
const MAX_SMALL_FILE: u64 = 64 * 1024;
/// Largest collateral file read.
const MAX_COLLATERAL: u64 = 4 << 20;

/// Arguments of `cvmforge check-evidence`.
#[derive(Debug, clap::Args)]
#[command(
    group(clap::ArgGroup::new("evidence").required(true).args(["snp_report", "tdx_quote"])),
    after_help = "RELEASE is the release's manifest.json or its .cvm.tar bundle. Nothing is fetched: certificates and \
collateral are files you give. Time is --now (RFC 3339), else the clock.\n\n\
Exit status: 0 every check passed, 1 a check failed, 2 usage error.\n\n\
Examples:\n  cvmforge check-evidence demo-0.1.0.cvm.tar --snp-report report.bin --vcek vcek.der --cert-chain cert_chain.pem\n  \
cvmforge check-evidence manifest.json --tdx-quote quote.bin --collateral collateral.json --now 2025-06-01T00:00:00Z"
)]
pub(crate) struct Args {
    /// The release: a `manifest.json`, a `.cvm.tar` bundle, or (with --signer-key) a signed launch statement.
    pub(crate) release: PathBuf,
    /// RELEASE is a DSSE envelope of a launch statement (`cvmforge attest` + `cvmforge sign`): check its signature
    /// with this public key first.
    #[arg(long, value_name = "PUB")]
    pub(crate) signer_key: Option<PathBuf>,
    /// An SEV-SNP attestation report (1184 bytes, binary).
    #[arg(long, value_name = "FILE")]
    pub(crate) snp_report: Option<PathBuf>,
    /// The VCEK certificate that signed the report (DER or PEM).
    #[arg(long, value_name = "FILE", conflicts_with = "vlek")]
    pub(crate) vcek: Option<PathBuf>,
    /// The VLEK certificate that signed the report (DER or PEM).
    #[arg(long, value_name = "FILE")]
    pub(crate) vlek: Option<PathBuf>,
    /// The AMD KDS `cert_chain` (ASK and ARK, PEM); default: the Milan, Genoa and Turin chains built in.
    #[arg(long, value_name = "FILE")]
    pub(crate) cert_chain: Option<PathBuf>,
    /// Trust this ARK (DER or PEM) besides AMD's built-in ones: a private test root, or a newer product's.
    #[arg(long, value_name = "FILE")]
    pub(crate) trusted_ark: Option<PathBuf>,
    /// The VMPL the report must come from.
    #[arg(long, default_value_t = 0)]
    pub(crate) vmpl: u32,
    /// Accept a policy that allows a migration agent.
    #[arg(long)]
    pub(crate) allow_migration_agent: bool,
    /// The lowest REPORTED_TCB accepted: `bootloader=N,tee=N,snp=N,microcode=N`.
    #[arg(long, value_name = "TCB")]
    pub(crate) min_tcb: Option<String>,
    /// A TDX quote (v4 or v5, binary).
    #[arg(long, value_name = "FILE")]
    pub(crate) tdx_quote: Option<PathBuf>,
    /// The quote's collateral, as dcap-qvl's QuoteCollateralV3 JSON.
    #[arg(long, value_name = "FILE")]
    pub(crate) collateral: Option<PathBuf>,
    /// Accept this TCB status besides UpToDate (repeatable: OutOfDate, SWHardeningNeeded, ...).
    #[arg(long, value_name = "STATUS")]
    pub(crate) allow_tcb_status: Vec<String>,
    /// Require this RTMR0 (96 hex digits); the release cannot compute it yet.
    #[arg(long, value_name = "HEX")]
    pub(crate) rtmr0: Option<String>,
    /// Require this RTMR3 (default: zero).
    #[arg(long, value_name = "HEX")]
    pub(crate) rtmr3: Option<String>,
    /// Require this MRCONFIGID (default: zero).
    #[arg(long, value_name = "HEX")]
    pub(crate) mrconfigid: Option<String>,
    /// Require this MROWNER (default: zero).
    #[arg(long, value_name = "HEX")]
    pub(crate) mrowner: Option<String>,
    /// Require this MROWNERCONFIG (default: zero).
    #[arg(long, value_name = "HEX")]
    pub(crate) mrownerconfig: Option<String>,
    /// Require REPORT_DATA to be this (128 hex digits): a nonce, or the hash of a TLS key.
    #[arg(long, value_name = "HEX")]
    pub(crate) report_data: Option<String>,
    /// The time to check certificates and collateral at (RFC 3339); default: now.
    #[arg(long, value_name = "TIME")]
    pub(crate) now: Option<String>,
}

/// The `--json` document.
#[derive(Debug, Serialize)]
struct Output<'a> {
    schema_version: u32,
    release: String,
    pass: bool,
    #[serde(flatten)]
    verdict: &'a Verdict,
}

pub(crate) fn run(args: Args, ui: &Ui) -> CliResult {
    let now = match &args.now {
        Some(text) => parse_rfc3339(text).ok_or_else(|| {
            Failure::usage(format!("--now `{text}` is not an RFC 3339 time such as 2025-06-01T00:00:00Z"))
        })?,
        // The one clock reading: the caller gave no time to check at.
        #[allow(clippy::disallowed_methods)]
        None => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
    };
    let (release, signed_by) = match &args.signer_key {
        Some(key) => {
            let (release, keyid) = load_signed_release(&args.release, key)?;
            (release, Some(keyid))
        }
        None => (Release::from_manifest(&load_release(&args.release)?), None),
    };
    let mut verdict = match (&args.snp_report, &args.tdx_quote) {
        (Some(report), None) => check_snp(&args, report, &release, now)?,
        (None, Some(quote)) => check_tdx(&args, quote, &release, now)?,
        _ => return Err(Failure::usage("give exactly one of --snp-report and --tdx-quote")),
    };
    if let Some(keyid) = signed_by {
        let check = cvmforge::evidence::Check::new(
            "release_statement",
            format!("a launch statement signed by key {keyid}"),
            "verified",
            true,
        );
        verdict.checks.insert(0, check);
    }
    if ui.json {
        let shown = args.release.display().to_string();
        print_json(&Output { schema_version: 1, release: shown, pass: verdict.pass(), verdict: &verdict })?;
    } else {
        print!("{}", render(&verdict));
    }
    Ok(ExitCode::from(if verdict.pass() { 0 } else { super::EXIT_FAILED }))
}

fn check_snp(args: &Args, report: &Path, release: &Release, now: u64) -> CliResult<Verdict> {
    let (vek_path, kind) = match (&args.vcek, &args.vlek) {
        (Some(p), None) => (p, "VCEK"),
        (None, Some(p)) => (p, "VLEK"),
        _ => return Err(Failure::usage("an SEV-SNP report needs the certificate that signed it: --vcek or --vlek")),
    };
    let report = read(report, MAX_SMALL_FILE, "report")?;
    let vek = read(vek_path, MAX_SMALL_FILE, kind)?;
    let chain = args.cert_chain.as_deref().map(|p| read(p, MAX_SMALL_FILE, "cert chain")).transpose()?;
    let trusted = args.trusted_ark.as_deref().map(|p| read(p, MAX_SMALL_FILE, "trusted ARK")).transpose()?;
    let options = SnpOptions {
        vmpl: args.vmpl,
        allow_migration_agent: args.allow_migration_agent,
        min_tcb: args.min_tcb.as_deref().map(MinTcb::parse).transpose().map_err(evidence)?,
        report_data: report_data(args)?,
    };
    let certs = SnpCerts { vek: &vek, vek_kind: kind, chain_pem: chain.as_deref(), trusted_ark: trusted.as_deref() };
    snp::check(&report, &certs, release, now, &options).map_err(evidence)
}

fn check_tdx(args: &Args, quote: &Path, release: &Release, now: u64) -> CliResult<Verdict> {
    let Some(collateral) = &args.collateral else {
        return Err(Failure::usage("a TDX quote is verified against its collateral: --collateral FILE (JSON)"));
    };
    let quote = read(quote, tdx::MAX_QUOTE as u64, "quote")?;
    let collateral = read(collateral, MAX_COLLATERAL, "collateral")?;
    let reg = |what, v: &Option<String>| v.as_deref().map(|h| parse_hex::<48>(what, h)).transpose().map_err(evidence);
    let options = TdxOptions {
        allow_tcb_status: args.allow_tcb_status.clone(),
        rtmr0: reg("--rtmr0", &args.rtmr0)?,
        rtmr3: reg("--rtmr3", &args.rtmr3)?,
        mrconfigid: reg("--mrconfigid", &args.mrconfigid)?,
        mrowner: reg("--mrowner", &args.mrowner)?,
        mrownerconfig: reg("--mrownerconfig", &args.mrownerconfig)?,
        report_data: report_data(args)?,
    };
    tdx::check(&quote, &collateral, release, now, &options).map_err(evidence)
}

fn report_data(args: &Args) -> CliResult<Option<[u8; 64]>> {
    args.report_data.as_deref().map(|h| parse_hex("--report-data", h)).transpose().map_err(evidence)
}

fn evidence(err: EvidenceError) -> Failure {
    let hint = err.hint();
    Failure::from(anyhow::Error::new(err)).with_hint(hint)
}

fn read(path: &Path, cap: u64, what: &str) -> CliResult<Vec<u8>> {
    if !path.exists() {
        return Err(Failure::usage(format!("{what} `{}` does not exist", path.display())));
    }
    let bytes = read_capped(path, cap).with_context(|| format!("cannot read the {what} `{}`", path.display()))?;
    Ok(bytes)
}

/// A release given as a signed launch statement: the envelope verified with `key`, its statement an in-toto
/// Statement v1 of the launch-measurement predicate; returns its shapes and the signer's key id.
fn load_signed_release(path: &Path, key: &Path) -> CliResult<(Release, String)> {
    use cvmforge::publish::{dsse, keys, statement};
    let shown = path.display().to_string();
    let pem = read(key, MAX_SMALL_FILE, "signer key")?;
    let key = keys::read_public(&String::from_utf8_lossy(&pem)).context("--signer-key is not a public key")?;
    let bytes = read(path, dsse::MAX_ENVELOPE, "release statement")?;
    let envelope = dsse::parse(&bytes).with_context(|| format!("the release `{shown}` is not a DSSE envelope"))?;
    let payload = dsse::verify(&envelope, &key, dsse::IN_TOTO_PAYLOAD_TYPE)
        .with_context(|| format!("the release statement `{shown}` is refused"))?;
    let value: serde_json::Value = serde_json::from_slice(&payload).context("the signed statement is not JSON")?;
    let kind = value.get("predicateType").and_then(|t| t.as_str()).unwrap_or_default();
    if value.get("_type").and_then(|t| t.as_str()) != Some(statement::STATEMENT_TYPE)
        || kind != statement::LAUNCH_PREDICATE
    {
        return Err(anyhow::anyhow!(
            "the release statement `{shown}` is not a launch statement (predicate type `{}`, expected `{}`)",
            u(kind),
            statement::LAUNCH_PREDICATE
        )
        .into());
    }
    let release: Release = serde_json::from_value(value.get("predicate").cloned().unwrap_or_default())
        .context("the launch statement's predicate does not have the launch-measurement schema")?;
    Ok((release, dsse::keyid(&key)))
}

/// The manifest of a release given as `manifest.json` or as its bundle.
fn load_release(path: &Path) -> CliResult<Manifest> {
    if !path.exists() {
        return Err(Failure::usage(format!("release `{}` does not exist", path.display())));
    }
    let shown = path.display().to_string();
    let (bytes, _) =
        super::read_release_manifest(path).with_context(|| format!("cannot read the release `{shown}`"))?;
    let text = std::str::from_utf8(&bytes).map_err(|_| anyhow::anyhow!("the manifest of `{shown}` is not UTF-8"))?;
    Ok(Manifest::from_json(text).with_context(|| format!("the release `{shown}` is not a cvmforge manifest"))?)
}

fn u(text: &str) -> String {
    cvmforge::display::untrusted(text).to_string()
}

/// A table of checks, the matched shape, the notes, the verdict.
fn render(v: &Verdict) -> String {
    let mut out = String::new();
    let width = v.checks.iter().map(|c| c.name.len()).max().unwrap_or(5).max(5);
    out.push_str(&format!("{:<4}  {:<width$}  ACTUAL (EXPECTED)\n", "", "CHECK"));
    for c in &v.checks {
        let mark = if c.pass { "ok" } else { "FAIL" };
        out.push_str(&format!("{mark:<4}  {:<width$}  {} ({})\n", c.name, u(&c.actual), u(&c.expected)));
    }
    out.push('\n');
    match &v.matched_shape {
        Some(shape) => out.push_str(&format!("matched shape: {}\n", u(shape))),
        None => out.push_str("matched shape: none\n"),
    }
    if !v.report_data.is_empty() {
        out.push_str(&format!("report_data: {}\n", v.report_data));
    }
    for note in &v.notes {
        // Notes are cvmforge's sentences with names from the manifest in them: escaped, and bounded generously.
        out.push_str(&format!("note: {}\n", cvmforge::display::untrusted_bounded(note, 2048)));
    }
    let failed = v.checks.iter().filter(|c| !c.pass).count();
    if v.pass() {
        out.push_str(&format!("verdict: PASS ({} checks)\n", v.checks.len()));
    } else {
        out.push_str(&format!("verdict: FAIL ({failed} of {} checks failed)\n", v.checks.len()));
    }
    out
}
