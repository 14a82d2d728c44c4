//! The SEV-SNP ID block and ID authentication information structure, which the host passes to SNP_LAUNCH_FINISH
//! (QEMU: `-object sev-snp-guest,id-block=...,id-auth=...`) so that the guest's attestation reports carry the guest
//! owner's identity (FAMILY_ID, IMAGE_ID, ID_KEY_DIGEST, AUTHOR_KEY_DIGEST).
//!
//! Spec: AMD SEV Secure Nested Paging Firmware ABI Specification (publication 56860), SNP_LAUNCH_FINISH (the
//! ID_BLOCK and ID_AUTH_INFO structure tables) and the appendix on ECDSA signature and public key formats (table
//! numbers differ between revisions, so they are not cited here); summarised in `docs/specs/snp-launch-digest.md`
//! ("ID block"). The byte layout agrees with `sevsnpmeasure/id_block.py` of `sev-snp-measure` 0.0.13 (the reference),
//! which the tests check byte for byte.
//!
//! The ABI spec describes ID_KEY_DIGEST only as the "SHA-384 digest of the ID public key"; which bytes are hashed is
//! taken from the reference (`pub_to_digest`: SHA-384 over the whole 1028-byte public key structure, reserved zeros
//! included), which Google's go-sev-guest (`abi.EcdsaPublicKeyToBytes`, same 0x404-byte structure) agrees with.
//!
//! # Determinism
//!
//! ECDSA needs a per-signature nonce `k`. This module signs with RFC 6979 deterministic nonces (the `p384` crate's
//! `SigningKey::sign`), so the same key and inputs always give the same ID auth bytes. The reference draws `k` at
//! random (OpenSSL through Python `cryptography`), so its signatures differ from ours on every run; both verify
//! against the same public key. Every other byte (ID block, public key structures, key digests) is identical.
//!
//! # Example
//!
//! ```
//! use cvmforge_measure::snp::id_block::{sign_id_block, IdBlock, LaunchDigest, SnpSigningKey};
//! use cvmforge_measure::snp::policy::GuestPolicy;
//!
//! # let pem = include_str!("../../../tests/fixtures/keys/id-key-p384.pem");
//! let id_key = SnpSigningKey::from_pem(pem)?;
//! let block = IdBlock {
//!     launch_digest: LaunchDigest::from_slice(&[0xab; 48])?,
//!     family_id: [0; 16],
//!     image_id: [0; 16],
//!     guest_svn: 0,
//!     policy: GuestPolicy::default(),
//! };
//! let signed = sign_id_block(block, &id_key, None);
//! assert_eq!(signed.id_block_bytes().len(), 96);
//! assert_eq!(signed.id_auth_bytes().len(), 4096);
//! signed.id_auth.verify(&signed.id_block_bytes())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::fmt;

use crate::digest::{DigestLengthError, Sha384};
use p384::ecdsa::signature::{Signer, Verifier};
use p384::ecdsa::{Signature, SigningKey, VerifyingKey};
use p384::pkcs8::der::asn1::ObjectIdentifier;
use p384::pkcs8::der::{self, pem, Decode};
use p384::pkcs8::{DecodePrivateKey, PrivateKeyInfo};
use p384::{EncodedPoint, SecretKey};
use sec1::EcPrivateKey;
use thiserror::Error;

use crate::reader::{write_at, ReadError, Reader};
use crate::snp::policy::GuestPolicy;

/// Length of the launch digest (SHA-384) at the start of the ID block.
pub const LAUNCH_DIGEST_LEN: usize = 48;
/// Length of FAMILY_ID and of IMAGE_ID.
pub const ID_LEN: usize = 16;
/// Length of the ID block.
pub const ID_BLOCK_LEN: usize = 0x60;
/// The only defined ID block VERSION.
pub const ID_BLOCK_VERSION: u32 = 1;
/// Length of the ID authentication information structure.
pub const ID_AUTH_LEN: usize = 0x1000;
/// Length of an ECDSA public key structure: CURVE, QX, QY, reserved.
pub const PUBLIC_KEY_LEN: usize = 0x404;
/// Length of an ECDSA signature structure: R, S, reserved.
pub const SIGNATURE_LEN: usize = 0x200;
/// Length of each of R, S, QX and QY: little-endian, zero-extended from 48 bytes.
pub const COMPONENT_LEN: usize = 0x48;
/// Bytes of a P-384 scalar or coordinate.
const P384_LEN: usize = 48;
/// ID_KEY_ALGO / AUTH_KEY_ALGO value for ECDSA P-384 with SHA-384.
pub const ALGO_ECDSA_P384_SHA384: u32 = 1;
/// CURVE value for P-384.
pub const CURVE_P384: u32 = 2;

/// Offsets of the fields of the ID authentication information structure.
pub mod offsets {
    /// u32 ID_KEY_ALGO.
    pub const ID_KEY_ALGO: usize = 0x000;
    /// u32 AUTH_KEY_ALGO.
    pub const AUTH_KEY_ALGO: usize = 0x004;
    /// ID_BLOCK_SIG: the ID key's signature over the 96-byte ID block.
    pub const ID_BLOCK_SIG: usize = 0x040;
    /// ID_KEY: the ID public key.
    pub const ID_KEY: usize = 0x240;
    /// ID_KEY_SIG: the author key's signature over the ID_KEY structure.
    pub const ID_KEY_SIG: usize = 0x680;
    /// AUTHOR_KEY: the author public key.
    pub const AUTHOR_KEY: usize = 0x880;
    /// First byte of the trailing reserved area.
    pub const RESERVED_TAIL: usize = 0xC84;
}

