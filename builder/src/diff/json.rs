//! Manifest differences, generic over `serde_json::Value`, and why a launch measurement changed.
//!
//! Objects are compared by key; arrays of objects are matched by an identity key (the first of `role`, `name`,
//! `path`, `shape`, `id` that every element on both sides has, with unique values), or, under `measurements`, by their
//! scalar shape fields, so that a finding reads `inputs[role=kernel].sha256` rather than `inputs[2].sha256`.
//! A changed measurement is explained by the [`FEEDS`] table: which inputs and shape fields it depends on, per
//! `docs/specs/snp-launch-digest.md` and `docs/specs/tdx-measurement.md`.

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::collections::BTreeSet;

use serde_json::Value;

use super::finding::{join, short, Finding, FindingKind};

/// Keys that identify an element of an array of objects, in order of preference.
const IDENTITY_KEYS: [&str; 5] = ["role", "name", "path", "shape", "id"];
/// Fields that hold a measurement value rather than describe the VM shape.
const MEASURED: [&str; 8] = ["digest", "launch_digest", "mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "id_block"];

/// Which inputs one measurement depends on.
pub struct Feed {
    /// `snp` or `tdx`.
    pub platform: &'static str,
    /// The measurement field (`digest`, `mrtd`, `rtmr0`...).
    pub field: &'static str,
    /// Input files (canonical names: `kernel`, `initrd`, `cmdline`, `firmware-snp`, `firmware-tdx`, `acpi`).
    pub sources: &'static [&'static str],
    /// Fields of the VM shape.
    pub shape: &'static [&'static str],
    /// A caveat, with the spec that says so.
    pub note: &'static str,
}

/// The measurement dependency table.
pub const FEEDS: [Feed; 6] = [
    Feed {
        platform: "snp",
        field: "digest",
        sources: &["firmware-snp", "kernel", "initrd", "cmdline"],
        shape: &["vcpus", "vcpu_type", "vcpu_sig", "vmm_type", "guest_features"],
        note: "the OVMF pages, the hashes of kernel, initrd and cmdline, and one VMSA per vCPU (docs/specs/snp-launch-digest.md)",
    },
    Feed {
        platform: "tdx",
        field: "mrtd",
        sources: &["firmware-tdx"],
        shape: &[],
        note: "the TDVF sections measured at TD build time (docs/specs/tdx-measurement.md)",
    },
    Feed {
        platform: "tdx",
        field: "rtmr0",
        sources: &["firmware-tdx", "acpi"],
        shape: &["memory", "memory_mib", "memory_mb", "vcpus"],
        note: "TD HOB (RAM size), secure-boot variables and ACPI tables (docs/specs/tdx-measurement.md)",
    },
    Feed {
        platform: "tdx",
        field: "rtmr1",
        sources: &["kernel", "initrd"],
        shape: &["memory", "memory_mib", "memory_mb", "qemu_version"],
        note: "the kernel's Authenticode hash; QEMU <= 10.1 patches the setup header first, so RAM and initrd size also count (docs/specs/tdx-measurement.md)",
    },
    Feed {
        platform: "tdx",
        field: "rtmr2",
        sources: &["cmdline", "initrd"],
        shape: &[],
        note: "the EFI LoadOptions (cmdline) and the initrd hash, Linux >= 6.9 (docs/specs/tdx-measurement.md)",
    },
    Feed { platform: "tdx", field: "rtmr3", sources: &[], shape: &[], note: "zero at launch; only the guest extends it" },
];

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
    Select(String),
}

fn render(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if out.is_empty() => out.push_str(k),
            Seg::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
            Seg::Select(s) => out.push_str(&format!("[{s}]")),
        }
    }
    out
}

/// Parses `bytes` as a JSON object (a manifest), or `None`.
pub(crate) fn parse_object(bytes: &[u8]) -> Option<Value> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'{' {
        return None;
    }
    serde_json::from_slice::<Value>(bytes).ok().filter(Value::is_object)
}

