//! `cvmforge attest OUTDIR|BUNDLE|MANIFEST -o DIR`: the two in-toto statements of a release,
//! `provenance.intoto.json` (SLSA Provenance v1) and `launch.intoto.json` (the launch measurements), byte-identical
//! for the same manifest on any machine.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use sha2::{Digest, Sha256};

use super::{CliResult, Failure, Ui};
use cvmforge::evidence::time::parse_rfc3339;
use cvmforge::manifest::Manifest;
use cvmforge::publish::statement;
use cvmforge::sys::regular_file::read_capped;

/// Arguments of `cvmforge attest`.
#[derive(Debug, clap::Args)]
#[command(after_help = "TARGET is a build's output directory, its .cvm.tar bundle, or its manifest.json. The \
statements' time is the recipe's source_date_epoch unless --time is given.\n\nExample:\n  cvmforge attest out/demo -o \
out/attest --verify-report verify.json")]
pub(crate) struct Args {
    /// The release: an output directory, a bundle or a manifest.
    pub(crate) target: PathBuf,
    /// Where to write the two statements.
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub(crate) output: PathBuf,
    /// The JSON of `cvmforge verify --json` for this release: recorded as a byproduct of the provenance.
    #[arg(long, value_name = "FILE")]
    pub(crate) verify_report: Option<PathBuf>,
    /// The time the provenance records (RFC 3339); default: the recipe's source_date_epoch.
    #[arg(long, value_name = "TIME")]
    pub(crate) time: Option<String>,
    /// Replace statements that already exist in DIR with other bytes.
    #[arg(long)]
    pub(crate) force: bool,
}

pub(crate) fn run(args: Args, _ui: &Ui) -> CliResult {
    if !args.target.exists() {
        return Err(Failure::usage(format!("`{}` does not exist", args.target.display())));
    }
    let (manifest_bytes, bundle) = load(&args.target)?;
    let text = std::str::from_utf8(&manifest_bytes).context("the manifest is not UTF-8")?;
    let manifest = Manifest::from_json(text).context("cannot read the release's manifest")?;
    let time = match &args.time {
        Some(t) => {
            parse_rfc3339(t).ok_or_else(|| Failure::usage(format!("--time `{t}` is not an RFC 3339 time")))?;
            t.clone()
        }
        None => statement::rfc3339(u64::from(manifest.source_date_epoch)),
    };
    let report = match &args.verify_report {
        Some(path) => {
            let bytes = read_capped(path, 64 << 20).with_context(|| format!("cannot read `{}`", path.display()))?;
            let value: serde_json::Value = serde_json::from_slice(&bytes)
                .with_context(|| format!("`{}` is not the JSON of `cvmforge verify --json`", path.display()))?;
            if value.get("identical").and_then(serde_json::Value::as_bool).is_none() {
                return Err(anyhow::anyhow!(
                    "`{}` is not the JSON of `cvmforge verify --json` (no `identical`)",
                    path.display()
                )
                .into());
            }
            Some(value)
        }
        None => None,
    };
    let bundle_ref = bundle.as_ref().map(|(n, s)| (n.as_str(), s.as_str()));
    let manifest_sha = hex::encode(Sha256::digest(&manifest_bytes));
    let provenance = statement::provenance(&manifest, bundle_ref, report.as_ref(), &time);
    let launch = statement::launch(&manifest, &manifest_sha, bundle_ref);
    std::fs::create_dir_all(&args.output).with_context(|| format!("cannot create `{}`", args.output.display()))?;
    for (name, value) in [("provenance.intoto.json", &provenance), ("launch.intoto.json", &launch)] {
        let path = args.output.join(name);
        let bytes = statement::to_bytes(value);
        write_atomic(&path, &bytes, args.force)?;
        println!("{}  {}", hex::encode(Sha256::digest(&bytes)), path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// A bundle's file name and SHA-256 (hex).
type BundleRef = (String, String);

/// The manifest's bytes, and the bundle's name and SHA-256 when the target has one.
fn load(target: &Path) -> anyhow::Result<(Vec<u8>, Option<BundleRef>)> {
    let max = cvmforge::manifest::MAX_MANIFEST_SIZE;
    if target.is_dir() {
        let manifest = read_capped(&target.join("manifest.json"), max)
            .with_context(|| format!("`{}` has no readable manifest.json", target.display()))?;
        let mut bundles: Vec<PathBuf> = std::fs::read_dir(target)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with(".cvm.tar"))
            .collect();
        bundles.sort();
        let bundle = bundles.first().map(|b| bundle_digest(b)).transpose()?;
        return Ok((manifest, bundle));
    }
    let (manifest, is_bundle) = super::read_release_manifest(target)?;
    let bundle = if is_bundle { Some(bundle_digest(target)?) } else { None };
    Ok((manifest, bundle))
}

fn bundle_digest(path: &Path) -> anyhow::Result<BundleRef> {
    let mut file = cvmforge::sys::regular_file::open_input(path)?;
    let (digest, _) = cvmforge::sys::io::sha256_of(&mut file)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok((name, hex::encode(digest)))
}

/// Writes `bytes` to `path` through a temporary file beside it and a rename. An existing file with other bytes is
/// replaced only with `force`.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], force: bool) -> anyhow::Result<()> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        // Compared only when the sizes agree, so that a huge file in the way is never read.
        if meta.is_file() && meta.len() == bytes.len() as u64 && std::fs::read(path).is_ok_and(|e| e == bytes) {
            return Ok(());
        }
        if !force {
            anyhow::bail!("`{}` exists with other content; pass --force to replace it", path.display());
        }
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp =
        tempfile::NamedTempFile::new_in(&dir).with_context(|| format!("cannot write in `{}`", dir.display()))?;
    std::io::Write::write_all(&mut tmp, bytes).with_context(|| format!("cannot write `{}`", path.display()))?;
    tmp.persist(path).map_err(|e| anyhow::anyhow!("cannot write `{}`: {}", path.display(), e.error))?;
    Ok(())
}
