//! The repository's public pages, in English and French (no sessions, no sign-in): the same
//! [`Repository`] calls as the JSON API, rendered from askama templates
//! (`repository/templates/`) with the catalogue of `repository/i18n/`, in the layout, language
//! switch, stylesheet and security headers of [`bizcred_web::public`].
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the search form |
//! | `GET /search?q=&status=&municipality=&type=&page=` | results, with paging and filters; a refused search is shown as an error summary tied to its field (400, `SEARCH_QUERY_INVALID`) |
//! | `GET /business/{number}` | a business: its numbers, status, name history and every public credential, each verified now, with its download link (`/credentials/{id}`); 404 `BUSINESS_NOT_FOUND` |
//! | `GET /lang/{code}?next=`, `GET /assets/{name}` | the language switch and the stylesheet |
//!
//! Every text is chosen and translated here, in the views; the templates only lay it out, and
//! askama escapes it. Search words are public business names, but they are kept out of the
//! logs anyway: the server logs route templates, and nothing here logs a query.

use std::sync::{Arc, Mutex};

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{Map, Value};

use bizcred_schemas::ReasonCode;
use bizcred_verifier::verify::Verdict;
use bizcred_web::desk::security_headers;
use bizcred_web::i18n::{Catalog, CatalogError, Lang, Source, Tr, SHARED};
use bizcred_web::public::{Public, PublicFrame};
use bizcred_web::{claim_rows, ClaimRow};

use crate::index::{fold, MAX_QUERY_WORDS};
use crate::repository::{CredentialView, ENTITY_TYPES, MAX_PAGE, MAX_QUERY_CHARS, STATUSES};
use crate::{Business, Error, Repository, SearchQuery, SearchResults};

/// The repository pages' catalogue (English and French), joined to the shared one.
pub const SOURCE: Source = Source {
    name: "repository",
    en: include_str!("../i18n/en.toml"),
    fr: include_str!("../i18n/fr.toml"),
};

/// Results on one page of a search.
pub const PER_PAGE: usize = 20;
/// Longest query string the search page reads (bytes).
pub const MAX_QUERY_STRING: usize = 8 * 1024;
/// Longest municipality filter (characters), as the repository takes it.
pub const MAX_MUNICIPALITY_CHARS: usize = 100;
/// How long (seconds) the municipality filter's list is reused before it is read again.
const MUNICIPALITIES_TTL: i64 = 60;

/// The shared and the repository pages' messages; an error when a key is missing in a
/// language.
pub fn catalog() -> Result<Catalog, CatalogError> {
    Catalog::new(&[SHARED, SOURCE])
}

/// The catalogues' corporate statuses, entity types, credential statuses and verdicts: every
/// value a page translates (a test holds each in both languages).
pub fn translated_keys() -> Vec<String> {
    let mut keys: Vec<String> = STATUSES
        .iter()
        .chain(["unknown"].iter())
        .map(|s| format!("corporate.{s}"))
        .collect();
    keys.extend(ENTITY_TYPES.iter().map(|e| format!("entity.{e}")));
    keys.extend(
        ["valid", "revoked", "suspended", "unknown"]
            .iter()
            .map(|s| format!("status.{s}")),
    );
    for v in ["ACCEPT", "REJECT", "INDETERMINATE"] {
        keys.push(format!("verdict.{v}"));
        keys.push(format!("verdict_detail.{v}"));
    }
    keys.extend((1..=12).map(|m| format!("month.{m}")));
    keys
}

/// The municipality filter's options as last read: (read at, the index's size then, list).
type Towns = Option<(i64, u64, Arc<Vec<String>>)>;

struct Pages {
    repo: Arc<Repository>,
    public: Arc<Public>,
    /// The bank page's catalogue, for the reason codes' sentences in French.
    reasons: Catalog,
    /// The municipality filter's options.
    municipalities: Mutex<Towns>,
}

/// The pages' routes (with the language switch, the stylesheet, a 404 page for any other path
/// and the security headers), to merge with [`crate::service::api`].
pub fn routes(repo: Arc<Repository>) -> Router {
    let catalog = catalog().expect("the repository's catalogue is complete (a test holds it)");
    let reasons = bizcred_verifier::desk::catalog()
        .expect("the bank page's catalogue is complete (its tests hold it)");
    let pages = Arc::new(Pages {
        repo,
        public: Arc::new(Public::new(Arc::new(catalog), "service.title")),
        reasons,
        municipalities: Mutex::new(None),
    });
    let public = pages.public.routes();
    Router::new()
        .route("/", get(home))
        .route("/search", get(search))
        .route("/business/{number}", get(business))
        .fallback(no_page)
        .with_state(pages)
        .layer(axum::middleware::from_fn(security_headers))
        .merge(public)
}

