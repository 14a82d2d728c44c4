//! Opening a file that another party may have placed: a member of an output directory (`run`, `diff`, `inspect`,
//! `verify`) or an input of a build. The path is opened without following a final symlink and without blocking (a FIFO
//! would otherwise hang the open), and the type of what was *opened* (not of what was looked up earlier) must be a
//! regular file. Reads are bounded by a cap that the caller names.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Opens `path` read-only; refuses a symlink, a FIFO, a device, a socket or a directory with an error that says which.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            // O_NOFOLLOW on a symlink fails with ELOOP.
            Some(nix::libc::ELOOP) => io::Error::other("is a symbolic link; only regular files are read"),
            _ => e,
        })?;
    let file_type = file.metadata()?.file_type();
    if !file_type.is_file() {
        return Err(io::Error::other(format!("is not a regular file (it is {})", describe(&file_type))));
    }
    // Regular files never block; clear O_NONBLOCK so that reads behave as usual.
    nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty())).map_err(io::Error::from)?;
    Ok(file)
}

/// Opens a build input: `path` is resolved first (the recipe may name a symlink; the tree checks have already been
/// applied to where it leads), then opened as by [`open_regular`], so that an input swapped for a FIFO or a device
/// after it was looked up is refused at once instead of blocking the build.
pub fn open_input(path: &Path) -> io::Result<File> {
    open_regular(&path.canonicalize()?)
}

/// Reads a whole build input (see [`open_input`]).
pub fn read_input(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = open_input(path)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Reads all of `path` (see [`open_regular`]) if it holds at most `cap` bytes; a larger file is refused, naming the cap.
pub fn read_capped(path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    let file = open_regular(path)?;
    let len = file.metadata()?.len();
    if len > cap {
        return Err(io::Error::other(format!("{len} bytes is more than the limit of {cap} bytes")));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    // `take` guards against a file that grows after the size check.
    file.take(cap.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(io::Error::other(format!("grew past the limit of {cap} bytes while it was read")));
    }
    Ok(bytes)
}

fn describe(file_type: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_a_symlink_to_a_readable_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), dir.path().join("cmdline")).unwrap();
        let err = open_regular(&dir.path().join("cmdline")).unwrap_err();
        assert_eq!(err.to_string(), "is a symbolic link; only regular files are read");
    }

    #[test]
    fn rejects_a_fifo_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let err = open_regular(&fifo).unwrap_err();
        assert_eq!(err.to_string(), "is not a regular file (it is a FIFO)");
    }

    #[test]
    fn rejects_a_directory_and_a_device() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(open_regular(dir.path()).unwrap_err().to_string(), "is not a regular file (it is a directory)");
        assert_eq!(
            open_regular(Path::new("/dev/zero")).unwrap_err().to_string(),
            "is not a regular file (it is a device)"
        );
    }

    /// Issue 11, item 9: an input swapped for a FIFO is refused at once; the open never blocks.
    #[test]
    fn input_that_became_a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("vmlinuz");
        nix::unistd::mkfifo(&input, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let started = std::time::Instant::now();
        assert_eq!(read_input(&input).unwrap_err().to_string(), "is not a regular file (it is a FIFO)");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn read_capped_names_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        std::fs::write(&path, vec![0u8; 11]).unwrap();
        assert_eq!(read_capped(&path, 11).unwrap().len(), 11);
        assert_eq!(read_capped(&path, 10).unwrap_err().to_string(), "11 bytes is more than the limit of 10 bytes");
    }
}
