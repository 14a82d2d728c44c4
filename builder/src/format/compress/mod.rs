//! Deterministic compression of the initrd: gzip (default), zstd, or none.
//!
//! The output bytes depend only on the input bytes and the [`Compression`] parameters, never on the thread count.
//! The implementation and its version are reported by [`describe`] so that the manifest can pin them: deflate and zstd
//! streams differ between implementations and versions (see `docs/specs/reproducibility.md`).
//!
//! - gzip: pigz-style independent 128 KiB blocks compressed in parallel by zlib-rs, see [`gzip`].
//! - zstd: libzstd's multi-threaded mode with at least one worker; its output is the same for every worker count
//!   >= 1 (but differs from single-threaded mode, which is therefore never used).
//!
//! ```
//! use std::io::Write;
//! use cvmforge::format::compress::{encoder, Compression};
//! let mut one = encoder(&Compression::default(), 1, Vec::new()).unwrap();
//! let mut four = encoder(&Compression::default(), 4, Vec::new()).unwrap();
//! one.write_all(b"hello initrd").unwrap();
//! four.write_all(b"hello initrd").unwrap();
//! assert_eq!(one.finish().unwrap(), four.finish().unwrap());
//! ```

pub mod decode;
pub mod gzip;
pub mod read;

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::{Deserialize, Serialize};

/// Default gzip level (the same as `gzip -6` and `pigz -6`).
pub const DEFAULT_GZIP_LEVEL: u32 = 6;
/// Default zstd level.
pub const DEFAULT_ZSTD_LEVEL: i32 = 9;

/// A compression algorithm with its fixed parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "algorithm", rename_all = "lowercase", deny_unknown_fields)]
pub enum Compression {
    /// No compression: the plain newc archive.
    None,
    /// gzip (RFC 1952) with MTIME 0, no file name, fixed OS byte.
    Gzip {
        /// Deflate level, 1-9.
        level: u32,
    },
    /// zstd frame(s).
    Zstd {
        /// zstd level, 1-19.
        level: i32,
    },
}

impl Default for Compression {
    fn default() -> Self {
        Compression::Gzip { level: DEFAULT_GZIP_LEVEL }
    }
}

/// What the manifest records about the compressor: enough to reproduce the exact bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompressorInfo {
    /// `gzip`, `zstd` or `none`.
    pub algorithm: String,
    /// The level used (0 for none).
    pub level: i32,
    /// The library that produced the stream, e.g. `zlib-rs`.
    pub implementation: String,
    /// Its exact version.
    pub implementation_version: String,
    /// Other fixed parameters (block size, window, checksum flags), sorted by name.
    pub parameters: BTreeMap<String, String>,
}

/// Describes the compressor that [`encoder`] will use for `compression`.
///
/// The versions are those compiled in: zlib-rs's from the workspace's Cargo.lock (read by `build.rs`), libzstd's
/// from the library itself at run time.
pub fn describe(compression: &Compression) -> CompressorInfo {
    let mut parameters = BTreeMap::new();
    let (algorithm, level, implementation, version) = match *compression {
        Compression::None => ("none", 0, "none".to_string(), String::new()),
        Compression::Gzip { level } => {
            for (key, value) in gzip_parameters() {
                parameters.insert(key.to_string(), value);
            }
            let level = i32::try_from(level).unwrap_or(i32::MAX);
            ("gzip", level, "zlib-rs".to_string(), ZLIB_RS_VERSION.to_string())
        }
        Compression::Zstd { level } => {
            for (key, value) in zstd_parameters() {
                parameters.insert(key.to_string(), value);
            }
            ("zstd", level, "libzstd".to_string(), zstd::zstd_safe::version_string().to_string())
        }
    };
    CompressorInfo {
        algorithm: algorithm.to_string(),
        level,
        implementation,
        implementation_version: version,
        parameters,
    }
}

/// Version of the zlib-rs crate that produces the deflate stream (from Cargo.lock, see `build.rs`).
pub const ZLIB_RS_VERSION: &str = env!("CVMFORGE_VERSION_ZLIB_RS");
/// Version of the flate2 crate that drives zlib-rs (from Cargo.lock, see `build.rs`).
pub const FLATE2_VERSION: &str = env!("CVMFORGE_VERSION_FLATE2");

