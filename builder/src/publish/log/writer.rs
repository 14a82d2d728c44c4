//! Writing a log directory: [`init`], [`append`], [`add_signer`], [`merge_cosignatures`].
//!
//! Crash safety: every file is written to a temporary name, synced, and renamed into place; the tiles and entry
//! bundles of a new tree are all in place (and their directories synced) before the new checkpoint is published,
//! which is the last rename. A crash at any point leaves the last published checkpoint and every tile it covers
//! intact: full tiles and partial tiles of a published width never change, and files written for an unpublished tree
//! are simply written again by the next append. Writers take an exclusive lock on `<dir>/.lock`, so two appends never
//! interleave.
//!
//! Each write step calls a hook with its name, so that a test can stop the process at every one of them.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};

use super::audit::PENDING;
use super::note::{check_name, Checkpoint, Note, NoteVerifier};
use super::source::DirSource;
use super::store::TileStore;
use super::tiles::{self, TILE_WIDTH};
use super::tree::{self, Hash};
use super::{read_checkpoint, LogError, LogKey, Signers, CHECKPOINT, MAX_SIGNERS_FILE, SIGNERS};
use crate::publish::log::Source;

/// The lock file.
pub const LOCK: &str = ".lock";

/// Called with the name of each write step before it runs.
pub type StepHook<'a> = &'a mut dyn FnMut(&str);

/// Creates an empty log in `dir` (new, or empty): a signed checkpoint of size 0 and the signers file.
pub fn init(dir: &Path, origin: &str, key: &SigningKey, signers: &[VerifyingKey]) -> Result<Checkpoint, LogError> {
    check_name(origin).map_err(|e| LogError::Refused(format!("origin: {e}")))?;
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(|e| LogError::io(dir.display(), e))?;
        if entries.next().is_some() {
            return Err(LogError::Refused(format!(
                "`{}` exists and is not empty; a log is created in a new or empty directory",
                dir.display()
            )));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| LogError::io(dir.display(), e))?;
    let _lock = lock(dir)?;
    let mut hook = |_: &str| {};
    let mut tx = Tx { dir, hook: &mut hook, touched: BTreeSet::new() };
    tx.write(SIGNERS, Signers(signers.to_vec()).to_text().as_bytes())?;
    let checkpoint = Checkpoint { origin: origin.to_owned(), size: 0, root: tree::empty_root() };
    publish(&mut tx, &checkpoint, key)?;
    Ok(checkpoint)
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The index of the first new entry.
    pub first_index: u64,
    /// The new checkpoint.
    pub checkpoint: Checkpoint,
}

/// Appends `entries` (DSSE envelopes that a signer of the log signed) and publishes a new checkpoint.
pub fn append(dir: &Path, key: &SigningKey, entries: &[Vec<u8>], hook: StepHook<'_>) -> Result<Appended, LogError> {
    append_with(dir, key, entries, hook, true)
}

/// [`append`] without the signer check, for benchmarks of raw entries.
pub fn append_unchecked(dir: &Path, key: &SigningKey, entries: &[Vec<u8>]) -> Result<Appended, LogError> {
    append_with(dir, key, entries, &mut |_| {}, false)
}

fn append_with(
    dir: &Path,
    key: &SigningKey,
    entries: &[Vec<u8>],
    hook: StepHook<'_>,
    check_signers: bool,
) -> Result<Appended, LogError> {
    if entries.is_empty() {
        return Err(LogError::Refused("nothing to append".into()));
    }
    let _lock = lock(dir)?;
    let source = DirSource(dir.to_path_buf());
    let (_, old) = read_checkpoint(&source, &LogKey::Bare(key.verifying_key()))?;
    let signers = if check_signers { Some(read_signers(&source)?) } else { None };
    for (i, entry) in entries.iter().enumerate() {
        let index = old.size + i as u64;
        if entry.len() > tiles::MAX_ENTRY {
            let why = format!("{} bytes, more than the {} an entry bundle can hold", entry.len(), tiles::MAX_ENTRY);
            return Err(LogError::Entry { index, why });
        }
        if let Some(signers) = &signers {
            signers.check(entry).map_err(|why| LogError::Entry { index, why })?;
        }
    }
    let new_size = old.size + entries.len() as u64;
    let mut tx = Tx { dir, hook, touched: BTreeSet::new() };
    if dir.join(PENDING).exists() {
        remove_unpublished(&source, old.size)?;
    }
    tx.write(PENDING, b"an append is in progress; tiles beyond the checkpoint are not published\n")?;
    write_bundles(&mut tx, &source, old.size, entries)?;
    let mut level_hashes: Vec<Hash> = entries.iter().map(|e| tree::leaf_hash(e)).collect();
    for level in 0u8..8 {
        if level_hashes.is_empty() {
            break;
        }
        level_hashes = write_hash_tiles(&mut tx, &source, level, old.size, level_hashes)?;
    }
    tx.sync_touched()?;
    let root = tree::root(&mut TileStore::new(&source, new_size), new_size)?;
    let checkpoint = Checkpoint { origin: old.origin, size: new_size, root };
    publish(&mut tx, &checkpoint, key)?;
    (tx.hook)("remove .pending");
    std::fs::remove_file(dir.join(PENDING)).map_err(|e| LogError::io(dir.join(PENDING).display(), e))?;
    Ok(Appended { first_index: old.size, checkpoint })
}

