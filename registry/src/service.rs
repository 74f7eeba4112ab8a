//! The registry's HTTP API (axum). `app` builds the router, so tests drive it without a
//! socket.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/checkpoint` | the signed checkpoint (C2SP signed note, `text/plain`) |
//! | GET | `/entries?start=&end=` | entries, at most 1000 a page |
//! | GET | `/proof/inclusion?index=&size=` | RFC 9162 inclusion proof |
//! | GET | `/proof/consistency?first=&second=` | RFC 9162 consistency proof |
//! | GET | `/dids/{did}` (`?versionTime=`, `?versionId=`, `?versionNumber=`) | DID resolution from the mirror |
//! | GET | `/dids/{did}/did.jsonl` | the mirrored did:webvh log |
//! | POST | `/dids/{did}/log` | new did:webvh lines (authenticated by the DID's own update-key proofs) |
//! | POST | `/trqp/v2/authorization` | ToIP TRQP v2.0 authorization query, with evidence ([`crate::trqp`]) |
//! | POST | `/trqp/v2/recognition` | ToIP TRQP v2.0 recognition query, with evidence |
//! | POST | `/trqp/authorization` | the same as `/trqp/v2/authorization` (the path before; an alias while clients move) |
//! | GET | `/.well-known/did.jsonl` (or the DID's own path) | the governing authority's did:webvh log |
//! | GET | `/governance` | the governance framework's machine-readable summary |
//! | POST | `/entries` | a signed governance entry, or an array of them applied all or none (bearer admin token) |
//! | POST | `/recognized-bundles` | a recognized registry's whole bundle, carried in this registry's bundles (bearer admin token) |
//! | POST | `/status-lists` | an issuer's signed status list token (verified with its registered key) |
//! | GET | `/bundle?from=` | the signed trust bundle |
//!
//! # Errors
//!
//! Every error, whatever the endpoint (a refused entry, a malformed query, an unknown path, a
//! wrong method, an unsupported media type, a failure), is an RFC 9457 problem details
//! document (`application/problem+json`): `type` (`urn:bizcred:problem:<CODE>`), `title` (the
//! code's sentence, the same for every occurrence), `status`, `detail` (this occurrence), and
//! the extension member `code`, the stable [`ReasonCode`] (`REASONS.md`).
//!
//! # Threads and freshness
//!
//! Every handler runs its registry call on tokio's blocking pool ([`call`]): the sequencer is
//! synchronous, its storage calls block (a sled flush, a PostgreSQL round trip or a wait for
//! the append lock) and a large bundle is CPU work, none of which may hold an async worker.
//! Before it answers, a handler refreshes the registry from its store
//! ([`Registry::refresh`]): with several instances on one PostgreSQL database, every answer
//! reflects every append committed before the request, whichever instance made it.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bizcred_core::ReasonCode;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::sequencer::{Registry, RegistryError};
use crate::store::Store;
use crate::trqp;

/// Largest request body (bytes).
pub const MAX_BODY: usize = 2 * 1024 * 1024;

/// Shared service state.
pub struct AppState {
    /// The registry.
    pub registry: Mutex<Registry<Box<dyn Store>>>,
    /// SHA-256 hashes of the admin bearer tokens.
    pub admin_token_hashes: Vec<[u8; 32]>,
    /// The clock (Unix seconds).
    pub clock: Arc<dyn bizcred_core::time::Clock>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// The SHA-256 of a token, as stored in configuration.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The media type of a problem details document (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem details answer: the status, the stable reason code and what happened.
#[derive(Debug)]
pub struct Problem {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable reason code (the `code` extension member; `type` names it too).
    pub code: ReasonCode,
    /// This occurrence, in a sentence (`detail`).
    pub detail: String,
}

impl Problem {
    /// A problem.
    pub fn new(status: StatusCode, code: ReasonCode, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            code,
            detail: detail.into(),
        }
    }

    /// The document.
    pub fn body(&self) -> Value {
        json!({
            "type": format!("urn:bizcred:problem:{}", self.code.as_str()),
            "title": self.code.sentence(),
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code.as_str(),
        })
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = self.body().to_string();
        (
            self.status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))],
            body,
        )
            .into_response()
    }
}

type ApiError = Problem;

