//! Checking attestation evidence against a published release: is this VM running exactly a published image, with a
//! safe policy?
//!
//! A client, an auditor or a relay holds an SEV-SNP attestation report ([`snp`]) or a TDX quote ([`tdx`]) and the
//! release's manifest. Each check returns a [`Verdict`]: one [`Check`] per question (name, expected, actual,
//! pass/fail), the shape of the release that matched, and REPORT_DATA (so that a caller who did not ask for a value
//! can bind it, for example to a TLS key). The verdict passes only when every check does.
//!
//! The evidence is verified before any field of it is believed: the signature (and for SNP the VCEK/VLEK chain up to
//! a built-in AMD root; for TDX the quote, its QE and PCK chain and the collateral, by `dcap-qvl`) comes first, so
//! that a changed byte anywhere in the signed part fails as a signature failure and not as some later field. Time is
//! an input (`now`, seconds since the epoch): nothing here reads the clock.
//!
//! The library never prints and never fetches: certificates and collateral are the caller's.

pub mod snp;
pub mod tdx;
pub mod time;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::manifest::Manifest;

/// What a release publishes for evidence to be checked against: its VM shapes. It deserializes straight from the
/// predicate of a launch statement (`docs/launch-predicate.md`), and [`Release::from_manifest`] takes it from a
/// manifest, so that a client holding either checks evidence the same way.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct Release {
    /// SEV-SNP shapes.
    #[serde(default)]
    pub snp: Vec<SnpShape>,
    /// TDX shapes.
    #[serde(default)]
    pub tdx: Vec<TdxShape>,
}

/// One published SEV-SNP launch digest and its shape.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SnpShape {
    /// The manifest's name, e.g. `snp-shape0-vcpus4`.
    pub name: String,
    /// vCPU count.
    pub vcpus: u32,
    /// QEMU vCPU model, when the shape named one.
    #[serde(default)]
    pub vcpu_type: Option<String>,
    /// CPUID signature, hex.
    #[serde(default)]
    pub vcpu_sig: String,
    /// VMM.
    pub vmm_type: String,
    /// The guest policy, `0x`-prefixed hex.
    pub policy: String,
    /// The launch digest, hex.
    pub measurement: String,
    /// ID key digest, hex, when the shape has an ID block.
    #[serde(default)]
    pub id_key_digest: Option<String>,
    /// Author key digest, hex, when the ID block has one.
    #[serde(default)]
    pub author_key_digest: Option<String>,
}

/// One published TDX shape.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TdxShape {
    /// The manifest's name, e.g. `tdx-shape0`.
    pub name: String,
    /// vCPU count.
    pub vcpus: u32,
    /// Guest memory, e.g. `2G`.
    pub memory: String,
    /// How QEMU adds the TD's pages.
    pub page_order: String,
    /// MRTD, hex.
    pub mrtd: String,
    /// RTMR1, hex.
    pub rtmr1: String,
    /// RTMR2, hex.
    pub rtmr2: String,
}

impl Release {
    /// The shapes a manifest publishes.
    pub fn from_manifest(manifest: &Manifest) -> Release {
        let snp = manifest
            .measurements
            .snp
            .iter()
            .map(|m| SnpShape {
                name: m.name.clone(),
                vcpus: m.vcpus,
                vcpu_type: m.vcpu_type.clone(),
                vcpu_sig: m.vcpu_sig.clone(),
                vmm_type: m.vmm_type.clone(),
                policy: m.policy.value.clone(),
                measurement: m.digest.clone(),
                id_key_digest: m.id.as_ref().map(|i| i.id_key_digest.clone()),
                author_key_digest: m.id.as_ref().and_then(|i| i.author_key_digest.clone()),
            })
            .collect();
        let tdx = manifest
            .measurements
            .tdx
            .iter()
            .map(|m| TdxShape {
                name: m.name.clone(),
                vcpus: m.vcpus,
                memory: m.memory.clone(),
                page_order: m.page_order.clone(),
                mrtd: m.mrtd.clone(),
                rtmr1: m.rtmr1.clone(),
                rtmr2: m.rtmr2.clone(),
            })
            .collect();
        Release { snp, tdx }
    }
}