/// OID of `id-ecPublicKey` (RFC 5480), the PKCS#8 algorithm of every EC private key.
const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// OID of secp384r1 / P-384 (RFC 5480).
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
/// Names of curves a user may mistakenly use, for error messages.
const CURVE_NAMES: [(ObjectIdentifier, &str); 4] = [
    (ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7"), "P-256 (prime256v1)"),
    (SECP384R1, "P-384 (secp384r1)"),
    (ObjectIdentifier::new_unwrap("1.3.132.0.35"), "P-521 (secp521r1)"),
    (ObjectIdentifier::new_unwrap("1.3.132.0.10"), "secp256k1"),
];

/// A failure to load an ID or author private key from PEM.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KeyError {
    /// No `-----BEGIN ...-----` / `-----END ...-----` block holding a private key was found.
    #[error(
        "no PEM private key block found (expected `-----BEGIN PRIVATE KEY-----` or `-----BEGIN EC PRIVATE KEY-----`)"
    )]
    NoPemBlock,
    /// A PEM block is malformed (bad base64, bad framing).
    #[error("malformed PEM block `{label}`: {reason}")]
    Pem {
        /// The label of the block, as far as it could be read.
        label: String,
        /// What the PEM decoder found.
        reason: pem::Error,
    },
    /// The PEM block holds something other than an unencrypted EC private key.
    #[error("unsupported PEM block `{label}`: expected `PRIVATE KEY` (PKCS#8) or `EC PRIVATE KEY` (SEC1)")]
    UnsupportedLabel {
        /// The label found.
        label: String,
    },
    /// The key is encrypted with a passphrase.
    #[error(
        "the key is encrypted (`ENCRYPTED PRIVATE KEY`); decrypt it first, e.g. `openssl pkey -in KEY -out PLAIN`"
    )]
    Encrypted,
    /// The DER inside the PEM block does not parse.
    #[error("malformed {format} private key: {reason}")]
    Der {
        /// `PKCS#8` or `SEC1`.
        format: &'static str,
        /// What the DER decoder found.
        reason: der::Error,
    },
    /// A PKCS#8 key for another algorithm (RSA, Ed25519, ...).
    #[error("not an elliptic-curve key: PKCS#8 algorithm is `{algorithm}`, SEV-SNP ID keys must be ECDSA P-384")]
    NotEc {
        /// The algorithm OID, dotted.
        algorithm: String,
    },
    /// The key names no curve.
    #[error("the {format} key does not name its curve; SEV-SNP ID keys must be P-384 (secp384r1)")]
    NoCurve {
        /// `PKCS#8` or `SEC1`.
        format: &'static str,
    },
    /// An EC key on a curve other than P-384.
    #[error("wrong curve: the key is on `{curve}` ({oid}); SEV-SNP ID and author keys must be P-384 (secp384r1)")]
    WrongCurve {
        /// The curve's name, or `unknown`.
        curve: &'static str,
        /// The curve's OID, dotted.
        oid: String,
    },
    /// The key names P-384 but its scalar is invalid (zero or not below the group order).
    #[error("invalid P-384 private key in {format} encoding")]
    InvalidScalar {
        /// `PKCS#8` or `SEC1`.
        format: &'static str,
    },
}

/// A failure to build or parse an ID block.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum IdBlockError {
    /// The launch digest is not 48 bytes.
    #[error("launch digest is {found} bytes; an SEV-SNP launch digest (SHA-384) is {LAUNCH_DIGEST_LEN} bytes")]
    DigestLength {
        /// Bytes given.
        found: usize,
    },
    /// The ID block is truncated or too long.
    #[error("malformed ID block")]
    Read(#[from] ReadError),
    /// VERSION is not 1.
    #[error("ID block VERSION is {found}, expected {ID_BLOCK_VERSION}")]
    Version {
        /// The VERSION field.
        found: u32,
    },
}

/// A failure to parse or verify an ID authentication information structure.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum IdAuthError {
    /// The structure is truncated or too long.
    #[error("malformed ID auth structure")]
    Read(#[from] ReadError),
    /// An algorithm field holds something other than 1 (ECDSA P-384 with SHA-384).
    #[error("`{field}` is {found}, expected {ALGO_ECDSA_P384_SHA384} (ECDSA P-384 with SHA-384)")]
    Algorithm {
        /// `ID_KEY_ALGO` or `AUTH_KEY_ALGO`.
        field: &'static str,
        /// The value found.
        found: u32,
    },
    /// A public key names a curve other than 2 (P-384).
    #[error("`{field}` CURVE is {found}, expected {CURVE_P384} (P-384)")]
    Curve {
        /// `ID_KEY` or `AUTHOR_KEY`.
        field: &'static str,
        /// The value found.
        found: u32,
    },
    /// A reserved area or the zero-extension of a 72-byte component is not zero.
    #[error("non-zero byte at offset {offset:#x} in `{field}`, which must be zero")]
    NonZero {
        /// The area.
        field: &'static str,
        /// Absolute offset of the first non-zero byte.
        offset: usize,
    },
    /// QX/QY is not a point on P-384.
    #[error("`{field}` is not a valid P-384 public key")]
    PublicKey {
        /// `ID_KEY` or `AUTHOR_KEY`.
        field: &'static str,
    },
    /// R or S is zero or not below the group order.
    #[error("`{field}` is not a well-formed ECDSA P-384 signature")]
    SignatureEncoding {
        /// `ID_BLOCK_SIG` or `ID_KEY_SIG`.
        field: &'static str,
    },
    /// The signature does not verify.
    #[error("`{field}` does not verify against `{key}`")]
    BadSignature {
        /// `ID_BLOCK_SIG` or `ID_KEY_SIG`.
        field: &'static str,
        /// `ID_KEY` or `AUTHOR_KEY`.
        key: &'static str,
    },
    /// AUTH_KEY_ALGO is zero (no author key) but the author fields are not all zero, or the reverse.
    #[error("AUTH_KEY_ALGO says {}, but AUTHOR_KEY is {}", if *.algo_set { "an author key is present" } else { "there is no author key" }, if *.algo_set { "all zero" } else { "not zero" })]
    AuthorKeyMismatch {
        /// AUTH_KEY_ALGO was non-zero.
        algo_set: bool,
    },
}

