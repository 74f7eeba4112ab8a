//! Registry entries: the signed governance facts of the trust registry.
//!
//! Every entry is a JSON object with `type`, `registry` (the log's origin, so an entry cannot
//! be replayed into another registry), a unique `id`, `created`, the fields of its type, and an
//! `eddsa-jcs-2022` `proof`. Governance entries are signed by an authority key named in the
//! genesis entry; `DidLogEntries` (mirrored did:webvh lines, which carry their own proofs) are
//! signed by the log key. The Merkle leaf of an entry is `JCS(entry)`.

use rand_core::CryptoRngCore;
use serde_json::{Map, Value};

use crate::data_integrity::{self, ProofError};
use crate::did;
use crate::keys::{PublicKey, Signer};

/// Largest entry (canonical bytes).
pub const MAX_ENTRY_LEN: usize = 1024 * 1024;

/// The entry types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryType {
    /// First entry: names the authority keys and the log key.
    RegistryGenesis,
    /// An issuer and its did:webvh log.
    IssuerRegistered,
    /// New lines of an issuer's did:webvh log.
    DidLogEntries,
    /// A credential type and its freshness policy.
    CredentialTypeDefined,
    /// An issuer may issue a type (TRQP-shaped).
    AuthorizationGranted,
    /// Suspension, revocation or reinstatement of an authorization.
    AuthorizationChanged,
    /// A declared key compromise.
    KeyStatusDeclared,
    /// This authority recognizes another registry's authority for a credential type (TRQP
    /// recognition); the entry pins the recognized registry's trust anchor.
    RecognitionGranted,
    /// A recognition withdrawn from a time on.
    RecognitionRevoked,
}

