//! The measurement step of the build: the launch measurements of every VM shape in the recipe's `measure:`, computed
//! from the build's own output files, recorded in the manifest.
//!
//! `plan` runs with the other checks, before anything is written: it validates every shape (vCPU counts, models,
//! policy, ID-block keys) so that a bad shape refuses the build early. `measure` runs after the outputs are in the
//! staging directory and before the manifest is written: it reads `firmware-<platform>.fd` from there and reuses the
//! digests the build already has (kernel, initrd), so nothing is hashed twice.
//!
//! SEV-SNP (`docs/specs/snp-launch-digest.md`): one [`launch_digests`] pass per shape gives the digest for every vCPU
//! count of its range (VMSA pages come last). The guest policy is not part of the launch digest; it is recorded,
//! bound by the optional ID block, and passed to QEMU. A policy that allows debugging is refused unless the shape says
//! `allow_debug: true`, and is then a build warning: a debuggable guest's measurement must never be published as a
//! release.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use cvmforge_measure::snp::guest::{launch_digests, GuestError, Mode, SnpMeasurementArgs};
use cvmforge_measure::snp::id_block::{
    sign_id_block, IdBlock, IdBlockError, KeyError, LaunchDigest as IdDigest, SnpSigningKey, ID_LEN,
};
use cvmforge_measure::snp::policy::{GuestPolicy, PolicyError};
use cvmforge_measure::snp::sev_hashes::{cmdline_sha256, KernelHashes};
use cvmforge_measure::snp::vcpu_types::VcpuType;
use cvmforge_measure::snp::vmm_types::VmmType;
use thiserror::Error;

mod tdx;

use crate::manifest::{IdBlockRecord, Measurements, PolicyRecord, SnpInputs, SnpMeasurement};
use crate::qemu::{self, FragmentError, QemuFragment, SnpIdArgs, SnpLaunchShape};
use crate::recipe::{LoadedRecipe, PolicyValue, SnpShape, VcpuCount};

/// Largest vCPU count a shape may name: one manifest entry (and one ID block signature) each.
pub const MAX_VCPUS: u32 = 1024;
/// Guest RAM written into an SEV-SNP shape's QEMU command line when the shape gives none (it is not measured).
pub const DEFAULT_SNP_MEMORY: &str = "2G";
/// [`DEFAULT_SNP_MEMORY`] in bytes.
const DEFAULT_SNP_MEMORY_BYTES: u64 = 2 << 30;