enum Change {
    Added(Value),
    Removed(Value),
    Changed(Value, Value),
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The findings for two JSON documents; `prefix` is the member name (empty for bare manifests).
pub(crate) fn diff_documents(prefix: &str, a: &Value, b: &Value) -> Vec<Finding> {
    let mut changes = Vec::new();
    walk(&mut Vec::new(), a, b, &mut changes);
    changes.iter().map(|(path, change)| finding(prefix, path, change, &changes)).collect()
}

fn walk(path: &mut Vec<Seg>, a: &Value, b: &Value, out: &mut Vec<(Vec<Seg>, Change)>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for key in keys {
                path.push(Seg::Key(key.clone()));
                match (x.get(key), y.get(key)) {
                    (Some(va), Some(vb)) => walk(path, va, vb, out),
                    (Some(va), None) => out.push((path.clone(), Change::Removed(va.clone()))),
                    (None, Some(vb)) => out.push((path.clone(), Change::Added(vb.clone()))),
                    (None, None) => {}
                }
                path.pop();
            }
        }
        (Value::Array(x), Value::Array(y)) => walk_array(path, x, y, out),
        _ if a != b => out.push((path.clone(), Change::Changed(a.clone(), b.clone()))),
        _ => {}
    }
}

fn walk_array(path: &mut Vec<Seg>, x: &[Value], y: &[Value], out: &mut Vec<(Vec<Seg>, Change)>) {
    let under_measurements = matches!(path.first(), Some(Seg::Key(k)) if k == "measurements");
    let Some(ids) = identities(x, y, under_measurements) else {
        for i in 0..x.len().max(y.len()) {
            path.push(Seg::Index(i));
            match (x.get(i), y.get(i)) {
                (Some(va), Some(vb)) => walk(path, va, vb, out),
                (Some(va), None) => out.push((path.clone(), Change::Removed(va.clone()))),
                (None, Some(vb)) => out.push((path.clone(), Change::Added(vb.clone()))),
                (None, None) => {}
            }
            path.pop();
        }
        return;
    };
    let (ia, ib) = ids;
    for (id, va) in ia.iter().zip(x) {
        path.push(Seg::Select(id.clone()));
        match ib.iter().position(|other| other == id).and_then(|p| y.get(p)) {
            Some(vb) => walk(path, va, vb, out),
            None => out.push((path.clone(), Change::Removed(va.clone()))),
        }
        path.pop();
    }
    for (id, vb) in ib.iter().zip(y).filter(|(id, _)| !ia.contains(id)) {
        path.push(Seg::Select(id.clone()));
        out.push((path.clone(), Change::Added(vb.clone())));
        path.pop();
    }
}

/// Selector strings for every element of both arrays, or `None` if the elements cannot be identified uniquely.
fn identities(x: &[Value], y: &[Value], composite: bool) -> Option<(Vec<String>, Vec<String>)> {
    if x.is_empty() && y.is_empty() {
        return None;
    }
    let all = || x.iter().chain(y);
    let key = IDENTITY_KEYS.iter().find(|k| all().all(|v| v.get(**k).is_some()));
    let ident = |v: &Value| -> Option<String> {
        match key {
            Some(k) => match v.get(*k)? {
                Value::Object(shape) => Some(scalars(shape.iter())),
                other => Some(format!("{k}={}", show(other))),
            },
            None if composite => {
                let fields = v.as_object()?.iter().filter(|(k, _)| !MEASURED.contains(&k.as_str()));
                Some(scalars(fields)).filter(|s| !s.is_empty())
            }
            None => None,
        }
    };
    let ia: Vec<String> = x.iter().map(ident).collect::<Option<_>>()?;
    let ib: Vec<String> = y.iter().map(ident).collect::<Option<_>>()?;
    let unique = |ids: &[String]| ids.iter().collect::<BTreeSet<_>>().len() == ids.len();
    (unique(&ia) && unique(&ib)).then_some((ia, ib))
}

/// `k=v,k=v` over the scalar fields.
fn scalars<'a>(fields: impl Iterator<Item = (&'a String, &'a Value)>) -> String {
    fields
        .filter(|(_, v)| !v.is_object() && !v.is_array())
        .map(|(k, v)| format!("{k}={}", show(v)))
        .collect::<Vec<_>>()
        .join(",")
}

