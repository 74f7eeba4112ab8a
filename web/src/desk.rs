//! A staff desk: the part every service's `/desk` shares. Sign-in and sign-out, the language
//! switch, the embedded assets, the layout around each page, CSRF checks, flash messages and
//! the error pages. A service builds a [`Desk`], merges [`Desk::routes`] with its own pages,
//! and in each handler asks [`Desk::staff`] for the signed-in member (or a refusal).

use std::net::SocketAddr;
use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use bizcred_core::time::Clock;
use bizcred_schemas::ReasonCode;

use crate::accounts::{AccountError, Accounts};
use crate::assets;
use crate::form::{Form, FormError};
use crate::i18n::{Catalog, Lang, Tr};
use crate::session::{same_token, Flash, FlashKind, SessionLimits, Sessions, Throttle};

/// Largest form a desk page accepts.
pub const MAX_FORM: usize = 64 * 1024;
/// Failed sign-ins before an account name or an address waits.
pub const MAX_LOGIN_FAILURES: u32 = 5;
/// How long (seconds) failures count and a throttled key waits.
pub const LOGIN_WINDOW: i64 = 15 * 60;
/// The cookie remembering the chosen language (shared by every bizcred page).
pub const LANG_COOKIE: &str = "bizcred_lang";

/// A link in the desk's navigation.
#[derive(Debug, Clone, Copy)]
pub struct NavItem {
    /// Where it goes (under `/desk`).
    pub href: &'static str,
    /// Its catalogue key.
    pub key: &'static str,
    /// Roles that see it (all when empty). Roles are checked again by the library call.
    pub roles: &'static [&'static str],
}

/// How a service's desk is set up.
#[derive(Debug, Clone)]
pub struct DeskConfig {
    /// The session cookie's name, different on every service.
    pub cookie: &'static str,
    /// Catalogue key of the service's name in the header.
    pub title_key: &'static str,
    /// Set `Secure` on cookies (the service runs under TLS).
    pub secure: bool,
    /// Session lifetimes.
    pub limits: SessionLimits,
    /// The navigation.
    pub nav: Vec<NavItem>,
}

/// The signed-in member of staff making a request.
#[derive(Clone, PartialEq, Eq)]
pub struct Staff {
    /// Account name.
    pub name: String,
    /// Role.
    pub role: String,
    /// The session's CSRF token (put in every form).
    pub csrf: String,
    /// The page's language.
    pub lang: Lang,
    session: String,
}

