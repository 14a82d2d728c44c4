//! `volumes:`: read-only data volumes (model weights, large payload data), each an EROFS image under a dm-verity
//! hash tree whose root hash goes on the measured kernel command line (see `crate::build::volume`).
//!
//! ```yaml
//! volumes:
//!   - name: models              # [a-z0-9][a-z0-9_-]*, at most 32 characters; the guest finds its disk by it
//!     source: ../build/weights  # a directory, taken whole (regular files and directories only) ...
//!     # files: [{src: a.bin, dst: weights/a.bin}]   # ... or a list of files, each at a path inside the volume
//!     mount: /models            # absolute path in the guest; the builder adds it to the initrd as an empty directory
//!     options: []               # any of exec, suid, dev; the default is noexec, nosuid, nodev (always read-only)
//!     max_size: 64G             # the build fails above it (default 64G)
//! ```

use serde::Deserialize;

use super::dest::{self, Kind, Layout};
use super::values::ByteSize;
use super::Problem;

/// Default `max_size`: 64 GiB.
pub const DEFAULT_MAX_SIZE: u64 = 64 << 30;
/// Longest volume name.
pub const MAX_NAME_LEN: usize = 32;
/// Mode of a volume's mount point directory in the initrd.
pub const MOUNT_POINT_MODE: u32 = 0o555;
/// Guest paths that guest-init mounts itself: a volume cannot be mounted on or under them.
pub const RESERVED_MOUNTS: &[&str] = &["/dev", "/proc", "/run", "/sys", "/tmp"];

/// One data volume.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeSpec {
    /// The volume's name.
    pub name: String,
    /// A directory whose tree is the volume's content (exclusive with `files`).
    #[serde(default)]
    pub source: Option<String>,
    /// Files, each with its path inside the volume (exclusive with `source`).
    #[serde(default)]
    pub files: Vec<VolumeFileSpec>,
    /// Where the guest mounts it.
    pub mount: String,
    /// Mount options that relax the default `noexec,nosuid,nodev`.
    #[serde(default)]
    pub options: Vec<MountOption>,
    /// The largest content accepted, in bytes (`64G`).
    #[serde(default)]
    pub max_size: Option<ByteSize>,
}

/// One file of a volume given by `files:`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeFileSpec {
    /// Source, relative to the recipe.
    pub src: String,
    /// Relative path inside the volume.
    pub dst: String,
}

/// A mount option that relaxes the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountOption {
    /// Allow executing files (default `noexec`).
    Exec,
    /// Honour setuid bits (default `nosuid`; the image's files never have them).
    Suid,
    /// Honour device nodes (default `nodev`; the image has none).
    Dev,
}

impl VolumeSpec {
    /// The byte limit.
    pub fn limit(&self) -> u64 {
        self.max_size.as_ref().map_or(DEFAULT_MAX_SIZE, ByteSize::bytes)
    }

    /// The mount flags as guest-init applies them: `ro`, then `nodev`, `nosuid`, `noexec` unless relaxed.
    pub fn mount_flags(&self) -> Vec<&'static str> {
        let mut flags = vec!["ro"];
        for (option, flag) in
            [(MountOption::Dev, "nodev"), (MountOption::Suid, "nosuid"), (MountOption::Exec, "noexec")]
        {
            if !self.options.contains(&option) {
                flags.push(flag);
            }
        }
        flags
    }
}

