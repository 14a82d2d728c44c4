//! Content signatures of forbidden programs (shells, SSH servers, getty/login): the table, and a bounded-memory
//! scanner that looks for them in an initrd file of any size.

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::collections::BTreeSet;
use std::io::{self, Read};

use serde::Serialize;

use crate::format::elf::ELF_MAGIC;
use crate::seal::policy::Category;
use crate::sys::io::read_full;

/// A forbidden program: its policy item name, file names it is installed under, and byte strings found in its
/// binary.
#[derive(Debug, Clone, Copy)]
pub struct Signature {
    /// Policy item name (what a waiver names), e.g. `sshd`.
    pub item: &'static str,
    /// Policy category.
    pub category: Category,
    /// Basenames the program is installed under.
    pub file_names: &'static [&'static str],
    /// Byte strings that occur in its ELF binary (version banners, usage texts), each with a short description.
    pub content: &'static [(&'static [u8], &'static str)],
}

/// The table of forbidden programs. Each content string was checked against Debian 12 (bookworm) amd64 binaries:
/// bash 5.2, dash 0.5.12, openssh-client 9.2p1, login 4.13, util-linux agetty 2.38, busybox-static 1.35.0,
/// dropbear-bin 2022.83 and zsh 5.9 (see `tests/it/seal.rs` `real_binaries_match_their_signatures`).
pub const SIGNATURES: &[Signature] = &[
    Signature {
        item: "sshd",
        category: Category::RemoteAccess,
        file_names: &["sshd", "sshd-session", "sshd-auth"],
        content: &[(b"OpenSSH_", "OpenSSH version banner")],
    },
    Signature {
        item: "dropbear",
        category: Category::RemoteAccess,
        file_names: &["dropbear", "dropbearmulti"],
        content: &[(b"SSH-2.0-dropbear", "Dropbear SSH identification string")],
    },
    Signature {
        item: "telnetd",
        category: Category::RemoteAccess,
        file_names: &["telnetd", "in.telnetd", "utelnetd"],
        content: &[],
    },
    Signature {
        item: "getty",
        category: Category::ConsoleLogin,
        file_names: &["getty", "agetty", "mingetty", "fgetty", "mgetty"],
        content: &[(b"/run/agetty.reload", "util-linux agetty reload path")],
    },
    Signature {
        item: "login",
        category: Category::ConsoleLogin,
        file_names: &["login", "sulogin", "su"],
        content: &[(b"%s login: ", "login prompt")],
    },
    Signature {
        item: "sh",
        category: Category::Shell,
        file_names: &["sh", "ash", "ksh", "mksh", "csh", "tcsh", "fish", "rbash"],
        content: &[],
    },
    Signature {
        item: "bash",
        category: Category::Shell,
        file_names: &["bash"],
        content: &[(b"GNU bash, version ", "GNU bash version banner"), (b"@(#)Bash version", "bash SCCS id")],
    },
    Signature {
        item: "busybox",
        category: Category::Shell,
        file_names: &["busybox"],
        content: &[(b"BusyBox v", "BusyBox version banner")],
    },
    Signature {
        item: "dash",
        category: Category::Shell,
        file_names: &["dash"],
        content: &[(b"sh: turning off NDELAY mode", "dash/ash input message")],
    },
    Signature {
        item: "zsh",
        category: Category::Shell,
        file_names: &["zsh"],
        content: &[(b"ZSH_VERSION", "zsh version parameter")],
    },
];

/// A signature found in a file's content.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ContentMatch {
    /// Policy item name.
    pub item: &'static str,
    /// What the matched string is.
    pub description: &'static str,
}

/// Size of each read while scanning content.
const SCAN_CHUNK: usize = 256 * 1024;

/// What a scanned file is, judged from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    /// Starts with `\x7fELF`: scanned for content signatures.
    Elf,
    /// Starts with `#!`: an interpreted program.
    Script,
    /// Anything else: data, configuration, model weights.
    Data,
}

/// The outcome of [`scan_content`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentScan {
    /// What the file is.
    pub kind: FileKind,
    /// Signatures found (only ELF files are scanned).
    pub matches: BTreeSet<ContentMatch>,
}

