//! C2SP tlog-tiles: where each hash and entry lives (`tile/<L>/<N>[.p/<W>]`, `tile/entries/<N>[.p/<W>]`), what a
//! tile holds, and entry bundles (each entry prefixed by its length, a big-endian u16).
//!
//! Tiles have height 8: a tile of level `L` holds up to 256 consecutive hashes of tree level `8L`, that is, the roots
//! of complete subtrees of `256^L` leaves. A tile is full (256 hashes, no `.p`) or the partial right edge of the tree
//! (`.p/<W>`, W hashes). Once written, a full tile never changes; a partial tile of a given width never changes either.

use super::tree::{fold_complete, Hash};

/// Hashes per full tile (height 8).
pub const TILE_WIDTH: u64 = 256;
/// Tree levels per tile level.
pub const TILE_HEIGHT: u8 = 8;
/// The largest entry (its length prefix is a u16).
pub const MAX_ENTRY: usize = u16::MAX as usize;
/// The largest entry bundle: 256 entries of the largest size with their prefixes.
pub const MAX_BUNDLE: u64 = TILE_WIDTH * (2 + MAX_ENTRY as u64);
/// A full hash tile.
pub const MAX_HASH_TILE: u64 = TILE_WIDTH * 32;

/// A tile: hash tiles have a level; entry bundles (`tile/entries/...`) have none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TileId {
    /// `None` for an entry bundle, else the tile level.
    pub level: Option<u8>,
    /// The tile's index within its level.
    pub index: u64,
    /// How many hashes (or entries) it holds: 256 for a full tile.
    pub width: u64,
}

impl TileId {
    /// The tile's path under the log directory.
    pub fn path(&self) -> String {
        let level = self.level.map_or_else(|| "entries".to_string(), |l| l.to_string());
        let mut path = format!("tile/{level}/{}", index_path(self.index));
        if self.width < TILE_WIDTH {
            path.push_str(&format!(".p/{}", self.width));
        }
        path
    }

    /// Parses a path written by [`TileId::path`]; `None` for anything else (leading zeros beyond the three digits,
    /// a width of 0 or 256 and more, an unknown level).
    pub fn parse(path: &str) -> Option<TileId> {
        let rest = path.strip_prefix("tile/")?;
        let (level, rest) = rest.split_once('/')?;
        let level = match level {
            "entries" => None,
            l if l.len() <= 2 && l.bytes().all(|b| b.is_ascii_digit()) && (l == "0" || !l.starts_with('0')) => {
                Some(l.parse::<u8>().ok().filter(|l| *l < 8)?)
            }
            _ => return None,
        };
        let (index_part, width) = match rest.split_once(".p/") {
            Some((index, w)) => {
                let width = w.parse::<u64>().ok().filter(|n| (1..TILE_WIDTH).contains(n) && n.to_string() == w)?;
                (index, width)
            }
            None => (rest, TILE_WIDTH),
        };
        let index = parse_index_path(index_part)?;
        let id = TileId { level, index, width };
        (id.path() == path).then_some(id)
    }
}