impl std::fmt::Debug for Staff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staff")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Why a desk request was refused.
#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    /// No live session: the browser is sent to sign in.
    #[error("sign in to continue")]
    SessionRequired,
    /// The form's CSRF token is missing or not the session's.
    #[error("the form was not posted from this session's page")]
    Csrf,
    /// A form could not be read.
    #[error(transparent)]
    Form(#[from] FormError),
    /// An account operation failed.
    #[error(transparent)]
    Account(#[from] AccountError),
    /// The role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Nothing here.
    #[error("there is no such page")]
    NotFound,
    /// A refusal from the service's library, shown with its code and sentence.
    #[error("{message}")]
    Refused {
        /// HTTP status.
        status: StatusCode,
        /// Reason code.
        code: ReasonCode,
        /// What to tell the person.
        message: String,
    },
    /// A page failed to render or a store failed.
    #[error("internal error: {0}")]
    Internal(String),
}

impl DeskError {
    /// The reason code shown on the error page.
    pub fn code(&self) -> ReasonCode {
        match self {
            DeskError::SessionRequired => ReasonCode::SessionRequired,
            DeskError::Csrf => ReasonCode::CsrfRejected,
            DeskError::Form(e) => e.code(),
            DeskError::Account(e) => e.code(),
            DeskError::Forbidden(_) => ReasonCode::StaffForbidden,
            DeskError::NotFound => ReasonCode::PageNotFound,
            DeskError::Refused { code, .. } => *code,
            DeskError::Internal(_) => ReasonCode::PageFailed,
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            DeskError::SessionRequired => StatusCode::UNAUTHORIZED,
            DeskError::Csrf | DeskError::Forbidden(_) => StatusCode::FORBIDDEN,
            DeskError::Form(FormError::TooLarge) => StatusCode::PAYLOAD_TOO_LARGE,
            DeskError::Form(_) => StatusCode::BAD_REQUEST,
            DeskError::Account(AccountError::File { .. }) => StatusCode::INTERNAL_SERVER_ERROR,
            DeskError::Account(_) => StatusCode::BAD_REQUEST,
            DeskError::NotFound => StatusCode::NOT_FOUND,
            DeskError::Refused { status, .. } => *status,
            DeskError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<askama::Error> for DeskError {
    fn from(e: askama::Error) -> DeskError {
        DeskError::Internal(format!("a page failed to render: {e}"))
    }
}

/// One page's frame: what the layout needs besides the body.
#[derive(Debug)]
pub struct Frame<'a> {
    /// The page's language.
    pub lang: Lang,
    /// The signed-in member, if any.
    pub staff: Option<&'a Staff>,
    /// The page title (already translated).
    pub title: String,
    /// The path of this page (for the language switch and the current navigation link).
    pub path: &'a str,
}

#[derive(Template)]
#[template(path = "layout.html")]
struct Layout<'a> {
    t: Tr,
    title: &'a str,
    service: String,
    staff: Option<&'a Staff>,
    nav: Vec<(&'static str, String, bool)>,
    flash: Option<Flash>,
    body: &'a str,
    css: String,
    js: String,
    switch_href: String,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    t: Tr,
    token: String,
    error: Option<String>,
    name: String,
    expired: bool,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    t: Tr,
    code: &'static str,
    message: String,
    signed_in: bool,
}

/// A service's desk.
pub struct Desk {
    /// Staff accounts.
    pub accounts: Accounts,
    /// Sessions.
    pub sessions: Sessions,
    /// The catalogue (shared and the service's).
    pub catalog: Arc<Catalog>,
    throttle: Throttle,
    clock: Arc<dyn Clock>,
    config: DeskConfig,
}

impl std::fmt::Debug for Desk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Desk")
            .field("cookie", &self.config.cookie)
            .finish_non_exhaustive()
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A path to return to after sign-in or a language switch: a desk path, nothing else.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/desk")
                && !n.contains("//")
                && !n.contains('\\')
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n.to_owned()
        }
        _ => "/desk".to_owned(),
    }
}

/// A request's page language: the remembered choice (the language cookie every service's
/// pages share), else `Accept-Language`, else English.
pub(crate) fn request_lang(headers: &HeaderMap) -> Lang {
    cookie_value(headers, LANG_COOKIE)
        .and_then(Lang::from_code)
        .or_else(|| {
            headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .and_then(Lang::from_accept_language)
        })
        .unwrap_or(Lang::En)
}

