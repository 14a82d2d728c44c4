//! A streaming writer for deterministic newc ("070701") cpio archives, the format the Linux kernel unpacks as an
//! initramfs.
//!
//! Determinism is the caller's contract plus this writer's: the caller adds entries in sorted order; the writer
//! assigns inode numbers in archive order (starting at 1), writes uid/gid 0, one fixed mtime, `nlink` 2 for
//! directories and 1 otherwise, device numbers only for device nodes, check 0, and ends with `TRAILER!!!`.
//! See `docs/specs/reproducibility.md` ("cpio (newc)").
//!
//! ```
//! use cvmforge::format::cpio::CpioWriter;
//! let mut cpio = CpioWriter::new(Vec::new(), 1_700_000_000);
//! cpio.add_directory("etc", 0o755).unwrap();
//! let digest = cpio.add_file("etc/motd", 0o644, 3, &mut &b"hi\n"[..]).unwrap();
//! let archive = cpio.finish().unwrap();
//! assert_eq!(hex::encode(digest), "98ea6e4f216f2fb4b69fff9b3a44842c38686ca685f3f55dc48c5d3fb1107be4"); // sha256sum of "hi\n"
//! assert!(archive.starts_with(b"070701"));
//! ```

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};
use thiserror::Error;

use super::{mode, HEADER_LEN, MAX_FILE_SIZE, NEWC_MAGIC, TRAILER_NAME};

/// Why an entry could not be written.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CpioError {
    /// Writing the archive failed (a full output disk is reported here).
    #[error("writing the initrd failed at cpio entry `{path}`")]
    Io {
        /// The entry being written.
        path: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Reading an entry's content (an input) failed.
    #[error("reading the content of cpio entry `{path}` failed")]
    Read {
        /// The entry being written.
        path: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The content reader produced a different number of bytes than declared.
    #[error("cpio entry `{path}`: expected {declared} bytes of content but the input gave {actual} (did the file change during the build?)")]
    SizeMismatch {
        /// The entry.
        path: String,
        /// The size written into the header.
        declared: u64,
        /// What the reader produced (at least; reading stops one byte past `declared`).
        actual: u64,
    },
    /// The file is larger than newc can describe.
    #[error("cpio entry `{path}` is {size} bytes; newc archives hold at most {MAX_FILE_SIZE} bytes per file")]
    TooLarge {
        /// The entry.
        path: String,
        /// Its size.
        size: u64,
    },
    /// A mode with bits outside the permission mask.
    #[error("cpio entry `{path}`: mode {mode:#o} has bits outside {:#o}", mode::PERMISSION_MASK)]
    BadMode {
        /// The entry.
        path: String,
        /// The mode given.
        mode: u32,
    },
    /// An empty path, or one with a NUL byte.
    #[error("invalid cpio entry path `{path}`: it must be non-empty and contain no NUL byte")]
    BadPath {
        /// The path.
        path: String,
    },
}

/// One entry's header fields, as they go into the newc header.
struct Header<'a> {
    name: &'a str,
    mode: u32,
    nlink: u32,
    size: u32,
    rdev_major: u32,
    rdev_minor: u32,
}

/// Writes a newc archive entry by entry to `W`.
pub struct CpioWriter<W: Write> {
    out: W,
    mtime: u32,
    next_inode: u32,
    buffer: Vec<u8>,
}

impl<W: Write> CpioWriter<W> {
    /// Starts an archive in which every entry has modification time `mtime` (the recipe's `source_date_epoch`).
    pub fn new(out: W, mtime: u32) -> Self {
        CpioWriter { out, mtime, next_inode: 1, buffer: vec![0u8; 256 * 1024] }
    }

    /// Adds a directory. `path` is relative to the archive root (a leading `/` is removed).
    pub fn add_directory(&mut self, path: &str, mode: u32) -> Result<(), CpioError> {
        let name = archive_name(path)?;
        check_mode(name, mode)?;
        let header = Header { name, mode: mode::S_IFDIR | mode, nlink: 2, size: 0, rdev_major: 0, rdev_minor: 0 };
        self.write_header(&header).map_err(|source| io_error(name, source))
    }

    /// Adds the archive's root directory, named `.` (the kernel applies its mode and owner to the initramfs root).
    pub fn add_root(&mut self, mode: u32) -> Result<(), CpioError> {
        check_mode(".", mode)?;
        let header = Header { name: ".", mode: mode::S_IFDIR | mode, nlink: 2, size: 0, rdev_major: 0, rdev_minor: 0 };
        self.write_header(&header).map_err(|source| io_error(".", source))
    }

