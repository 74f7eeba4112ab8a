//! The sequencer: validates and appends entries, signs checkpoints, serves proofs,
//! resolutions, authorization queries with evidence, and trust bundles.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand_core::CryptoRngCore;
use serde_json::{json, Value};

use bizcred_core::jws::Jws;
use bizcred_core::keys::{SecretKey, Signer};
use bizcred_core::trust::bundle::{
    self, BundleError, RecognizedBundle, StatusListCopy, TrustAnchor,
};
use bizcred_core::trust::entry::{self, build};
use bizcred_core::trust::merkle;
use bizcred_core::trust::note::{Checkpoint, SignedNote};
use bizcred_core::trust::state::{EntryError, TrustState};
use bizcred_core::webvh;
use bizcred_core::ReasonCode;

use crate::store::{Store, StoreError};
use crate::trqp::{self, TrqpError};

/// Most entries one page of `/entries` returns.
pub const MAX_PAGE: u64 = 1000;
/// Largest status list token accepted.
pub const MAX_STATUS_LIST_LEN: usize = 2 * 1024 * 1024;

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The entry was refused.
    #[error(transparent)]
    Entry(#[from] EntryError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An index or size out of range.
    #[error("out of range: {0}")]
    Range(String),
    /// A DID resolution failed.
    #[error(transparent)]
    Did(#[from] webvh::WebvhError),
    /// A status list token was refused.
    #[error("status list refused: {0}")]
    StatusList(String),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(#[from] bizcred_core::data_integrity::ProofError),
    /// The checkpoint could not be signed.
    #[error("signing the checkpoint failed: {0}")]
    Checkpoint(#[source] bizcred_core::keys::SignError),
    /// A TRQP query is not answered.
    #[error(transparent)]
    Trqp(#[from] TrqpError),
    /// A recognized registry's bundle was refused.
    #[error("the recognized registry's bundle is refused: {0}")]
    Recognized(#[source] BundleError),
    /// The registry has no authority DID.
    #[error("the registry has no authority DID yet")]
    NoAuthorityDid,
}

impl RegistryError {
    /// Stable reason code.
    pub fn code(&self) -> ReasonCode {
        match self {
            RegistryError::Entry(e) => e.code(),
            RegistryError::Store(e) => e.code(),
            RegistryError::Range(_) => ReasonCode::OutOfRange,
            RegistryError::Did(e) => e.code(),
            RegistryError::StatusList(_) => ReasonCode::StatusListMalformed,
            RegistryError::Sign(e) => e.code(),
            RegistryError::Checkpoint(e) => e.code(),
            RegistryError::Trqp(e) => e.code(),
            RegistryError::Recognized(_) => ReasonCode::BundleRecognizedInvalid,
            RegistryError::NoAuthorityDid => ReasonCode::AuthorityDidMissing,
        }
    }
}

/// The registry: replayed state, the entries, the log key and durable storage.
///
/// Several registries (one per instance) may share one store ([`crate::store::pg`]): each
/// appends through the store's write lock, validating against what is stored then
/// ([`Registry::append_all`]), and calls [`Registry::refresh`] before it answers a read.
pub struct Registry<S: Store> {
    store: S,
    state: TrustState,
    entries: Vec<Value>,
    log_signer: SecretKey,
    checkpoint: String,
    status_lists: Vec<StatusListCopy>,
    /// The recognized registries' bundles, as last submitted.
    recognized: Vec<RecognizedBundle>,
    /// The governing authority's did:webvh DID, when it has one.
    authority: Option<AuthorityDid>,
    /// The newest blob version read from the store.
    blob_version: u64,
}

/// The governing authority's did:webvh DID: its verified log.
#[derive(Debug, Clone)]
pub struct AuthorityDid {
    /// The DID.
    pub did: String,
    /// Its verified log.
    pub log: webvh::VerifiedLog,
}

impl AuthorityDid {
    /// Verifies `log` (a did.jsonl) at `now`.
    pub fn from_log(log: &str, now: i64) -> Result<AuthorityDid, webvh::WebvhError> {
        let verified = webvh::verify_log(log, None, now);
        if let Some(e) = verified.error {
            return Err(e);
        }
        let did = verified
            .versions
            .last()
            .map(|v| v.id().to_owned())
            .ok_or(webvh::WebvhError::NotFound)?;
        Ok(AuthorityDid { did, log: verified })
    }

    /// The current DID document (with the implicit services).
    pub fn document(&self) -> Option<Value> {
        webvh::resolve(&self.did, &self.log)
            .ok()
            .map(|r| r.document)
    }

    /// The endpoint of the document's service of `kind` (e.g. `TRQP`).
    pub fn service(&self, kind: &str) -> Option<String> {
        self.document()?
            .get("service")?
            .as_array()?
            .iter()
            .find(|s| s.get("type").and_then(Value::as_str) == Some(kind))?
            .get("serviceEndpoint")?
            .as_str()
            .map(str::to_owned)
    }
}

/// The recognized bundle a blob holds, if it is one (`recognized:<authority>`).
fn recognized_of(name: &str, value: &[u8]) -> Option<RecognizedBundle> {
    name.strip_prefix("recognized:")
        .map(|authority| RecognizedBundle {
            authority_id: authority.to_owned(),
            bundle: String::from_utf8_lossy(value).into_owned(),
        })
}

/// The status list a blob holds, if it is one (`status:<uri>`).
fn status_list_of(name: &str, value: &[u8]) -> Option<StatusListCopy> {
    name.strip_prefix("status:").map(|uri| StatusListCopy {
        uri: uri.to_owned(),
        token: String::from_utf8_lossy(value).into_owned(),
    })
}

/// A stored entry's JSON, replayed onto `state` (refused as corruption: it was validated
/// when it was appended).
fn replay(state: &mut TrustState, bytes: &[u8], now: i64) -> Result<Value, StoreError> {
    let at = state.size();
    let e: Value = serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Corrupt(format!("stored entry {at} is not JSON: {e}")))?;
    state
        .apply(&e, now)
        .map_err(|err| StoreError::Corrupt(format!("stored entry {at} does not apply: {err}")))?;
    Ok(e)
}

impl<S: Store> std::fmt::Debug for Registry<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("origin", &self.state.origin)
            .field("size", &self.state.size())
            .finish()
    }
}

impl<S: Store> Registry<S> {
    /// Opens the registry over `store`, replaying (and re-validating) every stored entry.
    pub fn open(
        store: S,
        origin: &str,
        log_signer: SecretKey,
        now: i64,
    ) -> Result<Registry<S>, RegistryError> {
        let mut state = TrustState::empty(origin);
        let mut entries = Vec::new();
        for bytes in store.load()? {
            let e: Value = serde_json::from_slice(&bytes)
                .map_err(|e| StoreError::Corrupt(format!("stored entry is not JSON: {e}")))?;
            state.apply(&e, now)?;
            entries.push(e);
        }
        let mut r = Registry {
            store,
            state,
            entries,
            log_signer,
            checkpoint: String::new(),
            status_lists: Vec::new(),
            recognized: Vec::new(),
            authority: None,
            blob_version: 0,
        };
        r.read_blobs()?;
        r.sign_checkpoint()?;
        Ok(r)
    }

    /// Reads the blobs written since the last look.
    fn read_blobs(&mut self) -> Result<(), RegistryError> {
        for b in self.store.blobs_since(self.blob_version)? {
            if let Some(list) = status_list_of(&b.name, &b.value) {
                self.status_lists.retain(|s| s.uri != list.uri);
                self.status_lists.push(list);
            }
            if let Some(r) = recognized_of(&b.name, &b.value) {
                self.recognized.retain(|x| x.authority_id != r.authority_id);
                self.recognized.push(r);
            }
            self.blob_version = self.blob_version.max(b.version);
        }
        Ok(())
    }

    /// Catches up with the store: replays the entries other instances appended since the last
    /// look and reads the blobs they wrote, re-signing the checkpoint when the log grew. One
    /// cheap query ([`Store::head`]) when nothing changed. Returns whether anything did.
    ///
    /// A registry that shares its store calls this before every answer, so an answer reflects
    /// every append committed before it was asked for, on any instance.
    pub fn refresh(&mut self, now: i64) -> Result<bool, RegistryError> {
        let head = self.store.head()?;
        let size = self.state.size();
        if head.size < size {
            return Err(StoreError::Corrupt(format!(
                "the stored log has {} entries, fewer than the {size} already replayed",
                head.size
            ))
            .into());
        }
        let mut changed = false;
        if head.size > size {
            let mut next = self.state.clone();
            let mut newer = Vec::new();
            for bytes in self.store.entries_from(size)? {
                newer.push(replay(&mut next, &bytes, now)?);
            }
            self.state = next;
            self.entries.extend(newer);
            self.sign_checkpoint()?;
            changed = true;
        }
        if head.blob_version > self.blob_version {
            self.read_blobs()?;
            changed = true;
        }
        Ok(changed)
    }

    fn sign_checkpoint(&mut self) -> Result<(), RegistryError> {
        let cp = Checkpoint {
            origin: self.state.origin.clone(),
            size: self.state.size(),
            root: self.state.root(),
        };
        self.checkpoint = SignedNote::sign(&cp.body(), &self.state.origin, &self.log_signer)
            .map_err(RegistryError::Checkpoint)?;
        Ok(())
    }

    /// The store (e.g. for a readiness check: [`Store::head`] answers when it is reachable).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The replayed state.
    pub fn state(&self) -> &TrustState {
        &self.state
    }

    /// The log key's public half.
    pub fn log_key(&self) -> bizcred_core::keys::PublicKey {
        self.log_signer.public_key()
    }

    /// Sets the governing authority's did:webvh DID from its log (verified at `now`).
    pub fn set_authority_did(&mut self, log: &str, now: i64) -> Result<(), RegistryError> {
        self.authority = Some(AuthorityDid::from_log(log, now)?);
        Ok(())
    }

    /// The governing authority's DID, if it has one.
    pub fn authority_did(&self) -> Option<&AuthorityDid> {
        self.authority.as_ref()
    }

    /// The authority TRQP answers for: its DID, or the log's origin while it has none.
    pub fn authority_id(&self) -> &str {
        self.authority
            .as_ref()
            .map_or(self.state.origin.as_str(), |a| a.did.as_str())
    }

    /// The recognized registries' bundles this registry carries.
    pub fn recognized_bundles(&self) -> &[RecognizedBundle] {
        &self.recognized
    }

    /// The anchor verifiers pin (after genesis).
    pub fn anchor(&self) -> Option<TrustAnchor> {
        TrustAnchor::of(&self.state)
    }

    /// The latest signed checkpoint.
    pub fn checkpoint(&self) -> &str {
        &self.checkpoint
    }

    /// Validates `e` against the state and appends it durably. Returns its index.
    pub fn append(&mut self, e: Value, now: i64) -> Result<u64, RegistryError> {
        Ok(self.append_all(vec![e], now)?.start)
    }

    /// Most entries one batch may hold.
    pub const MAX_BATCH: usize = 64;

    /// Validates `batch` in order against the state (each entry after the ones before it) and
    /// appends all of them durably in one write, or none: onboarding an issuer (its
    /// registration and its authorizations) can never stop half-way. Returns their indices.
    ///
    /// The validation runs under the store's write lock, against the state replayed from
    /// what is stored then: the entries other instances appended since this registry's last
    /// look are replayed first (and kept), so a batch is never validated against a stale copy.
    pub fn append_all(
        &mut self,
        batch: Vec<Value>,
        now: i64,
    ) -> Result<std::ops::Range<u64>, RegistryError> {
        if batch.is_empty() || batch.len() > Self::MAX_BATCH {
            return Err(RegistryError::Range(format!(
                "a batch holds 1 to {} entries, not {}",
                Self::MAX_BATCH,
                batch.len()
            )));
        }
        // Cloned before the lock is taken; only the replay and the validation run under it.
        let mut base = Some(self.state.clone());
        let mut outcome: Option<Result<(TrustState, Vec<Value>), RegistryError>> = None;
        let written = self.store.append_with(self.state.size(), &mut |stored| {
            let mut next = base.take()?;
            let mut newer = Vec::with_capacity(stored.len());
            for bytes in stored {
                match replay(&mut next, bytes, now) {
                    Ok(e) => newer.push(e),
                    Err(err) => {
                        outcome = Some(Err(err.into()));
                        return None;
                    }
                }
            }
            let mut out = Vec::with_capacity(batch.len());
            for e in &batch {
                let applied = next
                    .apply(e, now)
                    .and_then(|()| entry::canonical(e).map_err(EntryError::Malformed));
                match applied {
                    Ok(bytes) => out.push(bytes),
                    Err(err) => {
                        outcome = Some(Err(err.into()));
                        return None;
                    }
                }
            }
            outcome = Some(Ok((next, newer)));
            Some(out)
        })?;
        let (next, newer) = match (written, outcome) {
            (Some(_), Some(Ok(done))) => done,
            (None, Some(Err(e))) => return Err(e),
            _ => {
                return Err(
                    StoreError::Corrupt("the store did not run the append plan".into()).into(),
                )
            }
        };
        let start = self.state.size() + newer.len() as u64;
        if written != Some(start) {
            return Err(StoreError::Corrupt(format!(
                "the batch landed at {written:?}, not at {start}"
            ))
            .into());
        }
        self.state = next;
        self.entries.extend(newer);
        let end = start + batch.len() as u64;
        self.entries.extend(batch);
        self.sign_checkpoint()?;
        Ok(start..end)
    }

    /// Mirrors new did:webvh lines of a registered issuer (verified as the next entries of
    /// the mirrored log; the DID controller's proofs authenticate them).
    pub fn submit_did_lines(
        &mut self,
        did: &str,
        lines: &str,
        now: i64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<u64, RegistryError> {
        let e = build::did_log_entries(&self.state.origin, did, lines, now, &self.log_signer, rng)?;
        self.append(e, now)
    }

    /// Entries `start..end` (at most [`MAX_PAGE`]).
    pub fn entries(&self, start: u64, end: u64) -> Result<&[Value], RegistryError> {
        let size = self.state.size();
        if start > end || end > size || end - start > MAX_PAGE {
            return Err(RegistryError::Range(format!(
                "entries {start}..{end} of {size} (at most {MAX_PAGE} a page)"
            )));
        }
        Ok(&self.entries[start as usize..end as usize])
    }

    /// Inclusion proof of entry `index` in the tree of `size` entries.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Value, RegistryError> {
        if size > self.state.size() || index >= size {
            return Err(RegistryError::Range(format!(
                "index {index} in size {size}"
            )));
        }
        let leaves = &self.state.leaves[..size as usize];
        let proof = merkle::inclusion_proof(index as usize, leaves)
            .map_err(|e| RegistryError::Range(e.to_string()))?;
        Ok(json!({
            "index": index,
            "size": size,
            "leaf_hash": STANDARD.encode(leaves[index as usize]),
            "root": STANDARD.encode(merkle::root(leaves)),
            "proof": proof.iter().map(|h| STANDARD.encode(h)).collect::<Vec<_>>(),
        }))
    }

    /// Consistency proof between sizes `first` and `second`.
    pub fn consistency_proof(&self, first: u64, second: u64) -> Result<Value, RegistryError> {
        if first == 0 || first > second || second > self.state.size() {
            return Err(RegistryError::Range(format!("sizes {first} and {second}")));
        }
        let leaves = &self.state.leaves[..second as usize];
        let proof = merkle::consistency_proof(first as usize, leaves)
            .map_err(|e| RegistryError::Range(e.to_string()))?;
        Ok(
            json!({"first": first, "second": second, "proof": proof.iter().map(|h| STANDARD.encode(h)).collect::<Vec<_>>()}),
        )
    }

    /// Resolves a did:webvh DID URL from the mirror.
    pub fn resolve(&self, did_url: &str) -> Result<webvh::Resolution, RegistryError> {
        let (did, _) = webvh::parse_did_url(did_url)?;
        let issuer = self
            .state
            .issuers
            .get(&did.did)
            .ok_or(webvh::WebvhError::NotFound)?;
        Ok(webvh::resolve(did_url, &issuer.log)?)
    }

    /// The mirrored did:webvh log of an issuer.
    pub fn did_log(&self, did: &str) -> Option<String> {
        self.state.issuers.get(did).map(|i| i.log.text())
    }

    fn check_query(&self, q: &trqp::Query, action: &'static str) -> Result<(), RegistryError> {
        if q.authority_id != self.authority_id() {
            return Err(TrqpError::AuthorityUnknown {
                asked: q.authority_id.chars().take(256).collect(),
                ours: self.authority_id().to_owned(),
            }
            .into());
        }
        if q.action != action {
            return Err(TrqpError::ActionUnknown {
                asked: q.action.chars().take(128).collect(),
                defined: action,
            }
            .into());
        }
        if self.state.type_definition(&q.resource).is_none() {
            return Err(TrqpError::ResourceUnknown(q.resource.chars().take(256).collect()).into());
        }
        Ok(())
    }

    /// The evidence of entry `index`: the entry, its inclusion proof in the current tree and
    /// the signed checkpoint (under the answer's `ext` member).
    fn evidence(&self, index: u64) -> Result<Value, RegistryError> {
        Ok(json!({"org.bizcred.evidence": {
            "entry": self.entries[index as usize],
            "inclusion": self.inclusion_proof(index, self.state.size())?,
            "checkpoint": self.checkpoint,
        }}))
    }

    /// A ToIP TRQP v2 authorization query ([`trqp`]): may `entity_id` `issue` `resource`
    /// under this authority at `context.time` (else now)? Answered with evidence when it may.
    pub fn authorization_query(&self, q: &trqp::Query, now: i64) -> Result<Value, RegistryError> {
        self.check_query(q, trqp::ACTION_ISSUE)?;
        if !self.state.issuers.contains_key(&q.entity_id) {
            return Err(TrqpError::EntityUnknown(format!(
                "{} is not an issuer registered by this authority",
                q.entity_id.chars().take(256).collect::<String>()
            ))
            .into());
        }
        Ok(
            match self.state.authorized(&q.entity_id, &q.resource, q.at(now)) {
                Ok(grant) => {
                    let mut a = q.answer(
                        "authorized",
                        true,
                        format!(
                            "{} is authorized to issue {} by {} (entry {})",
                            q.entity_id, q.resource, q.authority_id, grant.entry_index
                        ),
                        now,
                    );
                    a["ext"] = self.evidence(grant.entry_index)?;
                    a
                }
                Err(e) => q.answer("authorized", false, e.to_string(), now),
            },
        )
    }

    /// A ToIP TRQP v2 recognition query ([`trqp`]): does this authority recognize
    /// `entity_id` (another registry's authority) for `resource` at `context.time` (else
    /// now)? Answered with evidence when it does.
    pub fn recognition_query(&self, q: &trqp::Query, now: i64) -> Result<Value, RegistryError> {
        self.check_query(q, trqp::ACTION_RECOGNIZE)?;
        if !self
            .state
            .recognitions
            .iter()
            .any(|r| r.entity_id == q.entity_id)
        {
            return Err(TrqpError::EntityUnknown(format!(
                "{} is an authority this authority never recognized",
                q.entity_id.chars().take(256).collect::<String>()
            ))
            .into());
        }
        Ok(
            match self.state.recognition(&q.entity_id, &q.resource, q.at(now)) {
                Ok(r) => {
                    let mut a = q.answer(
                        "recognized",
                        true,
                        format!(
                            "{} is recognized by {} for {} (entry {}; its registry's log is {})",
                            q.entity_id, q.authority_id, q.resource, r.entry_index, r.anchor.origin
                        ),
                        now,
                    );
                    a["ext"] = self.evidence(r.entry_index)?;
                    a
                }
                Err(e) => q.answer("recognized", false, e.to_string(), now),
            },
        )
    }

    /// Keeps a recognized registry's bundle (from its first entry) to carry in this
    /// registry's bundles: it must verify against the anchor a recognition in this log pins
    /// for its origin, and continue what is held for that authority (an older or forked one
    /// is refused). Returns the recognized authority and the bundle's size.
    pub fn put_recognized_bundle(
        &mut self,
        text: &str,
        now: i64,
    ) -> Result<(String, u64), RegistryError> {
        let parsed = bundle::parse(text).map_err(RegistryError::Recognized)?;
        let Some(rec) = self
            .state
            .recognitions
            .iter()
            .rev()
            .find(|r| r.anchor.origin == parsed.origin)
        else {
            return Err(RegistryError::Recognized(BundleError::WrongRegistry(
                format!(
                    "no recognition in this log pins the registry {}",
                    parsed.origin.chars().take(128).collect::<String>()
                ),
            )));
        };
        if parsed.from_size != 0 {
            return Err(RegistryError::Recognized(BundleError::Malformed(
                "a recognized registry's bundle is carried whole (from its first entry)".into(),
            )));
        }
        let (authority, anchor) = (rec.entity_id.clone(), rec.anchor.clone());
        let fresh = bundle::import_recognized(None, &anchor, text, now)
            .map_err(RegistryError::Recognized)?;
        let size = fresh.state.size();
        let name = format!("recognized:{authority}");
        let mut refusal = None;
        let version = self.store.put_blob_with(&name, &mut |current| {
            if let Some(held) = current {
                let held = String::from_utf8_lossy(held);
                let kept = bundle::import_recognized(None, &anchor, &held, now)
                    .ok()
                    .map(|i| i.state);
                if let Some(k) = &kept {
                    if k.size() > size {
                        refusal = Some(BundleError::Older {
                            have: k.size(),
                            got: size,
                        });
                        return None;
                    }
                }
                // Continues what is held (a fork of it is refused).
                if let Err(e) = bundle::import_recognized(kept.as_ref(), &anchor, text, now) {
                    refusal = Some(e);
                    return None;
                }
            }
            Some(text.as_bytes().to_vec())
        })?;
        if let Some(e) = refusal {
            return Err(RegistryError::Recognized(e));
        }
        if version.is_none() {
            return Err(RegistryError::Recognized(BundleError::Malformed(
                "the store did not keep the bundle".into(),
            )));
        }
        self.recognized.retain(|r| r.authority_id != authority);
        self.recognized.push(RecognizedBundle {
            authority_id: authority.clone(),
            bundle: text.to_owned(),
        });
        if version == Some(self.blob_version + 1) {
            self.blob_version += 1;
        }
        Ok((authority, size))
    }

    /// Accepts an issuer's signed Token Status List (`statuslist+jwt`) for `uri`, verified
    /// with the issuer's key from the registry (so bundles carry only genuine lists).
    pub fn put_status_list(&mut self, token: &str) -> Result<String, RegistryError> {
        if token.len() > MAX_STATUS_LIST_LEN {
            return Err(RegistryError::StatusList("too large".into()));
        }
        let bad = |m: &str| RegistryError::StatusList(m.to_owned());
        let jws = Jws::decode(token).map_err(|e| bad(&e.to_string()))?;
        if jws.header_str("typ") != Some("statuslist+jwt") {
            return Err(bad("typ is not statuslist+jwt"));
        }
        let kid = jws.header_str("kid").ok_or_else(|| bad("no kid"))?;
        let claims = jws.claims().map_err(|e| bad(&e.to_string()))?;
        let uri = claims
            .get("sub")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no sub (the list URI)"))?
            .to_owned();
        let iat = claims
            .get("iat")
            .and_then(Value::as_i64)
            .ok_or_else(|| bad("no iat"))?;
        let did = kid.split('#').next().unwrap_or("");
        let key = self
            .state
            .issuer_key(did, kid, iat)
            .map_err(|e| bad(&e.to_string()))?;
        jws.verify(&key).map_err(|e| bad(&e.to_string()))?;
        // Never replace a newer list with an older one: checked under the store's write lock
        // against the list stored then (another instance may have stored a newer one).
        let version = self
            .store
            .put_blob_with(&format!("status:{uri}"), &mut |current| {
                let held_iat = current
                    .and_then(|old| Jws::decode(&String::from_utf8_lossy(old)).ok())
                    .and_then(|j| j.claims().ok())
                    .and_then(|c| c.get("iat").and_then(Value::as_i64));
                held_iat
                    .is_none_or(|o| o <= iat)
                    .then(|| token.as_bytes().to_vec())
            })?;
        if version.is_none() {
            return Err(bad("a newer list for this URI is already held"));
        }
        self.status_lists.retain(|s| s.uri != uri);
        self.status_lists.push(StatusListCopy {
            uri: uri.clone(),
            token: token.to_owned(),
        });
        // Only the next version is this write for sure; past a gap, the next refresh reads
        // the blobs between (this one again among them).
        if version == Some(self.blob_version + 1) {
            self.blob_version += 1;
        }
        Ok(uri)
    }

    /// A signed trust bundle for a verifier holding `from` entries.
    pub fn bundle(&self, from: u64, now: i64) -> Result<String, RegistryError> {
        if from > self.state.size() {
            return Err(RegistryError::Range(format!(
                "from {from} beyond size {}",
                self.state.size()
            )));
        }
        bundle::export_with_recognized(
            &self.state,
            &self.checkpoint,
            from,
            &self.entries,
            self.status_lists.clone(),
            self.recognized.clone(),
            now,
            &self.log_signer,
        )
        .map_err(|e| RegistryError::Range(e.to_string()))
    }
}
