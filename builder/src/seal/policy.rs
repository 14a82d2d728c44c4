//! The sealing policy, checked at build time and reported in the manifest.
//!
//! A sealed guest has no way in: no SSH or telnet server, no getty or login, no shell in the initrd; a kernel
//! command line that cannot ask for a shell, a debugger or an early console; a kernel built without the interfaces
//! that let root in the guest read or replace kernel memory (`kernel-config/policy.yaml`). A [`Checker`] collects
//! the violations of each check; [`Checker::finish`] turns them into a deterministic [`PolicyReport`] after
//! applying the recipe's [`Waiver`]s. A waiver must give a written reason; a waiver that matches nothing is
//! reported as a warning. In strict mode the caller turns remaining violations into an error with
//! [`PolicyReport::enforce`].
//!
//! # Example
//!
//! ```
//! use cvmforge::recipe::seal_spec::Waiver;
//! use cvmforge::seal::policy::{Checker, EntryKind, InitrdEntry, KconfigPolicy, Verdict};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let waivers = vec![Waiver { item: "busybox".into(), reason: "debug build for the lab only".into() }];
//! let mut checker = Checker::new(KconfigPolicy::builtin(), waivers)?;
//! let entries = vec![
//!     InitrdEntry { dest: "/init".into(), kind: EntryKind::File },
//!     InitrdEntry { dest: "/bin/busybox".into(), kind: EntryKind::File },
//! ];
//! // Content is read through the closure (here: every file is a script).
//! checker.check_initrd(&entries, |_entry| Ok(Box::new(&b"#!/init\n"[..])))?;
//! checker.check_cmdline("console=ttyS0 panic=-1 lockdown=confidentiality", None);
//! let report = checker.finish();
//! assert_eq!(report.verdict, Verdict::SealedWithWaivers);
//! assert_eq!(report.waivers_applied[0].item, "busybox");
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::format::kconfig::{KernelConfig, Value};
use crate::recipe::seal_spec::Waiver;
use crate::seal::signatures::{self, SIGNATURES};

use crate::seal::cmdline;

/// The policy file shipped with cvmforge (`kernel-config/policy.yaml`).
pub const BUILTIN_POLICY: &str = include_str!("../../../kernel-config/policy.yaml");
/// Version of the [`PolicyReport`] layout.
pub const REPORT_SCHEMA_VERSION: u32 = 1;
/// Item name of the violation recorded when no kernel configuration could be read.
pub const KCONFIG_UNAVAILABLE: &str = "kconfig:unavailable";

/// What kind of rule a violation breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// A remote-access server in the initrd (sshd, dropbear, telnetd).
    RemoteAccess,
    /// A console login path in the initrd (getty, login).
    ConsoleLogin,
    /// A shell in the initrd.
    Shell,
    /// A kernel command-line parameter.
    KernelCmdline,
    /// A kernel build option.
    KernelConfig,
    /// A setuid or setgid file (or a setgid directory) in the initrd: a way to gain privileges at exec.
    PrivilegeBit,
}

/// A policy failure that is not a violation: a bad policy file, a bad waiver, an unreadable file.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The policy file does not parse.
    #[error("invalid sealing policy")]
    BadPolicy {
        /// The YAML error (with line and column).
        source: serde_norway::Error,
    },
    /// The policy file has an unknown schema version.
    #[error("sealing policy schema_version {found} is not supported (expected {expected})")]
    SchemaVersion {
        /// Version found.
        found: u32,
        /// Version supported.
        expected: u32,
    },
    /// A waiver without a reason.
    #[error("the waiver for `{item}` has no reason: every waiver must say why the item is acceptable")]
    EmptyWaiverReason {
        /// The waived item.
        item: String,
    },
    /// A file of the initrd could not be read for scanning.
    #[error("cannot scan initrd file `{path}`")]
    Scan {
        /// Destination path in the initrd.
        path: String,
        /// The read error.
        source: io::Error,
    },
    /// Strict mode and unwaived violations remain.
    #[error("the image is not sealed: {count} policy violation(s), first: `{item}`: {detail}")]
    NotSealed {
        /// Number of violations.
        count: usize,
        /// The first violation's item.
        item: String,
        /// The first violation's detail.
        detail: String,
    },
}

