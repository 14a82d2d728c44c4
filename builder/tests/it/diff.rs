//! `cvmforge diff` and the archive readers: every test asserts the specific finding or error, not just "differs".

use std::io::{self, Read, Write};
use std::path::Path;
use std::process::Command;

use cvmforge::diff::{diff_bytes, diff_paths, Finding, FindingKind, Report};
use cvmforge::format::cpio::CpioWriter;
use cvmforge::format::tar::TarWriter;
use cvmforge::format::{read_bundle, read_initrd, CpioReader, Limits, PathProblem, TarReader, UnpackError};
use proptest::prelude::*;

const EPOCH: u32 = 1_700_000_000;

/// A small initrd whose varying parts are the parameters.
fn cpio_with(mtime: u32, motd_mode: u32, link: &str, config: &str, app: &[u8]) -> Vec<u8> {
    let mut w = CpioWriter::new(Vec::new(), mtime);
    w.add_directory("bin", 0o755).unwrap();
    w.add_file("bin/app", 0o755, app.len() as u64, &mut &app[..]).unwrap();
    w.add_directory("etc", 0o755).unwrap();
    w.add_file("etc/config", 0o644, config.len() as u64, &mut config.as_bytes()).unwrap();
    w.add_file("etc/motd", motd_mode, 3, &mut &b"hi\n"[..]).unwrap();
    w.add_symlink("sbin", link).unwrap();
    w.finish().unwrap()
}

fn app_bytes() -> Vec<u8> {
    (0u8..64).map(|i| i.wrapping_mul(7)).collect()
}

const CONFIG: &str = "listen=0.0.0.0:8080\nworkers=4\nlog=info\nmodel=tiny\n";

fn base() -> Vec<u8> {
    cpio_with(EPOCH, 0o644, "bin", CONFIG, &app_bytes())
}

fn gzip(data: &[u8], level: u32, mtime: u32) -> Vec<u8> {
    let mut enc = flate2::GzBuilder::new().mtime(mtime).write(Vec::new(), flate2::Compression::new(level));
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 9).unwrap()
}

fn diff(a: &[u8], b: &[u8]) -> Report {
    diff_bytes(a, b, &Limits::default()).unwrap()
}

/// The one finding of `kind` at `path` (fails the test if there is not exactly one).
fn find<'a>(report: &'a Report, kind: FindingKind, path: &str) -> &'a Finding {
    let hits: Vec<&Finding> = report.findings.iter().filter(|f| f.kind == kind && f.path == path).collect();
    assert_eq!(hits.len(), 1, "expected one {kind:?} finding at `{path}` in:\n{}", report.render_text());
    hits[0]
}

fn ab(f: &Finding) -> (&str, &str) {
    (f.a.as_deref().unwrap_or(""), f.b.as_deref().unwrap_or(""))
}

#[test]
fn identical_initrds_have_no_findings() {
    let report = diff(&base(), &base());
    assert!(report.identical);
    assert!(report.findings.is_empty());
}

#[test]
fn changed_payload_byte_names_the_entry_and_first_differing_offset() {
    let mut app = app_bytes();
    app[37] ^= 0xff;
    let report = diff(&base(), &cpio_with(EPOCH, 0o644, "bin", CONFIG, &app));
    assert!(!report.identical);
    assert_eq!(report.findings.len(), 1, "{}", report.render_text());
    let f = find(&report, FindingKind::Content, "bin/app");
    assert_eq!(f.detail[0], "size: 64 vs 64 bytes");
    assert_eq!(f.detail[1], "first difference at byte offset 37 (0x25)");
    // 37 * 7 = 259 -> 0x03, then 0x0a, 0x11, ...; B has 0x03 ^ 0xff = 0xfc first.
    assert_eq!(f.detail[2], "A: 03 0a 11 18 1f 26 2d 34");
    assert_eq!(f.detail[3], "B: fc 0a 11 18 1f 26 2d 34");
}

#[test]
fn changed_mode_names_the_path_and_both_modes() {
    let report = diff(&base(), &cpio_with(EPOCH, 0o600, "bin", CONFIG, &app_bytes()));
    assert_eq!(report.findings.len(), 1, "{}", report.render_text());
    let f = find(&report, FindingKind::Changed, "etc/motd");
    assert_eq!(f.field.as_deref(), Some("mode"));
    assert_eq!(ab(f), ("0644", "0600"));
    assert_eq!(f.headline(), "etc/motd: mode differs: 0644 vs 0600");
}

#[test]
fn changed_mtime_of_every_entry_is_one_grouped_finding() {
    let report = diff(&base(), &cpio_with(EPOCH + 1, 0o644, "bin", CONFIG, &app_bytes()));
    assert_eq!(report.findings.len(), 1, "{}", report.render_text());
    let f = find(&report, FindingKind::Changed, "(initrd)");
    assert_eq!((f.field.as_deref(), ab(f)), (Some("mtime"), ("1700000000", "1700000001")));
    assert_eq!(f.detail, ["in 6 entries: `bin`, `bin/app`, `etc`, `etc/config`, `etc/motd`, `sbin`"]);
}

#[test]
fn changed_mtime_of_one_entry_names_it() {
    let build = |mtime: u32| {
        let mut w = CpioWriter::new(Vec::new(), EPOCH);
        w.add_file("a", 0o644, 1, &mut &b"x"[..]).unwrap();
        let mut first = w.finish().unwrap();
        first.truncate(first.len() - 124); // drop the trailer, then append an entry with another mtime
        let mut w = CpioWriter::new(Vec::new(), mtime);
        w.add_file("b", 0o644, 1, &mut &b"y"[..]).unwrap();
        first.extend(w.finish().unwrap());
        first
    };
    let report = diff(&build(EPOCH), &build(EPOCH + 60));
    assert_eq!(report.findings.len(), 1, "{}", report.render_text());
    let f = find(&report, FindingKind::Changed, "b");
    assert_eq!((f.field.as_deref(), ab(f)), (Some("mtime"), ("1700000000", "1700000060")));
}

