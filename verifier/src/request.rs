//! Building OpenID4VP 1.0 authorization requests from a policy (no I/O): the request object
//! claims a verifier signs and serves at its `request_uri`.

use serde_json::{json, Map, Value};

use crate::policy::Policy;

/// A pending presentation request, as the verifier keeps it until the response arrives.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pending {
    /// `state`: identifies the transaction.
    pub state: String,
    /// The nonce the key-binding JWTs must carry.
    pub nonce: String,
    /// The verifier's Client Identifier (the KB-JWT `aud`).
    pub client_id: String,
    /// Where the wallet posts the response.
    pub response_uri: String,
    /// When the request expires (Unix seconds).
    pub expires_at: i64,
}

/// The request object claims for `policy`.
pub fn request_object(policy: &Policy, pending: &Pending, now: i64) -> Map<String, Value> {
    let algs: Vec<&str> = policy.algorithms.iter().map(|a| a.as_str()).collect();
    let v = json!({
        "client_id": pending.client_id,
        "response_type": "vp_token",
        "response_mode": "direct_post",
        "response_uri": pending.response_uri,
        "nonce": pending.nonce,
        "state": pending.state,
        "dcql_query": policy.dcql(),
        "client_metadata": {"vp_formats_supported": {"dc+sd-jwt": {"sd-jwt_alg_values": algs, "kb-jwt_alg_values": algs}}},
        "aud": "https://self-issued.me/v2",
        "iat": now,
        "exp": pending.expires_at,
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}
