//! Content differences: a unified line diff for text, the first differing byte window for binaries.
//!
//! The line diff is a longest-common-subsequence diff written here (after trimming the common prefix and suffix, the
//! middle is solved by dynamic programming when it is at most [`MAX_CELLS`] cells, else shown as replaced), to avoid a
//! dependency for ~80 lines; the output follows `diff -u` (3 lines of context).

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use super::finding::{Finding, FindingKind};

/// Files up to this size that are valid UTF-8 without NUL bytes get a line diff.
pub(crate) const TEXT_CAP: usize = 1 << 20;
/// Largest LCS table (lines of A times lines of B, after trimming).
const MAX_CELLS: usize = 4_000_000;
/// Most diff lines shown per file.
const MAX_LINES: usize = 200;
const CONTEXT: usize = 3;
/// Bytes shown on each side of a binary difference.
const WINDOW: usize = 8;

/// A finding for two different contents; `a`/`b` are `None` when the content was too large to keep.
pub(crate) fn content_finding(
    path: &str,
    a: Option<&[u8]>,
    b: Option<&[u8]>,
    sha_a: &[u8; 32],
    sha_b: &[u8; 32],
    size_a: u64,
    size_b: u64,
) -> Finding {
    let mut detail = vec![format!("size: {size_a} vs {size_b} bytes")];
    match (a, b) {
        (Some(a), Some(b)) => match (as_text(a), as_text(b)) {
            (Some(ta), Some(tb)) => detail.extend(unified(path, ta, tb)),
            _ => detail.extend(binary(a, b)),
        },
        _ => detail.push("content larger than the in-memory limit: only the digests were compared".to_string()),
    }
    let f = Finding::changed(FindingKind::Content, path, "sha256", hex::encode(sha_a), hex::encode(sha_b));
    f.with_detail(detail)
}

fn as_text(bytes: &[u8]) -> Option<&str> {
    if bytes.len() > TEXT_CAP || bytes.contains(&0) {
        return None;
    }
    std::str::from_utf8(bytes).ok()
}

/// The first differing offset and an 8-byte window of each side.
pub(crate) fn binary(a: &[u8], b: &[u8]) -> Vec<String> {
    let offset = a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
    let window = |bytes: &[u8]| match bytes.get(offset..) {
        Some(rest) if !rest.is_empty() => {
            rest.iter().take(WINDOW).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
        }
        _ => "(end of data)".to_string(),
    };
    let mut lines = vec![
        format!("first difference at byte offset {offset} (0x{offset:x})"),
        format!("A: {}", window(a)),
        format!("B: {}", window(b)),
    ];
    if let Some(field) = pe_field(a, offset).filter(|f| pe_field(b, offset) == Some(*f)) {
        lines.push(format!("that offset is in the PE/COFF {field} (see docs/specs/reproducibility.md, PE images)"));
    }
    lines
}

/// The PE header field (of the EFI stub of a bzImage, or of a UKI) that holds byte `offset`, if any: the classic
/// sources of non-reproducible kernels.
fn pe_field(bytes: &[u8], offset: usize) -> Option<&'static str> {
    if bytes.get(..2) != Some(b"MZ") {
        return None;
    }
    // e_lfanew at 0x3c points at "PE\0\0"; the COFF header follows (PE/COFF spec, "MS-DOS Stub" and "COFF File Header").
    let lfanew = bytes.get(0x3c..0x40).and_then(|b| <[u8; 4]>::try_from(b).ok()).map(u32::from_le_bytes)?;
    let pe = usize::try_from(lfanew).ok()?;
    if bytes.get(pe..pe.checked_add(4)?) != Some(b"PE\0\0") {
        return None;
    }
    // Offsets from the PE signature; checked against pefile (`get_field_absolute_offset`) on a Debian 6.1 bzImage.
    let fields = [("TimeDateStamp", 8, 4), ("optional-header CheckSum", 24 + 64, 4)];
    fields.iter().find_map(|&(name, at, len)| {
        let start = pe.checked_add(at)?;
        (start..start + len).contains(&offset).then_some(name)
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Equal,
    Delete,
    Insert,
}

/// Edit script turning `a` into `b`, as (op, line) pairs.
fn edit_script<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<(Op, &'a str)> {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let (ra, rb) = (a.get(prefix..).unwrap_or_default(), b.get(prefix..).unwrap_or_default());
    let suffix = ra.iter().rev().zip(rb.iter().rev()).take_while(|(x, y)| x == y).count();
    let ma = ra.get(..ra.len() - suffix).unwrap_or_default();
    let mb = rb.get(..rb.len() - suffix).unwrap_or_default();
    let mut ops: Vec<(Op, &str)> = a.iter().take(prefix).map(|l| (Op::Equal, *l)).collect();
    ops.extend(middle(ma, mb));
    ops.extend(ra.iter().skip(ma.len()).map(|l| (Op::Equal, *l)));
    ops
}

/// LCS over the differing middle; a plain replacement when it is too large to solve.
fn middle<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<(Op, &'a str)> {
    let (n, m) = (a.len(), b.len());
    if n.saturating_mul(m) > MAX_CELLS {
        return a.iter().map(|l| (Op::Delete, *l)).chain(b.iter().map(|l| (Op::Insert, *l))).collect();
    }
    // lcs[i * (m + 1) + j] = length of the LCS of a[i..] and b[j..].
    let width = m + 1;
    let mut lcs = vec![0u32; (n + 1) * width];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            let value = if a.get(i) == b.get(j) {
                lcs.get((i + 1) * width + j + 1).copied().unwrap_or(0) + 1
            } else {
                let down = lcs.get((i + 1) * width + j).copied().unwrap_or(0);
                let right = lcs.get(i * width + j + 1).copied().unwrap_or(0);
                down.max(right)
            };
            if let Some(cell) = lcs.get_mut(i * width + j) {
                *cell = value;
            }
        }
    }
    let at = |i: usize, j: usize| lcs.get(i * width + j).copied().unwrap_or(0);
    let (mut i, mut j, mut ops) = (0, 0, Vec::with_capacity(n + m));
    while i < n || j < m {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x == y => {
                ops.push((Op::Equal, *x));
                i += 1;
                j += 1;
            }
            (Some(x), Some(_)) if at(i + 1, j) >= at(i, j + 1) => {
                ops.push((Op::Delete, *x));
                i += 1;
            }
            (Some(x), None) => {
                ops.push((Op::Delete, *x));
                i += 1;
            }
            (_, Some(y)) => {
                ops.push((Op::Insert, *y));
                j += 1;
            }
            (None, None) => break,
        }
    }
    ops
}

