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

use crate::json_text::ObjectWriter;
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
    for k in req.claims.keys() {
        if k == "iat" || CLEAR_CLAIMS.contains(&k.as_str()) {
            return Err(SdJwtError::ClaimNameCollision(k.clone()));
        }
    }
    // The registered claims are written straight to the payload's text, then the business
    // claims are concealed after them (no intermediate JSON object).
    let bad = |_| SdJwtError::Malformed("a registered claim cannot be serialized as JSON");
    let mut payload = ObjectWriter::with_capacity(1536);
    payload.member("iss", req.issuer).map_err(bad)?;
    payload.member("iat", &req.iat).map_err(bad)?;
    if let Some(nbf) = req.nbf {
        payload.member("nbf", &nbf).map_err(bad)?;
    }
    if let Some(exp) = req.exp {
        payload.member("exp", &exp).map_err(bad)?;
    }
    payload.member("vct", req.vct).map_err(bad)?;
    if let Some(k) = req.holder_key {
        payload
            .member("cnf", &Cnf { jwk: k.to_jwk() })
            .map_err(bad)?;
    }
    if let Some(s) = &req.status {
        payload
            .member("status", &StatusClaim { status_list: s })
            .map_err(bad)?;
    }
    let mut header = ObjectWriter::with_capacity(128);
    header.member("typ", TYP).map_err(bad)?;
    if let Some(kid) = req.kid {
        header.member("kid", kid).map_err(bad)?;
    }
    header
        .member("alg", signer.algorithm().as_str())
        .map_err(bad)?;
    sd_jwt::issue_serialized(
        &header.finish(),
        payload,
        req.claims,
        &req.disclosable,
        req.decoys,
        signer,
        rng,
    )
}

#[derive(Serialize)]
struct Cnf {
    jwk: Jwk,
}

#[derive(Serialize)]
struct StatusClaim<'a> {
    status_list: &'a StatusReference,
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
