//! A streaming, bounded reader of ustar and GNU tar archives (the `.cvm.tar` publishing bundle).
//!
//! A 512-byte header per entry (POSIX.1-1988 ustar layout; GNU `ustar  ` magic accepted, as are GNU `L`/`K` long
//! names and pax `x` records for `path`, `linkpath` and `size`), the content padded to 512 bytes, two zero blocks at the
//! end. Entries are checked as if they were to be extracted: absolute paths, `..` components and links that leave the
//! archive root are errors. A declared size beyond the limits or beyond the known stream length fails before any
//! content is read.

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::collections::BTreeSet;
use std::io::{self, Read};

use sha2::{Digest, Sha256};

use crate::format::error::{escape, PathProblem, UnpackError};
use crate::format::{EntryType, Limits};
use crate::sys::io::read_full;

const FORMAT: &str = "tar";
const BLOCK: u64 = 512;
/// Largest pax or GNU long-name record accepted.
const MAX_EXTENSION: u64 = 64 * 1024;

/// One tar entry's metadata, digest and (if small enough) content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntry {
    /// 0-based position (extension headers are not counted).
    pub index: u64,
    /// Byte offset of the entry's (first) header.
    pub offset: u64,
    /// The path (from pax `path`, GNU long name, or ustar prefix/name), without a trailing `/`.
    pub path: String,
    /// The entry type.
    pub file_type: EntryType,
    /// Permission bits.
    pub mode: u32,
    /// Owner id.
    pub uid: u64,
    /// Group id.
    pub gid: u64,
    /// Owner name.
    pub uname: String,
    /// Group name.
    pub gname: String,
    /// Modification time.
    pub mtime: u64,
    /// Content size.
    pub size: u64,
    /// Symlink or hard-link target.
    pub link_target: Option<String>,
    /// SHA-256 of the content.
    pub sha256: [u8; 32],
    /// The content, when within the keep limits.
    pub content: Option<Vec<u8>>,
}

/// Extension values that apply to the next real header.
#[derive(Default)]
struct Pending {
    path: Option<String>,
    link: Option<String>,
    size: Option<u64>,
    /// A pax extended header was read for this member.
    pax: bool,
}

/// Reads tar entries one at a time.
pub struct TarReader<R: Read> {
    inner: R,
    limits: Limits,
    stream_len: Option<u64>,
    offset: u64,
    index: u64,
    kept_total: u64,
    done: bool,
    chunk: Vec<u8>,
    /// Paths of the symlinks seen so far: no later entry may lie beneath one (the classic two-step escape,
    /// `a -> ..` then `a/x`), so link targets can be resolved lexically.
    symlinks: BTreeSet<String>,
}

impl<R: Read> TarReader<R> {
    /// Starts reading; `stream_len` (if known, e.g. a file's length) lets oversized declarations fail at once.
    pub fn new(inner: R, stream_len: Option<u64>, limits: Limits) -> Self {
        TarReader {
            inner,
            limits,
            stream_len,
            offset: 0,
            index: 0,
            kept_total: 0,
            done: false,
            chunk: vec![0; 64 * 1024],
            symlinks: BTreeSet::new(),
        }
    }

    /// The next entry, or `None` after the end-of-archive blocks.
    pub fn next_entry(&mut self) -> Result<Option<TarEntry>, UnpackError> {
        let mut pending = Pending::default();
        let mut first_offset = None;
        while !self.done {
            let start = self.offset;
            let mut header = [0u8; 512];
            if !self.read_block_or_eof(&mut header)? {
                return Err(UnpackError::MissingTrailer {
                    format: FORMAT,
                    expected: "two zero blocks",
                    entries: self.index,
                    offset: self.offset,
                });
            }
            if header.iter().all(|&b| b == 0) {
                if let Some(offset) = first_offset {
                    // An extension header (long name, pax) must describe a member; one that describes nothing is
                    // read as an error by some readers and ignored by others (issue 10): refused.
                    return Err(UnpackError::DanglingExtension { index: self.index, offset });
                }
                self.finish_archive()?;
                break;
            }
            first_offset.get_or_insert(start);
            if let Some(entry) = self.read_header(&header, start, &mut pending)? {
                return Ok(Some(TarEntry { offset: first_offset.unwrap_or(start), ..entry }));
            }
        }
        Ok(None)
    }

