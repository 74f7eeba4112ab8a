//! The OpenID4VP 1.0 client: reading and verifying a request (URI, by reference, or a bare
//! request object handed over as a file), matching its DCQL query against held credentials,
//! building the key-bound presentation, and sending it by `direct_post`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use bizcred_core::keys::SecretKey;
use bizcred_core::oid4vp::{self, AuthorizationRequest};
use bizcred_core::sd_jwt::{self, ClaimPath, SdJwt};
use bizcred_schemas::{CredentialType, Lang, ReasonCode};

use crate::error::WalletError;
use crate::history::{Disclosed, HistoryEntry};
use crate::issuance::SD_JWT_VC_FORMAT;
use crate::net;
use crate::store::{value_at, StoredCredential};
use crate::vault::Vault;

/// A verified presentation request (the request object's claims this wallet uses).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct PresentationRequest {
    /// The verifier's Client Identifier (prefix included).
    pub client_id: String,
    /// The nonce the key-binding JWT must carry.
    pub nonce: String,
    /// The state to echo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Where to `direct_post` the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_uri: Option<String>,
    /// What is asked for.
    pub dcql_query: DcqlQuery,
    /// The verifier's metadata (its name, when it gives one).
    #[serde(default)]
    pub client_metadata: ClientMetadata,
}

/// The verifier metadata this wallet shows.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct ClientMetadata {
    /// The verifier's name (RFC 7591 `client_name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
}

/// A DCQL query (OpenID4VP 1.0 §6).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct DcqlQuery {
    /// The credential queries; every one must be answered.
    pub credentials: Vec<CredentialQuery>,
    /// Credential sets, read for their `purpose` only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credential_sets: Vec<CredentialSetQuery>,
}

/// One credential query.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct CredentialQuery {
    /// The query id (the key of the `vp_token` member).
    pub id: String,
    /// The format (this wallet answers `dc+sd-jwt`).
    pub format: String,
    /// Type constraints.
    #[serde(default)]
    pub meta: CredentialQueryMeta,
    /// The claims asked for (empty: every claim).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<ClaimsQuery>,
}

/// The `meta` of an SD-JWT VC query.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct CredentialQueryMeta {
    /// Acceptable types (empty: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vct_values: Vec<String>,
}

/// One claims query.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ClaimsQuery {
    /// The claim path (strings, indices, `null` for every element).
    pub path: Vec<Value>,
    /// Acceptable values (none: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<Value>>,
}

/// A credential set query (its `purpose` is shown to the user).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct CredentialSetQuery {
    /// Why the verifier asks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<Value>,
}

impl PresentationRequest {
    /// Reads the request object's claims (already checked by the core).
    pub fn from_claims(claims: Map<String, Value>) -> Result<PresentationRequest, WalletError> {
        oid4vp::check_request(&claims)?;
        serde_json::from_value(Value::Object(claims)).map_err(|source| WalletError::BadJson {
            what: "the presentation request",
            source,
        })
    }

    /// The verifier's stated purpose, when it gives one (the credential sets' purposes).
    pub fn purpose(&self) -> Option<String> {
        let p: Vec<String> = self
            .dcql_query
            .credential_sets
            .iter()
            .filter_map(|s| match &s.purpose {
                Some(Value::String(t)) => Some(t.clone()),
                Some(Value::Object(m)) => m.values().find_map(Value::as_str).map(str::to_owned),
                _ => None,
            })
            .collect();
        (!p.is_empty()).then(|| p.join("; "))
    }
}

/// Where a request comes from, before verification.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestSource {
    /// A signed request object to fetch from `request_uri`.
    ByReference {
        /// The Client Identifier in the URI.
        client_id: String,
        /// Where the request object is.
        request_uri: String,
    },
    /// A signed request object in hand.
    Signed {
        /// The Client Identifier (from the URI, or the object for a bare file).
        client_id: String,
        /// The request object.
        jwt: String,
    },
    /// An unsigned request (`redirect_uri:` prefix), already checked.
    Plain(Box<PresentationRequest>),
}

