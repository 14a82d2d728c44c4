//! The recipe: a strict YAML description of one image (kernel, command line, initrd contents, firmware, VM shapes).
//!
//! Parsing is strict (`deny_unknown_fields` everywhere) and every parse error names the recipe file, the line and the
//! column. [`Recipe::load`] parses and then validates: names, modes, command, environment and every initrd destination
//! path (see [`crate::recipe::dest`]). Paths in the recipe are relative to the recipe file; the schema is documented in
//! `recipes/README.md`.
//!
//! ```
//! let yaml = r#"
//! name: demo
//! version: 0.1.0
//! source_date_epoch: 1767225600
//! kernel: {path: vmlinuz, cmdline: "console=ttyS0"}
//! initrd:
//!   init: init
//!   command: ["/usr/bin/app"]
//!   user: 65534
//!   files: [{src: app, dst: /usr/bin/app}]
//! "#;
//! let recipe = cvmforge::recipe::Recipe::parse(yaml.as_bytes(), "demo.yaml".as_ref()).unwrap();
//! assert_eq!(recipe.initrd.files[0].dst, "/usr/bin/app");
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::format::init_config::{InitConfig, InitVolume};

pub mod dest;
pub mod lock;
pub mod seal_spec;
mod validate;
pub mod values;
pub mod volume;

use cvmforge_measure::snp::vcpu_types::VcpuType;
use cvmforge_measure::snp::vmm_types::VmmType;
use cvmforge_measure::tdx::load_options::CmdlineLayout;
use cvmforge_measure::tdx::mrtd::PageOrder;
use cvmforge_measure::tdx::qemu::QemuVersion;
use seal_spec::{ModulesSpec, SealingSpec};
use values::ByteSize;

/// Permission bits a mode may use (including setuid, setgid and sticky).
pub const MODE_MASK: u32 = 0o7777;
/// Default mode of payload files.
pub const DEFAULT_FILE_MODE: u32 = 0o644;
/// Default mode of the init and of the program the recipe runs (`command[0]`).
pub const DEFAULT_EXEC_MODE: u32 = 0o755;
/// Default mode of directories (declared or implied).
pub const DEFAULT_DIR_MODE: u32 = 0o755;
/// Largest `/etc/cvmforge/init.json` the guest init accepts.
pub const MAX_INIT_CONFIG_LEN: usize = crate::format::init_config::MAX_LEN;
/// Largest kernel command line accepted (x86 `COMMAND_LINE_SIZE` is 2048 including the NUL).
pub const MAX_CMDLINE_LEN: usize = 2047;

/// A permission mode (`0o755`, `493` or `"0755"` in YAML); bits outside `0o7777` are rejected while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Mode(pub u32);

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ModeVisitor)
    }
}

struct ModeVisitor;