    /// Parses one header; extension headers fill `pending` and return `None`.
    fn read_header(
        &mut self,
        h: &[u8; 512],
        start: u64,
        pending: &mut Pending,
    ) -> Result<Option<TarEntry>, UnpackError> {
        self.check_checksum(h, start)?;
        let gnu = match h.get(257..265) {
            Some(b"ustar\x0000") => false,
            Some(b"ustar  \0") => true,
            other => {
                return Err(UnpackError::BadMagic {
                    format: FORMAT,
                    index: self.index,
                    offset: start + 257,
                    found: escape(other.unwrap_or_default()),
                    expected: "`ustar\\0` `00` (POSIX) or `ustar  \\0` (GNU)",
                })
            }
        };
        let declared = self.number(h, 124, 12, "size", start)?;
        let flag = h.get(156).copied().unwrap_or(0);
        match flag {
            b'L' | b'K' | b'x' | b'g' => {
                let data = self.read_extension(declared, start)?;
                // One extension of each kind per member, and one source of its path and of its link: readers
                // differ on which of two wins (the `tar` crate refuses two; others take the first or the last).
                let conflict = |what| UnpackError::ConflictingExtensions { index: self.index, offset: start, what };
                match flag {
                    b'L' if pending.path.is_some() => return Err(conflict("a second long name or path")),
                    b'K' if pending.link.is_some() => return Err(conflict("a second long link name or linkpath")),
                    b'x' if pending.pax => return Err(conflict("a second pax extended header")),
                    b'L' => pending.path = Some(self.long_name(&data, start)?),
                    b'K' => pending.link = Some(self.long_name(&data, start)?),
                    b'x' => {
                        pending.pax = true;
                        self.parse_pax(&data, start, pending)?;
                    }
                    _ => {} // pax global records do not change entry identity
                }
                return Ok(None);
            }
            _ => {}
        }
        if self.index >= self.limits.max_entries {
            return Err(UnpackError::TooManyEntries { format: FORMAT, max: self.limits.max_entries, offset: start });
        }
        let file_type = match flag {
            b'0' | b'\0' | b'7' => EntryType::Regular,
            b'1' => EntryType::Hardlink,
            b'2' => EntryType::Symlink,
            b'3' => EntryType::CharDevice,
            b'4' => EntryType::BlockDevice,
            b'5' => EntryType::Directory,
            b'6' => EntryType::Fifo,
            other => {
                return Err(UnpackError::UnsupportedType { index: self.index, offset: start, flag: escape(&[other]) })
            }
        };
        let path = match pending.path.take() {
            Some(p) => p,
            None => header_path(h, gnu),
        };
        let path = path.trim_end_matches('/').to_string();
        self.check_path(&path, start)?;
        let link_target = match pending.link.take() {
            Some(l) => Some(l),
            None => Some(c_string(field(h, 157, 100))).filter(|l| !l.is_empty()),
        }
        .filter(|_| matches!(file_type, EntryType::Symlink | EntryType::Hardlink));
        if let Some(target) = &link_target {
            self.check_link(&path, target, file_type, start)?;
        }
        if file_type == EntryType::Symlink {
            self.symlinks.insert(path.clone());
        }
        let size = match pending.size.take() {
            // pax `size` stands in for a header field too small for it; a header that says another non-zero size
            // makes two readers see two archives (the desync of GHSA-3cv2-h65g-fgmm): refused.
            Some(pax) if declared != 0 && declared != pax => {
                return Err(UnpackError::PaxSizeMismatch { index: self.index, offset: start, pax, header: declared })
            }
            Some(pax) => pax,
            None => declared,
        };
        // Links and directories carry no content in practice; read whatever is declared so the stream stays aligned.
        self.check_size(&path, size, start)?;
        let keep =
            size <= self.limits.max_kept_entry && self.kept_total.saturating_add(size) <= self.limits.max_kept_total;
        let (sha256, content) = self.read_content(size, keep)?;
        if let Some(c) = &content {
            self.kept_total = self.kept_total.saturating_add(u64::try_from(c.len()).unwrap_or(u64::MAX));
        }
        let mode = u32::try_from(self.number(h, 100, 8, "mode", start)? & 0o7777).unwrap_or(0);
        let entry = TarEntry {
            index: self.index,
            offset: start,
            path,
            file_type,
            mode,
            uid: self.number(h, 108, 8, "uid", start)?,
            gid: self.number(h, 116, 8, "gid", start)?,
            uname: c_string(field(h, 265, 32)),
            gname: c_string(field(h, 297, 32)),
            mtime: self.number(h, 136, 12, "mtime", start)?,
            size,
            link_target,
            sha256,
            content,
        };
        self.index += 1;
        Ok(Some(entry))
    }