impl EntryType {
    /// The `type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryType::RegistryGenesis => "RegistryGenesis",
            EntryType::IssuerRegistered => "IssuerRegistered",
            EntryType::DidLogEntries => "DidLogEntries",
            EntryType::CredentialTypeDefined => "CredentialTypeDefined",
            EntryType::AuthorizationGranted => "AuthorizationGranted",
            EntryType::AuthorizationChanged => "AuthorizationChanged",
            EntryType::KeyStatusDeclared => "KeyStatusDeclared",
            EntryType::RecognitionGranted => "RecognitionGranted",
            EntryType::RecognitionRevoked => "RecognitionRevoked",
        }
    }

    /// Parses a `type` string.
    pub fn parse(s: &str) -> Option<EntryType> {
        use EntryType::*;
        [
            RegistryGenesis,
            IssuerRegistered,
            DidLogEntries,
            CredentialTypeDefined,
            AuthorizationGranted,
            AuthorizationChanged,
            KeyStatusDeclared,
            RecognitionGranted,
            RecognitionRevoked,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

/// The canonical bytes of an entry: its Merkle leaf data.
pub fn canonical(entry: &Value) -> Result<Vec<u8>, String> {
    serde_json_canonicalizer::to_vec(entry).map_err(|e| e.to_string())
}

/// The verification method string of a key: `did:key:<mk>#<mk>`.
pub fn key_method(key: &PublicKey) -> String {
    let mk = did::multikey(key);
    format!("did:key:{mk}#{mk}")
}

/// Builds and signs an entry. `fields` holds the type-specific members.
pub fn sign_entry(
    kind: EntryType,
    registry: &str,
    created: i64,
    fields: Map<String, Value>,
    signer: &impl Signer,
    rng: &mut impl CryptoRngCore,
) -> Result<Value, ProofError> {
    let mut id = [0u8; 16];
    rng.fill_bytes(&mut id);
    let mut e = Map::new();
    e.insert("type".into(), kind.as_str().into());
    e.insert("registry".into(), registry.into());
    e.insert("id".into(), crate::base64url_encode(id).into());
    e.insert("created".into(), crate::time::format_utc(created).into());
    for (k, v) in fields {
        e.insert(k, v);
    }
    let mut doc = Value::Object(e);
    let created_text = crate::time::format_utc(created);
    let proof = data_integrity::sign(
        &doc,
        signer,
        &key_method(&signer.public_key()),
        &created_text,
        "assertionMethod",
    )?;
    doc["proof"] = proof;
    Ok(doc)
}

/// Splits an entry into (unsigned document, proof, signer multikey), checking the proof's
/// signature with the key its verification method names.
pub fn verify_signature(entry: &Value) -> Result<String, String> {
    let Value::Object(map) = entry else {
        return Err("entry is not an object".into());
    };
    let mut unsigned = map.clone();
    let proof = unsigned.remove("proof").ok_or("entry has no proof")?;
    let vm = data_integrity::verification_method(&proof, "assertionMethod")
        .map_err(|e| e.to_string())?;
    let (mk, key) =
        data_integrity::did_key_method(vm).ok_or("proof key is not did:key:<key>#<key>")?;
    data_integrity::verify(&Value::Object(unsigned), &proof, &key, "assertionMethod")
        .map_err(|e| e.to_string())?;
    Ok(mk)
}

/// Builders for each entry type, signed by `signer` (an authority key, or the log key for
/// `DidLogEntries`).
pub mod build {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    /// `RegistryGenesis`: the authority keys and the log key.
    pub fn genesis(
        registry: &str,
        authority_keys: &[PublicKey],
        log_key_name: &str,
        log_key: &PublicKey,
        created: i64,
        signer: &impl Signer,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Value, ProofError> {
        let keys: Vec<String> = authority_keys.iter().map(did::multikey).collect();
        let f = json!({"authority_keys": keys, "log_key_name": log_key_name, "log_key": did::multikey(log_key)});
        sign_entry(
            EntryType::RegistryGenesis,
            registry,
            created,
            fields(f),
            signer,
            rng,
        )
    }

    /// `IssuerRegistered`: an issuer DID, its names and its did:webvh log lines.
    #[allow(clippy::too_many_arguments)]
    pub fn issuer_registered(
        registry: &str,
        issuer: &str,
        name_en: &str,
        name_fr: &str,
        did_log: &str,
        created: i64,
        signer: &impl Signer,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Value, ProofError> {
        let lines: Vec<&str> = did_log.lines().filter(|l| !l.trim().is_empty()).collect();
        let f = json!({"issuer": issuer, "name": {"en": name_en, "fr": name_fr}, "did_log": lines});
        sign_entry(
            EntryType::IssuerRegistered,
            registry,
            created,
            fields(f),
            signer,
            rng,
        )
    }

    /// `DidLogEntries`: new did:webvh lines of a registered issuer.
    pub fn did_log_entries(
        registry: &str,
        did: &str,
        lines: &str,
        created: i64,
        signer: &impl Signer,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Value, ProofError> {
        let lines: Vec<&str> = lines.lines().filter(|l| !l.trim().is_empty()).collect();
        sign_entry(
            EntryType::DidLogEntries,
            registry,
            created,
            fields(json!({"did": did, "lines": lines})),
            signer,
            rng,
        )
    }

    /// `CredentialTypeDefined`: a type and its freshness limits (seconds).
    pub fn credential_type(
        registry: &str,
        vct: &str,
        max_status_age: i64,
        max_registry_age: i64,
        created: i64,
        signer: &impl Signer,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Value, ProofError> {
        let f = json!({"vct": vct, "max_status_age": max_status_age, "max_registry_age": max_registry_age});
        sign_entry(
            EntryType::CredentialTypeDefined,
            registry,
            created,
            fields(f),
            signer,
            rng,
        )
    }

    /// `AuthorizationGranted`: `entity_id` may issue `resource` from `valid_from`.
    #[allow(clippy::too_many_arguments)]
    pub fn authorization_granted(
        registry: &str,
        entity_id: &str,
        resource: &str,
        valid_from: i64,
        valid_until: Option<i64>,
        created: i64,
        signer: &impl Signer,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Value, ProofError> {
        let mut f = json!({"entity_id": entity_id, "action": "issue", "resource": resource, "authority_id": registry,
            "valid_from": crate::time::format_utc(valid_from)});
        if let Some(u) = valid_until {
            f["valid_until"] = crate::time::format_utc(u).into();
        }
        sign_entry(
            EntryType::AuthorizationGranted,
            registry,
            created,
            fields(f),
            signer,
            rng,
        )
    }

    /// `AuthorizationChanged`: `status` (`active`, `suspended`, `revoked`) from `effective_at`
    /// (`retroactive`: for every time).
    #[allow(clippy::too_many_arguments)]
    pub fn authorization_changed(
        registry: &str,
        entity_id: &str,
        resource: &str,
        status: &str,
        effective_at: i64,
        retroactive: bool,
        created: i64,
        signer: &impl Signer,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Value, ProofError> {
        let f = json!({"entity_id": entity_id, "resource": resource, "status": status,
            "effective_at": crate::time::format_utc(effective_at), "effect": if retroactive { "retroactive" } else { "prospective" }});
        sign_entry(
            EntryType::AuthorizationChanged,
            registry,
            created,
            fields(f),
            signer,
            rng,
        )
    }

    /// `KeyStatusDeclared`: the key `key_id` of `did` is compromised from `compromised_at`.
    pub fn key_compromised(
        registry: &str,
        did: &str,
        key_id: &str,
        compromised_at: i64,
        created: i64,
        signer: &impl Signer,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Value, ProofError> {
        let f = json!({"did": did, "key_id": key_id, "status": "compromised", "compromised_at": crate::time::format_utc(compromised_at)});
        sign_entry(
            EntryType::KeyStatusDeclared,
            registry,
            created,
            fields(f),
            signer,
            rng,
        )
    }
    /// What a recognition names: the recognized authority (`entity_id`, its DID), the
    /// credential type it is recognized for (`resource`), its validity, and the trust anchor
    /// of its registry (origin, log key name, log key), with which a verifier checks that
    /// registry's bundles offline.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct RecognitionTerms<'a> {
        /// The recognized authority's identifier (a DID).
        pub entity_id: &'a str,
        /// The credential type (`vct`) it is recognized for.
        pub resource: &'a str,
        /// Valid from (Unix seconds).
        pub valid_from: i64,
        /// Valid until (Unix seconds), if it ends.
        pub valid_until: Option<i64>,
        /// The recognized registry's anchor.
        pub anchor: &'a crate::trust::bundle::TrustAnchor,
    }

    /// `RecognitionGranted`: `authority_id` (this registry's authority) recognizes `terms`.
    pub fn recognition_granted(
        registry: &str,
        authority_id: &str,
        terms: &RecognitionTerms<'_>,
        created: i64,
        signer: &impl Signer,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Value, ProofError> {
        let mut f = json!({"authority_id": authority_id, "entity_id": terms.entity_id,
            "action": "recognize", "resource": terms.resource,
            "valid_from": crate::time::format_utc(terms.valid_from),
            "log_origin": terms.anchor.origin, "log_key_name": terms.anchor.log_key_name,
            "log_key": terms.anchor.log_key});
        if let Some(u) = terms.valid_until {
            f["valid_until"] = crate::time::format_utc(u).into();
        }
        sign_entry(
            EntryType::RecognitionGranted,
            registry,
            created,
            fields(f),
            signer,
            rng,
        )
    }

    /// `RecognitionRevoked`: the recognition of `entity_id` for `resource` ends at
    /// `effective_at`.
    pub fn recognition_revoked(
        registry: &str,
        entity_id: &str,
        resource: &str,
        effective_at: i64,
        created: i64,
        signer: &impl Signer,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Value, ProofError> {
        let f = json!({"entity_id": entity_id, "action": "recognize", "resource": resource,
            "effective_at": crate::time::format_utc(effective_at)});
        sign_entry(
            EntryType::RecognitionRevoked,
            registry,
            created,
            fields(f),
            signer,
            rng,
        )
    }
}
