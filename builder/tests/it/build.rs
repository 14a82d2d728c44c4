//! `cvmforge build` on good recipes: outputs, manifest, initrd contents, lock, --force, --json, help.

use std::process::Command;

use crate::util::*;

const EPOCH: u32 = 1767225600;

/// (path, mode with type bits) of every entry the standard recipe produces, in archive order.
const STANDARD_ENTRIES: &[(&str, u32)] = &[
    // The root directory, with a fixed mode (issue 17: otherwise the kernel leaves `/` at 1777).
    (".", 0o040755),
    ("bin", 0o040755),
    ("bin/server", 0o120777),
    ("dev", 0o040755),
    ("dev/console", 0o020600),
    ("etc", 0o040755),
    ("etc/cvmforge", 0o040755),
    ("etc/cvmforge/init.json", 0o100644),
    ("init", 0o100755),
    ("srv", 0o040750),
    ("srv/model.txt", 0o100640),
    ("usr", 0o040755),
    ("usr/bin", 0o040755),
    ("usr/bin/server", 0o100755),
];

fn manifest(tree: &Tree) -> serde_json::Value {
    serde_json::from_slice(&tree.read("out/manifest.json")).unwrap()
}

#[test]
fn writes_every_output_and_a_manifest_that_describes_them() {
    let tree = Tree::standard();
    tree.build(&[]).ok();
    assert_eq!(
        tree.list("out"),
        ["cmdline", "demo-0.1.0.cvm.tar", "firmware-snp.fd", "initrd.img", "kernel", "manifest.json"]
    );
    assert_eq!(tree.read("out/kernel"), tree.read("src/inputs/vmlinuz"));
    assert_eq!(tree.read("out/firmware-snp.fd"), tree.read("src/inputs/OVMF.amdsev.fd"));
    assert_eq!(tree.read("out/cmdline"), b"console=ttyS0 panic=-1");
    let text = String::from_utf8(tree.read("out/manifest.json")).unwrap();
    assert!(text.ends_with("}\n"));
    assert!(!text.contains(tree.dir.path().to_str().unwrap()), "absolute path leaked into the manifest");
    let m = manifest(&tree);
    assert_eq!(m["schema"], "https://cvmforge.dev/manifest/v1");
    assert_eq!(m["source_date_epoch"], EPOCH);
    assert_eq!(m["recipe"]["path"], "recipe.yaml");
    assert_eq!(m["recipe"]["sha256"], sha256_hex(&tree.read("src/recipe.yaml")));
    assert_eq!(m["kernel"]["boot_protocol"], "2.15");
    assert_eq!(m["kernel"]["version"], "6.12.0-test (cvmforge@test) #1 SMP");
    // Every output except the manifest and the bundle, each with its real digest and size.
    let outputs = m["outputs"].as_array().unwrap();
    let names: Vec<&str> = outputs.iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["cmdline", "firmware-snp.fd", "initrd.img", "kernel"]);
    for o in outputs {
        let bytes = tree.read(&format!("out/{}", o["name"].as_str().unwrap()));
        assert_eq!(o["sha256"], sha256_hex(&bytes));
        assert_eq!(o["size"], bytes.len());
    }
    let roles: Vec<(&str, &str)> = m["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["role"].as_str().unwrap(), i["path"].as_str().unwrap()))
        .collect();
    assert_eq!(
        roles,
        [
            ("kernel", "inputs/vmlinuz"),
            ("init", "inputs/guest-init"),
            ("file:/usr/bin/server", "inputs/server"),
            ("file:/srv/model.txt", "data/model.txt"),
            ("firmware:snp", "inputs/OVMF.amdsev.fd"),
        ]
    );
    assert_eq!(m["inputs"][3]["sha256"], sha256_hex(b"a tiny model\n"));
    assert_eq!(m["measurements"], serde_json::json!({"snp": [], "tdx": []}));
    let cpio = gunzip(&tree.read("out/initrd.img"));
    assert_eq!(m["initrd"]["uncompressed_sha256"], sha256_hex(&cpio));
    assert_eq!(m["initrd"]["compression"]["algorithm"], "gzip");
}

