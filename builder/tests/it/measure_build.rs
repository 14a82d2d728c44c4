//! `cvmforge build` with `measure:` shapes: every launch measurement the manifest records is checked against an
//! independent path — the `cvmforge measure snp|tdx` and `cvmforge id-block` commands run on the build's output files,
//! the reference `sev-snp-measure` when `CVMFORGE_SNP_REFERENCE` names it, and the TDX MRTD reference values of
//! `docs/specs/tdx-measurement.md` — plus the refusals and warnings of the measurement step.

use std::process::Command;

use serde_json::Value;

use crate::util::{firmware_fixture, pe_kernel, Run, Tree};

/// MRTD of the OVMF.inteltdx.ms.fd fixture, single-pass and two-pass (docs/specs/tdx-measurement.md, from dstack-mr).
const MRTD_SINGLE: &str =
    "a7a1f751abc454f9cbab198ca8d2edb2821935df525c74182b5e776cb0929e8c59aefecce725b0d08a5e9d3d3183bd08";
const MRTD_TWO: &str =
    "b90b236113eb4c0d4df4ef590568c14e6028a3a31d7e8ac63dee9845df5008d3ebf82d4f5974e933798f65d7a279b9a9";

const CMDLINE: &str = "console=ttyS0 panic=-1 quiet";

/// A tree with a PE kernel, the real firmware fixtures and a recipe whose tail (`firmware:`/`measure:`) is `tail`.
fn tree(tail: &str) -> Tree {
    let tree = Tree::new();
    tree.write("src/inputs/vmlinuz", &pe_kernel());
    tree.write("src/inputs/guest-init", &cvmforge::format::elf::testing::executable(None));
    tree.write("src/inputs/server", &cvmforge::format::elf::testing::executable(None));
    tree.recipe(&format!(
        "name: m\nversion: '1'\nsource_date_epoch: 1767225600\n\
         kernel: {{path: inputs/vmlinuz, cmdline: \"{CMDLINE}\"}}\n\
         initrd: {{init: inputs/guest-init, command: [/usr/bin/server], user: 1000, \
         files: [{{src: inputs/server, dst: /usr/bin/server}}]}}\n\
         # A fake kernel cannot be sealed; these tests are about measurements.\n\
         sealing: {{strict: false}}\n{tail}"
    ));
    tree
}

fn with_snp_firmware(tree: &Tree) {
    tree.write("src/inputs/OVMF.amdsev.fd", &firmware_fixture("OVMF.amdsev.fd"));
}

fn with_tdx_firmware(tree: &Tree) {
    tree.write("src/inputs/OVMF.inteltdx.ms.fd", &firmware_fixture("OVMF.inteltdx.ms.fd"));
}

fn manifest(tree: &Tree) -> Value {
    serde_json::from_slice(&tree.read("out/manifest.json")).unwrap()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// The argv that measures `entry` from the output directory, in the spelling both `cvmforge measure snp` and
/// `sev-snp-measure` accept.
fn snp_args(entry: &Value) -> Vec<String> {
    let mut args: Vec<String> = ["--mode", "snp", "--ovmf", "out/firmware-snp.fd", "--kernel", "out/kernel"]
        .into_iter()
        .chain(["--initrd", "out/initrd.img", "--append", CMDLINE])
        .map(str::to_owned)
        .collect();
    args.extend(["--vcpus".to_owned(), entry["vcpus"].to_string()]);
    match entry["vcpu_type"].as_str() {
        Some(t) => args.extend(["--vcpu-type".to_owned(), t.to_owned()]),
        None => args.extend(["--vcpu-sig".to_owned(), s(&entry["vcpu_sig"]).to_owned()]),
    }
    args.extend(["--vmm-type".to_owned(), s(&entry["vmm_type"]).to_owned()]);
    args.extend(["--guest-features".to_owned(), s(&entry["guest_features"]).to_owned()]);
    args
}

/// Each SNP entry's digest equals what `cvmforge measure snp` (and, with `CVMFORGE_SNP_REFERENCE`, the reference
/// `sev-snp-measure`) prints for the output files.
fn check_snp_entries(tree: &Tree, entries: &[Value]) {
    let reference = std::env::var_os("CVMFORGE_SNP_REFERENCE");
    if reference.is_none() {
        crate::util::skip_test!("the reference check: set CVMFORGE_SNP_REFERENCE to the sev-snp-measure 0.0.13 binary");
    }
    for entry in entries {
        let args = snp_args(entry);
        let cli = crate::util::cvmforge().current_dir(tree.path("")).args(["measure", "snp"]).args(&args).output();
        let ours = Run::from_output(cli.unwrap()).ok();
        assert_eq!(ours.stdout.trim(), s(&entry["digest"]), "cvmforge measure snp {args:?}");
        if let Some(reference) = &reference {
            let out = Command::new(reference).current_dir(tree.path("")).args(&args).output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), s(&entry["digest"]), "reference {args:?}");
        }
    }
}

