//! `cvmforge check-evidence` (issue 13) on real evidence from real hardware (`tests/fixtures/evidence/`: an SEV-SNP
//! report from an AMD Milan host with its VCEK and chain, a TDX quote with its collateral), manifests that publish
//! their measurements, synthetic reports signed by a key made here, every one-byte change of the signed parts, and
//! bad input.

use std::path::{Path, PathBuf};

use cvmforge::evidence::snp::{self, SnpOptions, REPORT_LEN, SIGNED_LEN};
use cvmforge::evidence::tdx::{self, TdxOptions};
use cvmforge::evidence::Release;
use cvmforge::manifest::Manifest;
use sev::parser::ByteParser;

use crate::util::{manifest_with, snp_entry, tdx_entry, Tree};

/// 2025-01-01: inside the Milan VCEK's validity (2023-04-03 to 2030-04-03).
const SNP_NOW: &str = "2025-01-01T00:00:00Z";
/// 2025-07-01: inside the TDX collateral's validity (issued 2025-06-19, next update 2025-07-19).
const TDX_NOW: &str = "2025-07-01T00:00:00Z";
const TDX_NOW_SECS: u64 = 1_751_328_000;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/evidence").join(rel)
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(fixture(rel)).unwrap()
}

/// A manifest that publishes the real report's measurement and policy as shape `snp-shape0-vcpus4`, beside a shape
/// with another digest.
fn snp_release() -> String {
    let report = read("snp-milan/report.bin");
    let parsed = sev::firmware::guest::AttestationReport::from_bytes(&report).unwrap();
    let mut published = snp_entry("snp-shape0-vcpus4", (None, None, None));
    published.vcpus = 4;
    published.digest = hex::encode(parsed.measurement);
    published.policy.value = format!("{:#x}", u64::from_le_bytes(report[8..16].try_into().unwrap()));
    let other = snp_entry("snp-shape0-vcpus1", (None, None, None));
    manifest_with(vec![other, published], vec![])
}

/// A manifest that publishes the real quote's MRTD, RTMR1 and RTMR2.
fn tdx_release() -> String {
    let quote = read("tdx/tdx_quote");
    let reg = |at: usize| hex::encode(&quote[48 + at..48 + at + 48]);
    let mut published = tdx_entry("tdx-shape0", (None, None, None));
    (published.mrtd, published.rtmr1, published.rtmr2) = (reg(136), reg(376), reg(424));
    manifest_with(vec![], vec![published])
}

fn snp_args<'a>(release: &'a str, now: &'a str) -> Vec<String> {
    [
        "check-evidence",
        release,
        "--snp-report",
        fixture("snp-milan/report.bin").to_str().unwrap(),
        "--vcek",
        fixture("snp-milan/vcek.der").to_str().unwrap(),
        "--cert-chain",
        fixture("snp-milan/cert_chain_milan.pem").to_str().unwrap(),
        "--now",
        now,
    ]
    .map(str::to_owned)
    .into()
}

fn tdx_args<'a>(release: &'a str, now: &'a str) -> Vec<String> {
    [
        "check-evidence",
        release,
        "--tdx-quote",
        fixture("tdx/tdx_quote").to_str().unwrap(),
        "--collateral",
        fixture("tdx/tdx_quote_collateral.json").to_str().unwrap(),
        "--now",
        now,
    ]
    .map(str::to_owned)
    .into()
}

fn run(tree: &Tree, args: &[String]) -> crate::util::Run {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    tree.run(&args)
}

fn release_file(tree: &Tree, text: &str) -> String {
    tree.write("release/manifest.json", text.as_bytes());
    "release/manifest.json".to_owned()
}

#[test]
fn a_real_snp_report_verifies_and_matches_a_release_that_publishes_it() {
    let tree = Tree::new();
    let release = release_file(&tree, &snp_release());
    let run = run(&tree, &snp_args(&release, SNP_NOW));
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    for needle in [
        "ok    certificate_chain  verified, AMD Milan root",
        "ok    signature          verified",
        "ok    measurement",
        "matched shape: snp-shape0-vcpus4 (4 vCPUs, EPYC-v4, QEMU, policy 0x",
        "verdict: PASS",
    ] {
        assert!(run.stdout.contains(needle), "lacks `{needle}`:\n{}", run.stdout);
    }
}

