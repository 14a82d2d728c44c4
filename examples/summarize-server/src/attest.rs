//! The attestation endpoint: evidence that binds this server's TLS key to the VM's launch measurement.
//!
//! REPORT_DATA (64 bytes) is the SHA-256 of the TLS key's DER SubjectPublicKeyInfo followed by 32 zero bytes. The
//! report is asked for through configfs-tsm (`/sys/kernel/config/tsm/report`, Linux 6.7+, SEV-SNP and TDX): write
//! `inblob`, read `outblob` and `provider`. Without a confidential-computing report device (as under QEMU without
//! SEV-SNP or TDX, or on Linux 6.1, whose `/dev/sev-guest` ioctl is not implemented here) the endpoint says so
//! explicitly and serves no report: it never fakes one.

use std::path::Path;

use base64::Engine;
use serde::Serialize;

/// Where configfs-tsm reports are made.
pub const TSM_REPORT_DIR: &str = "/sys/kernel/config/tsm/report";

/// REPORT_DATA for a TLS key: SHA-256(SPKI) || 32 zero bytes.
pub fn report_data(spki_sha256: &[u8; 32]) -> [u8; 64] {
    let mut data = [0u8; 64];
    if let Some(head) = data.get_mut(..32) {
        head.copy_from_slice(spki_sha256);
    }
    data
}

/// What `GET /v1/attestation` answers.
#[derive(Debug, Serialize)]
pub struct Attestation {
    /// `sev_guest`, `tdx_guest` (configfs-tsm's provider name), or `none`.
    pub provider: String,
    /// The report (SNP attestation report or TDX quote), base64; absent without a device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
    /// The 64 bytes asked for, hex.
    pub report_data: String,
    /// SHA-256 of the TLS key's SubjectPublicKeyInfo, hex: the first half of `report_data`.
    pub tls_spki_sha256: String,
    /// Why there is no report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Asks for a report binding `spki_sha256`; returns the answer and whether a report was obtained.
pub fn attest(spki_sha256: &[u8; 32]) -> (Attestation, bool) {
    let data = report_data(spki_sha256);
    let mut out = Attestation {
        provider: "none".into(),
        report: None,
        report_data: hex::encode(data),
        tls_spki_sha256: hex::encode(spki_sha256),
        error: None,
    };
    match tsm_report(Path::new(TSM_REPORT_DIR), &data) {
        Ok((provider, report)) => {
            out.provider = provider;
            out.report = Some(base64::engine::general_purpose::STANDARD.encode(report));
            (out, true)
        }
        Err(why) => {
            out.error = Some(format!(
                "no confidential-computing report device: {why}; this VM cannot prove its measurement, and no \
                 report is made up"
            ));
            (out, false)
        }
    }
}

/// One configfs-tsm report: a fresh entry directory, `inblob`, then `provider` and `outblob`.
fn tsm_report(dir: &Path, data: &[u8; 64]) -> Result<(String, Vec<u8>), String> {
    if !dir.is_dir() {
        return Err(format!("`{}` does not exist (Linux 6.7+ with SEV-SNP or TDX guest support)", dir.display()));
    }
    let entry = dir.join(format!("summarize-{}", std::process::id()));
    let _ = std::fs::create_dir(&entry);
    let result = (|| {
        std::fs::write(entry.join("inblob"), data).map_err(|e| format!("writing inblob: {e}"))?;
        let provider = std::fs::read_to_string(entry.join("provider")).map_err(|e| format!("reading provider: {e}"))?;
        let report = std::fs::read(entry.join("outblob")).map_err(|e| format!("reading outblob: {e}"))?;
        Ok((provider.trim().to_owned(), report))
    })();
    let _ = std::fs::remove_dir(&entry);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_data_is_the_key_hash_then_zeros() {
        let data = report_data(&[0xab; 32]);
        assert_eq!(&data[..32], &[0xab; 32]);
        assert_eq!(&data[32..], &[0; 32]);
    }

    #[test]
    fn without_a_device_says_so_and_serves_no_report() {
        let err = tsm_report(Path::new("/nonexistent/tsm/report"), &[0; 64]).unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
    }
}