/// Each TDX entry's registers equal what `cvmforge measure tdx` prints for the output files (shapes without a
/// `cmdline_layout` override).
fn check_tdx_entries(tree: &Tree, entries: &[Value]) {
    for entry in entries {
        let mut args = vec!["measure", "tdx", "--json", "--firmware", "out/firmware-tdx.fd", "--kernel", "out/kernel"];
        args.extend(["--initrd", "out/initrd.img", "--append", CMDLINE, "--memory", s(&entry["memory"])]);
        args.extend(["--page-order", s(&entry["page_order"]), "--qemu-version", s(&entry["qemu_version"])]);
        let out: Value = serde_json::from_str(&tree.run(&args).ok().stdout).unwrap();
        for register in ["mrtd", "rtmr1", "rtmr2", "rtmr3", "cmdline_layout", "warnings"] {
            assert_eq!(entry[register], out[register], "{register} of {entry}");
        }
    }
}

#[test]
fn snp_digests_match_measure_snp_and_the_reference() {
    let tree = tree(
        "firmware: {snp: inputs/OVMF.amdsev.fd}\nmeasure:\n  snp:\n    - {vcpus: \"1-4\", vcpu_type: EPYC-v4}\n    \
         - {vcpus: 2, vcpu_sig: 0xa00f11, vmm_type: ec2}\n",
    );
    with_snp_firmware(&tree);
    let built = tree.build(&["--json"]).ok();
    let m = manifest(&tree);
    let entries = m["measurements"]["snp"].as_array().unwrap();
    let shapes: Vec<(u64, u64)> =
        entries.iter().map(|e| (e["shape"].as_u64().unwrap(), e["vcpus"].as_u64().unwrap())).collect();
    assert_eq!(shapes, [(0, 1), (0, 2), (0, 3), (0, 4), (1, 2)]);
    let report: Value = serde_json::from_str(&built.stdout).unwrap();
    assert_eq!(report["measurements"], m["measurements"], "--json reports what the manifest records");

    check_snp_entries(&tree, entries);
    let mut digests: Vec<String> = entries.iter().map(|e| s(&e["digest"]).to_owned()).collect();
    digests.sort();
    digests.dedup();
    assert_eq!(digests.len(), 5, "every vCPU count and shape has its own digest");

    let first = &entries[0];
    let kernel = tree.read("out/kernel");
    assert_eq!(s(&first["inputs"]["kernel_sha256"]), crate::util::sha256_hex(&kernel));
    assert_eq!(s(&first["inputs"]["initrd_sha256"]), crate::util::sha256_hex(&tree.read("out/initrd.img")));
    assert_eq!(s(&first["inputs"]["cmdline_sha256"]), crate::util::sha256_hex(format!("{CMDLINE}\0").as_bytes()));
    assert_eq!(s(&first["policy"]["value"]), "0x30000");
    let args: Vec<&str> = first["qemu_args"].as_array().unwrap().iter().map(s).collect();
    assert!(
        args.windows(2).any(|w| w == ["-smp", "1"]) && args.windows(2).any(|w| w == ["-cpu", "EPYC-v4"]),
        "{args:?}"
    );
    assert!(args.windows(2).any(|w| w == ["-append", CMDLINE]), "{args:?}");
    assert!(entries[4]["qemu_unavailable"].as_str().unwrap().contains("ec2"), "{}", entries[4]);

    // `cvmforge run --print-command` reads the recorded launches back, by name.
    let printed: Value =
        serde_json::from_str(&tree.run(&["run", "out", "--print-command", "--json"]).ok().stdout).unwrap();
    let shapes = printed["shapes"].as_array().unwrap();
    assert_eq!(shapes.len(), 5);
    assert_eq!(shapes[0]["name"], "snp-shape0-vcpus1");
    assert!(s(&shapes[0]["command_line"]).contains("-smp 1"), "{}", shapes[0]);
    assert!(shapes[4]["command_line"].is_null() && s(&shapes[4]["notes"][0]).contains("ec2"), "{}", shapes[4]);

    // The human summary has the table.
    let text = tree.build(&["--force"]).ok();
    assert!(text.stdout.contains("measurements:"), "{}", text.stdout);
    for digest in &digests {
        assert!(text.stdout.contains(digest.as_str()), "summary lacks {digest}:\n{}", text.stdout);
    }
}

