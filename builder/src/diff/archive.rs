//! Structural comparison of containers: bundles and directories (by member), initrds (by cpio entry and field).

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::finding::{join, short, Finding, FindingKind, Report, SCHEMA_VERSION};
use super::{json, kernel, text, DiffError};
use crate::format::tar::bundle::keep_members_whole;
use crate::format::{
    read_bundle, read_initrd, sniff, Bundle, Container, CpioEntry, EntryType, Initrd, Limits, TarEntry,
};

/// Files by name (a directory's or a bundle's).
pub(crate) type Members<'a> = BTreeMap<String, &'a [u8]>;

/// Collects findings while walking two inputs.
pub(crate) struct Ctx {
    limits: Limits,
    findings: Vec<Finding>,
    /// Metadata-field findings of the container being walked, grouped by [`Ctx::flush_fields`].
    fields: Vec<Finding>,
}

/// A field change shared by more than this many entries is reported once for the container.
const GROUP_MIN: usize = 3;
/// (field, value in A, value in B) of a metadata change.
type FieldChange = (Option<String>, Option<String>, Option<String>);

/// Entry paths listed in a grouped finding.
const GROUP_LIST: usize = 10;

fn sha(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn len(bytes: &[u8]) -> u64 {
    u64::try_from(bytes.len()).unwrap_or(u64::MAX)
}

fn is_initrd(c: Container) -> bool {
    matches!(c, Container::Gzip | Container::Zstd | Container::Cpio)
}

/// Entries keyed by (path, occurrence), so that duplicate names (legal in cpio) still pair up.
fn keyed<T>(items: &[T], path: impl Fn(&T) -> &str) -> BTreeMap<(String, u32), (usize, &T)> {
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    let mut map = BTreeMap::new();
    for (position, item) in items.iter().enumerate() {
        let count = seen.entry(path(item).to_string()).or_insert(0);
        *count += 1;
        map.insert((path(item).to_string(), *count), (position, item));
    }
    map
}

fn key_name(prefix: &str, key: &(String, u32)) -> String {
    let name = if key.1 > 1 { format!("{} (occurrence {})", key.0, key.1) } else { key.0.clone() };
    join(prefix, &name)
}

impl Ctx {
    pub(crate) fn new(limits: Limits) -> Self {
        Ctx { limits, findings: Vec::new(), fields: Vec::new() }
    }

    pub(crate) fn into_report(self) -> Report {
        Report { schema_version: SCHEMA_VERSION, identical: self.findings.is_empty(), findings: self.findings }
    }

    /// Compares two files of any kind; always adds at least one finding when the bytes differ.
    pub(crate) fn blob(&mut self, path: &str, a: &[u8], b: &[u8]) -> Result<(), DiffError> {
        if a == b {
            return Ok(());
        }
        let before = self.findings.len();
        // Two bare files (not members of a build) have no name of their own in findings.
        let shown = if path.is_empty() { "(file)" } else { path };
        match (sniff(a), sniff(b)) {
            (Container::Tar, Container::Tar) => {
                let x = self.read_bundle(path, "A", a)?;
                let y = self.read_bundle(path, "B", b)?;
                self.bundle(path, &x, &y, (a, b), None)?;
            }
            (ca, cb) if is_initrd(ca) && is_initrd(cb) => self.initrd(path, a, b)?,
            _ => {
                if let (Some(x), Some(y)) = (json::parse_object(a), json::parse_object(b)) {
                    self.findings.extend(json::diff_documents(path, &x, &y));
                } else if kernel::is_bzimage(a) && kernel::is_bzimage(b) {
                    // Release and config first; the byte-level finding below still says where the bytes differ.
                    self.findings.extend(kernel::diff_kernels(shown, a, b));
                    self.findings.push(text::content_finding(
                        shown,
                        Some(a),
                        Some(b),
                        &sha(a),
                        &sha(b),
                        len(a),
                        len(b),
                    ));
                }
            }
        }
        if self.findings.len() == before {
            self.findings.push(text::content_finding(shown, Some(a), Some(b), &sha(a), &sha(b), len(a), len(b)));
        }
        Ok(())
    }

    fn read_bundle(&self, path: &str, side: &str, bytes: &[u8]) -> Result<Bundle, DiffError> {
        read_bundle(bytes, Some(len(bytes)), &keep_members_whole(&self.limits))
            .map_err(|source| DiffError::Unpack { what: format!("{side}'s bundle `{path}`"), source })
    }

    /// Compares the files of two output directories or bundles by name.
    pub(crate) fn members(
        &mut self,
        prefix: &str,
        a: &BTreeMap<String, &[u8]>,
        b: &BTreeMap<String, &[u8]>,
    ) -> Result<(), DiffError> {
        for (name, x) in a {
            let path = join(prefix, name);
            match b.get(name) {
                None => self
                    .findings
                    .push(Finding { a: Some(describe_blob(x)), ..Finding::new(FindingKind::Removed, &path) }),
                Some(y) if sniff(x) == Container::Tar && sniff(y) == Container::Tar && x != y => {
                    let bx = self.read_bundle(&path, "A", x)?;
                    let by = self.read_bundle(&path, "B", y)?;
                    self.bundle(&path, &bx, &by, (x, y), Some((a, b)))?;
                }
                Some(y) => self.blob(&path, x, y)?,
            }
        }
        for (name, y) in b.iter().filter(|(name, _)| !a.contains_key(*name)) {
            self.findings
                .push(Finding { b: Some(describe_blob(y)), ..Finding::new(FindingKind::Added, &join(prefix, name)) });
        }
        Ok(())
    }

    /// Compares two bundles entry by entry. With `loose` (the directory the bundle sits in), members equal to the
    /// loose file of the same name are not diffed twice.
    pub(crate) fn bundle(
        &mut self,
        path: &str,
        x: &Bundle,
        y: &Bundle,
        raw: (&[u8], &[u8]),
        loose: Option<(&Members<'_>, &Members<'_>)>,
    ) -> Result<(), DiffError> {
        let before = self.findings.len();
        let outer_fields = std::mem::take(&mut self.fields);
        let shown = if path.is_empty() { "(bundle)" } else { path };
        let (ka, kb) = (keyed(&x.entries, |e| &e.path), keyed(&y.entries, |e| &e.path));
        let mut covered = Vec::new();
        for (key, (_, ea)) in &ka {
            let entry_path = key_name(path, key);
            let Some((_, eb)) = kb.get(key) else {
                self.findings
                    .push(Finding { a: Some(describe_tar(ea)), ..Finding::new(FindingKind::Removed, &entry_path) });
                continue;
            };
            self.tar_fields(&entry_path, ea, eb);
            if let (Some(ca), Some(cb)) = (ea.content.as_deref(), eb.content.as_deref()) {
                let same_as_loose = |side: Option<&BTreeMap<String, &[u8]>>, c: &[u8]| {
                    side.and_then(|m| m.get(&key.0)).is_some_and(|l| *l == c)
                };
                if ca != cb && same_as_loose(loose.map(|l| l.0), ca) && same_as_loose(loose.map(|l| l.1), cb) {
                    covered.push(key.0.clone());
                } else {
                    self.blob(&entry_path, ca, cb)?;
                }
            }
        }
        for (key, (_, eb)) in kb.iter().filter(|(k, _)| !ka.contains_key(*k)) {
            self.findings
                .push(Finding { b: Some(describe_tar(eb)), ..Finding::new(FindingKind::Added, &key_name(path, key)) });
        }
        self.flush_fields(shown, outer_fields, before);
        self.order(shown, &ka, &kb);
        if !covered.is_empty() {
            let f = Finding::changed(
                FindingKind::Content,
                shown,
                "sha256",
                hex::encode(sha(raw.0)),
                hex::encode(sha(raw.1)),
            );
            self.findings.push(f.with_detail(vec![format!(
                "its members {} differ exactly as the loose files of the same names do (see those findings)",
                covered.join(", ")
            )]));
        }
        if self.findings.len() == before {
            let f = Finding::changed(
                FindingKind::ArchiveBytes,
                shown,
                "sha256",
                hex::encode(sha(raw.0)),
                hex::encode(sha(raw.1)),
            );
            self.findings.push(f.with_detail(vec![
                "every entry's header fields and content are identical; the tar framing differs (padding, end blocks, extension headers)".to_string(),
            ]));
        }
        Ok(())
    }

    fn tar_fields(&mut self, path: &str, a: &TarEntry, b: &TarEntry) {
        let fields: [(&str, String, String); 8] = [
            ("type", a.file_type.to_string(), b.file_type.to_string()),
            ("mode", format!("{:04o}", a.mode), format!("{:04o}", b.mode)),
            ("uid", a.uid.to_string(), b.uid.to_string()),
            ("gid", a.gid.to_string(), b.gid.to_string()),
            ("uname", a.uname.clone(), b.uname.clone()),
            ("gname", a.gname.clone(), b.gname.clone()),
            ("mtime", a.mtime.to_string(), b.mtime.to_string()),
            ("link target", a.link_target.clone().unwrap_or_default(), b.link_target.clone().unwrap_or_default()),
        ];
        self.push_fields(path, fields);
    }

    /// Moves the collected field findings into the report, replacing every change shared by more than
    /// [`GROUP_MIN`] entries (one mtime for all files, a umask) by one finding on the container; restores `outer`.
    /// The findings from index `from` on (this container's entries) are then ordered by path, so that each entry's
    /// findings stay together.
    fn flush_fields(&mut self, container: &str, outer: Vec<Finding>, from: usize) {
        let fields = std::mem::replace(&mut self.fields, outer);
        let mut groups: BTreeMap<FieldChange, Vec<String>> = BTreeMap::new();
        for f in &fields {
            groups.entry((f.field.clone(), f.a.clone(), f.b.clone())).or_default().push(f.path.clone());
        }
        let large =
            |f: &Finding| groups.get(&(f.field.clone(), f.a.clone(), f.b.clone())).is_some_and(|g| g.len() > GROUP_MIN);
        let single: Vec<Finding> = fields.iter().filter(|f| !large(f)).cloned().collect();
        self.findings.extend(single);
        if let Some(entries) = self.findings.get_mut(from..) {
            entries.sort_by(|x, y| x.path.cmp(&y.path));
        }
        for ((field, a, b), paths) in groups.iter().filter(|(_, paths)| paths.len() > GROUP_MIN) {
            let mut listed: Vec<String> = paths.iter().take(GROUP_LIST).map(|p| format!("`{p}`")).collect();
            if paths.len() > GROUP_LIST {
                listed.push(format!("and {} more", paths.len() - GROUP_LIST));
            }
            let f = Finding {
                field: field.clone(),
                a: a.clone(),
                b: b.clone(),
                ..Finding::new(FindingKind::Changed, container)
            };
            self.findings.push(f.with_detail(vec![format!("in {} entries: {}", paths.len(), listed.join(", "))]));
        }
    }

    fn push_fields<const N: usize>(&mut self, path: &str, fields: [(&str, String, String); N]) {
        for (field, va, vb) in fields {
            if va != vb {
                self.fields.push(Finding::changed(FindingKind::Changed, path, field, va, vb));
            }
        }
    }

    /// Reports the first position at which the common entries appear in a different order.
    fn order<T>(
        &mut self,
        path: &str,
        ka: &BTreeMap<(String, u32), (usize, T)>,
        kb: &BTreeMap<(String, u32), (usize, T)>,
    ) {
        let (oa, ob) = (common_order(ka, kb), common_order(kb, ka));
        if let Some(i) = oa.iter().zip(&ob).position(|(x, y)| x != y) {
            let (x, y) = (oa.get(i).map_or("", |k| k.0.as_str()), ob.get(i).map_or("", |k| k.0.as_str()));
            let f = Finding::changed(FindingKind::Order, path, "entry order", x.to_string(), y.to_string());
            self.findings.push(f.with_detail(vec![format!(
                "the {} entries present in both are in a different order: at position {i} A has `{x}`, B has `{y}`",
                oa.len()
            )]));
        }
    }

    /// Compares two initrds: compression, then (unless the cpio streams are identical) entry by entry.
    fn initrd(&mut self, path: &str, a: &[u8], b: &[u8]) -> Result<(), DiffError> {
        let read = |side: &str, bytes: &[u8]| {
            read_initrd(bytes, &self.limits)
                .map_err(|source| DiffError::Unpack { what: format!("{side}'s initrd `{}`", display(path)), source })
        };
        let (x, y) = (read("A", a)?, read("B", b)?);
        let target = display_path(path);
        self.compression(&target, &x, &y);
        if x.cpio_sha256 == y.cpio_sha256 {
            self.findings.push(same_cpio_finding(&target, &x, &y));
            return Ok(());
        }
        let before = self.findings.len();
        self.cpio_entries(path, &x.entries, &y.entries);
        if self.findings.len() == before {
            let f = Finding::changed(
                FindingKind::ArchiveBytes,
                &target,
                "cpio sha256",
                hex::encode(x.cpio_sha256),
                hex::encode(y.cpio_sha256),
            );
            self.findings.push(f.with_detail(vec![format!(
                "every entry is identical; the cpio framing differs (padding, trailer, or concatenated archives: A has {}, B has {})",
                x.archives, y.archives
            )]));
        }
        Ok(())
    }

    fn compression(&mut self, path: &str, x: &Initrd, y: &Initrd) {
        let (ax, ay) = (x.compression.algorithm(), y.compression.algorithm());
        if ax != ay {
            self.findings.push(Finding::changed(FindingKind::Compression, path, "compression", ax.into(), ay.into()));
            return;
        }
        let (fx, fy) = (x.compression.fields(), y.compression.fields());
        for (name, vx) in &fx {
            let vy = fy.get(name).cloned().unwrap_or_default();
            if *vx != vy {
                self.findings.push(Finding::changed(FindingKind::Compression, path, name, vx.clone(), vy));
            }
        }
    }

    fn cpio_entries(&mut self, path: &str, xs: &[CpioEntry], ys: &[CpioEntry]) {
        let before = self.findings.len();
        let outer_fields = std::mem::take(&mut self.fields);
        let (ka, kb) = (keyed(xs, |e| &e.path), keyed(ys, |e| &e.path));
        let mut inodes = Vec::new();
        for (key, (_, ea)) in &ka {
            let entry_path = key_name(path, key);
            let Some((_, eb)) = kb.get(key) else {
                self.findings
                    .push(Finding { a: Some(describe_cpio(ea)), ..Finding::new(FindingKind::Removed, &entry_path) });
                continue;
            };
            if ea.ino != eb.ino {
                inodes.push((entry_path.clone(), ea.ino, eb.ino));
            }
            self.cpio_fields(&entry_path, ea, eb);
        }
        for (key, (_, eb)) in kb.iter().filter(|(k, _)| !ka.contains_key(*k)) {
            self.findings
                .push(Finding { b: Some(describe_cpio(eb)), ..Finding::new(FindingKind::Added, &key_name(path, key)) });
        }
        self.flush_fields(&display_path(path), outer_fields, before);
        self.order(&display_path(path), &ka, &kb);
        if let Some((first, ia, ib)) = inodes.first() {
            let f = Finding::changed(
                FindingKind::Inodes,
                &display_path(path),
                "inode numbers",
                ia.to_string(),
                ib.to_string(),
            );
            self.findings.push(f.with_detail(vec![format!(
                "{} of the entries present in both have different inode numbers, the first being `{first}`; inodes are numbered in archive order, so an added or removed entry renumbers the ones after it",
                inodes.len()
            )]));
        }
    }

    fn cpio_fields(&mut self, path: &str, a: &CpioEntry, b: &CpioEntry) {
        let pair = |x: (u32, u32)| format!("{}:{}", x.0, x.1);
        let fields: [(&str, String, String); 10] = [
            ("type", a.file_type.to_string(), b.file_type.to_string()),
            ("mode", format!("{:04o}", a.permissions()), format!("{:04o}", b.permissions())),
            ("uid", a.uid.to_string(), b.uid.to_string()),
            ("gid", a.gid.to_string(), b.gid.to_string()),
            ("nlink", a.nlink.to_string(), b.nlink.to_string()),
            ("mtime", a.mtime.to_string(), b.mtime.to_string()),
            ("rdev", pair(a.rdev), pair(b.rdev)),
            ("dev", pair(a.dev), pair(b.dev)),
            ("check", a.check.to_string(), b.check.to_string()),
            ("link target", a.link_target.clone().unwrap_or_default(), b.link_target.clone().unwrap_or_default()),
        ];
        self.push_fields(path, fields);
        let symlinks = a.file_type == EntryType::Symlink && b.file_type == EntryType::Symlink;
        if a.sha256 != b.sha256 && !symlinks {
            self.findings.push(text::content_finding(
                path,
                a.content.as_deref(),
                b.content.as_deref(),
                &a.sha256,
                &b.sha256,
                a.size,
                b.size,
            ));
        }
    }
}

/// The finding for "the decompressed cpio is byte-identical, only the compressed stream differs".
fn same_cpio_finding(path: &str, x: &Initrd, y: &Initrd) -> Finding {
    let f = Finding::changed(
        FindingKind::CompressionBytes,
        path,
        "sha256",
        hex::encode(x.file_sha256),
        hex::encode(y.file_sha256),
    );
    f.with_detail(vec![
        format!("the decompressed cpio is identical: sha256 {}, {} bytes", hex::encode(x.cpio_sha256), x.cpio_size),
        format!(
            "compressed: A {} bytes (sha256 {}), B {} bytes (sha256 {})",
            x.file_size,
            short(&hex::encode(x.file_sha256)),
            y.file_size,
            short(&hex::encode(y.file_sha256))
        ),
        "so the compressor differs: its implementation, version or parameters (level, window, threads); compare `initrd.compression` in the two manifests".to_string(),
    ])
}

fn display(path: &str) -> &str {
    if path.is_empty() {
        "initrd"
    } else {
        path
    }
}

/// The path used for whole-initrd findings: the member name, or `(initrd)` when two bare initrds are compared.
fn display_path(path: &str) -> String {
    if path.is_empty() {
        "(initrd)".to_string()
    } else {
        path.to_string()
    }
}

fn describe_blob(bytes: &[u8]) -> String {
    format!("{} bytes, sha256 {}", bytes.len(), short(&hex::encode(sha(bytes))))
}

fn describe_cpio(e: &CpioEntry) -> String {
    match &e.link_target {
        Some(target) => format!("symlink -> {target}"),
        None if e.file_type == EntryType::Regular => {
            format!(
                "regular file, mode {:04o}, {} bytes, sha256 {}",
                e.permissions(),
                e.size,
                short(&hex::encode(e.sha256))
            )
        }
        None => format!("{}, mode {:04o}", e.file_type, e.permissions()),
    }
}

fn describe_tar(e: &TarEntry) -> String {
    match &e.link_target {
        Some(target) => format!("{} -> {target}", e.file_type),
        None => {
            format!("{}, mode {:04o}, {} bytes, sha256 {}", e.file_type, e.mode, e.size, short(&hex::encode(e.sha256)))
        }
    }
}

/// The keys of `mine` that `other` also has, in `mine`'s archive order.
fn common_order<'a, T>(
    mine: &'a BTreeMap<(String, u32), (usize, T)>,
    other: &BTreeMap<(String, u32), (usize, T)>,
) -> Vec<&'a (String, u32)> {
    let mut keys: Vec<(usize, &(String, u32))> =
        mine.iter().filter(|(k, _)| other.contains_key(*k)).map(|(k, (pos, _))| (*pos, k)).collect();
    keys.sort();
    keys.into_iter().map(|(_, k)| k).collect()
}
