//! A writer of deterministic, uncompressed EROFS images: the read-only file system of a data volume.
//!
//! Why our own writer and not `mkfs.erofs`: the image must depend only on the recipe and the file bytes. `mkfs.erofs`
//! copies each source file's mode (which the umask of whoever checked out the tree decides), owner and times, and its
//! inode order follows the source directory; here every one of those is fixed by this module. What `mkfs.erofs` can
//! read, the kernel mounts; our images are checked by `fsck.erofs` (erofs-utils) in the tests.
//!
//! The layout, in 4 KiB blocks (`EROFS_BLKSIZ`, the only block size Linux 6.1 mounts):
//! - block 0: the superblock at byte 1024; its time is the recipe's epoch, its UUID and label are given;
//! - from block 1 (`meta_blkaddr`): one 64-byte extended inode per directory and file, root first, then in
//!   depth-first order of sorted names (a node id counts 32 bytes, so inode `i` has node id `2 i`);
//! - the directories' blocks, in inode order: entries sorted by name (`.` and `..` included), as many to a block as
//!   fit, each block's names after its 12-byte entries;
//! - the files' data, in inode order, each from a block boundary (`EROFS_INODE_FLAT_PLAIN`), zero-padded.
//!
//! Files are `0444` (`0555` when the source is executable by its owner), directories `0555`, all owned by root,
//! every time the epoch. No extended attributes, no compression, no inline tails, no symlinks or special files.
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};
use thiserror::Error;

/// The block size.
pub const BLOCK: u64 = 4096;
/// `EROFS_SUPER_MAGIC_V1`.
pub const MAGIC: u32 = 0xE0F5_E1E2;
/// Where the superblock starts.
pub const SUPERBLOCK_OFFSET: usize = 1024;
/// Longest name of a directory entry (`EROFS_NAME_LEN`).
pub const MAX_NAME: usize = 255;
/// Size of an extended inode.
const INODE_SIZE: u64 = 64;
/// Size of a directory entry (`struct erofs_dirent`).
const DIRENT_SIZE: usize = 12;
/// `NULL_ADDR`: the block address of an empty file.
const NULL_ADDR: u32 = u32::MAX;
/// `EROFS_FT_REG_FILE`, `EROFS_FT_DIR`.
const FT_REG_FILE: u8 = 1;
const FT_DIR: u8 = 2;
const S_IFREG: u16 = 0o100000;
const S_IFDIR: u16 = 0o040000;

/// Why an image could not be written.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ErofsError {
    /// A path is not a clean relative path, or a name is too long.
    #[error("volume path `{path}`: {reason}")]
    BadPath {
        /// The path.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A path is both a file and a directory, or given twice.
    #[error("volume path `{path}` is given twice, or as a file and as a directory")]
    Clash {
        /// The path.
        path: String,
    },
    /// The image would need more blocks than EROFS addresses.
    #[error("the volume needs {blocks} blocks of 4 KiB; EROFS addresses at most 2^32")]
    TooLarge {
        /// Blocks needed.
        blocks: u64,
    },
    /// A file's content did not have the size it had when the volume was planned: it changed while it was read.
    #[error("volume file `{path}` changed while it was read: it was {planned} bytes, then {read}")]
    Changed {
        /// The path in the volume.
        path: String,
        /// Its size when planned.
        planned: u64,
        /// The bytes it gave (at most one more than planned).
        read: u64,
    },
    /// Reading a file or writing the image failed.
    #[error("{what}")]
    Io {
        /// What was being read or written.
        what: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// A file to put in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeFile {
    /// Its path in the volume: relative, `/`-separated, no `.` or `..`.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Whether it is marked executable (mode 0555, else 0444).
    pub executable: bool,
}

/// What a written file held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    /// Its path in the volume.
    pub path: String,
    /// Its size.
    pub size: u64,
    /// The SHA-256 of the bytes written.
    pub sha256: [u8; 32],
}

/// The image's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageOptions {
    /// Every inode's time and the superblock's build time.
    pub epoch: u64,
    /// The file system UUID.
    pub uuid: [u8; 16],
    /// The label (at most 16 bytes are kept).
    pub label: String,
}

/// The result of [`write_image`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Blocks of 4 KiB written.
    pub blocks: u64,
    /// Every file, in path order, with its digest.
    pub files: Vec<WrittenFile>,
}

/// A directory or file of the tree being laid out.
#[derive(Debug)]
enum Node {
    Dir(BTreeMap<String, Node>),
    /// Index into the caller's file list.
    File(usize),
}

