//! `cvmforge inspect` on a hand-written manifest (`tests/fixtures/inspect/`), on a real build's initrd and bundle,
//! and the inputs it refuses.

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

/// The fixture, parsed, for tests that change one field of a valid manifest.
fn fixture_json() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixture()).unwrap()).unwrap()
}

#[test]
fn manifest_without_sealing_section_says_not_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest.json");
    let mut doc = fixture_json();
    doc["initrd"]["entries"] =
        serde_json::json!([{"path": "/init", "type": "file", "mode": "0755", "size": 3, "sha256": "ab"}]);
    doc["sealing"] = serde_json::json!({});
    std::fs::write(&path, doc.to_string()).unwrap();
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
fn lists_initrd_entries_matching_an_independent_newc_parse() {
    let tree = crate::util::Tree::standard();
    tree.build(&[]).ok();
    let initrd = tree.path("out/initrd.img");
    let out = inspect(&["--json"], &initrd);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["archive"]["kind"], "initrd");
    assert_eq!(doc["archive"]["compression"], "gzip");
    assert_eq!(doc["archive"]["sha256"], crate::util::sha256_hex(&tree.read("out/initrd.img")));
    let reference = crate::util::parse_newc(&crate::util::gunzip(&tree.read("out/initrd.img")));
    let entries = doc["entries"].as_array().unwrap();
    assert_eq!(entries.len(), reference.len());
    for (row, e) in entries.iter().zip(&reference) {
        assert_eq!(row["path"], e.name.as_str());
        assert_eq!(row["mode"], format!("{:04o}", e.mode & 0o7777));
        assert_eq!(row["size"], e.data.len() as u64);
        let kind = match e.mode & 0o170000 {
            0o040000 => "directory",
            0o100000 => "file",
            0o120000 => "symlink",
            0o020000 => "chardev",
            other => panic!("unexpected type {other:o}"),
        };
        assert_eq!(row["type"], kind, "{row}");
        if matches!(kind, "file" | "symlink") {
            assert_eq!(row["sha256"], crate::util::sha256_hex(&e.data));
        }
    }
    let out = inspect(&[], &initrd);
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with(&format!("initrd: {} (", initrd.display())), "{stdout}");
    assert!(stdout.contains("file      0640   13  "), "{stdout}");
    assert!(stdout.contains("  srv/model.txt\n"), "{stdout}");
    assert!(stdout.contains("symlink   0777   15  "), "{stdout}");
    assert!(stdout.contains("  bin/server -> /usr/bin/server\n"), "{stdout}");
    assert!(!stdout.contains("sealing policy"), "{stdout}");
}

#[test]
fn lists_bundle_members_and_the_manifest_policy_verdict() {
    let tree = crate::util::Tree::standard();
    tree.build(&[]).ok();
    let bundle = tree.path("out/demo-0.1.0.cvm.tar");
    let out = inspect(&["--json"], &bundle);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&tree.read("out/manifest.json")).unwrap();
    assert_eq!(doc["archive"]["kind"], "bundle");
    assert_eq!(doc["policy"], manifest["sealing"]);
    assert!(doc["policy"]["verdict"].is_string(), "{doc}");
    let names: Vec<&str> = doc["entries"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert_eq!(names, ["cmdline", "firmware-snp.fd", "initrd.img", "kernel", "manifest.json"]);
    for row in doc["entries"].as_array().unwrap() {
        let name = row["path"].as_str().unwrap();
        let loose = tree.read(&format!("out/{name}"));
        assert_eq!((row["type"].as_str(), row["mode"].as_str()), (Some("file"), Some("0644")));
        assert_eq!(row["size"], loose.len() as u64);
        assert_eq!(row["sha256"], crate::util::sha256_hex(&loose));
    }
    let stdout = text(&inspect(&[], &bundle).stdout);
    let verdict = manifest["sealing"]["verdict"].as_str().unwrap();
    assert!(stdout.contains(&format!("5 entries\n\nsealing policy: {verdict}\n")), "{stdout}");
}

