//! `manifest.json`: the machine-readable record of one build (schema [`MANIFEST_SCHEMA`]).
//!
//! It names the recipe (by digest), every input and output (by digest and size), the initrd's entries and
//! compressor, the kernel's boot protocol, and the launch measurements. It holds nothing that varies between
//! machines: no absolute paths, host names or build times, so two reproducible builds write identical manifests.
//!
//! It is written with sorted keys (through `serde_json::Value`), pretty-printed, with a trailing newline.
//! Later additions (in-toto statements, a policy report, dm-verity volumes, per-shape QEMU command lines) go in new
//! optional sections (`#[serde(default, skip_serializing_if = ...)]`) so that existing manifests keep their bytes;
//! a change of meaning bumps the schema, and [`Manifest::from_json`] rejects schemas it does not know.
//!
//! ```
//! use cvmforge::manifest::{Manifest, MANIFEST_SCHEMA};
//! let err = Manifest::from_json(r#"{"schema": "https://cvmforge.dev/manifest/v99"}"#).unwrap_err();
//! assert!(err.to_string().contains("v99"));
//! ```

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::format::compress::CompressorInfo;

/// The schema identifier this version writes and reads.
pub const MANIFEST_SCHEMA: &str = "https://cvmforge.dev/manifest/v1";

/// The largest `manifest.json` that any reader (and the build, as a writer) accepts. A manifest is a few hundred KiB
/// at most; the bound keeps a hostile one from exhausting memory.
pub const MAX_MANIFEST_SIZE: u64 = 64 << 20;

/// The most measurement entries (SEV-SNP digests, one per vCPU count, plus TDX shapes) one manifest may hold. The
/// build refuses a recipe that asks for more before computing anything, and every reader refuses a manifest with
/// more: a few thousand shapes fit well within [`MAX_MANIFEST_SIZE`].
pub const MAX_MEASURED_SHAPES: usize = 4096;

/// Reads a `manifest.json` member of an output directory: a regular file (not a symlink), at most `cap` bytes, UTF-8.
pub fn read_manifest_file(path: &std::path::Path, cap: u64) -> std::io::Result<String> {
    let bytes = crate::sys::regular_file::read_capped(path, cap)?;
    String::from_utf8(bytes).map_err(|_| std::io::Error::other("is not UTF-8"))
}

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`MANIFEST_SCHEMA`].
    pub schema: String,
    /// The `cvmforge` version that built the image.
    pub cvmforge_version: String,
    /// The recipe.
    pub recipe: RecipeRecord,
    /// The recipe's `source_date_epoch`: the only time in the outputs.
    pub source_date_epoch: u32,
    /// Every input, in recipe order (kernel, init, files, firmware).
    pub inputs: Vec<InputRecord>,
    /// Every output file except `manifest.json` and the bundle, sorted by name.
    pub outputs: Vec<OutputRecord>,
    /// The initrd.
    pub initrd: InitrdRecord,
    /// The kernel.
    pub kernel: KernelRecord,
    /// Launch measurements per platform and VM shape.
    pub measurements: Measurements,
    /// The sealing-policy verdict (filled in by the sealing checks).
    #[serde(default)]
    pub sealing: BTreeMap<String, serde_json::Value>,
    /// The data volumes (absent when the recipe has none, so older manifests read alike).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeRecord>,
}

/// One data volume: an EROFS image and its dm-verity hash tree in one output file, and what the kernel command line
/// says of it (`cvm.volume=<name>:<data_blocks>:<hash_blocks>:<root_hash>:<salt>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeRecord {
    /// The volume's name (the guest finds its disk by this serial).
    pub name: String,
    /// Where the guest mounts it.
    pub mount: String,
    /// The mount flags (`ro`, and `nodev`, `nosuid`, `noexec` unless the recipe relaxed them).
    pub mount_flags: Vec<String>,
    /// The output file: the image, then the hash tree.
    pub image: String,
    /// The file system of the data part (`erofs`).
    pub filesystem: String,
    /// Data and hash block size (4096).
    pub block_size: u64,
    /// Blocks of file-system data; the hash tree starts at this block.
    pub data_blocks: u64,
    /// Blocks of hash tree.
    pub hash_blocks: u64,
    /// The hash of the tree (`sha256`).
    pub hash_algorithm: String,
    /// The salt, hex.
    pub salt: String,
    /// The root hash, hex: what the measured command line pins.
    pub root_hash: String,
    /// The files' bytes added up.
    pub content_size: u64,
    /// Every file in the volume, by path.
    pub files: Vec<VolumeFileRecord>,
}

