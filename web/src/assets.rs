//! The stylesheet and the one script, embedded in the binary and served under names that carry
//! their content hash, so browsers may cache them for a year and never see a stale one.

use std::sync::OnceLock;

use axum::http::header::{self, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// An embedded asset.
#[derive(Debug)]
pub struct Asset {
    /// Name without the hash (`desk.css`).
    pub name: &'static str,
    /// Content type.
    pub content_type: &'static str,
    /// Content.
    pub body: &'static str,
}

/// The stylesheet.
pub const CSS: &Asset = &Asset {
    name: "desk.css",
    content_type: "text/css; charset=utf-8",
    body: include_str!("../assets/desk.css"),
};

/// The script (live updates; every page works without it).
pub const JS: &Asset = &Asset {
    name: "desk.js",
    content_type: "text/javascript; charset=utf-8",
    body: include_str!("../assets/desk.js"),
};

const ALL: [&Asset; 2] = [CSS, JS];

fn hashed(asset: &Asset) -> String {
    let digest = Sha256::digest(asset.body.as_bytes());
    let short: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    match asset.name.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}-{short}.{ext}"),
        None => format!("{}-{short}", asset.name),
    }
}

fn names() -> &'static [String; 2] {
    static NAMES: OnceLock<[String; 2]> = OnceLock::new();
    NAMES.get_or_init(|| ALL.map(hashed))
}

/// The URL of an asset.
pub fn href(asset: &Asset) -> String {
    let i = ALL.iter().position(|a| a.name == asset.name).unwrap_or(0);
    format!("/desk/assets/{}", names()[i])
}

/// Answers `/desk/assets/{name}`: the asset with a year's cache, or 404 for any other name
/// (an old hash included).
pub fn serve(name: &str) -> Response {
    match names().iter().position(|n| n == name) {
        Some(i) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(ALL[i].content_type),
                ),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=31536000, immutable"),
                ),
            ],
            ALL[i].body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
