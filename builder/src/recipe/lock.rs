//! The lock file `<recipe stem>.lock` beside the recipe: the SHA-256 and size of every input the recipe names.
//!
//! Every successful `cvmforge build` writes it (sorted-key JSON, trailing newline, schema [`LOCK_SCHEMA`]);
//! `cvmforge build --locked` compares the inputs against it before anything is written and refuses to build if any input
//! differs, is missing from the lock, or is in the lock but no longer in the recipe. Only content (digest and size) is
//! compared: moving an input without changing its bytes keeps the lock valid.
//!
//! ```
//! use cvmforge::recipe::lock::{Lock, LockedInput};
//! let mut lock = Lock::new("demo.yaml");
//! lock.inputs.insert("kernel".into(), LockedInput { path: "vmlinuz".into(), sha256: "00".repeat(32), size: 4 });
//! let text = lock.to_json();
//! assert_eq!(Lock::from_json(&text).unwrap(), lock);
//! assert!(lock.check(&lock.inputs).is_ok());
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Schema identifier of lock files.
pub const LOCK_SCHEMA: &str = "https://cvmforge.dev/lock/v1";

/// One locked input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedInput {
    /// The path as written in the recipe.
    pub path: String,
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// A lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// Always [`LOCK_SCHEMA`].
    pub schema: String,
    /// The recipe's file name.
    pub recipe: String,
    /// Role (`kernel`, `init`, `file:/usr/bin/app`, `firmware:snp`, ...) → input.
    pub inputs: BTreeMap<String, LockedInput>,
}

/// How one input differs from the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// Same role, different content.
    Changed {
        /// The role.
        role: String,
        /// Recipe path.
        path: String,
        /// Locked digest.
        expected: String,
        /// Actual digest.
        actual: String,
    },
    /// The recipe has an input the lock does not know.
    NotLocked {
        /// The role.
        role: String,
        /// Recipe path.
        path: String,
        /// Actual digest.
        actual: String,
    },
    /// The lock has an input the recipe no longer names.
    NoLongerInRecipe {
        /// The role.
        role: String,
        /// Locked digest.
        expected: String,
    },
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::Changed { role, path, expected, actual } => {
                write!(f, "input `{role}` (`{path}`): expected sha256 {expected}, actual sha256 {actual}")
            }
            Difference::NotLocked { role, path, actual } => {
                write!(
                    f,
                    "input `{role}` (`{path}`) is not in the lock file: expected no such input, actual sha256 {actual}"
                )
            }
            Difference::NoLongerInRecipe { role, expected } => {
                write!(f, "input `{role}` is in the lock file (expected sha256 {expected}) but not in the recipe: actual none")
            }
        }
    }
}

