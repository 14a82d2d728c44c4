//! dm-verity hash trees, format 1 (what `veritysetup format --no-superblock` writes and the kernel's `verity` target
//! reads): SHA-256, 4 KiB data and hash blocks, the salt hashed before each block.
//!
//! The tree has `levels` levels. Level 0 holds the digest of every data block, 128 digests to a hash block (the last
//! block padded with zeros); level `i + 1` holds the digests of the hash blocks of level `i`; the top level is one
//! block, and the root hash is the digest of that block. On disk the levels go top first: the top level at the hash
//! start, level 0 last (the kernel's `verity_ctr` computes the same positions). With a single data block there are
//! no levels, and the root hash is that block's digest.
//!
//! [`write_tree`] streams: it keeps one partial hash block per level, never the digests of every block, so memory
//! does not grow with the data. The data blocks are hashed on `threads` threads in chunks; each chunk's digests are
//! put back in block order, so the bytes never depend on the thread count.
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

use sha2::{Digest, Sha256};
use thiserror::Error;

/// Data and hash block size.
pub const BLOCK: u64 = 4096;
/// Digest size of SHA-256.
pub const DIGEST: usize = 32;
/// Digests per hash block (4096 / 32).
pub const DIGESTS_PER_BLOCK: u64 = BLOCK / DIGEST as u64;
/// Longest salt the kernel's verity target takes (`MAX_SALT_SIZE` in dm-verity, 256 bytes).
pub const MAX_SALT: usize = 256;
/// Data blocks hashed per chunk (4 MiB): large enough to split between threads, small enough to stay in cache.
const CHUNK_BLOCKS: usize = 1024;

/// Why a hash tree could not be written or checked.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum VerityError {
    /// Reading the data or writing the tree failed.
    #[error("{what}")]
    Io {
        /// What was being read or written.
        what: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The data ended before the declared number of blocks.
    #[error("the data ended at block {at}, but {declared} blocks were declared")]
    ShortData {
        /// Blocks read.
        at: u64,
        /// Blocks declared.
        declared: u64,
    },
    /// No data blocks, or a salt longer than the kernel takes.
    #[error("{0}")]
    Geometry(&'static str),
}

/// Where each level of a tree lies, in hash blocks from the hash start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geometry {
    /// Data blocks covered.
    pub data_blocks: u64,
    /// Hash blocks in each level, level 0 first.
    pub level_blocks: Vec<u64>,
}

impl Geometry {
    /// The tree over `data_blocks` blocks.
    pub fn new(data_blocks: u64) -> Result<Self, VerityError> {
        if data_blocks == 0 {
            return Err(VerityError::Geometry("a dm-verity tree needs at least one data block"));
        }
        let mut level_blocks = Vec::new();
        let mut below = data_blocks;
        // The kernel's rule: add levels while the blocks below do not fit in one hash block's worth of digests.
        while below > 1 {
            let blocks = below.div_ceil(DIGESTS_PER_BLOCK);
            level_blocks.push(blocks);
            below = blocks;
        }
        Ok(Geometry { data_blocks, level_blocks })
    }

    /// Hash blocks in the whole tree.
    pub fn hash_blocks(&self) -> u64 {
        self.level_blocks.iter().sum()
    }

    /// The first hash block of `level`, counted from the hash start (the top level is first).
    pub fn level_start(&self, level: usize) -> u64 {
        self.level_blocks.iter().skip(level + 1).sum()
    }
}

/// The outcome of [`write_tree`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    /// The root hash: what the kernel command line carries.
    pub root: [u8; DIGEST],
    /// The tree's shape.
    pub geometry: Geometry,
}

/// Reads `data_blocks` blocks of 4 KiB from `data`, and writes their hash tree into `out` at byte offset
/// `hash_offset` (for a volume, right after the data). Returns the root hash.
pub fn write_tree(
    data: &mut dyn Read,
    data_blocks: u64,
    salt: &[u8],
    out: &File,
    hash_offset: u64,
    threads: usize,
) -> Result<Tree, VerityError> {
    if salt.len() > MAX_SALT {
        return Err(VerityError::Geometry("a dm-verity salt is at most 256 bytes"));
    }
    let geometry = Geometry::new(data_blocks)?;
    let mut levels = Levels::new(&geometry, salt, out, hash_offset);
    let mut chunk = vec![0u8; CHUNK_BLOCKS * BLOCK as usize];
    let mut done = 0u64;
    let mut root = None;
    while done < data_blocks {
        let blocks = (data_blocks - done).min(CHUNK_BLOCKS as u64) as usize;
        let bytes = chunk.get_mut(..blocks * BLOCK as usize).ok_or(VerityError::Geometry("chunk size"))?;
        read_full(data, bytes, done, data_blocks)?;
        let digests = hash_blocks(bytes, salt, threads);
        if data_blocks == 1 {
            root = digests.first().copied();
        }
        for digest in digests {
            levels.push(0, &digest)?;
        }
        done += blocks as u64;
    }
    let root = match root {
        Some(root) => root,
        None => levels.finish()?,
    };
    Ok(Tree { root, geometry })
}

