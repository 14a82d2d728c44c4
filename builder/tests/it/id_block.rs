//! `cvmforge id-block`: known answers against the reference `snp-create-id-block` (sev-snp-measure 0.0.13), output
//! formats, and every rejected input.

// Test helpers outside #[test] functions: a panic here is a test failure, which is what we want.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use cvmforge_measure::snp::id_block::{offsets, IdAuth, IdBlock, COMPONENT_LEN};

/// Launch digest 00 01 .. 2f, as in `tests/fixtures/idblock/reference-0.0.13.txt`.
const DIGEST_HEX: &str =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f";
const DIGEST_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4v";
const DEBUG_WARNING: &str =
    "debug allowed: the host can read and modify guest memory; never publish this as a release measurement";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn key(name: &str) -> String {
    repo().join("tests/fixtures/keys").join(name).to_str().unwrap().to_owned()
}

fn cvmforge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cvmforge")).arg("id-block").args(args).output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

fn json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = cvmforge(&all);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn b64_field(doc: &serde_json::Value, field: &str) -> Vec<u8> {
    B64.decode(doc[field].as_str().unwrap()).unwrap()
}

/// The reference's output: `id-block=..,id-auth=..` then `id_key_hash: ..` and `author_key: ..` (base64).
fn parse_reference(text: &str) -> [Vec<u8>; 4] {
    let value = |prefix: &str| {
        let field = text.split([',', '\n']).find_map(|f| f.strip_prefix(prefix)).unwrap();
        B64.decode(field.trim()).unwrap()
    };
    [value("id-block="), value("id-auth="), value("id_key_hash: "), value("author_key: ")]
}

/// Zeroes R and S of both signatures, the only bytes that depend on the nonce (random in the reference).
fn without_signatures(id_auth: &[u8]) -> Vec<u8> {
    let mut out = id_auth.to_vec();
    for at in [offsets::ID_BLOCK_SIG, offsets::ID_KEY_SIG] {
        out[at..at + 2 * COMPONENT_LEN].fill(0);
    }
    out
}

fn reference_args(measurement: &str) -> Vec<String> {
    [
        "--measurement",
        measurement,
        "--id-key",
        &key("id-key-p384.pem"),
        "--author-key",
        &key("author-key-p384-sec1.pem"),
    ]
    .map(str::to_owned)
    .to_vec()
}

fn assert_matches_reference(doc: &serde_json::Value, reference_text: &str) {
    let [ref_block, ref_auth, ref_id_digest, ref_author_digest] = parse_reference(reference_text);
    let (block, auth) = (b64_field(doc, "id_block"), b64_field(doc, "id_auth"));
    assert_eq!(block, ref_block, "id-block");
    assert_eq!(without_signatures(&auth), without_signatures(&ref_auth), "id-auth outside the signatures");
    assert_eq!(doc["id_key_digest"].as_str().unwrap(), hex::encode(ref_id_digest));
    assert_eq!(doc["author_key_digest"].as_str().unwrap(), hex::encode(ref_author_digest));
    IdAuth::parse(&auth).unwrap().verify(&block).unwrap();
    // Our verifier also accepts the reference's OpenSSL signatures: the R/S layouts agree.
    IdAuth::parse(&ref_auth).unwrap().verify(&ref_block).unwrap();
}

#[test]
fn matches_the_recorded_reference_output() {
    let reference = std::fs::read_to_string(repo().join("tests/fixtures/idblock/reference-0.0.13.txt")).unwrap();
    let args = reference_args(DIGEST_HEX);
    let doc = json(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_matches_reference(&doc, &reference);
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["author_key_enabled"], true);
    assert_eq!(doc["policy"]["value"], "0x30000");
    assert_eq!(doc["warnings"], serde_json::json!([]));
}

