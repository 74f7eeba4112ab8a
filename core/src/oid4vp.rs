//! OpenID for Verifiable Presentations 1.0 (final) messages that need no network:
//! authorization request URIs, signed request objects (`typ: oauth-authz-req+jwt`), and the
//! `direct_post` response body.
//!
//! bizcred verifiers identify themselves with the `decentralized_identifier` Client Identifier
//! Prefix and sign their request objects with a key of that DID; the key-binding JWT's `aud`
//! is the full Client Identifier, prefix included (OpenID4VP 1.0 §5.9.3 and Appendix B.3.6).

use crate::ReasonCode;
use serde_json::{Map, Value};

use crate::jws::{self, Jws};
use crate::keys::{PublicKey, SignError, Signer};

/// The request object `typ`.
pub const REQUEST_TYP: &str = "oauth-authz-req+jwt";
/// The wallet URI scheme.
pub const SCHEME: &str = "openid4vp://";
/// The `decentralized_identifier` Client Identifier Prefix.
pub const DID_PREFIX: &str = "decentralized_identifier:";
/// Largest request URI or object.
pub const MAX_REQUEST_LEN: usize = 128 * 1024;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid OpenID4VP request: {0}")]
pub struct RequestError(pub String);

impl RequestError {
    /// The stable reason code.
    pub fn code(&self) -> ReasonCode {
        ReasonCode::RequestMalformed
    }
}

/// An authorization request as found in the URI.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthorizationRequest {
    /// `client_id` and `request_uri` (the request object is fetched).
    ByReference {
        /// The Client Identifier.
        client_id: String,
        /// Where to fetch the request object.
        request_uri: String,
    },
    /// `request=<jwt>` by value.
    Signed {
        /// The Client Identifier.
        client_id: String,
        /// The request object.
        request: String,
    },
    /// Unsigned parameters in the URI (`redirect_uri:` Client Identifier Prefix).
    Plain(Map<String, Value>),
}

/// The wallet URI for a request object by reference.
pub fn request_uri(client_id: &str, request_uri: &str) -> String {
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", client_id)
        .append_pair("request_uri", request_uri)
        .append_pair("request_uri_method", "get")
        .finish();
    format!("{SCHEME}?{q}")
}

/// Parses an authorization request URI.
pub fn parse_request_uri(uri: &str) -> Result<AuthorizationRequest, RequestError> {
    let bad = |m: &str| RequestError(m.to_owned());
    if uri.len() > MAX_REQUEST_LEN {
        return Err(bad("too long"));
    }
    let query = uri
        .split_once('?')
        .map(|(_, q)| q)
        .ok_or_else(|| bad("no query"))?;
    let mut params = Map::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        params.insert(k.into_owned(), Value::String(v.into_owned()));
    }
    let s = |k: &str| params.get(k).and_then(Value::as_str).map(str::to_owned);
    let client_id = s("client_id").ok_or_else(|| bad("no client_id"))?;
    if let Some(r) = s("request_uri") {
        if s("request_uri_method").is_some_and(|m| m != "get" && m != "post") {
            return Err(bad("request_uri_method is get or post"));
        }
        return Ok(AuthorizationRequest::ByReference {
            client_id,
            request_uri: r,
        });
    }
    if let Some(r) = s("request") {
        return Ok(AuthorizationRequest::Signed {
            client_id,
            request: r,
        });
    }
    // Parameters by value: JSON-valued members arrive as strings.
    for k in ["dcql_query", "client_metadata"] {
        let text = params.get(k).and_then(Value::as_str).map(str::to_owned);
        if let Some(v) = text {
            let parsed: Value =
                serde_json::from_str(&v).map_err(|_| bad(&format!("{k} is not JSON")))?;
            params.insert(k.into(), parsed);
        }
    }
    if !client_id.starts_with("redirect_uri:") {
        return Err(bad(
            "an unsigned request must use the redirect_uri: Client Identifier Prefix",
        ));
    }
    Ok(AuthorizationRequest::Plain(params))
}

/// Signs a request object. `claims` must hold `client_id`, `response_type`, `response_mode`,
/// `response_uri`, `nonce`, `state` and `dcql_query`.
pub fn sign_request_object(
    claims: &Map<String, Value>,
    kid: &str,
    signer: &impl Signer,
) -> Result<String, SignError> {
    let mut header = Map::new();
    header.insert("typ".into(), REQUEST_TYP.into());
    header.insert("kid".into(), kid.into());
    jws::sign(
        header,
        Value::Object(claims.clone()).to_string().as_bytes(),
        signer,
    )
}