/// The fields are read as the `sev` crate reads them: version, policy, measurement, REPORT_DATA, VMPL, TCB.
#[test]
fn snp_fields_are_the_sev_crates() {
    let report = read("snp-milan/report.bin");
    let parsed = sev::firmware::guest::AttestationReport::from_bytes(&report).unwrap();
    let tree = Tree::new();
    let release = release_file(&tree, &snp_release());
    let mut args = snp_args(&release, SNP_NOW);
    args.insert(0, "--json".into());
    args.extend(["--min-tcb".into(), "bootloader=0".into()]);
    let run = run(&tree, &args);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let check =
        |name: &str| doc["checks"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap()["actual"].clone();
    assert_eq!(check("version"), parsed.version.to_string());
    assert_eq!(check("measurement"), hex::encode(parsed.measurement));
    assert_eq!(check("vmpl"), parsed.vmpl.to_string());
    assert_eq!(check("reported_tcb.microcode"), parsed.reported_tcb.microcode.to_string());
    assert_eq!(check("reported_tcb.snp"), parsed.reported_tcb.snp.to_string());
    assert_eq!(doc["report_data"], hex::encode(parsed.report_data));
    assert!(check("policy")
        .as_str()
        .unwrap()
        .starts_with(&format!("{:#x}", u64::from_le_bytes(report[8..16].try_into().unwrap()))));
    assert_eq!(doc["pass"], true);
}

#[test]
fn an_snp_report_of_an_unpublished_shape_fails_and_says_what_was_published() {
    let tree = Tree::new();
    let release = release_file(&tree, &manifest_with(vec![snp_entry("snp-shape0-vcpus1", (None, None, None))], vec![]));
    let run = run(&tree, &snp_args(&release, SNP_NOW));
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("FAIL  measurement"), "{}", run.stdout);
    assert!(run.stdout.contains("Published: 1 vCPUs on EPYC-v4 (QEMU)"), "{}", run.stdout);
    assert!(run.stdout.contains("matched shape: none") && run.stdout.contains("verdict: FAIL (1 of"), "{}", run.stdout);
}

#[test]
fn snp_report_data_min_tcb_and_vmpl_are_required_when_given() {
    let tree = Tree::new();
    let release = release_file(&tree, &snp_release());
    for (extra, needle) in [
        (vec!["--report-data", &"00".repeat(64)], "FAIL  report_data"),
        (vec!["--min-tcb", "microcode=255"], "FAIL  reported_tcb.microcode"),
        (vec!["--vmpl", "1"], "FAIL  vmpl"),
    ] {
        let mut args = snp_args(&release, SNP_NOW);
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let run = run(&tree, &args);
        assert_eq!(run.code, 1, "{extra:?}: {}{}", run.stdout, run.stderr);
        assert!(run.stdout.contains(needle), "{extra:?}: {}", run.stdout);
    }
    let report = read("snp-milan/report.bin");
    let mut args = snp_args(&release, SNP_NOW);
    args.extend(["--report-data".to_owned(), hex::encode(&report[0x50..0x90])]);
    assert_eq!(run(&tree, &args).code, 0);
}

/// Expired, not yet valid, or another product's chain: refused at the chain, before any field.
#[test]
fn snp_chains_out_of_date_or_of_another_product_are_refused() {
    let tree = Tree::new();
    let release = release_file(&tree, &snp_release());
    let run_at = |now: &str| run(&tree, &snp_args(&release, now));
    let late = run_at("2031-01-01T00:00:00Z");
    assert_eq!(late.code, 1);
    assert!(
        late.stdout.contains("FAIL  validity.vcek") && late.stdout.contains("not valid at that time"),
        "{}",
        late.stdout
    );
    let early = run_at("2020-01-01T00:00:00Z");
    assert!(early.stdout.contains("FAIL  validity.vcek"), "{}", early.stdout);
    // Genoa's ASK and ARK (built into the sev crate) do not vouch for a Milan VCEK.
    let genoa = [sev::certs::snp::builtin::genoa::ASK, sev::certs::snp::builtin::genoa::ARK].concat();
    tree.write("genoa.pem", &genoa);
    let mut args = snp_args(&release, SNP_NOW);
    let at = args.iter().position(|a| a == "--cert-chain").unwrap();
    args[at + 1] = tree.path("genoa.pem").to_str().unwrap().to_owned();
    let other = run(&tree, &args);
    assert_eq!(other.code, 1);
    assert!(other.stdout.contains("FAIL  certificate_chain  the chain does not verify"), "{}", other.stdout);
    assert!(other.stdout.contains("no field of the report was read"), "{}", other.stdout);
    // Without --cert-chain, the built-in Milan chain is found.
    args.drain(at..at + 2);
    let builtin = run(&tree, &args);
    assert_eq!(builtin.code, 0, "{}{}", builtin.stdout, builtin.stderr);
}

