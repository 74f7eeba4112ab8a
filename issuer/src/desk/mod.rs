//! The agency desk (`/desk`): the work queue, applications, credentials, keys, the audit log
//! and staff accounts, for clerks, approvers and administrators in the browser.
//!
//! Handlers read the request, call the issuance core with the signed-in member as the
//! [`Actor`] (roles are checked there, not here), and render a view the template only
//! displays. Everything shown is escaped by the templates; nothing personal goes in URLs (the
//! application and credential ids are random) or logs.

pub mod applicant;
mod views;

use std::str::FromStr;
use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{Map, Value};

use bizcred_schemas::{CredentialType, ReasonCode};
use bizcred_web::desk::security_headers;
use bizcred_web::i18n::Source;
use bizcred_web::{
    see_other, Catalog, Desk, DeskConfig, DeskError, FlashKind, Form, Frame, NavItem, Staff, Tr,
};

use crate::issuer::{
    Actor, ApplicationFilter, Error, FieldError, Issuer, Permission, StaffRole, StatusAction,
};
use crate::service::ApiError;
use crate::store::AppStatus;

use views::*;

/// The staff roles of an agency desk.
pub const ROLES: &[&str] = &["clerk", "approver", "administrator"];

/// The desk's session cookie, followed by `_<port>` when the public URL has a port: browsers
/// share cookies between the ports of one host, so agencies side by side on one machine (the
/// loopback demo) each keep their own session (the verifier's desk uses another name).
pub const COOKIE: &str = "bizcred_issuer_desk";

