//! Trust state: what a verifier knows after replaying the registry log, and the queries it
//! asks of it (issuer key at a proof time, authorization of a type at a time, key status,
//! freshness). Building it is pure: entries, bundles and `now` are passed in.

use crate::ReasonCode;
use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

use crate::did;
use crate::keys::PublicKey;
use crate::time;
use crate::trust::entry::{self, EntryType, MAX_ENTRY_LEN};
use crate::trust::merkle::{self, Hash};
use crate::webvh::{self, VerifiedLog};

/// Why an entry could not be applied. The state is unchanged when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// Not a well-formed entry of a known type.
    #[error("malformed entry: {0}")]
    Malformed(String),
    /// The entry names another registry.
    #[error("the entry belongs to registry \"{0}\"")]
    WrongRegistry(String),
    /// The proof does not verify.
    #[error("the entry's signature does not verify: {0}")]
    BadSignature(String),
    /// Signed by a key that may not sign this entry type.
    #[error("the entry is signed by a key that is not an authority key")]
    NotAuthority,
    /// An entry id seen before: a replay.
    #[error("entry {0} was already appended (replay)")]
    Duplicate(String),
    /// The first entry is not a genesis, or a genesis comes later.
    #[error("the registry log must start with exactly one RegistryGenesis")]
    Genesis,
    /// An issuer, type or DID the entry refers to is unknown, or already registered.
    #[error("{0}")]
    Reference(String),
    /// did:webvh lines that do not verify as the next entries of the mirrored log.
    #[error("the did:webvh update does not verify as the next entries of the mirrored log: {0}")]
    DidLog(String),
    /// Over the size bound.
    #[error("the entry is larger than {MAX_ENTRY_LEN} bytes")]
    TooLarge,
}

impl EntryError {
    /// Stable reason code.
    pub fn code(&self) -> ReasonCode {
        match self {
            EntryError::Malformed(_) => ReasonCode::EntryMalformed,
            EntryError::WrongRegistry(_) => ReasonCode::EntryWrongRegistry,
            EntryError::BadSignature(_) => ReasonCode::EntryBadSignature,
            EntryError::NotAuthority => ReasonCode::EntryNotAuthority,
            EntryError::Duplicate(_) => ReasonCode::EntryDuplicate,
            EntryError::Genesis => ReasonCode::EntryGenesis,
            EntryError::Reference(_) => ReasonCode::EntryReference,
            EntryError::DidLog(_) => ReasonCode::EntryDidLog,
            EntryError::TooLarge => ReasonCode::EntryTooLarge,
        }
    }
}

/// Why a trust query failed: these become verifier reason codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// The issuer DID is not registered.
    #[error("issuer {0} is not registered")]
    IssuerUnknown(String),
    /// The issuer is not authorized for the type at that time.
    #[error("issuer {did} is not authorized to issue {vct} at that time ({reason})")]
    NotAuthorized {
        /// Issuer.
        did: String,
        /// Type.
        vct: String,
        /// Why.
        reason: String,
    },
    /// The DID did not exist at the proof time.
    #[error("the issuer DID did not exist at the proof time")]
    DidNotYetCreated,
    /// The key was not an assertion key of the DID at the proof time (e.g. used after its
    /// rotation).
    #[error("key {0} was not an assertion key of the issuer at the proof time")]
    KeyNotValidAt(String),
    /// The DID was deactivated before the proof time.
    #[error("the issuer DID was deactivated at the proof time")]
    DidDeactivated,
    /// A compromise of the key was declared at or before the proof time.
    #[error("key {0} was declared compromised before the proof time")]
    KeyCompromised(String),
    /// A compromise was declared after the proof time: the proof may be backdated.
    #[error("key {0} was declared compromised after the proof time; the date may be forged")]
    KeyCompromisedPredated(String),
    /// No recognition of this authority for the type is in force at that time.
    #[error("authority {authority} is not recognized for {vct} at that time ({reason})")]
    NotRecognized {
        /// The other registry's authority.
        authority: String,
        /// Type.
        vct: String,
        /// Why.
        reason: String,
    },
}

