//! The founder's pages, in English and French, on [`bizcred_web::public`] (layout, language
//! switch, stylesheet, security headers), with a server-side session per founder
//! ([`crate::session`]) and its CSRF token in every form. Reading a page begins no session:
//! until the first application, a form's token is the form cookie's (double submit), and the
//! session that application begins takes it as its CSRF token. The session cookie is
//! `__Host-bizcred_portal` under TLS (`Secure`, `Path=/`, no `Domain`), else `bizcred_portal`.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the checklist: each type in prerequisite order, its agency, what it needs, its state; an Apply form on each step that takes applications (open, or waiting for prerequisites the founder's wallet may already hold) |
//! | `POST /apply` | opens the application at the agency, keeps its capability in the session (the first one begins the session, or changes its id), `303` to `/applications/{n}`; a refusal is shown on the form (error summary tied to the fields) |
//! | `GET /applications/{n}` | one application: its state, the wallet's presentation request (text, link, QR code) while prerequisites are awaited, the offer once approved |
//! | `POST /applications/{n}/claims` | the answer to the agency's request for more information (the claims the founder states, pre-filled as they stand), sent to the agency; a refusal is shown on the form |
//! | `POST /applications/{n}/withdraw` | withdraws it at the agency |
//! | `GET /tracker`, `GET /tracker.json` | every application of the session, its state as the agency answers now |
//! | `GET /scripts/{name}` | the live-update script (content-hashed name) |
//!
//! Every text is chosen and translated here; templates only lay it out, and askama escapes it.
//! No capability, claim or personal data is put in a URL or a log line.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;
use sha2::{Digest, Sha256};

use bizcred_schemas::{CredentialType, ReasonCode};
use bizcred_web::desk::{security_headers, see_other};
use bizcred_web::i18n::{Catalog, CatalogError, Lang, Source, Tr, SHARED};
use bizcred_web::public::{Public, PublicFrame};
use bizcred_web::session::{random_token, same_token};
use bizcred_web::{schema_lang, Form};

use crate::agency::{AgencyError, ApplicantTypes};
use crate::checklist::{self, AppState, StepState};
use crate::fields::{self, ClaimInput, FieldProblem, Input, Problem};
use crate::session::{Application, Snapshot};
use crate::{Error, Portal};

/// The portal pages' catalogue (English and French), joined to the shared one.
pub const SOURCE: Source = Source {
    name: "portal",
    en: include_str!("../i18n/en.toml"),
    fr: include_str!("../i18n/fr.toml"),
};

/// The session cookie (`__Host-bizcred_portal` when `Secure`: the service runs under TLS).
pub const COOKIE: &str = "bizcred_portal";
/// The cookie holding the CSRF token of the forms shown before a session begins (the
/// first application begins it, with this token as its CSRF token).
pub const FORM_COOKIE: &str = "bizcred_portal_form";
/// Largest form a page accepts.
pub const MAX_FORM: usize = 64 * 1024;

/// The live-update script.
const SCRIPT: &str = include_str!("../assets/portal.js");

/// The shared and the portal pages' messages; an error when a key is missing in a language.
pub fn catalog() -> Result<Catalog, CatalogError> {
    Catalog::new(&[SHARED, SOURCE])
}

/// Every key a page builds from data (states, steps, choices, flags): a test holds each in
/// both languages.
pub fn translated_keys() -> Vec<String> {
    let mut keys: Vec<String> = [
        "awaiting_prerequisites",
        "awaiting_approval",
        "changes_requested",
        "offered",
        "issued",
        "refused",
        "withdrawn",
        "removed",
        "other",
    ]
    .iter()
    .map(|s| format!("state.{s}"))
    .collect();
    keys.extend(
        ["held", "in_progress", "waiting", "open"]
            .iter()
            .map(|s| format!("step.{s}")),
    );
    keys.extend(
        [
            "business_corporation",
            "not_for_profit_corporation",
            "professional_corporation",
            "cooperative_corporation",
            "active",
            "inactive",
            "dissolved",
            "amalgamated",
        ]
        .iter()
        .map(|s| format!("choice.{s}")),
    );
    keys.extend(
        ["credential_suspended", "credential_revoked", "other"]
            .iter()
            .map(|s| format!("flag.{s}")),
    );
    keys
}

/// The script's name, with its content hash (cached for a year under it).
pub fn script_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let digest = Sha256::digest(SCRIPT.as_bytes());
        let short: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        format!("portal-{short}.js")
    })
}

fn script_href() -> String {
    format!("/scripts/{}", script_name())
}

struct Pages {
    portal: Arc<Portal>,
    public: Arc<Public>,
    secure: bool,
}

/// The pages' routes (with the language switch, the stylesheet, the script, a 404 page for
/// any other path and the security headers). `secure` marks the session cookie `Secure`
/// (the service runs under TLS).
pub fn routes(portal: Arc<Portal>, secure: bool) -> Router {
    let catalog = catalog().expect("the portal's catalogue is complete (a test holds it)");
    let pages = Arc::new(Pages {
        portal,
        public: Arc::new(Public::new(Arc::new(catalog), "service.title")),
        secure,
    });
    let public = pages.public.routes();
    Router::new()
        .route("/", get(home))
        .route("/apply", post(apply))
        .route("/applications/{n}", get(application))
        .route("/applications/{n}/withdraw", post(withdraw))
        .route("/applications/{n}/claims", post(answer))
        .route("/tracker", get(tracker))
        .route("/tracker.json", get(tracker_json))
        .route("/scripts/{name}", get(script))
        .fallback(no_page)
        .with_state(pages)
        .layer(axum::middleware::from_fn(security_headers))
        .merge(public)
}

// ----------------------------------------------------------------------------------------
// Sessions.