/// An SEV-SNP launch digest (SHA-384), as the ID block binds it.
pub type LaunchDigest = Sha384;

impl From<DigestLengthError> for IdBlockError {
    fn from(error: DigestLengthError) -> Self {
        IdBlockError::DigestLength { found: error.found }
    }
}

/// The ID block: what the guest owner vouches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdBlock {
    /// The expected launch digest; SNP_LAUNCH_FINISH fails unless the guest measures to exactly this.
    pub launch_digest: LaunchDigest,
    /// FAMILY_ID, copied into attestation reports.
    pub family_id: [u8; ID_LEN],
    /// IMAGE_ID, copied into attestation reports.
    pub image_id: [u8; ID_LEN],
    /// GUEST_SVN, the guest's security version number.
    pub guest_svn: u32,
    /// The policy; SNP_LAUNCH_FINISH fails unless it equals the policy given at SNP_LAUNCH_START.
    pub policy: GuestPolicy,
}

impl IdBlock {
    /// The 96 bytes: LD ‖ FAMILY_ID ‖ IMAGE_ID ‖ u32 VERSION ‖ u32 GUEST_SVN ‖ u64 POLICY, little-endian.
    pub fn to_bytes(&self) -> [u8; ID_BLOCK_LEN] {
        let mut out = [0u8; ID_BLOCK_LEN];
        let parts: [&[u8]; 6] = [
            &self.launch_digest.0,
            &self.family_id,
            &self.image_id,
            &ID_BLOCK_VERSION.to_le_bytes(),
            &self.guest_svn.to_le_bytes(),
            &self.policy.bits().to_le_bytes(),
        ];
        for (dst, src) in out.iter_mut().zip(parts.into_iter().flatten()) {
            *dst = *src;
        }
        out
    }

    /// Parses the 96 bytes, checking VERSION. The policy is kept as found (check it with [`GuestPolicy::validate`]).
    pub fn parse(bytes: &[u8]) -> Result<Self, IdBlockError> {
        let mut r = Reader::new(bytes);
        let launch_digest = Sha384(r.array("LD")?);
        let family_id = r.array("FAMILY_ID")?;
        let image_id = r.array("IMAGE_ID")?;
        let version = r.u32_le("VERSION")?;
        let guest_svn = r.u32_le("GUEST_SVN")?;
        let policy = GuestPolicy(r.u64_le("POLICY")?);
        r.finish("ID block")?;
        if version != ID_BLOCK_VERSION {
            return Err(IdBlockError::Version { found: version });
        }
        Ok(IdBlock { launch_digest, family_id, image_id, guest_svn, policy })
    }
}

/// An ECDSA P-384 private key used as an SEV-SNP ID key or author key.
#[derive(Clone)]
pub struct SnpSigningKey(SigningKey);

impl fmt::Debug for SnpSigningKey {
    /// Shows the public key digest only, never the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SnpSigningKey(public key digest {})", hex::encode(self.public_key().digest()))
    }
}

impl SnpSigningKey {
    /// Loads an unencrypted P-384 private key from PEM: PKCS#8 (`PRIVATE KEY`, as `openssl genpkey` writes) or SEC1
    /// (`EC PRIVATE KEY`, as `openssl ecparam -genkey` writes, where a leading `EC PARAMETERS` block is skipped).
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        let blocks = pem_blocks(text);
        let block = blocks.iter().find(|b| b.label != "EC PARAMETERS").ok_or(KeyError::NoPemBlock)?;
        let (label, der) = pem::decode_vec(block.text.as_bytes())
            .map_err(|reason| KeyError::Pem { label: block.label.to_owned(), reason })?;
        let secret = match label {
            "PRIVATE KEY" => secret_from_pkcs8(&der)?,
            "EC PRIVATE KEY" => secret_from_sec1(&der)?,
            "ENCRYPTED PRIVATE KEY" => return Err(KeyError::Encrypted),
            other => return Err(KeyError::UnsupportedLabel { label: other.to_owned() }),
        };
        Ok(SnpSigningKey(SigningKey::from(secret)))
    }

    /// The public key.
    pub fn public_key(&self) -> SnpPublicKey {
        SnpPublicKey(*self.0.verifying_key())
    }

    /// Signs `message` with ECDSA P-384 / SHA-384 and an RFC 6979 deterministic nonce.
    pub fn sign(&self, message: &[u8]) -> SnpSignature {
        SnpSignature(self.0.sign(message))
    }
}

/// One `-----BEGIN X-----` ... `-----END X-----` block of a PEM file.
struct PemBlock<'a> {
    label: &'a str,
    text: String,
}

/// Splits a PEM file into its blocks (OpenSSL may write `EC PARAMETERS` before `EC PRIVATE KEY`).
fn pem_blocks(text: &str) -> Vec<PemBlock<'_>> {
    let mut blocks = Vec::new();
    let mut current: Option<PemBlock<'_>> = None;
    for line in text.lines().map(str::trim_end) {
        if let Some(label) = line.strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")) {
            current = Some(PemBlock { label, text: String::new() });
        }
        if let Some(block) = current.as_mut() {
            block.text.push_str(line);
            block.text.push('\n');
        }
        if line.starts_with("-----END ") {
            blocks.extend(current.take());
        }
    }
    blocks
}

