//! Compact JWS (RFC 7515) with the algorithms of [`Algorithm`] only.

use crate::ReasonCode;
use serde_json::{Map, Value};

use crate::b64;
use crate::keys::{Algorithm, AlgorithmError, PublicKey, SignError, Signer};

/// Why a JWS was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwsError {
    /// Not three base64url parts, or the header/payload is not JSON.
    #[error("malformed JWS: {0}")]
    Malformed(&'static str),
    /// The `alg` is refused (`none`, HMAC, or unknown).
    #[error(transparent)]
    Algorithm(#[from] AlgorithmError),
    /// The `alg` does not match the key's type.
    #[error("the JWS alg {alg} does not match the key ({key})")]
    AlgorithmKeyMismatch {
        /// The header's algorithm.
        alg: Algorithm,
        /// The key's algorithm.
        key: Algorithm,
    },
    /// A `crit` header names extensions we do not understand (RFC 7515 §4.1.11).
    #[error("the JWS has critical header parameters this verifier does not understand")]
    UnknownCritical,
    /// The signature does not verify.
    #[error("the signature does not verify with the issuer's key")]
    BadSignature,
}

impl JwsError {
    /// The stable reason code.
    pub fn code(&self) -> ReasonCode {
        match self {
            JwsError::Malformed(_) => ReasonCode::MalformedJws,
            JwsError::Algorithm(e) => e.code(),
            JwsError::AlgorithmKeyMismatch { .. } => ReasonCode::AlgKeyMismatch,
            JwsError::UnknownCritical => ReasonCode::UnknownCriticalHeader,
            JwsError::BadSignature => ReasonCode::BadSignature,
        }
    }
}

/// A decoded, not yet verified, compact JWS.
#[derive(Debug, Clone)]
pub struct Jws {
    /// The protected header.
    pub header: Map<String, Value>,
    /// The decoded payload bytes.
    pub payload: Vec<u8>,
    signing_input_len: usize,
    signature: Vec<u8>,
    compact: String,
}

impl Jws {
    /// Decodes a compact JWS without verifying it.
    pub fn decode(compact: &str) -> Result<Jws, JwsError> {
        let mut parts = compact.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwsError::Malformed("a compact JWS has three parts"));
        };
        let header_bytes =
            b64::decode(h).map_err(|_| JwsError::Malformed("header is not base64url"))?;
        let header: Map<String, Value> = serde_json::from_slice(&header_bytes)
            .map_err(|_| JwsError::Malformed("header is not a JSON object"))?;
        let payload =
            b64::decode(p).map_err(|_| JwsError::Malformed("payload is not base64url"))?;
        let signature =
            b64::decode(s).map_err(|_| JwsError::Malformed("signature is not base64url"))?;
        Ok(Jws {
            header,
            payload,
            signing_input_len: h.len() + 1 + p.len(),
            signature,
            compact: compact.to_owned(),
        })
    }

    /// The header's `alg`, refused by name when it is `none` or HMAC.
    pub fn algorithm(&self) -> Result<Algorithm, JwsError> {
        let alg = self
            .header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or(JwsError::Malformed("no alg"))?;
        Ok(Algorithm::from_jose(alg)?)
    }

    /// A string header parameter.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }

    /// The payload as a JSON object.
    pub fn claims(&self) -> Result<Map<String, Value>, JwsError> {
        serde_json::from_slice(&self.payload)
            .map_err(|_| JwsError::Malformed("payload is not a JSON object"))
    }

    /// Verifies the signature with `key`, checking `alg` against the key type first.
    pub fn verify(&self, key: &PublicKey) -> Result<(), JwsError> {
        let alg = self.algorithm()?;
        if alg != key.algorithm() {
            return Err(JwsError::AlgorithmKeyMismatch {
                alg,
                key: key.algorithm(),
            });
        }
        if self.header.contains_key("crit") {
            return Err(JwsError::UnknownCritical);
        }
        let input = &self.compact.as_bytes()[..self.signing_input_len];
        key.verify(input, &self.signature)
            .map_err(|_| JwsError::BadSignature)
    }
}

/// Signs `claims` as a compact JWS; `alg` is set from the signer, other header members are
/// taken from `header`.
pub fn sign(
    mut header: Map<String, Value>,
    payload: &[u8],
    signer: &impl Signer,
) -> Result<String, SignError> {
    header.insert("alg".into(), signer.algorithm().as_str().into());
    sign_serialized(
        Value::Object(header).to_string().as_bytes(),
        payload,
        signer,
    )
}

/// Signs `payload` under `header`, the complete JOSE header's JSON text (its `alg` must be
/// the signer's; the caller wrote it). One buffer holds the signing input and the result.
pub(crate) fn sign_serialized(
    header: &[u8],
    payload: &[u8],
    signer: &impl Signer,
) -> Result<String, SignError> {
    let mut out = String::with_capacity((header.len() + payload.len() + 2) * 4 / 3 + 90);
    b64::encode_into(header, &mut out);
    out.push('.');
    b64::encode_into(payload, &mut out);
    let sig = signer.sign(out.as_bytes())?;
    out.push('.');
    b64::encode_into(sig, &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SecretKey;
    use rand_core::OsRng;

    #[test]
    fn sign_and_verify() {
        let key = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        let jws = sign(Map::new(), b"{\"a\":1}", &key).expect("sign");
        let d = Jws::decode(&jws).expect("decode");
        d.verify(&key.public_key()).expect("verify");
        assert_eq!(d.claims().expect("claims")["a"], 1);
        let other = SecretKey::generate(Algorithm::EdDSA, &mut OsRng).public_key();
        assert_eq!(d.verify(&other), Err(JwsError::BadSignature));
        let p256 = SecretKey::generate(Algorithm::ES256, &mut OsRng).public_key();
        assert!(matches!(
            d.verify(&p256),
            Err(JwsError::AlgorithmKeyMismatch { .. })
        ));
        assert!(matches!(Jws::decode("a.b"), Err(JwsError::Malformed(_))));
        assert!(matches!(
            Jws::decode("a.b.c.d"),
            Err(JwsError::Malformed(_))
        ));
    }
}
