//! Reproducing a published build: `cvmforge verify MANIFEST|BUNDLE`.
//!
//! A third party holds a published `manifest.json` (or the whole `.cvm.tar` bundle), the recipe and the inputs.
//! [`verify`] checks the publication against itself (every bundle member has the digest and size the manifest lists),
//! checks the recipe and every input against the manifest's digests, rebuilds in a private temporary directory and
//! compares every output, the manifest itself and every launch measurement. Differences are explained by the diff
//! engine ([`crate::diff`]; `docs/specs/reproducibility.md`, "Diagnosis").
//!
//! Inputs are found at the recipe's own paths or, by SHA-256, in extra directories (`--inputs`). The build never runs
//! in the user's tree: the recipe and its inputs are staged (hard-linked, else copied) into a temporary tree that
//! mirrors the recipe's relative paths, so that no lock file or output is written next to the user's files.
//!
//! ```no_run
//! use cvmforge::verify::{verify, VerifyOptions};
//! let report = verify(&VerifyOptions::new("out/demo-0.1.0.cvm.tar".into())).unwrap();
//! println!("identical: {}", report.identical);
//! ```

use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::build::{BuildError, BuildOptions, MANIFEST_FILE};
use crate::diff::{DiffError, Finding};
use crate::format::{Limits, UnpackError};
use crate::manifest::{Manifest, ManifestError};
use crate::recipe::{Recipe, RecipeError};

mod compare;
mod inputs;
mod publication;
mod staging;

use compare::{compare_measurements, compare_outputs, explain};
use inputs::{check_inputs, prehash, Prehashed};
use publication::load_published;
use staging::{confined, published_module_sources, stage_tree};

/// Version of the `--json` report layout.
pub const SCHEMA_VERSION: u32 = 1;

/// What to verify and how.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// A `manifest.json` or a `.cvm.tar` bundle.
    pub target: PathBuf,
    /// The recipe; default: the manifest's recipe path resolved from the current directory.
    pub recipe: Option<PathBuf>,
    /// Extra directories searched (recursively) for inputs by SHA-256.
    pub inputs: Vec<PathBuf>,
    /// Compressor threads for the rebuild (does not change the bytes).
    pub jobs: usize,
    /// Bounds on reading the bundle and on the diff engine.
    pub limits: Limits,
}

impl VerifyOptions {
    /// Options with defaults: no `--recipe`, no `--inputs`, one job per CPU, default limits.
    pub fn new(target: PathBuf) -> VerifyOptions {
        let jobs = std::thread::available_parallelism().map_or(1, usize::from);
        VerifyOptions { target, recipe: None, inputs: Vec::new(), jobs, limits: Limits::default() }
    }
}

/// The verdict on one item (recipe, input, output, measurement).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Identical.
    Ok,
    /// Present but different.
    Differs,
    /// Not found.
    Missing,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Ok => "ok",
            Status::Differs => "DIFFERS",
            Status::Missing => "MISSING",
        })
    }
}

/// The recipe check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecipeCheck {
    /// The recipe file used.
    pub path: String,
    /// `ok` or `differs`.
    pub status: Status,
    /// The manifest's recipe digest.
    pub expected_sha256: String,
    /// The digest of the recipe file used.
    pub actual_sha256: String,
}

/// One input check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputCheck {
    /// `kernel`, `init`, `file:/usr/bin/app`, `firmware:snp`, ...
    pub role: String,
    /// The path as written in the recipe.
    pub path: String,
    /// `ok`, `differs` (a file at the recipe's path has another digest) or `missing`.
    pub status: Status,
    /// The manifest's digest.
    pub expected_sha256: String,
    /// The manifest's size.
    pub expected_size: u64,
    /// The digest of the file at the recipe's path, when it differs.
    pub actual_sha256: Option<String>,
    /// Where a matching file was found, when not at the recipe's path (an `--inputs` directory).
    pub found_at: Option<String>,
}

/// One compared artifact (an output file, the manifest, the bundle).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArtifactCheck {
    /// File name.
    pub name: String,
    /// `ok`, `differs`, or `missing` (only one side has it).
    pub status: Status,
    /// SHA-256 in the publication.
    pub expected_sha256: Option<String>,
    /// SHA-256 in the rebuild.
    pub actual_sha256: Option<String>,
    /// Size in the publication.
    pub expected_size: Option<u64>,
    /// Size in the rebuild.
    pub actual_size: Option<u64>,
}

/// One compared launch measurement (one VM shape of one platform).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MeasurementCheck {
    /// `snp[0]`, `tdx[1]`, ...: platform and position in the manifest.
    pub name: String,
    /// `ok`, `differs`, or `missing` (only one side has it).
    pub status: Status,
    /// The published record.
    pub expected: Option<serde_json::Value>,
    /// The rebuilt record.
    pub actual: Option<serde_json::Value>,
}

