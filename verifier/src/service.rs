//! The verifier's OpenID4VP 1.0 service (feature `service`), embeddable in another service or
//! a bank's pages: `app(state)` is the router, tested without a socket.
//!
//! - `POST /requests` (operator token): a new request for the policy: its `openid4vp://` URI,
//!   transaction id and expiry. Requests expire (`request_ttl`) and at most `max_pending` wait.
//! - `GET /oid4vp/request/{id}`: the signed request object (`oauth-authz-req+jwt`).
//! - `POST /oid4vp/response`: the wallet's `direct_post` answer
//!   (`application/x-www-form-urlencoded` only; anything else is `415`). An accepted
//!   presentation is answered `200 {}`; a refused one `400 invalid_request` with a generic
//!   sentence: the detailed verdict goes to the relying party only, so the endpoint is no
//!   oracle for the presenter.
//! - `GET /transactions/{id}` (operator token): the report and the signed receipt.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand_core::OsRng;
use serde_json::{json, Value};

use bizcred_core::keys::SecretKey;
use bizcred_core::oid4vp;
use bizcred_core::time::Clock;

use crate::request::{self, Pending};
use crate::store::{PendingIndex, StoreError, VerifierDir};
use crate::{receipt, Context, Policy, Presentation, Report, Verdict};

/// How the service is set up.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The public base URL (request and response URIs are under it).
    pub public_url: String,
    /// Seconds a request waits for its answer.
    pub request_ttl: i64,
    /// How many requests may wait at once (and how many results are kept).
    pub max_pending: usize,
}

/// What a verdict left for the relying party.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The full report.
    pub report: Report,
    /// The signed receipt.
    pub receipt: Value,
    /// Where the receipt was kept.
    pub receipt_file: std::path::PathBuf,
}

/// The service's state.
pub struct ServiceState {
    dir: VerifierDir,
    policy: Policy,
    key: SecretKey,
    cfg: ServiceConfig,
    clock: Arc<dyn Clock>,
    pending: Mutex<PendingIndex>,
    results: Mutex<Results>,
}

impl std::fmt::Debug for ServiceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceState")
            .field("dir", &self.dir.path())
            .field("policy", &self.policy.name)
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// Results kept for the relying party, oldest dropped first beyond the bound.
#[derive(Debug, Default)]
struct Results {
    by_id: HashMap<String, Value>,
    order: VecDeque<String>,
}

impl ServiceState {
    /// The state over an opened data directory, its policy, its request-signing key, settings
    /// and clock. Expired requests left in the directory are removed.
    pub fn new(
        dir: VerifierDir,
        policy: Policy,
        key: SecretKey,
        mut cfg: ServiceConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<ServiceState, StoreError> {
        cfg.public_url = cfg.public_url.trim_end_matches('/').to_owned();
        let pending = PendingIndex::load(&dir, clock.now())?;
        Ok(ServiceState {
            dir,
            policy,
            key,
            cfg,
            clock,
            pending: Mutex::new(pending),
            results: Mutex::new(Results::default()),
        })
    }

    /// Verifies `vp_token` answering `pending` (the raw body for the receipt's digest), keeps
    /// the receipt, and returns the outcome.
    pub fn evaluate(
        &self,
        vp_token: &Value,
        pending: &Pending,
        raw: &[u8],
    ) -> Result<Outcome, ServiceError> {
        evaluate(
            &self.dir,
            &self.policy,
            &self.key,
            vp_token,
            pending,
            raw,
            self.clock.now(),
        )
    }
}

/// Why the service could not do what was asked (its own failures, not the presenter's).
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The data directory failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The receipt could not be signed.
    #[error("signing the receipt: {0}")]
    Receipt(#[from] bizcred_core::data_integrity::ProofError),
}

/// Verifies a presentation against the directory's trust state and signs the receipt (saved in
/// the directory). Shared by `serve` and `verify`.
pub fn evaluate(
    dir: &VerifierDir,
    policy: &Policy,
    key: &SecretKey,
    vp_token: &Value,
    pending: &Pending,
    raw: &[u8],
    now: i64,
) -> Result<Outcome, ServiceError> {
    let trust = dir.trust(now)?;
    let report = crate::verify(
        &Presentation {
            vp_token,
            nonce: &pending.nonce,
            audience: &pending.client_id,
        },
        policy,
        &Context {
            trust: trust.as_ref(),
            stapled_status_lists: &[],
            now,
        },
    );
    let receipt = receipt::sign(&report, raw, &dir.config().client_id, key)?;
    let receipt_file = dir.save_receipt(&pending.state, &receipt, now)?;
    Ok(Outcome {
        report,
        receipt,
        receipt_file,
    })
}

/// The router.
pub fn app(state: Arc<ServiceState>) -> Router {
    Router::new()
        .route("/requests", post(new_request))
        .route("/oid4vp/request/{state}", get(request_object))
        .route("/oid4vp/response", post(response))
        .route("/transactions/{state}", get(result))
        .route("/healthz", get(|| async { "ok" }))
        .layer(axum::extract::DefaultBodyLimit::max(
            2 * crate::verify::MAX_PRESENTATION_LEN,
        ))
        .with_state(state)
}

fn err(status: StatusCode, code: &str, msg: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": code, "error_description": msg.into()})),
    )
        .into_response()
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!("verifier service: {e}");
    err(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "the verifier could not complete the request",
    )
}

