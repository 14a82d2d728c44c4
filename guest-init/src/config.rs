//! `/etc/cvmforge/init.json` (schema `cvmforge-init/v1`), written by the builder.
//!
//! Parsing is strict: unknown fields, a wrong schema, uid/gid 0, a relative
//! program path or a malformed environment are all errors, so that a typo in
//! a recipe cannot silently run the payload differently.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::modules::{is_normal_absolute, Module, ModuleError};

/// Where the builder puts the config inside the initrd.
pub(crate) const CONFIG_PATH: &str = "/etc/cvmforge/init.json";

/// The only schema this init understands.
pub(crate) const SCHEMA: &str = "cvmforge-init/v1";

/// Largest config accepted, in bytes.
pub(crate) const MAX_CONFIG_BYTES: usize = 64 * 1024;

/// The config as written on disk.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    schema: String,
    modules: Vec<String>,
    command: Vec<String>,
    env: BTreeMap<String, String>,
    uid: u32,
    gid: u32,
    #[serde(default)]
    volumes: Vec<RawVolume>,
}

/// A data volume as written on disk.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVolume {
    name: String,
    mount: String,
    flags: Vec<String>,
}

/// Where and how to mount a data volume (its verity parameters come from the command line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VolumeMount {
    /// The volume's name.
    pub(crate) name: String,
    /// The mount point (a directory of the initrd).
    pub(crate) mount: String,
    /// Flags besides `MS_RDONLY`.
    pub(crate) flags: nix::mount::MsFlags,
    /// The flags as written, for the log.
    pub(crate) flag_names: Vec<String>,
}

/// The validated config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    /// Modules to load, in order.
    pub(crate) modules: Vec<Module>,
    /// Program (absolute path) and its arguments.
    pub(crate) command: Vec<String>,
    /// The payload's whole environment.
    pub(crate) env: BTreeMap<String, String>,
    /// Non-zero user id of the payload.
    pub(crate) uid: u32,
    /// Non-zero group id of the payload.
    pub(crate) gid: u32,
    /// Data volumes to mount before the payload starts.
    pub(crate) volumes: Vec<VolumeMount>,
}

/// Why the config was rejected.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// Larger than [`MAX_CONFIG_BYTES`].
    #[error("config is {size} bytes, more than the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    /// Not valid JSON for the schema (includes unknown and missing fields).
    #[error("invalid config JSON")]
    Json {
        #[source]
        source: serde_json::Error,
    },
    /// `schema` is not [`SCHEMA`].
    #[error("config schema is `{found}`, expected `{SCHEMA}`")]
    Schema { found: String },
    /// `uid` is 0.
    #[error("uid 0 (root) is refused: the payload must run as an unprivileged user")]
    RootUid,
    /// `gid` is 0.
    #[error("gid 0 (root) is refused: the payload must run as an unprivileged group")]
    RootGid,
    /// `command` is empty.
    #[error("command is empty: expected [\"/absolute/program\", args...]")]
    EmptyCommand,
    /// `command[0]` is not a normalised absolute path.
    #[error("command[0] `{program}` must be an absolute, normalised path (no PATH lookup)")]
    RelativeProgram { program: String },
    /// An argument contains NUL.
    #[error("command[{index}] contains a NUL byte")]
    NulInArgument { index: usize },
    /// An environment key is empty or contains `=` or NUL.
    #[error("env key `{key}` is invalid: must be non-empty without `=` or NUL")]
    EnvKey { key: String },
    /// An environment value contains NUL.
    #[error("env value of `{key}` contains a NUL byte")]
    EnvValue { key: String },
    /// A volume entry is invalid.
    #[error("volumes[{index}]: {reason}")]
    Volume { index: usize, reason: String },
    /// A module path is invalid.
    #[error("modules[{index}] is invalid")]
    Module {
        index: usize,
        #[source]
        source: ModuleError,
    },
}