#[test]
fn changed_symlink_target_is_a_field_not_a_content_diff() {
    let report = diff(&base(), &cpio_with(EPOCH, 0o644, "usr/bin", CONFIG, &app_bytes()));
    assert_eq!(report.findings.len(), 1, "{}", report.render_text());
    let f = find(&report, FindingKind::Changed, "sbin");
    assert_eq!(f.field.as_deref(), Some("link target"));
    assert_eq!(ab(f), ("bin", "usr/bin"));
}

#[test]
fn changed_text_file_shows_a_unified_diff() {
    let config = CONFIG.replace("workers=4", "workers=8");
    let report = diff(&base(), &cpio_with(EPOCH, 0o644, "bin", &config, &app_bytes()));
    let f = find(&report, FindingKind::Content, "etc/config");
    let expected =
        ["--- a/etc/config", "+++ b/etc/config", "@@ -1,4 +1,4 @@", " listen=0.0.0.0:8080", "-workers=4", "+workers=8"];
    assert_eq!(&f.detail[1..7], expected);
    assert!(report.render_text().contains("\n    +workers=8\n"), "{}", report.render_text());
}

#[test]
fn added_and_removed_entries_are_named() {
    let build = |extra: &str| {
        let mut w = CpioWriter::new(Vec::new(), EPOCH);
        w.add_directory("etc", 0o755).unwrap();
        w.add_file(extra, 0o644, 1, &mut &b"x"[..]).unwrap();
        w.finish().unwrap()
    };
    let report = diff(&build("etc/a"), &build("etc/b"));
    let removed = find(&report, FindingKind::Removed, "etc/a");
    assert!(removed.a.as_deref().unwrap().starts_with("regular file, mode 0644, 1 bytes"), "{removed:?}");
    find(&report, FindingKind::Added, "etc/b");
    assert_eq!(report.findings.len(), 2, "{}", report.render_text());
}

#[test]
fn reordered_entries_are_an_order_finding() {
    let build = |names: [&str; 2]| {
        let mut w = CpioWriter::new(Vec::new(), EPOCH);
        for n in names {
            w.add_file(n, 0o644, 1, &mut &b"x"[..]).unwrap();
        }
        w.finish().unwrap()
    };
    let report = diff(&build(["a", "b"]), &build(["b", "a"]));
    let f = find(&report, FindingKind::Order, "(initrd)");
    assert_eq!(ab(f), ("a", "b"));
    // Inode numbers follow archive order, so they differ too; that is reported once, not per entry.
    let inodes = find(&report, FindingKind::Inodes, "(initrd)");
    assert!(inodes.detail[0].starts_with("2 of the entries present in both"), "{inodes:?}");
}

#[test]
fn inode_numbering_alone_is_one_inodes_finding() {
    let a = base();
    let mut b = a.clone();
    // Renumber the first entry's inode (c_ino, the first field) from 1 to 0x99, as a non-reproducible cpio would.
    b[6..14].copy_from_slice(b"00000099");
    let report = diff(&a, &b);
    assert_eq!(report.findings.len(), 1, "{}", report.render_text());
    let f = find(&report, FindingKind::Inodes, "(initrd)");
    assert_eq!(ab(f), ("1", "153"));
    assert_eq!(f.headline(), "(initrd): inode numbers differ: 1 vs 153");
    assert!(
        f.detail[0].starts_with("1 of the entries present in both have different inode numbers, the first being `bin`")
    );
}

#[test]
fn bundle_member_header_fields_are_compared() {
    let bundle = |mode: u32| {
        let mut w = TarWriter::new(Vec::new(), u64::from(EPOCH));
        w.add_file("cmdline", 0o644, 6, &mut &b"quiet\n"[..]).unwrap();
        w.add_file("kernel", mode, 2, &mut &b"MZ"[..]).unwrap();
        w.finish().unwrap()
    };
    let report = diff(&bundle(0o644), &bundle(0o755));
    assert_eq!(report.findings.len(), 1, "{}", report.render_text());
    let f = find(&report, FindingKind::Changed, "kernel");
    assert_eq!((f.field.as_deref(), ab(f)), (Some("mode"), ("0644", "0755")));
}

#[test]
fn different_gzip_mtime_header_is_named_and_the_cpio_is_the_same() {
    let report = diff(&gzip(&base(), 6, EPOCH), &gzip(&base(), 6, 0));
    let f = find(&report, FindingKind::Compression, "(initrd)");
    assert_eq!(f.headline(), "(initrd): gzip MTIME differs: 1700000000 vs 0");
    let same = find(&report, FindingKind::CompressionBytes, "(initrd)");
    assert!(same.detail[0].starts_with("the decompressed cpio is identical"), "{same:?}");
    assert_eq!(report.findings.len(), 2, "{}", report.render_text());
}

#[test]
fn gzip_versus_zstd_is_a_compression_algorithm_finding() {
    let report = diff(&gzip(&base(), 6, 0), &zstd(&base()));
    let f = find(&report, FindingKind::Compression, "(initrd)");
    assert_eq!((f.field.as_deref(), ab(f)), (Some("compression"), ("gzip", "zstd")));
    find(&report, FindingKind::CompressionBytes, "(initrd)");
}