#[test]
fn rejects_truncated_initrd_and_bundle() {
    let tree = crate::util::Tree::standard();
    tree.build(&[]).ok();
    let initrd = tree.read("out/initrd.img");
    tree.write("cut.img", &initrd[..initrd.len() / 2]);
    assert_fails(&tree.path("cut.img"), &format!("cannot read initrd `{}`", tree.path("cut.img").display()), None);
    let bundle = tree.read("out/demo-0.1.0.cvm.tar");
    tree.write("cut.cvm.tar", &bundle[..bundle.len() / 2]);
    let path = tree.path("cut.cvm.tar");
    assert_fails(&path, &format!("cannot read bundle `{}`", path.display()), None);
}

/// Issue 10: `inspect` reads the typed manifest; a bad field is named by its path.
#[test]
fn rejects_manifests_naming_the_bad_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest.json");
    type Edit = fn(&mut serde_json::Value);
    let edits: [(&str, Edit); 4] = [
        ("field `initrd`: missing field `entries`", |d| {
            d["initrd"].as_object_mut().unwrap().remove("entries");
        }),
        ("field `initrd.entries[1].size`: invalid value: integer `-1`, expected u64", |d| {
            d["initrd"]["entries"][1]["size"] = (-1).into()
        }),
        ("field `initrd.entries[0].mode`: invalid type: integer `420`, expected a string", |d| {
            d["initrd"]["entries"][0]["mode"] = 420.into()
        }),
        ("field `sealing`: invalid type: integer `3`, expected a map", |d| d["sealing"] = 3.into()),
    ];
    for (cause, edit) in edits {
        let mut doc = fixture_json();
        edit(&mut doc);
        std::fs::write(&path, doc.to_string()).unwrap();
        let out = inspect(&[], &path);
        assert_eq!(out.status.code(), Some(1));
        let expected = format!(
            "error: cannot inspect `{}`\n  caused by: not a valid cvmforge manifest: {cause}\n",
            path.display()
        );
        assert_eq!(text(&out.stderr), expected);
    }
    std::fs::write(&path, "not json").unwrap();
    assert_fails(
        &path,
        &format!("cannot inspect `{}`\n  caused by: not a valid cvmforge manifest: not JSON", path.display()),
        None,
    );
    assert_fails(&dir.path().join("absent.json"), "cannot read `", None);
}

/// Issue 11, item 10: a huge file or a device is refused at once with a message naming the limit, never read whole.
#[test]
fn issue11_refuses_devices_and_huge_files_without_reading_them() {
    let out = inspect(&[], Path::new("/dev/zero"));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("is not a regular file (it is a device)"), "{}", text(&out.stderr));

    let dir = tempfile::tempdir().unwrap();
    let sparse = dir.path().join("sparse.json");
    std::fs::File::create(&sparse).unwrap().set_len(3 << 30).unwrap();
    let out = inspect(&[], &sparse);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("is larger than a manifest may be (67108864 bytes)"), "{}", text(&out.stderr));
}

/// Issue 11, item 4: names from the inspected file cannot add or hide lines in the listing.
#[test]
fn issue11_escapes_entry_names_and_policy_text() {
    let mut manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(fixture()).unwrap()).unwrap();
    manifest["initrd"]["entries"][0]["path"] = "/bin\nfile      0755 1  000000000000  /usr/bin/trusted".into();
    manifest["sealing"]["verdict"] = "sealed\u{1b}[2K\rsealed".into();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest.json");
    std::fs::write(&path, manifest.to_string()).unwrap();
    let out = inspect(&[], &path);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(!stdout.lines().any(|l| l.starts_with("file      0755 1 ")), "{stdout}");
    assert!(stdout.contains("/bin\\nfile      0755 1  000000000000  /usr/bin/trusted\n"), "{stdout}");
    assert!(stdout.contains("sealing policy: sealed\\u{1b}[2K\\rsealed\n"), "{stdout}");
}
