//! The one bounds-checked reader that every parser of untrusted bytes in this crate goes through.
//!
//! Reads never panic and never slice past the end: each read names what it was reading, so that an error can say
//! which field at which offset ran past the end of the input.

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use thiserror::Error;

/// A failure to read a field from untrusted bytes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The input ended inside a field.
    #[error("truncated input: `{what}` needs {needed} bytes at offset {offset:#x}, but only {available} remain")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Absolute offset of the field in the input.
        offset: usize,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left in the input at that offset.
        available: usize,
    },
    /// A structure was fully read but bytes remain after it.
    #[error("{count} unexpected trailing bytes after `{what}` at offset {offset:#x}")]
    TrailingData {
        /// The structure that should have consumed everything.
        what: &'static str,
        /// Absolute offset of the first trailing byte.
        offset: usize,
        /// How many bytes are left over.
        count: usize,
    },
    /// A seek target lies outside the input.
    #[error("`{what}` points to offset {offset:#x}, past the end of the {len}-byte input")]
    OutOfBounds {
        /// The field holding the offset.
        what: &'static str,
        /// The offset that was asked for.
        offset: u64,
        /// Length of the input.
        len: usize,
    },
}

/// Copies `bytes` into `out` at `at`, for writers of fixed layouts (the offsets are constants of a spec table). A
/// range outside `out` is a bug in the layout, caught by the tests in debug builds; it never panics in release.
pub(crate) fn write_at(out: &mut [u8], at: usize, bytes: &[u8]) {
    let dst = at.checked_add(bytes.len()).and_then(|end| out.get_mut(at..end));
    debug_assert!(dst.is_some(), "bug: {} bytes at offset {at} do not fit in {}", bytes.len(), out.len());
    if let Some(dst) = dst {
        dst.copy_from_slice(bytes);
    }
}

/// A cursor over a byte slice that tracks its absolute offset within the original input.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Offset of `bytes[0]` within the original input, so that errors from sub-readers report absolute offsets.
    base: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0, base: 0 }
    }

    /// Starts reading `bytes` at absolute offset `offset` of the whole input (`bytes` must start at `0`).
    pub fn at(bytes: &'a [u8], what: &'static str, offset: u64) -> Result<Self, ReadError> {
        let pos = usize::try_from(offset).ok().filter(|&p| p <= bytes.len()).ok_or(ReadError::OutOfBounds {
            what,
            offset,
            len: bytes.len(),
        })?;
        Ok(Reader { bytes, pos, base: 0 })
    }

    /// Absolute offset of the next byte to be read.
    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// True when bytes remain.
    pub fn any_left(&self) -> bool {
        self.remaining() > 0
    }

    /// Reads exactly `len` bytes.
    pub fn take(&mut self, what: &'static str, len: usize) -> Result<&'a [u8], ReadError> {
        let available = self.remaining();
        if len > available {
            return Err(ReadError::Truncated { what, offset: self.offset(), needed: len, available });
        }
        let start = self.pos;
        self.pos += len;
        // In bounds: `len <= remaining` was checked above.
        self.bytes.get(start..self.pos).ok_or(ReadError::Truncated { what, offset: start, needed: len, available })
    }

    /// Reads a fixed-size array.
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], ReadError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(what, N)?);
        Ok(out)
    }

    /// Splits off a sub-reader over the next `len` bytes; its offsets stay absolute.
    pub fn sub(&mut self, what: &'static str, len: usize) -> Result<Reader<'a>, ReadError> {
        let base = self.offset();
        let bytes = self.take(what, len)?;
        Ok(Reader { bytes, pos: 0, base })
    }

    /// Skips `len` bytes.
    pub fn skip(&mut self, what: &'static str, len: usize) -> Result<(), ReadError> {
        self.take(what, len).map(|_| ())
    }

    /// Reads a `u8`.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, ReadError> {
        Ok(self.array::<1>(what)?[0])
    }

    /// Reads a little-endian `u16`.
    pub fn u16_le(&mut self, what: &'static str) -> Result<u16, ReadError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    /// Reads a little-endian `u32`.
    pub fn u32_le(&mut self, what: &'static str) -> Result<u32, ReadError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    /// Reads a little-endian `u64`.
    pub fn u64_le(&mut self, what: &'static str) -> Result<u64, ReadError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// Succeeds only when every byte has been read.
    pub fn finish(self, what: &'static str) -> Result<(), ReadError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(ReadError::TrailingData { what, offset: self.offset(), count }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_little_endian_fields_in_order() {
        let mut r = Reader::new(&[1, 0, 2, 0, 0, 0, 9]);
        assert_eq!(r.u16_le("a").unwrap(), 1);
        assert_eq!(r.u32_le("b").unwrap(), 2);
        assert_eq!(r.offset(), 6);
        assert_eq!(r.u8("c").unwrap(), 9);
        r.finish("all").unwrap();
    }

    #[test]
    fn rejects_truncated_field_with_offset() {
        let mut r = Reader::new(&[1, 2, 3]);
        r.skip("head", 1).unwrap();
        let err = r.u32_le("size").unwrap_err();
        assert_eq!(err, ReadError::Truncated { what: "size", offset: 1, needed: 4, available: 2 });
        assert_eq!(err.to_string(), "truncated input: `size` needs 4 bytes at offset 0x1, but only 2 remain");
    }

    #[test]
    fn sub_reader_reports_absolute_offsets() {
        let data = [0u8; 8];
        let mut r = Reader::new(&data);
        r.skip("x", 4).unwrap();
        let mut sub = r.sub("inner", 2).unwrap();
        let err = sub.u32_le("field").unwrap_err();
        assert!(matches!(err, ReadError::Truncated { offset: 4, .. }));
    }

    #[test]
    fn rejects_trailing_data() {
        let r = Reader::new(&[0, 0]);
        assert!(matches!(r.finish("s"), Err(ReadError::TrailingData { count: 2, offset: 0, .. })));
    }

    #[test]
    fn rejects_seek_past_end() {
        assert!(matches!(Reader::at(&[0u8; 4], "ptr", 5), Err(ReadError::OutOfBounds { offset: 5, len: 4, .. })));
        assert!(Reader::at(&[0u8; 4], "ptr", 4).is_ok());
    }
}