#[test]
fn manifest_is_canonical_sorted_pretty_json() {
    let tree = Tree::standard();
    tree.build(&[]).ok();
    let text = String::from_utf8(tree.read("out/manifest.json")).unwrap();
    // serde_json::Value (without preserve_order) sorts keys: the canonical form of the file's own content.
    let canonical = serde_json::to_string_pretty(&manifest(&tree)).unwrap() + "\n";
    assert_eq!(text, canonical);
    // The library's reader accepts what the build wrote and writes the same bytes back.
    let parsed = cvmforge::manifest::Manifest::from_json(&text).unwrap();
    assert_eq!(parsed.to_json(), text);
    assert_eq!(parsed.initrd.entries.len(), 14);
    assert!(text.find("\"cvmforge_version\"").unwrap() < text.find("\"schema\"").unwrap());
}

#[test]
fn gzip_initrd_lists_exactly_the_expected_entries_with_owner_root() {
    let tree = Tree::standard();
    tree.build(&[]).ok();
    let initrd = tree.read("out/initrd.img");
    assert_eq!(&initrd[..2], &[0x1f, 0x8b], "gzip magic");
    assert_eq!(&initrd[4..8], &[0, 0, 0, 0], "gzip MTIME must be 0");
    let entries = parse_newc(&gunzip(&initrd));
    let got: Vec<(&str, u32)> = entries.iter().map(|e| (e.name.as_str(), e.mode)).collect();
    assert_eq!(got, STANDARD_ENTRIES);
    for e in &entries {
        assert_eq!((e.uid, e.gid, e.mtime), (0, 0, EPOCH), "{}", e.name);
    }
    let by_name = |n: &str| entries.iter().find(|e| e.name == n).unwrap();
    assert_eq!(by_name("dev/console").rdev, (5, 1));
    assert_eq!(by_name("init").data, tree.read("src/inputs/guest-init"));
    assert_eq!(by_name("usr/bin/server").data, tree.read("src/inputs/server"));
    assert_eq!(by_name("bin/server").data, b"/usr/bin/server");
    assert_eq!(
        String::from_utf8(by_name("etc/cvmforge/init.json").data.clone()).unwrap(),
        "{\"command\":[\"/usr/bin/server\",\"--listen\",\"0.0.0.0:8080\"],\"env\":{\"A_FIRST\":\"1\",\"RUST_LOG\":\"info\"},\
         \"gid\":65534,\"modules\":[],\"schema\":\"cvmforge-init/v1\",\"uid\":65534}\n"
    );
    // The manifest lists the same entries with the same digests.
    let m = manifest(&tree);
    let listed: Vec<(String, String)> = m["initrd"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap().to_string(), e["mode"].as_str().unwrap().to_string()))
        .collect();
    let as_path = |p: &str| if p == "." { "/".to_string() } else { format!("/{p}") };
    let expected: Vec<(String, String)> =
        STANDARD_ENTRIES.iter().map(|(p, m)| (as_path(p), format!("{:04o}", m & 0o7777))).collect();
    assert_eq!(listed, expected);
    let server = m["initrd"]["entries"].as_array().unwrap().iter().find(|e| e["path"] == "/usr/bin/server").unwrap();
    assert_eq!(server["sha256"], sha256_hex(&tree.read("src/inputs/server")));
}

#[test]
fn gnu_cpio_reads_the_initrd_the_same_way() {
    if !have("cpio") {
        crate::util::skip_test!("GNU cpio is not installed");
        return;
    }
    let tree = Tree::standard();
    tree.build(&[]).ok();
    tree.write("plain.cpio", &gunzip(&tree.read("out/initrd.img")));
    let out = Command::new("cpio")
        .args(["-itv", "--quiet", "-F"])
        .arg(tree.path("plain.cpio"))
        .env("TZ", "UTC")
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listing = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = listing.lines().map(|l| l.split_whitespace().collect()).collect();
    let names: Vec<&str> =
        rows.iter().map(|r| if r[0].starts_with('l') { r[r.len() - 3] } else { r[r.len() - 1] }).collect();
    let expected: Vec<&str> = STANDARD_ENTRIES.iter().map(|(p, _)| *p).collect();
    assert_eq!(names, expected, "{listing}");
    let perms: Vec<&str> = rows.iter().map(|r| r[0]).collect();
    assert_eq!(
        perms,
        [
            "drwxr-xr-x",
            "drwxr-xr-x",
            "lrwxrwxrwx",
            "drwxr-xr-x",
            "crw-------",
            "drwxr-xr-x",
            "drwxr-xr-x",
            "-rw-r--r--",
            "-rwxr-xr-x",
            "drwxr-x---",
            "-rw-r-----",
            "drwxr-xr-x",
            "drwxr-xr-x",
            "-rwxr-xr-x"
        ]
    );
    for r in &rows {
        assert_eq!((r[2], r[3]), ("root", "root"), "{r:?}");
    }
    assert!(listing.contains("5,   1"), "{listing}");
    assert!(listing.contains("bin/server -> /usr/bin/server"));
}