/// Parses an `openid4vp://` URI, or a bare request object (offline exchange). No network.
pub fn parse_request(text: &str) -> Result<RequestSource, WalletError> {
    let text = text.trim();
    if text.starts_with("openid4vp:") || text.contains("client_id=") {
        return Ok(match oid4vp::parse_request_uri(text)? {
            AuthorizationRequest::ByReference {
                client_id,
                request_uri,
            } => RequestSource::ByReference {
                client_id,
                request_uri,
            },
            AuthorizationRequest::Signed { client_id, request } => RequestSource::Signed {
                client_id,
                jwt: request,
            },
            AuthorizationRequest::Plain(params) => {
                RequestSource::Plain(Box::new(PresentationRequest::from_claims(params)?))
            }
        });
    }
    // A bare request object: the client_id is inside; the signature still has to verify with
    // that client's DID.
    let not_a_request = || WalletError::Request(oid4vp::RequestError::NotARequest);
    let j = bizcred_core::jws::Jws::decode(text).map_err(|_| not_a_request())?;
    let client_id = j
        .claims()
        .map_err(|_| not_a_request())?
        .get("client_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or(WalletError::Request(oid4vp::RequestError::Missing(
            "client_id",
        )))?;
    Ok(RequestSource::Signed {
        client_id,
        jwt: text.to_owned(),
    })
}

/// Fetches (if by reference) and verifies a request with the key of the verifier's DID.
pub async fn load_request(
    c: &reqwest::Client,
    source: RequestSource,
    now: i64,
    progress: &mut dyn FnMut(&str),
) -> Result<PresentationRequest, WalletError> {
    let (client_id, jwt) = match source {
        RequestSource::Plain(r) => return Ok(*r),
        RequestSource::Signed { client_id, jwt } => (client_id, jwt),
        RequestSource::ByReference {
            client_id,
            request_uri,
        } => {
            progress(&format!("fetching the request from {request_uri}"));
            let jwt = net::get_text(c, &request_uri, "the presentation request").await?;
            (client_id, jwt)
        }
    };
    let header = bizcred_core::jws::Jws::decode(&jwt)
        .map_err(|e| WalletError::Request(oid4vp::RequestError::Malformed(e)))?;
    let kid = header
        .header_str("kid")
        .ok_or(WalletError::Request(oid4vp::RequestError::Missing("kid")))?
        .to_owned();
    let key = net::resolve_key(c, &kid, now, now, false).await?;
    let claims = oid4vp::verify_request_object(&jwt, &client_id, |_| {
        Ok::<_, std::convert::Infallible>(key.clone())
    })
    .map_err(|e| match e.code() {
        ReasonCode::RequestSignature => WalletError::RequestSignature(e),
        _ => WalletError::Request(e),
    })?;
    PresentationRequest::from_claims(claims)
}

/// A held credential chosen to answer one credential query, and what it will disclose.
#[derive(Debug, Clone)]
pub struct Chosen {
    /// The DCQL credential query id.
    pub query_id: String,
    /// The credential.
    pub credential: StoredCredential,
    /// The claim paths to disclose (claims the credential lacks are not disclosed).
    pub paths: Vec<ClaimPath>,
}

fn matches_claims(claims: &Map<String, Value>, q: &[ClaimsQuery]) -> bool {
    q.iter()
        .all(|cq| match (value_at(claims, &cq.path), &cq.values) {
            (Some(val), Some(allowed)) => allowed.contains(val),
            (Some(_), None) => true,
            (None, _) => false,
        })
}