fn gzip_parameters() -> [(&'static str, String); 10] {
    [
        ("block_size", gzip::BLOCK_SIZE.to_string()),
        ("dictionary_size", gzip::DICTIONARY_SIZE.to_string()),
        ("block_end", "sync flush; final block Z_FINISH".to_string()),
        (
            "stored_blocks",
            "when deflate is larger, or when 256*sum(count^2) <= 1.035*len^2 and fewer than len/64 bytes lie in \
             repeats of >= 8 bytes found by one probe of a 2^14-entry hash of 8-byte words (blocks >= 4096 bytes)"
                .to_string(),
        ),
        ("window_bits", "15".to_string()),
        ("mem_level", "8".to_string()),
        ("strategy", "default".to_string()),
        ("header", format!("mtime=0 name=none os={}", gzip::OS_BYTE)),
        ("flate2_version", FLATE2_VERSION.to_string()),
        ("scheme", "pigz-style independent blocks".to_string()),
    ]
}

fn zstd_parameters() -> [(&'static str, String); 3] {
    [
        ("mode", "multi-threaded (nbWorkers >= 1)".to_string()),
        ("checksum", "true".to_string()),
        ("job_size", ZSTD_JOB_SIZE.to_string()),
    ]
}

/// zstd multi-threaded job size. Fixed (rather than libzstd's level-dependent default, 32 MiB at level 9) so that
/// memory stays small: at level 9 each worker then holds about 15 MiB (match-finder tables plus job buffers) instead of
/// about 80 MiB, for 0.03 % more output; 1 MiB jobs would cost 50 % more CPU re-reading the job overlaps.
pub const ZSTD_JOB_SIZE: u32 = 2 * 1024 * 1024;

/// A streaming compressor. Write the plain bytes into it, then call [`Encoder::finish`].
pub struct Encoder<W: Write> {
    inner: Inner<W>,
}

enum Inner<W: Write> {
    None(W),
    Gzip(gzip::GzipEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

/// Creates an encoder writing the compressed stream to `out`. `threads` may be any value >= 1; the bytes are the same.
///
/// Fails with [`io::ErrorKind::InvalidInput`] for a level out of range (gzip 1-9, zstd 1-19), or with the writer's
/// error if writing the gzip header fails.
pub fn encoder<W: Write + Send + 'static>(compression: &Compression, threads: usize, out: W) -> io::Result<Encoder<W>> {
    let inner = match *compression {
        Compression::None => Inner::None(out),
        Compression::Gzip { level } => Inner::Gzip(gzip::GzipEncoder::new(level, threads, out)?),
        Compression::Zstd { level } => Inner::Zstd(zstd_encoder(level, threads, out)?),
    };
    Ok(Encoder { inner })
}

/// Most zstd workers used, whatever `threads` asks for (bounded memory; the output is the same for any count >= 1).
pub const ZSTD_MAX_WORKERS: usize = 3;

fn zstd_encoder<W: Write>(level: i32, threads: usize, out: W) -> io::Result<zstd::stream::write::Encoder<'static, W>> {
    if !(1..=19).contains(&level) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("zstd level {level} is out of range: expected 1-19"),
        ));
    }
    let mut enc = zstd::stream::write::Encoder::new(out, level)?;
    // Multi-threaded zstd output is identical for every worker count >= 1, but differs from 0 workers
    // (docs/specs/reproducibility.md), so there is always at least one worker.
    // Each worker holds about 15 MiB at level 9 with 2 MiB jobs: capping the workers keeps peak RSS under the
    // 64 MiB budget on any machine, and cannot change the bytes.
    let workers = u32::try_from(threads.clamp(1, ZSTD_MAX_WORKERS)).unwrap_or(1);
    enc.multithread(workers)?;
    enc.set_parameter(zstd::stream::raw::CParameter::JobSize(ZSTD_JOB_SIZE))?;
    enc.include_checksum(true)?;
    Ok(enc)
}

impl<W: Write> Encoder<W> {
    /// Flushes the last block and trailer and returns the underlying writer.
    pub fn finish(self) -> io::Result<W> {
        match self.inner {
            Inner::None(w) => Ok(w),
            Inner::Gzip(e) => e.finish(),
            Inner::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::None(w) => w.write(buf),
            Inner::Gzip(e) => e.write(buf),
            Inner::Zstd(e) => e.write(buf),
        }
    }

    /// Flushes the underlying writer. Neither compressor ends a block here: that would make the bytes depend on when
    /// `flush` is called (gzip writes out the blocks already compressed; zstd keeps its buffered input).
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::None(w) => w.flush(),
            Inner::Gzip(e) => e.flush(),
            Inner::Zstd(e) => e.get_mut().flush(),
        }
    }
}

#[cfg(test)]
mod tests;