#[test]
fn same_cpio_with_a_different_compression_level_is_same_cpio_different_bytes() {
    // A payload big and varied enough that levels 1 and 9 produce different deflate streams.
    let text: String =
        (0..20_000u32).map(|i| format!("line {} {}\n", i % 97, i.wrapping_mul(2_654_435_761) % 1000)).collect();
    let cpio = cpio_with(EPOCH, 0o644, "bin", &text, &app_bytes());
    let (fast, best) = (gzip(&cpio, 1, 0), gzip(&cpio, 9, 0));
    assert_ne!(fast[10..], best[10..], "the deflate streams themselves differ");
    let report = diff(&fast, &best);
    let same = find(&report, FindingKind::CompressionBytes, "(initrd)");
    assert!(same.headline().ends_with("same cpio, different compression bytes"));
    assert!(same.detail[2].contains("implementation, version or parameters"), "{same:?}");
    // flate2 records the level class in XFL (RFC 1952: 4 = fastest, 2 = best).
    let xfl = find(&report, FindingKind::Compression, "(initrd)");
    assert_eq!(ab(xfl), ("4 (level 1, fastest)", "2 (level 9, best compression)"));
    assert!(report.findings.iter().all(|f| f.path == "(initrd)"), "no entry findings: {}", report.render_text());
}

fn manifest(kernel_sha: &str, snp_digest: &str, rtmr1: &str) -> serde_json::Value {
    serde_json::json!({
        "schema": "cvmforge-manifest/1",
        "cvmforge_version": "0.1.0",
        "inputs": [
            {"role": "cmdline", "path": "cmdline", "sha256": "11".repeat(32), "size": 40},
            {"role": "firmware-snp", "path": "OVMF.amdsev.fd", "sha256": "22".repeat(32), "size": 4},
            {"role": "kernel", "path": "vmlinuz", "sha256": kernel_sha, "size": 100},
        ],
        "measurements": {
            "snp": [
                {"vcpus": 1, "vcpu_type": "EPYC-v4", "vmm_type": "QEMU", "digest": "aa".repeat(48)},
                {"vcpus": 4, "vcpu_type": "EPYC-v4", "vmm_type": "QEMU", "digest": snp_digest},
            ],
            "tdx": [{"id": "default", "mrtd": "cc".repeat(48), "rtmr1": rtmr1, "rtmr2": "dd".repeat(48)}],
        },
    })
}

#[test]
fn manifests_differing_in_one_input_digest_name_the_role_and_the_measurements_it_feeds() {
    let a = manifest(&"ab".repeat(32), &"01".repeat(48), &"03".repeat(48));
    let b = manifest(&"cd".repeat(32), &"02".repeat(48), &"04".repeat(48));
    let (a, b) = (serde_json::to_vec_pretty(&a).unwrap(), serde_json::to_vec_pretty(&b).unwrap());
    let report = diff(&a, &b);
    let input = find(&report, FindingKind::Changed, "inputs[role=kernel].sha256");
    assert_eq!(ab(input), ("ab".repeat(32).as_str(), "cd".repeat(32).as_str()));
    assert_eq!(input.detail, ["kernel feeds the measurements snp.digest, tdx.rtmr1"]);
    let snp =
        find(&report, FindingKind::Measurement, "measurements.snp[vcpu_type=EPYC-v4,vcpus=4,vmm_type=QEMU].digest");
    assert_eq!(
        snp.headline(),
        "measurements.snp[vcpu_type=EPYC-v4,vcpus=4,vmm_type=QEMU].digest changed: its inputs kernel (sha256 abababababab… → cdcdcdcdcdcd…) changed"
    );
    let rtmr1 = find(&report, FindingKind::Measurement, "measurements.tdx[id=default].rtmr1");
    assert!(rtmr1.detail[0].starts_with("its inputs kernel (sha256"), "{rtmr1:?}");
    // The unchanged 1-vCPU digest and the unchanged MRTD are not reported.
    assert_eq!(report.findings.len(), 3, "{}", report.render_text());
}

#[test]
fn a_measurement_change_without_input_change_says_so() {
    let a = serde_json::to_vec(&manifest(&"ab".repeat(32), &"01".repeat(48), &"03".repeat(48))).unwrap();
    let b = serde_json::to_vec(&manifest(&"ab".repeat(32), &"02".repeat(48), &"03".repeat(48))).unwrap();
    let report = diff(&a, &b);
    assert_eq!(report.findings.len(), 1);
    assert!(report.findings[0].detail[0].starts_with("none of its recorded inputs changed"), "{:?}", report.findings);
}

/// Writes an output directory like `cvmforge build` does: loose files plus the bundle of them.
fn write_build(dir: &Path, cmdline: &str, initrd: &[u8]) {
    let files: Vec<(&str, Vec<u8>)> =
        vec![
        ("cmdline", cmdline.as_bytes().to_vec()),
        ("initrd.img", initrd.to_vec()),
        ("kernel", b"MZ\x90\x00kernel-bytes".to_vec()),
        ("manifest.json", serde_json::to_vec_pretty(&serde_json::json!({"outputs": [
            {"name": "cmdline", "sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(cmdline.as_bytes()))},
        ]})).unwrap()),
    ];
    let mut tar = TarWriter::new(Vec::new(), u64::from(EPOCH));
    for (name, content) in &files {
        fs_err::write(dir.join(name), content).unwrap();
        tar.add_file(name, 0o644, content.len() as u64, &mut &content[..]).unwrap();
    }
    fs_err::write(dir.join("demo-1.0.cvm.tar"), tar.finish().unwrap()).unwrap();
}

#[test]
fn output_directories_are_compared_member_by_member_without_double_reporting_the_bundle() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_build(a.path(), "console=ttyS0 quiet\n", &gzip(&base(), 6, 0));
    write_build(b.path(), "console=ttyS0\n", &gzip(&base(), 6, 0));
    let report = diff_paths(a.path(), b.path(), &Limits::default()).unwrap();
    let cmdline = find(&report, FindingKind::Content, "cmdline");
    assert!(cmdline.detail.contains(&"-console=ttyS0 quiet".to_string()), "{cmdline:?}");
    assert!(cmdline.detail.contains(&"+console=ttyS0".to_string()), "{cmdline:?}");
    let bundle = find(&report, FindingKind::Content, "demo-1.0.cvm.tar");
    assert_eq!(
        bundle.detail,
        ["its members cmdline, manifest.json differ exactly as the loose files of the same names do (see those findings)"]
    );
    find(&report, FindingKind::Changed, "manifest.json:outputs[name=cmdline].sha256");
    assert_eq!(report.findings.len(), 3, "{}", report.render_text());
}

