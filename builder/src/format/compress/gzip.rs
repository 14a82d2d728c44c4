//! Parallel, streaming gzip (RFC 1952) whose bytes do not depend on the thread count.
//!
//! The scheme is pigz's: the input is cut into fixed [`BLOCK_SIZE`] blocks, counted from the start of the stream
//! (never from the sizes of the caller's writes). Each block is compressed on its own as raw deflate (RFC 1951) by a
//! fresh zlib-rs stream primed with the previous [`DICTIONARY_SIZE`] bytes of input as preset dictionary, so matches
//! may still reach back across the block boundary. A non-final block ends with a sync flush (an empty stored block,
//! so the next block starts on a byte boundary); the final block ends with `Z_FINISH`. The pieces are written in
//! input order, between a fixed header (MTIME 0, no name, OS 3) and the CRC-32 / ISIZE trailer.
//!
//! Every block's bytes are a function of (level, dictionary, block, is-final) only, so any number of worker threads
//! — or none — yields the same stream. One content-based choice is made per block, and it too depends only on
//! those bytes: a block is stored (RFC 1951 section 3.2.4) instead of deflated when deflate would be larger, or
//! when a cheap integer-only test says so in advance (`looks_incompressible`: a flat byte histogram and almost no
//! repeats of 8 bytes or more). Random data then costs a histogram and a hash scan instead of a level-6 search, for
//! at most a fraction of a percent of size.
//!
//! Memory is bounded: at most `2 × threads` blocks are in flight (input, dictionary and output each), plus one
//! zlib-rs state per worker; the whole input is never held.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, CompressError, FlushCompress, Status};

/// Input block size (the same as pigz's default `-b 128`).
pub const BLOCK_SIZE: usize = 128 * 1024;
/// Preset dictionary: the deflate window, 32 KiB (RFC 1951 section 2.2).
pub const DICTIONARY_SIZE: usize = 32 * 1024;
/// The OS byte of the header: always 3 ("Unix", RFC 1952 section 2.3.1, what `gzip -n` writes on Linux), whatever
/// the build host.
pub const OS_BYTE: u8 = 3;
/// Largest thread count honoured; more threads only cost memory (each holds two in-flight blocks).
pub const MAX_THREADS: usize = 64;
/// Largest payload of one stored deflate block (RFC 1951 section 3.2.4: LEN is 16 bits).
const MAX_STORED: usize = 0xffff;

/// gzip header: ID1 ID2, CM = 8 (deflate), FLG = 0 (no name, no comment, no extra, no header CRC), MTIME = 0,
/// XFL = 0, OS = 3 (RFC 1952 section 2.3).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, OS_BYTE];

/// The streaming parallel gzip encoder behind [`super::Encoder`].
pub(crate) struct GzipEncoder<W: Write> {
    out: W,
    level: u32,
    /// `[dictionary | block]`: the last (up to) 32 KiB of the preceding input, then the block being filled.
    current: Vec<u8>,
    /// Length of the dictionary prefix of `current`.
    dict_len: usize,
    crc: crc32fast::Hasher,
    /// Total input length; the trailer keeps it modulo 2^32 (RFC 1952 ISIZE).
    total_in: u64,
    engine: Engine,
    /// Set once the output writer or a worker has failed; the stream is then unusable.
    failed: bool,
}

/// Where blocks are compressed: on the caller's thread, or on a pool of workers.
enum Engine {
    Inline,
    Pool(Pool),
}

/// One block for a worker.
struct Job {
    /// `[dictionary | block]`.
    data: Vec<u8>,
    dict_len: usize,
    last: bool,
    reply: SyncSender<Result<Vec<u8>, CompressError>>,
}

/// Worker threads and the in-order queue of their pending results.
struct Pool {
    jobs: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
    pending: VecDeque<Receiver<Result<Vec<u8>, CompressError>>>,
    max_in_flight: usize,
}

