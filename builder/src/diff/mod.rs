//! Explaining why two cvmforge builds differ, without diffoscope.
//!
//! [`diff_paths`] compares two bundles (`.cvm.tar`), two output directories (or one of each), two initrds, two
//! manifests or two other files, and returns a [`Report`]: one [`Finding`] per difference, saying which archive
//! entry or JSON field differs and how, down to the first differing byte, a unified diff of a text file, the gzip
//! header field, or the input that a changed launch measurement depends on (see `docs/specs/reproducibility.md`,
//! "Diagnosis").
//!
//! # JSON report (`cvmforge --json diff A B`)
//!
//! One object, keys sorted: `{"schema_version": 1, "identical": false, "findings": [{"kind": "changed",
//! "path": "initrd.img:etc/motd", "field": "mode", "a": "0644", "b": "0600", "detail": []}]}`. `kind` is one of
//! the kebab-case [`FindingKind`] names; `path` joins nested containers with `:` (`initrd.img:etc/motd`,
//! `manifest.json:inputs[role=kernel].sha256`); `a`/`b` are the values in A and B (`null` for a side that lacks the
//! item); `detail` holds the explanation lines (a unified diff, byte windows, the inputs of a measurement).
//!
//! ```
//! use cvmforge::format::cpio::CpioWriter;
//! use cvmforge::diff::{diff_bytes, FindingKind};
//! use cvmforge::format::Limits;
//! let archive = |mode| {
//!     let mut w = CpioWriter::new(Vec::new(), 0);
//!     w.add_file("init", mode, 0, &mut &b""[..]).unwrap();
//!     w.finish().unwrap()
//! };
//! let report = diff_bytes(&archive(0o755), &archive(0o700), &Limits::default()).unwrap();
//! assert_eq!(report.findings[0].kind, FindingKind::Changed);
//! assert_eq!(report.findings[0].headline(), "init: mode differs: 0755 vs 0700");
//! ```

mod archive;
mod finding;
pub mod fuzzing;
mod json;
mod kernel;
mod text;

pub use finding::{short, shown_line, Finding, FindingKind, Report, SCHEMA_VERSION};
pub use json::{Feed, FEEDS};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::format::tar::bundle::keep_members_whole;
use crate::format::{read_bundle, sniff, Bundle, Container, Limits, UnpackError};

/// File-name suffix of the publishing bundle in an output directory.
const BUNDLE_SUFFIX: &str = ".cvm.tar";

/// What one side of the comparison is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// An output directory.
    Directory,
    /// A `.cvm.tar` bundle (any ustar archive).
    Bundle,
    /// An initrd (gzip, zstd or plain newc).
    Initrd,
    /// A JSON document (a manifest).
    Manifest,
    /// Any other file (kernel, firmware, cmdline).
    File,
}

impl std::fmt::Display for InputKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InputKind::Directory => "an output directory",
            InputKind::Bundle => "a bundle (tar)",
            InputKind::Initrd => "an initrd",
            InputKind::Manifest => "a manifest (JSON)",
            InputKind::File => "a file",
        })
    }
}

/// Why two builds could not be compared.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DiffError {
    /// A file or directory could not be read.
    #[error("cannot read `{path}`")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file is larger than the in-memory limit.
    #[error("`{path}` is {size} bytes; files larger than {max} bytes are not compared")]
    TooLarge {
        /// The path.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// An archive inside the inputs is malformed or over a limit.
    #[error("cannot read {what}")]
    Unpack {
        /// Which side and member.
        what: String,
        /// The cause.
        #[source]
        source: UnpackError,
    },
    /// The two sides are of kinds that cannot be compared.
    #[error("cannot compare {a} with {b}")]
    KindMismatch {
        /// Kind of A.
        a: InputKind,
        /// Kind of B.
        b: InputKind,
    },
}

impl DiffError {
    /// What the user can do about this error, when there is a usual remedy (printed as `hint:` by the CLI).
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            DiffError::KindMismatch { .. } => Some(
                "give two of the same kind: two output directories or bundles (or one of each), two initrds, two \
                 manifests, or two other files",
            ),
            _ => None,
        }
    }
}

/// The largest file `diff` holds in memory to explain it (archives, text, kernels). A larger file is streamed once
/// through SHA-256 and compared by digest and size only; the finding says so and names this limit.
pub const MAX_IN_MEMORY_FILE: u64 = 1 << 30;