/// A request's language and session (and the cookies to set).
struct Visit {
    lang: Lang,
    session: Option<Snapshot>,
    /// The token of the forms shown while there is no session (the form cookie's).
    form_token: Option<String>,
    /// The request comes from another site: its cookies were not sent.
    cross_site: bool,
    /// The session cookie to set (a session began, or its id changed).
    session_cookie: Option<String>,
    /// The form cookie to set.
    form_cookie: Option<String>,
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A token this portal could have made (URL-safe text of a bounded length).
fn plausible_token(t: &str) -> bool {
    (16..=128).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

impl Pages {
    /// The session cookie's name: with the `__Host-` prefix when `Secure` (then `Path=/`
    /// and no `Domain`, as the prefix requires).
    fn cookie_name(&self) -> &'static str {
        if self.secure {
            "__Host-bizcred_portal"
        } else {
            COOKIE
        }
    }

    fn form_cookie_name(&self) -> &'static str {
        if self.secure {
            "__Host-bizcred_portal_form"
        } else {
            FORM_COOKIE
        }
    }

    fn cookie(&self, name: &str, value: &str, max_age: i64) -> String {
        format!(
            "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
            if self.secure { "; Secure" } else { "" }
        )
    }

    /// The `Set-Cookie` of session `id`.
    fn session_cookie(&self, id: &str) -> String {
        let limits = self.portal.sessions.limits();
        self.cookie(self.cookie_name(), id, limits.absolute)
    }

    /// The request's session, if it has one: a page read never begins one. With `forms`
    /// (a page showing forms), a request without a session gets the form cookie's token
    /// (made when it has none), unless it comes from another site (a `SameSite=Strict`
    /// cookie is not sent then: the founder's session is not shown, and no form either).
    fn visit(&self, headers: &HeaderMap, forms: bool) -> Visit {
        let lang = self.public.lang(headers);
        let now = self.portal.now();
        let cross_site = headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() == b"cross-site");
        let mut v = Visit {
            lang,
            session: None,
            form_token: None,
            cross_site,
            session_cookie: None,
            form_cookie: None,
        };
        v.session = cookie_value(headers, self.cookie_name())
            .and_then(|id| self.portal.sessions.touch(id, now));
        if v.session.is_some() || cross_site {
            return v;
        }
        match cookie_value(headers, self.form_cookie_name()).filter(|t| plausible_token(t)) {
            Some(t) => v.form_token = Some(t.to_owned()),
            None if forms => {
                let t = random_token(32);
                let idle = self.portal.sessions.limits().idle;
                v.form_cookie = Some(self.cookie(self.form_cookie_name(), &t, idle));
                v.form_token = Some(t);
            }
            None => {}
        }
        v
    }

    /// The session posting `form`, its CSRF token checked. With `begin` (the first
    /// application), a request without a session begins one when its token is the form
    /// cookie's; a full table refuses it (503) rather than drop a founder's applications.
    fn posted(
        &self,
        headers: &HeaderMap,
        body: &Bytes,
        begin: bool,
    ) -> Result<(Visit, Snapshot, Form), Refusal> {
        let mut v = self.visit(headers, false);
        let form = Form::parse(body, MAX_FORM).map_err(|e| Refusal {
            status: StatusCode::BAD_REQUEST,
            code: e.code(),
        })?;
        let csrf_rejected = Refusal {
            status: StatusCode::FORBIDDEN,
            code: ReasonCode::CsrfRejected,
        };
        if let Some(s) = v.session.clone() {
            return match form.get("csrf") {
                Some(t) if same_token(t, &s.csrf) => Ok((v, s, form)),
                _ => Err(csrf_rejected),
            };
        }
        let Some(expected) = v.form_token.clone().filter(|_| begin) else {
            return Err(Refusal {
                status: StatusCode::FORBIDDEN,
                code: ReasonCode::SessionRequired,
            });
        };
        if !form.get("csrf").is_some_and(|t| same_token(t, &expected)) {
            return Err(csrf_rejected);
        }
        let (id, s) = self
            .portal
            .sessions
            .create(self.portal.now(), Some(expected))
            .map_err(|_| {
                tracing::warn!("the session table is full of founders' applications");
                Refusal {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    code: ReasonCode::PortalSessionsFull,
                }
            })?;
        v.session_cookie = Some(self.session_cookie(&id));
        v.session = Some(s.clone());
        Ok((v, s, form))
    }

    /// The CSRF token of the forms a page shows.
    fn csrf(v: &Visit, session: Option<&Snapshot>) -> String {
        session
            .map(|s| s.csrf.clone())
            .or_else(|| v.form_token.clone())
            .unwrap_or_default()
    }

    fn render(
        &self,
        v: &Visit,
        title: String,
        path: &str,
        body: &str,
        status: StatusCode,
    ) -> Response {
        let mut r = self.public.page(
            &PublicFrame {
                lang: v.lang,
                title,
                path,
            },
            body,
            status,
        );
        with_cookie(&mut r, v);
        r
    }

    fn error(&self, v: &Visit, path: &str, status: StatusCode, code: ReasonCode) -> Response {
        let t = self.public.tr(v.lang);
        let key = match code {
            ReasonCode::PageNotFound => "page_not_found",
            ReasonCode::SessionRequired => "session_required",
            ReasonCode::CsrfRejected => "csrf_rejected",
            ReasonCode::FormInvalid | ReasonCode::FormTooLarge => "form_invalid",
            ReasonCode::TrustBundleMissing => "no_trust",
            ReasonCode::PortalSessionsFull => "busy",
            _ => "failed",
        };
        let page = ErrorPage {
            message: t.get(&format!("problem.{key}")),
            code: code.as_str(),
            t: t.clone(),
        };
        match page.render() {
            Ok(body) => self.render(v, t.get("problem.title"), path, &body, status),
            Err(e) => self.failed(v, path, &e.to_string()),
        }
    }

    fn failed(&self, v: &Visit, path: &str, cause: &str) -> Response {
        tracing::error!(%cause, "a portal page failed");
        let t = self.public.tr(v.lang);
        let body = ErrorPage {
            message: t.get("problem.failed"),
            code: ReasonCode::PageFailed.as_str(),
            t: t.clone(),
        }
        .render()
        .unwrap_or_default();
        self.render(
            v,
            t.get("problem.title"),
            path,
            &body,
            StatusCode::INTERNAL_SERVER_ERROR,
        )
    }
}