/// Why a VM shape cannot be measured.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MeasureError {
    /// Shapes for a platform whose firmware the recipe does not name.
    #[error("`measure.{platform}` lists {shapes} shape(s), but `firmware.{platform}` is not set: the launch measurement covers the firmware image, so name one")]
    NoFirmware {
        /// `snp` or `tdx`.
        platform: &'static str,
        /// Number of shapes.
        shapes: usize,
    },
    /// More measured shapes than a manifest may hold.
    #[error("the recipe asks for {count} measured shapes (every vCPU count of every `measure.snp` shape, plus the `measure.tdx` shapes); at most {max} are allowed, the limit `verify` applies too")]
    TooManyShapes {
        /// Shapes asked for.
        count: usize,
        /// [`crate::manifest::MAX_MEASURED_SHAPES`].
        max: usize,
    },
    /// A value of the wrong form.
    #[error("`{field}` is `{value}`: expected {expected}")]
    BadValue {
        /// The recipe field, e.g. `measure.snp[0].vcpus`.
        field: String,
        /// The value.
        value: String,
        /// What is allowed.
        expected: &'static str,
    },
    /// Neither or both of `vcpu_type` and `vcpu_sig`.
    #[error("`{field}` needs exactly one of `vcpu_type` (a QEMU CPU model) and `vcpu_sig` (a CPUID signature)")]
    VcpuModel {
        /// The shape.
        field: String,
    },
    /// The policy does not parse or sets reserved bits.
    #[error("`{field}` is not a valid SEV-SNP guest policy")]
    Policy {
        /// The field.
        field: String,
        /// Why.
        #[source]
        source: PolicyError,
    },
    /// The policy allows debugging and the shape does not say `allow_debug: true`.
    #[error("`{field}` is {policy:#x}, which allows debugging (bit 19): the host could read and change guest memory; set `allow_debug: true` in the shape to measure it anyway (never for a release)")]
    DebugPolicy {
        /// The field.
        field: String,
        /// The policy.
        policy: u64,
    },
    /// ID-block fields without an ID key.
    #[error("`{field}` needs `id_key`: only an ID block signed by an ID key carries it")]
    NeedsIdKey {
        /// The field.
        field: String,
    },
    /// A key file cannot be read.
    #[error("`{field}`: cannot read key `{}`", path.display())]
    KeyRead {
        /// The field.
        field: String,
        /// The resolved path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A key file is not a usable P-384 key.
    #[error("`{field}`: key `{}` cannot sign an ID block", path.display())]
    Key {
        /// The field.
        field: String,
        /// The resolved path.
        path: PathBuf,
        /// Why.
        #[source]
        source: KeyError,
    },
    /// The launch digest cannot be computed (the firmware lacks something, e.g. the kernel hashes page).
    #[error("`measure.snp[{shape}]`: cannot compute the SEV-SNP launch digest of `{file}`")]
    Snp {
        /// The shape's index.
        shape: usize,
        /// The firmware file in the output directory.
        file: &'static str,
        /// Why.
        #[source]
        source: GuestError,
    },
    /// The TDX registers cannot be computed (the firmware is not TDVF, the kernel has no EFI stub, ...).
    #[error("{}: cannot compute the TDX measurements from `{file}`", match shape { Some(i) => format!("`measure.tdx[{i}]`"), None => "`measure.tdx`".to_owned() })]
    Tdx {
        /// The shape's index, or `None` for what all shapes share.
        shape: Option<usize>,
        /// The output file at fault.
        file: &'static str,
        /// Why.
        #[source]
        source: cvmforge_measure::tdx::guest::TdxError,
    },
    /// The ID block cannot be built (a bug: the digest always has 48 bytes).
    #[error("`measure.snp[{shape}]`: cannot build the ID block")]
    IdBlock {
        /// The shape's index.
        shape: usize,
        /// Why.
        #[source]
        source: IdBlockError,
    },
    /// An output file cannot be read back.
    #[error("cannot read output `{}`", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Every shape of the recipe, validated; built by [`plan`] before anything is written.
pub(crate) struct Plan {
    snp: Vec<SnpPlan>,
    tdx: Vec<tdx::TdxPlan>,
    /// Warnings to show with the build (debug or migration-agent policies).
    pub(crate) warnings: Vec<String>,
}

impl Plan {
    /// The lock entries of the ID-block keys (`id-key:snp[i]`, `author-key:snp[i]`): the SHA-256 of the public key
    /// structure. Neither the private key nor the key file's path is recorded: keys are secrets that may live
    /// anywhere, and the lock is published.
    pub(crate) fn locked_keys(&self) -> Vec<(String, crate::recipe::lock::LockedInput)> {
        use sha2::Digest;
        let mut out = Vec::new();
        for plan in &self.snp {
            let Some(id) = &plan.id else { continue };
            for (role, key) in [("id-key", Some(&id.id_key)), ("author-key", id.author_key.as_ref())] {
                let Some(key) = key else { continue };
                let public = key.public_key().to_bytes();
                let locked = crate::recipe::lock::LockedInput {
                    path: "public key".to_owned(),
                    sha256: hex::encode(sha2::Sha256::digest(public)),
                    size: public.len() as u64,
                };
                out.push((format!("{role}:snp[{}]", plan.index), locked));
            }
        }
        out
    }
}

/// One validated SEV-SNP shape.
struct SnpPlan {
    index: usize,
    counts: Vec<u32>,
    vcpu_type: Option<VcpuType>,
    vcpu_sig: u64,
    vmm: VmmType,
    guest_features: u64,
    memory: String,
    memory_bytes: u64,
    policy: GuestPolicy,
    /// Whether the recipe gave the policy (else QEMU's default, which equals [`GuestPolicy::default`]).
    policy_given: bool,
    id: Option<IdPlan>,
}

/// The ID block of a shape: keys and the fields besides the launch digest.
struct IdPlan {
    id_key: SnpSigningKey,
    author_key: Option<SnpSigningKey>,
    family_id: [u8; ID_LEN],
    image_id: [u8; ID_LEN],
    guest_svn: u32,
}

/// What [`measure`] reads: the staging directory and the digests the build already computed.
pub(crate) struct Sources<'a> {
    /// The staging directory holding `firmware-*.fd`.
    pub(crate) dir: &'a Path,
    /// SHA-256 of `kernel`.
    pub(crate) kernel_sha256: [u8; 32],
    /// SHA-256 of `initrd.img`.
    pub(crate) initrd_sha256: [u8; 32],
    /// SHA-256 of `firmware-snp.fd`, if the recipe has one.
    pub(crate) firmware_snp_sha256: Option<[u8; 32]>,
    /// SHA-256 of `firmware-tdx.fd`, if the recipe has one.
    pub(crate) firmware_tdx_sha256: Option<[u8; 32]>,
    /// The kernel command line.
    pub(crate) cmdline: &'a str,
}