/// Checks every volume on its own and against the others: names, sources, mount points.
pub fn check_volumes(volumes: &[VolumeSpec]) -> Result<(), Problem> {
    for (i, v) in volumes.iter().enumerate() {
        let field = |name: &str| format!("volumes[{i}].{name}");
        let name_ok = v.name.len() <= MAX_NAME_LEN
            && v.name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && v.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !name_ok {
            return Err(Problem::BadVolume {
                field: field("name"),
                reason: format!(
                    "is `{}`: expected at most 32 characters of [a-z0-9_-], starting with a letter or digit",
                    v.name
                ),
            });
        }
        match (&v.source, v.files.is_empty()) {
            (Some(_), false) => {
                return Err(Problem::BadVolume {
                    field: field("source"),
                    reason: "and `files` are both given: choose one".into(),
                })
            }
            (None, true) => {
                return Err(Problem::BadVolume {
                    field: field("source"),
                    reason: "is missing: a volume needs a `source` directory or a list of `files`".into(),
                })
            }
            _ => {}
        }
        for (j, f) in v.files.iter().enumerate() {
            let clean = !f.dst.is_empty()
                && !f.dst.starts_with('/')
                && f.dst.split('/').all(|p| !p.is_empty() && p != "." && p != ".." && p.len() <= 255)
                && !f.dst.chars().any(char::is_control);
            if !clean {
                return Err(Problem::BadVolume {
                    field: field(&format!("files[{j}].dst")),
                    reason: format!("is `{}`: expected a relative path inside the volume, without `.` or `..`", f.dst),
                });
            }
        }
        if let Err(reason) = dest::check(&v.mount) {
            return Err(Problem::BadDestination { field: field("mount"), path: v.mount.clone(), reason });
        }
        if let Some(reserved) = RESERVED_MOUNTS.iter().find(|r| under_or_at(&v.mount, r)) {
            return Err(Problem::BadVolume {
                field: field("mount"),
                reason: format!("is `{}`: guest-init mounts `{reserved}` itself", v.mount),
            });
        }
        for (k, other) in volumes.iter().enumerate().take(i) {
            if other.name == v.name {
                return Err(Problem::BadVolume {
                    field: field("name"),
                    reason: format!("`{}` is also volumes[{k}]'s name", v.name),
                });
            }
            if under_or_at(&v.mount, &other.mount) || under_or_at(&other.mount, &v.mount) {
                return Err(Problem::BadVolume {
                    field: field("mount"),
                    reason: format!(
                        "`{}` clashes with volumes[{k}].mount `{}`: one would hide the other",
                        v.mount, other.mount
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Adds each mount point to the initrd as an empty directory (a path an initrd file or symlink already claims is a
/// conflict), then refuses a mount point that would hide initrd paths.
pub fn add_mount_points(layout: &mut Layout, volumes: &[VolumeSpec]) -> Result<(), Problem> {
    for (i, v) in volumes.iter().enumerate() {
        let origin = format!("volumes[{i}].mount (mount point of volume {})", v.name);
        layout.claim(&v.mount, &origin, Kind::Directory { mode: MOUNT_POINT_MODE, explicit: true })?;
    }
    check_hidden(layout, volumes)
}

/// Refuses a mount point with initrd paths under it (the mount would hide them), such as the kernel modules the
/// build adds after the recipe's own paths.
pub fn check_hidden(layout: &Layout, volumes: &[VolumeSpec]) -> Result<(), Problem> {
    for (i, v) in volumes.iter().enumerate() {
        let hidden = layout.entries.iter().find(|(p, _)| p.len() > v.mount.len() && under_or_at(p, &v.mount));
        if let Some((path, entry)) = hidden {
            return Err(Problem::BadVolume {
                field: format!("volumes[{i}].mount"),
                reason: format!("is `{}`, which would hide `{path}` of the initrd ({})", v.mount, entry.origin),
            });
        }
    }
    Ok(())
}

/// `path` is `dir` or under it.
fn under_or_at(path: &str, dir: &str) -> bool {
    path == dir || path.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(name: &str, mount: &str) -> VolumeSpec {
        VolumeSpec {
            name: name.into(),
            source: Some("w".into()),
            files: vec![],
            mount: mount.into(),
            options: vec![],
            max_size: None,
        }
    }

    #[test]
    fn rejects_bad_names_sources_and_clashing_mounts() {
        let cases: Vec<(Vec<VolumeSpec>, &str)> = vec![
            (vec![volume("Models", "/m")], "volumes[0].name"),
            (vec![volume("m", "m")], "volumes[0].mount"),
            (vec![volume("m", "/proc/x")], "guest-init mounts `/proc` itself"),
            (vec![volume("a", "/m"), volume("a", "/n")], "also volumes[0]'s name"),
            (vec![volume("a", "/m"), volume("b", "/m/sub")], "clashes with volumes[0].mount `/m`"),
            (vec![VolumeSpec { source: None, ..volume("a", "/m") }], "needs a `source` directory or a list"),
            (
                vec![VolumeSpec {
                    files: vec![VolumeFileSpec { src: "x".into(), dst: "../x".into() }],
                    source: None,
                    ..volume("a", "/m")
                }],
                "volumes[0].files[0].dst",
            ),
        ];
        for (volumes, needle) in cases {
            let err = check_volumes(&volumes).unwrap_err().to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        }
        check_volumes(&[volume("a", "/models"), volume("b", "/models2")]).unwrap();
    }

    #[test]
    fn mount_flags_default_to_the_strictest() {
        assert_eq!(volume("a", "/m").mount_flags(), ["ro", "nodev", "nosuid", "noexec"]);
        let relaxed = VolumeSpec { options: vec![MountOption::Exec], ..volume("a", "/m") };
        assert_eq!(relaxed.mount_flags(), ["ro", "nodev", "nosuid"]);
    }
}