/// Matches a DCQL query against held credentials: for each credential query, the most recent
/// usable credential (not expired at `now`, not last seen revoked) of an accepted type whose
/// claims satisfy every claims query. Every query must be answered.
pub fn match_dcql(
    held: &[StoredCredential],
    query: &DcqlQuery,
    now: i64,
) -> Result<Vec<Chosen>, WalletError> {
    let mut out = Vec::new();
    for q in &query.credentials {
        if q.format != SD_JWT_VC_FORMAT {
            return Err(WalletError::UnsupportedFormat {
                format: q.format.clone(),
            });
        }
        let vcts = &q.meta.vct_values;
        let mut candidates: Vec<(&StoredCredential, Map<String, Value>)> = Vec::new();
        for c in held {
            if !(vcts.is_empty() || vcts.contains(&c.vct)) || !c.is_usable(now) {
                continue;
            }
            // A damaged stored credential cannot answer anything; it is skipped here and
            // reported by `show`.
            let Ok(claims) = c.claims() else { continue };
            if q.claims.is_empty() || matches_claims(&claims, &q.claims) {
                candidates.push((c, claims));
            }
        }
        // The most recent first; among equals, the last received.
        candidates.sort_by_key(|(c, _)| std::cmp::Reverse((c.iat, c.received_at)));
        let Some((best, claims)) = candidates.into_iter().next() else {
            let wanted = vcts
                .first()
                .map(|v| type_name(v, Lang::En))
                .unwrap_or_else(|| q.id.clone());
            return Err(WalletError::NoMatch {
                query_id: q.id.clone(),
                wanted,
            });
        };
        let paths: Vec<ClaimPath> = if q.claims.is_empty() {
            claims.keys().map(|k| sd_jwt::key_path(&[k])).collect()
        } else {
            q.claims
                .iter()
                .filter(|cq| value_at(&claims, &cq.path).is_some())
                .filter_map(|cq| sd_jwt::claim_path(&Value::Array(cq.path.clone())))
                .collect()
        };
        out.push(Chosen {
            query_id: q.id.clone(),
            credential: best.clone(),
            paths,
        });
    }
    Ok(out)
}

/// A credential type's display name (else the vct).
pub fn type_name(vct: &str, lang: Lang) -> String {
    CredentialType::from_vct(vct)
        .map(|t| t.metadata().display_name(lang).to_owned())
        .unwrap_or_else(|| vct.to_owned())
}

/// The presentation: the `vp_token` and what it discloses.
#[derive(Debug, Clone, PartialEq)]
pub struct Presentation {
    /// The `vp_token` (query id → array of presentations).
    pub vp_token: Value,
    /// What is disclosed, for the history.
    pub disclosed: Vec<Disclosed>,
}

/// Builds the key-bound presentations for the chosen credentials (`now` in seconds).
pub fn build_presentation(
    key: &SecretKey,
    req: &PresentationRequest,
    chosen: &[Chosen],
    now: i64,
) -> Result<Presentation, WalletError> {
    let mut vp = Map::new();
    let mut disclosed = Vec::new();
    for ch in chosen {
        let damaged = |source| WalletError::StoredCredential {
            id: ch.credential.id.clone(),
            source,
        };
        let sd = SdJwt::parse(&ch.credential.credential).map_err(damaged)?;
        let p = sd
            .select(&ch.paths)
            .map_err(damaged)?
            .bind(&req.client_id, &req.nonce, now, key)
            .map_err(damaged)?;
        vp.insert(ch.query_id.clone(), json!([p.serialize()]));
        disclosed.push(Disclosed {
            credential: ch.credential.id.clone(),
            vct: ch.credential.vct.clone(),
            claims: ch
                .paths
                .iter()
                .map(|p| match sd_jwt::claim_path_json(p) {
                    Value::Array(a) => a,
                    other => vec![other],
                })
                .collect(),
        });
    }
    Ok(Presentation {
        vp_token: Value::Object(vp),
        disclosed,
    })
}

/// The presentation file of the offline exchange.
pub fn presentation_file(req: &PresentationRequest, p: &Presentation) -> Value {
    json!({"vp_token": p.vp_token, "state": req.state, "client_id": req.client_id, "nonce": req.nonce})
}

/// What the verifier answered to a `direct_post`.
#[derive(Debug, Clone, PartialEq)]
pub enum VerifierAnswer {
    /// A success status, with the verdict when the verifier gives one.
    Answered {
        /// `ACCEPT`, `REJECT`, ... (none: the verifier gave no verdict).
        verdict: Option<String>,
        /// The failure codes it lists.
        failures: Vec<String>,
        /// The body as sent (JSON, or `null`).
        body: Value,
    },
    /// An error status: the presentation was refused.
    Refused {
        /// The HTTP status code.
        status: u16,
        /// The OAuth `error` member.
        error: Option<String>,
        /// The OAuth `error_description` member.
        description: Option<String>,
        /// The body (JSON, or `null`).
        body: Value,
    },
}