impl Config {
    /// Parses and validates the config bytes.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
        if bytes.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge { size: bytes.len(), limit: MAX_CONFIG_BYTES });
        }
        let raw: RawConfig = serde_json::from_slice(bytes).map_err(|source| ConfigError::Json { source })?;
        if raw.schema != SCHEMA {
            return Err(ConfigError::Schema { found: raw.schema });
        }
        if raw.uid == 0 {
            return Err(ConfigError::RootUid);
        }
        if raw.gid == 0 {
            return Err(ConfigError::RootGid);
        }
        validate_command(&raw.command)?;
        validate_env(&raw.env)?;
        let modules = raw
            .modules
            .iter()
            .enumerate()
            .map(|(index, m)| Module::parse(m).map_err(|source| ConfigError::Module { index, source }))
            .collect::<Result<_, _>>()?;
        let volumes = raw
            .volumes
            .iter()
            .enumerate()
            .map(|(index, v)| volume(v).map_err(|reason| ConfigError::Volume { index, reason }))
            .collect::<Result<_, _>>()?;
        Ok(Config { modules, command: raw.command, env: raw.env, uid: raw.uid, gid: raw.gid, volumes })
    }
}

fn volume(raw: &RawVolume) -> Result<VolumeMount, String> {
    let name_ok = !raw.name.is_empty()
        && raw.name.len() <= 32
        && raw.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !name_ok {
        return Err(format!("name `{}` is not 1 to 32 characters of [a-z0-9_-]", raw.name));
    }
    if !is_normal_absolute(&raw.mount) || raw.mount == "/" {
        return Err(format!("mount `{}` is not a normalised absolute path below /", raw.mount));
    }
    if raw.flags.first().map(String::as_str) != Some("ro") {
        return Err("flags must start with `ro`: volumes are read-only".into());
    }
    let mut flags = nix::mount::MsFlags::empty();
    for flag in raw.flags.iter().skip(1) {
        flags |= match flag.as_str() {
            "nodev" => nix::mount::MsFlags::MS_NODEV,
            "nosuid" => nix::mount::MsFlags::MS_NOSUID,
            "noexec" => nix::mount::MsFlags::MS_NOEXEC,
            other => return Err(format!("unknown flag `{other}` (expected nodev, nosuid or noexec)")),
        };
    }
    Ok(VolumeMount { name: raw.name.clone(), mount: raw.mount.clone(), flags, flag_names: raw.flags.clone() })
}

fn validate_command(command: &[String]) -> Result<(), ConfigError> {
    let program = command.first().ok_or(ConfigError::EmptyCommand)?;
    if !is_normal_absolute(program) {
        return Err(ConfigError::RelativeProgram { program: program.clone() });
    }
    match command.iter().position(|a| a.contains('\0')) {
        Some(index) => Err(ConfigError::NulInArgument { index }),
        None => Ok(()),
    }
}

