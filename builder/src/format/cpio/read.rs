//! A streaming, bounded reader of newc ("070701") and newc-crc ("070702") cpio archives.
//!
//! Layout (see `docs/specs/reproducibility.md`, "cpio (newc)"): a 110-byte header (magic and 13 eight-digit hex
//! fields), the NUL-terminated name padded so that header plus name is a multiple of 4, the content padded to a
//! multiple of 4; `TRAILER!!!` ends an archive. Like the kernel's initramfs unpacker, zero bytes after a trailer are
//! skipped and another archive may follow (concatenated initrds).

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::io::{self, BufRead, BufReader, Read};

use sha2::{Digest, Sha256};

use crate::format::error::{escape, UnpackError};
use crate::format::{EntryType, Limits};
use crate::sys::io::read_full;

const FORMAT: &str = "cpio";
const HEADER_LEN: usize = 110;
const TRAILER: &[u8] = b"TRAILER!!!";
const FIELD_NAMES: [&str; 13] = [
    "ino",
    "mode",
    "uid",
    "gid",
    "nlink",
    "mtime",
    "filesize",
    "devmajor",
    "devminor",
    "rdevmajor",
    "rdevminor",
    "namesize",
    "check",
];
const S_IFMT: u32 = 0o170000;

/// One cpio entry's metadata, digest and (if small enough) content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpioEntry {
    /// 0-based position in the archive (over concatenated archives).
    pub index: u64,
    /// Byte offset of the header in the (decompressed) stream.
    pub offset: u64,
    /// The name as stored (non-UTF-8 bytes replaced by U+FFFD).
    pub path: String,
    /// The file type from the mode's `S_IFMT` bits.
    pub file_type: EntryType,
    /// The whole mode (type and permission bits).
    pub mode: u32,
    /// Inode number.
    pub ino: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Link count.
    pub nlink: u32,
    /// Modification time (seconds since the epoch).
    pub mtime: u32,
    /// Content size.
    pub size: u64,
    /// Device holding the file (major, minor).
    pub dev: (u32, u32),
    /// Device number of a device node (major, minor).
    pub rdev: (u32, u32),
    /// The newc-crc checksum field (0 in newc).
    pub check: u32,
    /// The target of a symlink.
    pub link_target: Option<String>,
    /// SHA-256 of the content.
    pub sha256: [u8; 32],
    /// The content, when within [`Limits::max_kept_entry`] and [`Limits::max_kept_total`].
    pub content: Option<Vec<u8>>,
}

impl CpioEntry {
    /// The permission bits (`mode & 0o7777`).
    pub fn permissions(&self) -> u32 {
        self.mode & 0o7777
    }
}

enum State {
    Entries,
    AfterTrailer,
    Done,
}

/// Reads entries one at a time; memory use is bounded by the [`Limits`], not by the archive.
pub struct CpioReader<R: Read> {
    inner: BufReader<R>,
    limits: Limits,
    offset: u64,
    index: u64,
    archives: u32,
    kept_total: u64,
    state: State,
    chunk: Vec<u8>,
}

