//! DSSE envelopes (`docs/specs/publishing.md`): `{"payload", "payloadType", "signatures": [{"keyid", "sig"}]}`, each
//! signature an Ed25519 signature over PAE = `"DSSEv1" SP len(type) SP type SP len(body) SP body`.
//!
//! The key id is securesystemslib's: the SHA-256 of the key's canonical JSON
//! `{"keytype":"ed25519","keyval":{"public":"<hex>"},"scheme":"ed25519"}`, so that its verifier finds our signatures
//! and ours finds its.
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// Largest envelope read.
pub const MAX_ENVELOPE: u64 = 16 << 20;

/// A DSSE envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// The statement, base64.
    pub payload: String,
    /// Its media type.
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// One or more signatures.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature of an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    /// The signer's key id (see the module docs).
    #[serde(default)]
    pub keyid: String,
    /// The Ed25519 signature over the PAE, base64.
    pub sig: String,
}

/// Why an envelope was refused.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DsseError {
    /// Not JSON of the envelope's shape.
    #[error("not a DSSE envelope: {0}")]
    Json(String),
    /// The payload type is not the expected one.
    #[error("payloadType is `{found}`, expected `{expected}`")]
    PayloadType {
        /// What the envelope says.
        found: String,
        /// What was required.
        expected: String,
    },
    /// A base64 field does not decode.
    #[error("{field} is not valid base64")]
    Base64 {
        /// `payload` or `signatures[i].sig`.
        field: String,
    },
    /// There is no signature.
    #[error("the envelope has no signature")]
    NoSignature,
    /// Two signatures are the same, or come from the same key.
    #[error("signatures[{index}] repeats a key id or a signature of an earlier one")]
    Duplicate {
        /// The later one.
        index: usize,
    },
    /// No signature verifies under the given key.
    #[error("no signature verifies under key {keyid}: the payload or its type was changed, or another key signed it")]
    BadSignature {
        /// The key that was tried.
        keyid: String,
    },
}

/// PAE: `"DSSEv1" SP len(type) SP type SP len(body) SP body`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {} {} ", payload_type.len(), payload_type, payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out
}

/// securesystemslib's key id of an Ed25519 public key.
pub fn keyid(key: &VerifyingKey) -> String {
    let canonical = format!(
        r#"{{"keytype":"ed25519","keyval":{{"public":"{}"}},"scheme":"ed25519"}}"#,
        hex::encode(key.as_bytes())
    );
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// Signs `payload` of type `payload_type` with `key`: an envelope with one signature.
pub fn sign(payload: &[u8], payload_type: &str, key: &SigningKey) -> Envelope {
    let signature = key.sign(&pae(payload_type, payload));
    Envelope {
        payload: STANDARD.encode(payload),
        payload_type: payload_type.to_owned(),
        signatures: vec![EnvelopeSignature {
            keyid: keyid(&key.verifying_key()),
            sig: STANDARD.encode(signature.to_bytes()),
        }],
    }
}

/// Parses an envelope's JSON.
pub fn parse(bytes: &[u8]) -> Result<Envelope, DsseError> {
    serde_json::from_slice(bytes).map_err(|e| DsseError::Json(e.to_string()))
}

/// Verifies `envelope` under `key` (a signature with another key id is not tried) and returns the payload.
pub fn verify(envelope: &Envelope, key: &VerifyingKey, payload_type: &str) -> Result<Vec<u8>, DsseError> {
    if envelope.payload_type != payload_type {
        return Err(DsseError::PayloadType { found: envelope.payload_type.clone(), expected: payload_type.to_owned() });
    }
    let payload = STANDARD.decode(&envelope.payload).map_err(|_| DsseError::Base64 { field: "payload".into() })?;
    if envelope.signatures.is_empty() {
        return Err(DsseError::NoSignature);
    }
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for (index, s) in envelope.signatures.iter().enumerate() {
        if seen.iter().any(|(k, sig)| (!s.keyid.is_empty() && *k == s.keyid) || *sig == s.sig) {
            return Err(DsseError::Duplicate { index });
        }
        seen.push((&s.keyid, &s.sig));
    }
    let message = pae(&envelope.payload_type, &payload);
    let ours = keyid(key);
    for (index, s) in envelope.signatures.iter().enumerate() {
        if !s.keyid.is_empty() && s.keyid != ours {
            continue;
        }
        let raw =
            STANDARD.decode(&s.sig).map_err(|_| DsseError::Base64 { field: format!("signatures[{index}].sig") })?;
        let Ok(bytes) = <[u8; 64]>::try_from(raw.as_slice()) else { continue };
        if key.verify(&message, &ed25519_dalek::Signature::from_bytes(&bytes)).is_ok() {
            return Ok(payload);
        }
    }
    Err(DsseError::BadSignature { keyid: ours })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn pae_is_the_specs() {
        // The DSSE spec's example: PAE("http://example.com/HelloWorld", "hello world").
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[test]
    fn signs_and_verifies_and_refuses_each_tampering() {
        let k = key(1);
        let env = sign(br#"{"a":1}"#, IN_TOTO_PAYLOAD_TYPE, &k);
        assert_eq!(verify(&env, &k.verifying_key(), IN_TOTO_PAYLOAD_TYPE).unwrap(), br#"{"a":1}"#);
        let tampered = Envelope { payload: STANDARD.encode(br#"{"a":2}"#), ..env.clone() };
        assert!(matches!(
            verify(&tampered, &k.verifying_key(), IN_TOTO_PAYLOAD_TYPE),
            Err(DsseError::BadSignature { .. })
        ));
        assert!(matches!(
            verify(&env, &key(2).verifying_key(), IN_TOTO_PAYLOAD_TYPE),
            Err(DsseError::BadSignature { .. })
        ));
        let other_type = Envelope { payload_type: "text/plain".into(), ..env.clone() };
        assert!(matches!(
            verify(&other_type, &k.verifying_key(), IN_TOTO_PAYLOAD_TYPE),
            Err(DsseError::PayloadType { .. })
        ));
        let bad64 = Envelope { payload: "***".into(), ..env.clone() };
        assert_eq!(
            verify(&bad64, &k.verifying_key(), IN_TOTO_PAYLOAD_TYPE),
            Err(DsseError::Base64 { field: "payload".into() })
        );
        let none = Envelope { signatures: vec![], ..env.clone() };
        assert_eq!(verify(&none, &k.verifying_key(), IN_TOTO_PAYLOAD_TYPE), Err(DsseError::NoSignature));
        let twice = Envelope { signatures: vec![env.signatures[0].clone(), env.signatures[0].clone()], ..env.clone() };
        assert_eq!(verify(&twice, &k.verifying_key(), IN_TOTO_PAYLOAD_TYPE), Err(DsseError::Duplicate { index: 1 }));
    }
}
