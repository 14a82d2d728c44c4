//! Input files as bytes, memory-mapped when possible.
//!
//! `cvmforge measure` hashes tens of MiB per run, and a `read` copies every byte from the page cache once more before
//! it is hashed (about a third of the CPU time of `measure snp` on a typical image). A read-only private mapping
//! hashes the page-cache pages where they are.
//!
//! The cost of a mapping is that the file can change under it. [`InputBytes::check_unchanged`] compares the length
//! and mtime before and after use, so a file rewritten while it was measured is reported instead of measured half
//! old, half new. A file truncated while mapped raises SIGBUS; `crate::sys::sigbus` turns that into an error message that
//! names the file and exit status 1 instead of a silent death. Files that cannot be mapped (pipes, `/dev/stdin`, empty files, file systems
//! without mmap) are read instead.
#![allow(unsafe_code)]

use std::fs::Metadata;
use std::io::{self, Read};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use memmap2::{Mmap, MmapOptions};

/// The contents of an input file.
#[derive(Debug)]
pub struct InputBytes {
    path: PathBuf,
    contents: Contents,
    /// Length and mtime when the file was opened, for [`InputBytes::check_unchanged`].
    identity: Option<(u64, SystemTime)>,
    /// Names the file if a truncation makes reading the mapping raise SIGBUS (declared after `contents`: dropped after
    /// the mapping is gone).
    _sigbus: Option<crate::sys::sigbus::Guard>,
}

#[derive(Debug)]
enum Contents {
    Mapped(Mmap),
    Read(Vec<u8>),
}

impl InputBytes {
    /// Opens `path` and maps it, or reads it when it cannot be mapped. Errors name the path.
    pub fn open(path: &Path) -> io::Result<Self> {
        let mut file = fs_err::File::open(path)?;
        let meta = file.metadata()?;
        let identity = identity(&meta);
        let (contents, sigbus) = match map_regular_file(file.file(), &meta) {
            Some(map) => {
                let guard = crate::sys::sigbus::guard(map.as_ptr(), map.len(), &path.to_string_lossy());
                (Contents::Mapped(map), Some(guard))
            }
            None => {
                let mut bytes = Vec::new();
                file.read_to_end(&mut bytes)?;
                (Contents::Read(bytes), None)
            }
        };
        test_hook_truncate(path);
        Ok(InputBytes { path: path.to_owned(), contents, identity, _sigbus: sigbus })
    }

    /// Maps every page of a mapped file now (`MADV_POPULATE_READ`), so that a thread that then hashes it takes no
    /// page faults: about 1.4 ms of a 12 MiB kernel's 8.6 ms, which another thread can pay meanwhile. A no-op for
    /// files that were read, and on kernels older than 5.14.
    pub fn prefault(&self) {
        if let Contents::Mapped(map) = &self.contents {
            let _ = map.advise(memmap2::Advice::PopulateRead);
        }
    }

    /// Fails if the file's length or mtime differ from when it was opened: its digest would be of no version of it.
    pub fn check_unchanged(&self) -> io::Result<()> {
        let Some(before) = self.identity else {
            return Ok(());
        };
        let now = fs_err::metadata(&self.path)?;
        if identity(&now) == Some(before) {
            return Ok(());
        }
        Err(io::Error::other(format!(
            "`{}` changed while it was being measured; measure it again",
            self.path.display()
        )))
    }
}

impl Deref for InputBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.contents {
            Contents::Mapped(map) => map,
            Contents::Read(bytes) => bytes,
        }
    }
}

/// Debug builds only (the integration tests): with `CVMFORGE_TEST_TRUNCATE_AFTER_MAP=PATH`, truncate PATH right after
/// it was opened, so that a test can show what a truncation under a mapping does without racing another process.
fn test_hook_truncate(path: &Path) {
    #[cfg(debug_assertions)]
    if std::env::var_os("CVMFORGE_TEST_TRUNCATE_AFTER_MAP").is_some_and(|p| Path::new(&p) == path) {
        let _ = std::fs::OpenOptions::new().write(true).open(path).and_then(|f| f.set_len(0));
    }
    let _ = path;
}

fn identity(meta: &Metadata) -> Option<(u64, SystemTime)> {
    Some((meta.len(), meta.modified().ok()?)).filter(|_| meta.is_file())
}

/// A read-only mapping of a non-empty regular file, or `None` to fall back to reading.
fn map_regular_file(file: &std::fs::File, meta: &Metadata) -> Option<Mmap> {
    if !meta.is_file() || meta.len() == 0 {
        return None;
    }
    // SAFETY: the mapping is private and read-only, so this process never writes through it. Another process may
    // still modify the file; the bytes are only hashed and parsed with bounds checks, never trusted for memory
    // safety, and `check_unchanged` reports such a change. See the module documentation for truncation.
    let map = unsafe { MmapOptions::new().map(file) }.ok()?;
    // The whole file is read front to back once: ask for read-ahead and fewer, larger page faults.
    let _ = map.advise(memmap2::Advice::Sequential);
    Some(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_a_regular_file_and_reads_a_pipe_like_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("input");
        std::fs::write(&path, b"firmware bytes").unwrap();
        let bytes = InputBytes::open(&path).unwrap();
        assert!(matches!(bytes.contents, Contents::Mapped(_)));
        assert_eq!(&*bytes, b"firmware bytes");
        assert!(bytes.check_unchanged().is_ok());

        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        let bytes = InputBytes::open(&empty).unwrap();
        assert!(matches!(bytes.contents, Contents::Read(_)));
        assert!(bytes.is_empty());
    }

    #[test]
    fn a_file_rewritten_after_opening_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kernel");
        std::fs::write(&path, b"version one").unwrap();
        let bytes = InputBytes::open(&path).unwrap();
        std::fs::write(&path, b"version two, longer").unwrap();
        let err = bytes.check_unchanged().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("changed while it was being measured"), "{err}");
        assert!(err.contains("kernel"), "{err}");
    }

    #[test]
    fn a_missing_file_names_its_path() {
        let err = InputBytes::open(Path::new("/nonexistent/ovmf.fd")).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("/nonexistent/ovmf.fd"), "{err}");
    }
}
