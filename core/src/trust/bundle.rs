//! The trust bundle: a verifier's offline trust state, carried as one signed file.
//!
//! A bundle holds the registry's signed checkpoint, the entries from `from_size` to the
//! checkpoint's size, a consistency proof from `from_size`, the issuers' latest status list
//! tokens, and `issued_at`; the log key signs all of it (`eddsa-jcs-2022`). A verifier pins
//! a [`TrustAnchor`] (origin and log key) and [`import`]s bundles: the signature, checkpoint,
//! consistency with what it had, and a full replay of the new entries must all check, or the
//! old state stays as it was.
//!
//! # Recognized registries
//!
//! A bundle may also carry, in `recognized`, the whole bundle of each registry this one
//! recognizes (a `RecognitionGranted` entry pins that registry's anchor: origin and log key).
//! The registry checked each one against that anchor before carrying it, and its log key
//! signs it with the rest; the verifier checks it again, offline, against the anchor the
//! recognition in its own replayed log pins, and keeps the recognized registry's replayed
//! state in [`TrustState::recognized`]. Recognition is not transitive: a recognized bundle
//! that carries recognized bundles of its own is refused.

use crate::ReasonCode;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::data_integrity;
use crate::did;
use crate::keys::{PublicKey, Signer};
use crate::time;
use crate::trust::merkle::{self, Hash};
use crate::trust::note::{Checkpoint, NoteError, SignedNote};
use crate::trust::state::{EntryError, TrustState};

/// Largest bundle we read.
pub const MAX_BUNDLE_LEN: usize = 64 * 1024 * 1024;
/// Media type of a bundle file.
pub const MEDIA_TYPE: &str = "application/vnd.bizcred.trust-bundle+json";

/// What a verifier pins to recognise its registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustAnchor {
    /// The log's origin.
    pub origin: String,
    /// The log key's note name.
    pub log_key_name: String,
    /// The log key (multikey).
    pub log_key: String,
}

impl TrustAnchor {
    /// The anchor of a registry state.
    pub fn of(state: &TrustState) -> Option<TrustAnchor> {
        Some(TrustAnchor {
            origin: state.origin.clone(),
            log_key_name: state.log_key_name.clone(),
            log_key: did::multikey(state.log_key.as_ref()?),
        })
    }
}

/// The bundle file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustBundle {
    /// Always `bizcred-trust-bundle/1`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The registry's origin.
    pub origin: String,
    /// The signed checkpoint note.
    pub checkpoint: String,
    /// Index of the first entry carried.
    pub from_size: u64,
    /// Entries `from_size..checkpoint.size`.
    pub entries: Vec<Value>,
    /// Consistency proof from `from_size` to the checkpoint (base64 hashes).
    pub consistency: Vec<String>,
    /// Latest issuer-signed status list tokens.
    #[serde(default)]
    pub status_lists: Vec<StatusListCopy>,
    /// The bundles of the registries this one recognizes (from their first entry).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recognized: Vec<RecognizedBundle>,
    /// When the registry produced the bundle (the signed registry time).
    pub issued_at: String,
    /// Log key proof over all of the above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<Value>,
}

/// One status list token, as published at its URI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusListCopy {
    /// Where the issuer publishes it.
    pub uri: String,
    /// The `statuslist+jwt`.
    pub token: String,
}

/// A recognized registry's own signed bundle, carried in this registry's bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecognizedBundle {
    /// The recognized authority (the `entity_id` of its recognition).
    pub authority_id: String,
    /// Its registry's bundle, as that registry signed it.
    pub bundle: String,
}

/// Why a bundle was refused. The state is unchanged whenever this is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// Not a bundle, or over the size bound.
    #[error("malformed trust bundle: {0}")]
    Malformed(String),
    /// Another registry's bundle.
    #[error("the bundle is from another registry ({0})")]
    WrongRegistry(String),
    /// The log key's signature over the bundle does not verify.
    #[error("the bundle's signature does not verify")]
    BadSignature,
    /// The checkpoint does not open with the pinned log key.
    #[error("the checkpoint: {0}")]
    Checkpoint(#[from] NoteError),
    /// The bundle is older than the state already held.
    #[error("the bundle (size {got}) is older than the trust state already held (size {have})")]
    Older {
        /// Our size.
        have: u64,
        /// The bundle's size.
        got: u64,
    },
    /// Two signed checkpoints that cannot both be true: a forked registry.
    #[error("REGISTRY_EQUIVOCATION: the bundle contradicts the checkpoint already held")]
    Fork(Box<ForkEvidence>),
    /// The bundle does not continue from our state (it starts after our size).
    #[error(
        "the bundle starts at {from}, after the {have} entries held; a fuller bundle is needed"
    )]
    Gap {
        /// Our size.
        have: u64,
        /// The bundle's first entry.
        from: u64,
    },
    /// The consistency proof fails.
    #[error("the consistency proof from the held checkpoint does not verify")]
    Inconsistent,
    /// The replayed entries do not reproduce the checkpoint's root.
    #[error("BUNDLE_CORRUPT: the entries do not reproduce the checkpoint root")]
    RootMismatch,
    /// An entry fails validation.
    #[error("entry {index} of the registry log is invalid: {error}")]
    Entry {
        /// Log index.
        index: u64,
        /// Why.
        error: EntryError,
    },
    /// `issued_at` is not a time, or is ahead of the verifier's clock.
    #[error("the bundle's time is invalid or in the future")]
    Time,
    /// A recognized registry's bundle does not check against the anchor its recognition pins
    /// (or no recognition names its authority).
    #[error("the bundle of recognized authority {authority}: {error}")]
    Recognized {
        /// The recognized authority.
        authority: String,
        /// Why its bundle was refused.
        error: Box<BundleError>,
    },
}

