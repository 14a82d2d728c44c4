//! The boot-time self-check: after hardening and before the payload starts, init tries the kernel interfaces that a
//! sealed guest must not have and logs what it finds, one line each, so that whoever reads the console (the boot
//! test, an operator) sees what the payload faces, not what the configuration promised:
//!
//! - `/dev/mem` does not exist (`CONFIG_DEVMEM` off);
//! - `kexec_load` fails with ENOSYS (no kexec in the kernel) or EPERM (`kexec_load_disabled`, lockdown);
//! - `init_module` fails with ENOSYS (no modules) or EPERM (`modules_disabled`);
//! - `/sys/kernel/security/lockdown` reads `[confidentiality]`;
//! - no debugfs: `/proc/filesystems` does not list it.
//!
//! A finding is logged, not fatal: the stock demo kernel has debugfs and `/dev/mem` (lockdown guards them, and the
//! recipe waives them with reasons); the sealed kernel must pass every check, which its boot test asserts.

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// What was checked.
    pub(crate) item: &'static str,
    /// What was found.
    pub(crate) found: String,
    /// Whether that is what a sealed guest has.
    pub(crate) ok: bool,
}

/// Runs every check; returns one log line each and a summary line.
pub(crate) fn run() -> Vec<String> {
    let outcomes = [dev_mem(), kexec_load(), init_module(), lockdown(), debugfs()];
    let mut lines: Vec<String> = outcomes
        .iter()
        .map(|o| format!("selfcheck: {}: {}: {}", o.item, o.found, if o.ok { "ok" } else { "FINDING" }))
        .collect();
    let passed = outcomes.iter().filter(|o| o.ok).count();
    lines.push(format!("selfcheck: {passed} of {} checks ok", outcomes.len()));
    lines
}

fn dev_mem() -> Outcome {
    let present = std::fs::symlink_metadata("/dev/mem").is_ok();
    Outcome { item: "/dev/mem", found: if present { "present".into() } else { "absent".into() }, ok: !present }
}

/// The errno of a raw system call that is expected to fail, or `None` when it succeeded.
fn syscall_errno(result: nix::libc::c_long) -> Option<Errno> {
    (result == -1).then(Errno::last)
}

/// `kexec_load` has no safe wrapper in nix or std, so this is the one raw system call here.
#[allow(unsafe_code)]
fn kexec_load() -> Outcome {
    // No segments, no flags: on a kernel that allowed it, this would unload any loaded kexec image (harmless).
    // SAFETY: kexec_load with zero segments reads no user memory.
    let result =
        unsafe { nix::libc::syscall(nix::libc::SYS_kexec_load, 0usize, 0usize, std::ptr::null::<u8>(), 0usize) };
    refused("kexec_load", syscall_errno(result))
}

fn init_module() -> Outcome {
    // An empty image: a kernel that took module loads at all would reject it only after the permission checks.
    refused("init_module", nix::kmod::init_module(&[], c"").err())
}

/// A call that a sealed guest refuses with ENOSYS or EPERM.
fn refused(item: &'static str, errno: Option<Errno>) -> Outcome {
    match errno {
        None => Outcome { item, found: "succeeded".into(), ok: false },
        Some(e @ (Errno::ENOSYS | Errno::EPERM)) => {
            Outcome { item, found: format!("fails with {}", e.desc()), ok: true }
        }
        Some(e) => {
            Outcome { item, found: format!("fails with {} (the kernel accepted the call)", e.desc()), ok: false }
        }
    }
}

fn kernel_has_filesystem(name: &str) -> bool {
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    filesystems.lines().any(|l| l.split_whitespace().last() == Some(name))
}

fn lockdown() -> Outcome {
    let item = "lockdown";
    let path = "/sys/kernel/security/lockdown";
    if !std::path::Path::new(path).exists() && kernel_has_filesystem("securityfs") {
        // Read-only: init only reads the lockdown state.
        let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        if let Err(e) = mount(Some("securityfs"), "/sys/kernel/security", Some("securityfs"), flags, None::<&str>) {
            return Outcome { item, found: format!("cannot mount securityfs: {e}"), ok: false };
        }
    }
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let text = text.trim().to_string();
            let ok = text.contains("[confidentiality]");
            Outcome { item, found: text, ok }
        }
        Err(e) => Outcome { item, found: format!("cannot read {path}: {e}"), ok: false },
    }
}

fn debugfs() -> Outcome {
    let present = kernel_has_filesystem("debugfs");
    let found = if present { "in this kernel (not mounted)" } else { "not in this kernel" };
    Outcome { item: "debugfs", found: found.into(), ok: !present }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_enosys_and_eperm_count_as_refused() {
        assert!(refused("x", Some(Errno::ENOSYS)).ok);
        assert!(refused("x", Some(Errno::EPERM)).ok);
        assert!(!refused("x", Some(Errno::EINVAL)).ok);
        assert!(!refused("x", None).ok);
        assert_eq!(refused("x", None).found, "succeeded");
    }
}