fn validate_env(env: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for (key, value) in env {
        if key.is_empty() || key.contains(['=', '\0']) {
            return Err(ConfigError::EnvKey { key: key.clone() });
        }
        if value.contains('\0') {
            return Err(ConfigError::EnvValue { key: key.clone() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"schema":"cvmforge-init/v1",
        "modules":["/lib/modules/6.1.0/kernel/drivers/net/net_failover.ko.xz",
                   "/lib/modules/6.1.0/kernel/drivers/net/virtio_net.ko"],
        "command":["/usr/bin/summarize-server","--listen","0.0.0.0:8080"],
        "env":{"RUST_LOG":"info"},"uid":65534,"gid":65534}"#;

    fn with(field: &str, value: &str) -> String {
        let mut v: serde_json::Value = serde_json::from_str(GOOD).unwrap();
        v[field] = serde_json::from_str(value).unwrap();
        v.to_string()
    }

    #[test]
    fn parses_and_checks_volumes() {
        let ok = with("volumes", r#"[{"name":"models","mount":"/models","flags":["ro","nodev","nosuid","noexec"]}]"#);
        let c = Config::parse(ok.as_bytes()).unwrap();
        use nix::mount::MsFlags;
        assert_eq!(c.volumes[0].flags, MsFlags::MS_NODEV | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC);
        assert!(Config::parse(GOOD.as_bytes()).unwrap().volumes.is_empty());
        for (volumes, needle) in [
            (r#"[{"name":"m","mount":"/m","flags":["nodev"]}]"#, "must start with `ro`"),
            (r#"[{"name":"m","mount":"/m","flags":["ro","rw"]}]"#, "unknown flag `rw`"),
            (r#"[{"name":"m","mount":"m","flags":["ro"]}]"#, "not a normalised absolute path"),
            (r#"[{"name":"M/x","mount":"/m","flags":["ro"]}]"#, "name `M/x`"),
        ] {
            let err = Config::parse(with("volumes", volumes).as_bytes()).unwrap_err().to_string();
            assert!(err.contains(needle), "{volumes}: {err}");
        }
    }

    #[test]
    fn parses_valid_config() {
        let c = Config::parse(GOOD.as_bytes()).unwrap();
        assert_eq!(c.uid, 65534);
        assert_eq!(c.gid, 65534);
        assert_eq!(c.command[0], "/usr/bin/summarize-server");
        assert_eq!(c.env.get("RUST_LOG").map(String::as_str), Some("info"));
        let names: Vec<_> = c.modules.iter().map(|m| (m.name.as_str(), m.compressed)).collect();
        assert_eq!(names, vec![("net_failover", true), ("virtio_net", false)]);
    }

    #[test]
    fn rejects_unknown_fields() {
        let err = Config::parse(with("shell", "\"/bin/sh\"").as_bytes()).unwrap_err();
        let ConfigError::Json { source } = err else { panic!("{err}") };
        assert!(source.to_string().contains("unknown field `shell`"), "{source}");
    }

    #[test]
    fn rejects_missing_fields() {
        let mut v: serde_json::Value = serde_json::from_str(GOOD).unwrap();
        v.as_object_mut().unwrap().remove("uid");
        let err = Config::parse(v.to_string().as_bytes()).unwrap_err();
        let ConfigError::Json { source } = err else { panic!("{err}") };
        assert!(source.to_string().contains("missing field `uid`"), "{source}");
    }

    #[test]
    fn rejects_uid_or_gid_0() {
        assert!(matches!(Config::parse(with("uid", "0").as_bytes()), Err(ConfigError::RootUid)));
        assert!(matches!(Config::parse(with("gid", "0").as_bytes()), Err(ConfigError::RootGid)));
        assert!(matches!(Config::parse(with("uid", "-1").as_bytes()), Err(ConfigError::Json { .. })));
    }

    #[test]
    fn rejects_wrong_schema() {
        let err = Config::parse(with("schema", "\"cvmforge-init/v2\"").as_bytes()).unwrap_err();
        assert_eq!(err.to_string(), "config schema is `cvmforge-init/v2`, expected `cvmforge-init/v1`");
    }

    #[test]
    fn rejects_bad_commands() {
        assert!(matches!(Config::parse(with("command", "[]").as_bytes()), Err(ConfigError::EmptyCommand)));
        for prog in ["\"summarize-server\"", "\"usr/bin/x\"", "\"/usr/../bin/sh\""] {
            let c = with("command", &format!("[{prog}]"));
            assert!(matches!(Config::parse(c.as_bytes()), Err(ConfigError::RelativeProgram { .. })), "{prog}");
        }
        let c = with("command", r#"["/bin/x","a\u0000b"]"#);
        assert!(matches!(Config::parse(c.as_bytes()), Err(ConfigError::NulInArgument { index: 1 })));
    }

    #[test]
    fn rejects_bad_env() {
        for env in [r#"{"":"x"}"#, r#"{"A=B":"x"}"#] {
            assert!(matches!(Config::parse(with("env", env).as_bytes()), Err(ConfigError::EnvKey { .. })), "{env}");
        }
        let c = with("env", r#"{"A":"x\u0000"}"#);
        assert!(matches!(Config::parse(c.as_bytes()), Err(ConfigError::EnvValue { .. })));
    }

    #[test]
    fn rejects_bad_module_and_oversized_config() {
        let err = Config::parse(with("modules", r#"["/lib/ok.ko","virtio.ko"]"#).as_bytes()).unwrap_err();
        assert!(matches!(err, ConfigError::Module { index: 1, .. }), "{err}");
        let big = vec![b' '; MAX_CONFIG_BYTES + 1];
        assert!(matches!(Config::parse(&big), Err(ConfigError::TooLarge { .. })));
    }
}
