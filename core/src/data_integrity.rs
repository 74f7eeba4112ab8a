//! Data Integrity proofs with the `eddsa-jcs-2022` cryptosuite (W3C vc-di-eddsa §3.3):
//! `proofValue = base58btc(Ed25519(SHA-256(JCS(proofConfig)) || SHA-256(JCS(document))))`.
//!
//! Used for did:webvh log entries and witness proofs, and for registry entries and trust
//! bundles.

use crate::ReasonCode;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::did;
use crate::keys::{Algorithm, PublicKey, SignError, Signer};

/// The only cryptosuite we produce and accept.
pub const CRYPTOSUITE: &str = "eddsa-jcs-2022";

/// Why a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// Not a `DataIntegrityProof` object with the required members.
    #[error("malformed Data Integrity proof: {0}")]
    Malformed(&'static str),
    /// Another cryptosuite than `eddsa-jcs-2022`.
    #[error("cryptosuite \"{0}\" is not eddsa-jcs-2022")]
    WrongCryptosuite(String),
    /// Another proof purpose than expected.
    #[error("proof purpose \"{0}\" is not the one required")]
    WrongPurpose(String),
    /// The signature does not verify.
    #[error("the proof's signature does not verify")]
    BadSignature,
    /// The signer is not an Ed25519 key.
    #[error("eddsa-jcs-2022 needs an Ed25519 key")]
    NotEd25519,
    /// Signing failed.
    #[error(transparent)]
    Sign(#[from] SignError),
}

impl ProofError {
    /// The stable reason code.
    pub fn code(&self) -> ReasonCode {
        match self {
            ProofError::Sign(e) => e.code(),
            _ => ReasonCode::DataIntegrityProofInvalid,
        }
    }
}

fn jcs(v: &Value) -> Result<Vec<u8>, ProofError> {
    serde_json_canonicalizer::to_vec(v)
        .map_err(|_| ProofError::Malformed("not canonicalizable JSON"))
}

fn hash_data(config: &Value, document: &Value) -> Result<Vec<u8>, ProofError> {
    let mut out = Sha256::digest(jcs(config)?).to_vec();
    out.extend_from_slice(&Sha256::digest(jcs(document)?));
    Ok(out)
}

/// Creates a proof over `document` (which must not hold a `proof`).
pub fn sign(
    document: &Value,
    signer: &impl Signer,
    verification_method: &str,
    created: &str,
    purpose: &str,
) -> Result<Value, ProofError> {
    if signer.algorithm() != Algorithm::EdDSA {
        return Err(ProofError::NotEd25519);
    }
    let mut config = Map::new();
    config.insert("type".into(), "DataIntegrityProof".into());
    config.insert("cryptosuite".into(), CRYPTOSUITE.into());
    config.insert("verificationMethod".into(), verification_method.into());
    config.insert("created".into(), created.into());
    config.insert("proofPurpose".into(), purpose.into());
    if let Some(ctx) = document.get("@context") {
        config.insert("@context".into(), ctx.clone());
    }
    let data = hash_data(&Value::Object(config.clone()), document)?;
    let sig = signer.sign(&data)?;
    config.insert(
        "proofValue".into(),
        format!("z{}", bs58::encode(sig).into_string()).into(),
    );
    Ok(Value::Object(config))
}

/// Checks a proof's shape and returns its `verificationMethod`.
pub fn verification_method<'a>(proof: &'a Value, purpose: &str) -> Result<&'a str, ProofError> {
    let s = |k: &str| proof.get(k).and_then(Value::as_str);
    if s("type") != Some("DataIntegrityProof") {
        return Err(ProofError::Malformed("type is not DataIntegrityProof"));
    }
    match s("cryptosuite") {
        Some(CRYPTOSUITE) => {}
        Some(other) => {
            return Err(ProofError::WrongCryptosuite(
                other.chars().take(64).collect(),
            ))
        }
        None => return Err(ProofError::Malformed("no cryptosuite")),
    }
    match s("proofPurpose") {
        Some(p) if p == purpose => {}
        Some(p) => return Err(ProofError::WrongPurpose(p.chars().take(64).collect())),
        None => return Err(ProofError::Malformed("no proofPurpose")),
    }
    s("verificationMethod").ok_or(ProofError::Malformed("no verificationMethod"))
}

/// Verifies `proof` over `document` with `key` (shape, cryptosuite, purpose and signature).
pub fn verify(
    document: &Value,
    proof: &Value,
    key: &PublicKey,
    purpose: &str,
) -> Result<(), ProofError> {
    verification_method(proof, purpose)?;
    let Value::Object(mut config) = proof.clone() else {
        return Err(ProofError::Malformed("proof is not an object"));
    };
    let value = config
        .remove("proofValue")
        .ok_or(ProofError::Malformed("no proofValue"))?;
    let value = value
        .as_str()
        .and_then(|v| v.strip_prefix('z'))
        .ok_or(ProofError::Malformed("proofValue is not base58btc"))?;
    if value.len() > 128 {
        return Err(ProofError::Malformed("proofValue too long"));
    }
    let sig = bs58::decode(value)
        .into_vec()
        .map_err(|_| ProofError::Malformed("proofValue is not base58btc"))?;
    if let Some(ctx) = config.get("@context") {
        if document.get("@context") != Some(ctx) {
            return Err(ProofError::Malformed(
                "proof @context differs from the document's",
            ));
        }
    }
    if !matches!(key, PublicKey::Ed25519(_)) {
        return Err(ProofError::NotEd25519);
    }
    let data = hash_data(&Value::Object(config), document)?;
    key.verify(&data, &sig)
        .map_err(|_| ProofError::BadSignature)
}

/// The key of a `did:key:<mb>#<mb>` verification method whose body and fragment are equal.
pub fn did_key_method(vm: &str) -> Option<(String, PublicKey)> {
    let rest = vm.strip_prefix("did:key:")?;
    let (body, fragment) = rest.split_once('#')?;
    if body != fragment {
        return None;
    }
    let key = did::from_multikey(body).ok()?;
    Some((body.to_owned(), key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SecretKey;
    use rand_core::OsRng;

    #[test]
    fn sign_verify_and_refuse() {
        let key = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        let mk = did::multikey(&key.public_key());
        let vm = format!("did:key:{mk}#{mk}");
        let doc = serde_json::json!({"versionId": "1-Qm", "b": [1, 2], "a": "x"});
        let proof = sign(&doc, &key, &vm, "2026-01-01T00:00:00Z", "assertionMethod").expect("sign");
        verify(&doc, &proof, &key.public_key(), "assertionMethod").expect("verify");
        let other = serde_json::json!({"versionId": "2-Qm"});
        assert_eq!(
            verify(&other, &proof, &key.public_key(), "assertionMethod"),
            Err(ProofError::BadSignature)
        );
        assert!(matches!(
            verify(&doc, &proof, &key.public_key(), "authentication"),
            Err(ProofError::WrongPurpose(_))
        ));
        let mut wrong = proof.clone();
        wrong["cryptosuite"] = "ecdsa-jcs-2019".into();
        assert!(matches!(
            verify(&doc, &wrong, &key.public_key(), "assertionMethod"),
            Err(ProofError::WrongCryptosuite(_))
        ));
        assert_eq!(did_key_method(&vm).map(|(_, k)| k), Some(key.public_key()));
        assert!(did_key_method(&format!("did:key:{mk}#other")).is_none());
    }
}
