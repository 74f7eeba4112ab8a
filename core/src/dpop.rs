//! OAuth 2.0 Demonstrating Proof of Possession (DPoP, RFC 9449): building a proof (a client)
//! and checking one (a server), with no I/O.
//!
//! A proof is a JWT (`typ: dpop+jwt`) signed with the key in its own `jwk` header, naming the
//! request it is attached to (`htm`, `htu`), when it was made (`iat`), a unique `jti`, the
//! server's `nonce` when the server supplied one, and (`ath`) the hash of the access token it
//! presents at a protected resource. [`verify_proof`] runs every check of RFC 9449 §4.3 that
//! needs no state; what needs state is the caller's: that the `nonce` is one it supplied and
//! has not expired, that the `jti` was not seen before, and that the key's thumbprint
//! ([`VerifiedProof::jkt`]) is the one the access token is bound to.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::b64;
use crate::jwk::Jwk;
use crate::jws::{self, Jws, JwsError};
use crate::keys::{Algorithm, AlgorithmError, PublicKey, SignError, Signer};
use crate::ReasonCode;

/// The proof's `typ`.
pub const DPOP_TYP: &str = "dpop+jwt";
/// Largest proof read.
pub const MAX_PROOF_LEN: usize = 8 * 1024;
/// Longest `jti` accepted.
pub const MAX_JTI_LEN: usize = 256;
/// Longest `nonce` accepted.
pub const MAX_NONCE_LEN: usize = 256;
/// The proof algorithms accepted (`dpop_signing_alg_values_supported`).
pub const ALGORITHMS: [Algorithm; 2] = [Algorithm::EdDSA, Algorithm::ES256];

/// Why a DPoP proof was refused. Every one is answered `invalid_dpop_proof` (RFC 9449 §5, §7.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DpopError {
    /// Not a single well-formed JWT of `typ` `dpop+jwt` with a public `jwk` header and the
    /// claims `jti`, `htm`, `htu`, `iat`.
    #[error("malformed DPoP proof: {0}")]
    Malformed(&'static str),
    /// The `alg` is refused (`none`, HMAC, or other than EdDSA and ES256).
    #[error("DPoP proof: {0}")]
    Algorithm(#[from] AlgorithmError),
    /// The signature does not verify with the header's key.
    #[error("the DPoP proof's signature does not verify with the key in its header")]
    BadSignature,
    /// `htm` is not the request's method.
    #[error("the DPoP proof is for another HTTP method (htm)")]
    MethodMismatch,
    /// `htu` is not the request's URL.
    #[error("the DPoP proof is for another URL (htu)")]
    UrlMismatch,
    /// `iat` is too old or too far ahead.
    #[error("the DPoP proof's iat is outside the accepted window")]
    IatOutsideWindow,
    /// `ath` is missing, or is not the hash of the access token presented.
    #[error("the DPoP proof's ath is not the hash of the access token presented")]
    AthMismatch,
}

impl DpopError {
    /// The stable reason code.
    pub fn code(&self) -> ReasonCode {
        match self {
            DpopError::Malformed(_) => ReasonCode::DpopProofMalformed,
            DpopError::Algorithm(e) => e.code(),
            DpopError::BadSignature => ReasonCode::DpopProofBadSignature,
            DpopError::MethodMismatch => ReasonCode::DpopHtmMismatch,
            DpopError::UrlMismatch => ReasonCode::DpopHtuMismatch,
            DpopError::IatOutsideWindow => ReasonCode::DpopIatOutsideWindow,
            DpopError::AthMismatch => ReasonCode::DpopAthMismatch,
        }
    }

    /// The OAuth error code (RFC 9449 §5 and §7.1).
    pub fn error(&self) -> &'static str {
        "invalid_dpop_proof"
    }
}

/// What the proof must be attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected<'a> {
    /// The request's HTTP method (`POST`).
    pub method: &'a str,
    /// The request's URL as the server is reached (its query and fragment are ignored).
    pub url: &'a str,
    /// The access token presented with the proof (at a protected resource): `ath` must be
    /// its hash. `None` at the token endpoint.
    pub access_token: Option<&'a str>,
    /// The time (Unix seconds).
    pub now: i64,
    /// Oldest accepted `iat`, in seconds before `now`.
    pub max_age: i64,
    /// Furthest accepted `iat`, in seconds after `now`.
    pub max_future_skew: i64,
}

/// A proof that passed every stateless check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    /// The key that signed it.
    pub key: PublicKey,
    /// The key's RFC 7638 thumbprint (what an access token is bound to: `cnf.jkt`).
    pub jkt: String,
    /// Its `jti`.
    pub jti: String,
    /// Its `nonce`, when it carries one (the caller checks it is one it supplied).
    pub nonce: Option<String>,
    /// Its `iat`.
    pub iat: i64,
}