/// Whether the call carries the operator's bearer token.
fn is_operator(s: &ServiceState, headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| s.dir.is_operator(t))
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(json!({"error": "invalid_token", "error_description": "the operator token is missing or wrong"})),
    )
        .into_response()
}

async fn new_request(State(s): State<Arc<ServiceState>>, headers: HeaderMap) -> Response {
    if !is_operator(&s, &headers) {
        return unauthorized();
    }
    let s2 = s.clone();
    let made = tokio::task::spawn_blocking(move || {
        // The index only mirrors the files; after a panic elsewhere it is still sound.
        let mut idx = s2.pending.lock().unwrap_or_else(|p| p.into_inner());
        idx.create(
            &s2.dir,
            &format!("{}/oid4vp/response", s2.cfg.public_url),
            s2.clock.now(),
            s2.cfg.request_ttl,
            s2.cfg.max_pending,
            &mut OsRng,
        )
    })
    .await;
    let p = match made {
        Ok(Ok(p)) => p,
        Ok(Err(e @ StoreError::TooManyPending(_))) => {
            return err(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                e.to_string(),
            )
        }
        Ok(Err(e)) => return internal(e),
        Err(e) => return internal(e),
    };
    let uri = oid4vp::request_uri(
        &s.dir.config().client_id,
        &format!("{}/oid4vp/request/{}", s.cfg.public_url, p.state),
    );
    (
        StatusCode::CREATED,
        Json(json!({
            "transaction_id": p.state,
            "request_uri": uri,
            "policy": s.policy.name,
            "expires_at": bizcred_core::time::format_utc(p.expires_at),
        })),
    )
        .into_response()
}

async fn request_object(
    State(s): State<Arc<ServiceState>>,
    UrlPath(state): UrlPath<String>,
) -> Response {
    let now = s.clock.now();
    let p = match s.dir.pending(&state, now) {
        Ok(Some(p)) => p,
        Ok(None) => {
            return err(
                StatusCode::NOT_FOUND,
                "invalid_request_uri",
                "no such request, or it was answered or has expired",
            )
        }
        Err(e) => return internal(e),
    };
    let claims = request::request_object(&s.policy, &p, now);
    match oid4vp::sign_request_object(&claims, &s.dir.config().kid, &s.key) {
        Ok(jwt) => (
            [(header::CONTENT_TYPE, "application/oauth-authz-req+jwt")],
            jwt,
        )
            .into_response(),
        Err(e) => internal(e),
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

async fn response(State(s): State<Arc<ServiceState>>, headers: HeaderMap, body: Bytes) -> Response {
    if !is_form(&headers) {
        return err(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request",
            "the response must be sent as application/x-www-form-urlencoded (direct_post)",
        );
    }
    let (vp, state) = match oid4vp::parse_response_body(&body) {
        Ok((vp, Some(state))) => (vp, state),
        Ok((_, None)) => {
            return err(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the response has no state",
            )
        }
        Err(e) => return err(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()),
    };
    let s2 = s.clone();
    let done = tokio::task::spawn_blocking(move || -> Result<Option<Outcome>, ServiceError> {
        let now = s2.clock.now();
        let taken = s2.dir.take_pending(&state, now)?;
        s2.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .forget(&state);
        let Some(pending) = taken else {
            return Ok(None);
        };
        let outcome = s2.evaluate(&vp, &pending, &body)?;
        {
            let mut r = s2.results.lock().unwrap_or_else(|p| p.into_inner());
            r.by_id.insert(
                state.clone(),
                json!({"report": outcome.report, "receipt": outcome.receipt}),
            );
            r.order.push_back(state);
            while r.order.len() > s2.cfg.max_pending.max(1) {
                if let Some(old) = r.order.pop_front() {
                    r.by_id.remove(&old);
                }
            }
        }
        Ok(Some(outcome))
    })
    .await;
    match done {
        Ok(Ok(Some(o))) if o.report.verdict == Verdict::Accept => {
            (StatusCode::OK, Json(json!({}))).into_response()
        }
        Ok(Ok(Some(_))) => err(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the presentation was not accepted; the verifier's staff have the details",
        ),
        Ok(Ok(None)) => err(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "unknown, answered or expired request (state)",
        ),
        Ok(Err(e)) => internal(e),
        Err(e) => internal(e),
    }
}

async fn result(
    State(s): State<Arc<ServiceState>>,
    headers: HeaderMap,
    UrlPath(state): UrlPath<String>,
) -> Response {
    if !is_operator(&s, &headers) {
        return unauthorized();
    }
    let found = s
        .results
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .by_id
        .get(&state)
        .cloned();
    match found {
        Some(v) => Json(v).into_response(),
        None => err(
            StatusCode::NOT_FOUND,
            "not_found",
            "no result for this transaction (yet)",
        ),
    }
}