/// A file too large to hold: its digest and size, from one streamed pass.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Streamed {
    sha256: [u8; 32],
    size: u64,
}

/// One side, loaded.
enum Input {
    /// An output directory: the files held in memory, and those only streamed.
    Directory(BTreeMap<String, Vec<u8>>, BTreeMap<String, Streamed>),
    Bundle(Bundle, Vec<u8>),
    Blob(InputKind, Vec<u8>),
    /// A single file too large to hold.
    Large(Streamed),
}

impl Input {
    fn kind(&self) -> InputKind {
        match self {
            Input::Directory(..) => InputKind::Directory,
            Input::Bundle(..) => InputKind::Bundle,
            Input::Blob(kind, _) => *kind,
            Input::Large(_) => InputKind::File,
        }
    }
}

/// Streams a regular file (never following a final symlink) through SHA-256.
fn stream_digest(path: &Path) -> Result<Streamed, DiffError> {
    let io = |source| DiffError::Io { path: path.to_path_buf(), source };
    let file = crate::sys::regular_file::open_regular(path).map_err(io)?;
    let hashing = crate::sys::io::HashingReader::new(std::io::BufReader::with_capacity(1 << 20, file));
    let (sha256, size) = hashing.finish().map_err(io)?;
    Ok(Streamed { sha256, size })
}

/// The finding for two files of which at least one was too large to hold: digests and sizes only.
fn streamed_finding(path: &str, a: &Streamed, b: &Streamed) -> Option<Finding> {
    if a == b {
        return None;
    }
    let f = text::content_finding(path, None, None, &a.sha256, &b.sha256, a.size, b.size);
    let mut detail = f.detail.clone();
    detail.push(format!(
        "at least one side is larger than the {MAX_IN_MEMORY_FILE} bytes that diff compares in memory \
         (MAX_IN_MEMORY_FILE): compared by SHA-256 and size"
    ));
    Some(f.with_detail(detail))
}

fn streamed_of(bytes: &[u8]) -> Streamed {
    use sha2::Digest;
    Streamed { sha256: sha2::Sha256::digest(bytes).into(), size: bytes.len() as u64 }
}

/// Detects the kind of a file's content.
pub fn detect(bytes: &[u8]) -> InputKind {
    match sniff(bytes) {
        Container::Tar => InputKind::Bundle,
        Container::Gzip | Container::Zstd | Container::Cpio => InputKind::Initrd,
        Container::Other if json::parse_object(bytes).is_some() => InputKind::Manifest,
        Container::Other => InputKind::File,
    }
}

/// Compares two paths (files or output directories).
pub fn diff_paths(a: &Path, b: &Path, limits: &Limits) -> Result<Report, DiffError> {
    let left = load(a, limits)?;
    let right = load(b, limits)?;
    let mut ctx = archive::Ctx::new(*limits);
    let mut large_findings = Vec::new();
    match (&left, &right) {
        (Input::Large(x), Input::Large(y)) => large_findings.extend(streamed_finding("(file)", x, y)),
        (Input::Large(x), Input::Blob(_, y)) => large_findings.extend(streamed_finding("(file)", x, &streamed_of(y))),
        (Input::Blob(_, x), Input::Large(y)) => large_findings.extend(streamed_finding("(file)", &streamed_of(x), y)),
        (Input::Blob(ka, x), Input::Blob(kb, y)) if ka == kb => ctx.blob("", x, y)?,
        (Input::Bundle(x, bx), Input::Bundle(y, by)) if bx != by => ctx.bundle("", x, y, (bx, by), None)?,
        (Input::Bundle(..), Input::Bundle(..)) => {}
        (Input::Directory(..) | Input::Bundle(..), Input::Directory(..) | Input::Bundle(..)) => {
            let (mut x, mut y) = (members(&left), members(&right));
            if left.kind() != right.kind() {
                // A bundle cannot contain itself: compare the directory's loose files with the bundle's members.
                x.retain(|name, _| !name.ends_with(BUNDLE_SUFFIX));
                y.retain(|name, _| !name.ends_with(BUNDLE_SUFFIX));
            }
            // Members too large to hold on either side are compared by digest, and left out of the detailed diff.
            let (lx, ly) = (streamed_members(&left), streamed_members(&right));
            for name in lx.keys().chain(ly.keys()).collect::<std::collections::BTreeSet<_>>() {
                let side = |large: &BTreeMap<String, Streamed>, held: &BTreeMap<String, &[u8]>| {
                    large.get(name).cloned().or_else(|| held.get(name).map(|b| streamed_of(b)))
                };
                if let (Some(a), Some(b)) = (side(&lx, &x), side(&ly, &y)) {
                    large_findings.extend(streamed_finding(name, &a, &b));
                    x.remove(name);
                    y.remove(name);
                }
            }
            ctx.members("", &x, &y)?;
        }
        _ => return Err(DiffError::KindMismatch { a: left.kind(), b: right.kind() }),
    }
    let mut report = ctx.into_report();
    report.identical &= large_findings.is_empty();
    report.findings.extend(large_findings);
    Ok(report)
}