/// One partial hash block per level; a full block is written at its place and its digest pushed one level up.
struct Levels<'a> {
    geometry: &'a Geometry,
    salt: &'a [u8],
    out: &'a File,
    hash_offset: u64,
    /// The block being filled, and how many blocks of the level were written, per level.
    pending: Vec<(Vec<u8>, u64)>,
}

impl<'a> Levels<'a> {
    fn new(geometry: &'a Geometry, salt: &'a [u8], out: &'a File, hash_offset: u64) -> Self {
        let pending = geometry.level_blocks.iter().map(|_| (Vec::with_capacity(BLOCK as usize), 0)).collect();
        Levels { geometry, salt, out, hash_offset, pending }
    }

    fn push(&mut self, level: usize, digest: &[u8; DIGEST]) -> Result<(), VerityError> {
        let Some((block, _)) = self.pending.get_mut(level) else {
            return Ok(()); // the single-block case: no levels
        };
        block.extend_from_slice(digest);
        // The top level's one block is written by `finish`, which takes the root hash from it.
        if block.len() as u64 == BLOCK && level + 1 < self.pending.len() {
            self.flush(level)?;
        }
        Ok(())
    }

    /// Writes the level's block (zero-padded), and pushes its digest to the level above.
    fn flush(&mut self, level: usize) -> Result<(), VerityError> {
        let start = self.geometry.level_start(level);
        let (block, written) = self.pending.get_mut(level).ok_or(VerityError::Geometry("level"))?;
        block.resize(BLOCK as usize, 0);
        let at = self.hash_offset + (start + *written) * BLOCK;
        self.out
            .write_all_at(block, at)
            .map_err(|source| VerityError::Io { what: format!("cannot write hash block at byte {at}"), source })?;
        let digest = salted(self.salt, block);
        block.clear();
        *written += 1;
        self.push(level + 1, &digest)
    }

    /// Flushes the partial blocks, bottom up, and returns the root hash: the digest of the top level's one block.
    fn finish(mut self) -> Result<[u8; DIGEST], VerityError> {
        let top = self.pending.len().checked_sub(1).ok_or(VerityError::Geometry("no levels"))?;
        for level in 0..top {
            if self.pending.get(level).is_some_and(|(block, _)| !block.is_empty()) {
                self.flush(level)?;
            }
        }
        let (block, _) = self.pending.get_mut(top).ok_or(VerityError::Geometry("level"))?;
        block.resize(BLOCK as usize, 0);
        let root = salted(self.salt, block);
        let at = self.hash_offset;
        self.out
            .write_all_at(block, at)
            .map_err(|source| VerityError::Io { what: format!("cannot write hash block at byte {at}"), source })?;
        Ok(root)
    }
}

/// SHA-256 of the salt followed by the block (format 1).
fn salted(salt: &[u8], block: &[u8]) -> [u8; DIGEST] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(block);
    h.finalize().into()
}

/// The digests of the 4 KiB blocks of `bytes`, in order, computed on up to `threads` threads.
fn hash_blocks(bytes: &[u8], salt: &[u8], threads: usize) -> Vec<[u8; DIGEST]> {
    let blocks: Vec<&[u8]> = bytes.chunks(BLOCK as usize).collect();
    let per_thread = blocks.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = blocks
            .chunks(per_thread)
            .map(|part| scope.spawn(move || part.iter().map(|b| salted(salt, b)).collect::<Vec<_>>()))
            .collect();
        // A hashing thread cannot panic (no indexing, no allocation beyond its output); were it to, its blocks
        // would be missing and the tree wrong, so the join error is not swallowed silently: the digests stop there.
        handles.into_iter().map_while(|h| h.join().ok()).flatten().collect()
    })
}