/// Removes what an interrupted append left (cvmforge's own files): tiles that the published tree of `size` entries
/// does not have, and temporary files.
fn remove_unpublished(source: &DirSource, size: u64) -> Result<(), LogError> {
    let Some(listed) = source.list_tiles() else { return Ok(()) };
    for path in listed? {
        let name = path.rsplit('/').next().unwrap_or_default();
        let stale = if name.starts_with('.') && name.ends_with(".tmp") {
            true
        } else {
            match tiles::TileId::parse(&path) {
                Some(id) => tiles::tile_in_tree(id.level, id.index, size).is_none_or(|t| id.width > t.width),
                None => false,
            }
        };
        if stale {
            let full = source.0.join(&path);
            std::fs::remove_file(&full).map_err(|e| LogError::io(full.display(), e))?;
        }
    }
    Ok(())
}

/// Writes the entry bundles from `old_size` on: the old partial bundle (if any) with the new entries after it.
fn write_bundles(tx: &mut Tx<'_, '_>, source: &DirSource, old_size: u64, entries: &[Vec<u8>]) -> Result<(), LogError> {
    let first_tile = old_size / TILE_WIDTH;
    let mut bundle = Vec::new();
    let mut in_bundle = old_size % TILE_WIDTH;
    if in_bundle > 0 {
        let id =
            tiles::tile_in_tree(None, first_tile, old_size).ok_or_else(|| LogError::Refused("tile math".into()))?;
        let path = id.path();
        let bytes =
            source.fetch(&path, tiles::MAX_BUNDLE)?.ok_or_else(|| LogError::Missing { path: source.show(&path) })?;
        tiles::parse_bundle(&bytes, id.width)
            .map_err(|e| LogError::BadTile { path: source.show(&path), why: e.to_string() })?;
        bundle = bytes;
    }
    let mut tile_index = first_tile;
    for (i, entry) in entries.iter().enumerate() {
        tiles::push_bundle_entry(&mut bundle, entry);
        in_bundle += 1;
        if in_bundle == TILE_WIDTH || i + 1 == entries.len() {
            let id = tiles::TileId { level: None, index: tile_index, width: in_bundle };
            tx.write(&id.path(), &bundle)?;
            bundle.clear();
            in_bundle = 0;
            tile_index += 1;
        }
    }
    Ok(())
}

/// Writes the hash tiles of `level` that change when `new` hashes follow the level's existing ones, and returns the
/// hashes that the newly completed tiles add to the level above.
fn write_hash_tiles(
    tx: &mut Tx<'_, '_>,
    source: &DirSource,
    level: u8,
    old_size: u64,
    new: Vec<Hash>,
) -> Result<Vec<Hash>, LogError> {
    let old_count = tiles::hashes_at(level, old_size);
    let first_tile = old_count / TILE_WIDTH;
    let mut hashes = Vec::new();
    if !old_count.is_multiple_of(TILE_WIDTH) {
        let mut store = TileStore::new(source, old_size);
        hashes = store.tile(level, first_tile)?.to_vec();
    }
    hashes.extend(new);
    let mut up = Vec::new();
    for (n, chunk) in hashes.chunks(TILE_WIDTH as usize).enumerate() {
        let id = tiles::TileId { level: Some(level), index: first_tile + n as u64, width: chunk.len() as u64 };
        tx.write(&id.path(), &chunk.concat())?;
        if chunk.len() as u64 == TILE_WIDTH {
            up.push(tiles::tile_root(chunk));
        }
    }
    Ok(up)
}

/// Signs and publishes a checkpoint (the last step of every write).
fn publish(tx: &mut Tx<'_, '_>, checkpoint: &Checkpoint, key: &SigningKey) -> Result<(), LogError> {
    let note = Note::sign(&checkpoint.text(), &checkpoint.origin, key)
        .map_err(|source| LogError::Note { path: tx.dir.join(CHECKPOINT).display().to_string(), source })?;
    tx.write(CHECKPOINT, &note.to_bytes())
}