/// Every one-byte change in the signed part of the real report fails, at the signature.
#[test]
fn every_byte_of_the_signed_snp_report_is_covered_by_the_signature() {
    let report = read("snp-milan/report.bin");
    let release = Release::from_manifest(&Manifest::from_json(&snp_release()).unwrap());
    let vcek = sev::certs::snp::Certificate::from_der(&read("snp-milan/vcek.der")).unwrap();
    let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(vcek.public_key_sec1()).unwrap();
    assert!(snp::check_with_key(&report, &key, &release, &SnpOptions::default()).unwrap().pass());
    for at in 0..SIGNED_LEN {
        let mut mutated = report.clone();
        mutated[at] ^= 0x01;
        let verdict = snp::check_with_key(&mutated, &key, &release, &SnpOptions::default()).unwrap();
        let first_failure = verdict.checks.iter().find(|c| !c.pass).map(|c| c.name.as_str());
        assert_eq!(first_failure, Some("signature"), "byte {at:#x}: {:?}", verdict.checks);
    }
}

#[test]
fn snp_bad_input_is_refused_by_name() {
    let tree = Tree::new();
    let release = release_file(&tree, &snp_release());
    let report = read("snp-milan/report.bin");
    tree.write("short.bin", &report[..REPORT_LEN - 1]);
    let mut args = snp_args(&release, SNP_NOW);
    let at = args.iter().position(|a| a == "--snp-report").unwrap();
    args[at + 1] = tree.path("short.bin").to_str().unwrap().to_owned();
    run(&tree, &args).fails(1, &["the report is 1183 bytes; an SEV-SNP attestation report is exactly 1184 bytes"]);
    // A manifest whose digest is not hex.
    let bad = snp_release().replacen(&"aa".repeat(48), &"zz".repeat(48), 1);
    let bad_release = release_file(&tree, &bad);
    run(&tree, &snp_args(&bad_release, SNP_NOW))
        .fails(1, &["the release's `snp[0] (snp-shape0-vcpus1).measurement` is not 96 hex digits"]);
    // A bad --min-tcb and --now are usage errors.
    let mut args = snp_args(&release, "yesterday");
    run(&tree, &args).fails(2, &["--now `yesterday` is not an RFC 3339 time"]);
    args = snp_args(&release, SNP_NOW);
    args.extend(["--min-tcb".to_owned(), "ucode=3".to_owned()]);
    run(&tree, &args).fails(1, &["`ucode=3`: expected bootloader=N, tee=N, snp=N or microcode=N"]);
}

// ---- synthetic reports, signed by a key made here -------------------------------------------------------------------

/// A report with the documented fields at their offsets, signed with `key`.
fn synthetic(key: &p384::ecdsa::SigningKey, version: u32, policy: u64, vmpl: u32, measurement: [u8; 48]) -> Vec<u8> {
    let mut r = vec![0u8; REPORT_LEN];
    r[0..4].copy_from_slice(&version.to_le_bytes());
    r[8..16].copy_from_slice(&policy.to_le_bytes());
    r[0x30..0x34].copy_from_slice(&vmpl.to_le_bytes());
    r[0x34..0x38].copy_from_slice(&1u32.to_le_bytes());
    r[0x50..0x90].copy_from_slice(&[0x42; 64]);
    r[0x90..0xC0].copy_from_slice(&measurement);
    r[0x1A0..0x1E0].copy_from_slice(&[0x17; 64]); // CHIP_ID (not masked)
    if version >= 3 {
        r[0x188..0x18B].copy_from_slice(&[0x19, 0x01, 0x01]); // CPUID family 19h, model 01h: Milan
    }
    use p384::ecdsa::signature::DigestSigner;
    let signature: p384::ecdsa::Signature =
        key.sign_digest(<sha2::Sha384 as sha2::Digest>::new_with_prefix(&r[..SIGNED_LEN]));
    let (sr, ss) = signature.split_bytes();
    for (at, be) in [(0x2A0, sr), (0x2E8, ss)] {
        for (i, b) in be.iter().rev().enumerate() {
            r[at + i] = *b;
        }
    }
    r
}