    /// Adds a regular file of exactly `size` bytes read from `content`, and returns the SHA-256 of those bytes.
    pub fn add_file(
        &mut self,
        path: &str,
        mode: u32,
        size: u64,
        content: &mut dyn Read,
    ) -> Result<[u8; 32], CpioError> {
        let name = archive_name(path)?;
        check_mode(name, mode)?;
        let size32 = u32::try_from(size).map_err(|_| CpioError::TooLarge { path: name.to_string(), size })?;
        let header = Header { name, mode: mode::S_IFREG | mode, nlink: 1, size: size32, rdev_major: 0, rdev_minor: 0 };
        self.write_header(&header).map_err(|source| io_error(name, source))?;
        let digest = self.copy_content(name, size, content)?;
        self.pad(size).map_err(|source| io_error(name, source))?;
        Ok(digest)
    }

    /// Adds a symbolic link whose content is `target`; returns the SHA-256 of the target string.
    pub fn add_symlink(&mut self, path: &str, target: &str) -> Result<[u8; 32], CpioError> {
        let name = archive_name(path)?;
        let bytes = target.as_bytes();
        let size = u32::try_from(bytes.len())
            .map_err(|_| CpioError::TooLarge { path: name.to_string(), size: bytes.len() as u64 })?;
        let header = Header { name, mode: mode::S_IFLNK | 0o777, nlink: 1, size, rdev_major: 0, rdev_minor: 0 };
        self.write_header(&header)
            .and_then(|()| self.out.write_all(bytes))
            .and_then(|()| self.pad(u64::from(size)))
            .map_err(|source| io_error(name, source))?;
        Ok(Sha256::digest(bytes).into())
    }

    /// Adds a character device node (for example `dev/console`, 5:1), without needing privileges.
    pub fn add_char_device(&mut self, path: &str, mode: u32, major: u32, minor: u32) -> Result<(), CpioError> {
        let name = archive_name(path)?;
        check_mode(name, mode)?;
        let header =
            Header { name, mode: mode::S_IFCHR | mode, nlink: 1, size: 0, rdev_major: major, rdev_minor: minor };
        self.write_header(&header).map_err(|source| io_error(name, source))
    }

    /// Writes the `TRAILER!!!` entry and returns the underlying writer.
    pub fn finish(mut self) -> Result<W, CpioError> {
        // GNU cpio --reproducible writes the trailer with inode 0 and nlink 1; so do we.
        self.next_inode = 0;
        let header = Header { name: TRAILER_NAME, mode: 0, nlink: 1, size: 0, rdev_major: 0, rdev_minor: 0 };
        self.write_header(&header).and_then(|()| self.out.flush()).map_err(|source| io_error(TRAILER_NAME, source))?;
        Ok(self.out)
    }

    fn write_header(&mut self, h: &Header<'_>) -> io::Result<()> {
        let inode = self.next_inode;
        if inode != 0 {
            self.next_inode += 1;
        }
        let namesize = h.name.len() + 1;
        let fields = [
            inode,
            h.mode,
            0, // uid
            0, // gid
            h.nlink,
            self.mtime,
            h.size,
            0, // devmajor
            0, // devminor
            h.rdev_major,
            h.rdev_minor,
            u32::try_from(namesize).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name too long"))?,
            0, // check
        ];
        let mut header = Vec::with_capacity(HEADER_LEN + namesize + 3);
        header.extend_from_slice(NEWC_MAGIC);
        for field in fields {
            header.extend_from_slice(format!("{field:08X}").as_bytes());
        }
        header.extend_from_slice(h.name.as_bytes());
        header.push(0);
        header.resize(header.len() + padding(HEADER_LEN as u64 + namesize as u64), 0);
        self.out.write_all(&header)
    }

    fn copy_content(&mut self, name: &str, size: u64, content: &mut dyn Read) -> Result<[u8; 32], CpioError> {
        let mut hasher = Sha256::new();
        let mut written = 0u64;
        loop {
            let n = match content.read(&mut self.buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(CpioError::Read { path: name.to_string(), source }),
            };
            written += n as u64;
            if written > size {
                return Err(CpioError::SizeMismatch { path: name.to_string(), declared: size, actual: written });
            }
            hasher.update(&self.buffer[..n]);
            self.out.write_all(&self.buffer[..n]).map_err(|source| io_error(name, source))?;
        }
        if written != size {
            return Err(CpioError::SizeMismatch { path: name.to_string(), declared: size, actual: written });
        }
        Ok(hasher.finalize().into())
    }

    fn pad(&mut self, len: u64) -> io::Result<()> {
        self.out.write_all(&[0u8; 3][..padding(len)])
    }
}