impl BundleError {
    /// Stable reason code.
    pub fn code(&self) -> ReasonCode {
        match self {
            BundleError::Malformed(_) => ReasonCode::BundleMalformed,
            BundleError::WrongRegistry(_) => ReasonCode::BundleWrongRegistry,
            BundleError::BadSignature => ReasonCode::BundleBadSignature,
            BundleError::Checkpoint(_) => ReasonCode::CheckpointInvalid,
            BundleError::Older { .. } => ReasonCode::BundleOlder,
            BundleError::Fork(_) => ReasonCode::RegistryEquivocation,
            BundleError::Gap { .. } => ReasonCode::BundleGap,
            BundleError::Inconsistent => ReasonCode::BundleInconsistent,
            BundleError::RootMismatch => ReasonCode::BundleCorrupt,
            BundleError::Entry { .. } => ReasonCode::BundleEntryInvalid,
            BundleError::Time => ReasonCode::BundleTimeInvalid,
            BundleError::Recognized { .. } => ReasonCode::BundleRecognizedInvalid,
        }
    }
}

/// Two signed checkpoints that contradict each other: keep them as evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForkEvidence {
    /// The checkpoint note already held.
    pub held: String,
    /// The contradicting checkpoint note.
    pub received: String,
}

fn b64_hash(h: &str) -> Result<Hash, BundleError> {
    STANDARD
        .decode(h)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| BundleError::Malformed("a proof hash is not base64 SHA-256".into()))
}

/// Builds and signs a bundle of `state` (the registry's full state) for a verifier that holds
/// `from_size` entries. `checkpoint` is the note for `state`'s current size.
pub fn export(
    state: &TrustState,
    checkpoint: &str,
    from_size: u64,
    entries: &[Value],
    status_lists: Vec<StatusListCopy>,
    issued_at: i64,
    log_signer: &impl Signer,
) -> Result<String, BundleError> {
    export_with_recognized(
        state,
        checkpoint,
        from_size,
        entries,
        status_lists,
        Vec::new(),
        issued_at,
        log_signer,
    )
}

/// As [`export`], carrying the recognized registries' bundles.
#[allow(clippy::too_many_arguments)]
pub fn export_with_recognized(
    state: &TrustState,
    checkpoint: &str,
    from_size: u64,
    entries: &[Value],
    status_lists: Vec<StatusListCopy>,
    recognized: Vec<RecognizedBundle>,
    issued_at: i64,
    log_signer: &impl Signer,
) -> Result<String, BundleError> {
    let size = state.size();
    if from_size > size || entries.len() as u64 != size {
        return Err(BundleError::Malformed("from_size beyond the log".into()));
    }
    let consistency = if from_size == 0 || from_size == size {
        Vec::new()
    } else {
        merkle::consistency_proof(from_size as usize, &state.leaves)
            .map_err(|e| BundleError::Malformed(e.to_string()))?
    };
    let mut bundle = TrustBundle {
        kind: "bizcred-trust-bundle/1".into(),
        origin: state.origin.clone(),
        checkpoint: checkpoint.to_owned(),
        from_size,
        entries: entries[from_size as usize..].to_vec(),
        consistency: consistency.iter().map(|h| STANDARD.encode(h)).collect(),
        status_lists,
        recognized,
        issued_at: time::format_utc(issued_at),
        proof: None,
    };
    let doc = serde_json::to_value(&bundle).map_err(|e| BundleError::Malformed(e.to_string()))?;
    let vm = crate::trust::entry::key_method(&log_signer.public_key());
    let proof = data_integrity::sign(&doc, log_signer, &vm, &bundle.issued_at, "assertionMethod")
        .map_err(|e| BundleError::Malformed(e.to_string()))?;
    bundle.proof = Some(proof);
    serde_json::to_string(&bundle).map_err(|e| BundleError::Malformed(e.to_string()))
}

