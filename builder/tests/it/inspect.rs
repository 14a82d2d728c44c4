//! `cvmforge inspect` on a hand-written manifest (`tests/fixtures/inspect/`), and the inputs it refuses.

// Test helpers outside #[test] functions: a panic here is a test failure, which is what we want.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/inspect/manifest.json")
}

fn inspect(args: &[&str], path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cvmforge")).args(args).arg("inspect").arg(path).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn lists_manifest_entries_and_policy_verdict() {
    let path = fixture();
    let out = inspect(&[], &path);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let expected = format!(
        "manifest: {}

TYPE      MODE    SIZE  SHA256        PATH
directory 0755       0  -             /bin
symlink   0777       5  4ba1d2cdcc1e  /bin/sh -> /init
directory 0755       0  -             /dev
chardev   0600       0  -             /dev/console
directory 0755       0  -             /etc
directory 0755       0  -             /etc/cvmforge
file      0444     131  0f3a6c1d2e4b  /etc/cvmforge/init.json
file      0755 1048576  9e1b7a3c5d2f  /init
file      0644   38912  d41c8fa2b7e9  /lib/modules/6.1.0-56-amd64/kernel/drivers/virt/coco/sev-guest/sev-guest.ko
file      0755 4194304  5a2f8c1e7b3d  /usr/bin/server
10 entries

sealing policy: violations
kernel config: file
violations (1):
  - cmdline:earlyprintk: `earlyprintk=ttyS0`: every early console is a debug path that runs before lockdown
waivers applied (1):
  - sh: lab image: /bin/sh points at the init for a debug hook
      waived: `/bin/sh` has the name of a forbidden program
warning: telnetd: the waiver for `telnetd` matches no violation: remove it from the recipe
kernel modules (1, in load order):
  - sev_guest -> /lib/modules/6.1.0-56-amd64/kernel/drivers/virt/coco/sev-guest/sev-guest.ko
",
        path.display()
    );
    assert_eq!(text(&out.stdout), expected);
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn json_output_carries_entries_and_the_policy_section() {
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(fixture()).unwrap()).unwrap();
    let out = inspect(&["--json"], &fixture());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["schema_version"], 1);
    // Every entry field the manifest has, except device numbers, comes through unchanged.
    let mut entries = manifest["initrd"]["entries"].clone();
    for e in entries.as_array_mut().unwrap() {
        e.as_object_mut().unwrap().remove("device");
    }
    assert_eq!(doc["entries"], entries);
    assert_eq!(doc["policy"], manifest["sealing"]);
    assert_eq!(doc["modules"], manifest["sealing"]["modules"]);
    let mut keys: Vec<_> = doc.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, vec!["entries", "modules", "policy", "schema_version"]);
}

#[test]
fn manifest_without_sealing_section_says_not_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest.json");
    let doc = r#"{"initrd": {"entries": [{"path": "/init", "type": "file", "mode": "0755", "size": 3, "sha256": "ab"}]}, "sealing": {}}"#;
    std::fs::write(&path, doc).unwrap();
    let out = inspect(&[], &path);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).ends_with(
        "file      0755    3  ab            /init\n1 entries\n\nsealing policy: not checked (the manifest has no sealing section)\n"
    ), "{}", text(&out.stdout));
    let out = inspect(&["--json"], &path);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["policy"], serde_json::Value::Null);
    assert!(json.get("modules").is_none());
}

fn assert_fails(path: &Path, error: &str, hint: Option<&str>) {
    let out = inspect(&[], path);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with(&format!("error: {error}")), "{stderr}");
    if let Some(hint) = hint {
        assert!(stderr.contains(&format!("\nhint: {hint}")), "{stderr}");
    }
    assert_eq!(text(&out.stdout), "");
}

#[test]
fn rejects_initrd_and_bundle_until_the_archive_reader_is_merged() {
    let dir = tempfile::tempdir().unwrap();
    let hint = "inspect the build's `manifest.json` instead";
    let initrd = dir.path().join("initrd.cpio.zst");
    std::fs::write(&initrd, zstd::encode_all(&b"070701"[..], 3).unwrap()).unwrap();
    let expected = format!(
        "`{}` looks like a zstd-compressed initrd: inspecting initrd/bundle files needs the archive reader (not \
         merged yet)",
        initrd.display()
    );
    assert_fails(&initrd, &expected, Some(hint));

    let cpio = dir.path().join("initrd.cpio");
    std::fs::write(&cpio, b"07070100000001").unwrap();
    assert_fails(&cpio, &format!("`{}` looks like an uncompressed newc initrd", cpio.display()), Some(hint));

    let mut tar = vec![0u8; 1024];
    tar[..9].copy_from_slice(b"manifest\0");
    tar[257..263].copy_from_slice(b"ustar\0");
    let bundle = dir.path().join("demo-1.0.cvm.tar");
    std::fs::write(&bundle, tar).unwrap();
    assert_fails(&bundle, &format!("`{}` looks like a tar bundle", bundle.display()), Some(hint));
}

#[test]
fn rejects_manifests_naming_the_bad_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest.json");
    let cases = [
        (r#"{"initrd": {}}"#, "field `initrd.entries` is missing or not a list"),
        (
            r#"{"initrd": {"entries": [{"path": "/a", "type": "file", "mode": "0644", "size": 1}, {"path": "/b", "type": "file", "mode": "0644", "size": -1}]}}"#,
            "field `initrd.entries[1].size` is missing or not a non-negative integer",
        ),
        (
            r#"{"initrd": {"entries": [{"path": "/a", "type": "file", "mode": 420, "size": 1}]}}"#,
            "field `initrd.entries[0].mode` is missing or not a string",
        ),
        (r#"{"initrd": {"entries": []}, "sealing": 3}"#, "field `sealing` is not an object"),
    ];
    for (doc, cause) in cases {
        std::fs::write(&path, doc).unwrap();
        let out = inspect(&[], &path);
        assert_eq!(out.status.code(), Some(1));
        let expected = format!("error: `{}` is not a cvmforge manifest\n  caused by: {cause}\n", path.display());
        assert_eq!(text(&out.stderr), expected);
    }
    std::fs::write(&path, "not json").unwrap();
    assert_fails(&path, &format!("`{}` is not a manifest: not valid JSON", path.display()), None);
    assert_fails(&dir.path().join("absent.json"), "cannot read `", None);
}