impl<W: Write> GzipEncoder<W> {
    /// Writes the header and starts `threads` workers (none when `threads` <= 1).
    pub(crate) fn new(level: u32, threads: usize, mut out: W) -> io::Result<Self> {
        if !(1..=9).contains(&level) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("gzip level {level} is out of range: expected 1-9"),
            ));
        }
        let threads = threads.clamp(1, MAX_THREADS);
        let engine = if threads == 1 { Engine::Inline } else { Engine::Pool(Pool::start(level, threads)?) };
        out.write_all(&HEADER)?;
        Ok(GzipEncoder {
            out,
            level,
            current: Vec::with_capacity(DICTIONARY_SIZE + BLOCK_SIZE),
            dict_len: 0,
            crc: crc32fast::Hasher::new(),
            total_in: 0,
            engine,
            failed: false,
        })
    }

    /// Compresses the last block, writes the trailer and returns the writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.check_usable()?;
        self.dispatch(true)?;
        self.drain(0)?;
        let crc = self.crc.clone().finalize();
        // ISIZE is the input length modulo 2^32 (RFC 1952 section 2.3.1).
        let isize = (self.total_in & 0xffff_ffff).to_le_bytes();
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.write_all(&isize[..4])?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn check_usable(&self) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other("the gzip encoder failed earlier and cannot continue"));
        }
        Ok(())
    }

    /// Sends the current block for compression and starts the next one with this block's tail as dictionary.
    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        let block = std::mem::take(&mut self.current);
        let dict_len = self.dict_len;
        let tail_start = block.len().saturating_sub(DICTIONARY_SIZE).max(dict_len);
        let mut next = Vec::with_capacity(DICTIONARY_SIZE + BLOCK_SIZE);
        next.extend_from_slice(block.get(tail_start..).unwrap_or_default());
        self.dict_len = next.len();
        self.current = next;
        let result = self.submit(block, dict_len, last);
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn submit(&mut self, data: Vec<u8>, dict_len: usize, last: bool) -> io::Result<()> {
        match &mut self.engine {
            Engine::Inline => {
                let bytes = deflate_block(self.level, &data, dict_len, last).map_err(deflate_error)?;
                self.out.write_all(&bytes)
            }
            Engine::Pool(pool) => {
                let (reply, result) = mpsc::sync_channel(1);
                let sent = pool.jobs.as_ref().map(|jobs| jobs.send(Job { data, dict_len, last, reply }));
                if !matches!(sent, Some(Ok(()))) {
                    return Err(worker_stopped());
                }
                pool.pending.push_back(result);
                let keep = pool.max_in_flight;
                self.drain(keep)
            }
        }
    }

    /// Writes finished blocks, in order, until at most `keep` remain in flight.
    fn drain(&mut self, keep: usize) -> io::Result<()> {
        let Engine::Pool(pool) = &mut self.engine else { return Ok(()) };
        while pool.pending.len() > keep {
            let Some(next) = pool.pending.pop_front() else { break };
            let bytes = next.recv().map_err(|_| worker_stopped())?.map_err(deflate_error);
            let written = bytes.and_then(|bytes| self.out.write_all(&bytes));
            if written.is_err() {
                self.failed = true;
            }
            written?;
        }
        Ok(())
    }
}

impl<W: Write> Write for GzipEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.check_usable()?;
        let mut rest = buf;
        while !rest.is_empty() {
            let room = self.dict_len + BLOCK_SIZE - self.current.len();
            let (now, later) = rest.split_at(room.min(rest.len()));
            self.current.extend_from_slice(now);
            self.crc.update(now);
            self.total_in = self.total_in.wrapping_add(now.len() as u64);
            if self.current.len() == self.dict_len + BLOCK_SIZE {
                self.dispatch(false)?;
            }
            rest = later;
        }
        Ok(buf.len())
    }

    /// Writes out the blocks already compressed and flushes the writer. The partial block stays buffered: flushing
    /// it would make the bytes depend on when `flush` was called.
    fn flush(&mut self) -> io::Result<()> {
        self.check_usable()?;
        self.drain(0)?;
        self.out.flush()
    }
}

