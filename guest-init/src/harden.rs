//! Hardening that PID 1 applies before the payload starts, so that the payload (untrusted with respect to the
//! kernel) cannot become root, load kernel code, or reach root-only kernel surface:
//!
//! - [`lock_kernel`], after init's own modules are loaded: `kernel.modules_disabled=1` (no module can be loaded any
//!   more, by anyone), the usermode-helper path `kernel.modprobe` emptied (the kernel then runs no helper for a module
//!   request), and the sysctls of [`SYSCTLS`];
//! - [`seal_root`]: the root directory gets mode 0755 and is remounted read-only, `nosuid`, `nodev`, so that nothing
//!   (a fake `/sbin/modprobe` or `/sbin/request-key`, whose paths are fixed in the kernel) can be written there.
//!
//! A sysctl that this kernel does not have is logged and skipped (it is absent, so it exposes nothing); a write that
//! the kernel refuses is fatal.

use std::io::Write;

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};

/// One setting under `/proc/sys` (or `/sys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sysctl {
    /// The file.
    pub(crate) path: &'static str,
    /// What is written.
    pub(crate) value: &'static str,
    /// Why, for the reader of this table.
    pub(crate) why: &'static str,
}

/// Written in this order, after the modules are loaded.
pub(crate) const SYSCTLS: [Sysctl; 20] = [
    Sysctl { path: "/proc/sys/kernel/modules_disabled", value: "1", why: "no module loads after init's own" },
    Sysctl { path: "/proc/sys/kernel/modprobe", value: "\n", why: "no usermode helper for module requests" },
    Sysctl { path: "/sys/kernel/uevent_helper", value: "\n", why: "no usermode helper for uevents" },
    // A core pattern starting with `|` makes the kernel run that program as root when a process crashes.
    Sysctl { path: "/proc/sys/kernel/core_pattern", value: "core\n", why: "no usermode helper for core dumps" },
    Sysctl { path: "/proc/sys/kernel/kexec_load_disabled", value: "1", why: "no kexec" },
    Sysctl { path: "/proc/sys/kernel/sysrq", value: "0", why: "no magic SysRq from the host's serial line" },
    Sysctl { path: "/proc/sys/kernel/kptr_restrict", value: "2", why: "no kernel addresses" },
    Sysctl { path: "/proc/sys/kernel/dmesg_restrict", value: "1", why: "the kernel log is init's" },
    Sysctl { path: "/proc/sys/kernel/perf_event_paranoid", value: "3", why: "no perf events for the payload" },
    Sysctl { path: "/proc/sys/kernel/unprivileged_bpf_disabled", value: "1", why: "no bpf() for the payload" },
    Sysctl { path: "/proc/sys/net/core/bpf_jit_harden", value: "2", why: "constant blinding in the BPF JIT" },
    Sysctl { path: "/proc/sys/user/max_user_namespaces", value: "0", why: "no user namespaces (root-only code)" },
    Sysctl { path: "/proc/sys/kernel/unprivileged_userns_clone", value: "0", why: "Debian's switch for the same" },
    Sysctl { path: "/proc/sys/vm/unprivileged_userfaultfd", value: "0", why: "no userfaultfd for the payload" },
    Sysctl { path: "/proc/sys/kernel/io_uring_disabled", value: "2", why: "no io_uring (Linux 6.6+)" },
    Sysctl { path: "/proc/sys/kernel/yama/ptrace_scope", value: "3", why: "no ptrace at all" },
    Sysctl { path: "/proc/sys/fs/suid_dumpable", value: "0", why: "no core dumps of privileged processes" },
    Sysctl { path: "/proc/sys/fs/protected_symlinks", value: "1", why: "no symlink tricks in sticky dirs" },
    Sysctl { path: "/proc/sys/fs/protected_fifos", value: "2", why: "no FIFO tricks in sticky dirs" },
    Sysctl { path: "/proc/sys/fs/protected_regular", value: "2", why: "no file tricks in sticky dirs" },
];

/// Why hardening failed (fatal: init powers off).
#[derive(Debug, thiserror::Error)]
pub(crate) enum HardenError {
    /// The kernel refused a setting.
    #[error("cannot set `{path}` to `{value}`")]
    Write {
        path: &'static str,
        value: String,
        #[source]
        source: std::io::Error,
    },
    /// The root directory could not be sealed.
    #[error("cannot make `/` read-only ({step}): {errno}")]
    Root { step: &'static str, errno: Errno },
}

/// Applies [`SYSCTLS`]; returns one log line per setting.
pub(crate) fn lock_kernel() -> Result<Vec<String>, HardenError> {
    let mut log = Vec::new();
    for s in SYSCTLS {
        let shown = s.value.trim_end();
        match std::fs::OpenOptions::new().write(true).open(s.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                log.push(format!("{} is not in this kernel; skipped", s.path));
            }
            Err(source) => return Err(HardenError::Write { path: s.path, value: shown.into(), source }),
            Ok(mut file) => {
                file.write_all(s.value.as_bytes()).map_err(|source| HardenError::Write {
                    path: s.path,
                    value: shown.into(),
                    source,
                })?;
                log.push(format!("set {} = {:?} ({})", s.path, shown, s.why));
            }
        }
    }
    Ok(log)
}

/// Mode 0755 for `/` (the kernel's rootfs is 1777 when the initrd has no entry for it), then a read-only, nosuid,
/// nodev remount. The writable places stay the bounded tmpfs mounts of `mounts`.
pub(crate) fn seal_root() -> Result<(), HardenError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions("/", std::fs::Permissions::from_mode(0o755))
        .map_err(|e| HardenError::Root { step: "chmod 0755", errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)) })?;
    let flags = MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
        .map_err(|errno| HardenError::Root { step: "remount read-only, nosuid, nodev", errno })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_modules_first_and_covers_the_review_findings() {
        assert_eq!(SYSCTLS[0].path, "/proc/sys/kernel/modules_disabled");
        let paths: Vec<&str> = SYSCTLS.iter().map(|s| s.path).collect();
        for needed in [
            "/proc/sys/kernel/modprobe",
            "/proc/sys/kernel/core_pattern",
            "/proc/sys/user/max_user_namespaces",
            "/proc/sys/kernel/sysrq",
            "/proc/sys/kernel/kptr_restrict",
        ] {
            assert!(paths.contains(&needed), "{needed}");
        }
        let mut sorted = paths.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), paths.len(), "no setting twice");
    }
}
