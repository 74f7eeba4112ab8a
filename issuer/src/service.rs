//! The issuer's HTTP API (axum); `app` builds the router so tests run it without a socket.
//!
//! Wallet-facing (OpenID4VCI 1.0 final): `/.well-known/openid-credential-issuer`,
//! `/.well-known/oauth-authorization-server`, `/credential-offer/{id}`, `/token`, `/nonce`,
//! `/credential`, `/notification`; the did:webvh log at `/.well-known/did.jsonl`; the status
//! lists at `/status/{n}`; OpenID4VP for prerequisites at `/oid4vp/request/{id}` and
//! `/oid4vp/response`.
//!
//! DPoP (RFC 9449): a token request with a `DPoP` header gets a DPoP-bound token; the
//! credential and notification endpoints take `Authorization: DPoP <token>` with a proof, or
//! `Authorization: Bearer <token>` for a token bound to no key. Proofs must carry a nonce the
//! issuer supplied: every answer to a request with DPoP (and every nonce response) carries the
//! next one in `DPoP-Nonce`; a proof without a good one is answered `use_dpop_nonce` (400 at
//! the token endpoint; 401 with a `WWW-Authenticate: DPoP` challenge at the credential and
//! notification endpoints, as every DPoP refusal there).
//!
//! Automation (bearer admin token, compared in constant time; 401 without a token, 403 with
//! a wrong one; every action is taken as [`Actor::Automation`]): `/admin/applications`,
//! `/admin/applications/{id}`, `/admin/applications/{id}/approve`,
//! `/admin/applications/{id}/refuse`, `/admin/applications/{id}/request-changes`,
//! `/admin/applications/{id}/withdraw` (each of these three with `{"reason": ...}`),
//! `/admin/credentials`, `/admin/credentials/{id}/{action}` (`revoke`, `suspend`, `reinstate`;
//! `{"reason": ...}`, required to revoke or suspend), `/admin/keys/rotate`, `/admin/audit`.
//!
//! Operations (merged by `bizcred_cli::serve` when the binary serves): `/healthz`, `/readyz`
//! with the checks of [`health`], `/metrics` with the issuer's metrics of [`metrics`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use bizcred_cli::serve::{Health, Metrics};
use bizcred_schemas::ReasonCode;

use crate::issuer::{Actor, Error, Issuer, Presented, StatusAction};
use crate::store::StoreError;

/// An error answered over HTTP: status, OAuth/OpenID error code, and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Error code (`invalid_grant`, `invalid_proof`, ...).
    pub error: &'static str,
    /// Human description (ASCII).
    pub description: String,
    /// The reason code of a refusal of the issuance core (`code` in the body).
    pub code: Option<ReasonCode>,
    /// The `WWW-Authenticate` challenge, when not the default (`Bearer error="invalid_token"`
    /// on a 401 `invalid_token`).
    pub challenge: Option<String>,
    /// The next DPoP nonce (`DPoP-Nonce`).
    pub dpop_nonce: Option<String>,
}

impl ApiError {
    /// A new error.
    pub fn new(
        status: StatusCode,
        error: &'static str,
        description: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            error,
            description: description.into(),
            code: None,
            challenge: None,
            dpop_nonce: None,
        }
    }

    /// The error as a protected resource (the credential and notification endpoints) answers
    /// it, to a request that presented its token with the `DPoP` scheme (`dpop`) or not: DPoP
    /// refusals are a 401 with a `WWW-Authenticate: DPoP` challenge naming the error (RFC 9449
    /// §7.1, §9), and so is `invalid_token` when DPoP is involved.
    fn at_resource(mut self, dpop: bool) -> ApiError {
        let dpop_code = self.code.is_some_and(|c| c.as_str().starts_with("DPOP_"));
        match self.error {
            "invalid_dpop_proof" | "use_dpop_nonce" => self.status = StatusCode::UNAUTHORIZED,
            "invalid_token" if dpop || dpop_code => {}
            _ => return self,
        }
        let description: String = self
            .description
            .chars()
            .filter(|c| matches!(c, ' '..='~') && *c != '"' && *c != '\\')
            .take(200)
            .collect();
        self.challenge = Some(format!(
            "DPoP error=\"{}\", error_description=\"{description}\", algs=\"{}\"",
            self.error,
            dpop_algs()
        ));
        self
    }

    /// A `500 server_error` with `cause` as its description.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            cause.to_string(),
        )
    }
}

