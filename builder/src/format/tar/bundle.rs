//! The publishing bundle `<name>-<version>.cvm.tar`, read into memory (within limits) without touching the disk.

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::io::Read;

use super::read::{read_all, TarEntry};
use crate::format::error::UnpackError;
use crate::format::{EntryType, Limits};

/// A bundle holds a handful of members (the outputs and the manifest); more than this is not a cvmforge bundle and is
/// refused before it can cost time or memory.
pub const MAX_MEMBERS: u64 = 64;

/// `limits` with every member kept whole (bundles are compared and checked member by member).
pub fn keep_members_whole(limits: &Limits) -> Limits {
    Limits { max_kept_entry: limits.max_entry_size, max_kept_total: limits.max_total_size, ..*limits }
}

/// The limits for reading a published cvmforge bundle (`verify`, `inspect`, `run`): at most [`MAX_MEMBERS`] members,
/// each kept whole, within `base`'s size limits.
pub fn publication_limits(base: &Limits) -> Limits {
    Limits { max_entries: MAX_MEMBERS, ..keep_members_whole(base) }
}

/// A bundle's entries, each regular file with its content.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The tar entries in archive order.
    pub entries: Vec<TarEntry>,
}

impl Bundle {
    /// The content of the regular-file member `name`, if present and kept.
    pub fn member(&self, name: &str) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|e| e.path == name && e.file_type == EntryType::Regular)
            .and_then(|e| e.content.as_deref())
    }

    /// Names of the regular-file members, in archive order.
    pub fn member_names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().filter(|e| e.file_type == EntryType::Regular).map(|e| e.path.as_str())
    }
}

/// Reads a bundle. Every member's content is kept, so `limits.max_kept_entry` and `max_kept_total` bound memory; a
/// member larger than them is an error rather than a silently missing content.
pub fn read_bundle<R: Read>(input: R, stream_len: Option<u64>, limits: &Limits) -> Result<Bundle, UnpackError> {
    let entries = read_all(input, stream_len, limits)?;
    if let Some(e) = entries.iter().find(|e| e.file_type == EntryType::Regular && e.content.is_none()) {
        return Err(UnpackError::EntryTooLarge {
            format: "tar",
            index: e.index,
            path: e.path.clone(),
            offset: e.offset,
            declared: e.size,
            limit: format!(
                "bundle members are read into memory, up to {} bytes each and {} in total",
                limits.max_kept_entry, limits.max_kept_total
            ),
        });
    }
    Ok(Bundle { entries })
}