impl<R: Read> CpioReader<R> {
    /// Starts reading an archive from `inner`.
    pub fn new(inner: R, limits: Limits) -> Self {
        CpioReader {
            inner: BufReader::new(inner),
            limits,
            offset: 0,
            index: 0,
            archives: 0,
            kept_total: 0,
            state: State::Entries,
            chunk: vec![0; 64 * 1024],
        }
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Number of `TRAILER!!!`-terminated archives read so far.
    pub fn archives(&self) -> u32 {
        self.archives
    }

    /// The next entry, or `None` after the last trailer at the end of the stream.
    pub fn next_entry(&mut self) -> Result<Option<CpioEntry>, UnpackError> {
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::AfterTrailer => {
                    if !self.skip_zeros()? {
                        self.state = State::Done;
                        return Ok(None);
                    }
                    self.state = State::Entries;
                }
                State::Entries => {}
            }
            if self.at_eof()? {
                return Err(UnpackError::MissingTrailer {
                    format: FORMAT,
                    expected: "TRAILER!!!",
                    entries: self.index,
                    offset: self.offset,
                });
            }
            if let Some(entry) = self.read_entry()? {
                return Ok(Some(entry));
            }
        }
    }

    /// Reads one header and its content; `None` for a trailer.
    fn read_entry(&mut self) -> Result<Option<CpioEntry>, UnpackError> {
        let start = self.offset;
        let mut header = [0u8; HEADER_LEN];
        self.read_exact(&mut header, "header")?;
        let (magic, rest) = header.split_at(6);
        if magic != b"070701" && magic != b"070702" {
            return Err(UnpackError::BadMagic {
                format: FORMAT,
                index: self.index,
                offset: start,
                found: escape(magic),
                expected: "`070701` (newc) or `070702` (newc with checksums)",
            });
        }
        let mut fields = [0u32; 13];
        for (i, (slot, text)) in fields.iter_mut().zip(rest.chunks_exact(8)).enumerate() {
            *slot = parse_hex(text).ok_or_else(|| UnpackError::BadNumber {
                format: FORMAT,
                index: self.index,
                field: FIELD_NAMES.get(i).copied().unwrap_or("field"),
                offset: start + 6 + 8 * u64::try_from(i).unwrap_or(0),
                found: escape(text),
            })?;
        }
        let [ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check] =
            fields;
        let name = self.read_name(start, namesize)?;
        let size = u64::from(filesize);
        if name == TRAILER {
            self.skip_content(size)?;
            self.archives = self.archives.saturating_add(1);
            self.state = State::AfterTrailer;
            return Ok(None);
        }
        if self.index >= self.limits.max_entries {
            return Err(UnpackError::TooManyEntries { format: FORMAT, max: self.limits.max_entries, offset: start });
        }
        let path = String::from_utf8_lossy(&name).into_owned();
        let file_type = file_type(mode).ok_or_else(|| UnpackError::BadFileType {
            index: self.index,
            path: path.clone(),
            offset: start,
            mode,
        })?;
        if size > self.limits.max_entry_size {
            return Err(UnpackError::EntryTooLarge {
                format: FORMAT,
                index: self.index,
                path,
                offset: start,
                declared: size,
                limit: format!("the limit is {} bytes", self.limits.max_entry_size),
            });
        }
        let is_link = file_type == EntryType::Symlink;
        if is_link && size > self.limits.max_name_len {
            return Err(UnpackError::NameTooLong {
                format: FORMAT,
                index: self.index,
                offset: start,
                len: size,
                max: self.limits.max_name_len,
            });
        }
        let keep = is_link
            || (size <= self.limits.max_kept_entry
                && self.kept_total.saturating_add(size) <= self.limits.max_kept_total);
        let (sha256, content) = self.read_content(size, keep)?;
        if let Some(c) = &content {
            self.kept_total = self.kept_total.saturating_add(u64::try_from(c.len()).unwrap_or(u64::MAX));
        }
        let link_target =
            if is_link { content.as_deref().map(|c| String::from_utf8_lossy(c).into_owned()) } else { None };
        let entry = CpioEntry {
            index: self.index,
            offset: start,
            path,
            file_type,
            mode,
            ino,
            uid,
            gid,
            nlink,
            mtime,
            size,
            dev: (devmajor, devminor),
            rdev: (rdevmajor, rdevminor),
            check,
            link_target,
            sha256,
            content,
        };
        self.index += 1;
        Ok(Some(entry))
    }

    /// Reads the NUL-terminated name and the padding after it.
    fn read_name(&mut self, start: u64, namesize: u32) -> Result<Vec<u8>, UnpackError> {
        let index = self.index;
        let bad = |reason| UnpackError::BadName { format: FORMAT, index, offset: start, reason };
        let len = u64::from(namesize);
        if len <= 1 {
            return Err(bad("the name is empty (namesize is 0 or 1)"));
        }
        if len - 1 > self.limits.max_name_len {
            return Err(UnpackError::NameTooLong {
                format: FORMAT,
                index: self.index,
                offset: start,
                len: len - 1,
                max: self.limits.max_name_len,
            });
        }
        let mut name = vec![0u8; usize::try_from(len).unwrap_or(0)];
        self.read_exact(&mut name, "name")?;
        if name.pop() != Some(0) {
            return Err(bad("the name is not NUL-terminated at the length namesize gives"));
        }
        if name.contains(&0) {
            return Err(bad("the name contains a NUL byte before its end"));
        }
        self.read_padding(6 + 8 * 13 + len)?;
        Ok(name)
    }

    /// Hashes `size` content bytes (keeping them if `keep`) and reads the padding after them.
    fn read_content(&mut self, size: u64, keep: bool) -> Result<([u8; 32], Option<Vec<u8>>), UnpackError> {
        let start = self.offset;
        let mut hasher = Sha256::new();
        let mut kept = keep.then(Vec::new);
        let mut left = size;
        while left > 0 {
            let want = usize::try_from(left).unwrap_or(usize::MAX).min(self.chunk.len());
            let n = match self.inner.read(self.chunk.get_mut(..want).unwrap_or_default()) {
                Ok(0) => return Err(self.truncated("content", start, size)),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_error(e)),
            };
            let bytes = self.chunk.get(..n).unwrap_or_default();
            hasher.update(bytes);
            if let Some(k) = kept.as_mut() {
                k.extend_from_slice(bytes);
            }
            let n64 = u64::try_from(n).unwrap_or(u64::MAX);
            left = left.saturating_sub(n64);
            self.offset += n64;
        }
        self.read_padding(size)?;
        Ok((hasher.finalize().into(), kept))
    }

    fn skip_content(&mut self, size: u64) -> Result<(), UnpackError> {
        if size > self.limits.max_entry_size {
            return Err(UnpackError::EntryTooLarge {
                format: FORMAT,
                index: self.index,
                path: "TRAILER!!!".to_string(),
                offset: self.offset,
                declared: size,
                limit: format!("the limit is {} bytes", self.limits.max_entry_size),
            });
        }
        self.read_content(size, false).map(|_| ())
    }

    /// Reads the zero bytes that bring `len` to a multiple of 4.
    fn read_padding(&mut self, len: u64) -> Result<(), UnpackError> {
        let pad = (4 - len % 4) % 4;
        let start = self.offset;
        let mut buf = [0u8; 3];
        let buf = buf.get_mut(..usize::try_from(pad).unwrap_or(0)).unwrap_or_default();
        self.read_exact(buf, "padding")?;
        if buf.iter().any(|&b| b != 0) {
            return Err(UnpackError::BadPadding { format: FORMAT, index: self.index, offset: start });
        }
        Ok(())
    }

    /// Skips zero bytes after a trailer; `false` at the end of the stream.
    fn skip_zeros(&mut self) -> Result<bool, UnpackError> {
        loop {
            let buf = match self.inner.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_error(e)),
            };
            if buf.is_empty() {
                return Ok(false);
            }
            let zeros = buf.iter().take_while(|&&b| b == 0).count();
            let found = zeros < buf.len();
            self.inner.consume(zeros);
            self.offset += u64::try_from(zeros).unwrap_or(u64::MAX);
            if found {
                // The kernel requires the next archive to start 4-byte aligned.
                if !self.offset.is_multiple_of(4) {
                    return Err(UnpackError::TrailingData { format: FORMAT, offset: self.offset });
                }
                return Ok(true);
            }
        }
    }

    fn at_eof(&mut self) -> Result<bool, UnpackError> {
        loop {
            match self.inner.fill_buf() {
                Ok(buf) => return Ok(buf.is_empty()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_error(e)),
            }
        }
    }

    fn read_exact(&mut self, buf: &mut [u8], what: &'static str) -> Result<(), UnpackError> {
        let start = self.offset;
        let needed = u64::try_from(buf.len()).unwrap_or(u64::MAX);
        let filled = read_full(&mut self.inner, buf).map_err(|e| self.io_error(e))?;
        self.offset += u64::try_from(filled).unwrap_or(u64::MAX);
        if filled < buf.len() {
            return Err(self.truncated(what, start, needed));
        }
        Ok(())
    }

    fn truncated(&self, what: &'static str, offset: u64, needed: u64) -> UnpackError {
        UnpackError::Truncated { format: FORMAT, index: self.index, what, offset, needed }
    }

    fn io_error(&self, source: io::Error) -> UnpackError {
        UnpackError::read_failed(FORMAT, self.offset, source)
    }
}