#[test]
fn bundles_are_compared_down_to_initrd_entries() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_build(a.path(), "quiet\n", &gzip(&base(), 6, 0));
    write_build(b.path(), "quiet\n", &gzip(&cpio_with(EPOCH, 0o600, "bin", CONFIG, &app_bytes()), 6, 0));
    let tar = |d: &Path| d.join("demo-1.0.cvm.tar");
    let report = diff_paths(&tar(a.path()), &tar(b.path()), &Limits::default()).unwrap();
    let f = find(&report, FindingKind::Changed, "initrd.img:etc/motd");
    assert_eq!(ab(f), ("0644", "0600"));
    assert_eq!(report.findings.len(), 1, "{}", report.render_text());
    // A directory against a bundle is the same comparison (the directory's own bundle is left out).
    let mixed = diff_paths(a.path(), &tar(b.path()), &Limits::default()).unwrap();
    find(&mixed, FindingKind::Changed, "initrd.img:etc/motd");
    assert_eq!(mixed.findings.len(), 1, "{}", mixed.render_text());
}

fn cvmforge(args: &[&Path], json: bool) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cvmforge"));
    if json {
        cmd.arg("--json");
    }
    let out = cmd.arg("diff").args(args).output().unwrap();
    (out.status.code(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn cli_exit_codes_and_json_report() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    fs_err::write(p("a.img"), base()).unwrap();
    fs_err::write(p("b.img"), cpio_with(EPOCH, 0o600, "bin", CONFIG, &app_bytes())).unwrap();
    fs_err::write(p("m.json"), b"{}").unwrap();

    let (code, stdout, _) = cvmforge(&[&p("a.img"), &p("a.img")], false);
    assert_eq!(code, Some(0));
    assert!(stdout.ends_with("are identical\n"), "{stdout}");

    let (code, stdout, _) = cvmforge(&[&p("a.img"), &p("b.img")], false);
    assert_eq!(code, Some(1));
    assert_eq!(stdout, "etc/motd: mode differs: 0644 vs 0600\n1 difference\n");

    let (code, stdout, _) = cvmforge(&[&p("a.img"), &p("b.img")], true);
    assert_eq!(code, Some(1));
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({"schema_version": 1, "identical": false, "findings": [
            {"kind": "changed", "path": "etc/motd", "field": "mode", "a": "0644", "b": "0600", "detail": []}
        ]})
    );

    let (code, _, stderr) = cvmforge(&[&p("a.img"), &p("m.json")], false);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("cannot compare an initrd with a manifest (JSON)"), "{stderr}");
    assert!(stderr.contains("hint: give two of the same kind"), "{stderr}");

    let (code, _, stderr) = cvmforge(&[&p("a.img"), &p("missing")], false);
    assert_eq!(code, Some(2), "{stderr}");
}

// ---- readers: rejects_* ----

#[test]
fn rejects_truncated_cpio_naming_entry_and_offset() {
    let data = base();
    // Cut inside bin/app's content: header at 116 ("bin" entry is 116 bytes), name "bin/app\0" -> content at 236.
    let err = read_initrd(&data[..250], &Limits::default()).unwrap_err();
    match err {
        UnpackError::Truncated { index, what, offset, needed, .. } => {
            assert_eq!((index, what, offset, needed), (1, "content", 236, 64))
        }
        other => panic!("{other}"),
    }
}

#[test]
fn rejects_truncated_tar() {
    let mut w = TarWriter::new(Vec::new(), 0);
    w.add_file("kernel", 0o644, 1000, &mut &[7u8; 1000][..]).unwrap();
    let tar = w.finish().unwrap();
    let err = read_bundle(&tar[..700], None, &Limits::default()).unwrap_err();
    assert!(matches!(err, UnpackError::Truncated { index: 0, what: "content", offset: 512, .. }), "{err}");
    // With the stream length known, the short stream is noticed before reading the content.
    let err = read_bundle(&tar[..700], Some(700), &Limits::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tar entry 0 `kernel` at byte offset 0 declares 1000 bytes of content, but only 188 bytes remain in the stream"
    );
}

/// A ustar header written by hand (the crate's writer refuses unsafe names, as it should).
fn raw_header(name: &str, flag: u8, link: &str, size: &[u8]) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..124 + size.len()].copy_from_slice(size);
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = flag;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..265].copy_from_slice(b"ustar\x0000");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