impl serde::de::Visitor<'_> for ModeVisitor {
    type Value = Mode;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a permission mode such as 0o755, 493 or \"0755\" (at most 0o7777)")
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Mode, E> {
        match u32::try_from(v) {
            Ok(m) if m & !MODE_MASK == 0 => Ok(Mode(m)),
            _ => Err(E::custom(format_args!("mode {v:#o} has bits outside 0o7777"))),
        }
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Mode, E> {
        match u64::try_from(v) {
            Ok(u) => self.visit_u64(u),
            Err(_) => Err(E::custom(format_args!("mode {v} is negative"))),
        }
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Mode, E> {
        // Strings are always octal, as in chmod: "0755", "755" and "0o755" all mean rwxr-xr-x.
        let digits = v.strip_prefix("0o").unwrap_or(v);
        match u64::from_str_radix(digits, 8) {
            Ok(m) if !digits.is_empty() => self.visit_u64(m),
            _ => Err(E::custom(format_args!("mode \"{v}\" is not an octal number such as \"0755\""))),
        }
    }
}

/// A whole recipe, as parsed (see `recipes/README.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Image name: `[a-z0-9][a-z0-9._-]*`.
    pub name: String,
    /// Image version (same character set as the name, may start with any allowed character).
    pub version: String,
    /// The only time that goes into outputs (cpio and tar mtimes), seconds since the epoch.
    pub source_date_epoch: u32,
    /// The recipe's tree, relative to the recipe file's directory (default: that directory). Inputs must resolve
    /// inside it unless [`Recipe::follow_symlinks`] is set.
    #[serde(default)]
    pub root: Option<String>,
    /// Allow inputs that resolve (through symlinks or `..`) outside the recipe's tree.
    #[serde(default)]
    pub follow_symlinks: bool,
    /// The kernel and its command line.
    pub kernel: KernelSpec,
    /// The initrd contents.
    pub initrd: InitrdSpec,
    /// Firmware images per platform.
    #[serde(default)]
    pub firmware: FirmwareSpec,
    /// VM shapes to measure.
    #[serde(default)]
    pub measure: MeasureSpec,
    /// Sealing-policy strictness and waivers (interpreted by `crate::seal`).
    #[serde(default)]
    pub sealing: SealingSpec,
    /// Read-only data volumes under dm-verity (see [`volume`]).
    #[serde(default)]
    pub volumes: Vec<volume::VolumeSpec>,
}

/// `kernel:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelSpec {
    /// The bzImage, relative to the recipe.
    pub path: String,
    /// The kernel command line.
    #[serde(default)]
    pub cmdline: String,
    /// Kernel modules to place in the initrd and load at boot.
    #[serde(default)]
    pub modules: Option<ModulesSpec>,
    /// The kernel's config file, for the sealing policy (else IKCONFIG, else reported as unavailable).
    #[serde(default)]
    pub config: Option<String>,
}

/// Initrd compression as written in the recipe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CompressionKind {
    /// gzip (the default).
    #[default]
    Gzip,
    /// zstd.
    Zstd,
    /// No compression.
    None,
}

/// `initrd:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitrdSpec {
    /// Compression algorithm.
    #[serde(default)]
    pub compression: CompressionKind,
    /// Compression level (gzip 1-9, zstd 1-19); default gzip 6, zstd 9.
    #[serde(default)]
    pub compression_level: Option<i32>,
    /// The guest init, installed as `/init`.
    pub init: String,
    /// Mode of `/init` (default 0755).
    #[serde(default)]
    pub init_mode: Option<Mode>,
    /// The payload command the init runs; `command[0]` is an absolute path inside the initrd.
    pub command: Vec<String>,
    /// The payload environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The uid the payload runs as.
    pub user: u32,
    /// The gid the payload runs as (default: the same number as `user`).
    #[serde(default)]
    pub group: Option<u32>,
    /// Payload files.
    #[serde(default)]
    pub files: Vec<FileSpec>,
    /// Directories (parents of files are implied with mode 0755; list them here to choose another mode).
    #[serde(default)]
    pub directories: Vec<DirSpec>,
    /// Symbolic links.
    #[serde(default)]
    pub symlinks: Vec<SymlinkSpec>,
}

/// One payload file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Source, relative to the recipe.
    pub src: String,
    /// Absolute destination inside the initrd.
    pub dst: String,
    /// Mode (default 0644, or 0755 for `command[0]`).
    #[serde(default)]
    pub mode: Option<Mode>,
}

/// One directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirSpec {
    /// Absolute path inside the initrd.
    pub path: String,
    /// Mode (default 0755).
    #[serde(default)]
    pub mode: Option<Mode>,
}

/// One symbolic link.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SymlinkSpec {
    /// Absolute path of the link inside the initrd.
    pub path: String,
    /// What it points to (absolute or relative; stored verbatim).
    pub target: String,
}

