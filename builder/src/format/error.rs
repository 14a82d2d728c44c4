//! Why an archive could not be read.

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use thiserror::Error;

/// What is wrong with an entry path (tar entries are checked as if they were going to be extracted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathProblem {
    /// The path is empty.
    Empty,
    /// The path starts with `/`.
    Absolute,
    /// The path has a `..` component.
    ParentDir,
    /// A parent directory of the path is a symlink from an earlier entry (extraction would follow it).
    ThroughSymlink,
}

impl std::fmt::Display for PathProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PathProblem::Empty => "it is empty",
            PathProblem::Absolute => "it is absolute",
            PathProblem::ParentDir => "it has a `..` component",
            PathProblem::ThroughSymlink => "a parent directory is a symlink from an earlier entry",
        })
    }
}

/// Why an archive could not be read. Offsets are byte offsets into the (decompressed) archive stream.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum UnpackError {
    /// Reading (or decompressing) failed.
    #[error("reading the {format} stream failed at byte offset {offset}")]
    Io {
        /// `cpio`, `tar`, `gzip`, ...
        format: &'static str,
        /// Where.
        offset: u64,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The stream ended inside a structure.
    #[error("{format} entry {index} is truncated: the stream ends inside its {what} (which starts at byte offset {offset} and needs {needed} bytes)")]
    Truncated {
        /// `cpio` or `tar`.
        format: &'static str,
        /// Entry index (0-based).
        index: u64,
        /// What was being read: `header`, `name`, `content`, ...
        what: &'static str,
        /// Where it starts.
        offset: u64,
        /// How many bytes it needs.
        needed: u64,
    },
    /// The stream ended without an end-of-archive marker.
    #[error("{format} archive has no end marker (`{expected}`) after {entries} entries (stream ends at byte offset {offset})")]
    MissingTrailer {
        /// `cpio` or `tar`.
        format: &'static str,
        /// What was expected.
        expected: &'static str,
        /// Entries read.
        entries: u64,
        /// End of the stream.
        offset: u64,
    },
    /// A header does not start with the expected magic.
    #[error("{format} entry {index} at byte offset {offset}: bad magic `{found}`, expected {expected}")]
    BadMagic {
        /// `cpio` or `tar`.
        format: &'static str,
        /// Entry index.
        index: u64,
        /// Header offset.
        offset: u64,
        /// The bytes found (escaped).
        found: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A numeric header field is not valid hex/octal.
    #[error("{format} entry {index}: field `{field}` at byte offset {offset} is not a valid number: `{found}`")]
    BadNumber {
        /// `cpio` or `tar`.
        format: &'static str,
        /// Entry index.
        index: u64,
        /// The field.
        field: &'static str,
        /// Offset of the field.
        offset: u64,
        /// Its bytes (escaped).
        found: String,
    },
    /// The name is empty, too long, or not NUL-terminated where its size says.
    #[error("{format} entry {index} at byte offset {offset}: bad name ({reason})")]
    BadName {
        /// `cpio` or `tar`.
        format: &'static str,
        /// Entry index.
        index: u64,
        /// Header offset.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// A name or link target is longer than [`super::Limits::max_name_len`].
    #[error(
        "{format} entry {index} at byte offset {offset}: name or link target of {len} bytes exceeds the limit of {max}"
    )]
    NameTooLong {
        /// `cpio` or `tar`.
        format: &'static str,
        /// Entry index.
        index: u64,
        /// Header offset.
        offset: u64,
        /// The declared length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// Padding bytes that must be zero are not.
    #[error("{format} entry {index}: non-zero padding at byte offset {offset}")]
    BadPadding {
        /// `cpio` or `tar`.
        format: &'static str,
        /// Entry index.
        index: u64,
        /// Offset of the padding.
        offset: u64,
    },
    /// The mode has file-type bits no Linux file type uses.
    #[error("cpio entry {index} `{path}` at byte offset {offset}: mode {mode:#o} has an unknown file type")]
    BadFileType {
        /// Entry index.
        index: u64,
        /// The entry.
        path: String,
        /// Header offset.
        offset: u64,
        /// The mode.
        mode: u32,
    },
    /// A tar type flag this reader does not accept.
    #[error("tar entry {index} at byte offset {offset}: unsupported type flag `{flag}`")]
    UnsupportedType {
        /// Entry index.
        index: u64,
        /// Header offset.
        offset: u64,
        /// The flag, escaped.
        flag: String,
    },
    /// More entries than [`super::Limits::max_entries`].
    #[error("{format} archive has too many entries: more than {max} (entry {max} starts at byte offset {offset})")]
    TooManyEntries {
        /// `cpio` or `tar`.
        format: &'static str,
        /// The limit.
        max: u64,
        /// Where the entry over the limit starts.
        offset: u64,
    },
    /// An entry declares more bytes than allowed, or than the stream holds.
    #[error(
        "{format} entry {index} `{path}` at byte offset {offset} declares {declared} bytes of content, but {limit}"
    )]
    EntryTooLarge {
        /// `cpio` or `tar`.
        format: &'static str,
        /// Entry index.
        index: u64,
        /// The entry.
        path: String,
        /// Header offset.
        offset: u64,
        /// Declared size.
        declared: u64,
        /// Why that is too much.
        limit: String,
    },
    /// The (decompressed) stream is longer than [`super::Limits::max_total_size`].
    #[error("the {format} stream exceeds the cap of {max} bytes (a decompression bomb?)")]
    TotalTooLarge {
        /// What was being read (`decompressed gzip`, ...).
        format: &'static str,
        /// The cap.
        max: u64,
    },
    /// A tar header checksum does not match.
    #[error(
        "tar entry {index} at byte offset {offset}: header checksum {stored} does not match the computed {computed}"
    )]
    BadChecksum {
        /// Entry index.
        index: u64,
        /// Header offset.
        offset: u64,
        /// Stored value.
        stored: u64,
        /// Computed value.
        computed: u64,
    },
    /// A tar entry path that would land outside the extraction directory.
    #[error("tar entry {index} `{path}` at byte offset {offset}: unsafe path: {problem}")]
    UnsafePath {
        /// Entry index.
        index: u64,
        /// The path.
        path: String,
        /// Header offset.
        offset: u64,
        /// What is wrong.
        problem: PathProblem,
    },
    /// A tar link whose target is outside the archive root.
    #[error("tar entry {index} `{path}` at byte offset {offset}: link target `{target}` escapes the archive root")]
    EscapingLink {
        /// Entry index.
        index: u64,
        /// The link.
        path: String,
        /// Header offset.
        offset: u64,
        /// Its target.
        target: String,
    },
    /// A pax `size` record and the header's size field disagree: readers that trust one or the other see different
    /// archives (the desync of GHSA-3cv2-h65g-fgmm).
    #[error("tar entry {index} at byte offset {offset}: its pax `size` is {pax} but its header says {header}; readers that trust one or the other would see different members")]
    PaxSizeMismatch {
        /// Entry index.
        index: u64,
        /// Header offset.
        offset: u64,
        /// The pax record's size.
        pax: u64,
        /// The ustar header's size.
        header: u64,
    },
    /// An extension header (GNU long name or link, pax record) at the end of the archive, with no member after it.
    #[error("tar entry {index}: the extension header at byte offset {offset} describes a member that never comes")]
    DanglingExtension {
        /// Entry index.
        index: u64,
        /// Offset of the extension header.
        offset: u64,
    },
    /// Two extension headers that say the same thing about one member (two long names, a long name and a pax path).
    #[error("tar entry {index} at byte offset {offset}: {what} for the same member (readers disagree on which wins)")]
    ConflictingExtensions {
        /// Entry index.
        index: u64,
        /// Offset of the second extension header.
        offset: u64,
        /// What was repeated.
        what: &'static str,
    },
    /// A malformed pax extended header record.
    #[error("tar entry {index} at byte offset {offset}: malformed pax extended header record")]
    BadPax {
        /// Entry index.
        index: u64,
        /// Offset of the pax content.
        offset: u64,
    },
    /// Non-zero bytes after the end of the archive.
    #[error("{format} archive: unexpected data after the end marker at byte offset {offset}")]
    TrailingData {
        /// `cpio` or `tar`.
        format: &'static str,
        /// Where.
        offset: u64,
    },
    /// A gzip or zstd header that cannot be parsed.
    #[error("{format} header: {reason}")]
    BadCompressionHeader {
        /// `gzip` or `zstd`.
        format: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The decompressed stream is not a cpio archive.
    #[error("not an initrd: the {compression} stream does not start with the newc magic `070701` (found `{found}`)")]
    NotCpio {
        /// `gzip`, `zstd` or `none`.
        compression: &'static str,
        /// The first bytes, escaped.
        found: String,
    },
}

/// Escapes up to 16 bytes for an error message.
pub(crate) fn escape(bytes: &[u8]) -> String {
    bytes.iter().take(16).flat_map(|&b| std::ascii::escape_default(b)).map(char::from).collect()
}

impl UnpackError {
    /// A read of an archive failed at `offset`: the read cap of [`super::io`] (reported as the archive being too
    /// large), or any other I/O error. The one mapping the cpio and tar readers share.
    pub(crate) fn read_failed(format: &'static str, offset: u64, source: std::io::Error) -> UnpackError {
        match super::io::cap_exceeded(&source) {
            Some(max) => UnpackError::TotalTooLarge { format, max },
            None => UnpackError::Io { format, offset, source },
        }
    }
}
