//! `cvmforge verify`: a fresh build verifies (manifest and bundle, inputs in place or elsewhere); each injected change
//! is named both by `cvmforge diff` of the two builds and by `verify`; damaged publications are refused.

use std::time::{Duration, Instant};

use crate::util::{random_bytes, run_in, sha256_hex, Run, Tree, STANDARD_RECIPE};

const BUNDLE: &str = "demo-0.1.0.cvm.tar";

/// `cvmforge verify ARGS` run in the recipe's directory `src/` (the manifest's recipe path is `recipe.yaml`).
fn verify_in_src(tree: &Tree, args: &[&str]) -> Run {
    let mut all = vec!["verify"];
    all.extend_from_slice(args);
    run_in(&tree.path("src"), &all)
}

/// Every item line of a successful verification says `ok`.
fn assert_all_ok(run: &Run) {
    let items: Vec<&str> = run.stdout.lines().take_while(|l| !l.is_empty() && !l.starts_with("verified")).collect();
    assert!(items.len() >= 11, "{}", run.stdout);
    for line in &items {
        assert_eq!(line.split_whitespace().nth(1), Some("ok"), "{line}\n{}", run.stdout);
    }
    assert!(!run.stdout.contains("DIFFERS"), "{}", run.stdout);
    assert!(run.stdout.ends_with("verified: the rebuild is identical\n"), "{}", run.stdout);
}

#[test]
fn verifies_manifest_and_bundle_of_a_fresh_build() {
    let tree = Tree::standard();
    tree.build(&[]).ok();
    let before = tree.list("src");
    let run = verify_in_src(&tree, &["../out/manifest.json"]).ok();
    assert_all_ok(&run);
    for name in ["initrd.img", "kernel", "cmdline", "firmware-snp.fd", "manifest.json"] {
        assert!(run.stdout.contains(&format!("output       ok      {name}\n")), "{name}\n{}", run.stdout);
    }
    assert!(run.stdout.contains("input        ok      file:/srv/model.txt (data/model.txt)\n"), "{}", run.stdout);

    let run = verify_in_src(&tree, &[&format!("../out/{BUNDLE}")]).ok();
    assert_all_ok(&run);
    assert!(run.stdout.contains(&format!("output       ok      {BUNDLE}\n")), "{}", run.stdout);
    // The rebuild ran elsewhere: no lock file rewritten, no output or staging directory beside the recipe.
    assert_eq!(tree.list("src"), before);

    let run = run_in(&tree.path("src"), &["--json", "verify", &format!("../out/{BUNDLE}")]).ok();
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["identical"], true);
    assert_eq!(doc["inputs"].as_array().unwrap().len(), 5);
    let outputs: Vec<&str> = doc["outputs"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(outputs, ["cmdline", "firmware-snp.fd", "initrd.img", "kernel", "manifest.json", BUNDLE]);
    let cmdline = &doc["outputs"][0];
    assert_eq!(cmdline["expected_sha256"], sha256_hex(b"console=ttyS0 panic=-1"));
    assert_eq!(cmdline["expected_sha256"], cmdline["actual_sha256"]);
    assert_eq!(doc["findings"], serde_json::json!([]));
}