// ----------------------------------------------------------------------------------------
// Views: what the templates display.

/// A select's option.
#[derive(Debug, Clone)]
struct Opt {
    value: String,
    label: String,
    selected: bool,
}

/// The search form, as typed, with its fields' errors.
#[derive(Debug, Clone, Default)]
struct FormView {
    q: String,
    q_error: Option<String>,
    statuses: Vec<Opt>,
    status_error: Option<String>,
    types: Vec<Opt>,
    type_error: Option<String>,
    municipalities: Vec<Opt>,
    municipality_error: Option<String>,
}

/// One error of the summary: the field's id it links to, and the message.
#[derive(Debug, Clone)]
struct Problem {
    field: Option<&'static str>,
    message: String,
}

/// One business of the results.
#[derive(Debug, Clone)]
struct ResultRow {
    href: String,
    name: String,
    former: Option<String>,
    corporation_number: String,
    business_number: String,
    status: String,
    status_class: &'static str,
    municipality: String,
    entity_type: String,
}

/// The results' paging.
#[derive(Debug, Clone)]
struct Paging {
    label: String,
    previous: Option<String>,
    next: Option<String>,
}

/// A text and its language when not the page's (a sentence only English has).
#[derive(Debug, Clone)]
struct Text {
    text: String,
    lang: Option<&'static str>,
}

/// One credential of a business page.
#[derive(Debug, Clone)]
struct CredentialRow {
    id: String,
    title: String,
    issuer: String,
    issuer_is_did: bool,
    issued: String,
    verdict_code: &'static str,
    verdict: String,
    verdict_detail: String,
    verdict_class: &'static str,
    failures: Vec<(String, Text)>,
    status: String,
    status_class: &'static str,
    claims: Vec<ClaimRow>,
    href: String,
    download: String,
}

/// A business page's content.
#[derive(Debug, Clone)]
struct BusinessView {
    corporation_number: String,
    business_number: String,
    status: String,
    status_class: &'static str,
    municipality: String,
    entity_type: String,
    names: Vec<(String, String)>,
    checked: String,
    trust_as_of: Option<String>,
    credentials: Vec<CredentialRow>,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    t: Tr,
    form: FormView,
    count: String,
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    t: Tr,
    form: FormView,
    problems: Vec<Problem>,
    code: &'static str,
    total: Option<String>,
    showing: Option<String>,
    results: Vec<ResultRow>,
    paging: Option<Paging>,
}

#[derive(Template)]
#[template(path = "business.html")]
struct BusinessPage {
    t: Tr,
    b: BusinessView,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    t: Tr,
    message: String,
    code: &'static str,
}

fn corporate(t: &Tr, status: &str) -> (String, &'static str) {
    let class = match status {
        "active" => "ok",
        "dissolved" => "bad",
        _ => "warn",
    };
    let key = if STATUSES.contains(&status) {
        status
    } else {
        "unknown"
    };
    (t.get(&format!("corporate.{key}")), class)
}

fn entity(t: &Tr, e: &str) -> String {
    if ENTITY_TYPES.contains(&e) {
        t.get(&format!("entity.{e}"))
    } else {
        e.to_owned()
    }
}

fn credential_status(t: &Tr, status: &str) -> (String, &'static str) {
    match status {
        "valid" => (t.get("status.valid"), "ok"),
        "revoked" => (t.get("status.revoked"), "bad"),
        "suspended" => (t.get("status.suspended"), "bad"),
        _ => (t.get("status.unknown"), "warn"),
    }
}