/// Validates every shape of the recipe and loads the ID-block keys.
pub(crate) fn plan(loaded: &LoadedRecipe) -> Result<Plan, MeasureError> {
    let recipe = &loaded.recipe;
    let shapes = &recipe.measure.snp;
    if !shapes.is_empty() && recipe.firmware.snp.is_none() {
        return Err(MeasureError::NoFirmware { platform: "snp", shapes: shapes.len() });
    }
    let mut warnings = Vec::new();
    let mut snp = Vec::with_capacity(shapes.len());
    for (index, shape) in shapes.iter().enumerate() {
        let planned = plan_snp(loaded, index, shape)?;
        for warning in planned.policy.warnings() {
            let loud = if warning.is_loud() { "DEBUG POLICY: " } else { "" };
            warnings.push(format!("{loud}`measure.snp[{index}].policy` {:#x}: {warning}", planned.policy.bits()));
        }
        snp.push(planned);
    }
    if !recipe.measure.tdx.is_empty() && recipe.firmware.tdx.is_none() {
        return Err(MeasureError::NoFirmware { platform: "tdx", shapes: recipe.measure.tdx.len() });
    }
    let tdx: Vec<tdx::TdxPlan> =
        recipe.measure.tdx.iter().enumerate().map(|(i, shape)| tdx::plan(i, shape)).collect::<Result<_, _>>()?;
    // Bounded before any digest is computed: memory and the manifest's size grow with the number of entries.
    let count = snp.iter().map(|s| s.counts.len()).sum::<usize>() + tdx.len();
    if count > crate::manifest::MAX_MEASURED_SHAPES {
        return Err(MeasureError::TooManyShapes { count, max: crate::manifest::MAX_MEASURED_SHAPES });
    }
    Ok(Plan { snp, tdx, warnings })
}