fn streamed_members(input: &Input) -> BTreeMap<String, Streamed> {
    match input {
        Input::Directory(_, large) => large.clone(),
        _ => BTreeMap::new(),
    }
}

/// Compares two in-memory files (initrds, bundles, manifests or others), detecting their kind.
pub fn diff_bytes(a: &[u8], b: &[u8], limits: &Limits) -> Result<Report, DiffError> {
    let (ka, kb) = (detect(a), detect(b));
    if ka != kb {
        return Err(DiffError::KindMismatch { a: ka, b: kb });
    }
    let mut ctx = archive::Ctx::new(*limits);
    ctx.blob("", a, b)?;
    Ok(ctx.into_report())
}

fn members(input: &Input) -> BTreeMap<String, &[u8]> {
    match input {
        Input::Directory(files, _) => files.iter().map(|(k, v)| (k.clone(), v.as_slice())).collect(),
        Input::Bundle(bundle, _) => bundle
            .member_names()
            .filter_map(|name| bundle.member(name).map(|content| (name.to_string(), content)))
            .collect(),
        Input::Blob(..) | Input::Large(_) => BTreeMap::new(),
    }
}

fn load(path: &Path, limits: &Limits) -> Result<Input, DiffError> {
    let io = |source| DiffError::Io { path: path.to_path_buf(), source };
    let meta = fs_err::metadata(path).map_err(io)?;
    if meta.is_dir() {
        return load_dir(path, limits);
    }
    // The path on the command line may be a symlink the user made; what it leads to must be a regular file.
    let resolved = fs_err::canonicalize(path).map_err(io)?;
    if meta.len() > MAX_IN_MEMORY_FILE {
        return stream_digest(&resolved).map(Input::Large);
    }
    let bytes = read_capped(&resolved, meta.len(), limits)?;
    match detect(&bytes) {
        InputKind::Bundle => {
            let bundle = read_bundle(&bytes[..], u64::try_from(bytes.len()).ok(), &keep_members_whole(limits))
                .map_err(|source| DiffError::Unpack { what: format!("bundle `{}`", path.display()), source })?;
            Ok(Input::Bundle(bundle, bytes))
        }
        kind => Ok(Input::Blob(kind, bytes)),
    }
}

fn read_capped(path: &Path, size: u64, limits: &Limits) -> Result<Vec<u8>, DiffError> {
    if size > limits.max_entry_size {
        return Err(DiffError::TooLarge { path: path.to_path_buf(), size, max: limits.max_entry_size });
    }
    crate::sys::regular_file::read_capped(path, limits.max_entry_size)
        .map_err(|source| DiffError::Io { path: path.to_path_buf(), source })
}

/// The regular files directly in an output directory (subdirectories are not part of a build's outputs). A member
/// that is a symlink is refused: the directory is untrusted, and `cmdline -> /etc/shadow` must not be printed.
fn load_dir(dir: &Path, limits: &Limits) -> Result<Input, DiffError> {
    let io = |source| DiffError::Io { path: dir.to_path_buf(), source };
    let mut files = BTreeMap::new();
    let mut large = BTreeMap::new();
    for entry in fs_err::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        let meta = fs_err::symlink_metadata(&path).map_err(|source| DiffError::Io { path: path.clone(), source })?;
        if meta.file_type().is_symlink() {
            let source = std::io::Error::other("is a symbolic link; only regular files of an output are compared");
            return Err(DiffError::Io { path, source });
        }
        if meta.is_file() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if meta.len() > MAX_IN_MEMORY_FILE {
                large.insert(name, stream_digest(&path)?);
            } else {
                files.insert(name, read_capped(&path, meta.len(), limits)?);
            }
        }
    }
    Ok(Input::Directory(files, large))
}