/// A day for the locale: `March 5, 2026` in English, `5 mars 2026` (`1er mars`) in French.
fn long_date(t: &Tr, unix: i64) -> String {
    let iso = bizcred_core::time::format_utc(unix);
    let (y, m, d) = (
        iso.get(0..4).unwrap_or("0000"),
        iso.get(5..7)
            .and_then(|m| m.parse::<u8>().ok())
            .unwrap_or(1),
        iso.get(8..10)
            .and_then(|d| d.parse::<u8>().ok())
            .unwrap_or(1),
    );
    let month = t.get(&format!("month.{m}"));
    match t.lang {
        Lang::En => format!("{month} {d}, {y}"),
        Lang::Fr if d == 1 => format!("1er {month} {y}"),
        Lang::Fr => format!("{d} {month} {y}"),
    }
}

/// A reason code's sentence in the page's language (the bank page's catalogue has the French
/// ones), else the code's English sentence, marked as English.
fn reason(p: &Pages, lang: Lang, code: ReasonCode) -> Text {
    match p.reasons.lookup(lang, &format!("reason.{}", code.as_str())) {
        Some(s) => Text {
            text: s.to_owned(),
            lang: None,
        },
        None => Text {
            text: code.sentence().to_owned(),
            lang: (lang != Lang::En).then_some("en"),
        },
    }
}

/// A credential's claims, labelled, in the order the type metadata lists them; statuses and
/// entity types in words.
fn claims(t: &Tr, vct: &str, claims: &Map<String, Value>) -> Vec<ClaimRow> {
    let scalar = |key: &str, v: &Value| match v {
        Value::String(s) if key == "corporate_status" => corporate(t, s).0,
        Value::String(s) if key == "entity_type" => entity(t, s),
        Value::String(s) => s.clone(),
        Value::Bool(true) => t.get("credential.yes"),
        Value::Bool(false) => t.get("credential.no"),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    claim_rows(t, vct, claims, &scalar)
}

fn credential_row(p: &Pages, t: &Tr, c: &CredentialView) -> CredentialRow {
    let title = match t.lang {
        Lang::En => c.type_en.clone(),
        Lang::Fr => c.type_fr.clone(),
    };
    let named = match t.lang {
        Lang::En => c.issuer_en.clone(),
        Lang::Fr => c.issuer_fr.clone(),
    };
    let (verdict_code, verdict_class) = match c.verdict {
        Verdict::Accept => ("ACCEPT", "ok"),
        Verdict::Reject => ("REJECT", "bad"),
        Verdict::Indeterminate => ("INDETERMINATE", "warn"),
    };
    let (word, status_class) = credential_status(t, &c.status);
    let status = if c.status_as_of > 0 {
        t.fill(
            "credential.status_as_of",
            &[("status", &word), ("time", &t.time(c.status_as_of))],
        )
    } else {
        t.fill("credential.status_unknown_time", &[("status", &word)])
    };
    let issued = long_date(t, c.issued_at);
    CredentialRow {
        id: c.id.chars().take(16).collect(),
        download: t.fill(
            "credential.download",
            &[("type", &title), ("date", &issued)],
        ),
        title,
        issuer_is_did: named.is_none(),
        issuer: named.unwrap_or_else(|| c.issuer.clone()),
        issued,
        verdict_code,
        verdict: t.get(&format!("verdict.{verdict_code}")),
        verdict_detail: t.get(&format!("verdict_detail.{verdict_code}")),
        verdict_class,
        failures: c
            .failures
            .iter()
            .map(|f| (f.as_str().to_owned(), reason(p, t.lang, *f)))
            .collect(),
        status,
        status_class,
        claims: claims(t, &c.vct, &c.claims),
        href: format!("/credentials/{}", c.id),
    }
}

fn business_view(p: &Pages, t: &Tr, b: &Business) -> BusinessView {
    let s = &b.summary;
    let (status, status_class) = corporate(t, &s.corporate_status);
    BusinessView {
        corporation_number: s.subject.clone(),
        business_number: s
            .business_number
            .clone()
            .unwrap_or_else(|| t.get("business.none")),
        status,
        status_class,
        municipality: s.municipality.clone(),
        entity_type: entity(t, &s.entity_type),
        names: b
            .name_history
            .iter()
            .map(|(n, at)| (n.clone(), long_date(t, *at)))
            .collect(),
        checked: t.fill(
            "business.credentials_intro",
            &[("time", &t.time(b.verified_at))],
        ),
        trust_as_of: b
            .trust_as_of
            .map(|at| t.fill("business.trust_as_of", &[("time", &t.time(at))])),
        credentials: b
            .credentials
            .iter()
            .map(|c| credential_row(p, t, c))
            .collect(),
    }
}

// ----------------------------------------------------------------------------------------
// The search form.

/// The search form's values, as sent (the first of a repeated field).
#[derive(Debug, Clone, Default)]
struct Sent {
    q: String,
    status: String,
    municipality: String,
    entity_type: String,
    page: Option<String>,
}

impl Sent {
    fn parse(query: &str) -> Sent {
        let mut s = Sent::default();
        let mut seen = [false; 5];
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let (i, slot) = match k.as_ref() {
                "q" => (0, &mut s.q),
                "status" => (1, &mut s.status),
                "municipality" => (2, &mut s.municipality),
                "type" => (3, &mut s.entity_type),
                "page" => {
                    if !seen[4] {
                        seen[4] = true;
                        s.page = Some(v.into_owned());
                    }
                    continue;
                }
                _ => continue,
            };
            if !seen[i] {
                seen[i] = true;
                *slot = v.into_owned();
            }
        }
        s
    }

    /// The query's address for `page`.
    fn href(&self, page: usize) -> String {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        ser.append_pair("q", self.q.trim());
        for (k, v) in [
            ("status", &self.status),
            ("municipality", &self.municipality),
            ("type", &self.entity_type),
        ] {
            if !v.trim().is_empty() {
                ser.append_pair(k, v.trim());
            }
        }
        if page > 1 {
            ser.append_pair("page", &page.to_string());
        }
        format!("/search?{}", ser.finish())
    }
}