    fn check_checksum(&self, h: &[u8; 512], start: u64) -> Result<(), UnpackError> {
        let stored = self.number(h, 148, 8, "chksum", start)?;
        // The checksum field itself counts as eight spaces (POSIX ustar). Only the POSIX unsigned sum is accepted:
        // the signed sums of some old tars are refused, as the `tar` crate refuses them, so that an archive both
        // readers accept is one they read alike (`differential.rs`; found by its fuzz target, issue 10).
        let unsigned: u64 =
            h.iter().enumerate().map(|(i, &b)| if (148..156).contains(&i) { 32 } else { u64::from(b) }).sum();
        if stored == unsigned {
            return Ok(());
        }
        Err(UnpackError::BadChecksum { index: self.index, offset: start, stored, computed: unsigned })
    }

    fn check_path(&self, path: &str, start: u64) -> Result<(), UnpackError> {
        let problem = if path.is_empty() {
            Some(PathProblem::Empty)
        } else if path.starts_with('/') {
            Some(PathProblem::Absolute)
        } else if path.split('/').any(|c| c == "..") {
            Some(PathProblem::ParentDir)
        } else if path.match_indices('/').any(|(i, _)| path.get(..i).is_some_and(|p| self.symlinks.contains(p))) {
            Some(PathProblem::ThroughSymlink)
        } else {
            None
        };
        match problem {
            Some(problem) => {
                Err(UnpackError::UnsafePath { index: self.index, path: path.to_string(), offset: start, problem })
            }
            None => Ok(()),
        }
    }

    /// Symlink targets resolve relative to the link's directory; hard-link targets relative to the archive root.
    fn check_link(&self, path: &str, target: &str, file_type: EntryType, start: u64) -> Result<(), UnpackError> {
        let base: Vec<&str> = match file_type {
            EntryType::Symlink => {
                let mut parts: Vec<&str> = path.split('/').collect();
                parts.pop();
                parts
            }
            _ => Vec::new(),
        };
        if target.starts_with('/') || !stays_inside(base, target) {
            return Err(UnpackError::EscapingLink {
                index: self.index,
                path: path.to_string(),
                offset: start,
                target: target.to_string(),
            });
        }
        Ok(())
    }

    /// Fails before reading when the declared size is beyond the limits or the known end of the stream.
    fn check_size(&self, path: &str, size: u64, start: u64) -> Result<(), UnpackError> {
        let too_large = |limit: String| UnpackError::EntryTooLarge {
            format: FORMAT,
            index: self.index,
            path: path.to_string(),
            offset: start,
            declared: size,
            limit,
        };
        if size > self.limits.max_entry_size {
            return Err(too_large(format!("the limit is {} bytes", self.limits.max_entry_size)));
        }
        if let Some(len) = self.stream_len {
            let remaining = len.saturating_sub(self.offset);
            if size > remaining {
                return Err(too_large(format!("only {remaining} bytes remain in the stream")));
            }
        }
        Ok(())
    }

    fn read_extension(&mut self, size: u64, start: u64) -> Result<Vec<u8>, UnpackError> {
        if size > MAX_EXTENSION {
            return Err(UnpackError::EntryTooLarge {
                format: FORMAT,
                index: self.index,
                path: "(extension header)".to_string(),
                offset: start,
                declared: size,
                limit: format!("extension headers are limited to {MAX_EXTENSION} bytes"),
            });
        }
        self.check_size("(extension header)", size, start)?;
        let (_, content) = self.read_content(size, true)?;
        Ok(content.unwrap_or_default())
    }

