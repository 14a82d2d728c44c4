//! Ed25519 release keys: PKCS#8 PEM private keys, SPKI PEM public keys, and the C2SP verifier-key string
//! `name+hex(key id)+base64(0x01 ‖ public key)` with key id = SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[..4].

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Why a key could not be made or read.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The OS random number generator failed.
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
    /// Not a PEM key of the expected kind.
    #[error("not an Ed25519 {kind} key in PEM ({reason})")]
    Pem {
        /// `private (PKCS#8)` or `public (SPKI)`.
        kind: &'static str,
        /// The decoder's message.
        reason: String,
    },
    /// A C2SP key name with a `+`, a space or a newline.
    #[error("key name `{0}` must be non-empty and contain no `+`, whitespace or control characters")]
    BadName(String),
}

/// A new key from the OS random number generator (the one place cvmforge uses randomness).
pub fn generate() -> Result<SigningKey, KeyError> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The private key as PKCS#8 v1 PEM (the seed only, as `openssl genpkey` writes it: v2's embedded public key is
/// refused by some readers, Python's `cryptography` among them).
pub fn private_pem(key: &SigningKey) -> Result<String, KeyError> {
    let bytes = ed25519_dalek::pkcs8::KeypairBytes { secret_key: key.to_bytes(), public_key: None };
    bytes
        .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .map(|pem| pem.to_string())
        .map_err(|e| KeyError::Pem { kind: "private (PKCS#8)", reason: e.to_string() })
}

/// The public key as SPKI PEM.
pub fn public_pem(key: &VerifyingKey) -> Result<String, KeyError> {
    key.to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .map_err(|e| KeyError::Pem { kind: "public (SPKI)", reason: e.to_string() })
}

/// Reads a PKCS#8 PEM private key.
pub fn read_private(pem: &str) -> Result<SigningKey, KeyError> {
    SigningKey::from_pkcs8_pem(pem).map_err(|e| KeyError::Pem { kind: "private (PKCS#8)", reason: e.to_string() })
}

/// Reads a public key: SPKI PEM, or the PKCS#8 private key it belongs to.
pub fn read_public(pem: &str) -> Result<VerifyingKey, KeyError> {
    if let Ok(key) = VerifyingKey::from_public_key_pem(pem) {
        return Ok(key);
    }
    read_private(pem)
        .map(|k| k.verifying_key())
        .map_err(|_| KeyError::Pem { kind: "public (SPKI)", reason: "neither a public key nor a private key".into() })
}

/// The C2SP verifier-key string of `key` under `name`.
pub fn verifier_key(name: &str, key: &VerifyingKey) -> Result<String, KeyError> {
    if name.is_empty() || name.chars().any(|c| c == '+' || c.is_whitespace() || c.is_control()) {
        return Err(KeyError::BadName(name.to_owned()));
    }
    let mut typed = vec![0x01];
    typed.extend_from_slice(key.as_bytes());
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update(&typed);
    let id: [u8; 32] = h.finalize().into();
    Ok(format!("{name}+{}+{}", hex::encode(id.get(..4).unwrap_or_default()), STANDARD.encode(typed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_pem() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let private = private_pem(&key).unwrap();
        assert!(private.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert_eq!(read_private(&private).unwrap().to_bytes(), key.to_bytes());
        let public = public_pem(&key.verifying_key()).unwrap();
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert_eq!(read_public(&public).unwrap(), key.verifying_key());
        assert_eq!(read_public(&private).unwrap(), key.verifying_key());
        assert!(read_public("junk").is_err());
    }

    #[test]
    fn verifier_key_follows_c2sp() {
        let key = SigningKey::from_bytes(&[3; 32]).verifying_key();
        let vkey = verifier_key("example.com/log", &key).unwrap();
        let parts: Vec<&str> = vkey.split('+').collect();
        assert_eq!(parts[0], "example.com/log");
        assert_eq!(parts[1].len(), 8);
        let raw = STANDARD.decode(parts[2]).unwrap();
        assert_eq!(raw[0], 1);
        assert_eq!(&raw[1..], key.as_bytes());
        assert!(verifier_key("a b", &key).is_err());
    }
}