impl From<RegistryError> for Problem {
    fn from(e: RegistryError) -> Problem {
        let status = match &e {
            // The database is down or unreachable: another instance, or a retry, may answer.
            RegistryError::Store(crate::store::StoreError::Postgres(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            RegistryError::Store(_) | RegistryError::Sign(_) | RegistryError::Checkpoint(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            RegistryError::Did(d) if d.resolution_error() == "notFound" => StatusCode::NOT_FOUND,
            RegistryError::Entry(bizcred_core::trust::state::EntryError::Duplicate(_)) => {
                StatusCode::CONFLICT
            }
            RegistryError::Entry(bizcred_core::trust::state::EntryError::TooLarge) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            RegistryError::Trqp(t) if t.is_not_found() => StatusCode::NOT_FOUND,
            RegistryError::NoAuthorityDid => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        };
        Problem::new(status, e.code(), e.to_string())
    }
}

/// A problem for an error response some layer produced without one (an extractor's
/// rejection, the body limit): its status kept, a code for the status, its text as `detail`.
fn problem_for_status(status: StatusCode, text: &str) -> Problem {
    let code = match status {
        StatusCode::NOT_FOUND => ReasonCode::PathNotFound,
        StatusCode::METHOD_NOT_ALLOWED => ReasonCode::MethodNotAllowed,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ReasonCode::MediaTypeUnsupported,
        StatusCode::PAYLOAD_TOO_LARGE => ReasonCode::RequestTooLarge,
        s if s.is_client_error() => ReasonCode::RequestInvalid,
        _ => ReasonCode::InternalError,
    };
    let detail = if text.trim().is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text.chars().take(500).collect()
    };
    Problem::new(status, code, detail)
}

/// Turns every error answer that is not yet a problem document into one.
async fn problems_only(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if is_problem {
        return response;
    }
    let body = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .unwrap_or_default();
    problem_for_status(status, &String::from_utf8_lossy(&body)).into_response()
}

async fn no_such_path(uri: axum::http::Uri) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        ReasonCode::PathNotFound,
        format!(
            "no endpoint at {}",
            uri.path().chars().take(200).collect::<String>()
        ),
    )
}

async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ReasonCode::MethodNotAllowed,
        format!(
            "{method} is not allowed on {}",
            uri.path().chars().take(200).collect::<String>()
        ),
    )
}

type Shared = Arc<AppState>;

fn internal(what: &str) -> ApiError {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        ReasonCode::InternalError,
        what,
    )
}

fn invalid(what: impl Into<String>) -> ApiError {
    Problem::new(StatusCode::BAD_REQUEST, ReasonCode::RequestInvalid, what)
}

/// Refuses a body that is not `application/json` (415).
fn json_body(headers: &HeaderMap, what: &str) -> Result<(), ApiError> {
    let ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if ok {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ReasonCode::MediaTypeUnsupported,
            format!("{what} are application/json"),
        ))
    }
}

/// Runs `f` on the registry, refreshed from its store, on the blocking pool.
async fn call<T: Send + 'static>(
    s: &Shared,
    f: impl FnOnce(&mut Registry<Box<dyn Store>>, i64) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let s = s.clone();
    tokio::task::spawn_blocking(move || {
        let mut reg = s
            .registry
            .lock()
            .map_err(|_| internal("registry lock poisoned"))?;
        let now = s.clock.now();
        reg.refresh(now)?;
        f(&mut reg, now)
    })
    .await
    .map_err(|_| internal("a registry call panicked"))?
}

/// Keeps the registry caught up with its store, every `every`: with several instances on
/// one database, the appends of the others are replayed in the background, so a request
/// seldom finds many left to replay (it still refreshes before it answers, so this changes
/// no answer, only when the replay's work is done). A failed refresh is logged and tried
/// again at the next tick; the requests meanwhile fail with the storage's code.
pub async fn keep_fresh(state: Arc<AppState>, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let s = state.clone();
        let done = tokio::task::spawn_blocking(move || {
            let mut reg = s
                .registry
                .lock()
                .map_err(|_| "the registry lock is poisoned".to_owned())?;
            reg.refresh(s.clock.now()).map_err(|e| e.to_string())
        })
        .await;
        match done {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "refreshing the registry from its store failed")
            }
            Err(_) => tracing::warn!("refreshing the registry from its store panicked"),
        }
    }
}

/// The path the authority's DID log is served at (the did:webvh DID-to-HTTPS
/// transformation of its DID, without the origin), if it has a DID.
fn authority_log_path(state: &AppState) -> Option<String> {
    let reg = state.registry.lock().ok()?;
    let did = bizcred_core::webvh::WebvhDid::parse(&reg.authority_did()?.did).ok()?;
    let url = did.log_url();
    let after_scheme = url.split_once("://")?.1;
    after_scheme.find('/').map(|i| after_scheme[i..].to_owned())
}