/// One inode in layout order.
struct Slot {
    /// Index of the parent's slot (the root is its own parent).
    parent: usize,
    kind: SlotKind,
}

enum SlotKind {
    /// Sorted (name, child slot) pairs.
    Dir(Vec<(String, usize)>),
    File(usize),
}

/// Writes an EROFS image of `files` to `out`. `open` gives the content of the file at an index of `files`; each must
/// give exactly its planned size (one byte more or less is [`ErofsError::Changed`]).
pub fn write_image<'a>(
    files: &[VolumeFile],
    options: &ImageOptions,
    open: &mut dyn FnMut(usize) -> io::Result<Box<dyn Read + 'a>>,
    out: &mut dyn Write,
) -> Result<Image, ErofsError> {
    let root = tree(files)?;
    let mut slots = Vec::new();
    flatten(&root, 0, &mut slots);
    let layout = Layout::plan(&slots, files)?;
    let mut w = Counted { out, written: 0 };
    w.put(&superblock(options, slots.len() as u64, layout.total_blocks))?;
    let mut table = Vec::with_capacity(slots.len() * INODE_SIZE as usize);
    for (i, slot) in slots.iter().enumerate() {
        table.extend_from_slice(&inode(i, slot, &slots, &layout, files, options.epoch));
    }
    w.put(&table)?;
    w.pad()?;
    for (i, slot) in slots.iter().enumerate() {
        if let SlotKind::Dir(children) = &slot.kind {
            w.put(&dir_bytes(i, slot.parent, children, &slots))?;
            w.pad()?;
        }
    }
    let mut written = BTreeMap::new();
    for slot in &slots {
        if let SlotKind::File(index) = slot.kind {
            let file = files.get(index).ok_or(ErofsError::Clash { path: String::new() })?;
            let sha256 = copy_file(file, open(index), &mut w)?;
            w.pad()?;
            written.insert(file.path.clone(), WrittenFile { path: file.path.clone(), size: file.size, sha256 });
        }
    }
    if w.written != layout.total_blocks * BLOCK {
        return Err(ErofsError::Io {
            what: "the image".into(),
            source: io::Error::other(format!("wrote {} bytes, planned {}", w.written, layout.total_blocks * BLOCK)),
        });
    }
    w.out.flush().map_err(|source| ErofsError::Io { what: "cannot write the image".into(), source })?;
    Ok(Image { blocks: layout.total_blocks, files: written.into_values().collect() })
}

/// The directory tree of `files`, checking every path.
fn tree(files: &[VolumeFile]) -> Result<Node, ErofsError> {
    let mut root = BTreeMap::new();
    for (index, file) in files.iter().enumerate() {
        let bad = |reason| ErofsError::BadPath { path: file.path.clone(), reason };
        let parts: Vec<&str> = file.path.split('/').collect();
        if parts.iter().any(|p| p.is_empty() || *p == "." || *p == "..") {
            return Err(bad("not a clean relative path (empty, `.` or `..` components, or a leading `/`)"));
        }
        if parts.iter().any(|p| p.len() > MAX_NAME) {
            return Err(bad("a name is longer than 255 bytes"));
        }
        if parts.iter().any(|p| p.bytes().any(|b| b == 0)) {
            return Err(bad("a name holds a NUL byte"));
        }
        let clash = || ErofsError::Clash { path: file.path.clone() };
        let (last, dirs) = parts.split_last().ok_or_else(|| bad("empty path"))?;
        let mut here = &mut root;
        for dir in dirs {
            let entry = here.entry((*dir).to_string()).or_insert_with(|| Node::Dir(BTreeMap::new()));
            here = match entry {
                Node::Dir(children) => children,
                Node::File(_) => return Err(clash()),
            };
        }
        if here.insert((*last).to_string(), Node::File(index)).is_some() {
            return Err(clash());
        }
    }
    Ok(Node::Dir(root))
}

/// Depth-first, sorted: the root is slot 0, and a directory's children follow it, each with its own subtree.
fn flatten(node: &Node, parent: usize, slots: &mut Vec<Slot>) -> usize {
    let me = slots.len();
    match node {
        Node::File(index) => slots.push(Slot { parent, kind: SlotKind::File(*index) }),
        Node::Dir(children) => {
            slots.push(Slot { parent, kind: SlotKind::Dir(Vec::new()) });
            let mut named = Vec::with_capacity(children.len());
            for (name, child) in children {
                named.push((name.clone(), flatten(child, me, slots)));
            }
            if let Some(Slot { kind: SlotKind::Dir(list), .. }) = slots.get_mut(me) {
                *list = named;
            }
        }
    }
    me
}