#[test]
fn verifies_with_inputs_found_by_digest_in_another_directory() {
    let tree = Tree::standard();
    tree.build(&[]).ok();
    std::fs::rename(tree.path("src/inputs"), tree.path("elsewhere")).unwrap();
    std::fs::create_dir_all(tree.path("more/deep")).unwrap();
    std::fs::rename(tree.path("src/data/model.txt"), tree.path("more/deep/renamed.txt")).unwrap();
    // Without --inputs the moved inputs are reported missing, by role, path and expected digest.
    let run = tree.run(&["verify", &format!("out/{BUNDLE}"), "--recipe", "src/recipe.yaml"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let model = sha256_hex(b"a tiny model\n");
    assert!(
        run.stdout.contains(&format!(
            "input        MISSING file:/srv/model.txt (data/model.txt): not found; expected sha256 {model} (13 bytes)"
        )),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("NOT verified: 5 input(s) missing or changed; nothing was rebuilt"), "{}", run.stdout);

    let run = tree
        .run(&[
            "verify",
            &format!("out/{BUNDLE}"),
            "--recipe",
            "src/recipe.yaml",
            "--inputs",
            "elsewhere",
            "--inputs",
            "more",
        ])
        .ok();
    assert_all_ok(&run);
    assert!(run.stdout.contains("found at more/deep/renamed.txt"), "{}", run.stdout);
    assert!(
        run.stdout.contains("input        ok      kernel (inputs/vmlinuz) found at elsewhere/vmlinuz"),
        "{}",
        run.stdout
    );
}

/// Builds the standard tree into `out-a`, applies `change`, builds into `out-b`; returns the tree and the text of
/// `cvmforge diff out-a out-b` (which must exit 1).
fn two_builds(change: impl FnOnce(&Tree)) -> (Tree, String) {
    let tree = Tree::standard();
    tree.run(&["build", "src/recipe.yaml", "-o", "out-a"]).ok();
    change(&tree);
    tree.run(&["build", "src/recipe.yaml", "-o", "out-b"]).ok();
    let diff = tree.run(&["diff", "out-a", "out-b"]);
    assert_eq!(diff.code, 1, "{diff:?}");
    (tree, diff.stdout)
}

/// The initrd findings of a diff.
fn initrd_lines(diff: &str) -> Vec<&str> {
    diff.lines().filter(|l| l.starts_with("initrd.img:")).collect()
}

#[test]
fn changed_payload_byte_is_named_by_diff_and_verify() {
    let old = sha256_hex(b"a tiny model\n");
    let new = sha256_hex(b"a tiny modem\n");
    let (tree, diff) = two_builds(|t| t.write("src/data/model.txt", b"a tiny modem\n"));
    let initrd = initrd_lines(&diff);
    assert_eq!(initrd.len(), 1, "{diff}");
    assert!(initrd[0].starts_with("initrd.img:srv/model.txt: content differs"), "{diff}");
    assert!(diff.contains("    -a tiny model\n    +a tiny modem\n"), "{diff}");
    assert!(
        diff.contains(&format!("manifest.json:inputs[role=file:/srv/model.txt].sha256 differs: {}", &old[..12])),
        "{diff}"
    );

    for target in ["../out-a/manifest.json".to_string(), format!("../out-a/{BUNDLE}")] {
        let run = verify_in_src(&tree, &[&target]);
        assert_eq!(run.code, 1, "{run:?}");
        let line = format!(
            "input        DIFFERS file:/srv/model.txt (data/model.txt): sha256 {new} but the manifest lists {old}\n"
        );
        assert!(run.stdout.contains(&line), "{}", run.stdout);
        assert_eq!(run.stdout.matches("DIFFERS").count(), 1, "{}", run.stdout);
    }
}

#[test]
fn changed_file_mode_in_the_recipe_is_named_by_diff_and_verify() {
    let old_recipe = sha256_hex(STANDARD_RECIPE.as_bytes());
    let changed = STANDARD_RECIPE.replace("mode: 0o640}", "mode: 0o600}");
    assert_ne!(changed, STANDARD_RECIPE);
    let (tree, diff) = two_builds(|t| t.recipe(&changed));
    assert_eq!(initrd_lines(&diff), ["initrd.img:srv/model.txt: mode differs: 0640 vs 0600"], "{diff}");

    let run = verify_in_src(&tree, &["../out-a/manifest.json"]);
    assert_eq!(run.code, 1, "{run:?}");
    let recipe = format!(
        "recipe       DIFFERS recipe.yaml: sha256 {} but the manifest lists {old_recipe}\n",
        sha256_hex(changed.as_bytes())
    );
    assert!(run.stdout.contains(&recipe), "{}", run.stdout);
    assert!(run.stdout.contains("output       DIFFERS initrd.img: sha256 "), "{}", run.stdout);
    assert!(run.stdout.contains("  initrd.img:srv/model.txt: mode differs: 0640 vs 0600\n"), "{}", run.stdout);
    assert!(!run.stdout.contains("DIFFERS cmdline"), "{}", run.stdout);
}

#[test]
fn changed_cmdline_is_named_by_diff_and_verify() {
    let changed = STANDARD_RECIPE.replace("panic=-1\"", "panic=-1 quiet\"");
    assert_ne!(changed, STANDARD_RECIPE);
    let (tree, diff) = two_builds(|t| t.recipe(&changed));
    assert!(diff.contains("cmdline: content differs"), "{diff}");
    assert!(diff.contains("    -console=ttyS0 panic=-1\n    +console=ttyS0 panic=-1 quiet\n"), "{diff}");
    assert!(initrd_lines(&diff).is_empty(), "{diff}");

    let run = verify_in_src(&tree, &[&format!("../out-a/{BUNDLE}")]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("recipe       DIFFERS recipe.yaml"), "{}", run.stdout);
    let cmdline = format!(
        "output       DIFFERS cmdline: sha256 {}… vs rebuilt {}…\n",
        &sha256_hex(b"console=ttyS0 panic=-1")[..12],
        &sha256_hex(b"console=ttyS0 panic=-1 quiet")[..12]
    );
    assert!(run.stdout.contains(&cmdline), "{}", run.stdout);
    assert!(
        run.stdout.contains("      -console=ttyS0 panic=-1\n      +console=ttyS0 panic=-1 quiet\n"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("DIFFERS initrd.img"), "{}", run.stdout);
}

#[test]
fn changed_firmware_is_named_by_diff_and_verify() {
    let (tree, diff) = two_builds(|t| t.write("src/inputs/OVMF.amdsev.fd", &random_bytes(8192, 8)));
    let (old, new) = (sha256_hex(&random_bytes(8192, 7)), sha256_hex(&random_bytes(8192, 8)));
    assert!(
        diff.contains(&format!("manifest.json:inputs[role=firmware:snp].sha256 differs: {}", &old[..12])),
        "{diff}"
    );
    assert!(diff.contains("firmware-snp.fd: content differs"), "{diff}");
    assert!(initrd_lines(&diff).is_empty(), "{diff}");

    let run = verify_in_src(&tree, &["../out-a/manifest.json"]);
    assert_eq!(run.code, 1, "{run:?}");
    let line = format!(
        "input        DIFFERS firmware:snp (inputs/OVMF.amdsev.fd): sha256 {new} but the manifest lists {old}\n"
    );
    assert!(run.stdout.contains(&line), "{}", run.stdout);
    let run = run_in(&tree.path("src"), &["--json", "verify", "../out-a/manifest.json"]);
    assert_eq!(run.code, 1);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["identical"], false);
    let bad: Vec<&serde_json::Value> =
        doc["inputs"].as_array().unwrap().iter().filter(|i| i["status"] != "ok").collect();
    assert_eq!(bad.len(), 1);
    assert_eq!((&bad[0]["role"], &bad[0]["status"]), (&"firmware:snp".into(), &"differs".into()));
    assert_eq!(bad[0]["expected_sha256"], old.as_str());
    assert_eq!(bad[0]["actual_sha256"], new.as_str());
}

// ---- damaged or hostile publications ----

#[test]
fn rejects_truncated_bundle() {
    let tree = Tree::standard();
    tree.build(&[]).ok();
    let bytes = tree.read(&format!("out/{BUNDLE}"));
    tree.write("cut.cvm.tar", &bytes[..bytes.len() / 2]);
    verify_in_src(&tree, &["../cut.cvm.tar"]).fails(
        1,
        &["error: cannot read bundle `../cut.cvm.tar`", "bytes of content, but only", "bytes remain in the stream"],
    );
}

#[test]
fn rejects_manifest_with_unknown_schema_version() {
    let tree = Tree::standard();
    tree.build(&[]).ok();
    let text = String::from_utf8(tree.read("out/manifest.json")).unwrap().replace("manifest/v1", "manifest/v99");
    tree.write("v99.json", text.as_bytes());
    verify_in_src(&tree, &["../v99.json"]).fails(
        1,
        &[
            "`../v99.json` is not a usable manifest",
            "manifest schema `https://cvmforge.dev/manifest/v99` is not supported",
        ],
    );
}

#[test]
fn rejects_bundle_whose_manifest_digest_does_not_match_a_member() {
    let tree = Tree::standard();
    tree.build(&[]).ok();
    let manifest = String::from_utf8(tree.read("out/manifest.json")).unwrap();
    let good = sha256_hex(b"console=ttyS0 panic=-1");
    let bad = sha256_hex(b"console=ttyS0 panic=-2");
    let mut tar = cvmforge::format::tar::TarWriter::new(Vec::new(), 0);
    for name in ["cmdline", "firmware-snp.fd", "initrd.img", "kernel", "manifest.json"] {
        let content =
            if name == "cmdline" { b"console=ttyS0 panic=-2".to_vec() } else { tree.read(&format!("out/{name}")) };
        tar.add_file(name, 0o644, content.len() as u64, &mut &content[..]).unwrap();
    }
    tree.write("forged.cvm.tar", &tar.finish().unwrap());
    assert!(manifest.contains(&good));
    verify_in_src(&tree, &["../forged.cvm.tar"]).fails(
        1,
        &[&format!("`cmdline` in `../forged.cvm.tar` does not match its manifest: sha256 {bad} (22 bytes), the manifest lists {good} (22 bytes)"), "hint: the publication contradicts its own manifest"],
    );
    // A member the manifest does not list is refused too.
    let mut tar = cvmforge::format::tar::TarWriter::new(Vec::new(), 0);
    for name in ["cmdline", "firmware-snp.fd", "initrd.img", "kernel", "manifest.json", "zz-extra"] {
        let content = if name == "zz-extra" { b"surprise".to_vec() } else { tree.read(&format!("out/{name}")) };
        tar.add_file(name, 0o644, content.len() as u64, &mut &content[..]).unwrap();
    }
    tree.write("extra.cvm.tar", &tar.finish().unwrap());
    verify_in_src(&tree, &["../extra.cvm.tar"]).fails(
        1,
        &["bundle `../extra.cvm.tar` and its manifest disagree: `zz-extra` is in the bundle but not in the manifest's outputs"],
    );
    // A loose output beside a manifest is checked the same way.
    tree.write("out/cmdline", b"console=ttyS0 panic=-2");
    verify_in_src(&tree, &["../out/manifest.json"]).fails(1, &["`cmdline` in `../out` does not match its manifest"]);
}

/// A ustar header for a regular file `name` whose size field is `size` (11 octal digits).
fn ustar_header(name: &str, size: &str) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size}\0").as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = b'0';
    h[257..265].copy_from_slice(b"ustar\x0000");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

#[test]
fn rejects_tar_bombs_fast() {
    let tree = Tree::new();
    // One member declaring 8 GiB - 1 in a 1.5 KiB file.
    let mut huge = ustar_header("initrd.img", "77777777777").to_vec();
    huge.extend_from_slice(&[0u8; 1024]);
    tree.write("huge.cvm.tar", &huge);
    let start = Instant::now();
    let run = tree.run(&["verify", "huge.cvm.tar"]).fails(1, &["error: cannot read bundle `huge.cvm.tar`"]);
    assert!(run.stderr.contains("8589934591"), "{}", run.stderr);
    // 20 000 empty members (10 MiB of headers): refused at the member limit, long before the end.
    let mut many = Vec::with_capacity(20_000 * 512 + 1024);
    for i in 0..20_000 {
        many.extend_from_slice(&ustar_header(&format!("f{i}"), "00000000000"));
    }
    many.extend_from_slice(&[0u8; 1024]);
    tree.write("many.cvm.tar", &many);
    tree.run(&["verify", "many.cvm.tar"])
        .fails(1, &["tar archive has too many entries: more than 64 (entry 64 starts at byte offset 32768)"]);
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
}

#[test]
fn rejects_missing_target_and_bad_flags_as_usage_errors() {
    let tree = Tree::new();
    tree.run(&["verify", "nope.json"]).fails(2, &["`nope.json` does not exist"]);
    tree.write("m.json", b"{}");
    tree.run(&["verify", "m.json", "--inputs", "nodir"]).fails(2, &["--inputs `nodir` is not a directory"]);
    tree.run(&["verify"]).fails(2, &["<TARGET>"]);
}

#[test]
fn rejects_manifest_recipe_path_outside_the_current_directory() {
    let tree = Tree::standard();
    tree.build(&[]).ok();
    let text = String::from_utf8(tree.read("out/manifest.json")).unwrap();
    let text = text.replace("\"path\": \"recipe.yaml\"", "\"path\": \"../../etc/passwd\"");
    assert!(text.contains("../../etc/passwd"));
    tree.write("out/manifest.json", text.as_bytes());
    verify_in_src(&tree, &["../out/manifest.json"]).fails(
        1,
        &["error: the manifest's recipe path `../../etc/passwd` is absolute or climbs out of its tree with `..`"],
    );
}

/// Issue 11, item 5 (the class): `verify` of a manifest does not follow a symlinked member beside it either.
#[test]
fn issue11_verify_refuses_a_symlinked_member() {
    let tree = Tree::standard();
    tree.build(&[]).ok();
    std::fs::write(tree.path("secret"), b"root:$6$hash:").unwrap();
    std::fs::remove_file(tree.path("out/cmdline")).unwrap();
    std::os::unix::fs::symlink(tree.path("secret"), tree.path("out/cmdline")).unwrap();
    let run = tree.run(&["verify", "out/manifest.json", "--recipe", "src/recipe.yaml"]);
    run.fails(1, &["cmdline", "is a symbolic link"]);
}
