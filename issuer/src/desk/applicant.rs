//! The applicant's page at the application's capability link (`GET /applicant/{capability}`
//! asked for as HTML, as a browser does): the same view the applicant API answers as JSON, in
//! English or French on the shared public layout: the state in words, the agency's note, the
//! upstream flags, the open prerequisite request (as a wallet command, a link and a QR code)
//! or the offer with its transaction code. Nothing on it is sent anywhere else: the response
//! carries `Referrer-Policy: no-referrer`, and the service logs route templates only.

use std::sync::{Arc, OnceLock};

use askama::Template;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use bizcred_schemas::CredentialType;
use bizcred_web::i18n::{Catalog, Lang, Tr};
use bizcred_web::{schema_lang, Public, PublicFrame};

use crate::Issuer;

/// The public pages of the issuer (the applicant's page, the language switch, the assets), or
/// `None` when the catalogue does not load (a test checks that it does).
pub fn public() -> Option<&'static Arc<Public>> {
    static PUBLIC: OnceLock<Option<Arc<Public>>> = OnceLock::new();
    PUBLIC
        .get_or_init(
            || match Catalog::new(&[bizcred_web::i18n::SHARED, super::CATALOG]) {
                Ok(c) => Some(Arc::new(Public::new(Arc::new(c), "applicant.service"))),
                Err(e) => {
                    tracing::error!(error = %e, "the applicant page's catalogue does not load");
                    None
                }
            },
        )
        .as_ref()
}

struct Request {
    command: String,
    uri: String,
    qr: Option<String>,
}

struct Offer {
    command: String,
    uri: String,
    tx_code: String,
    expires: String,
    qr: Option<String>,
}

#[derive(Template)]
#[template(path = "applicant/page.html")]
struct Page {
    t: Tr,
    agency: String,
    state: String,
    state_class: &'static str,
    since: String,
    id: String,
    note: Option<String>,
    flags: Vec<String>,
    request: Option<Request>,
    offer: Option<Offer>,
    path: String,
}

fn type_name(t: &Tr, vct_or_slug: &str) -> String {
    CredentialType::from_vct(vct_or_slug)
        .or_else(|| CredentialType::from_slug(vct_or_slug))
        .map_or_else(
            || vct_or_slug.to_owned(),
            |ty| ty.metadata().display_name(schema_lang(t.lang)).to_owned(),
        )
}

/// A string member of the view. The view is [`Issuer::applicant_view`]'s, built just before
/// for this page, which always sets the members read here; a missing one renders empty rather
/// than failing the founder's page.
fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_default()
}

/// The applicant's page for `view` (what [`Issuer::applicant_view`] answers), at `path` (the
/// capability link's path).
pub fn page(issuer: &Issuer, view: &Value, path: &str, headers: &HeaderMap) -> Response {
    let Some(public) = public() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
    };
    let lang = public.lang(headers);
    let t = public.tr(lang);
    let state = str_of(view, "state");
    let flags = view["flags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            let key = if f["event"] == "credential_revoked" {
                "applicant.flag_revoked"
            } else {
                "applicant.flag_suspended"
            };
            t.fill(
                key,
                &[
                    ("type", &type_name(&t, str_of(f, "vct"))),
                    ("time", &t.time(f["time"].as_i64().unwrap_or_default())),
                ],
            )
        })
        .collect();
    let request = view["request_uri"].as_str().map(|uri| Request {
        command: bizcred_cli::command_line(&["bizcred-wallet", "present", uri]),
        uri: uri.to_owned(),
        qr: bizcred_web::qr::svg(uri, &t.get("applicant.qr_present")),
    });
    let offer = view["offer"]["credential_offer_uri"]
        .as_str()
        .zip(view["offer"]["tx_code"].as_str())
        .map(|(uri, tx)| Offer {
            command: bizcred_cli::command_line(&[
                "bizcred-wallet",
                "receive",
                uri,
                "--tx-code",
                tx,
            ]),
            uri: uri.to_owned(),
            tx_code: tx.to_owned(),
            expires: t.time(view["offer"]["expires"].as_i64().unwrap_or_default()),
            qr: bizcred_web::qr::svg(uri, &t.get("applicant.qr_offer")),
        });
    let body = Page {
        agency: match lang {
            Lang::En => issuer.config.name_en.clone(),
            Lang::Fr => issuer.config.name_fr.clone(),
        },
        state: t.get(&format!("applicant.state_{state}")),
        state_class: match state {
            "issued" | "offered" => "ok",
            "refused" => "bad",
            "withdrawn" => "",
            _ => "warn",
        },
        since: t.time(view["updated"].as_i64().unwrap_or_default()),
        id: str_of(view, "application_id").to_owned(),
        note: view["note"].as_str().map(str::to_owned),
        flags,
        request,
        offer,
        path: path.to_owned(),
        t: t.clone(),
    };
    let html = match body.render() {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "the applicant page failed to render");
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
        }
    };
    let title = t.fill(
        "applicant.title",
        &[(
            "type",
            &type_name(&t, str_of(view, "credential_configuration_id")),
        )],
    );
    let mut resp = public.page(&PublicFrame { lang, title, path }, &html, StatusCode::OK);
    resp.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// Whether a request asks for a page rather than JSON (a browser's `Accept`).
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.trim_start().starts_with("text/html"))
}
