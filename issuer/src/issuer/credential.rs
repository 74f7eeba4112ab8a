//! The token endpoint (pre-authorized code grant), the nonce endpoint and the credential
//! endpoint.

use rand_core::{OsRng, RngCore};
use serde_json::{json, Value};

use bizcred_core::keys::PublicKey;
use bizcred_core::oid4vci;
use bizcred_core::sd_jwt_vc::{self, Issuance, StatusReference};
use bizcred_schemas::CredentialType;

use super::{
    random_id, random_token, Error, Issuer, MAX_TX_ATTEMPTS, NONCE_TTL, PROOF_MAX_AGE, TOKEN_TTL,
};
use crate::store::{
    sha256_hex, AccessToken, Application, CredentialRecord, CredentialStatus, StoreError,
};

/// Most re-issues one access token grants after its credential (lost responses retried).
pub const MAX_REISSUES: u32 = 3;

fn credential_response(text: &str, id: &str) -> Value {
    json!({"credentials": [{"credential": text}], "notification_id": id})
}

impl Issuer {
    /// The token endpoint (pre-authorized code grant).
    pub fn token(&self, form: &[(String, String)]) -> Result<Value, Error> {
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        match get("grant_type") {
            Some(oid4vci::PRE_AUTHORIZED_GRANT) => {}
            Some(_) => return Err(Error::UnsupportedGrantType),
            None => return Err(Error::NoGrantType),
        }
        let code = get("pre-authorized_code").ok_or(Error::NoPreAuthorizedCode)?;
        let offer = self.store.offer_by_code(code)?.ok_or(Error::UnknownCode)?;
        let now = self.now();
        if offer.used || now >= offer.expires {
            return Err(Error::CodeUsedOrExpired);
        }
        let tx = get("tx_code").ok_or(Error::NoTxCode)?;
        let ok: bool = subtle::ConstantTimeEq::ct_eq(
            sha256_hex(tx.as_bytes()).as_bytes(),
            offer.tx_hash.as_bytes(),
        )
        .into();
        if !ok {
            let n = self
                .store
                .offer_failed_attempt(&offer.id, MAX_TX_ATTEMPTS)?;
            let left = MAX_TX_ATTEMPTS.saturating_sub(n);
            return Err(Error::WrongTxCode {
                attempts_left: left,
            });
        }
        let access = random_token(32);
        let token = AccessToken {
            application_id: offer.application_id.clone(),
            configuration_id: offer.configuration_id.clone(),
            expires: now + TOKEN_TTL,
            used: false,
            credential_id: None,
            reissues: 0,
        };
        self.store
            .redeem(&offer.id, &sha256_hex(access.as_bytes()), &token, now)
            .map_err(|e| match e {
                StoreError::CodeUsedOrExpired | StoreError::NotFound { .. } => {
                    Error::CodeUsedOrExpired
                }
                e => e.into(),
            })?;
        Ok(json!({"access_token": access, "token_type": "Bearer", "expires_in": TOKEN_TTL}))
    }

    /// The nonce endpoint.
    pub fn nonce(&self) -> Result<Value, Error> {
        let n = random_token(18);
        self.store.put_nonce(&n, self.now() + NONCE_TTL)?;
        Ok(json!({"c_nonce": n}))
    }