/// One file of a data volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeFileRecord {
    /// Its path inside the volume.
    pub path: String,
    /// Its size.
    pub size: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
}

/// The recipe a build came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipeRecord {
    /// `name:`.
    pub name: String,
    /// `version:`.
    pub version: String,
    /// The recipe file relative to the recipe's tree (`root:`), with `/` separators.
    pub path: String,
    /// SHA-256 of the recipe file.
    pub sha256: String,
}

/// One input file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputRecord {
    /// `kernel`, `init`, `file:/usr/bin/app`, `firmware:snp`, ...
    pub role: String,
    /// The path as written in the recipe.
    pub path: String,
    /// SHA-256 of the content.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// One output file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputRecord {
    /// File name in the output directory.
    pub name: String,
    /// SHA-256.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// The initrd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitrdRecord {
    /// The compressor and its exact parameters.
    pub compression: CompressorInfo,
    /// SHA-256 of the uncompressed newc archive.
    pub uncompressed_sha256: String,
    /// Size of the uncompressed newc archive.
    pub uncompressed_size: u64,
    /// Every entry in archive order.
    pub entries: Vec<EntryRecord>,
}

/// Type of an initrd entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryType {
    /// Directory.
    Directory,
    /// Regular file.
    File,
    /// Symbolic link.
    Symlink,
    /// Character device.
    Chardev,
}

impl EntryType {
    /// The name the manifest writes (`directory`, `file`, `symlink`, `chardev`).
    pub fn name(self) -> &'static str {
        match self {
            EntryType::Directory => "directory",
            EntryType::File => "file",
            EntryType::Symlink => "symlink",
            EntryType::Chardev => "chardev",
        }
    }
}

/// One initrd entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryRecord {
    /// Absolute path in the initrd.
    pub path: String,
    /// Entry type.
    #[serde(rename = "type")]
    pub kind: EntryType,
    /// Permission bits as four octal digits, e.g. `0755`.
    pub mode: String,
    /// Content size (file bytes, or the symlink target's length).
    pub size: u64,
    /// SHA-256 of the content (files and symlinks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Symlink target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `major:minor` of a device node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// The kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelRecord {
    /// Boot protocol, e.g. `2.15`.
    pub boot_protocol: String,
    /// The kernel version string from the setup header, if present.
    pub version: Option<String>,
    /// The command line (the exact bytes of the `cmdline` output).
    pub cmdline: String,
}

/// Launch measurements: one entry per platform, VM shape and vCPU count. Each entry carries the inputs it was
/// computed from (digests of firmware, kernel, initrd and command line, and the shape), so a difference between two
/// manifests can be traced to the input that feeds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measurements {
    /// SEV-SNP launch digests.
    pub snp: Vec<SnpMeasurement>,
    /// TDX MRTD/RTMRs.
    pub tdx: Vec<TdxMeasurement>,
}

/// The measured bytes an SEV-SNP launch digest covers (`docs/specs/snp-launch-digest.md`, "Kernel hashes table").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnpInputs {
    /// SHA-256 of `firmware-snp.fd`.
    pub firmware_sha256: String,
    /// SHA-256 of `kernel` (the kernel hashes table entry).
    pub kernel_sha256: String,
    /// SHA-256 of `initrd.img` (the kernel hashes table entry).
    pub initrd_sha256: String,
    /// SHA-256 of the command line plus its terminating NUL (the kernel hashes table entry).
    pub cmdline_sha256: String,
}

/// The decoded guest policy of a shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRecord {
    /// The 64-bit policy, `0x`-prefixed lowercase hex.
    pub value: String,
    /// Every field of the ABI's policy table by lower-case name.
    pub fields: BTreeMap<String, u64>,
    /// Settings that weaken confidentiality (debug, migration agent), as sentences.
    pub warnings: Vec<String>,
}

