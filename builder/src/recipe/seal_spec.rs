//! The recipe's sealing sections: `kernel.modules` ([`ModulesSpec`]) and `sealing:` ([`SealingSpec`], with its
//! [`Waiver`]s). They are schema only; the sealing stage (`crate::seal`) interprets them.

use serde::{Deserialize, Serialize};

/// `kernel.modules` of a recipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModulesSpec {
    /// A module directory (`lib/modules/<release>`), a `lib/modules` directory, or the root of an extracted
    /// linux-image package, relative to the recipe (resolved by the recipe loader).
    pub tree: String,
    /// Module names to load, with their dependencies.
    #[serde(default)]
    pub load: Vec<String>,
}

/// `sealing:` of a recipe.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealingSpec {
    /// Fail the build on any unwaived violation. Absent means yes: a sealed-image builder fails closed. `false` is
    /// the explicit opt-out (like `cvmforge build --allow-unsealed`); the manifest then records `strict: false` and
    /// the verdict `violations`, and the build prints a loud warning.
    #[serde(default)]
    pub strict: Option<bool>,
    /// Accepted violations, each with a reason (see the module docs for item names).
    #[serde(default)]
    pub waivers: Vec<Waiver>,
}

/// A recipe's waiver of one policy item.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Waiver {
    /// The item: a program (`sshd`, `busybox`), a command-line item (`cmdline:panic`) or a kernel option
    /// (`CONFIG_KEXEC`, `kconfig:unavailable`).
    pub item: String,
    /// Why it is acceptable; must not be empty.
    pub reason: String,
}