/// A kernel option the policy requires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequiredOption {
    /// `CONFIG_…` name.
    pub option: String,
    /// Accepted values (`y`, `m`).
    pub values: Vec<String>,
    /// The module providing the option when it is `m` (checked by [`Checker::check_module_coverage`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// The rule applies only when this other option is enabled (`y` or `m`): `CONFIG_STRICT_DEVMEM` matters only
    /// in a kernel that has `/dev/mem`, and Kconfig cannot set it in one that does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Why.
    pub reason: String,
}

/// A kernel option the policy forbids (enabled as `y` or `m`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForbiddenOption {
    /// `CONFIG_…` name.
    pub option: String,
    /// The option is acceptable when this other option is `y`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unless: Option<String>,
    /// Why.
    pub reason: String,
}

/// The kernel-option rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KconfigRules {
    /// Options that must be set.
    pub required: Vec<RequiredOption>,
    /// Options that must not be set.
    pub forbidden: Vec<ForbiddenOption>,
}

/// The policy file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KconfigPolicy {
    /// Must be 1.
    pub schema_version: u32,
    /// Kernel-option rules.
    pub kernel_config: KconfigRules,
    /// sha256 of the policy file's bytes, lowercase hex (computed, not read).
    #[serde(skip)]
    pub sha256: String,
}

impl KconfigPolicy {
    /// Parses a policy file.
    pub fn from_yaml(text: &str) -> Result<KconfigPolicy, PolicyError> {
        let mut policy: KconfigPolicy =
            serde_norway::from_str(text).map_err(|source| PolicyError::BadPolicy { source })?;
        if policy.schema_version != 1 {
            return Err(PolicyError::SchemaVersion { found: policy.schema_version, expected: 1 });
        }
        policy.sha256 = hex::encode(Sha256::digest(text.as_bytes()));
        Ok(policy)
    }

    /// The policy shipped with cvmforge.
    pub fn builtin() -> KconfigPolicy {
        // The file is part of the source tree and covered by a test, so a parse failure is a cvmforge bug.
        #[allow(clippy::expect_used)]
        Self::from_yaml(BUILTIN_POLICY).expect("bug: kernel-config/policy.yaml does not parse")
    }
}

/// The kind of an initrd entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file (its content is scanned).
    File,
    /// A symbolic link.
    Symlink {
        /// The link target.
        target: String,
    },
    /// A directory.
    Dir,
    /// A device node, FIFO or socket.
    Other,
}

/// One entry of the initrd as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitrdEntry {
    /// Destination path in the initrd.
    pub dest: String,
    /// Its kind.
    pub kind: EntryKind,
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Violation {
    /// The category.
    pub category: Category,
    /// The item (what a waiver names).
    pub item: String,
    /// What was found, where, and why it is forbidden.
    pub detail: String,
}

/// A waiver that matched violations.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct WaiverApplied {
    /// The waived item.
    pub item: String,
    /// The recipe's reason.
    pub reason: String,
    /// The violations it waived.
    pub waived: Vec<Violation>,
}

/// A non-fatal finding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Warning {
    /// The item concerned.
    pub item: String,
    /// What is wrong.
    pub detail: String,
}

/// A check that ran, and on how many subjects (files, parameters, options).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct CheckRun {
    /// `initrd-content`, `kernel-cmdline` or `kernel-config`.
    pub name: String,
    /// Number of entries, parameters or rules examined.
    pub subjects: usize,
}

/// The outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// No violations, no waivers applied.
    Sealed,
    /// Every violation is waived.
    SealedWithWaivers,
    /// Unwaived violations remain.
    Violations,
}

/// The policy section of the manifest. All lists are sorted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyReport {
    /// [`REPORT_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// sha256 of the kernel-config policy file used.
    pub policy_sha256: String,
    /// Checks that ran.
    pub checks: Vec<CheckRun>,
    /// Unwaived violations.
    pub violations: Vec<Violation>,
    /// Waivers that matched, with what they waived.
    pub waivers_applied: Vec<WaiverApplied>,
    /// Unused waivers and other non-fatal findings.
    pub warnings: Vec<Warning>,
    /// The verdict.
    pub verdict: Verdict,
}

