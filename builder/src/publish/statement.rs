//! in-toto Statement v1 documents for a release (`docs/specs/publishing.md`, `docs/launch-predicate.md`):
//!
//! - [`provenance`]: SLSA Provenance v1 of the build; subjects the bundle, kernel, initrd and firmware files;
//! - [`launch`]: the launch measurements of every VM shape (predicate type [`LAUNCH_PREDICATE`]), everything a client
//!   needs to check an SEV-SNP report or a TDX quote, with nothing else trusted.
//!
//! Both are functions of the manifest (and a time): sorted keys, compact JSON, one trailing newline, so the same
//! manifest gives the same bytes on any machine.

use serde_json::{json, Map, Value};

use crate::manifest::Manifest;

/// The in-toto statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// SLSA Provenance v1.
pub const PROVENANCE_PREDICATE: &str = "https://slsa.dev/provenance/v1";
/// cvmforge's launch-measurement predicate (schema: `docs/launch-predicate.schema.json`).
pub const LAUNCH_PREDICATE: &str = "https://cvmforge.dev/launch-measurements/v1";
/// The build type of cvmforge's provenance.
pub const BUILD_TYPE: &str = "https://cvmforge.dev/build/v1";
/// The builder id.
pub const BUILDER_ID: &str = "https://cvmforge.dev/cvmforge";

/// The statement bytes: compact JSON with sorted keys, and a newline.
pub fn to_bytes(statement: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(statement).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

fn subject(name: &str, sha256: &str) -> Value {
    json!({"name": name, "digest": {"sha256": sha256}})
}

/// The subjects of the provenance: the bundle (when known), kernel, initrd and firmware outputs.
fn artifact_subjects(manifest: &Manifest, bundle: Option<(&str, &str)>) -> Vec<Value> {
    let mut out: Vec<Value> = bundle.map(|(name, sha)| subject(name, sha)).into_iter().collect();
    for o in &manifest.outputs {
        let wanted = o.name == "kernel" || o.name == "initrd.img" || o.name.starts_with("firmware-");
        if wanted {
            out.push(subject(&o.name, &o.sha256));
        }
    }
    out
}

/// SLSA Provenance v1 of the build that made `manifest`; `verify_report` (the JSON of `cvmforge verify --json`) goes
/// in as a byproduct; `time` (RFC 3339) is the build's start and finish.
pub fn provenance(
    manifest: &Manifest,
    bundle: Option<(&str, &str)>,
    verify_report: Option<&Value>,
    time: &str,
) -> Value {
    let dependencies: Vec<Value> = manifest
        .inputs
        .iter()
        .map(|i| json!({"name": i.role, "uri": format!("file:{}", i.path), "digest": {"sha256": i.sha256}}))
        .collect();
    let mut byproducts = Vec::new();
    if let Some(report) = verify_report {
        byproducts.push(json!({
            "name": "cvmforge-verify-report.json",
            "mediaType": "application/json",
            "content": base64_json(report),
            "annotations": {"identical": report.get("identical").cloned().unwrap_or(Value::Null)},
        }));
    }
    json!({
        "_type": STATEMENT_TYPE,
        "subject": artifact_subjects(manifest, bundle),
        "predicateType": PROVENANCE_PREDICATE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "recipe": {
                        "name": manifest.recipe.name,
                        "version": manifest.recipe.version,
                        "path": manifest.recipe.path,
                        "digest": {"sha256": manifest.recipe.sha256},
                    },
                    "source_date_epoch": manifest.source_date_epoch,
                },
                "internalParameters": {"cvmforge_version": manifest.cvmforge_version},
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {"id": BUILDER_ID, "version": {"cvmforge": manifest.cvmforge_version}},
                "metadata": {"invocationId": format!("{}-{}", manifest.recipe.name, manifest.recipe.version), "startedOn": time, "finishedOn": time},
                "byproducts": byproducts,
            },
        },
    })
}

fn base64_json(value: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(value).unwrap_or_default())
}

/// The launch-measurement statement: subjects the manifest (and the bundle, when known); the predicate lists every
/// SEV-SNP and TDX shape with what a checker compares (see `docs/launch-predicate.md`).
pub fn launch(manifest: &Manifest, manifest_sha256: &str, bundle: Option<(&str, &str)>) -> Value {
    let mut subjects = vec![subject("manifest.json", manifest_sha256)];
    subjects.extend(bundle.map(|(name, sha)| subject(name, sha)));
    let snp: Vec<Value> = manifest
        .measurements
        .snp
        .iter()
        .map(|m| {
            json!({
                "name": m.name,
                "vcpus": m.vcpus,
                "vcpu_type": m.vcpu_type,
                "vcpu_sig": m.vcpu_sig,
                "vmm_type": m.vmm_type,
                "guest_features": m.guest_features,
                "policy": m.policy.value,
                "measurement": m.digest,
                "id_key_digest": m.id.as_ref().map(|i| i.id_key_digest.clone()),
                "author_key_digest": m.id.as_ref().and_then(|i| i.author_key_digest.clone()),
                "firmware_sha256": m.inputs.firmware_sha256,
            })
        })
        .collect();
    let tdx: Vec<Value> = manifest
        .measurements
        .tdx
        .iter()
        .map(|m| {
            json!({
                "name": m.name,
                "vcpus": m.vcpus,
                "memory": m.memory,
                "page_order": m.page_order,
                "mrtd": m.mrtd,
                "rtmr0": m.rtmr0,
                "rtmr1": m.rtmr1,
                "rtmr2": m.rtmr2,
                "rtmr3": m.rtmr3,
                "firmware_sha256": m.inputs.firmware_sha256,
            })
        })
        .collect();
    let mut predicate = Map::new();
    predicate.insert(
        "release".into(),
        json!({"name": manifest.recipe.name, "version": manifest.recipe.version, "cvmforge_version": manifest.cvmforge_version}),
    );
    predicate.insert("kernel_cmdline".into(), Value::String(manifest.kernel.cmdline.clone()));
    predicate.insert("snp".into(), Value::Array(snp));
    predicate.insert("tdx".into(), Value::Array(tdx));
    json!({
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": LAUNCH_PREDICATE,
        "predicate": Value::Object(predicate),
    })
}

/// An RFC 3339 UTC time from seconds since the epoch (the recipe's `source_date_epoch` by default).
pub fn rfc3339(seconds: u64) -> String {
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    let rest = seconds % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_767_225_600), "2026-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_709_209_815), "2024-02-29T12:30:15Z");
    }
}
