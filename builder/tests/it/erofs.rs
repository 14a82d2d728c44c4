//! Our EROFS images against erofs-utils' `fsck.erofs`, an independent reader: it checks every inode and directory
//! and extracts the tree, which must be the files we put in, with our modes and times. `mkfs.erofs` over the same
//! files extracts to the same tree (its bytes differ: it copies the source's modes and order).

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use cvmforge::format::erofs::{write_image, ImageOptions, VolumeFile};

fn fsck_erofs() -> bool {
    let found = Command::new("fsck.erofs").arg("-V").output().is_ok_and(|o| o.status.success());
    if !found {
        crate::util::skip_test!("`fsck.erofs` is not installed (Debian: erofs-utils)");
    }
    found
}

/// A tree with what a volume may hold: nested directories, an empty file, an executable, files of one block, of a
/// partial block and of several blocks, and a directory large enough to take several directory blocks.
fn sample() -> BTreeMap<String, (Vec<u8>, bool)> {
    let mut files = BTreeMap::new();
    files.insert("weights/terms.tsv".to_string(), (b"the\t0.1\nvm\t3.5\n".to_vec(), false));
    files.insert("weights/empty".to_string(), (Vec::new(), false));
    files.insert("weights/block".to_string(), (vec![0xa5; 4096], false));
    files.insert("model/shard-0.bin".to_string(), ((0..3 * 4096 + 17).map(|i| (i % 253) as u8).collect(), false));
    files.insert("bin/tool".to_string(), (b"\x7fELF".to_vec(), true));
    files.insert("a/b/c/d/deep.txt".to_string(), (b"deep\n".to_vec(), false));
    for i in 0..300 {
        files.insert(format!("many/entry-with-a-longish-name-{i:04}"), (format!("{i}\n").into_bytes(), false));
    }
    files
}

fn build(files: &BTreeMap<String, (Vec<u8>, bool)>, path: &Path) {
    let list: Vec<VolumeFile> = files
        .iter()
        .map(|(p, (c, exec))| VolumeFile { path: p.clone(), size: c.len() as u64, executable: *exec })
        .collect();
    let contents: Vec<&[u8]> = files.values().map(|(c, _)| c.as_slice()).collect();
    let options = ImageOptions { epoch: 1_767_225_600, uuid: *b"cvmforge-volume!", label: "models".into() };
    let mut out = fs_err::File::create(path).unwrap();
    write_image(&list, &options, &mut |i| Ok(Box::new(contents[i])), &mut out).unwrap();
}

#[test]
fn fsck_erofs_checks_and_extracts_our_image() {
    if !fsck_erofs() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let files = sample();
    let image = dir.path().join("volume.erofs");
    build(&files, &image);
    let extracted = dir.path().join("x");
    let out = Command::new("fsck.erofs")
        .arg(format!("--extract={}", extracted.display()))
        .arg("--preserve-perms")
        .arg(&image)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fsck.erofs: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut seen = 0;
    for (path, (content, exec)) in &files {
        let on_disk = extracted.join(path);
        assert_eq!(&fs_err::read(&on_disk).unwrap(), content, "{path}");
        let meta = fs_err::metadata(&on_disk).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, if *exec { 0o555 } else { 0o444 }, "{path}");
        assert_eq!(meta.mtime(), 1_767_225_600, "{path}");
        seen += 1;
    }
    assert_eq!(fs_err::metadata(extracted.join("weights")).unwrap().permissions().mode() & 0o777, 0o555);
    // Nothing else was extracted.
    let count = walk(&extracted);
    assert_eq!((seen, count), (files.len(), files.len()));
}

fn walk(dir: &Path) -> usize {
    fs_err::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                walk(&e.path())
            } else {
                1
            }
        })
        .sum()
}

#[test]
fn fsck_erofs_refuses_a_corrupted_directory_block() {
    if !fsck_erofs() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("volume.erofs");
    build(&sample(), &image);
    // The root directory's first entry's name offset (block 2 after the superblock and the inode table): pointing it
    // past the block is what a corrupted or hostile directory looks like.
    let mut bytes = fs_err::read(&image).unwrap();
    let root_dir_block = u32::from_le_bytes(bytes[4096 + 16..4096 + 20].try_into().unwrap()) as usize;
    bytes[root_dir_block * 4096 + 8..root_dir_block * 4096 + 10].copy_from_slice(&5000u16.to_le_bytes());
    fs_err::write(&image, &bytes).unwrap();
    let out = Command::new("fsck.erofs").arg(&image).output().unwrap();
    assert!(!out.status.success(), "fsck.erofs accepted a corrupted directory");
}

#[test]
fn mkfs_erofs_of_the_same_files_extracts_alike() {
    if !fsck_erofs() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let files = sample();
    let src = dir.path().join("src");
    for (path, (content, _)) in &files {
        let p = src.join(path);
        fs_err::create_dir_all(p.parent().unwrap()).unwrap();
        fs_err::write(&p, content).unwrap();
    }
    let theirs = dir.path().join("theirs.erofs");
    let out = Command::new("mkfs.erofs").arg("--quiet").arg("-T0").arg(&theirs).arg(&src).output().unwrap();
    assert!(out.status.success(), "mkfs.erofs: {}", String::from_utf8_lossy(&out.stderr));
    let ours = dir.path().join("ours.erofs");
    build(&files, &ours);
    let mut trees = Vec::new();
    for (name, image) in [("t", &theirs), ("o", &ours)] {
        let x = dir.path().join(name);
        let out = Command::new("fsck.erofs").arg(format!("--extract={}", x.display())).arg(image).output().unwrap();
        assert!(out.status.success(), "fsck.erofs {name}: {}", String::from_utf8_lossy(&out.stderr));
        let mut contents = BTreeMap::new();
        for path in files.keys() {
            contents.insert(path.clone(), fs_err::read(x.join(path)).unwrap());
        }
        trees.push((walk(&x), contents));
    }
    assert_eq!(trees[0], trees[1]);
}
