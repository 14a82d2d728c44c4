//! The transparency log: an append-only log of DSSE envelopes in the C2SP formats, so that Go's and Cloudflare's
//! tools can read it. The log directory is the website: `checkpoint` (a signed note, [`note`]), `tile/<L>/<N>`
//! hash tiles and `tile/entries/<N>` entry bundles ([`tiles`]), and `signers`, the public keys whose envelopes the
//! log accepts. Writing is [`writer`] (init, append, add a signer, merge cosignatures); reading and checking is
//! [`audit`] (audit, witness) and [`proof`] (offline inclusion proofs, C2SP tlog-proof). The Merkle math is [`tree`].
//!
//! Nothing here reads the clock: a witness's cosignature time is an argument.

pub mod audit;
pub mod note;
pub mod proof;
pub mod source;
pub mod store;
pub mod tiles;
pub mod tree;
pub mod writer;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::VerifyingKey;

use crate::publish::dsse;
pub use note::{Checkpoint, KeyKind, Note, NoteError, NoteVerifier};
pub use source::Source;
pub use tree::Hash;

/// The file of the signed checkpoint.
pub const CHECKPOINT: &str = "checkpoint";
/// The file of the accepted signers.
pub const SIGNERS: &str = "signers";
/// The largest `signers` file.
pub const MAX_SIGNERS_FILE: u64 = 1 << 20;

/// Why a log operation failed. Each names the file (or URL) and what was expected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// A file could not be read or written.
    #[error("`{path}`: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A file the log must have is missing.
    #[error("`{path}` is missing")]
    Missing {
        /// The file.
        path: String,
    },
    /// A fetch over HTTP failed.
    #[error("`{url}`: {reason}")]
    Http {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A note or checkpoint was refused.
    #[error("`{path}`: {source}")]
    Note {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: NoteError,
    },
    /// A tile's bytes do not have its shape.
    #[error("`{path}`: {why}")]
    BadTile {
        /// The tile.
        path: String,
        /// Why.
        why: String,
    },
    /// A tile's hashes are not the ones its entries give: the log was rewritten.
    #[error("`{path}` does not hold the hashes of the log's entries: the log was rewritten or corrupted")]
    TileMismatch {
        /// The tile.
        path: String,
    },
    /// A tile that the tree at this size does not have, or an older partial tile that disagrees with it.
    #[error("`{path}`: extra tile: {why}")]
    ExtraTile {
        /// The tile.
        path: String,
        /// Why.
        why: String,
    },
    /// The checkpoint's root is not the root of the tiles.
    #[error("the checkpoint says root {expected} for {size} entries, but the tiles give {computed}")]
    RootMismatch {
        /// Tree size.
        size: u64,
        /// The checkpoint's root, base64.
        expected: String,
        /// The computed root, base64.
        computed: String,
    },
    /// An entry that no accepted signer signed.
    #[error("entry {index}: {why}")]
    Entry {
        /// The entry's index.
        index: u64,
        /// Why.
        why: String,
    },
    /// The log is smaller than a checkpoint seen before.
    #[error("rollback: the log has {now} entries, but a checkpoint of {had} entries was seen before (`{state}`)")]
    Rollback {
        /// The earlier size.
        had: u64,
        /// The size now.
        now: u64,
        /// Where the earlier checkpoint is kept.
        state: String,
    },
    /// Two checkpoints that cannot both be views of one append-only log.
    #[error(
        "SPLIT VIEW: the checkpoint of {now} entries (root {now_root}) is not an extension of the one of {had} entries \
         (root {had_root}) seen before; the log shows different histories to different readers"
    )]
    SplitView {
        /// The earlier size.
        had: u64,
        /// Its root, base64.
        had_root: String,
        /// The size now.
        now: u64,
        /// Its root, base64.
        now_root: String,
    },
    /// A checkpoint of another log.
    #[error("origin `{found}`, expected `{expected}`")]
    Origin {
        /// The expected origin.
        expected: String,
        /// What the checkpoint says.
        found: String,
    },
    /// Too few witnesses cosigned.
    #[error("{found} valid cosignature(s) from the given witness keys, {needed} required")]
    Quorum {
        /// Valid cosignatures.
        found: usize,
        /// Required.
        needed: usize,
    },
    /// A proof that does not parse or verify.
    #[error("{0}")]
    Proof(String),
    /// Refused input (an entry too large, a directory that already exists, a bad argument).
    #[error("{0}")]
    Refused(String),
}

impl LogError {
    pub(crate) fn io(path: impl std::fmt::Display, source: std::io::Error) -> LogError {
        LogError::Io { path: path.to_string(), source }
    }

