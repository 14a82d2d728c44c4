//! `cvmforge inspect`: lists the initrd entries recorded in a build's `manifest.json` and its sealing-policy verdict
//! with every violation and waiver.
//!
//! An initrd (plain, gzip or zstd newc) or a `.cvm.tar` bundle is read with the bounded archive readers of
//! [`cvmforge::format`] (nothing is extracted); for a bundle the policy verdict comes from its `manifest.json` member.

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;
use serde_json::Value;

use super::{print_json, CliResult, Ui};
use cvmforge::format::{publication_limits, read_bundle, read_initrd, sniff, Container, EntryType, Limits};
use cvmforge::manifest::Manifest;

/// Version of the `--json` output.
const SCHEMA_VERSION: u32 = 1;

/// Arguments of this subcommand.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  cvmforge inspect out/manifest.json          # entries and the sealing verdict\n  cvmforge inspect out/initrd.img             # what the initrd holds (gzip, zstd or plain newc)\n  cvmforge inspect demo-0.1.0.cvm.tar --json  # a published bundle, as JSON"
)]
pub(crate) struct Args {
    /// A build's `manifest.json`, an initrd (plain, gzip or zstd newc cpio), or a `.cvm.tar` bundle.
    pub(crate) path: PathBuf,
}

/// One initrd entry as listed.
#[derive(Debug, Serialize)]
struct EntryRow {
    path: String,
    #[serde(rename = "type")]
    kind: String,
    mode: String,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
}

/// The `--json` document; the text output is rendered from it.
#[derive(Debug, Serialize)]
struct Output {
    schema_version: u32,
    entries: Vec<EntryRow>,
    /// The manifest's `sealing` section (`null` when the build recorded none).
    policy: Value,
    /// The kernel modules report (`sealing.modules`, or a top-level `modules`), when there is one.
    #[serde(skip_serializing_if = "Value::is_null")]
    modules: Value,
    /// For an initrd or a bundle: what the archive is.
    #[serde(skip_serializing_if = "Option::is_none")]
    archive: Option<ArchiveInfo>,
    /// The data volumes the manifest records (files, root hash, mount point), when there are any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    volumes: Vec<cvmforge::manifest::VolumeRecord>,
}

/// The archive itself (absent when a manifest is inspected).
#[derive(Debug, Serialize)]
struct ArchiveInfo {
    /// `initrd` or `bundle`.
    kind: &'static str,
    /// `none`, `gzip`, `zstd` for an initrd; `none` for a bundle.
    compression: &'static str,
    /// SHA-256 of the file.
    sha256: String,
    /// Size of the file.
    size: u64,
}