/// The cookie name of the issuer at `public_url`.
pub fn cookie_name(public_url: &str) -> String {
    let authority = public_url
        .split_once("://")
        .map_or(public_url, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or("");
    match authority.rsplit_once(':') {
        Some((_, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{COOKIE}_{port}")
        }
        _ => COOKIE.to_owned(),
    }
}

/// The issuer desk's catalogue (joined with the shared one).
pub const CATALOG: Source = Source {
    name: "issuer-desk",
    en: include_str!("../../i18n/en.toml"),
    fr: include_str!("../../i18n/fr.toml"),
};

/// The desk's navigation.
pub fn nav() -> Vec<NavItem> {
    vec![
        NavItem {
            href: "/desk",
            key: "nav.queue",
            roles: &[],
        },
        NavItem {
            href: "/desk/credentials",
            key: "nav.credentials",
            roles: &[],
        },
        NavItem {
            href: "/desk/keys",
            key: "nav.keys",
            roles: &[],
        },
        NavItem {
            href: "/desk/audit",
            key: "nav.audit",
            roles: &[],
        },
        NavItem {
            href: "/desk/staff",
            key: "nav.staff",
            roles: &["administrator"],
        },
    ]
}

/// Builds the desk of the issuer at `public_url` whose data directory is `dir`.
pub fn new_desk(
    public_url: &str,
    dir: &std::path::Path,
    clock: Arc<dyn bizcred_core::time::Clock>,
    secure: bool,
    limits: bizcred_web::SessionLimits,
) -> Result<Desk, bizcred_web::i18n::CatalogError> {
    let catalog = Arc::new(Catalog::new(&[bizcred_web::i18n::SHARED, CATALOG])?);
    Ok(Desk::new(
        bizcred_web::Accounts::new(dir, ROLES),
        catalog,
        clock,
        DeskConfig {
            // One name per process, made once at start-up.
            cookie: Box::leak(cookie_name(public_url).into_boxed_str()),
            title_key: "desk.service",
            secure,
            limits,
            nav: nav(),
        },
    ))
}

/// The issuer and its desk.
#[derive(Debug)]
pub struct DeskState {
    /// The issuer.
    pub issuer: Arc<Issuer>,
    /// The desk.
    pub desk: Arc<Desk>,
}

type Shared = Arc<DeskState>;

/// The desk's routes (merge with the service's).
pub fn routes(issuer: Arc<Issuer>, desk: Arc<Desk>) -> Router {
    let state = Arc::new(DeskState {
        issuer,
        desk: desk.clone(),
    });
    Router::new()
        .route("/desk", get(queue))
        .route("/desk/applications/new", get(new_application))
        .route("/desk/applications", post(create_application))
        .route(
            "/desk/applications/{id}",
            get(application).post(act_on_application),
        )
        .route("/desk/credentials", get(credentials))
        .route(
            "/desk/credentials/{id}",
            get(credential).post(change_status),
        )
        .route("/desk/keys", get(keys).post(rotate))
        .route("/desk/audit", get(audit))
        .route("/desk/staff", get(staff_page).post(staff_action))
        .fallback(not_found)
        .with_state(state)
        // Bodies up to 1 MiB are read, so that a form over MAX_FORM gets the page saying so
        // (FORM_TOO_LARGE); anything larger is cut off by the body limit itself.
        .layer(axum::extract::DefaultBodyLimit::max(1 << 20))
        .layer(axum::middleware::from_fn(security_headers))
        .merge(desk.routes())
}

/// The member as the issuance core's actor (a role this desk does not have is refused).
fn actor(staff: &Staff) -> Result<Actor, DeskError> {
    let role = StaffRole::from_str(&staff.role)
        .map_err(|_| DeskError::Forbidden(format!("role {} is not an agency role", staff.role)))?;
    Ok(Actor::Staff {
        name: staff.name.clone(),
        role,
    })
}

/// A refusal of the issuance core as a desk error: its status, code and sentence (translated
/// where the catalogue has the code, else the core's English sentence).
fn refused(t: &Tr, e: Error) -> DeskError {
    let code = e.code();
    let message = t_reason(t, code).unwrap_or_else(|| e.to_string());
    let status = ApiError::from(e).status;
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        return DeskError::Internal(message);
    }
    if code == ReasonCode::StaffForbidden {
        return DeskError::Forbidden(message);
    }
    if status == StatusCode::NOT_FOUND {
        return DeskError::NotFound;
    }
    DeskError::Refused {
        status,
        code,
        message,
    }
}

/// The catalogue's sentence for a reason code, when it has one.
fn t_reason(t: &Tr, code: ReasonCode) -> Option<String> {
    t.optional(&format!("reason.{}", code.as_str().to_ascii_lowercase()))
}

/// A page for a signed-in member: `build` gets the member and a translator for the page's
/// language and answers the title and the view; refusals become the error page.
fn get_page<V: Template>(
    d: &Shared,
    headers: &HeaderMap,
    path: &str,
    build: impl FnOnce(&Staff, &Tr) -> Result<(String, V), DeskError>,
) -> Response {
    let r = d.desk.staff(headers).and_then(|staff| {
        let t = d.desk.tr(staff.lang);
        let (title, view) = build(&staff, &t)?;
        render(d, &staff, path, title, view)
    });
    d.desk.answer(headers, path, r)
}

fn render(
    d: &Shared,
    staff: &Staff,
    path: &str,
    title: String,
    body: impl Template,
) -> Result<Response, DeskError> {
    let html = body.render()?;
    Ok(d.desk.page(
        &Frame {
            lang: staff.lang,
            staff: Some(staff),
            title,
            path,
        },
        &html,
        StatusCode::OK,
    ))
}

fn query<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a str> {
    q.iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

async fn not_found(State(d): State<Shared>, headers: HeaderMap) -> Response {
    d.desk
        .answer(&headers, "/desk", Err::<Response, _>(DeskError::NotFound))
}

async fn queue(
    State(d): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    get_page(&d, &headers, "/desk", |staff, t| {
        let state = query(&q, "state")
            .map(|s| AppStatus::from_str(s).map_err(|e| refused(t, e)))
            .transpose()?;
        let ty = query(&q, "type")
            .map(|s| {
                CredentialType::from_slug(s).ok_or(DeskError::Refused {
                    status: StatusCode::BAD_REQUEST,
                    code: ReasonCode::FormInvalid,
                    message: t.get("queue.bad_type"),
                })
            })
            .transpose()?;
        let flagged_only = query(&q, "flagged").is_some();
        let filter = ApplicationFilter {
            states: state.into_iter().collect(),
            credential_type: ty,
            oldest_first: true,
            limit: 200,
        };
        let list = if flagged_only {
            d.issuer.flagged_applications(&filter)
        } else {
            d.issuer.applications_by(&filter)
        }
        .map_err(|e| refused(t, e))?;
        let now = d.desk.now();
        let mut view = QueuePage::new(&d.issuer, t, staff, state, ty, &list, now);
        view.flagged_only = flagged_only;
        view.filtered |= flagged_only;
        Ok((t.get("queue.title"), view))
    })
}

async fn new_application(State(d): State<Shared>, headers: HeaderMap) -> Response {
    get_page(&d, &headers, "/desk/applications/new", |staff, t| {
        Ok((
            t.get("new.title"),
            NewApplicationPage::new(&d.issuer, t, staff),
        ))
    })
}

async fn create_application(State(d): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let r = (|| {
        let (staff, form) = d.desk.post(&headers, &body)?;
        let t = d.desk.tr(staff.lang);
        let slug = form.require("type")?;
        let (app, request) = d
            .issuer
            .create_application(&actor(&staff)?, slug, Map::new())
            .map_err(|e| refused(&t, e))?;
        let view = CreatedPage::new(&d.issuer, &t, &app, request.as_deref());
        render(
            &d,
            &staff,
            "/desk/applications/new",
            t.get("created.title"),
            view,
        )
    })();
    d.desk.answer(&headers, "/desk/applications/new", r)
}

async fn application(
    State(d): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    get_page(
        &d,
        &headers,
        &format!("/desk/applications/{id}"),
        |staff, t| {
            let app = d.issuer.application(&id).map_err(|e| refused(t, e))?;
            let view = ApplicationPage::new(&d.issuer, t, staff, &app, None, &[], d.desk.now());
            Ok((view.title.clone(), view))
        },
    )
}

/// Claims as the form sends them: each field's text, parsed as its kind (JSON fields as
/// JSON; a field left empty is not sent to the core, so a blank never erases a claim).
fn form_claims(
    ty: CredentialType,
    form: &Form,
    verified: &[String],
) -> Result<(Map<String, Value>, Vec<FieldError>), DeskError> {
    let mut claims = Map::new();
    let mut errors = Vec::new();
    for f in claim_fields(ty) {
        if verified.contains(&f.name) {
            continue;
        }
        let Some(raw) = form.get(&format!("claim.{}", f.name)) else {
            continue;
        };
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        match f.kind {
            FieldKind::Json => match serde_json::from_str::<Value>(raw) {
                Ok(v) => {
                    claims.insert(f.name.clone(), v);
                }
                Err(e) => errors.push(FieldError {
                    field: format!("/{}", f.name),
                    message: format!("not JSON: {e}"),
                    code: ReasonCode::FormInvalid,
                }),
            },
            FieldKind::Integer => match raw.parse::<i64>() {
                Ok(n) => {
                    claims.insert(f.name.clone(), Value::from(n));
                }
                Err(_) => errors.push(FieldError {
                    field: format!("/{}", f.name),
                    message: "not a whole number".into(),
                    code: ReasonCode::FormInvalid,
                }),
            },
            FieldKind::Text | FieldKind::Date | FieldKind::Choice(_) => {
                claims.insert(f.name.clone(), Value::String(raw.to_owned()));
            }
        }
    }
    Ok((claims, errors))
}

async fn act_on_application(
    State(d): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let path = format!("/desk/applications/{id}");
    let r = async {
        let (staff, form) = d.desk.post(&headers, &body)?;
        let t = d.desk.tr(staff.lang);
        let who = actor(&staff)?;
        let app = d.issuer.application(&id).map_err(|e| refused(&t, e))?;
        let ty = CredentialType::from_slug(&app.credential_type).ok_or(DeskError::NotFound)?;
        let op = form.require("op")?;
        let done = |key: &str| {
            d.desk.flash(&staff, FlashKind::Success, t.get(key));
            Ok(see_other(&path))
        };
        match op {
            "save" | "approve" => {
                let (claims, form_errors) = form_claims(ty, &form, &app.verified_claims)?;
                if !form_errors.is_empty() {
                    return invalid(&d, &staff, &t, &path, &app, &form, form_errors);
                }
                if op == "save" {
                    match d.issuer.update_claims(&who, &id, claims) {
                        Ok(_) => done("application.saved"),
                        Err(Error::ClaimsInvalid {
                            violations: errors, ..
                        }) => invalid(&d, &staff, &t, &path, &app, &form, errors),
                        Err(e) => Err(refused(&t, e)),
                    }
                } else {
                    match d.issuer.approve(&who, &id, claims) {
                        Ok(offered) => {
                            let view = OfferPage::new(&t, &offered);
                            tracing::info!(user = %staff.name, "application approved at the desk");
                            render(&d, &staff, &path, t.get("offer.title"), view)
                        }
                        Err(Error::ClaimsInvalid {
                            violations: errors, ..
                        }) => invalid(&d, &staff, &t, &path, &app, &form, errors),
                        Err(e) => Err(refused(&t, e)),
                    }
                }
            }
            "request_changes" => {
                d.issuer
                    .request_changes(&who, &id, form.get("note").unwrap_or(""))
                    .map_err(|e| refused(&t, e))?;
                done("application.changes_requested")
            }
            "refuse" => {
                d.issuer
                    .refuse(&who, &id, form.get("reason").unwrap_or(""))
                    .map_err(|e| refused(&t, e))?;
                done("application.refused")
            }
            "withdraw" => {
                d.issuer
                    .withdraw(&who, &id, form.get("withdraw_reason").unwrap_or(""))
                    .map_err(|e| refused(&t, e))?;
                done("application.withdrawn")
            }
            _ => Err(bizcred_web::FormError::Invalid(format!("unknown action {op}")).into()),
        }
    }
    .await;
    d.desk.answer(&headers, &path, r)
}

/// The application page again, with the form as sent and each error next to its field.
fn invalid(
    d: &Shared,
    staff: &Staff,
    t: &Tr,
    path: &str,
    app: &crate::store::Application,
    form: &Form,
    errors: Vec<FieldError>,
) -> Result<Response, DeskError> {
    let view = ApplicationPage::new(&d.issuer, t, staff, app, Some(form), &errors, d.desk.now());
    let html = view.render()?;
    Ok(d.desk.page(
        &Frame {
            lang: staff.lang,
            staff: Some(staff),
            title: view.title.clone(),
            path,
        },
        &html,
        StatusCode::UNPROCESSABLE_ENTITY,
    ))
}

async fn credentials(
    State(d): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    get_page(&d, &headers, "/desk/credentials", |_, t| {
        let text = query(&q, "q")
            .unwrap_or("")
            .chars()
            .take(200)
            .collect::<String>();
        let found = if text.trim().is_empty() {
            None
        } else {
            Some(
                d.issuer
                    .search_credentials(&text, 100)
                    .map_err(|e| refused(t, e))?,
            )
        };
        Ok((
            t.get("credentials.title"),
            CredentialsPage::new(t, &text, found.as_deref()),
        ))
    })
}

async fn credential(
    State(d): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    get_page(
        &d,
        &headers,
        &format!("/desk/credentials/{id}"),
        |staff, t| {
            let view = d.issuer.credential_view(&id).map_err(|e| refused(t, e))?;
            let mut page = CredentialPage::new(&d.issuer, t, staff, &view);
            if let Some(app) = d
                .issuer
                .credential_application(&id)
                .map_err(|e| refused(t, e))?
            {
                page.flags = views::flag_lines(&d.issuer, t, &app.dependencies.flags);
            }
            Ok((t.get("credential.title"), page))
        },
    )
}

async fn change_status(
    State(d): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let path = format!("/desk/credentials/{id}");
    let r = async {
        let (staff, form) = d.desk.post(&headers, &body)?;
        let t = d.desk.tr(staff.lang);
        let action = StatusAction::from_str(form.require("action")?).map_err(|e| refused(&t, e))?;
        let reason = form.get("reason").map(str::trim).filter(|r| !r.is_empty());
        // Returns once the status list served at /status/{n} carries the change.
        let rec = d
            .issuer
            .set_status_published(&actor(&staff)?, &id, action, reason)
            .await
            .map_err(|e| refused(&t, e))?;
        let status = t.get(&format!("status.{}", rec.status.as_str()));
        d.desk.flash(
            &staff,
            FlashKind::Success,
            t.fill("credential.changed", &[("status", &status)]),
        );
        Ok(see_other(&path))
    }
    .await;
    d.desk.answer(&headers, &path, r)
}

async fn keys(State(d): State<Shared>, headers: HeaderMap) -> Response {
    get_page(&d, &headers, "/desk/keys", |staff, t| {
        let info = d.issuer.key_info().map_err(|e| refused(t, e))?;
        let may_rotate = actor(staff)?.may(Permission::RotateKey);
        Ok((
            t.get("keys.title"),
            KeysPage::new(t, staff, &info, may_rotate),
        ))
    })
}

async fn rotate(State(d): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let r = async {
        let (staff, _) = d.desk.post(&headers, &body)?;
        let t = d.desk.tr(staff.lang);
        d.issuer
            .rotate_key(&actor(&staff)?)
            .await
            .map_err(|e| refused(&t, e))?;
        d.desk
            .flash(&staff, FlashKind::Success, t.get("keys.rotated"));
        Ok(see_other("/desk/keys"))
    }
    .await;
    d.desk.answer(&headers, "/desk/keys", r)
}

async fn audit(State(d): State<Shared>, headers: HeaderMap) -> Response {
    get_page(&d, &headers, "/desk/audit", |_, t| {
        let report = d.issuer.audit_report(200).map_err(|e| refused(t, e))?;
        Ok((t.get("audit.title"), AuditPage::new(t, &report)))
    })
}

async fn staff_page(State(d): State<Shared>, headers: HeaderMap) -> Response {
    get_page(&d, &headers, "/desk/staff", |staff, t| {
        actor(staff)?
            .require(Permission::ManageStaff)
            .map_err(|e| refused(t, e))?;
        let accounts = d.desk.accounts.list()?;
        Ok((
            t.get("staff.title"),
            StaffPage::new(t, staff, &accounts, ROLES),
        ))
    })
}

async fn staff_action(State(d): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let r = async {
        let (staff, form) = d.desk.post(&headers, &body)?;
        let t = d.desk.tr(staff.lang);
        let who = actor(&staff)?;
        who.require(Permission::ManageStaff)
            .map_err(|e| refused(&t, e))?;
        let now = d.desk.now();
        let name = form.require("name")?.to_owned();
        let accounts = d.desk.accounts.clone();
        let op = form.require("op")?.to_owned();
        let (role, password) = (
            form.get("role").unwrap_or("").to_owned(),
            zeroize::Zeroizing::new(form.get("password").unwrap_or("").to_owned()),
        );
        let n = name.clone();
        // Hashing a password takes tens of milliseconds: off the async workers.
        let changed = tokio::task::spawn_blocking(move || match op.as_str() {
            "add" => accounts
                .add(&n, &role, &password, now)
                .map(|_| ("staff.added", "staff_added")),
            "reset" => accounts
                .reset(&n, &password, now)
                .map(|_| ("staff.reset_done", "staff_password_reset")),
            "disable" => accounts
                .set_disabled(&n, true, now)
                .map(|_| ("staff.disabled", "staff_disabled")),
            "enable" => accounts
                .set_disabled(&n, false, now)
                .map(|_| ("staff.enabled", "staff_enabled")),
            "role" => accounts
                .set_role(&n, &role, now)
                .map(|_| ("staff.role_changed", "staff_role_changed")),
            _ => Err(bizcred_web::AccountError::Unknown(op.clone())),
        })
        .await
        .map_err(|e| DeskError::Internal(e.to_string()))??;
        let (flash, event) = changed;
        if event != "staff_added" {
            d.desk.sessions.end_user(&name);
        }
        // Staff changes join the issuer's audit chain, naming the administrator.
        d.issuer
            .store
            .audit(
                now,
                event,
                serde_json::json!({"actor": who.audit(), "account": name}),
            )
            .map_err(|e| refused(&t, e.into()))?;
        d.desk.flash(
            &staff,
            FlashKind::Success,
            t.fill(flash, &[("name", &name)]),
        );
        Ok(see_other("/desk/staff"))
    }
    .await;
    d.desk.answer(&headers, "/desk/staff", r)
}
