//! The agency desk over HTTP: sign-in, sessions (cookie attributes, idle expiry, another
//! service's cookie), CSRF, roles, the approval race, escaping, bad input and French pages. The
//! browser journey (tests/tests/desk.rs) drives the same pages in Chromium.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use bizcred_issuer::store::AppStatus;
use bizcred_issuer::{Actor, Config, Issuer, StaffRole};
use serde_json::{Map, Value};
use tower::ServiceExt;
use zeroize::Zeroizing;

const START: i64 = 1_790_000_000;
const PW: &str = "correct horse battery staple";
const URL: &str = "http://localhost:18099";

struct Fx {
    _dir: tempfile::TempDir,
    issuer: Arc<Issuer>,
    app: Router,
    time: Arc<AtomicI64>,
}

fn fixture() -> Fx {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let cfg = format!(
        "[agency]\nname_en = \"OBR\"\nname_fr = \"REO\"\n[server]\npublic_url = \"{URL}\"\nlisten = \"127.0.0.1:18099\"\n[storage]\npath = {:?}\n[registry]\nurl = \"http://127.0.0.1:9\"\norigin = \"registry.test/log\"\nlog_key = \"z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG\"\n[issuance]\ntypes = [\"certificate-of-incorporation\"]\n[status]\nlist_size = 1024\n[admin]\ntoken_sha256 = [\"{}\"]\n",
        data.to_string_lossy(),
        "00".repeat(32)
    );
    let config = Config::parse(&cfg).expect("config");
    let time = Arc::new(AtomicI64::new(START));
    let t = time.clone();
    let (issuer, _) = Issuer::create(config, Zeroizing::new("pw".into()), START - 10, move || {
        t.load(Ordering::SeqCst)
    })
    .expect("create");
    let issuer = Arc::new(issuer);
    let desk = bizcred_issuer::desk::new_desk(
        URL,
        &data,
        issuer.clock.clone(),
        false,
        bizcred_web::SessionLimits::default(),
    )
    .expect("catalogues");
    for (name, role) in [
        ("clara", "clerk"),
        ("alain", "approver"),
        ("ada", "administrator"),
    ] {
        desk.accounts.add(name, role, PW, START).expect("account");
    }
    let app = bizcred_issuer::service::app(issuer.clone())
        .merge(bizcred_issuer::desk::routes(issuer.clone(), Arc::new(desk)));
    Fx {
        _dir: dir,
        issuer,
        app,
        time,
    }
}

const COOKIE: &str = "bizcred_issuer_desk_18099";

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

async fn send(app: &Router, req: Request<Body>) -> Answer {
    let r = app.clone().oneshot(req).await.expect("answer");
    let status = r.status();
    let headers = r.headers().clone();
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 22)
        .await
        .expect("body");
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::get(path);
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::empty()).expect("request")
}

fn post(path: &str, cookie: Option<&str>, form: &[(&str, &str)]) -> Request<Body> {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let mut b =
        Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::from(body)).expect("request")
}

/// The value of the first `name="csrf" value="…"` in a page.
fn csrf(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..].split('"').next().expect("value").to_owned()
}

fn set_cookie(a: &Answer, name: &str) -> Option<String> {
    a.headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().expect("pair").to_owned()
}

async fn sign_in_as(app: &Router, name: &str, password: &str) -> Answer {
    let page = send(app, get("/desk/login", None)).await;
    assert_eq!(page.status, StatusCode::OK);
    let pre = pair(&set_cookie(&page, &format!("{COOKIE}_login")).expect("login cookie"));
    send(
        app,
        post(
            "/desk/login",
            Some(&pre),
            &[
                ("csrf", &csrf(&page.body)),
                ("name", name),
                ("password", password),
            ],
        ),
    )
    .await
}

/// Signs in; the session cookie (`name=value`).
async fn sign_in(app: &Router, name: &str) -> String {
    let a = sign_in_as(app, name, PW).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    pair(&set_cookie(&a, COOKIE).expect("session cookie"))
}

fn incorporation() -> Map<String, Value> {
    match serde_json::from_str(include_str!(
        "../../schemas/examples/valid/certificate-of-incorporation.json"
    )) {
        Ok(Value::Object(m)) => m,
        _ => panic!("example claims"),
    }
}

fn open_application(f: &Fx) -> String {
    let (app, _) = f
        .issuer
        .create_application(
            &Actor::staff("clara", StaffRole::Clerk),
            "certificate-of-incorporation",
            incorporation(),
        )
        .expect("open");
    app.id
}