/// Bytes of zero padding that bring `len` to a multiple of 4.
fn padding(len: u64) -> usize {
    ((4 - len % 4) % 4) as usize
}

fn archive_name(path: &str) -> Result<&str, CpioError> {
    let name = path.trim_start_matches('/');
    if name.is_empty() || name.contains('\0') {
        return Err(CpioError::BadPath { path: path.to_string() });
    }
    Ok(name)
}

fn check_mode(name: &str, mode: u32) -> Result<(), CpioError> {
    if mode & !mode::PERMISSION_MASK != 0 {
        return Err(CpioError::BadMode { path: name.to_string(), mode });
    }
    Ok(())
}

fn io_error(name: &str, source: io::Error) -> CpioError {
    CpioError::Io { path: name.to_string(), source }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(archive: &[u8], entry_at: usize, index: usize) -> u32 {
        let start = entry_at + 6 + index * 8;
        u32::from_str_radix(std::str::from_utf8(&archive[start..start + 8]).unwrap(), 16).unwrap()
    }

    #[test]
    fn writes_newc_headers_with_archive_order_inodes() {
        let mut w = CpioWriter::new(Vec::new(), 1234);
        w.add_directory("/dev", 0o755).unwrap();
        w.add_char_device("dev/console", 0o600, 5, 1).unwrap();
        let archive = w.finish().unwrap();
        // dev: 110 + "dev\0" (4) = 114 -> padded to 116.
        assert_eq!(&archive[..6], b"070701");
        assert_eq!(field(&archive, 0, 0), 1, "first inode");
        assert_eq!(field(&archive, 0, 1), 0o040755);
        assert_eq!(field(&archive, 0, 4), 2, "directories have nlink 2");
        assert_eq!(field(&archive, 0, 5), 1234, "mtime");
        assert_eq!(&archive[110..114], b"dev\0");
        let console = 116;
        assert_eq!(field(&archive, console, 0), 2, "second inode");
        assert_eq!(field(&archive, console, 1), 0o020600);
        assert_eq!((field(&archive, console, 9), field(&archive, console, 10)), (5, 1));
        assert_eq!(field(&archive, console, 2), 0, "uid");
        let trailer = console + 110 + 12 + 2; // "dev/console\0" is 12 bytes, header+name = 122 -> pad 2
        assert_eq!(&archive[trailer + 110..trailer + 120], b"TRAILER!!!");
        assert_eq!(field(&archive, trailer, 0), 0);
        assert_eq!(archive.len() % 4, 0);
    }

    #[test]
    fn output_matches_gnu_cpio_layout_for_a_file() {
        let mut w = CpioWriter::new(Vec::new(), 0);
        let digest = w.add_file("a", 0o644, 5, &mut &b"hello"[..]).unwrap();
        assert_eq!(hex::encode(digest), "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        let archive = w.finish().unwrap();
        // header(110) + "a\0" = 112 (aligned), 5 bytes of data + 3 of padding.
        assert_eq!(&archive[112..117], b"hello");
        assert_eq!(&archive[117..120], &[0, 0, 0]);
        assert_eq!(&archive[120..126], b"070701");
    }

    #[test]
    fn rejects_content_shorter_than_declared() {
        let mut w = CpioWriter::new(Vec::new(), 0);
        let err = w.add_file("x", 0o644, 10, &mut &b"abc"[..]).unwrap_err();
        assert!(matches!(err, CpioError::SizeMismatch { declared: 10, actual: 3, .. }), "{err}");
    }

    #[test]
    fn rejects_content_longer_than_declared() {
        let mut w = CpioWriter::new(Vec::new(), 0);
        let err = w.add_file("x", 0o644, 2, &mut &b"abc"[..]).unwrap_err();
        assert!(matches!(err, CpioError::SizeMismatch { declared: 2, .. }), "{err}");
    }

    #[test]
    fn rejects_type_bits_in_mode() {
        let mut w = CpioWriter::new(Vec::new(), 0);
        let err = w.add_directory("d", 0o40755).unwrap_err();
        assert_eq!(err.to_string(), "cpio entry `d`: mode 0o40755 has bits outside 0o7777");
    }

    #[test]
    fn symlink_content_is_its_target() {
        let mut w = CpioWriter::new(Vec::new(), 0);
        w.add_symlink("bin", "usr/bin").unwrap();
        let archive = w.finish().unwrap();
        assert_eq!(field(&archive, 0, 1), 0o120777);
        assert_eq!(field(&archive, 0, 6), 7);
        assert_eq!(&archive[116..123], b"usr/bin");
    }
}
