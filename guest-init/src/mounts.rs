//! The API filesystems PID 1 mounts. Nothing persistent: no block device is
//! ever mounted, every writable place is a tmpfs that vanishes at power-off.

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};

/// One mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MountSpec {
    /// Filesystem type, also used as the source name.
    pub(crate) fstype: &'static str,
    /// Mount point.
    pub(crate) target: &'static str,
    /// Mount flags.
    pub(crate) flags: MsFlags,
    /// Filesystem options.
    pub(crate) data: &'static str,
}

const NOSUID_NODEV: MsFlags = MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV);
const NOSUID_NODEV_NOEXEC: MsFlags = NOSUID_NODEV.union(MsFlags::MS_NOEXEC);

/// The mounts, in order. Only virtual filesystems; `/dev` is devtmpfs (needs
/// `CONFIG_DEVTMPFS`), so device nodes come from the kernel, not the initrd.
pub(crate) const MOUNTS: [MountSpec; 5] = [
    // hidepid: the payload sees no other process (init's included).
    MountSpec { fstype: "proc", target: "/proc", flags: NOSUID_NODEV_NOEXEC, data: "hidepid=invisible" },
    MountSpec { fstype: "sysfs", target: "/sys", flags: NOSUID_NODEV_NOEXEC, data: "" },
    MountSpec {
        fstype: "devtmpfs",
        target: "/dev",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC),
        data: "mode=0755",
    },
    // Every tmpfs is bounded in bytes and inodes: a payload cannot fill the guest's memory through them.
    MountSpec {
        fstype: "tmpfs",
        target: "/tmp",
        flags: NOSUID_NODEV_NOEXEC,
        data: "mode=1777,size=16m,nr_inodes=4096",
    },
    MountSpec { fstype: "tmpfs", target: "/run", flags: NOSUID_NODEV, data: "mode=0755,size=1m,nr_inodes=256" },
];

/// Why a mount failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MountError {
    /// The mount point could not be created.
    #[error("cannot create mount point `{target}`")]
    MakeDir {
        target: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// mount(2) failed.
    #[error("mounting {fstype} on `{target}` failed: {errno}")]
    Mount { fstype: &'static str, target: &'static str, errno: Errno },
}

impl MountSpec {
    /// Creates the mount point if needed and mounts.
    pub(crate) fn apply(&self) -> Result<(), MountError> {
        std::fs::create_dir_all(self.target).map_err(|source| MountError::MakeDir { target: self.target, source })?;
        let data = (!self.data.is_empty()).then_some(self.data);
        mount(Some(self.fstype), self.target, Some(self.fstype), self.flags, data).map_err(|errno| MountError::Mount {
            fstype: self.fstype,
            target: self.target,
            errno,
        })
    }
}

/// configfs on `/sys/kernel/config`, where configfs-tsm makes attestation reports (Linux 6.7+): mounted when the
/// kernel has it (built in, or its module loaded), so that the payload can ask for a report binding its key.
/// Returns what happened, for the log; a kernel without configfs is not an error (the payload then says it has
/// no report device).
pub(crate) fn mount_configfs_if_present() -> Result<&'static str, MountError> {
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !filesystems.lines().any(|l| l.split_whitespace().last() == Some("configfs")) {
        return Ok("configfs is not in this kernel: no configfs-tsm attestation reports");
    }
    MountSpec { fstype: "configfs", target: "/sys/kernel/config", flags: NOSUID_NODEV_NOEXEC, data: "" }.apply()?;
    Ok("mounted configfs on /sys/kernel/config (configfs-tsm attestation reports)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_only_virtual_filesystems() {
        for m in MOUNTS {
            assert!(["proc", "sysfs", "devtmpfs", "tmpfs"].contains(&m.fstype), "{m:?}");
            assert!(m.flags.contains(MsFlags::MS_NOSUID), "{m:?}");
        }
        let tmp = MOUNTS.iter().find(|m| m.target == "/tmp").unwrap();
        assert!(tmp.flags.contains(NOSUID_NODEV_NOEXEC));
        let run = MOUNTS.iter().find(|m| m.target == "/run").unwrap();
        assert_eq!(run.flags, NOSUID_NODEV);
        for m in MOUNTS.iter().filter(|m| m.fstype == "tmpfs") {
            assert!(m.data.contains("size=") && m.data.contains("nr_inodes="), "{m:?}");
        }
        assert!(MOUNTS[0].data.contains("hidepid="));
        // /proc first: later steps read /proc/cmdline; /dev before anything logs to /dev/console.
        assert_eq!(MOUNTS.map(|m| m.target), ["/proc", "/sys", "/dev", "/tmp", "/run"]);
    }
}
