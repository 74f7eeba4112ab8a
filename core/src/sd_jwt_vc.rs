//! SD-JWT VC (`typ: dc+sd-jwt`): the credential profile of SD-JWT used for all four bizcred
//! credential types.
//!
//! Registered claims `iss`, `nbf`, `exp`, `cnf`, `vct`, `vct#integrity` and `status` always
//! stay in the clear; business claims are selectively disclosable, and personal data
//! (directors) element by element. Time is an input, never read from a clock.

use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use bizcred_schemas::CredentialType;

use crate::jwk::Jwk;
use crate::keys::{PublicKey, Signer};
use crate::sd_jwt::{self, ClaimPath, KbExpectations, PathSegment, SdJwt, SdJwtError};

/// The SD-JWT VC media type / JOSE `typ`.
pub const TYP: &str = "dc+sd-jwt";

/// Registered claims that must never be selectively disclosable (SD-JWT VC).
pub const CLEAR_CLAIMS: [&str; 7] = ["iss", "nbf", "exp", "cnf", "vct", "vct#integrity", "status"];

/// A Token Status List reference (`status.status_list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReference {
    /// Index of this credential in the list.
    pub idx: u64,
    /// URI of the Status List Token.
    pub uri: String,
}

/// What an issuer puts into a credential.
#[derive(Debug, Clone)]
pub struct Issuance<'a> {
    /// The credential type (`vct`).
    pub vct: &'a str,
    /// The issuer identifier (`iss`), a DID for bizcred issuers.
    pub issuer: &'a str,
    /// The header `kid` (a DID URL naming the signing key).
    pub kid: Option<&'a str>,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Not before.
    pub nbf: Option<i64>,
    /// Expires.
    pub exp: Option<i64>,
    /// The holder's key, bound through `cnf.jwk`.
    pub holder_key: Option<&'a PublicKey>,
    /// Token Status List entry.
    pub status: Option<StatusReference>,
    /// The business claims.
    pub claims: Map<String, Value>,
    /// Paths of the claims to make selectively disclosable.
    pub disclosable: Vec<ClaimPath>,
    /// Decoy digests at the top level.
    pub decoys: usize,
}

/// The disclosable paths bizcred uses by default for a credential type: every business
/// claim at the top level, and each element of arrays the type metadata marks `sd: always`
/// (the directors of a corporation).
pub fn default_disclosable(ty: CredentialType, claims: &Map<String, Value>) -> Vec<ClaimPath> {
    let mut paths: Vec<ClaimPath> = claims
        .keys()
        .filter(|k| {
            !CLEAR_CLAIMS.contains(&k.as_str()) && k.as_str() != "iat" && k.as_str() != "sub"
        })
        .map(|k| vec![PathSegment::Key(k.clone())])
        .collect();
    for c in &ty.metadata().claims {
        if c.sd.as_deref() == Some("always") {
            if let Some(p) = sd_jwt::claim_path(&Value::Array(c.path.clone())) {
                let top_present =
                    matches!(p.first(), Some(PathSegment::Key(k)) if claims.contains_key(k));
                if top_present && !paths.contains(&p) {
                    paths.push(p);
                }
            }
        }
    }
    paths
}

/// Issues an SD-JWT VC.
pub fn issue(
    req: Issuance<'_>,
    signer: &impl Signer,
    rng: &mut impl CryptoRngCore,
) -> Result<SdJwt, SdJwtError> {
    for p in &req.disclosable {
        if let [PathSegment::Key(k)] = p.as_slice() {
            if CLEAR_CLAIMS.contains(&k.as_str()) {
                return Err(SdJwtError::RegisteredClaimDisclosable(k.clone()));
            }
        }
    }
    let mut payload = Map::new();
    payload.insert("iss".into(), req.issuer.into());
    payload.insert("iat".into(), req.iat.into());
    if let Some(nbf) = req.nbf {
        payload.insert("nbf".into(), nbf.into());
    }
    if let Some(exp) = req.exp {
        payload.insert("exp".into(), exp.into());
    }
    payload.insert("vct".into(), req.vct.into());
    if let Some(k) = req.holder_key {
        payload.insert("cnf".into(), serde_json::json!({ "jwk": k.to_jwk() }));
    }
    if let Some(s) = &req.status {
        payload.insert("status".into(), serde_json::json!({ "status_list": s }));
    }
    for (k, v) in req.claims {
        if payload.contains_key(&k) || CLEAR_CLAIMS.contains(&k.as_str()) {
            return Err(SdJwtError::ClaimNameCollision(k));
        }
        payload.insert(k, v);
    }
    let mut header = Map::new();
    header.insert("typ".into(), TYP.into());
    if let Some(kid) = req.kid {
        header.insert("kid".into(), kid.into());
    }
    sd_jwt::issue(header, payload, &req.disclosable, req.decoys, signer, rng)
}

/// How to verify an SD-JWT VC.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions<'a> {
    /// The verifier's time, Unix seconds.
    pub now: i64,
    /// Tolerated clock skew for `exp`, `nbf` and `iat`, in seconds.
    pub clock_skew: i64,
    /// Key binding to require (a presentation), or `None` (a credential as issued).
    pub key_binding: Option<KbExpectations<'a>>,
}

/// A verified SD-JWT VC: signature, disclosures, validity times and (if asked) key binding
/// all checked.
#[derive(Debug, Clone)]
pub struct VerifiedCredential {
    /// The issuer-signed JWT header.
    pub header: Map<String, Value>,
    /// `iss`.
    pub issuer: String,
    /// Header `kid`.
    pub kid: Option<String>,
    /// `vct`.
    pub vct: String,
    /// `iat`.
    pub iat: Option<i64>,
    /// `exp`.
    pub exp: Option<i64>,
    /// The holder key from `cnf.jwk`.
    pub holder_key: Option<PublicKey>,
    /// The Token Status List entry.
    pub status: Option<StatusReference>,
    /// All disclosed claims, registered claims included.
    pub claims: Map<String, Value>,
}

