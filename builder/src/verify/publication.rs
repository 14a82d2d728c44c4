//! The publication under verification: a bundle (read with the bounded tar reader, hashed in the same pass) or a
//! manifest file (with the outputs published beside it), checked against its own manifest.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use super::inputs::hash_file;
use super::VerifyError;
use crate::build::MANIFEST_FILE;
use crate::format::{publication_limits, read_bundle, sniff, Container, Limits};
use crate::manifest::{Manifest, ManifestError, OutputRecord};
use crate::sys::io::{read_full, HashingReader};

/// The publication under verification.
pub(super) struct Published {
    pub(super) manifest: Manifest,
    pub(super) manifest_bytes: Vec<u8>,
    /// The bundle file name and digest, when the target is a bundle.
    pub(super) bundle: Option<(String, String, u64)>,
    /// What the diff engine compares with the rebuild: the bundle, the output directory, or the manifest.
    pub(super) explain_from: PathBuf,
    /// Whether `explain_from` is a bare manifest (then the rebuilt manifest is what it is compared with).
    pub(super) manifest_only: bool,
}

/// Reads the manifest from a bundle or a file and checks the publication against it.
pub(super) fn load_published(target: &Path, limits: &Limits) -> Result<Published, VerifyError> {
    let io = |source| VerifyError::Io { path: target.to_path_buf(), source };
    let mut file = fs_err::File::open(target).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut head = [0u8; 512];
    let got = read_full(&mut file, &mut head).map_err(io)?;
    if sniff(head.get(..got).unwrap_or_default()) != Container::Tar {
        return load_manifest_file(target, &mut file, len, &head[..got]);
    }
    let bundle_limits = publication_limits(limits);
    // The bundle's own digest is computed in the same pass that reads its members.
    let head = std::io::Cursor::new(head.get(..got).unwrap_or_default().to_vec());
    let mut stream = HashingReader::new(head.chain(std::io::BufReader::new(file)));
    let bundle = read_bundle(&mut stream, Some(len), &bundle_limits)
        .map_err(|source| VerifyError::Bundle { path: target.to_path_buf(), source })?;
    let (digest, bundle_len) = stream.finish().map_err(io)?;
    let bytes = bundle.member(MANIFEST_FILE).ok_or_else(|| VerifyError::NoManifest { path: target.to_path_buf() })?;
    let manifest = parse_manifest(target, bytes)?;
    check_bundle_members(target, &manifest, &bundle)?;
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(Published {
        manifest,
        manifest_bytes: bytes.to_vec(),
        bundle: Some((name, hex::encode(digest), bundle_len)),
        explain_from: target.to_path_buf(),
        manifest_only: false,
    })
}

pub(super) fn load_manifest_file(
    target: &Path,
    file: &mut fs_err::File,
    len: u64,
    head: &[u8],
) -> Result<Published, VerifyError> {
    // A manifest is a few hundred KiB at most; refuse to slurp something huge.
    const MAX_MANIFEST: u64 = crate::manifest::MAX_MANIFEST_SIZE;
    if len > MAX_MANIFEST {
        let source = std::io::Error::other(format!("{len} bytes is too large for a manifest (limit {MAX_MANIFEST})"));
        return Err(VerifyError::Io { path: target.to_path_buf(), source });
    }
    let mut bytes = head.to_vec();
    file.read_to_end(&mut bytes).map_err(|source| VerifyError::Io { path: target.to_path_buf(), source })?;
    let manifest = parse_manifest(target, &bytes)?;
    // Outputs published beside the manifest must be the ones it lists; absent ones are simply not checked.
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut all_present = true;
    for out in &manifest.outputs {
        let path = dir.join(&out.name);
        // Members beside a published manifest are untrusted: a symlink to a host file is refused, not followed.
        match std::fs::symlink_metadata(&path) {
            Err(_) => {
                all_present = false;
                continue;
            }
            Ok(meta) if meta.file_type().is_symlink() => {
                let source = std::io::Error::other("is a symbolic link; only regular files of an output are verified");
                return Err(VerifyError::Io { path, source });
            }
            Ok(meta) if !meta.is_file() => {
                all_present = false;
                continue;
            }
            Ok(_) => {}
        }
        let (digest, size) = hash_file(&path)?;
        check_member(&dir, out, &digest, size)?;
    }
    let (explain_from, manifest_only) = if all_present { (dir, false) } else { (target.to_path_buf(), true) };
    Ok(Published { manifest, manifest_bytes: bytes, bundle: None, explain_from, manifest_only })
}

pub(super) fn parse_manifest(path: &Path, bytes: &[u8]) -> Result<Manifest, VerifyError> {
    let text = std::str::from_utf8(bytes).map_err(|e| VerifyError::Manifest {
        path: path.to_path_buf(),
        source: ManifestError::Parse { source: serde_json::Error::io(std::io::Error::other(e)) },
    })?;
    Manifest::from_json(text).map_err(|source| VerifyError::Manifest { path: path.to_path_buf(), source })
}

/// Every member except the manifest is a listed output with the listed digest and size, and every output is a member,
/// except the data volume images, which are published beside the bundle (`compare::published_volumes`).
pub(super) fn check_bundle_members(
    path: &Path,
    manifest: &Manifest,
    bundle: &crate::format::Bundle,
) -> Result<(), VerifyError> {
    let listed: BTreeMap<&str, &OutputRecord> = manifest.outputs.iter().map(|o| (o.name.as_str(), o)).collect();
    let mut seen = BTreeSet::new();
    for entry in bundle.entries.iter().filter(|e| e.path != MANIFEST_FILE) {
        let record = listed.get(entry.path.as_str()).ok_or_else(|| VerifyError::MemberUnlisted {
            container: path.to_path_buf(),
            member: entry.path.clone(),
            problem: "in the bundle but not in the manifest's outputs",
        })?;
        check_member(path, record, &entry.sha256, entry.size)?;
        seen.insert(entry.path.as_str());
    }
    let beside = |name: &str| manifest.volumes.iter().any(|v| v.image == name);
    if let Some(missing) = listed.keys().find(|name| !seen.contains(*name) && !beside(name)) {
        return Err(VerifyError::MemberUnlisted {
            container: path.to_path_buf(),
            member: (*missing).to_string(),
            problem: "in the manifest's outputs but not in the bundle",
        });
    }
    Ok(())
}

pub(super) fn check_member(
    container: &Path,
    record: &OutputRecord,
    sha256: &[u8; 32],
    size: u64,
) -> Result<(), VerifyError> {
    let found = hex::encode(sha256);
    if found == record.sha256 && size == record.size {
        return Ok(());
    }
    Err(VerifyError::MemberMismatch {
        container: container.to_path_buf(),
        member: record.name.clone(),
        expected_sha256: record.sha256.clone(),
        expected_size: record.size,
        found_sha256: found,
        found_size: size,
    })
}
