//! Entry point for the `manifest_diff` fuzz target (`fuzz/fuzz_targets/`).

use super::diff_bytes;
use crate::format::Limits;

/// Splits `data` at its first NUL into A and B and diffs them: comparing A with itself must find nothing; comparing
/// A with B must report differences exactly when the bytes differ; rendering must not fail. A panic is a finding.
pub fn manifest_diff(data: &[u8]) {
    let (a, b) = match data.iter().position(|&byte| byte == 0) {
        Some(at) => (data.get(..at).unwrap_or_default(), data.get(at + 1..).unwrap_or_default()),
        None => (data, data),
    };
    let limits = Limits { max_entries: 10_000, max_total_size: 16 << 20, ..Limits::default() };
    if let Ok(same) = diff_bytes(a, a, &limits) {
        assert!(same.identical && same.findings.is_empty(), "A differs from itself: {:?}", same.findings);
    }
    if let Ok(report) = diff_bytes(a, b, &limits) {
        assert_eq!(report.identical, a == b, "identical must mean byte-identical: {:?}", report.findings);
        let _ = report.render_text();
        assert!(serde_json::to_string(&report).is_ok(), "the report must serialize");
    }
}