/// `ath`: the base64url SHA-256 of the access token's ASCII text (RFC 9449 §4.2).
pub fn access_token_hash(access_token: &str) -> String {
    b64::encode(Sha256::digest(access_token.as_bytes()))
}

/// The URL as `htu` compares it (RFC 9449 §4.3 with RFC 3986 §6.2.2 and §6.2.3): without query
/// and fragment, scheme and host lower-cased, the scheme's default port dropped, an empty path
/// as `/`, percent-encodings in upper case. `None` for a URL that is not absolute `http(s)`.
pub fn normalize_htu(url: &str) -> Option<String> {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let url = &url[..end];
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => ":443",
        "http" => ":80",
        _ => return None,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let mut host = authority.to_ascii_lowercase();
    if host.ends_with(default_port) {
        host.truncate(host.len() - default_port.len());
    }
    let mut out = format!("{scheme}://{host}");
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '%' {
            for h in chars.by_ref().take(2) {
                out.push(h.to_ascii_uppercase());
            }
        }
    }
    Some(out)
}

/// Builds a DPoP proof for a `method` request to `url` (its query and fragment are left out of
/// `htu`), with the access token's hash when one is presented, the server's `nonce` when it
/// supplied one, and a unique `jti` the caller draws.
pub fn proof(
    signer: &impl Signer,
    method: &str,
    url: &str,
    access_token: Option<&str>,
    nonce: Option<&str>,
    jti: &str,
    iat: i64,
) -> Result<String, SignError> {
    let mut header = Map::new();
    header.insert("typ".into(), DPOP_TYP.into());
    header.insert(
        "jwk".into(),
        serde_json::to_value(signer.public_key().to_jwk()).unwrap_or(Value::Null),
    );
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let mut claims = serde_json::json!({"jti": jti, "htm": method, "htu": &url[..end], "iat": iat});
    if let Some(t) = access_token {
        claims["ath"] = access_token_hash(t).into();
    }
    if let Some(n) = nonce {
        claims["nonce"] = n.into();
    }
    jws::sign(header, claims.to_string().as_bytes(), signer)
}

