//! `cvmforge measure tdx`: reference MRTDs, RTMR2 known values, errors and exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256, Sha384};

const SINGLE: &str = "a7a1f751abc454f9cbab198ca8d2edb2821935df525c74182b5e776cb0929e8c59aefecce725b0d08a5e9d3d3183bd08";
const TWO: &str = "b90b236113eb4c0d4df4ef590568c14e6028a3a31d7e8ac63dee9845df5008d3ebf82d4f5974e933798f65d7a279b9a9";

fn cvmforge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cvmforge")).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// Decompresses the TDX firmware fixture into `dir` after checking its sha256 (tests/fixtures/firmware/README.md).
fn tdx_firmware(dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let xz = std::fs::read(root.join("tests/fixtures/firmware/OVMF.inteltdx.ms.fd.xz")).unwrap();
    let fw = liblzma::decode_all(&xz[..]).unwrap();
    assert_eq!(hex::encode(Sha256::digest(&fw)), "a265075b4147a096109e501e76196df1ec8a18659c26f7401492c597ec88f312");
    let path = dir.join("OVMF.inteltdx.ms.fd");
    std::fs::write(&path, fw).unwrap();
    path
}

/// The Authenticode hash of `synth_kernel`, computed directly from its layout: everything except the checksum and
/// the certificate-table entry (one section right after the headers, no trailing data).
fn synth_authenticode(k: &[u8]) -> [u8; 48] {
    let opt = 0x84 + 20;
    let mut h = Sha384::new();
    h.update(&k[..opt + 64]);
    h.update(&k[opt + 68..opt + 144]);
    h.update(&k[opt + 152..]);
    h.finalize().into()
}

fn replay(digests: &[[u8; 48]]) -> String {
    let mut v = [0u8; 48];
    for d in digests {
        let mut h = Sha384::new();
        h.update(v);
        h.update(d);
        v = h.finalize().into();
    }
    hex::encode(v)
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "stderr: {}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn mrtd_matches_both_reference_values() {
    let dir = tempfile::tempdir().unwrap();
    let fw = tdx_firmware(dir.path());
    let fw = fw.to_str().unwrap();
    let single = cvmforge(&["measure", "tdx", "--firmware", fw]);
    assert!(single.status.success(), "{}", stderr(&single));
    assert!(stdout(&single).contains(&format!("MRTD   {SINGLE}")), "{}", stdout(&single));
    assert!(stdout(&single).contains("page order: single-pass"));
    let two = json(&cvmforge(&["--json", "measure", "tdx", "--firmware", fw, "--page-order", "two-pass"]));
    assert_eq!(two["mrtd"], TWO);
    assert_eq!(two["page_order"], "two-pass");
    assert_eq!(two["schema_version"], 1);
    assert!(two["rtmr0"].is_null() && two["rtmr1"].is_null());
    assert_eq!(two["rtmr3"], "0".repeat(96));
}

#[test]
fn rtmr1_and_rtmr2_for_a_synthetic_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let fw = tdx_firmware(dir.path());
    let kernel = crate::util::pe_kernel();
    let kpath = dir.path().join("vmlinuz");
    std::fs::write(&kpath, &kernel).unwrap();
    let initrd = dir.path().join("initrd");
    std::fs::write(&initrd, b"initrd bytes").unwrap();
    let log = dir.path().join("events.json");
    let o = cvmforge(&[
        "--json",
        "measure",
        "tdx",
        "--firmware",
        fw.to_str().unwrap(),
        "--kernel",
        kpath.to_str().unwrap(),
        "--initrd",
        initrd.to_str().unwrap(),
        "--append",
        "console=ttyS0",
        "--explain",
        "--event-log",
        log.to_str().unwrap(),
    ]);
    // Secure-Boot-enforcing firmware with an unsigned kernel: a warning on stderr, and in the JSON.
    assert!(stderr(&o).contains("warning: the firmware enforces Secure Boot"), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["cmdline_layout"], "prefix");
    assert_eq!(v["qemu_kernel_patching"]["patched"], false);
    assert_eq!(v["warnings"].as_array().unwrap().len(), 1);
    let strings = [
        b"Calling EFI Application from Boot Option".as_slice(),
        &[0, 0, 0, 0],
        b"Exit Boot Services Invocation",
        b"Exit Boot Services Returned with Success",
    ];
    let mut rtmr1 = vec![synth_authenticode(&kernel)];
    rtmr1.extend(strings.iter().map(|s| <[u8; 48]>::from(Sha384::digest(s))));
    assert_eq!(v["rtmr1"], replay(&rtmr1));
    let events = v["events"].as_array().unwrap();
    let load_options = events[5]["digest"].as_str().unwrap();
    // Known value measured on Debian 2026.08 OVMF (docs/specs/tdx-measurement.md).
    // Full length (issue 16): SHA-384 of the UTF-16LE, NUL-terminated command line, computed independently with
    // Python hashlib; its first and last digits are the ones docs/specs/tdx-measurement.md gives.
    assert_eq!(
        load_options,
        "f9f8fb4b0e1dce36006d4f4a67381bc02cb5fb2fe7143f3091569254993fb8edfa15f5b55ebdbf24cb189af4c6dbb8ff"
    );
    let initrd_digest: [u8; 48] = Sha384::digest(b"initrd bytes").into();
    assert_eq!(events[6]["digest"], hex::encode(initrd_digest));
    let lo: [u8; 48] = hex::decode(load_options).unwrap().try_into().unwrap();
    assert_eq!(v["rtmr2"], replay(&[lo, initrd_digest]));
    let written: serde_json::Value = serde_json::from_slice(&std::fs::read(&log).unwrap()).unwrap();
    assert_eq!(written["events"], v["events"]);
    assert_eq!(written["events"][0]["cc_mr_index"], 2);
}