impl TrustError {
    /// Stable reason code (the registry design's names).
    pub fn code(&self) -> ReasonCode {
        match self {
            TrustError::IssuerUnknown(_) => ReasonCode::IssuerUnknown,
            TrustError::NotAuthorized { .. } => ReasonCode::IssuerNotAuthorized,
            TrustError::DidNotYetCreated => ReasonCode::KeyNotValidAtProofTime,
            TrustError::KeyNotValidAt(_) => ReasonCode::KeyNotValidAtProofTime,
            TrustError::DidDeactivated => ReasonCode::IssuerDidDeactivated,
            TrustError::KeyCompromised(_) => ReasonCode::KeyCompromised,
            TrustError::KeyCompromisedPredated(_) => ReasonCode::KeyCompromisedPredated,
            TrustError::NotRecognized { .. } => ReasonCode::RecognitionNotInForce,
        }
    }
}

/// A registered issuer.
#[derive(Debug, Clone, PartialEq)]
pub struct Issuer {
    /// The issuer's did:webvh DID.
    pub did: String,
    /// English name.
    pub name_en: String,
    /// French name.
    pub name_fr: String,
    /// The mirrored, verified DID log.
    pub log: VerifiedLog,
}

/// A credential type defined by governance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeDefinition {
    /// `vct`.
    pub vct: String,
    /// Oldest acceptable status list (seconds since its `iat`).
    pub max_status_age: i64,
    /// Oldest acceptable registry data (seconds since `registry_as_of`).
    pub max_registry_age: i64,
}

/// One change of an authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationChange {
    /// `active`, `suspended` or `revoked`.
    pub status: String,
    /// When it takes effect.
    pub effective_at: i64,
    /// Whether it applies to every time (`retroactive`) or from `effective_at` on.
    pub retroactive: bool,
}

/// A TRQP-shaped authorization: `entity_id` may `issue` `resource`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// Issuer DID.
    pub entity_id: String,
    /// The `vct`.
    pub resource: String,
    /// Valid from.
    pub valid_from: i64,
    /// Valid until.
    pub valid_until: Option<i64>,
    /// Changes, in log order.
    pub changes: Vec<AuthorizationChange>,
    /// The log index of the granting entry (evidence).
    pub entry_index: u64,
}

/// A declared key compromise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    /// The DID.
    pub did: String,
    /// The verification method id (absolute DID URL).
    pub key_id: String,
    /// When the compromise began.
    pub compromised_at: i64,
}

/// A recognition of another registry's authority for a credential type (TRQP recognition):
/// that registry's authorizations for the type count here, checked offline against its own
/// signed log, whose anchor the recognition pins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recognition {
    /// The recognized authority (its DID).
    pub entity_id: String,
    /// The recognizing authority, as the entry names it.
    pub authority_id: String,
    /// The credential type (`vct`).
    pub resource: String,
    /// Valid from.
    pub valid_from: i64,
    /// Valid until.
    pub valid_until: Option<i64>,
    /// The recognized registry's trust anchor.
    pub anchor: crate::trust::bundle::TrustAnchor,
    /// When a `RecognitionRevoked` ended it.
    pub revoked_at: Option<i64>,
    /// The log index of the granting entry.
    pub entry_index: u64,
}

impl Recognition {
    /// Whether it is in force at `at`; else why not.
    pub fn in_force(&self, at: i64) -> Result<(), &'static str> {
        if at < self.valid_from || self.valid_until.is_some_and(|u| at >= u) {
            return Err("outside the recognition's validity window");
        }
        if self.revoked_at.is_some_and(|r| at >= r) {
            return Err("recognition revoked");
        }
        Ok(())
    }
}

