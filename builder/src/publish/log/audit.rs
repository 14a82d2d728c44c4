//! Reading a whole log and checking it ([`audit`]), and cosigning its checkpoints as a witness ([`witness`]).
//!
//! An audit checks the checkpoint's signature, reads every entry bundle, checks every entry's DSSE envelope against
//! the accepted signers, recomputes every hash tile from the entries and compares it with the published one, and
//! recomputes the root. Reading a directory, it also refuses files under `tile/` that are not tiles of this tree: a
//! malformed path, an older partial tile that disagrees with the tree, or (unless an append was interrupted, which
//! leaves `.pending`) a tile beyond the checkpoint. Memory stays flat: one tile per level is kept.
//!
//! With a state directory, the checkpoint seen last is kept in `<state>/checkpoint`, and the new one must extend it:
//! a smaller tree is a rollback, and a tree that a consistency proof (computed from the tiles) does not connect to
//! the old one is a split view.

use std::path::Path;

use ed25519_dalek::SigningKey;

use super::note::{Checkpoint, Note, NoteVerifier, MAX_NOTE};
use super::source::{DirSource, Source};
use super::store::TileStore;
use super::tiles::{self, TileId, TILE_WIDTH};
use super::tree::{self, Hash};
use super::{b64, check_quorum, open_checkpoint, read_checkpoint, LogError, LogKey, Signers, CHECKPOINT};

/// The marker an append writes before its first tile and removes after it publishes the checkpoint.
pub const PENDING: &str = ".pending";

/// What to check besides the log itself.
#[derive(Debug, Clone, Default)]
pub struct AuditOptions<'a> {
    /// Accept only envelopes of these signers (default: the log's own `signers` file).
    pub signers: Option<Signers>,
    /// Keep the last checkpoint here and require the new one to extend it.
    pub state: Option<&'a Path>,
    /// Witness keys whose cosignatures count.
    pub witnesses: &'a [NoteVerifier],
    /// How many of them must have cosigned.
    pub quorum: usize,
}

/// What an audit found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// The checkpoint checked.
    pub checkpoint: Checkpoint,
    /// Entries read and verified.
    pub entries: u64,
    /// Hash tiles and entry bundles compared.
    pub tiles_checked: u64,
    /// Bytes of entries read.
    pub entry_bytes: u64,
    /// Valid cosignatures from the given witness keys.
    pub cosignatures: usize,
    /// The checkpoint kept from the audit before, when the state had one.
    pub previous: Option<Checkpoint>,
    /// Whether the source could be listed (a directory) so that extra tiles were looked for.
    pub listed: bool,
}

/// Audits the log at `source`.
pub fn audit(source: &dyn Source, log_key: &LogKey, options: &AuditOptions<'_>) -> Result<AuditReport, LogError> {
    let (note, checkpoint) = read_checkpoint(source, log_key)?;
    let cosignatures = check_quorum(&note, options.witnesses, options.quorum)?;
    let signers = match &options.signers {
        Some(s) => s.clone(),
        None => super::writer::read_signers(source)?,
    };
    let mut rebuild = Rebuild { source, size: checkpoint.size, levels: Default::default(), tiles_checked: 0 };
    let mut entry_bytes = 0u64;
    for id in tiles::tiles_of_tree(checkpoint.size).filter(|t| t.level.is_none()) {
        let path = id.path();
        let bytes =
            source.fetch(&path, tiles::MAX_BUNDLE)?.ok_or_else(|| LogError::Missing { path: source.show(&path) })?;
        let entries = tiles::parse_bundle(&bytes, id.width)
            .map_err(|e| LogError::BadTile { path: source.show(&path), why: e.to_string() })?;
        rebuild.tiles_checked += 1;
        for (at, entry) in entries.iter().enumerate() {
            let index = id.index * TILE_WIDTH + at as u64;
            signers.check(entry).map_err(|why| LogError::Entry { index, why })?;
            entry_bytes += entry.len() as u64;
            rebuild.feed(0, tree::leaf_hash(entry))?;
        }
    }
    rebuild.finish()?;
    let computed = tree::root(&mut TileStore::new(source, checkpoint.size), checkpoint.size)?;
    if computed != checkpoint.root {
        return Err(LogError::RootMismatch {
            size: checkpoint.size,
            expected: b64(&checkpoint.root),
            computed: b64(&computed),
        });
    }
    let listed = match source.list_tiles() {
        Some(list) => {
            check_listed_tiles(source, checkpoint.size, &list?)?;
            true
        }
        None => false,
    };
    let previous = match options.state {
        Some(state) => advance_state(source, log_key, state, &note, &checkpoint)?,
        None => None,
    };
    Ok(AuditReport {
        checkpoint,
        entries: rebuild.size,
        tiles_checked: rebuild.tiles_checked,
        entry_bytes,
        cosignatures,
        previous,
        listed,
    })
}