/// Reads the manifest, initrd or bundle and prints its entries and policy verdict.
pub(crate) fn run(args: Args, ui: &Ui) -> CliResult {
    let shown = u(&args.path.to_string_lossy());
    let (mut file, head) = open_input(&args.path).with_context(|| format!("cannot read `{shown}`"))?;
    let output = match sniff(&head) {
        Container::Gzip | Container::Zstd | Container::Cpio => inspect_initrd(&args.path, file)?,
        Container::Tar => inspect_bundle(&args.path, file)?,
        Container::Other => {
            // Anything else must be a manifest, which has a size limit of its own.
            let mut bytes = Vec::new();
            let cap = cvmforge::manifest::MAX_MANIFEST_SIZE;
            (&mut file).take(cap + 1).read_to_end(&mut bytes).with_context(|| format!("cannot read `{shown}`"))?;
            if bytes.len() as u64 > cap {
                return Err(anyhow::anyhow!(
                    "`{shown}` is not an initrd or bundle, and is larger than a manifest may be ({cap} bytes)"
                )
                .into());
            }
            let text = String::from_utf8(bytes).with_context(|| format!("`{shown}` is not a manifest: not UTF-8"))?;
            let manifest = Manifest::from_json(&text).with_context(|| format!("cannot inspect `{shown}`"))?;
            read_manifest(&manifest)
        }
    };
    if ui.json {
        print_json(&output)?;
    } else {
        print!("{}", render(&args.path, &output));
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens the file to inspect (the user's own symlink is followed; what it leads to must be a regular file, so that
/// `/dev/zero` or a FIFO is refused at once) and reads the head that tells its kind; the file is then read from the
/// start again, streamed.
fn open_input(path: &Path) -> std::io::Result<(std::io::BufReader<std::fs::File>, Vec<u8>)> {
    let file = cvmforge::sys::regular_file::open_regular(&std::fs::canonicalize(path)?)?;
    let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
    let mut head = Vec::with_capacity(512);
    (&mut reader).take(512).read_to_end(&mut head)?;
    reader.seek(std::io::SeekFrom::Start(0))?;
    Ok((reader, head))
}

fn inspect_initrd(path: &Path, file: impl Read) -> anyhow::Result<Output> {
    // Only digests are listed: keep no content in memory. The archive is streamed, under the usual limits.
    let limits = Limits { max_kept_entry: 0, max_kept_total: 0, ..Limits::default() };
    let initrd =
        read_initrd(file, &limits).with_context(|| format!("cannot read initrd `{}`", u(&path.to_string_lossy())))?;
    let entries = initrd
        .entries
        .iter()
        .map(|e| archive_row(&e.path, e.file_type, e.permissions(), e.size, &e.sha256, e.link_target.as_deref()))
        .collect();
    let archive = ArchiveInfo {
        kind: "initrd",
        compression: initrd.compression.algorithm(),
        sha256: hex::encode(initrd.file_sha256),
        size: initrd.file_size,
    };
    Ok(Output {
        schema_version: SCHEMA_VERSION,
        entries,
        policy: Value::Null,
        modules: Value::Null,
        archive: Some(archive),
        volumes: Vec::new(),
    })
}

fn inspect_bundle(path: &Path, file: std::io::BufReader<std::fs::File>) -> anyhow::Result<Output> {
    // The same limits as `verify`: a bundle has at most a few members, each kept whole.
    let limits = publication_limits(&Limits::default());
    let len = file.get_ref().metadata().map(|m| m.len()).ok();
    let mut hashed = cvmforge::sys::io::HashingReader::new(file);
    let bundle = read_bundle(&mut hashed, len, &limits)
        .with_context(|| format!("cannot read bundle `{}`", u(&path.to_string_lossy())))?;
    let (bundle_sha256, bundle_size) =
        hashed.finish().with_context(|| format!("cannot read bundle `{}`", u(&path.to_string_lossy())))?;
    let entries = bundle
        .entries
        .iter()
        .map(|e| archive_row(&e.path, e.file_type, e.mode & 0o7777, e.size, &e.sha256, e.link_target.as_deref()))
        .collect();
    let (policy, modules, volumes) = match bundle.member(cvmforge::build::MANIFEST_FILE) {
        Some(member_bytes) => {
            let member = |what: &str| format!("`{}`: member `manifest.json` {what}", u(&path.to_string_lossy()));
            let text = std::str::from_utf8(member_bytes).map_err(|_| anyhow::anyhow!(member("is not UTF-8")))?;
            let manifest = Manifest::from_json(text).with_context(|| member("cannot be read"))?;
            let read = read_manifest(&manifest);
            (read.policy, read.modules, read.volumes)
        }
        None => (Value::Null, Value::Null, Vec::new()),
    };
    let archive =
        ArchiveInfo { kind: "bundle", compression: "none", sha256: hex::encode(bundle_sha256), size: bundle_size };
    Ok(Output { schema_version: SCHEMA_VERSION, entries, policy, modules, archive: Some(archive), volumes })
}

/// One archive entry in the manifest's vocabulary (`file`, `directory`, `symlink`, `chardev`, ...).
fn archive_row(path: &str, kind: EntryType, mode: u32, size: u64, sha256: &[u8; 32], target: Option<&str>) -> EntryRow {
    let kind = match kind {
        EntryType::Regular => "file",
        EntryType::Directory => "directory",
        EntryType::Symlink => "symlink",
        EntryType::Hardlink => "hardlink",
        EntryType::CharDevice => "chardev",
        EntryType::BlockDevice => "blockdev",
        EntryType::Fifo => "fifo",
        EntryType::Socket => "socket",
    };
    let has_content = matches!(kind, "file" | "symlink");
    EntryRow {
        path: path.to_string(),
        kind: kind.to_string(),
        mode: format!("{mode:04o}"),
        size,
        sha256: has_content.then(|| hex::encode(sha256)),
        target: target.map(str::to_string),
    }
}

/// The entries and the sealing section of a (typed, already checked) manifest.
fn read_manifest(manifest: &Manifest) -> Output {
    let entries = manifest
        .initrd
        .entries
        .iter()
        .map(|e| EntryRow {
            path: e.path.clone(),
            kind: e.kind.name().to_owned(),
            mode: e.mode.clone(),
            size: e.size,
            sha256: e.sha256.clone(),
            target: e.target.clone(),
        })
        .collect();
    let policy = match &manifest.sealing {
        sealing if sealing.is_empty() => Value::Null,
        sealing => Value::Object(sealing.clone().into_iter().collect()),
    };
    let modules = policy.get("modules").cloned().unwrap_or(Value::Null);
    Output {
        schema_version: SCHEMA_VERSION,
        entries,
        policy,
        modules,
        archive: None,
        volumes: manifest.volumes.clone(),
    }
}

/// Everything a listing shows comes from the file being inspected: escaped and bounded (see `display`).
fn u(text: &str) -> String {
    cvmforge::display::untrusted(text).to_string()
}

fn render(path: &Path, output: &Output) -> String {
    let mut out = match &output.archive {
        None => format!("manifest: {}\n\n", u(&path.to_string_lossy())),
        Some(a) => format!(
            "{}: {} ({} bytes, compression {}, sha256 {})\n\n",
            a.kind,
            u(&path.to_string_lossy()),
            a.size,
            a.compression,
            a.sha256
        ),
    };
    let width = output.entries.iter().map(|e| e.size.to_string().len()).max().unwrap_or(4).max(4);
    out.push_str(&format!("{:<9} {:<4} {:>width$}  {:<12}  PATH\n", "TYPE", "MODE", "SIZE", "SHA256"));
    for e in &output.entries {
        let sha = e.sha256.as_deref().map_or("-", |s| s.get(..12).unwrap_or(s));
        let link = e.target.as_deref().map(|t| format!(" -> {}", u(t))).unwrap_or_default();
        let (kind, mode, sha) = (u(&e.kind), u(&e.mode), u(sha));
        out.push_str(&format!("{kind:<9} {mode:<4} {:>width$}  {sha:<12}  {}{link}\n", e.size, u(&e.path)));
    }
    out.push_str(&format!("{} entries\n", output.entries.len()));
    if output.archive.as_ref().is_some_and(|a| a.kind == "initrd") {
        // An initrd carries no verdict: the manifest of its build does.
        return out;
    }
    out.push('\n');
    out.push_str(&render_policy(&output.policy));
    out.push_str(&render_modules(&output.modules));
    out.push_str(&render_volumes(&output.volumes));
    out
}

/// The data volumes: where each is mounted, its dm-verity root hash, and its files.
fn render_volumes(volumes: &[cvmforge::manifest::VolumeRecord]) -> String {
    let mut out = String::new();
    for v in volumes {
        out.push_str(&format!(
            "\nvolume {}: {} on {} ({}), {} files, {} bytes; {} data + {} hash blocks, dm-verity root {}\n",
            u(&v.name),
            u(&v.image),
            u(&v.mount),
            u(&v.mount_flags.join(",")),
            v.files.len(),
            v.content_size,
            v.data_blocks,
            v.hash_blocks,
            u(&v.root_hash)
        ));
        for f in &v.files {
            out.push_str(&format!(
                "  {:>12}  {}  {}\n",
                f.size,
                u(f.sha256.get(..12).unwrap_or(&f.sha256)),
                u(&f.path)
            ));
        }
    }
    out
}

fn render_policy(policy: &Value) -> String {
    let Some(verdict) = policy.get("verdict").and_then(Value::as_str) else {
        return "sealing policy: not checked (the manifest has no sealing section)\n".into();
    };
    let text = |v: &Value, key: &str| u(v.get(key).and_then(Value::as_str).unwrap_or("?"));
    let list = |key: &str| policy.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
    let mut out = format!("sealing policy: {}\n", u(verdict));
    if let Some(source) = policy.pointer("/kernel_config/source").and_then(Value::as_str) {
        out.push_str(&format!("kernel config: {}\n", u(source)));
    }
    let violations = list("violations");
    if !violations.is_empty() {
        out.push_str(&format!("violations ({}):\n", violations.len()));
        for v in &violations {
            out.push_str(&format!("  - {}: {}\n", text(v, "item"), text(v, "detail")));
        }
    }
    let waivers = list("waivers_applied");
    if !waivers.is_empty() {
        out.push_str(&format!("waivers applied ({}):\n", waivers.len()));
        for w in &waivers {
            out.push_str(&format!("  - {}: {}\n", text(w, "item"), text(w, "reason")));
            for v in w.get("waived").and_then(Value::as_array).into_iter().flatten() {
                out.push_str(&format!("      waived: {}\n", text(v, "detail")));
            }
        }
    }
    for w in list("warnings") {
        out.push_str(&format!("warning: {}: {}\n", text(&w, "item"), text(&w, "detail")));
    }
    out
}

fn render_modules(modules: &Value) -> String {
    let Some(list) = modules.get("modules").and_then(Value::as_array) else {
        return String::new();
    };
    let mut out = format!("kernel modules ({}, in load order):\n", list.len());
    for m in list {
        let text = |key: &str| u(m.get(key).and_then(Value::as_str).unwrap_or("?"));
        out.push_str(&format!("  - {} -> {}\n", text("name"), text("dest")));
    }
    out
}
