//! C2SP signed notes (`signed-note`), checkpoints (`tlog-checkpoint`) and Ed25519 cosignatures (`tlog-cosignature`).
//!
//! A note is text ending in a newline, a blank line, then signature lines `— <name> base64(key id ‖ signature)`.
//! The key id is the first four bytes of SHA-256(name ‖ 0x0A ‖ type ‖ public key): type 0x01 for a log's Ed25519
//! signature over the text, 0x04 for a witness cosignature, which signs `cosignature/v1\ntime <T>\n` ‖ text and
//! carries the big-endian u64 time before the signature.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use super::tree::Hash;

/// The largest note read (a checkpoint with many cosignatures is a few KiB).
pub const MAX_NOTE: u64 = 1 << 20;
/// The most signature lines a note may have.
const MAX_SIGNATURES: usize = 100;
/// The signature line prefix: EM DASH, space.
const SIG_PREFIX: &str = "\u{2014} ";

/// The signature type byte of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// 0x01: a signed-note Ed25519 key (the log's).
    Log,
    /// 0x04: an Ed25519 cosigner (a witness).
    Cosigner,
}

impl KeyKind {
    fn type_byte(self) -> u8 {
        match self {
            KeyKind::Log => 0x01,
            KeyKind::Cosigner => 0x04,
        }
    }
}

/// A named public key that checks note signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    /// The key name (for a log, its origin).
    pub name: String,
    /// The key.
    pub key: VerifyingKey,
    /// Log key or cosigner key.
    pub kind: KeyKind,
}

/// Why a note, a key or a checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// Not the shape of a signed note.
    #[error("not a signed note: {0}")]
    Malformed(String),
    /// A key name with a `+`, whitespace or control characters.
    #[error("key name `{0}` must be non-empty and contain no `+`, whitespace or control characters")]
    BadName(String),
    /// A verifier-key string that does not parse or whose key id does not match.
    #[error("not a verifier key `name+keyid+base64(type ‖ key)`: {0}")]
    BadVerifierKey(String),
    /// No signature line of the key verifies.
    #[error("no valid signature by `{name}` (key id {key_id})")]
    Unsigned {
        /// The key's name.
        name: String,
        /// Its key id, hex.
        key_id: String,
    },
    /// Not a checkpoint body.
    #[error("not a checkpoint: {0}")]
    Checkpoint(String),
}

/// Checks a C2SP key name.
pub fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.chars().any(|c| c == '+' || c.is_whitespace() || c.is_control()) {
        return Err(NoteError::BadName(name.to_owned()));
    }
    Ok(())
}

/// The 4-byte key id of `key` under `name`.
pub fn key_id(name: &str, kind: KeyKind, key: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([kind.type_byte()]);
    h.update(key.as_bytes());
    let digest: [u8; 32] = h.finalize().into();
    [digest[0], digest[1], digest[2], digest[3]]
}

impl NoteVerifier {
    /// The verifier-key string `name+hex(key id)+base64(type ‖ key)`.
    pub fn to_vkey(&self) -> String {
        let mut typed = vec![self.kind.type_byte()];
        typed.extend_from_slice(self.key.as_bytes());
        format!("{}+{}+{}", self.name, hex::encode(self.key_id()), STANDARD.encode(typed))
    }

    /// Parses a verifier-key string of the given kind.
    pub fn from_vkey(text: &str, kind: KeyKind) -> Result<NoteVerifier, NoteError> {
        let bad = |why: &str| NoteError::BadVerifierKey(why.to_owned());
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected three `+`-separated fields"));
        };
        check_name(name)?;
        let typed = STANDARD.decode(key).map_err(|_| bad("the key is not base64"))?;
        let Some((&type_byte, raw)) = typed.split_first() else { return Err(bad("the key is empty")) };
        if type_byte != kind.type_byte() {
            return Err(bad(&format!("key type 0x{type_byte:02x}, expected 0x{:02x}", kind.type_byte())));
        }
        let raw: [u8; 32] = raw.try_into().map_err(|_| bad("an Ed25519 key is 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&raw).map_err(|_| bad("not an Ed25519 point"))?;
        let verifier = NoteVerifier { name: name.to_owned(), key, kind };
        if id != hex::encode(verifier.key_id()) {
            return Err(bad("the key id does not match the name and key"));
        }
        Ok(verifier)
    }

    /// This key's id.
    pub fn key_id(&self) -> [u8; 4] {
        key_id(&self.name, self.kind, &self.key)
    }
}

/// One signature line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name.
    pub name: String,
    /// The key id.
    pub key_id: [u8; 4],
    /// The signature bytes after the key id.
    pub signature: Vec<u8>,
}

impl NoteSignature {
    fn line(&self) -> String {
        let mut blob = self.key_id.to_vec();
        blob.extend_from_slice(&self.signature);
        format!("{SIG_PREFIX}{} {}\n", self.name, STANDARD.encode(blob))
    }
}