/// Verifies a signed request object for `client_id`. `key_for` finds the key named by the
/// header `kid` (a DID URL of the Client Identifier's DID).
pub fn verify_request_object(
    jwt: &str,
    client_id: &str,
    key_for: impl Fn(&str) -> Result<PublicKey, String>,
) -> Result<Map<String, Value>, RequestError> {
    let bad = |m: String| RequestError(m);
    if jwt.len() > MAX_REQUEST_LEN {
        return Err(bad("too long".into()));
    }
    let j = Jws::decode(jwt).map_err(|e| bad(e.to_string()))?;
    if j.header_str("typ") != Some(REQUEST_TYP) {
        return Err(bad("typ is not oauth-authz-req+jwt".into()));
    }
    let did = client_id.strip_prefix(DID_PREFIX).ok_or_else(|| {
        bad(format!(
            "unsupported Client Identifier Prefix in {client_id}"
        ))
    })?;
    let kid = j.header_str("kid").ok_or_else(|| bad("no kid".into()))?;
    if kid.split('#').next() != Some(did) {
        return Err(bad("kid is not a key of the client's DID".into()));
    }
    let key = key_for(kid).map_err(bad)?;
    j.verify(&key).map_err(|e| bad(e.to_string()))?;
    let claims = j.claims().map_err(|e| bad(e.to_string()))?;
    if claims.get("client_id").and_then(Value::as_str) != Some(client_id) {
        return Err(bad(
            "the request object's client_id differs from the request's".into(),
        ));
    }
    check_request(&claims)?;
    Ok(claims)
}

/// Checks the members a bizcred wallet needs.
pub fn check_request(claims: &Map<String, Value>) -> Result<(), RequestError> {
    let s = |k: &str| claims.get(k).and_then(Value::as_str);
    if s("response_type") != Some("vp_token") {
        return Err(RequestError("response_type must be vp_token".into()));
    }
    if s("response_mode") != Some("direct_post") {
        return Err(RequestError("response_mode must be direct_post".into()));
    }
    let nonce = s("nonce").ok_or_else(|| RequestError("no nonce".into()))?;
    if nonce.is_empty()
        || !nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    {
        return Err(RequestError("nonce must be URL-safe ASCII".into()));
    }
    s("response_uri").ok_or_else(|| RequestError("no response_uri".into()))?;
    if !claims.get("dcql_query").is_some_and(Value::is_object) {
        return Err(RequestError("no dcql_query".into()));
    }
    if claims.contains_key("transaction_data") {
        return Err(RequestError("transaction_data is not supported".into()));
    }
    Ok(())
}

/// The `direct_post` body: `vp_token` (JSON) and `state`, form-encoded.
pub fn response_body(vp_token: &Value, state: Option<&str>) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    s.append_pair("vp_token", &vp_token.to_string());
    if let Some(st) = state {
        s.append_pair("state", st);
    }
    s.finish()
}

/// Parses a `direct_post` body: `(vp_token, state)`, or the wallet's `error`.
pub fn parse_response_body(body: &[u8]) -> Result<(Value, Option<String>), RequestError> {
    let mut vp = None;
    let mut state = None;
    let mut error = None;
    for (k, v) in form_urlencoded::parse(body) {
        match k.as_ref() {
            "vp_token" => vp = Some(v.into_owned()),
            "state" => state = Some(v.into_owned()),
            "error" => error = Some(v.into_owned()),
            _ => {}
        }
    }
    if let Some(e) = error {
        return Err(RequestError(format!("the wallet answered with error {e}")));
    }
    let vp = vp.ok_or_else(|| RequestError("no vp_token".into()))?;
    let vp: Value =
        serde_json::from_str(&vp).map_err(|_| RequestError("vp_token is not JSON".into()))?;
    Ok((vp, state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Algorithm, SecretKey};
    use rand_core::OsRng;

    #[test]
    fn request_round_trip() {
        let key = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        let did = crate::did::did_jwk(&key.public_key());
        let client_id = format!("{DID_PREFIX}{did}");
        let claims: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "client_id": client_id, "response_type": "vp_token", "response_mode": "direct_post",
            "response_uri": "http://localhost:9000/response", "nonce": "abc-123", "state": "s1",
            "dcql_query": {"credentials": []},
        }))
        .expect("claims");
        let jwt = sign_request_object(&claims, &format!("{did}#0"), &key).expect("sign");
        let uri = request_uri(&client_id, "http://localhost:9000/request/s1");
        let AuthorizationRequest::ByReference { client_id: c, .. } =
            parse_request_uri(&uri).expect("parse")
        else {
            panic!("by reference")
        };
        let got = verify_request_object(&jwt, &c, |kid| {
            crate::did::resolve_key(kid).map_err(|e| e.to_string())
        })
        .expect("verify");
        assert_eq!(got["nonce"], "abc-123");
        let other = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        let forged = sign_request_object(&claims, &format!("{did}#0"), &other).expect("sign");
        assert!(
            verify_request_object(&forged, &c, |kid| crate::did::resolve_key(kid)
                .map_err(|e| e.to_string()))
            .is_err()
        );
        let body = response_body(&serde_json::json!({"a": ["x"]}), Some("s1"));
        assert_eq!(
            parse_response_body(body.as_bytes()).expect("p"),
            (serde_json::json!({"a": ["x"]}), Some("s1".into()))
        );
    }
}
