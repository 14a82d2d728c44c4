//! Build script: records the exact versions of the compression libraries that determine the initrd bytes.
//!
//! A deflate stream depends on the deflate implementation and its version (docs/specs/reproducibility.md), so the
//! manifest must name them. The version is read from the workspace's Cargo.lock, the resolution this very build uses,
//! so it cannot drift from the code that is compiled in.

use std::collections::BTreeSet;
use std::path::Path;

/// Crates whose resolved version is exported as `CVMFORGE_VERSION_<NAME>` (dashes become underscores, uppercase).
const PINNED: [&str; 2] = ["zlib-rs", "flate2"];

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".to_string());
    let lock_path = Path::new(&manifest_dir).join("..").join("Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock_path.display());
    println!("cargo:rerun-if-changed=build.rs");
    let lock = match std::fs::read_to_string(&lock_path) {
        Ok(text) => text,
        Err(error) => panic!(
            "cvmforge must be built inside its workspace: reading {} (to record the compressor versions) failed: {error}",
            lock_path.display()
        ),
    };
    for name in PINNED {
        let versions = locked_versions(&lock, name);
        let mut iter = versions.iter();
        match (iter.next(), iter.next()) {
            (Some(version), None) => {
                let var = format!("CVMFORGE_VERSION_{}", name.replace('-', "_").to_uppercase());
                println!("cargo:rustc-env={var}={version}");
            }
            _ => panic!("Cargo.lock must contain exactly one version of `{name}`, found {versions:?}"),
        }
    }
}

/// The versions of package `name` in a Cargo.lock (TOML `[[package]]` tables with `name` then `version` lines).
fn locked_versions(lock: &str, name: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut current: Option<&str> = None;
    for line in lock.lines() {
        let line = line.trim();
        if line == "[[package]]" {
            current = None;
        } else if let Some(value) = quoted_value(line, "name") {
            current = Some(value);
        } else if let Some(value) = quoted_value(line, "version") {
            if current == Some(name) {
                found.insert(value.to_string());
            }
        }
    }
    found
}

fn quoted_value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(key)?.trim_start().strip_prefix('=')?.trim();
    rest.strip_prefix('"')?.strip_suffix('"')
}