#[test]
fn tdx_registers_match_measure_tdx_and_the_reference_mrtd() {
    let tree = tree(
        "firmware: {tdx: inputs/OVMF.inteltdx.ms.fd}\nmeasure:\n  tdx:\n    - {memory: 4G, vcpus: 2}\n    \
         - {memory: 2G, vcpus: 1, page_order: two-pass, qemu_version: \"10.1\"}\n    \
         - {memory: 1G, vcpus: 1, cmdline_layout: suffix, qemu_version: \"10.2\"}\n",
    );
    with_tdx_firmware(&tree);
    let built = tree.build(&[]).ok();
    // The fixture enforces Secure Boot with Microsoft keys and the kernel is unsigned.
    assert!(built.stderr.contains("warning: `firmware.tdx`"), "{}", built.stderr);
    assert!(built.stderr.contains("enforces Secure Boot"), "{}", built.stderr);
    let m = manifest(&tree);
    let entries = m["measurements"]["tdx"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(s(&entries[0]["mrtd"]), MRTD_SINGLE);
    assert_eq!(s(&entries[1]["mrtd"]), MRTD_TWO);
    assert_eq!(s(&entries[2]["mrtd"]), MRTD_SINGLE);
    let flags = [
        ("--memory", "4G", None, None),
        ("--memory", "2G", Some("10.1"), None),
        ("--memory", "1G", Some("10.2"), Some("suffix")),
    ];
    for (entry, (_, memory, qemu, layout)) in entries.iter().zip(flags) {
        let mut args = vec!["measure", "tdx", "--json", "--firmware", "out/firmware-tdx.fd", "--kernel", "out/kernel"];
        args.extend(["--initrd", "out/initrd.img", "--append", CMDLINE, "--memory", memory]);
        args.extend(["--page-order", s(&entry["page_order"])]);
        if let Some(q) = qemu {
            args.extend(["--qemu-version", q]);
        }
        if let Some(l) = layout {
            args.extend(["--cmdline-layout", l]);
        }
        let out: Value = serde_json::from_str(&tree.run(&args).ok().stdout).unwrap();
        for register in ["mrtd", "rtmr1", "rtmr2", "rtmr3", "cmdline_layout", "page_order"] {
            assert_eq!(entry[register], out[register], "{register} of {entry}");
        }
        assert_eq!(entry["qemu_kernel_patching"], out["qemu_kernel_patching"]["patched"]);
        assert!(entry["rtmr0"].is_null() && entry["rtmr0_unavailable"].as_str().unwrap().contains("RTMR0"));
        assert_eq!(entry["secure_boot"]["pk_enrolled"], true);
        assert!(s(&entry["warnings"][0]).contains("enforces Secure Boot"), "{entry}");
    }
    assert_eq!(entries[0]["qemu_version_assumed"], true);
    assert_eq!(entries[1]["qemu_kernel_patching"], true);
    assert_ne!(entries[0]["rtmr1"], entries[1]["rtmr1"], "QEMU 10.1 patches the kernel header");
    assert_ne!(entries[0]["rtmr2"], entries[2]["rtmr2"], "the layout changes RTMR2");
    assert_eq!(s(&entries[0]["rtmr3"]), "0".repeat(96));
    let (digest, size) = {
        use sha2::Digest;
        let initrd = tree.read("out/initrd.img");
        (hex::encode(sha2::Sha384::digest(&initrd)), initrd.len())
    };
    assert_eq!(s(&entries[0]["inputs"]["initrd_sha384"]), digest);
    assert_eq!(entries[0]["inputs"]["initrd_size"], size);
    let args: Vec<&str> = entries[0]["qemu_args"].as_array().unwrap().iter().map(s).collect();
    assert!(args.windows(2).any(|w| w == ["-m", "4G"]) && args.windows(2).any(|w| w == ["-smp", "2"]), "{args:?}");
}

#[test]
fn debug_policy_is_refused_unless_allowed_and_then_warns() {
    let shape = "firmware: {snp: inputs/OVMF.amdsev.fd}\nmeasure:\n  snp:\n    - {vcpus: 1, vcpu_type: EPYC-v4, policy: 0xb0000";
    let tree = tree(&format!("{shape}}}\n"));
    with_snp_firmware(&tree);
    tree.build(&[])
        .fails(1, &["`measure.snp[0].policy` is 0xb0000, which allows debugging (bit 19)", "allow_debug: true"]);
    assert!(!tree.path("out").exists(), "a refused build writes nothing");

    tree.recipe(
        &std::fs::read_to_string(tree.path("src/recipe.yaml"))
            .unwrap()
            .replace("0xb0000}", "0xb0000, allow_debug: true}"),
    );
    let built = tree.build(&[]).ok();
    assert!(
        built.stderr.contains("warning: DEBUG POLICY: `measure.snp[0].policy` 0xb0000: debug allowed")
            && built.stderr.contains("never publish this as a release measurement"),
        "{}",
        built.stderr
    );
    let entry = &manifest(&tree)["measurements"]["snp"][0];
    assert_eq!(s(&entry["policy"]["value"]), "0xb0000");
    assert_eq!(entry["policy"]["fields"]["debug"], 1);
    assert!(s(&entry["policy"]["warnings"][0]).starts_with("debug allowed"), "{entry}");
    let object = entry["qemu_args"].as_array().unwrap().iter().map(s).find(|a| a.starts_with("sev-snp-guest")).unwrap();
    assert!(object.contains(",policy=0xb0000"), "{object}");
}

#[test]
fn id_block_matches_the_id_block_command() {
    let keys = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/keys");
    let tree = tree(
        "firmware: {snp: inputs/OVMF.amdsev.fd}\nmeasure:\n  snp:\n    - {vcpus: \"1-2\", vcpu_type: EPYC-Milan, \
         id_key: keys/id.pem, author_key: keys/author.pem, family_id: 00112233445566778899aabbccddeeff, guest_svn: 3}\n",
    );
    with_snp_firmware(&tree);
    tree.write("src/keys/id.pem", &std::fs::read(keys.join("id-key-p384.pem")).unwrap());
    tree.write("src/keys/author.pem", &std::fs::read(keys.join("author-key-p384-sec1.pem")).unwrap());
    tree.build(&[]).ok();
    let m = manifest(&tree);
    for entry in m["measurements"]["snp"].as_array().unwrap() {
        let args = [
            "id-block",
            "--json",
            "--measurement",
            s(&entry["digest"]),
            "--id-key",
            "src/keys/id.pem",
            "--author-key",
            "src/keys/author.pem",
            "--family-id",
            "00112233445566778899aabbccddeeff",
            "--guest-svn",
            "3",
        ];
        let out: Value = serde_json::from_str(&tree.run(&args).ok().stdout).unwrap();
        for field in ["id_key_digest", "author_key_digest", "id_block", "id_auth"] {
            assert_eq!(entry[field], out[field], "{field}");
        }
        let object =
            entry["qemu_args"].as_array().unwrap().iter().map(s).find(|a| a.starts_with("sev-snp-guest")).unwrap();
        assert!(object.contains(&format!(",id-block={},id-auth=", s(&out["id_block"]))), "{object}");
        assert!(object.ends_with(",author-key-enabled=on") && object.contains(",policy=0x30000"), "{object}");
    }
    // Keys are secrets: neither the manifest nor the lock names their files (the lock pins their public keys).
    assert!(!tree.read("out/manifest.json").windows(6).any(|w| w == b"id.pem"));
    assert!(!tree.read("src/recipe.lock").windows(6).any(|w| w == b"id.pem"));
}

#[test]
fn rejects_snp_shapes_without_firmware_snp() {
    let tree = tree("measure:\n  snp:\n    - {vcpus: 1, vcpu_type: EPYC-v4}\n");
    tree.build(&[]).fails(1, &["`measure.snp` lists 1 shape(s), but `firmware.snp` is not set"]);
    assert!(!tree.path("out").exists() && !tree.path("src/recipe.lock").exists());
}

#[test]
fn rejects_tdx_shapes_without_firmware_tdx() {
    let tree = tree("measure:\n  tdx:\n    - {memory: 2G, vcpus: 1}\n");
    tree.build(&[]).fails(1, &["`measure.tdx` lists 1 shape(s), but `firmware.tdx` is not set"]);
}

#[test]
fn rejects_firmware_without_kernel_hashes() {
    let tree = tree("firmware: {snp: inputs/OVMF.fd}\nmeasure:\n  snp:\n    - {vcpus: 1, vcpu_type: EPYC-v4}\n");
    tree.write("src/inputs/OVMF.fd", &firmware_fixture("OVMF.fd"));
    tree.build(&[]).fails(
        1,
        &["`measure.snp[0]`: cannot compute the SEV-SNP launch digest of `firmware-snp.fd`", "SNP_KERNEL_HASHES"],
    );
    assert!(!tree.path("out").exists() && !tree.path("src/recipe.lock").exists());
}

#[test]
fn rejects_bad_shapes_naming_the_field() {
    let cases = [
        ("snp: [{vcpus: \"4-1\", vcpu_type: EPYC-v4}]", "`measure.snp[0].vcpus` is `4-1`"),
        // Issue 10: typed values are refused while the recipe is read, at their line and column.
        ("snp: [{vcpus: 1, vcpu_type: Pentium}]", "measure.snp[0].vcpu_type: unknown vCPU type `Pentium`"),
        ("snp: [{vcpus: 1, vcpu_type: EPYC, vmm_type: kvm}]", "measure.snp[0].vmm_type: unknown VMM type `kvm`"),
        ("snp: [{vcpus: 1}]", "`measure.snp[0]` needs exactly one of `vcpu_type`"),
        (
            "snp: [{vcpus: 1, vcpu_type: EPYC, policy: 0x0}]",
            "`measure.snp[0].policy` is not a valid SEV-SNP guest policy",
        ),
        ("snp: [{vcpus: 1, vcpu_type: EPYC, guest_svn: 1}]", "`measure.snp[0].guest_svn` needs `id_key`"),
        ("snp: [{vcpus: 1, vcpu_type: EPYC, id_key: nope.pem}]", "`measure.snp[0].id_key`: cannot read key"),
        ("tdx: [{memory: 4Q, vcpus: 1}]", "measure.tdx[0].memory: `4Q`: expected a non-zero size"),
        ("tdx: [{memory: 4G, vcpus: 1, page_order: sideways}]", "measure.tdx[0].page_order: unknown page order"),
        (
            "tdx: [{memory: 4G, vcpus: 1, cmdline_layout: middle}]",
            "measure.tdx[0].cmdline_layout: unknown command-line",
        ),
        ("tdx: [{memory: 4G, vcpus: 1, qemu_version: ten}]", "measure.tdx[0].qemu_version: invalid QEMU version `ten`"),
    ];
    for (shape, needle) in cases {
        let tree = tree(&format!("firmware: {{snp: inputs/fw, tdx: inputs/fw}}\nmeasure: {{{shape}}}\n"));
        tree.write("src/inputs/fw", b"not read: the shape is refused first");
        tree.build(&[]).fails(1, &[needle]);
        assert!(!tree.path("out").exists(), "{shape}");
    }
}

#[test]
fn rejects_tdx_kernel_without_efi_stub() {
    let tree = tree("firmware: {tdx: inputs/OVMF.inteltdx.ms.fd}\nmeasure:\n  tdx:\n    - {memory: 2G, vcpus: 1}\n");
    with_tdx_firmware(&tree);
    tree.write("src/inputs/vmlinuz", &crate::util::fake_kernel(0x020f, 4096));
    tree.build(&[]).fails(1, &["`measure.tdx`: cannot compute the TDX measurements from `kernel`", "not a PE image"]);
    assert!(!tree.path("out").exists());
}

#[test]
fn measurements_are_reproducible_and_diff_explains_them() {
    let tail = "firmware: {snp: inputs/OVMF.amdsev.fd, tdx: inputs/OVMF.inteltdx.ms.fd}\nmeasure:\n  snp:\n    \
                - {vcpus: \"1-2\", vcpu_type: EPYC-v4}\n  tdx:\n    - {memory: 2G, vcpus: 1}\n";
    let tree = tree(tail);
    with_snp_firmware(&tree);
    with_tdx_firmware(&tree);
    tree.run(&["build", "src/recipe.yaml", "-o", "a"]).ok();
    tree.run(&["build", "src/recipe.yaml", "-o", "b", "--jobs", "1"]).ok();
    assert_eq!(tree.read("a/manifest.json"), tree.read("b/manifest.json"), "measurements are deterministic");

    let recipe = std::fs::read_to_string(tree.path("src/recipe.yaml")).unwrap();
    tree.recipe(&recipe.replace("panic=-1 quiet", "panic=-1"));
    tree.run(&["build", "src/recipe.yaml", "-o", "c"]).ok();
    let run = tree.run(&["diff", "--json", "a", "c"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let explained: Vec<(&str, &str)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "measurement")
        .map(|f| (s(&f["path"]), s(&f["detail"][0])))
        .collect();
    let paths: Vec<&str> = explained.iter().map(|(p, _)| *p).collect();
    for expected in [
        "manifest.json:measurements.snp[name=snp-shape0-vcpus1].digest",
        "manifest.json:measurements.snp[name=snp-shape0-vcpus2].digest",
        "manifest.json:measurements.tdx[name=tdx-shape0].rtmr2",
    ] {
        assert!(paths.contains(&expected), "{expected} not in {paths:?}");
    }
    assert!(!paths.iter().any(|p| p.ends_with(".mrtd") || p.ends_with(".rtmr1")), "{paths:?}");
    for (path, why) in explained {
        assert!(why.contains("cmdline"), "{path}: {why}");
    }
}

/// With `CVMFORGE_TEST_KERNEL=/path/to/vmlinuz` (a real Debian kernel), the build's SNP and TDX measurements of it
/// equal the commands' (and the reference's) values; the Secure Boot warning appears only for an unsigned kernel.
#[test]
fn real_kernel_measurements_match_when_provided() {
    let Some(path) = std::env::var_os("CVMFORGE_TEST_KERNEL") else {
        crate::util::skip_test!("set CVMFORGE_TEST_KERNEL to a real bzImage to run this test");
        return;
    };
    let tree = tree(
        "firmware: {snp: inputs/OVMF.amdsev.fd, tdx: inputs/OVMF.inteltdx.ms.fd}\nmeasure:\n  snp:\n    \
         - {vcpus: \"1-2\", vcpu_type: EPYC-Genoa}\n  tdx:\n    - {memory: 4G, vcpus: 2, qemu_version: \"10.1\"}\n",
    );
    tree.write("src/inputs/vmlinuz", &std::fs::read(path).unwrap());
    with_snp_firmware(&tree);
    with_tdx_firmware(&tree);
    let built = tree.build(&[]).ok();
    let m = manifest(&tree);
    check_snp_entries(&tree, m["measurements"]["snp"].as_array().unwrap());
    check_tdx_entries(&tree, m["measurements"]["tdx"].as_array().unwrap());
    let signed = m["measurements"]["tdx"][0]["warnings"].as_array().unwrap().is_empty();
    assert_eq!(signed, !built.stderr.contains("enforces Secure Boot"), "{}", built.stderr);
}

/// Issue 11, item 2: an ID-block key reaches the manifest (its digest, every ID block's signature), so the lock pins
/// its public key (never the private key), and another key fails `--locked`, naming it.
#[test]
fn issue11_locked_refuses_another_id_key() {
    let keys = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/keys");
    let tree = tree(
        "firmware: {snp: inputs/OVMF.amdsev.fd}\nmeasure:\n  snp:\n    - {vcpus: 1, vcpu_type: EPYC-Milan, \
         id_key: keys/id.pem}\n",
    );
    with_snp_firmware(&tree);
    tree.write("src/keys/id.pem", &std::fs::read(keys.join("id-key-p384.pem")).unwrap());
    tree.build(&[]).ok();
    let lock = String::from_utf8(tree.read("src/recipe.lock")).unwrap();
    assert!(lock.contains("\"id-key:snp[0]\""), "{lock}");
    assert!(!lock.contains("PRIVATE"), "the lock holds no key material");
    tree.build(&["--locked", "--force"]).ok();
    tree.write("src/keys/id.pem", &std::fs::read(keys.join("author-key-p384-sec1.pem")).unwrap());
    tree.build(&["--locked", "--force"]).fails(1, &["input `id-key:snp[0]` (`public key`)", "expected sha256"]);
}
