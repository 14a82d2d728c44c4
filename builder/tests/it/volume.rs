//! Data volumes in a build (issue 14): the image and its hash tree, the `cvm.volume=` parameter on the measured
//! command line, the manifest record, and every refusal the issue lists.

use std::process::Command;

use crate::util::{random_bytes, Tree, STANDARD_RECIPE};

const VOLUME: &str = "volumes:
  - name: models
    source: weights
    mount: /models
";

/// The standard tree with a `weights/` directory and a volume over it.
fn tree_with_volume(volume: &str) -> Tree {
    let tree = Tree::standard();
    tree.write("src/inputs/OVMF.amdsev.fd", &crate::util::firmware_fixture("OVMF.amdsev.fd"));
    tree.write("src/weights/terms.tsv", b"vm\t3.5\nthe\t0.01\n");
    tree.write("src/weights/shards/0.bin", &random_bytes(3 * 4096 + 100, 1));
    tree.write("src/weights/shards/1.bin", &random_bytes(70_000, 2));
    tree.recipe(&format!("{STANDARD_RECIPE}measure:\n  snp:\n    - {{vcpus: 1, vcpu_type: EPYC-v4}}\n{volume}"));
    tree
}

fn manifest(tree: &Tree) -> serde_json::Value {
    serde_json::from_slice(&tree.read("out/manifest.json")).unwrap()
}

