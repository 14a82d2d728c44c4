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
    let from_tsm = tsm_report(Path::new(TSM_REPORT_DIR), &data);
    let result = from_tsm.or_else(|tsm| {
        sev_guest::get_report(Path::new(sev_guest::DEVICE), &data)
            .map(|report| ("sev_guest".to_owned(), report))
            .map_err(|dev| format!("{tsm}; {dev}"))
    });
    match result {
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
    // guest-init prepares `payload` for the unprivileged payload (only root may make entries); a server run as
    // root makes its own.
    let prepared = dir.join("payload");
    let (entry, own) = if prepared.is_dir() {
        (prepared, false)
    } else {
        let entry = dir.join(format!("summarize-{}", std::process::id()));
        let _ = std::fs::create_dir(&entry);
        (entry, true)
    };
    let result = (|| {
        std::fs::write(entry.join("inblob"), data).map_err(|e| format!("writing inblob: {e}"))?;
        let provider = std::fs::read_to_string(entry.join("provider")).map_err(|e| format!("reading provider: {e}"))?;
        let report = std::fs::read(entry.join("outblob")).map_err(|e| format!("reading outblob: {e}"))?;
        Ok((provider.trim().to_owned(), report))
    })();
    if own {
        let _ = std::fs::remove_dir(&entry);
    }
    result
}

/// The SEV-SNP guest device of Linux before configfs-tsm (`drivers/virt/coco/sev-guest`, `include/uapi/linux/
/// sev-guest.h`): the `SNP_GET_REPORT` ioctl. guest-init gives the payload's user this device when it exists.
/// Written to the ABI; it has not run on SEV-SNP hardware here (there is none), only its "no device" path has.
#[allow(unsafe_code)]
mod sev_guest {
    use std::os::fd::AsRawFd;
    use std::path::Path;

    /// The device.
    pub(super) const DEVICE: &str = "/dev/sev-guest";

    /// `struct snp_report_req`: REPORT_DATA, the VMPL to report (0), reserved.
    #[repr(C)]
    struct ReportReq {
        user_data: [u8; 64],
        vmpl: u32,
        rsvd: [u8; 28],
    }

    /// `struct snp_report_resp`: the firmware's `MSG_REPORT_RSP` (status, report size, reserved, report).
    #[repr(C)]
    struct ReportResp {
        data: [u8; 4000],
    }

    /// `struct snp_guest_request_ioctl`.
    #[repr(C)]
    struct GuestRequest {
        msg_version: u8,
        req_data: u64,
        resp_data: u64,
        exitinfo2: u64,
    }

    /// `_IOWR('S', 0x0, struct snp_guest_request_ioctl)`: read-write (3 << 30), size 32, type 'S', number 0.
    pub(super) const SNP_GET_REPORT: u64 = (3 << 30) | (32 << 16) | ((b'S' as u64) << 8);

    /// An attestation report with `data` as REPORT_DATA.
    pub(super) fn get_report(device: &Path, data: &[u8; 64]) -> Result<Vec<u8>, String> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(device)
            .map_err(|e| format!("`{}`: {e}", device.display()))?;
        let req = ReportReq { user_data: *data, vmpl: 0, rsvd: [0; 28] };
        let mut resp = Box::new(ReportResp { data: [0; 4000] });
        let mut ioctl = GuestRequest {
            msg_version: 1,
            req_data: std::ptr::addr_of!(req) as u64,
            resp_data: std::ptr::addr_of_mut!(*resp) as u64,
            exitinfo2: 0,
        };
        // SAFETY: the request and response point to live, correctly sized `repr(C)` structs of the ABI above, which
        // outlive the call; the kernel writes only within the response and the ioctl struct.
        let rc = unsafe { nix::libc::ioctl(file.as_raw_fd(), SNP_GET_REPORT as _, std::ptr::addr_of_mut!(ioctl)) };
        if rc != 0 {
            let errno = std::io::Error::last_os_error();
            return Err(format!("SNP_GET_REPORT failed: {errno} (exitinfo2 {:#x})", ioctl.exitinfo2));
        }
        // MSG_REPORT_RSP: status (u32), report_size (u32), 24 reserved bytes, then the report.
        let word = |at: usize| resp.data.get(at..at + 4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes);
        match (word(0), word(4)) {
            (Some(0), Some(size)) => {
                let end = 32usize.checked_add(size as usize).filter(|end| *end <= resp.data.len());
                end.and_then(|end| resp.data.get(32..end))
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| format!("the report size {size} does not fit the response"))
            }
            (status, _) => Err(format!("the firmware answered status {status:?}")),
        }
    }
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
        let err = sev_guest::get_report(Path::new("/nonexistent/sev-guest"), &[0; 64]).unwrap_err();
        assert!(err.contains("/nonexistent/sev-guest"), "{err}");
    }

    #[test]
    fn the_ioctl_number_is_the_kernels() {
        // SNP_GET_REPORT = _IOWR('S', 0x0, struct snp_guest_request_ioctl) = 0xc0205300 on x86-64, as the kernel
        // headers define it (the struct is 32 bytes).
        assert_eq!(sev_guest::SNP_GET_REPORT, 0xc020_5300);
    }
}