fn plan_snp(loaded: &LoadedRecipe, index: usize, shape: &SnpShape) -> Result<SnpPlan, MeasureError> {
    let field = |name: &str| format!("measure.snp[{index}].{name}");
    let counts = vcpu_counts(&field("vcpus"), &shape.vcpus)?;
    let (vcpu_type, vcpu_sig) = match (shape.vcpu_type, shape.vcpu_sig) {
        (Some(t), None) => (Some(t), t.signature()),
        (None, Some(sig)) => (None, sig),
        _ => return Err(MeasureError::VcpuModel { field: format!("measure.snp[{index}]") }),
    };
    let vmm = shape.vmm_type;
    // Issue 11, item 13: a guest with no memory launches nowhere (`ByteSize` refuses zero while the recipe is read).
    let (memory, memory_bytes) = match &shape.memory {
        Some(size) => (size.as_str().to_owned(), size.bytes()),
        None => (DEFAULT_SNP_MEMORY.to_owned(), DEFAULT_SNP_MEMORY_BYTES),
    };
    let policy = policy(&field("policy"), shape.policy.as_ref())?;
    if policy.debug_allowed() && !shape.allow_debug {
        return Err(MeasureError::DebugPolicy { field: field("policy"), policy: policy.bits() });
    }
    let id = id_plan(loaded, index, shape)?;
    Ok(SnpPlan {
        index,
        counts,
        vcpu_type,
        vcpu_sig,
        vmm,
        guest_features: shape.guest_features,
        memory,
        memory_bytes,
        policy,
        policy_given: shape.policy.is_some(),
        id,
    })
}

/// `4` → `[4]`, `"1-4"` → `[1, 2, 3, 4]`; every count in `1..=MAX_VCPUS`.
fn vcpu_counts(field: &str, vcpus: &VcpuCount) -> Result<Vec<u32>, MeasureError> {
    let bad = |value: String| MeasureError::BadValue {
        field: field.to_owned(),
        value,
        expected: "a vCPU count from 1 to 1024, or a range `LOW-HIGH` with 1 <= LOW <= HIGH <= 1024",
    };
    let (low, high) = match vcpus {
        VcpuCount::One(n) => (*n, *n),
        VcpuCount::Range(text) => {
            let parse = |s: &str| s.trim().parse::<u32>().ok();
            match text.split_once('-').map(|(a, b)| (parse(a), parse(b))) {
                Some((Some(a), Some(b))) => (a, b),
                _ => return Err(bad(text.clone())),
            }
        }
    };
    if low == 0 || low > high || high > MAX_VCPUS {
        let value = match vcpus {
            VcpuCount::One(n) => n.to_string(),
            VcpuCount::Range(text) => text.clone(),
        };
        return Err(bad(value));
    }
    Ok((low..=high).collect())
}

/// The shape's policy, validated as the firmware checks it at SNP_LAUNCH_START; default `0x30000`.
fn policy(field: &str, value: Option<&PolicyValue>) -> Result<GuestPolicy, MeasureError> {
    let policy = match value {
        None => return Ok(GuestPolicy::default()),
        Some(PolicyValue::Int(n)) => GuestPolicy(*n),
        Some(PolicyValue::Text(text)) => {
            text.parse().map_err(|source| MeasureError::Policy { field: field.to_owned(), source })?
        }
    };
    policy.validate().map_err(|source| MeasureError::Policy { field: field.to_owned(), source })?;
    Ok(policy)
}

fn id_plan(loaded: &LoadedRecipe, index: usize, shape: &SnpShape) -> Result<Option<IdPlan>, MeasureError> {
    let field = |name: &str| format!("measure.snp[{index}].{name}");
    let Some(id_key) = &shape.id_key else {
        let given = [
            ("author_key", shape.author_key.is_some()),
            ("family_id", shape.family_id.is_some()),
            ("image_id", shape.image_id.is_some()),
            ("guest_svn", shape.guest_svn.is_some()),
        ];
        return match given.iter().find(|(_, set)| *set) {
            Some((name, _)) => Err(MeasureError::NeedsIdKey { field: field(name) }),
            None => Ok(None),
        };
    };
    let author_key = match &shape.author_key {
        Some(path) => Some(load_key(loaded, &field("author_key"), path)?),
        None => None,
    };
    Ok(Some(IdPlan {
        id_key: load_key(loaded, &field("id_key"), id_key)?,
        author_key,
        family_id: id_field(&field("family_id"), shape.family_id.as_deref())?,
        image_id: id_field(&field("image_id"), shape.image_id.as_deref())?,
        guest_svn: shape.guest_svn.unwrap_or(0),
    }))
}