/// `diff -u` output lines for two texts.
pub(crate) fn unified(path: &str, a: &str, b: &str) -> Vec<String> {
    let la: Vec<&str> = a.lines().collect();
    let lb: Vec<&str> = b.lines().collect();
    let ops = edit_script(&la, &lb);
    // Line numbers (0-based) in A and B before each op.
    let mut positions = Vec::with_capacity(ops.len());
    let (mut ia, mut ib) = (0usize, 0usize);
    for (op, _) in &ops {
        positions.push((ia, ib));
        match op {
            Op::Equal => (ia, ib) = (ia + 1, ib + 1),
            Op::Delete => ia += 1,
            Op::Insert => ib += 1,
        }
    }
    let mut out = vec![format!("--- a/{path}"), format!("+++ b/{path}")];
    if la.len() == lb.len() && ops.iter().all(|(op, _)| *op == Op::Equal) {
        out.push("(the lines are identical; the files differ in line endings or the final newline)".to_string());
        return out;
    }
    for (start, end) in hunks(&ops) {
        let slice = ops.get(start..end).unwrap_or_default();
        let (a0, b0) = positions.get(start).copied().unwrap_or((0, 0));
        let alen = slice.iter().filter(|(op, _)| *op != Op::Insert).count();
        let blen = slice.iter().filter(|(op, _)| *op != Op::Delete).count();
        let from = |p: usize, len: usize| if len == 0 { p } else { p + 1 };
        out.push(format!("@@ -{},{alen} +{},{blen} @@", from(a0, alen), from(b0, blen)));
        out.extend(slice.iter().map(|(op, line)| {
            let sign = match op {
                Op::Equal => ' ',
                Op::Delete => '-',
                Op::Insert => '+',
            };
            format!("{sign}{line}")
        }));
        if out.len() > MAX_LINES {
            out.truncate(MAX_LINES);
            out.push(format!("... (diff truncated at {MAX_LINES} lines)"));
            break;
        }
    }
    out
}

/// Ranges of ops forming hunks: changes with up to 3 lines of context, merged when their contexts touch.
fn hunks(ops: &[(Op, &str)]) -> Vec<(usize, usize)> {
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for (i, _) in ops.iter().enumerate().filter(|(_, (op, _))| *op != Op::Equal) {
        let (start, end) = (i.saturating_sub(CONTEXT), (i + 1 + CONTEXT).min(ops.len()));
        match ranges.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => ranges.push((start, end)),
        }
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unified_matches_diff_u_for_a_changed_line() {
        let a = "1\n2\n3\n4\n5\n6\n7\n8\n9\n";
        let b = "1\n2\n3\n4\nfive\n6\n7\n8\n9\n";
        // GNU `diff -u` prints exactly these hunk lines for this input (checked with diffutils).
        assert_eq!(
            unified("f", a, b),
            ["--- a/f", "+++ b/f", "@@ -2,7 +2,7 @@", " 2", " 3", " 4", "-5", "+five", " 6", " 7", " 8"]
        );
    }

    #[test]
    fn unified_handles_insertions_at_the_start_and_two_hunks() {
        let a: String = (1..=20).map(|i| format!("{i}\n")).collect();
        let b = format!("0\n{}", a.replace("15\n", "15\nx\n"));
        assert_eq!(
            unified("f", &a, &b),
            [
                "--- a/f",
                "+++ b/f",
                "@@ -1,3 +1,4 @@",
                "+0",
                " 1",
                " 2",
                " 3",
                "@@ -13,6 +14,7 @@",
                " 13",
                " 14",
                " 15",
                "+x",
                " 16",
                " 17",
                " 18"
            ]
        );
    }

    #[test]
    fn binary_names_the_pe_timestamp_field() {
        let mut a = vec![0u8; 0x100];
        a[..2].copy_from_slice(b"MZ");
        a[0x3c] = 0x80;
        a[0x80..0x84].copy_from_slice(b"PE\0\0");
        let mut b = a.clone();
        b[0x80 + 9] = 1; // second byte of TimeDateStamp
        let lines = binary(&a, &b);
        assert_eq!(lines[0], "first difference at byte offset 137 (0x89)");
        assert_eq!(
            lines[3],
            "that offset is in the PE/COFF TimeDateStamp (see docs/specs/reproducibility.md, PE images)"
        );
    }

    #[test]
    fn binary_names_the_first_differing_offset() {
        let lines = binary(b"\x7fELF\x02\x01\x01\x00abc", b"\x7fELF\x02\x01\x01\x00abd");
        assert_eq!(lines, ["first difference at byte offset 10 (0xa)", "A: 63", "B: 64"]);
        assert_eq!(binary(b"ab", b"abc")[2], "B: 63");
        assert_eq!(binary(b"ab", b"abc")[1], "A: (end of data)");
    }
}
