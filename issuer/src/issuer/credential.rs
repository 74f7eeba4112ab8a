//! The token endpoint (pre-authorized code grant), the nonce endpoint, the credential
//! endpoint and the notification endpoint, with DPoP (RFC 9449) at the token, credential and
//! notification endpoints.
//!
//! DPoP: a token request with a proof gets an access token bound to the proof's key
//! (`token_type: DPoP`); the binding travels in the token itself, `<random>.<jkt>`, whose hash
//! the store keeps like any token's, so neither part can be changed or dropped without the
//! token becoming unknown, and every backend keeps it. A bound token is accepted only with the
//! `DPoP` scheme and a proof by that key whose `ath` is its hash; a token without a binding,
//! only as a bearer token. Every proof must carry a nonce the issuer supplied (`DPoP-Nonce`),
//! taken once from the store's nonces (under the `dpop:` prefix, so a `c_nonce` is never one),
//! which makes a proof good for one request whichever instance answers; its `jti` is kept
//! under the `dpop-jti:` prefix until the proof is too old anyway, so a replayed proof is named
//! as such.

use rand_core::{OsRng, RngCore};
use serde_json::{json, Value};

use bizcred_core::dpop::{self, VerifiedProof};
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
/// How long a supplied DPoP nonce is good for.
pub const DPOP_NONCE_TTL: i64 = 300;
/// Accepted DPoP proof age.
pub const DPOP_MAX_AGE: i64 = 300;
/// Accepted DPoP proof `iat` ahead of the clock.
pub const DPOP_MAX_SKEW: i64 = 60;
/// Longest `notification_id` read.
pub const MAX_NOTIFICATION_ID: usize = 128;
/// Longest `event_description` kept.
pub const MAX_EVENT_DESCRIPTION: usize = 512;
/// The notification events (OpenID4VCI 1.0 §11.1).
pub const NOTIFICATION_EVENTS: [&str; 3] = [
    "credential_accepted",
    "credential_failure",
    "credential_deleted",
];

/// Random status indices tried in the store's one read before probing one by one.
const DRAWN_AT_ONCE: usize = 8;

/// The length of a JWK SHA-256 thumbprint in base64url.
const JKT_LEN: usize = 43;

/// An endpoint a DPoP proof is made for (its `htu`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpopEndpoint {
    /// `/token`.
    Token,
    /// `/credential`.
    Credential,
    /// `/notification`.
    Notification,
}

impl DpopEndpoint {
    /// The endpoint's path.
    pub fn path(self) -> &'static str {
        match self {
            DpopEndpoint::Token => "/token",
            DpopEndpoint::Credential => "/credential",
            DpopEndpoint::Notification => "/notification",
        }
    }
}

/// An access token as a request presents it: the `Authorization` header's scheme and, with
/// the `DPoP` scheme, the request's DPoP proof (its one `DPoP` header). `Debug` hides both.
#[derive(Clone, Copy)]
pub enum Presented<'a> {
    /// `Authorization: Bearer <token>`.
    Bearer(&'a str),
    /// `Authorization: DPoP <token>` and the proof (`None`: the request has none).
    Dpop {
        /// The access token.
        token: &'a str,
        /// The DPoP proof.
        proof: Option<&'a str>,
    },
}

impl std::fmt::Debug for Presented<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Presented::Bearer(_) => "Presented::Bearer(..)",
            Presented::Dpop { .. } => "Presented::Dpop(..)",
        })
    }
}