fn synthetic_release(measurement: [u8; 48], policy: u64) -> Release {
    let mut published = snp_entry("snp-shape0-vcpus2", (None, None, None));
    published.digest = hex::encode(measurement);
    published.policy.value = format!("{policy:#x}");
    Release::from_manifest(&Manifest::from_json(&manifest_with(vec![published], vec![])).unwrap())
}

#[test]
fn synthetic_reports_show_the_paths_real_evidence_cannot() {
    let key = p384::ecdsa::SigningKey::from_slice(&[7u8; 48]).unwrap();
    let vek = *key.verifying_key();
    let m = [0x5a; 48];
    let failed = |report: &[u8], release: &Release, options: &SnpOptions| -> Vec<String> {
        let v = snp::check_with_key(report, &vek, release, options).unwrap();
        v.checks.iter().filter(|c| !c.pass).map(|c| c.name.clone()).collect()
    };
    let release = synthetic_release(m, 0x30000);
    for version in [2, 3, 5] {
        let report = synthetic(&key, version, 0x30000, 0, m);
        let v = snp::check_with_key(&report, &vek, &release, &SnpOptions::default()).unwrap();
        assert!(v.pass(), "version {version}: {:?}", v.checks);
    }
    let v4 = synthetic(&key, 4, 0x30000, 0, m);
    assert_eq!(failed(&v4, &release, &SnpOptions::default()), ["version"]);
    // DEBUG (bit 19): refused even though the release recorded that very policy.
    let debug = synthetic(&key, 2, 0x30000 | snp::POLICY_DEBUG, 0, m);
    let debug_release = synthetic_release(m, 0x30000 | snp::POLICY_DEBUG);
    assert_eq!(failed(&debug, &debug_release, &SnpOptions::default()), ["policy.debug"]);
    // The migration agent only with the option.
    let ma = synthetic(&key, 2, 0x30000 | snp::POLICY_MIGRATE_MA, 0, m);
    let ma_release = synthetic_release(m, 0x30000 | snp::POLICY_MIGRATE_MA);
    assert_eq!(failed(&ma, &ma_release, &SnpOptions::default()), ["policy.migrate_ma"]);
    let allowed = SnpOptions { allow_migration_agent: true, ..SnpOptions::default() };
    assert!(failed(&ma, &ma_release, &allowed).is_empty());
    // SMT off where the release recorded it on: the policy differs from the published one.
    let no_smt = synthetic(&key, 2, 0x20000, 0, m);
    assert_eq!(failed(&no_smt, &release, &SnpOptions::default()), ["policy"]);
    // A report from VMPL 2.
    let vmpl2 = synthetic(&key, 2, 0x30000, 2, m);
    assert_eq!(failed(&vmpl2, &release, &SnpOptions::default()), ["vmpl"]);
    // Another key's signature.
    let other = p384::ecdsa::SigningKey::from_slice(&[9u8; 48]).unwrap();
    let forged = synthetic(&other, 2, 0x30000, 0, m);
    assert_eq!(failed(&forged, &release, &SnpOptions::default()), ["signature"]);
}

// ---- TDX ------------------------------------------------------------------------------------------------------------

#[test]
fn a_real_tdx_quote_verifies_within_its_collateral_and_matches_a_release_that_publishes_it() {
    let tree = Tree::new();
    let release = release_file(&tree, &tdx_release());
    let ok = run(&tree, &tdx_args(&release, TDX_NOW));
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    for needle in [
        "ok    signature",
        "ok    tcb_status                     UpToDate",
        "matched shape: tdx-shape0",
        "RTMR0 (",
        "verdict: PASS",
    ] {
        assert!(ok.stdout.contains(needle), "lacks `{needle}`:\n{}", ok.stdout);
    }
    // After the collateral's next update (2025-07-19) it no longer verifies.
    let late = run(&tree, &tdx_args(&release, "2025-08-01T00:00:00Z"));
    assert_eq!(late.code, 1);
    assert!(
        late.stdout.contains("FAIL  signature") && late.stdout.contains("no field of the quote was read"),
        "{}",
        late.stdout
    );
    // RTMR0 when the caller has it; RTMR3 must be zero unless given.
    let quote = read("tdx/tdx_quote");
    let mut args = tdx_args(&release, TDX_NOW);
    args.extend(["--rtmr0".to_owned(), hex::encode(&quote[48 + 328..48 + 376])]);
    assert_eq!(run(&tree, &args).code, 0);
    args.extend(["--rtmr3".to_owned(), "11".repeat(48)]);
    let r3 = run(&tree, &args);
    assert!(r3.code == 1 && r3.stdout.contains("FAIL  rtmr3"), "{}", r3.stdout);
}