/// The OpenID4VCI / OAuth response of each refusal of the issuance core.
impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let (status, error) = match &e {
            Error::NoGrantType
            | Error::NoPreAuthorizedCode
            | Error::NoTxCode
            | Error::ApplicationTypeUnknown { .. }
            | Error::VerifiedClaimChanged { .. }
            | Error::ClaimsInvalid { .. }
            | Error::UnknownName { .. }
            | Error::ReasonRequired { .. }
            | Error::ReasonTooLong { .. }
            | Error::BadPresentation(_)
            | Error::NoState
            | Error::UnknownState
            | Error::PresentationReplay => (StatusCode::BAD_REQUEST, "invalid_request"),
            Error::UnsupportedGrantType => (StatusCode::BAD_REQUEST, "unsupported_grant_type"),
            Error::UnknownCode | Error::CodeUsedOrExpired | Error::WrongTxCode { .. } => {
                (StatusCode::BAD_REQUEST, "invalid_grant")
            }
            Error::InvalidToken => (StatusCode::UNAUTHORIZED, "invalid_token"),
            Error::BadCredentialRequest(_) => {
                (StatusCode::BAD_REQUEST, "invalid_credential_request")
            }
            Error::UnknownConfiguration { .. } => {
                (StatusCode::BAD_REQUEST, "unknown_credential_configuration")
            }
            Error::BadProof(_) | Error::ProofRefused(_) => {
                (StatusCode::BAD_REQUEST, "invalid_proof")
            }
            Error::InvalidNonce => (StatusCode::BAD_REQUEST, "invalid_nonce"),
            Error::Dpop(_)
            | Error::DpopReplay
            | Error::DpopKeyMismatch
            | Error::DpopProofMissing => (StatusCode::BAD_REQUEST, "invalid_dpop_proof"),
            Error::DpopNonceMissing | Error::DpopNonceInvalid => {
                (StatusCode::BAD_REQUEST, "use_dpop_nonce")
            }
            Error::DpopTokenAsBearer | Error::DpopTokenNotBound => {
                (StatusCode::UNAUTHORIZED, "invalid_token")
            }
            Error::InvalidNotificationId => (StatusCode::BAD_REQUEST, "invalid_notification_id"),
            Error::InvalidNotificationRequest(_) => {
                (StatusCode::BAD_REQUEST, "invalid_notification_request")
            }
            Error::CredentialRevoked => (StatusCode::BAD_REQUEST, "credential_request_denied"),
            Error::StatusListFull | Error::NoFreeIndex => {
                (StatusCode::SERVICE_UNAVAILABLE, "server_error")
            }
            Error::OfferNotFound | Error::OfferUsedOrExpired => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            Error::NotAwaitingApproval { .. }
            | Error::NotWithdrawable { .. }
            | Error::ClaimsLocked { .. } => (StatusCode::CONFLICT, "invalid_request"),
            Error::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            Error::CapabilityInvalid => (StatusCode::FORBIDDEN, "access_denied"),
            Error::ApplicantClaimNotAllowed { .. } => (StatusCode::BAD_REQUEST, "invalid_request"),
            Error::ApplicantsThrottled => (StatusCode::TOO_MANY_REQUESTS, "slow_down"),
            Error::StatusNotPublished { .. } => (StatusCode::SERVICE_UNAVAILABLE, "server_error"),
            Error::RequestAnswered => (StatusCode::NOT_FOUND, "invalid_request_uri"),
            Error::Store(StoreError::NotFound { .. }) => (StatusCode::NOT_FOUND, "not_found"),
            Error::Store(
                StoreError::IndexTaken(_)
                | StoreError::TokenUsed
                | StoreError::CodeUsedOrExpired
                | StoreError::RevokedIsFinal
                | StoreError::ApplicationChanged { .. },
            ) => (StatusCode::CONFLICT, "conflict"),
            Error::RegistryUnreachable(_) => (StatusCode::BAD_GATEWAY, "registry_unreachable"),
            Error::RegistryRefused { .. } => (StatusCode::BAD_GATEWAY, "registry_refused"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
        };
        ApiError {
            code: Some(e.code()),
            ..ApiError::new(status, error, e.to_string())
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        Error::from(e).into()
    }
}