impl PolicyReport {
    /// In strict mode: fails when unwaived violations remain.
    pub fn enforce(&self) -> Result<(), PolicyError> {
        match self.violations.first() {
            None => Ok(()),
            Some(v) => Err(PolicyError::NotSealed {
                count: self.violations.len(),
                item: v.item.clone(),
                detail: v.detail.clone(),
            }),
        }
    }
}

/// Collects violations check by check.
#[derive(Debug)]
pub struct Checker {
    policy: KconfigPolicy,
    waivers: BTreeMap<String, String>,
    checks: BTreeSet<CheckRun>,
    violations: BTreeSet<Violation>,
    warnings: BTreeSet<Warning>,
}

impl Checker {
    /// Starts a check with a policy and the recipe's waivers (each must have a non-empty reason; a later waiver
    /// for the same item replaces an earlier one).
    pub fn new(policy: KconfigPolicy, waivers: Vec<Waiver>) -> Result<Checker, PolicyError> {
        let mut map = BTreeMap::new();
        for w in waivers {
            if w.reason.trim().is_empty() {
                return Err(PolicyError::EmptyWaiverReason { item: w.item });
            }
            map.insert(w.item, w.reason);
        }
        Ok(Checker {
            policy,
            waivers: map,
            checks: BTreeSet::new(),
            violations: BTreeSet::new(),
            warnings: BTreeSet::new(),
        })
    }

    fn violation(&mut self, category: Category, item: &str, detail: String) {
        self.violations.insert(Violation { category, item: item.to_string(), detail });
    }

    /// A setuid or setgid mode bit on an initrd entry is a violation (item `setid:<path>`): guest-init sets
    /// `NO_NEW_PRIVS` for the payload, but an image should not carry the means at all. A setgid directory is only
    /// group inheritance, but it is flagged too: nothing in a sealed image needs one.
    pub fn check_mode(&mut self, dest: &str, mode: u32) {
        if mode & 0o6000 != 0 {
            let which = match mode & 0o6000 {
                0o6000 => "setuid and setgid",
                0o4000 => "setuid",
                _ => "setgid",
            };
            self.violation(
                Category::PrivilegeBit,
                &format!("setid:{dest}"),
                format!("`{dest}` is {which} (mode {mode:04o})"),
            );
        }
    }

    /// Checks initrd entries by file name (files and symlinks, and symlink targets) and by ELF content.
    ///
    /// `open` is called once for each [`EntryKind::File`] and must return a reader over its bytes; files are read
    /// in fixed-size chunks, and only as far as the first chunk when they are not ELF.
    pub fn check_initrd<'a, F>(&mut self, entries: &[InitrdEntry], mut open: F) -> Result<(), PolicyError>
    where
        F: FnMut(&InitrdEntry) -> io::Result<Box<dyn Read + 'a>>,
    {
        for entry in entries {
            let mut found: BTreeMap<&'static str, (Category, Vec<String>)> = BTreeMap::new();
            let mut note = |sig: &signatures::Signature, why: String| {
                found.entry(sig.item).or_insert_with(|| (sig.category, Vec::new())).1.push(why);
            };
            // A program's name counts for symlinks (they can point at anything) and for programs, but not for
            // data such as `/etc/pam.d/login`.
            let program = match &entry.kind {
                EntryKind::Dir | EntryKind::Other => continue,
                EntryKind::Symlink { target } => {
                    if let Some(sig) = signatures::match_file_name(target, SIGNATURES) {
                        note(sig, format!("is a symlink to `{target}`"));
                    }
                    true
                }
                EntryKind::File => {
                    let scan = |e: io::Error| PolicyError::Scan { path: entry.dest.clone(), source: e };
                    let result = signatures::scan_content(open(entry).map_err(scan)?, SIGNATURES).map_err(scan)?;
                    for m in result.matches {
                        if let Some(sig) = SIGNATURES.iter().find(|s| s.item == m.item) {
                            note(sig, format!("contains the {}", m.description));
                        }
                    }
                    result.kind != signatures::FileKind::Data
                }
            };
            if let Some(sig) = signatures::match_file_name(&entry.dest, SIGNATURES).filter(|_| program) {
                note(sig, "has the name of a forbidden program".to_string());
            }
            for (item, (category, mut why)) in found {
                why.sort();
                self.violation(category, item, format!("`{}` {}", entry.dest, why.join(" and ")));
            }
        }
        self.checks.insert(CheckRun { name: "initrd-content".into(), subjects: entries.len() });
        Ok(())
    }

