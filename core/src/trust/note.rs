//! C2SP signed notes (`signed-note.md`) with Ed25519 signatures, and transparency-log
//! checkpoints (`tlog-checkpoint.md`) in them.
//!
//! A note is its text, a blank line, then one line per signature:
//! `— <key name> <base64(key id ‖ signature)>`, where the key id is the first four bytes of
//! `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)`. Signatures by keys the reader does not know
//! are kept but ignored, so witness cosignatures can be added later without a format change.

use crate::ReasonCode;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::keys::{PublicKey, SignError, Signer};
use crate::trust::merkle::Hash;

/// Largest note we read.
pub const MAX_NOTE_LEN: usize = 64 * 1024;
const SIG_PREFIX: &str = "\u{2014} ";

/// Why a note or checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// Not a signed note.
    #[error("malformed signed note: {0}")]
    Malformed(&'static str),
    /// No valid signature by the expected key.
    #[error("the note carries no valid signature by {0}")]
    NotSigned(String),
    /// Not a checkpoint body.
    #[error("malformed checkpoint: {0}")]
    BadCheckpoint(&'static str),
}

impl NoteError {
    /// The stable reason code.
    pub fn code(&self) -> ReasonCode {
        match self {
            NoteError::Malformed(_) => ReasonCode::NoteMalformed,
            NoteError::NotSigned(_) => ReasonCode::NoteNotSigned,
            NoteError::BadCheckpoint(_) => ReasonCode::CheckpointInvalid,
        }
    }
}

/// A signature line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// Key name.
    pub name: String,
    /// Key id.
    pub key_id: [u8; 4],
    /// Signature bytes (after the key id).
    pub signature: Vec<u8>,
}

/// A parsed signed note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNote {
    /// The signed text (ending in a newline).
    pub text: String,
    /// Its signatures.
    pub signatures: Vec<NoteSignature>,
}

/// The key id of an Ed25519 note key.
pub fn key_id(name: &str, key: &PublicKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n\x01");
    h.update(key.to_bytes());
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// The verifier key string `<name>+<hex id>+<base64(0x01 ‖ key)>`.
pub fn verifier_key(name: &str, key: &PublicKey) -> String {
    let id = key_id(name, key);
    let mut raw = vec![1u8];
    raw.extend(key.to_bytes());
    format!(
        "{name}+{}+{}",
        id.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        STANDARD.encode(raw)
    )
}

impl SignedNote {
    /// Parses a note (does not verify).
    pub fn parse(note: &str) -> Result<SignedNote, NoteError> {
        if note.len() > MAX_NOTE_LEN {
            return Err(NoteError::Malformed("too large"));
        }
        // C2SP signed-note: no ASCII control characters other than newline.
        if note.bytes().any(|b| b < 0x20 && b != b'\n') {
            return Err(NoteError::Malformed("control character"));
        }
        let split = note
            .rfind("\n\n")
            .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
        let text = &note[..split + 1];
        let sigs = &note[split + 2..];
        if !sigs.ends_with('\n') {
            return Err(NoteError::Malformed("does not end in a newline"));
        }
        let mut signatures = Vec::new();
        for line in sigs.lines() {
            let rest = line
                .strip_prefix(SIG_PREFIX)
                .ok_or(NoteError::Malformed("signature line without the em dash"))?;
            let (name, b64) = rest
                .rsplit_once(' ')
                .ok_or(NoteError::Malformed("signature line"))?;
            let raw = STANDARD
                .decode(b64)
                .map_err(|_| NoteError::Malformed("signature is not base64"))?;
            if raw.len() < 5 || name.is_empty() || name.contains(' ') || name.contains('+') {
                return Err(NoteError::Malformed("signature line"));
            }
            signatures.push(NoteSignature {
                name: name.to_owned(),
                key_id: [raw[0], raw[1], raw[2], raw[3]],
                signature: raw[4..].to_vec(),
            });
            if signatures.len() > 100 {
                return Err(NoteError::Malformed("too many signatures"));
            }
        }
        if signatures.is_empty() {
            return Err(NoteError::Malformed("no signature"));
        }
        Ok(SignedNote {
            text: text.to_owned(),
            signatures,
        })
    }

    /// Signs `text` (which must end in a newline) as a new note.
    pub fn sign(text: &str, name: &str, signer: &impl Signer) -> Result<String, SignError> {
        let sig = signer.sign(text.as_bytes())?;
        let mut raw = key_id(name, &signer.public_key()).to_vec();
        raw.extend(sig);
        Ok(format!(
            "{text}\n{SIG_PREFIX}{name} {}\n",
            STANDARD.encode(raw)
        ))
    }

    /// Checks that the note carries a valid signature by `name`/`key`.
    pub fn verify(&self, name: &str, key: &PublicKey) -> Result<(), NoteError> {
        let id = key_id(name, key);
        let ok = self.signatures.iter().any(|s| {
            s.name == name
                && s.key_id == id
                && key.verify(self.text.as_bytes(), &s.signature).is_ok()
        });
        if ok {
            Ok(())
        } else {
            Err(NoteError::NotSigned(name.to_owned()))
        }
    }
}

/// A checkpoint: origin, tree size and root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line (its unique name).
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// Root hash.
    pub root: Hash,
}

