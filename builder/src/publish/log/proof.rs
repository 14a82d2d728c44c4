//! Offline inclusion proofs in the C2SP tlog-proof form:
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64 of the entry>
//! index <N>
//! <base64 hash>...
//!
//! <the signed checkpoint, with any cosignatures>
//! ```
//!
//! The `extra` line carries the logged entry itself (the DSSE envelope), so that the proof can be checked with
//! nothing else at hand; it is not trusted: the verifier hashes it and checks it against the tree.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::note::Checkpoint;
use super::source::Source;
use super::store::TileStore;
use super::tiles::{self, TileId};
use super::tree::{self, Hash};
use super::{open_checkpoint, read_checkpoint, LogError, LogKey, Note};

/// The first line.
pub const HEADER: &str = "c2sp.org/tlog-proof@v1";
/// The largest proof read (an entry of 64 KiB in base64, 64 hashes, a checkpoint).
pub const MAX_PROOF: u64 = 1 << 20;

/// A parsed proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The entry (the `extra` line), when present.
    pub entry: Option<Vec<u8>>,
    /// The entry's index.
    pub index: u64,
    /// The inclusion path, leaf to root.
    pub hashes: Vec<Hash>,
    /// The signed checkpoint the proof is relative to.
    pub checkpoint: Note,
}

/// What [`prove`] found.
#[derive(Debug, Clone)]
pub struct Proved {
    /// The proof text.
    pub text: String,
    /// The checkpoint it is relative to.
    pub checkpoint: Checkpoint,
    /// Hash tiles and entry bundles read.
    pub tiles_read: u64,
}

/// Proves the inclusion of entry `index` in the log's current checkpoint.
pub fn prove(source: &dyn Source, log_key: &LogKey, index: u64) -> Result<Proved, LogError> {
    let (note, checkpoint) = read_checkpoint(source, log_key)?;
    if index >= checkpoint.size {
        return Err(LogError::Refused(format!("index {index}: the log has {} entries", checkpoint.size)));
    }
    let entry = read_entry(source, index, checkpoint.size)?;
    let mut store = TileStore::new(source, checkpoint.size);
    let hashes = tree::inclusion_proof(&mut store, index, checkpoint.size)?;
    let leaf = tree::leaf_hash(&entry);
    if !tree::verify_inclusion(index, checkpoint.size, &leaf, &hashes, &checkpoint.root) {
        return Err(LogError::TileMismatch { path: source.show("tile/0") });
    }
    let mut text = format!("{HEADER}\nextra {}\nindex {index}\n", STANDARD.encode(&entry));
    for h in &hashes {
        text.push_str(&STANDARD.encode(h));
        text.push('\n');
    }
    text.push('\n');
    text.push_str(&String::from_utf8_lossy(&note.to_bytes()));
    Ok(Proved { text, checkpoint, tiles_read: store.tiles_read + 1 })
}

/// Finds the index of `entry` by reading the entry bundles (the log keeps no index).
pub fn find_entry(source: &dyn Source, log_key: &LogKey, entry: &[u8]) -> Result<Option<u64>, LogError> {
    let (_, checkpoint) = read_checkpoint(source, log_key)?;
    for id in tiles::tiles_of_tree(checkpoint.size).filter(|t| t.level.is_none()) {
        let bytes = read_bundle(source, id)?;
        let entries = tiles::parse_bundle(&bytes, id.width)
            .map_err(|e| LogError::BadTile { path: source.show(&id.path()), why: e.to_string() })?;
        if let Some(at) = entries.iter().position(|e| *e == entry) {
            return Ok(Some(id.index * tiles::TILE_WIDTH + at as u64));
        }
    }
    Ok(None)
}

fn read_bundle(source: &dyn Source, id: TileId) -> Result<Vec<u8>, LogError> {
    let path = id.path();
    source.fetch(&path, tiles::MAX_BUNDLE)?.ok_or_else(|| LogError::Missing { path: source.show(&path) })
}

