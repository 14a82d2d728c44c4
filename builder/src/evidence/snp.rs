//! SEV-SNP attestation reports (`docs/specs/attestation-layouts.md`): 1184 bytes, versions 2, 3 and 5, signed with
//! ECDSA P-384 over bytes `0x000..0x2A0` by the chip's VCEK (or a cloud's VLEK), whose certificate chains to an AMD
//! root (ARK) through an AMD signing key (ASK).
//!
//! The order is what makes a verdict trustworthy: the chain (with the `sev` crate, pure-Rust crypto, ending at one of
//! the Milan, Genoa or Turin ARKs built into it: a chain to any other root fails), the certificates' validity at
//! `now`, then the signature over the report's own bytes; only then are fields read, by the `sev` crate's parser.
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use p384::ecdsa::signature::DigestVerifier;
use sev::certs::snp::{builtin, ca, Certificate, Chain, Verifiable};
use sev::firmware::guest::AttestationReport;
use sev::parser::ByteParser;
use sha2::{Digest, Sha384};

use super::{array, u32_at, u64_at, Check, EvidenceError, Release, SnpShape, Verdict};

/// Length of a report.
pub const REPORT_LEN: usize = 0x4A0;
/// The signed part: bytes `0..SIGNED_LEN`.
pub const SIGNED_LEN: usize = 0x2A0;
/// Report versions read.
pub const VERSIONS: [u32; 3] = [2, 3, 5];
/// POLICY bits.
pub const POLICY_SMT: u64 = 1 << 16;
/// POLICY bit 18: a migration agent may be associated with the guest.
pub const POLICY_MIGRATE_MA: u64 = 1 << 18;
/// POLICY bit 19: the host may debug the guest (read and write its memory).
pub const POLICY_DEBUG: u64 = 1 << 19;

/// The certificates that vouch for a report, as the caller has them (DER or PEM).
#[derive(Debug, Clone, Copy)]
pub struct SnpCerts<'a> {
    /// The VCEK or VLEK certificate.
    pub vek: &'a [u8],
    /// `VCEK` or `VLEK`, for messages.
    pub vek_kind: &'static str,
    /// The KDS `cert_chain` (ASK and ARK, PEM); `None`: the ASKs and ARKs built into the `sev` crate.
    pub chain_pem: Option<&'a [u8]>,
    /// A root (ARK, DER or PEM) trusted besides AMD's: a private test root, or a product newer than this build.
    pub trusted_ark: Option<&'a [u8]>,
}

/// A minimum TCB, field by field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MinTcb {
    /// PSP bootloader SVN.
    pub bootloader: u8,
    /// PSP OS SVN.
    pub tee: u8,
    /// SNP firmware SVN.
    pub snp: u8,
    /// Microcode patch level.
    pub microcode: u8,
}

impl MinTcb {
    /// Parses `bootloader=N,tee=N,snp=N,microcode=N` (any subset; missing fields are 0).
    pub fn parse(text: &str) -> Result<MinTcb, EvidenceError> {
        let mut tcb = MinTcb::default();
        for part in text.split(',').filter(|p| !p.trim().is_empty()) {
            let bad = || EvidenceError::Argument {
                what: "--min-tcb",
                reason: format!("`{part}`: expected bootloader=N, tee=N, snp=N or microcode=N (N from 0 to 255)"),
            };
            let (key, value) = part.trim().split_once('=').ok_or_else(bad)?;
            let value: u8 = value.trim().parse().map_err(|_| bad())?;
            match key.trim() {
                "bootloader" => tcb.bootloader = value,
                "tee" => tcb.tee = value,
                "snp" => tcb.snp = value,
                "microcode" => tcb.microcode = value,
                _ => return Err(bad()),
            }
        }
        Ok(tcb)
    }
}

/// What the caller requires beyond the release.
#[derive(Debug, Clone, Default)]
pub struct SnpOptions {
    /// The VMPL the report must come from (0: the guest kernel's level).
    pub vmpl: u32,
    /// Accept a policy that allows a migration agent.
    pub allow_migration_agent: bool,
    /// The lowest REPORTED_TCB accepted.
    pub min_tcb: Option<MinTcb>,
    /// REPORT_DATA must equal this (a nonce, or the hash of a TLS key).
    pub report_data: Option<[u8; 64]>,
}

