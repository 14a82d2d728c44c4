//! Cloudflare's C2SP implementations read what `cvmforge log` writes: `tlog_tiles` parses our checkpoints, reads our
//! tiles through its own `TileHashReader` (which authenticates them against the checkpoint's root), computes the same
//! root and the same inclusion and consistency proofs, and checks ours; `signed_note` verifies our checkpoint
//! signatures with our verifier-key string.
//!
//! One difference is bridged here: `tlog_tiles` 0.2's `Tile::path` writes the older Go sumdb layout
//! (`tile/8/<L>/<N>`, `tile/8/data/<N>`), while C2SP tlog-tiles (which we write) drops the height
//! (`tile/<L>/<N>`, `tile/entries/<N>`); the reader below maps the crate's tile coordinates to C2SP paths.

use std::path::PathBuf;

use cvmforge::publish::log::{
    note, proof, source::DirSource, store::TileStore, tiles, tree, writer, KeyKind, NoteVerifier,
};
use ed25519_dalek::SigningKey;

struct C2spTiles(PathBuf);

impl tlog_tiles::TileReader for C2spTiles {
    fn height(&self) -> u8 {
        8
    }

    fn read_tiles(&self, wanted: &[tlog_tiles::Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
        Ok(wanted
            .iter()
            .map(|t| {
                let id = tiles::TileId { level: Some(t.level()), index: t.level_index(), width: u64::from(t.width()) };
                std::fs::read(self.0.join(id.path())).unwrap_or_default()
            })
            .collect())
    }

    fn save_tiles(&self, _: &[tlog_tiles::Tile], _: &[Vec<u8>]) {}
}

fn entry(i: u64) -> Vec<u8> {
    format!("entry {i}").into_bytes()
}

#[test]
fn tlog_tiles_and_signed_note_read_a_log_written_by_cvmforge() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("L");
    let key = SigningKey::from_bytes(&[9; 32]);
    writer::init(&log, "example.org/interop", &key, &[]).unwrap();
    // 70,000 entries: three tile levels, full and partial tiles at each.
    let mut old_checkpoint = None;
    for batch in 0..7u64 {
        let entries: Vec<Vec<u8>> = (batch * 10_000..(batch + 1) * 10_000).map(entry).collect();
        let done = writer::append_unchecked(&log, &key, &entries).unwrap();
        if batch == 2 {
            old_checkpoint = Some(done.checkpoint);
        }
    }
    let old = old_checkpoint.unwrap();
    let bytes = std::fs::read(log.join("checkpoint")).unwrap();

    // signed_note: the note parses and our verifier key verifies it.
    let vkey =
        NoteVerifier { name: "example.org/interop".into(), key: key.verifying_key(), kind: KeyKind::Log }.to_vkey();
    let verifier = signed_note::StandardVerifier::new(&vkey).unwrap();
    let parsed = signed_note::Note::from_bytes(&bytes).unwrap();
    let (verified, unverified) = parsed.verify(&signed_note::VerifierList::new(vec![Box::new(verifier)])).unwrap();
    assert_eq!((verified.len(), unverified.len()), (1, 0));

    // tlog_tiles: the checkpoint parses to the same size and root.
    let checkpoint = tlog_tiles::Checkpoint::from_bytes(parsed.text()).unwrap();
    let ours = note::Checkpoint::parse(std::str::from_utf8(parsed.text()).unwrap()).unwrap();
    assert_eq!(
        (checkpoint.origin(), checkpoint.size(), checkpoint.hash().0),
        ("example.org/interop", 70_000, ours.root)
    );

    // Its tile reader authenticates our tiles against the root, and its tree math agrees with ours.
    let reader = C2spTiles(log.clone());
    let hashes = tlog_tiles::TileHashReader::new(ours.size, tlog_tiles::Hash(ours.root), &reader);
    assert_eq!(tlog_tiles::tree_hash(ours.size, &hashes).unwrap().0, ours.root);
    let source = DirSource(log.clone());
    for index in [0u64, 255, 256, 65_535, 65_536, 69_999] {
        let theirs = tlog_tiles::prove_record(ours.size, index, &hashes).unwrap();
        let mut store = TileStore::new(&source, ours.size);
        let mine = tree::inclusion_proof(&mut store, index, ours.size).unwrap();
        assert_eq!(theirs.iter().map(|h| h.0).collect::<Vec<_>>(), mine, "index {index}");
        // Our proof file, checked by the crate.
        let proved = proof::prove(&source, &cvmforge::publish::log::LogKey::Bare(key.verifying_key()), index).unwrap();
        let file = proof::parse(proved.text.as_bytes()).unwrap();
        let leaf = tlog_tiles::record_hash(&entry(index));
        let path: Vec<tlog_tiles::Hash> = file.hashes.iter().map(|h| tlog_tiles::Hash(*h)).collect();
        tlog_tiles::check_record(&path, ours.size, tlog_tiles::Hash(ours.root), index, leaf).unwrap();
    }
    // Consistency from the 30,000-entry checkpoint to the current one.
    let theirs = tlog_tiles::prove_tree(ours.size, old.size, &hashes).unwrap();
    let mine = tree::consistency_proof(&mut TileStore::new(&source, ours.size), old.size, ours.size).unwrap();
    assert_eq!(theirs.iter().map(|h| h.0).collect::<Vec<_>>(), mine);
    let mine_as_theirs: Vec<tlog_tiles::Hash> = mine.iter().map(|h| tlog_tiles::Hash(*h)).collect();
    tlog_tiles::check_tree(
        &mine_as_theirs,
        ours.size,
        tlog_tiles::Hash(ours.root),
        old.size,
        tlog_tiles::Hash(old.root),
    )
    .unwrap();
}