/// Checks a DPoP proof against the request it came with (RFC 9449 §4.3, the stateless checks):
/// one JWT of `typ` `dpop+jwt`, `alg` EdDSA or ES256, signed by the public key of its `jwk`
/// header, with `jti`, `htm` and `htu` naming this request, `iat` within the window, and `ath`
/// the hash of the access token when one is presented. The nonce, the `jti`'s uniqueness and
/// the key's binding to the access token are the caller's to check.
pub fn verify_proof(proof: &str, expected: &Expected<'_>) -> Result<VerifiedProof, DpopError> {
    let bad = DpopError::Malformed;
    if proof.len() > MAX_PROOF_LEN {
        return Err(bad("larger than any DPoP proof"));
    }
    let jws = Jws::decode(proof).map_err(|_| bad("not a compact JWS"))?;
    if jws.header_str("typ") != Some(DPOP_TYP) {
        return Err(bad("typ is not dpop+jwt"));
    }
    let alg = jws.algorithm().map_err(|e| match e {
        JwsError::Algorithm(a) => DpopError::Algorithm(a),
        _ => bad("no alg"),
    })?;
    let jwk = jws
        .header
        .get("jwk")
        .ok_or(bad("no jwk header"))?
        .as_object()
        .ok_or(bad("the jwk header is not a JSON object"))?;
    if jwk.contains_key("d") {
        return Err(bad("the jwk header holds a private key"));
    }
    let jwk: Jwk = serde_json::from_value(Value::Object(jwk.clone()))
        .map_err(|_| bad("the jwk header is not a JWK"))?;
    let key = PublicKey::from_jwk(&jwk)
        .map_err(|_| bad("the jwk header is not an Ed25519 or P-256 public key"))?;
    if key.algorithm() != alg {
        return Err(bad("alg is not the algorithm of the jwk header's key"));
    }
    jws.verify(&key).map_err(|e| match e {
        JwsError::BadSignature => DpopError::BadSignature,
        JwsError::UnknownCritical => bad("critical header parameters not understood"),
        _ => bad("not a verifiable JWS"),
    })?;
    let claims = jws
        .claims()
        .map_err(|_| bad("the payload is not a JSON object"))?;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let jti = text("jti").ok_or(bad("no jti"))?;
    if jti.is_empty() || jti.len() > MAX_JTI_LEN {
        return Err(bad("jti is empty or too long"));
    }
    let htm = text("htm").ok_or(bad("no htm"))?;
    let htu = text("htu").ok_or(bad("no htu"))?;
    let iat = match claims.get("iat") {
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .ok_or(bad("iat is not a time"))?,
        _ => return Err(bad("no iat")),
    };
    let nonce = match claims.get("nonce") {
        None => None,
        Some(Value::String(n)) if !n.is_empty() && n.len() <= MAX_NONCE_LEN => Some(n.clone()),
        Some(_) => return Err(bad("nonce is not a string of the accepted length")),
    };
    if htm != expected.method {
        return Err(DpopError::MethodMismatch);
    }
    match (normalize_htu(htu), normalize_htu(expected.url)) {
        (Some(a), Some(b)) if a == b => {}
        _ => return Err(DpopError::UrlMismatch),
    }
    if iat < expected.now.saturating_sub(expected.max_age)
        || iat > expected.now.saturating_add(expected.max_future_skew)
    {
        return Err(DpopError::IatOutsideWindow);
    }
    if let Some(token) = expected.access_token {
        if text("ath") != Some(access_token_hash(token).as_str()) {
            return Err(DpopError::AthMismatch);
        }
    }
    Ok(VerifiedProof {
        jkt: key.thumbprint(),
        key,
        jti: jti.to_owned(),
        nonce,
        iat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SecretKey;
    use rand_core::OsRng;

    const URL: &str = "https://issuer.example/credential";
    const NOW: i64 = 1_790_000_000;

    fn expected(token: Option<&str>) -> Expected<'_> {
        Expected {
            method: "POST",
            url: URL,
            access_token: token,
            now: NOW,
            max_age: 300,
            max_future_skew: 60,
        }
    }

    /// A proof with `header` and `claims` edited after the usual ones were set.
    fn forged(
        key: &SecretKey,
        edit_header: impl FnOnce(&mut Map<String, Value>),
        claims: Value,
    ) -> String {
        let mut header = Map::new();
        header.insert("typ".into(), DPOP_TYP.into());
        header.insert(
            "jwk".into(),
            serde_json::to_value(key.public_key().to_jwk()).expect("jwk"),
        );
        edit_header(&mut header);
        jws::sign(header, claims.to_string().as_bytes(), key).expect("sign")
    }

    #[test]
    fn both_algorithms_verify_and_name_their_key() {
        for alg in ALGORITHMS {
            let k = SecretKey::generate(alg, &mut OsRng);
            let p = proof(&k, "POST", URL, Some("tok"), Some("n1"), "j1", NOW).expect("sign");
            let v = verify_proof(&p, &expected(Some("tok"))).expect("verifies");
            assert_eq!(v.key, k.public_key());
            assert_eq!(v.jkt, k.public_key().thumbprint());
            assert_eq!(v.jti, "j1");
            assert_eq!(v.nonce.as_deref(), Some("n1"));
            assert_eq!(v.iat, NOW);
            // At the token endpoint there is no access token: ath is not asked for.
            let p = proof(&k, "POST", URL, None, None, "j2", NOW).expect("sign");
            assert_eq!(verify_proof(&p, &expected(None)).expect("ok").nonce, None);
        }
    }

    #[test]
    fn refusals_have_their_codes() {
        let k = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        let other = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        let code = |p: &str, token: Option<&str>| {
            verify_proof(p, &expected(token))
                .map(|_| ())
                .map_err(|e| e.code())
        };
        // Wrong method, wrong URL, stale, future, ath of another token, ath missing.
        let p = proof(&k, "GET", URL, None, None, "j", NOW).expect("sign");
        assert_eq!(code(&p, None), Err(ReasonCode::DpopHtmMismatch));
        let p = proof(
            &k,
            "POST",
            "https://issuer.example/token",
            None,
            None,
            "j",
            NOW,
        )
        .expect("sign");
        assert_eq!(code(&p, None), Err(ReasonCode::DpopHtuMismatch));
        let p = proof(&k, "POST", URL, None, None, "j", NOW - 301).expect("sign");
        assert_eq!(code(&p, None), Err(ReasonCode::DpopIatOutsideWindow));
        let p = proof(&k, "POST", URL, None, None, "j", NOW + 61).expect("sign");
        assert_eq!(code(&p, None), Err(ReasonCode::DpopIatOutsideWindow));
        let p = proof(&k, "POST", URL, Some("other"), None, "j", NOW).expect("sign");
        assert_eq!(code(&p, Some("tok")), Err(ReasonCode::DpopAthMismatch));
        let p = proof(&k, "POST", URL, None, None, "j", NOW).expect("sign");
        assert_eq!(code(&p, Some("tok")), Err(ReasonCode::DpopAthMismatch));
        // Signed by another key than the header's.
        let claims = serde_json::json!({"jti": "j", "htm": "POST", "htu": URL, "iat": NOW});
        let p = forged(
            &other,
            |h| {
                h.insert(
                    "jwk".into(),
                    serde_json::to_value(k.public_key().to_jwk()).expect("jwk"),
                );
            },
            claims.clone(),
        );
        assert_eq!(code(&p, None), Err(ReasonCode::DpopProofBadSignature));
        // A tampered payload.
        let good = proof(&k, "POST", URL, None, None, "j", NOW).expect("sign");
        let parts: Vec<&str> = good.split('.').collect();
        let changed = b64::encode(
            serde_json::json!({"jti": "j", "htm": "POST", "htu": URL, "iat": NOW + 1}).to_string(),
        );
        let p = format!("{}.{changed}.{}", parts[0], parts[2]);
        assert_eq!(code(&p, None), Err(ReasonCode::DpopProofBadSignature));
        // Wrong typ, no jwk, a private jwk, a key proof instead, missing claims, alg none.
        let p = forged(
            &k,
            |h| {
                h.insert("typ".into(), "JWT".into());
            },
            claims.clone(),
        );
        assert_eq!(code(&p, None), Err(ReasonCode::DpopProofMalformed));
        let p = forged(
            &k,
            |h| {
                h.remove("jwk");
            },
            claims.clone(),
        );
        assert_eq!(code(&p, None), Err(ReasonCode::DpopProofMalformed));
        let p = forged(
            &k,
            |h| {
                h.insert(
                    "jwk".into(),
                    serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "AA", "d": "AA"}),
                );
            },
            claims.clone(),
        );
        assert_eq!(code(&p, None), Err(ReasonCode::DpopProofMalformed));
        let p = crate::oid4vci::proof_jwt(&k, URL, None, NOW).expect("sign");
        assert_eq!(code(&p, None), Err(ReasonCode::DpopProofMalformed));
        for missing in ["jti", "htm", "htu", "iat"] {
            let mut c = claims.clone();
            c.as_object_mut().expect("o").remove(missing);
            let p = forged(&k, |_| {}, c);
            assert_eq!(
                code(&p, None),
                Err(ReasonCode::DpopProofMalformed),
                "{missing}"
            );
        }
        // `sign` sets alg from the signer: the unsigned form is written by hand.
        let none = format!(
            "{}.{}.",
            b64::encode(
                serde_json::json!({"typ": DPOP_TYP, "alg": "none", "jwk": k.public_key().to_jwk()})
                    .to_string()
            ),
            b64::encode(claims.to_string())
        );
        assert_eq!(code(&none, None), Err(ReasonCode::AlgNone));
        // An ES256 alg over an Ed25519 key.
        let hdr = b64::encode(
            serde_json::json!({"typ": DPOP_TYP, "alg": "ES256", "jwk": k.public_key().to_jwk()})
                .to_string(),
        );
        let p = format!(
            "{hdr}.{}.{}",
            b64::encode(claims.to_string()),
            b64::encode([0u8; 64])
        );
        assert_eq!(code(&p, None), Err(ReasonCode::DpopProofMalformed));
        // Not a JWS, too large.
        assert_eq!(code("a.b", None), Err(ReasonCode::DpopProofMalformed));
        assert_eq!(
            code(&"a".repeat(MAX_PROOF_LEN + 1), None),
            Err(ReasonCode::DpopProofMalformed)
        );
    }

    #[test]
    fn htu_is_compared_normalized_without_query_or_fragment() {
        let k = SecretKey::generate(Algorithm::ES256, &mut OsRng);
        for htu in [
            "https://issuer.example/credential",
            "HTTPS://Issuer.Example:443/credential",
            "https://issuer.example/credential?x=1#f",
        ] {
            let p = proof(&k, "POST", htu, None, None, "j", NOW).expect("sign");
            verify_proof(&p, &expected(None)).unwrap_or_else(|e| panic!("{htu}: {e}"));
        }
        assert_eq!(
            normalize_htu("http://localhost:80"),
            Some("http://localhost/".into())
        );
        assert_eq!(
            normalize_htu("http://localhost:8080/a%2fb"),
            Some("http://localhost:8080/a%2Fb".into())
        );
        for bad in [
            "ftp://x/y",
            "issuer.example/credential",
            "https://u@x/y",
            "https:///y",
        ] {
            assert_eq!(normalize_htu(bad), None, "{bad}");
        }
        // The same path on another port or host is another URL.
        let p = proof(
            &k,
            "POST",
            "https://issuer.example:8443/credential",
            None,
            None,
            "j",
            NOW,
        )
        .expect("sign");
        assert_eq!(
            verify_proof(&p, &expected(None)).map(|_| ()),
            Err(DpopError::UrlMismatch)
        );
    }

    #[test]
    fn the_ath_is_rfc_9449s() {
        // RFC 9449 §7.1's example: the access token and its ath.
        assert_eq!(
            access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }
}
