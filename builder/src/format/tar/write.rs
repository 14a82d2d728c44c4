//! A writer for deterministic ustar archives: the publishing bundle `<name>-<version>.cvm.tar`.
//!
//! Every entry is a regular file with uid/gid 0, empty user and group names, one fixed mtime, and the mode the caller
//! gives; no pax records (so no atime/ctime). The caller adds entries in sorted order.
//! See `docs/specs/reproducibility.md` ("tar").

use std::io::{self, Read, Write};

use thiserror::Error;

/// Size of a tar block.
pub const BLOCK: usize = 512;
/// Largest file size the 11-digit octal size field can hold.
pub const MAX_SIZE: u64 = 0o77777777777;

/// Why an entry could not be written.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TarError {
    /// Writing failed.
    #[error("I/O error while writing tar entry `{name}`")]
    Io {
        /// The entry.
        name: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The name does not fit in ustar's 100-byte name (plus 155-byte prefix) fields, or is not a plain relative path.
    #[error("tar entry name `{name}` is not a relative path of at most 100 bytes (or prefix/name split of 155/100)")]
    BadName {
        /// The name.
        name: String,
    },
    /// The content is too large for a ustar header.
    #[error("tar entry `{name}` is {size} bytes; ustar holds at most {MAX_SIZE}")]
    TooLarge {
        /// The entry.
        name: String,
        /// Its size.
        size: u64,
    },
    /// The reader produced a different number of bytes than declared.
    #[error("tar entry `{name}`: expected {declared} bytes of content but the input gave {actual}")]
    SizeMismatch {
        /// The entry.
        name: String,
        /// The declared size.
        declared: u64,
        /// What the reader produced.
        actual: u64,
    },
}

/// Writes a ustar archive of regular files.
pub struct TarWriter<W: Write> {
    out: W,
    mtime: u64,
}

impl<W: Write> TarWriter<W> {
    /// Starts an archive whose entries all have modification time `mtime`.
    pub fn new(out: W, mtime: u64) -> Self {
        TarWriter { out, mtime }
    }

    /// Appends a regular file of `size` bytes from `content`.
    pub fn add_file(&mut self, name: &str, mode: u32, size: u64, content: &mut dyn Read) -> Result<(), TarError> {
        if size > MAX_SIZE {
            return Err(TarError::TooLarge { name: name.to_string(), size });
        }
        let header = self.header(name, mode, size)?;
        self.out.write_all(&header).map_err(|source| TarError::Io { name: name.to_string(), source })?;
        let copied = io::copy(&mut content.take(size.saturating_add(1)), &mut self.out)
            .map_err(|source| TarError::Io { name: name.to_string(), source })?;
        if copied != size {
            return Err(TarError::SizeMismatch { name: name.to_string(), declared: size, actual: copied });
        }
        let pad = (BLOCK - (size % BLOCK as u64) as usize) % BLOCK;
        self.out.write_all(&[0u8; BLOCK][..pad]).map_err(|source| TarError::Io { name: name.to_string(), source })
    }

    /// Writes the two zero blocks that end the archive and returns the writer.
    pub fn finish(mut self) -> Result<W, TarError> {
        self.out
            .write_all(&[0u8; 2 * BLOCK])
            .and_then(|()| self.out.flush())
            .map_err(|source| TarError::Io { name: "end of archive".to_string(), source })?;
        Ok(self.out)
    }

    fn header(&self, name: &str, mode: u32, size: u64) -> Result<[u8; BLOCK], TarError> {
        let (prefix, short) = split_name(name).ok_or_else(|| TarError::BadName { name: name.to_string() })?;
        let mut h = [0u8; BLOCK];
        h[..short.len()].copy_from_slice(short.as_bytes());
        put_octal(&mut h[100..108], u64::from(mode & 0o7777));
        put_octal(&mut h[108..116], 0); // uid
        put_octal(&mut h[116..124], 0); // gid
        put_octal(&mut h[124..136], size);
        put_octal(&mut h[136..148], self.mtime);
        h[156] = b'0'; // regular file
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        put_octal(&mut h[329..337], 0); // devmajor
        put_octal(&mut h[337..345], 0); // devminor
        h[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
        // The checksum is computed with its own field read as eight spaces.
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        put_octal(&mut h[148..155], u64::from(sum));
        h[155] = b' ';
        Ok(h)
    }
}

/// Splits `name` into ustar (prefix, name) fields, or `None` if it cannot be represented or is not a clean relative path.
fn split_name(name: &str) -> Option<(&str, &str)> {
    let clean = !name.is_empty()
        && !name.starts_with('/')
        && !name.contains('\0')
        && name.split('/').all(|part| !part.is_empty() && part != "." && part != "..");
    if !clean {
        return None;
    }
    if name.len() <= 100 {
        return Some(("", name));
    }
    // Split at a '/' so that the prefix fits in 155 bytes and the rest in 100.
    name.char_indices()
        .filter(|&(i, c)| c == '/' && i <= 155 && name.len() - i - 1 <= 100)
        .map(|(i, _)| (&name[..i], &name[i + 1..]))
        .next()
}

/// Writes `value` as zero-padded octal filling all but the last byte of `field`, which stays NUL.
fn put_octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&text.as_bytes()[text.len() - digits..]);
    field[digits] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_ustar_header_gnu_tar_can_read() {
        let mut w = TarWriter::new(Vec::new(), 1_700_000_000);
        w.add_file("manifest.json", 0o644, 3, &mut &b"{}\n"[..]).unwrap();
        let tar = w.finish().unwrap();
        assert_eq!(tar.len(), 512 + 512 + 1024);
        assert_eq!(&tar[..13], b"manifest.json");
        assert_eq!(&tar[100..108], b"0000644\0");
        assert_eq!(&tar[124..136], b"00000000003\0");
        assert_eq!(&tar[136..148], b"14524770400\0");
        assert_eq!(&tar[257..265], b"ustar\x0000");
        let stored: u32 = u32::from_str_radix(std::str::from_utf8(&tar[148..154]).unwrap(), 8).unwrap();
        let mut copy = tar[..512].to_vec();
        copy[148..156].copy_from_slice(b"        ");
        assert_eq!(stored, copy.iter().map(|&b| u32::from(b)).sum::<u32>());
        assert_eq!(&tar[512..515], b"{}\n");
    }

    #[test]
    fn rejects_names_that_escape_or_do_not_fit() {
        for bad in ["", "/abs", "a/../b", "./a", &"x".repeat(101)] {
            let mut w = TarWriter::new(Vec::new(), 0);
            let err = w.add_file(bad, 0o644, 0, &mut &b""[..]).unwrap_err();
            assert!(matches!(err, TarError::BadName { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn long_names_use_the_prefix_field() {
        let name = format!("{}/{}", "d".repeat(120), "f".repeat(50));
        let mut w = TarWriter::new(Vec::new(), 0);
        w.add_file(&name, 0o644, 0, &mut &b""[..]).unwrap();
        let tar = w.finish().unwrap();
        assert_eq!(&tar[..50], "f".repeat(50).as_bytes());
        assert_eq!(&tar[345..465], "d".repeat(120).as_bytes());
    }

    #[test]
    fn rejects_short_content() {
        let mut w = TarWriter::new(Vec::new(), 0);
        let err = w.add_file("a", 0o644, 9, &mut &b"abc"[..]).unwrap_err();
        assert!(matches!(err, TarError::SizeMismatch { declared: 9, actual: 3, .. }));
    }
}