fn with_cookie(r: &mut Response, v: &Visit) {
    for c in [&v.session_cookie, &v.form_cookie].into_iter().flatten() {
        if let Ok(h) = HeaderValue::from_str(c) {
            r.headers_mut().append(header::SET_COOKIE, h);
        }
    }
}

/// A `303 See Other` to `to`, with the visit's cookies.
fn redirect(v: &Visit, to: &str) -> Response {
    let mut r = see_other(to);
    with_cookie(&mut r, v);
    r
}

/// A refused request: its status and code.
struct Refusal {
    status: StatusCode,
    code: ReasonCode,
}

// ----------------------------------------------------------------------------------------
// Views.

fn type_name(t: &Tr, ty: CredentialType) -> String {
    ty.metadata().display_name(schema_lang(t.lang)).to_owned()
}

fn agency_name(t: &Tr, a: &Application) -> String {
    match t.lang {
        Lang::En => a.agency_en.clone(),
        Lang::Fr => a.agency_fr.clone(),
    }
}

/// One line of an application's details.
#[derive(Debug, Clone, Serialize)]
struct Detail {
    label: String,
    text: String,
    mono: bool,
}

/// One application, as the tracker and `/tracker.json` show it.
#[derive(Debug, Clone, Serialize)]
struct Row {
    n: usize,
    href: String,
    agency: String,
    type_name: String,
    state: String,
    state_text: String,
    state_class: &'static str,
    details: Vec<Detail>,
    time: String,
    withdraw: Option<String>,
    sig: String,
}

fn state_class(s: &AppState) -> &'static str {
    match s {
        AppState::Issued | AppState::Offered => "ok",
        AppState::Refused => "bad",
        AppState::Withdrawn | AppState::Removed => "",
        _ => "warn",
    }
}

fn wallet_receive(offer: &str, tx_code: Option<&str>) -> String {
    let mut words = vec!["bizcred-wallet", "receive", offer];
    if let Some(c) = tx_code {
        words.extend(["--tx-code", c]);
    }
    bizcred_cli::command_line(&words)
}

fn wallet_present(uri: &str) -> String {
    bizcred_cli::command_line(&["bizcred-wallet", "present", uri, "--yes"])
}

fn row(t: &Tr, n: usize, a: &Application) -> Row {
    let mut details = Vec::new();
    let state_text = match &a.state {
        AppState::Other(name) => t.fill("state.other", &[("name", name)]),
        s => t.get(&format!("state.{}", s.name())),
    };
    let v = a.view.as_ref();
    // The agency's own number for the application, to quote when calling it.
    details.push(Detail {
        label: t.get("detail.reference"),
        text: a.application_id.clone(),
        mono: true,
    });
    if let Some(note) = v.and_then(|v| v.note.as_deref()).filter(|n| !n.is_empty()) {
        let label = match a.state {
            AppState::Refused => "detail.reason",
            _ => "detail.note",
        };
        details.push(Detail {
            label: t.get(label),
            text: note.to_owned(),
            mono: false,
        });
    }
    if a.state == AppState::Offered {
        if let Some(o) = v.and_then(|v| v.offer.as_ref()) {
            details.push(Detail {
                label: t.get("detail.offer"),
                text: o.credential_offer_uri.clone(),
                mono: true,
            });
            if let Some(c) = &o.tx_code {
                details.push(Detail {
                    label: t.get("detail.tx_code"),
                    text: c.clone(),
                    mono: true,
                });
            }
            details.push(Detail {
                label: t.get("detail.receive"),
                text: wallet_receive(&o.credential_offer_uri, o.tx_code.as_deref()),
                mono: true,
            });
            if let Some(x) = o.expires {
                details.push(Detail {
                    label: t.get("detail.expires"),
                    text: t.time(x),
                    mono: false,
                });
            }
        }
    }
    for f in v.map(|v| v.flags.as_slice()).unwrap_or(&[]) {
        let upstream =
            CredentialType::from_vct(&f.vct).map_or_else(|| f.vct.clone(), |ty| type_name(t, ty));
        let key = match f.event.as_str() {
            "credential_suspended" | "credential_revoked" => format!("flag.{}", f.event),
            _ => "flag.other".to_owned(),
        };
        details.push(Detail {
            label: t.get("detail.flag"),
            text: t.fill(
                &key,
                &[
                    ("type", &upstream),
                    ("time", &t.time(f.time)),
                    ("event", &f.event),
                ],
            ),
            mono: false,
        });
    }
    if let Some(at) = a.unreachable_at {
        details.push(Detail {
            label: t.get("detail.unreachable"),
            text: t.fill("detail.unreachable_text", &[("time", &t.time(at))]),
            mono: false,
        });
    }
    let time = if a.unreachable_at.is_some() {
        t.fill("tracker.last_known", &[("time", &t.time(a.state_time))])
    } else {
        t.time(a.state_time)
    };
    let mut r = Row {
        n,
        href: format!("/applications/{n}"),
        agency: agency_name(t, a),
        type_name: type_name(t, a.ty),
        state: a.state.name().to_owned(),
        state_text,
        state_class: state_class(&a.state),
        details,
        time,
        withdraw: a
            .state
            .is_withdrawable()
            .then(|| format!("/applications/{n}/withdraw")),
        sig: String::new(),
    };
    let digest = Sha256::digest(serde_json::to_vec(&r).unwrap_or_default());
    r.sig = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    r
}

fn rows(t: &Tr, s: &Snapshot) -> Vec<Row> {
    s.apps
        .iter()
        .enumerate()
        .map(|(n, a)| row(t, n, a))
        .collect()
}

fn steps_of(s: Option<&Snapshot>) -> Vec<(CredentialType, StepState)> {
    let apps: Vec<(CredentialType, AppState)> = s
        .map(|s| s.apps.iter().map(|a| (a.ty, a.state.clone())).collect())
        .unwrap_or_default();
    checklist::steps(&apps)
}