#[test]
fn no_initrd_gives_one_rtmr2_event_and_the_known_value() {
    let dir = tempfile::tempdir().unwrap();
    let fw = tdx_firmware(dir.path());
    let kpath = dir.path().join("vmlinuz");
    std::fs::write(&kpath, crate::util::pe_kernel()).unwrap();
    let v = json(&cvmforge(&[
        "--json",
        "measure",
        "tdx",
        "--firmware",
        fw.to_str().unwrap(),
        "--kernel",
        kpath.to_str().unwrap(),
        "--append",
        "console=ttyS0",
        "--explain",
    ]));
    let rtmr2: Vec<_> = v["events"].as_array().unwrap().iter().filter(|e| e["rtmr"] == 2).collect();
    assert_eq!(rtmr2.len(), 1);
    let d = rtmr2[0]["digest"].as_str().unwrap();
    // Full length (issue 16): SHA-384 of the UTF-16LE, NUL-terminated command line, computed independently with
    // Python hashlib; its first and last digits are the ones docs/specs/tdx-measurement.md gives.
    assert_eq!(d, "0c55ff8ce3ea9389db345e81fd8f0ef3cd0737c952cfc38197b2c6ac6af0fba4b56f7e027577357654dd00e43a82be63");
}

#[test]
fn qemu_10_1_patching_depends_on_memory_as_the_spec_says() {
    let dir = tempfile::tempdir().unwrap();
    let fw = tdx_firmware(dir.path());
    let kpath = dir.path().join("vmlinuz");
    std::fs::write(&kpath, crate::util::pe_kernel()).unwrap();
    let initrd = dir.path().join("initrd");
    std::fs::write(&initrd, vec![1u8; 100_000]).unwrap();
    let rtmr1 = |mem: &str| {
        let v = json(&cvmforge(&[
            "--json",
            "measure",
            "tdx",
            "--firmware",
            fw.to_str().unwrap(),
            "--kernel",
            kpath.to_str().unwrap(),
            "--initrd",
            initrd.to_str().unwrap(),
            "--qemu-version",
            "10.1",
            "--memory",
            mem,
        ]));
        assert_eq!(v["qemu_kernel_patching"]["patched"], true);
        v["rtmr1"].as_str().unwrap().to_string()
    };
    let one = rtmr1("1G");
    let two = rtmr1("2G");
    assert_ne!(one, two);
    for m in ["3G", "8G", "64G", "2147483648"] {
        assert_eq!(rtmr1(m), two, "{m}");
    }
    // Independent patch of the header for 2 GiB: (0x80000000 − 0x28000 − 1 − size) & ~0xfff.
    let mut k = crate::util::pe_kernel();
    k[0x210] = 0xb0;
    k[0x211] |= 0x80;
    k[0x224..0x226].copy_from_slice(&0xfe00u16.to_le_bytes());
    k[0x228..0x22c].copy_from_slice(&0x20000u32.to_le_bytes());
    k[0x21c..0x220].copy_from_slice(&100_000u32.to_le_bytes());
    k[0x218..0x21c].copy_from_slice(&(((0x8000_0000u32 - 0x28000 - 1 - 100_000) & !0xfff).to_le_bytes()));
    let mut events = vec![synth_authenticode(&k)];
    for s in [
        b"Calling EFI Application from Boot Option".as_slice(),
        &[0; 4],
        b"Exit Boot Services Invocation",
        b"Exit Boot Services Returned with Success",
    ] {
        events.push(Sha384::digest(s).into());
    }
    assert_eq!(two, replay(&events));
}

