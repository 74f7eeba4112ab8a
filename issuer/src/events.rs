//! The issuer's event feed (`GET /events?after=N&limit=M`): a page of its event log (credentials
//! issued, suspended, revoked, reinstated) after position `after`, signed as a compact JWS
//! (`typ` `bizcred-events+jwt`, `kid` the current assertion key's DID URL) for other agencies to
//! poll and verify offline with the issuer's key from the trust bundle
//! ([`crate::issuer::subscribe::Subscription`]). The page's `next_after` is the next cursor.
//! Events carry identifiers of the business only; the query carries positions only.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use crate::service::ApiError;
use crate::store::MAX_EVENT_PAGE;
use crate::Issuer;

/// The media type of an event page.
pub const EVENTS_CONTENT_TYPE: &str = "application/bizcred-events+jwt";

#[derive(Debug, Deserialize)]
struct EventsQuery {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
}

/// The feed's routes.
pub fn routes(issuer: Arc<Issuer>) -> Router {
    Router::new()
        .route("/events", get(events))
        .with_state(issuer)
}

async fn events(
    State(s): State<Arc<Issuer>>,
    q: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) =
        q.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))?;
    let limit = q.limit.unwrap_or(MAX_EVENT_PAGE).clamp(1, MAX_EVENT_PAGE);
    let (token, _) = tokio::task::spawn_blocking(move || s.event_page(q.after, limit))
        .await
        .map_err(|_| ApiError::internal("the request's task failed"))??;
    let mut r = token.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(EVENTS_CONTENT_TYPE),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(r)
}