    /// Checks the kernel command line. `config`, when known, lets a kernel built with
    /// `CONFIG_LOCK_DOWN_KERNEL_FORCE_CONFIDENTIALITY=y` omit `lockdown=confidentiality`.
    pub fn check_cmdline(&mut self, line: &str, config: Option<&KernelConfig>) {
        let parsed = cmdline::parse(line);
        for param in &parsed.params {
            if let Some((reason, written)) = cmdline::judge(param) {
                let item = format!("cmdline:{}", param.key());
                self.violation(Category::KernelCmdline, &item, format!("`{written}`: {reason}"));
            }
        }
        for arg in &parsed.init_args {
            if let Some((word, reason)) = cmdline::INIT_ARG_RULES.iter().find(|(w, _)| w == arg) {
                let detail = format!("`{word}` after `--` reaches init as an argument: {reason}");
                self.violation(Category::KernelCmdline, &format!("cmdline:init-arg:{word}"), detail);
            }
        }
        if let Some(problem) = cmdline::panic_problem(&parsed.params) {
            self.violation(Category::KernelCmdline, "cmdline:panic", problem);
        }
        let forced = config.is_some_and(|c| c.is_builtin("CONFIG_LOCK_DOWN_KERNEL_FORCE_CONFIDENTIALITY"));
        if !forced && !parsed.params.iter().any(|p| p.key() == "lockdown") {
            let detail = "`lockdown=confidentiality` is missing and the kernel does not force it \
                          (CONFIG_LOCK_DOWN_KERNEL_FORCE_CONFIDENTIALITY): root could read kernel memory"
                .to_string();
            self.violation(Category::KernelCmdline, "cmdline:lockdown", detail);
        }
        let subjects = parsed.params.len() + parsed.init_args.len();
        self.checks.insert(CheckRun { name: "kernel-cmdline".into(), subjects });
    }

    /// Checks the kernel build configuration against the policy's required and forbidden options.
    pub fn check_kernel_config(&mut self, config: &KernelConfig) {
        let rules = self.policy.kernel_config.clone();
        for r in &rules.required {
            if r.when.as_deref().is_some_and(|w| !config.is_enabled(w)) {
                continue;
            }
            let value = config.get(&r.option).unwrap_or(&Value::No);
            if !r.values.iter().any(|v| *v == value.to_string()) {
                let is = match value {
                    Value::No => "is not set".to_string(),
                    other => format!("is `{other}`"),
                };
                let detail = format!("{is}, must be {}: {}", r.values.join(" or "), r.reason);
                self.violation(Category::KernelConfig, &r.option, format!("`{}` {detail}", r.option));
            }
        }
        for f in &rules.forbidden {
            let excused = f.unless.as_deref().is_some_and(|u| config.is_builtin(u));
            if config.is_enabled(&f.option) && !excused {
                let value = config.get(&f.option).unwrap_or(&Value::No);
                let unless = f.unless.as_deref().map(|u| format!(" without `{u}=y`")).unwrap_or_default();
                let detail = format!("`{}={value}`{unless}: {}", f.option, f.reason);
                self.violation(Category::KernelConfig, &f.option, detail);
            }
        }
        self.check_builtin_cmdline(config);
        let subjects = rules.required.len() + rules.forbidden.len();
        self.checks.insert(CheckRun { name: "kernel-config".into(), subjects });
    }