/// Checks the form's values field by field (as [`Repository::search`] will), so each refusal
/// is shown next to its field in the page's language.
fn check(t: &Tr, s: &Sent) -> Result<SearchQuery, Vec<Problem>> {
    let mut problems = Vec::new();
    let q = s.q.trim();
    let chars = q.chars().count();
    let digits: String = q.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let number = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    let q_problem = if q.is_empty() {
        Some(t.get("problem.q_empty"))
    } else if chars > MAX_QUERY_CHARS {
        Some(t.fill(
            "problem.q_long",
            &[
                ("n", &t.number(chars as u64)),
                ("max", &MAX_QUERY_CHARS.to_string()),
            ],
        ))
    } else if number {
        None
    } else {
        let words = fold(q).split(' ').filter(|w| !w.is_empty()).count();
        if words == 0 {
            Some(t.get("problem.q_no_words"))
        } else if words > MAX_QUERY_WORDS {
            Some(t.fill(
                "problem.q_many_words",
                &[
                    ("n", &words.to_string()),
                    ("max", &MAX_QUERY_WORDS.to_string()),
                ],
            ))
        } else {
            None
        }
    };
    if let Some(m) = q_problem {
        problems.push(Problem {
            field: Some("q"),
            message: m,
        });
    }
    let status = s.status.trim();
    if !status.is_empty() && !STATUSES.contains(&status) {
        problems.push(Problem {
            field: Some("status"),
            message: t.get("problem.status"),
        });
    }
    let municipality = s.municipality.trim();
    if municipality.chars().count() > MAX_MUNICIPALITY_CHARS {
        problems.push(Problem {
            field: Some("municipality"),
            message: t.fill(
                "problem.municipality",
                &[("max", &MAX_MUNICIPALITY_CHARS.to_string())],
            ),
        });
    }
    let entity_type = s.entity_type.trim();
    if !entity_type.is_empty() && !ENTITY_TYPES.contains(&entity_type) {
        problems.push(Problem {
            field: Some("type"),
            message: t.get("problem.type"),
        });
    }
    let page = match s.page.as_deref().map(str::trim) {
        None | Some("") => Some(1),
        Some(p) => p
            .parse::<usize>()
            .ok()
            .filter(|p| (1..=MAX_PAGE).contains(p)),
    };
    if page.is_none() {
        problems.push(Problem {
            field: None,
            message: t.fill("problem.page", &[("max", &MAX_PAGE.to_string())]),
        });
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let opt = |v: &str| (!v.is_empty()).then(|| v.to_owned());
    Ok(SearchQuery {
        q: q.to_owned(),
        status: opt(status),
        municipality: opt(municipality),
        entity_type: opt(entity_type),
        page,
        per_page: Some(PER_PAGE),
    })
}

fn form_view(t: &Tr, s: &Sent, municipalities: &[String], problems: &[Problem]) -> FormView {
    let error = |field: &str| {
        problems
            .iter()
            .find(|p| p.field == Some(field))
            .map(|p| p.message.clone())
    };
    let options = |any: &str, values: Vec<(String, String)>, chosen: &str| {
        let chosen = chosen.trim();
        let mut v = vec![Opt {
            value: String::new(),
            label: t.get(any),
            selected: chosen.is_empty(),
        }];
        v.extend(values.into_iter().map(|(value, label)| Opt {
            selected: value == chosen,
            value,
            label,
        }));
        v
    };
    let mut towns: Vec<(String, String)> = municipalities
        .iter()
        .map(|m| (m.clone(), m.clone()))
        .collect();
    let chosen = s.municipality.trim();
    if !chosen.is_empty()
        && chosen.chars().count() <= MAX_MUNICIPALITY_CHARS
        && !municipalities.iter().any(|m| m == chosen)
    {
        // A municipality no business is in (yet): kept, so the form shows what was searched.
        towns.insert(0, (chosen.to_owned(), chosen.to_owned()));
    }
    FormView {
        q: s.q.clone(),
        q_error: error("q"),
        statuses: options(
            "form.any_status",
            STATUSES
                .iter()
                .map(|v| ((*v).to_owned(), corporate(t, v).0))
                .collect(),
            &s.status,
        ),
        status_error: error("status"),
        types: options(
            "form.any_type",
            ENTITY_TYPES
                .iter()
                .map(|v| ((*v).to_owned(), entity(t, v)))
                .collect(),
            &s.entity_type,
        ),
        type_error: error("type"),
        municipalities: options("form.any_municipality", towns, chosen),
        municipality_error: error("municipality"),
    }
}

fn result_rows(t: &Tr, r: &SearchResults) -> Vec<ResultRow> {
    r.results
        .iter()
        .map(|s| {
            let (status, status_class) = corporate(t, &s.corporate_status);
            ResultRow {
                href: format!("/business/{}", s.subject),
                name: s.name.clone(),
                former: (!s.former_names.is_empty()).then(|| s.former_names.join("; ")),
                corporation_number: s.subject.clone(),
                business_number: s
                    .business_number
                    .clone()
                    .unwrap_or_else(|| t.get("business.none")),
                status,
                status_class,
                municipality: s.municipality.clone(),
                entity_type: entity(t, &s.entity_type),
            }
        })
        .collect()
}

// ----------------------------------------------------------------------------------------
// Handlers.

type Shared = Arc<Pages>;

/// Runs repository work off the async workers.
async fn blocking<T: Send + 'static>(
    p: &Shared,
    f: impl FnOnce(&Repository) -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    let repo = p.repo.clone();
    tokio::task::spawn_blocking(move || f(&repo))
        .await
        .map_err(|e| Error::Index(format!("the page's task failed: {e}")))?
}