/// Block addresses and sizes of every slot.
struct Layout {
    /// First block and byte size of each slot's data.
    data: Vec<(u32, u64)>,
    total_blocks: u64,
}

impl Layout {
    fn plan(slots: &[Slot], files: &[VolumeFile]) -> Result<Self, ErofsError> {
        let table_blocks = (slots.len() as u64 * INODE_SIZE).div_ceil(BLOCK);
        let mut next = 1 + table_blocks;
        let mut data = vec![(0u32, 0u64); slots.len()];
        let place = |size: u64, next: &mut u64| -> Result<(u32, u64), ErofsError> {
            let blocks = size.div_ceil(BLOCK);
            let start = if blocks == 0 { NULL_ADDR } else { block_addr(*next)? };
            *next += blocks;
            Ok((start, size))
        };
        for (i, slot) in slots.iter().enumerate() {
            if let SlotKind::Dir(children) = &slot.kind {
                let size = dir_size(children);
                if let Some(d) = data.get_mut(i) {
                    *d = place(size, &mut next)?;
                }
            }
        }
        for (i, slot) in slots.iter().enumerate() {
            if let SlotKind::File(index) = slot.kind {
                let size = files.get(index).map_or(0, |f| f.size);
                if let Some(d) = data.get_mut(i) {
                    *d = place(size, &mut next)?;
                }
            }
        }
        block_addr(next)?;
        Ok(Layout { data, total_blocks: next })
    }
}

fn block_addr(block: u64) -> Result<u32, ErofsError> {
    u32::try_from(block).map_err(|_| ErofsError::TooLarge { blocks: block })
}

/// The entries of a directory in name order, `.` and `..` included: (name, slot).
fn entries(me: usize, parent: usize, children: &[(String, usize)]) -> Vec<(&str, usize)> {
    let mut all: Vec<(&str, usize)> = vec![(".", me), ("..", parent)];
    all.extend(children.iter().map(|(n, s)| (n.as_str(), *s)));
    all.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    all
}

/// Splits sorted entries into blocks: as many as fit (12 bytes each plus the name).
fn blocks_of<'a>(all: &[(&'a str, usize)]) -> Vec<Vec<(&'a str, usize)>> {
    let mut blocks = vec![Vec::new()];
    let mut used = 0;
    for &(name, slot) in all {
        let need = DIRENT_SIZE + name.len();
        if used + need > BLOCK as usize {
            blocks.push(Vec::new());
            used = 0;
        }
        if let Some(last) = blocks.last_mut() {
            last.push((name, slot));
        }
        used += need;
    }
    blocks
}

/// A directory's size: full blocks, and what the last one uses.
fn dir_size(children: &[(String, usize)]) -> u64 {
    let all = entries(0, 0, children);
    let blocks = blocks_of(&all);
    let last: usize = blocks.last().map_or(0, |b| b.iter().map(|(n, _)| DIRENT_SIZE + n.len()).sum());
    (blocks.len() as u64 - 1) * BLOCK + last as u64
}

/// A directory's data: its blocks, the last one cut at its used size.
fn dir_bytes(me: usize, parent: usize, children: &[(String, usize)], slots: &[Slot]) -> Vec<u8> {
    let all = entries(me, parent, children);
    let mut out = Vec::new();
    let blocks = blocks_of(&all);
    let count = blocks.len();
    for (b, block) in blocks.into_iter().enumerate() {
        let mut bytes = Vec::with_capacity(BLOCK as usize);
        let mut nameoff = DIRENT_SIZE * block.len();
        for &(name, slot) in &block {
            let nid = 2 * slot as u64;
            bytes.extend_from_slice(&nid.to_le_bytes());
            bytes.extend_from_slice(&(nameoff as u16).to_le_bytes());
            let file_type = match slots.get(slot).map(|s| &s.kind) {
                Some(SlotKind::Dir(_)) => FT_DIR,
                _ => FT_REG_FILE,
            };
            bytes.extend_from_slice(&[file_type, 0]);
            nameoff += name.len();
        }
        for &(name, _) in &block {
            bytes.extend_from_slice(name.as_bytes());
        }
        if b + 1 < count {
            bytes.resize(BLOCK as usize, 0);
        }
        out.extend_from_slice(&bytes);
    }
    out
}

