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

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::build::{BuildError, BuildOptions, MANIFEST_FILE};
use crate::diff::{diff_paths, DiffError, Finding};
use crate::manifest::{InputRecord, Manifest, ManifestError, OutputRecord};
use crate::recipe::{Recipe, RecipeError};
use crate::unpack::{read_bundle, sniff, Container, Limits, UnpackError};

/// Version of the `--json` report layout.
pub const SCHEMA_VERSION: u32 = 1;
/// A bundle holds a handful of members (the outputs and the manifest); more than this is not a cvmforge bundle and is
/// refused before it can cost time or memory.
pub(crate) const MAX_BUNDLE_MEMBERS: u64 = 64;
/// Read buffer for hashing files.
const HASH_BLOCK: usize = 128 * 1024;

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

/// The publication under verification.
struct Published {
    manifest: Manifest,
    manifest_bytes: Vec<u8>,
    /// The bundle file name and digest, when the target is a bundle.
    bundle: Option<(String, String, u64)>,
    /// What the diff engine compares with the rebuild: the bundle, the output directory, or the manifest.
    explain_from: PathBuf,
    /// Whether `explain_from` is a bare manifest (then the rebuilt manifest is what it is compared with).
    manifest_only: bool,
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
    report.measurements = compare_measurements(&manifest.measurements, &rebuilt.measurements);
    report.identical = report.recipe.status == Status::Ok
        && report.outputs.iter().all(|o| o.status == Status::Ok)
        && report.measurements.iter().all(|m| m.status == Status::Ok);
    if !report.identical {
        report.findings = explain(&published, &out, &options.limits)?;
    }
    Ok(report)
}

/// Reads the manifest from a bundle or a file and checks the publication against it.
fn load_published(target: &Path, limits: &Limits) -> Result<Published, VerifyError> {
    let io = |source| VerifyError::Io { path: target.to_path_buf(), source };
    let mut file = fs_err::File::open(target).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut head = [0u8; 512];
    let got = read_up_to(&mut file, &mut head).map_err(io)?;
    if sniff(head.get(..got).unwrap_or_default()) != Container::Tar {
        return load_manifest_file(target, &mut file, len, &head[..got]);
    }
    let bundle_limits = Limits { max_entries: MAX_BUNDLE_MEMBERS, ..crate::diff::bundle_limits(limits) };
    // The bundle's own digest is computed in the same pass that reads its members.
    let head = std::io::Cursor::new(head.get(..got).unwrap_or_default().to_vec());
    let mut stream = HashingReader { inner: head.chain(std::io::BufReader::new(file)), hasher: Sha256::new(), len: 0 };
    let bundle = read_bundle(&mut stream, Some(len), &bundle_limits)
        .map_err(|source| VerifyError::Bundle { path: target.to_path_buf(), source })?;
    std::io::copy(&mut stream, &mut std::io::sink()).map_err(io)?;
    let digest: [u8; 32] = stream.hasher.finalize().into();
    let bytes = bundle.member(MANIFEST_FILE).ok_or_else(|| VerifyError::NoManifest { path: target.to_path_buf() })?;
    let manifest = parse_manifest(target, bytes)?;
    check_bundle_members(target, &manifest, &bundle)?;
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(Published {
        manifest,
        manifest_bytes: bytes.to_vec(),
        bundle: Some((name, hex::encode(digest), stream.len)),
        explain_from: target.to_path_buf(),
        manifest_only: false,
    })
}