/// The router.
pub fn app(state: Shared) -> Router {
    let mut router = Router::new();
    if let Some(path) = authority_log_path(&state) {
        if path != "/.well-known/did.jsonl" {
            router = router.route(&path, get(authority_log));
        }
    }
    router
        .route("/.well-known/did.jsonl", get(authority_log))
        .route("/governance", get(governance))
        .route("/trqp/v2/authorization", post(trqp_authorization))
        .route("/trqp/v2/recognition", post(trqp_recognition))
        .route("/recognized-bundles", post(recognized_bundle))
        .route("/checkpoint", get(checkpoint))
        .route("/entries", get(entries).post(submit_entry))
        .route("/proof/inclusion", get(inclusion))
        .route("/proof/consistency", get(consistency))
        .route("/dids/{did}", get(resolve))
        .route("/dids/{did}/did.jsonl", get(did_log))
        .route("/dids/{did}/log", post(did_lines))
        .route("/trqp/authorization", post(trqp_authorization))
        .route("/status-lists", post(status_list))
        .route("/bundle", get(bundle))
        .fallback(no_such_path)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response(problems_only))
        .with_state(state)
}

async fn authority_log(State(s): State<Shared>) -> Result<Response, ApiError> {
    let log = call(&s, |reg, _| {
        reg.authority_did()
            .map(|a| a.log.text())
            .ok_or_else(|| RegistryError::NoAuthorityDid.into())
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "text/jsonl")], log).into_response())
}

/// The governance framework's machine-readable summary: the authority, the TRQP endpoint and
/// version, the log's anchor, the actions and resources it defines, its recognitions.
async fn governance(State(s): State<Shared>) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        call(&s, |reg, _| {
            let st = reg.state();
            let resources: Vec<Value> = st
                .types
                .values()
                .map(|t| json!({"resource": t.vct, "max_status_age_seconds": t.max_status_age, "max_registry_age_seconds": t.max_registry_age}))
                .collect();
            let recognitions: Vec<Value> = st
                .recognitions
                .iter()
                .map(|r| json!({"entity_id": r.entity_id, "resource": r.resource,
                    "valid_from": bizcred_core::time::format_utc(r.valid_from),
                    "valid_until": r.valid_until.map(bizcred_core::time::format_utc),
                    "revoked_at": r.revoked_at.map(bizcred_core::time::format_utc),
                    "log_origin": r.anchor.origin, "entry": r.entry_index}))
                .collect();
            Ok(json!({
                "authority_id": reg.authority_id(),
                "trqp": {"version": trqp::VERSION, "endpoint": reg.authority_did().and_then(|a| a.service("TRQP"))},
                "log": reg.anchor(),
                "actions": {
                    trqp::ACTION_ISSUE: "an issuer (entity_id) may issue credentials of a type (resource): authorization queries",
                    trqp::ACTION_RECOGNIZE: "another registry's authority (entity_id) is recognized for a type (resource): its authorizations count here; recognition queries",
                },
                "resources": resources,
                "recognitions": recognitions,
            }))
        })
        .await?,
    ))
}

async fn checkpoint(State(s): State<Shared>) -> Result<Response, ApiError> {
    let cp = call(&s, |reg, _| Ok(reg.checkpoint().to_owned())).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], cp).into_response())
}

#[derive(Deserialize)]
struct Range {
    start: u64,
    end: u64,
}

async fn entries(State(s): State<Shared>, Query(r): Query<Range>) -> Result<Json<Value>, ApiError> {
    let page = call(&s, move |reg, _| Ok(reg.entries(r.start, r.end)?.to_vec())).await?;
    Ok(Json(Value::Array(page)))
}

#[derive(Deserialize)]
struct Incl {
    index: u64,
    size: u64,
}

async fn inclusion(
    State(s): State<Shared>,
    Query(q): Query<Incl>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        call(&s, move |reg, _| Ok(reg.inclusion_proof(q.index, q.size)?)).await?,
    ))
}

#[derive(Deserialize)]
struct Cons {
    first: u64,
    second: u64,
}

async fn consistency(
    State(s): State<Shared>,
    Query(q): Query<Cons>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        call(&s, move |reg, _| {
            Ok(reg.consistency_proof(q.first, q.second)?)
        })
        .await?,
    ))
}

