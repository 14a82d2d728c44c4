//! The progress-reporting reader of the build (hashing readers and writers are `crate::sys::io`'s).

use std::io::{self, Read};

use super::Progress;

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