    /// The credential endpoint.
    pub fn credential(&self, access_token: &str, body: &Value) -> Result<Value, Error> {
        let now = self.now();
        let token_hash = sha256_hex(access_token.as_bytes());
        let token = self
            .store
            .token(&token_hash)?
            // A used token is still good, within its lifetime, for the credential it issued
            // (a wallet that lost the response retries): see `reissue`.
            .filter(|t| now < t.expires && (!t.used || t.credential_id.is_some()))
            .ok_or(Error::InvalidToken)?;
        let Value::Object(req) = body else {
            return Err(Error::BadCredentialRequest(
                "the request is not a JSON object",
            ));
        };
        if req.contains_key("credential_identifier") {
            return Err(Error::BadCredentialRequest(
                "credential_identifier is not used by this issuer",
            ));
        }
        let config_id = req
            .get("credential_configuration_id")
            .and_then(Value::as_str)
            .ok_or(Error::BadCredentialRequest(
                "no credential_configuration_id",
            ))?;
        if self.issues(config_id).is_none() {
            return Err(Error::UnknownConfiguration {
                id: config_id.to_owned(),
            });
        }
        if config_id != token.configuration_id {
            return Err(Error::BadCredentialRequest(
                "the access token was not granted for this configuration",
            ));
        }
        let proofs = req
            .get("proofs")
            .and_then(|p| p.get("jwt"))
            .and_then(Value::as_array)
            .ok_or(Error::BadProof("no proofs.jwt"))?;
        let [proof] = proofs.as_slice() else {
            return Err(Error::BadCredentialRequest(
                "exactly one key proof (batch issuance is not offered)",
            ));
        };
        let proof = proof
            .as_str()
            .ok_or(Error::BadProof("the key proof is not a string"))?;
        let verified =
            oid4vci::verify_proof_jwt(proof, &self.config.public_url, now, PROOF_MAX_AGE)
                .map_err(Error::ProofRefused)?;
        let nonce = verified
            .nonce
            .as_deref()
            .ok_or(Error::BadProof("the key proof carries no c_nonce"))?;
        if !self.store.take_nonce(nonce, now)? {
            return Err(Error::InvalidNonce);
        }
        let app = self.store.application(&token.application_id)?;
        if let Some(tp) = &app.holder_thumbprint {
            if *tp != verified.key.thumbprint() {
                return Err(Error::HolderKeyMismatch);
            }
        }
        let ty =
            CredentialType::from_slug(config_id).ok_or_else(|| Error::UnknownConfiguration {
                id: config_id.to_owned(),
            })?;
        if let (true, Some(id)) = (token.used, &token.credential_id) {
            return self.reissue(id, &token_hash, ty, &app, &verified.key, now);
        }
        for _ in 0..3 {
            let (list, idx) = self.allocate_index(now)?;
            let (text, kid) = self.sign_credential(ty, &app, &verified.key, (list, idx), now)?;
            let rec = CredentialRecord {
                id: random_id(),
                application_id: app.id.clone(),
                vct: ty.vct().to_owned(),
                status_list: list,
                status_idx: idx,
                status: CredentialStatus::Valid,
                issued_at: now,
                kid,
                credential_sha256: sha256_hex(text.as_bytes()),
                history: Vec::new(),
            };
            match self.store.record_issuance(&rec, &token_hash, now) {
                Ok(()) => return Ok(credential_response(&text, &rec.id)),
                Err(StoreError::IndexTaken(_)) => continue,
                // A concurrent request with the same token issued first: answer as a retry.
                Err(StoreError::TokenUsed) => {
                    let id = self
                        .store
                        .token(&token_hash)?
                        .and_then(|t| t.credential_id)
                        .ok_or(Error::InvalidToken)?;
                    return self.reissue(&id, &token_hash, ty, &app, &verified.key, now);
                }
                Err(StoreError::NotFound { .. }) => return Err(Error::InvalidToken),
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::NoFreeIndex)
    }

    /// A repeated credential request with the access token that already issued a credential
    /// (and a fresh proof): the credential is issued again for the same record and status
    /// index, bound to the proof's key, never with a second index. Bounded by
    /// [`MAX_REISSUES`] per token; a revoked credential is not re-issued.
    fn reissue(
        &self,
        credential_id: &str,
        token_hash: &str,
        ty: CredentialType,
        app: &Application,
        holder: &PublicKey,
        now: i64,
    ) -> Result<Value, Error> {
        let rec = self.store.credential(credential_id)?;
        if rec.status == CredentialStatus::Revoked {
            return Err(Error::CredentialRevoked);
        }
        let (text, kid) =
            self.sign_credential(ty, app, holder, (rec.status_list, rec.status_idx), now)?;
        let sha = sha256_hex(text.as_bytes());
        match self
            .store
            .record_reissue(token_hash, &rec, &kid, &sha, now, MAX_REISSUES)
        {
            Ok(()) => Ok(credential_response(&text, &rec.id)),
            Err(StoreError::TokenUsed) => Err(Error::InvalidToken),
            Err(e) => Err(e.into()),
        }
    }

    /// Signs the SD-JWT VC of `app` for `holder` at status index `idx` of list `list`;
    /// returns it and the signing key's id.
    fn sign_credential(
        &self,
        ty: CredentialType,
        app: &Application,
        holder: &PublicKey,
        (list, idx): (u32, u64),
        now: i64,
    ) -> Result<(String, String), Error> {
        let keys = self.signing_key();
        let iat = now.max(keys.valid_from);
        let req = Issuance {
            vct: ty.vct(),
            issuer: &self.did,
            kid: Some(&keys.kid),
            iat,
            nbf: None,
            exp: Some(iat + self.config.validity_days * 86_400),
            holder_key: Some(holder),
            status: Some(StatusReference {
                idx,
                uri: self.status_uri(list),
            }),
            disclosable: sd_jwt_vc::default_disclosable(ty, &app.claims),
            claims: app.claims.clone(),
            decoys: 3,
        };
        // Salts from a ChaCha20 CSPRNG seeded by the OS: one system call, not one per salt.
        let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::from_rng(OsRng)
            .map_err(Error::Random)?;
        let sd = sd_jwt_vc::issue(req, &keys.assertion, &mut rng).map_err(Error::Issue)?;
        Ok((sd.serialize(), keys.kid.clone()))
    }

    /// A free status index: drawn at random in the open list; when that list has no free
    /// index, the next list is opened (its own URL), signed before any credential names it,
    /// and the index drawn there.
    fn allocate_index(&self, now: i64) -> Result<(u32, u64), Error> {
        // More than one roll-over in one call only when concurrent issuances fill lists faster.
        for _ in 0..4 {
            let open = self.store.open_status_list()?;
            if open.allocated < open.size {
                for _ in 0..64 {
                    let idx = OsRng.next_u64() % open.size;
                    if !self.store.index_taken(open.list, idx)? {
                        return Ok((open.list, idx));
                    }
                }
                // Nearly full: the first free index after a random one.
                let start = OsRng.next_u64() % open.size;
                if let Some(idx) = self.store.free_index(open.list, open.size, start)? {
                    return Ok((open.list, idx));
                }
            }
            let next = self
                .store
                .open_next_status_list(open.list, self.config.list_size, now)?;
            if next.list != open.list {
                self.refresh_list(next.list)?;
            }
        }
        Err(Error::StatusListFull)
    }
}
