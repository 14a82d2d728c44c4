//! The sealing stage: whether an image can start and has no way in.
//!
//! - [`check`]: the one call the build makes ([`check::check`]): it runs the checks below on the recipe's initrd and
//!   kernel and stages the kernel modules.
//! - [`policy`]: the sealing policy (`kernel-config/policy.yaml`), its [`policy::Checker`] and the report recorded in
//!   the manifest.
//! - [`cmdline`]: the kernel command-line rules.
//! - [`signatures`]: content signatures of forbidden programs (shells, SSH servers, getty/login).
//! - [`linkage`]: the init is static; a dynamic payload's interpreter is in the initrd.
//! - [`modules`]: kernel modules from a distribution module tree, checked against the kernel release.
//!
//! The recipe's sections this stage reads (`sealing:`, `kernel.modules`) are schema types in
//! [`crate::recipe::seal_spec`]; this stage depends on the recipe, never the other way round.

pub mod check;
pub mod cmdline;
pub mod error;
pub mod linkage;
pub mod modules;
pub mod policy;
pub mod signatures;