/// True for a non-empty string of the base64url alphabet.
fn is_base64url(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The key thumbprint a DPoP-bound access token is bound to (`<random>.<jkt>`), or `None` for
/// a bearer token.
fn bound_jkt(token: &str) -> Option<&str> {
    let (_, jkt) = token.rsplit_once('.')?;
    (jkt.len() == JKT_LEN && is_base64url(jkt)).then_some(jkt)
}

/// The store key of a supplied DPoP nonce (kept apart from `c_nonce`s).
fn dpop_nonce_key(nonce: &str) -> String {
    format!("dpop:{nonce}")
}

/// The store key of a DPoP proof's `jti`, scoped to its key.
fn dpop_jti_key(jkt: &str, jti: &str) -> String {
    format!("dpop-jti:{}", sha256_hex(format!("{jkt} {jti}").as_bytes()))
}

/// True when `s` is a valid `event_description` (OpenID4VCI 1.0 §11.1: `%x20-21 / %x23-5B /
/// %x5D-7E`: no quote, no backslash).
fn description_ok(s: &str) -> bool {
    s.len() <= MAX_EVENT_DESCRIPTION
        && s.bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\')
}

/// Whether an access token may be used at `now`: unexpired, and unused or used for the
/// credential it issued (a wallet that lost the response retries, or notifies: see
/// `Issuer::reissue`).
fn token_usable(t: &AccessToken, now: i64) -> bool {
    now < t.expires && (!t.used || t.credential_id.is_some())
}

fn credential_response(text: &str, id: &str) -> Value {
    json!({"credentials": [{"credential": text}], "notification_id": id})
}

impl Issuer {
    /// The token endpoint (pre-authorized code grant) for a client that sends no DPoP proof:
    /// a bearer token.
    pub fn token(&self, form: &[(String, String)]) -> Result<Value, Error> {
        self.token_request(form, None)
    }

    /// The token endpoint (pre-authorized code grant). With a DPoP proof (the request's one
    /// `DPoP` header), checked before the code is looked at, the access token is bound to the
    /// proof's key and answered with `token_type: DPoP`; without, it is a bearer token.
    pub fn token_request(
        &self,
        form: &[(String, String)],
        dpop_proof: Option<&str>,
    ) -> Result<Value, Error> {
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let now = self.now();
        let bound = match dpop_proof {
            Some(p) => Some(self.check_dpop(p, DpopEndpoint::Token, None, None, now)?),
            None => None,
        };
        match get("grant_type") {
            Some(oid4vci::PRE_AUTHORIZED_GRANT) => {}
            Some(_) => return Err(Error::UnsupportedGrantType),
            None => return Err(Error::NoGrantType),
        }
        let code = get("pre-authorized_code").ok_or(Error::NoPreAuthorizedCode)?;
        let offer = self.store.offer_by_code(code)?.ok_or(Error::UnknownCode)?;
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
        let access = match &bound {
            Some(proof) => format!("{}.{}", random_token(32), proof.jkt),
            None => random_token(32),
        };
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
        let token_type = if bound.is_some() { "DPoP" } else { "Bearer" };
        Ok(json!({"access_token": access, "token_type": token_type, "expires_in": TOKEN_TTL}))
    }

    /// A fresh DPoP nonce (the `DPoP-Nonce` header): good once, for [`DPOP_NONCE_TTL`].
    pub fn dpop_nonce(&self) -> Result<String, Error> {
        let n = random_token(18);
        self.store
            .put_nonce(&dpop_nonce_key(&n), self.now() + DPOP_NONCE_TTL)?;
        Ok(n)
    }

    /// The URL of `endpoint`, as DPoP proofs name it.
    pub fn endpoint_url(&self, endpoint: DpopEndpoint) -> String {
        format!(
            "{}{}",
            self.config.public_url.trim_end_matches('/'),
            endpoint.path()
        )
    }

    /// Checks a DPoP proof for `endpoint` (RFC 9449 §4.3): the stateless checks of
    /// [`dpop::verify_proof`], the key against `bound_to` (the thumbprint an access token is
    /// bound to), a nonce this issuer supplied (taken once), and its `jti` not seen before.
    fn check_dpop(
        &self,
        proof: &str,
        endpoint: DpopEndpoint,
        access_token: Option<&str>,
        bound_to: Option<&str>,
        now: i64,
    ) -> Result<VerifiedProof, Error> {
        let url = self.endpoint_url(endpoint);
        let verified = dpop::verify_proof(
            proof,
            &dpop::Expected {
                method: "POST",
                url: &url,
                access_token,
                now,
                max_age: DPOP_MAX_AGE,
                max_future_skew: DPOP_MAX_SKEW,
            },
        )
        .map_err(Error::Dpop)?;
        if let Some(jkt) = bound_to {
            let same: bool =
                subtle::ConstantTimeEq::ct_eq(jkt.as_bytes(), verified.jkt.as_bytes()).into();
            if !same {
                return Err(Error::DpopKeyMismatch);
            }
        }
        let nonce = verified.nonce.as_deref().ok_or(Error::DpopNonceMissing)?;
        let jti = dpop_jti_key(&verified.jkt, &verified.jti);
        let jti_expires = now + DPOP_MAX_AGE + DPOP_MAX_SKEW;
        if self.store.take_nonce(&jti, now)? {
            // Seen before: kept as it was, and refused by name.
            self.store.put_nonce(&jti, jti_expires)?;
            return Err(Error::DpopReplay);
        }
        // The nonce is taken once, whichever instance answers: of two requests with one
        // proof, one at most gets past here.
        if !self.store.take_nonce(&dpop_nonce_key(nonce), now)? {
            return Err(Error::DpopNonceInvalid);
        }
        self.store.put_nonce(&jti, jti_expires)?;
        Ok(verified)
    }

    /// The access token a request presents, once its scheme and (with DPoP) its proof for
    /// `endpoint` are checked (see [`Issuer::access`]).
    fn presented_token<'a>(
        &self,
        presented: Presented<'a>,
        endpoint: DpopEndpoint,
        now: i64,
    ) -> Result<&'a str, Error> {
        Ok(match presented {
            Presented::Bearer(token) => {
                if bound_jkt(token).is_some() {
                    return Err(Error::DpopTokenAsBearer);
                }
                token
            }
            Presented::Dpop { token, proof } => {
                let jkt = bound_jkt(token).ok_or(Error::DpopTokenNotBound)?;
                let proof = proof.ok_or(Error::DpopProofMissing)?;
                self.check_dpop(proof, endpoint, Some(token), Some(jkt), now)?;
                token
            }
        })
    }

    /// The access token of a request to the credential or notification endpoint, as
    /// presented: a bearer token must not be DPoP-bound; a DPoP-bound one comes with the
    /// `DPoP` scheme and a proof for `endpoint` by its key over its hash. Answers the token's
    /// hash and record (unknown, expired or spent tokens are `InvalidToken`).
    fn access(
        &self,
        presented: Presented<'_>,
        endpoint: DpopEndpoint,
        now: i64,
    ) -> Result<(String, AccessToken), Error> {
        let access_token = self.presented_token(presented, endpoint, now)?;
        let token_hash = sha256_hex(access_token.as_bytes());
        let token = self
            .store
            .token(&token_hash)?
            .filter(|t| token_usable(t, now))
            .ok_or(Error::InvalidToken)?;
        Ok((token_hash, token))
    }

    /// [`Issuer::access`] for the credential endpoint: the token read with its application
    /// (one store read; `None` when the application is not stored).
    fn access_with_application(
        &self,
        presented: Presented<'_>,
        now: i64,
    ) -> Result<(String, AccessToken, Option<Application>), Error> {
        let access_token = self.presented_token(presented, DpopEndpoint::Credential, now)?;
        let token_hash = sha256_hex(access_token.as_bytes());
        let (token, app) = self
            .store
            .token_with_application(&token_hash)?
            .filter(|(t, _)| token_usable(t, now))
            .ok_or(Error::InvalidToken)?;
        Ok((token_hash, token, app))
    }

    /// The notification endpoint (OpenID4VCI 1.0 §11): the wallet says what became of the
    /// credential its access token obtained (`credential_accepted`, `credential_failure`,
    /// `credential_deleted`, with an optional `event_description`), recorded in the audit log
    /// as `wallet_notification`. Idempotent: the same event for the same token is recorded
    /// once and answered as a success again.
    pub fn notify(&self, presented: Presented<'_>, body: &Value) -> Result<(), Error> {
        let now = self.now();
        let (token_hash, token) = self.access(presented, DpopEndpoint::Notification, now)?;
        let bad = Error::InvalidNotificationRequest;
        let Value::Object(req) = body else {
            return Err(bad("the request is not a JSON object"));
        };
        let id = match req.get("notification_id") {
            Some(Value::String(id)) if !id.is_empty() && id.len() <= MAX_NOTIFICATION_ID => id,
            Some(_) => {
                return Err(bad(
                    "notification_id is not a string of the accepted length",
                ))
            }
            None => return Err(bad("no notification_id")),
        };
        let event =
            match req.get("event").and_then(Value::as_str) {
                Some(e) if NOTIFICATION_EVENTS.contains(&e) => e,
                Some(_) => return Err(bad(
                    "event is not credential_accepted, credential_failure or credential_deleted",
                )),
                None => return Err(bad("no event")),
            };
        let description = match req.get("event_description") {
            None => None,
            Some(Value::String(d)) if description_ok(d) => Some(d.as_str()),
            Some(_) => {
                return Err(bad(
                    "event_description is not printable ASCII without quotes or backslashes, of the accepted length",
                ))
            }
        };
        let credential_id = token.credential_id.as_deref();
        let same: bool = credential_id
            .is_some_and(|c| subtle::ConstantTimeEq::ct_eq(c.as_bytes(), id.as_bytes()).into());
        if !same {
            return Err(Error::InvalidNotificationId);
        }
        let seen = format!(
            "notified:{}",
            sha256_hex(format!("{token_hash} {event}").as_bytes())
        );
        if self.store.take_nonce(&seen, now)? {
            self.store.put_nonce(&seen, token.expires)?;
            return Ok(());
        }
        let mut details = json!({
            "credential_id": id,
            "application_id": token.application_id,
            "event": event,
        });
        if let Some(d) = description {
            details["event_description"] = d.into();
        }
        self.store.audit(now, "wallet_notification", details)?;
        self.store.put_nonce(&seen, token.expires)?;
        Ok(())
    }

    /// The nonce endpoint.
    pub fn nonce(&self) -> Result<Value, Error> {
        let n = random_token(18);
        self.store.put_nonce(&n, self.now() + NONCE_TTL)?;
        Ok(json!({"c_nonce": n}))
    }

    /// The nonce endpoint's answer and a fresh DPoP nonce (as [`Issuer::nonce`] and
    /// [`Issuer::dpop_nonce`]), stored together in one write.
    pub fn nonce_and_dpop_nonce(&self) -> Result<(Value, String), Error> {
        let (c, d) = (random_token(18), random_token(18));
        let now = self.now();
        let dpop = dpop_nonce_key(&d);
        self.store
            .put_nonces(&[(&c, now + NONCE_TTL), (&dpop, now + DPOP_NONCE_TTL)])?;
        Ok((json!({"c_nonce": c}), d))
    }

    /// The credential endpoint, with a bearer token.
    pub fn credential(&self, access_token: &str, body: &Value) -> Result<Value, Error> {
        self.credential_request(Presented::Bearer(access_token), body)
    }

    /// The credential endpoint, with the access token as presented (bearer, or DPoP with its
    /// proof).
    pub fn credential_request(
        &self,
        presented: Presented<'_>,
        body: &Value,
    ) -> Result<Value, Error> {
        let now = self.now();
        let (token_hash, token, app) = self.access_with_application(presented, now)?;
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
        // A c_nonce is base64url: the store's other one-time entries (DPoP nonces, proofs'
        // jtis, notifications) are named with a `:` and are never taken as one.
        if !is_base64url(nonce) || !self.store.take_nonce(nonce, now)? {
            return Err(Error::InvalidNonce);
        }
        // Read with the token; missing, it is refused here as a read of it would be.
        let app = app.ok_or_else(|| {
            Error::from(StoreError::NotFound {
                what: "application",
                id: token.application_id.clone(),
            })
        })?;
        // The link between the prerequisites and this issuance is the application: the access
        // token was granted for it, and its presentation's key-binding JWTs answered its own
        // request (nonce and audience). The new credential's key may be fresh: wallets that use
        // a key per credential for unlinkability must succeed, so no key equality is required.
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
            // The open list and the first free one of a few random indices, in one read.
            let candidates: [u64; DRAWN_AT_ONCE] = std::array::from_fn(|_| OsRng.next_u64());
            let (open, free) = self.store.draw_index(&candidates)?;
            if open.allocated < open.size {
                if let Some(idx) = free {
                    return Ok((open.list, idx));
                }
                for _ in DRAWN_AT_ONCE..64 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use bizcred_core::keys::{Algorithm, SecretKey, Signer};

    #[test]
    fn a_bound_token_names_its_thumbprint_and_a_bearer_token_none() {
        let jkt = SecretKey::generate(Algorithm::EdDSA, &mut OsRng)
            .public_key()
            .thumbprint();
        let bound = format!("{}.{jkt}", random_token(32));
        assert_eq!(bound_jkt(&bound), Some(jkt.as_str()));
        assert_eq!(bound_jkt(&random_token(32)), None);
        // Anything else after a dot is not a thumbprint.
        assert_eq!(bound_jkt("abc.def"), None);
        assert_eq!(bound_jkt(&format!("abc.{}", "*".repeat(JKT_LEN))), None);
        // The stores' keys of DPoP nonces, jtis and c_nonces never meet.
        assert_ne!(dpop_nonce_key("n"), "n");
        assert!(dpop_jti_key(&jkt, "j").starts_with("dpop-jti:"));
        assert_ne!(dpop_jti_key(&jkt, "j"), dpop_jti_key("other", "j"));
    }

    #[test]
    fn event_descriptions_are_the_specs_characters() {
        assert!(description_ok(
            "Could not store the Credential. Out of storage."
        ));
        assert!(description_ok(""));
        for bad in [
            "a \"quote\"",
            "back\\slash",
            "tab\there",
            "line\nbreak",
            "caf\u{e9}",
        ] {
            assert!(!description_ok(bad), "{bad:?}");
        }
        assert!(!description_ok(&"a".repeat(MAX_EVENT_DESCRIPTION + 1)));
    }

    #[test]
    fn the_advertised_binding_methods_are_what_key_proofs_may_name() {
        let url = "https://issuer.example";
        let key = SecretKey::generate(Algorithm::ES256, &mut OsRng);
        let pk = key.public_key();
        // A proof naming its key by `kid`, as a wallet using a DID would.
        let by_kid = |kid: &str| {
            let mut h = serde_json::Map::new();
            h.insert("typ".into(), oid4vci::PROOF_TYP.into());
            h.insert("kid".into(), kid.into());
            let claims = json!({"aud": url, "iat": 1_790_000_000, "nonce": "n"});
            bizcred_core::jws::sign(h, claims.to_string().as_bytes(), &key).expect("sign")
        };
        for method in super::super::offers::BINDING_METHODS {
            let proof = match method {
                "jwk" => oid4vci::proof_jwt(&key, url, Some("n"), 1_790_000_000).expect("sign"),
                "did:key" => by_kid(&bizcred_core::did::did_key(&pk)),
                "did:jwk" => by_kid(&format!("{}#0", bizcred_core::did::did_jwk(&pk))),
                other => panic!("{other} is advertised but not tested"),
            };
            let v = oid4vci::verify_proof_jwt(&proof, url, 1_790_000_000, 300)
                .unwrap_or_else(|e| panic!("{method}: {e}"));
            assert_eq!(v.key, pk, "{method}");
        }
    }
}