/// One question asked of the evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What is checked, e.g. `signature`, `measurement`, `policy.debug`.
    pub name: String,
    /// What the release (or the caller) expects.
    pub expected: String,
    /// What the evidence says.
    pub actual: String,
    /// Whether they agree.
    pub pass: bool,
}

impl Check {
    /// A check that passes when `pass` holds.
    pub fn new(name: &str, expected: impl Into<String>, actual: impl Into<String>, pass: bool) -> Check {
        Check { name: name.to_owned(), expected: expected.into(), actual: actual.into(), pass }
    }
}

/// The answer for one piece of evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// `snp` or `tdx`.
    pub platform: &'static str,
    /// Every check, in the order they were made.
    pub checks: Vec<Check>,
    /// The release's VM shape that the evidence matched (its manifest name and parameters), if any.
    pub matched_shape: Option<String>,
    /// REPORT_DATA of the evidence, hex (64 bytes).
    pub report_data: String,
    /// Notes for the reader (what was not checked, and why).
    pub notes: Vec<String>,
}

impl Verdict {
    /// An empty verdict for `platform` (`snp` or `tdx`), REPORT_DATA as given.
    pub fn new(platform: &'static str, report_data: String) -> Verdict {
        Verdict { platform, checks: Vec::new(), matched_shape: None, report_data, notes: Vec::new() }
    }

    /// True when every check passed (and there was at least one).
    pub fn pass(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.pass)
    }
}

/// Why evidence could not be checked at all (as opposed to a failed check, which is a [`Verdict`]).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EvidenceError {
    /// The evidence has the wrong length for its kind.
    #[error("{what} is {len} bytes; {expected}")]
    Length {
        /// What was read.
        what: &'static str,
        /// Its length.
        len: usize,
        /// What was expected.
        expected: String,
    },
    /// A certificate could not be read.
    #[error("{what}: {reason}")]
    Certificate {
        /// Which certificate.
        what: String,
        /// Why.
        reason: String,
    },
    /// The TDX collateral could not be read.
    #[error("the collateral is not dcap-qvl's QuoteCollateralV3 JSON: {reason}")]
    Collateral {
        /// Why.
        reason: String,
    },
    /// A caller-supplied value is malformed.
    #[error("{what}: {reason}")]
    Argument {
        /// The option.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A field of the release's manifest is malformed.
    #[error("the release's `{field}` {reason}")]
    Release {
        /// The field, e.g. `measurements.snp[0].digest`.
        field: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The release publishes no shape for this platform.
    #[error("the release publishes no {platform} measurement: there is nothing to match this evidence against")]
    NoShapes {
        /// `SEV-SNP` or `TDX`.
        platform: &'static str,
    },
}

impl EvidenceError {
    /// How to fix it, where there is something to say.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            EvidenceError::Certificate { .. } => Some(
                "pass the VCEK (or VLEK) that signed the report, DER or PEM, and the KDS cert_chain PEM of the same product (Milan, Genoa or Turin)",
            ),
            EvidenceError::Collateral { .. } => {
                Some("fetch the collateral for this quote from a PCCS (dcap-qvl's get_collateral) and save it as JSON")
            }
            EvidenceError::NoShapes { .. } => Some("check the release the VM claims to run: its manifest lists the shapes it publishes"),
            _ => None,
        }
    }
}

/// Parses `HEX` of exactly `N` bytes for an option.
pub fn parse_hex<const N: usize>(what: &'static str, text: &str) -> Result<[u8; N], EvidenceError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(text.trim(), &mut out)
        .map_err(|_| EvidenceError::Argument { what, reason: format!("expected {} hex digits", 2 * N) })?;
    Ok(out)
}

/// Reads exactly `N` bytes at `at`, or zeros if the slice is short (callers check lengths first).
pub(crate) fn array<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = bytes.get(at..at + N) {
        out.copy_from_slice(src);
    }
    out
}

/// A little-endian `u32` at `at` (0 if out of range).
pub(crate) fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(array(bytes, at))
}

/// A little-endian `u64` at `at` (0 if out of range).
pub(crate) fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(array(bytes, at))
}
