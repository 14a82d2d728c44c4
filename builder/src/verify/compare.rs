//! Comparing the rebuild with the publication: every output, the manifest, the bundle and every launch measurement,
//! and the diff engine's explanation when anything differs.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::publication::Published;
use super::{ArtifactCheck, MeasurementCheck, Status, VerifyError};
use crate::build::MANIFEST_FILE;
use crate::diff::{diff_paths, Finding};
use crate::format::Limits;
use crate::manifest::{Manifest, OutputRecord};

/// Compares the listed outputs, then `manifest.json`, then the bundle (when one was given).
pub(super) fn compare_outputs(
    published: &Published,
    rebuilt: &Manifest,
    rebuilt_bytes: &[u8],
    rebuilt_all: &[OutputRecord],
) -> Vec<ArtifactCheck> {
    let mut names: BTreeMap<&str, (Option<&OutputRecord>, Option<&OutputRecord>)> = BTreeMap::new();
    for o in &published.manifest.outputs {
        names.entry(&o.name).or_default().0 = Some(o);
    }
    for o in &rebuilt.outputs {
        names.entry(&o.name).or_default().1 = Some(o);
    }
    let mut checks: Vec<ArtifactCheck> = names
        .into_iter()
        .map(|(name, (a, b))| {
            artifact(name, a.map(|o| (o.sha256.clone(), o.size)), b.map(|o| (o.sha256.clone(), o.size)))
        })
        .collect();
    let digest = |bytes: &[u8]| (hex::encode(Sha256::digest(bytes)), u64::try_from(bytes.len()).unwrap_or(u64::MAX));
    checks.push(artifact(MANIFEST_FILE, Some(digest(&published.manifest_bytes)), Some(digest(rebuilt_bytes))));
    if let Some((name, sha256, size)) = &published.bundle {
        let ours = rebuilt_all.iter().find(|o| o.name.ends_with(".cvm.tar")).map(|o| (o.sha256.clone(), o.size));
        checks.push(artifact(name, Some((sha256.clone(), *size)), ours));
    }
    checks
}

/// The data volume images published beside the target (they are not in the bundle), each hashed and compared with
/// the manifest's record of it. An image that is not there is not checked: the manifest still pins it, and a guest
/// refuses any other bytes through dm-verity.
pub(super) fn published_volumes(target: &Path, manifest: &Manifest) -> Result<Vec<ArtifactCheck>, VerifyError> {
    let dir = target.parent().map_or_else(|| Path::new(".").to_path_buf(), Path::to_path_buf);
    let mut checks = Vec::new();
    for volume in &manifest.volumes {
        // The manifest is untrusted: only a plain file name beside the target is read.
        if Path::new(&volume.image).file_name().and_then(|n| n.to_str()) != Some(volume.image.as_str()) {
            continue;
        }
        let path = dir.join(&volume.image);
        if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
            continue;
        }
        let (sha256, size) = super::inputs::hash_file(&path)?;
        let recorded = manifest.outputs.iter().find(|o| o.name == volume.image).map(|o| (o.sha256.clone(), o.size));
        let name = format!("{} (published beside the manifest)", volume.image);
        checks.push(artifact(&name, recorded, Some((hex::encode(sha256), size))));
    }
    Ok(checks)
}

pub(super) fn artifact(name: &str, a: Option<(String, u64)>, b: Option<(String, u64)>) -> ArtifactCheck {
    let status = match (&a, &b) {
        (Some(x), Some(y)) if x == y => Status::Ok,
        (Some(_), Some(_)) => Status::Differs,
        _ => Status::Missing,
    };
    ArtifactCheck {
        name: name.to_string(),
        status,
        expected_sha256: a.as_ref().map(|x| x.0.clone()),
        actual_sha256: b.as_ref().map(|x| x.0.clone()),
        expected_size: a.map(|x| x.1),
        actual_size: b.map(|x| x.1),
    }
}

pub(super) fn compare_measurements(
    a: &crate::manifest::Measurements,
    b: &crate::manifest::Measurements,
) -> Vec<MeasurementCheck> {
    let mut checks = compare_records("snp", &as_values(&a.snp), &as_values(&b.snp));
    checks.extend(compare_records("tdx", &as_values(&a.tdx), &as_values(&b.tdx)));
    checks
}

/// Compares one platform's records in manifest order.
pub(super) fn compare_records(
    platform: &str,
    x: &[serde_json::Value],
    y: &[serde_json::Value],
) -> Vec<MeasurementCheck> {
    (0..x.len().max(y.len()))
        .map(|i| {
            let (expected, actual) = (x.get(i).cloned(), y.get(i).cloned());
            let status = match (&expected, &actual) {
                (Some(e), Some(f)) if e == f => Status::Ok,
                (Some(_), Some(_)) => Status::Differs,
                _ => Status::Missing,
            };
            // Entries carry a unique name (`snp-shape0-vcpus4`); fall back to the position.
            let label = expected.as_ref().or(actual.as_ref()).and_then(|v| v.get("name")).and_then(|n| n.as_str());
            let name = label.map_or_else(|| format!("{platform}[{i}]"), str::to_owned);
            MeasurementCheck { name, status, expected, actual }
        })
        .collect()
}

/// Measurement records as JSON values, so that both platforms compare the same way.
pub(super) fn as_values<T: Serialize>(records: &[T]) -> Vec<serde_json::Value> {
    records.iter().map(|r| serde_json::to_value(r).unwrap_or(serde_json::Value::Null)).collect()
}

/// Runs the diff engine on the publication and the rebuild.
pub(super) fn explain(published: &Published, out: &Path, limits: &Limits) -> Result<Vec<Finding>, VerifyError> {
    let rebuilt = if published.manifest_only {
        out.join(MANIFEST_FILE)
    } else if published.bundle.is_some() {
        let bundle = fs_err::read_dir(out)
            .map_err(|source| VerifyError::Io { path: out.to_path_buf(), source })?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(".cvm.tar"));
        bundle.unwrap_or_else(|| out.to_path_buf())
    } else {
        out.to_path_buf()
    };
    Ok(diff_paths(&published.explain_from, &rebuilt, limits)?.findings)
}
