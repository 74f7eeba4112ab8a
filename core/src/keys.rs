//! Signing keys and the [`Signer`] trait.
//!
//! Ed25519 (`EdDSA`, RFC 8032/8037) is the default; P-256 (`ES256`) is supported. Secret keys
//! have no `Debug`, are zeroized when dropped (the underlying `ed25519-dalek` and `p256` keys
//! zeroize themselves), and are only reached through [`Signer`], so an HSM or KMS can take
//! their place.

use crate::ReasonCode;
use ed25519_dalek::Signer as _;
use p256::ecdsa::signature::Verifier as _;
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use crate::b64;
use crate::jwk::Jwk;

/// A JWS signature algorithm bizcred accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Algorithm {
    /// Ed25519 (RFC 8037).
    EdDSA,
    /// ECDSA with P-256 and SHA-256.
    ES256,
}

impl Algorithm {
    /// The JOSE `alg` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::EdDSA => "EdDSA",
            Algorithm::ES256 => "ES256",
        }
    }

    /// Parses a JOSE `alg`, refusing `none`, HMAC and anything else by name.
    pub fn from_jose(alg: &str) -> Result<Algorithm, AlgorithmError> {
        match alg {
            "EdDSA" | "Ed25519" => Ok(Algorithm::EdDSA),
            "ES256" => Ok(Algorithm::ES256),
            "none" => Err(AlgorithmError::None),
            a if a.starts_with("HS") => Err(AlgorithmError::Symmetric(a.to_owned())),
            a => Err(AlgorithmError::Unsupported(a.chars().take(32).collect())),
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Algorithm {
    type Err = AlgorithmError;
    fn from_str(s: &str) -> Result<Self, AlgorithmError> {
        Algorithm::from_jose(s)
    }
}

/// Why an `alg` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AlgorithmError {
    /// `alg: none`: an unsigned token.
    #[error("alg \"none\" (an unsigned token) is never accepted")]
    None,
    /// A MAC algorithm: anyone holding the key could forge.
    #[error("alg \"{0}\" is a symmetric MAC, not a signature; it is never accepted")]
    Symmetric(String),
    /// Another algorithm.
    #[error("alg \"{0}\" is not supported (EdDSA or ES256)")]
    Unsupported(String),
}

impl AlgorithmError {
    /// The stable reason code.
    pub fn code(&self) -> ReasonCode {
        match self {
            AlgorithmError::None => ReasonCode::AlgNone,
            AlgorithmError::Symmetric(_) => ReasonCode::AlgSymmetric,
            AlgorithmError::Unsupported(_) => ReasonCode::AlgUnsupported,
        }
    }
}

/// Why a key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The JWK's `kty`/`crv` is not Ed25519 or P-256.
    #[error("unsupported key type (only OKP/Ed25519 and EC/P-256)")]
    UnsupportedKeyType,
    /// A member is missing, not base64url, or not a valid point.
    #[error("invalid key material: {0}")]
    Invalid(&'static str),
}

impl KeyError {
    /// The stable reason code.
    pub fn code(&self) -> ReasonCode {
        match self {
            KeyError::UnsupportedKeyType => ReasonCode::KeyTypeUnsupported,
            KeyError::Invalid(_) => ReasonCode::KeyInvalid,
        }
    }
}

/// A signature did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the signature does not verify with this key")]
pub struct BadSignature;

/// Signing failed. Software keys never fail; a [`Signer`] backed by a hardware module or a
/// remote service reports why it could not sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The key is not available (a module locked, removed or not reachable).
    #[error("signing failed: the key {key_id} is not available")]
    KeyUnavailable {
        /// The signer's name for the key.
        key_id: String,
    },
    /// The signing backend refused or failed.
    #[error("signing failed: the {backend} signer failed")]
    Backend {
        /// Which backend.
        backend: &'static str,
    },
}

impl SignError {
    /// The stable reason code.
    pub fn code(&self) -> ReasonCode {
        ReasonCode::SigningFailed
    }
}

/// A public verification key.
#[derive(Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// Ed25519.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// P-256.
    P256(p256::ecdsa::VerifyingKey),
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({}, {})", self.algorithm(), self.thumbprint())
    }
}