/// Checks `report` against the SNP shapes of `release`, at time `now` (seconds since the epoch).
pub fn check(
    report: &[u8],
    certs: &SnpCerts<'_>,
    release: &Release,
    now: u64,
    options: &SnpOptions,
) -> Result<Verdict, EvidenceError> {
    let mut verdict = start(report, release)?;
    match verify_chain(certs, now, &mut verdict) {
        Some(vek) => Ok(check_signed(report, &vek, certs.vek_kind, release, options, verdict)),
        None => Ok(stopped(verdict)),
    }
}

/// [`check`] for a caller that already holds the VEK's public key (it verified the chain itself, or it tests with
/// a key of its own): the signature, then every field.
pub fn check_with_key(
    report: &[u8],
    vek: &p384::ecdsa::VerifyingKey,
    release: &Release,
    options: &SnpOptions,
) -> Result<Verdict, EvidenceError> {
    let verdict = start(report, release)?;
    Ok(check_signed(report, vek, "VEK", release, options, verdict))
}

fn start(report: &[u8], release: &Release) -> Result<Verdict, EvidenceError> {
    if report.len() != REPORT_LEN {
        let expected = format!("an SEV-SNP attestation report is exactly {REPORT_LEN} bytes");
        return Err(EvidenceError::Length { what: "the report", len: report.len(), expected });
    }
    if release.snp.is_empty() {
        return Err(EvidenceError::NoShapes { platform: "SEV-SNP" });
    }
    for (i, m) in release.snp.iter().enumerate() {
        if m.measurement.len() != 96 || !m.measurement.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(EvidenceError::Release {
                field: format!("snp[{i}] ({}).measurement", m.name),
                reason: "is not 96 hex digits (SHA-384)",
            });
        }
    }
    Ok(Verdict::new("snp", hex::encode(array::<64>(report, 0x50))))
}

fn check_signed(
    report: &[u8],
    vek: &p384::ecdsa::VerifyingKey,
    kind: &str,
    release: &Release,
    options: &SnpOptions,
    mut verdict: Verdict,
) -> Verdict {
    let signed = verify_signature(report, vek);
    let signature_ok = signed.is_ok();
    verdict.checks.push(Check::new(
        "signature",
        format!("ECDSA P-384 over bytes 0x000..0x2a0 by the {kind}"),
        signed.map_or_else(|e| e, |()| "verified".into()),
        signature_ok,
    ));
    if !signature_ok {
        return stopped(verdict);
    }
    check_fields(report, &release.snp, options, &mut verdict);
    verdict
}

/// Reads the fields (the signature holds, so they are the chip's) and checks them.
fn check_fields(report: &[u8], shapes: &[SnpShape], options: &SnpOptions, verdict: &mut Verdict) {
    let version = u32_at(report, 0);
    let known = VERSIONS.contains(&version);
    verdict.checks.push(Check::new("version", "2, 3 or 5", version.to_string(), known));
    let sig_algo = u32_at(report, 0x34);
    verdict.checks.push(Check::new(
        "signature_algo",
        "1 (ECDSA P-384 with SHA-384)",
        sig_algo.to_string(),
        sig_algo == 1,
    ));
    if !known {
        verdict
            .notes
            .push(format!("report version {version} is not one cvmforge reads (2, 3, 5): its fields are not read"));
        return;
    }
    let parsed = match AttestationReport::from_bytes(report) {
        Ok(parsed) => parsed,
        Err(e) => {
            verdict.checks.push(Check::new("parse", "a report the sev crate reads", e.to_string(), false));
            return;
        }
    };
    let measurement = hex::encode(parsed.measurement);
    let matched = shapes.iter().find(|m| m.measurement.eq_ignore_ascii_case(&measurement));
    let published = summary(shapes);
    verdict.checks.push(Check::new(
        "measurement",
        format!("one of the release's {} SEV-SNP digests", shapes.len()),
        measurement.clone(),
        matched.is_some(),
    ));
    match matched {
        Some(shape) => verdict.matched_shape = Some(describe(shape)),
        None => verdict.notes.push(format!(
            "no published shape has this launch digest. Published: {published}. A different vCPU count, vCPU type, \
             VMM, guest features, firmware, kernel, initrd or command line gives a different digest; `cvmforge measure \
             snp` computes one for a shape the release did not publish"
        )),
    }
    let policy = u64_at(report, 0x08);
    check_policy(policy, matched, options, verdict);
    verdict.checks.push(Check::new(
        "vmpl",
        options.vmpl.to_string(),
        parsed.vmpl.to_string(),
        parsed.vmpl == options.vmpl,
    ));
    check_keys(&parsed, matched, verdict);
    if let Some(min) = options.min_tcb {
        let tcb = &parsed.reported_tcb;
        for (name, have, want) in [
            ("reported_tcb.bootloader", tcb.bootloader, min.bootloader),
            ("reported_tcb.tee", tcb.tee, min.tee),
            ("reported_tcb.snp", tcb.snp, min.snp),
            ("reported_tcb.microcode", tcb.microcode, min.microcode),
        ] {
            verdict.checks.push(Check::new(name, format!(">= {want}"), have.to_string(), have >= want));
        }
    }
    check_report_data(&parsed.report_data, options.report_data.as_ref(), verdict);
}