/// Largest request body.
pub const MAX_BODY: usize = 256 * 1024;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.error, "error_description": self.description});
        if let Some(code) = self.code {
            body["code"] = code.as_str().into();
        }
        let mut resp = (self.status, Json(body)).into_response();
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        let challenge = self
            .challenge
            .as_deref()
            .and_then(|c| HeaderValue::from_str(c).ok());
        if let Some(c) = challenge {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, c);
        } else if self.status == StatusCode::UNAUTHORIZED && self.error == "invalid_token" {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        set_dpop_nonce(&mut resp, self.dpop_nonce.as_deref());
        resp
    }
}

/// The `DPoP-Nonce` response header.
pub const DPOP_NONCE: &str = "dpop-nonce";

/// The DPoP proof algorithms, space-separated (the challenge's `algs`).
fn dpop_algs() -> String {
    bizcred_core::dpop::ALGORITHMS
        .iter()
        .map(|a| a.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn set_dpop_nonce(resp: &mut Response, nonce: Option<&str>) {
    if let Some(v) = nonce.and_then(|n| HeaderValue::from_str(n).ok()) {
        resp.headers_mut().insert(DPOP_NONCE, v);
    }
}

/// The request's DPoP proof: its one `DPoP` header, if any (RFC 9449 §4.3: more than one, or
/// one that is not text, is refused).
fn dpop_header(h: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = h.get_all("dpop").iter();
    let (Some(v), None) = (values.next(), values.next()) else {
        return match h.get_all("dpop").iter().next() {
            None => Ok(None),
            Some(_) => Err(Error::Dpop(bizcred_core::dpop::DpopError::Malformed(
                "more than one DPoP header",
            ))
            .into()),
        };
    };
    v.to_str().map(|p| Some(p.trim().to_owned())).map_err(|_| {
        Error::Dpop(bizcred_core::dpop::DpopError::Malformed(
            "the DPoP header is not text",
        ))
        .into()
    })
}

/// The access token of the `Authorization` header as presented: `Bearer` or `DPoP` (the
/// scheme case-insensitive), with the request's DPoP proof for the latter.
enum Auth {
    Bearer(String),
    Dpop(String, Option<String>),
}

impl Auth {
    fn read(headers: &HeaderMap, proof: Option<String>) -> Result<Auth, ApiError> {
        let value = headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
        let token = token.trim();
        let missing = || ApiError {
            challenge: Some(format!("DPoP algs=\"{}\", Bearer", dpop_algs())),
            ..ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "an access token is required (DPoP or Bearer)",
            )
        };
        if token.is_empty() {
            return Err(missing());
        }
        if scheme.eq_ignore_ascii_case("bearer") {
            Ok(Auth::Bearer(token.to_owned()))
        } else if scheme.eq_ignore_ascii_case("dpop") {
            Ok(Auth::Dpop(token.to_owned(), proof))
        } else {
            Err(missing())
        }
    }

    fn presented(&self) -> Presented<'_> {
        match self {
            Auth::Bearer(t) => Presented::Bearer(t),
            Auth::Dpop(t, p) => Presented::Dpop {
                token: t,
                proof: p.as_deref(),
            },
        }
    }

    fn is_dpop(&self) -> bool {
        matches!(self, Auth::Dpop(..))
    }
}