/// The outcome of [`verify`] (the `--json` output of `cvmforge verify`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Everything checked is identical.
    pub identical: bool,
    /// The recipe.
    pub recipe: RecipeCheck,
    /// Every input, in manifest order.
    pub inputs: Vec<InputCheck>,
    /// Every output, then the manifest, then (for a bundle) the bundle; empty when inputs are missing.
    pub outputs: Vec<ArtifactCheck>,
    /// Every launch measurement.
    pub measurements: Vec<MeasurementCheck>,
    /// The diff engine's explanation of the differences.
    pub findings: Vec<Finding>,
}

/// Why verification could not run (as opposed to finding a difference, which is a [`VerifyReport`]).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A file could not be read.
    #[error("cannot read `{}`", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The bundle is malformed or over a limit.
    #[error("cannot read bundle `{}`", path.display())]
    Bundle {
        /// The bundle.
        path: PathBuf,
        /// The cause.
        #[source]
        source: UnpackError,
    },
    /// The bundle has no `manifest.json`.
    #[error("bundle `{}` has no `{MANIFEST_FILE}` member", path.display())]
    NoManifest {
        /// The bundle.
        path: PathBuf,
    },
    /// The manifest cannot be read.
    #[error("`{}` is not a usable manifest", path.display())]
    Manifest {
        /// The manifest (or bundle).
        path: PathBuf,
        /// The cause.
        #[source]
        source: ManifestError,
    },
    /// A published file does not have the digest or size its own manifest lists.
    #[error("`{member}` in `{}` does not match its manifest: sha256 {found_sha256} ({found_size} bytes), the manifest lists {expected_sha256} ({expected_size} bytes)", container.display())]
    MemberMismatch {
        /// The bundle or output directory.
        container: PathBuf,
        /// The member.
        member: String,
        /// The manifest's digest.
        expected_sha256: String,
        /// The manifest's size.
        expected_size: u64,
        /// The member's digest.
        found_sha256: String,
        /// The member's size.
        found_size: u64,
    },
    /// A bundle member the manifest does not list, or an output the bundle lacks.
    #[error("bundle `{}` and its manifest disagree: `{member}` is {problem}", container.display())]
    MemberUnlisted {
        /// The bundle.
        container: PathBuf,
        /// The member.
        member: String,
        /// `in the bundle but not in the manifest's outputs` or the reverse.
        problem: &'static str,
    },
    /// The recipe file cannot be read.
    #[error("cannot read the recipe `{}`", path.display())]
    RecipeRead {
        /// Where it was looked for.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The recipe cannot be parsed.
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    /// A path from the manifest or recipe cannot be mirrored inside the staging tree.
    #[error("{what} `{path}` is absolute or climbs out of its tree with `..`: refused (it cannot be staged for the rebuild)")]
    OutsideTree {
        /// Which path (`recipe path`, `input kernel`, ...).
        what: String,
        /// The path.
        path: String,
    },
    /// Staging the recipe and inputs failed.
    #[error("cannot stage `{}` for the rebuild", path.display())]
    Stage {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The rebuild failed.
    #[error("the rebuild failed")]
    Build(#[from] BuildError),
    /// The rebuilt manifest cannot be read (a bug).
    #[error("internal error (a bug in cvmforge): the rebuilt manifest cannot be read")]
    Rebuilt(#[source] ManifestError),
    /// The differences could not be explained.
    #[error("cannot explain the differences")]
    Diff(#[from] DiffError),
}

impl VerifyError {
    /// What the user can do about this error, when there is a usual remedy (printed as `hint:` by the CLI).
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            VerifyError::RecipeRead { .. } => {
                Some("pass the recipe with `--recipe PATH`, or run from the recipe's tree")
            }
            VerifyError::MemberMismatch { .. } | VerifyError::MemberUnlisted { .. } => {
                Some("the publication contradicts its own manifest: it was altered or damaged after the build")
            }
            _ => None,
        }
    }
}

/// Verifies a publication: see the module documentation.
pub fn verify(options: &VerifyOptions) -> Result<VerifyReport, VerifyError> {
    // With `--recipe`, the inputs are hashed while the bundle is read (both are a full pass over large files).
    let (published, prehashed) = match &options.recipe {
        Some(recipe) => std::thread::scope(|scope| {
            let hashing = scope.spawn(|| prehash(recipe));
            let published = load_published(&options.target, &options.limits);
            (published, hashing.join().unwrap_or_default())
        }),
        None => (load_published(&options.target, &options.limits), Prehashed::new()),
    };
    let published = published?;
    let manifest = &published.manifest;
    let recipe_path = match &options.recipe {
        Some(path) => path.clone(),
        // The manifest is untrusted: its recipe path may only name a file below the current directory.
        None => confined(
            Path::new(""),
            Path::new(&manifest.recipe.path),
            "the manifest's recipe path",
            &manifest.recipe.path,
        )?,
    };
    let recipe_bytes =
        fs_err::read(&recipe_path).map_err(|source| VerifyError::RecipeRead { path: recipe_path.clone(), source })?;
    let actual = hex::encode(Sha256::digest(&recipe_bytes));
    let recipe = RecipeCheck {
        path: recipe_path.display().to_string(),
        status: if actual == manifest.recipe.sha256 { Status::Ok } else { Status::Differs },
        expected_sha256: manifest.recipe.sha256.clone(),
        actual_sha256: actual,
    };
    let loaded = Recipe::load(&recipe_path)?;
    let (inputs, sources) = check_inputs(&manifest.inputs, &loaded, &options.inputs, &prehashed)?;
    let mut report = VerifyReport {
        schema_version: SCHEMA_VERSION,
        identical: false,
        recipe,
        inputs,
        outputs: Vec::new(),
        measurements: Vec::new(),
        findings: Vec::new(),
    };
    if report.inputs.iter().any(|i| i.status != Status::Ok) {
        return Ok(report);
    }
    let stage = tempfile::tempdir().map_err(|source| VerifyError::Stage { path: PathBuf::from("."), source })?;
    let modules = published_module_sources(manifest);
    let staged_recipe =
        stage_tree(stage.path(), &manifest.recipe.path, &recipe_bytes, &loaded, &sources, modules.as_ref())?;
    let out = stage.path().join(".cvmforge-verify-out");
    let published_strict = manifest.sealing.get("strict").and_then(serde_json::Value::as_bool).unwrap_or(false);
    let build_options = BuildOptions {
        recipe: staged_recipe,
        output: out.clone(),
        locked: false,
        force: false,
        jobs: options.jobs.max(1),
        // Rebuild in the strictness the publisher built in (the manifest records it), so that a sealed release is
        // rebuilt sealed and an image built with the opt-out is reproduced too; the verdicts are then compared.
        strict: published_strict,
        allow_unsealed: !published_strict,
    };
    let built = crate::build::build(&build_options)?;
    let rebuilt_bytes = fs_err::read(out.join(MANIFEST_FILE))
        .map_err(|source| VerifyError::Io { path: out.join(MANIFEST_FILE), source })?;
    let rebuilt = Manifest::from_json(&String::from_utf8_lossy(&rebuilt_bytes)).map_err(VerifyError::Rebuilt)?;
    report.outputs = compare_outputs(&published, &rebuilt, &rebuilt_bytes, &built.outputs);
    // Beside a manifest, the volume images were hashed and checked while the publication was read; beside a bundle
    // (which does not hold them) they are hashed here.
    if published.bundle.is_some() {
        report.outputs.extend(compare::published_volumes(&options.target, manifest)?);
    }
    report.measurements = compare_measurements(&manifest.measurements, &rebuilt.measurements);
    report.identical = report.recipe.status == Status::Ok
        && report.outputs.iter().all(|o| o.status == Status::Ok)
        && report.measurements.iter().all(|m| m.status == Status::Ok);
    if !report.identical {
        report.findings = explain(&published, &out, &options.limits)?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::compare::compare_records;
    use super::*;

    #[test]
    fn confined_normalises_and_rejects_escapes() {
        let stage = Path::new("/s");
        assert_eq!(confined(stage, Path::new("recipes/../build/k"), "k", "k").unwrap(), Path::new("/s/build/k"));
        assert!(matches!(confined(stage, Path::new("../x"), "k", "k"), Err(VerifyError::OutsideTree { .. })));
        assert!(matches!(confined(stage, Path::new("/etc/x"), "k", "k"), Err(VerifyError::OutsideTree { .. })));
        assert!(matches!(confined(stage, Path::new("."), "k", "k"), Err(VerifyError::OutsideTree { .. })));
    }

    #[test]
    fn measurements_compare_by_position_and_name() {
        let a = [serde_json::json!({"name": "snp-shape0-vcpus1", "d": "1"}), serde_json::json!({"d": "3"})];
        let b = [serde_json::json!({"name": "snp-shape0-vcpus1", "d": "2"})];
        let checks = compare_records("snp", &a, &b);
        let got: Vec<(&str, Status)> = checks.iter().map(|c| (c.name.as_str(), c.status)).collect();
        assert_eq!(got, [("snp-shape0-vcpus1", Status::Differs), ("snp[1]", Status::Missing)]);
        assert_eq!(compare_records("snp", &a, &a)[0].status, Status::Ok);
    }
}
