//! RFC 6962 Merkle trees (RFC 9162 section 2.1): leaf and node hashes, the hash of any range that the RFC's recursion
//! produces, inclusion and consistency proofs built from complete subtrees, and their verification.
//!
//! The tree is read through [`Subtrees`]: the hash of a complete, aligned subtree of `2^level` leaves. The tile store
//! answers that from `tile/<L>/<N>` files ([`super::tiles`]); tests answer it from a list of leaves.

use sha2::{Digest, Sha256};

/// A SHA-256 tree hash.
pub type Hash = [u8; 32];

/// The root of the empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// `SHA-256(0x00 ‖ entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of a complete tree over `hashes` (a power-of-two count, at least one).
pub fn fold_complete(hashes: &[Hash]) -> Hash {
    let mut level: Vec<Hash> = hashes.to_vec();
    while level.len() > 1 {
        level = level.chunks(2).map(|pair| if let [l, r] = pair { node_hash(l, r) } else { pair[0] }).collect();
    }
    level.first().copied().unwrap_or_else(empty_root)
}

/// Hashes of complete, aligned subtrees.
pub trait Subtrees {
    /// The error of the store.
    type Error;
    /// The hash of the subtree of `2^level` leaves starting at leaf `index << level`.
    fn subtree(&mut self, level: u8, index: u64) -> Result<Hash, Self::Error>;
}