/// `firmware:`: one optional image per platform.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirmwareSpec {
    /// OVMF built for SEV-SNP (`OVMF.amdsev.fd`).
    #[serde(default)]
    pub snp: Option<String>,
    /// TDVF (`OVMF.inteltdx.fd`).
    #[serde(default)]
    pub tdx: Option<String>,
}

/// `measure:`: the VM shapes whose launch measurements the build records.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasureSpec {
    /// SEV-SNP shapes.
    #[serde(default)]
    pub snp: Vec<SnpShape>,
    /// TDX shapes.
    #[serde(default)]
    pub tdx: Vec<TdxShape>,
}

/// A vCPU count or an inclusive range (`4` or `"1-4"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum VcpuCount {
    /// One count.
    One(u32),
    /// An inclusive range written `"LOW-HIGH"`.
    Range(String),
}

/// One SEV-SNP VM shape (interpreted and validated by the build's measurement step, `crate::build::measure`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnpShape {
    /// vCPU count or range.
    pub vcpus: VcpuCount,
    /// QEMU vCPU model, e.g. `EPYC-v4` (exactly one of `vcpu_type` and `vcpu_sig`).
    #[serde(default, deserialize_with = "values::parsed_opt")]
    pub vcpu_type: Option<VcpuType>,
    /// CPUID signature (Fn0000_0001_EAX) of the vCPUs, for VMMs without a named model.
    #[serde(default)]
    pub vcpu_sig: Option<u64>,
    /// VMM, e.g. `QEMU` (the default).
    #[serde(default, deserialize_with = "values::parsed")]
    pub vmm_type: VmmType,
    /// SEV_FEATURES of the VMSA.
    #[serde(default = "default_guest_features")]
    pub guest_features: u64,
    /// Guest RAM for the QEMU command line (not measured), e.g. `2G`; default `2G`.
    #[serde(default)]
    pub memory: Option<ByteSize>,
    /// The guest policy (integer, or a string such as `"0x30000"`); default QEMU's `0x30000`.
    #[serde(default)]
    pub policy: Option<PolicyValue>,
    /// Accept a policy with DEBUG (bit 19) set; without it such a policy is refused.
    #[serde(default)]
    pub allow_debug: bool,
    /// ECDSA P-384 private key (PEM) that signs an ID block for each launch digest; relative to the recipe.
    #[serde(default)]
    pub id_key: Option<String>,
    /// ECDSA P-384 author key (PEM) that certifies `id_key`; needs `id_key`.
    #[serde(default)]
    pub author_key: Option<String>,
    /// FAMILY_ID of the ID block, 32 hex digits; default zeros.
    #[serde(default)]
    pub family_id: Option<String>,
    /// IMAGE_ID of the ID block, 32 hex digits; default zeros.
    #[serde(default)]
    pub image_id: Option<String>,
    /// GUEST_SVN of the ID block; default 0.
    #[serde(default)]
    pub guest_svn: Option<u32>,
}

/// A guest policy as written: a YAML integer (`0x30000`, `196608`) or a string (`"0x30000"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum PolicyValue {
    /// An integer.
    Int(u64),
    /// A decimal or `0x`-prefixed hexadecimal string.
    Text(String),
}

fn default_guest_features() -> u64 {
    1
}

/// One TDX VM shape (interpreted and validated by the build's measurement step, `crate::build::measure`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TdxShape {
    /// Guest memory, e.g. `4G`.
    pub memory: ByteSize,
    /// vCPU count.
    pub vcpus: u32,
    /// How QEMU adds the TD's pages, e.g. `single-pass`.
    #[serde(default, deserialize_with = "values::parsed_opt")]
    pub page_order: Option<PageOrder>,
    /// QEMU version whose layout to assume, e.g. `"10.2"`.
    #[serde(default, deserialize_with = "values::parsed_opt")]
    pub qemu_version: Option<QemuVersion>,
    /// Override the EFI LoadOptions layout (`prefix` or `suffix`) detected from the firmware (RTMR2).
    #[serde(default, deserialize_with = "values::parsed_opt")]
    pub cmdline_layout: Option<CmdlineLayout>,
}