/// Reads a PEM key named relative to the recipe file. Keys are secrets, so unlike inputs they may live outside the
/// recipe's tree and are neither locked nor recorded; the manifest records only their public key digests.
fn load_key(loaded: &LoadedRecipe, field: &str, path: &str) -> Result<SnpSigningKey, MeasureError> {
    let resolved = loaded.dir.join(path);
    let text = std::fs::read_to_string(&resolved).map_err(|source| MeasureError::KeyRead {
        field: field.to_owned(),
        path: resolved.clone(),
        source,
    })?;
    SnpSigningKey::from_pem(&text).map_err(|source| MeasureError::Key {
        field: field.to_owned(),
        path: resolved,
        source,
    })
}

/// FAMILY_ID / IMAGE_ID: 32 hex digits, default zeros.
fn id_field(field: &str, value: Option<&str>) -> Result<[u8; ID_LEN], MeasureError> {
    let Some(text) = value else { return Ok([0; ID_LEN]) };
    let mut out = [0u8; ID_LEN];
    hex::decode_to_slice(text, &mut out).map_err(|_| MeasureError::BadValue {
        field: field.to_owned(),
        value: text.to_owned(),
        expected: "32 hex digits (16 bytes)",
    })?;
    Ok(out)
}

/// Computes every planned measurement from the staged outputs; returns them with the build warnings they raise
/// (the plan's own warnings included).
pub(crate) fn measure(plan: &Plan, sources: &Sources<'_>) -> Result<(Measurements, Vec<String>), MeasureError> {
    let mut measurements = Measurements::default();
    let mut warnings = plan.warnings.clone();
    if !plan.snp.is_empty() {
        measurements.snp = measure_snp(plan, sources)?;
    }
    if !plan.tdx.is_empty() {
        let (entries, tdx_warnings) = tdx::measure(&plan.tdx, sources)?;
        measurements.tdx = entries;
        warnings.extend(tdx_warnings);
    }
    Ok((measurements, warnings))
}

/// Reads a staged output file.
fn read_output(dir: &Path, name: &str) -> Result<Vec<u8>, MeasureError> {
    let path = dir.join(name);
    std::fs::read(&path).map_err(|source| MeasureError::Read { path, source })
}

fn measure_snp(plan: &Plan, sources: &Sources<'_>) -> Result<Vec<SnpMeasurement>, MeasureError> {
    let file = qemu::FIRMWARE_SNP_FILE;
    // `plan` refused SNP shapes without `firmware.snp`, so the firmware was copied and hashed.
    let firmware_sha256 =
        sources.firmware_snp_sha256.ok_or(MeasureError::NoFirmware { platform: "snp", shapes: plan.snp.len() })?;
    let firmware = read_output(sources.dir, file)?;
    let hashes = KernelHashes::new(sources.kernel_sha256, Some(sources.initrd_sha256), Some(sources.cmdline));
    let inputs = SnpInputs {
        firmware_sha256: hex::encode(firmware_sha256),
        kernel_sha256: hex::encode(hashes.kernel),
        initrd_sha256: hex::encode(hashes.initrd),
        cmdline_sha256: hex::encode(cmdline_sha256(Some(sources.cmdline))),
    };
    let mut entries = Vec::new();
    for shape in &plan.snp {
        let mut args = SnpMeasurementArgs::new(Mode::Snp, &firmware, shape.vcpu_sig);
        args.kernel = Some(hashes);
        args.guest_features = shape.guest_features;
        args.vmm = shape.vmm;
        let digests = launch_digests(&args, &shape.counts).map_err(|source| MeasureError::Snp {
            shape: shape.index,
            file,
            source,
        })?;
        for (vcpus, digest) in digests {
            entries.push(snp_entry(shape, vcpus, digest.as_bytes(), &inputs, sources.cmdline)?);
        }
    }
    Ok(entries)
}