#[test]
fn a_tdx_quote_of_another_release_names_the_nearest_shape() {
    let tree = Tree::new();
    let mut text = tdx_release();
    let quote = read("tdx/tdx_quote");
    let rtmr2 = hex::encode(&quote[48 + 424..48 + 472]);
    text = text.replace(&rtmr2, &"77".repeat(48));
    let release = release_file(&tree, &text);
    let run = run(&tree, &tdx_args(&release, TDX_NOW));
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains("FAIL  rtmr2")
            && run.stdout.contains("the nearest is tdx-shape0 (2 of MRTD, RTMR1, RTMR2 agree)"),
        "{}",
        run.stdout
    );
}

/// Every one-byte change in the header and body of the real quote (what its signature covers) fails, at the
/// signature.
#[test]
fn every_byte_of_the_signed_tdx_quote_is_covered_by_the_signature() {
    let quote = read("tdx/tdx_quote");
    let collateral = read("tdx/tdx_quote_collateral.json");
    let release = Release::from_manifest(&Manifest::from_json(&tdx_release()).unwrap());
    let options = TdxOptions::default();
    assert!(tdx::check(&quote, &collateral, &release, TDX_NOW_SECS, &options).unwrap().pass());
    for at in 0..48 + 584 {
        let mut mutated = quote.clone();
        mutated[at] ^= 0x01;
        let verdict = tdx::check(&mutated, &collateral, &release, TDX_NOW_SECS, &options).unwrap();
        let first_failure = verdict.checks.iter().find(|c| !c.pass).map(|c| c.name.as_str());
        assert_eq!(first_failure, Some("signature"), "byte {at}: {:?}", verdict.checks);
    }
}

#[test]
fn tdx_bad_input_is_refused_by_name() {
    let quote = read("tdx/tdx_quote");
    let collateral = read("tdx/tdx_quote_collateral.json");
    let release = Release::from_manifest(&Manifest::from_json(&tdx_release()).unwrap());
    // A quote whose body and signature data do not add up to its length (data after the zero padding).
    let mut longer = quote.clone();
    longer.push(0x01);
    let verdict = tdx::check(&longer, &collateral, &release, TDX_NOW_SECS, &TdxOptions::default()).unwrap();
    let structure = verdict.checks.iter().find(|c| c.name == "structure").unwrap();
    assert!(!verdict.pass() && structure.actual.contains("but the quote is 5007"), "{:?}", verdict.checks);
    // Collateral that is not JSON, and a quote larger than any real one.
    let err = tdx::check(&quote, b"{}", &release, TDX_NOW_SECS, &TdxOptions::default()).unwrap_err();
    assert!(err.to_string().contains("the collateral is not dcap-qvl's QuoteCollateralV3 JSON"), "{err}");
    let err = tdx::check(&vec![0u8; 70_000], &collateral, &release, TDX_NOW_SECS, &TdxOptions::default()).unwrap_err();
    assert!(err.to_string().contains("the quote is 70000 bytes"), "{err}");
    // An SNP-only release has nothing to match a quote against.
    let snp_only = Release::from_manifest(&Manifest::from_json(&snp_release()).unwrap());
    let err = tdx::check(&quote, &collateral, &snp_only, TDX_NOW_SECS, &TdxOptions::default()).unwrap_err();
    assert!(err.to_string().contains("publishes no TDX measurement"), "{err}");
}

#[test]
fn check_evidence_reads_a_bundle_too() {
    let tree = Tree::standard();
    tree.build(&[]).ok();
    // The standard build publishes no SNP digest for this report: the bundle's manifest is read, and says so.
    let run = run(&tree, &snp_args("out/demo-0.1.0.cvm.tar", SNP_NOW));
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("the release publishes no SEV-SNP measurement"), "{}", run.stderr);
}

