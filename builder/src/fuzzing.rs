//! Entry points of the fuzz targets (`fuzz/fuzz_targets/`), in one place so that the targets do not depend on where
//! a reader lives in the crate. Each runs a parser of untrusted bytes (which must never panic) and checks a round trip
//! or an agreement between two readers.

use std::collections::BTreeSet;

use crate::format::elf::{section_bytes, sections, ElfInfo};
use crate::seal::linkage::{require_interpreter, require_static_init};
use crate::seal::signatures::{match_file_name, scan_content, FileKind, SIGNATURES};

pub use crate::diff::fuzzing::manifest_diff;
pub use crate::evidence::snp::fuzz_fields as snp_report;
pub use crate::evidence::tdx::fuzz_quote as tdx_quote;
pub use crate::format::fuzzing::{cpio_reader, tar_reader};
pub use crate::format::kconfig::fuzz_parse as kconfig;
pub use crate::manifest::fuzz_parse as manifest;
pub use crate::seal::cmdline::fuzz_parse as cmdline;

/// Entry point of the `tlog` fuzz target: the parsers of a transparency log's untrusted files (a signed note and its
/// checkpoint, a tlog-proof, an entry bundle, a tile path). None may panic; what parses must write back to the same
/// bytes (notes, paths) or to entries that re-encode to the input (bundles).
pub fn tlog(data: &[u8]) {
    use crate::publish::log::{note, proof, tiles};
    if let Ok(n) = note::Note::parse(data) {
        assert_eq!(n.to_bytes(), data, "a parsed note must serialize to its bytes");
        if let Ok(c) = note::Checkpoint::parse(&n.text) {
            assert_eq!(c.text(), n.text, "a parsed checkpoint must serialize to its text");
        }
    }
    let _ = proof::parse(data);
    let width = u64::from(data.first().copied().unwrap_or(0)) + 1;
    if let Ok(entries) = tiles::parse_bundle(data, width) {
        let mut again = Vec::new();
        for e in &entries {
            tiles::push_bundle_entry(&mut again, e);
        }
        assert_eq!(again, data, "a parsed bundle must re-encode to its bytes");
    }
    if let Some(id) = tiles::TileId::parse(&String::from_utf8_lossy(data)) {
        assert_eq!(id.path().as_bytes(), data, "a parsed tile path must print as itself");
    }
}

/// Entry point of the `tar_differential` fuzz target: whatever our tar reader accepts, the `tar` crate must read as
/// the same entries (`crate::format::tar::differential`).
pub fn tar_differential(data: &[u8]) {
    let limits = crate::format::Limits { max_entries: 256, max_total_size: 1 << 20, ..Default::default() };
    if let crate::format::tar::differential::Agreement::Differ { ours, theirs } =
        crate::format::tar::differential::compare(data, &limits)
    {
        panic!("our tar reader accepted {ours:?}, the tar crate read {theirs:?}");
    }
}

/// Entry point of the `elf` fuzz target: runs every ELF parser and check on arbitrary bytes. Parsing must never panic,
/// and a file's [`ElfInfo`] must not change when it is read through [`scan_content`]'s chunked reader rather than
/// from memory (the scan's file kind agrees with the parse).
pub fn elf(data: &[u8]) {
    let info = ElfInfo::parse(data);
    if let Ok(info) = &info {
        let present: BTreeSet<String> = ["/lib64/ld-linux-x86-64.so.2".to_string()].into();
        let _ = require_interpreter("/fuzz", info, &present);
        let _ = require_static_init("/init", info);
    }
    if let Ok(list) = sections(data) {
        for s in &list {
            let _ = section_bytes(data, &s.name);
        }
    }
    let _ = section_bytes(data, ".modinfo");
    let _ = match_file_name(&String::from_utf8_lossy(data), SIGNATURES);
    if let Ok(scan) = scan_content(data, SIGNATURES) {
        // Whatever parses as ELF starts with the ELF magic, so the scanner must classify it as ELF.
        assert!(info.is_err() || scan.kind == FileKind::Elf, "parsed as ELF but scanned as {:?}", scan.kind);
    }
}

#[cfg(test)]
mod tests {
    use crate::format::elf::testing::executable;

    proptest::proptest! {
        #[test]
        fn fuzz_entry_point_holds(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600), elf in proptest::prelude::any::<bool>()) {
            let mut bytes = bytes;
            if elf {
                let mut prefixed = executable(Some("/lib64/ld-linux-x86-64.so.2"));
                prefixed.truncate(64);
                prefixed.extend_from_slice(&bytes);
                bytes = prefixed;
            }
            super::elf(&bytes);
        }
    }

    /// Every one-byte change of a small bundle: where our reader still accepts it, the `tar` crate agrees.
    #[test]
    fn tar_differential_holds_on_every_one_byte_mutation_of_a_bundle() {
        use crate::format::tar::differential::{compare, Agreement};
        let mut w = crate::format::tar::TarWriter::new(Vec::new(), 1_700_000_000);
        w.add_file("kernel", 0o644, 5, &mut &b"bzImg"[..]).unwrap();
        w.add_file("manifest.json", 0o644, 3, &mut &b"{}\n"[..]).unwrap();
        let bundle = w.finish().unwrap();
        let limits = crate::format::Limits::default();
        let mut accepted = 0;
        for at in 0..bundle.len() {
            for value in [0u8, b'0', b'7', 0xff] {
                let mut mutated = bundle.clone();
                mutated[at] = value;
                super::tar_differential(&mutated);
                accepted += usize::from(matches!(compare(&mutated, &limits), Agreement::Same(_)));
            }
        }
        assert!(accepted > 1000, "only {accepted} mutations were read by our reader: the comparison ran too little");
    }

    /// The `tlog` entry point on a real checkpoint, a real proof's shape, and every one-byte change of the checkpoint.
    #[test]
    fn tlog_entry_point_holds_on_real_and_mutated_notes() {
        use crate::publish::log::note::{Checkpoint, Note};
        let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let cp = Checkpoint { origin: "example.org/log".into(), size: 300, root: [7; 32] };
        let note = Note::sign(&cp.text(), "example.org/log", &key).unwrap().to_bytes();
        super::tlog(&note);
        super::tlog(b"tile/0/x001/234.p/17");
        super::tlog(&[2, 0, 1, 0xaa, 0, 0]);
        for at in 0..note.len() {
            let mut mutated = note.clone();
            mutated[at] ^= 0x20;
            super::tlog(&mutated);
        }
    }
}