    /// A command line compiled into the kernel (`CONFIG_CMDLINE_BOOL`) is prepended to the boot loader's, so its
    /// parameters obey the same rules (`arch/x86/kernel/setup.c`).
    fn check_builtin_cmdline(&mut self, config: &KernelConfig) {
        if !config.is_builtin("CONFIG_CMDLINE_BOOL") {
            return;
        }
        if let Some(Value::Str(line)) = config.get("CONFIG_CMDLINE") {
            for param in cmdline::parse(line).params {
                if let Some((reason, written)) = cmdline::judge(&param) {
                    let detail = format!("`{written}` in the built-in CONFIG_CMDLINE: {reason}");
                    self.violation(Category::KernelCmdline, &format!("cmdline:{}", param.key()), detail);
                }
            }
        }
        if config.is_builtin("CONFIG_CMDLINE_OVERRIDE") {
            self.warnings.insert(Warning {
                item: "CONFIG_CMDLINE_OVERRIDE".into(),
                detail: "the kernel ignores the boot loader's command line and uses only CONFIG_CMDLINE: the recipe's \
                         command line has no effect"
                    .into(),
            });
        }
    }

    /// Checks that every required option built as a module (`=m`) has its module (policy field `module`) among
    /// `initrd_modules` (names with `-` or `_`): otherwise the guest would boot without the feature.
    pub fn check_module_coverage(&mut self, config: &KernelConfig, initrd_modules: &BTreeSet<String>) {
        let loaded: BTreeSet<String> = initrd_modules.iter().map(|m| m.replace('-', "_")).collect();
        let rules = self.policy.kernel_config.required.clone();
        let mut subjects = 0;
        for r in &rules {
            let Some(module) = r.module.as_deref().filter(|_| config.get(&r.option) == Some(&Value::Module)) else {
                continue;
            };
            subjects += 1;
            if !loaded.contains(&module.replace('-', "_")) {
                let detail = format!(
                    "`{}=m` but the module `{module}` is not in the initrd: add it to the recipe's kernel modules ({})",
                    r.option, r.reason
                );
                self.violation(Category::KernelConfig, &r.option, detail);
            }
        }
        self.checks.insert(CheckRun { name: "kernel-modules".into(), subjects });
    }

    /// Records that no kernel configuration could be read (no config file, no IKCONFIG): a violation of its own,
    /// waivable as [`KCONFIG_UNAVAILABLE`].
    pub fn kernel_config_unavailable(&mut self, why: &str) {
        let detail = format!("the kernel configuration could not be checked: {why}");
        self.violation(Category::KernelConfig, KCONFIG_UNAVAILABLE, detail);
        self.checks.insert(CheckRun { name: "kernel-config".into(), subjects: 0 });
    }

    /// Applies the waivers and produces the report.
    pub fn finish(self) -> PolicyReport {
        let mut applied: BTreeMap<String, Vec<Violation>> = BTreeMap::new();
        let mut violations = Vec::new();
        for v in self.violations {
            if self.waivers.contains_key(&v.item) {
                applied.entry(v.item.clone()).or_default().push(v);
            } else {
                violations.push(v);
            }
        }
        let mut warnings: Vec<Warning> = self.warnings.into_iter().collect();
        let mut waivers_applied = Vec::new();
        for (item, reason) in self.waivers {
            match applied.remove(&item) {
                Some(waived) => waivers_applied.push(WaiverApplied { item, reason, waived }),
                None => warnings.push(Warning {
                    detail: format!("the waiver for `{item}` matches no violation: remove it from the recipe"),
                    item,
                }),
            }
        }
        warnings.sort();
        let verdict = match (violations.is_empty(), waivers_applied.is_empty()) {
            (false, _) => Verdict::Violations,
            (true, true) => Verdict::Sealed,
            (true, false) => Verdict::SealedWithWaivers,
        };
        PolicyReport {
            schema_version: REPORT_SCHEMA_VERSION,
            policy_sha256: self.policy.sha256,
            checks: self.checks.into_iter().collect(),
            violations,
            waivers_applied,
            warnings,
            verdict,
        }
    }
}

#[cfg(test)]
mod tests;
