//! The public feed (`GET /public/credentials?after=N&limit=M`): every public credential the
//! issuer recorded ([`crate::issuer::bulk`]), in order, for repositories to pull. Each item is
//! a signed credential a reader verifies on its own; the feed's order is its replay cursor.
//! No personal data: public credentials hold none.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::service::ApiError;
use crate::store::MAX_FEED_PAGE;
use crate::Issuer;

#[derive(Debug, Deserialize)]
struct FeedQuery {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
}

/// The feed's routes.
pub fn routes(issuer: Arc<Issuer>) -> Router {
    Router::new()
        .route("/public/credentials", get(feed))
        .with_state(issuer)
}

async fn feed(
    State(s): State<Arc<Issuer>>,
    q: Result<Query<FeedQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) =
        q.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))?;
    let limit = q.limit.unwrap_or(MAX_FEED_PAGE).clamp(1, MAX_FEED_PAGE);
    let items = tokio::task::spawn_blocking(move || s.store.public_feed(q.after, limit))
        .await
        .map_err(|_| ApiError::internal("the request's task failed"))??;
    let next = items.last().map_or(q.after, |i| i.seq);
    let mut r = Json(json!({"items": items, "next_after": next, "complete": items.len() < limit}))
        .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(r)
}
