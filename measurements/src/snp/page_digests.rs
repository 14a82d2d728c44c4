//! The contents digest of every 4 KiB page of an image (SHA-384 of each page), shared out between threads.
//!
//! Spec: `docs/specs/snp-launch-digest.md`, "SNP page-update chain (GCTX)": a NORMAL page update carries the
//! SHA-384 of the page. The pages are independent of each other and of every other launch input; only the chain
//! that consumes them is sequential. So the digests of a 4 MiB firmware (about 7 ms of SHA-384) can be computed by
//! whichever threads are idle, for example the thread that has just finished hashing the kernel.
//!
//! Where the CPU has AVX-512, eight pages are hashed at once (`sha384_x8`), about three times faster than one at a
//! time; elsewhere `sha2` hashes them one by one. Both give the same digests.
//!
//! The pool hands out fixed chunks of pages by index and [`PageDigestPool::collect`] puts them back in index
//! order, so the result does not depend on how many threads helped or in which order they ran.
//!
//! ```
//! use cvmforge_measure::snp::gctx::Sha384;
//! use cvmforge_measure::snp::page_digests::PageDigestPool;
//!
//! let image = vec![7u8; 3 * 4096];
//! let pool = PageDigestPool::new(&image);
//! let shares = std::thread::scope(|s| {
//!     let helper = s.spawn(|| pool.help());
//!     vec![pool.help(), helper.join().unwrap()]
//! });
//! let digests = pool.collect(shares);
//! assert_eq!(digests, vec![Sha384::of(&[7u8; 4096]); 3]);
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::snp::gctx::{Sha384, PAGE_SIZE};

#[cfg(target_arch = "x86_64")]
mod sha384_x8;

/// Pages hashed together by the vector code.
const GROUP_PAGES: usize = 8;

/// Pages handed out at a time: 32 pages (128 KiB) keep a 4 MiB image in 32 chunks, fine enough to balance two to
/// eight threads, coarse enough that the shared counter is touched rarely.
const CHUNK_PAGES: usize = 32;

/// An image whose page digests are being computed by any number of threads.
#[derive(Debug)]
pub struct PageDigestPool<'a> {
    data: &'a [u8],
    /// Index of the next chunk nobody has claimed yet.
    next_chunk: AtomicUsize,
}

/// The chunks one thread hashed: `(chunk index, digests of its pages)`.
#[derive(Debug, Default)]
pub struct PageDigestShare {
    chunks: Vec<(usize, Vec<Sha384>)>,
}

impl<'a> PageDigestPool<'a> {
    /// A pool over `data`; a last partial page is hashed as it is (the chain refuses unaligned regions anyway).
    pub fn new(data: &'a [u8]) -> Self {
        PageDigestPool { data, next_chunk: AtomicUsize::new(0) }
    }

    /// Hashes unclaimed chunks until none is left, and returns what this caller hashed.
    pub fn help(&self) -> PageDigestShare {
        let mut share = PageDigestShare::default();
        loop {
            let index = self.next_chunk.fetch_add(1, Ordering::Relaxed);
            let Some(chunk) = self.chunk(index) else {
                return share;
            };
            share.chunks.push((index, hash_pages(chunk)));
        }
    }

    /// The bytes of chunk `index`, or `None` past the end.
    fn chunk(&self, index: usize) -> Option<&'a [u8]> {
        const CHUNK_BYTES: usize = CHUNK_PAGES * PAGE_SIZE;
        let start = index.checked_mul(CHUNK_BYTES).filter(|&start| start < self.data.len())?;
        self.data.get(start..self.data.len().min(start.saturating_add(CHUNK_BYTES)))
    }

    /// The digest of every page in order, from the shares of all helpers. Hashes whatever no helper did, so a
    /// missing share costs time, never correctness.
    pub fn collect(&self, shares: impl IntoIterator<Item = PageDigestShare>) -> Vec<Sha384> {
        let mut chunks: Vec<(usize, Vec<Sha384>)> = shares.into_iter().flat_map(|s| s.chunks).collect();
        chunks.extend(self.help().chunks);
        chunks.sort_unstable_by_key(|(index, _)| *index);
        chunks.into_iter().flat_map(|(_, digests)| digests).collect()
    }
}

/// SHA-384 of each 4 KiB page of `chunk` (a last partial page as it is), eight at a time where the CPU allows.
fn hash_pages(chunk: &[u8]) -> Vec<Sha384> {
    let mut digests = Vec::with_capacity(chunk.len().div_ceil(PAGE_SIZE));
    let mut groups = chunk.chunks_exact(GROUP_PAGES * PAGE_SIZE);
    for group in &mut groups {
        match group_digests(group) {
            Some(fast) => digests.extend(fast),
            None => digests.extend(group.chunks(PAGE_SIZE).map(Sha384::of)),
        }
    }
    digests.extend(groups.remainder().chunks(PAGE_SIZE).map(Sha384::of));
    digests
}

#[cfg(target_arch = "x86_64")]
fn group_digests(group: &[u8]) -> Option<[Sha384; GROUP_PAGES]> {
    sha384_x8::digests(group.try_into().ok()?)
}

#[cfg(not(target_arch = "x86_64"))]
fn group_digests(_group: &[u8]) -> Option<[Sha384; GROUP_PAGES]> {
    None
}

/// SHA-384 of each 4 KiB page of `data`, using every available core for large images.
pub fn page_digests(data: &[u8]) -> Vec<Sha384> {
    const PARALLEL_FROM: usize = 1 << 20;
    let pool = PageDigestPool::new(data);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    if data.len() < PARALLEL_FROM || threads < 2 {
        return pool.collect([]);
    }
    let shares = std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads).map(|_| s.spawn(|| pool.help())).collect();
        let mine = pool.help();
        let mut shares: Vec<PageDigestShare> =
            helpers.into_iter().map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect();
        shares.push(mine);
        shares
    });
    pool.collect(shares)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
    }

    fn serial(data: &[u8]) -> Vec<Sha384> {
        data.chunks(PAGE_SIZE).map(Sha384::of).collect()
    }

    #[test]
    fn parallel_equals_serial() {
        let data = pattern((3 << 20) + 8192);
        assert_eq!(page_digests(&data), serial(&data));
        assert_eq!(page_digests(&data[..8192]), serial(&data[..8192]));
    }

    #[test]
    fn any_split_between_helpers_gives_the_same_digests() {
        let data = pattern(CHUNK_PAGES * PAGE_SIZE * 5 + 3 * PAGE_SIZE);
        let pool = PageDigestPool::new(&data);
        // One helper takes two chunks; the rest is left to collect(), and the shares arrive out of order.
        let first = PageDigestShare { chunks: vec![pool_chunk(&pool), pool_chunk(&pool)] };
        let second = PageDigestShare { chunks: vec![pool_chunk(&pool)] };
        assert_eq!(pool.collect([second, first]), serial(&data));
    }

    /// Claims and hashes exactly one chunk.
    fn pool_chunk(pool: &PageDigestPool<'_>) -> (usize, Vec<Sha384>) {
        let index = pool.next_chunk.fetch_add(1, Ordering::Relaxed);
        let chunk = pool.chunk(index).unwrap_or_default();
        (index, serial(chunk))
    }

    #[test]
    fn empty_and_partial_images() {
        assert!(page_digests(&[]).is_empty());
        assert_eq!(page_digests(&[1, 2, 3]), vec![Sha384::of(&[1, 2, 3])]);
    }
}