/// Why a lock file could not be used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LockError {
    /// `--locked` but there is no lock file.
    #[error("`--locked` was given but the lock file `{path}` does not exist")]
    Missing {
        /// The lock file.
        path: PathBuf,
    },
    /// Reading or writing failed.
    #[error("cannot {action} lock file `{path}`")]
    Io {
        /// `read` or `write`.
        action: &'static str,
        /// The lock file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Not valid lock JSON.
    #[error("lock file `{path}` is not a valid cvmforge lock (schema {LOCK_SCHEMA})")]
    Parse {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// Unknown schema id.
    #[error("lock file `{path}` has schema `{found}`; this cvmforge reads `{LOCK_SCHEMA}`")]
    Schema {
        /// The lock file.
        path: PathBuf,
        /// The schema found.
        found: String,
    },
    /// Inputs differ from the lock.
    #[error("inputs differ from the lock file `{path}`: {}", list(differences))]
    Differs {
        /// The lock file.
        path: PathBuf,
        /// Every difference, sorted by role.
        differences: Vec<Difference>,
    },
}

fn list(differences: &[Difference]) -> String {
    differences.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

impl Lock {
    /// An empty lock for the recipe named `recipe`.
    pub fn new(recipe: &str) -> Lock {
        Lock { schema: LOCK_SCHEMA.to_string(), recipe: recipe.to_string(), inputs: BTreeMap::new() }
    }

    /// The lock file path for a recipe: `<dir>/<stem>.lock`.
    pub fn path_for(recipe: &Path) -> PathBuf {
        recipe.with_extension("lock")
    }

    /// Sorted-key pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        // Serializing plain structs of strings and integers cannot fail.
        let value = serde_json::to_value(self).unwrap_or_default();
        let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Parses lock JSON (without a path for errors; see [`Lock::read`]).
    pub fn from_json(text: &str) -> Result<Lock, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Reads and checks the lock file at `path`.
    pub fn read(path: &Path) -> Result<Lock, LockError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(LockError::Missing { path: path.to_path_buf() })
            }
            Err(source) => return Err(LockError::Io { action: "read", path: path.to_path_buf(), source }),
        };
        let lock = Lock::from_json(&text).map_err(|source| LockError::Parse { path: path.to_path_buf(), source })?;
        if lock.schema != LOCK_SCHEMA {
            return Err(LockError::Schema { path: path.to_path_buf(), found: lock.schema });
        }
        Ok(lock)
    }

    /// Every difference between the locked inputs and `actual`, sorted by role; empty if they match.
    pub fn differences(&self, actual: &BTreeMap<String, LockedInput>) -> Vec<Difference> {
        let mut out = Vec::new();
        for (role, input) in actual {
            match self.inputs.get(role) {
                Some(locked) if locked.sha256 == input.sha256 && locked.size == input.size => {}
                Some(locked) => out.push(Difference::Changed {
                    role: role.clone(),
                    path: input.path.clone(),
                    expected: locked.sha256.clone(),
                    actual: input.sha256.clone(),
                }),
                None => out.push(Difference::NotLocked {
                    role: role.clone(),
                    path: input.path.clone(),
                    actual: input.sha256.clone(),
                }),
            }
        }
        for (role, locked) in &self.inputs {
            if !actual.contains_key(role) {
                out.push(Difference::NoLongerInRecipe { role: role.clone(), expected: locked.sha256.clone() });
            }
        }
        out.sort_by(|a, b| role_of(a).cmp(role_of(b)));
        out
    }

    /// `Ok` if `actual` matches the lock exactly.
    pub fn check(&self, actual: &BTreeMap<String, LockedInput>) -> Result<(), Vec<Difference>> {
        let differences = self.differences(actual);
        if differences.is_empty() {
            Ok(())
        } else {
            Err(differences)
        }
    }
}

fn role_of(d: &Difference) -> &str {
    match d {
        Difference::Changed { role, .. }
        | Difference::NotLocked { role, .. }
        | Difference::NoLongerInRecipe { role, .. } => role,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(sha: &str) -> LockedInput {
        LockedInput { path: "p".into(), sha256: sha.into(), size: 1 }
    }

    #[test]
    fn json_has_sorted_keys_and_trailing_newline() {
        let mut lock = Lock::new("r.yaml");
        lock.inputs.insert("kernel".into(), input("aa"));
        lock.inputs.insert("init".into(), input("bb"));
        let text = lock.to_json();
        assert!(text.ends_with("}\n"));
        let init = text.find("\"init\"").unwrap();
        assert!(init < text.find("\"kernel\"").unwrap());
        assert!(text.find("\"inputs\"").unwrap() < text.find("\"recipe\"").unwrap());
        assert!(text.find("\"recipe\"").unwrap() < text.find("\"schema\"").unwrap());
    }

    #[test]
    fn rejects_changed_missing_and_extra_inputs() {
        let mut lock = Lock::new("r.yaml");
        lock.inputs.insert("a".into(), input("11"));
        lock.inputs.insert("b".into(), input("22"));
        let mut actual = BTreeMap::new();
        actual.insert("a".to_string(), input("33"));
        actual.insert("c".to_string(), input("44"));
        let diffs = lock.check(&actual).unwrap_err();
        assert_eq!(diffs.len(), 3);
        assert_eq!(diffs[0].to_string(), "input `a` (`p`): expected sha256 11, actual sha256 33");
        assert!(matches!(&diffs[1], Difference::NoLongerInRecipe { role, .. } if role == "b"));
        assert!(matches!(&diffs[2], Difference::NotLocked { role, .. } if role == "c"));
    }
}