/// One SEV-SNP launch digest: a recipe shape at one vCPU count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SnpMeasurementWire", into = "SnpMeasurementWire")]
pub struct SnpMeasurement {
    /// Always `snp`.
    pub platform: String,
    /// Unique within the manifest: `snp-shape<index>-vcpus<count>`. Identifies the entry for `cvmforge diff` and
    /// `cvmforge run --print-command`.
    pub name: String,
    /// Index of the shape in the recipe's `measure.snp`.
    pub shape: usize,
    /// The guest mode (`snp`).
    pub mode: String,
    /// Number of vCPUs (VMSA pages).
    pub vcpus: u32,
    /// The vCPU model, if the shape names one.
    pub vcpu_type: Option<String>,
    /// The CPUID signature measured in every VMSA, `0x`-prefixed hex.
    pub vcpu_sig: String,
    /// The VMM (`QEMU`, `ec2`, `gce`).
    pub vmm_type: String,
    /// SEV_FEATURES of every VMSA, `0x`-prefixed hex.
    pub guest_features: String,
    /// Guest RAM for the QEMU command line (not measured).
    pub memory: String,
    /// The guest policy (not part of the digest; bound by the ID block and repeated in reports).
    pub policy: PolicyRecord,
    /// The launch digest (48 bytes, hex): the report's MEASUREMENT.
    pub digest: String,
    /// What the digest was computed from.
    pub inputs: SnpInputs,
    /// The signed ID block, when the shape has an `id_key`.
    pub id: Option<IdBlockRecord>,
    /// Arguments after `qemu-system-x86_64` that launch this shape (`crate::qemu::manifest_fields`).
    pub qemu_args: Option<Vec<String>>,
    /// Notes for whoever runs that command.
    pub qemu_notes: Option<Vec<String>>,
    /// Why the shape has no QEMU command line.
    pub qemu_unavailable: Option<String>,
}

/// The signed ID block of a shape that has an `id_key`: all of these fields, or none of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdBlockRecord {
    /// The 96-byte ID block, base64 (QEMU `id-block`).
    pub id_block: String,
    /// The 4096-byte ID auth structure, base64 (QEMU `id-auth`).
    pub id_auth: String,
    /// SHA-384 of the ID public key: the report's ID_KEY_DIGEST.
    pub id_key_digest: String,
    /// SHA-384 of the author public key: the report's AUTHOR_KEY_DIGEST, when an author key certifies the ID key.
    pub author_key_digest: Option<String>,
    /// FAMILY_ID of the ID block (32 hex digits).
    pub family_id: String,
    /// IMAGE_ID of the ID block (32 hex digits).
    pub image_id: String,
    /// GUEST_SVN of the ID block.
    pub guest_svn: u32,
}

impl From<SnpMeasurement> for SnpMeasurementWire {
    fn from(m: SnpMeasurement) -> Self {
        let id = m.id;
        SnpMeasurementWire {
            platform: m.platform,
            name: m.name,
            shape: m.shape,
            mode: m.mode,
            vcpus: m.vcpus,
            vcpu_type: m.vcpu_type,
            vcpu_sig: m.vcpu_sig,
            vmm_type: m.vmm_type,
            guest_features: m.guest_features,
            memory: m.memory,
            policy: m.policy,
            digest: m.digest,
            inputs: m.inputs,
            id_block: id.as_ref().map(|i| i.id_block.clone()),
            id_auth: id.as_ref().map(|i| i.id_auth.clone()),
            id_key_digest: id.as_ref().map(|i| i.id_key_digest.clone()),
            author_key_digest: id.as_ref().and_then(|i| i.author_key_digest.clone()),
            family_id: id.as_ref().map(|i| i.family_id.clone()),
            image_id: id.as_ref().map(|i| i.image_id.clone()),
            guest_svn: id.as_ref().map(|i| i.guest_svn),
            qemu_args: m.qemu_args,
            qemu_notes: m.qemu_notes,
            qemu_unavailable: m.qemu_unavailable,
        }
    }
}

