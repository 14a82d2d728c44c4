//! newc ("070701") cpio, the format the Linux kernel unpacks as an initramfs: the format facts shared by the
//! deterministic writer ([`mod@write`]) and the bounded reader of untrusted initrds ([`read`]).
//! See `docs/specs/reproducibility.md` ("cpio (newc)").

pub mod read;
pub mod write;

pub use read::{CpioEntry, CpioReader};
pub use write::{CpioError, CpioWriter};

/// newc magic.
pub const NEWC_MAGIC: &[u8; 6] = b"070701";
/// Fixed header length: magic plus 13 eight-digit hex fields.
pub const HEADER_LEN: usize = 110;
/// Name of the end-of-archive entry.
pub const TRAILER_NAME: &str = "TRAILER!!!";
/// Largest file size a newc header can express.
pub const MAX_FILE_SIZE: u64 = u32::MAX as u64;

/// File type bits (`st_mode & S_IFMT`).
pub mod mode {
    /// Regular file.
    pub const S_IFREG: u32 = 0o100000;
    /// Directory.
    pub const S_IFDIR: u32 = 0o040000;
    /// Symbolic link.
    pub const S_IFLNK: u32 = 0o120000;
    /// Character device.
    pub const S_IFCHR: u32 = 0o020000;
    /// Mask of the permission bits a recipe may set (including setuid/setgid/sticky).
    pub const PERMISSION_MASK: u32 = 0o7777;
}
