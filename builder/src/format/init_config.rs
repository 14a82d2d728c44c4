//! `/etc/cvmforge/init.json`: the guest init's configuration (read by `guest-init/src/config.rs`), written here and
//! nowhere else.
//!
//! The bytes are compact, sorted-key JSON plus a newline, so that they depend only on the values.
//!
//! ```
//! use std::collections::BTreeMap;
//! use cvmforge::format::init_config::InitConfig;
//! let command = vec!["/usr/bin/app".to_string()];
//! let env = BTreeMap::new();
//! let config = InitConfig { command: &command, env: &env, uid: 65534, gid: 65534, modules: &[], volumes: &[] };
//! assert_eq!(
//!     config.to_bytes(),
//!     b"{\"command\":[\"/usr/bin/app\"],\"env\":{},\"gid\":65534,\"modules\":[],\"schema\":\"cvmforge-init/v1\",\"uid\":65534}\n"
//! );
//! ```

use std::collections::BTreeMap;

/// Largest `/etc/cvmforge/init.json` the guest init accepts (`MAX_CONFIG_BYTES` in `guest-init/src/config.rs`).
pub const MAX_LEN: usize = 64 * 1024;
/// The document's schema id.
pub const SCHEMA: &str = "cvmforge-init/v1";

/// What the guest init needs to start the payload.
#[derive(Debug, Clone, Copy)]
pub struct InitConfig<'a> {
    /// The payload command, `command[0]` an absolute initrd path.
    pub command: &'a [String],
    /// The payload environment.
    pub env: &'a BTreeMap<String, String>,
    /// The uid the payload runs as.
    pub uid: u32,
    /// The gid the payload runs as.
    pub gid: u32,
    /// Kernel modules to load, in load order (initrd paths).
    pub modules: &'a [String],
    /// Data volumes to mount (the `volumes` key is written only when there are some).
    pub volumes: &'a [InitVolume],
}

/// A data volume as guest-init sets it up: its verity parameters come from the kernel command line
/// (`cvm.volume=<name>:...`), where it is mounted and how from here.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InitVolume {
    /// The volume's name: the serial of its virtio disk and the key of its `cvm.volume=` parameter.
    pub name: String,
    /// The mount point.
    pub mount: String,
    /// Mount flags: `ro` and any of `nodev`, `nosuid`, `noexec`.
    pub flags: Vec<String>,
}

impl InitConfig<'_> {
    /// The exact file bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut value = serde_json::json!({
            "command": self.command,
            "env": self.env,
            "gid": self.gid,
            "modules": self.modules,
            "schema": SCHEMA,
            "uid": self.uid,
        });
        // Images without volumes keep the bytes they had before volumes existed.
        if let (false, Some(map)) = (self.volumes.is_empty(), value.as_object_mut()) {
            map.insert("volumes".into(), serde_json::json!(self.volumes));
        }
        // A JSON value of strings and integers always serializes.
        let mut bytes = serde_json::to_vec(&value).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }
}
