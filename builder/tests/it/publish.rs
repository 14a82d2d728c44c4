//! `cvmforge keygen`, `attest`, `sign` and `verify-statement` (issue 12, statements and signatures; the log is
//! `log.rs`). Interoperation with securesystemslib and in-toto-attestation: `scripts/tests/publish-interop.sh`.

use std::os::unix::fs::PermissionsExt;

use crate::util::Tree;

fn built() -> Tree {
    let tree = Tree::standard();
    tree.build(&[]).ok();
    tree
}

#[test]
fn keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites() {
    let tree = Tree::new();
    let run = tree.run(&["keygen", "-o", "release", "--name", "example.com/releases"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mode = std::fs::metadata(tree.path("release.key")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(String::from_utf8(tree.read("release.key")).unwrap().starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(String::from_utf8(tree.read("release.pub")).unwrap().starts_with("-----BEGIN PUBLIC KEY-----"));
    let vkey = run.stdout.lines().find_map(|l| l.strip_prefix("verifier key  ")).unwrap();
    let parts: Vec<&str> = vkey.splitn(3, '+').collect();
    assert_eq!((parts[0], parts[1].len()), ("example.com/releases", 8), "{vkey}");
    let before = tree.read("release.key");
    tree.run(&["keygen", "-o", "release"]).fails(2, &["`release.key` exists: keygen never overwrites a key"]);
    assert_eq!(tree.read("release.key"), before);
}

#[test]
fn attest_gives_the_same_bytes_for_the_same_manifest() {
    let tree = built();
    tree.run(&["attest", "out", "-o", "a"]).ok();
    tree.run(&["attest", "out/demo-0.1.0.cvm.tar", "-o", "b"]).ok();
    for name in ["provenance.intoto.json", "launch.intoto.json"] {
        assert_eq!(tree.read(&format!("a/{name}")), tree.read(&format!("b/{name}")), "{name}");
    }
    let launch: serde_json::Value = serde_json::from_slice(&tree.read("a/launch.intoto.json")).unwrap();
    assert_eq!(launch["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(launch["predicateType"], "https://cvmforge.dev/launch-measurements/v1");
    let manifest = tree.read("out/manifest.json");
    assert_eq!(launch["subject"][0]["digest"]["sha256"], crate::util::sha256_hex(&manifest));
    let provenance: serde_json::Value = serde_json::from_slice(&tree.read("a/provenance.intoto.json")).unwrap();
    assert_eq!(provenance["predicate"]["runDetails"]["metadata"]["startedOn"], "2026-01-01T00:00:00Z");
    let names: Vec<&str> =
        provenance["subject"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["demo-0.1.0.cvm.tar", "firmware-snp.fd", "initrd.img", "kernel"]);
    // Sorted keys, compact, one newline: the bytes are a function of the values.
    let text = String::from_utf8(tree.read("a/launch.intoto.json")).unwrap();
    assert!(
        text.starts_with(r#"{"_type":"https://in-toto.io/Statement/v1","predicate":{"#) && text.ends_with("}\n"),
        "{text}"
    );
    // --time moves only the times; other bytes refuse to be overwritten without --force.
    tree.run(&["attest", "out", "-o", "a", "--time", "2026-02-01T00:00:00Z"])
        .fails(1, &["exists with other content; pass --force"]);
    tree.run(&["attest", "out", "-o", "a", "--time", "2026-02-01T00:00:00Z", "--force"]).ok();
    let later: serde_json::Value = serde_json::from_slice(&tree.read("a/provenance.intoto.json")).unwrap();
    assert_eq!(later["predicate"]["runDetails"]["metadata"]["finishedOn"], "2026-02-01T00:00:00Z");
}

#[test]
fn a_verify_report_is_a_byproduct_of_the_provenance() {
    let tree = built();
    tree.write("verify.json", br#"{"identical": true, "schema_version": 1}"#);
    tree.run(&["attest", "out", "-o", "a", "--verify-report", "verify.json"]).ok();
    let provenance: serde_json::Value = serde_json::from_slice(&tree.read("a/provenance.intoto.json")).unwrap();
    let byproduct = &provenance["predicate"]["runDetails"]["byproducts"][0];
    assert_eq!(byproduct["annotations"]["identical"], true);
    tree.write("not-a-report.json", br#"{"x": 1}"#);
    tree.run(&["attest", "out", "-o", "c", "--verify-report", "not-a-report.json"])
        .fails(1, &["is not the JSON of `cvmforge verify --json`"]);
}

#[test]
fn signed_statements_verify_and_every_tampering_is_refused_with_a_reason() {
    let tree = built();
    tree.run(&["keygen", "-o", "k"]).ok();
    tree.run(&["keygen", "-o", "other"]).ok();
    tree.run(&["attest", "out", "-o", "a"]).ok();
    tree.run(&["sign", "a/launch.intoto.json", "--key", "k.key", "-o", "launch.dsse.json"]).ok();
    let ok = tree.run(&[
        "verify-statement",
        "launch.dsse.json",
        "--key",
        "k.pub",
        "--predicate-type",
        "https://cvmforge.dev/launch-measurements/v1",
    ]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(ok.stdout.contains("\"snp\""), "{}", ok.stdout);
    let json = tree.run(&["--json", "verify-statement", "launch.dsse.json", "--key", "k.pub"]);
    let statement: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(statement, serde_json::from_slice::<serde_json::Value>(&tree.read("a/launch.intoto.json")).unwrap());

    let envelope: serde_json::Value = serde_json::from_slice(&tree.read("launch.dsse.json")).unwrap();
    let variant = |name: &str, edit: &dyn Fn(&mut serde_json::Value)| {
        let mut e = envelope.clone();
        edit(&mut e);
        tree.write(name, e.to_string().as_bytes());
    };
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    variant("tampered.json", &|e| e["payload"] = b64.encode(br#"{"_type":"https://in-toto.io/Statement/v1"}"#).into());
    variant("type.json", &|e| e["payloadType"] = "text/plain".into());
    variant("b64.json", &|e| e["payload"] = "%%%".into());
    variant("none.json", &|e| e["signatures"] = serde_json::json!([]));
    variant("twice.json", &|e| {
        let s = e["signatures"][0].clone();
        e["signatures"] = serde_json::json!([s.clone(), s]);
    });
    for (file, key, needle) in [
        ("tampered.json", "k.pub", "no signature verifies under key"),
        ("launch.dsse.json", "other.pub", "no signature verifies under key"),
        ("type.json", "k.pub", "payloadType is `text/plain`, expected `application/vnd.in-toto+json`"),
        ("b64.json", "k.pub", "payload is not valid base64"),
        ("none.json", "k.pub", "the envelope has no signature"),
        ("twice.json", "k.pub", "signatures[1] repeats a key id or a signature"),
    ] {
        tree.run(&["verify-statement", file, "--key", key]).fails(1, &[needle]);
    }
    tree.run(&[
        "verify-statement",
        "launch.dsse.json",
        "--key",
        "k.pub",
        "--predicate-type",
        "https://slsa.dev/provenance/v1",
    ])
    .fails(
        1,
        &["predicate type `https://cvmforge.dev/launch-measurements/v1`, required `https://slsa.dev/provenance/v1`"],
    );
}
