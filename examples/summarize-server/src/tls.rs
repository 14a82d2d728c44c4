//! The server's TLS identity: a key pair generated at start-up, in memory only, never written anywhere, and a
//! self-signed certificate for it. Clients do not trust the certificate by a CA: they trust the key because its
//! SHA-256 (of the DER SubjectPublicKeyInfo) is bound into the attestation report's REPORT_DATA (see `attest`), and
//! they pin it for the TLS connection.

use std::sync::Arc;

use sha2::{Digest, Sha256};

/// The identity the TLS listener serves with.
pub struct TlsIdentity {
    /// The rustls server configuration (TLS 1.3 and 1.2, the ring provider).
    pub config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the certificate's DER SubjectPublicKeyInfo: what REPORT_DATA binds and clients pin.
    pub spki_sha256: [u8; 32],
}

/// Why the identity could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Key or certificate generation failed.
    #[error("cannot generate the TLS key or certificate")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("cannot configure TLS")]
    Config(#[from] rustls::Error),
}

/// Generates a fresh ECDSA P-256 key and a self-signed certificate for it.
pub fn generate() -> Result<TlsIdentity, TlsError> {
    let key = rcgen::KeyPair::generate()?;
    let params = rcgen::CertificateParams::new(vec!["cvmforge-demo".to_owned()])?;
    let cert = params.self_signed(&key)?;
    let spki_sha256: [u8; 32] = Sha256::digest(rcgen::PublicKeyData::subject_public_key_info(&key)).into();
    // The ring provider: aws-lc-rs (rustls' default, with post-quantum key exchange) needs cmake and a C toolchain
    // step that the static guest build does not have; ring's classical X25519/P-256 exchange is what this demo uses.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key_der)?;
    Ok(TlsIdentity { config: Arc::new(config), spki_sha256 })
}

/// The SHA-256 of a DER certificate's SubjectPublicKeyInfo, as a client computes it to pin the server's key: the
/// certificate is parsed only as far as the SPKI (X.509 `tbsCertificate` field 7, counting the optional version).
pub fn spki_sha256_of_cert(cert_der: &[u8]) -> Option<[u8; 32]> {
    let spki = der::spki(cert_der)?;
    Some(Sha256::digest(spki).into())
}

/// Just enough DER to find the SubjectPublicKeyInfo of an X.509 certificate.
mod der {
    /// (tag, header length, content length) of the element at the start of `data`.
    fn header(data: &[u8]) -> Option<(u8, usize, usize)> {
        let tag = *data.first()?;
        let first = *data.get(1)?;
        if first < 0x80 {
            return Some((tag, 2, usize::from(first)));
        }
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | usize::from(*data.get(2 + i)?);
        }
        Some((tag, 2 + n, len))
    }

    /// The whole element (header and content) at the start of `data`, and the rest.
    fn element(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (tag, head, len) = header(data)?;
        let end = head.checked_add(len)?;
        Some((tag, data.get(..end)?, data.get(end..)?))
    }

    fn content(data: &[u8]) -> Option<&[u8]> {
        let (_, head, len) = header(data)?;
        data.get(head..head.checked_add(len)?)
    }

    /// Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serial, signature, issuer,
    /// validity, subject, subjectPublicKeyInfo, ... }, ... }
    pub(super) fn spki(cert: &[u8]) -> Option<&[u8]> {
        let tbs = content(content(cert)?)?;
        let mut rest = tbs;
        let (tag, _, after) = element(rest)?;
        if tag == 0xa0 {
            rest = after;
        }
        for _ in 0..5 {
            rest = element(rest)?.2;
        }
        Some(element(rest)?.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_identity_is_pinned_by_its_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["x".into()]).unwrap().self_signed(&key).unwrap();
        let expected: [u8; 32] = Sha256::digest(rcgen::PublicKeyData::subject_public_key_info(&key)).into();
        assert_eq!(spki_sha256_of_cert(cert.der()), Some(expected));
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a.spki_sha256, b.spki_sha256, "a new key at every start");
    }

    #[test]
    fn rejects_truncated_certificates() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["x".into()]).unwrap().self_signed(&key).unwrap();
        for cut in [0, 1, 10, 100] {
            assert_eq!(spki_sha256_of_cert(&cert.der()[..cut]), None, "{cut}");
        }
    }
}