impl PublicKey {
    /// The algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            PublicKey::Ed25519(_) => Algorithm::EdDSA,
            PublicKey::P256(_) => Algorithm::ES256,
        }
    }

    /// Verifies `sig` over `msg`. Ed25519 uses strict verification (no malleable signatures,
    /// no weak keys); ES256 takes the 64-byte `r || s` JOSE form.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), BadSignature> {
        match self {
            PublicKey::Ed25519(k) => {
                let sig = ed25519_dalek::Signature::from_slice(sig).map_err(|_| BadSignature)?;
                k.verify_strict(msg, &sig).map_err(|_| BadSignature)
            }
            PublicKey::P256(k) => {
                let sig = p256::ecdsa::Signature::from_slice(sig).map_err(|_| BadSignature)?;
                k.verify(msg, &sig).map_err(|_| BadSignature)
            }
        }
    }

    /// The public JWK.
    pub fn to_jwk(&self) -> Jwk {
        match self {
            PublicKey::Ed25519(k) => Jwk {
                kty: "OKP".into(),
                crv: Some("Ed25519".into()),
                x: Some(b64::encode(k.as_bytes())),
                y: None,
                kid: None,
                alg: None,
            },
            PublicKey::P256(k) => {
                let point = k.to_encoded_point(false);
                Jwk {
                    kty: "EC".into(),
                    crv: Some("P-256".into()),
                    x: point.x().map(b64::encode),
                    y: point.y().map(b64::encode),
                    kid: None,
                    alg: None,
                }
            }
        }
    }

    /// Reads a public JWK.
    pub fn from_jwk(jwk: &Jwk) -> Result<PublicKey, KeyError> {
        let x = || -> Result<Vec<u8>, KeyError> {
            let x = jwk.x.as_deref().ok_or(KeyError::Invalid("missing x"))?;
            b64::decode(x).map_err(|_| KeyError::Invalid("x is not base64url"))
        };
        match (jwk.kty.as_str(), jwk.crv.as_deref()) {
            ("OKP", Some("Ed25519")) => {
                let bytes: [u8; 32] = x()?
                    .try_into()
                    .map_err(|_| KeyError::Invalid("x is not 32 bytes"))?;
                let k = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                    .map_err(|_| KeyError::Invalid("not an Ed25519 point"))?;
                if k.is_weak() {
                    return Err(KeyError::Invalid("weak Ed25519 key"));
                }
                Ok(PublicKey::Ed25519(k))
            }
            ("EC", Some("P-256")) => {
                let x = x()?;
                let y = jwk.y.as_deref().ok_or(KeyError::Invalid("missing y"))?;
                let y = b64::decode(y).map_err(|_| KeyError::Invalid("y is not base64url"))?;
                if x.len() != 32 || y.len() != 32 {
                    return Err(KeyError::Invalid("P-256 coordinates are 32 bytes"));
                }
                let point = p256::EncodedPoint::from_affine_coordinates(
                    x.as_slice().into(),
                    y.as_slice().into(),
                    false,
                );
                p256::ecdsa::VerifyingKey::from_encoded_point(&point)
                    .map(PublicKey::P256)
                    .map_err(|_| KeyError::Invalid("not a P-256 point"))
            }
            _ => Err(KeyError::UnsupportedKeyType),
        }
    }

    /// The RFC 7638 thumbprint of the public JWK.
    pub fn thumbprint(&self) -> String {
        self.to_jwk().thumbprint().unwrap_or_default()
    }

    /// Raw public key bytes: 32 for Ed25519, 33 (compressed SEC1) for P-256.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            PublicKey::Ed25519(k) => k.as_bytes().to_vec(),
            PublicKey::P256(k) => k.to_encoded_point(true).as_bytes().to_vec(),
        }
    }
}

/// Something that signs: a software key here, an HSM or KMS elsewhere.
pub trait Signer {
    /// The algorithm of the signatures.
    fn algorithm(&self) -> Algorithm;
    /// The matching public key.
    fn public_key(&self) -> PublicKey;
    /// Signs `msg` (JOSE signature form: 64 bytes for both algorithms).
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignError>;
}

enum SecretInner {
    Ed25519(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
}

/// A software secret key. It has no `Debug` and is zeroized on drop.
#[allow(missing_debug_implementations)] // a secret key is never printed
pub struct SecretKey(SecretInner);

impl SecretKey {
    /// Generates a fresh key from a cryptographic RNG.
    pub fn generate(alg: Algorithm, rng: &mut impl CryptoRngCore) -> SecretKey {
        match alg {
            Algorithm::EdDSA => SecretKey(SecretInner::Ed25519(
                ed25519_dalek::SigningKey::generate(rng),
            )),
            Algorithm::ES256 => SecretKey(SecretInner::P256(p256::ecdsa::SigningKey::random(rng))),
        }
    }