/// The language switch: back to `next` (already checked by the caller), remembering language
/// `code` (an unknown one changes nothing) in the cookie every service's pages read.
pub(crate) fn language_switch(code: &str, next: &str) -> Response {
    let mut r = see_other(next);
    if let Some(l) = Lang::from_code(code) {
        let c = format!(
            "{LANG_COOKIE}={}; Path=/; SameSite=Lax; Max-Age=31536000",
            l.code()
        );
        if let Ok(v) = HeaderValue::from_str(&c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

/// A `303 See Other` to `to`.
pub fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

impl Desk {
    /// A desk over a service's accounts, with the shared catalogue joined to `catalog`.
    pub fn new(
        accounts: Accounts,
        catalog: Arc<Catalog>,
        clock: Arc<dyn Clock>,
        config: DeskConfig,
    ) -> Desk {
        Desk {
            accounts,
            sessions: Sessions::new(config.limits),
            catalog,
            throttle: Throttle::new(MAX_LOGIN_FAILURES, LOGIN_WINDOW, 100_000),
            clock,
            config,
        }
    }

    /// The current time.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The page language: the remembered choice, else `Accept-Language`, else English.
    pub fn lang(&self, headers: &HeaderMap) -> Lang {
        request_lang(headers)
    }

    /// A translator for this request.
    pub fn tr(&self, lang: Lang) -> Tr {
        Tr::new(self.catalog.clone(), lang)
    }

    /// The signed-in member making this request, or [`DeskError::SessionRequired`]. A session
    /// ends when its account was disabled or changed since sign-in.
    pub fn staff(&self, headers: &HeaderMap) -> Result<Staff, DeskError> {
        let id = cookie_value(headers, self.config.cookie).ok_or(DeskError::SessionRequired)?;
        let s = self
            .sessions
            .touch(id, self.now())
            .ok_or(DeskError::SessionRequired)?;
        match self.accounts.get(&s.user)? {
            Some(a) if !a.disabled && a.generation == s.account_generation => {}
            _ => {
                self.sessions.end(id);
                return Err(DeskError::SessionRequired);
            }
        }
        Ok(Staff {
            name: s.user,
            role: s.role,
            csrf: s.csrf,
            lang: self.lang(headers),
            session: id.to_owned(),
        })
    }

    /// The signed-in member posting `body` as a form, with its CSRF token checked.
    pub fn post(&self, headers: &HeaderMap, body: &Bytes) -> Result<(Staff, Form), DeskError> {
        let staff = self.staff(headers)?;
        let form = Form::parse(body, MAX_FORM)?;
        match form.get("csrf") {
            Some(t) if same_token(t, &staff.csrf) => Ok((staff, form)),
            _ => Err(DeskError::Csrf),
        }
    }

    /// Leaves a message for the member's next page.
    pub fn flash(&self, staff: &Staff, kind: FlashKind, text: String) {
        self.sessions.flash(&staff.session, Flash { kind, text });
    }

    /// Frames `body` in the layout and answers it with `status`.
    pub fn page(&self, frame: &Frame<'_>, body: &str, status: StatusCode) -> Response {
        let t = self.tr(frame.lang);
        let flash = frame
            .staff
            .and_then(|s| self.sessions.take_flash(&s.session));
        let nav = match frame.staff {
            Some(s) => self
                .config
                .nav
                .iter()
                .filter(|n| n.roles.is_empty() || n.roles.contains(&s.role.as_str()))
                .map(|n| {
                    let current = if n.href == "/desk" {
                        frame.path == "/desk"
                    } else {
                        frame.path.starts_with(n.href)
                    };
                    (n.href, t.get(n.key), current)
                })
                .collect(),
            None => Vec::new(),
        };
        let layout = Layout {
            service: t.get(self.config.title_key),
            title: &frame.title,
            staff: frame.staff,
            nav,
            flash,
            body,
            css: assets::href(assets::CSS),
            js: assets::href(assets::JS),
            switch_href: format!(
                "/desk/lang/{}?next={}",
                frame.lang.other().code(),
                form_urlencoded::byte_serialize(safe_next(Some(frame.path)).as_bytes())
                    .collect::<String>()
            ),
            t,
        };
        match layout.render() {
            Ok(html) => (status, html_headers(), html).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "the layout failed to render");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
            }
        }
    }

    /// The answer to a refused request: a sign-in redirect for a missing session, else an
    /// error page with the reason code and sentence, in the request's language.
    pub fn error(&self, headers: &HeaderMap, path: &str, e: &DeskError) -> Response {
        if let DeskError::SessionRequired = e {
            return see_other("/desk/login?expired=1");
        }
        if let DeskError::Internal(cause) = e {
            tracing::error!(%cause, "a desk page failed");
        }
        let lang = self.lang(headers);
        let staff = self.staff(headers).ok();
        let t = self.tr(lang);
        let message = match e {
            DeskError::Refused { message, .. } | DeskError::Forbidden(message) => message.clone(),
            other => t.get(&format!(
                "error.{}",
                other.code().as_str().to_ascii_lowercase()
            )),
        };
        let body = ErrorPage {
            code: e.code().as_str(),
            message,
            signed_in: staff.is_some(),
            t: t.clone(),
        }
        .render();
        match body {
            Ok(body) => self.page(
                &Frame {
                    lang,
                    staff: staff.as_ref(),
                    title: t.get("error.title"),
                    path,
                },
                &body,
                e.status(),
            ),
            Err(_) => (e.status(), e.code().as_str()).into_response(),
        }
    }

    /// Answers a handler's result: its response, or the error page.
    pub fn answer(
        &self,
        headers: &HeaderMap,
        path: &str,
        result: Result<Response, DeskError>,
    ) -> Response {
        match result {
            Ok(r) => r,
            Err(e) => self.error(headers, path, &e),
        }
    }

    fn login_page(
        &self,
        lang: Lang,
        error: Option<String>,
        name: String,
        expired: bool,
        status: StatusCode,
    ) -> Response {
        let token = crate::session::random_token(24);
        let t = self.tr(lang);
        let body = LoginPage {
            t: t.clone(),
            token: token.clone(),
            error,
            name,
            expired,
        }
        .render();
        let mut r = match body {
            Ok(b) => self.page(
                &Frame {
                    lang,
                    staff: None,
                    title: t.get("login.title"),
                    path: "/desk/login",
                },
                &b,
                status,
            ),
            Err(e) => return self.error(&HeaderMap::new(), "/desk/login", &e.into()),
        };
        if let Ok(v) = HeaderValue::from_str(&self.cookie(&self.login_cookie(), &token, 1800)) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
        r
    }

    fn login_cookie(&self) -> String {
        format!("{}_login", self.config.cookie)
    }

    fn cookie(&self, name: &str, value: &str, max_age: i64) -> String {
        format!(
            "{name}={value}; Path=/desk; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
            if self.config.secure { "; Secure" } else { "" }
        )
    }

    async fn login(&self, addr: Option<SocketAddr>, headers: HeaderMap, body: Bytes) -> Response {
        let lang = self.lang(&headers);
        let t = self.tr(lang);
        let form = match Form::parse(&body, MAX_FORM) {
            Ok(f) => f,
            Err(e) => return self.error(&headers, "/desk/login", &e.into()),
        };
        let expected = cookie_value(&headers, &self.login_cookie());
        match (form.get("csrf"), expected) {
            (Some(a), Some(b)) if same_token(a, b) => {}
            _ => return self.error(&headers, "/desk/login", &DeskError::Csrf),
        }
        let name = form.get("name").unwrap_or("").trim().to_owned();
        let password = zeroize::Zeroizing::new(form.get("password").unwrap_or("").to_owned());
        let now = self.now();
        let keys = [
            format!("user:{name}"),
            format!(
                "ip:{}",
                addr.map_or("unknown".to_owned(), |a| a.ip().to_string())
            ),
        ];
        if let Some(wait) = keys.iter().find_map(|k| self.throttle.check(k, now).err()) {
            let minutes = (wait + 59) / 60;
            let msg = t.fill("login.throttled", &[("minutes", &minutes.to_string())]);
            tracing::warn!(code = %ReasonCode::LoginThrottled, "sign-in refused");
            return self.login_page(lang, Some(msg), name, false, StatusCode::TOO_MANY_REQUESTS);
        }
        // Hashing takes tens of milliseconds: keep it off the async workers.
        let accounts = self.accounts.clone();
        let (n, p) = (name.clone(), password.clone());
        let checked = tokio_blocking(move || accounts.authenticate(&n, &p)).await;
        match checked {
            Ok(account) => {
                keys.iter().for_each(|k| self.throttle.clear(k));
                let id =
                    self.sessions
                        .create(&account.name, &account.role, account.generation, now);
                tracing::info!(user = %account.name, "staff signed in");
                let mut r = see_other(&safe_next(form.get("next")));
                for c in [
                    self.cookie(self.config.cookie, &id, self.config.limits.absolute),
                    self.cookie(&self.login_cookie(), "", 0),
                ] {
                    if let Ok(v) = HeaderValue::from_str(&c) {
                        r.headers_mut().append(header::SET_COOKIE, v);
                    }
                }
                r
            }
            Err(AccountError::LoginFailed) => {
                keys.iter().for_each(|k| self.throttle.fail(k, now));
                tracing::warn!(code = %ReasonCode::LoginFailed, "sign-in refused");
                self.login_page(
                    lang,
                    Some(t.get("login.failed")),
                    name,
                    false,
                    StatusCode::UNAUTHORIZED,
                )
            }
            Err(e) => self.error(&headers, "/desk/login", &e.into()),
        }
    }

    fn logout(&self, headers: &HeaderMap, body: &Bytes) -> Result<Response, DeskError> {
        let (staff, _) = self.post(headers, body)?;
        self.sessions.end(&staff.session);
        tracing::info!(user = %staff.name, "staff signed out");
        let mut r = see_other("/desk/login");
        if let Ok(v) = HeaderValue::from_str(&self.cookie(self.config.cookie, "", 0)) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
        Ok(r)
    }

    /// The shared routes (`/desk/login`, `/desk/logout`, `/desk/lang/{code}`,
    /// `/desk/assets/{name}`), to merge with the service's pages.
    pub fn routes(self: &Arc<Self>) -> Router {
        async fn login_form(
            State(d): State<Arc<Desk>>,
            headers: HeaderMap,
            Query(q): Query<Vec<(String, String)>>,
        ) -> Response {
            let expired = q.iter().any(|(k, _)| k == "expired");
            d.login_page(
                d.lang(&headers),
                None,
                String::new(),
                expired,
                StatusCode::OK,
            )
        }
        async fn login(State(d): State<Arc<Desk>>, req: Request) -> Response {
            let addr = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0);
            let (parts, body) = req.into_parts();
            match axum::body::to_bytes(body, MAX_FORM).await {
                Ok(b) => d.login(addr, parts.headers, b).await,
                Err(_) => d.error(&parts.headers, "/desk/login", &FormError::TooLarge.into()),
            }
        }
        async fn logout(State(d): State<Arc<Desk>>, headers: HeaderMap, body: Bytes) -> Response {
            let r = d.logout(&headers, &body);
            d.answer(&headers, "/desk", r)
        }
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
            .route("/desk/login", get(login_form).post(login))
            .route("/desk/logout", axum::routing::post(logout))
            .route("/desk/lang/{code}", get(lang))
            .route("/desk/assets/{name}", get(asset))
            .with_state(self.clone())
            .layer(axum::middleware::from_fn(security_headers))
    }
}

async fn tokio_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AccountError> + Send + 'static,
) -> Result<T, AccountError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(AccountError::File {
            path: std::path::PathBuf::new(),
            cause: format!("the password check did not finish: {e}"),
        }),
    }
}

fn html_headers() -> [(header::HeaderName, HeaderValue); 2] {
    [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ]
}

/// The Content-Security-Policy of every page: scripts, styles and images from the service
/// itself only (no inline script or style), no framing, forms posted back to it.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Adds the security headers to every desk response (a middleware for any page router).
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_a_desk_path_only() {
        assert_eq!(safe_next(Some("/desk/queue?x=1")), "/desk/queue?x=1");
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/desk//x",
            "/other",
            "/desk\\x",
        ] {
            assert_eq!(safe_next(Some(bad)), "/desk", "{bad}");
        }
        assert_eq!(safe_next(None), "/desk");
    }
}
