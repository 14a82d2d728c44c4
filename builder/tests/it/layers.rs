//! The layering of `builder/src` (the code map of `ARCHITECTURE.md`): every `crate::<module>` path in a layer's code
//! names a layer it may depend on. Comments are not code and do not count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module of the library and the modules it may use (besides itself). Keep in step with the "may
/// depend on" column of `ARCHITECTURE.md`.
const ALLOWED: &[(&str, &[&str])] = &[
    ("sys", &[]),
    ("display", &[]),
    ("units", &[]),
    ("format", &["sys", "display"]),
    ("recipe", &["format", "units"]),
    ("seal", &["recipe", "format", "sys"]),
    ("qemu", &["units"]),
    ("manifest", &["qemu", "format", "sys"]),
    ("build", &["sys", "display", "units", "format", "recipe", "seal", "qemu", "manifest"]),
    ("diff", &["format", "display", "sys"]),
    ("verify", &["build", "diff", "manifest", "recipe", "format", "sys"]),
    ("evidence", &["manifest"]),
    ("publish", &["manifest", "sys"]),
    ("fuzzing", &["diff", "evidence", "format", "manifest", "publish", "seal", "recipe"]),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`format/cpio/read.rs` -> `format`, `manifest.rs` -> `manifest`).
fn layer_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_string()
}

/// Every module named as `crate::<name>` on a line that is not a comment.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            found.insert(name);
            rest = after;
        }
    }
    found
}

#[test]
fn every_layer_uses_only_the_layers_it_may_depend_on() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut checked = 0;
    let mut violations = Vec::new();
    for file in &files {
        let layer = layer_of(&src, file);
        if matches!(layer.as_str(), "cli" | "main" | "lib") {
            continue; // the binary may use everything; lib.rs only declares modules
        }
        let Some(may) = allowed.get(layer.as_str()) else {
            panic!("{}: layer `{layer}` is not in the code map (ALLOWED and ARCHITECTURE.md)", file.display());
        };
        for used in crate_paths(&std::fs::read_to_string(file).unwrap()) {
            if used != layer && !may.contains(&used.as_str()) {
                violations.push(format!("{} ({layer}) uses crate::{used}", file.strip_prefix(&src).unwrap().display()));
            }
        }
        checked += 1;
    }
    assert!(checked > 50, "only {checked} files checked: is `src/` where it should be?");
    assert!(violations.is_empty(), "layering violations:\n{}", violations.join("\n"));
}

#[test]
fn the_cli_is_not_part_of_the_library() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    assert!(!lib.lines().any(|l| l.trim_start().starts_with("pub mod cli") || l.trim() == "mod cli;"), "{lib}");
    let main = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/main.rs")).unwrap();
    assert!(main.lines().any(|l| l.trim() == "mod cli;"), "{main}");
}

#[test]
fn crate_paths_ignore_comments_and_find_every_module() {
    let text = "use crate::format::cpio;\n// crate::build in a comment\nlet x = crate::sys::a(crate::display::b);";
    let found: Vec<String> = crate_paths(text).into_iter().collect();
    assert_eq!(found, ["display", "format", "sys"]);
}

/// The modules that read untrusted bytes (archives, ELF, kernel images and configs, manifests, recipe values, the
/// kernel command line, module trees, the inputs of a diff) deny panics, `expect` and unchecked indexing outside
/// their tests (`ARCHITECTURE.md`, invariants). A new reader joins this list.
const PARSERS: &[&str] = &[
    "diff/archive.rs",
    "diff/json.rs",
    "diff/kernel.rs",
    "diff/text.rs",
    "format/bzimage.rs",
    "format/compress/decode.rs",
    "format/compress/read.rs",
    "format/cpio/read.rs",
    "format/elf.rs",
    "format/error.rs",
    "format/io.rs",
    "format/kconfig.rs",
    "format/tar/bundle.rs",
    "format/tar/read.rs",
    "manifest.rs",
    "recipe/values.rs",
    "seal/cmdline.rs",
    "seal/linkage.rs",
    "seal/modules.rs",
    "seal/signatures.rs",
];

#[test]
fn parser_modules_deny_panics_and_unchecked_indexing() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lint = "#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]";
    let missing: Vec<&str> =
        PARSERS.iter().copied().filter(|f| !std::fs::read_to_string(src.join(f)).unwrap().contains(lint)).collect();
    assert!(missing.is_empty(), "parser modules without `{lint}`: {missing:?}");
}
