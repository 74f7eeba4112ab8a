//! A held credential as the wallet stores it, and reading its claims.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use bizcred_core::sd_jwt::{self, SdJwt};
use bizcred_core::sd_jwt_vc;

use crate::error::WalletError;

/// A credential in the wallet, with what the wallet learned when it received it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct StoredCredential {
    /// The wallet's id (`c` + 10 characters of the credential's SHA-256).
    pub id: String,
    /// The credential type.
    pub vct: String,
    /// The issuer's DID.
    pub issuer: String,
    /// The issuer's display name.
    pub issuer_name: String,
    /// The SD-JWT VC as issued (all disclosures).
    pub credential: String,
    /// When it was received, in milliseconds since the epoch.
    pub received_at: i64,
    /// Issued at (seconds).
    pub iat: Option<i64>,
    /// Expires at (seconds).
    pub exp: Option<i64>,
    /// The status list URI.
    pub status_uri: Option<String>,
    /// The index in the status list.
    pub status_idx: Option<u64>,
    /// The last status seen (`valid`, `revoked`, `suspended`, `unknown`).
    pub last_status: Option<String>,
    /// When the status was last checked (seconds).
    pub status_checked_at: Option<i64>,
}

/// The wallet's id for a credential's text.
pub fn credential_id(text: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(text.as_bytes());
    let b64 = bizcred_core::base64url_encode(digest);
    format!("c{}", b64.get(..10).unwrap_or(&b64))
}

impl StoredCredential {
    /// The business claims with every disclosure applied (no JWT bookkeeping claims).
    pub fn claims(&self) -> Result<Map<String, Value>, WalletError> {
        let damaged = |source| WalletError::StoredCredential {
            id: self.id.clone(),
            source,
        };
        let sd = SdJwt::parse(&self.credential).map_err(damaged)?;
        let payload = sd.unverified_payload().map_err(damaged)?;
        let mut claims = sd_jwt::process(payload, &sd.disclosures).map_err(damaged)?;
        for k in sd_jwt_vc::CLEAR_CLAIMS.iter().chain(&["iat", "sub", "jti"]) {
            claims.remove(*k);
        }
        Ok(claims)
    }

    /// True when the credential has expired at `now` (seconds) or was last seen revoked.
    pub fn is_usable(&self, now: i64) -> bool {
        self.exp.is_none_or(|e| e > now) && self.last_status.as_deref() != Some("revoked")
    }
}

/// The value at a claim path (strings are keys, numbers are array indices, `null` stops).
pub fn value_at<'a>(claims: &'a Map<String, Value>, path: &[Value]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut cur = claims.get(first.as_str()?)?;
    for seg in rest {
        cur = match seg {
            Value::String(k) => cur.get(k)?,
            Value::Number(n) => cur.get(usize::try_from(n.as_u64()?).ok()?)?,
            _ => return Some(cur),
        };
    }
    Some(cur)
}