    /// pax records: `<len> <key>=<value>\n`, where `<len>` counts the whole record.
    fn parse_pax(&self, data: &[u8], start: u64, pending: &mut Pending) -> Result<(), UnpackError> {
        let bad = || UnpackError::BadPax { index: self.index, offset: start + BLOCK };
        let mut rest = data;
        while !rest.is_empty() {
            let space = rest.iter().position(|&b| b == b' ').ok_or_else(bad)?;
            let len: usize = std::str::from_utf8(rest.get(..space).ok_or_else(bad)?)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(bad)?;
            let record = rest.get(..len).ok_or_else(bad)?;
            let body = record.get(space + 1..len.checked_sub(1).ok_or_else(bad)?).ok_or_else(bad)?;
            if record.last() != Some(&b'\n') {
                return Err(bad());
            }
            let eq = body.iter().position(|&b| b == b'=').ok_or_else(bad)?;
            let (key, value) = (body.get(..eq).unwrap_or_default(), body.get(eq + 1..).unwrap_or_default());
            let value_str = String::from_utf8_lossy(value).into_owned();
            // A newline inside a record splits it for readers that read records as lines (the `tar` crate), and a NUL
            // inside a path ends it for a C reader: two readers, two archives. Refused (issue 10, `differential.rs`).
            if value.contains(&b'\n') || (matches!(key, b"path" | b"linkpath") && value.contains(&0)) {
                return Err(bad());
            }
            let conflict = |what| UnpackError::ConflictingExtensions { index: self.index, offset: start, what };
            match key {
                b"path" if pending.path.is_some() => return Err(conflict("a pax path beside a long name")),
                b"linkpath" if pending.link.is_some() => {
                    return Err(conflict("a pax linkpath beside a long link name"))
                }
                b"path" => pending.path = Some(value_str),
                b"linkpath" => pending.link = Some(value_str),
                b"size" => pending.size = Some(value_str.parse().map_err(|_| bad())?),
                _ => {}
            }
            rest = rest.get(len..).unwrap_or_default();
        }
        Ok(())
    }

    /// A GNU long name or link (`L`/`K` data): the name and one NUL. Any other NUL is refused: a C reader stops at the
    /// first, the `tar` crate strips only the last, so the two would read different paths (issue 10).
    fn long_name(&self, data: &[u8], start: u64) -> Result<String, UnpackError> {
        // One terminating NUL, as GNU tar writes it; any other NUL (more padding included) is refused.
        let name = data.strip_suffix(&[0]).unwrap_or(data);
        if name.contains(&0) {
            let reason = "a GNU long name or link target with a NUL byte inside";
            return Err(UnpackError::BadName { format: FORMAT, index: self.index, offset: start, reason });
        }
        Ok(String::from_utf8_lossy(name).into_owned())
    }

    /// Reads `size` bytes of content plus padding to the next block.
    fn read_content(&mut self, size: u64, keep: bool) -> Result<([u8; 32], Option<Vec<u8>>), UnpackError> {
        let start = self.offset;
        let padded = size.checked_next_multiple_of(BLOCK).unwrap_or(u64::MAX);
        let mut hasher = Sha256::new();
        let mut kept = keep.then(Vec::new);
        let mut done = 0u64;
        while done < padded {
            let want = usize::try_from(padded - done).unwrap_or(usize::MAX).min(self.chunk.len());
            let n = match self.inner.read(self.chunk.get_mut(..want).unwrap_or_default()) {
                Ok(0) => return Err(self.truncated("content", start, padded)),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_error(e)),
            };
            let n64 = u64::try_from(n).unwrap_or(u64::MAX);
            // Only the first `size` bytes are content; the rest is padding.
            let content_len = usize::try_from(size.saturating_sub(done).min(n64)).unwrap_or(0);
            let bytes = self.chunk.get(..content_len).unwrap_or_default();
            hasher.update(bytes);
            if let Some(k) = kept.as_mut() {
                k.extend_from_slice(bytes);
            }
            done += n64;
            self.offset += n64;
        }
        Ok((hasher.finalize().into(), kept))
    }

    /// After the first zero block: a second must follow; anything after that must be zero (record padding).
    fn finish_archive(&mut self) -> Result<(), UnpackError> {
        self.done = true;
        let mut block = [0u8; 512];
        if !self.read_block_or_eof(&mut block)? {
            return Ok(()); // GNU tar accepts a single zero block at the end of the stream.
        }
        loop {
            let at = self.offset - BLOCK;
            if block.iter().any(|&b| b != 0) {
                return Err(UnpackError::TrailingData { format: FORMAT, offset: at });
            }
            if !self.read_block_or_eof(&mut block)? {
                return Ok(());
            }
        }
    }

    /// Reads one block; `false` at a clean end of stream, an error if the stream ends inside the block.
    fn read_block_or_eof(&mut self, block: &mut [u8; 512]) -> Result<bool, UnpackError> {
        let start = self.offset;
        let filled = read_full(&mut self.inner, block).map_err(|e| self.io_error(e))?;
        self.offset += u64::try_from(filled).unwrap_or(u64::MAX);
        match filled {
            0 => Ok(false),
            n if n < block.len() => Err(self.truncated("header", start, BLOCK)),
            _ => Ok(true),
        }
    }

    /// An octal number field (NUL/space terminated), or GNU base-256 when the high bit of the first byte is set.
    fn number(&self, h: &[u8; 512], at: usize, len: usize, name: &'static str, start: u64) -> Result<u64, UnpackError> {
        let bytes = field(h, at, len);
        let bad = || UnpackError::BadNumber {
            format: FORMAT,
            index: self.index,
            field: name,
            offset: start + u64::try_from(at).unwrap_or(0),
            found: escape(bytes),
        };
        match bytes.split_first() {
            Some((&first, rest)) if first & 0x80 != 0 => {
                if first & 0x40 != 0 {
                    return Err(bad()); // negative
                }
                std::iter::once(first & 0x3f)
                    .chain(rest.iter().copied())
                    .try_fold(0u64, |acc, b| acc.checked_mul(256)?.checked_add(u64::from(b)))
                    .ok_or_else(bad)
            }
            _ => {
                let text: Vec<u8> =
                    bytes.iter().copied().skip_while(|&b| b == b' ').take_while(|&b| b != 0 && b != b' ').collect();
                let rest_ok = bytes.iter().skip_while(|&b| *b == b' ').skip(text.len()).all(|&b| b == 0 || b == b' ');
                if !rest_ok {
                    return Err(bad());
                }
                text.iter()
                    .try_fold(0u64, |acc, &c| {
                        let d = char::from(c).to_digit(8)?;
                        acc.checked_mul(8)?.checked_add(u64::from(d))
                    })
                    .ok_or_else(bad)
            }
        }
    }

    fn truncated(&self, what: &'static str, offset: u64, needed: u64) -> UnpackError {
        UnpackError::Truncated { format: FORMAT, index: self.index, what, offset, needed }
    }

    fn io_error(&self, source: io::Error) -> UnpackError {
        UnpackError::read_failed(FORMAT, self.offset, source)
    }
}

