//! The client side of the attested channel, as a client of this service does it: fetch `/v1/attestation` over
//! plain HTTP, check the evidence (with `cvmforge check-evidence --report-data`, when there is a report), then open
//! TLS to the summariser trusting exactly the key whose SHA-256 the evidence binds: the certificate is pinned by
//! its SubjectPublicKeyInfo hash, not trusted through a CA.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// Accepts exactly the server key whose SubjectPublicKeyInfo hashes to `spki_sha256`; signatures are checked as
/// usual.
#[derive(Debug)]
pub struct PinnedKey {
    spki_sha256: [u8; 32],
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl PinnedKey {
    /// Pins `spki_sha256`.
    pub fn new(spki_sha256: [u8; 32]) -> Self {
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        PinnedKey { spki_sha256, provider }
    }
}

impl ServerCertVerifier for PinnedKey {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match crate::tls::spki_sha256_of_cert(end_entity) {
            Some(hash) if hash == self.spki_sha256 => Ok(ServerCertVerified::assertion()),
            _ => Err(rustls::Error::General("the server's key is not the attested one".into())),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Sends one HTTP request over TLS to `addr`, trusting only the pinned key; returns the raw response.
pub fn https_request(addr: &str, spki_sha256: [u8; 32], request: &[u8]) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let pinned = Arc::new(PinnedKey::new(spki_sha256));
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&pinned.provider))
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(pinned)
        .with_no_client_auth();
    let name = ServerName::try_from("cvmforge-demo")?;
    let connection = rustls::ClientConnection::new(Arc::new(config), name)?;
    let socket = TcpStream::connect(addr)?;
    socket.set_read_timeout(Some(std::time::Duration::from_secs(20)))?;
    let mut tls = rustls::StreamOwned::new(connection, socket);
    tls.write_all(request)?;
    tls.flush()?;
    let mut response = Vec::new();
    match tls.read_to_end(&mut response) {
        Ok(_) => {}
        // A server that closes without close_notify after a complete response is tolerated.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(e) => return Err(e.into()),
    }
    Ok(response)
}
