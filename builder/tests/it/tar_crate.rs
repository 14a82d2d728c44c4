//! The `tar` crate beside ours (issue 10): its writer against our bundle writer on every fixture, and its reader
//! against our bounded reader on the same archives (`cvmforge::format::tar::differential`).

use std::process::Command;

use cvmforge::format::tar::differential::{compare, Agreement};
use cvmforge::format::tar::TarWriter;
use cvmforge::format::{read_bundle, Limits};

use crate::util::Tree;

/// One archive's members: (name, mode, content).
type Members = Vec<(String, u32, Vec<u8>)>;

/// The bundles these tests write: a real build's bundle (the demo's member names and sizes), and synthetic ones at
/// the block-size edges, with a name that needs ustar's prefix field, and with every mode the builder writes.
fn fixtures() -> Vec<(String, u64, Members)> {
    let tree = Tree::standard();
    tree.build(&[]).ok();
    let name = tree.list("out").into_iter().find(|n| n.ends_with(".cvm.tar")).unwrap();
    let bytes = tree.read(&format!("out/{name}"));
    let bundle = read_bundle(&bytes[..], Some(bytes.len() as u64), &Limits::default()).unwrap();
    let built: Members = bundle.entries.iter().map(|e| (e.path.clone(), e.mode, e.content.clone().unwrap())).collect();
    let mtime = bundle.entries[0].mtime;
    let edges: Members = [0usize, 1, 511, 512, 513, 1024, 70_000]
        .iter()
        .map(|&n| (format!("file-{n}"), 0o644, (0..n).map(|i| (i % 251) as u8).collect()))
        .collect();
    let long = format!("{}/{}", "d".repeat(120), "f".repeat(60));
    let named: Members = vec![(long, 0o755, b"x".to_vec()), ("manifest.json".into(), 0o600, b"{}\n".to_vec())];
    vec![("built".into(), mtime, built), ("edges".into(), 1_767_225_600, edges), ("names".into(), 0, named)]
}

fn ours(mtime: u64, members: &Members) -> Vec<u8> {
    let mut w = TarWriter::new(Vec::new(), mtime);
    for (name, mode, content) in members {
        w.add_file(name, *mode, content.len() as u64, &mut &content[..]).unwrap();
    }
    w.finish().unwrap()
}

