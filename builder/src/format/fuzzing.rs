//! Entry points for the `cpio_reader` and `tar_reader` fuzz targets (`fuzz/fuzz_targets/`).
//!
//! Each reads arbitrary bytes (which must never panic), and when they parse, checks a round trip: the entries the
//! crate's own writers can express are written back and must read back the same. A panic here is a finding.

use super::{read_bundle, read_initrd, tar, EntryType, Limits};
use crate::format::cpio::CpioWriter;
use crate::format::tar::TarWriter;

fn limits() -> Limits {
    Limits { max_entries: 10_000, max_total_size: 16 << 20, ..Limits::default() }
}

/// Parses `data` as an initrd; if it parses, round-trips it through [`CpioWriter`].
pub fn cpio_reader(data: &[u8]) {
    let Ok(initrd) = read_initrd(data, &limits()) else { return };
    let mut writer = CpioWriter::new(Vec::new(), 0);
    let mut expected = Vec::new();
    for e in &initrd.entries {
        let name = e.path.trim_start_matches('/');
        if name == "TRAILER!!!" {
            continue; // would end the rewritten archive early
        }
        let written = match (e.file_type, &e.content, &e.link_target) {
            (EntryType::Regular, Some(c), _) => {
                writer.add_file(name, e.permissions(), e.size, &mut &c[..]).map(|d| Some(d.to_vec())).unwrap_or(None)
            }
            (EntryType::Directory, ..) => writer.add_directory(name, e.permissions()).ok().map(|()| Vec::new()),
            (EntryType::Symlink, _, Some(t)) => writer.add_symlink(name, t).ok().map(|_| t.as_bytes().to_vec()),
            (EntryType::CharDevice, ..) => {
                writer.add_char_device(name, e.permissions(), e.rdev.0, e.rdev.1).ok().map(|()| Vec::new())
            }
            _ => None,
        };
        if let Some(identity) = written {
            // The writer gives every symlink mode 0777 (permissions of symlinks are ignored by Linux).
            let mode = if e.file_type == EntryType::Symlink { 0o777 } else { e.permissions() };
            expected.push((name.to_string(), e.file_type, mode, identity));
        }
    }
    let archive = match writer.finish() {
        Ok(archive) => archive,
        Err(err) => panic!("writing to a Vec failed: {err}"),
    };
    // Lossy UTF-8 conversion can triple a name's length.
    let relaxed = Limits { max_name_len: 3 * limits().max_name_len, ..limits() };
    let again = match read_initrd(&archive[..], &relaxed) {
        Ok(again) => again,
        Err(err) => panic!("the crate's own cpio does not read back: {err}"),
    };
    let actual: Vec<_> = again
        .entries
        .iter()
        .map(|e| {
            let identity = match e.file_type {
                EntryType::Regular => e.sha256.to_vec(),
                EntryType::Symlink => e.link_target.clone().unwrap_or_default().into_bytes(),
                _ => Vec::new(),
            };
            (e.path.clone(), e.file_type, e.permissions(), identity)
        })
        .collect();
    assert_eq!(actual, expected, "cpio round trip changed the entries");
}

/// Parses `data` as a tar with and without its length known (both must agree); round-trips regular files.
pub fn tar_reader(data: &[u8]) {
    let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
    let known = tar::read::read_all(data, Some(len), &limits());
    let streamed = tar::read::read_all(data, None, &limits());
    match (&known, &streamed) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "knowing the stream length changed the result"),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("knowing the stream length changed the outcome: {a:?} vs {b:?}"),
    }
    let Ok(bundle) = read_bundle(data, Some(len), &limits()) else { return };
    let mut writer = TarWriter::new(Vec::new(), 0);
    let mut expected = Vec::new();
    for e in bundle.entries.iter().filter(|e| e.file_type == EntryType::Regular) {
        let Some(content) = &e.content else { continue };
        if writer.add_file(&e.path, e.mode, e.size, &mut &content[..]).is_ok() {
            expected.push((e.path.clone(), e.mode, e.sha256));
        }
    }
    let archive = match writer.finish() {
        Ok(archive) => archive,
        Err(err) => panic!("writing to a Vec failed: {err}"),
    };
    let again = match read_bundle(&archive[..], u64::try_from(archive.len()).ok(), &limits()) {
        Ok(again) => again,
        Err(err) => panic!("the crate's own tar does not read back: {err}"),
    };
    let actual: Vec<_> = again.entries.iter().map(|e| (e.path.clone(), e.mode, e.sha256)).collect();
    assert_eq!(actual, expected, "tar round trip changed the entries");
}