fn curve_name(oid: ObjectIdentifier) -> &'static str {
    CURVE_NAMES.iter().find(|(o, _)| *o == oid).map_or("unknown", |(_, name)| name)
}

fn require_p384(curve: Option<ObjectIdentifier>, format: &'static str) -> Result<(), KeyError> {
    match curve {
        None => Err(KeyError::NoCurve { format }),
        Some(oid) if oid == SECP384R1 => Ok(()),
        Some(oid) => Err(KeyError::WrongCurve { curve: curve_name(oid), oid: oid.to_string() }),
    }
}

fn secret_from_pkcs8(der: &[u8]) -> Result<SecretKey, KeyError> {
    const FORMAT: &str = "PKCS#8";
    let info = PrivateKeyInfo::from_der(der).map_err(|reason| KeyError::Der { format: FORMAT, reason })?;
    if info.algorithm.oid != ID_EC_PUBLIC_KEY {
        return Err(KeyError::NotEc { algorithm: info.algorithm.oid.to_string() });
    }
    require_p384(info.algorithm.parameters_oid().ok(), FORMAT)?;
    SecretKey::from_pkcs8_der(der).map_err(|_| KeyError::InvalidScalar { format: FORMAT })
}

fn secret_from_sec1(der: &[u8]) -> Result<SecretKey, KeyError> {
    const FORMAT: &str = "SEC1";
    let key = EcPrivateKey::from_der(der).map_err(|reason| KeyError::Der { format: FORMAT, reason })?;
    require_p384(key.parameters.and_then(|p| p.named_curve()), FORMAT)?;
    SecretKey::from_sec1_der(der).map_err(|_| KeyError::InvalidScalar { format: FORMAT })
}

/// Converts a big-endian 48-byte value into the 72-byte little-endian zero-extended form of the ABI spec ECDSA signature and public key structures.
fn to_component(big_endian: &[u8]) -> [u8; COMPONENT_LEN] {
    let mut out = [0u8; COMPONENT_LEN];
    for (o, b) in out.iter_mut().zip(big_endian.iter().rev()) {
        *o = *b;
    }
    out
}

/// Reads a 72-byte little-endian component, checks its zero extension and returns it big-endian.
fn read_component(r: &mut Reader<'_>, field: &'static str) -> Result<[u8; P384_LEN], IdAuthError> {
    let mut value: [u8; P384_LEN] = r.array(field)?;
    value.reverse();
    require_zero(r, field, COMPONENT_LEN - P384_LEN)?;
    Ok(value)
}

/// Reads `len` bytes that must all be zero.
fn require_zero(r: &mut Reader<'_>, field: &'static str, len: usize) -> Result<(), IdAuthError> {
    let start = r.offset();
    let bytes = r.take(field, len)?;
    match bytes.iter().position(|&b| b != 0) {
        None => Ok(()),
        Some(i) => Err(IdAuthError::NonZero { field, offset: start + i }),
    }
}

/// An ECDSA P-384 public key in the SEV-SNP public key structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnpPublicKey(VerifyingKey);

impl SnpPublicKey {
    /// The 1028-byte structure: u32 CURVE = 2 ‖ QX (72, LE) ‖ QY (72, LE) ‖ 880 zero bytes.
    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_LEN] {
        let point = self.0.to_encoded_point(false);
        let mut out = [0u8; PUBLIC_KEY_LEN];
        out[..4].copy_from_slice(&CURVE_P384.to_le_bytes());
        // An uncompressed point always has both coordinates; the identity cannot be a verifying key.
        if let (Some(x), Some(y)) = (point.x(), point.y()) {
            out[4..4 + COMPONENT_LEN].copy_from_slice(&to_component(x));
            out[4 + COMPONENT_LEN..4 + 2 * COMPONENT_LEN].copy_from_slice(&to_component(y));
        }
        out
    }

    /// SHA-384 over the whole 1028-byte structure: the ID_KEY_DIGEST / AUTHOR_KEY_DIGEST of attestation reports
    /// (as the reference's `pub_to_digest` computes it).
    pub fn digest(&self) -> Sha384 {
        Sha384::of(&self.to_bytes())
    }

    fn parse(r: &mut Reader<'_>, field: &'static str) -> Result<Self, IdAuthError> {
        let curve = r.u32_le(field)?;
        if curve != CURVE_P384 {
            return Err(IdAuthError::Curve { field, found: curve });
        }
        let x = read_component(r, field)?;
        let y = read_component(r, field)?;
        require_zero(r, field, PUBLIC_KEY_LEN - 4 - 2 * COMPONENT_LEN)?;
        let point = EncodedPoint::from_affine_coordinates(&x.into(), &y.into(), false);
        VerifyingKey::from_encoded_point(&point).map(SnpPublicKey).map_err(|_| IdAuthError::PublicKey { field })
    }

    fn verify(
        &self,
        message: &[u8],
        sig: &SnpSignature,
        field: &'static str,
        key: &'static str,
    ) -> Result<(), IdAuthError> {
        self.0.verify(message, &sig.0).map_err(|_| IdAuthError::BadSignature { field, key })
    }
}

/// An ECDSA P-384 signature in the SEV-SNP signature structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnpSignature(Signature);

impl SnpSignature {
    /// The 512-byte structure: R (72, LE) ‖ S (72, LE) ‖ 368 zero bytes.
    pub fn to_bytes(&self) -> [u8; SIGNATURE_LEN] {
        let (r, s) = self.0.split_bytes();
        let mut out = [0u8; SIGNATURE_LEN];
        out[..COMPONENT_LEN].copy_from_slice(&to_component(&r));
        out[COMPONENT_LEN..2 * COMPONENT_LEN].copy_from_slice(&to_component(&s));
        out
    }