/// The verifier's (and the registry's) replayed state.
#[derive(Debug, Clone, PartialEq)]
pub struct TrustState {
    /// The log's origin.
    pub origin: String,
    /// Authority keys (multikeys) allowed to sign governance entries.
    pub authority_keys: Vec<String>,
    /// The log key's note name.
    pub log_key_name: String,
    /// The log key (signs checkpoints, bundles and `DidLogEntries`).
    pub log_key: Option<PublicKey>,
    /// Leaf hashes, in order.
    pub leaves: Vec<Hash>,
    /// Registered issuers.
    pub issuers: BTreeMap<String, Issuer>,
    /// Defined types.
    pub types: BTreeMap<String, TypeDefinition>,
    /// Authorizations.
    pub authorizations: Vec<Authorization>,
    /// Declared key compromises.
    pub key_statuses: Vec<KeyStatus>,
    /// Recognitions of other registries' authorities, in log order.
    pub recognitions: Vec<Recognition>,
    /// The recognized registries' replayed states (verifier side, from the recognized bundles
    /// a trust bundle carries), by recognized authority.
    pub recognized: BTreeMap<String, TrustState>,
    /// The signed checkpoint note of the last import (verifier side).
    pub checkpoint_note: Option<String>,
    /// The signed time of the registry data (`issued_at` of the last bundle).
    pub registry_as_of: Option<i64>,
    /// Latest status list tokens by URI (from bundles).
    pub status_lists: BTreeMap<String, String>,
    /// Those of them that verify with their issuer's key, decoded once at import (expiry is
    /// checked at use).
    pub verified_status: BTreeMap<String, crate::status_list::VerifiedStatusList>,
    entry_ids: HashSet<String>,
}

fn s<'a>(e: &'a Value, k: &str) -> Result<&'a str, EntryError> {
    e.get(k)
        .and_then(Value::as_str)
        .ok_or_else(|| EntryError::Malformed(format!("missing {k}")))
}

fn t(e: &Value, k: &str) -> Result<i64, EntryError> {
    time::parse_utc(s(e, k)?).map_err(|_| EntryError::Malformed(format!("{k} is not a UTC time")))
}

fn lines_of(e: &Value, k: &str) -> Result<String, EntryError> {
    let arr = e
        .get(k)
        .and_then(Value::as_array)
        .ok_or_else(|| EntryError::Malformed(format!("missing {k}")))?;
    let mut text = String::new();
    for l in arr {
        let l = l
            .as_str()
            .ok_or_else(|| EntryError::Malformed(format!("{k} holds a non-string")))?;
        if l.contains('\n') {
            return Err(EntryError::Malformed(
                "a did:webvh line holds a newline".into(),
            ));
        }
        text.push_str(l);
        text.push('\n');
    }
    if arr.is_empty() {
        return Err(EntryError::Malformed(format!("{k} is empty")));
    }
    Ok(text)
}

impl TrustState {
    /// An empty state for the registry `origin` (before its genesis).
    pub fn empty(origin: &str) -> TrustState {
        TrustState {
            origin: origin.to_owned(),
            authority_keys: Vec::new(),
            log_key_name: String::new(),
            log_key: None,
            leaves: Vec::new(),
            issuers: BTreeMap::new(),
            types: BTreeMap::new(),
            authorizations: Vec::new(),
            key_statuses: Vec::new(),
            recognitions: Vec::new(),
            recognized: BTreeMap::new(),
            checkpoint_note: None,
            registry_as_of: None,
            status_lists: BTreeMap::new(),
            verified_status: BTreeMap::new(),
            entry_ids: HashSet::new(),
        }
    }

    /// Number of entries.
    pub fn size(&self) -> u64 {
        self.leaves.len() as u64
    }

    /// The Merkle root of all entries.
    pub fn root(&self) -> Hash {
        merkle::root(&self.leaves)
    }