fn check_policy(policy: u64, matched: Option<&SnpShape>, options: &SnpOptions, verdict: &mut Verdict) {
    let debug = policy & POLICY_DEBUG != 0;
    verdict.checks.push(Check::new("policy.debug", "off", on_off(debug), !debug));
    let ma = policy & POLICY_MIGRATE_MA != 0;
    let ma_ok = !ma || options.allow_migration_agent;
    let ma_expected = if options.allow_migration_agent { "off, or on (--allow-migration-agent)" } else { "off" };
    verdict.checks.push(Check::new("policy.migrate_ma", ma_expected, on_off(ma), ma_ok));
    if let Some(shape) = matched {
        let recorded = parse_u64(&shape.policy);
        let same = recorded == Some(policy);
        verdict.checks.push(Check::new(
            "policy",
            format!("{} (as the release recorded it for {})", shape.policy, shape.name),
            format!("{policy:#x} (SMT {})", on_off(policy & POLICY_SMT != 0)),
            same,
        ));
    }
}

fn check_keys(parsed: &AttestationReport, matched: Option<&SnpShape>, verdict: &mut Verdict) {
    let zero = "0".repeat(96);
    let (id, author) = match matched.and_then(|m| m.id_key_digest.as_ref().map(|id| (id, m))) {
        Some((id, m)) => (id.to_ascii_lowercase(), m.author_key_digest.clone().unwrap_or_else(|| zero.clone())),
        None => (zero.clone(), zero.clone()),
    };
    let actual_id = hex::encode(parsed.id_key_digest);
    let actual_author = hex::encode(parsed.author_key_digest);
    verdict.checks.push(Check::new("id_key_digest", id.clone(), actual_id.clone(), id == actual_id));
    let author = author.to_ascii_lowercase();
    verdict.checks.push(Check::new(
        "author_key_digest",
        author.clone(),
        actual_author.clone(),
        author == actual_author,
    ));
}

fn check_report_data(actual: &[u8; 64], expected: Option<&[u8; 64]>, verdict: &mut Verdict) {
    match expected {
        Some(want) => {
            verdict.checks.push(Check::new("report_data", hex::encode(want), hex::encode(actual), want == actual))
        }
        None => verdict
            .notes
            .push("REPORT_DATA was not checked (no --report-data): bind it to your nonce or TLS key yourself".into()),
    }
}

