//! OpenID for Verifiable Presentations 1.0 (final) messages that need no network:
//! authorization request URIs, signed request objects (`typ: oauth-authz-req+jwt`), and the
//! `direct_post` response body.
//!
//! bizcred verifiers identify themselves with the `decentralized_identifier` Client Identifier
//! Prefix and sign their request objects with a key of that DID; the key-binding JWT's `aud`
//! is the full Client Identifier, prefix included (OpenID4VP 1.0 §5.9.3 and Appendix B.3.6).

use crate::ReasonCode;
use serde_json::{Map, Value};

use crate::jws::JwsError;
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

/// Why an OpenID4VP request or response was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The request URI or request object is longer than [`MAX_REQUEST_LEN`].
    #[error("the request is longer than {limit} bytes")]
    TooLong {
        /// The bound in bytes.
        limit: usize,
    },
    /// Neither an `openid4vp://` URI with a query nor a request object.
    #[error("not an openid4vp:// request URI or a request object")]
    NotARequest,
    /// A required parameter or claim is absent.
    #[error("the request has no {0}")]
    Missing(&'static str),
    /// `request_uri_method` is neither `get` nor `post`.
    #[error("request_uri_method is {0:?}, not get or post")]
    RequestUriMethod(String),
    /// A JSON-valued parameter does not parse.
    #[error("{name} is not JSON")]
    NotJson {
        /// The parameter.
        name: &'static str,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// An unsigned request uses another prefix than `redirect_uri:`.
    #[error("an unsigned request must use the redirect_uri: Client Identifier Prefix")]
    UnsignedNotRedirectUri,
    /// The request object is not a compact JWS with JSON claims.
    #[error("the request object does not decode")]
    Malformed(#[source] JwsError),
    /// The request object's `typ` is not [`REQUEST_TYP`].
    #[error("the request object's typ is not {REQUEST_TYP}")]
    WrongTyp,
    /// The Client Identifier's prefix is not one this wallet verifies.
    #[error("unsupported Client Identifier Prefix in {0}")]
    UnsupportedClientIdPrefix(String),
    /// The header `kid` is not a key of the Client Identifier's DID.
    #[error("kid {kid} is not a key of the client's DID")]
    ForeignKid {
        /// The header `kid`.
        kid: String,
    },
    /// The key named by `kid` could not be found.
    #[error("cannot resolve the request's key {kid}")]
    KeyUnresolved {
        /// The header `kid`.
        kid: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The request object's signature does not verify with the key of its `kid`.
    #[error("the request object's signature does not verify")]
    Signature(#[source] JwsError),
    /// The request object's `client_id` is not the request's.
    #[error("the request object's client_id differs from the request's")]
    ClientIdMismatch,
    /// `response_type` is not `vp_token`.
    #[error("response_type must be vp_token")]
    ResponseType,
    /// `response_mode` is not `direct_post`.
    #[error("response_mode must be direct_post")]
    ResponseMode,
    /// The nonce is empty or not URL-safe ASCII.
    #[error("nonce must be URL-safe ASCII")]
    BadNonce,
    /// `dcql_query` is absent or not an object.
    #[error("the request has no dcql_query object")]
    DcqlQuery,
    /// The request carries `transaction_data`, which bizcred does not support.
    #[error("transaction_data is not supported")]
    TransactionData,
    /// The wallet answered with an OpenID4VP error instead of a presentation.
    #[error("the wallet answered with error {error}")]
    WalletAnswered {
        /// The wallet's `error` code (e.g. `access_denied`).
        error: String,
    },
}

impl RequestError {
    /// The stable reason code.
    pub fn code(&self) -> ReasonCode {
        match self {
            RequestError::ForeignKid { .. }
            | RequestError::KeyUnresolved { .. }
            | RequestError::Signature(_)
            | RequestError::ClientIdMismatch => ReasonCode::RequestSignature,
            RequestError::WalletAnswered { .. } => ReasonCode::WalletErrorResponse,
            RequestError::TooLong { .. }
            | RequestError::NotARequest
            | RequestError::Missing(_)
            | RequestError::RequestUriMethod(_)
            | RequestError::NotJson { .. }
            | RequestError::UnsignedNotRedirectUri
            | RequestError::Malformed(_)
            | RequestError::WrongTyp
            | RequestError::UnsupportedClientIdPrefix(_)
            | RequestError::ResponseType
            | RequestError::ResponseMode
            | RequestError::BadNonce
            | RequestError::DcqlQuery
            | RequestError::TransactionData => ReasonCode::RequestMalformed,
        }
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
    if uri.len() > MAX_REQUEST_LEN {
        return Err(RequestError::TooLong {
            limit: MAX_REQUEST_LEN,
        });
    }
    let query = uri
        .split_once('?')
        .map(|(_, q)| q)
        .ok_or(RequestError::NotARequest)?;
    let mut params = Map::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        params.insert(k.into_owned(), Value::String(v.into_owned()));
    }
    let s = |k: &str| params.get(k).and_then(Value::as_str).map(str::to_owned);
    let client_id = s("client_id").ok_or(RequestError::Missing("client_id"))?;
    if let Some(r) = s("request_uri") {
        if let Some(m) = s("request_uri_method").filter(|m| m != "get" && m != "post") {
            return Err(RequestError::RequestUriMethod(m));
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
            let parsed: Value = serde_json::from_str(&v)
                .map_err(|source| RequestError::NotJson { name: k, source })?;
            params.insert(k.into(), parsed);
        }
    }
    if !client_id.starts_with("redirect_uri:") {
        return Err(RequestError::UnsignedNotRedirectUri);
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
/// header `kid` (a DID URL of the Client Identifier's DID); its error is kept as the source.
pub fn verify_request_object<E>(
    jwt: &str,
    client_id: &str,
    key_for: impl Fn(&str) -> Result<PublicKey, E>,
) -> Result<Map<String, Value>, RequestError>
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if jwt.len() > MAX_REQUEST_LEN {
        return Err(RequestError::TooLong {
            limit: MAX_REQUEST_LEN,
        });
    }
    let j = Jws::decode(jwt).map_err(RequestError::Malformed)?;
    if j.header_str("typ") != Some(REQUEST_TYP) {
        return Err(RequestError::WrongTyp);
    }
    let did = client_id
        .strip_prefix(DID_PREFIX)
        .ok_or_else(|| RequestError::UnsupportedClientIdPrefix(client_id.to_owned()))?;
    let kid = j.header_str("kid").ok_or(RequestError::Missing("kid"))?;
    if kid.split('#').next() != Some(did) {
        return Err(RequestError::ForeignKid {
            kid: kid.to_owned(),
        });
    }
    let key = key_for(kid).map_err(|e| RequestError::KeyUnresolved {
        kid: kid.to_owned(),
        source: e.into(),
    })?;
    j.verify(&key).map_err(RequestError::Signature)?;
    let claims = j.claims().map_err(RequestError::Malformed)?;
    if claims.get("client_id").and_then(Value::as_str) != Some(client_id) {
        return Err(RequestError::ClientIdMismatch);
    }
    check_request(&claims)?;
    Ok(claims)
}

/// Checks the members a bizcred wallet needs.
pub fn check_request(claims: &Map<String, Value>) -> Result<(), RequestError> {
    let s = |k: &str| claims.get(k).and_then(Value::as_str);
    if s("response_type") != Some("vp_token") {
        return Err(RequestError::ResponseType);
    }
    if s("response_mode") != Some("direct_post") {
        return Err(RequestError::ResponseMode);
    }
    let nonce = s("nonce").ok_or(RequestError::Missing("nonce"))?;
    if nonce.is_empty()
        || !nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    {
        return Err(RequestError::BadNonce);
    }
    s("response_uri").ok_or(RequestError::Missing("response_uri"))?;
    if !claims.get("dcql_query").is_some_and(Value::is_object) {
        return Err(RequestError::DcqlQuery);
    }
    if claims.contains_key("transaction_data") {
        return Err(RequestError::TransactionData);
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
    if let Some(error) = error {
        return Err(RequestError::WalletAnswered { error });
    }
    let vp = vp.ok_or(RequestError::Missing("vp_token"))?;
    let vp: Value = serde_json::from_str(&vp).map_err(|source| RequestError::NotJson {
        name: "vp_token",
        source,
    })?;
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

    fn claims_with(extra: serde_json::Value) -> Map<String, Value> {
        let mut m: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "client_id": "decentralized_identifier:did:key:z", "response_type": "vp_token",
            "response_mode": "direct_post", "response_uri": "http://localhost:9000/response",
            "nonce": "abc-123", "dcql_query": {"credentials": []},
        }))
        .expect("claims");
        for (k, v) in extra.as_object().expect("object") {
            if v.is_null() {
                m.remove(k);
            } else {
                m.insert(k.clone(), v.clone());
            }
        }
        m
    }

    /// A check of which variant an error is.
    type Is = fn(&RequestError) -> bool;

    #[test]
    fn each_refusal_is_its_own_variant_with_a_code() {
        use RequestError as E;
        let long = format!(
            "openid4vp://?client_id=x&pad={}",
            "a".repeat(MAX_REQUEST_LEN)
        );
        let e = parse_request_uri(&long).expect_err("long");
        assert!(
            matches!(
                e,
                E::TooLong {
                    limit: MAX_REQUEST_LEN
                }
            ),
            "{e}"
        );
        let cases: Vec<(&str, Is)> = vec![
            ("openid4vp://", |e| matches!(e, E::NotARequest)),
            ("openid4vp://?request_uri=x", |e| {
                matches!(e, E::Missing("client_id"))
            }),
            (
                "openid4vp://?client_id=c&request_uri=x&request_uri_method=put",
                |e| matches!(e, E::RequestUriMethod(m) if m == "put"),
            ),
            (
                "openid4vp://?client_id=redirect_uri:x&dcql_query=%7B",
                |e| {
                    matches!(
                        e,
                        E::NotJson {
                            name: "dcql_query",
                            ..
                        }
                    )
                },
            ),
            ("openid4vp://?client_id=x509_san_dns:x&nonce=n", |e| {
                matches!(e, E::UnsignedNotRedirectUri)
            }),
        ];
        for (uri, want) in cases {
            let e = parse_request_uri(uri).expect_err(uri);
            assert!(want(&e), "{uri}: {e:?}");
            assert_eq!(e.code(), ReasonCode::RequestMalformed, "{uri}");
        }
        let checks: Vec<(serde_json::Value, Is)> = vec![
            (serde_json::json!({"response_type": "code"}), |e| {
                matches!(e, E::ResponseType)
            }),
            (serde_json::json!({"response_mode": "fragment"}), |e| {
                matches!(e, E::ResponseMode)
            }),
            (serde_json::json!({"nonce": null}), |e| {
                matches!(e, E::Missing("nonce"))
            }),
            (serde_json::json!({"nonce": "a b"}), |e| {
                matches!(e, E::BadNonce)
            }),
            (serde_json::json!({"response_uri": null}), |e| {
                matches!(e, E::Missing("response_uri"))
            }),
            (serde_json::json!({"dcql_query": "x"}), |e| {
                matches!(e, E::DcqlQuery)
            }),
            (serde_json::json!({"transaction_data": ["x"]}), |e| {
                matches!(e, E::TransactionData)
            }),
        ];
        for (extra, want) in checks {
            let e = check_request(&claims_with(extra.clone())).expect_err("refused");
            assert!(want(&e), "{extra}: {e:?}");
            assert_eq!(e.code(), ReasonCode::RequestMalformed);
        }
        check_request(&claims_with(serde_json::json!({}))).expect("a good request");
        let e = parse_response_body(b"error=access_denied&state=s").expect_err("declined");
        assert!(matches!(&e, E::WalletAnswered { error } if error == "access_denied"));
        assert_eq!(e.code(), ReasonCode::WalletErrorResponse);
        let e = parse_response_body(b"state=s").expect_err("no vp_token");
        assert!(matches!(e, E::Missing("vp_token")));
        let e = parse_response_body(b"vp_token=%7B").expect_err("not JSON");
        assert!(matches!(
            e,
            E::NotJson {
                name: "vp_token",
                ..
            }
        ));
        assert!(
            std::error::Error::source(&e).is_some(),
            "the parse error is kept"
        );
    }

    #[test]
    fn request_object_refusals_keep_their_cause() {
        use RequestError as E;
        let key = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        let did = crate::did::did_jwk(&key.public_key());
        let client_id = format!("{DID_PREFIX}{did}");
        let mut claims = claims_with(serde_json::json!({}));
        claims.insert("client_id".into(), client_id.clone().into());
        let kid = format!("{did}#0");
        let jwt = sign_request_object(&claims, &kid, &key).expect("sign");
        let resolve = |k: &str| crate::did::resolve_key(k).map_err(|e| e.to_string());

        let e = verify_request_object("not a jws", &client_id, resolve).expect_err("malformed");
        assert!(matches!(e, E::Malformed(_)), "{e:?}");
        let e = verify_request_object(&jwt, "redirect_uri:x", resolve).expect_err("prefix");
        assert!(matches!(e, E::UnsupportedClientIdPrefix(_)), "{e:?}");
        let other =
            crate::did::did_jwk(&SecretKey::generate(Algorithm::EdDSA, &mut OsRng).public_key());
        let foreign = sign_request_object(&claims, &format!("{other}#0"), &key).expect("sign");
        let e = verify_request_object(&foreign, &client_id, resolve).expect_err("foreign kid");
        assert!(matches!(e, E::ForeignKid { .. }), "{e:?}");
        assert_eq!(e.code(), ReasonCode::RequestSignature);
        let e =
            verify_request_object(&jwt, &client_id, |_| Err("offline")).expect_err("unresolved");
        assert!(matches!(&e, E::KeyUnresolved { .. }), "{e:?}");
        assert_eq!(
            std::error::Error::source(&e)
                .map(ToString::to_string)
                .as_deref(),
            Some("offline")
        );
        let forger = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        let forged = sign_request_object(&claims, &kid, &forger).expect("sign");
        let e = verify_request_object(&forged, &client_id, resolve).expect_err("forged");
        assert!(matches!(&e, E::Signature(JwsError::BadSignature)), "{e:?}");
        assert_eq!(e.code(), ReasonCode::RequestSignature);
        let mut other_client = claims.clone();
        other_client.insert("client_id".into(), format!("{client_id}x").into());
        let jwt2 = sign_request_object(&other_client, &kid, &key).expect("sign");
        let e = verify_request_object(&jwt2, &client_id, resolve).expect_err("client_id");
        assert!(matches!(e, E::ClientIdMismatch), "{e:?}");
        let mut header = Map::new();
        header.insert("typ".into(), "JWT".into());
        header.insert("kid".into(), kid.clone().into());
        let untyped =
            jws::sign(header, Value::Object(claims).to_string().as_bytes(), &key).expect("sign");
        let e = verify_request_object(&untyped, &client_id, resolve).expect_err("typ");
        assert!(matches!(e, E::WrongTyp), "{e:?}");
    }
}