/// One manifest entry: the digest, the shape, its ID block (if any) and its QEMU launch.
fn snp_entry(
    shape: &SnpPlan,
    vcpus: u32,
    digest: &[u8],
    inputs: &SnpInputs,
    cmdline: &str,
) -> Result<SnpMeasurement, MeasureError> {
    let mut entry = SnpMeasurement {
        platform: "snp".to_owned(),
        name: format!("snp-shape{}-vcpus{vcpus}", shape.index),
        shape: shape.index,
        mode: Mode::Snp.name().to_owned(),
        vcpus,
        vcpu_type: shape.vcpu_type.map(|t| t.name().to_owned()),
        vcpu_sig: format!("{:#x}", shape.vcpu_sig),
        vmm_type: shape.vmm.name().to_owned(),
        guest_features: format!("{:#x}", shape.guest_features),
        memory: shape.memory.clone(),
        policy: policy_record(shape.policy),
        digest: hex::encode(digest),
        inputs: inputs.clone(),
        id: None,
        qemu_args: None,
        qemu_notes: None,
        qemu_unavailable: None,
    };
    let mut id_args = None;
    if let Some(id) = &shape.id {
        let launch_digest =
            IdDigest::from_slice(digest).map_err(|e| MeasureError::IdBlock { shape: shape.index, source: e.into() })?;
        let block = IdBlock {
            launch_digest,
            family_id: id.family_id,
            image_id: id.image_id,
            guest_svn: id.guest_svn,
            policy: shape.policy,
        };
        let signed = sign_id_block(block, &id.id_key, id.author_key.as_ref());
        let (id_block, id_auth) = (BASE64.encode(signed.id_block_bytes()), BASE64.encode(signed.id_auth_bytes()));
        id_args = Some(SnpIdArgs {
            id_block: id_block.clone(),
            id_auth: id_auth.clone(),
            author_key: id.author_key.is_some(),
        });
        entry.id = Some(IdBlockRecord {
            id_block,
            id_auth,
            id_key_digest: signed.id_key_digest().to_string(),
            author_key_digest: signed.author_key_digest().map(|d| d.to_string()),
            family_id: hex::encode(id.family_id),
            image_id: hex::encode(id.image_id),
            guest_svn: id.guest_svn,
        });
    }
    let launch = SnpLaunchShape {
        vmm: shape.vmm,
        vcpus,
        vcpu_type: entry.vcpu_type.clone(),
        memory_bytes: shape.memory_bytes,
        // With an ID block QEMU must launch with the policy it binds; the default equals QEMU's own default.
        policy: (shape.policy_given || id_args.is_some()).then_some(shape.policy.bits()),
        id: id_args,
        guest_features: shape.guest_features,
    };
    (entry.qemu_args, entry.qemu_notes, entry.qemu_unavailable) = qemu_fields(&qemu::snp_fragment(&launch, cmdline));
    Ok(entry)
}

/// `qemu_args`, `qemu_notes` and `qemu_unavailable`: the fields of [`qemu::manifest_fields`], typed.
type QemuFields = (Option<Vec<String>>, Option<Vec<String>>, Option<String>);

fn qemu_fields(fragment: &Result<QemuFragment, FragmentError>) -> QemuFields {
    match fragment {
        Ok(f) => (Some(f.args.clone()), Some(f.notes.clone()), None),
        Err(e) => (None, None, Some(e.to_string())),
    }
}

fn policy_record(policy: GuestPolicy) -> PolicyRecord {
    PolicyRecord {
        value: format!("{:#x}", policy.bits()),
        fields: policy.fields().map(|(f, v)| (f.name.to_ascii_lowercase(), v)).collect(),
        warnings: policy.warnings().iter().map(ToString::to_string).collect(),
    }
}

#[cfg(test)]
mod tests;
