//! What a comparison finds: [`Finding`]s collected in a [`Report`], their headlines, and the path notation shared
//! by the archive and JSON comparisons (`initrd.img:etc/motd`, `manifest.json:inputs[role=kernel].sha256`).

use serde::Serialize;

/// Version of the `--json` report layout.
pub const SCHEMA_VERSION: u32 = 1;

/// What kind of difference a finding describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// Present only in B.
    Added,
    /// Present only in A.
    Removed,
    /// A metadata field or JSON value differs (`field` names it).
    Changed,
    /// File content differs; `detail` holds a unified diff or the first differing bytes.
    Content,
    /// The same entries in a different order.
    Order,
    /// Entries are the same except for their inode numbers.
    Inodes,
    /// The compression algorithm or a compression header field differs.
    Compression,
    /// The decompressed archive is identical; only the compressed bytes differ.
    CompressionBytes,
    /// Every entry is identical, but the archive bytes differ (padding, trailer, concatenation).
    ArchiveBytes,
    /// A launch measurement differs; `detail` explains which of its inputs changed.
    Measurement,
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What kind of difference.
    pub kind: FindingKind,
    /// Where: member, `member:entry` or `member:json.path` (nested containers are joined with `:`).
    pub path: String,
    /// Which field, when one is meant (`mode`, `gzip MTIME`, `sha256`).
    pub field: Option<String>,
    /// The value in A.
    pub a: Option<String>,
    /// The value in B.
    pub b: Option<String>,
    /// Further explanation, one line each (a unified diff, byte windows, the inputs of a measurement).
    pub detail: Vec<String>,
}

impl Finding {
    pub(crate) fn new(kind: FindingKind, path: &str) -> Self {
        Finding { kind, path: path.to_string(), field: None, a: None, b: None, detail: Vec::new() }
    }

    pub(crate) fn changed(kind: FindingKind, path: &str, field: &str, a: String, b: String) -> Self {
        Finding { field: Some(field.to_string()), a: Some(a), b: Some(b), ..Finding::new(kind, path) }
    }

    pub(crate) fn with_detail(mut self, detail: Vec<String>) -> Self {
        self.detail = detail;
        self
    }

    /// The one-line human summary.
    pub fn headline(&self) -> String {
        let a = &clip(self.a.as_deref().unwrap_or("-"));
        let b = &clip(self.b.as_deref().unwrap_or("-"));
        let field = self.field.as_deref().unwrap_or("value");
        match self.kind {
            FindingKind::Added => format!("{}: only in B ({b})", self.path),
            FindingKind::Removed => format!("{}: only in A ({a})", self.path),
            FindingKind::Content => format!("{}: content differs (sha256 {} vs {})", self.path, short(a), short(b)),
            FindingKind::CompressionBytes => format!("{}: same cpio, different compression bytes", self.path),
            FindingKind::ArchiveBytes => format!("{}: same entries, different archive bytes", self.path),
            FindingKind::Measurement => {
                let why = self.detail.first().map_or("", String::as_str);
                format!("{} changed: {why}", self.path)
            }
            FindingKind::Inodes => format!("{}: inode numbers differ: {a} vs {b}", self.path),
            // A JSON path already ends with its field: `inputs[role=kernel].sha256 differs: ...`.
            FindingKind::Changed if self.path.ends_with(&format!(".{field}")) => {
                format!("{} differs: {} vs {}", self.path, digest_or(a), digest_or(b))
            }
            FindingKind::Changed | FindingKind::Order | FindingKind::Compression => {
                format!("{}: {field} differs: {} vs {}", self.path, digest_or(a), digest_or(b))
            }
        }
    }

    /// Detail lines printed under the headline.
    pub fn detail_lines(&self) -> &[String] {
        match self.kind {
            FindingKind::Measurement => self.detail.get(1..).unwrap_or_default(),
            _ => &self.detail,
        }
    }
}

/// Headlines show at most this many characters of a value (the JSON report has it whole).
const HEADLINE_VALUE: usize = 100;

fn clip(value: &str) -> String {
    match value.char_indices().nth(HEADLINE_VALUE) {
        Some((at, _)) => format!("{}…", value.get(..at).unwrap_or_default()),
        None => value.to_string(),
    }
}

/// A hex digest (32 or more hex digits) shortened like [`short`]; any other value unchanged.
fn digest_or(value: &str) -> String {
    if value.len() >= 32 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        short(value)
    } else {
        value.to_string()
    }
}

/// The first 12 hex digits of a digest, for headlines.
pub fn short(digest: &str) -> String {
    match digest.get(..12) {
        Some(s) if digest.len() > 16 => format!("{s}…"),
        _ => digest.to_string(),
    }
}

/// The most characters of one rendered line (a text diff of a 2 KiB command line fits).
const MAX_LINE_CHARS: usize = 4096;

/// One line of human output that may quote untrusted input.
pub fn shown_line(line: &str) -> String {
    crate::display::untrusted_bounded(line, MAX_LINE_CHARS).to_string()
}

/// The result of a comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// No differences at all (byte-identical inputs).
    pub identical: bool,
    /// The differences, in a deterministic order.
    pub findings: Vec<Finding>,
}

impl Report {
    /// The human rendering: one line per finding, detail indented by four spaces.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        // Headlines and details quote names, paths and text from the two (untrusted) sides: each is one line,
        // escaped and bounded, so that a hostile entry name cannot add or hide lines.
        for f in &self.findings {
            out.push_str(&shown_line(&f.headline()));
            out.push('\n');
            for line in f.detail_lines() {
                out.push_str("    ");
                out.push_str(&shown_line(line));
                out.push('\n');
            }
        }
        out
    }
}

/// `prefix:inner`, or either alone when the other is empty.
pub(crate) fn join(prefix: &str, inner: &str) -> String {
    match (prefix.is_empty(), inner.is_empty()) {
        (true, _) => inner.to_string(),
        (_, true) => prefix.to_string(),
        _ => format!("{prefix}:{inner}"),
    }
}
