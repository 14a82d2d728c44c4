//! The one 48-byte digest type of the crate: SHA-384, as the SEV-SNP launch digest and page digests, and the TDX
//! MRTD, RTMRs and event digests all are.

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::fmt;

use sha2::{Digest, Sha384 as Sha384Hasher};
use thiserror::Error;

/// Bytes in a SHA-384 digest.
pub const SHA384_LEN: usize = 48;

/// A SHA-384 digest: an SNP launch digest or page digest, a TDX MRTD or RTMR, an event digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sha384(pub [u8; SHA384_LEN]);

impl Sha384 {
    /// 48 zero bytes: the initial launch digest, and the contents digest of pages that are not measured.
    pub const ZERO: Sha384 = Sha384([0; SHA384_LEN]);

    /// SHA-384 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Sha384(Sha384Hasher::digest(bytes).into())
    }

    /// Checks that `bytes` is exactly [`SHA384_LEN`] bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, DigestLengthError> {
        <[u8; SHA384_LEN]>::try_from(bytes).map(Sha384).map_err(|_| DigestLengthError { found: bytes.len() })
    }

    /// The raw digest bytes.
    pub fn as_bytes(&self) -> &[u8; SHA384_LEN] {
        &self.0
    }
}

impl AsRef<[u8]> for Sha384 {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Sha384 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Sha384 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha384({self})")
    }
}

/// Bytes that are not a SHA-384 digest: not [`SHA384_LEN`] bytes long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("{found} bytes is not a SHA-384 digest ({SHA384_LEN} bytes)")]
pub struct DigestLengthError {
    /// Bytes given.
    pub found: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_as_lowercase_hex_and_checks_lengths() {
        let d = Sha384::from_slice(&[0xab; 48]).unwrap();
        assert_eq!(d.to_string(), "ab".repeat(48));
        assert_eq!(format!("{d:?}"), format!("Sha384({})", "ab".repeat(48)));
        for len in [0, 32, 47, 49] {
            assert_eq!(Sha384::from_slice(&vec![0; len]), Err(DigestLengthError { found: len }));
        }
        assert_eq!(Sha384::of(b"").to_string().get(..8), Some("38b060a7"));
    }
}