/// Verifies the chain (or finds the built-in one that vouches for the VEK) and the certificates' validity; returns
/// the VEK's verifying key, or `None` after recording the failure.
fn verify_chain(certs: &SnpCerts<'_>, now: u64, verdict: &mut Verdict) -> Option<p384::ecdsa::VerifyingKey> {
    let kind = certs.vek_kind;
    let fail = |verdict: &mut Verdict, actual: String| {
        verdict.checks.push(Check::new("certificate_chain", format!("{kind} <- ASK <- ARK of AMD"), actual, false));
    };
    let vek = match read_cert(certs.vek) {
        Ok(c) => c,
        Err(e) => {
            fail(verdict, format!("the {kind} is not a certificate: {e}"));
            return None;
        }
    };
    let candidates = match certs.chain_pem {
        Some(pem) => match chain_from_pem(pem) {
            Ok(chain) => vec![chain],
            Err(e) => {
                fail(verdict, e);
                return None;
            }
        },
        None => builtin_chains(),
    };
    let mut last_error = String::from("no chain");
    let mut found = None;
    for (ask, ark) in candidates {
        let chain = Chain { ca: ca::Chain { ark: ark.clone(), ask: ask.clone() }, vek: vek.clone() };
        match (&chain).verify() {
            Ok(_) => {
                found = Some((ask, ark));
                break;
            }
            Err(e) => last_error = e.to_string(),
        }
    }
    let Some((ask, ark)) = found else {
        fail(verdict, format!("the chain does not verify: {last_error}"));
        return None;
    };
    let trusted = certs.trusted_ark.and_then(|bytes| read_cert(bytes).ok());
    let root = match (amd_root(&ark), &trusted) {
        (Some(product), _) => format!("AMD {product} root"),
        (None, Some(t)) if t.to_der().ok() == ark.to_der().ok() => {
            "the root given as trusted (--trusted-ark)".to_owned()
        }
        _ => {
            fail(verdict, "the ARK is not one of AMD's (Milan, Genoa, Turin) nor a trusted one: the chain ends at an unknown root".into());
            return None;
        }
    };
    verdict.checks.push(Check::new(
        "certificate_chain",
        format!("{kind} <- ASK <- ARK of AMD"),
        format!("verified, {root}"),
        true,
    ));
    for (name, cert) in [(kind, &vek), ("ASK", &ask), ("ARK", &ark)] {
        let (ok, actual) = validity(cert, now);
        verdict.checks.push(Check::new(
            &format!("validity.{}", name.to_ascii_lowercase()),
            format!("valid at {now} (Unix time)"),
            actual,
            ok,
        ));
        if !ok {
            return None;
        }
    }
    p384::ecdsa::VerifyingKey::from_sec1_bytes(vek.public_key_sec1())
        .map_err(|_| fail(verdict, format!("the {kind} does not hold a P-384 public key")))
        .ok()
}

/// The ECDSA P-384 signature at 0x2A0 (r, s: 72 bytes each, little-endian) over SHA-384 of bytes `0..0x2A0`.
pub fn verify_signature(report: &[u8], key: &p384::ecdsa::VerifyingKey) -> Result<(), String> {
    let signed = report.get(..SIGNED_LEN).ok_or("the report is shorter than its signed part")?;
    let scalar = |at: usize| -> Result<[u8; 48], String> {
        let le: [u8; 72] = array(report, at);
        if le.iter().skip(48).any(|&b| b != 0) {
            return Err(format!("the signature component at {at:#x} does not fit in 48 bytes"));
        }
        let mut be = [0u8; 48];
        for (dst, src) in be.iter_mut().zip(le.iter().take(48).rev()) {
            *dst = *src;
        }
        Ok(be)
    };
    let (r, s) = (scalar(0x2A0)?, scalar(0x2E8)?);
    let signature = p384::ecdsa::Signature::from_scalars(r, s)
        .map_err(|_| "the signature's r or s is not a valid scalar".to_string())?;
    key.verify_digest(Sha384::new_with_prefix(signed), &signature)
        .map_err(|_| "does not verify: the report is not what the key signed (altered, or another chip's)".to_string())
}

fn read_cert(bytes: &[u8]) -> Result<Certificate, String> {
    let trimmed = bytes.trim_ascii_start();
    let parsed =
        if trimmed.starts_with(b"-----BEGIN") { Certificate::from_pem(trimmed) } else { Certificate::from_der(bytes) };
    parsed.map_err(|e| e.to_string())
}

