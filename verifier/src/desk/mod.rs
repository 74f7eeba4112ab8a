//! The bank page (feature `service`), served under `/desk` by `bizcred-verifier serve`:
//! officers sign in, start a verification and watch the wallet answer, read the verdict with
//! every check, upload a presentation file of the offline exchange, see and sync the trust
//! bundle, and read the history; administrators also manage the staff accounts.
//!
//! Sign-in, sessions, CSRF tokens, the language switch, the layout and the error pages are the
//! web crate's [`Desk`]. Each handler reads the request, asks the [`Desk`] for the signed-in
//! member, calls one [`ServiceState`] method with that member as the [`Actor`] (the method
//! checks the role), and renders the answer: no decision is taken here or in the templates.
//!
//! | route | what |
//! |---|---|
//! | `GET /desk` | start a verification (choose a policy) |
//! | `POST /desk/start` | start: 303 to the waiting page |
//! | `GET /desk/wait/{state}` | the request as a QR code, a link and a file; live updates |
//! | `GET /desk/wait/{state}/status` | JSON `{text, done, location}` polled by `desk.js` |
//! | `GET /desk/wait/{state}/request.jwt` | the signed request object as a file |
//! | `GET /desk/history` | the history (`?before=ID` for older ones) |
//! | `GET /desk/verifications/{id}` | the verdict page |
//! | `GET /desk/verifications/{id}/receipt` | the signed receipt as a file |
//! | `GET, POST /desk/upload` | verify a presentation file |
//! | `GET /desk/trust`, `POST /desk/trust/sync` | the trust bundle; sync now |
//! | `GET, POST /desk/staff` | staff accounts (administrators) |

mod multipart;
mod view;

use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use bizcred_core::time::Clock;
use bizcred_core::ReasonCode;
use bizcred_web::accounts::{AccountError, Accounts};
use bizcred_web::desk::{security_headers, MAX_FORM};
use bizcred_web::i18n::{Catalog, CatalogError, Source, Tr, SHARED};
use bizcred_web::session::same_token;
use bizcred_web::{
    see_other, Desk, DeskConfig, DeskError, FlashKind, FormError, Frame, NavItem, SessionLimits,
    Staff,
};

use crate::service::{
    blocking, Progress, ServiceError, ServiceState, UploadError, MAX_PRESENTATION_FILE,
};
use crate::staff::{self as staff_ops, Actor, Role, StaffError};
use crate::store::StoreError;

use view::Problem;

/// The bank page's session cookie (each service names its own, so another service's session
/// is none here).
pub const COOKIE: &str = "bizcred_verifier_desk";

/// The bank page's catalogue (English and French), joined to the shared one.
pub const SOURCE: Source = Source {
    name: "verifier-desk",
    en: include_str!("../../i18n/en.toml"),
    fr: include_str!("../../i18n/fr.toml"),
};

/// Verifications listed on one page of the history.
pub const HISTORY_PAGE: usize = 50;

/// The shared and the bank page's messages; an error when a key is missing in a language.
pub fn catalog() -> Result<Catalog, CatalogError> {
    Catalog::new(&[SHARED, SOURCE])
}

/// The bank page's navigation (the staff page for administrators; roles are checked again by
/// the library).
pub fn nav() -> Vec<NavItem> {
    vec![
        NavItem {
            href: "/desk",
            key: "nav.verify",
            roles: &[],
        },
        NavItem {
            href: "/desk/upload",
            key: "nav.upload",
            roles: &[],
        },
        NavItem {
            href: "/desk/history",
            key: "nav.history",
            roles: &[],
        },
        NavItem {
            href: "/desk/trust",
            key: "nav.trust",
            roles: &[],
        },
        NavItem {
            href: "/desk/staff",
            key: "nav.staff",
            roles: &["administrator"],
        },
    ]
}