fn superblock(options: &ImageOptions, inodes: u64, blocks: u64) -> Vec<u8> {
    let mut block = vec![0u8; SUPERBLOCK_OFFSET];
    let mut sb = Vec::with_capacity(128);
    sb.extend_from_slice(&MAGIC.to_le_bytes());
    sb.extend_from_slice(&0u32.to_le_bytes()); // checksum: EROFS_FEATURE_COMPAT_SB_CHKSUM is not set
    sb.extend_from_slice(&0u32.to_le_bytes()); // feature_compat
    sb.push(12); // blkszbits
    sb.push(0); // sb_extslots
    sb.extend_from_slice(&0u16.to_le_bytes()); // root_nid
    sb.extend_from_slice(&inodes.to_le_bytes());
    sb.extend_from_slice(&options.epoch.to_le_bytes());
    sb.extend_from_slice(&0u32.to_le_bytes()); // build_time_nsec
    sb.extend_from_slice(&(blocks as u32).to_le_bytes());
    sb.extend_from_slice(&1u32.to_le_bytes()); // meta_blkaddr
    sb.extend_from_slice(&0u32.to_le_bytes()); // xattr_blkaddr
    sb.extend_from_slice(&options.uuid);
    let mut label = [0u8; 16];
    for (dst, src) in label.iter_mut().zip(options.label.bytes()) {
        *dst = src;
    }
    sb.extend_from_slice(&label);
    sb.resize(128, 0); // feature_incompat 0, no devices, no compression, reserved
    block.extend_from_slice(&sb);
    block.resize(BLOCK as usize, 0);
    block
}

fn inode(i: usize, slot: &Slot, slots: &[Slot], layout: &Layout, files: &[VolumeFile], epoch: u64) -> [u8; 64] {
    let (start, size) = layout.data.get(i).copied().unwrap_or((NULL_ADDR, 0));
    let (mode, nlink) = match &slot.kind {
        SlotKind::Dir(children) => {
            let subdirs = children
                .iter()
                .filter(|(_, s)| matches!(slots.get(*s), Some(Slot { kind: SlotKind::Dir(_), .. })))
                .count();
            (S_IFDIR | 0o555, 2 + subdirs as u32)
        }
        SlotKind::File(index) => {
            let exec = files.get(*index).is_some_and(|f| f.executable);
            (S_IFREG | if exec { 0o555 } else { 0o444 }, 1)
        }
    };
    let mut b = [0u8; 64];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        if let Some(dst) = b.get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
        at += bytes.len();
    };
    put(&1u16.to_le_bytes()); // i_format: extended inode, EROFS_INODE_FLAT_PLAIN
    put(&0u16.to_le_bytes()); // i_xattr_icount
    put(&mode.to_le_bytes());
    put(&0u16.to_le_bytes()); // i_reserved
    put(&size.to_le_bytes());
    put(&start.to_le_bytes()); // i_u.raw_blkaddr
    put(&(i as u32 + 1).to_le_bytes()); // i_ino
    put(&0u32.to_le_bytes()); // i_uid
    put(&0u32.to_le_bytes()); // i_gid
    put(&epoch.to_le_bytes()); // i_mtime
    put(&0u32.to_le_bytes()); // i_mtime_nsec
    put(&nlink.to_le_bytes());
    b
}

/// Copies exactly `file.size` bytes and hashes them; a file that gives more or fewer changed since it was planned.
fn copy_file<'a>(
    file: &VolumeFile,
    opened: io::Result<Box<dyn Read + 'a>>,
    w: &mut Counted<'_>,
) -> Result<[u8; 32], ErofsError> {
    let io_err = |source| ErofsError::Io { what: format!("cannot read volume file `{}`", file.path), source };
    let mut reader = opened.map_err(io_err)?.take(file.size.saturating_add(1));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut read = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        };
        read += n as u64;
        if read > file.size {
            return Err(ErofsError::Changed { path: file.path.clone(), planned: file.size, read });
        }
        let chunk = buf.get(..n).unwrap_or_default();
        hasher.update(chunk);
        w.put(chunk)?;
    }
    if read != file.size {
        return Err(ErofsError::Changed { path: file.path.clone(), planned: file.size, read });
    }
    Ok(hasher.finalize().into())
}

/// The output with a byte count, for block padding.
struct Counted<'a> {
    out: &'a mut dyn Write,
    written: u64,
}