impl Pages {
    fn path_of(uri: &Uri) -> &str {
        uri.path_and_query().map_or("/", |p| p.as_str())
    }

    fn render(
        &self,
        lang: Lang,
        title: String,
        path: &str,
        body: &str,
        status: StatusCode,
    ) -> Response {
        self.public
            .page(&PublicFrame { lang, title, path }, body, status)
    }

    /// An error page: its title, sentence and reason code.
    fn error(&self, lang: Lang, path: &str, status: StatusCode, code: ReasonCode) -> Response {
        let t = self.public.tr(lang);
        let (title, message) = match code {
            ReasonCode::BusinessNotFound => ("problem.not_found_title", "problem.not_found"),
            ReasonCode::PageNotFound => ("problem.page_not_found_title", "problem.page_not_found"),
            _ => ("problem.failed_title", "problem.failed"),
        };
        let page = ErrorPage {
            message: t.get(message),
            code: code.as_str(),
            t: t.clone(),
        };
        match page.render() {
            Ok(body) => self.render(lang, t.get(title), path, &body, status),
            Err(e) => self.failed(lang, path, &e.to_string()),
        }
    }

    /// The page for a failure of the repository (storage, index) or of a template.
    fn failed(&self, lang: Lang, path: &str, cause: &str) -> Response {
        tracing::error!(%cause, "a repository page failed");
        let t = self.public.tr(lang);
        let body = ErrorPage {
            message: t.get("problem.failed"),
            code: ReasonCode::PageFailed.as_str(),
            t: t.clone(),
        }
        .render()
        .unwrap_or_default();
        self.render(
            lang,
            t.get("problem.failed_title"),
            path,
            &body,
            StatusCode::INTERNAL_SERVER_ERROR,
        )
    }

