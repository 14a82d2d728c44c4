//! What a build returns: the `BuildReport` (also the `--json` output of `cvmforge build`) and its summaries.

use serde::Serialize;

use crate::format::compress::CompressorInfo;
use crate::manifest::{KernelRecord, Measurements, OutputRecord, RecipeRecord};

/// What a successful build produced (the `--json` output of `cvmforge build`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildReport {
    /// Version of this report's layout.
    pub schema_version: u32,
    /// The recipe.
    pub recipe: RecipeRecord,
    /// The output directory as given.
    pub output_dir: String,
    /// Every file in the output directory (including the manifest and the bundle), sorted by name.
    pub outputs: Vec<OutputRecord>,
    /// Summary of the initrd.
    pub initrd: InitrdSummary,
    /// The kernel.
    pub kernel: KernelRecord,
    /// Launch measurements, one entry per platform, shape and vCPU count (as in the manifest).
    pub measurements: Measurements,
    /// The lock file.
    pub lock: LockSummary,
    /// Sealing warnings (unwaived violations outside strict mode, unused waivers), then measurement warnings
    /// (a guest policy that allows debugging or a migration agent, ...).
    pub warnings: Vec<String>,
    /// The sealing verdict in brief (the manifest's `sealing` section has the whole report).
    pub sealing: SealingSummary,
}

/// The sealing part of a [`BuildReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SealingSummary {
    /// `sealed`, `sealed-with-waivers` or `violations`.
    pub verdict: crate::seal::policy::Verdict,
    /// Whether unwaived violations fail the build (`--strict` or `sealing.strict`).
    pub strict: bool,
    /// Number of unwaived violations.
    pub violations: usize,
    /// Number of waivers that matched a violation.
    pub waivers_applied: usize,
    /// Where the checked kernel configuration came from: `file`, `ikconfig` or `unavailable`.
    pub kernel_config: &'static str,
    /// Kernel modules placed in the initrd, in load order (names).
    pub modules: Vec<String>,
}

impl SealingSummary {
    pub(super) fn of(outcome: &crate::seal::check::SealOutcome) -> SealingSummary {
        let modules = outcome.modules.as_ref().map(|m| m.modules.iter().map(|e| e.name.clone()).collect());
        SealingSummary {
            verdict: outcome.policy.verdict,
            strict: outcome.strict,
            violations: outcome.policy.violations.len(),
            waivers_applied: outcome.policy.waivers_applied.len(),
            kernel_config: outcome.kernel_config.source,
            modules: modules.unwrap_or_default(),
        }
    }
}

/// The initrd part of a [`BuildReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InitrdSummary {
    /// Number of archive entries (without the trailer).
    pub entries: usize,
    /// The compressor.
    pub compression: CompressorInfo,
    /// SHA-256 of the uncompressed archive.
    pub uncompressed_sha256: String,
    /// Size of the uncompressed archive.
    pub uncompressed_size: u64,
}

/// The lock part of a [`BuildReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockSummary {
    /// The lock file path.
    pub path: String,
    /// `written`, `unchanged` or `verified` (with `--locked`).
    pub status: &'static str,
}