fn steps_sig(steps: &[(CredentialType, StepState)]) -> String {
    steps
        .iter()
        .map(|(ty, s)| format!("{}:{s:?}", ty.slug()))
        .collect::<Vec<_>>()
        .join(",")
}

/// A select's option.
#[derive(Debug, Clone)]
struct Opt {
    value: String,
    label: String,
    selected: bool,
}

/// One input of an Apply form.
#[derive(Debug, Clone)]
struct FieldView {
    id: String,
    name: String,
    label: String,
    kind: &'static str,
    value: String,
    required: bool,
    options: Vec<Opt>,
    hint: Option<String>,
    error: Option<String>,
}

/// One claim of an Apply form (a group of inputs for an object).
#[derive(Debug, Clone)]
struct ClaimView {
    label: String,
    group: bool,
    fields: Vec<FieldView>,
}

/// One error of a form's summary: the field it links to and the message.
#[derive(Debug, Clone)]
struct SummaryItem {
    href: String,
    message: String,
}

/// A claims form: a step's Apply form, or the answer to the agency's request for more
/// information.
#[derive(Debug, Clone)]
struct FormView {
    slug: &'static str,
    /// Where it posts.
    action: String,
    /// The form element's id.
    id: String,
    /// It names the type (the Apply form).
    typed: bool,
    /// A note shown above it.
    note: Option<String>,
    claims: Vec<ClaimView>,
    summary: Vec<SummaryItem>,
    code: Option<&'static str>,
    submit: String,
}

/// One step of the checklist.
#[derive(Debug, Clone)]
struct StepView {
    number: usize,
    slug: &'static str,
    name: String,
    agency: Option<String>,
    agency_problem: Option<String>,
    state_text: String,
    state_class: &'static str,
    prerequisites: Vec<String>,
    claims: Vec<String>,
    applications: Vec<(String, String)>,
    form: Option<FormView>,
}

/// The form posted (and refused), to show again with its problems.
struct Posted<'a> {
    slug: &'a str,
    form: &'a Form,
    problems: Vec<FieldProblem>,
    /// The agency's refusal: its sentence and code, and the field it names (if any).
    refusal: Option<(String, &'static str, Option<String>)>,
}

fn problem_text(t: &Tr, p: &FieldProblem) -> String {
    match p.problem {
        Problem::Missing => t.fill("form.missing", &[("label", &p.label)]),
        Problem::NotInteger => t.fill("form.not_integer", &[("label", &p.label)]),
        Problem::TooLong => t.fill("form.too_long", &[("label", &p.label)]),
        Problem::Line(n, k) => t.fill(
            "form.line",
            &[
                ("label", &p.label),
                ("line", &n.to_string()),
                ("n", &k.to_string()),
            ],
        ),
    }
}

fn choice_label(t: &Tr, v: &str) -> String {
    t.optional(&format!("choice.{v}"))
        .unwrap_or_else(|| v.to_owned())
}

/// The Apply form of `slug` (the caller changes its target for another form): its inputs,
/// with what was posted (and its problems), else the values of `prefill`.
fn form_view(
    t: &Tr,
    slug: &'static str,
    inputs: &[ClaimInput],
    posted: Option<&Posted<'_>>,
    prefill: Option<&HashMap<String, String>>,
) -> FormView {
    let id = format!("apply-{slug}");
    let posted = posted.filter(|p| p.slug == slug);
    let error_of = |id: &str| {
        posted.and_then(|p| {
            p.problems
                .iter()
                .find(|x| x.id == id)
                .map(|x| problem_text(t, x))
                .or_else(|| match &p.refusal {
                    Some((m, _, Some(f))) if f == id => Some(m.clone()),
                    _ => None,
                })
        })
    };
    let claims: Vec<ClaimView> = inputs
        .iter()
        .map(|c| ClaimView {
            label: c.label.clone(),
            group: c.group,
            fields: c
                .fields
                .iter()
                .map(|f| {
                    let value = match posted {
                        Some(p) => p.form.get(&f.name).unwrap_or("").to_owned(),
                        None => prefill
                            .and_then(|v| v.get(&f.name))
                            .cloned()
                            .unwrap_or_default(),
                    };
                    let (kind, options, hint) = match &f.input {
                        Input::Text => ("text", Vec::new(), None),
                        Input::Date => ("date", Vec::new(), Some(t.get("form.date_hint"))),
                        Input::Integer => ("number", Vec::new(), None),
                        Input::Choice(c) => {
                            let mut o = vec![Opt {
                                value: String::new(),
                                label: t.get("form.choose"),
                                selected: value.is_empty(),
                            }];
                            o.extend(c.iter().map(|v| Opt {
                                selected: *v == value,
                                label: choice_label(t, v),
                                value: v.clone(),
                            }));
                            ("select", o, None)
                        }
                        Input::List => ("text", Vec::new(), Some(t.get("form.list_hint"))),
                        Input::Records(_) => (
                            "textarea",
                            Vec::new(),
                            Some(
                                t.fill("form.records_hint", &[("members", &f.members.join("; "))]),
                            ),
                        ),
                    };
                    FieldView {
                        error: error_of(&f.id),
                        id: f.id.clone(),
                        name: f.name.clone(),
                        label: f.label.clone(),
                        kind,
                        value,
                        required: f.required,
                        options,
                        hint,
                    }
                })
                .collect(),
        })
        .collect();
    let first_field = inputs
        .iter()
        .flat_map(|c| c.fields.iter())
        .next()
        .map_or_else(|| format!("#{id}"), |f| format!("#{}", f.id));
    let mut summary: Vec<SummaryItem> = posted
        .map(|p| {
            p.problems
                .iter()
                .map(|x| SummaryItem {
                    href: format!("#{}", x.id),
                    message: problem_text(t, x),
                })
                .collect()
        })
        .unwrap_or_default();
    let mut code = None;
    if let Some((message, c, field)) = posted.and_then(|p| p.refusal.as_ref()) {
        summary.push(SummaryItem {
            href: field
                .as_ref()
                .map_or_else(|| first_field.clone(), |f| format!("#{f}")),
            message: message.clone(),
        });
        code = Some(*c);
    } else if !summary.is_empty() {
        code = Some(ReasonCode::FormInvalid.as_str());
    }
    FormView {
        slug,
        action: "/apply".to_owned(),
        id,
        typed: true,
        note: None,
        claims,
        summary,
        code,
        submit: t.get("checklist.apply"),
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    t: Tr,
    csrf: String,
    steps: Vec<StepView>,
    has_summary: bool,
    steps_sig: String,
    script: String,
    trust_problem: Option<String>,
    no_session: bool,
}

#[derive(Template)]
#[template(path = "tracker.html")]
struct TrackerPage {
    t: Tr,
    csrf: String,
    rows: Vec<Row>,
    script: String,
    checked: String,
}

#[derive(Template)]
#[template(path = "application.html")]
struct ApplicationPage {
    t: Tr,
    csrf: String,
    r: Row,
    script: String,
    present: Option<Present>,
    offer: Option<OfferView>,
    /// The answer to the agency's request for more information.
    answer: Option<FormView>,
}

/// The wallet's presentation request, while prerequisites are awaited.
#[derive(Debug, Clone)]
struct Present {
    uri: String,
    command: String,
    qr: Option<String>,
    prerequisites: String,
}

/// The credential offer, once approved.
#[derive(Debug, Clone)]
struct OfferView {
    uri: String,
    tx_code: Option<String>,
    command: String,
    qr: Option<String>,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    t: Tr,
    message: String,
    code: &'static str,
}

fn path_of(uri: &Uri) -> &str {
    uri.path_and_query().map_or("/", |p| p.as_str())
}

// ----------------------------------------------------------------------------------------
// Handlers.

type Shared = Arc<Pages>;

/// Each step's agency and what it takes, every agency asked at once (cached by the portal).
type StepAgency = (
    CredentialType,
    Option<crate::agency::Agency>,
    Result<Arc<ApplicantTypes>, Error>,
);

async fn agencies_types(p: &Shared) -> Vec<StepAgency> {
    let mut tasks = tokio::task::JoinSet::new();
    for ty in checklist::restaurant_types() {
        let portal = p.portal.clone();
        tasks.spawn(async move {
            match portal.agency_for(ty) {
                Ok(a) => {
                    let r = portal.applicant_types(&a).await.map_err(Error::Agency);
                    (ty, Some(a), r)
                }
                Err(e) => (ty, None, Err(e)),
            }
        });
    }
    let mut out = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        if let Ok(x) = joined {
            out.push(x);
        }
    }
    out
}