fn finding(prefix: &str, path: &[Seg], change: &Change, all: &[(Vec<Seg>, Change)]) -> Finding {
    let full = join(prefix, &render(path));
    let field = match path.last() {
        Some(Seg::Key(k)) => Some(k.clone()),
        _ => None,
    };
    let mut f = match change {
        Change::Added(v) => Finding { b: Some(show(v)), field, ..Finding::new(FindingKind::Added, &full) },
        Change::Removed(v) => Finding { a: Some(show(v)), field, ..Finding::new(FindingKind::Removed, &full) },
        Change::Changed(x, y) => {
            Finding { a: Some(show(x)), b: Some(show(y)), field, ..Finding::new(FindingKind::Changed, &full) }
        }
    };
    if let (Some(feed), Change::Changed(..)) = (measurement(path), change) {
        f.kind = FindingKind::Measurement;
        f.detail = explain(path, feed, change, all);
    } else {
        let sources = sources_of(path);
        let fed: Vec<String> = FEEDS
            .iter()
            .filter(|feed| feed.sources.iter().any(|s| sources.contains(s)))
            .map(|feed| format!("{}.{}", feed.platform, feed.field))
            .collect();
        if let ([Seg::Key(v), Seg::Select(volume), rest @ ..], false) = (path, fed.is_empty()) {
            if v == "volumes" {
                let file = match rest {
                    [Seg::Key(files), Seg::Select(file), ..] if files == "files" => format!(", file {file}"),
                    _ => String::new(),
                };
                f.detail.push(format!(
                    "data volume {volume}{file}: its root hash is on the command line (cvm.volume=), which feeds the measurements {}",
                    fed.join(", ")
                ));
                return f;
            }
        }
        if !fed.is_empty() {
            f.detail.push(format!("{} feeds the measurements {}", sources.join(", "), fed.join(", ")));
        }
    }
    f
}

/// The feed for a path `measurements.<platform>[...].<field>`.
fn measurement(path: &[Seg]) -> Option<&'static Feed> {
    match path {
        [Seg::Key(m), Seg::Key(platform), _, Seg::Key(field)] if m == "measurements" => {
            FEEDS.iter().find(|f| f.platform == platform && f.field == field)
        }
        _ => None,
    }
}

/// The canonical input names a changed path belongs to.
fn sources_of(path: &[Seg]) -> Vec<&'static str> {
    match path {
        [Seg::Key(k), Seg::Select(sel), ..] if k == "inputs" || k == "outputs" => {
            let value = sel.split_once('=').map_or(sel.as_str(), |(_, v)| v);
            canonical(value)
        }
        // The manifest records the command line under `kernel.cmdline`, but it is measured on its own.
        [Seg::Key(r), Seg::Key(k), ..] if (r == "kernel" || r == "recipe") && k == "cmdline" => vec!["cmdline"],
        // A data volume reaches the measurements through its root hash on the command line (`cvm.volume=`).
        [Seg::Key(k), ..] if k == "volumes" => vec!["cmdline"],
        [Seg::Key(k), ..] if k == "initrd" || k == "kernel" || k == "cmdline" => canonical(k),
        _ => Vec::new(),
    }
}

/// Maps an input role or output name onto the names used in [`FEEDS`].
fn canonical(name: &str) -> Vec<&'static str> {
    let n = name.to_ascii_lowercase();
    let has = |s: &str| n.contains(s);
    if has("cvm.tar") || has("manifest") {
        return Vec::new();
    }
    // The build's input roles are `kernel`, `init`, `file:<dst>`, `firmware:snp`, `firmware:tdx`
    // (`build/inputs.rs`); `init` and every `file:` go into the initrd.
    if has("initrd") || has("initramfs") || n == "init" || n.starts_with("file:") {
        return vec!["initrd"];
    }
    if has("cmdline") || has("command") {
        return vec!["cmdline"];
    }
    if has("kernel") || has("vmlinuz") || has("bzimage") {
        return vec!["kernel"];
    }
    if has("acpi") {
        return vec!["acpi"];
    }
    if has("firmware") || has("ovmf") || has("tdvf") {
        let snp = has("snp") || has("sev");
        let tdx = has("tdx") || has("tdvf");
        return match (snp, tdx) {
            (true, false) => vec!["firmware-snp"],
            (false, true) => vec!["firmware-tdx"],
            _ => vec!["firmware-snp", "firmware-tdx"],
        };
    }
    Vec::new()
}