fn read_full(data: &mut dyn Read, buf: &mut [u8], at_block: u64, declared: u64) -> Result<(), VerityError> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = buf.get_mut(filled..).ok_or(VerityError::Geometry("read"))?;
        match data.read(rest) {
            Ok(0) => return Err(VerityError::ShortData { at: at_block + (filled as u64) / BLOCK, declared }),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => return Err(VerityError::Io { what: "cannot read the volume's data".into(), source }),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree_of(data: &[u8], salt: &[u8], threads: usize) -> (Tree, Vec<u8>) {
        let out = tempfile::tempfile().unwrap();
        let blocks = data.len() as u64 / BLOCK;
        let tree = write_tree(&mut &data[..], blocks, salt, &out, 0, threads).unwrap();
        let mut bytes = vec![0u8; (tree.geometry.hash_blocks() * BLOCK) as usize];
        out.read_exact_at(&mut bytes, 0).unwrap();
        (tree, bytes)
    }

    #[test]
    fn geometry_follows_the_kernel() {
        assert_eq!(Geometry::new(1).unwrap().level_blocks, Vec::<u64>::new());
        assert_eq!(Geometry::new(2).unwrap().level_blocks, vec![1]);
        assert_eq!(Geometry::new(128).unwrap().level_blocks, vec![1]);
        assert_eq!(Geometry::new(129).unwrap().level_blocks, vec![2, 1]);
        assert_eq!(Geometry::new(128 * 128 + 1).unwrap().level_blocks, vec![129, 2, 1]);
        let g = Geometry::new(128 * 128 + 1).unwrap();
        assert_eq!((g.level_start(2), g.level_start(1), g.level_start(0)), (0, 1, 3));
        assert!(Geometry::new(0).is_err());
    }

    #[test]
    fn a_two_level_tree_is_built_by_hand_alike() {
        // 129 blocks: level 0 has two hash blocks (128 digests, then 1), level 1 one block of two digests.
        let data: Vec<u8> = (0..129 * BLOCK as usize).map(|i| (i / 4096) as u8).collect();
        let salt = b"salt";
        let (tree, bytes) = tree_of(&data, salt, 3);
        let leaf: Vec<[u8; 32]> = data.chunks(4096).map(|b| salted(salt, b)).collect();
        let l0a = leaf[..128].concat();
        let mut l0b = leaf[128..].concat();
        l0b.resize(4096, 0);
        let mut top = [salted(salt, &l0a), salted(salt, &l0b)].concat();
        top.resize(4096, 0);
        assert_eq!(&bytes[..4096], &top[..]);
        assert_eq!(&bytes[4096..8192], &l0a[..]);
        assert_eq!(&bytes[8192..], &l0b[..]);
        assert_eq!(tree.root, salted(salt, &top));
    }

    #[test]
    fn a_full_top_block_is_the_root() {
        // 128 blocks: one level, its one block full of digests.
        let data: Vec<u8> = (0..128 * BLOCK as usize).map(|i| (i / 4096) as u8).collect();
        let (tree, bytes) = tree_of(&data, b"", 2);
        let top: Vec<u8> = data.chunks(4096).flat_map(|b| salted(b"", b)).collect();
        assert_eq!(bytes, top);
        assert_eq!(tree.root, salted(b"", &top));
    }

    #[test]
    fn the_thread_count_never_changes_the_bytes() {
        let data: Vec<u8> = (0..3000 * BLOCK as usize).map(|i| (i * 7 / 4096 + i) as u8).collect();
        let one = tree_of(&data, b"s", 1);
        for threads in [2, 3, 8] {
            assert_eq!(tree_of(&data, b"s", threads), one, "{threads} threads");
        }
    }

    #[test]
    fn one_block_has_no_levels_and_its_digest_is_the_root() {
        let data = vec![7u8; 4096];
        let (tree, bytes) = tree_of(&data, b"", 2);
        assert!(bytes.is_empty());
        assert_eq!(tree.root, salted(b"", &data));
    }

    #[test]
    fn rejects_short_data_and_long_salts() {
        let out = tempfile::tempfile().unwrap();
        let err = write_tree(&mut &[0u8; 4096][..], 2, b"", &out, 0, 1).unwrap_err();
        assert_eq!(err.to_string(), "the data ended at block 1, but 2 blocks were declared");
        let err = write_tree(&mut &[0u8; 4096][..], 1, &[0; 257], &out, 0, 1).unwrap_err();
        assert!(err.to_string().contains("at most 256 bytes"));
    }
}