impl Checkpoint {
    /// The note text of this checkpoint.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        )
    }

    /// Reads a checkpoint from a note's text.
    pub fn from_text(text: &str) -> Result<Checkpoint, NoteError> {
        let mut lines = text.lines();
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or(NoteError::BadCheckpoint("no origin"))?;
        let size = lines.next().ok_or(NoteError::BadCheckpoint("no size"))?;
        if size.is_empty()
            || !size.bytes().all(|c| c.is_ascii_digit())
            || (size.len() > 1 && size.starts_with('0'))
        {
            return Err(NoteError::BadCheckpoint("size is not a decimal number"));
        }
        let size: u64 = size.parse().map_err(|_| NoteError::BadCheckpoint("size"))?;
        let root = lines.next().ok_or(NoteError::BadCheckpoint("no root"))?;
        let root: Hash = STANDARD
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or(NoteError::BadCheckpoint(
                "root is not a base64 SHA-256 hash",
            ))?;
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
        })
    }

    /// Parses a signed checkpoint note and verifies the log key's signature.
    pub fn open(
        note: &str,
        name: &str,
        key: &PublicKey,
    ) -> Result<(Checkpoint, SignedNote), NoteError> {
        let n = SignedNote::parse(note)?;
        n.verify(name, key)?;
        Ok((Checkpoint::from_text(&n.text)?, n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Algorithm, SecretKey};
    use rand_core::OsRng;

    #[test]
    fn sign_open_and_refuse() {
        let key = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        let cp = Checkpoint {
            origin: "registry.bizcred.example/log".into(),
            size: 7,
            root: [9u8; 32],
        };
        let note =
            SignedNote::sign(&cp.body(), "registry.bizcred.example/log", &key).expect("sign");
        let (back, _) = Checkpoint::open(&note, "registry.bizcred.example/log", &key.public_key())
            .expect("open");
        assert_eq!(back, cp);
        let other = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        assert!(matches!(
            Checkpoint::open(&note, "registry.bizcred.example/log", &other.public_key()),
            Err(NoteError::NotSigned(_))
        ));
        let tampered = note.replacen("\n7\n", "\n8\n", 1);
        assert!(matches!(
            Checkpoint::open(&tampered, "registry.bizcred.example/log", &key.public_key()),
            Err(NoteError::NotSigned(_))
        ));
        // A cosignature by an unknown key is kept but does not count.
        let cosigned = format!("{note}\u{2014} witness.example AAAAAAAA\n");
        let n = SignedNote::parse(&cosigned).expect("parse");
        assert_eq!(n.signatures.len(), 2);
        assert!(n
            .verify("registry.bizcred.example/log", &key.public_key())
            .is_ok());
        assert!(verifier_key("log", &key.public_key()).starts_with("log+"));
        for bad in ["", "x\n", "a\n1\nAA==\n\nno dash\n"] {
            assert!(SignedNote::parse(bad).is_err() || Checkpoint::from_text(bad).is_err());
        }
    }
}