impl Counted<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), ErofsError> {
        self.out.write_all(bytes).map_err(|source| ErofsError::Io { what: "cannot write the image".into(), source })?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> Result<(), ErofsError> {
        let rest = (BLOCK - self.written % BLOCK) % BLOCK;
        self.put(&vec![0u8; rest as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(files: &[(&str, &[u8])]) -> Result<(Image, Vec<u8>), ErofsError> {
        let list: Vec<VolumeFile> = files
            .iter()
            .map(|(p, c)| VolumeFile { path: (*p).to_string(), size: c.len() as u64, executable: false })
            .collect();
        let options = ImageOptions { epoch: 1_767_225_600, uuid: [7; 16], label: "models".into() };
        let mut out = Vec::new();
        let img = write_image(&list, &options, &mut |i| Ok(Box::new(files[i].1)), &mut out)?;
        Ok((img, out))
    }

    #[test]
    fn lays_out_superblock_inodes_directories_and_data() {
        let (img, bytes) = image(&[("b/w.bin", b"weights"), ("a.txt", b"hello")]).unwrap();
        assert_eq!(bytes.len() as u64, img.blocks * BLOCK);
        // superblock, inode table, two directories, two files
        assert_eq!(img.blocks, 6);
        assert_eq!(&bytes[1024..1028], &MAGIC.to_le_bytes());
        assert_eq!(bytes[1024 + 12], 12);
        // Root inode at block 1: a directory, 0555, with `.`, `..`, `a.txt`, `b`.
        let root = &bytes[4096..4160];
        assert_eq!(u16::from_le_bytes([root[4], root[5]]), S_IFDIR | 0o555);
        assert_eq!(u64::from_le_bytes(root[8..16].try_into().unwrap()), 4 * 12 + 1 + 2 + 5 + 1);
        assert_eq!(u32::from_le_bytes(root[44..48].try_into().unwrap()), 3); // one subdirectory
        let dir_block = u32::from_le_bytes(root[16..20].try_into().unwrap()) as usize;
        let dir = &bytes[dir_block * 4096..];
        assert_eq!(&dir[48..57], b"...a.txtb");
        // The files' data, in depth-first order: a.txt (slot 1), then b/w.bin (slot 3).
        assert_eq!(&bytes[4 * 4096..4 * 4096 + 5], b"hello");
        assert_eq!(&bytes[5 * 4096..5 * 4096 + 7], b"weights");
        assert_eq!(img.files[0].sha256, <[u8; 32]>::from(Sha256::digest(b"hello")));
    }

    #[test]
    fn the_order_of_the_list_does_not_change_the_bytes() {
        let a = image(&[("x/1", b"1"), ("x/2", b"22"), ("y", b"")]).unwrap();
        let b = image(&[("y", b""), ("x/2", b"22"), ("x/1", b"1")]).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn large_directories_span_blocks() {
        let names: Vec<String> = (0..400).map(|i| format!("file-with-a-long-name-{i:04}")).collect();
        let files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
        let (img, bytes) = image(&files).unwrap();
        let root = &bytes[4096..4160];
        let size = u64::from_le_bytes(root[8..16].try_into().unwrap());
        assert!(size > 2 * BLOCK, "{size}");
        // Every block starts with its entries: the first nameoff is a multiple of 12 inside the block.
        let first = u32::from_le_bytes(root[16..20].try_into().unwrap()) as usize;
        for b in 0..size.div_ceil(BLOCK) as usize {
            let block = &bytes[(first + b) * 4096..];
            let nameoff = u16::from_le_bytes([block[8], block[9]]) as usize;
            assert_eq!(nameoff % 12, 0);
            assert!(nameoff > 0 && nameoff < 4096);
        }
        assert_eq!(img.files.len(), 400);
    }

    #[test]
    fn rejects_bad_paths_clashes_and_files_that_change() {
        for (path, needle) in [("", "clean"), ("/abs", "clean"), ("a/../b", "clean"), ("a//b", "clean")] {
            let err = image(&[(path, b"x")]).unwrap_err().to_string();
            assert!(err.contains(needle), "{path}: {err}");
        }
        assert!(image(&[(&"n".repeat(256), b"x")]).unwrap_err().to_string().contains("longer than 255"));
        assert!(matches!(image(&[("a", b"x"), ("a/b", b"y")]).unwrap_err(), ErofsError::Clash { .. }));
        assert!(matches!(image(&[("a/b", b"x"), ("a", b"y")]).unwrap_err(), ErofsError::Clash { .. }));
        let list = [VolumeFile { path: "w".into(), size: 3, executable: false }];
        let options = ImageOptions { epoch: 0, uuid: [0; 16], label: String::new() };
        let err = write_image(&list, &options, &mut |_| Ok(Box::new(&b"four"[..])), &mut Vec::new()).unwrap_err();
        assert_eq!(err.to_string(), "volume file `w` changed while it was read: it was 3 bytes, then 4");
        let err = write_image(&list, &options, &mut |_| Ok(Box::new(&b"tw"[..])), &mut Vec::new()).unwrap_err();
        assert_eq!(err.to_string(), "volume file `w` changed while it was read: it was 3 bytes, then 2");
    }
}
