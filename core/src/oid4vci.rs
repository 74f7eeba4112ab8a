//! OpenID for Verifiable Credential Issuance 1.0 (final) messages that need no network:
//! credential offer URIs, and the `jwt` key proof (`typ: openid4vci-proof+jwt`).

use crate::ReasonCode;
use serde_json::{Map, Value};

use crate::jwk::Jwk;
use crate::jws::{self, Jws, JwsError};
use crate::keys::{PublicKey, SignError, Signer};

/// The key proof `typ`.
pub const PROOF_TYP: &str = "openid4vci-proof+jwt";
/// The pre-authorized code grant type.
pub const PRE_AUTHORIZED_GRANT: &str = "urn:ietf:params:oauth:grant-type:pre-authorized_code";
/// The credential offer URI scheme.
pub const OFFER_SCHEME: &str = "openid-credential-offer://";
/// Largest offer URI or offer object we read.
pub const MAX_OFFER_LEN: usize = 64 * 1024;

/// A credential offer, by value or by reference.
#[derive(Debug, Clone, PartialEq)]
pub enum OfferRef {
    /// `credential_offer=<json>`.
    ByValue(Value),
    /// `credential_offer_uri=<url>`.
    ByReference(String),
}

/// Why an offer URI was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a credential offer: {0}")]
pub struct OfferError(pub &'static str);

impl OfferError {
    /// The stable reason code.
    pub fn code(&self) -> ReasonCode {
        ReasonCode::OfferMalformed
    }
}

/// Parses `openid-credential-offer://?credential_offer=...` or `...?credential_offer_uri=...`
/// (also accepts an `https` URL with the same query).
pub fn parse_offer_uri(uri: &str) -> Result<OfferRef, OfferError> {
    if uri.len() > MAX_OFFER_LEN {
        return Err(OfferError("too long"));
    }
    let query = uri
        .split_once('?')
        .map(|(_, q)| q)
        .ok_or(OfferError("no query"))?;
    let mut by_value = None;
    let mut by_ref = None;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "credential_offer" => by_value = Some(v.into_owned()),
            "credential_offer_uri" => by_ref = Some(v.into_owned()),
            _ => {}
        }
    }
    match (by_value, by_ref) {
        (Some(_), Some(_)) => Err(OfferError("both credential_offer and credential_offer_uri")),
        (Some(v), None) => {
            let offer: Value =
                serde_json::from_str(&v).map_err(|_| OfferError("credential_offer is not JSON"))?;
            check_offer(&offer)?;
            Ok(OfferRef::ByValue(offer))
        }
        (None, Some(u))
            if u.starts_with("https://")
                || u.starts_with("http://localhost")
                || u.starts_with("http://127.0.0.1") =>
        {
            Ok(OfferRef::ByReference(u))
        }
        (None, Some(_)) => Err(OfferError("credential_offer_uri must be https")),
        (None, None) => Err(OfferError(
            "neither credential_offer nor credential_offer_uri",
        )),
    }
}

/// Checks the members an offer must have.
pub fn check_offer(offer: &Value) -> Result<(), OfferError> {
    offer
        .get("credential_issuer")
        .and_then(Value::as_str)
        .ok_or(OfferError("no credential_issuer"))?;
    let ids = offer
        .get("credential_configuration_ids")
        .and_then(Value::as_array)
        .ok_or(OfferError("no credential_configuration_ids"))?;
    if ids.is_empty() || ids.iter().any(|i| !i.is_string()) {
        return Err(OfferError(
            "credential_configuration_ids must be a non-empty array of strings",
        ));
    }
    Ok(())
}

/// An offer URI carrying the offer by value.
pub fn offer_uri_by_value(offer: &Value) -> String {
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("credential_offer", &offer.to_string())
        .finish();
    format!("{OFFER_SCHEME}?{q}")
}

/// An offer URI carrying the offer by reference.
pub fn offer_uri_by_reference(url: &str) -> String {
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("credential_offer_uri", url)
        .finish();
    format!("{OFFER_SCHEME}?{q}")
}

/// Builds a key proof JWT: header `typ`, `alg`, `jwk`; claims `aud`, `iat`, `nonce`.
pub fn proof_jwt(
    signer: &impl Signer,
    audience: &str,
    nonce: Option<&str>,
    iat: i64,
) -> Result<String, SignError> {
    let mut header = Map::new();
    header.insert("typ".into(), PROOF_TYP.into());
    header.insert(
        "jwk".into(),
        serde_json::to_value(signer.public_key().to_jwk()).unwrap_or(Value::Null),
    );
    let mut claims = serde_json::json!({"aud": audience, "iat": iat});
    if let Some(n) = nonce {
        claims["nonce"] = n.into();
    }
    jws::sign(header, claims.to_string().as_bytes(), signer)
}

