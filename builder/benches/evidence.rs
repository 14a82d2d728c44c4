//! Evidence-check benchmark: checks the real SEV-SNP report and the real TDX quote of `tests/fixtures/evidence/`
//! 1,000 times each in one process against a release that publishes them, and times the signature work alone the
//! same number of times (SNP: the VCEK chain and the report signature; TDX: `dcap_qvl::verify`). Run with
//! `builder/benches/check-evidence.sh` or `cargo bench -p cvmforge --bench evidence -- --run`.

use std::time::{Duration, Instant};

use cvmforge::evidence::{snp, tdx};
use cvmforge::manifest::*;

const ROUNDS: u32 = 1000;

fn main() {
    if !std::env::args().any(|a| a == "--run") {
        // `cargo bench` without `--run`, and `cargo test --all-targets`: nothing to do.
        println!("evidence benchmark: run builder/benches/check-evidence.sh");
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/evidence");
    let read = |rel: &str| std::fs::read(dir.join(rel)).expect("fixture");
    let (report, vcek, chain) =
        (read("snp-milan/report.bin"), read("snp-milan/vcek.der"), read("snp-milan/cert_chain_milan.pem"));
    let (quote, collateral) = (read("tdx/tdx_quote"), read("tdx/tdx_quote_collateral.json"));
    let release = cvmforge::evidence::Release::from_manifest(&release(&report, &quote));
    let certs = snp::SnpCerts { vek: &vcek, vek_kind: "VCEK", chain_pem: Some(&chain), trusted_ark: None };
    let snp_now = 1_735_689_600;
    let tdx_now = 1_751_328_000;
    let full = time(|| {
        assert!(snp::check(&report, &certs, &release, snp_now, &snp::SnpOptions::default()).expect("check").pass())
    });
    let key = vek_key(&vcek);
    // The chain (RSA-PSS ARK and ASK signatures, the VCEK's) and the report's ECDSA signature, nothing else.
    let signature = time(|| {
        let ark_ask = sev::certs::snp::ca::Chain {
            ark: sev::certs::snp::builtin::milan::ark().expect("ark"),
            ask: sev::certs::snp::builtin::milan::ask().expect("ask"),
        };
        let chain =
            sev::certs::snp::Chain { ca: ark_ask, vek: sev::certs::snp::Certificate::from_der(&vcek).expect("vcek") };
        use sev::certs::snp::Verifiable;
        (&chain).verify().expect("chain");
        snp::verify_signature(&report, &key).expect("signature");
    });
    print("SEV-SNP report", full, signature);
    let collateral_v3: dcap_qvl::QuoteCollateralV3 = serde_json::from_slice(&collateral).expect("collateral");
    let full = time(|| {
        assert!(tdx::check(&quote, &collateral, &release, tdx_now, &tdx::TdxOptions::default()).expect("check").pass())
    });
    let signature = time(|| assert!(dcap_qvl::verify::verify(&quote, &collateral_v3, tdx_now).is_ok()));
    print("TDX quote", full, signature);
}

fn time(mut f: impl FnMut()) -> Duration {
    f(); // warm-up
    let start = Instant::now();
    for _ in 0..ROUNDS {
        f();
    }
    start.elapsed()
}

fn print(what: &str, full: Duration, signature: Duration) {
    let per = full.as_secs_f64() * 1000.0 / f64::from(ROUNDS);
    println!(
        "{what}: {ROUNDS} checks in {:.2} s: {:.0} per second, {per:.2} ms each; signature work {:.2} ms each ({:.0} % of the check)",
        full.as_secs_f64(),
        f64::from(ROUNDS) / full.as_secs_f64(),
        signature.as_secs_f64() * 1000.0 / f64::from(ROUNDS),
        100.0 * signature.as_secs_f64() / full.as_secs_f64()
    );
}

fn vek_key(der: &[u8]) -> p384::ecdsa::VerifyingKey {
    let cert = sev::certs::snp::Certificate::from_der(der).expect("vcek");
    p384::ecdsa::VerifyingKey::from_sec1_bytes(cert.public_key_sec1()).expect("key")
}

/// The release that publishes both pieces of evidence (as the integration tests build it).
fn release(report: &[u8], quote: &[u8]) -> Manifest {
    let mut m = empty_release(report);
    let reg = |at: usize| hex::encode(&quote[48 + at..48 + at + 48]);
    let tdx_json = serde_json::json!({
        "platform": "tdx", "name": "tdx-shape0", "shape": 0, "memory": "2G", "memory_bytes": 2u64 << 30, "vcpus": 2,
        "page_order": "single-pass", "qemu_version": "10.2", "qemu_version_assumed": true,
        "qemu_kernel_patching": false, "cmdline_layout": "prefix", "cmdline_layout_source": "given",
        "mrtd": reg(136), "rtmr0": null, "rtmr0_unavailable": "not modelled", "rtmr1": reg(376), "rtmr2": reg(424),
        "rtmr3": "00".repeat(48),
        "inputs": {"firmware_sha256": "11".repeat(32), "kernel_sha256": "22".repeat(32), "initrd_sha384": "33".repeat(48), "initrd_size": 1},
        "secure_boot": {"pk_enrolled": false, "microsoft_db": false}, "warnings": []
    });
    m.measurements.tdx.push(serde_json::from_value(tdx_json).expect("tdx entry"));
    m
}

/// A release publishing the report's measurement and policy.
fn empty_release(report: &[u8]) -> Manifest {
    let snp = serde_json::json!({
        "platform": "snp", "name": "snp-shape0-vcpus4", "shape": 0, "mode": "snp", "vcpus": 4, "vcpu_type": "EPYC-v4",
        "vcpu_sig": "0xa00f11", "vmm_type": "QEMU", "guest_features": "0x1", "memory": "2G",
        "policy": {"value": format!("{:#x}", u64::from_le_bytes(report[8..16].try_into().expect("8 bytes"))), "fields": {}, "warnings": []},
        "digest": hex::encode(&report[0x90..0xC0]),
        "inputs": {"firmware_sha256": "11".repeat(32), "kernel_sha256": "22".repeat(32), "initrd_sha256": "33".repeat(32), "cmdline_sha256": "44".repeat(32)}
    });
    let manifest = serde_json::json!({
        "schema": MANIFEST_SCHEMA, "cvmforge_version": "0.1.0",
        "recipe": {"name": "bench", "version": "1", "path": "bench.yaml", "sha256": "00".repeat(32)},
        "source_date_epoch": 0, "inputs": [], "outputs": [],
        "initrd": {"compression": cvmforge::format::compress::describe(&cvmforge::format::compress::Compression::None), "uncompressed_sha256": "00".repeat(32), "uncompressed_size": 0, "entries": []},
        "kernel": {"boot_protocol": "2.15", "version": null, "cmdline": ""},
        "measurements": {"snp": [snp], "tdx": []}
    });
    Manifest::from_json(&manifest.to_string()).expect("manifest")
}