/// Reads entry `index` of the tree of `size` entries.
pub fn read_entry(source: &dyn Source, index: u64, size: u64) -> Result<Vec<u8>, LogError> {
    let tile = index / tiles::TILE_WIDTH;
    let id = tiles::tile_in_tree(None, tile, size).ok_or_else(|| LogError::Refused(format!("no entry {index}")))?;
    let bytes = read_bundle(source, id)?;
    let entries = tiles::parse_bundle(&bytes, id.width)
        .map_err(|e| LogError::BadTile { path: source.show(&id.path()), why: e.to_string() })?;
    let at = (index % tiles::TILE_WIDTH) as usize;
    entries.get(at).map(|e| e.to_vec()).ok_or_else(|| LogError::Refused(format!("no entry {index}")))
}

/// Parses a proof.
pub fn parse(bytes: &[u8]) -> Result<Proof, LogError> {
    let bad = |why: &str| LogError::Proof(format!("not a tlog-proof: {why}"));
    let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8"))?;
    let (head, checkpoint) = text.split_once("\n\n").ok_or(bad("no blank line before the checkpoint"))?;
    let mut lines = head.split('\n');
    if lines.next() != Some(HEADER) {
        return Err(bad(&format!("the first line is not `{HEADER}`")));
    }
    let mut line = lines.next().ok_or(bad("no index line"))?;
    let mut entry = None;
    if let Some(extra) = line.strip_prefix("extra ") {
        entry = Some(STANDARD.decode(extra).map_err(|_| bad("the extra line is not base64"))?);
        line = lines.next().ok_or(bad("no index line"))?;
    }
    let index_text = line.strip_prefix("index ").ok_or(bad("no `index` line"))?;
    let canonical =
        index_text == "0" || (!index_text.starts_with('0') && index_text.bytes().all(|b| b.is_ascii_digit()));
    let index = index_text.parse::<u64>().ok().filter(|_| canonical).ok_or(bad("the index is not a decimal number"))?;
    let mut hashes = Vec::new();
    for (n, line) in lines.enumerate() {
        let hash = STANDARD.decode(line).ok().and_then(|h| <[u8; 32]>::try_from(h).ok());
        hashes.push(hash.ok_or_else(|| bad(&format!("proof line {} is not a base64 hash", n + 1)))?);
        if hashes.len() > 64 {
            return Err(bad("more than 64 hashes"));
        }
    }
    let checkpoint = Note::parse(checkpoint.as_bytes()).map_err(|e| bad(&format!("the checkpoint: {e}")))?;
    Ok(Proof { entry, index, hashes, checkpoint })
}

/// What a verified proof says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// The entry's index.
    pub index: u64,
    /// The entry.
    pub entry: Vec<u8>,
}

/// Checks a proof under the log's key: the checkpoint's signature, then the inclusion of the entry (the `extra` line,
/// or `entry` when given; when both are there they must be equal).
pub fn verify(bytes: &[u8], path: &str, log_key: &LogKey, entry: Option<&[u8]>) -> Result<(Proof, Verified), LogError> {
    let proof = parse(bytes)?;
    let (_, checkpoint) = open_checkpoint(&proof.checkpoint.to_bytes(), path, log_key)?;
    let entry = match (entry, &proof.entry) {
        (Some(given), Some(extra)) if given != extra.as_slice() => {
            return Err(LogError::Proof("the given entry is not the one the proof carries".into()));
        }
        (Some(given), _) => given.to_vec(),
        (None, Some(extra)) => extra.clone(),
        (None, None) => return Err(LogError::Proof("the proof carries no entry; give it with --entry".into())),
    };
    let leaf = tree::leaf_hash(&entry);
    if !tree::verify_inclusion(proof.index, checkpoint.size, &leaf, &proof.hashes, &checkpoint.root) {
        return Err(LogError::Proof(format!(
            "entry {} is not included in the tree of {} entries with root {}",
            proof.index,
            checkpoint.size,
            super::b64(&checkpoint.root)
        )));
    }
    let index = proof.index;
    Ok((proof, Verified { checkpoint, index, entry }))
}
