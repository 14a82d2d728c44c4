//! `cvmforge inspect`: lists the initrd entries recorded in a build's `manifest.json` and its sealing-policy verdict
//! with every violation and waiver.
//!
//! Inspecting an initrd or a bundle directly needs the archive reader and is not available yet; such paths are
//! recognised by their first bytes and refused with a clear error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;
use serde_json::Value;

use super::{print_json, Hinted, Ui};

/// Version of the `--json` output.
const SCHEMA_VERSION: u32 = 1;
/// Offset of the `ustar` magic in a tar header (POSIX.1-1988 ustar header, field `magic`).
const USTAR_MAGIC_OFFSET: usize = 257;

/// Arguments of this subcommand.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A build's `manifest.json` (an initrd or `.cvm.tar` bundle is recognised but not readable yet).
    pub path: PathBuf,
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
}

/// Reads the manifest and prints its entries and policy verdict.
pub fn run(args: Args, ui: &Ui) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&args.path).with_context(|| format!("cannot read `{}`", args.path.display()))?;
    if let Some(what) = archive_kind(&bytes) {
        return Err(anyhow::Error::new(Hinted {
            message: format!(
                "`{}` looks like {what}: inspecting initrd/bundle files needs the archive reader (not merged yet)",
                args.path.display()
            ),
            hint: "inspect the build's `manifest.json` instead (it lists every initrd entry and the sealing verdict)"
                .into(),
        }));
    }
    let manifest: Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("`{}` is not a manifest: not valid JSON", args.path.display()))?;
    let output =
        read_manifest(&manifest).with_context(|| format!("`{}` is not a cvmforge manifest", args.path.display()))?;
    if ui.json {
        print_json(&output)?;
    } else {
        print!("{}", render(&args.path, &output));
    }
    Ok(ExitCode::SUCCESS)
}

/// Recognises an initrd (compressed or plain newc cpio) or a tar bundle by its first bytes.
fn archive_kind(bytes: &[u8]) -> Option<&'static str> {
    const MAGICS: [(&[u8], &str); 5] = [
        (b"\x1f\x8b", "a gzip-compressed initrd"),
        (b"\x28\xb5\x2f\xfd", "a zstd-compressed initrd"),
        (b"\xfd7zXZ\x00", "an xz-compressed initrd"),
        (b"070701", "an uncompressed newc initrd"),
        (b"070702", "an uncompressed newc initrd"),
    ];
    if let Some((_, what)) = MAGICS.iter().find(|(magic, _)| bytes.starts_with(magic)) {
        return Some(what);
    }
    let ustar = bytes.get(USTAR_MAGIC_OFFSET..USTAR_MAGIC_OFFSET + 5).is_some_and(|m| m == b"ustar");
    ustar.then_some("a tar bundle")
}

/// Extracts the entries and the sealing section, naming the first field that is missing or of the wrong type.
fn read_manifest(manifest: &Value) -> anyhow::Result<Output> {
    let entries = manifest
        .pointer("/initrd/entries")
        .and_then(Value::as_array)
        .context("field `initrd.entries` is missing or not a list")?;
    let entries = entries.iter().enumerate().map(|(i, e)| entry_row(i, e)).collect::<anyhow::Result<Vec<_>>>()?;
    let policy = match manifest.get("sealing") {
        Some(Value::Object(map)) if map.is_empty() => Value::Null,
        Some(v @ Value::Object(_)) | Some(v @ Value::Null) => v.clone(),
        None => Value::Null,
        Some(_) => anyhow::bail!("field `sealing` is not an object"),
    };
    let modules = policy.get("modules").or_else(|| manifest.get("modules")).cloned().unwrap_or(Value::Null);
    Ok(Output { schema_version: SCHEMA_VERSION, entries, policy, modules })
}

fn entry_row(index: usize, entry: &Value) -> anyhow::Result<EntryRow> {
    let field = |name: &str| format!("field `initrd.entries[{index}].{name}`");
    let string = |name: &str| -> anyhow::Result<String> {
        let value = entry.get(name).and_then(Value::as_str);
        Ok(value.with_context(|| format!("{} is missing or not a string", field(name)))?.to_string())
    };
    let optional = |name: &str| -> anyhow::Result<Option<String>> {
        match entry.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => anyhow::bail!("{} is not a string", field(name)),
        }
    };
    let size = entry.get("size").and_then(Value::as_u64);
    Ok(EntryRow {
        path: string("path")?,
        kind: string("type")?,
        mode: string("mode")?,
        size: size.with_context(|| format!("{} is missing or not a non-negative integer", field("size")))?,
        sha256: optional("sha256")?,
        target: optional("target")?,
    })
}

fn render(path: &Path, output: &Output) -> String {
    let mut out = format!("manifest: {}\n\n", path.display());
    let width = output.entries.iter().map(|e| e.size.to_string().len()).max().unwrap_or(4).max(4);
    out.push_str(&format!("{:<9} {:<4} {:>width$}  {:<12}  PATH\n", "TYPE", "MODE", "SIZE", "SHA256"));
    for e in &output.entries {
        let sha = e.sha256.as_deref().map_or("-", |s| s.get(..12).unwrap_or(s));
        let link = e.target.as_deref().map(|t| format!(" -> {t}")).unwrap_or_default();
        out.push_str(&format!("{:<9} {:<4} {:>width$}  {:<12}  {}{link}\n", e.kind, e.mode, e.size, sha, e.path));
    }
    out.push_str(&format!("{} entries\n\n", output.entries.len()));
    out.push_str(&render_policy(&output.policy));
    out.push_str(&render_modules(&output.modules));
    out
}

fn render_policy(policy: &Value) -> String {
    let Some(verdict) = policy.get("verdict").and_then(Value::as_str) else {
        return "sealing policy: not checked (the manifest has no sealing section)\n".into();
    };
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or("?").to_string();
    let list = |key: &str| policy.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
    let mut out = format!("sealing policy: {verdict}\n");
    if let Some(source) = policy.pointer("/kernel_config/source").and_then(Value::as_str) {
        out.push_str(&format!("kernel config: {source}\n"));
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
        let text = |key: &str| m.get(key).and_then(Value::as_str).unwrap_or("?").to_string();
        out.push_str(&format!("  - {} -> {}\n", text("name"), text("dest")));
    }
    out
}