fn tar_of(headers: &[[u8; 512]]) -> Vec<u8> {
    let mut out: Vec<u8> = headers.iter().flatten().copied().collect();
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn read_tar(data: &[u8]) -> Result<(), UnpackError> {
    read_bundle(data, Some(data.len() as u64), &Limits::default()).map(|_| ())
}

#[test]
fn rejects_tar_entry_with_parent_dir_component() {
    let err = read_tar(&tar_of(&[raw_header("a/../../x", b'0', "", b"00000000000\0")])).unwrap_err();
    assert!(matches!(err, UnpackError::UnsafePath { problem: PathProblem::ParentDir, index: 0, .. }), "{err}");
    let err = read_tar(&tar_of(&[raw_header("../x", b'0', "", b"00000000000\0")])).unwrap_err();
    assert_eq!(err.to_string(), "tar entry 0 `../x` at byte offset 0: unsafe path: it has a `..` component");
}

#[test]
fn rejects_tar_entry_with_absolute_path() {
    let ok = raw_header("ok", b'0', "", b"00000000000\0");
    let err = read_tar(&tar_of(&[ok, raw_header("/etc/passwd", b'0', "", b"00000000000\0")])).unwrap_err();
    assert!(
        matches!(err, UnpackError::UnsafePath { problem: PathProblem::Absolute, index: 1, offset: 512, .. }),
        "{err}"
    );
}

#[test]
fn rejects_escaping_symlinks_and_hardlinks() {
    for (flag, link) in [(b'2', "../../etc/shadow"), (b'2', "/etc/shadow"), (b'1', "../x")] {
        let err = read_tar(&tar_of(&[raw_header("a/link", flag, link, b"00000000000\0")])).unwrap_err();
        assert!(matches!(&err, UnpackError::EscapingLink { target, .. } if target == link), "{link}: {err}");
    }
    // A relative symlink that stays inside is fine.
    read_tar(&tar_of(&[raw_header("a/link", b'2', "../b", b"00000000000\0")])).unwrap();
}

#[test]
fn rejects_entries_beneath_an_earlier_symlink() {
    // Each step stays inside lexically, but extracting `a/b/c` would follow `a/b` (which points at the root) and
    // land one level above it.
    let two_step = [raw_header("a/b", b'2', "..", b"00000000000\0"), raw_header("a/b/c", b'2', "..", b"00000000000\0")];
    let err = read_tar(&tar_of(&two_step)).unwrap_err();
    assert!(matches!(err, UnpackError::UnsafePath { problem: PathProblem::ThroughSymlink, index: 1, .. }), "{err}");
    let write_through =
        [raw_header("etc", b'2', "sub", b"00000000000\0"), raw_header("etc/passwd", b'0', "", b"00000000000\0")];
    let err = read_tar(&tar_of(&write_through)).unwrap_err();
    assert_eq!(err.to_string(), "tar entry 1 `etc/passwd` at byte offset 512: unsafe path: a parent directory is a symlink from an earlier entry");
}

#[test]
fn rejects_bad_tar_checksum() {
    let mut h = raw_header("kernel", b'0', "", b"00000000000\0");
    h[0] = b'K';
    let err = read_tar(&tar_of(&[h])).unwrap_err();
    assert!(matches!(err, UnpackError::BadChecksum { index: 0, offset: 0, .. }), "{err}");
}

/// Counts the bytes a reader hands out.
struct Counting<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

#[test]
fn rejects_tar_declaring_one_terabyte_quickly_with_bounded_reads() {
    // GNU base-256 size field: 0x80 marker, then 2^40 big-endian in the remaining 11 bytes.
    let mut size = [0u8; 12];
    size[0] = 0x80;
    size[6] = 1; // 2^40 = 1 << (8 * 5): byte 11 - 5 = 6
    let header = raw_header("bomb", b'0', "", &size);
    // An endless stream after the header: a reader that trusted the size would never stop.
    let mut stream = Counting { inner: io::Cursor::new(header.to_vec()).chain(io::repeat(0)), count: 0 };
    let err = TarReader::new(&mut stream, None, Limits::default()).next_entry().unwrap_err();
    match &err {
        UnpackError::EntryTooLarge { declared, .. } => assert_eq!(*declared, 1 << 40),
        other => panic!("{other}"),
    }
    assert!(stream.count <= 64 * 1024, "read {} bytes before failing", stream.count);
    // Even with no size limit, a known stream length catches it before reading.
    let limits = Limits { max_entry_size: u64::MAX, max_kept_entry: 0, ..Limits::default() };
    let data = tar_of(&[header]);
    let err = TarReader::new(&data[..], Some(data.len() as u64), limits).next_entry().unwrap_err();
    assert!(
        err.to_string().ends_with("declares 1099511627776 bytes of content, but only 1024 bytes remain in the stream"),
        "{err}"
    );
}

/// An endless newc stream of tiny entries.
struct EndlessCpio {
    entry: Vec<u8>,
    at: usize,
}

impl Read for EndlessCpio {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            let chunk = (&self.entry[self.at..]).read(&mut buf[n..])?;
            n += chunk;
            self.at = (self.at + chunk) % self.entry.len();
        }
        Ok(n)
    }
}

#[test]
fn rejects_cpio_with_millions_of_tiny_entries() {
    let mut w = CpioWriter::new(Vec::new(), 0);
    w.add_file("f", 0o644, 0, &mut &b""[..]).unwrap();
    let mut entry = w.finish().unwrap();
    entry.truncate(112); // one header + "f\0", without the trailer
    let mut reader = CpioReader::new(EndlessCpio { entry, at: 0 }, Limits::default());
    let mut count = 0u64;
    let err = loop {
        match reader.next_entry() {
            Ok(Some(_)) => count += 1,
            Ok(None) => panic!("endless stream ended"),
            Err(e) => break e,
        }
    };
    assert_eq!(count, 1_000_000);
    assert_eq!(
        err.to_string(),
        "cpio archive has too many entries: more than 1000000 (entry 1000000 starts at byte offset 112000000)"
    );
}