type Shared = Arc<Issuer>;

fn no_store(v: Value) -> Response {
    let mut r = Json(v).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Runs issuer work that waits on the disk (every durable store write ends in an fsync) or
/// signs, on tokio's blocking pool (every handler that writes durably goes through here): the async workers keep serving other requests meanwhile,
/// and concurrent issuances share one fsync (see `Store`'s group commit).
async fn blocking<T: Send + 'static>(
    s: &Shared,
    f: impl FnOnce(&Issuer) -> Result<T, Error> + Send + 'static,
) -> Result<T, ApiError> {
    let s = s.clone();
    tokio::task::spawn_blocking(move || f(&s))
        .await
        .map_err(|_| ApiError::internal("the request's task failed"))?
        .map_err(ApiError::from)
}

/// As [`blocking`], and when the request carried DPoP (`dpop`), the next DPoP nonce drawn in
/// the same task, whatever the outcome (the request may have spent its nonce): the answer's
/// `DPoP-Nonce`.
async fn blocking_dpop<T: Send + 'static>(
    s: &Shared,
    dpop: bool,
    f: impl FnOnce(&Issuer) -> Result<T, Error> + Send + 'static,
) -> (Result<T, ApiError>, Option<String>) {
    let s = s.clone();
    let joined = tokio::task::spawn_blocking(move || {
        let out = f(&s);
        let nonce = if dpop { Some(s.dpop_nonce()) } else { None };
        (out, nonce)
    })
    .await;
    match joined {
        Err(_) => (Err(ApiError::internal("the request's task failed")), None),
        Ok((out, None)) => (out.map_err(ApiError::from), None),
        Ok((out, Some(Ok(n)))) => (out.map_err(ApiError::from), Some(n)),
        // Without a next nonce a DPoP client cannot go on: the store's failure is the answer.
        Ok((_, Some(Err(e)))) => (Err(e.into()), None),
    }
}

