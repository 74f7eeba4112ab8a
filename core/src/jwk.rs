//! Public JSON Web Keys (RFC 7517) for Ed25519 (RFC 8037) and P-256, and RFC 7638 thumbprints.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::b64;

/// A public JWK. Private members (`d`) are never part of this type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// `OKP` or `EC`.
    pub kty: String,
    /// `Ed25519` or `P-256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// Public key (OKP) or x coordinate (EC), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// y coordinate (EC), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// Key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Intended algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
}

impl Jwk {
    /// The RFC 7638 SHA-256 thumbprint, base64url. `None` when required members are missing
    /// or the key type is not one we support.
    pub fn thumbprint(&self) -> Option<String> {
        let crv = self.crv.as_deref()?;
        let x = self.x.as_deref()?;
        // Members in lexicographic order, no whitespace (RFC 7638 §3.2). serde_json escapes
        // strings exactly as the RFC requires.
        let canonical = match self.kty.as_str() {
            "OKP" => serde_json::json!({"crv": crv, "kty": "OKP", "x": x}).to_string(),
            "EC" => {
                let y = self.y.as_deref()?;
                serde_json::json!({"crv": crv, "kty": "EC", "x": x, "y": y}).to_string()
            }
            _ => return None,
        };
        Some(b64::encode(Sha256::digest(canonical.as_bytes())))
    }
}