    /// Reads a key from its 32 secret bytes (Ed25519 seed or P-256 scalar).
    pub fn from_bytes(alg: Algorithm, bytes: &[u8]) -> Result<SecretKey, KeyError> {
        let bytes: Zeroizing<[u8; 32]> = Zeroizing::new(
            bytes
                .try_into()
                .map_err(|_| KeyError::Invalid("a secret key is 32 bytes"))?,
        );
        match alg {
            Algorithm::EdDSA => Ok(SecretKey(SecretInner::Ed25519(
                ed25519_dalek::SigningKey::from_bytes(&bytes),
            ))),
            Algorithm::ES256 => p256::ecdsa::SigningKey::from_bytes(bytes.as_ref().into())
                .map(|k| SecretKey(SecretInner::P256(k)))
                .map_err(|_| KeyError::Invalid("not a P-256 scalar")),
        }
    }

    /// Reads a private JWK (`d` member), as test vectors publish keys.
    pub fn from_private_jwk(jwk: &serde_json::Value) -> Result<SecretKey, KeyError> {
        let s = |k: &str| jwk.get(k).and_then(serde_json::Value::as_str);
        let alg = match (s("kty"), s("crv")) {
            (Some("OKP"), Some("Ed25519")) => Algorithm::EdDSA,
            (Some("EC"), Some("P-256")) => Algorithm::ES256,
            _ => return Err(KeyError::UnsupportedKeyType),
        };
        let d = s("d").ok_or(KeyError::Invalid("missing d"))?;
        let d =
            Zeroizing::new(b64::decode(d).map_err(|_| KeyError::Invalid("d is not base64url"))?);
        let key = SecretKey::from_bytes(alg, &d)?;
        let public: Jwk =
            serde_json::from_value(jwk.clone()).map_err(|_| KeyError::Invalid("jwk"))?;
        if PublicKey::from_jwk(&public)? != key.public_key() {
            return Err(KeyError::Invalid("d does not match the public key"));
        }
        Ok(key)
    }

    /// The 32 secret bytes, in a buffer that zeroizes itself. For encrypting at rest only.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(match &self.0 {
            SecretInner::Ed25519(k) => k.to_bytes().to_vec(),
            SecretInner::P256(k) => k.to_bytes().to_vec(),
        })
    }
}

impl Signer for SecretKey {
    fn algorithm(&self) -> Algorithm {
        match &self.0 {
            SecretInner::Ed25519(_) => Algorithm::EdDSA,
            SecretInner::P256(_) => Algorithm::ES256,
        }
    }

    fn public_key(&self) -> PublicKey {
        match &self.0 {
            SecretInner::Ed25519(k) => PublicKey::Ed25519(k.verifying_key()),
            SecretInner::P256(k) => PublicKey::P256(*k.verifying_key()),
        }
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignError> {
        Ok(match &self.0 {
            SecretInner::Ed25519(k) => k.sign(msg).to_bytes().to_vec(),
            SecretInner::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(msg);
                sig.to_bytes().to_vec()
            }
        })
    }
}

impl<S: Signer + ?Sized> Signer for &S {
    fn algorithm(&self) -> Algorithm {
        (**self).algorithm()
    }
    fn public_key(&self) -> PublicKey {
        (**self).public_key()
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignError> {
        (**self).sign(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn algorithms_refused_by_name() {
        assert_eq!(Algorithm::from_jose("none"), Err(AlgorithmError::None));
        assert_eq!(
            Algorithm::from_jose("HS256"),
            Err(AlgorithmError::Symmetric("HS256".into()))
        );
        assert_eq!(
            Algorithm::from_jose("RS256"),
            Err(AlgorithmError::Unsupported("RS256".into()))
        );
    }

    #[test]
    fn sign_verify_both_algorithms() {
        for alg in [Algorithm::EdDSA, Algorithm::ES256] {
            let k = SecretKey::generate(alg, &mut OsRng);
            let sig = k.sign(b"bizcred").expect("sign");
            assert_eq!(sig.len(), 64);
            let pk = k.public_key();
            pk.verify(b"bizcred", &sig).expect("verifies");
            assert_eq!(pk.verify(b"bizcreD", &sig), Err(BadSignature));
            let jwk = pk.to_jwk();
            assert_eq!(PublicKey::from_jwk(&jwk).expect("jwk"), pk);
            let again = SecretKey::from_bytes(alg, &k.to_bytes()).expect("bytes");
            assert_eq!(again.public_key(), pk);
        }
    }

    #[test]
    fn bad_jwks() {
        let mut jwk = SecretKey::generate(Algorithm::ES256, &mut OsRng)
            .public_key()
            .to_jwk();
        jwk.y = Some(b64::encode([7u8; 32]));
        assert_eq!(
            PublicKey::from_jwk(&jwk),
            Err(KeyError::Invalid("not a P-256 point"))
        );
        jwk.kty = "RSA".into();
        assert_eq!(PublicKey::from_jwk(&jwk), Err(KeyError::UnsupportedKeyType));
    }
}
