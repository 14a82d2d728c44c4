//! dm-verity trees against Debian's `veritysetup` (cryptsetup-bin), an independent implementation: it accepts our
//! tree with our root hash, and `veritysetup format` with the same salt writes the same bytes.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

use cvmforge::format::verity::{write_tree, BLOCK};

fn veritysetup() -> bool {
    let found = Command::new("veritysetup").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        crate::util::skip_test!("`veritysetup` is not installed (Debian: cryptsetup-bin)");
    }
    found
}

/// Deterministic data that is not periodic in blocks, so that a swapped block would show.
fn data(blocks: u64) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..blocks * BLOCK)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn run(args: &[&str]) -> String {
    let out = Command::new("veritysetup").args(args).output().unwrap();
    assert!(out.status.success(), "veritysetup {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn root_of(format_output: &str) -> String {
    format_output.lines().find_map(|l| l.strip_prefix("Root hash:")).unwrap().trim().to_string()
}

/// Our tree for `blocks` blocks, appended to the data in one image as a volume has it; and veritysetup's tree.
fn compare(dir: &Path, blocks: u64, salt: &[u8]) {
    let bytes = data(blocks);
    let image_path = dir.join(format!("image-{blocks}"));
    fs_err::write(&image_path, &bytes).unwrap();
    let image = fs_err::OpenOptions::new().read(true).write(true).open(&image_path).unwrap();
    let tree = write_tree(&mut &bytes[..], blocks, salt, image.file(), bytes.len() as u64, 2).unwrap();
    let ours_root = hex::encode(tree.root);
    let salt_hex = if salt.is_empty() { "-".to_string() } else { hex::encode(salt) };

    // veritysetup writes its own tree for the same data and salt, without a superblock.
    let data_path = dir.join(format!("data-{blocks}"));
    let hash_path = dir.join(format!("hash-{blocks}"));
    fs_err::write(&data_path, &bytes).unwrap();
    let out = run(&[
        "format",
        "--no-superblock",
        "--format=1",
        "--hash=sha256",
        "--data-block-size=4096",
        "--hash-block-size=4096",
        &format!("--salt={salt_hex}"),
        data_path.to_str().unwrap(),
        hash_path.to_str().unwrap(),
    ]);
    assert_eq!(root_of(&out), ours_root, "{blocks} blocks: root hash");
    let theirs = fs_err::read(&hash_path).unwrap();
    let mut ours = vec![0u8; (tree.geometry.hash_blocks() * BLOCK) as usize];
    image.file().read_exact_at(&mut ours, bytes.len() as u64).unwrap();
    assert_eq!(ours.len(), theirs.len(), "{blocks} blocks: tree size");
    assert!(ours == theirs, "{blocks} blocks: the trees differ");

    // veritysetup verifies our image (data, then our tree at the hash offset) against our root hash.
    let image_str = image_path.to_str().unwrap();
    let verify = |root: &str| {
        Command::new("veritysetup")
            .args([
                "verify",
                "--no-superblock",
                "--format=1",
                "--hash=sha256",
                "--data-block-size=4096",
                "--hash-block-size=4096",
                &format!("--data-blocks={blocks}"),
                &format!("--hash-offset={}", bytes.len()),
                &format!("--salt={salt_hex}"),
                image_str,
                image_str,
                root,
            ])
            .output()
            .unwrap()
    };
    let ok = verify(&ours_root);
    assert!(ok.status.success(), "{blocks} blocks: {}", String::from_utf8_lossy(&ok.stderr));
    // And refuses it once one data byte changed.
    image.file().write_all_at(&[bytes[4096 * (blocks as usize - 1)] ^ 1], 4096 * (blocks - 1)).unwrap();
    let bad = verify(&ours_root);
    assert!(!bad.status.success(), "{blocks} blocks: veritysetup accepted a changed data block");
}

#[test]
fn veritysetup_agrees_on_roots_and_tree_bytes() {
    if !veritysetup() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let salt = hex::decode("5c3b0e7a1d9f42c6b8e0a3f1d2c4b6a8e0f2d4c6b8a0e2f4d6c8b0a2e4f6d8c0").unwrap();
    // One level full (128), two levels with a partial block (129), three levels (16,385).
    for blocks in [2, 128, 129, 1000, 128 * 128 + 1] {
        compare(dir.path(), blocks, &salt);
    }
    compare(dir.path(), 300, b"");
}