    fn parse(r: &mut Reader<'_>, field: &'static str) -> Result<Self, IdAuthError> {
        let sig_r = read_component(r, field)?;
        let sig_s = read_component(r, field)?;
        require_zero(r, field, SIGNATURE_LEN - 2 * COMPONENT_LEN)?;
        Signature::from_scalars(sig_r, sig_s).map(SnpSignature).map_err(|_| IdAuthError::SignatureEncoding { field })
    }
}

/// The author key and its signature over the ID key structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthorAuth {
    /// ID_KEY_SIG: the author key's signature over the 1028-byte ID_KEY structure.
    pub id_key_sig: SnpSignature,
    /// AUTHOR_KEY.
    pub author_key: SnpPublicKey,
}

/// The ID authentication information structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdAuth {
    /// ID_BLOCK_SIG: the ID key's signature over the 96-byte ID block.
    pub id_block_sig: SnpSignature,
    /// ID_KEY.
    pub id_key: SnpPublicKey,
    /// The author key, when one certifies the ID key (QEMU: `author-key-enabled=on`).
    pub author: Option<AuthorAuth>,
}

impl IdAuth {
    /// The 4096 bytes. AUTH_KEY_ALGO, ID_KEY_SIG and AUTHOR_KEY are zero when there is no author key (the firmware
    /// ignores them when AUTHOR_KEY_EN is 0).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; ID_AUTH_LEN];
        let mut put = |at: usize, bytes: &[u8]| write_at(&mut out, at, bytes);
        put(offsets::ID_KEY_ALGO, &ALGO_ECDSA_P384_SHA384.to_le_bytes());
        put(offsets::ID_BLOCK_SIG, &self.id_block_sig.to_bytes());
        put(offsets::ID_KEY, &self.id_key.to_bytes());
        if let Some(author) = &self.author {
            put(offsets::AUTH_KEY_ALGO, &ALGO_ECDSA_P384_SHA384.to_le_bytes());
            put(offsets::ID_KEY_SIG, &author.id_key_sig.to_bytes());
            put(offsets::AUTHOR_KEY, &author.author_key.to_bytes());
        }
        out
    }

    /// Parses the 4096 bytes, checking algorithms, curves, reserved areas and key points (not the signatures: see
    /// [`IdAuth::verify`]).
    pub fn parse(bytes: &[u8]) -> Result<Self, IdAuthError> {
        let mut r = Reader::new(bytes);
        let id_algo = r.u32_le("ID_KEY_ALGO")?;
        if id_algo != ALGO_ECDSA_P384_SHA384 {
            return Err(IdAuthError::Algorithm { field: "ID_KEY_ALGO", found: id_algo });
        }
        let auth_algo = r.u32_le("AUTH_KEY_ALGO")?;
        require_zero(&mut r, "reserved 0x08", offsets::ID_BLOCK_SIG - 8)?;
        let id_block_sig = SnpSignature::parse(&mut r, "ID_BLOCK_SIG")?;
        let id_key = SnpPublicKey::parse(&mut r, "ID_KEY")?;
        require_zero(&mut r, "reserved 0x644", offsets::ID_KEY_SIG - offsets::ID_KEY - PUBLIC_KEY_LEN)?;
        let author_area = r.sub("ID_KEY_SIG and AUTHOR_KEY", offsets::RESERVED_TAIL - offsets::ID_KEY_SIG)?;
        require_zero(&mut r, "reserved 0xc84", ID_AUTH_LEN - offsets::RESERVED_TAIL)?;
        r.finish("ID auth")?;
        let author = Self::parse_author(author_area, auth_algo)?;
        Ok(IdAuth { id_block_sig, id_key, author })
    }

    fn parse_author(mut r: Reader<'_>, auth_algo: u32) -> Result<Option<AuthorAuth>, IdAuthError> {
        if auth_algo == 0 {
            let len = r.remaining();
            return match require_zero(&mut r, "ID_KEY_SIG and AUTHOR_KEY", len) {
                Ok(()) => Ok(None),
                Err(_) => Err(IdAuthError::AuthorKeyMismatch { algo_set: false }),
            };
        }
        if auth_algo != ALGO_ECDSA_P384_SHA384 {
            return Err(IdAuthError::Algorithm { field: "AUTH_KEY_ALGO", found: auth_algo });
        }
        if r.clone().take("AUTHOR_KEY", r.remaining())?.iter().all(|&b| b == 0) {
            return Err(IdAuthError::AuthorKeyMismatch { algo_set: true });
        }
        let id_key_sig = SnpSignature::parse(&mut r, "ID_KEY_SIG")?;
        let author_key = SnpPublicKey::parse(&mut r, "AUTHOR_KEY")?;
        r.finish("AUTHOR_KEY")?;
        Ok(Some(AuthorAuth { id_key_sig, author_key }))
    }

    /// Verifies ID_BLOCK_SIG over `id_block` with ID_KEY and, when present, ID_KEY_SIG over the ID_KEY structure
    /// with AUTHOR_KEY, as SNP_LAUNCH_FINISH does.
    pub fn verify(&self, id_block: &[u8]) -> Result<(), IdAuthError> {
        self.id_key.verify(id_block, &self.id_block_sig, "ID_BLOCK_SIG", "ID_KEY")?;
        if let Some(author) = &self.author {
            author.author_key.verify(&self.id_key.to_bytes(), &author.id_key_sig, "ID_KEY_SIG", "AUTHOR_KEY")?;
        }
        Ok(())
    }
}