/// The largest power of two smaller than `n` (`n >= 2`).
fn split_point(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The Merkle tree hash of leaves `[lo, hi)`, for the ranges RFC 6962's recursion visits (`hi > lo`, and a range
/// whose size is a power of two starts at a multiple of it).
pub fn range_hash<S: Subtrees>(store: &mut S, lo: u64, hi: u64) -> Result<Hash, S::Error> {
    let n = hi - lo;
    if n.is_power_of_two() && lo.is_multiple_of(n) {
        let level = n.trailing_zeros() as u8;
        return store.subtree(level, lo >> level);
    }
    let k = split_point(n);
    let left = range_hash(store, lo, lo + k)?;
    let right = range_hash(store, lo + k, hi)?;
    Ok(node_hash(&left, &right))
}

/// The root of a tree of `size` leaves.
pub fn root<S: Subtrees>(store: &mut S, size: u64) -> Result<Hash, S::Error> {
    if size == 0 {
        return Ok(empty_root());
    }
    range_hash(store, 0, size)
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves (RFC 6962 `PATH`), leaf to root.
pub fn inclusion_proof<S: Subtrees>(store: &mut S, index: u64, size: u64) -> Result<Vec<Hash>, S::Error> {
    let mut proof = Vec::new();
    path(store, index, 0, size, &mut proof)?;
    Ok(proof)
}

fn path<S: Subtrees>(store: &mut S, m: u64, lo: u64, hi: u64, out: &mut Vec<Hash>) -> Result<(), S::Error> {
    if hi - lo <= 1 {
        return Ok(());
    }
    let k = split_point(hi - lo);
    if m < lo + k {
        path(store, m, lo, lo + k, out)?;
        out.push(range_hash(store, lo + k, hi)?);
    } else {
        path(store, m, lo + k, hi, out)?;
        out.push(range_hash(store, lo, lo + k)?);
    }
    Ok(())
}

/// The consistency proof from the tree of `old` leaves to the tree of `new` leaves (RFC 6962 `PROOF`).
pub fn consistency_proof<S: Subtrees>(store: &mut S, old: u64, new: u64) -> Result<Vec<Hash>, S::Error> {
    let mut proof = Vec::new();
    if old > 0 && old < new {
        subproof(store, old, 0, new, true, &mut proof)?;
    }
    Ok(proof)
}

fn subproof<S: Subtrees>(
    store: &mut S,
    m: u64,
    lo: u64,
    hi: u64,
    whole: bool,
    out: &mut Vec<Hash>,
) -> Result<(), S::Error> {
    if m == hi {
        if !whole {
            out.push(range_hash(store, lo, hi)?);
        }
        return Ok(());
    }
    let k = split_point(hi - lo);
    if m <= lo + k {
        subproof(store, m, lo, lo + k, whole, out)?;
        out.push(range_hash(store, lo + k, hi)?);
    } else {
        subproof(store, m, lo + k, hi, false, out)?;
        out.push(range_hash(store, lo, lo + k)?);
    }
    Ok(())
}

/// Checks an inclusion proof (RFC 9162 section 2.1.3.2).
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

/// Checks a consistency proof (RFC 9162 section 2.1.4.2).
pub fn verify_consistency(old: u64, new: u64, old_root: &Hash, new_root: &Hash, proof: &[Hash]) -> bool {
    if old > new {
        return false;
    }
    if old == new {
        return proof.is_empty() && old_root == new_root;
    }
    if old == 0 {
        return proof.is_empty();
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else { return false };
    let (mut fnode, mut snode) = (old - 1, new - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    fr == *old_root && sr == *new_root && snode == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Subtrees computed from the leaves themselves.
    struct Leaves(Vec<Hash>);

    impl Subtrees for Leaves {
        type Error = std::convert::Infallible;
        fn subtree(&mut self, level: u8, index: u64) -> Result<Hash, Self::Error> {
            let start = (index << level) as usize;
            Ok(fold_complete(&self.0[start..start + (1usize << level)]))
        }
    }

    /// RFC 6962 MTH, straight from its definition.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split_point(n as u64) as usize;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn leaves(n: u64) -> Leaves {
        Leaves((0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect())
    }

    #[test]
    fn empty_and_single_leaf_roots() {
        assert_eq!(hex::encode(empty_root()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        let mut one = leaves(1);
        assert_eq!(root(&mut one, 1).unwrap(), one.0[0]);
        // RFC 6962 test vector: the leaf hash of the empty entry.
        assert_eq!(hex::encode(leaf_hash(b"")), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
    }

    proptest! {
        #[test]
        fn roots_match_the_definition(n in 1u64..300) {
            let mut store = leaves(n);
            prop_assert_eq!(root(&mut store, n).unwrap(), mth(&store.0.clone()));
        }

        #[test]
        fn inclusion_proofs_verify_and_bind(n in 1u64..300, pick in any::<u64>()) {
            let mut store = leaves(n);
            let index = pick % n;
            let r = root(&mut store, n).unwrap();
            let proof = inclusion_proof(&mut store, index, n).unwrap();
            let leaf = store.0[index as usize];
            prop_assert!(verify_inclusion(index, n, &leaf, &proof, &r));
            prop_assert!(!verify_inclusion(index, n, &leaf_hash(b"other"), &proof, &r));
            prop_assert!(!verify_inclusion(index + n, n, &leaf, &proof, &r));
            if !proof.is_empty() {
                let mut bad = proof.clone();
                bad[0][0] ^= 1;
                prop_assert!(!verify_inclusion(index, n, &leaf, &bad, &r));
                prop_assert!(!verify_inclusion(index, n, &leaf, &proof[1..], &r));
            }
        }

        #[test]
        fn consistency_proofs_verify_and_bind(new in 1u64..300, pick in any::<u64>()) {
            let mut store = leaves(new);
            let old = pick % new + 1;
            let old_root = mth(&store.0[..old as usize]);
            let new_root = root(&mut store, new).unwrap();
            let proof = consistency_proof(&mut store, old, new).unwrap();
            prop_assert!(verify_consistency(old, new, &old_root, &new_root, &proof));
            prop_assert!(!verify_consistency(old, new, &leaf_hash(b"x"), &new_root, &proof));
            if old < new {
                prop_assert!(!verify_consistency(old, new, &old_root, &leaf_hash(b"x"), &proof));
                let mut bad = proof.clone();
                let last = bad.len() - 1;
                bad[last][5] ^= 0x80;
                prop_assert!(!verify_consistency(old, new, &old_root, &new_root, &bad));
            }
        }
    }
}