/// Parses a bundle without verifying it (for fuzzing and inspection).
pub fn parse(text: &str) -> Result<TrustBundle, BundleError> {
    if text.len() > MAX_BUNDLE_LEN {
        return Err(BundleError::Malformed(
            "larger than the bundle size bound".into(),
        ));
    }
    let b: TrustBundle =
        serde_json::from_str(text).map_err(|e| BundleError::Malformed(e.to_string()))?;
    if b.kind != "bizcred-trust-bundle/1" {
        return Err(BundleError::Malformed("unknown bundle type".into()));
    }
    Ok(b)
}

/// What an import did.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// The new state.
    pub state: TrustState,
    /// Entries added.
    pub added: u64,
}

/// Imports a bundle into `held` (or into empty state), at the verifier's time `now`.
/// Returns the new state; `held` is never modified.
pub fn import(
    held: Option<&TrustState>,
    anchor: &TrustAnchor,
    text: &str,
    now: i64,
) -> Result<Imported, BundleError> {
    import_at_depth(held, anchor, text, now, false)
}

/// Checks a recognized registry's bundle against `anchor` (the one its recognition pins) on
/// top of `held`, the state already kept for it: a bundle older than `held` leaves it as it
/// is (`added` 0).
pub fn import_recognized(
    held: Option<&TrustState>,
    anchor: &TrustAnchor,
    text: &str,
    now: i64,
) -> Result<Imported, BundleError> {
    match import_at_depth(held, anchor, text, now, true) {
        Err(BundleError::Older { .. }) => Ok(Imported {
            state: held
                .cloned()
                .unwrap_or_else(|| TrustState::empty(&anchor.origin)),
            added: 0,
        }),
        other => other,
    }
}