/// Why a recipe could not be loaded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RecipeError {
    /// The file could not be read.
    #[error("cannot read recipe `{path}`")]
    Read {
        /// The recipe file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is empty (or only whitespace and comments).
    #[error("recipe `{path}` is empty: expected a YAML mapping with `name`, `version`, `kernel` and `initrd`")]
    Empty {
        /// The recipe file.
        path: PathBuf,
    },
    /// The file is not UTF-8 (YAML must be).
    #[error("recipe `{path}` is not UTF-8: invalid byte at line {line}, column {column}")]
    NotUtf8 {
        /// The recipe file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column (in bytes).
        column: usize,
    },
    /// YAML syntax error, wrong type, missing or unknown field.
    #[error("invalid recipe `{path}`{}", location(*line, *column))]
    Parse {
        /// The recipe file.
        path: PathBuf,
        /// 1-based line, if known.
        line: Option<usize>,
        /// 1-based column, if known.
        column: Option<usize>,
        /// The parser's message.
        #[source]
        source: serde_norway::Error,
    },
    /// The recipe parsed but a value is not acceptable.
    #[error("invalid recipe `{path}`: {problem}")]
    Invalid {
        /// The recipe file.
        path: PathBuf,
        /// What is wrong.
        problem: Problem,
    },
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" at line {l}, column {c}"),
        _ => String::new(),
    }
}

/// A value in a parsed recipe that is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Problem {
    /// `name` or `version` has characters outside `[a-z0-9._-]` (versions may also use upper case and `+`).
    #[error("`{field}` is `{value}`: expected {expected}")]
    BadIdentifier {
        /// `name` or `version`.
        field: &'static str,
        /// The value.
        value: String,
        /// The allowed form.
        expected: &'static str,
    },
    /// The command line has a control character or is too long.
    #[error("`kernel.cmdline` {reason}")]
    BadCmdline {
        /// Why.
        reason: &'static str,
    },
    /// `command` is empty or `command[0]` is not an absolute path.
    #[error("`initrd.command` {reason}")]
    BadCommand {
        /// Why.
        reason: &'static str,
    },
    /// `command[0]` names nothing in the initrd.
    #[error("`initrd.command[0]` is `{program}`, which is not a file or symlink in the initrd")]
    CommandNotInInitrd {
        /// The program.
        program: String,
    },
    /// The payload would run as root, which the guest init refuses (`guest-init/src/config.rs`).
    #[error("`initrd.{field}` is 0 (root): the guest init only runs the payload as an unprivileged user and group")]
    RootPayload {
        /// `user` or `group`.
        field: &'static str,
    },
    /// `/etc/cvmforge/init.json` would be larger than the guest init reads.
    #[error("the init configuration (command and env) is {size} bytes; the guest init reads at most {limit}")]
    InitConfigTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// An environment variable name is unusable.
    #[error("`initrd.env` has variable `{name}`: names must be non-empty and contain no `=` or NUL")]
    BadEnvName {
        /// The name.
        name: String,
    },
    /// An environment value has a NUL byte.
    #[error("`initrd.env.{name}` contains a NUL byte")]
    BadEnvValue {
        /// The name.
        name: String,
    },
    /// A compression level out of range, or a level with `compression: none`.
    #[error("`initrd.compression_level` {level} is not valid for {algorithm} (expected {expected})")]
    BadCompressionLevel {
        /// The algorithm.
        algorithm: &'static str,
        /// The level.
        level: i32,
        /// The valid range.
        expected: &'static str,
    },
    /// An input path is empty or has a NUL byte.
    #[error("`{field}` is an empty path")]
    EmptyInputPath {
        /// The field.
        field: String,
    },
    /// A symlink target is empty or has a NUL byte.
    #[error("`{field}` has target `{target}`: targets must be non-empty and contain no NUL")]
    BadSymlinkTarget {
        /// The field.
        field: String,
        /// The target.
        target: String,
    },
    /// An initrd destination path is malformed.
    #[error("`{field}` is `{path}`: {reason}")]
    BadDestination {
        /// The field, e.g. `initrd.files[2].dst`.
        field: String,
        /// The path.
        path: String,
        /// Why.
        reason: dest::DestError,
    },
    /// A data volume's name, source or mount point is not acceptable.
    #[error("`{field}` {reason}")]
    BadVolume {
        /// The field, e.g. `volumes[0].mount`.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// Two entries claim the same initrd path.
    #[error("`{second}` conflicts with `{first}`: both claim `{path}`")]
    Duplicate {
        /// The entry that claimed the path first.
        first: String,
        /// The entry that claimed it again.
        second: String,
        /// The path.
        path: String,
    },
}