/// The bank page's desk over the verifier's staff accounts; `secure` sets `Secure` on its
/// cookies (the service runs under TLS).
pub fn desk(accounts: Accounts, clock: Arc<dyn Clock>, secure: bool) -> Result<Desk, CatalogError> {
    Ok(Desk::new(
        accounts,
        Arc::new(catalog()?),
        clock,
        DeskConfig {
            cookie: COOKIE,
            title_key: "service.title",
            secure,
            limits: SessionLimits::default(),
            nav: nav(),
        },
    ))
}

type Page = Result<Response, DeskError>;

fn actor(staff: &Staff) -> Result<Actor, DeskError> {
    Ok(Actor::staff(&staff.name, &staff.role)?)
}

/// The desk's answer to a library refusal: its code, in the member's language.
fn refused(s: &ServiceState, t: &Tr, e: ServiceError) -> DeskError {
    let code = e.code();
    let sentence = |status: StatusCode, message: String| DeskError::Refused {
        status,
        code,
        message,
    };
    let catalog = &s.desk().catalog;
    match e {
        ServiceError::Forbidden(_) | ServiceError::Staff(StaffError::Forbidden(_)) => {
            DeskError::Forbidden(t.get("error.staff_forbidden"))
        }
        ServiceError::Staff(StaffError::OwnAccount) => DeskError::Forbidden(t.get("staff.own")),
        ServiceError::Staff(StaffError::Account(a)) => DeskError::Account(a),
        ServiceError::Store(StoreError::TooManyPending(_)) => {
            sentence(StatusCode::SERVICE_UNAVAILABLE, t.get("start.too_many"))
        }
        ServiceError::UnknownPolicy(_) => {
            sentence(StatusCode::BAD_REQUEST, t.get("start.unknown_policy"))
        }
        ServiceError::Upload(UploadError::TooLarge { .. }) => {
            sentence(StatusCode::PAYLOAD_TOO_LARGE, t.get("upload.too_large"))
        }
        ServiceError::Upload(_) => sentence(
            StatusCode::BAD_REQUEST,
            view::reason(catalog, t.lang, code.as_str()).text,
        ),
        ServiceError::Sync(_) => sentence(
            StatusCode::BAD_GATEWAY,
            view::reason(catalog, t.lang, code.as_str()).text,
        ),
        other => DeskError::Internal(other.to_string()),
    }
}

fn render(
    s: &ServiceState,
    staff: &Staff,
    path: &str,
    title_key: &str,
    body: impl Template,
    status: StatusCode,
) -> Page {
    let t = s.desk().tr(staff.lang);
    let html = body.render()?;
    Ok(s.desk().page(
        &Frame {
            lang: staff.lang,
            staff: Some(staff),
            title: t.get(title_key),
            path,
        },
        &html,
        status,
    ))
}

