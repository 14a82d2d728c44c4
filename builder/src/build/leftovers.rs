//! Temporary files and directories of a build (`.cvmforge-tmp-<pid>-*`, `.cvmforge-old-<pid>-*`,
//! `.cvmforge-lock-<pid>-*`) never outlive it for long:
//!
//! - each carries the pid of the build that made it, and is registered here while it exists;
//! - on SIGINT, SIGTERM or SIGHUP, [`install_signal_cleanup`]'s thread removes every registered path and exits
//!   (130, 143 or 129, as a shell reports a signal);
//! - a build killed with SIGKILL cannot clean up, so the next build in the same directory removes leftovers whose
//!   owner process is gone (`remove_stale`), and says so. Only names of this shape are ever removed: nothing that
//!   cvmforge did not create.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The prefixes of every temporary name a build makes beside its output or its lock.
pub(crate) const PREFIXES: [&str; 3] = [".cvmforge-tmp-", ".cvmforge-old-", ".cvmforge-lock-"];

/// Paths to remove if the process is stopped by a signal.
static REGISTERED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// `<prefix><pid>-`: the prefix a temporary name of this process starts with.
pub(crate) fn prefix(base: &str) -> String {
    format!("{base}{}-", std::process::id())
}

/// Remembers `path` for removal on a signal.
pub(crate) fn register(path: &Path) {
    if let Ok(mut paths) = REGISTERED.lock() {
        paths.push(path.to_path_buf());
    }
}

/// Forgets `path` (it was renamed into place or removed).
pub(crate) fn unregister(path: &Path) {
    if let Ok(mut paths) = REGISTERED.lock() {
        paths.retain(|p| p != path);
    }
}

/// Starts a thread that, on SIGINT, SIGTERM or SIGHUP, removes the registered paths and exits. Called once by the
/// `build` command (the library itself installs no handler).
pub fn install_signal_cleanup() -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new().name("cleanup-on-signal".into()).spawn(move || {
        if let Some(signal) = signals.forever().next() {
            if let Ok(paths) = REGISTERED.lock() {
                for path in paths.iter() {
                    let _ = std::fs::remove_dir_all(path).or_else(|_| std::fs::remove_file(path));
                }
            }
            std::process::exit(128 + signal);
        }
    })?;
    Ok(())
}

/// Removes, from `dir`, temporary names of builds whose process no longer runs; returns what was removed.
pub(crate) fn remove_stale(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut removed = Vec::new();
    let mut names: Vec<_> = entries.filter_map(Result::ok).map(|e| e.file_name()).collect();
    names.sort();
    for name in names {
        let Some(pid) = name.to_str().and_then(owner_pid) else { continue };
        if process_exists(pid) {
            continue;
        }
        let path = dir.join(&name);
        let gone = match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&path).is_ok(),
            Ok(_) => std::fs::remove_file(&path).is_ok(),
            Err(_) => false,
        };
        if gone {
            removed.push(path);
        }
    }
    removed
}

/// The pid in `<prefix><pid>-<random>`, if `name` has that shape.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = PREFIXES.iter().find_map(|p| name.strip_prefix(p))?;
    let (pid, random) = rest.split_once('-')?;
    if random.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_owner_from_our_names_only() {
        assert_eq!(owner_pid(".cvmforge-tmp-1234-Ab3xYz"), Some(1234));
        assert_eq!(owner_pid(".cvmforge-old-7-x"), Some(7));
        assert_eq!(owner_pid(".cvmforge-lock-99-q1w2e3"), Some(99));
        for other in [".cvmforge-tmp-Ab3xYz", ".cvmforge-tmp-12-", "cvmforge-tmp-1-a", "id-key.pem", ".cvmforge-x-1-a"]
        {
            assert_eq!(owner_pid(other), None, "{other}");
        }
    }

    #[test]
    fn removes_only_leftovers_whose_owner_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        // pid 0 is never a process of ours (and /proc/0 does not exist); our own pid is alive.
        let dead = dir.path().join(".cvmforge-tmp-0-abc");
        let alive = dir.path().join(format!(".cvmforge-tmp-{}-abc", std::process::id()));
        let foreign = dir.path().join("notes.txt");
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join("initrd.img"), b"partial").unwrap();
        std::fs::create_dir(&alive).unwrap();
        std::fs::write(&foreign, b"mine").unwrap();
        assert_eq!(remove_stale(dir.path()), vec![dead.clone()]);
        assert!(!dead.exists() && alive.exists() && foreign.exists());
    }
}