#[test]
fn a_volume_is_built_measured_through_the_command_line_and_recorded() {
    let tree = tree_with_volume(VOLUME);
    tree.build(&[]).ok();
    let m = manifest(&tree);
    let v = &m["volumes"][0];
    assert_eq!(v["name"], "models");
    assert_eq!(v["mount"], "/models");
    assert_eq!(v["mount_flags"], serde_json::json!(["ro", "nodev", "nosuid", "noexec"]));
    assert_eq!(v["image"], "volume-models.img");
    let files: Vec<&str> = v["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(files, ["shards/0.bin", "shards/1.bin", "terms.tsv"]);
    assert_eq!(v["files"][2]["sha256"], crate::util::sha256_hex(b"vm\t3.5\nthe\t0.01\n"));
    // The command line carries the root hash, and it is the command line that was measured.
    let cmdline = String::from_utf8(tree.read("out/cmdline")).unwrap();
    let param = format!(
        "cvm.volume=models:{}:{}:{}:{}",
        v["data_blocks"],
        v["hash_blocks"],
        v["root_hash"].as_str().unwrap(),
        v["salt"].as_str().unwrap()
    );
    assert_eq!(cmdline, format!("console=ttyS0 panic=-1 {param}"));
    assert_eq!(m["kernel"]["cmdline"], cmdline);
    // SEV hashes the command line with its terminating NUL.
    let cmdline_sha = crate::util::sha256_hex(format!("{cmdline}\0").as_bytes());
    assert_eq!(m["measurements"]["snp"][0]["inputs"]["cmdline_sha256"], cmdline_sha, "{:#}", m["measurements"]);
    // The image is an output with its digest, beside the bundle and not in it.
    let image = tree.read("out/volume-models.img");
    assert_eq!(image.len() as u64, (v["data_blocks"].as_u64().unwrap() + v["hash_blocks"].as_u64().unwrap()) * 4096);
    let record = m["outputs"].as_array().unwrap().iter().find(|o| o["name"] == "volume-models.img").unwrap();
    assert_eq!(record["sha256"], crate::util::sha256_hex(&image));
    let bundle = tree.read("out/demo-0.1.0.cvm.tar");
    let mut archive = tar::Archive::new(&bundle[..]);
    let members: Vec<String> =
        archive.entries().unwrap().map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(members, ["cmdline", "firmware-snp.fd", "initrd.img", "kernel", "manifest.json"]);
    // The initrd has the mount point as an empty directory.
    let initrd = crate::util::gunzip(&tree.read("out/initrd.img"));
    let entries = crate::util::parse_newc(&initrd);
    let mount = entries.iter().find(|e| e.name == "models").unwrap();
    assert_eq!(mount.mode, 0o040555);
}

#[test]
fn veritysetup_verifies_the_built_volume_with_the_command_line_parameters() {
    if !crate::util::have("veritysetup") {
        crate::util::skip_test!("`veritysetup` is not installed (Debian: cryptsetup-bin)");
        return;
    }
    let tree = tree_with_volume(VOLUME);
    tree.build(&[]).ok();
    let cmdline = String::from_utf8(tree.read("out/cmdline")).unwrap();
    let param = cmdline.split(' ').find_map(|p| p.strip_prefix("cvm.volume=")).unwrap();
    let parts: Vec<&str> = param.split(':').collect();
    let (data_blocks, root, salt) = (parts[1], parts[3], parts[4]);
    let image = tree.path("out/volume-models.img");
    let verify = || {
        Command::new("veritysetup")
            .args(["verify", "--no-superblock", "--format=1", "--hash=sha256"])
            .args(["--data-block-size=4096", "--hash-block-size=4096"])
            .arg(format!("--data-blocks={data_blocks}"))
            .arg(format!("--hash-offset={}", data_blocks.parse::<u64>().unwrap() * 4096))
            .arg(format!("--salt={salt}"))
            .arg(&image)
            .arg(&image)
            .arg(root)
            .output()
            .unwrap()
    };
    let ok = verify();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    // One flipped byte in a weight file's block: veritysetup refuses the volume.
    let mut bytes = std::fs::read(&image).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x40;
    std::fs::write(&image, &bytes).unwrap();
    assert!(!verify().status.success());
}

#[test]
fn the_same_files_give_the_same_volume_whatever_their_modes_and_times() {
    let a = tree_with_volume(VOLUME);
    a.build(&[]).ok();
    let b = tree_with_volume(VOLUME);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(b.path("src/weights/terms.tsv"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let old = filetime_of(&b.path("src/weights/shards/1.bin"));
    assert!(old > 0);
    let touched = Command::new("touch").args(["-d", "@1000000000"]).arg(b.path("src/weights/shards/1.bin")).status();
    assert!(touched.unwrap().success());
    b.build(&[]).ok();
    assert_eq!(a.read("out/volume-models.img"), b.read("out/volume-models.img"));
    assert_eq!(a.read("out/cmdline"), b.read("out/cmdline"));
}

fn filetime_of(path: &std::path::Path) -> i64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().mtime()
}

#[test]
fn a_changed_weight_moves_the_root_hash_and_every_measurement() {
    let a = tree_with_volume(VOLUME);
    a.build(&[]).ok();
    let b = tree_with_volume(VOLUME);
    b.write("src/weights/terms.tsv", b"vm\t3.6\nthe\t0.01\n");
    b.build(&[]).ok();
    let (ma, mb) = (manifest(&a), manifest(&b));
    assert_ne!(ma["volumes"][0]["root_hash"], mb["volumes"][0]["root_hash"]);
    assert_ne!(ma["measurements"]["snp"][0]["digest"], mb["measurements"]["snp"][0]["digest"]);
}

#[test]
fn rejects_bad_volumes_with_a_clear_message() {
    type Prepare = Box<dyn Fn(&Tree)>;
    let cases: Vec<(&str, Prepare, Vec<&str>)> = vec![
        (
            "volumes:\n  - {name: models, source: empty, mount: /models}\n",
            Box::new(|t: &Tree| std::fs::create_dir_all(t.path("src/empty/sub")).unwrap()),
            vec!["volume `models` (volumes[0]) cannot be built", "the volume is empty"],
        ),
        (
            "volumes:\n  - {name: models, source: weights, mount: /models, max_size: 4K}\n",
            Box::new(|_: &Tree| {}),
            vec!["more than its max_size of 4096"],
        ),
        (
            "volumes:\n  - {name: models, source: weights, mount: /usr}\n",
            Box::new(|_: &Tree| {}),
            vec!["volumes[0].mount", "would hide `/usr/bin/server`"],
        ),
        (
            "volumes:\n  - {name: models, source: weights, mount: /srv}\n",
            Box::new(|_: &Tree| {}),
            vec!["volumes[0].mount (mount point of volume models)` conflicts with `initrd.directories[0]"],
        ),
        (
            "volumes:\n  - {name: models, source: weights, mount: /usr/bin/server}\n",
            Box::new(|_: &Tree| {}),
            vec!["conflicts with", "/usr/bin/server"],
        ),
        (
            "volumes:\n  - {name: a, source: weights, mount: /models}\n  - {name: b, source: weights, mount: /models/b}\n",
            Box::new(|_: &Tree| {}),
            vec!["volumes[1].mount", "clashes with volumes[0].mount `/models`"],
        ),
        (
            "volumes:\n  - {name: models, source: weights, mount: /proc/models}\n",
            Box::new(|_: &Tree| {}),
            vec!["guest-init mounts `/proc` itself"],
        ),
        (
            VOLUME,
            Box::new(|t: &Tree| std::os::unix::fs::symlink("/etc/passwd", t.path("src/weights/link")).unwrap()),
            vec!["weights/link` is a symbolic link: a volume holds regular files and directories only"],
        ),
        (
            "volumes:\n  - {name: models, source: weights, mount: /models, options: [rw]}\n",
            Box::new(|_: &Tree| {}),
            vec!["unknown variant `rw`", "line"],
        ),
    ];
    for (volume, prepare, needles) in cases {
        let tree = tree_with_volume(volume);
        prepare(&tree);
        let run = tree.build(&[]);
        run.fails(1, &needles);
        assert!(!tree.path("out").exists(), "{volume}: an output was left");
    }
}

/// A weight file that grows while the build runs (after the plan, before it is read): the build fails, naming it.
#[test]
fn rejects_a_volume_source_that_changes_during_the_build() {
    let tree = tree_with_volume(VOLUME);
    let child = crate::util::paused_build(&tree);
    let marker = tree.path("paused");
    tree.write("src/weights/shards/1.bin", &random_bytes(70_001, 2));
    std::fs::remove_file(&marker).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("weights/shards/1.bin") && stderr.contains("changed"), "{stderr}");
    assert!(!tree.path("out").exists());
}

/// `cvmforge diff` names the changed weight file by volume and path, and the measurements it moved.
#[test]
fn diff_names_the_changed_weight_file_and_the_measurements_it_moved() {
    let tree = tree_with_volume(VOLUME);
    tree.build(&[]).ok();
    std::fs::rename(tree.path("out"), tree.path("a")).unwrap();
    tree.write("src/weights/terms.tsv", b"vm\t3.6\nthe\t0.01\n");
    tree.build(&[]).ok();
    let run = tree.run(&["diff", "a", "out"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    for needle in [
        "manifest.json:volumes[name=models].files[path=terms.tsv].sha256",
        "data volume name=models, file path=terms.tsv: its root hash is on the command line (cvm.volume=), which feeds the measurements snp.digest",
        "manifest.json:volumes[name=models].root_hash",
        "volume-models.img",
    ] {
        assert!(run.stdout.contains(needle), "diff lacks `{needle}`:\n{}", run.stdout);
    }
}

/// `cvmforge verify` of a publication whose volume image was changed after the build: refused, naming it, whether
/// the target is the manifest (its directory's files are checked against it) or the bundle (the image is published
/// beside it, not in it).
#[test]
fn verify_refuses_a_tampered_volume() {
    let tree = tree_with_volume(VOLUME);
    tree.build(&[]).ok();
    // Untouched, the publication reproduces (the volume's files are staged for the rebuild).
    let run = tree.run(&["verify", "out/demo-0.1.0.cvm.tar", "--recipe", "src/recipe.yaml"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("volume-models.img (published beside the manifest)"), "{}", run.stdout);
    let image = tree.path("out/volume-models.img");
    let mut bytes = std::fs::read(&image).unwrap();
    let at = bytes.windows(6).position(|w| w == b"vm\t3.5").unwrap();
    bytes[at + 3] = b'9';
    std::fs::write(&image, &bytes).unwrap();
    let run = tree.run(&["verify", "out/manifest.json", "--recipe", "src/recipe.yaml"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("`volume-models.img` in `out` does not match its manifest"), "{}", run.stderr);
    let run = tree.run(&["verify", "out/demo-0.1.0.cvm.tar", "--recipe", "src/recipe.yaml"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let line = run.stdout.lines().find(|l| l.contains("volume-models.img (published beside the manifest)"));
    assert!(line.is_some_and(|l| l.contains("DIFFERS")), "{}", run.stdout);
}

/// `cvmforge inspect` shows each volume: mount point, root hash and files (text and JSON).
#[test]
fn inspect_shows_the_volumes() {
    let tree = tree_with_volume(VOLUME);
    tree.build(&[]).ok();
    let m = manifest(&tree);
    let root = m["volumes"][0]["root_hash"].as_str().unwrap().to_string();
    for target in ["out/manifest.json", "out/demo-0.1.0.cvm.tar"] {
        let run = tree.run(&["inspect", target]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let head = "volume models: volume-models.img on /models (ro,nodev,nosuid,noexec), 3 files, ";
        assert!(run.stdout.contains(head) && run.stdout.contains(&format!("dm-verity root {root}")), "{}", run.stdout);
        assert!(run.stdout.contains("  terms.tsv\n"), "{}", run.stdout);
        let json = tree.run(&["inspect", target, "--json"]);
        let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
        assert_eq!(doc["volumes"][0]["root_hash"], root.as_str());
    }
}

/// The lock file pins every volume file; `--locked` refuses a changed one, naming it, and publishes nothing.
#[test]
fn locked_builds_pin_the_volume_files() {
    let tree = tree_with_volume(VOLUME);
    tree.build(&[]).ok();
    let lock = String::from_utf8(tree.read("src/recipe.lock")).unwrap();
    assert!(lock.contains("volume:models/terms.tsv") && lock.contains("weights/terms.tsv"), "{lock}");
    tree.build(&["--locked", "--force"]).ok();
    tree.write("src/weights/terms.tsv", b"vm\t3.6\nthe\t0.01\n");
    let before = tree.read("out/manifest.json");
    let run = tree.build(&["--locked", "--force"]);
    run.fails(1, &["volume:models/terms.tsv"]);
    assert_eq!(tree.read("out/manifest.json"), before, "a refused build replaced the output");
}