impl VerifiedCredential {
    /// The disclosed business claims (registered claims removed).
    pub fn business_claims(&self) -> Map<String, Value> {
        self.claims
            .iter()
            .filter(|(k, _)| {
                !CLEAR_CLAIMS.contains(&k.as_str()) && !matches!(k.as_str(), "iat" | "sub" | "jti")
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// The holder key bound in a payload's `cnf.jwk`.
pub fn holder_key(payload: &Map<String, Value>) -> Result<Option<PublicKey>, SdJwtError> {
    holder_key_cached(payload, &mut HolderKeys::default())
}

/// Holder keys already decoded, so that credentials bound to one key (a presentation of
/// several) decode it once.
#[derive(Debug, Default)]
pub struct HolderKeys(Vec<(Jwk, PublicKey)>);

fn holder_key_cached(
    payload: &Map<String, Value>,
    cache: &mut HolderKeys,
) -> Result<Option<PublicKey>, SdJwtError> {
    let Some(cnf) = payload.get("cnf") else {
        return Ok(None);
    };
    let jwk: Jwk = cnf
        .get("jwk")
        .cloned()
        .and_then(|j| serde_json::from_value(j).ok())
        .ok_or(SdJwtError::NoHolderKey)?;
    if let Some((_, k)) = cache.0.iter().find(|(j, _)| *j == jwk) {
        return Ok(Some(k.clone()));
    }
    let key = PublicKey::from_jwk(&jwk).map_err(|_| SdJwtError::NoHolderKey)?;
    if cache.0.len() < 16 {
        cache.0.push((jwk, key.clone()));
    }
    Ok(Some(key))
}

/// Verifies an SD-JWT VC (issued, or presented with a KB-JWT) with the issuer's key.
pub fn verify(
    sd: &SdJwt,
    issuer_key: &PublicKey,
    opts: &VerifyOptions<'_>,
) -> Result<VerifiedCredential, SdJwtError> {
    let jws = crate::jws::Jws::decode(&sd.jwt)?;
    let signed = jws.claims()?;
    verify_decoded(
        sd,
        jws,
        signed,
        issuer_key,
        opts,
        &mut HolderKeys::default(),
    )
}

/// [`verify`] for a caller that already decoded the issuer-signed JWT (and its payload) to
/// find the issuer's key: nothing is parsed twice.
pub fn verify_decoded(
    sd: &SdJwt,
    jws: crate::jws::Jws,
    signed: Map<String, Value>,
    issuer_key: &PublicKey,
    opts: &VerifyOptions<'_>,
    holder_keys: &mut HolderKeys,
) -> Result<VerifiedCredential, SdJwtError> {
    jws.verify(issuer_key)?;
    let typ = jws.header_str("typ").unwrap_or("");
    if typ != TYP {
        return Err(SdJwtError::WrongType(typ.chars().take(64).collect()));
    }
    // What must be in the clear is read from the signed payload before disclosures apply.
    let in_clear: Vec<&str> = CLEAR_CLAIMS
        .iter()
        .copied()
        .filter(|k| signed.contains_key(*k))
        .collect();
    let text = |k: &str| signed.get(k).and_then(Value::as_str).map(str::to_owned);
    let (issuer, vct) = (text("iss"), text("vct"));
    let holder = holder_key_cached(&signed, holder_keys)?;
    let status = match signed.get("status") {
        None => None,
        Some(s) => Some(
            s.get("status_list")
                .cloned()
                .and_then(|l| serde_json::from_value(l).ok())
                .ok_or(SdJwtError::Malformed(
                    "status.status_list is not {idx, uri}",
                ))?,
        ),
    };
    let claims = sd_jwt::process(signed, &sd.disclosures)?;
    for k in CLEAR_CLAIMS {
        if claims.contains_key(k) && !in_clear.contains(&k) {
            return Err(SdJwtError::RegisteredClaimDisclosable(k.to_owned()));
        }
    }
    let issuer = issuer.ok_or(SdJwtError::MissingClaim("iss"))?;
    let vct = vct.ok_or(SdJwtError::MissingClaim("vct"))?;
    let int = |k: &str| -> Result<Option<i64>, SdJwtError> {
        match claims.get(k) {
            None => Ok(None),
            Some(x) => x
                .as_i64()
                .map(Some)
                .ok_or(SdJwtError::Malformed("a time claim is not an integer")),
        }
    };
    let (iat, nbf, exp) = (int("iat")?, int("nbf")?, int("exp")?);
    let now = opts.now;
    if let Some(exp) = exp {
        if now >= exp.saturating_add(opts.clock_skew) {
            return Err(SdJwtError::Expired { exp, now });
        }
    }
    if let Some(nbf) = nbf {
        if now.saturating_add(opts.clock_skew) < nbf {
            return Err(SdJwtError::NotYetValid { nbf, now });
        }
    }
    if let Some(iat) = iat {
        if iat > now.saturating_add(opts.clock_skew) {
            return Err(SdJwtError::IssuedInFuture { iat, now });
        }
    }
    if let Some(kb) = &opts.key_binding {
        let key = holder.as_ref().ok_or(SdJwtError::NoHolderKey)?;
        sd_jwt::verify_key_binding(sd, key, kb)?;
    }
    let header = jws.header;
    Ok(VerifiedCredential {
        kid: header.get("kid").and_then(Value::as_str).map(str::to_owned),
        header,
        issuer,
        vct,
        iat,
        exp,
        holder_key: holder,
        status,
        claims,
    })
}