/// A client that holds only the publisher's signed launch statement (and key) checks evidence with it: the envelope
/// first, then the same checks. A statement from another key is refused before any evidence is read.
#[test]
fn evidence_is_checked_against_a_signed_launch_statement() {
    let tree = Tree::new();
    release_file(&tree, &snp_release());
    tree.run(&["keygen", "-o", "k"]).ok();
    tree.run(&["keygen", "-o", "other"]).ok();
    tree.run(&["attest", "release/manifest.json", "-o", "att"]).ok();
    tree.run(&["sign", "att/launch.intoto.json", "--key", "k.key", "-o", "launch.dsse.json"]).ok();
    let mut args = snp_args("launch.dsse.json", SNP_NOW);
    args.extend(["--signer-key".to_owned(), "k.pub".to_owned()]);
    let ok = run(&tree, &args);
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    assert!(
        ok.stdout.contains("ok    release_statement") && ok.stdout.contains("matched shape: snp-shape0-vcpus4"),
        "{}",
        ok.stdout
    );
    let at = args.len() - 1;
    args[at] = "other.pub".to_owned();
    run(&tree, &args)
        .fails(1, &["the release statement `launch.dsse.json` is refused", "no signature verifies under key"]);
    // The provenance statement is signed too, but it is not a launch statement.
    tree.run(&["sign", "att/provenance.intoto.json", "--key", "k.key", "-o", "provenance.dsse.json"]).ok();
    let mut args = snp_args("provenance.dsse.json", SNP_NOW);
    args.extend(["--signer-key".to_owned(), "k.pub".to_owned()]);
    run(&tree, &args).fails(1, &["is not a launch statement (predicate type `https://slsa.dev/provenance/v1`"]);
}

/// The whole SNP path on synthetic evidence: a report made here, signed with the test VCEK of a test ASK and ARK
/// (`tests/fixtures/evidence/synthetic/make.sh`), checked by the CLI through the chain. Without `--trusted-ark` the
/// test root is refused like any root that is not AMD's.
#[test]
fn synthetic_reports_through_a_test_chain() {
    use p384::pkcs8::DecodePrivateKey;
    let pem = String::from_utf8(read("synthetic/vcek.key")).unwrap();
    let key = p384::ecdsa::SigningKey::from(p384::SecretKey::from_pkcs8_pem(&pem).unwrap());
    let m = [0x33; 48];
    let tree = Tree::new();
    let mut published = snp_entry("snp-shape0-vcpus2", (None, None, None));
    published.digest = hex::encode(m);
    let release = release_file(&tree, &manifest_with(vec![published], vec![]));
    let args = |report: &str, trusted: bool| {
        let mut a: Vec<String> = [
            "check-evidence",
            release.as_str(),
            "--snp-report",
            report,
            "--vcek",
            fixture("synthetic/vcek.der").to_str().unwrap(),
            "--cert-chain",
            fixture("synthetic/cert_chain.pem").to_str().unwrap(),
            "--now",
            "2027-01-01T00:00:00Z", // the test chain was made on 2026-12-05
        ]
        .map(str::to_owned)
        .into();
        if trusted {
            a.extend(["--trusted-ark".to_owned(), fixture("synthetic/ark.pem").to_str().unwrap().to_owned()]);
        }
        a
    };
    for version in [2, 3, 5] {
        tree.write("r.bin", &synthetic(&key, version, 0x30000, 0, m));
        let ok = run(&tree, &args("r.bin", true));
        assert_eq!(ok.code, 0, "version {version}: {}{}", ok.stdout, ok.stderr);
        assert!(ok.stdout.contains("verified, the root given as trusted (--trusted-ark)"), "{}", ok.stdout);
    }
    let refused = run(&tree, &args("r.bin", false));
    assert!(
        refused.code == 1 && refused.stdout.contains("nor a trusted one: the chain ends at an unknown root"),
        "{}",
        refused.stdout
    );
    for (policy, vmpl, needle) in [
        (0x30000 | snp::POLICY_DEBUG, 0, "FAIL  policy.debug"),
        (0x30000, 1, "FAIL  vmpl"),
        (0x30000 | snp::POLICY_MIGRATE_MA, 0, "FAIL  policy.migrate_ma"),
    ] {
        tree.write("bad.bin", &synthetic(&key, 2, policy, vmpl, m));
        let run = run(&tree, &args("bad.bin", true));
        assert!(run.code == 1 && run.stdout.contains(needle), "{needle}: {}", run.stdout);
    }
}