fn load_manifest_file(target: &Path, file: &mut fs_err::File, len: u64, head: &[u8]) -> Result<Published, VerifyError> {
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

fn parse_manifest(path: &Path, bytes: &[u8]) -> Result<Manifest, VerifyError> {
    let text = std::str::from_utf8(bytes).map_err(|e| VerifyError::Manifest {
        path: path.to_path_buf(),
        source: ManifestError::Parse { source: serde_json::Error::io(std::io::Error::other(e)) },
    })?;
    Manifest::from_json(text).map_err(|source| VerifyError::Manifest { path: path.to_path_buf(), source })
}

/// Every member except the manifest is a listed output with the listed digest and size, and every output is a member.
fn check_bundle_members(path: &Path, manifest: &Manifest, bundle: &crate::unpack::Bundle) -> Result<(), VerifyError> {
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
    if let Some(missing) = listed.keys().find(|name| !seen.contains(*name)) {
        return Err(VerifyError::MemberUnlisted {
            container: path.to_path_buf(),
            member: (*missing).to_string(),
            problem: "in the manifest's outputs but not in the bundle",
        });
    }
    Ok(())
}

fn check_member(container: &Path, record: &OutputRecord, sha256: &[u8; 32], size: u64) -> Result<(), VerifyError> {
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

/// Checks every input; returns the checks and, for the inputs found, where to read them (by role).
fn check_inputs(
    records: &[InputRecord],
    loaded: &crate::recipe::LoadedRecipe,
    search: &[PathBuf],
    prehashed: &Prehashed,
) -> Result<(Vec<InputCheck>, BTreeMap<String, PathBuf>), VerifyError> {
    // Each input is looked for where the recipe (not the untrusted manifest) puts it.
    let recipe_paths: BTreeMap<String, String> = input_paths(&loaded.recipe).into_iter().collect();
    let mut checks = Vec::with_capacity(records.len());
    let mut sources = BTreeMap::new();
    let mut index: Option<BTreeMap<String, PathBuf>> = None;
    for record in records {
        let at_recipe = recipe_paths.get(&record.role).map(|p| loaded.dir.join(p));
        let actual = match at_recipe.as_ref().filter(|p| p.is_file()) {
            Some(path) => match prehashed.get(&record.role) {
                Some((hashed, digest)) if hashed == path => Some(digest.clone()),
                _ => Some(hex::encode(hash_file(path)?.0)),
            },
            None => None,
        };
        let mut check = InputCheck {
            role: record.role.clone(),
            path: record.path.clone(),
            status: Status::Ok,
            expected_sha256: record.sha256.clone(),
            expected_size: record.size,
            actual_sha256: None,
            found_at: None,
        };
        if let Some(at_recipe) = at_recipe.filter(|_| actual.as_deref() == Some(record.sha256.as_str())) {
            sources.insert(record.role.clone(), at_recipe);
        } else {
            let index = match &mut index {
                Some(index) => index,
                None => index.insert(index_inputs(search, records)?),
            };
            if let Some(found) = index.get(&record.sha256) {
                check.found_at = Some(found.display().to_string());
                sources.insert(record.role.clone(), found.clone());
            } else {
                check.status = if actual.is_some() { Status::Differs } else { Status::Missing };
                check.actual_sha256 = actual;
            }
        }
        checks.push(check);
    }
    Ok((checks, sources))
}

/// Digests (hex) of the recipe's inputs at the recipe's paths, by role, with the path hashed.
type Prehashed = BTreeMap<String, (PathBuf, String)>;

/// Hashes every input the recipe names that exists; anything unreadable is left to [`check_inputs`] to report.
fn prehash(recipe: &Path) -> Prehashed {
    let Ok(loaded) = Recipe::load(recipe) else { return Prehashed::new() };
    input_paths(&loaded.recipe)
        .into_iter()
        .filter_map(|(role, rel)| {
            let path = loaded.dir.join(rel);
            let (digest, _) = hash_file(&path).ok()?;
            Some((role, (path, hex::encode(digest))))
        })
        .collect()
}

/// Hashes the files under the `--inputs` directories whose size matches some input, indexed by SHA-256.
fn index_inputs(dirs: &[PathBuf], records: &[InputRecord]) -> Result<BTreeMap<String, PathBuf>, VerifyError> {
    let sizes: BTreeSet<u64> = records.iter().map(|r| r.size).collect();
    let mut index = BTreeMap::new();
    let mut pending: Vec<PathBuf> = dirs.to_vec();
    while let Some(dir) = pending.pop() {
        let io = |source| VerifyError::Io { path: dir.clone(), source };
        let mut entries: Vec<PathBuf> =
            fs_err::read_dir(&dir).map_err(io)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>().map_err(io)?;
        entries.sort();
        for path in entries {
            // Symlinked directories are not descended into (no loops); symlinked files are hashed.
            let link =
                fs_err::symlink_metadata(&path).map_err(|source| VerifyError::Io { path: path.clone(), source })?;
            if link.is_dir() {
                pending.push(path);
                continue;
            }
            let Ok(meta) = std::fs::metadata(&path) else { continue };
            if meta.is_file() && sizes.contains(&meta.len()) {
                let (digest, _) = hash_file(&path)?;
                index.entry(hex::encode(digest)).or_insert(path);
            }
        }
    }
    Ok(index)
}

/// Writes the recipe at its tree-relative path inside `stage` and links every input (and the kernel module tree) at
/// the path the recipe names; returns the staged recipe.
fn stage_tree(
    stage: &Path,
    recipe_rel: &str,
    recipe_bytes: &[u8],
    loaded: &crate::recipe::LoadedRecipe,
    sources: &BTreeMap<String, PathBuf>,
    modules: Option<&BTreeSet<String>>,
) -> Result<PathBuf, VerifyError> {
    let staged_recipe = confined(stage, Path::new(recipe_rel), "recipe path", recipe_rel)?;
    let recipe_dir = staged_recipe.parent().unwrap_or(stage).to_path_buf();
    write_staged(&staged_recipe, recipe_bytes)?;
    let paths = input_paths(&loaded.recipe);
    for (role, path) in &paths {
        let Some(source) = sources.get(role) else { continue };
        let dest = confined(stage, &recipe_dir.strip_prefix(stage).unwrap_or(Path::new("")).join(path), role, path)?;
        link_or_copy(source, &dest)?;
    }
    if let Some(spec) = &loaded.recipe.kernel.modules {
        let rel = recipe_dir.strip_prefix(stage).unwrap_or(Path::new("")).join(&spec.tree);
        let dest = confined(stage, &rel, "kernel.modules.tree", &spec.tree)?;
        let from = loaded.dir.join(&spec.tree);
        copy_tree(&from, &from, &dest, modules)?;
    }
    Ok(staged_recipe)
}

/// The module files (`source`, relative to `lib/modules/<release>`) the published manifest put into the initrd.
/// Staging only those, and not the thousands of other modules of a distribution kernel package, keeps verify close to
/// the cost of a build; a rebuild that needs any other module then fails naming it.
fn published_module_sources(manifest: &Manifest) -> Option<BTreeSet<String>> {
    let list = manifest.sealing.get("modules")?.get("modules")?.as_array()?;
    list.iter().map(|m| m.get("source").and_then(|s| s.as_str()).map(str::to_owned)).collect()
}

/// True for a kernel module file (`.ko`, possibly compressed).
fn is_module_file(name: &str) -> bool {
    [".ko", ".ko.xz", ".ko.zst", ".ko.gz"].iter().any(|ext| name.ends_with(ext))
}

/// The recipe's input paths by role (the same roles the build records in the manifest).
fn input_paths(r: &Recipe) -> Vec<(String, String)> {
    let mut roles = vec![("kernel".to_string(), r.kernel.path.clone()), ("init".to_string(), r.initrd.init.clone())];
    roles.extend(r.kernel.config.iter().map(|p| ("kernel-config".to_string(), p.clone())));
    roles.extend(r.initrd.files.iter().map(|f| (format!("file:{}", f.dst), f.src.clone())));
    roles.extend(r.firmware.snp.iter().map(|p| ("firmware:snp".to_string(), p.clone())));
    roles.extend(r.firmware.tdx.iter().map(|p| ("firmware:tdx".to_string(), p.clone())));
    roles
}

/// `stage/rel`, normalised lexically; refused if it is absolute or climbs out of `stage`.
fn confined(stage: &Path, rel: &Path, what: &str, shown: &str) -> Result<PathBuf, VerifyError> {
    let outside = || VerifyError::OutsideTree { what: what.to_string(), path: shown.to_string() };
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for component in rel.components() {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop().ok_or_else(outside)?;
            }
            Component::RootDir | Component::Prefix(_) => return Err(outside()),
        }
    }
    if parts.is_empty() {
        return Err(outside());
    }
    Ok(parts.iter().fold(stage.to_path_buf(), |path, part| path.join(part)))
}