/// `1234067` → `x001/x234/067`.
fn index_path(index: u64) -> String {
    let mut groups = vec![format!("{:03}", index % 1000)];
    let mut rest = index / 1000;
    while rest > 0 {
        groups.push(format!("x{:03}", rest % 1000));
        rest /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

fn parse_index_path(text: &str) -> Option<u64> {
    let mut index: u64 = 0;
    let parts: Vec<&str> = text.split('/').collect();
    let (last, first) = parts.split_last()?;
    for part in first {
        let digits = part.strip_prefix('x')?;
        index = index.checked_mul(1000)?.checked_add(three_digits(digits)?)?;
    }
    index.checked_mul(1000)?.checked_add(three_digits(last)?)
}

fn three_digits(text: &str) -> Option<u64> {
    (text.len() == 3 && text.bytes().all(|b| b.is_ascii_digit())).then(|| text.parse().ok()).flatten()
}

/// How many hashes tree level `8 * level` has in a tree of `size` leaves.
pub fn hashes_at(level: u8, size: u64) -> u64 {
    size.checked_shr(u32::from(level) * u32::from(TILE_HEIGHT)).unwrap_or(0)
}

/// The tile of `level` (`None`: entries) with index `index`, as it is in the tree of `size` leaves; `None` when the
/// tree has no such tile.
pub fn tile_in_tree(level: Option<u8>, index: u64, size: u64) -> Option<TileId> {
    let count = hashes_at(level.unwrap_or(0), size);
    let start = index.checked_mul(TILE_WIDTH)?;
    (start < count).then(|| TileId { level, index, width: (count - start).min(TILE_WIDTH) })
}

/// Every tile (hash tiles of every level, then entry bundles) of the tree of `size` leaves, in path order.
pub fn tiles_of_tree(size: u64) -> impl Iterator<Item = TileId> {
    let levels = (0u8..8).take_while(move |l| hashes_at(*l, size) > 0);
    let hash_tiles = levels.map(Some).chain(std::iter::once(None)).filter(move |l| size > 0 || l.is_none());
    hash_tiles.flat_map(move |level| {
        let count = hashes_at(level.unwrap_or(0), size).div_ceil(TILE_WIDTH);
        (0..count).filter_map(move |i| tile_in_tree(level, i, size))
    })
}

/// The hashes of a hash tile's bytes; `None` when the length is not `32 * width`.
pub fn parse_hash_tile(bytes: &[u8], width: u64) -> Option<Vec<Hash>> {
    if bytes.len() as u64 != width * 32 {
        return None;
    }
    Some(bytes.chunks_exact(32).map(|c| c.try_into().unwrap_or([0; 32])).collect())
}

/// The root of the 256 hashes of a full tile: the hash one tile level up.
pub fn tile_root(hashes: &[Hash]) -> Hash {
    fold_complete(hashes)
}

/// Why an entry bundle did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// The bytes end inside an entry.
    #[error("entry {entry} is truncated at byte offset {offset}")]
    Truncated {
        /// The entry's position in the bundle.
        entry: u64,
        /// Where its length prefix starts.
        offset: usize,
    },
    /// More or fewer entries than the tile's width.
    #[error("holds {found} entries, expected {expected}")]
    Count {
        /// Entries found.
        found: u64,
        /// The tile's width.
        expected: u64,
    },
}

/// Splits an entry bundle into exactly `width` entries.
pub fn parse_bundle(bytes: &[u8], width: u64) -> Result<Vec<&[u8]>, BundleError> {
    let mut entries = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let entry = entries.len() as u64;
        if entry >= width {
            return Err(BundleError::Count { found: entry + 1, expected: width });
        }
        let truncated = BundleError::Truncated { entry, offset: at };
        let prefix: [u8; 2] = bytes.get(at..at + 2).and_then(|p| p.try_into().ok()).ok_or(truncated.clone())?;
        let len = usize::from(u16::from_be_bytes(prefix));
        let body = bytes.get(at + 2..at + 2 + len).ok_or(truncated)?;
        entries.push(body);
        at += 2 + len;
    }
    if entries.len() as u64 != width {
        return Err(BundleError::Count { found: entries.len() as u64, expected: width });
    }
    Ok(entries)
}

/// Appends one entry with its length prefix (the caller has checked the size against [`MAX_ENTRY`]).
pub fn push_bundle_entry(bundle: &mut Vec<u8>, entry: &[u8]) {
    let len = u16::try_from(entry.len()).unwrap_or(u16::MAX);
    bundle.extend_from_slice(&len.to_be_bytes());
    bundle.extend_from_slice(entry.get(..usize::from(len)).unwrap_or(entry));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn paths_follow_the_spec() {
        let t = |level, index, width| TileId { level, index, width }.path();
        assert_eq!(t(Some(0), 1234067, 256), "tile/0/x001/x234/067");
        assert_eq!(t(Some(1), 5, 3), "tile/1/005.p/3");
        assert_eq!(t(None, 0, 256), "tile/entries/000");
        assert_eq!(t(None, 1000, 17), "tile/entries/x001/000.p/17");
        for bad in [
            "tile/0/5",
            "tile/0/x000/005",
            "tile/0/005.p/0",
            "tile/0/005.p/256",
            "tile/0/005.p/07",
            "tile/00/005",
            "tile/8/000",
            "tile/data/000",
            "tile/0/005/",
            "tile/0/x1/005",
        ] {
            assert_eq!(TileId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_tree_has_the_tiles_of_its_size() {
        let paths: Vec<String> = tiles_of_tree(257).map(|t| t.path()).collect();
        assert_eq!(
            paths,
            ["tile/0/000", "tile/0/001.p/1", "tile/1/000.p/1", "tile/entries/000", "tile/entries/001.p/1"]
        );
        assert_eq!(tiles_of_tree(0).count(), 0);
        assert_eq!(tile_in_tree(Some(1), 0, 255), None);
    }

    #[test]
    fn bundles_split_exactly() {
        let mut b = Vec::new();
        push_bundle_entry(&mut b, b"ab");
        push_bundle_entry(&mut b, b"");
        assert_eq!(parse_bundle(&b, 2).unwrap(), vec![&b"ab"[..], &b""[..]]);
        assert_eq!(parse_bundle(&b, 3), Err(BundleError::Count { found: 2, expected: 3 }));
        assert_eq!(parse_bundle(&b, 1), Err(BundleError::Count { found: 2, expected: 1 }));
        assert_eq!(parse_bundle(&b[..3], 2), Err(BundleError::Truncated { entry: 0, offset: 0 }));
    }

    proptest! {
        #[test]
        fn paths_round_trip(level in proptest::option::of(0u8..8), index in any::<u64>(), width in 1u64..=256) {
            let id = TileId { level, index, width };
            prop_assert_eq!(TileId::parse(&id.path()), Some(id));
        }

        #[test]
        fn parsing_any_path_never_panics(path in "tile/[0-9a-z./]{0,40}") {
            if let Some(id) = TileId::parse(&path) {
                prop_assert_eq!(id.path(), path);
            }
        }

        #[test]
        fn bundle_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600), width in 0u64..300) {
            let _ = parse_bundle(&bytes, width);
        }
    }
}