    fn repo_error(&self, lang: Lang, path: &str, e: &Error) -> Response {
        match e {
            Error::NotFound(_) => self.error(lang, path, StatusCode::NOT_FOUND, e.code()),
            other => self.failed(lang, path, &other.to_string()),
        }
    }

    /// The municipality filter's options: the indexed businesses' municipalities, read again
    /// when the index changed or a minute passed.
    async fn municipalities(self: &Arc<Self>) -> Arc<Vec<String>> {
        let now = self.repo.now();
        let size = self.repo.index.len();
        if let Some((at, n, list)) = self
            .municipalities
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
        {
            if *n == size && now - at < MUNICIPALITIES_TTL {
                return list.clone();
            }
        }
        match blocking(self, |r| r.index.municipalities()).await {
            Ok(list) => {
                let list = Arc::new(list);
                *self
                    .municipalities
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some((now, size, list.clone()));
                list
            }
            Err(e) => {
                tracing::warn!(error = %e, "the municipalities could not be listed");
                Arc::new(Vec::new())
            }
        }
    }
}

async fn home(State(p): State<Shared>, headers: HeaderMap, uri: Uri) -> Response {
    let lang = p.public.lang(&headers);
    let t = p.public.tr(lang);
    let towns = p.municipalities().await;
    let count = t.fill("home.count", &[("n", &t.number(p.repo.index.len()))]);
    let page = HomePage {
        form: form_view(&t, &Sent::default(), &towns, &[]),
        count,
        t: t.clone(),
    };
    match page.render() {
        Ok(body) => p.render(
            lang,
            t.get("home.title"),
            Pages::path_of(&uri),
            &body,
            StatusCode::OK,
        ),
        Err(e) => p.failed(lang, Pages::path_of(&uri), &e.to_string()),
    }
}

async fn search(State(p): State<Shared>, headers: HeaderMap, uri: Uri) -> Response {
    let lang = p.public.lang(&headers);
    let t = p.public.tr(lang);
    let path = Pages::path_of(&uri);
    let query = uri.query().unwrap_or("");
    let sent = if query.len() > MAX_QUERY_STRING {
        Sent {
            q: "x".repeat(MAX_QUERY_CHARS + 1),
            ..Sent::default()
        }
    } else {
        Sent::parse(query)
    };
    let towns = p.municipalities().await;
    let checked = match check(&t, &sent) {
        Ok(q) => blocking(&p, move |r| r.search(&q))
            .await
            .map_err(|e| match e {
                Error::Query(_) => Ok(vec![Problem {
                    field: Some("q"),
                    message: t.get("problem.q_invalid"),
                }]),
                other => Err(other),
            }),
        Err(problems) => Err(Ok(problems)),
    };
    let (problems, results) = match checked {
        Ok(r) => (Vec::new(), Some(r)),
        Err(Ok(problems)) => (problems, None),
        Err(Err(e)) => return p.repo_error(lang, path, &e),
    };
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let (total, showing, rows, paging) = match &results {
        Some(r) => {
            let total = match r.total {
                0 => t.get("search.total_none"),
                1 => t.get("search.total_one"),
                n => t.fill("search.total_many", &[("n", &t.number(n as u64))]),
            };
            let from = (r.page - 1) * r.per_page + 1;
            let to = from + r.results.len().saturating_sub(1);
            let showing = (r.total > r.per_page && !r.results.is_empty()).then(|| {
                t.fill(
                    "search.showing",
                    &[
                        ("from", &t.number(from as u64)),
                        ("to", &t.number(to as u64)),
                    ],
                )
            });
            let pages = r.total.div_ceil(r.per_page).clamp(1, MAX_PAGE);
            let paging = (pages > 1).then(|| Paging {
                label: t.fill(
                    "search.page_of",
                    &[
                        ("page", &t.number(r.page as u64)),
                        ("pages", &t.number(pages as u64)),
                    ],
                ),
                previous: (r.page > 1).then(|| sent.href(r.page - 1)),
                next: (r.page < pages).then(|| sent.href(r.page + 1)),
            });
            (Some(total), showing, result_rows(&t, r), paging)
        }
        None => (None, None, Vec::new(), None),
    };
    let title = if problems.is_empty() {
        t.get("search.title")
    } else {
        t.get("search.title_error")
    };
    let page = SearchPage {
        form: form_view(&t, &sent, &towns, &problems),
        problems,
        code: ReasonCode::SearchQueryInvalid.as_str(),
        total,
        showing,
        results: rows,
        paging,
        t,
    };
    match page.render() {
        Ok(body) => p.render(lang, title, path, &body, status),
        Err(e) => p.failed(lang, path, &e.to_string()),
    }
}