fn content_type(h: &HeaderMap) -> &str {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The router.
pub fn app(issuer: Shared) -> Router {
    let router = Router::new()
        .route(
            "/.well-known/openid-credential-issuer",
            get(|State(s): State<Shared>| async move { Json(s.metadata()) }),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(|State(s): State<Shared>| async move { Json(s.as_metadata()) }),
        )
        .route("/.well-known/did.jsonl", get(did_log))
        .route("/credential-offer/{id}", get(offer))
        .route("/token", post(token))
        .route("/nonce", post(nonce))
        .route("/credential", post(credential))
        .route("/notification", post(notification))
        .route("/status/{n}", get(status_list))
        .route("/oid4vp/request/{id}", get(request_object))
        .route("/oid4vp/response", post(presentation))
        .merge(applicant_routes())
        .route("/admin/applications", post(create_application))
        .route("/admin/applications/{id}", get(get_application))
        .route("/admin/applications/{id}/approve", post(approve))
        .route("/admin/applications/{id}/{decision}", post(decide))
        .route("/admin/credentials", get(list_credentials))
        .route("/admin/credentials/{id}/{action}", post(change_status))
        .route("/admin/keys/rotate", post(rotate))
        .route("/admin/audit", get(audit))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(issuer);
    // The applicant's page shares the public layout: its language switch and assets.
    match crate::desk::applicant::public() {
        Some(p) => router.merge(p.routes()),
        None => router,
    }
}

/// The applicant API (and its page), with the pages' security headers.
fn applicant_routes() -> Router<Shared> {
    Router::new()
        .route("/applicant/types", get(applicant_types))
        .route("/applicant/applications", post(applicant_open))
        .route("/applicant/{capability}", get(applicant_get))
        .route("/applicant/{capability}/claims", post(applicant_claims))
        .route("/applicant/{capability}/withdraw", post(applicant_withdraw))
        .layer(axum::middleware::from_fn(
            bizcred_web::desk::security_headers,
        ))
}

/// The issuer's readiness checks (`/readyz`): `storage` (the store answers a read of the
/// issuer's DID; on PostgreSQL, its migrations are still this binary's) and `keys` (the
/// signing key is loaded and the DID log the issuer serves names it).
pub fn health(issuer: &Shared) -> Health {
    let (s, k) = (issuer.clone(), issuer.clone());
    Health::new()
        .check("storage", move || {
            match s
                .store
                .schema_current()
                .and_then(|()| s.store.meta_get("did"))
            {
                Ok(Some(_)) => Ok(()),
                Ok(None) => Err("the store holds no DID".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        })
        .check("keys", move || match k.key_info() {
            Ok(info) if info.did_version.is_some() => Ok(()),
            Ok(info) => Err(format!(
                "the signing key {} is not in the DID log",
                info.kid
            )),
            Err(e) => Err(e.to_string()),
        })
}

/// The issuer's metrics (`/metrics`, besides the HTTP ones), read from the store at each
/// scrape, so they count every path (wallets, the admin API, the desk) and survive restarts:
/// * `bizcred_issuer_credentials_issued_total`: status list indices allocated, one per
///   credential issued (or imported) since the store was created;
/// * `bizcred_issuer_status_changes_total`: the sum of the versions of the status lists' bits,
///   which every recorded change of an entry (revoke, suspend, reinstate, an import of such a
///   credential) increments: its increase is the number of status changes (its starting
///   value is not: a list's bits may start at version 1), so read it with `increase()` or
///   `rate()`;
/// * `bizcred_issuer_status_list_age_seconds`: seconds since the stalest of the status lists
///   was last signed (what a verifier fetching it sees; the re-sign interval bounds it).
///
/// Several instances on one store each report the store's figures: aggregate with `max`,
/// not `sum`.
pub fn metrics(issuer: &Shared) -> Metrics {
    let m = Metrics::new("issuer");
    let warn = |what: &str, e: &dyn std::fmt::Display| {
        tracing::warn!("metrics: reading {what}: {e}");
    };
    let s = issuer.clone();
    m.counter_fn(
        "credentials_issued",
        "Credentials issued (status list indices allocated) since the store was created",
        move || match s.store.status_lists() {
            Ok(lists) => Some(lists.iter().map(|l| l.allocated).sum()),
            Err(e) => {
                warn("the status lists", &e);
                None
            }
        },
    );
    let s = issuer.clone();
    m.counter_fn(
        "status_changes",
        "Status changes (revoke, suspend, reinstate) recorded in the store; read its increase",
        move || {
            let total = s.store.status_lists().and_then(|lists| {
                lists.iter().try_fold(0u64, |sum, l| {
                    Ok(sum.saturating_add(s.store.status_version(l.list)?))
                })
            });
            match total {
                Ok(n) => Some(n),
                Err(e) => {
                    warn("the status list versions", &e);
                    None
                }
            }
        },
    );
    let s = issuer.clone();
    m.gauge_fn(
        "status_list_age_seconds",
        "Seconds since the stalest status list was last signed",
        move || match s.store.signed_status_lists() {
            Ok(lists) => {
                let now = s.clock.now();
                lists
                    .values()
                    .map(|l| now.saturating_sub(l.iat).max(0))
                    .max()
                    // i64 seconds to f64: exact below 2^53 seconds.
                    .map(|age| age as f64)
            }
            Err(e) => {
                warn("the signed status lists", &e);
                None
            }
        },
    );
    m
}

async fn did_log(State(s): State<Shared>) -> Result<Response, ApiError> {
    Ok(([(header::CONTENT_TYPE, "text/jsonl")], s.did_log()?).into_response())
}

async fn offer(State(s): State<Shared>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(no_store(s.offer(&id)?))
}

async fn token(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let proof = match dpop_header(&headers) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if !content_type(&headers).starts_with("application/x-www-form-urlencoded") {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the token request is application/x-www-form-urlencoded",
        )
        .into_response();
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let dpop = proof.is_some();
    let (out, nonce) =
        blocking_dpop(&s, dpop, move |s| s.token_request(&form, proof.as_deref())).await;
    let mut resp = match out {
        Ok(v) => no_store(v),
        Err(e) => e.into_response(),
    };
    set_dpop_nonce(&mut resp, nonce.as_deref());
    resp
}

/// The nonce endpoint: a `c_nonce`, and a DPoP nonce in `DPoP-Nonce` (OpenID4VCI 1.0 §7.2).
async fn nonce(State(s): State<Shared>) -> Result<Response, ApiError> {
    let (v, n) = blocking(&s, |s| s.nonce_and_dpop_nonce()).await?;
    let mut resp = no_store(v);
    set_dpop_nonce(&mut resp, Some(&n));
    Ok(resp)
}

/// A request body that must be JSON (`error` is the endpoint's error code for it).
fn json_request(headers: &HeaderMap, body: &Bytes, error: &'static str) -> Result<Value, ApiError> {
    if !content_type(headers).starts_with("application/json") {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            error,
            "the request is application/json",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            error,
            format!("malformed JSON: {e}"),
        )
    })
}

/// Runs a protected resource's request (credential, notification): reads the `Authorization`
/// and `DPoP` headers and the JSON body, then `f` with the token as presented; refusals as a
/// protected resource answers them, and the next DPoP nonce when DPoP was used.
async fn protected<T: Send + 'static>(
    s: &Shared,
    headers: &HeaderMap,
    body: &Bytes,
    body_error: &'static str,
    f: impl FnOnce(&Issuer, Presented<'_>, &Value) -> Result<T, Error> + Send + 'static,
) -> (Result<T, ApiError>, Option<String>) {
    let proof = match dpop_header(headers) {
        Ok(p) => p,
        Err(e) => return (Err(e.at_resource(true)), None),
    };
    let dpop = proof.is_some();
    let auth = match Auth::read(headers, proof) {
        Ok(a) => a,
        Err(e) => return (Err(e), None),
    };
    let uses_dpop = dpop || auth.is_dpop();
    let req = match json_request(headers, body, body_error) {
        Ok(r) => r,
        Err(e) => return (Err(e), None),
    };
    let (out, nonce) = blocking_dpop(s, uses_dpop, move |s| f(s, auth.presented(), &req)).await;
    (out.map_err(|e| e.at_resource(uses_dpop)), nonce)
}

async fn credential(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let (out, nonce) = protected(
        &s,
        &headers,
        &body,
        "invalid_credential_request",
        |s, presented, req| s.credential_request(presented, req),
    )
    .await;
    let mut resp = match out {
        Ok(v) => no_store(v),
        Err(e) => e.into_response(),
    };
    set_dpop_nonce(&mut resp, nonce.as_deref());
    resp
}

/// The notification endpoint (OpenID4VCI 1.0 §11): 204 on success.
async fn notification(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let (out, nonce) = protected(
        &s,
        &headers,
        &body,
        "invalid_notification_request",
        |s, presented, req| s.notify(presented, req),
    )
    .await;
    let mut resp = match out {
        Ok(()) => {
            let mut r = StatusCode::NO_CONTENT.into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => e.into_response(),
    };
    set_dpop_nonce(&mut resp, nonce.as_deref());
    resp
}

async fn status_list(State(s): State<Shared>, Path(n): Path<String>) -> Result<Response, ApiError> {
    let n: u32 = n.parse().map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "status lists are numbered from 1",
        )
    })?;
    // The newest signed token, as held: stale or changed lists are re-signed by the
    // background loop and after status changes, never while a client waits. Only a list
    // never signed (just opened) is signed first, off the async workers.
    let token = blocking(&s, move |s| s.status_list(n)).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/statuslist+jwt")],
        token,
    )
        .into_response())
}

