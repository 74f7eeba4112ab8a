//! The repository's JSON API (the pages call the same [`Repository`] methods):
//!
//! * `GET /api/search?q=&status=&municipality=&type=&page=&per_page=`: businesses by name
//!   words, business number or corporation number ([`crate::SearchResults`]);
//! * `GET /api/businesses/{number}`: a business page's data ([`crate::Business`]);
//! * `GET /credentials/{id}`: a credential as issued (`application/dc+sd-jwt`), for anyone to
//!   verify with `bizcred-verifier verify-record` without trusting the repository;
//! * `POST /api/credentials`: an issuer pushes public credentials (`{"credentials": [...]}`),
//!   each verified on intake; answers the [`crate::IntakeReport`]. Anyone may push (nothing is
//!   held that does not verify against the trust bundle), so pushes are verified one at a
//!   time: a push while another is verified is answered 503 `REPOSITORY_BUSY` with
//!   `Retry-After`, never queued.
//!
//! Errors are `{"error", "error_description", "code"}` with the HTTP status of their kind.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::{Error, Repository, SearchQuery};

/// Most credentials one push takes (anyone may push: each is verified, and a push is bounded).
pub const MAX_PUSH_CREDENTIALS: usize = 2_000;
/// Largest body of a push.
pub const MAX_PUSH_BODY: usize = 8 * 1024 * 1024;

/// An API error.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error) = match &self.0 {
            Error::Query(_) | Error::Request(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Error::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "invalid_request"),
            Error::NoTrust => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            Error::Busy => (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!("{}", self.0);
        }
        let mut r = (
            status,
            Json(json!({"error": error, "error_description": self.0.to_string(), "code": self.0.code().as_str()})),
        )
            .into_response();
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if matches!(self.0, Error::Busy) {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

type Shared = Arc<Repository>;

async fn blocking<T: Send + 'static>(
    s: &Shared,
    f: impl FnOnce(&Repository) -> Result<T, Error> + Send + 'static,
) -> Result<T, ApiError> {
    let s = s.clone();
    tokio::task::spawn_blocking(move || f(&s))
        .await
        .map_err(|e| ApiError(Error::Index(format!("the request's task failed: {e}"))))?
        .map_err(ApiError)
}

/// The API's routes.
pub fn api(repo: Shared) -> Router {
    Router::new()
        .route("/api/search", get(search))
        .route("/api/businesses/{number}", get(business))
        .route("/credentials/{id}", get(credential))
        .route(
            "/api/credentials",
            post(push).layer(DefaultBodyLimit::max(MAX_PUSH_BODY)),
        )
        // One push verified at a time by this router.
        .layer(axum::Extension(Arc::new(tokio::sync::Semaphore::new(1))))
        .with_state(repo)
}

async fn search(
    State(s): State<Shared>,
    q: Result<Query<SearchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| Error::Query(e.body_text()))?;
    let r = blocking(&s, move |r| r.search(&q)).await?;
    Ok(Json(r).into_response())
}

async fn business(State(s): State<Shared>, Path(n): Path<String>) -> Result<Response, ApiError> {
    let b = blocking(&s, move |r| r.business(&n)).await?;
    Ok(Json(b).into_response())
}

async fn credential(State(s): State<Shared>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = id.strip_suffix(".sd-jwt").unwrap_or(&id).to_owned();
    let want = id.clone();
    let text = blocking(&s, move |r| r.credential_text(&want))
        .await?
        .ok_or_else(|| Error::NotFound(id.chars().take(64).collect()))?;
    let mut r = text.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/dc+sd-jwt"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}.sd-jwt\"",
        &id[..id.len().min(16)]
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    Ok(r)
}

#[derive(Deserialize)]
struct Push {
    credentials: Vec<String>,
}

async fn push(
    State(s): State<Shared>,
    axum::Extension(turns): axum::Extension<Arc<tokio::sync::Semaphore>>,
    body: Result<Json<Push>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(p) = body.map_err(|e| match e {
        axum::extract::rejection::JsonRejection::BytesRejection(_) => {
            Error::TooLarge(format!("the body is over {MAX_PUSH_BODY} bytes"))
        }
        other => Error::Request(other.body_text()),
    })?;
    if p.credentials.len() > MAX_PUSH_CREDENTIALS {
        return Err(ApiError(Error::TooLarge(format!(
            "{} credentials in one push; the limit is {MAX_PUSH_CREDENTIALS}",
            p.credentials.len()
        ))));
    }
    // The turn is held by the verification itself: a client that hangs up does not free it
    // while its push is still verified.
    let Ok(turn) = turns.try_acquire_owned() else {
        return Err(ApiError(Error::Busy));
    };
    let report = blocking(&s, move |r| {
        let _turn = turn;
        let report = r.intake(&p.credentials)?;
        r.commit()?;
        Ok(report)
    })
    .await?;
    Ok(Json(report).into_response())
}