#[test]
fn rejects_gzip_bomb_at_the_decompression_cap() {
    // One cpio entry declaring 24 MiB of zeros, as concatenated gzip members (RFC 1952 2.2; the kernel and
    // MultiGzDecoder read them as one stream): the header, then the same 1 MiB-of-zeros member 24 times.
    const MIB: usize = 1 << 20;
    let mut w = CpioWriter::new(Vec::new(), 0);
    w.add_file("zeros", 0o644, 0, &mut &b""[..]).unwrap();
    let empty = w.finish().unwrap();
    let header_len = 116; // 110 + "zeros\0", already 4-aligned
    let mut header = empty[..header_len].to_vec();
    header[54..62].copy_from_slice(format!("{:08X}", 24 * MIB).as_bytes()); // c_filesize, the 7th field
    let trailer = &empty[header_len..];
    let mut bomb = gzip(&header, 9, 0);
    let zeros = gzip(&vec![0u8; MIB], 9, 0);
    for _ in 0..24 {
        bomb.extend_from_slice(&zeros);
    }
    bomb.extend_from_slice(&gzip(trailer, 9, 0));
    assert!(bomb.len() < 100_000, "{} bytes compressed", bomb.len());
    let limits = Limits { max_total_size: 8 << 20, ..Limits::default() };
    let err = read_initrd(&bomb[..], &limits).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the decompressed gzip stream exceeds the cap of 8388608 bytes (a decompression bomb?)"
    );
}

#[test]
fn rejects_zstd_bomb_at_the_decompression_cap() {
    const MIB: usize = 1 << 20;
    let mut w = CpioWriter::new(Vec::new(), 0);
    w.add_file("zeros", 0o644, 0, &mut &b""[..]).unwrap();
    let mut header = w.finish().unwrap()[..116].to_vec();
    header[54..62].copy_from_slice(format!("{:08X}", 24 * MIB).as_bytes()); // c_filesize
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 19).unwrap();
    enc.write_all(&header).unwrap();
    let zeros = vec![0u8; MIB];
    for _ in 0..24 {
        enc.write_all(&zeros).unwrap();
    }
    let bomb = enc.finish().unwrap();
    assert!(bomb.len() < 100_000, "{} bytes compressed", bomb.len());
    let limits = Limits { max_total_size: 8 << 20, ..Limits::default() };
    let err = read_initrd(&bomb[..], &limits).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the decompressed zstd stream exceeds the cap of 8388608 bytes (a decompression bomb?)"
    );
}

#[test]
fn rejects_data_that_is_not_cpio_inside_gzip() {
    let err = read_initrd(&gzip(b"hello world", 6, 0)[..], &Limits::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "not an initrd: the gzip stream does not start with the newc magic `070701` (found `hello `)"
    );
}

fn valid_tar() -> Vec<u8> {
    let mut w = TarWriter::new(Vec::new(), u64::from(EPOCH));
    w.add_file("initrd.img", 0o644, 300, &mut &[1u8; 300][..]).unwrap();
    w.add_file("manifest.json", 0o644, 2, &mut &b"{}"[..]).unwrap();
    w.finish().unwrap()
}

proptest! {
    #[test]
    fn random_json_documents_diff_consistently(
        a in prop::collection::btree_map("[a-z]{1,3}", 0u8..4, 0..6),
        b in prop::collection::btree_map("[a-z]{1,3}", 0u8..4, 0..6),
    ) {
        let doc = |m: &std::collections::BTreeMap<String, u8>| {
            serde_json::to_vec(&serde_json::json!({"inputs": m.iter().map(|(k, v)| serde_json::json!({"role": k, "sha256": v})).collect::<Vec<_>>(), "m": m})).unwrap()
        };
        let (da, db) = (doc(&a), doc(&b));
        cvmforge::diff::fuzzing::manifest_diff(&[&da[..], &[0], &db].concat());
        let report = diff(&da, &db);
        // Every key present on one side only is reported, under both `m` and `inputs[role=..]`.
        for key in a.keys().filter(|k| !b.contains_key(*k)) {
            let (input, member) = (format!("inputs[role={}]", key), format!("m.{}", key));
            prop_assert!(report.findings.iter().any(|f| f.kind == FindingKind::Removed && f.path == input), "{:?}", report.findings);
            prop_assert!(report.findings.iter().any(|f| f.kind == FindingKind::Removed && f.path == member), "{:?}", report.findings);
        }
    }
}

proptest! {
    // `PROPTEST_CASES` runs longer searches (the fuzz targets check the same properties).
    #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(400), ..ProptestConfig::default() })]

    #[test]
    fn random_mutations_of_a_cpio_never_panic(
        mutations in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut data = base();
        for (i, byte) in &mutations {
            let at = i.index(data.len());
            data[at] = *byte;
        }
        let len = cut.index(data.len() + 1);
        let limits = Limits { max_total_size: 1 << 20, ..Limits::default() };
        let _ = read_initrd(&data[..], &limits);
        let _ = read_initrd(&data[..len], &limits);
        let _ = read_initrd(&gzip(&data[..len], 1, 0)[..], &limits);
        // The fuzz target's properties too: whatever parses round-trips through the crate's writer.
        cvmforge::format::fuzzing::cpio_reader(&data);
        cvmforge::diff::fuzzing::manifest_diff(&[&base()[..], &[0], &data].concat());
    }

    #[test]
    fn random_mutations_of_a_tar_never_panic(
        mutations in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut data = valid_tar();
        for (i, byte) in &mutations {
            let at = i.index(data.len());
            data[at] = *byte;
        }
        let len = cut.index(data.len() + 1);
        let _ = read_bundle(&data[..], Some(data.len() as u64), &Limits::default());
        let _ = read_bundle(&data[..len], None, &Limits::default());
        cvmforge::format::fuzzing::tar_reader(&data);
        cvmforge::format::fuzzing::tar_reader(&data[..len]);
    }
}

// ---- cross-checks against GNU cpio and GNU tar (independent writers) ----

fn tool(name: &str) -> bool {
    let found = Command::new(name).arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        crate::util::skip_test!("`{name}` is not installed");
    }
    found
}