#[derive(Deserialize)]
struct VerdictBody {
    #[serde(default)]
    verdict: Option<String>,
    #[serde(default)]
    failures: Vec<Failure>,
}

#[derive(Deserialize)]
struct Failure {
    #[serde(default)]
    code: Option<String>,
}

impl VerifierAnswer {
    /// Reads a verifier's answer from its status and body.
    pub fn from_response(status: u16, text: &str) -> VerifierAnswer {
        // A body that is not JSON carries no verdict or error members; it is kept as null.
        let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        if !(200..300).contains(&status) {
            let e = net::ErrorBody::parse(text);
            return VerifierAnswer::Refused {
                status,
                error: e.error,
                description: e.error_description,
                body,
            };
        }
        // An OpenID4VP verifier answers a success with any JSON object (bizcred's with `{}`); a
        // verdict is shown only when the verifier chose to send one in this shape.
        let v: Option<VerdictBody> = serde_json::from_value(body.clone()).ok();
        let (verdict, failures) = match v {
            Some(v) => (
                v.verdict,
                v.failures.into_iter().filter_map(|f| f.code).collect(),
            ),
            None => (None, Vec::new()),
        };
        VerifierAnswer::Answered {
            verdict,
            failures,
            body,
        }
    }

    /// The outcome for the history: the verdict, `sent`, or `refused (<status>)`.
    pub fn outcome(&self) -> String {
        match self {
            VerifierAnswer::Answered {
                verdict: Some(v), ..
            } => v.clone(),
            VerifierAnswer::Answered { verdict: None, .. } => "sent".into(),
            VerifierAnswer::Refused { status, .. } => format!("refused ({status})"),
        }
    }

    /// True when the verifier accepted (or answered success without a verdict).
    pub fn accepted(&self) -> bool {
        matches!(self.outcome().as_str(), "ACCEPT" | "sent")
    }
}

/// Sends the presentation by `direct_post` to the request's `response_uri`.
pub async fn send_presentation(
    c: &reqwest::Client,
    req: &PresentationRequest,
    p: &Presentation,
) -> Result<VerifierAnswer, WalletError> {
    let uri = req
        .response_uri
        .as_deref()
        .ok_or(WalletError::NoResponseUri)?;
    let body = oid4vp::response_body(&p.vp_token, req.state.as_deref());
    let a = net::send(
        c.post(uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body),
        "the presentation response",
        uri,
    )
    .await?;
    Ok(VerifierAnswer::from_response(a.status, &a.text))
}

/// Records that the user declined `req` (nothing was sent).
pub fn record_declined(
    vault: &dyn Vault,
    req: &PresentationRequest,
    now: i64,
) -> Result<(), WalletError> {
    Ok(vault.append_history(&HistoryEntry {
        time: now,
        verifier: req.client_id.clone(),
        channel: "declined".into(),
        credentials: Vec::new(),
        outcome: "declined".into(),
    })?)
}

/// Records a presentation written to a file for the offline exchange.
pub fn record_written(
    vault: &dyn Vault,
    req: &PresentationRequest,
    p: &Presentation,
    file: &std::path::Path,
    now: i64,
) -> Result<(), WalletError> {
    Ok(vault.append_history(&HistoryEntry {
        time: now,
        verifier: req.client_id.clone(),
        channel: format!("file {}", file.display()),
        credentials: p.disclosed.clone(),
        outcome: "written".into(),
    })?)
}

/// Sends the presentation by `direct_post` and records what was disclosed and how the
/// verifier answered (a refusal included) in the history.
pub async fn send_and_record(
    c: &reqwest::Client,
    vault: &dyn Vault,
    req: &PresentationRequest,
    p: &Presentation,
    now: i64,
) -> Result<VerifierAnswer, WalletError> {
    let uri = req
        .response_uri
        .as_deref()
        .ok_or(WalletError::NoResponseUri)?;
    let answer = send_presentation(c, req, p).await?;
    vault.append_history(&HistoryEntry {
        time: now,
        verifier: req.client_id.clone(),
        channel: uri.to_owned(),
        credentials: p.disclosed.clone(),
        outcome: answer.outcome(),
    })?;
    Ok(answer)
}