    /// Validates `e` as the next entry and applies it. `now` bounds did:webvh times.
    /// On error nothing changes.
    pub fn apply(&mut self, e: &Value, now: i64) -> Result<(), EntryError> {
        let bytes = entry::canonical(e).map_err(EntryError::Malformed)?;
        if bytes.len() > MAX_ENTRY_LEN {
            return Err(EntryError::TooLarge);
        }
        let kind = EntryType::parse(s(e, "type")?)
            .ok_or_else(|| EntryError::Malformed("unknown entry type".into()))?;
        let registry = s(e, "registry")?;
        if registry != self.origin {
            return Err(EntryError::WrongRegistry(
                registry.chars().take(128).collect(),
            ));
        }
        let id = s(e, "id")?.to_owned();
        if self.entry_ids.contains(&id) {
            return Err(EntryError::Duplicate(id));
        }
        t(e, "created")?;
        let signer = entry::verify_signature(e).map_err(EntryError::BadSignature)?;
        if (kind == EntryType::RegistryGenesis) != self.leaves.is_empty() {
            return Err(EntryError::Genesis);
        }
        match kind {
            EntryType::RegistryGenesis => {
                let keys: Vec<String> = e
                    .get("authority_keys")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                if keys.is_empty() || keys.iter().any(|k| did::from_multikey(k).is_err()) {
                    return Err(EntryError::Malformed("authority_keys".into()));
                }
                if !keys.contains(&signer) {
                    return Err(EntryError::NotAuthority);
                }
                let name = s(e, "log_key_name")?.to_owned();
                let log_key = did::from_multikey(s(e, "log_key")?)
                    .map_err(|_| EntryError::Malformed("log_key".into()))?;
                self.authority_keys = keys;
                self.log_key_name = name;
                self.log_key = Some(log_key);
            }
            EntryType::DidLogEntries => {
                let log_key = self.log_key.as_ref().map(crate::did::multikey);
                if Some(&signer) != log_key.as_ref() && !self.authority_keys.contains(&signer) {
                    return Err(EntryError::NotAuthority);
                }
                let did = s(e, "did")?;
                let issuer = self.issuers.get(did).ok_or_else(|| {
                    EntryError::Reference(format!("issuer {did} is not registered"))
                })?;
                let text = format!("{}{}", issuer.log.text(), lines_of(e, "lines")?);
                let log = webvh::verify_log(&text, e.get("witness").and_then(Value::as_str), now);
                if let Some(err) = &log.error {
                    return Err(EntryError::DidLog(err.to_string()));
                }
                let did = did.to_owned();
                if let Some(i) = self.issuers.get_mut(&did) {
                    i.log = log;
                }
            }
            _ => {
                if !self.authority_keys.contains(&signer) {
                    return Err(EntryError::NotAuthority);
                }
                self.apply_governance(kind, e, now)?;
            }
        }
        self.entry_ids.insert(id);
        self.leaves.push(merkle::leaf_hash(&bytes));
        Ok(())
    }