async fn request_object(
    State(s): State<Shared>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok((
        [(header::CONTENT_TYPE, "application/oauth-authz-req+jwt")],
        s.request_object(&id)?,
    )
        .into_response())
}

async fn presentation(
    State(s): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !content_type(&headers).starts_with("application/x-www-form-urlencoded") {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the response is application/x-www-form-urlencoded",
        ));
    }
    // The issuer is online: refresh its trust bundle first, then decide offline from it.
    if let Err(e) = s.sync_trust().await {
        tracing::warn!("trust bundle not refreshed before verifying a presentation: {e}");
    }
    Ok(no_store(
        blocking(&s, move |s| s.handle_presentation(&body)).await?,
    ))
}

fn authorize(s: &Issuer, headers: &HeaderMap) -> Result<(), ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "an admin bearer token is required",
            )
        })?;
    let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let ok = s
        .config
        .admin_token_hashes
        .iter()
        .fold(0u8, |acc, h| acc | h.ct_eq(&hash).unwrap_u8());
    if ok == 1 {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the token is not an admin token of this agency",
        ))
    }
}

fn json_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    if !content_type(headers).starts_with("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request",
            "admin requests are application/json",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("malformed JSON: {e}"),
        )
    })
}

fn claims_of(v: &Value) -> Result<Map<String, Value>, ApiError> {
    match v.get("claims") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "claims is a JSON object",
        )),
    }
}