impl TryFrom<SnpMeasurementWire> for SnpMeasurement {
    type Error = String;

    fn try_from(w: SnpMeasurementWire) -> Result<Self, Self::Error> {
        let id = match (w.id_block, w.id_auth, w.id_key_digest, w.family_id, w.image_id, w.guest_svn) {
            (Some(id_block), Some(id_auth), Some(id_key_digest), Some(family_id), Some(image_id), Some(guest_svn)) => {
                let author_key_digest = w.author_key_digest;
                Some(IdBlockRecord {
                    id_block,
                    id_auth,
                    id_key_digest,
                    author_key_digest,
                    family_id,
                    image_id,
                    guest_svn,
                })
            }
            (None, None, None, None, None, None) if w.author_key_digest.is_none() => None,
            _ => {
                return Err("an ID block needs all of `id_block`, `id_auth`, `id_key_digest`, `family_id`, \
                            `image_id` and `guest_svn` (and `author_key_digest` only with them)"
                    .to_owned())
            }
        };
        Ok(SnpMeasurement {
            platform: w.platform,
            name: w.name,
            shape: w.shape,
            mode: w.mode,
            vcpus: w.vcpus,
            vcpu_type: w.vcpu_type,
            vcpu_sig: w.vcpu_sig,
            vmm_type: w.vmm_type,
            guest_features: w.guest_features,
            memory: w.memory,
            policy: w.policy,
            digest: w.digest,
            inputs: w.inputs,
            id,
            qemu_args: w.qemu_args,
            qemu_notes: w.qemu_notes,
            qemu_unavailable: w.qemu_unavailable,
        })
    }
}

/// [`SnpMeasurement`] as it is written: the ID-block fields flat beside the others (the v1 layout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SnpMeasurementWire {
    platform: String,
    name: String,
    shape: usize,
    mode: String,
    vcpus: u32,
    vcpu_type: Option<String>,
    vcpu_sig: String,
    vmm_type: String,
    guest_features: String,
    memory: String,
    policy: PolicyRecord,
    digest: String,
    inputs: SnpInputs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_block: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_auth: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_key_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    author_key_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    family_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    image_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    guest_svn: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    qemu_args: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    qemu_notes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    qemu_unavailable: Option<String>,
}

/// The measured bytes the TDX registers cover (`docs/specs/tdx-measurement.md`); the command line is the manifest's
/// `kernel.cmdline`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TdxInputs {
    /// SHA-256 of `firmware-tdx.fd` (MRTD; its CFV also decides the Secure Boot warning).
    pub firmware_sha256: String,
    /// SHA-256 of `kernel` (its Authenticode digest is RTMR1's first event).
    pub kernel_sha256: String,
    /// SHA-384 of `initrd.img` (an RTMR2 event).
    pub initrd_sha384: String,
    /// Size of `initrd.img` (QEMU ≤ 10.1 writes it into the measured kernel header).
    pub initrd_size: u64,
}

/// The firmware's Secure Boot state, read from its variable store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecureBootRecord {
    /// A platform key is enrolled: Secure Boot is enforced.
    pub pk_enrolled: bool,
    /// The db holds Microsoft certificates.
    pub microsoft_db: bool,
}

