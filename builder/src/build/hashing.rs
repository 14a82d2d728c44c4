//! Writers and readers that hash (and count) the bytes passing through them.

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

use super::Progress;

/// A writer that hashes and counts everything written to `inner`.
pub(crate) struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> HashWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashWriter { inner, hasher: Sha256::new(), len: 0 }
    }

    /// The inner writer, the SHA-256 and the byte count.
    pub(crate) fn into_parts(self) -> (W, [u8; 32], u64) {
        (self.inner, self.hasher.finalize().into(), self.len)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that reports the bytes read to a [`Progress`].
pub(crate) struct ProgressReader<'a, R> {
    pub(crate) inner: R,
    pub(crate) progress: &'a dyn Progress,
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// SHA-256 and size of everything `reader` yields.
pub(crate) fn hash_reader(reader: &mut dyn Read) -> io::Result<([u8; 32], u64)> {
    let mut writer = HashWriter::new(io::sink());
    io::copy(reader, &mut writer)?;
    let (_, digest, len) = writer.into_parts();
    Ok((digest, len))
}
