//! Public pages: what a service's pages for everyone (no staff, no sessions, no sign-in) share
//! with the desks. The same layout without the staff bar, the same stylesheet (served under
//! `/assets/`), the same language choice (the shared `bizcred_lang` cookie, else
//! `Accept-Language`, else English) switched by `/lang/{code}?next=`, and the same security
//! headers ([`crate::desk::security_headers`]). A service builds a [`Public`], merges
//! [`Public::routes`] with its own pages and frames each page's body with [`Public::page`].

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::assets;
use crate::desk::{language_switch, request_lang, security_headers};
use crate::i18n::{Catalog, Lang, Tr};

/// Longest path (with its query) a language switch returns to.
pub const MAX_NEXT: usize = 2048;

/// One public page's frame: what the layout needs besides the body.
#[derive(Debug)]
pub struct PublicFrame<'a> {
    /// The page's language.
    pub lang: Lang,
    /// The page title (already translated).
    pub title: String,
    /// The path of this page with its query (the language switch comes back to it).
    pub path: &'a str,
}

#[derive(Template)]
#[template(path = "public.html")]
struct Layout<'a> {
    t: Tr,
    title: &'a str,
    service: String,
    body: &'a str,
    css: String,
    switch_href: String,
}

/// A service's public pages.
pub struct Public {
    /// The catalogue (shared and the service's).
    pub catalog: Arc<Catalog>,
    title_key: &'static str,
}

impl std::fmt::Debug for Public {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Public")
            .field("title_key", &self.title_key)
            .finish_non_exhaustive()
    }
}

/// A path of this service to return to after a language switch: a local path (not another
/// host's, not the switch itself), else the home page.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/lang/")
                && !n.contains('\\')
                && n.len() <= MAX_NEXT
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// The URL of an embedded asset on public pages (`/assets/{hashed name}`).
pub fn asset_href(asset: &assets::Asset) -> String {
    let desk = assets::href(asset);
    format!("/assets/{}", desk.rsplit('/').next().unwrap_or(""))
}

fn html_headers() -> [(header::HeaderName, HeaderValue); 3] {
    [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (
            header::VARY,
            HeaderValue::from_static("Cookie, Accept-Language"),
        ),
    ]
}

impl Public {
    /// Public pages with `catalog` (the shared catalogue joined to the service's), headed by
    /// the message `title_key` (the service's name).
    pub fn new(catalog: Arc<Catalog>, title_key: &'static str) -> Public {
        Public { catalog, title_key }
    }

    /// The page language: the remembered choice, else `Accept-Language`, else English.
    pub fn lang(&self, headers: &HeaderMap) -> Lang {
        request_lang(headers)
    }

    /// A translator for `lang`.
    pub fn tr(&self, lang: Lang) -> Tr {
        Tr::new(self.catalog.clone(), lang)
    }

    /// Frames `body` in the public layout and answers it with `status`.
    pub fn page(&self, frame: &PublicFrame<'_>, body: &str, status: StatusCode) -> Response {
        let t = self.tr(frame.lang);
        let layout = Layout {
            service: t.get(self.title_key),
            title: &frame.title,
            body,
            css: asset_href(assets::CSS),
            switch_href: format!(
                "/lang/{}?next={}",
                frame.lang.other().code(),
                form_urlencoded::byte_serialize(safe_next(Some(frame.path)).as_bytes())
                    .collect::<String>()
            ),
            t,
        };
        match layout.render() {
            Ok(html) => (status, html_headers(), html).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "the public layout failed to render");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
            }
        }
    }

    /// The shared routes (`/lang/{code}`, `/assets/{name}`), with the security headers, to
    /// merge with the service's pages.
    pub fn routes(self: &Arc<Self>) -> Router {
        async fn lang(
            Path(code): Path<String>,
            Query(q): Query<Vec<(String, String)>>,
        ) -> Response {
            let next = q.iter().find(|(k, _)| k == "next").map(|(_, v)| v.as_str());
            language_switch(&code, &safe_next(next))
        }
        async fn asset(Path(name): Path<String>) -> Response {
            assets::serve(&name)
        }
        Router::new()
            .route("/lang/{code}", get(lang))
            .route("/assets/{name}", get(asset))
            .layer(axum::middleware::from_fn(security_headers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_a_local_path_only() {
        assert_eq!(safe_next(Some("/search?q=a%20b")), "/search?q=a%20b");
        assert_eq!(safe_next(Some("/business/1000001")), "/business/1000001");
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/x\\y",
            "/lang/fr?next=/",
            "/with space",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(Some(&format!("/{}", "a".repeat(MAX_NEXT)))), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn assets_are_served_under_assets() {
        let css = asset_href(assets::CSS);
        assert!(css.starts_with("/assets/desk-"), "{css}");
        assert!(css.ends_with(".css"), "{css}");
    }
}