/// Why the measurement at `path` changed: its changed inputs and shape fields, first line a sentence.
fn explain(path: &[Seg], feed: &Feed, change: &Change, all: &[(Vec<Seg>, Change)]) -> Vec<String> {
    let mut causes = Vec::new();
    for source in feed.sources {
        let mut hits = all.iter().filter(|(p, _)| sources_of(p).contains(source));
        if let Some((p, c)) = hits.next() {
            // `inputs[role=kernel].sha256` reads as "kernel (sha256 ...)"; other paths are spelled out.
            let obvious = render(p).contains(&format!("={source}]"));
            causes.push(format!("{source} ({})", describe_change(p, c, !obvious)));
        }
    }
    let element = path.get(..3).unwrap_or_default();
    for (p, c) in all.iter().filter(|(p, _)| p.len() > 3 && p.starts_with(element)) {
        let shape_field = p.iter().skip(3).any(|s| matches!(s, Seg::Key(k) if feed.shape.contains(&k.as_str())));
        if shape_field {
            causes.push(format!("shape {}", describe_change(p.get(3..).unwrap_or_default(), c, false)));
        }
    }
    let first = if causes.is_empty() {
        let version = all
            .iter()
            .find(|(p, _)| matches!(p.as_slice(), [Seg::Key(k)] if k == "cvmforge_version"))
            .map(|(p, c)| format!(" ({})", describe_change(p, c, false)))
            .unwrap_or_default();
        format!(
            "none of its recorded inputs changed; the measurement code or an unrecorded parameter differs (compare cvmforge_version{version})"
        )
    } else {
        format!("its inputs {} changed", causes.join(", "))
    };
    let mut inputs: Vec<String> = feed.sources.iter().map(|s| s.to_string()).collect();
    inputs.extend(feed.shape.iter().map(|s| format!("shape {s}")));
    let mut detail = vec![first];
    if let Change::Changed(a, b) = change {
        detail.push(format!("A: {}", show(a)));
        detail.push(format!("B: {}", show(b)));
    }
    detail.push(format!("{}.{} is computed from {}: {}", feed.platform, feed.field, inputs.join(", "), feed.note));
    detail
}

/// `sha256 aa… → bb…` for a change at `path` (with the whole path instead of its last key when `full`).
fn describe_change(path: &[Seg], change: &Change, full: bool) -> String {
    let rendered = render(path);
    let name = match path.last() {
        Some(Seg::Key(k)) if !full => k.clone(),
        _ => rendered.clone(),
    };
    match change {
        Change::Changed(a, b) => format!("{name} {} → {}", short(&show(a)), short(&show(b))),
        Change::Added(_) => format!("{rendered} added"),
        Change::Removed(_) => format!("{rendered} removed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arrays_of_objects_match_by_identity_key() {
        let a = json!({"inputs": [{"role": "kernel", "sha256": "aa"}, {"role": "cmdline", "sha256": "cc"}]});
        let b = json!({"inputs": [{"role": "cmdline", "sha256": "cc"}, {"role": "kernel", "sha256": "bb"}]});
        let f = diff_documents("", &a, &b);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].path, "inputs[role=kernel].sha256");
        assert_eq!((f[0].a.as_deref(), f[0].b.as_deref()), (Some("aa"), Some("bb")));
    }

    #[test]
    fn build_roles_map_onto_measurement_inputs() {
        assert_eq!(canonical("init"), ["initrd"]);
        assert_eq!(canonical("file:/etc/app.toml"), ["initrd"]);
        assert_eq!(canonical("firmware:snp"), ["firmware-snp"]);
        assert_eq!(canonical("firmware:tdx"), ["firmware-tdx"]);
        assert_eq!(canonical("firmware-snp.fd"), ["firmware-snp"]);
        assert_eq!(canonical("kernel"), ["kernel"]);
        let key = |k: &str| Seg::Key(k.to_string());
        assert_eq!(sources_of(&[key("kernel"), key("cmdline")]), ["cmdline"]);
        assert_eq!(sources_of(&[key("kernel"), key("version")]), ["kernel"]);
        assert_eq!(sources_of(&[key("inputs"), Seg::Select("role=init".into()), key("sha256")]), ["initrd"]);
    }

    #[test]
    fn a_changed_init_binary_explains_the_snp_digest() {
        let doc = |init: &str, digest: &str| json!({"inputs": [{"role": "init", "sha256": init}], "measurements": {"snp": [{"vcpus": 1, "digest": digest}]}});
        let f = diff_documents("manifest.json", &doc(&"a".repeat(64), "d1"), &doc(&"b".repeat(64), "d2"));
        let snp = f.iter().find(|f| f.kind == FindingKind::Measurement).unwrap();
        assert_eq!(snp.path, "manifest.json:measurements.snp[vcpus=1].digest");
        assert_eq!(snp.detail[0], "its inputs initrd (inputs[role=init].sha256 aaaaaaaaaaaa… → bbbbbbbbbbbb…) changed");
    }

    #[test]
    fn arrays_without_identity_compare_by_index() {
        let f = diff_documents("m.json", &json!({"x": [1, 2]}), &json!({"x": [1, 3, 4]}));
        let paths: Vec<_> = f.iter().map(|f| (f.kind, f.path.as_str())).collect();
        assert_eq!(paths, [(FindingKind::Changed, "m.json:x[1]"), (FindingKind::Added, "m.json:x[2]")]);
    }
}