async fn resolve(
    State(s): State<Shared>,
    Path(did): Path<String>,
    raw: axum::extract::RawQuery,
) -> Result<Json<Value>, ApiError> {
    let url = match raw.0 {
        Some(q) => format!("{did}?{q}"),
        None => did,
    };
    let r = call(&s, move |reg, _| Ok(reg.resolve(&url)?)).await?;
    Ok(Json(
        json!({"didDocument": r.document, "didDocumentMetadata": r.metadata, "didResolutionMetadata": {"contentType": "application/did+ld+json"}}),
    ))
}

async fn did_log(State(s): State<Shared>, Path(did): Path<String>) -> Result<Response, ApiError> {
    let log = call(&s, move |reg, _| {
        reg.did_log(&did).ok_or_else(|| {
            Problem::new(
                StatusCode::NOT_FOUND,
                ReasonCode::WebvhNotFound,
                format!("{did} is not registered"),
            )
        })
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "text/jsonl")], log).into_response())
}

async fn did_lines(
    State(s): State<Shared>,
    Path(did): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let text = String::from_utf8(body.to_vec()).map_err(|_| invalid("body is not UTF-8"))?;
    let index = call(&s, move |reg, now| {
        Ok(reg.submit_did_lines(&did, &text, now, &mut rand_core::OsRng)?)
    })
    .await?;
    Ok(Json(json!({"index": index})))
}

async fn trqp_authorization(
    State(s): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    json_body(&headers, "TRQP queries")?;
    let q = trqp::parse(&body).map_err(RegistryError::from)?;
    Ok(Json(
        call(&s, move |reg, now| Ok(reg.authorization_query(&q, now)?)).await?,
    ))
}

async fn trqp_recognition(
    State(s): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    json_body(&headers, "TRQP queries")?;
    let q = trqp::parse(&body).map_err(RegistryError::from)?;
    Ok(Json(
        call(&s, move |reg, now| Ok(reg.recognition_query(&q, now)?)).await?,
    ))
}

async fn recognized_bundle(
    State(s): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&s, &headers)?;
    let text = String::from_utf8(body.to_vec()).map_err(|_| invalid("body is not UTF-8"))?;
    let (authority, size) = call(&s, move |reg, now| {
        Ok(reg.put_recognized_bundle(&text, now)?)
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"authority_id": authority, "size": size})),
    )
        .into_response())
}

fn authorize(s: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or_else(|| {
            Problem::new(
                StatusCode::UNAUTHORIZED,
                ReasonCode::AdminTokenMissing,
                "a bearer token is required",
            )
        })?;
    let hash = token_hash(token);
    // Constant time per comparison; every configured hash is compared.
    let ok = s
        .admin_token_hashes
        .iter()
        .fold(0u8, |acc, h| acc | h.ct_eq(&hash).unwrap_u8());
    if ok == 1 {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::FORBIDDEN,
            ReasonCode::AdminTokenInvalid,
            "the token is not an admin token of this registry",
        ))
    }
}

async fn submit_entry(
    State(s): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&s, &headers)?;
    json_body(&headers, "entries")?;
    let body: Value = serde_json::from_slice(&body).map_err(|e| invalid(e.to_string()))?;
    // An array is one batch: every entry applies, or none is appended.
    let answer = call(&s, move |reg, now| {
        Ok(match body {
            Value::Array(batch) => {
                let r = reg.append_all(batch, now)?;
                json!({"index": r.start, "indices": r.collect::<Vec<u64>>(), "checkpoint": reg.checkpoint()})
            }
            entry => {
                let index = reg.append(entry, now)?;
                json!({"index": index, "checkpoint": reg.checkpoint()})
            }
        })
    })
    .await?;
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

async fn status_list(State(s): State<Shared>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let token = String::from_utf8(body.to_vec()).map_err(|_| invalid("body is not UTF-8"))?;
    let uri = call(&s, move |reg, _| Ok(reg.put_status_list(token.trim())?)).await?;
    Ok(Json(json!({"uri": uri})))
}

#[derive(Deserialize)]
struct FromSize {
    #[serde(default)]
    from: u64,
}

async fn bundle(State(s): State<Shared>, Query(q): Query<FromSize>) -> Result<Response, ApiError> {
    let b = call(&s, move |reg, now| Ok(reg.bundle(q.from, now)?)).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            bizcred_core::trust::bundle::MEDIA_TYPE,
        )],
        b,
    )
        .into_response())
}