/// Why a key proof was refused; `error()` is the OpenID4VCI error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// Malformed, wrong `typ`, algorithm, key, audience or time.
    #[error("invalid key proof: {0}")]
    Invalid(String),
    /// No nonce, where the issuer requires one.
    #[error("the key proof carries no c_nonce")]
    MissingNonce,
}

impl ProofError {
    /// The stable reason code.
    pub fn code(&self) -> ReasonCode {
        match self {
            ProofError::Invalid(_) => ReasonCode::KeyProofInvalid,
            ProofError::MissingNonce => ReasonCode::KeyProofNoNonce,
        }
    }
}

impl ProofError {
    /// The OpenID4VCI error code.
    pub fn error(&self) -> &'static str {
        "invalid_proof"
    }
}

/// A verified key proof: the key to bind, and the nonce it carries (the issuer checks it).
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedProof {
    /// The holder key.
    pub key: PublicKey,
    /// The `nonce` claim.
    pub nonce: Option<String>,
}

/// Verifies a key proof JWT for `issuer` at `now` (`iat` within `max_age` seconds, at most 60
/// seconds ahead). The key comes from the `jwk` header, or a `kid` that is a did:key/did:jwk
/// DID URL.
pub fn verify_proof_jwt(
    jwt: &str,
    issuer: &str,
    now: i64,
    max_age: i64,
) -> Result<VerifiedProof, ProofError> {
    let bad = |m: &str| ProofError::Invalid(m.to_owned());
    if jwt.len() > 16 * 1024 {
        return Err(bad("too large"));
    }
    let jws = Jws::decode(jwt).map_err(|e| ProofError::Invalid(e.to_string()))?;
    if jws.header_str("typ") != Some(PROOF_TYP) {
        return Err(bad("typ is not openid4vci-proof+jwt"));
    }
    let key = match (
        jws.header.get("jwk"),
        jws.header_str("kid"),
        jws.header.get("x5c"),
    ) {
        (Some(jwk), None, None) => {
            if jwk.get("d").is_some() {
                return Err(bad("the jwk header holds a private key"));
            }
            let jwk: Jwk =
                serde_json::from_value(jwk.clone()).map_err(|_| bad("jwk header is not a JWK"))?;
            PublicKey::from_jwk(&jwk).map_err(|e| ProofError::Invalid(e.to_string()))?
        }
        (None, Some(kid), None) => {
            crate::did::resolve_key(kid).map_err(|e| ProofError::Invalid(e.to_string()))?
        }
        _ => return Err(bad("exactly one of jwk or kid must identify the key")),
    };
    jws.verify(&key)
        .map_err(|e: JwsError| ProofError::Invalid(e.to_string()))?;
    let claims = jws
        .claims()
        .map_err(|e| ProofError::Invalid(e.to_string()))?;
    if claims.get("aud").and_then(Value::as_str) != Some(issuer) {
        return Err(bad("aud is not this credential issuer"));
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or_else(|| bad("no iat"))?;
    if iat > now + 60 || now - iat > max_age {
        return Err(bad("iat is outside the accepted window"));
    }
    let nonce = claims
        .get("nonce")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(VerifiedProof { key, nonce })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Algorithm, SecretKey};
    use rand_core::OsRng;

    #[test]
    fn offers_and_proofs() {
        let offer = serde_json::json!({"credential_issuer": "http://localhost:8081", "credential_configuration_ids": ["x"], "grants": {PRE_AUTHORIZED_GRANT: {"pre-authorized_code": "abc", "tx_code": {"length": 6}}}});
        assert_eq!(
            parse_offer_uri(&offer_uri_by_value(&offer)),
            Ok(OfferRef::ByValue(offer))
        );
        assert_eq!(
            parse_offer_uri(&offer_uri_by_reference("https://x.test/o/1")),
            Ok(OfferRef::ByReference("https://x.test/o/1".into()))
        );
        assert!(parse_offer_uri(
            "openid-credential-offer://?credential_offer_uri=http%3A%2F%2Fevil.test%2Fo"
        )
        .is_err());
        assert!(parse_offer_uri("openid-credential-offer://?credential_offer=%7B%7D").is_err());
        assert!(parse_offer_uri("nonsense").is_err());
        for alg in [Algorithm::EdDSA, Algorithm::ES256] {
            let k = SecretKey::generate(alg, &mut OsRng);
            let jwt = proof_jwt(&k, "http://localhost:8081", Some("n1"), 1000).expect("sign");
            let v = verify_proof_jwt(&jwt, "http://localhost:8081", 1010, 300).expect("verify");
            assert_eq!(v.key, k.public_key());
            assert_eq!(v.nonce.as_deref(), Some("n1"));
            assert!(verify_proof_jwt(&jwt, "http://localhost:9999", 1010, 300).is_err());
            assert!(verify_proof_jwt(&jwt, "http://localhost:8081", 2000, 300).is_err());
        }
    }
}