#[test]
fn zstd_and_uncompressed_initrds_hold_the_same_archive() {
    let tree = Tree::standard();
    tree.build(&[]).ok();
    let gz = gunzip(&tree.read("out/initrd.img"));
    tree.recipe(&STANDARD_RECIPE.replace("initrd:\n", "initrd:\n  compression: zstd\n  compression_level: 3\n"));
    tree.run(&["build", "src/recipe.yaml", "-o", "zst"]).ok();
    let zst = tree.read("zst/initrd.img");
    assert_eq!(&zst[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd magic");
    assert_eq!(unzstd(&zst), gz);
    let m: serde_json::Value = serde_json::from_slice(&tree.read("zst/manifest.json")).unwrap();
    assert_eq!(m["initrd"]["compression"]["algorithm"], "zstd");
    assert_eq!(m["initrd"]["compression"]["level"], 3);
    tree.recipe(&STANDARD_RECIPE.replace("initrd:\n", "initrd:\n  compression: none\n"));
    tree.run(&["build", "src/recipe.yaml", "-o", "raw"]).ok();
    assert_eq!(tree.read("raw/initrd.img"), gz);
}

#[test]
fn bundle_holds_every_output_with_fixed_metadata() {
    let tree = Tree::standard();
    tree.build(&[]).ok();
    let out = Command::new("tar")
        .args(["--numeric-owner", "-tvf"])
        .arg(tree.path("out/demo-0.1.0.cvm.tar"))
        .env("TZ", "UTC")
        .output()
        .unwrap();
    assert!(out.status.success());
    let listing = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = listing.lines().map(|l| l.split_whitespace().collect()).collect();
    let names: Vec<&str> = rows.iter().map(|r| r[5]).collect();
    assert_eq!(names, ["cmdline", "firmware-snp.fd", "initrd.img", "kernel", "manifest.json"]);
    for r in &rows {
        assert_eq!((r[0], r[1], r[3], r[4]), ("-rw-r--r--", "0/0", "2026-01-01", "00:00"), "{listing}");
    }
    tree.write("x/.keep", b"");
    let status =
        Command::new("tar").arg("-xf").arg(tree.path("out/demo-0.1.0.cvm.tar")).current_dir(tree.path("x")).status();
    assert!(status.unwrap().success());
    for name in names {
        assert_eq!(tree.read(&format!("x/{name}")), tree.read(&format!("out/{name}")), "{name}");
    }
}

#[test]
fn writes_a_lock_file_and_locked_builds_accept_it() {
    let tree = Tree::standard();
    tree.build(&[]).ok();
    let lock: serde_json::Value = serde_json::from_slice(&tree.read("src/recipe.lock")).unwrap();
    assert_eq!(lock["schema"], "https://cvmforge.dev/lock/v1");
    assert_eq!(lock["inputs"]["kernel"]["sha256"], sha256_hex(&tree.read("src/inputs/vmlinuz")));
    assert_eq!(lock["inputs"]["file:/srv/model.txt"]["size"], 13);
    assert_eq!(lock["inputs"].as_object().unwrap().len(), 5);
    let before = tree.read("out/initrd.img");
    let run = tree.build(&["--locked", "--force"]).ok();
    assert!(run.stdout.contains("verified"), "{}", run.stdout);
    assert_eq!(tree.read("out/initrd.img"), before);
}

#[test]
fn force_replaces_an_earlier_output() {
    let tree = Tree::standard();
    tree.build(&[]).ok();
    let first = tree.list("out");
    tree.recipe(&STANDARD_RECIPE.replace("version: 0.1.0", "version: 0.2.0"));
    tree.build(&["--force"]).ok();
    assert!(first.iter().any(|n| n.ends_with("0.1.0.cvm.tar")), "{first:?}");
    assert!(tree.list("out").iter().all(|n| !n.ends_with("0.1.0.cvm.tar")), "the old bundle is gone");
    assert!(tree.path("out/manifest.json").exists());
    let leftovers: Vec<String> = tree.list("").into_iter().filter(|n| n.starts_with(".cvmforge")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn builds_into_an_existing_empty_directory_and_creates_parents() {
    let tree = Tree::standard();
    std::fs::create_dir(tree.path("empty")).unwrap();
    tree.run(&["build", "src/recipe.yaml", "-o", "empty"]).ok();
    assert!(tree.path("empty/initrd.img").exists());
    tree.run(&["build", "src/recipe.yaml", "-o", "a/b/c"]).ok();
    assert!(tree.path("a/b/c/initrd.img").exists());
}

#[test]
fn summary_and_json_report_name_outputs_and_digests() {
    let tree = Tree::standard();
    let run = tree.build(&[]).ok();
    let initrd = sha256_hex(&tree.read("out/initrd.img"));
    assert!(run.stdout.contains(&initrd), "{}", run.stdout);
    assert!(run.stdout.contains("14 entries"), "{}", run.stdout);
    assert!(run.stdout.contains("gzip level 6"), "{}", run.stdout);
    assert!(run.stdout.contains("boot protocol 2.15"), "{}", run.stdout);
    assert!(run.stdout.contains("measurements: none"), "{}", run.stdout);
    let run = tree.run(&["build", "src/recipe.yaml", "-o", "out2", "--json"]).ok();
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["schema_version"], 1);
    let keys: Vec<&String> = report.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "initrd",
            "kernel",
            "lock",
            "measurements",
            "output_dir",
            "outputs",
            "recipe",
            "schema_version",
            "sealing",
            "warnings"
        ]
    );
    assert_eq!(report["lock"]["status"], "unchanged", "the first build wrote it, the second found the same bytes");
    assert_eq!(report["initrd"]["entries"], 14);
    let outputs = report["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 6);
    let manifest = outputs.iter().find(|o| o["name"] == "manifest.json").unwrap();
    assert_eq!(manifest["sha256"], sha256_hex(&tree.read("out2/manifest.json")));
    assert_eq!(run.stderr, "", "nothing on stderr with --json");
}

#[test]
fn help_shows_examples_and_completions_work() {
    let tree = Tree::new();
    let help = tree.run(&["build", "--help"]).ok();
    assert!(help.stdout.contains("Examples:"), "{}", help.stdout);
    assert!(help.stdout.contains("cvmforge build recipes/demo.yaml -o out/demo --locked"));
    let bash = tree.run(&["completions", "bash"]).ok();
    assert!(bash.stdout.contains("complete -F") && bash.stdout.contains("--locked"), "{}", bash.stdout);
}

#[test]
fn jobs_zero_is_a_usage_error() {
    let tree = Tree::standard();
    tree.build(&["--jobs", "0"]).fails(2, &["--jobs"]);
    assert!(!tree.path("out").exists());
}

#[test]
fn the_documented_example_recipe_builds() {
    let tree = Tree::new();
    let example = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../recipes/example.yaml")).unwrap();
    tree.write("recipes/example.yaml", &example);
    // Measured for TDX too, so the kernel must be a PE image (EFI stub); its version string names the release the
    // example's module tree is built for.
    const RELEASE: &str = "6.1.0-example";
    let mut kernel = crate::util::pe_kernel();
    kernel[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
    kernel[0x300..0x300 + RELEASE.len()].copy_from_slice(RELEASE.as_bytes());
    tree.write("build/example/vmlinuz", &kernel);
    // The sealed-guest fragment satisfies the policy; with CONFIG_KEXEC=y the example's one waiver is used.
    let config = include_str!("../../../kernel-config/sealed-guest.config");
    tree.write("build/example/kernel.config", config.replace("# CONFIG_KEXEC is not set", "CONFIG_KEXEC=y").as_bytes());
    let vermagic = format!("vermagic={RELEASE} SMP preempt mod_unload modversions ");
    let module =
        cvmforge::format::elf::testing::kernel_module(&["license=GPL", "depends=", "name=virtio_net", &vermagic]);
    tree.write(
        &format!("build/example/kernel-package/lib/modules/{RELEASE}/kernel/drivers/net/virtio_net.ko"),
        &module,
    );
    tree.write("build/example/guest-init", &cvmforge::format::elf::testing::executable(None));
    tree.write("build/example/summarize-server", &cvmforge::format::elf::testing::executable(None));
    tree.write("build/example/model.txt", b"model");
    tree.write("build/example/OVMF.amdsev.fd", &crate::util::firmware_fixture("OVMF.amdsev.fd"));
    tree.write("build/example/OVMF.inteltdx.ms.fd", &crate::util::firmware_fixture("OVMF.inteltdx.ms.fd"));
    let keys = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/keys/");
    for key in ["id-key-p384.pem", "author-key-p384-sec1.pem"] {
        tree.write(&format!("tests/fixtures/keys/{key}"), &std::fs::read(format!("{keys}{key}")).unwrap());
    }
    tree.run(&["build", "recipes/example.yaml", "-o", "out"]).ok();
    assert_eq!(
        tree.list("out"),
        [
            "cmdline",
            "example-0.1.0.cvm.tar",
            "firmware-snp.fd",
            "firmware-tdx.fd",
            "initrd.img",
            "kernel",
            "manifest.json"
        ]
    );
    let m: serde_json::Value = serde_json::from_slice(&tree.read("out/manifest.json")).unwrap();
    assert_eq!(m["recipe"]["path"], "recipes/example.yaml");
    assert_eq!(m["initrd"]["compression"]["level"], 9);
    assert_eq!(m["sealing"]["verdict"], "sealed-with-waivers", "{:#}", m["sealing"]);
    assert_eq!(m["sealing"]["waivers_applied"][0]["item"], "CONFIG_KEXEC");
    assert_eq!(m["sealing"]["modules"]["modules"][0]["name"], "virtio_net");
    assert!(tree.path("recipes/example.lock").exists());
    let snp: Vec<&str> =
        m["measurements"]["snp"].as_array().unwrap().iter().map(|e| e["vmm_type"].as_str().unwrap()).collect();
    assert_eq!(snp, ["QEMU", "QEMU", "QEMU", "QEMU", "ec2"]);
    assert!(m["measurements"]["snp"][0]["id_key_digest"].is_string());
    assert_eq!(m["measurements"]["tdx"].as_array().unwrap().len(), 2);
}

/// With `CVMFORGE_TEST_KERNEL=/path/to/vmlinuz` (for example a Debian kernel), builds with a real bzImage and checks
/// the boot protocol and version string the manifest records against the setup header read here.
#[test]
fn real_kernel_is_accepted_when_provided() {
    let Some(path) = std::env::var_os("CVMFORGE_TEST_KERNEL") else {
        crate::util::skip_test!("set CVMFORGE_TEST_KERNEL to a real bzImage to run this test");
        return;
    };
    let kernel = std::fs::read(path).unwrap();
    let tree = Tree::standard();
    tree.write("src/inputs/vmlinuz", &kernel);
    tree.build(&[]).ok();
    assert_eq!(tree.read("out/kernel"), kernel);
    let protocol = u16::from_le_bytes([kernel[0x206], kernel[0x207]]);
    let pointer = usize::from(u16::from_le_bytes([kernel[0x20e], kernel[0x20f]])) + 0x200;
    let end = kernel[pointer..].iter().position(|&b| b == 0).unwrap();
    let version = std::str::from_utf8(&kernel[pointer..pointer + end]).unwrap();
    let m: serde_json::Value = serde_json::from_slice(&tree.read("out/manifest.json")).unwrap();
    assert_eq!(m["kernel"]["boot_protocol"], format!("{}.{:02}", protocol >> 8, protocol & 0xff));
    assert_eq!(m["kernel"]["version"], version);
}