/// A recipe read from a file, with its digest.
#[derive(Debug, Clone)]
pub struct LoadedRecipe {
    /// The parsed, validated recipe.
    pub recipe: Recipe,
    /// The recipe file as given.
    pub path: PathBuf,
    /// SHA-256 of the recipe file's bytes.
    pub sha256: [u8; 32],
    /// The directory relative paths are resolved from.
    pub dir: PathBuf,
}

impl Recipe {
    /// Reads, parses and validates the recipe at `path`.
    pub fn load(path: &Path) -> Result<LoadedRecipe, RecipeError> {
        let bytes = std::fs::read(path).map_err(|source| RecipeError::Read { path: path.to_path_buf(), source })?;
        let recipe = Recipe::parse(&bytes, path)?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Ok(LoadedRecipe { recipe, path: path.to_path_buf(), sha256: Sha256::digest(&bytes).into(), dir })
    }

    /// Parses and validates recipe bytes; `path` is only used in error messages.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Recipe, RecipeError> {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let (line, column) = line_column(bytes, e.valid_up_to());
            RecipeError::NotUtf8 { path: path.to_path_buf(), line, column }
        })?;
        // YAML allows a byte-order mark at the start of a stream (some editors write one); the recipe's digest still
        // covers it, since it is taken over the file's bytes.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if text.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
            return Err(RecipeError::Empty { path: path.to_path_buf() });
        }
        let recipe: Recipe = serde_norway::from_str(text).map_err(|source| {
            let loc = source.location();
            RecipeError::Parse {
                path: path.to_path_buf(),
                line: loc.as_ref().map(|l| l.line()),
                column: loc.as_ref().map(|l| l.column()),
                source,
            }
        })?;
        recipe.validate().map_err(|problem| RecipeError::Invalid { path: path.to_path_buf(), problem })?;
        Ok(recipe)
    }

    /// `/etc/cvmforge/init.json` for this recipe with the kernel modules to load, in load order. The bytes are the
    /// init-config format's ([`crate::format::init_config`]); the recipe only supplies the values.
    pub fn init_config<'a>(&'a self, modules: &'a [String], volumes: &'a [InitVolume]) -> InitConfig<'a> {
        InitConfig {
            command: &self.initrd.command,
            env: &self.initrd.env,
            uid: self.initrd.user,
            gid: self.gid(),
            modules,
            volumes,
        }
    }

    /// The volumes as `/etc/cvmforge/init.json` lists them.
    pub fn init_volumes(&self) -> Vec<InitVolume> {
        self.volumes
            .iter()
            .map(|v| InitVolume {
                name: v.name.clone(),
                mount: v.mount.clone(),
                flags: v.mount_flags().into_iter().map(str::to_owned).collect(),
            })
            .collect()
    }

    /// The gid the payload runs as.
    pub fn gid(&self) -> u32 {
        self.initrd.group.unwrap_or(self.initrd.user)
    }
}

/// 1-based line and column of byte `offset` in `bytes`.
fn line_column(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = bytes.get(..offset).unwrap_or(bytes);
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests;