fn import_at_depth(
    held: Option<&TrustState>,
    anchor: &TrustAnchor,
    text: &str,
    now: i64,
    nested: bool,
) -> Result<Imported, BundleError> {
    let bundle = parse(text)?;
    if nested && !bundle.recognized.is_empty() {
        return Err(BundleError::Malformed(
            "a recognized registry's bundle carries recognized bundles (recognition is not transitive)"
                .into(),
        ));
    }
    if bundle.origin != anchor.origin {
        return Err(BundleError::WrongRegistry(
            bundle.origin.chars().take(128).collect(),
        ));
    }
    let log_key: PublicKey = did::from_multikey(&anchor.log_key)
        .map_err(|_| BundleError::Malformed("anchor log key".into()))?;
    // The log key's signature over the whole bundle.
    let proof = bundle.proof.clone().ok_or(BundleError::BadSignature)?;
    let mut unsigned = bundle.clone();
    unsigned.proof = None;
    let doc = serde_json::to_value(&unsigned).map_err(|e| BundleError::Malformed(e.to_string()))?;
    let vm = data_integrity::verification_method(&proof, "assertionMethod")
        .map_err(|_| BundleError::BadSignature)?;
    if vm != crate::trust::entry::key_method(&log_key) {
        return Err(BundleError::BadSignature);
    }
    data_integrity::verify(&doc, &proof, &log_key, "assertionMethod")
        .map_err(|_| BundleError::BadSignature)?;
    let issued_at = time::parse_utc(&bundle.issued_at).map_err(|_| BundleError::Time)?;
    if issued_at > now + 300 {
        return Err(BundleError::Time);
    }
    let (cp, _) = Checkpoint::open(&bundle.checkpoint, &anchor.log_key_name, &log_key)?;
    if cp.origin != anchor.origin {
        return Err(BundleError::WrongRegistry(
            cp.origin.chars().take(128).collect(),
        ));
    }
    if bundle.from_size + bundle.entries.len() as u64 != cp.size {
        return Err(BundleError::Malformed(
            "entries do not reach the checkpoint size".into(),
        ));
    }
    let empty = TrustState::empty(&anchor.origin);
    let held_state = held.unwrap_or(&empty);
    let have = held_state.size();
    if have > 0 && held_state.origin != anchor.origin {
        return Err(BundleError::WrongRegistry(held_state.origin.clone()));
    }
    // Older, same or forked?
    if let Some(held_note) = &held_state.checkpoint_note {
        let held_cp = Checkpoint::from_text(&SignedNote::parse(held_note)?.text)?;
        if cp.size < held_cp.size {
            return Err(BundleError::Older {
                have: held_cp.size,
                got: cp.size,
            });
        }
        if cp.size == held_cp.size && cp.root != held_cp.root {
            return Err(BundleError::Fork(Box::new(ForkEvidence {
                held: held_note.clone(),
                received: bundle.checkpoint.clone(),
            })));
        }
        if cp.size > held_cp.size {
            let proof: Vec<Hash> = bundle
                .consistency
                .iter()
                .map(|h| b64_hash(h))
                .collect::<Result<_, _>>()?;
            // The proof is from the bundle's from_size; it must be ours.
            if bundle.from_size == held_cp.size
                && merkle::verify_consistency(
                    held_cp.size,
                    cp.size,
                    &held_cp.root,
                    &cp.root,
                    &proof,
                )
                .is_err()
            {
                return Err(BundleError::Fork(Box::new(ForkEvidence {
                    held: held_note.clone(),
                    received: bundle.checkpoint.clone(),
                })));
            }
        }
    }
    if bundle.from_size > have {
        return Err(BundleError::Gap {
            have,
            from: bundle.from_size,
        });
    }
    let mut state = held_state.clone();
    // Entries we already hold must be the same ones.
    let overlap = (have - bundle.from_size) as usize;
    for (i, e) in bundle.entries.iter().take(overlap).enumerate() {
        let idx = bundle.from_size as usize + i;
        let bytes = crate::trust::entry::canonical(e).map_err(BundleError::Malformed)?;
        if merkle::leaf_hash(&bytes) != state.leaves[idx] {
            return Err(BundleError::RootMismatch);
        }
    }
    let mut added = 0;
    for (i, e) in bundle.entries.iter().enumerate().skip(overlap) {
        let index = bundle.from_size + i as u64;
        state
            .apply(e, now)
            .map_err(|error| BundleError::Entry { index, error })?;
        added += 1;
    }
    if state.root() != cp.root {
        return Err(BundleError::RootMismatch);
    }
    if state.log_key.as_ref() != Some(&log_key) || state.log_key_name != anchor.log_key_name {
        return Err(BundleError::WrongRegistry(
            "the genesis names another log key".into(),
        ));
    }
    // The recognized registries' bundles, each against the anchor its recognition pins.
    for rb in &bundle.recognized {
        let refused = |error: BundleError| BundleError::Recognized {
            authority: rb.authority_id.chars().take(256).collect(),
            error: Box::new(error),
        };
        let Some(pinned) = state
            .recognitions
            .iter()
            .rev()
            .find(|r| r.entity_id == rb.authority_id)
            .map(|r| r.anchor.clone())
        else {
            return Err(refused(BundleError::Malformed(
                "no recognition names this authority".into(),
            )));
        };
        let held_foreign = state.recognized.get(&rb.authority_id);
        let foreign = import_recognized(held_foreign, &pinned, &rb.bundle, now).map_err(refused)?;
        state
            .recognized
            .insert(rb.authority_id.clone(), foreign.state);
    }
    state.checkpoint_note = Some(bundle.checkpoint.clone());
    if state.registry_as_of.is_none_or(|t| issued_at > t) {
        state.registry_as_of = Some(issued_at);
    }
    // Per list, the newest wins (by the issuer-signed `iat`); an older copy never replaces a
    // newer one, whatever the bundle's own time.
    let mut changed = Vec::new();
    for sl in bundle.status_lists {
        let held = state.status_lists.get(&sl.uri);
        if held.is_some_and(|t| *t == sl.token) {
            // The same list again: verify it now if it could not be before (its issuer's key
            // may have reached the registry after the list did).
            if !state.verified_status.contains_key(&sl.uri) {
                changed.push((sl.uri.clone(), sl.token.clone()));
            }
            continue;
        }
        let new_iat = crate::status_list::peek(&sl.token)
            .map(|(_, iat, _)| iat)
            .unwrap_or(i64::MIN);
        let held_iat = held
            .and_then(|t| crate::status_list::peek(t).ok())
            .map(|(_, iat, _)| iat);
        if held_iat.is_none_or(|h| new_iat >= h) {
            changed.push((sl.uri.clone(), sl.token.clone()));
            state.status_lists.insert(sl.uri, sl.token);
        }
    }
    // Verify and decode each new list once, with its issuer's key at its `iat`; a list that
    // does not verify leaves no decoded copy behind.
    for (uri, token) in changed {
        state.verified_status.remove(&uri);
        let Ok((kid, iat, _)) = crate::status_list::peek(&token) else {
            continue;
        };
        let did = kid.split('#').next().unwrap_or("");
        let Ok(key) = state.key_at(did, &kid, iat) else {
            continue;
        };
        if let Ok(v) = crate::status_list::verify_token_at(&token, &uri, &key, None) {
            state.verified_status.insert(uri, v);
        }
    }
    Ok(Imported { state, added })
}