#[tokio::test]
async fn sign_in_sets_a_strict_cookie_and_a_wrong_password_is_refused() {
    let f = fixture();
    let bad = sign_in_as(&f.app, "clara", "not the password").await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert!(bad.body.contains("password is wrong"), "{}", bad.body);
    assert!(set_cookie(&bad, COOKIE).is_none());
    let ok = sign_in_as(&f.app, "clara", PW).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    let c = set_cookie(&ok, COOKIE).expect("cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/desk"] {
        assert!(c.contains(attr), "{c}");
    }
    assert!(!c.contains("Secure"), "no TLS here: {c}");
    let queue = send(&f.app, get("/desk", Some(&pair(&c)))).await;
    assert_eq!(queue.status, StatusCode::OK);
    let csp = queue.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("csp");
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    assert_eq!(queue.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
}

#[tokio::test]
async fn no_session_an_idle_session_and_another_services_cookie_go_to_sign_in() {
    let f = fixture();
    let none = send(&f.app, get("/desk", None)).await;
    assert_eq!(none.status, StatusCode::SEE_OTHER);
    assert_eq!(none.headers[header::LOCATION], "/desk/login?expired=1");
    let cookie = sign_in(&f.app, "clara").await;
    let value = cookie.split_once('=').expect("pair").1;
    let other = format!("bizcred_verifier_desk={value}");
    let a = send(&f.app, get("/desk", Some(&other))).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "another service's cookie");
    assert_eq!(
        send(&f.app, get("/desk", Some(&cookie))).await.status,
        StatusCode::OK
    );
    // Sixteen minutes without a request: the session has ended.
    f.time.fetch_add(16 * 60, Ordering::SeqCst);
    let idle = send(&f.app, get("/desk", Some(&cookie))).await;
    assert_eq!(idle.status, StatusCode::SEE_OTHER);
    let login = send(&f.app, get("/desk/login?expired=1", None)).await;
    assert!(login.body.contains("Your session has ended"));
}

#[tokio::test]
async fn forms_need_the_sessions_token_and_roles_are_checked_by_the_library() {
    let f = fixture();
    let id = open_application(&f);
    let path = format!("/desk/applications/{id}");
    let clerk = sign_in(&f.app, "clara").await;
    let page = send(&f.app, get(&path, Some(&clerk))).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Ready for review"));
    assert!(
        !page.body.contains("id=\"approve\""),
        "no approve button for a clerk"
    );
    let token = csrf(&page.body);

    let no_token = send(&f.app, post(&path, Some(&clerk), &[("op", "approve")])).await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN);
    assert!(no_token.body.contains("CSRF_REJECTED"), "{}", no_token.body);
    let wrong = send(
        &f.app,
        post(
            &path,
            Some(&clerk),
            &[("csrf", "forged"), ("op", "approve")],
        ),
    )
    .await;
    assert!(wrong.body.contains("CSRF_REJECTED"));

    let forbidden = send(
        &f.app,
        post(&path, Some(&clerk), &[("csrf", &token), ("op", "approve")]),
    )
    .await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    assert!(
        forbidden.body.contains("STAFF_FORBIDDEN"),
        "{}",
        forbidden.body
    );
    let refused_without_reason = send(
        &f.app,
        post(
            &path,
            Some(&sign_in(&f.app, "alain").await),
            &[("csrf", &token), ("op", "refuse"), ("reason", " ")],
        ),
    )
    .await;
    // The approver's own session token is another: the clerk's is refused on it.
    assert!(refused_without_reason.body.contains("CSRF_REJECTED"));
    assert_eq!(
        f.issuer.application(&id).expect("app").status,
        AppStatus::AwaitingApproval
    );
    let staff = send(&f.app, get("/desk/staff", Some(&clerk))).await;
    assert_eq!(staff.status, StatusCode::FORBIDDEN);
    assert!(staff.body.contains("STAFF_FORBIDDEN"));
}

#[tokio::test]
async fn approval_shows_the_offer_once_and_a_second_approval_is_told_it_lost() {
    let f = fixture();
    let id = open_application(&f);
    let path = format!("/desk/applications/{id}");
    let (a, b) = (sign_in(&f.app, "alain").await, sign_in(&f.app, "ada").await);
    let ta = csrf(&send(&f.app, get(&path, Some(&a))).await.body);
    let tb = csrf(&send(&f.app, get(&path, Some(&b))).await.body);
    let won = send(
        &f.app,
        post(&path, Some(&a), &[("csrf", &ta), ("op", "approve")]),
    )
    .await;
    assert_eq!(won.status, StatusCode::OK, "{}", won.body);
    assert!(won.body.contains("openid-credential-offer://"));
    let code = won.body.split("id=\"tx-code\">").nth(1).expect("tx code");
    assert!(
        code[..6].bytes().all(|c| c.is_ascii_digit()),
        "{}",
        &code[..6]
    );
    let lost = send(
        &f.app,
        post(&path, Some(&b), &[("csrf", &tb), ("op", "approve")]),
    )
    .await;
    assert_eq!(lost.status, StatusCode::CONFLICT);
    assert!(
        lost.body.contains("APPLICATION_NOT_AWAITING_APPROVAL"),
        "{}",
        lost.body
    );
    assert!(lost.body.contains("someone else acted on it first"));
    let refuse = send(
        &f.app,
        post(
            &path,
            Some(&b),
            &[("csrf", &tb), ("op", "refuse"), ("reason", "late")],
        ),
    )
    .await;
    assert_eq!(refuse.status, StatusCode::CONFLICT);
    assert_eq!(
        f.issuer.application(&id).expect("app").status,
        AppStatus::Offered
    );
    // The audit log names who approved.
    let audit = send(&f.app, get("/desk/audit", Some(&a))).await;
    assert!(audit.body.contains("alain") && audit.body.contains("verifies"));
}

