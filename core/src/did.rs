//! `did:key` and `did:jwk`: create from a public key, resolve to a DID document, and find the
//! key a DID URL names. Both methods are pure functions of their identifier, so resolution
//! needs no network.
//!
//! `did:webvh` (issuer DIDs with key history) is resolved from its log by the registry
//! crate, not here.

use crate::ReasonCode;
use serde::Serialize;

use crate::b64;
use crate::jwk::Jwk;
use crate::keys::PublicKey;

/// Longest DID we read.
pub const MAX_DID_LEN: usize = 2048;

const ED25519_PUB: [u8; 2] = [0xed, 0x01];
const P256_PUB: [u8; 2] = [0x80, 0x24];

/// Why a DID could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DidError {
    /// Not `did:key` or `did:jwk` (or not a DID at all).
    #[error("unsupported DID method (this resolver knows did:key and did:jwk)")]
    UnsupportedMethod,
    /// The identifier does not decode to a key.
    #[error("invalid DID: {0}")]
    Invalid(&'static str),
    /// The key type is not Ed25519 or P-256.
    #[error("the DID's key type is not supported (Ed25519 or P-256)")]
    UnsupportedKey,
    /// The DID URL's fragment names no verification method of the document.
    #[error("the DID URL names no verification method of this DID")]
    UnknownFragment,
}

impl DidError {
    /// Stable reason code.
    pub fn code(&self) -> ReasonCode {
        match self {
            DidError::UnsupportedMethod => ReasonCode::DidUnsupportedMethod,
            DidError::Invalid(_) => ReasonCode::DidInvalid,
            DidError::UnsupportedKey => ReasonCode::DidUnsupportedKey,
            DidError::UnknownFragment => ReasonCode::DidUnknownFragment,
        }
    }
}

/// A verification method of a DID document.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationMethod {
    /// DID URL of the method.
    pub id: String,
    /// `Multikey` (did:key) or `JsonWebKey2020` (did:jwk).
    #[serde(rename = "type")]
    pub kind: String,
    /// The DID.
    pub controller: String,
    /// Multibase key (did:key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key_multibase: Option<String>,
    /// JWK (did:jwk).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key_jwk: Option<Jwk>,
}

/// A resolved DID document (one key, usable for every relationship).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DidDocument {
    /// JSON-LD contexts.
    #[serde(rename = "@context")]
    pub context: Vec<String>,
    /// The DID.
    pub id: String,
    /// Its verification methods.
    pub verification_method: Vec<VerificationMethod>,
    /// Authentication relationship.
    pub authentication: Vec<String>,
    /// Assertion relationship (signing credentials).
    pub assertion_method: Vec<String>,
    /// Capability invocation.
    pub capability_invocation: Vec<String>,
    /// Capability delegation.
    pub capability_delegation: Vec<String>,
    /// The key, typed.
    #[serde(skip)]
    pub key: Option<PublicKey>,
}

/// The multibase (`z` + base58btc) multikey encoding of a public key.
pub fn multikey(pk: &PublicKey) -> String {
    let mut bytes = match pk {
        PublicKey::Ed25519(_) => ED25519_PUB.to_vec(),
        PublicKey::P256(_) => P256_PUB.to_vec(),
    };
    bytes.extend(pk.to_bytes());
    format!("z{}", bs58::encode(bytes).into_string())
}

/// Decodes a multibase multikey (Ed25519 or P-256).
pub fn from_multikey(mb: &str) -> Result<PublicKey, DidError> {
    let body = mb
        .strip_prefix('z')
        .ok_or(DidError::Invalid("multibase must be base58btc (z)"))?;
    if body.len() > 128 {
        return Err(DidError::Invalid("multikey too long"));
    }
    let bytes = bs58::decode(body)
        .into_vec()
        .map_err(|_| DidError::Invalid("not base58btc"))?;
    if bytes.len() < 2 {
        return Err(DidError::Invalid("multikey too short"));
    }
    let (codec, key) = bytes.split_at(2);
    if codec == ED25519_PUB {
        let key: [u8; 32] = key
            .try_into()
            .map_err(|_| DidError::Invalid("Ed25519 key is 32 bytes"))?;
        let k = ed25519_dalek::VerifyingKey::from_bytes(&key)
            .map_err(|_| DidError::Invalid("not an Ed25519 point"))?;
        Ok(PublicKey::Ed25519(k))
    } else if codec == P256_PUB {
        p256::ecdsa::VerifyingKey::from_sec1_bytes(key)
            .map(PublicKey::P256)
            .map_err(|_| DidError::Invalid("not a P-256 point"))
    } else {
        Err(DidError::UnsupportedKey)
    }
}

/// The `did:key` of a public key.
pub fn did_key(pk: &PublicKey) -> String {
    format!("did:key:{}", multikey(pk))
}

fn canonical_jwk(pk: &PublicKey) -> String {
    let jwk = pk.to_jwk();
    // Lexicographic member order (as RFC 7638), so one key has one did:jwk.
    let mut v = serde_json::Map::new();
    v.insert("crv".into(), jwk.crv.unwrap_or_default().into());
    v.insert("kty".into(), jwk.kty.into());
    v.insert("x".into(), jwk.x.unwrap_or_default().into());
    if let Some(y) = jwk.y {
        v.insert("y".into(), y.into());
    }
    serde_json::Value::Object(v).to_string()
}

