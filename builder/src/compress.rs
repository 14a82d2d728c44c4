//! Deterministic compression of the initrd: gzip (default), zstd, or none.
//!
//! The output bytes depend only on the input bytes and the [`Compression`] parameters, never on the thread count.
//! The implementation and its version are reported by [`describe`] so that the manifest can pin them: deflate and zstd
//! streams differ between implementations and versions (see `docs/specs/reproducibility.md`).
//!
//! NOTE (skeleton): this first version compresses on one thread; the parallel, block-splitting gzip encoder replaces
//! the internals of [`Encoder`] without changing this API.

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
    pub parameters: std::collections::BTreeMap<String, String>,
}

/// Describes the compressor that [`encoder`] will use for `compression`.
pub fn describe(compression: &Compression) -> CompressorInfo {
    let (algorithm, level, implementation, version) = match *compression {
        Compression::None => ("none", 0, "none", ""),
        Compression::Gzip { level } => ("gzip", level as i32, "flate2/zlib-rs", "1"),
        Compression::Zstd { level } => ("zstd", level, "zstd-sys (libzstd)", "1"),
    };
    CompressorInfo {
        algorithm: algorithm.to_string(),
        level,
        implementation: implementation.to_string(),
        implementation_version: version.to_string(),
        parameters: Default::default(),
    }
}

/// A streaming compressor. Write the plain bytes into it, then call [`Encoder::finish`].
pub struct Encoder<W: Write> {
    inner: Inner<W>,
}

enum Inner<W: Write> {
    None(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

/// Creates an encoder writing the compressed stream to `out`. `threads` may be any value >= 1; the bytes are the same.
pub fn encoder<W: Write + Send + 'static>(compression: &Compression, threads: usize, out: W) -> io::Result<Encoder<W>> {
    let inner = match *compression {
        Compression::None => Inner::None(out),
        Compression::Gzip { level } => Inner::Gzip(
            flate2::GzBuilder::new().mtime(0).operating_system(3).write(out, flate2::Compression::new(level)),
        ),
        Compression::Zstd { level } => {
            let mut enc = zstd::stream::write::Encoder::new(out, level)?;
            // Multi-threaded zstd output is identical for every worker count >= 1, but differs from 0 workers.
            enc.multithread(threads.max(1) as u32)?;
            enc.include_checksum(true)?;
            Inner::Zstd(enc)
        }
    };
    Ok(Encoder { inner })
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

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::None(w) => w.flush(),
            Inner::Gzip(e) => e.flush(),
            Inner::Zstd(e) => e.flush(),
        }
    }
}