/// Recomputes the hash tiles level by level from the leaf hashes, comparing each with the published one.
struct Rebuild<'a> {
    source: &'a dyn Source,
    size: u64,
    /// Per level: the index of the tile being filled and its hashes so far.
    levels: [(u64, Vec<Hash>); 8],
    tiles_checked: u64,
}

impl Rebuild<'_> {
    fn feed(&mut self, level: u8, hash: Hash) -> Result<(), LogError> {
        let Some((index, hashes)) = self.levels.get_mut(usize::from(level)) else {
            return Err(LogError::Refused("the tree is too large for 8 tile levels".into()));
        };
        hashes.push(hash);
        if hashes.len() as u64 == TILE_WIDTH {
            let full = std::mem::take(hashes);
            let id = TileId { level: Some(level), index: *index, width: TILE_WIDTH };
            *index += 1;
            self.compare(id, &full)?;
            self.feed(level + 1, tiles::tile_root(&full))?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), LogError> {
        for level in 0u8..8 {
            let (index, hashes) = self.levels.get(usize::from(level)).cloned().unwrap_or_default();
            if !hashes.is_empty() {
                self.compare(TileId { level: Some(level), index, width: hashes.len() as u64 }, &hashes)?;
            }
        }
        Ok(())
    }

    fn compare(&mut self, id: TileId, hashes: &[Hash]) -> Result<(), LogError> {
        let expected = tiles::tile_in_tree(id.level, id.index, self.size);
        let path = id.path();
        if expected != Some(id) {
            return Err(LogError::BadTile { path: self.source.show(&path), why: "not a tile of this tree".into() });
        }
        let bytes = self
            .source
            .fetch(&path, tiles::MAX_HASH_TILE)?
            .ok_or_else(|| LogError::Missing { path: self.source.show(&path) })?;
        self.tiles_checked += 1;
        if bytes != hashes.concat() {
            return Err(LogError::TileMismatch { path: self.source.show(&path) });
        }
        Ok(())
    }
}

/// Refuses files under `tile/` that do not belong to the tree of `size` entries (see the module docs).
fn check_listed_tiles(source: &dyn Source, size: u64, listed: &[String]) -> Result<(), LogError> {
    let pending = source.fetch(PENDING, 1 << 10)?.is_some();
    for path in listed {
        let name = path.rsplit('/').next().unwrap_or_default();
        if name.starts_with('.') && name.ends_with(".tmp") && pending {
            continue;
        }
        let extra = |why: String| LogError::ExtraTile { path: source.show(path), why };
        let id = TileId::parse(path).ok_or_else(|| extra("not a tile path".into()))?;
        match tiles::tile_in_tree(id.level, id.index, size) {
            Some(current) if current.width == id.width => {}
            Some(current) if id.width < current.width => check_older_partial(source, id, current)?,
            _ if pending => {}
            _ => return Err(extra(format!("the tree of {size} entries has no such tile, and no append is pending"))),
        }
    }
    Ok(())
}