/// The same members written with the `tar` crate, field by field as our writer sets them.
fn theirs(mtime: u64, members: &Members) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, mode, content) in members {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_size(content.len() as u64);
        h.set_mode(*mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(mtime);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_device_major(0).unwrap();
        h.set_device_minor(0).unwrap();
        h.set_cksum();
        b.append(&h, &content[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// Evidence for `builder/README.md` ("tar"): the `tar` crate writes the same bundle except for the checksum field,
/// which it formats as seven octal digits and a NUL (`0012345\0`) where ours (like GNU tar) writes six digits, a NUL
/// and a space (`012345\0 `). Writing the bundle with it would change every bundle's bytes, so ours stays. If this
/// test fails because the bytes became identical, the crate can write the bundle.
#[test]
fn tar_crate_writes_every_fixture_alike_but_for_the_checksum_format() {
    let mut headers_checked = 0;
    for (label, mtime, members) in fixtures() {
        let (a, b) = (ours(mtime, &members), theirs(mtime, &members));
        assert_eq!(a.len(), b.len(), "{label}: lengths differ");
        let differing: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
        assert!(!differing.is_empty(), "{label}: identical bytes; the tar crate can now write the bundle");
        for &i in &differing {
            assert!((148..156).contains(&(i % 512)), "{label}: byte {i} differs outside a checksum field");
        }
        let header_starts: std::collections::BTreeSet<usize> = differing.iter().map(|i| i - i % 512).collect();
        for start in header_starts {
            let (ours_field, theirs_field) = (&a[start + 148..start + 156], &b[start + 148..start + 156]);
            let sum = u32::from_str_radix(std::str::from_utf8(&ours_field[..6]).unwrap(), 8).unwrap();
            assert_eq!(ours_field, format!("{sum:06o}\0 ").as_bytes(), "{label}: our checksum at {start}");
            assert_eq!(theirs_field, format!("{sum:07o}\0").as_bytes(), "{label}: their checksum at {start}");
            headers_checked += 1;
        }
    }
    assert!(headers_checked >= 10, "only {headers_checked} headers compared");
}

/// Issue 10: whatever our reader accepts, the `tar` crate reads as the same entries, on our own bundles and on
/// archives GNU tar writes (ustar, GNU long names, pax).
#[test]
fn our_reader_and_the_tar_crate_agree_on_every_fixture() {
    let mut archives: Vec<(String, Vec<u8>)> = fixtures().into_iter().map(|(l, m, ms)| (l, ours(m, &ms))).collect();
    archives.extend(gnu_tar_archives());
    let mut same = 0;
    for (label, bytes) in &archives {
        match compare(bytes, &Limits::default()) {
            Agreement::Same(members) => {
                assert!(!members.is_empty(), "{label}: no entries");
                same += 1;
            }
            other => panic!("{label}: {other:?}"),
        }
    }
    assert!(same >= 3, "only {same} archives compared");
}

/// Archives that our reader refuses by design, where the `tar` crate reads on: our reader's refusals are what keep
/// an archive from putting a file where the checker does not look.
#[test]
fn rejects_what_the_tar_crate_would_extract_outside_the_root_or_smuggle() {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("absolute path", raw_archive(&[(b"/etc/passwd".as_slice(), b'0', b"x".as_slice(), None)]), "unsafe path"),
        ("dot-dot", raw_archive(&[(b"a/../../b".as_slice(), b'0', b"x".as_slice(), None)]), "unsafe path"),
        ("pax size that disagrees with the header", pax_size_desync(), "its pax `size` is 0 but its header says 512"),
        ("a checksum of signed bytes", signed_checksum(), "header checksum"),
        ("a GNU long name with a NUL inside", long_name_with_nul(), "a GNU long name or link target with a NUL byte"),
        ("a pax header with no member after it", dangling_pax(), "describes a member that never comes"),
        ("a pax path with a newline", pax_path_with_newline(), "malformed pax extended header record"),
        ("two long names for one member", two_long_names(), "a second long name or path for the same member"),
    ];
    for (label, bytes, needle) in cases {
        match compare(&bytes, &Limits::default()) {
            Agreement::OursRefuses(err) => assert!(err.contains(needle), "{label}: {err}"),
            other => panic!("{label}: our reader accepted it: {other:?}"),
        }
    }
}

/// A raw entry: name, type flag, content, and an optional pax `size` record before it.
type RawEntry<'a> = (&'a [u8], u8, &'a [u8], Option<u64>);

/// A ustar archive of raw entries, built by hand so that it can say what no writer would.
fn raw_archive(entries: &[RawEntry<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, flag, content, pax_size) in entries {
        if let Some(size) = pax_size {
            let record = pax_record("size", &size.to_string());
            out.extend(header(b"pax", b'x', record.len() as u64));
            out.extend(padded(&record));
        }
        out.extend(header(name, *flag, content.len() as u64));
        out.extend(padded(content));
    }
    out.extend([0u8; 1024]);
    out
}

/// A pax header says the next entry has 0 bytes while its ustar header says 512, and those 512 bytes are another
/// tar header: a reader that trusts the pax size (ours before issue 10, and the `tar` crate 0.4.46) sees a member
/// `hidden` that one trusting the ustar size does not (the shape of GHSA-3cv2-h65g-fgmm).
fn pax_size_desync() -> Vec<u8> {
    let hidden = header(b"hidden", b'0', 0);
    raw_archive(&[(b"visible".as_slice(), b'0', hidden.as_slice(), Some(0))])
}

/// A header with a byte above 0x7f whose checksum is the signed sum of old tars: the `tar` crate refuses it, so ours
/// does too (issue 10: found by the `tar_differential` fuzz target, where ours had accepted it like GNU tar).
fn signed_checksum() -> Vec<u8> {
    let mut archive = raw_archive(&[("caf\u{e9}".as_bytes(), b'0', b"x".as_slice(), None)]);
    let signed: i64 = archive[..512]
        .iter()
        .enumerate()
        .map(|(i, &b)| if (148..156).contains(&i) { 32 } else { i64::from(b as i8) })
        .sum();
    archive[148..156].copy_from_slice(format!("{signed:06o}\0 ").as_bytes());
    archive
}

/// A GNU long name `innocent\0../../etc/x`: a C reader stops at the NUL, the `tar` crate does not (issue 10: found
/// by the `tar_differential` fuzz target, where ours had read `innocent` and the crate the whole name).
fn long_name_with_nul() -> Vec<u8> {
    let name = b"innocent\0../../etc/x\0";
    let mut out = header(b"././@LongLink", b'L', name.len() as u64).to_vec();
    out.extend(padded(name));
    out.extend(raw_archive(&[(b"short".as_slice(), b'0', b"x".as_slice(), None)]));
    out
}

/// A member, then a pax header and the end of the archive: the `tar` crate refuses it, ours ignored it (issue 10:
/// found by the `tar_differential` fuzz target).
fn dangling_pax() -> Vec<u8> {
    let mut out = raw_archive(&[(b"kernel".as_slice(), b'0', b"MZ".as_slice(), None)]);
    out.truncate(out.len() - 1024);
    let record = pax_record("path", "ghost");
    out.extend(header(b"pax", b'x', record.len() as u64));
    out.extend(padded(&record));
    out.extend([0u8; 1024]);
    out
}

/// A pax `path` with a newline inside: the `tar` crate reads pax records as lines and drops it (using the header's
/// name), ours read the whole record (issue 10: found by the `tar_differential` fuzz target).
fn pax_path_with_newline() -> Vec<u8> {
    let record = pax_record("path", "visible\nhidden");
    let mut out = header(b"pax", b'x', record.len() as u64).to_vec();
    out.extend(padded(&record));
    out.extend(raw_archive(&[(b"other".as_slice(), b'0', b"x".as_slice(), None)]));
    out
}

/// Two GNU long names before one member: the `tar` crate refuses it, ours took the last (issue 10: found by the
/// `tar_differential` fuzz target).
fn two_long_names() -> Vec<u8> {
    let mut out = Vec::new();
    for name in [&b"first\0"[..], b"second\0"] {
        out.extend(header(b"././@LongLink", b'L', name.len() as u64));
        out.extend(padded(name));
    }
    out.extend(raw_archive(&[(b"short".as_slice(), b'0', b"x".as_slice(), None)]));
    out
}

fn pax_record(key: &str, value: &str) -> Vec<u8> {
    // "<len> <key>=<value>\n", where <len> counts itself.
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while format!("{len}{body}").len() != len {
        len += 1;
    }
    format!("{len}{body}").into_bytes()
}

fn header(name: &[u8], flag: u8, size: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name);
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = flag;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

fn padded(content: &[u8]) -> Vec<u8> {
    let mut v = content.to_vec();
    v.resize(content.len().div_ceil(512) * 512, 0);
    v
}

/// Archives written by GNU tar (when it is installed): ustar, GNU (long names as `L` records) and pax, of a tree with
/// a directory, a symlink, an empty file and names longer than 100 bytes.
fn gnu_tar_archives() -> Vec<(String, Vec<u8>)> {
    if Command::new("tar").arg("--version").output().is_err() {
        crate::util::skipped("GNU tar is not installed: the reader comparison covers our own bundles only");
        return Vec::new();
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let deep = src.join("d".repeat(60)).join("e".repeat(60));
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("f".repeat(40)), b"deep content\n").unwrap();
    std::fs::write(src.join("empty"), b"").unwrap();
    std::fs::write(src.join("motd"), "héllo\n".repeat(300)).unwrap();
    std::os::unix::fs::symlink("motd", src.join("link")).unwrap();
    let mut out = Vec::new();
    for format in ["ustar", "gnu", "pax"] {
        let archive = dir.path().join(format!("{format}.tar"));
        let status = Command::new("tar")
            .args(["--sort=name", "--owner=0", "--group=0", "--numeric-owner", "--mtime=@0"])
            .arg(format!("--format={format}"))
            .arg("-cf")
            .arg(&archive)
            .arg("-C")
            .arg(&src)
            .arg(".")
            .status()
            .unwrap();
        // ustar cannot hold every long name: GNU tar then refuses; that format is simply not compared.
        if status.success() {
            out.push((format!("GNU tar --format={format}"), std::fs::read(&archive).unwrap()));
        }
    }
    assert!(out.len() >= 2, "GNU tar wrote only {} archives", out.len());
    out
}
