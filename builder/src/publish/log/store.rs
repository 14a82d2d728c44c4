//! The hashes of a tree read from its tiles: [`TileStore`] answers [`Subtrees`] for the tree of a given size by
//! reading the few tiles that hold them (a proof reads at most a couple of tiles per tile level).

use std::collections::BTreeMap;

use super::tiles::{self, TileId, MAX_HASH_TILE, TILE_HEIGHT, TILE_WIDTH};
use super::tree::{fold_complete, Hash, Subtrees};
use super::{LogError, Source};

/// Reads the tiles of the tree of `size` leaves from a source, keeping what it read.
pub struct TileStore<'a> {
    source: &'a dyn Source,
    size: u64,
    cache: BTreeMap<(u8, u64), Vec<Hash>>,
    /// How many tiles were fetched.
    pub tiles_read: u64,
}

impl<'a> TileStore<'a> {
    /// A store for the tree of `size` leaves.
    pub fn new(source: &'a dyn Source, size: u64) -> TileStore<'a> {
        TileStore { source, size, cache: BTreeMap::new(), tiles_read: 0 }
    }

    /// The hashes of tile `index` of `level`, as the tree of this size has it.
    pub fn tile(&mut self, level: u8, index: u64) -> Result<&[Hash], LogError> {
        if !self.cache.contains_key(&(level, index)) {
            let id = tiles::tile_in_tree(Some(level), index, self.size).ok_or_else(|| {
                LogError::Proof(format!("the tree of {} entries has no tile {index} at level {level}", self.size))
            })?;
            let hashes = self.fetch(id)?;
            self.cache.insert((level, index), hashes);
        }
        Ok(self.cache.get(&(level, index)).map(Vec::as_slice).unwrap_or_default())
    }

    fn fetch(&mut self, id: TileId) -> Result<Vec<Hash>, LogError> {
        let path = id.path();
        self.tiles_read += 1;
        let bytes = self
            .source
            .fetch(&path, MAX_HASH_TILE)?
            .ok_or_else(|| LogError::Missing { path: self.source.show(&path) })?;
        tiles::parse_hash_tile(&bytes, id.width).ok_or_else(|| LogError::BadTile {
            path: self.source.show(&path),
            why: format!("{} bytes, expected {} ({} hashes)", bytes.len(), id.width * 32, id.width),
        })
    }
}

impl Subtrees for TileStore<'_> {
    type Error = LogError;

    fn subtree(&mut self, level: u8, index: u64) -> Result<Hash, LogError> {
        let tile_level = level / TILE_HEIGHT;
        let within = level % TILE_HEIGHT;
        let count = 1u64 << within;
        let first = index << within;
        let tile_index = first / TILE_WIDTH;
        let offset = (first % TILE_WIDTH) as usize;
        let hashes = self.tile(tile_level, tile_index)?;
        let slice = hashes.get(offset..offset + count as usize).ok_or_else(|| {
            LogError::Proof(format!(
                "tile {tile_index} of level {tile_level} is too short for subtree {index} of level {level}"
            ))
        })?;
        Ok(fold_complete(slice))
    }
}