fn sample_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let long = "d".repeat(60);
    fs_err::create_dir_all(dir.path().join(&long).join(&long)).unwrap();
    fs_err::write(dir.path().join(&long).join(&long).join("file.txt"), b"hello\n").unwrap();
    std::os::unix::fs::symlink("../x", dir.path().join(&long).join("link")).unwrap();
    dir
}

#[test]
fn reads_gnu_cpio_newc_output() {
    if !tool("cpio") {
        return;
    }
    let tree = sample_tree();
    let out = Command::new("sh")
        .arg("-c")
        .arg("find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc --reproducible")
        .current_dir(tree.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let initrd = read_initrd(&out.stdout[..], &Limits::default()).unwrap();
    // GNU cpio strips the leading `./` that find prints.
    let long = "d".repeat(60);
    let file = initrd.entries.iter().find(|e| e.path == format!("{long}/{long}/file.txt")).unwrap();
    // sha256sum of "hello\n".
    assert_eq!(hex::encode(file.sha256), "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
    let link = initrd.entries.iter().find(|e| e.path == format!("{long}/link")).unwrap();
    assert_eq!(link.link_target.as_deref(), Some("../x"));
    assert_eq!(initrd.entries.len(), 4);
}

#[test]
fn reads_gnu_tar_long_names_in_gnu_and_pax_formats() {
    if !tool("tar") {
        return;
    }
    let tree = sample_tree();
    let long = "d".repeat(60);
    for format in ["gnu", "pax"] {
        let out = Command::new("tar")
            .args(["--format", format, "--sort=name", "-cf", "-", &long])
            .current_dir(tree.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let bundle = read_bundle(&out.stdout[..], Some(out.stdout.len() as u64), &Limits::default()).unwrap();
        let path = format!("{long}/{long}/file.txt"); // 125 bytes: needs a GNU `L` record or a pax `path`
        assert_eq!(bundle.member(&path), Some(&b"hello\n"[..]), "{format}");
        let link = bundle.entries.iter().find(|e| e.path == format!("{long}/link")).unwrap();
        assert_eq!(link.link_target.as_deref(), Some("../x"), "{format}");
    }
}

// ---- kernels ----

fn synthetic_kernel(release: &str, config: &str) -> Vec<u8> {
    let mut vmlinux = b"\x7fELF vmlinux text IKCFG_ST".to_vec();
    vmlinux.extend(gzip(config.as_bytes(), 9, 0));
    vmlinux.extend_from_slice(b"IKCFG_ED more text");
    cvmforge::format::bzimage::testing::bzimage(&format!("{release} (builder@host) #1 SMP"), &gzip(&vmlinux, 9, 0))
}

#[test]
fn kernels_differing_in_release_and_config_name_both() {
    let a =
        synthetic_kernel("6.1.0-56-amd64", "CONFIG_NR_CPUS=512\nCONFIG_AMD_MEM_ENCRYPT=y\n# CONFIG_KEXEC is not set\n");
    let b = synthetic_kernel("6.1.0-57-amd64", "CONFIG_NR_CPUS=64\n# CONFIG_KEXEC is not set\n");
    let report = diff(&a, &b);
    let changed: Vec<(&str, &str, &str)> = report
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::Changed)
        .map(|f| (f.field.as_deref().unwrap(), f.a.as_deref().unwrap(), f.b.as_deref().unwrap()))
        .collect();
    assert_eq!(
        changed,
        [
            ("kernel release", "6.1.0-56-amd64", "6.1.0-57-amd64"),
            ("config CONFIG_AMD_MEM_ENCRYPT", "y", "(unset)"),
            ("config CONFIG_NR_CPUS", "512", "64"),
        ]
    );
    // The bytes are still located.
    let content = report.findings.iter().find(|f| f.kind == FindingKind::Content).unwrap();
    assert!(content.detail[1].starts_with("first difference at byte offset"), "{content:?}");
}

#[test]
fn real_kernel_timestamp_change_is_located_in_the_pe_header() {
    let Ok(dir) = std::env::var("CVMFORGE_TEST_KERNEL_DIR") else {
        crate::util::skip_test!(
            "CVMFORGE_TEST_KERNEL_DIR is not set (scripts/test.sh sets it to the extracted Debian kernel)"
        );
        return;
    };
    let boot = Path::new(&dir).join("boot");
    let Some(vmlinuz) = fs_err::read_dir(&boot)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-")))
    else {
        panic!("no vmlinuz-* in {}", boot.display());
    };
    let a = fs_err::read(&vmlinuz).unwrap();
    let mut b = a.clone();
    let pe = u32::from_le_bytes(a[0x3c..0x40].try_into().unwrap()) as usize;
    b[pe + 8] ^= 1; // COFF TimeDateStamp, as a non-reproducible EFI stub build would change it
    let report = diff(&a, &b);
    let f = find(&report, FindingKind::Content, "(file)");
    assert_eq!(f.detail[1], format!("first difference at byte offset {} (0x{:x})", pe + 8, pe + 8));
    assert!(f.detail[4].contains("PE/COFF TimeDateStamp"), "{f:?}");
}

// ---- end to end: two real builds ----

#[test]
fn diff_of_two_builds_explains_a_changed_initrd_file() {
    let tree = crate::util::Tree::standard();
    tree.build(&[]).ok();
    tree.write("src/data/model.txt", b"a bigger model\n");
    tree.run(&["build", "src/recipe.yaml", "-o", "out2"]).ok();
    let (a, b) = (tree.path("out"), tree.path("out2"));

    let report = diff_paths(&a, &b, &Limits::default()).unwrap();
    let text = report.render_text();
    let entry = find(&report, FindingKind::Content, "initrd.img:srv/model.txt");
    assert!(entry.detail.contains(&"-a tiny model".to_string()), "{text}");
    assert!(entry.detail.contains(&"+a bigger model".to_string()), "{text}");
    let input = find(&report, FindingKind::Changed, "manifest.json:inputs[role=file:/srv/model.txt].sha256");
    assert_eq!(ab(input).1, hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"a bigger model\n")));
    assert_eq!(input.detail, ["initrd feeds the measurements snp.digest, tdx.rtmr1, tdx.rtmr2"]);
    // The bundle's members differ exactly as the loose files: said once, not diffed twice.
    let bundle = find(&report, FindingKind::Content, "demo-0.1.0.cvm.tar");
    assert!(bundle.detail[0].starts_with("its members initrd.img, manifest.json differ exactly as"), "{text}");
    // Nothing else changed in the initrd: no mode, mtime or order findings.
    assert!(
        report
            .findings
            .iter()
            .filter(|f| f.path.starts_with("initrd.img:"))
            .all(|f| f.path == "initrd.img:srv/model.txt"),
        "{text}"
    );

    let (code, stdout, _) = cvmforge(&[&a, &b], true);
    assert_eq!(code, Some(1));
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["identical"], false);
    let (code, stdout, _) = cvmforge(&[&a, &a], false);
    assert_eq!((code, stdout.ends_with("are identical\n")), (Some(0), true));
}

