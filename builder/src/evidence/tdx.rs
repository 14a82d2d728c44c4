//! Intel TDX DCAP quotes, versions 4 and 5 (`docs/specs/attestation-layouts.md`): a 48-byte header, the TD report
//! body (TDX 1.0: 584 bytes; TDX 1.5: 648), then the signature data (the ECDSA signature, the QE report and the PCK
//! certificate chain).
//!
//! `dcap-qvl` verifies the quote against collateral the caller supplies (TCB info, QE identity, CRLs and their
//! chains to Intel's root), at the time the caller gives: this module never fetches and never reads the clock. Only
//! after that are the body's registers read, at the documented offsets, and matched against the release.
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use super::{array, u32_at, u64_at, Check, EvidenceError, Release, TdxShape, Verdict};

/// Largest quote accepted (real ones are about 5 KiB).
pub const MAX_QUOTE: usize = 64 * 1024;
/// TD attribute bit 0: the TD is debuggable (the host can read its memory).
pub const TD_DEBUG: u64 = 1;
/// TD attribute bit 28: EPT violations are not converted to #VE (a guest-kernel hardening the TD must have).
pub const SEPT_VE_DISABLE: u64 = 1 << 28;
/// TEE type of TDX in the quote header.
pub const TEE_TDX: u32 = 0x81;

/// Where the TD report body lies in a quote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Quote version (4 or 5).
    pub version: u16,
    /// Offset of the body.
    pub body: usize,
    /// Body size (584 or 648).
    pub body_len: usize,
}

/// Reads the quote's structure: version, TEE type, body offset and size, and that the signature data's declared
/// length ends exactly at the end of the quote.
pub fn layout(quote: &[u8]) -> Result<Layout, String> {
    if quote.len() < 48 {
        return Err(format!("{} bytes is shorter than a quote header (48)", quote.len()));
    }
    let version = u16::from_le_bytes(array(quote, 0));
    let tee = u32_at(quote, 4);
    if tee != TEE_TDX {
        return Err(format!("TEE type {tee:#x} is not TDX (0x81)"));
    }
    let (body, body_len) = match version {
        4 => (48, 584),
        5 => {
            let kind = u16::from_le_bytes(array(quote, 48));
            let size = u32_at(quote, 50) as usize;
            let expected = match kind {
                2 => 584,
                3 => 648,
                other => return Err(format!("quote v5 body type {other} is not a TD report (2: TDX 1.0, 3: TDX 1.5)")),
            };
            if size != expected {
                return Err(format!(
                    "quote v5 body type {kind} says {size} bytes; a TD report of that type is {expected}"
                ));
            }
            (54, size)
        }
        other => return Err(format!("quote version {other} is not one cvmforge reads (4, 5)")),
    };
    let sig_len_at = body + body_len;
    if quote.len() < sig_len_at + 4 {
        return Err(format!(
            "the quote is {} bytes: its body ends at byte {sig_len_at}, with no signature data after it",
            quote.len()
        ));
    }
    let sig_len = u32_at(quote, sig_len_at) as usize;
    let total = sig_len_at + 4 + sig_len;
    // Quotes read from a fixed-size buffer (configfs-tsm, /dev/tdx_guest) end in zero padding; anything else after
    // the signature data is a second, unsigned payload and is refused.
    let padding_only = quote.get(total..).is_some_and(|rest| rest.iter().all(|&b| b == 0));
    if !padding_only {
        return Err(format!(
            "the body ({body_len} bytes at {body}) and the signature data ({sig_len} bytes) make {total} bytes, but the quote is {} (and not zero padding after them)",
            quote.len()
        ));
    }
    Ok(Layout { version, body, body_len })
}

/// What the caller requires beyond the release.
#[derive(Debug, Clone, Default)]
pub struct TdxOptions {
    /// TCB statuses accepted besides `UpToDate` (`OutOfDate`, `SWHardeningNeeded`, ...).
    pub allow_tcb_status: Vec<String>,
    /// RTMR0 as the caller computed it (the release cannot yet).
    pub rtmr0: Option<[u8; 48]>,
    /// RTMR3, if the guest extends it (otherwise it must be zero).
    pub rtmr3: Option<[u8; 48]>,
    /// MRCONFIGID, MROWNER, MROWNERCONFIG (otherwise zero).
    pub mrconfigid: Option<[u8; 48]>,
    /// See [`TdxOptions::mrconfigid`].
    pub mrowner: Option<[u8; 48]>,
    /// See [`TdxOptions::mrconfigid`].
    pub mrownerconfig: Option<[u8; 48]>,
    /// REPORT_DATA must equal this.
    pub report_data: Option<[u8; 64]>,
}

