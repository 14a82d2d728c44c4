//! Entry points of the fuzz targets (`fuzz/fuzz_targets/`), in one place so that the targets do not depend on where
//! a reader lives in the crate. Each runs a parser of untrusted bytes (which must never panic) and checks a round trip
//! or an agreement between two readers.

use std::collections::BTreeSet;

use crate::format::elf::{section_bytes, sections, ElfInfo};
use crate::seal::linkage::{require_interpreter, require_static_init};
use crate::seal::signatures::{match_file_name, scan_content, FileKind, SIGNATURES};

pub use crate::diff::fuzzing::manifest_diff;
pub use crate::format::fuzzing::{cpio_reader, tar_reader};
pub use crate::format::kconfig::fuzz_parse as kconfig;
pub use crate::manifest::fuzz_parse as manifest;
pub use crate::seal::cmdline::fuzz_parse as cmdline;

/// reader rather than from memory (the scan's file kind agrees with the parse).
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
}