/// The `did:jwk` of a public key.
pub fn did_jwk(pk: &PublicKey) -> String {
    format!("did:jwk:{}", b64::encode(canonical_jwk(pk)))
}

fn document(did: &str, vm: VerificationMethod, key: PublicKey) -> DidDocument {
    let id = vec![vm.id.clone()];
    DidDocument {
        context: vec![
            "https://www.w3.org/ns/did/v1".into(),
            "https://w3id.org/security/multikey/v1".into(),
        ],
        id: did.to_owned(),
        verification_method: vec![vm],
        authentication: id.clone(),
        assertion_method: id.clone(),
        capability_invocation: id.clone(),
        capability_delegation: id,
        key: Some(key),
    }
}

/// Resolves a `did:key` or `did:jwk` (no fragment) to its DID document.
pub fn resolve(did: &str) -> Result<DidDocument, DidError> {
    if did.len() > MAX_DID_LEN {
        return Err(DidError::Invalid("DID too long"));
    }
    if let Some(mb) = did.strip_prefix("did:key:") {
        let key = from_multikey(mb)?;
        let vm = VerificationMethod {
            id: format!("{did}#{mb}"),
            kind: "Multikey".into(),
            controller: did.to_owned(),
            public_key_multibase: Some(mb.to_owned()),
            public_key_jwk: None,
        };
        Ok(document(did, vm, key))
    } else if let Some(enc) = did.strip_prefix("did:jwk:") {
        let json = b64::decode(enc).map_err(|_| DidError::Invalid("did:jwk is not base64url"))?;
        let raw: serde_json::Value =
            serde_json::from_slice(&json).map_err(|_| DidError::Invalid("did:jwk is not JSON"))?;
        if raw.get("d").is_some() {
            return Err(DidError::Invalid("did:jwk holds a private key"));
        }
        let jwk: Jwk = serde_json::from_value(raw).map_err(|_| DidError::Invalid("not a JWK"))?;
        let key = PublicKey::from_jwk(&jwk).map_err(|e| match e {
            crate::keys::KeyError::UnsupportedKeyType => DidError::UnsupportedKey,
            _ => DidError::Invalid("the JWK is not a valid key"),
        })?;
        let vm = VerificationMethod {
            id: format!("{did}#0"),
            kind: "JsonWebKey2020".into(),
            controller: did.to_owned(),
            public_key_multibase: None,
            public_key_jwk: Some(jwk),
        };
        Ok(document(did, vm, key))
    } else {
        Err(DidError::UnsupportedMethod)
    }
}

/// The public key a DID URL names (`did:key:z..#z..`, `did:jwk:..#0`, or a bare DID).
pub fn resolve_key(did_url: &str) -> Result<PublicKey, DidError> {
    let (did, fragment) = match did_url.split_once('#') {
        Some((d, f)) => (d, Some(f)),
        None => (did_url, None),
    };
    let doc = resolve(did)?;
    if let Some(f) = fragment {
        let wanted = format!("{did}#{f}");
        if !doc.verification_method.iter().any(|vm| vm.id == wanted) {
            return Err(DidError::UnknownFragment);
        }
    }
    doc.key.ok_or(DidError::Invalid("no key"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Algorithm, SecretKey, Signer};
    use rand_core::OsRng;

    #[test]
    fn round_trips() {
        for alg in [Algorithm::EdDSA, Algorithm::ES256] {
            let pk = SecretKey::generate(alg, &mut OsRng).public_key();
            let dk = did_key(&pk);
            assert_eq!(resolve_key(&dk).expect("did:key"), pk);
            let doc = resolve(&dk).expect("doc");
            assert_eq!(resolve_key(&doc.verification_method[0].id).expect("vm"), pk);
            let dj = did_jwk(&pk);
            assert_eq!(resolve_key(&format!("{dj}#0")).expect("did:jwk"), pk);
            assert_eq!(
                resolve_key(&format!("{dj}#1")),
                Err(DidError::UnknownFragment)
            );
        }
        let ed = did_key(&SecretKey::generate(Algorithm::EdDSA, &mut OsRng).public_key());
        assert!(ed.starts_with("did:key:z6Mk"));
        let p = did_key(&SecretKey::generate(Algorithm::ES256, &mut OsRng).public_key());
        assert!(p.starts_with("did:key:zDn"));
    }

    #[test]
    fn bad_dids() {
        assert_eq!(
            resolve("did:web:example.com").err(),
            Some(DidError::UnsupportedMethod)
        );
        assert_eq!(
            resolve("did:key:6Mk").err().map(|e| e.code()),
            Some(ReasonCode::DidInvalid)
        );
        assert_eq!(
            resolve("did:key:z0OIl").err().map(|e| e.code()),
            Some(ReasonCode::DidInvalid)
        );
        // secp256k1 multicodec (0xe7 0x01) is not supported.
        let mut k = vec![0xe7, 0x01];
        k.extend([2u8; 33]);
        let did = format!("did:key:z{}", bs58::encode(k).into_string());
        assert_eq!(resolve(&did).err(), Some(DidError::UnsupportedKey));
        let jwk = b64::encode(
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}"#,
        );
        assert_eq!(
            resolve(&format!("did:jwk:{jwk}")).err(),
            Some(DidError::Invalid("did:jwk holds a private key"))
        );
    }
}