/// Checks `quote` with `collateral` (dcap-qvl's `QuoteCollateralV3` JSON) at `now` against the release's TDX shapes.
pub fn check(
    quote: &[u8],
    collateral: &[u8],
    release: &Release,
    now: u64,
    options: &TdxOptions,
) -> Result<Verdict, EvidenceError> {
    if quote.len() > MAX_QUOTE {
        return Err(EvidenceError::Length {
            what: "the quote",
            len: quote.len(),
            expected: format!("at most {MAX_QUOTE}"),
        });
    }
    if release.tdx.is_empty() {
        return Err(EvidenceError::NoShapes { platform: "TDX" });
    }
    for (i, m) in release.tdx.iter().enumerate() {
        for (name, value) in [("mrtd", &m.mrtd), ("rtmr1", &m.rtmr1), ("rtmr2", &m.rtmr2)] {
            if value.len() != 96 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(EvidenceError::Release {
                    field: format!("measurements.tdx[{i}].{name}"),
                    reason: "is not 96 hex digits (SHA-384)",
                });
            }
        }
    }
    let collateral: dcap_qvl::QuoteCollateralV3 =
        serde_json::from_slice(collateral).map_err(|e| EvidenceError::Collateral { reason: e.to_string() })?;
    let mut verdict = Verdict::new("tdx", String::new());
    // The signature first: a changed byte anywhere in the signed part fails here, whatever it changed.
    let verified = dcap_qvl::verify::verify(quote, &collateral, now);
    let status = match verified {
        Ok(report) => {
            verdict.checks.push(Check::new(
                "signature",
                "the quote, its QE report and PCK chain verify against the collateral",
                "verified",
                true,
            ));
            report.status
        }
        Err(e) => {
            verdict.checks.push(Check::new(
                "signature",
                "the quote, its QE report and PCK chain verify against the collateral",
                format!("does not verify: {e:#}"),
                false,
            ));
            if let Err(structure) = layout(quote) {
                verdict.checks.push(Check::new("structure", "a TDX quote v4 or v5", structure, false));
            }
            verdict
                .notes
                .push("no field of the quote was read: nothing in it is believed before its signature verifies".into());
            return Ok(verdict);
        }
    };
    let tcb_ok = status == "UpToDate" || options.allow_tcb_status.contains(&status);
    let allowed = std::iter::once("UpToDate".to_string())
        .chain(options.allow_tcb_status.iter().cloned())
        .collect::<Vec<_>>()
        .join(", ");
    verdict.checks.push(Check::new("tcb_status", allowed, status, tcb_ok));
    let layout = match layout(quote) {
        Ok(layout) => layout,
        Err(e) => {
            verdict.checks.push(Check::new("structure", "a TDX quote v4 or v5", e, false));
            return Ok(verdict);
        }
    };
    check_body(quote, layout, &release.tdx, options, &mut verdict);
    Ok(verdict)
}