#[test]
fn rejects_kernel_without_pe_header() {
    let dir = tempfile::tempdir().unwrap();
    let fw = tdx_firmware(dir.path());
    let kpath = dir.path().join("vmlinux");
    std::fs::write(&kpath, b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0").unwrap();
    let o = cvmforge(&["measure", "tdx", "--firmware", fw.to_str().unwrap(), "--kernel", kpath.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("not a PE image: the kernel has no EFI stub / MZ/PE signature at offset 0x0"), "{err}");
    assert!(err.contains("hint: build the kernel with CONFIG_EFI_STUB=y"), "{err}");
}

#[test]
fn rejects_firmware_without_tdvf_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let fw = dir.path().join("not-tdvf.fd");
    std::fs::write(&fw, vec![0u8; 0x10000]).unwrap();
    let o = cvmforge(&["measure", "tdx", "--firmware", fw.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not a TDVF firmware"), "{}", stderr(&o));
}

#[test]
fn rejects_usage_errors_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let fw = tdx_firmware(dir.path());
    let kpath = dir.path().join("vmlinuz");
    std::fs::write(&kpath, crate::util::pe_kernel()).unwrap();
    let (fw, k) = (fw.to_str().unwrap(), kpath.to_str().unwrap());
    let no_memory = cvmforge(&["measure", "tdx", "--firmware", fw, "--kernel", k, "--qemu-version", "10.1"]);
    assert_eq!(no_memory.status.code(), Some(2));
    assert!(stderr(&no_memory).contains("give --memory"), "{}", stderr(&no_memory));
    let bad_size = cvmforge(&["measure", "tdx", "--firmware", fw, "--memory", "4X"]);
    assert_eq!(bad_size.status.code(), Some(2));
    let bad_order = cvmforge(&["measure", "tdx", "--firmware", fw, "--page-order", "both"]);
    assert_eq!(bad_order.status.code(), Some(2));
    let no_acpi = cvmforge(&["measure", "tdx", "--firmware", fw, "--acpi-tables", dir.path().to_str().unwrap()]);
    assert_eq!(no_acpi.status.code(), Some(2));
    assert!(stderr(&no_acpi).contains("has no `table-loader` file"), "{}", stderr(&no_acpi));
}

#[test]
fn cmdline_layout_override_changes_rtmr2() {
    let dir = tempfile::tempdir().unwrap();
    let fw = tdx_firmware(dir.path());
    let kpath = dir.path().join("vmlinuz");
    std::fs::write(&kpath, crate::util::pe_kernel()).unwrap();
    let initrd = dir.path().join("initrd");
    std::fs::write(&initrd, b"x").unwrap();
    let v = json(&cvmforge(&[
        "--json",
        "measure",
        "tdx",
        "--firmware",
        fw.to_str().unwrap(),
        "--kernel",
        kpath.to_str().unwrap(),
        "--initrd",
        initrd.to_str().unwrap(),
        "--append",
        "console=ttyS0",
        "--cmdline-layout",
        "suffix",
        "--explain",
    ]));
    assert_eq!(v["cmdline_layout"], "suffix");
    assert_eq!(v["cmdline_layout_source"], "given with --cmdline-layout");
    let d = v["events"][5]["digest"].as_str().unwrap();
    // Known value measured on Debian 2025.02 OVMF (docs/specs/tdx-measurement.md).
    // Full length (issue 16): SHA-384 of the UTF-16LE, NUL-terminated command line, computed independently with
    // Python hashlib; its first and last digits are the ones docs/specs/tdx-measurement.md gives.
    assert_eq!(d, "1d26f8aff8992fdfc37e88b4fdf4a1a0ebb815a2ce925ea3046b3ba1f24a933e75a163af2af579268c20ca5f476f5386");
}

/// On a real kernel (CVMFORGE_TEST_KERNEL): the Debian bzImage parses and is Authenticode-signed (no warning).
#[test]
fn real_kernel_from_env() {
    let Ok(kernel) = std::env::var("CVMFORGE_TEST_KERNEL") else {
        crate::util::skip_test!("set CVMFORGE_TEST_KERNEL to a bzImage to run this test");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let fw = tdx_firmware(dir.path());
    let o = cvmforge(&["--json", "measure", "tdx", "--firmware", fw.to_str().unwrap(), "--kernel", &kernel]);
    let v = json(&o);
    // The Debian kernel is signed, so there is no Secure Boot warning (nor any other), and RTMR1 is a real digest.
    assert_eq!(v["warnings"], serde_json::json!([]), "{v}");
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    let rtmr1 = v["rtmr1"].as_str().unwrap();
    assert!(rtmr1.len() == 96 && rtmr1.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{rtmr1}");
    assert_ne!(rtmr1, "0".repeat(96));
}

#[test]
fn help_lists_every_flag_and_examples() {
    let o = cvmforge(&["measure", "tdx", "--help"]);
    assert!(o.status.success());
    let help = stdout(&o);
    for flag in [
        "--firmware",
        "--kernel",
        "--initrd",
        "--append",
        "--memory",
        "--vcpus",
        "--page-order",
        "--qemu-version",
        "--acpi-tables",
        "--cmdline-layout",
        "--explain",
        "--event-log",
        "Examples:",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}