/// The KDS `cert_chain`: two PEM certificates, the ASK and the self-signed ARK (either order).
fn chain_from_pem(pem: &[u8]) -> Result<(Certificate, Certificate), String> {
    let text = std::str::from_utf8(pem).map_err(|_| "the cert_chain is not PEM text".to_string())?;
    let blocks: Vec<&str> = text
        .split_inclusive("-----END CERTIFICATE-----")
        .filter(|b| b.contains("-----BEGIN CERTIFICATE-----"))
        .collect();
    let [first, second] = blocks[..] else {
        return Err(format!(
            "the cert_chain holds {} certificates; the KDS cert_chain holds two (ASK, ARK)",
            blocks.len()
        ));
    };
    let (a, b) = (read_cert(first.trim().as_bytes())?, read_cert(second.trim().as_bytes())?);
    if (&b, &b).verify().is_ok() {
        Ok((a, b))
    } else if (&a, &a).verify().is_ok() {
        Ok((b, a))
    } else {
        Err("neither certificate of the cert_chain is self-signed: there is no ARK".into())
    }
}

fn builtin_chains() -> Vec<(Certificate, Certificate)> {
    [
        (builtin::milan::ask(), builtin::milan::ark()),
        (builtin::genoa::ask(), builtin::genoa::ark()),
        (builtin::turin::ask(), builtin::turin::ark()),
    ]
    .into_iter()
    .filter_map(|(ask, ark)| Some((ask.ok()?, ark.ok()?)))
    .collect()
}

/// Which AMD product's ARK `ark` is, by its DER bytes.
fn amd_root(ark: &Certificate) -> Option<&'static str> {
    let der = ark.to_der().ok()?;
    [("Milan", builtin::milan::ark()), ("Genoa", builtin::genoa::ark()), ("Turin", builtin::turin::ark())]
        .into_iter()
        .find(|(_, builtin)| builtin.as_ref().ok().and_then(|b| b.to_der().ok()).as_deref() == Some(der.as_slice()))
        .map(|(name, _)| name)
}

/// Whether `cert` is valid at `now`, and its validity as text.
fn validity(cert: &Certificate, now: u64) -> (bool, String) {
    let x509: x509_cert::Certificate = cert.clone().into();
    let v = &x509.tbs_certificate.validity;
    let (from, until) = (v.not_before.to_unix_duration().as_secs(), v.not_after.to_unix_duration().as_secs());
    let ok = from <= now && now <= until;
    (ok, format!("{} to {}{}", v.not_before, v.not_after, if ok { "" } else { ": not valid at that time" }))
}

/// Fuzzing entry point (`fuzz/fuzz_targets/snp_report.rs`): reads every field of arbitrary bytes as a report whose
/// signature held, as `check` does after the signature; it must never panic.
pub fn fuzz_fields(data: &[u8]) {
    let mut report = data.to_vec();
    report.resize(REPORT_LEN, 0);
    let options = SnpOptions { min_tcb: Some(MinTcb::default()), report_data: Some([0; 64]), ..SnpOptions::default() };
    let mut verdict = Verdict::new("snp", String::new());
    check_fields(&report, &[], &options, &mut verdict);
    let _ = MinTcb::parse(&String::from_utf8_lossy(data));
}

fn stopped(mut verdict: Verdict) -> Verdict {
    verdict
        .notes
        .push("no field of the report was read: nothing in it is believed before its signature verifies".into());
    verdict
}

fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

fn parse_u64(text: &str) -> Option<u64> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

fn describe(m: &SnpShape) -> String {
    format!(
        "{} ({} vCPUs, {}, {}, policy {})",
        m.name,
        m.vcpus,
        m.vcpu_type.as_deref().unwrap_or(&m.vcpu_sig),
        m.vmm_type,
        m.policy
    )
}

/// The published shapes in a few words: vCPU counts per type and VMM.
fn summary(shapes: &[SnpShape]) -> String {
    let mut groups: std::collections::BTreeMap<(String, String), Vec<u32>> = std::collections::BTreeMap::new();
    for m in shapes {
        let key = (m.vcpu_type.clone().unwrap_or_else(|| m.vcpu_sig.clone()), m.vmm_type.clone());
        groups.entry(key).or_default().push(m.vcpus);
    }
    groups
        .into_iter()
        .map(|((t, vmm), mut counts)| {
            counts.sort_unstable();
            let list: Vec<String> = counts.iter().map(u32::to_string).collect();
            format!("{} vCPUs on {t} ({vmm})", list.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}