async fn create_application(
    State(s): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&s, &headers)?;
    let v = json_body(&headers, &body)?;
    let ty = v
        .get("credential_type")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "credential_type is required",
            )
        })?;
    let (ty, claims) = (ty.to_owned(), claims_of(&v)?);
    let (app, uri) = blocking(&s, move |s| {
        s.create_application(&Actor::Automation, &ty, claims)
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"application_id": app.id, "status": app.status, "presentation_request": uri})),
    )
        .into_response())
}

/// An applicant API answer: never cached, and the capability link in the request's URL is
/// never sent on as a referrer.
fn applicant_answer(status: StatusCode, body: Value) -> Response {
    let mut resp = (status, Json(body)).into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

async fn applicant_types(State(s): State<Shared>) -> Response {
    applicant_answer(StatusCode::OK, s.applicant_types())
}

async fn applicant_open(
    State(s): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let v = json_body(&headers, &body)?;
    let ty = v
        .get("credential_configuration_id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "credential_configuration_id is required",
            )
        })?;
    let (ty, claims) = (ty.to_owned(), claims_of(&v)?);
    let opened = blocking(&s, move |s| s.open_applicant_application(&ty, claims)).await?;
    let follow = format!("{}/applicant/{}", s.config.public_url, opened.capability);
    Ok(applicant_answer(
        StatusCode::CREATED,
        json!({
            "application_id": opened.application.id,
            "capability": opened.capability,
            "follow_uri": follow,
            "state": opened.application.status.as_str(),
            "request_uri": opened.request_uri,
        }),
    ))
}

async fn applicant_get(
    State(s): State<Shared>,
    Path(capability): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let path = format!("/applicant/{capability}");
    let view = blocking(&s, move |s| {
        let app = s.application_by_capability(&capability)?;
        Ok(s.applicant_view(&app))
    })
    .await?;
    if crate::desk::applicant::wants_html(&headers) {
        return Ok(crate::desk::applicant::page(&s, &view, &path, &headers));
    }
    Ok(applicant_answer(StatusCode::OK, view))
}

async fn applicant_claims(
    State(s): State<Shared>,
    Path(capability): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let claims = claims_of(&json_body(&headers, &body)?)?;
    let view = blocking(&s, move |s| {
        let app = s.applicant_update_claims(&capability, claims)?;
        Ok(s.applicant_view(&app))
    })
    .await?;
    Ok(applicant_answer(StatusCode::OK, view))
}

async fn applicant_withdraw(
    State(s): State<Shared>,
    Path(capability): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let v = json_body(&headers, &body)?;
    let reason = v.get("reason").and_then(Value::as_str).map(str::to_owned);
    let view = blocking(&s, move |s| {
        let app = s.applicant_withdraw(&capability, reason.as_deref())?;
        Ok(s.applicant_view(&app))
    })
    .await?;
    Ok(applicant_answer(StatusCode::OK, view))
}