fn download(content_type: &'static str, filename: &str, body: String) -> Response {
    let disposition = format!("attachment; filename=\"{filename}\"");
    let mut r = (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

/// A path segment that is an id of this service's (states, receipt ids), or nothing.
fn id_segment(s: &str) -> Option<&str> {
    (!s.is_empty()
        && s.len() <= 100
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    .then_some(s)
}

// ---- Pages. Each takes the state and the request, and returns a page or a refusal. ----

fn start_page(s: &ServiceState, headers: &HeaderMap) -> Page {
    let staff = s.desk().staff(headers)?;
    let actor = actor(&staff)?;
    let t = s.desk().tr(staff.lang);
    // The same check as starting: an actor who may not verify sees the refusal here.
    actor
        .check(crate::staff::Permission::Verify)
        .map_err(|e| refused(s, &t, e.into()))?;
    let page = view::StartPage::new(t, staff.csrf.clone(), s.policies());
    render(s, &staff, "/desk", "start.title", page, StatusCode::OK)
}

fn start(s: &ServiceState, headers: &HeaderMap, body: &Bytes) -> Page {
    let (staff, form) = s.desk().post(headers, body)?;
    let t = s.desk().tr(staff.lang);
    let policy = form.get("policy").map(str::trim).filter(|p| !p.is_empty());
    let started = s
        .start(&actor(&staff)?, policy)
        .map_err(|e| refused(s, &t, e))?;
    Ok(see_other(&format!("/desk/wait/{}", started.state)))
}

fn wait_page(s: &ServiceState, headers: &HeaderMap, state: &str) -> Page {
    let staff = s.desk().staff(headers)?;
    let t = s.desk().tr(staff.lang);
    let state = id_segment(state).ok_or(DeskError::NotFound)?;
    let path = format!("/desk/wait/{state}");
    match s
        .progress(&actor(&staff)?, state)
        .map_err(|e| refused(s, &t, e))?
    {
        Progress::Answered { receipt_id, .. } => {
            Ok(see_other(&format!("/desk/verifications/{receipt_id}")))
        }
        Progress::Gone => render(
            s,
            &staff,
            &path,
            "wait.gone_title",
            view::GonePage { t },
            StatusCode::NOT_FOUND,
        ),
        Progress::Waiting {
            request_uri,
            policy,
            expires_at,
        } => {
            let page = view::WaitPage {
                policy,
                expires: t.time(expires_at),
                qr: bizcred_web::qr::svg(&request_uri, &t.get("wait.qr")),
                request_uri,
                poll: format!("{path}/status"),
                file_href: format!("{path}/request.jwt"),
                href: path.clone(),
                t,
            };
            render(s, &staff, &path, "wait.title", page, StatusCode::OK)
        }
    }
}

fn wait_status(s: &ServiceState, headers: &HeaderMap, state: &str) -> Page {
    let staff = s.desk().staff(headers)?;
    let t = s.desk().tr(staff.lang);
    let state = id_segment(state).ok_or(DeskError::NotFound)?;
    let answer = match s
        .progress(&actor(&staff)?, state)
        .map_err(|e| refused(s, &t, e))?
    {
        Progress::Waiting { .. } => {
            json!({"text": t.get("wait.waiting"), "done": false})
        }
        Progress::Answered { receipt_id, .. } => json!({
            "text": t.get("wait.answered"),
            "done": true,
            "location": format!("/desk/verifications/{receipt_id}"),
        }),
        Progress::Gone => json!({
            "text": t.get("wait.expired"),
            "done": true,
            "location": format!("/desk/wait/{state}"),
        }),
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(answer)).into_response())
}

fn request_file(s: &ServiceState, headers: &HeaderMap, state: &str) -> Page {
    let staff = s.desk().staff(headers)?;
    let t = s.desk().tr(staff.lang);
    let state = id_segment(state).ok_or(DeskError::NotFound)?;
    let jwt = s
        .request_file(&actor(&staff)?, state)
        .map_err(|e| refused(s, &t, e))?
        .ok_or(DeskError::NotFound)?;
    Ok(download(
        "application/oauth-authz-req+jwt",
        &format!("request-{state}.jwt"),
        jwt,
    ))
}

fn verdict_page(s: &ServiceState, headers: &HeaderMap, id: &str) -> Page {
    let staff = s.desk().staff(headers)?;
    let t = s.desk().tr(staff.lang);
    let id = id_segment(id).ok_or(DeskError::NotFound)?;
    let v = s
        .verification(&actor(&staff)?, id)
        .map_err(|e| refused(s, &t, e))?
        .ok_or(DeskError::NotFound)?;
    let policy = v
        .receipt
        .get("policy")
        .and_then(|p| p.as_str())
        .and_then(|p| s.policy(Some(p)).ok());
    let page = view::VerdictPage {
        v: view::verdict(&t, &s.desk().catalog, &v, policy),
        t,
    };
    render(
        s,
        &staff,
        &format!("/desk/verifications/{id}"),
        "verdict.title",
        page,
        StatusCode::OK,
    )
}

fn receipt_file(s: &ServiceState, headers: &HeaderMap, id: &str) -> Page {
    let staff = s.desk().staff(headers)?;
    let t = s.desk().tr(staff.lang);
    let id = id_segment(id).ok_or(DeskError::NotFound)?;
    let v = s
        .verification(&actor(&staff)?, id)
        .map_err(|e| refused(s, &t, e))?
        .ok_or(DeskError::NotFound)?;
    let text =
        serde_json::to_string_pretty(&v.receipt).map_err(|e| DeskError::Internal(e.to_string()))?;
    Ok(download(
        "application/json",
        &format!("receipt-{id}.json"),
        text,
    ))
}

fn history_page(s: &ServiceState, headers: &HeaderMap, before: Option<&str>) -> Page {
    let staff = s.desk().staff(headers)?;
    let t = s.desk().tr(staff.lang);
    let entries = s
        .history(&actor(&staff)?, HISTORY_PAGE, before)
        .map_err(|e| refused(s, &t, e))?;
    let page = view::HistoryPage::new(t, &entries, HISTORY_PAGE);
    render(
        s,
        &staff,
        "/desk/history",
        "history.title",
        page,
        StatusCode::OK,
    )
}

fn upload_view(
    s: &ServiceState,
    staff: &Staff,
    problem: Option<Problem>,
    status: StatusCode,
) -> Page {
    let t = s.desk().tr(staff.lang);
    let mb = (MAX_PRESENTATION_FILE / (1024 * 1024)).to_string();
    let page = view::UploadPage {
        hint: t.fill("upload.hint", &[("size", &mb)]),
        csrf: staff.csrf.clone(),
        problem,
        t,
    };
    render(s, staff, "/desk/upload", "upload.title", page, status)
}

fn upload_page(s: &ServiceState, headers: &HeaderMap) -> Page {
    let staff = s.desk().staff(headers)?;
    let t = s.desk().tr(staff.lang);
    actor(&staff)?
        .check(crate::staff::Permission::Upload)
        .map_err(|e| refused(s, &t, e.into()))?;
    upload_view(s, &staff, None, StatusCode::OK)
}

/// The most an upload form may carry: the file's bound and room for the form around it.
const MAX_UPLOAD: usize = MAX_PRESENTATION_FILE + 64 * 1024;

fn upload(s: &ServiceState, headers: &HeaderMap, body: Result<Bytes, ()>) -> Page {
    let staff = s.desk().staff(headers)?;
    let t = s.desk().tr(staff.lang);
    let problem = |code: ReasonCode, key: &str, status: StatusCode| {
        upload_view(
            s,
            &staff,
            Some(Problem {
                field: "presentation".into(),
                message: t.get(key),
                code: code.as_str().to_owned(),
            }),
            status,
        )
    };
    let Ok(body) = body else {
        // Not read past the bound: refused before its CSRF token could be seen, so nothing
        // was done.
        return problem(
            ReasonCode::PresentationTooLarge,
            "upload.too_large",
            StatusCode::PAYLOAD_TOO_LARGE,
        );
    };
    let parts = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or(multipart::MultipartError("no content type"))
        .and_then(multipart::boundary)
        .and_then(|b| multipart::parse(&body, &b));
    let parts = match parts {
        Ok(p) => p,
        Err(_) => {
            return Err(DeskError::Form(FormError::Invalid(
                t.get("upload.malformed"),
            )));
        }
    };
    let csrf = parts
        .iter()
        .find(|p| p.name == "csrf")
        .and_then(|p| std::str::from_utf8(&p.data).ok());
    match csrf {
        Some(c) if same_token(c, &staff.csrf) => {}
        _ => return Err(DeskError::Csrf),
    }
    let Some(file) = parts
        .iter()
        .find(|p| p.name == "presentation" && !p.data.is_empty())
    else {
        return problem(
            ReasonCode::FormInvalid,
            "upload.missing",
            StatusCode::BAD_REQUEST,
        );
    };
    match s.upload(&actor(&staff)?, &file.data) {
        Ok(o) => Ok(see_other(&format!("/desk/verifications/{}", o.receipt_id))),
        Err(ServiceError::Upload(e)) => {
            let status = match e {
                UploadError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::BAD_REQUEST,
            };
            let code = e.code();
            let message = view::reason(&s.desk().catalog, staff.lang, code.as_str()).text;
            upload_view(
                s,
                &staff,
                Some(Problem {
                    field: "presentation".into(),
                    message,
                    code: code.as_str().to_owned(),
                }),
                status,
            )
        }
        Err(e) => Err(refused(s, &t, e)),
    }
}

fn trust_page(s: &ServiceState, headers: &HeaderMap) -> Page {
    let staff = s.desk().staff(headers)?;
    let t = s.desk().tr(staff.lang);
    let status = s
        .trust_status(&actor(&staff)?)
        .map_err(|e| refused(s, &t, e))?;
    let page = view::TrustPage::new(t, staff.csrf.clone(), &status, s.now());
    render(
        s,
        &staff,
        "/desk/trust",
        "trust.title",
        page,
        StatusCode::OK,
    )
}

async fn sync(s: &ServiceState, headers: &HeaderMap, body: &Bytes) -> Page {
    let (staff, _) = s.desk().post(headers, body)?;
    let t = s.desk().tr(staff.lang);
    let catalog = &s.desk().catalog;
    let flash = match s.sync(&actor(&staff)?).await {
        Ok(Ok((state, added))) => (
            FlashKind::Success,
            t.fill(
                "trust.synced",
                &[
                    ("size", &t.number(state.size())),
                    ("added", &t.number(added)),
                    (
                        "time",
                        &state
                            .registry_as_of
                            .map_or_else(|| t.get("common.none"), |a| t.time(a)),
                    ),
                ],
            ),
        ),
        Ok(Err(e)) => (
            FlashKind::Error,
            format!(
                "{} {} ({})",
                t.get("trust.refused"),
                view::reason(catalog, t.lang, e.code().as_str()).text,
                e.code()
            ),
        ),
        Err(ServiceError::Sync(e)) => (
            FlashKind::Error,
            format!(
                "{} {} ({})",
                t.get("trust.failed"),
                view::reason(catalog, t.lang, e.code().as_str()).text,
                e.code()
            ),
        ),
        Err(e) => return Err(refused(s, &t, e)),
    };
    s.desk().flash(&staff, flash.0, flash.1);
    Ok(see_other("/desk/trust"))
}

fn staff_view(
    s: &ServiceState,
    staff: &Staff,
    problems: Vec<Problem>,
    new_name: String,
    new_role: String,
    status: StatusCode,
) -> Page {
    let t = s.desk().tr(staff.lang);
    let accounts =
        staff_ops::list(s.accounts(), &actor(staff)?).map_err(|e| refused(s, &t, e.into()))?;
    let page = view::StaffPage::new(
        t,
        staff.csrf.clone(),
        &staff.name,
        &accounts,
        problems,
        new_name,
        new_role,
    );
    render(s, staff, "/desk/staff", "staff.title", page, status)
}

fn staff_page(s: &ServiceState, headers: &HeaderMap) -> Page {
    let staff = s.desk().staff(headers)?;
    staff_view(
        s,
        &staff,
        Vec::new(),
        String::new(),
        Role::Officer.as_str().to_owned(),
        StatusCode::OK,
    )
}

/// The field of the staff page an account refusal is about.
fn account_field(e: &AccountError, action: &str, account: &str) -> String {
    match (e, action) {
        (AccountError::Weak, "reset") => format!("password-{account}"),
        (AccountError::Weak, _) => "new-password".into(),
        (AccountError::Name | AccountError::Exists(_), "add") => "new-name".into(),
        (AccountError::Role { .. }, "add") => "new-role".into(),
        _ => String::new(),
    }
}

fn staff_post(s: &ServiceState, headers: &HeaderMap, body: &Bytes) -> Page {
    let (staff, form) = s.desk().post(headers, body)?;
    let t = s.desk().tr(staff.lang);
    let me = actor(&staff)?;
    let now = s.now();
    let action = form.require("action")?.to_owned();
    let account = form.get("account").unwrap_or("").trim().to_owned();
    let role_text = form.get("role").unwrap_or("").to_owned();
    let password = zeroize::Zeroizing::new(form.get("password").unwrap_or("").to_owned());
    let done = match action.as_str() {
        "add" => role_text
            .parse::<Role>()
            .map_err(StaffError::from)
            .and_then(|role| staff_ops::add(s.accounts(), &me, &account, role, &password, now))
            .map(|_| t.fill("staff.added", &[("name", &account)])),
        "disable" => staff_ops::set_disabled(s.accounts(), &me, &account, true, now)
            .map(|_| t.fill("staff.disabled_done", &[("name", &account)])),
        "enable" => staff_ops::set_disabled(s.accounts(), &me, &account, false, now)
            .map(|_| t.fill("staff.enabled_done", &[("name", &account)])),
        "reset" => staff_ops::reset(s.accounts(), &me, &account, &password, now)
            .map(|_| t.fill("staff.reset_done", &[("name", &account)])),
        _ => {
            return Err(DeskError::Form(FormError::Invalid(
                t.get("staff.unknown_action"),
            )))
        }
    };
    match done {
        Ok(message) => {
            s.desk().flash(&staff, FlashKind::Success, message);
            Ok(see_other("/desk/staff"))
        }
        Err(StaffError::Account(e)) if !matches!(e, AccountError::File { .. }) => {
            let problem = Problem {
                field: account_field(&e, &action, &account),
                message: t.get(&format!("error.{}", e.code().as_str().to_ascii_lowercase())),
                code: e.code().as_str().to_owned(),
            };
            let (name, role) = if action == "add" {
                (account.clone(), role_text)
            } else {
                (String::new(), Role::Officer.as_str().to_owned())
            };
            staff_view(
                s,
                &staff,
                vec![problem],
                name,
                role,
                StatusCode::BAD_REQUEST,
            )
        }
        Err(e) => Err(refused(s, &t, e.into())),
    }
}

// ---- Routes: read the request, run the page off the async workers, answer. ----

type Handler = fn(&ServiceState, &HeaderMap) -> Page;

async fn run(
    s: Arc<ServiceState>,
    headers: HeaderMap,
    path: String,
    f: impl FnOnce(&ServiceState, &HeaderMap) -> Page + Send + 'static,
) -> Response {
    let h = headers.clone();
    let r = match blocking(&s, move |s| f(s, &h)).await {
        Ok(r) => r,
        Err(e) => Err(DeskError::Internal(format!("a page did not finish: {e}"))),
    };
    s.desk().answer(&headers, &path, r)
}

/// Reads a form body of at most `max` bytes (`Err` beyond it).
async fn read_body(req: Request, max: usize) -> (HeaderMap, Result<Bytes, ()>) {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, max).await.map_err(|_| ());
    (parts.headers, bytes)
}

/// A form post: its body bounded by the desk's form limit (beyond: `FORM_TOO_LARGE`).
async fn form_post(
    s: Arc<ServiceState>,
    req: Request,
    path: &str,
    f: impl FnOnce(&ServiceState, &HeaderMap, &Bytes) -> Page + Send + 'static,
) -> Response {
    let (headers, body) = read_body(req, MAX_FORM).await;
    match body {
        Ok(b) => run(s, headers, path.to_owned(), move |s, h| f(s, h, &b)).await,
        Err(()) => s
            .desk()
            .answer(&headers, path, Err(FormError::TooLarge.into())),
    }
}

/// The bank page's routes (with the web crate's sign-in, language and asset routes), under
/// the security headers.
pub fn routes(state: Arc<ServiceState>) -> Router {
    async fn page(
        State(s): State<Arc<ServiceState>>,
        h: HeaderMap,
        f: Handler,
        p: &str,
    ) -> Response {
        run(s, h, p.to_owned(), f).await
    }
    async fn home(st: State<Arc<ServiceState>>, h: HeaderMap) -> Response {
        page(st, h, start_page, "/desk").await
    }
    async fn start_post(State(s): State<Arc<ServiceState>>, req: Request) -> Response {
        form_post(s, req, "/desk", start).await
    }
    async fn wait(
        State(s): State<Arc<ServiceState>>,
        h: HeaderMap,
        Path(state): Path<String>,
    ) -> Response {
        let p = format!("/desk/wait/{}", id_segment(&state).unwrap_or(""));
        run(s, h, p, move |s, h| wait_page(s, h, &state)).await
    }
    async fn wait_json(
        State(s): State<Arc<ServiceState>>,
        h: HeaderMap,
        Path(state): Path<String>,
    ) -> Response {
        run(s, h, "/desk".into(), move |s, h| wait_status(s, h, &state)).await
    }
    async fn wait_file(
        State(s): State<Arc<ServiceState>>,
        h: HeaderMap,
        Path(state): Path<String>,
    ) -> Response {
        run(s, h, "/desk".into(), move |s, h| request_file(s, h, &state)).await
    }
    async fn history(
        State(s): State<Arc<ServiceState>>,
        h: HeaderMap,
        Query(q): Query<Vec<(String, String)>>,
    ) -> Response {
        let before = q.into_iter().find(|(k, _)| k == "before").map(|(_, v)| v);
        run(s, h, "/desk/history".into(), move |s, h| {
            history_page(s, h, before.as_deref())
        })
        .await
    }
    async fn verdict(
        State(s): State<Arc<ServiceState>>,
        h: HeaderMap,
        Path(id): Path<String>,
    ) -> Response {
        run(s, h, "/desk/verifications".into(), move |s, h| {
            verdict_page(s, h, &id)
        })
        .await
    }
    async fn receipt(
        State(s): State<Arc<ServiceState>>,
        h: HeaderMap,
        Path(id): Path<String>,
    ) -> Response {
        run(s, h, "/desk/verifications".into(), move |s, h| {
            receipt_file(s, h, &id)
        })
        .await
    }
    async fn upload_get(st: State<Arc<ServiceState>>, h: HeaderMap) -> Response {
        page(st, h, upload_page, "/desk/upload").await
    }
    async fn upload_post(State(s): State<Arc<ServiceState>>, req: Request) -> Response {
        let (headers, body) = read_body(req, MAX_UPLOAD).await;
        run(s, headers, "/desk/upload".into(), move |s, h| {
            upload(s, h, body)
        })
        .await
    }
    async fn trust(st: State<Arc<ServiceState>>, h: HeaderMap) -> Response {
        page(st, h, trust_page, "/desk/trust").await
    }
    async fn trust_sync(State(s): State<Arc<ServiceState>>, req: Request) -> Response {
        let (headers, body) = read_body(req, MAX_FORM).await;
        let r = match body {
            Ok(b) => sync(&s, &headers, &b).await,
            Err(()) => Err(FormError::TooLarge.into()),
        };
        s.desk().answer(&headers, "/desk/trust", r)
    }
    async fn staff_get(st: State<Arc<ServiceState>>, h: HeaderMap) -> Response {
        page(st, h, staff_page, "/desk/staff").await
    }
    async fn staff_set(State(s): State<Arc<ServiceState>>, req: Request) -> Response {
        form_post(s, req, "/desk/staff", staff_post).await
    }
    let pages = Router::new()
        .route("/desk", get(home))
        .route("/desk/", get(|| async { see_other("/desk") }))
        .route("/desk/start", post(start_post))
        .route("/desk/wait/{state}", get(wait))
        .route("/desk/wait/{state}/status", get(wait_json))
        .route("/desk/wait/{state}/request.jwt", get(wait_file))
        .route("/desk/history", get(history))
        .route(
            "/desk/verifications",
            get(|| async { see_other("/desk/history") }),
        )
        .route("/desk/verifications/{id}", get(verdict))
        .route("/desk/verifications/{id}/receipt", get(receipt))
        .route("/desk/upload", get(upload_get).post(upload_post))
        .route("/desk/trust", get(trust))
        .route("/desk/trust/sync", post(trust_sync))
        .route("/desk/staff", get(staff_get).post(staff_set))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_UPLOAD))
        .with_state(state.clone())
        .layer(axum::middleware::from_fn(security_headers));
    state.desk().routes().merge(pages)
}