/// An older partial tile must be a prefix of the tile the tree has now.
fn check_older_partial(source: &dyn Source, older: TileId, current: TileId) -> Result<(), LogError> {
    let limit = if older.level.is_some() { tiles::MAX_HASH_TILE } else { tiles::MAX_BUNDLE };
    let read = |id: TileId| -> Result<Vec<u8>, LogError> {
        source.fetch(&id.path(), limit)?.ok_or_else(|| LogError::Missing { path: source.show(&id.path()) })
    };
    let (old, now) = (read(older)?, read(current)?);
    let consistent = match older.level {
        Some(_) => now.starts_with(&old) && old.len() as u64 == older.width * 32,
        None => {
            let old_entries = tiles::parse_bundle(&old, older.width).ok();
            let now_entries = tiles::parse_bundle(&now, current.width).ok();
            matches!((old_entries, now_entries), (Some(o), Some(n)) if n.starts_with(&o))
        }
    };
    if !consistent {
        let why = format!("an older partial tile that disagrees with `{}`", current.path());
        return Err(LogError::ExtraTile { path: source.show(&older.path()), why });
    }
    Ok(())
}

/// Checks that `now` extends the checkpoint kept in `state`, then keeps `now` there. Returns the one kept before.
pub fn advance_state(
    source: &dyn Source,
    log_key: &LogKey,
    state: &Path,
    note: &Note,
    now: &Checkpoint,
) -> Result<Option<Checkpoint>, LogError> {
    let previous = read_state(state, log_key)?;
    if let Some(before) = &previous {
        check_extends(source, before, now, state)?;
    }
    write_state(state, note)?;
    Ok(previous)
}

/// The checkpoint kept in `state`, checked under the log's key.
pub fn read_state(state: &Path, log_key: &LogKey) -> Result<Option<Checkpoint>, LogError> {
    let kept = DirSource(state.to_path_buf());
    match kept.fetch(CHECKPOINT, MAX_NOTE)? {
        None => Ok(None),
        Some(bytes) => Ok(Some(open_checkpoint(&bytes, &kept.show(CHECKPOINT), log_key)?.1)),
    }
}

fn write_state(state: &Path, note: &Note) -> Result<(), LogError> {
    std::fs::create_dir_all(state).map_err(|e| LogError::io(state.display(), e))?;
    let temp = state.join(".checkpoint.tmp");
    std::fs::write(&temp, note.to_bytes()).map_err(|e| LogError::io(temp.display(), e))?;
    std::fs::rename(&temp, state.join(CHECKPOINT)).map_err(|e| LogError::io(state.display(), e))
}

/// Refuses a rollback or a split view from `before` to `now`.
pub fn check_extends(source: &dyn Source, before: &Checkpoint, now: &Checkpoint, state: &Path) -> Result<(), LogError> {
    if before.origin != now.origin {
        return Err(LogError::Origin { expected: before.origin.clone(), found: now.origin.clone() });
    }
    let split = || LogError::SplitView {
        had: before.size,
        had_root: b64(&before.root),
        now: now.size,
        now_root: b64(&now.root),
    };
    if now.size < before.size {
        return Err(LogError::Rollback { had: before.size, now: now.size, state: state.display().to_string() });
    }
    if now.size == before.size {
        return if now.root == before.root { Ok(()) } else { Err(split()) };
    }
    let proof = tree::consistency_proof(&mut TileStore::new(source, now.size), before.size, now.size)?;
    if !tree::verify_consistency(before.size, now.size, &before.root, &now.root, &proof) {
        return Err(split());
    }
    Ok(())
}

/// What a witness did.
#[derive(Debug, Clone)]
pub struct Witnessed {
    /// The checkpoint cosigned.
    pub checkpoint: Checkpoint,
    /// The one cosigned before, if any.
    pub previous: Option<Checkpoint>,
    /// The cosigned checkpoint (also written to `<state>/checkpoint`).
    pub cosigned: Note,
}

/// Checks the log's checkpoint against the last one this witness cosigned (kept in `state`), and cosigns it.
pub fn witness(
    source: &dyn Source,
    log_key: &LogKey,
    witness_name: &str,
    witness_key: &SigningKey,
    state: &Path,
    time: u64,
) -> Result<Witnessed, LogError> {
    let (mut note, checkpoint) = read_checkpoint(source, log_key)?;
    let previous = read_state(state, log_key)?;
    if let Some(before) = &previous {
        check_extends(source, before, &checkpoint, state)?;
    }
    note.cosign(witness_name, witness_key, time)
        .map_err(|source| LogError::Note { path: witness_name.into(), source })?;
    write_state(state, &note)?;
    Ok(Witnessed { checkpoint, previous, cosigned: note })
}