async fn get_application(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&s, &headers)?;
    staff_view(s.store.application(&id)?)
}

/// An application as staff's API answers it: whether the applicant opened it, never its
/// capability's hash (the applicant's transaction code derives from it).
fn staff_view(mut app: crate::store::Application) -> Result<Response, ApiError> {
    let opened_by_applicant = app.capability.take().is_some();
    let mut v = serde_json::to_value(&app).map_err(ApiError::internal)?;
    v["opened_by_applicant"] = opened_by_applicant.into();
    Ok(Json(v).into_response())
}

async fn approve(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&s, &headers)?;
    let v = json_body(&headers, &body)?;
    let claims = claims_of(&v)?;
    let offer = blocking(&s, move |s| s.approve(&Actor::Automation, &id, claims)).await?;
    Ok((StatusCode::CREATED, Json(offer)).into_response())
}

/// The `reason` of an admin request: absent, `null`, or a string.
fn reason_of(v: &Value) -> Result<Option<String>, ApiError> {
    match v.get("reason") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(r)) => Ok(Some(r.clone())),
        Some(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "reason is a string",
        )),
    }
}

/// `refuse`, `request-changes` or `withdraw` an application, with `{"reason": ...}`.
async fn decide(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path((id, decision)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&s, &headers)?;
    let reason = reason_of(&json_body(&headers, &body)?)?.unwrap_or_default();
    let app = match decision.as_str() {
        "refuse" => blocking(&s, move |s| s.refuse(&Actor::Automation, &id, &reason)).await?,
        "request-changes" => {
            blocking(&s, move |s| {
                s.request_changes(&Actor::Automation, &id, &reason)
            })
            .await?
        }
        "withdraw" => blocking(&s, move |s| s.withdraw(&Actor::Automation, &id, &reason)).await?,
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "the decisions are approve, refuse, request-changes and withdraw",
            ))
        }
    };
    staff_view(app)
}

async fn list_credentials(
    State(s): State<Shared>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&s, &headers)?;
    Ok(Json(s.store.credentials()?).into_response())
}

async fn change_status(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&s, &headers)?;
    let Ok(action) = action.parse::<StatusAction>() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "the actions are revoke, suspend and reinstate",
        ));
    };
    let reason = reason_of(&json_body(&headers, &body)?)?;
    let rec = blocking(&s, move |s| {
        s.set_status(&Actor::Automation, &id, action, reason.as_deref())
    })
    .await?;
    if let Err(e) = s.push_status_list().await {
        tracing::warn!("status list not pushed to the registry: {e}");
    }
    // A change the clock did not allow to sign yet is signed and pushed as soon as it may be.
    s.schedule_status_push();
    Ok(Json(rec).into_response())
}

async fn rotate(
    State(s): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&s, &headers)?;
    // `{"compromised": ["did...#key-N", ...]}`: keys the new DID version must not list.
    let compromised = match json_body(&headers, &body)?.get("compromised") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(ids)) if ids.len() <= 64 => ids
            .iter()
            .map(|k| k.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "compromised is a list of key ids",
                )
            })?,
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "compromised is a list of at most 64 key ids",
            ))
        }
    };
    let out = s.rotate_key_with(&Actor::Automation, &compromised).await?;
    if let Err(e) = s.push_status_list().await {
        tracing::warn!("status list not pushed to the registry: {e}");
    }
    s.schedule_status_push();
    Ok(Json(out).into_response())
}

async fn audit(State(s): State<Shared>, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize(&s, &headers)?;
    let entries = s.store.audit_entries()?;
    let verdict = match crate::store::verify_audit(&entries) {
        Ok(n) => json!({"valid": true, "entries": n}),
        Err((seq, why)) => json!({"valid": false, "broken_at": seq, "reason": why}),
    };
    Ok(Json(verdict).into_response())
}