/// An ID block with its ID auth structure, ready to hand to the VMM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedIdBlock {
    /// The ID block.
    pub id_block: IdBlock,
    /// Its signatures and keys.
    pub id_auth: IdAuth,
}

impl SignedIdBlock {
    /// The 96 ID block bytes (QEMU `id-block`, base64).
    pub fn id_block_bytes(&self) -> [u8; ID_BLOCK_LEN] {
        self.id_block.to_bytes()
    }

    /// The 4096 ID auth bytes (QEMU `id-auth`, base64).
    pub fn id_auth_bytes(&self) -> Vec<u8> {
        self.id_auth.to_bytes()
    }

    /// The ID_KEY_DIGEST attestation reports will carry.
    pub fn id_key_digest(&self) -> Sha384 {
        self.id_auth.id_key.digest()
    }

    /// The AUTHOR_KEY_DIGEST attestation reports will carry, when there is an author key.
    pub fn author_key_digest(&self) -> Option<Sha384> {
        self.id_auth.author.map(|a| a.author_key.digest())
    }
}

/// Signs `id_block` with `id_key` and, if given, certifies the ID key with `author_key` (deterministic, RFC 6979).
pub fn sign_id_block(id_block: IdBlock, id_key: &SnpSigningKey, author_key: Option<&SnpSigningKey>) -> SignedIdBlock {
    let id_public = id_key.public_key();
    let id_block_sig = id_key.sign(&id_block.to_bytes());
    let author = author_key
        .map(|author| AuthorAuth { id_key_sig: author.sign(&id_public.to_bytes()), author_key: author.public_key() });
    SignedIdBlock { id_block, id_auth: IdAuth { id_block_sig, id_key: id_public, author } }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine;

    use super::*;

    const ID_KEY_PKCS8: &str = include_str!("../../../tests/fixtures/keys/id-key-p384.pem");
    const ID_KEY_SEC1: &str = include_str!("../../../tests/fixtures/keys/id-key-p384-sec1.pem");
    const AUTHOR_KEY_SEC1: &str = include_str!("../../../tests/fixtures/keys/author-key-p384-sec1.pem");
    const P256_PKCS8: &str = include_str!("../../../tests/fixtures/keys/wrong-curve-p256.pem");
    const P256_SEC1: &str = include_str!("../../../tests/fixtures/keys/wrong-curve-p256-sec1.pem");
    const ED25519: &str = include_str!("../../../tests/fixtures/keys/not-ec-ed25519.pem");
    /// Verbatim output of sev-snp-measure 0.0.13 `snp-create-id-block` (see the README beside it).
    const REFERENCE: &str = include_str!("../../../tests/fixtures/idblock/reference-0.0.13.txt");

    struct Reference {
        id_block: Vec<u8>,
        id_auth: Vec<u8>,
        id_key_hash: Vec<u8>,
        author_key: Vec<u8>,
    }

    fn reference() -> Reference {
        let value = |prefix: &str| {
            let field = REFERENCE.split([',', '\n']).find_map(|f| f.strip_prefix(prefix)).unwrap();
            B64.decode(field.trim()).unwrap()
        };
        Reference {
            id_block: value("id-block="),
            id_auth: value("id-auth="),
            id_key_hash: value("id_key_hash: "),
            author_key: value("author_key: "),
        }
    }

    fn reference_inputs() -> IdBlock {
        let digest: Vec<u8> = (0u8..48).collect();
        IdBlock {
            launch_digest: LaunchDigest::from_slice(&digest).unwrap(),
            family_id: [0; 16],
            image_id: [0; 16],
            guest_svn: 0,
            policy: GuestPolicy::default(),
        }
    }

    fn keys() -> (SnpSigningKey, SnpSigningKey) {
        (SnpSigningKey::from_pem(ID_KEY_PKCS8).unwrap(), SnpSigningKey::from_pem(AUTHOR_KEY_SEC1).unwrap())
    }

    /// Zeroes R and S of both signatures: the only bytes that depend on the (random, in the reference) nonce.
    fn without_signatures(id_auth: &[u8]) -> Vec<u8> {
        let mut out = id_auth.to_vec();
        for at in [offsets::ID_BLOCK_SIG, offsets::ID_KEY_SIG] {
            out[at..at + 2 * COMPONENT_LEN].fill(0);
        }
        out
    }

    #[test]
    fn id_block_bytes_match_the_reference() {
        assert_eq!(reference_inputs().to_bytes().to_vec(), reference().id_block);
    }

    #[test]
    fn id_block_field_layout() {
        let block = IdBlock {
            launch_digest: Sha384([0x11; 48]),
            family_id: [0x22; 16],
            image_id: [0x33; 16],
            guest_svn: 0x0403_0201,
            policy: GuestPolicy(0x0807_0605_0403_0201),
        };
        let bytes = block.to_bytes();
        assert_eq!(&bytes[..48], &[0x11; 48]);
        assert_eq!(&bytes[48..64], &[0x22; 16]);
        assert_eq!(&bytes[64..80], &[0x33; 16]);
        assert_eq!(&bytes[80..84], &[1, 0, 0, 0]);
        assert_eq!(&bytes[84..88], &[1, 2, 3, 4]);
        assert_eq!(&bytes[88..96], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(IdBlock::parse(&bytes).unwrap(), block);
    }

    #[test]
    fn id_auth_layout_matches_the_abi_table() {
        // ID_AUTH_INFO table: each field ends where the next reserved area begins.
        assert_eq!(offsets::ID_BLOCK_SIG + SIGNATURE_LEN, offsets::ID_KEY);
        assert_eq!(offsets::ID_KEY + PUBLIC_KEY_LEN, 0x644);
        assert_eq!(offsets::ID_KEY_SIG + SIGNATURE_LEN, offsets::AUTHOR_KEY);
        assert_eq!(offsets::AUTHOR_KEY + PUBLIC_KEY_LEN, offsets::RESERVED_TAIL);
        let (id, author) = keys();
        let bytes = sign_id_block(reference_inputs(), &id, Some(&author)).id_auth_bytes();
        assert_eq!(bytes.len(), ID_AUTH_LEN);
        assert_eq!(&bytes[0..8], &[1, 0, 0, 0, 1, 0, 0, 0]);
        assert!(bytes[8..0x40].iter().all(|&b| b == 0));
        assert_eq!(&bytes[offsets::ID_KEY..offsets::ID_KEY + PUBLIC_KEY_LEN], &id.public_key().to_bytes());
        assert_eq!(&bytes[offsets::AUTHOR_KEY..offsets::RESERVED_TAIL], &author.public_key().to_bytes());
        assert!(bytes[offsets::RESERVED_TAIL..].iter().all(|&b| b == 0));
    }

    #[test]
    fn id_auth_matches_the_reference_except_the_randomized_signatures() {
        let (id, author) = keys();
        let ours = sign_id_block(reference_inputs(), &id, Some(&author)).id_auth_bytes();
        assert_eq!(without_signatures(&ours), without_signatures(&reference().id_auth));
    }

    #[test]
    fn key_digests_match_the_reference() {
        let (id, author) = keys();
        let signed = sign_id_block(reference_inputs(), &id, Some(&author));
        let r = reference();
        assert_eq!(signed.id_key_digest().as_bytes().to_vec(), r.id_key_hash);
        assert_eq!(signed.author_key_digest().map(|d| d.as_bytes().to_vec()), Some(r.author_key));
        // ID_KEY_DIGEST is SHA-384 over the whole 1028-byte public key structure.
        let structure = id.public_key().to_bytes();
        assert_eq!(signed.id_key_digest(), Sha384::of(&structure));
    }

    #[test]
    fn reference_signatures_verify_with_our_parser() {
        // Independent check of the R/S layout: the reference's (OpenSSL) signatures verify after our decoding.
        let r = reference();
        let auth = IdAuth::parse(&r.id_auth).unwrap();
        auth.verify(&r.id_block).unwrap();
        assert_eq!(auth.id_key, keys().0.public_key());
    }

    #[test]
    fn our_signatures_verify_and_round_trip() {
        let (id, author) = keys();
        let signed = sign_id_block(reference_inputs(), &id, Some(&author));
        let parsed = IdAuth::parse(&signed.id_auth_bytes()).unwrap();
        assert_eq!(parsed, signed.id_auth);
        parsed.verify(&signed.id_block_bytes()).unwrap();
        assert_eq!(parsed.to_bytes(), signed.id_auth_bytes());
    }

    #[test]
    fn signing_is_deterministic() {
        let (id, author) = keys();
        let a = sign_id_block(reference_inputs(), &id, Some(&author)).id_auth_bytes();
        let b = sign_id_block(reference_inputs(), &id, Some(&author)).id_auth_bytes();
        assert_eq!(a, b);
    }

    #[test]
    fn without_author_key_the_author_fields_are_zero() {
        let (id, _) = keys();
        let signed = sign_id_block(reference_inputs(), &id, None);
        let bytes = signed.id_auth_bytes();
        assert_eq!(&bytes[4..8], &[0, 0, 0, 0]);
        assert!(bytes[offsets::ID_KEY_SIG..].iter().all(|&b| b == 0));
        assert_eq!(signed.author_key_digest(), None);
        let parsed = IdAuth::parse(&bytes).unwrap();
        assert_eq!(parsed.author, None);
        parsed.verify(&signed.id_block_bytes()).unwrap();
    }

    #[test]
    fn pkcs8_and_sec1_encodings_give_the_same_key() {
        let a = SnpSigningKey::from_pem(ID_KEY_PKCS8).unwrap().public_key();
        let b = SnpSigningKey::from_pem(ID_KEY_SEC1).unwrap().public_key();
        assert_eq!(a, b);
    }

    #[test]
    fn rejects_signature_over_other_bytes() {
        let (id, _) = keys();
        let signed = sign_id_block(reference_inputs(), &id, None);
        let mut block = signed.id_block_bytes();
        block[95] ^= 1;
        let err = signed.id_auth.verify(&block).unwrap_err();
        assert_eq!(err, IdAuthError::BadSignature { field: "ID_BLOCK_SIG", key: "ID_KEY" });
    }

    #[test]
    fn rejects_forged_author_signature() {
        let r = reference();
        let mut auth = r.id_auth.clone();
        auth[offsets::ID_KEY_SIG] ^= 1;
        let err = IdAuth::parse(&auth).unwrap().verify(&r.id_block).unwrap_err();
        assert_eq!(err, IdAuthError::BadSignature { field: "ID_KEY_SIG", key: "AUTHOR_KEY" });
    }

    #[test]
    fn rejects_digest_of_wrong_length() {
        for len in [0, 32, 47, 49, 64] {
            let err = IdBlockError::from(LaunchDigest::from_slice(&vec![0; len]).unwrap_err());
            assert_eq!(err, IdBlockError::DigestLength { found: len });
            assert!(err.to_string().contains(&format!("is {len} bytes")), "{err}");
        }
    }

    #[test]
    fn rejects_wrong_curve_keys() {
        for pem in [P256_PKCS8, P256_SEC1] {
            let err = SnpSigningKey::from_pem(pem).unwrap_err();
            assert!(
                matches!(&err, KeyError::WrongCurve { curve: "P-256 (prime256v1)", oid } if oid == "1.2.840.10045.3.1.7"),
                "{err:?}"
            );
            assert!(err.to_string().contains("must be P-384"), "{err}");
        }
    }

    #[test]
    fn rejects_non_ec_key() {
        let err = SnpSigningKey::from_pem(ED25519).unwrap_err();
        assert!(matches!(&err, KeyError::NotEc { algorithm } if algorithm == "1.3.101.112"), "{err:?}");
    }

    #[test]
    fn rejects_bad_pem() {
        assert!(matches!(SnpSigningKey::from_pem("not a key"), Err(KeyError::NoPemBlock)));
        let garbled = ID_KEY_PKCS8.replacen("MIG", "M!G", 1);
        let err = SnpSigningKey::from_pem(&garbled).unwrap_err();
        assert!(matches!(&err, KeyError::Pem { label, .. } if label == "PRIVATE KEY"), "{err:?}");
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let err = SnpSigningKey::from_pem(cert).unwrap_err();
        assert!(matches!(&err, KeyError::UnsupportedLabel { label } if label == "CERTIFICATE"), "{err:?}");
        let truncated_der = "-----BEGIN PRIVATE KEY-----\nMIG2AgEA\n-----END PRIVATE KEY-----\n";
        let err = SnpSigningKey::from_pem(truncated_der).unwrap_err();
        assert!(matches!(&err, KeyError::Der { format: "PKCS#8", .. }), "{err:?}");
        let encrypted = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert!(matches!(SnpSigningKey::from_pem(encrypted), Err(KeyError::Encrypted)));
    }

    #[test]
    fn rejects_malformed_id_auth() {
        let r = reference();
        let err = IdAuth::parse(&r.id_auth[..4000]).unwrap_err();
        assert!(matches!(err, IdAuthError::Read(ReadError::Truncated { .. })), "{err:?}");
        let mut bad = r.id_auth.clone();
        bad[0] = 2;
        assert_eq!(IdAuth::parse(&bad).unwrap_err(), IdAuthError::Algorithm { field: "ID_KEY_ALGO", found: 2 });
        let mut bad = r.id_auth.clone();
        bad[offsets::ID_KEY] = 1;
        assert_eq!(IdAuth::parse(&bad).unwrap_err(), IdAuthError::Curve { field: "ID_KEY", found: 1 });
        let mut bad = r.id_auth.clone();
        bad[offsets::ID_BLOCK_SIG + 60] = 1; // inside R's zero extension
        assert_eq!(
            IdAuth::parse(&bad).unwrap_err(),
            IdAuthError::NonZero { field: "ID_BLOCK_SIG", offset: offsets::ID_BLOCK_SIG + 60 }
        );
        let mut bad = r.id_auth.clone();
        bad[offsets::ID_KEY + 4] ^= 1; // QX no longer on the curve
        assert_eq!(IdAuth::parse(&bad).unwrap_err(), IdAuthError::PublicKey { field: "ID_KEY" });
        let mut bad = r.id_auth.clone();
        bad[4] = 0; // AUTH_KEY_ALGO cleared but author fields present
        assert_eq!(IdAuth::parse(&bad).unwrap_err(), IdAuthError::AuthorKeyMismatch { algo_set: false });
    }

    #[test]
    fn rejects_id_block_with_bad_version_or_length() {
        let mut bytes = reference_inputs().to_bytes();
        bytes[80] = 2;
        assert_eq!(IdBlock::parse(&bytes).unwrap_err(), IdBlockError::Version { found: 2 });
        assert!(matches!(IdBlock::parse(&bytes[..95]), Err(IdBlockError::Read(ReadError::Truncated { .. }))));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        fn arb_block() -> impl Strategy<Value = IdBlock> {
            let bytes = || prop::collection::vec(any::<u8>(), 48);
            (bytes(), any::<u128>(), any::<u128>(), any::<u32>(), any::<u64>()).prop_map(|(d, f, i, svn, policy)| {
                IdBlock {
                    launch_digest: LaunchDigest::from_slice(&d).unwrap(),
                    family_id: f.to_le_bytes(),
                    image_id: i.to_be_bytes(),
                    guest_svn: svn,
                    policy: GuestPolicy(policy),
                }
            })
        }

        proptest! {
            #[test]
            fn id_block_round_trips(block in arb_block()) {
                prop_assert_eq!(IdBlock::parse(&block.to_bytes()).unwrap(), block);
            }

            #[test]
            fn id_auth_parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..4200)) {
                let _ = IdAuth::parse(&bytes);
                let _ = IdBlock::parse(&bytes);
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(32))]

            /// Every signed block verifies; flipping any one bit of the ID block or of the ID auth structure makes
            /// parsing or verification fail (nothing in ID_AUTH is unauthenticated slack).
            #[test]
            fn any_bit_flip_is_detected(block in arb_block(), at in 0..ID_BLOCK_LEN + ID_AUTH_LEN, bit in 0..8u8) {
                let (id, author) = keys();
                let signed = sign_id_block(block, &id, Some(&author));
                let mut id_block = signed.id_block_bytes().to_vec();
                let mut id_auth = signed.id_auth_bytes();
                IdAuth::parse(&id_auth).unwrap().verify(&id_block).unwrap();
                match at.checked_sub(ID_BLOCK_LEN) {
                    None => id_block[at] ^= 1 << bit,
                    Some(i) => id_auth[i] ^= 1 << bit,
                }
                let outcome = IdAuth::parse(&id_auth).and_then(|auth| auth.verify(&id_block));
                prop_assert!(outcome.is_err(), "flip of bit {} at {} went unnoticed", bit, at);
            }
        }
    }
}