/// The registers of the body, at their offsets inside it.
fn check_body(quote: &[u8], layout: Layout, shapes: &[TdxShape], options: &TdxOptions, verdict: &mut Verdict) {
    let at = |offset: usize| layout.body + offset;
    let reg = |offset: usize| hex::encode(array::<48>(quote, at(offset)));
    let (mrtd, rtmr1, rtmr2) = (reg(136), reg(376), reg(424));
    verdict.report_data = hex::encode(array::<64>(quote, at(520)));
    let score = |m: &TdxShape| {
        usize::from(m.mrtd.eq_ignore_ascii_case(&mrtd))
            + usize::from(m.rtmr1.eq_ignore_ascii_case(&rtmr1))
            + usize::from(m.rtmr2.eq_ignore_ascii_case(&rtmr2))
    };
    let best = shapes.iter().max_by_key(|m| score(m));
    let matched = best.filter(|m| score(m) == 3);
    match (matched, best) {
        (Some(m), _) => verdict.matched_shape = Some(format!("{} ({} vCPUs, {}, {})", m.name, m.vcpus, m.memory, m.page_order)),
        (None, Some(m)) => verdict.notes.push(format!(
            "no published TDX shape has these registers; the nearest is {} ({} of MRTD, RTMR1, RTMR2 agree). MRTD differs \
             with another firmware or page order, RTMR1 with another kernel (or QEMU's patching of it), RTMR2 with another \
             command line or initrd",
            m.name,
            score(m)
        )),
        (None, None) => {}
    }
    for (name, actual, expected) in [
        ("mrtd", &mrtd, best.map(|m| m.mrtd.clone())),
        ("rtmr1", &rtmr1, best.map(|m| m.rtmr1.clone())),
        ("rtmr2", &rtmr2, best.map(|m| m.rtmr2.clone())),
    ] {
        let expected = expected.unwrap_or_default().to_ascii_lowercase();
        let pass = &expected == actual;
        verdict.checks.push(Check::new(name, expected, actual.clone(), pass));
    }
    let rtmr0 = reg(328);
    match options.rtmr0 {
        Some(want) => verdict.checks.push(Check::new("rtmr0", hex::encode(want), rtmr0.clone(), hex::encode(want) == rtmr0)),
        None => verdict.notes.push(format!(
            "RTMR0 ({rtmr0}) was not checked: it depends on the TD HOB and QEMU's ACPI tables, which the release cannot \
             compute yet; pass --rtmr0 to require a value"
        )),
    }
    let zero = [0u8; 48];
    for (name, offset, want) in [
        ("rtmr3", 472, options.rtmr3),
        ("mrconfigid", 184, options.mrconfigid),
        ("mrowner", 232, options.mrowner),
        ("mrownerconfig", 280, options.mrownerconfig),
    ] {
        let want = hex::encode(want.unwrap_or(zero));
        let have = reg(offset);
        let pass = want == have;
        verdict.checks.push(Check::new(name, want, have, pass));
    }
    let attributes = u64_at(quote, at(120));
    let debug = attributes & TD_DEBUG != 0;
    verdict.checks.push(Check::new("td_attributes.debug", "off", if debug { "on" } else { "off" }, !debug));
    let sept = attributes & SEPT_VE_DISABLE != 0;
    verdict.checks.push(Check::new("td_attributes.sept_ve_disable", "on", if sept { "on" } else { "off" }, sept));
    match &options.report_data {
        Some(want) => {
            let pass = hex::encode(want) == verdict.report_data;
            verdict.checks.push(Check::new("report_data", hex::encode(want), verdict.report_data.clone(), pass));
        }
        None => verdict
            .notes
            .push("REPORT_DATA was not checked (no --report-data): bind it to your nonce or TLS key yourself".into()),
    }
}

/// Fuzzing entry point (`fuzz/fuzz_targets/tdx_quote.rs`): the structure of arbitrary bytes as a quote, and where it
/// has one, every register read as `check` does after the signature; it must never panic.
pub fn fuzz_quote(data: &[u8]) {
    if let Ok(layout) = layout(data) {
        let mut verdict = Verdict::new("tdx", String::new());
        check_body(data, layout, &[], &TdxOptions::default(), &mut verdict);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quote(version: u16, body_kind: u16, body_len: u32, sig_len: u32) -> Vec<u8> {
        let mut q = vec![0u8; 48];
        q[0..2].copy_from_slice(&version.to_le_bytes());
        q[4..8].copy_from_slice(&TEE_TDX.to_le_bytes());
        if version == 5 {
            q.extend_from_slice(&body_kind.to_le_bytes());
            q.extend_from_slice(&body_len.to_le_bytes());
        }
        q.extend(vec![0u8; body_len as usize]);
        q.extend_from_slice(&sig_len.to_le_bytes());
        q.extend(vec![0u8; sig_len as usize]);
        q
    }

    #[test]
    fn reads_v4_and_v5_layouts() {
        assert_eq!(layout(&quote(4, 0, 584, 10)), Ok(Layout { version: 4, body: 48, body_len: 584 }));
        assert_eq!(layout(&quote(5, 2, 584, 10)), Ok(Layout { version: 5, body: 54, body_len: 584 }));
        assert_eq!(layout(&quote(5, 3, 648, 0)), Ok(Layout { version: 5, body: 54, body_len: 648 }));
    }

    #[test]
    fn rejects_bad_structures_by_name() {
        let mut padded = quote(4, 0, 584, 10);
        padded.extend([0u8; 70]);
        assert!(layout(&padded).is_ok(), "zero padding after the signature data is accepted");
        padded.push(1);
        assert!(layout(&padded).unwrap_err().contains("make 646 bytes, but the quote is 717"));
        let mut short = quote(4, 0, 584, 10);
        short.pop();
        assert!(layout(&short).unwrap_err().contains("make 646 bytes, but the quote is 645"));
        assert!(layout(&quote(5, 3, 584, 0)).unwrap_err().contains("body type 3 says 584 bytes"));
        assert!(layout(&quote(3, 0, 584, 0)).unwrap_err().contains("quote version 3"));
        assert!(layout(&[0u8; 20]).unwrap_err().contains("shorter than a quote header"));
        let mut sgx = quote(4, 0, 584, 0);
        sgx[4] = 0;
        assert!(layout(&sgx).unwrap_err().contains("not TDX"));
    }
}
