//! Kernel (bzImage) differences beyond the bytes: the release string from the setup header and, when both images
//! embed their configuration (`CONFIG_IKCONFIG`), the options that differ. See `Documentation/arch/x86/boot.rst`
//! and `docs/specs/reproducibility.md` ("kernel builds").

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::collections::BTreeSet;

use super::finding::{Finding, FindingKind};
use crate::format::bzimage::kernel_release;
use crate::format::kconfig::KernelConfig;

/// Options listed one finding each; beyond this, one finding lists the first [`MAX_LISTED`].
const MAX_SEPARATE: usize = 20;
const MAX_LISTED: usize = 50;

/// Whether `bytes` carries an x86 boot-protocol setup header with a version string.
pub(crate) fn is_bzimage(bytes: &[u8]) -> bool {
    kernel_release(bytes).is_ok()
}

/// Findings for two bzImages: release and configuration. Empty when neither differs (or cannot be read).
pub(crate) fn diff_kernels(path: &str, a: &[u8], b: &[u8]) -> Vec<Finding> {
    let mut out = Vec::new();
    if let (Ok(ra), Ok(rb)) = (kernel_release(a), kernel_release(b)) {
        if ra != rb {
            out.push(Finding::changed(FindingKind::Changed, path, "kernel release", ra, rb));
        }
    }
    if let (Ok(ca), Ok(cb)) = (KernelConfig::from_bzimage(a), KernelConfig::from_bzimage(b)) {
        out.extend(config_findings(path, &ca, &cb));
    }
    out
}

fn config_findings(path: &str, a: &KernelConfig, b: &KernelConfig) -> Vec<Finding> {
    let names: BTreeSet<&String> = a.options.keys().chain(b.options.keys()).collect();
    let show = |c: &KernelConfig, name: &str| c.get(name).map_or("(unset)".to_string(), |v| v.to_string());
    let changed: Vec<(String, String, String)> =
        names.into_iter().filter(|n| a.get(n) != b.get(n)).map(|n| (n.clone(), show(a, n), show(b, n))).collect();
    if changed.len() <= MAX_SEPARATE {
        return changed
            .into_iter()
            .map(|(name, va, vb)| Finding::changed(FindingKind::Changed, path, &format!("config {name}"), va, vb))
            .collect();
    }
    let mut detail: Vec<String> =
        changed.iter().take(MAX_LISTED).map(|(name, va, vb)| format!("{name}: {va} vs {vb}")).collect();
    if changed.len() > MAX_LISTED {
        detail.push(format!("... and {} more", changed.len() - MAX_LISTED));
    }
    let f = Finding::changed(
        FindingKind::Changed,
        path,
        "kernel config",
        format!("{} options", a.options.len()),
        format!("{} options", b.options.len()),
    );
    vec![f.with_detail(detail)]
}
