//! A reader adapter with a hard cap on the number of bytes (the decompression-bomb guard of the archive readers).
//! Hashing readers are `crate::sys::io`'s.

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::io::{self, Read};

/// The error a [`Capped`] reader returns (inside an `io::Error`) once more than `max` bytes come through.
#[derive(Debug, thiserror::Error)]
#[error("more than {max} bytes")]
pub(crate) struct CapExceeded {
    pub(crate) max: u64,
}

/// Fails with [`CapExceeded`] as soon as the stream has more than `max` bytes; never reads far past the cap.
pub(crate) struct Capped<R> {
    inner: R,
    max: u64,
    count: u64,
}

impl<R: Read> Capped<R> {
    pub(crate) fn new(inner: R, max: u64) -> Self {
        Capped { inner, max, count: 0 }
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Allow one byte past the cap so that "exactly max bytes" is distinguishable from "more".
        let room = self.max.saturating_sub(self.count).saturating_add(1);
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(buf.get_mut(..want).unwrap_or_default())?;
        self.count = self.count.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
        if self.count > self.max {
            return Err(io::Error::other(CapExceeded { max: self.max }));
        }
        Ok(n)
    }
}

/// The cap, if `err` came from a [`Capped`] reader.
pub(crate) fn cap_exceeded(err: &io::Error) -> Option<u64> {
    err.get_ref().and_then(|inner| inner.downcast_ref::<CapExceeded>()).map(|c| c.max)
}