async fn business(
    State(p): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    number: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    let lang = p.public.lang(&headers);
    let path = Pages::path_of(&uri);
    let Ok(Path(number)) = number else {
        return p.error(
            lang,
            path,
            StatusCode::NOT_FOUND,
            ReasonCode::BusinessNotFound,
        );
    };
    let b = match blocking(&p, move |r| r.business(&number)).await {
        Ok(b) => b,
        Err(e) => return p.repo_error(lang, path, &e),
    };
    let t = p.public.tr(lang);
    let title = b.summary.name.clone();
    let page = BusinessPage {
        b: business_view(&p, &t, &b),
        t,
    };
    match page.render() {
        Ok(body) => p.render(lang, title, path, &body, StatusCode::OK),
        Err(e) => p.failed(lang, path, &e.to_string()),
    }
}

async fn no_page(State(p): State<Shared>, headers: HeaderMap, uri: Uri) -> Response {
    let lang = p.public.lang(&headers);
    p.error(
        lang,
        uri.path(),
        StatusCode::NOT_FOUND,
        ReasonCode::PageNotFound,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tr(lang: Lang) -> Tr {
        Tr::new(Arc::new(catalog().expect("catalogue")), lang)
    }

    #[test]
    fn dates_are_written_for_the_locale() {
        // 2026-03-01T12:00:00Z
        let t = 1_772_366_400;
        assert_eq!(long_date(&tr(Lang::En), t), "March 1, 2026");
        assert_eq!(long_date(&tr(Lang::Fr), t), "1er mars 2026");
        assert_eq!(long_date(&tr(Lang::Fr), t + 4 * 86_400), "5 mars 2026");
    }

    #[test]
    fn the_first_of_a_repeated_field_is_read_and_links_keep_the_filters() {
        let s = Sent::parse("q=caf%C3%A9+du+nord&q=other&status=active&type=&page=2&x=1");
        assert_eq!(s.q, "café du nord");
        assert_eq!(s.status, "active");
        assert_eq!(s.page.as_deref(), Some("2"));
        assert_eq!(
            s.href(3),
            "/search?q=caf%C3%A9+du+nord&status=active&page=3"
        );
        assert_eq!(s.href(1), "/search?q=caf%C3%A9+du+nord&status=active");
    }

    #[test]
    fn each_refusal_is_tied_to_its_field() {
        let t = tr(Lang::En);
        let fields = |s: Sent| -> Vec<Option<&'static str>> {
            check(&t, &s)
                .expect_err("refused")
                .iter()
                .map(|p| p.field)
                .collect()
        };
        assert_eq!(fields(Sent::default()), vec![Some("q")]);
        assert_eq!(
            fields(Sent {
                q: "é".repeat(MAX_QUERY_CHARS + 1),
                status: "bankrupt".into(),
                entity_type: "llc".into(),
                municipality: "m".repeat(101),
                page: Some("0".into()),
            }),
            vec![
                Some("q"),
                Some("status"),
                Some("municipality"),
                Some("type"),
                None
            ]
        );
        assert_eq!(
            fields(Sent {
                q: " - ' ".into(),
                ..Sent::default()
            }),
            vec![Some("q")]
        );
        assert_eq!(
            fields(Sent {
                q: "a b c d e f g h i".into(),
                ..Sent::default()
            }),
            vec![Some("q")]
        );
        let q = check(
            &t,
            &Sent {
                q: " 123 456 782 ".into(),
                status: "active".into(),
                ..Sent::default()
            },
        )
        .expect("taken");
        assert_eq!(q.q, "123 456 782");
        assert_eq!(q.status.as_deref(), Some("active"));
        assert_eq!(q.page, Some(1));
    }
}