impl Pool {
    fn start(level: u32, threads: usize) -> io::Result<Pool> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let mut pool =
            Pool { jobs: Some(jobs), workers: Vec::new(), pending: VecDeque::new(), max_in_flight: 2 * threads };
        for index in 0..threads {
            let queue = Arc::clone(&queue);
            let handle = std::thread::Builder::new()
                .name(format!("cvmforge-gzip-{index}"))
                .spawn(move || worker(level, &queue))?;
            pool.workers.push(handle);
        }
        Ok(pool)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing the queue ends every worker once its current block is done; results nobody waits for are dropped.
        self.jobs = None;
        self.pending.clear();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

fn worker(level: u32, queue: &Mutex<Receiver<Job>>) {
    loop {
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let result = deflate_block(level, &job.data, job.dict_len, job.last);
        // The encoder may have been dropped; then nobody wants the result.
        let _ = job.reply.send(result);
    }
}

/// Compresses one block, `data = [dictionary | block]`: raw deflate primed with the dictionary, ending in a sync
/// flush, or in `Z_FINISH` when `last`. Stores the block instead when it [looks incompressible](looks_incompressible)
/// or when deflate would be larger than storing. The result depends only on the arguments.
fn deflate_block(level: u32, data: &[u8], dict_len: usize, last: bool) -> Result<Vec<u8>, CompressError> {
    let (dict, block) = data.split_at(dict_len.min(data.len()));
    if !looks_incompressible(data, dict_len) {
        let out = deflate_raw(level, dict, block, last)?;
        if out.len() <= stored_len(block.len()) {
            return Ok(out);
        }
    }
    let mut out = Vec::with_capacity(stored_len(block.len()));
    write_stored(&mut out, block, last);
    Ok(out)
}

/// Blocks shorter than this always get the full deflate attempt.
const CHECK_MIN_LEN: usize = 4096;
/// Shortest repeat the pre-check counts: shorter matches in high-entropy data hardly pay for their codes.
const REPEAT_MIN: usize = 8;
/// Longest deflate match (RFC 1951 section 3.2.5).
const MATCH_MAX: usize = 258;
/// Size of the pre-check's hash table, as a power of two: 2^14 four-byte entries stay in the L2 cache (a 2^16-entry
/// table of `usize` was 5× slower through cache misses).
const REPEAT_HASH_BITS: u32 = 14;

/// Decides, from the bytes of `data = [dictionary | block]` alone, that deflate would not beat storing the block, so
/// that random data (encrypted or already compressed files) skips the level-`N` match search. Two integer-only
/// tests, both must pass:
///
/// 1. The block's byte histogram is nearly flat: `256 · Σ count² ≤ 1.035 · len²`, i.e. its collision entropy is at
///    least 7.95 bits per byte, so Huffman coding of literals cannot save more than ~0.6 %. (Integers, not `log2`,
///    so that no floating-point detail of the build host can flip the decision.)
/// 2. Hardly any repeats: fewer than `len / 64` of the block's bytes are covered by repeats of at least
///    [`REPEAT_MIN`] bytes within the 32 KiB window that a single-probe hash finds ([`repeated_bytes`]).
///
/// Data that fails either test (text, code, repeated random chunks, base64) gets the full level-`N` attempt, and the
/// result is still stored if deflate turns out larger.
fn looks_incompressible(data: &[u8], dict_len: usize) -> bool {
    let block = data.get(dict_len..).unwrap_or_default();
    if block.len() < CHECK_MIN_LEN {
        return false;
    }
    let mut counts = [0u64; 256];
    for &byte in block {
        counts[usize::from(byte)] += 1;
    }
    let sum_squares: u64 = counts.iter().map(|c| c * c).sum();
    let len = block.len() as u64;
    if 256 * 1000 * u128::from(sum_squares) > 1035 * u128::from(len) * u128::from(len) {
        return false;
    }
    repeated_bytes(data, dict_len) * 64 < block.len()
}

/// Bytes of `data[dict_len..]` covered by repeats of at least [`REPEAT_MIN`] bytes whose earlier copy starts at most
/// 32 KiB before (possibly in the dictionary), as found by one probe of a hash table of 8-byte words — an LZ77
/// matcher that only counts. Deterministic: a function of `data` and `dict_len`.
fn repeated_bytes(data: &[u8], dict_len: usize) -> usize {
    // Positions + 1 (0 = empty); blocks and dictionaries are far below 4 GiB.
    let mut table = vec![0u32; 1 << REPEAT_HASH_BITS];
    let mut covered = 0;
    let mut pos = 0;
    while let Some(word) = data.get(pos..pos + REPEAT_MIN) {
        let word = u64::from_le_bytes(word.try_into().unwrap_or_default());
        let slot = (word.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - REPEAT_HASH_BITS)) as usize;
        let entry = std::mem::replace(&mut table[slot], u32::try_from(pos + 1).unwrap_or(0));
        let candidate = (entry as usize).wrapping_sub(1);
        if pos >= dict_len && entry != 0 && pos - candidate <= DICTIONARY_SIZE {
            let len = common_prefix(&data[candidate..], &data[pos..]).min(MATCH_MAX);
            if len >= REPEAT_MIN {
                covered += len;
                pos += len;
                continue;
            }
        }
        pos += 1;
    }
    covered
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Raw deflate of `block` by a fresh zlib-rs state (nothing left from an earlier block — which differs with the
/// thread count — can matter), primed with `dict`; ends in a sync flush, or `Z_FINISH` when `last`.
fn deflate_raw(level: u32, dict: &[u8], block: &[u8], last: bool) -> Result<Vec<u8>, CompressError> {
    // Raw deflate (no zlib header), 15 window bits, memLevel 8, default strategy: zlib-rs's `deflateInit2` defaults.
    let mut deflate = Compress::new(flate2::Compression::new(level), false);
    if !dict.is_empty() {
        deflate.set_dictionary(dict)?;
    }
    let flush = if last { FlushCompress::Finish } else { FlushCompress::Sync };
    let mut out = Vec::with_capacity(block.len() + block.len() / 8 + 128);
    let mut consumed = 0usize;
    loop {
        let before = deflate.total_in();
        let status = deflate.compress_vec(block.get(consumed..).unwrap_or_default(), &mut out, flush)?;
        consumed += usize::try_from(deflate.total_in() - before).unwrap_or(usize::MAX).min(block.len() - consumed);
        let done = match status {
            Status::StreamEnd => true,
            Status::Ok | Status::BufError => !last && consumed == block.len() && out.len() < out.capacity(),
        };
        if done {
            return Ok(out);
        }
        out.reserve(out.capacity().max(4096));
    }
}

/// Length of `len` bytes as stored deflate blocks: a 5-byte header (the block-type byte, LEN, NLEN) per 65535 bytes,
/// and one header for an empty block (RFC 1951 section 3.2.4).
pub fn stored_len(len: usize) -> usize {
    len + 5 * len.div_ceil(MAX_STORED).max(1)
}

/// Appends `block` as stored deflate blocks. The stream is byte-aligned here (it starts so, and every non-final
/// block ends in a sync flush or a stored block), so the 3 header bits (BFINAL, BTYPE = 00) plus padding are one byte.
fn write_stored(out: &mut Vec<u8>, block: &[u8], last: bool) {
    let mut chunks = block.chunks(MAX_STORED).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[u8::from(last), 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        let is_final = last && chunks.peek().is_none();
        // chunks(MAX_STORED) never yields more than 0xffff bytes.
        let len = u16::try_from(chunk.len()).unwrap_or(u16::MAX);
        out.push(u8::from(is_final));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
}

fn deflate_error(error: CompressError) -> io::Error {
    io::Error::other(format!("deflate (zlib-rs) failed: {error}"))
}

fn worker_stopped() -> io::Error {
    io::Error::other("a gzip compression worker thread stopped unexpectedly (this is a bug in cvmforge)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(len: usize, mut state: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (state >> 56) as u8
            })
            .collect()
    }

    #[test]
    fn repeated_bytes_finds_a_copy_within_the_window_and_from_the_dictionary() {
        let mut data = noise(BLOCK_SIZE, 1);
        assert!(repeated_bytes(&data, 0) < 64, "noise has (almost) no 8-byte repeats");
        // Copy 1000 bytes from 20 000 bytes earlier: inside the window.
        data.copy_within(50_000..51_000, 70_000);
        let found = repeated_bytes(&data, 0);
        assert!((900..1100).contains(&found), "found {found}");
        // The same copy with its source in the dictionary part still counts; one only before it does not.
        assert!((900..1100).contains(&repeated_bytes(&data, 60_000)));
        assert!(repeated_bytes(&data, 71_000) < 64);
    }

    #[test]
    fn repeated_bytes_ignores_copies_beyond_the_window() {
        let mut data = noise(BLOCK_SIZE, 2);
        data.copy_within(0..1000, 40_000); // 40 000 > 32 KiB back
        assert!(repeated_bytes(&data, 0) < 64);
    }

    #[test]
    fn looks_incompressible_only_for_flat_histograms_without_repeats() {
        let data = noise(BLOCK_SIZE + DICTIONARY_SIZE, 3);
        assert!(looks_incompressible(&data, DICTIONARY_SIZE));
        let text: Vec<u8> = data.iter().map(|b| b"etaoin shrdlu\n"[usize::from(b % 14)]).collect();
        assert!(!looks_incompressible(&text, DICTIONARY_SIZE));
        assert!(!looks_incompressible(&data[..DICTIONARY_SIZE + CHECK_MIN_LEN - 1], DICTIONARY_SIZE));
    }
}