async fn render_home(
    p: &Shared,
    v: &Visit,
    path: &str,
    posted: Option<&Posted<'_>>,
    status: StatusCode,
) -> Response {
    let t = p.public.tr(v.lang);
    let session = match &v.session {
        Some(s) => Some(p.portal.refresh(s).await),
        None => None,
    };
    let steps = steps_of(session.as_ref());
    let trust_problem = p
        .portal
        .trust()
        .is_none()
        .then(|| t.get("checklist.no_trust"));
    let agencies = agencies_types(p).await;
    let mut views = Vec::new();
    for (i, (ty, step)) in steps.iter().enumerate() {
        let found = agencies.iter().find(|(x, _, _)| x == ty);
        let (agency, agency_problem, inputs) = match found {
            Some((_, Some(a), Ok(types))) => {
                let offered = types.types.iter().find(|x| x.vct == ty.vct());
                let inputs = offered
                    .map(|o| fields::claim_inputs(*ty, &o.applicant_claims, schema_lang(t.lang)));
                let problem = offered
                    .is_none()
                    .then(|| t.get("checklist.type_not_offered"));
                (Some(a.name(t.lang).to_owned()), problem, inputs)
            }
            Some((_, a, Err(e))) if !matches!(e, Error::NoTrust) => {
                let key = if a.is_some() {
                    "checklist.agency_unreachable"
                } else {
                    "checklist.no_agency"
                };
                (
                    a.as_ref().map(|a| a.name(t.lang).to_owned()),
                    Some(t.fill(key, &[("code", e.code().as_str())])),
                    None,
                )
            }
            _ => (None, None, None),
        };
        let (state_text, state_class) = match step {
            StepState::Held => (t.get("step.held"), "ok"),
            StepState::InProgress => (t.get("step.in_progress"), "warn"),
            StepState::Waiting(pre) => (
                t.fill("step.waiting", &[("type", &type_name(&t, *pre))]),
                "",
            ),
            StepState::Open => (t.get("step.open"), "ok"),
        };
        let agency_problem = match (step, &session) {
            (st, Some(s)) if st.takes_applications() && !p.portal.sessions.has_room(s) => {
                Some(t.fill(
                    "form.full",
                    &[(
                        "max",
                        &p.portal.sessions.limits().max_applications.to_string(),
                    )],
                ))
            }
            _ => agency_problem,
        };
        let claims = inputs
            .as_ref()
            .map(|i| i.iter().map(|c| c.label.clone()).collect())
            .unwrap_or_default();
        // A form needs a token: the session's, or the form cookie's before one begins.
        let may_post = match &session {
            Some(s) => p.portal.sessions.has_room(s),
            None => v.form_token.is_some(),
        };
        // A step waiting for prerequisites not issued in this session takes applications
        // too: the agency checks them itself, through the founder's wallet.
        let form = match (step.takes_applications(), &inputs) {
            (true, Some(inputs)) if may_post => {
                Some(form_view(&t, ty.slug(), inputs, posted, None))
            }
            // The agency's types could not be read: the refusal of what was just posted is
            // still shown, with the form to try again.
            (true, None) if may_post && posted.is_some_and(|x| x.slug == ty.slug()) => {
                Some(form_view(&t, ty.slug(), &[], posted, None))
            }
            _ => None,
        };
        let form = form.map(|mut f| {
            if let StepState::Waiting(_) = step {
                let missing: Vec<String> = ty
                    .prerequisites()
                    .iter()
                    .filter(|x| {
                        !steps
                            .iter()
                            .any(|(y, st)| y == *x && *st == StepState::Held)
                    })
                    .map(|x| type_name(&t, *x))
                    .collect();
                f.note = Some(t.fill("checklist.apply_if_held", &[("types", &missing.join(", "))]));
            }
            f
        });
        let applications = session
            .as_ref()
            .map(|s| {
                s.apps
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| a.ty == *ty)
                    .map(|(n, a)| {
                        (
                            format!("/applications/{n}"),
                            t.fill(
                                "checklist.application",
                                &[
                                    ("n", &(n + 1).to_string()),
                                    ("state", &row(&t, n, a).state_text),
                                ],
                            ),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        views.push(StepView {
            number: i + 1,
            slug: ty.slug(),
            name: type_name(&t, *ty),
            agency,
            agency_problem,
            state_text,
            state_class,
            prerequisites: ty
                .prerequisites()
                .iter()
                .map(|x| type_name(&t, *x))
                .collect(),
            claims,
            applications,
            form,
        });
    }
    let page = HomePage {
        csrf: Pages::csrf(v, session.as_ref()),
        has_summary: views
            .iter()
            .any(|s| s.form.as_ref().is_some_and(|f| !f.summary.is_empty())),
        steps: views,
        steps_sig: steps_sig(&steps),
        script: script_href(),
        trust_problem,
        no_session: session.is_none() && v.cross_site,
        t: t.clone(),
    };
    let title = if page.has_summary {
        t.get("checklist.title_error")
    } else {
        t.get("checklist.title")
    };
    match page.render() {
        Ok(body) => p.render(v, title, path, &body, status),
        Err(e) => p.failed(v, path, &e.to_string()),
    }
}

async fn home(State(p): State<Shared>, headers: HeaderMap, uri: Uri) -> Response {
    let v = p.visit(&headers, true);
    render_home(&p, &v, path_of(&uri), None, StatusCode::OK).await
}

/// The field an agency's refusal names: the first input whose claim (or JSON Pointer to it)
/// the sentence mentions.
fn field_named(inputs: &[ClaimInput], sentence: &str) -> Option<String> {
    for c in inputs {
        for f in &c.fields {
            let pointer = format!("/{}", f.name.trim_start_matches("claim.").replace('.', "/"));
            if sentence.contains(&pointer) {
                return Some(f.id.clone());
            }
        }
    }
    inputs
        .iter()
        .find(|c| sentence.contains(&c.claim))
        .and_then(|c| c.fields.first())
        .map(|f| f.id.clone())
}

async fn apply(State(p): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let (mut v, s, form) = match p.posted(&headers, &body, true) {
        Ok(x) => x,
        Err(r) => return p.error(&p.visit(&headers, false), "/", r.status, r.code),
    };
    let Some(ty) = form.get("type").and_then(CredentialType::from_slug) else {
        return p.error(&v, "/", StatusCode::BAD_REQUEST, ReasonCode::FormInvalid);
    };
    let t = p.public.tr(v.lang);
    // Only a step that takes applications does (a stale page shows the checklist as it
    // is); checked again under the session's apply lock.
    let current = p.portal.refresh(&s).await;
    let open = steps_of(Some(&current))
        .iter()
        .any(|(x, st)| *x == ty && st.takes_applications());
    if !open {
        return redirect(&v, "/");
    }
    let agency = match p.portal.agency_for(ty) {
        Ok(a) => a,
        Err(e) => {
            return p.error(&v, "/", StatusCode::SERVICE_UNAVAILABLE, e.code());
        }
    };
    let inputs = match p.portal.applicant_types(&agency).await {
        Ok(types) => types
            .types
            .iter()
            .find(|x| x.vct == ty.vct())
            .map(|o| fields::claim_inputs(ty, &o.applicant_claims, schema_lang(t.lang)))
            .unwrap_or_default(),
        Err(e) => {
            let posted = Posted {
                slug: ty.slug(),
                form: &form,
                problems: Vec::new(),
                refusal: Some((
                    t.fill(
                        "checklist.agency_unreachable",
                        &[("code", e.code().as_str())],
                    ),
                    e.code().as_str(),
                    None,
                )),
            };
            return render_home(&p, &v, "/", Some(&posted), StatusCode::BAD_GATEWAY).await;
        }
    };
    let (claims, problems) = fields::read(&inputs, &|k| form.get(k).map(str::to_owned));
    if !problems.is_empty() {
        let posted = Posted {
            slug: ty.slug(),
            form: &form,
            problems,
            refusal: None,
        };
        return render_home(&p, &v, "/", Some(&posted), StatusCode::BAD_REQUEST).await;
    }
    match p.portal.apply(&s, ty, &claims).await {
        Ok(kept) => {
            if let Some(id) = &kept.new_id {
                v.session_cookie = Some(p.session_cookie(id));
            }
            redirect(&v, &format!("/applications/{}", kept.n))
        }
        Err(Error::StepNotOpen(_)) => redirect(&v, "/"),
        Err(e) => {
            let code = e.code();
            let (message, status) = match &e {
                Error::Agency(AgencyError::Refused { description, .. }) => (
                    t.fill("form.refused", &[("sentence", description)]),
                    StatusCode::BAD_REQUEST,
                ),
                Error::Agency(_) => (
                    t.fill("checklist.agency_unreachable", &[("code", code.as_str())]),
                    StatusCode::BAD_GATEWAY,
                ),
                Error::Full(max) => (
                    t.fill("form.full", &[("max", &max.to_string())]),
                    StatusCode::CONFLICT,
                ),
                other => (other.to_string(), StatusCode::BAD_REQUEST),
            };
            tracing::info!(code = %code, vct = ty.vct(), "an application was refused");
            let field = match &e {
                Error::Agency(AgencyError::Refused { description, .. }) => {
                    field_named(&inputs, description)
                }
                _ => None,
            };
            let posted = Posted {
                slug: ty.slug(),
                form: &form,
                problems: Vec::new(),
                refusal: Some((message, code.as_str(), field)),
            };
            render_home(&p, &v, "/", Some(&posted), status).await
        }
    }
}

fn index(n: &str, s: &Snapshot) -> Option<usize> {
    // Digits only, in their canonical form ("+1" or "01" name no application), so every path
    // built back from the index is the one that was asked for.
    n.parse::<usize>()
        .ok()
        .filter(|i| *i < s.apps.len() && i.to_string() == n)
}

/// The inputs of the answer to the agency's request for more information: the claims the
/// founder states (the agency's list, less those verified from prerequisites), while the
/// agency asks for changes.
fn answer_inputs(a: &Application, lang: Lang) -> Option<Vec<ClaimInput>> {
    let v = a.view.as_ref()?;
    if a.state != AppState::ChangesRequested {
        return None;
    }
    let names: Vec<String> = v
        .applicant_claims
        .iter()
        .filter(|c| !v.verified_claims.contains(c))
        .cloned()
        .collect();
    let inputs = fields::claim_inputs(a.ty, &names, schema_lang(lang));
    (!inputs.is_empty()).then_some(inputs)
}

async fn application(
    State(p): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    Path(n): Path<String>,
) -> Response {
    let v = p.visit(&headers, false);
    let path = path_of(&uri);
    let Some(s) = v.session.clone() else {
        return p.error(&v, path, StatusCode::NOT_FOUND, ReasonCode::PageNotFound);
    };
    let Some(n) = index(&n, &s) else {
        return p.error(&v, path, StatusCode::NOT_FOUND, ReasonCode::PageNotFound);
    };
    let s = p.portal.refresh(&s).await;
    render_application(&p, &v, path, &s, n, None, StatusCode::OK)
}

/// Application `n`'s page (with what was posted to answer the agency, if refused).
fn render_application(
    p: &Shared,
    v: &Visit,
    path: &str,
    s: &Snapshot,
    n: usize,
    posted: Option<&Posted<'_>>,
    status: StatusCode,
) -> Response {
    let Some(a) = s.apps.get(n) else {
        return p.error(v, path, StatusCode::NOT_FOUND, ReasonCode::PageNotFound);
    };
    let t = p.public.tr(v.lang);
    let present = match (&a.state, &a.request_uri) {
        (AppState::AwaitingPrerequisites, Some(uri)) => Some(Present {
            command: wallet_present(uri),
            qr: bizcred_web::qr::svg(uri, &t.get("application.qr_present")),
            prerequisites: a
                .ty
                .prerequisites()
                .iter()
                .map(|x| type_name(&t, *x))
                .collect::<Vec<_>>()
                .join(", "),
            uri: uri.clone(),
        }),
        _ => None,
    };
    let offer = match (&a.state, a.view.as_ref().and_then(|v| v.offer.as_ref())) {
        (AppState::Offered, Some(o)) => Some(OfferView {
            command: wallet_receive(&o.credential_offer_uri, o.tx_code.as_deref()),
            qr: bizcred_web::qr::svg(&o.credential_offer_uri, &t.get("application.qr_offer")),
            uri: o.credential_offer_uri.clone(),
            tx_code: o.tx_code.clone(),
        }),
        _ => None,
    };
    let answer = answer_inputs(a, v.lang).map(|inputs| {
        let prefill = a
            .view
            .as_ref()
            .map(|view| fields::values(&inputs, &view.claims))
            .unwrap_or_default();
        let mut f = form_view(&t, a.ty.slug(), &inputs, posted, Some(&prefill));
        f.action = format!("/applications/{n}/claims");
        f.id = format!("answer-{}", a.ty.slug());
        f.typed = false;
        f.submit = t.get("application.answer_submit");
        f
    });
    let r = row(&t, n, a);
    let title = t.fill(
        "application.title",
        &[("type", &r.type_name), ("n", &(n + 1).to_string())],
    );
    let title = if answer.as_ref().is_some_and(|f| !f.summary.is_empty()) {
        t.fill("application.title_error", &[("title", &title)])
    } else {
        title
    };
    let page = ApplicationPage {
        csrf: s.csrf.clone(),
        r,
        script: script_href(),
        present,
        offer,
        answer,
        t,
    };
    match page.render() {
        Ok(body) => p.render(v, title, path, &body, status),
        Err(e) => p.failed(v, path, &e.to_string()),
    }
}

/// `POST /applications/{n}/claims`: the founder's answer to the agency's request for more
/// information, sent to the agency; a refusal is shown on the form.
async fn answer(
    State(p): State<Shared>,
    headers: HeaderMap,
    Path(n): Path<String>,
    body: Bytes,
) -> Response {
    let path = format!("/applications/{}", n.chars().take(8).collect::<String>());
    let (v, s, form) = match p.posted(&headers, &body, false) {
        Ok(x) => x,
        Err(r) => return p.error(&p.visit(&headers, false), &path, r.status, r.code),
    };
    let Some(n) = index(&n, &s) else {
        return p.error(&v, &path, StatusCode::NOT_FOUND, ReasonCode::PageNotFound);
    };
    let s = p.portal.refresh(&s).await;
    let Some(a) = s.apps.get(n) else {
        return p.error(&v, &path, StatusCode::NOT_FOUND, ReasonCode::PageNotFound);
    };
    // A stale page: the agency no longer asks; the page shows where it stands.
    let Some(inputs) = answer_inputs(a, v.lang) else {
        return see_other(&path);
    };
    let slug = a.ty.slug();
    let (claims, problems) = fields::read(&inputs, &|k| form.get(k).map(str::to_owned));
    if !problems.is_empty() {
        let posted = Posted {
            slug,
            form: &form,
            problems,
            refusal: None,
        };
        return render_application(&p, &v, &path, &s, n, Some(&posted), StatusCode::BAD_REQUEST);
    }
    match p.portal.answer(&s, n, &claims).await {
        Ok(()) => see_other(&path),
        Err(e) => {
            let t = p.public.tr(v.lang);
            let code = e.code();
            let (message, field, status) = match &e {
                Error::Agency(AgencyError::Refused { description, .. }) => (
                    t.fill("form.answer_refused", &[("sentence", description)]),
                    field_named(&inputs, description),
                    StatusCode::BAD_REQUEST,
                ),
                _ => (
                    t.fill("checklist.agency_unreachable", &[("code", code.as_str())]),
                    None,
                    StatusCode::BAD_GATEWAY,
                ),
            };
            tracing::info!(code = %code, vct = a.ty.vct(), "an answer to the agency was refused");
            let posted = Posted {
                slug,
                form: &form,
                problems: Vec::new(),
                refusal: Some((message, code.as_str(), field)),
            };
            render_application(&p, &v, &path, &s, n, Some(&posted), status)
        }
    }
}

async fn withdraw(
    State(p): State<Shared>,
    headers: HeaderMap,
    Path(n): Path<String>,
    body: Bytes,
) -> Response {
    let path = format!("/applications/{}", n.chars().take(8).collect::<String>());
    let (v, s, _) = match p.posted(&headers, &body, false) {
        Ok(x) => x,
        Err(r) => return p.error(&p.visit(&headers, false), &path, r.status, r.code),
    };
    let Some(n) = index(&n, &s) else {
        return p.error(&v, &path, StatusCode::NOT_FOUND, ReasonCode::PageNotFound);
    };
    match p.portal.withdraw(&s, n).await {
        Ok(()) => see_other(&format!("/applications/{n}")),
        Err(e) => {
            let t = p.public.tr(v.lang);
            let message = match &e {
                Error::Agency(AgencyError::Refused { description, .. }) => description.clone(),
                _ => t.fill(
                    "checklist.agency_unreachable",
                    &[("code", e.code().as_str())],
                ),
            };
            let body = ErrorPage {
                message,
                code: e.code().as_str(),
                t: t.clone(),
            }
            .render()
            .unwrap_or_default();
            p.render(
                &v,
                t.get("problem.title"),
                &path,
                &body,
                StatusCode::CONFLICT,
            )
        }
    }
}

async fn tracker(State(p): State<Shared>, headers: HeaderMap, uri: Uri) -> Response {
    let v = p.visit(&headers, true);
    let path = path_of(&uri);
    let t = p.public.tr(v.lang);
    let (csrf, rows) = match &v.session {
        Some(s) => {
            let s = p.portal.refresh(s).await;
            (s.csrf.clone(), rows(&t, &s))
        }
        None => (Pages::csrf(&v, None), Vec::new()),
    };
    let page = TrackerPage {
        csrf,
        rows,
        script: script_href(),
        checked: t.fill("tracker.checked", &[("time", &t.time(p.portal.now()))]),
        t: t.clone(),
    };
    match page.render() {
        Ok(body) => p.render(&v, t.get("tracker.title"), path, &body, StatusCode::OK),
        Err(e) => p.failed(&v, path, &e.to_string()),
    }
}

async fn tracker_json(State(p): State<Shared>, headers: HeaderMap) -> Response {
    let v = p.visit(&headers, false);
    let t = p.public.tr(v.lang);
    let session = match &v.session {
        Some(s) => Some(p.portal.refresh(s).await),
        None => None,
    };
    let body = serde_json::json!({
        "rows": session.as_ref().map(|s| rows(&t, s)).unwrap_or_default(),
        "steps": steps_sig(&steps_of(session.as_ref())),
        "checked": t.fill("tracker.checked", &[("time", &t.time(p.portal.now()))]),
    });
    (
        [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::VARY, HeaderValue::from_static("Cookie")),
        ],
        axum::Json(body),
    )
        .into_response()
}

async fn script(Path(name): Path<String>) -> Response {
    if name != script_name() {
        return StatusCode::NOT_FOUND.into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        SCRIPT,
    )
        .into_response()
}

async fn no_page(State(p): State<Shared>, headers: HeaderMap, uri: Uri) -> Response {
    let v = p.visit(&headers, false);
    p.error(
        &v,
        uri.path(),
        StatusCode::NOT_FOUND,
        ReasonCode::PageNotFound,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_is_complete_and_has_every_built_key() {
        let c = catalog().expect("every key in both languages");
        for k in translated_keys() {
            for l in Lang::ALL {
                assert!(c.lookup(l, &k).is_some(), "{k} missing in {}", l.code());
            }
        }
    }

    #[test]
    fn wallet_commands_quote_the_uris() {
        assert_eq!(
            wallet_present("openid4vp://?client_id=x&request_uri=y"),
            "bizcred-wallet present 'openid4vp://?client_id=x&request_uri=y' --yes"
        );
        assert_eq!(
            wallet_receive("openid-credential-offer://?credential_offer_uri=z", Some("123456")),
            "bizcred-wallet receive 'openid-credential-offer://?credential_offer_uri=z' --tx-code 123456"
        );
    }

    #[test]
    fn the_script_has_a_content_hashed_name() {
        let n = script_name();
        assert!(
            n.starts_with("portal-") && n.ends_with(".js") && n.len() == 22,
            "{n}"
        );
    }

    #[test]
    fn a_refusal_is_tied_to_the_field_it_names() {
        let inputs = fields::claim_inputs(
            CredentialType::MunicipalBusinessLicence,
            &["licence_category".into(), "premises_address".into()],
            bizcred_schemas::Lang::En,
        );
        assert_eq!(
            field_named(&inputs, "/premises_address/postal_code: does not match").as_deref(),
            Some("municipal-business-licence--premises_address-postal_code")
        );
        assert_eq!(
            field_named(&inputs, "licence_category is not allowed").as_deref(),
            Some("municipal-business-licence--licence_category")
        );
        assert_eq!(field_named(&inputs, "something else"), None);
    }
}
