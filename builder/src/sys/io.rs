//! Shared I/O helpers: reading until a buffer is full, and SHA-256 over what passes through a reader or writer.
//! Every layer that hashes a stream or fills a buffer uses these, so that the `Interrupted` retry, the buffer size
//! and the byte count are written once.
//!
//! ```
//! use cvmforge::sys::io::{read_full, sha256_of, HashingReader};
//! let (digest, len) = sha256_of(&b"hi\n"[..]).unwrap();
//! assert_eq!((hex::encode(digest).get(..8), len), (Some("98ea6e4f"), 3));
//!
//! let mut head = [0u8; 4];
//! let mut reader = HashingReader::new(&b"hello"[..]);
//! assert_eq!(read_full(&mut reader, &mut head).unwrap(), 4);
//! assert_eq!(reader.finish().unwrap(), sha256_of(&b"hello"[..]).unwrap()); // finish() reads the rest
//! ```

use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

/// The read size for hashing large files.
const HASH_CHUNK: usize = 128 * 1024;

/// Reads until `buf` is full or the input ends (retrying interrupted reads); returns the number of bytes read.
pub fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..).filter(|r| !r.is_empty()) {
        match reader.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// A reader that hashes (SHA-256) and counts every byte read through it.
#[derive(Debug)]
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    len: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader { inner, hasher: Sha256::new(), len: 0 }
    }

    /// Bytes read so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing has been read yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads the rest of the stream (so that the digest covers all of it) and returns (SHA-256, byte count).
    pub fn finish(mut self) -> io::Result<([u8; 32], u64)> {
        let mut buf = vec![0u8; HASH_CHUNK];
        while read_full(&mut self, &mut buf)? != 0 {}
        Ok((self.hasher.finalize().into(), self.len))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(buf.get(..n).unwrap_or_default());
        self.len = self.len.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
        Ok(n)
    }
}

/// A writer that hashes (SHA-256) and counts everything written to `inner`.
#[derive(Debug)]
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter { inner, hasher: Sha256::new(), len: 0 }
    }

    /// The inner writer, the SHA-256 and the byte count.
    pub fn into_parts(self) -> (W, [u8; 32], u64) {
        (self.inner, self.hasher.finalize().into(), self.len)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(buf.get(..n).unwrap_or_default());
        self.len = self.len.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// SHA-256 and size of everything `reader` yields.
pub fn sha256_of(reader: impl Read) -> io::Result<([u8; 32], u64)> {
    HashingReader::new(reader).finish()
}

/// SHA-256 and size of a file.
pub fn sha256_file(path: &Path) -> io::Result<([u8; 32], u64)> {
    sha256_of(fs_err::File::open(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Yields one byte per call and fails with `Interrupted` every other call.
    struct Trickle<'a> {
        data: &'a [u8],
        interrupt: bool,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.interrupt = !self.interrupt;
            if self.interrupt {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let Some((&first, rest)) = self.data.split_first() else { return Ok(0) };
            if let Some(slot) = buf.first_mut() {
                *slot = first;
                self.data = rest;
                return Ok(1);
            }
            Ok(0)
        }
    }

    #[test]
    fn read_full_fills_across_short_and_interrupted_reads() {
        let mut buf = [0u8; 4];
        assert_eq!(read_full(&mut Trickle { data: b"abcdef", interrupt: false }, &mut buf).unwrap(), 4);
        assert_eq!(&buf, b"abcd");
        assert_eq!(read_full(&mut Trickle { data: b"ab", interrupt: false }, &mut buf).unwrap(), 2);
        assert_eq!(read_full(&mut &b""[..], &mut buf).unwrap(), 0);
    }

    #[test]
    fn reader_and_writer_agree_with_sha256sum() {
        // `printf 'hi\n' | sha256sum`
        let expected = "98ea6e4f216f2fb4b69fff9b3a44842c38686ca685f3f55dc48c5d3fb1107be4";
        let (digest, len) = sha256_of(Trickle { data: b"hi\n", interrupt: false }).unwrap();
        assert_eq!((hex::encode(digest), len), (expected.to_string(), 3));
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"hi\n").unwrap();
        let (inner, digest, len) = w.into_parts();
        assert_eq!((inner, hex::encode(digest), len), (b"hi\n".to_vec(), expected.to_string(), 3));
    }
}
