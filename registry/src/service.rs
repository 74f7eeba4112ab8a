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
//! | POST | `/trqp/authorization` | ToIP TRQP v2 authorization query, with evidence |
//! | POST | `/entries` | a signed governance entry, or an array of them applied all or none (bearer admin token) |
//! | POST | `/status-lists` | an issuer's signed status list token (verified with its registered key) |
//! | GET | `/bundle?from=` | the signed trust bundle |
//!
//! Errors are JSON `{"error": <stable code>, "error_description": <sentence>}`.
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
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::sequencer::{Registry, RegistryError};
use crate::store::Store;

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

struct ApiError(StatusCode, &'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(json!({"error": self.1, "error_description": self.2})),
        )
            .into_response()
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> ApiError {
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
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError(status, e.code().as_str(), e.to_string())
    }
}

type Shared = Arc<AppState>;

fn internal(what: &str) -> ApiError {
    ApiError(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        what.to_owned(),
    )
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

/// The router.
pub fn app(state: Shared) -> Router {
    Router::new()
        .route("/checkpoint", get(checkpoint))
        .route("/entries", get(entries).post(submit_entry))
        .route("/proof/inclusion", get(inclusion))
        .route("/proof/consistency", get(consistency))
        .route("/dids/{did}", get(resolve))
        .route("/dids/{did}/did.jsonl", get(did_log))
        .route("/dids/{did}/log", post(did_lines))
        .route("/trqp/authorization", post(trqp))
        .route("/status-lists", post(status_list))
        .route("/bundle", get(bundle))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
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
            ApiError(
                StatusCode::NOT_FOUND,
                "notFound",
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
    let text = String::from_utf8(body.to_vec()).map_err(|_| {
        ApiError(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "body is not UTF-8".into(),
        )
    })?;
    let index = call(&s, move |reg, now| {
        Ok(reg.submit_did_lines(&did, &text, now, &mut rand_core::OsRng)?)
    })
    .await?;
    Ok(Json(json!({"index": index})))
}

async fn trqp(State(s): State<Shared>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let req: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()))?;
    Ok(Json(
        call(&s, move |reg, now| Ok(reg.authorization_query(&req, now)?)).await?,
    ))
}

fn authorize(s: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a bearer token is required".into(),
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
        Err(ApiError(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the token is not an admin token of this registry".into(),
        ))
    }
}

async fn submit_entry(
    State(s): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&s, &headers)?;
    if !headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
    {
        return Err(ApiError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request",
            "entries are application/json".into(),
        ));
    }
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()))?;
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
    let token = String::from_utf8(body.to_vec()).map_err(|_| {
        ApiError(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "body is not UTF-8".into(),
        )
    })?;
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
