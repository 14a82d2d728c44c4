//! Our tar reader against the `tar` crate's, on the same bytes: the differential test (`tests/it/tar_crate.rs`) and
//! fuzz target (`fuzz/fuzz_targets/tar_differential.rs`).
//!
//! Our reader is stricter by design (see `builder/README.md`, "tar"): it refuses absolute paths, `..`, entries under
//! a symlink, trailing data, archives without an end marker and anything beyond its limits, where the `tar` crate
//! reads on. So only one direction is checked: whatever our reader accepts, the `tar` crate must read as the same
//! entries (path, type, mode, size, content, link target). Agreement there is what matters: a member that one reader
//! sees and the other does not is how an archive smuggles content past a checker (tar-rs' PAX size desync,
//! GHSA-3cv2-h65g-fgmm).

use std::io::Read;

use sha2::{Digest, Sha256};

use super::read::read_all;
use crate::format::{EntryType, Limits};

/// One entry as both readers report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The path, without a trailing `/`.
    pub path: String,
    /// The entry type.
    pub kind: EntryType,
    /// Permission bits.
    pub mode: u32,
    /// Content size.
    pub size: u64,
    /// SHA-256 of the content.
    pub sha256: [u8; 32],
    /// Symlink or hard-link target.
    pub link: Option<String>,
}

/// The outcome of [`compare`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Agreement {
    /// Both readers read these entries.
    Same(Vec<Member>),
    /// Our reader refused the archive (the `tar` crate's view is not checked): its error.
    OursRefuses(String),
    /// Our reader accepted it and the `tar` crate could not read it, or read other entries: both views.
    Differ {
        /// Our entries.
        ours: Vec<Member>,
        /// The `tar` crate's entries, or its error.
        theirs: Result<Vec<Member>, String>,
    },
}

/// Reads `data` with both readers (ours with `limits`) and compares.
pub fn compare(data: &[u8], limits: &Limits) -> Agreement {
    let ours = match read_all(data, u64::try_from(data.len()).ok(), limits) {
        Ok(entries) => entries,
        Err(err) => return Agreement::OursRefuses(err.to_string()),
    };
    let ours: Vec<Member> = ours
        .into_iter()
        .map(|e| Member {
            path: e.path,
            kind: e.file_type,
            mode: e.mode & 0o7777,
            size: e.size,
            sha256: e.sha256,
            link: e.link_target,
        })
        .collect();
    let theirs = tar_crate_members(data);
    if theirs.as_ref().is_ok_and(|t| *t == ours) {
        return Agreement::Same(ours);
    }
    Agreement::Differ { ours, theirs }
}

/// The entries the `tar` crate reads (extension headers applied, as ours does).
fn tar_crate_members(data: &[u8]) -> Result<Vec<Member>, String> {
    let mut archive = tar::Archive::new(data);
    let mut out = Vec::new();
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let header = entry.header();
        let kind = match entry_type(header.entry_type()) {
            Some(kind) => kind,
            None => return Err(format!("entry type {:?} that our reader has no name for", header.entry_type())),
        };
        let mode = header.mode().map_err(|e| e.to_string())? & 0o7777;
        let path = String::from_utf8_lossy(&entry.path_bytes()).trim_end_matches('/').to_string();
        // Only links have a target (a stray `linkname` on a regular file means nothing, to either reader).
        let link = entry
            .link_name_bytes()
            .filter(|_| matches!(kind, EntryType::Symlink | EntryType::Hardlink))
            .map(|l| String::from_utf8_lossy(&l).into_owned());
        let size = entry.size();
        let mut hasher = Sha256::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = entry.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            hasher.update(buf.get(..n).unwrap_or_default());
        }
        out.push(Member { path, kind, mode, size, sha256: hasher.finalize().into(), link });
    }
    Ok(out)
}

fn entry_type(t: tar::EntryType) -> Option<EntryType> {
    Some(match t {
        tar::EntryType::Regular | tar::EntryType::Continuous => EntryType::Regular,
        tar::EntryType::Directory => EntryType::Directory,
        tar::EntryType::Symlink => EntryType::Symlink,
        tar::EntryType::Link => EntryType::Hardlink,
        tar::EntryType::Char => EntryType::CharDevice,
        tar::EntryType::Block => EntryType::BlockDevice,
        tar::EntryType::Fifo => EntryType::Fifo,
        _ => return None,
    })
}