/// Runs the installed reference when `CVMFORGE_SNP_CREATE_ID_BLOCK` names it (e.g. `$VENV/bin/snp-create-id-block`).
#[test]
fn matches_the_live_reference_when_installed() {
    let Some(reference) = std::env::var_os("CVMFORGE_SNP_CREATE_ID_BLOCK") else {
        crate::util::skip_test!("set CVMFORGE_SNP_CREATE_ID_BLOCK to sev-snp-measure 0.0.13's snp-create-id-block");
        return;
    };
    let measurement = B64.encode([0x5a; 48]);
    let out = Command::new(reference)
        .args(["--measurement", &measurement, "--idkey", &key("id-key-p384.pem")])
        .args(["--authorkey", &key("author-key-p384-sec1.pem")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let args = reference_args(&measurement);
    let doc = json(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_matches_reference(&doc, &stdout(&out));
}

#[test]
fn hex_and_base64_digests_give_identical_output() {
    let a = cvmforge(&reference_args(DIGEST_HEX).iter().map(String::as_str).collect::<Vec<_>>());
    let b = cvmforge(&reference_args(DIGEST_B64).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(a.status.success() && b.status.success());
    assert_eq!(a.stdout, b.stdout);
}

#[test]
fn output_is_deterministic() {
    let args = reference_args(DIGEST_HEX);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (a, b) = (cvmforge(&args), cvmforge(&args));
    assert!(a.status.success());
    assert_eq!(a.stdout, b.stdout);
    assert_eq!(a.stderr, b.stderr);
}

#[test]
fn options_land_in_the_signed_id_block() {
    let id_key = key("id-key-p384-sec1.pem");
    let doc = json(&[
        "--measurement",
        DIGEST_HEX,
        "--id-key",
        &id_key,
        "--family-id",
        "00112233445566778899aabbccddeeff",
        "--image-id",
        "ffeeddccbbaa99887766554433221100",
        "--guest-svn",
        "7",
        "--policy",
        "0x1030102",
    ]);
    let bytes = b64_field(&doc, "id_block");
    let block = IdBlock::parse(&bytes).unwrap();
    assert_eq!(hex::encode(block.launch_digest.0), DIGEST_HEX);
    assert_eq!(hex::encode(block.family_id), "00112233445566778899aabbccddeeff");
    assert_eq!(hex::encode(block.image_id), "ffeeddccbbaa99887766554433221100");
    assert_eq!(block.guest_svn, 7);
    assert_eq!(block.policy.bits(), 0x0103_0102);
    assert_eq!(&bytes[80..96], &[1, 0, 0, 0, 7, 0, 0, 0, 0x02, 0x01, 0x03, 0x01, 0, 0, 0, 0]);
    let fields = &doc["policy"]["fields"];
    assert_eq!((fields["abi_major"].as_u64(), fields["abi_minor"].as_u64()), (Some(1), Some(2)));
    assert_eq!(fields["ciphertext_hiding"], 1);
    IdAuth::parse(&b64_field(&doc, "id_auth")).unwrap().verify(&bytes).unwrap();
}

#[test]
fn without_author_key_author_fields_are_empty() {
    let id_key = key("id-key-p384.pem");
    let doc = json(&["--measurement", DIGEST_HEX, "--id-key", &id_key]);
    assert_eq!(doc["author_key_enabled"], false);
    assert!(doc["author_key_digest"].is_null());
    let auth = b64_field(&doc, "id_auth");
    assert!(auth[offsets::ID_KEY_SIG..].iter().all(|&b| b == 0));
    let out = cvmforge(&["--measurement", DIGEST_HEX, "--id-key", &id_key]);
    assert!(stdout(&out).contains("\nauthor-key-enabled=off\n"), "{}", stdout(&out));
}

#[test]
fn text_output_leads_with_the_qemu_values() {
    let args = reference_args(DIGEST_HEX);
    let out = cvmforge(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success());
    let text = stdout(&out);
    let [ref_block, ..] =
        parse_reference(&std::fs::read_to_string(repo().join("tests/fixtures/idblock/reference-0.0.13.txt")).unwrap());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("id-block={}", B64.encode(ref_block)));
    assert!(lines[1].starts_with("id-auth=") && lines[1].len() == "id-auth=".len() + 4096 / 3 * 4 + 4);
    assert_eq!(lines[2], "author-key-enabled=on");
    assert!(text.contains("id key digest:     07c02d75fd280f2bb0b461bfa92c281c"), "{text}");
    assert!(text.contains("policy 0x30000\n") && text.contains("PAGE_SWAP_DISABLE"), "{text}");
    assert_eq!(stderr(&out), "");
}

#[test]
fn debug_policy_is_flagged_loudly() {
    let id_key = key("id-key-p384.pem");
    let args = ["--measurement", DIGEST_HEX, "--id-key", &id_key, "--policy", "0xb0000"];
    let out = cvmforge(&args);
    assert!(out.status.success());
    assert!(stderr(&out).contains(&format!("WARNING: {DEBUG_WARNING}")), "{}", stderr(&out));
    let doc = json(&args);
    assert_eq!(doc["warnings"][0]["code"], "debug-allowed");
    assert_eq!(doc["warnings"][0]["severity"], "critical");
    assert_eq!(doc["warnings"][0]["message"], DEBUG_WARNING);
    let doc = json(&["--measurement", DIGEST_HEX, "--id-key", &id_key, "--policy", "0x70000"]);
    assert_eq!(doc["warnings"][0]["code"], "migrate-ma-allowed");
}

/// Runs with `args`, expects exit 1, nothing on stdout, and every `needles` in stderr.
fn assert_fails(args: &[&str], needles: &[&str]) {
    let out = cvmforge(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(stdout(&out), "");
    assert!(err.starts_with("error: "), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "`{needle}` not in:\n{err}");
    }
}

#[test]
fn rejects_bad_pem() {
    let readme = key("README.md");
    assert_fails(
        &["--measurement", DIGEST_HEX, "--id-key", &readme],
        &["cannot load ID key", "no PEM private key", "hint: "],
    );
    let dir = tempfile::tempdir().unwrap();
    let garbled = dir.path().join("garbled.pem");
    let text = std::fs::read_to_string(key("id-key-p384.pem")).unwrap().replacen("MIG", "M!G", 1);
    std::fs::write(&garbled, text).unwrap();
    assert_fails(
        &["--measurement", DIGEST_HEX, "--id-key", garbled.to_str().unwrap()],
        &["malformed PEM block `PRIVATE KEY`"],
    );
}

#[test]
fn rejects_wrong_curve_key() {
    for name in ["wrong-curve-p256.pem", "wrong-curve-p256-sec1.pem"] {
        let p256 = key(name);
        assert_fails(&["--measurement", DIGEST_HEX, "--id-key", &p256], &["wrong curve", "P-256", "must be P-384"]);
        let id_key = key("id-key-p384.pem");
        assert_fails(
            &["--measurement", DIGEST_HEX, "--id-key", &id_key, "--author-key", &p256],
            &["cannot load author key", "wrong curve"],
        );
    }
}

#[test]
fn rejects_non_ec_key() {
    let ed = key("not-ec-ed25519.pem");
    assert_fails(&["--measurement", DIGEST_HEX, "--id-key", &ed], &["not an elliptic-curve key"]);
}

#[test]
fn rejects_missing_key_file() {
    assert_fails(
        &["--measurement", DIGEST_HEX, "--id-key", "/nonexistent/id.pem"],
        &["cannot read ID key `/nonexistent/id.pem`"],
    );
}

#[test]
fn rejects_digest_of_wrong_length() {
    let id_key = key("id-key-p384.pem");
    let short_hex = &DIGEST_HEX[..94];
    let long_b64 = B64.encode([0u8; 49]);
    for (digest, found) in [(short_hex, "47 bytes"), (long_b64.as_str(), "49 bytes"), ("00", "1 bytes")] {
        assert_fails(&["--measurement", digest, "--id-key", &id_key], &["invalid --measurement", found, "48 bytes"]);
    }
    assert_fails(&["--measurement", "not a digest!", "--id-key", &id_key], &["neither hex nor base64"]);
}

#[test]
fn rejects_policy_with_bit_17_clear() {
    let id_key = key("id-key-p384.pem");
    assert_fails(
        &["--measurement", DIGEST_HEX, "--id-key", &id_key, "--policy", "0x10000"],
        &["bit 17 clear", "try 0x30000"],
    );
}

#[test]
fn rejects_policy_with_reserved_bits() {
    let id_key = key("id-key-p384.pem");
    assert_fails(
        &["--measurement", DIGEST_HEX, "--id-key", &id_key, "--policy", "0x4030000"],
        &["reserved bits 0x4000000"],
    );
    assert_fails(
        &["--measurement", DIGEST_HEX, "--id-key", &id_key, "--policy", "lots"],
        &["invalid guest policy `lots`"],
    );
}

#[test]
fn rejects_ids_of_wrong_length() {
    let id_key = key("id-key-p384.pem");
    assert_fails(
        &["--measurement", DIGEST_HEX, "--id-key", &id_key, "--family-id", "0011"],
        &["--family-id `0011` is 2 bytes"],
    );
    assert_fails(
        &["--measurement", DIGEST_HEX, "--id-key", &id_key, "--image-id", "xyz"],
        &["--image-id `xyz` is not hex"],
    );
}

#[test]
fn json_errors_are_one_document_with_exit_1() {
    let id_key = key("id-key-p384.pem");
    let out = cvmforge(&["--json", "--measurement", "00", "--id-key", &id_key]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["type"], "error");
    assert_eq!(doc["error"], "invalid --measurement");
}

#[test]
fn help_has_examples() {
    let out = cvmforge(&["--help"]);
    let help = stdout(&out);
    assert!(out.status.success());
    assert!(help.contains("Examples:") && help.contains("id-block=B64,id-auth=B64"), "{help}");
    assert!(help.contains("RFC 6979"), "{help}");
}