/// Scans a file for the content signatures of `table`, reading it in chunks (bounded memory, any file size).
///
/// Only ELF files are searched; for scripts and data the reader is not read past the first chunk.
pub fn scan_content(mut reader: impl Read, table: &[Signature]) -> io::Result<ContentScan> {
    let needles: Vec<(memchr::memmem::Finder<'static>, ContentMatch)> = table
        .iter()
        .flat_map(|s| s.content.iter().map(move |(bytes, description)| (s.item, *bytes, *description)))
        .map(|(item, bytes, description)| (memchr::memmem::Finder::new(bytes), ContentMatch { item, description }))
        .collect();
    // A match can straddle two chunks: keep the last `overlap` bytes of each window.
    let overlap = needles.iter().map(|(f, _)| f.needle().len()).max().unwrap_or(1).saturating_sub(1);
    let mut window = Vec::with_capacity(SCAN_CHUNK + overlap);
    let mut chunk = vec![0u8; SCAN_CHUNK];
    let mut matches = BTreeSet::new();
    let mut first = true;
    loop {
        let n = read_full(&mut reader, &mut chunk)?;
        let data = chunk.get(..n).unwrap_or_default();
        if first {
            let kind = match data {
                d if d.starts_with(&ELF_MAGIC) => FileKind::Elf,
                d if d.starts_with(b"#!") => FileKind::Script,
                _ => FileKind::Data,
            };
            if kind != FileKind::Elf {
                return Ok(ContentScan { kind, matches });
            }
            first = false;
        }
        window.extend_from_slice(data);
        for (finder, m) in &needles {
            if finder.find(&window).is_some() {
                matches.insert(m.clone());
            }
        }
        if n < chunk.len() {
            return Ok(ContentScan { kind: FileKind::Elf, matches });
        }
        let keep = window.len().saturating_sub(overlap);
        window.drain(..keep);
    }
}

/// The signature whose file names include the basename of `path`, if any.
pub fn match_file_name<'t>(path: &str, table: &'t [Signature]) -> Option<&'t Signature> {
    let base = path.trim_end_matches('/').rsplit('/').next().unwrap_or(path);
    table.iter().find(|s| s.file_names.contains(&base))
}

#[cfg(test)]
mod tests {
    use crate::format::elf::testing::executable;

    use super::*;

    #[test]
    fn scans_signatures_across_chunk_boundaries() {
        let mut file = executable(None);
        file.resize(SCAN_CHUNK - 4, 0);
        file.extend_from_slice(b"GNU bash, version 5.2");
        let found = scan_content(&file[..], SIGNATURES).unwrap();
        assert_eq!(found.kind, FileKind::Elf);
        assert_eq!(found.matches.into_iter().map(|m| m.item).collect::<Vec<_>>(), vec!["bash"]);
        let script = scan_content(&b"#!/bin/sh\nGNU bash, version "[..], SIGNATURES).unwrap();
        assert_eq!(script, ContentScan { kind: FileKind::Script, matches: BTreeSet::new() });
        assert_eq!(scan_content(&b"GNU bash, version "[..], SIGNATURES).unwrap().kind, FileKind::Data);
        assert_eq!(scan_content(&b""[..], SIGNATURES).unwrap().kind, FileKind::Data);
        assert!(scan_content(&executable(None)[..], SIGNATURES).unwrap().matches.is_empty());
    }

    #[test]
    fn detects_host_shells_by_content_if_present() {
        let host = [
            ("/bin/bash", "bash"),
            ("/bin/dash", "dash"),
            ("/usr/bin/ssh", "sshd"),
            ("/bin/login", "login"),
            ("/sbin/agetty", "getty"),
        ];
        for (path, item) in host {
            let Ok(f) = std::fs::File::open(path) else { continue };
            let found = scan_content(f, SIGNATURES).unwrap().matches;
            assert!(found.iter().any(|m| m.item == item), "{path}: {found:?}");
        }
    }

    #[test]
    fn matches_file_names_by_basename() {
        assert_eq!(match_file_name("/usr/sbin/sshd", SIGNATURES).map(|s| s.item), Some("sshd"));
        assert_eq!(match_file_name("bin/sh", SIGNATURES).map(|s| s.item), Some("sh"));
        assert_eq!(match_file_name("/bin/shell-helper", SIGNATURES).map(|s| s.item), None);
    }
}