/// A signed note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The text, ending in a newline.
    pub text: String,
    /// Its signatures, in the order written.
    pub signatures: Vec<NoteSignature>,
}

impl Note {
    /// Parses a note.
    pub fn parse(bytes: &[u8]) -> Result<Note, NoteError> {
        let bad = |why: String| NoteError::Malformed(why);
        let text =
            std::str::from_utf8(bytes).map_err(|e| bad(format!("not UTF-8 at byte offset {}", e.valid_up_to())))?;
        if let Some(c) = text.chars().find(|c| c.is_control() && *c != '\n') {
            return Err(bad(format!("control character U+{:04X}", u32::from(c))));
        }
        let Some(split) = text.rfind("\n\n") else { return Err(bad("no blank line before the signatures".into())) };
        let (body, sigs) = (&text[..split + 1], &text[split + 2..]);
        if !sigs.ends_with('\n') {
            return Err(bad("the last signature line does not end in a newline".into()));
        }
        let mut signatures = Vec::new();
        for (n, line) in sigs.lines().enumerate() {
            signatures.push(parse_signature_line(line).map_err(|why| bad(format!("signature line {}: {why}", n + 1)))?);
        }
        if signatures.is_empty() || signatures.len() > MAX_SIGNATURES {
            return Err(bad(format!("{} signature lines, expected 1 to {MAX_SIGNATURES}", signatures.len())));
        }
        Ok(Note { text: body.to_owned(), signatures })
    }

    /// The note as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.text.clone();
        out.push('\n');
        for s in &self.signatures {
            out.push_str(&s.line());
        }
        out.into_bytes()
    }

    /// A note signed by a log key.
    pub fn sign(text: &str, name: &str, key: &SigningKey) -> Result<Note, NoteError> {
        check_name(name)?;
        if !text.ends_with('\n') || text.contains("\n\n") {
            return Err(NoteError::Malformed("note text must end in one newline and have no blank line".into()));
        }
        let signature = key.sign(text.as_bytes()).to_bytes().to_vec();
        let key_id = key_id(name, KeyKind::Log, &key.verifying_key());
        Ok(Note { text: text.to_owned(), signatures: vec![NoteSignature { name: name.to_owned(), key_id, signature }] })
    }

    /// Adds (or replaces) a witness cosignature made at `time`.
    pub fn cosign(&mut self, name: &str, key: &SigningKey, time: u64) -> Result<(), NoteError> {
        check_name(name)?;
        let message = cosigned_message(&self.text, time);
        let mut signature = time.to_be_bytes().to_vec();
        signature.extend_from_slice(&key.sign(message.as_bytes()).to_bytes());
        let key_id = key_id(name, KeyKind::Cosigner, &key.verifying_key());
        self.signatures.retain(|s| !(s.name == name && s.key_id == key_id));
        self.signatures.push(NoteSignature { name: name.to_owned(), key_id, signature });
        Ok(())
    }

    /// Checks that `verifier` signed this note. For a cosigner, returns the time of its cosignature.
    pub fn verify(&self, verifier: &NoteVerifier) -> Result<u64, NoteError> {
        let id = verifier.key_id();
        for s in self.signatures.iter().filter(|s| s.name == verifier.name && s.key_id == id) {
            let ok = match verifier.kind {
                KeyKind::Log => check_ed25519(&verifier.key, self.text.as_bytes(), &s.signature).then_some(0),
                KeyKind::Cosigner => cosignature_time(&s.signature).filter(|time| {
                    let message = cosigned_message(&self.text, *time);
                    s.signature.get(8..).is_some_and(|sig| check_ed25519(&verifier.key, message.as_bytes(), sig))
                }),
            };
            if let Some(time) = ok {
                return Ok(time);
            }
        }
        Err(NoteError::Unsigned { name: verifier.name.clone(), key_id: hex::encode(id) })
    }
}

fn parse_signature_line(line: &str) -> Result<NoteSignature, String> {
    let rest = line.strip_prefix(SIG_PREFIX).ok_or("does not start with `\u{2014} `")?;
    let (name, blob) = rest.split_once(' ').ok_or("no space between the key name and the signature")?;
    check_name(name).map_err(|e| e.to_string())?;
    let blob = STANDARD.decode(blob).map_err(|_| "the signature is not base64".to_string())?;
    if blob.len() < 5 {
        return Err("the signature is shorter than a key id".into());
    }
    let (id, signature) = blob.split_at(4);
    Ok(NoteSignature { name: name.to_owned(), key_id: [id[0], id[1], id[2], id[3]], signature: signature.to_vec() })
}

fn check_ed25519(key: &VerifyingKey, message: &[u8], signature: &[u8]) -> bool {
    let Ok(bytes) = <[u8; 64]>::try_from(signature) else { return false };
    key.verify(message, &ed25519_dalek::Signature::from_bytes(&bytes)).is_ok()
}