    fn apply_governance(&mut self, kind: EntryType, e: &Value, now: i64) -> Result<(), EntryError> {
        match kind {
            EntryType::IssuerRegistered => {
                let did = s(e, "issuer")?;
                webvh::WebvhDid::parse(did)
                    .map_err(|err| EntryError::Malformed(err.to_string()))?;
                if self.issuers.contains_key(did) {
                    return Err(EntryError::Reference(format!(
                        "issuer {did} is already registered"
                    )));
                }
                let log = webvh::verify_log(
                    &lines_of(e, "did_log")?,
                    e.get("witness").and_then(Value::as_str),
                    now,
                );
                if let Some(err) = &log.error {
                    return Err(EntryError::DidLog(err.to_string()));
                }
                if !log.versions.iter().any(|v| v.id() == did) {
                    return Err(EntryError::DidLog(
                        "the log is not the log of this DID".into(),
                    ));
                }
                let name = e.get("name");
                let n = |l: &str| {
                    name.and_then(|n| n.get(l))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                self.issuers.insert(
                    did.to_owned(),
                    Issuer {
                        did: did.to_owned(),
                        name_en: n("en"),
                        name_fr: n("fr"),
                        log,
                    },
                );
            }
            EntryType::CredentialTypeDefined => {
                let vct = s(e, "vct")?.to_owned();
                let age = |k: &str| {
                    e.get(k)
                        .and_then(Value::as_i64)
                        .filter(|v| *v > 0)
                        .ok_or_else(|| {
                            EntryError::Malformed(format!(
                                "{k} is not a positive number of seconds"
                            ))
                        })
                };
                let def = TypeDefinition {
                    vct: vct.clone(),
                    max_status_age: age("max_status_age")?,
                    max_registry_age: age("max_registry_age")?,
                };
                self.types.insert(vct, def);
            }
            EntryType::AuthorizationGranted => {
                let entity = s(e, "entity_id")?;
                let resource = s(e, "resource")?;
                if s(e, "action")? != "issue" {
                    return Err(EntryError::Malformed("the only action is issue".into()));
                }
                if !self.issuers.contains_key(entity) {
                    return Err(EntryError::Reference(format!(
                        "issuer {entity} is not registered"
                    )));
                }
                if !self.types.contains_key(resource) {
                    return Err(EntryError::Reference(format!(
                        "type {resource} is not defined"
                    )));
                }
                let valid_until = match e.get("valid_until") {
                    None | Some(Value::Null) => None,
                    Some(_) => Some(t(e, "valid_until")?),
                };
                self.authorizations.push(Authorization {
                    entity_id: entity.to_owned(),
                    resource: resource.to_owned(),
                    valid_from: t(e, "valid_from")?,
                    valid_until,
                    changes: Vec::new(),
                    entry_index: self.size(),
                });
            }
            EntryType::AuthorizationChanged => {
                let entity = s(e, "entity_id")?;
                let resource = s(e, "resource")?;
                let status = s(e, "status")?;
                if !["active", "suspended", "revoked"].contains(&status) {
                    return Err(EntryError::Malformed(
                        "status is active, suspended or revoked".into(),
                    ));
                }
                let retroactive = match s(e, "effect")? {
                    "prospective" => false,
                    "retroactive" => true,
                    _ => {
                        return Err(EntryError::Malformed(
                            "effect is prospective or retroactive".into(),
                        ))
                    }
                };
                let change = AuthorizationChange {
                    status: status.to_owned(),
                    effective_at: t(e, "effective_at")?,
                    retroactive,
                };
                let mut found = false;
                for a in self
                    .authorizations
                    .iter_mut()
                    .filter(|a| a.entity_id == entity && a.resource == resource)
                {
                    a.changes.push(change.clone());
                    found = true;
                }
                if !found {
                    return Err(EntryError::Reference(format!(
                        "no authorization of {entity} for {resource}"
                    )));
                }
            }
            EntryType::KeyStatusDeclared => {
                let did = s(e, "did")?;
                if !self.issuers.contains_key(did) {
                    return Err(EntryError::Reference(format!(
                        "issuer {did} is not registered"
                    )));
                }
                let key_id = s(e, "key_id")?;
                if s(e, "status")? != "compromised" {
                    return Err(EntryError::Malformed("status is compromised".into()));
                }
                let key_id = if key_id.starts_with('#') {
                    format!("{did}{key_id}")
                } else {
                    key_id.to_owned()
                };
                self.key_statuses.push(KeyStatus {
                    did: did.to_owned(),
                    key_id,
                    compromised_at: t(e, "compromised_at")?,
                });
            }
            EntryType::RecognitionGranted => self.apply_recognition(e)?,
            EntryType::RecognitionRevoked => {
                let entity = s(e, "entity_id")?;
                let resource = s(e, "resource")?;
                if s(e, "action")? != "recognize" {
                    return Err(EntryError::Malformed(
                        "the only recognition action is recognize".into(),
                    ));
                }
                let at = t(e, "effective_at")?;
                let mut found = false;
                for r in self.recognitions.iter_mut().filter(|r| {
                    r.entity_id == entity && r.resource == resource && r.revoked_at.is_none()
                }) {
                    r.revoked_at = Some(at);
                    found = true;
                }
                if !found {
                    return Err(EntryError::Reference(format!(
                        "no recognition of {entity} for {resource} to revoke"
                    )));
                }
            }
            EntryType::RegistryGenesis | EntryType::DidLogEntries => {}
        }
        Ok(())
    }

    fn apply_recognition(&mut self, e: &Value) -> Result<(), EntryError> {
        let entity = s(e, "entity_id")?;
        let resource = s(e, "resource")?;
        if s(e, "action")? != "recognize" {
            return Err(EntryError::Malformed(
                "the only recognition action is recognize".into(),
            ));
        }
        // TRQP identifiers: the recognized party is an authority, named by a DID.
        let is_did = entity.len() <= crate::did::MAX_DID_LEN
            && entity.splitn(3, ':').count() == 3
            && entity.starts_with("did:")
            && !entity.contains(char::is_whitespace);
        if !is_did {
            return Err(EntryError::Malformed(
                "entity_id of a recognition is a DID".into(),
            ));
        }
        if !self.types.contains_key(resource) {
            return Err(EntryError::Reference(format!(
                "type {resource} is not defined"
            )));
        }
        let anchor = crate::trust::bundle::TrustAnchor {
            origin: s(e, "log_origin")?.to_owned(),
            log_key_name: s(e, "log_key_name")?.to_owned(),
            log_key: s(e, "log_key")?.to_owned(),
        };
        if anchor.origin.is_empty() || anchor.log_key_name.is_empty() {
            return Err(EntryError::Malformed(
                "log_origin and log_key_name are not empty".into(),
            ));
        }
        if did::from_multikey(&anchor.log_key).is_err() {
            return Err(EntryError::Malformed("log_key is not a multikey".into()));
        }
        if anchor.origin == self.origin {
            return Err(EntryError::Reference(
                "a registry does not recognize itself".into(),
            ));
        }
        // One authority, one registry: every recognition of an authority pins the same anchor,
        // and an anchor belongs to one authority.
        if self.recognitions.iter().any(|r| {
            if r.entity_id == entity {
                r.anchor != anchor
            } else {
                r.anchor.origin == anchor.origin
            }
        }) {
            return Err(EntryError::Reference(format!(
                "{entity} is recognized with another registry anchor, or this anchor belongs to another authority"
            )));
        }
        if self
            .recognitions
            .iter()
            .any(|r| r.entity_id == entity && r.resource == resource && r.revoked_at.is_none())
        {
            return Err(EntryError::Reference(format!(
                "{entity} is already recognized for {resource}"
            )));
        }
        let valid_until = match e.get("valid_until") {
            None | Some(Value::Null) => None,
            Some(_) => Some(t(e, "valid_until")?),
        };
        self.recognitions.push(Recognition {
            entity_id: entity.to_owned(),
            authority_id: s(e, "authority_id")?.to_owned(),
            resource: resource.to_owned(),
            valid_from: t(e, "valid_from")?,
            valid_until,
            anchor,
            revoked_at: None,
            entry_index: self.size(),
        });
        Ok(())
    }

    /// Whether `authority` (another registry's authority) is recognized for `vct` at `at`.
    pub fn recognition(
        &self,
        authority: &str,
        vct: &str,
        at: i64,
    ) -> Result<&Recognition, TrustError> {
        let denied = |reason: &str| TrustError::NotRecognized {
            authority: authority.to_owned(),
            vct: vct.to_owned(),
            reason: reason.to_owned(),
        };
        let mut reason = "no recognition for this type";
        for r in self
            .recognitions
            .iter()
            .filter(|r| r.entity_id == authority && r.resource == vct)
        {
            match r.in_force(at) {
                Ok(()) => return Ok(r),
                Err(why) => reason = why,
            }
        }
        Err(denied(reason))
    }

    /// The recognized registry whose state registers `issuer_did`, with its authority, if
    /// this state holds none of its own by that DID.
    pub fn recognized_registry_of(&self, issuer_did: &str) -> Option<(&str, &TrustState)> {
        if self.issuers.contains_key(issuer_did) {
            return None;
        }
        self.recognized
            .iter()
            .find(|(_, st)| st.issuers.contains_key(issuer_did))
            .map(|(a, st)| (a.as_str(), st))
    }

    /// The issuer's assertion key named by `kid` (a DID URL or `#fragment`) as the DID stood at
    /// `at` (Unix seconds), refused when a compromise of it is declared
    /// ([`TrustState::compromise`]).
    pub fn issuer_key(
        &self,
        issuer_did: &str,
        kid: &str,
        at: i64,
    ) -> Result<PublicKey, TrustError> {
        let key = self.key_at(issuer_did, kid, at)?;
        match self.compromise(issuer_did, kid, at) {
            Some(e) => Err(e),
            None => Ok(key),
        }
    }

    /// The assertion key `kid` of `issuer_did` at `at`, from the mirrored key history, without
    /// looking at declared compromises.
    pub fn key_at(&self, issuer_did: &str, kid: &str, at: i64) -> Result<PublicKey, TrustError> {
        let issuer = self
            .issuers
            .get(issuer_did)
            .ok_or_else(|| TrustError::IssuerUnknown(issuer_did.to_owned()))?;
        let version = issuer.log.at_time(at).ok_or(TrustError::DidNotYetCreated)?;
        if version.params.deactivated {
            return Err(TrustError::DidDeactivated);
        }
        let full = if kid.starts_with('#') {
            format!("{issuer_did}{kid}")
        } else {
            kid.to_owned()
        };
        if !full.starts_with(&format!("{issuer_did}#"))
            || !version.has_relationship("assertionMethod", &full)
        {
            return Err(TrustError::KeyNotValidAt(full));
        }
        version
            .verification_method(&full)
            .ok_or(TrustError::KeyNotValidAt(full))
    }

    /// A declared compromise of `kid` that affects a proof made at `at`.
    pub fn compromise(&self, issuer_did: &str, kid: &str, at: i64) -> Option<TrustError> {
        let full = if kid.starts_with('#') {
            format!("{issuer_did}{kid}")
        } else {
            kid.to_owned()
        };
        let ks = self
            .key_statuses
            .iter()
            .find(|k| k.did == issuer_did && k.key_id == full)?;
        Some(if at >= ks.compromised_at {
            TrustError::KeyCompromised(full)
        } else {
            TrustError::KeyCompromisedPredated(full)
        })
    }

    /// Whether `issuer_did` may issue `vct` at `at`.
    pub fn authorized(
        &self,
        issuer_did: &str,
        vct: &str,
        at: i64,
    ) -> Result<&Authorization, TrustError> {
        if !self.issuers.contains_key(issuer_did) {
            return Err(TrustError::IssuerUnknown(issuer_did.to_owned()));
        }
        let denied = |reason: &str| TrustError::NotAuthorized {
            did: issuer_did.to_owned(),
            vct: vct.to_owned(),
            reason: reason.to_owned(),
        };
        let mut reason = "no authorization for this type";
        for a in self
            .authorizations
            .iter()
            .filter(|a| a.entity_id == issuer_did && a.resource == vct)
        {
            if at < a.valid_from || a.valid_until.is_some_and(|u| at >= u) {
                reason = "outside the authorization's validity window";
                continue;
            }
            let mut status = "active";
            for c in &a.changes {
                if c.retroactive || at >= c.effective_at {
                    status = c.status.as_str();
                }
            }
            if status == "active" {
                return Ok(a);
            }
            reason = if status == "suspended" {
                "authorization suspended"
            } else {
                "authorization revoked"
            };
        }
        Err(denied(reason))
    }

    /// The type definition of `vct`, if governance defined it.
    pub fn type_definition(&self, vct: &str) -> Option<&TypeDefinition> {
        self.types.get(vct)
    }
}