/// Parses eight ASCII hex digits (upper or lower case).
fn parse_hex(text: &[u8]) -> Option<u32> {
    let mut value = 0u32;
    for &c in text {
        let digit = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return None,
        };
        value = value.checked_mul(16)?.checked_add(u32::from(digit))?;
    }
    Some(value)
}

fn file_type(mode: u32) -> Option<EntryType> {
    Some(match mode & S_IFMT {
        0o100000 => EntryType::Regular,
        0o040000 => EntryType::Directory,
        0o120000 => EntryType::Symlink,
        0o020000 => EntryType::CharDevice,
        0o060000 => EntryType::BlockDevice,
        0o010000 => EntryType::Fifo,
        0o140000 => EntryType::Socket,
        _ => return None,
    })
}

/// Reads a whole archive stream (every concatenated archive) into a list of entries.
pub(crate) fn read_all<R: Read>(inner: R, limits: &Limits) -> Result<(Vec<CpioEntry>, u32), UnpackError> {
    let mut reader = CpioReader::new(inner, *limits);
    let mut entries = Vec::new();
    while let Some(entry) = reader.next_entry()? {
        entries.push(entry);
    }
    Ok((entries, reader.archives()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::cpio::CpioWriter;

    fn sample() -> Vec<u8> {
        let mut w = CpioWriter::new(Vec::new(), 1_700_000_000);
        w.add_directory("etc", 0o755).unwrap();
        w.add_file("etc/motd", 0o644, 3, &mut &b"hi\n"[..]).unwrap();
        w.add_symlink("bin", "usr/bin").unwrap();
        w.add_char_device("dev/console", 0o600, 5, 1).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn reads_what_the_writer_wrote() {
        let (entries, archives) = read_all(&sample()[..], &Limits::default()).unwrap();
        assert_eq!(archives, 1);
        let paths: Vec<_> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["etc", "etc/motd", "bin", "dev/console"]);
        assert_eq!(entries[0].file_type, EntryType::Directory);
        assert_eq!(entries[0].nlink, 2);
        assert_eq!(entries[1].permissions(), 0o644);
        assert_eq!(entries[1].mtime, 1_700_000_000);
        assert_eq!(entries[1].content.as_deref(), Some(&b"hi\n"[..]));
        assert_eq!(hex::encode(entries[1].sha256), "98ea6e4f216f2fb4b69fff9b3a44842c38686ca685f3f55dc48c5d3fb1107be4");
        assert_eq!(entries[2].link_target.as_deref(), Some("usr/bin"));
        assert_eq!(entries[3].rdev, (5, 1));
        assert_eq!(entries.iter().map(|e| e.ino).collect::<Vec<_>>(), [1, 2, 3, 4]);
    }

    #[test]
    fn reads_concatenated_archives_with_zero_padding() {
        let mut data = sample();
        data.extend_from_slice(&[0; 512]);
        data.extend_from_slice(&sample());
        let (entries, archives) = read_all(&data[..], &Limits::default()).unwrap();
        assert_eq!((entries.len(), archives), (8, 2));
        assert_eq!(entries[4].index, 4);
    }

    #[test]
    fn rejects_bad_hex_naming_field_and_offset() {
        let mut data = sample();
        data[6 + 8] = b'G'; // first digit of entry 0's mode
        let err = read_all(&data[..], &Limits::default()).unwrap_err();
        assert_eq!(err.to_string(), "cpio entry 0: field `mode` at byte offset 14 is not a valid number: `G00041ED`");
    }

    #[test]
    fn rejects_missing_trailer() {
        let data = sample();
        let cut = data.len() - 124; // drop the trailer entry (110 + 11 + 3 padding)
        let err = read_all(&data[..cut], &Limits::default()).unwrap_err();
        assert!(matches!(err, UnpackError::MissingTrailer { entries: 4, .. }), "{err}");
    }

    #[test]
    fn rejects_non_zero_name_padding() {
        let mut data = sample();
        data[114] = 1; // "etc\0" ends at 114; two padding bytes follow
        let err = read_all(&data[..], &Limits::default()).unwrap_err();
        assert!(matches!(err, UnpackError::BadPadding { index: 0, offset: 114, .. }), "{err}");
    }

    #[test]
    fn rejects_name_longer_than_the_limit() {
        let limits = Limits { max_name_len: 2, ..Limits::default() };
        let err = read_all(&sample()[..], &limits).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cpio entry 0 at byte offset 0: name or link target of 3 bytes exceeds the limit of 2"
        );
    }
}