/// A path from a small alphabet that includes the dangerous components.
fn tricky_path() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "..", ".", ""]), 1..4).prop_map(|parts| parts.join("/"))
}

proptest! {
    #[test]
    fn structured_tar_headers_never_panic_and_unsafe_ones_are_rejected(
        entries in prop::collection::vec(
            (tricky_path(), prop::sample::select(vec![b'0', b'1', b'2', b'5', b'L', b'x']), tricky_path(), 0usize..600),
            1..5,
        ),
        absolute in any::<bool>(),
    ) {
        let mut data = Vec::new();
        for (name, flag, link, size) in &entries {
            let name = if absolute { format!("/{name}") } else { name.clone() };
            let size_field = format!("{size:011o}\0");
            data.extend_from_slice(&raw_header(&name, *flag, link, size_field.as_bytes()));
            data.extend(std::iter::repeat_n(b'x', *size));
            data.resize(data.len().next_multiple_of(512), 0);
        }
        data.extend_from_slice(&[0u8; 1024]);
        cvmforge::format::fuzzing::tar_reader(&data);
        if let Ok(bundle) = read_bundle(&data[..], Some(data.len() as u64), &Limits::default()) {
            for e in &bundle.entries {
                prop_assert!(!e.path.starts_with('/') && !e.path.split('/').any(|c| c == ".."), "{:?}", e.path);
            }
        }
    }
}

/// Issue 11, item 4: an entry name with a newline and escape sequences cannot add lines to the rendered diff.
#[test]
fn issue11_rendered_diff_escapes_entry_names() {
    let hostile = |app: &[u8]| {
        let mut w = CpioWriter::new(Vec::new(), EPOCH);
        w.add_file("bin/x\nidentical\u{1b}[1A", 0o755, app.len() as u64, &mut &app[..]).unwrap();
        w.finish().unwrap()
    };
    let report = diff(&hostile(b"one"), &hostile(b"two"));
    let text = report.render_text();
    assert!(!report.identical);
    assert!(text.lines().all(|l| l != "identical" && !l.starts_with("identical")), "{text}");
    assert!(text.contains("x\\nidentical\\u{1b}[1A"), "{text}");
    assert!(!text.contains('\u{1b}'), "{text}");
}

/// Issue 11, item 5: `diff` never follows a symlink inside an output directory (`cmdline -> /etc/shadow`).
#[test]
fn issue11_diff_refuses_symlinked_output_members() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for side in [&a, &b] {
        std::fs::create_dir(side).unwrap();
        std::fs::write(side.join("kernel"), b"k").unwrap();
    }
    std::fs::write(dir.path().join("secret"), b"root:$6$hash:").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret"), b.join("cmdline")).unwrap();
    std::fs::write(a.join("cmdline"), b"console=ttyS0").unwrap();
    let err = diff_paths(&a, &b, &Limits::default()).unwrap_err();
    let chain = format!("{err}: {}", std::error::Error::source(&err).map(ToString::to_string).unwrap_or_default());
    assert!(chain.contains("cmdline") && chain.contains("is a symbolic link"), "{chain}");
    assert!(!chain.contains("root:"), "{chain}");
}

/// Issue 11, item 10: a file larger than diff holds in memory (here sparse, 1 GiB + 1 byte, differing in its last
/// byte) is streamed and compared by digest, in a member of an output directory and as a file of its own; the
/// finding names the limit.
#[test]
fn issue11_files_over_the_memory_limit_are_streamed() {
    use std::io::{Seek, SeekFrom};
    let dir = tempfile::tempdir().unwrap();
    let size = cvmforge::diff::MAX_IN_MEMORY_FILE + 1;
    for (side, last) in [("a", b'x'), ("b", b'y')] {
        std::fs::create_dir(dir.path().join(side)).unwrap();
        let mut f = std::fs::File::create(dir.path().join(side).join("kernel")).unwrap();
        f.set_len(size).unwrap();
        f.seek(SeekFrom::Start(size - 1)).unwrap();
        f.write_all(&[last]).unwrap();
    }
    let report = diff_paths(&dir.path().join("a"), &dir.path().join("b"), &Limits::default()).unwrap();
    assert!(!report.identical);
    let finding = find(&report, FindingKind::Content, "kernel");
    assert!(finding.detail_lines().iter().any(|l| l.contains("MAX_IN_MEMORY_FILE")), "{}", report.render_text());
    let same = diff_paths(&dir.path().join("a/kernel"), &dir.path().join("a/kernel"), &Limits::default()).unwrap();
    assert!(same.identical);
}