#[tokio::test]
async fn claims_are_checked_next_to_their_field_and_markup_is_escaped() {
    let f = fixture();
    let id = open_application(&f);
    let path = format!("/desk/applications/{id}");
    let c = sign_in(&f.app, "clara").await;
    let token = csrf(&send(&f.app, get(&path, Some(&c))).await.body);
    let bad = send(
        &f.app,
        post(
            &path,
            Some(&c),
            &[
                ("csrf", &token),
                ("op", "save"),
                ("claim.corporation_number", "12AB"),
                ("claim.legal_name", "<script>alert(1)</script> Ltd."),
            ],
        ),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.body.contains("id=\"error-corporation_number\""),
        "{}",
        bad.body
    );
    assert!(bad.body.contains("aria-invalid=\"true\""));
    assert!(!bad.body.contains("<script>alert"));
    assert!(
        bad.body
            .contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{}",
        bad.body
    );
    // In French, the field's error comes from the catalogue by its reason code.
    let fr = send(
        &f.app,
        post(
            &path,
            Some(&format!("{c}; bizcred_lang=fr")),
            &[
                ("csrf", &token),
                ("op", "save"),
                ("claim.corporation_number", "12AB"),
            ],
        ),
    )
    .await;
    assert!(
        fr.body.contains("Cette valeur n’a pas la forme requise."),
        "{}",
        fr.body
    );
    // Nothing was saved.
    let held = f.issuer.application(&id).expect("app");
    assert_ne!(held.claims["corporation_number"], "12AB");
    let ok = send(
        &f.app,
        post(
            &path,
            Some(&c),
            &[
                ("csrf", &token),
                ("op", "save"),
                ("claim.legal_name", "<b>Jennifer</b> Ventures Inc."),
            ],
        ),
    )
    .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    let page = send(&f.app, get(&path, Some(&c))).await;
    assert!(page.body.contains("The claims were saved."));
    assert!(page.body.contains("&#60;b&#62;Jennifer&#60;/b&#62;"));
    assert!(!page.body.contains("<b>Jennifer"));
}

#[tokio::test]
async fn oversized_forms_throttled_sign_ins_and_french_pages() {
    let f = fixture();
    let c = sign_in(&f.app, "clara").await;
    let big = "x".repeat(70 * 1024);
    let a = send(
        &f.app,
        post("/desk/applications", Some(&c), &[("type", &big)]),
    )
    .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(a.body.contains("FORM_TOO_LARGE"), "{}", a.body);

    for _ in 0..5 {
        let bad = sign_in_as(&f.app, "alain", "wrong wrong wrong").await;
        assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    }
    let throttled = sign_in_as(&f.app, "alain", PW).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(throttled.body.contains("Too many failed attempts"));

    let fr = send(
        &f.app,
        Request::get("/desk")
            .header(header::COOKIE, &c)
            .header(header::ACCEPT_LANGUAGE, "fr-CA,fr;q=0.9,en;q=0.5")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert!(fr.body.contains("<html lang=\"fr-CA\">"));
    assert!(fr.body.contains("File de travail"));
    let chosen = send(&f.app, get("/desk", Some(&format!("{c}; bizcred_lang=fr")))).await;
    assert!(chosen.body.contains("File de travail"));
    assert!(
        !chosen.body.contains('⟦'),
        "every message is in the catalogue"
    );
}

#[tokio::test]
async fn administrators_manage_staff_and_a_disabled_account_is_signed_out() {
    let f = fixture();
    let admin = sign_in(&f.app, "ada").await;
    let clerk = sign_in(&f.app, "clara").await;
    let token = csrf(&send(&f.app, get("/desk/staff", Some(&admin))).await.body);
    let added = send(
        &f.app,
        post(
            "/desk/staff",
            Some(&admin),
            &[
                ("csrf", &token),
                ("op", "add"),
                ("name", "noor"),
                ("role", "clerk"),
                ("password", PW),
            ],
        ),
    )
    .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER);
    sign_in(&f.app, "noor").await;
    let disabled = send(
        &f.app,
        post(
            "/desk/staff",
            Some(&admin),
            &[("csrf", &token), ("op", "disable"), ("name", "clara")],
        ),
    )
    .await;
    assert_eq!(disabled.status, StatusCode::SEE_OTHER);
    assert_eq!(
        send(&f.app, get("/desk", Some(&clerk))).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        sign_in_as(&f.app, "clara", PW).await.status,
        StatusCode::UNAUTHORIZED
    );
    let audit = f.issuer.audit_report(10).expect("audit");
    assert!(audit.entries.iter().any(|e| e.event == "staff_disabled"));
}