fn cosignature_time(signature: &[u8]) -> Option<u64> {
    if signature.len() != 8 + 64 {
        return None;
    }
    let time = u64::from_be_bytes(signature.get(..8)?.try_into().ok()?);
    (time <= i64::MAX as u64).then_some(time)
}

fn cosigned_message(text: &str, time: u64) -> String {
    format!("cosignature/v1\ntime {time}\n{text}")
}

/// A checkpoint body: origin, tree size, root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line.
    pub origin: String,
    /// Entries in the tree.
    pub size: u64,
    /// The tree's root hash.
    pub root: Hash,
}

impl Checkpoint {
    /// The note text.
    pub fn text(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, STANDARD.encode(self.root))
    }

    /// Parses a note text (extension lines are refused: this log writes none).
    pub fn parse(text: &str) -> Result<Checkpoint, NoteError> {
        let bad = |why: &str| NoteError::Checkpoint(why.to_owned());
        let lines: Vec<&str> = text.strip_suffix('\n').ok_or(bad("no final newline"))?.split('\n').collect();
        let [origin, size, root] = lines[..] else {
            return Err(bad(&format!("{} lines, expected 3 (origin, size, root hash)", lines.len())));
        };
        if origin.is_empty() {
            return Err(bad("empty origin"));
        }
        let size_ok =
            !size.is_empty() && size.bytes().all(|b| b.is_ascii_digit()) && (size == "0" || !size.starts_with('0'));
        let size = size.parse::<u64>().ok().filter(|_| size_ok).ok_or(bad("the tree size is not a decimal number"))?;
        let root = STANDARD
            .decode(root)
            .ok()
            .and_then(|r| <[u8; 32]>::try_from(r).ok())
            .ok_or(bad("the root is not 32 bytes of base64"))?;
        Ok(Checkpoint { origin: origin.to_owned(), size, root })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn log_key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    #[test]
    fn notes_round_trip_and_verify() {
        let cp = Checkpoint { origin: "example.com/log".into(), size: 3, root: [9; 32] };
        let note = Note::sign(&cp.text(), "example.com/log", &log_key()).unwrap();
        let bytes = note.to_bytes();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("example.com/log\n3\nCQkJ"), "{text}");
        assert!(text.contains("\n\n\u{2014} example.com/log "), "{text}");
        let parsed = Note::parse(&bytes).unwrap();
        assert_eq!(parsed, note);
        assert_eq!(Checkpoint::parse(&parsed.text).unwrap(), cp);
        let v = NoteVerifier { name: "example.com/log".into(), key: log_key().verifying_key(), kind: KeyKind::Log };
        assert_eq!(parsed.verify(&v), Ok(0));
        assert_eq!(NoteVerifier::from_vkey(&v.to_vkey(), KeyKind::Log).unwrap(), v);
        assert!(NoteVerifier::from_vkey(&v.to_vkey(), KeyKind::Cosigner).is_err());
        let other = NoteVerifier { name: "example.com/other".into(), ..v.clone() };
        assert!(matches!(parsed.verify(&other), Err(NoteError::Unsigned { .. })));
        let mut tampered = parsed.clone();
        tampered.text = tampered.text.replace("\n3\n", "\n4\n");
        assert!(tampered.verify(&v).is_err());
    }

    #[test]
    fn cosignatures_carry_their_time() {
        let cp = Checkpoint { origin: "o".into(), size: 1, root: [1; 32] };
        let mut note = Note::sign(&cp.text(), "o", &log_key()).unwrap();
        let witness = SigningKey::from_bytes(&[8; 32]);
        note.cosign("w.example", &witness, 1_700_000_000).unwrap();
        let w = NoteVerifier { name: "w.example".into(), key: witness.verifying_key(), kind: KeyKind::Cosigner };
        let reparsed = Note::parse(&note.to_bytes()).unwrap();
        assert_eq!(reparsed.verify(&w), Ok(1_700_000_000));
        // The same key as a log key does not verify a cosignature.
        let as_log = NoteVerifier { kind: KeyKind::Log, ..w };
        assert!(reparsed.verify(&as_log).is_err());
    }

    #[test]
    fn malformed_notes_are_refused() {
        for bad in [
            "no blank line\n\u{2014} a AAAAAAA=\n",
            "t\n\n",
            "t\n\n- a AAAAAAAA\n",
            "t\n\n\u{2014} a !!\n",
            "t\n\n\u{2014} a AAAAAAAA",
            "t\x07\n\n\u{2014} a AAAAAAAA\n",
        ] {
            assert!(Note::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
        for bad in ["o\n01\nAAAA\n", "o\n1\n", "\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", "o\n-1\nAAAA\n"] {
            assert!(Checkpoint::parse(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Note::parse(&bytes);
            let _ = Checkpoint::parse(&String::from_utf8_lossy(&bytes));
        }
    }
}