/// Adds a signer's key to the log's `signers` file (no change if it is there).
pub fn add_signer(dir: &Path, key: &VerifyingKey) -> Result<bool, LogError> {
    let _lock = lock(dir)?;
    let source = DirSource(dir.to_path_buf());
    let mut signers = read_signers(&source)?;
    if signers.0.contains(key) {
        return Ok(false);
    }
    signers.0.push(*key);
    Tx { dir, hook: &mut |_| {}, touched: BTreeSet::new() }.write(SIGNERS, signers.to_text().as_bytes())?;
    Ok(true)
}

/// Merges into the published checkpoint the cosignatures of `witnesses` found in `cosigned` (checkpoints served by
/// witnesses). Returns how many cosignatures the checkpoint then has from these witnesses.
pub fn merge_cosignatures(
    dir: &Path,
    log_key: &VerifyingKey,
    cosigned: &[(String, Vec<u8>)],
    witnesses: &[NoteVerifier],
) -> Result<usize, LogError> {
    let _lock = lock(dir)?;
    let source = DirSource(dir.to_path_buf());
    let (mut note, _) = read_checkpoint(&source, &LogKey::Bare(*log_key))?;
    for (path, bytes) in cosigned {
        let other = Note::parse(bytes).map_err(|source| LogError::Note { path: path.clone(), source })?;
        if other.text != note.text {
            return Err(LogError::Refused(format!("`{path}` cosigns another checkpoint than the log's current one")));
        }
        for witness in witnesses {
            let id = witness.key_id();
            if other.verify(witness).is_ok() {
                note.signatures.retain(|s| !(s.name == witness.name && s.key_id == id));
                note.signatures
                    .extend(other.signatures.iter().filter(|s| s.name == witness.name && s.key_id == id).cloned());
            }
        }
    }
    let count = witnesses.iter().filter(|w| note.verify(w).is_ok()).count();
    Tx { dir, hook: &mut |_| {}, touched: BTreeSet::new() }.write(CHECKPOINT, &note.to_bytes())?;
    Ok(count)
}

/// Reads the `signers` file.
pub fn read_signers(source: &dyn Source) -> Result<Signers, LogError> {
    let bytes =
        source.fetch(SIGNERS, MAX_SIGNERS_FILE)?.ok_or_else(|| LogError::Missing { path: source.show(SIGNERS) })?;
    Signers::parse(&String::from_utf8_lossy(&bytes))
}

/// One write transaction: the hook, and the tile directories to sync before the checkpoint is published.
struct Tx<'a, 'h> {
    dir: &'a Path,
    hook: StepHook<'h>,
    touched: BTreeSet<PathBuf>,
}

impl Tx<'_, '_> {
    fn write(&mut self, rel: &str, bytes: &[u8]) -> Result<(), LogError> {
        write_atomic(self.dir, rel, bytes, self.hook, &mut self.touched)
    }

    /// Makes the renames of every tile written so far durable.
    fn sync_touched(&mut self) -> Result<(), LogError> {
        (self.hook)("sync tile directories");
        for d in std::mem::take(&mut self.touched) {
            sync_dir(&d)?;
        }
        Ok(())
    }
}

/// Takes the log's exclusive lock (released when the file is dropped).
fn lock(dir: &Path) -> Result<File, LogError> {
    let path = dir.join(LOCK);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| LogError::io(path.display(), e))?;
    file.lock().map_err(|e| LogError::io(path.display(), e))?;
    Ok(file)
}

/// Writes `rel` under `dir` through a synced temporary file and a rename.
fn write_atomic(
    dir: &Path,
    rel: &str,
    bytes: &[u8],
    hook: StepHook<'_>,
    touched: &mut BTreeSet<PathBuf>,
) -> Result<(), LogError> {
    let path = dir.join(rel);
    let parent = path.parent().unwrap_or(dir);
    std::fs::create_dir_all(parent).map_err(|e| LogError::io(parent.display(), e))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = parent.join(format!(".{name}.tmp"));
    hook(&format!("write {rel}"));
    let mut file = File::create(&temp).map_err(|e| LogError::io(temp.display(), e))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(|e| LogError::io(temp.display(), e))?;
    drop(file);
    hook(&format!("rename {rel}"));
    std::fs::rename(&temp, &path).map_err(|e| LogError::io(path.display(), e))?;
    if rel == CHECKPOINT || rel == SIGNERS || rel == PENDING {
        sync_dir(parent)?;
    } else {
        touched.insert(parent.to_path_buf());
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| LogError::io(dir.display(), e))
}