    /// A hint for the person who runs the command.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            LogError::SplitView { .. } => Some(
                "keep both checkpoints as evidence and publish them: a log that signs two inconsistent checkpoints is \
                 misbehaving",
            ),
            LogError::Rollback { .. } => {
                Some("the log lost entries it had published; keep the state directory as evidence")
            }
            LogError::Entry { .. } => Some("add the signer's public key with `cvmforge log add-signer`"),
            LogError::Quorum { .. } => {
                Some("ask the witnesses to cosign, then merge with `cvmforge log checkpoint --add-cosignatures`")
            }
            _ => None,
        }
    }
}

/// Base64 of a hash, for messages.
pub fn b64(hash: &Hash) -> String {
    STANDARD.encode(hash)
}

/// The accepted signers: one `ed25519 <base64 of the 32-byte key>` per line, `#` comments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signers(pub Vec<VerifyingKey>);

impl Signers {
    /// Parses a `signers` file.
    pub fn parse(text: &str) -> Result<Signers, LogError> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || LogError::Refused(format!("`{SIGNERS}` line {}: expected `ed25519 <base64 key>`", n + 1));
            let key = line.strip_prefix("ed25519 ").ok_or_else(bad)?;
            let raw: [u8; 32] = STANDARD.decode(key.trim()).ok().and_then(|k| k.try_into().ok()).ok_or_else(bad)?;
            keys.push(VerifyingKey::from_bytes(&raw).map_err(|_| bad())?);
        }
        Ok(Signers(keys))
    }

    /// The file's text.
    pub fn to_text(&self) -> String {
        let mut text = String::from("# Public keys whose DSSE envelopes this log accepts (cvmforge log add-signer).\n");
        for key in &self.0 {
            text.push_str(&format!("ed25519 {}\n", STANDARD.encode(key.as_bytes())));
        }
        text
    }

    /// Checks that `entry` is a DSSE envelope that one of the signers signed.
    pub fn check(&self, entry: &[u8]) -> Result<(), String> {
        let envelope = dsse::parse(entry).map_err(|e| e.to_string())?;
        if self.0.is_empty() {
            return Err("the log has no signers".into());
        }
        let mut last = String::new();
        for key in &self.0 {
            match dsse::verify(&envelope, key, dsse::IN_TOTO_PAYLOAD_TYPE) {
                Ok(_) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
        }
        Err(format!("not signed by any of the log's {} signer(s): {last}", self.0.len()))
    }
}

/// The log's public key as given: a verifier-key string (which names the log) or a bare key (named by the origin
/// of the checkpoint it checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogKey {
    /// `origin+keyid+base64(0x01 ‖ key)`.
    Named(NoteVerifier),
    /// An Ed25519 key from a PEM file.
    Bare(VerifyingKey),
}

impl LogKey {
    /// The verifier for a checkpoint of `origin`.
    pub fn verifier(&self, origin: &str) -> Result<NoteVerifier, LogError> {
        match self {
            LogKey::Named(v) if v.name != origin => {
                Err(LogError::Origin { expected: v.name.clone(), found: origin.to_owned() })
            }
            LogKey::Named(v) => Ok(v.clone()),
            LogKey::Bare(key) => Ok(NoteVerifier { name: origin.to_owned(), key: *key, kind: KeyKind::Log }),
        }
    }
}

/// Parses a signed checkpoint and checks the log's signature; `path` names it in errors.
pub fn open_checkpoint(bytes: &[u8], path: &str, log_key: &LogKey) -> Result<(Note, Checkpoint), LogError> {
    let note_error = |source| LogError::Note { path: path.to_owned(), source };
    let note = Note::parse(bytes).map_err(note_error)?;
    let checkpoint = Checkpoint::parse(&note.text).map_err(note_error)?;
    note.verify(&log_key.verifier(&checkpoint.origin)?).map_err(note_error)?;
    Ok((note, checkpoint))
}

/// Reads and checks the log's signed checkpoint from `source`.
pub fn read_checkpoint(source: &dyn Source, log_key: &LogKey) -> Result<(Note, Checkpoint), LogError> {
    let path = source.show(CHECKPOINT);
    let bytes = source.fetch(CHECKPOINT, note::MAX_NOTE)?.ok_or_else(|| LogError::Missing { path: path.clone() })?;
    open_checkpoint(&bytes, &path, log_key)
}

/// Counts valid cosignatures by `witnesses` and checks the quorum.
pub fn check_quorum(note: &Note, witnesses: &[NoteVerifier], quorum: usize) -> Result<usize, LogError> {
    let found = witnesses.iter().filter(|w| note.verify(w).is_ok()).count();
    if found < quorum {
        return Err(LogError::Quorum { found, needed: quorum });
    }
    Ok(found)
}