/// One TDX measurement set: a recipe shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TdxMeasurement {
    /// Always `tdx`.
    pub platform: String,
    /// Unique within the manifest: `tdx-shape<index>`. Identifies the entry for `cvmforge diff` and
    /// `cvmforge run --print-command`.
    pub name: String,
    /// Index of the shape in the recipe's `measure.tdx`.
    pub shape: usize,
    /// Guest RAM as written in the recipe (`-m`).
    pub memory: String,
    /// Guest RAM in bytes.
    pub memory_bytes: u64,
    /// vCPU count (`-smp`).
    pub vcpus: u32,
    /// MRTD page-add order: `single-pass` or `two-pass`.
    pub page_order: String,
    /// The QEMU version whose kernel loading was modelled.
    pub qemu_version: String,
    /// True when the recipe gave no `qemu_version` and QEMU ≥ 10.2 was assumed.
    pub qemu_version_assumed: bool,
    /// True when QEMU patches the kernel's setup header before the firmware measures it (QEMU ≤ 10.1).
    pub qemu_kernel_patching: bool,
    /// Where the firmware puts `initrd=initrd` in the LoadOptions: `prefix` or `suffix`.
    pub cmdline_layout: String,
    /// How the layout was determined (the recipe's override, or where in the firmware it was found).
    pub cmdline_layout_source: String,
    /// MRTD (hex).
    pub mrtd: String,
    /// RTMR0 (hex), or null when it cannot be computed.
    pub rtmr0: Option<String>,
    /// Why `rtmr0` is null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtmr0_unavailable: Option<String>,
    /// RTMR1 (hex): the kernel.
    pub rtmr1: String,
    /// RTMR2 (hex): the command line and the initrd.
    pub rtmr2: String,
    /// RTMR3 (hex): zero until the guest extends it.
    pub rtmr3: String,
    /// What the registers were computed from.
    pub inputs: TdxInputs,
    /// The firmware's Secure Boot state.
    pub secure_boot: SecureBootRecord,
    /// Problems found with the inputs (e.g. an unsigned kernel under enforced Secure Boot).
    pub warnings: Vec<String>,
    /// Arguments after `qemu-system-x86_64` that launch this shape (`crate::qemu::manifest_fields`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qemu_args: Option<Vec<String>>,
    /// Notes for whoever runs that command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qemu_notes: Option<Vec<String>>,
    /// Why the shape has no QEMU command line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qemu_unavailable: Option<String>,
}

/// Why a manifest could not be read.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// Not JSON (or not UTF-8).
    #[error("not a valid cvmforge manifest: not JSON")]
    Parse {
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// JSON, but a field is missing, unknown or of the wrong type.
    #[error("not a valid cvmforge manifest: field `{path}`: {message}")]
    Field {
        /// Where, e.g. `initrd.entries[1].size` (`.` for the top level).
        path: String,
        /// What is wrong (serde's message, without a position: the path says where).
        message: String,
    },
    /// No `schema` string.
    #[error("not a cvmforge manifest: no `schema` string (expected `{MANIFEST_SCHEMA}`)")]
    NoSchema,
    /// A schema this version does not read.
    #[error("manifest schema `{found}` is not supported: this cvmforge reads `{MANIFEST_SCHEMA}`")]
    UnknownSchema {
        /// The schema found.
        found: String,
    },
    /// More measurement entries than any build writes.
    #[error("the manifest lists {count} measurements; at most {MAX_MEASURED_SHAPES} are allowed")]
    TooManyMeasurements {
        /// Entries found.
        count: usize,
    },
}

impl Manifest {
    /// Sorted-key pretty JSON with a trailing newline: the exact bytes of `manifest.json`.
    pub fn to_json(&self) -> String {
        // The manifest holds only strings, integers and JSON values: serialization cannot fail.
        let value = serde_json::to_value(self).unwrap_or_default();
        let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Parses a manifest, rejecting unknown schemas before looking at anything else.
    pub fn from_json(text: &str) -> Result<Manifest, ManifestError> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|source| ManifestError::Parse { source })?;
        let schema = value.get("schema").and_then(serde_json::Value::as_str).ok_or(ManifestError::NoSchema)?;
        if schema != MANIFEST_SCHEMA {
            return Err(ManifestError::UnknownSchema { found: schema.to_string() });
        }
        let manifest: Manifest = serde_path_to_error::deserialize(value)
            .map_err(|e| ManifestError::Field { path: e.path().to_string(), message: e.into_inner().to_string() })?;
        let count = manifest.measurements.snp.len() + manifest.measurements.tdx.len();
        if count > MAX_MEASURED_SHAPES {
            return Err(ManifestError::TooManyMeasurements { count });
        }
        Ok(manifest)
    }
}

/// Entry point of the `manifest` fuzz target: whatever `from_json` accepts must survive `to_json` unchanged.
pub fn fuzz_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(manifest) = Manifest::from_json(text) {
        let again = Manifest::from_json(&manifest.to_json());
        assert_eq!(again.ok().as_ref(), Some(&manifest), "a parsed manifest must round-trip through to_json");
    }
}

#[cfg(test)]
mod tests;