fn field(h: &[u8; 512], at: usize, len: usize) -> &[u8] {
    h.get(at..at + len).unwrap_or_default()
}

/// The bytes up to the first NUL, as (lossy) UTF-8.
fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(bytes.get(..end).unwrap_or_default()).into_owned()
}

/// ustar joins prefix and name with `/`; GNU headers use the prefix bytes for other fields.
fn header_path(h: &[u8; 512], gnu: bool) -> String {
    let name = c_string(field(h, 0, 100));
    let prefix = if gnu { String::new() } else { c_string(field(h, 345, 155)) };
    if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    }
}

/// Whether `target`, resolved lexically from the directory `base`, stays at or below the root.
fn stays_inside<'a>(mut base: Vec<&'a str>, target: &'a str) -> bool {
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if base.pop().is_none() {
                    return false;
                }
            }
            other => base.push(other),
        }
    }
    true
}

/// Reads a whole tar stream.
pub(crate) fn read_all<R: Read>(
    inner: R,
    stream_len: Option<u64>,
    limits: &Limits,
) -> Result<Vec<TarEntry>, UnpackError> {
    let mut reader = TarReader::new(inner, stream_len, *limits);
    let mut entries = Vec::new();
    while let Some(entry) = reader.next_entry()? {
        entries.push(entry);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::tar::TarWriter;

    #[test]
    fn reads_what_the_writer_wrote() {
        let mut w = TarWriter::new(Vec::new(), 1_700_000_000);
        w.add_file("kernel", 0o644, 4, &mut &b"MZ\0\x01"[..]).unwrap();
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(50));
        w.add_file(&long, 0o600, 0, &mut &b""[..]).unwrap();
        let tar = w.finish().unwrap();
        let entries = read_all(&tar[..], Some(u64::try_from(tar.len()).unwrap()), &Limits::default()).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].path, "kernel");
        assert_eq!((entries[0].mode, entries[0].mtime, entries[0].size), (0o644, 1_700_000_000, 4));
        assert_eq!(entries[0].content.as_deref(), Some(&b"MZ\0\x01"[..]));
        assert_eq!(entries[1].path, long);
        assert_eq!(entries[1].offset, 1024);
    }

    #[test]
    fn stays_inside_resolves_lexically() {
        assert!(stays_inside(vec!["a", "b"], "../c"));
        assert!(stays_inside(vec!["a"], ".."));
        assert!(!stays_inside(vec!["a"], "../.."));
        assert!(!stays_inside(vec![], "x/../../y"));
    }
}
