//! Bit-for-bit reproducibility: two builds of the same recipe under different conditions give identical bytes.
//!
//! Varied between the two builds (see docs/specs/reproducibility.md): the absolute path of the tree and the working
//! directory (so the recipe path on the command line), umask, TZ, LC_ALL, input mtimes, input permissions, the
//! on-disk creation order of the inputs, and the compressor thread count (--jobs 1 vs 4).

use std::path::Path;
use std::process::Command;

use crate::util::*;

/// A payload big enough (several MiB, mixed random and compressible) that parallel compressors split it.
fn payload() -> Vec<u8> {
    let mut bytes = cvmforge::format::elf::testing::executable(None);
    bytes.extend_from_slice(&random_bytes(1 << 20, 42));
    let text: Vec<u8> = (0..60_000).flat_map(|i| format!("line {i}: the quick brown fox\n").into_bytes()).collect();
    bytes.extend_from_slice(&text);
    bytes.extend_from_slice(&random_bytes(512 << 10, 43));
    bytes.extend_from_slice(&vec![0u8; 1 << 20]);
    bytes
}

/// The files of the tree, relative to the tree root.
fn files(recipe: &str) -> Vec<(String, Vec<u8>)> {
    vec![
        ("src/inputs/vmlinuz".to_string(), fake_kernel(0x020f, 300_000)),
        (
            "src/inputs/guest-init".to_string(),
            [cvmforge::format::elf::testing::executable(None), random_bytes(200_000, 5)].concat(),
        ),
        ("src/inputs/server".to_string(), payload()),
        ("src/data/model.txt".to_string(), b"model weights\n".repeat(20_000)),
        ("src/inputs/OVMF.amdsev.fd".to_string(), random_bytes(64 << 10, 6)),
        ("src/recipe.yaml".to_string(), recipe.as_bytes().to_vec()),
    ]
}

fn write_tree(root: &Path, files: &[(String, Vec<u8>)]) {
    for (rel, bytes) in files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

fn set_times_and_modes(root: &Path, files: &[(String, Vec<u8>)], stamp: &str, mode: &str) {
    for (rel, _) in files {
        let path = root.join(rel);
        assert!(Command::new("touch").args(["-d", stamp]).arg(&path).status().unwrap().success());
        assert!(Command::new("chmod").arg(mode).arg(&path).status().unwrap().success());
    }
}

fn read_dir_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().into_string().unwrap(), std::fs::read(e.path()).unwrap())
        })
        .collect();
    out.sort();
    out
}

fn check_reproducible(recipe: &str) {
    let files = files(recipe);
    // Build 1: files created in order, cwd = tree root, one thread, UTC, C locale.
    let one = tempfile::tempdir().unwrap();
    write_tree(one.path(), &files);
    set_times_and_modes(one.path(), &files, "2001-02-03 04:05:06", "0644");
    let first = Command::new(env!("CARGO_BIN_EXE_cvmforge"))
        .current_dir(one.path())
        .args(["build", "src/recipe.yaml", "-o", "out", "--jobs", "1"])
        .env("TZ", "UTC")
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    Run::from_output(first).ok();

    // Build 2: another absolute path, deeper, files created in reverse order with other mtimes and modes, run from
    // inside the recipe's directory under umask 077 with another TZ and locale, four threads.
    let two = tempfile::tempdir().unwrap();
    let root = two.path().join("some/much/deeper/checkout");
    let mut reversed = files.clone();
    reversed.reverse();
    write_tree(&root, &reversed);
    set_times_and_modes(&root, &files, "2030-12-31 23:59:59", "0600");
    let second = Command::new("sh")
        .args(["-c", "umask 077; exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_cvmforge"))
        .args(["build", "recipe.yaml", "-o", "../../elsewhere/out", "--jobs", "4"])
        .current_dir(root.join("src"))
        .env("TZ", "Pacific/Chatham")
        .env("LC_ALL", "tr_TR.UTF-8")
        .output()
        .unwrap();
    Run::from_output(second).ok();

    let a = read_dir_bytes(&one.path().join("out"));
    let b = read_dir_bytes(&root.join("../elsewhere/out"));
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&a), names(&b));
    assert_eq!(a.len(), 6);
    let differing: Vec<String> = a
        .iter()
        .zip(&b)
        .filter(|((_, x), (_, y))| x != y)
        .map(|((name, x), (_, y))| format!("{name} ({} vs {} bytes)", x.len(), y.len()))
        .collect();
    assert!(differing.is_empty(), "outputs differ between the two builds: {differing:?}");
    assert_eq!(
        std::fs::read(one.path().join("src/recipe.lock")).unwrap(),
        std::fs::read(root.join("src/recipe.lock")).unwrap(),
        "lock files differ"
    );
    // The initrd really holds the payload (the test is not comparing two empty archives).
    let initrd = &a.iter().find(|(n, _)| n == "initrd.img").unwrap().1;
    let plain = if initrd.starts_with(&[0x1f, 0x8b]) { gunzip(initrd) } else { unzstd(initrd) };
    let entries = parse_newc(&plain);
    assert_eq!(entries.iter().find(|e| e.name == "usr/bin/server").unwrap().data, payload());
}

#[test]
fn gzip_build_is_bit_for_bit_reproducible() {
    check_reproducible(STANDARD_RECIPE);
}

#[test]
fn zstd_build_is_bit_for_bit_reproducible() {
    check_reproducible(&STANDARD_RECIPE.replace("initrd:\n", "initrd:\n  compression: zstd\n"));
}