fn write_staged(path: &Path, bytes: &[u8]) -> Result<(), VerifyError> {
    let err = |source| VerifyError::Stage { path: path.to_path_buf(), source };
    if let Some(parent) = path.parent() {
        fs_err::create_dir_all(parent).map_err(err)?;
    }
    fs_err::write(path, bytes).map_err(err)
}

/// Hard-links `from` at `to` (no copy of large inputs), else copies it; an existing `to` (two roles naming one file)
/// is kept.
fn link_or_copy(from: &Path, to: &Path) -> Result<(), VerifyError> {
    let err = |source| VerifyError::Stage { path: to.to_path_buf(), source };
    if to.exists() {
        return Ok(());
    }
    if let Some(parent) = to.parent() {
        fs_err::create_dir_all(parent).map_err(err)?;
    }
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    fs_err::copy(from, to).map(drop).map_err(err)
}

/// Mirrors the tree `from` at `to` with hard links; with `wanted`, module files other than those listed are skipped.
/// Directories are made only where a file is linked (`link_or_copy`): a distribution kernel has about a thousand.
fn copy_tree(root: &Path, from: &Path, to: &Path, wanted: Option<&BTreeSet<String>>) -> Result<(), VerifyError> {
    let io = |source| VerifyError::Io { path: from.to_path_buf(), source };
    for entry in fs_err::read_dir(from).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        let meta = fs_err::metadata(&path).map_err(|source| VerifyError::Io { path: path.clone(), source })?;
        if meta.is_dir() {
            copy_tree(root, &path, &to.join(entry.file_name()), wanted)?;
        } else if meta.is_file() && is_wanted(root, &path, wanted) {
            link_or_copy(&path, &to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

/// Whether `path` (under `root`) is staged: every file but modules that the manifest does not list.
fn is_wanted(root: &Path, path: &Path, wanted: Option<&BTreeSet<String>>) -> bool {
    let Some(wanted) = wanted else { return true };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if !is_module_file(name) {
        return true;
    }
    let rel = path.strip_prefix(root).unwrap_or(path).to_string_lossy().into_owned();
    wanted.iter().any(|source| rel == *source || rel.ends_with(&format!("/{source}")))
}

/// Compares the listed outputs, then `manifest.json`, then the bundle (when one was given).
fn compare_outputs(
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

fn artifact(name: &str, a: Option<(String, u64)>, b: Option<(String, u64)>) -> ArtifactCheck {
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

fn compare_measurements(a: &crate::manifest::Measurements, b: &crate::manifest::Measurements) -> Vec<MeasurementCheck> {
    let mut checks = compare_records("snp", &as_values(&a.snp), &as_values(&b.snp));
    checks.extend(compare_records("tdx", &as_values(&a.tdx), &as_values(&b.tdx)));
    checks
}

/// Compares one platform's records in manifest order.
fn compare_records(platform: &str, x: &[serde_json::Value], y: &[serde_json::Value]) -> Vec<MeasurementCheck> {
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
fn as_values<T: Serialize>(records: &[T]) -> Vec<serde_json::Value> {
    records.iter().map(|r| serde_json::to_value(r).unwrap_or(serde_json::Value::Null)).collect()
}

/// Runs the diff engine on the publication and the rebuild.
fn explain(published: &Published, out: &Path, limits: &Limits) -> Result<Vec<Finding>, VerifyError> {
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

/// Hashes what passes through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    len: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let read = buf.get(..n).unwrap_or_default();
        self.hasher.update(read);
        self.len = self.len.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
        Ok(n)
    }
}

/// SHA-256 and size of a file.
fn hash_file(path: &Path) -> Result<([u8; 32], u64), VerifyError> {
    let io = |source| VerifyError::Io { path: path.to_path_buf(), source };
    let mut file = fs_err::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; HASH_BLOCK];
    let mut size = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(e)),
        };
        hasher.update(buf.get(..n).unwrap_or_default());
        size = size.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
    }
    Ok((hasher.finalize().into(), size))
}

fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(buf.get_mut(got..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
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
