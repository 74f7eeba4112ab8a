//! The portal's pages over its router (no socket): the checklist built from a real trust
//! bundle (an in-memory registry's, verified against its anchor), sessions and their cookie,
//! CSRF on every form, the tracker and its JSON, and agencies that cannot be reached (their
//! applicant API is on no port: every answer shown here is the portal's own).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use tower::ServiceExt;

use bizcred_portal::session::Limits;
use bizcred_portal::{pages, Portal};
use bizcred_repository::trust::TrustConfig;
use bizcred_schemas::CredentialType;
use bizcred_test_support::{Agency, InMemoryRegistry};

/// 2026-11-22T12:00:00Z.
const NOW: i64 = 1_795_348_800;

fn now() -> i64 {
    NOW
}

struct World {
    _dir: tempfile::TempDir,
    app: Router,
    portal: Arc<Portal>,
}

/// A registry that knows the four agencies, each at a loopback port nothing listens on.
fn world() -> World {
    world_with(Limits::default(), false)
}

fn world_with(limits: Limits, secure: bool) -> World {
    world_at(
        limits,
        secure,
        CredentialType::CertificateOfIncorporation,
        9,
    )
}

/// The world with the agency of `answering` at `port` on loopback.
fn world_at(limits: Limits, secure: bool, answering: CredentialType, port: u16) -> World {
    let t = NOW - 86_400;
    let mut reg = InMemoryRegistry::new("registry.bizcred.test/log", t, NOW);
    let names = [
        (
            CredentialType::CertificateOfIncorporation,
            "Ontario Business Registry",
            "Registre des entreprises de l'Ontario",
        ),
        (
            CredentialType::BusinessNumber,
            "Canada Revenue Agency",
            "Agence du revenu du Canada",
        ),
        (
            CredentialType::MunicipalBusinessLicence,
            "City of Toronto",
            "Ville de Toronto",
        ),
        (CredentialType::LiquorSalesLicence, "AGCO", "CAJO"),
    ];
    for (i, (ty, en, fr)) in names.iter().enumerate() {
        let port = if *ty == answering { port } else { 9 + i as u16 };
        let a = Agency::new(&format!("localhost%3A{port}"), t);
        reg.onboard(&a, en, fr, &[*ty], t);
    }
    let dir = tempfile::tempdir().expect("dir");
    Portal::init(
        dir.path(),
        TrustConfig {
            anchor: reg.anchor(),
            registry: "http://127.0.0.1:9".into(),
        },
    )
    .expect("init");
    // The bundle as `sync` keeps it.
    let bundle = reg.bundle(0, NOW - 3600, Vec::new());
    std::fs::write(dir.path().join("trust/bundles/000000.json"), bundle).expect("bundle");
    let portal = Arc::new(Portal::open(dir.path(), Arc::new(now), limits).expect("open"));
    World {
        app: pages::routes(portal.clone(), secure),
        portal,
        _dir: dir,
    }
}

struct Got {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

async fn send(app: &Router, req: Request<Body>) -> Got {
    let r = app.clone().oneshot(req).await.expect("answer");
    let status = r.status();
    let headers = r.headers().clone();
    let bytes = axum::body::to_bytes(r.into_body(), 4 << 20)
        .await
        .expect("body");
    Got {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn get(uri: &str, cookie: Option<&str>, lang: &str) -> Request<Body> {
    let mut b = Request::get(uri).header(header::ACCEPT_LANGUAGE, lang);
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::empty()).expect("request")
}

fn post(uri: &str, cookie: Option<&str>, form: &str) -> Request<Body> {
    let mut b =
        Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::from(form.to_owned())).expect("request")
}

fn post_in(lang: &str, uri: &str, cookie: Option<&str>, form: &str) -> Request<Body> {
    let mut r = post(uri, cookie, form);
    r.headers_mut().insert(
        header::ACCEPT_LANGUAGE,
        lang.parse().expect("a header value"),
    );
    r
}

/// The cookie `name` (`name=value`) a response set, checked to be `HttpOnly`,
/// `SameSite=Strict`, `Path=/`, without `Domain`, and `Secure` only with `secure`.
fn cookie_named(g: &Got, name: &str, secure: bool) -> Option<String> {
    let set = g
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))?
        .to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains("Domain"), "{set}");
    assert_eq!(set.contains("Secure"), secure, "{set}");
    Some(set.split(';').next().expect("name=value").to_owned())
}

/// The session cookie (`name=value`) a response set.
fn session_cookie(g: &Got) -> String {
    cookie_named(g, "bizcred_portal", false).expect("a session cookie")
}

/// The form cookie (`name=value`) a page without a session set.
fn form_cookie(g: &Got) -> String {
    cookie_named(g, "bizcred_portal_form", false).expect("a form cookie")
}

/// A session begun as a founder begins one: the form cookie of a page, then a first
/// application (to an agency nothing answers for: the session begins all the same).
async fn begin(w: &World) -> (String, String) {
    let g = send(&w.app, get("/tracker", None, "en")).await;
    let form = form_cookie(&g);
    let csrf = csrf_of(&g.body);
    let r = send(
        &w.app,
        post(
            "/apply",
            Some(&form),
            &format!("csrf={csrf}&type=certificate-of-incorporation"),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
    (session_cookie(&r), csrf)
}

/// The CSRF token of a page: the tracker's, or a form's.
fn csrf_of(body: &str) -> String {
    let (at, len) = body
        .find("data-csrf=\"")
        .map(|at| (at, 11))
        .or_else(|| body.find("name=\"csrf\" value=\"").map(|at| (at, 19)))
        .expect("the session's CSRF token");
    body[at + len..]
        .split('"')
        .next()
        .expect("value")
        .to_owned()
}

#[tokio::test]
async fn the_checklist_lists_the_four_steps_with_their_agencies() {
    let w = world();
    let g = send(&w.app, get("/", None, "en")).await;
    assert_eq!(g.status, StatusCode::OK);
    let _ = form_cookie(&g);
    assert!(
        cookie_named(&g, "bizcred_portal", false).is_none(),
        "reading a page begins no session"
    );
    assert!(w.portal.sessions.is_empty());
    for h in [
        "content-security-policy",
        "x-content-type-options",
        "referrer-policy",
    ] {
        assert!(g.headers.contains_key(h), "{h}");
    }
    assert!(!g.headers["content-security-policy"]
        .to_str()
        .expect("csp")
        .contains("unsafe-inline"));
    let b = &g.body;
    let order: Vec<usize> = [
        "Certificate of incorporation",
        "Business number registration",
        "Municipal business licence",
        "Liquor sales licence",
    ]
    .iter()
    .map(|n| b.find(n).unwrap_or_else(|| panic!("{n} in {b}")))
    .collect();
    assert!(order.windows(2).all(|p| p[0] < p[1]), "prerequisite order");
    for a in [
        "Ontario Business Registry",
        "Canada Revenue Agency",
        "City of Toronto",
        "AGCO",
    ] {
        assert!(b.contains(a), "{a}");
    }
    assert!(b.contains("Open: you may apply"));
    assert!(b.contains("Waiting for: Certificate of incorporation"));
    // Nothing answers at the agencies' ports: said so, with the code, and no form.
    assert!(b.contains("could not be reached"), "{b}");
    assert!(b.contains("UNREACHABLE"));
    assert!(!b.contains("action=\"/apply\""));
    assert!(b.contains("aria-live") || b.contains("data-poll"));
    assert!(!b.contains("⟦"), "every message is in the catalogue");
    let script = b
        .split("<script src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the script")
        .to_owned();
    assert!(!b.contains("<script>"), "no inline script");
    let s = send(&w.app, get(&script, None, "en")).await;
    assert_eq!(s.status, StatusCode::OK);
    assert!(s.body.contains("tracker.json"));
    assert!(s.headers[header::CACHE_CONTROL]
        .to_str()
        .expect("cache")
        .contains("immutable"));
    assert_eq!(
        send(&w.app, get("/scripts/portal-000000000000.js", None, "en"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn pages_are_in_french_with_the_registered_french_names() {
    let w = world();
    let g = send(&w.app, get("/", None, "fr-CA,fr;q=0.9")).await;
    assert_eq!(g.status, StatusCode::OK);
    assert!(g.body.contains("lang=\"fr-CA\""));
    assert!(g.body.contains("Certificat de constitution"));
    assert!(
        g.body.contains("Registre des entreprises de l&#39;Ontario")
            || g.body
                .contains("Registre des entreprises de l&#x27;Ontario"),
        "{}",
        g.body
    );
    assert!(g.body.contains("Ville de Toronto"));
    assert!(!g.body.contains("⟦"));
}

#[tokio::test]
async fn every_post_needs_the_sessions_csrf_token() {
    let w = world();
    // No session and no form cookie.
    let r = send(
        &w.app,
        post("/apply", None, "type=certificate-of-incorporation"),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("SESSION_REQUIRED"), "{}", r.body);
    // Before a session: the form cookie's token, without or with a wrong one.
    let g = send(&w.app, get("/tracker", None, "en")).await;
    let form = form_cookie(&g);
    for body in [
        "type=certificate-of-incorporation".to_owned(),
        "csrf=wrong&type=certificate-of-incorporation".to_owned(),
    ] {
        let r = send(&w.app, post("/apply", Some(&form), &body)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert!(r.body.contains("CSRF_REJECTED"), "{}", r.body);
    }
    assert!(
        w.portal.sessions.is_empty(),
        "a refused post begins no session"
    );
    // A session, without or with a wrong token.
    let (cookie, _) = begin(&w).await;
    for body in [
        "type=certificate-of-incorporation".to_owned(),
        "csrf=wrong&type=certificate-of-incorporation".to_owned(),
    ] {
        let r = send(&w.app, post("/apply", Some(&cookie), &body)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert!(r.body.contains("CSRF_REJECTED"), "{}", r.body);
    }
    let r = send(
        &w.app,
        post("/applications/0/withdraw", Some(&cookie), "csrf=x"),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("CSRF_REJECTED"));
    // Withdrawing needs a session: the form cookie begins none.
    let r = send(
        &w.app,
        post("/applications/0/withdraw", Some(&form), "csrf=x"),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("SESSION_REQUIRED"));
}

#[tokio::test]
async fn the_first_application_begins_the_session_with_the_forms_token() {
    let w = world();
    let g = send(&w.app, get("/", None, "en")).await;
    let form = form_cookie(&g);
    assert!(w.portal.sessions.is_empty());
    // Another page read keeps the form cookie's token.
    let g2 = send(&w.app, get("/tracker", Some(&form), "en")).await;
    assert!(g2.headers.get(header::SET_COOKIE).is_none());
    let csrf = csrf_of(&g2.body);
    assert_eq!(form.split_once('=').map(|x| x.1), Some(csrf.as_str()));
    let r = send(
        &w.app,
        post(
            "/apply",
            Some(&form),
            &format!("csrf={csrf}&type=certificate-of-incorporation"),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
    let cookie = session_cookie(&r);
    assert_eq!(w.portal.sessions.len(), 1);
    // The session's token is the one its pages already carried.
    let t = send(&w.app, get("/tracker", Some(&cookie), "en")).await;
    assert_eq!(csrf_of(&t.body), csrf);
    assert!(t.headers.get(header::SET_COOKIE).is_none());
}

#[tokio::test]
async fn a_secure_session_cookie_has_the_host_prefix() {
    let w = world_with(Limits::default(), true);
    let g = send(&w.app, get("/tracker", None, "en")).await;
    let form = cookie_named(&g, "__Host-bizcred_portal_form", true).expect("form cookie");
    let csrf = csrf_of(&g.body);
    let r = send(
        &w.app,
        post(
            "/apply",
            Some(&form),
            &format!("csrf={csrf}&type=certificate-of-incorporation"),
        ),
    )
    .await;
    let cookie = cookie_named(&r, "__Host-bizcred_portal", true).expect("session cookie");
    // The unprefixed name is no session under TLS.
    let plain = cookie.replacen("__Host-", "", 1);
    let r = send(
        &w.app,
        post(
            "/applications/0/withdraw",
            Some(&plain),
            &format!("csrf={csrf}"),
        ),
    )
    .await;
    assert!(r.body.contains("SESSION_REQUIRED"), "{}", r.body);
    let r = send(
        &w.app,
        post(
            "/applications/0/withdraw",
            Some(&cookie),
            &format!("csrf={csrf}"),
        ),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "the session's, with no application 0"
    );
}

#[tokio::test]
async fn a_full_table_refuses_a_new_session_rather_than_drop_a_founders_applications() {
    let w = world_with(
        Limits {
            max_sessions: 1,
            ..Limits::default()
        },
        false,
    );
    let (_, held) = w.portal.sessions.create(NOW, None).expect("room");
    let slot = w.portal.sessions.reserve(&held).expect("slot");
    let app = bizcred_portal::session::Application::new(
        "did:webvh:x:localhost%3A9".into(),
        "Ontario Business Registry".into(),
        "Registre des entreprises de l'Ontario".into(),
        "http://localhost:9".into(),
        CredentialType::CertificateOfIncorporation,
        "app-1".into(),
        "app-1.secret".into(),
        bizcred_portal::checklist::AppState::AwaitingApproval,
        None,
        NOW,
    );
    w.portal.sessions.keep(slot, app).expect("kept");
    for (lang, text) in [
        ("en", "serving as many founders"),
        ("fr", "Le guichet unique sert en ce moment"),
    ] {
        let g = send(&w.app, get("/tracker", None, lang)).await;
        let form = form_cookie(&g);
        let csrf = csrf_of(&g.body);
        let r = send(
            &w.app,
            post_in(
                lang,
                "/apply",
                Some(&form),
                &format!("csrf={csrf}&type=certificate-of-incorporation"),
            ),
        )
        .await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
        assert!(r.body.contains("PORTAL_SESSIONS_FULL"), "{}", r.body);
        assert!(r.body.contains(text), "{}", r.body);
        assert!(cookie_named(&r, "bizcred_portal", false).is_none());
    }
    assert_eq!(w.portal.sessions.len(), 1, "the founder's session is kept");
}

#[tokio::test]
async fn applying_to_an_unreachable_agency_says_so_on_the_form() {
    let w = world();
    let g = send(&w.app, get("/tracker", None, "en")).await;
    let cookie = form_cookie(&g);
    let csrf = csrf_of(&g.body);
    let form =
        format!("csrf={csrf}&type=certificate-of-incorporation&claim.legal_name=Caf%C3%A9+du+Nord");
    let r = send(&w.app, post("/apply", Some(&cookie), &form)).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
    let cookie = session_cookie(&r);
    assert!(r.body.contains("error-summary"), "{}", r.body);
    assert!(r.body.contains("UNREACHABLE"));
    assert!(r.body.contains("Error: open a restaurant"));
    // A step waiting for prerequisites takes applications too (the agency checks them
    // through the wallet): its agency is unreachable all the same.
    let form = format!("csrf={csrf}&type=liquor-sales-licence");
    let r = send(&w.app, post("/apply", Some(&cookie), &form)).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
    assert!(
        r.body.contains("id=\"summary-liquor-sales-licence\""),
        "{}",
        r.body
    );
    let form = format!("csrf={csrf}&type=no-such-type");
    let r = send(&w.app, post("/apply", Some(&cookie), &form)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("FORM_INVALID"));
}

#[tokio::test]
async fn the_tracker_and_its_json_show_only_the_sessions_applications() {
    let w = world();
    let g = send(&w.app, get("/tracker", None, "en")).await;
    assert_eq!(g.status, StatusCode::OK);
    assert!(g.body.contains("You have made no application yet."));
    assert!(g.body.contains("aria-live=\"polite\""));
    assert!(g.body.contains("href=\"/tracker\""), "the check-again link");
    let (cookie, _) = begin(&w).await;
    let j = send(&w.app, get("/tracker.json", Some(&cookie), "en")).await;
    assert_eq!(j.status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&j.body).expect("json");
    assert_eq!(v["rows"], serde_json::json!([]));
    assert!(v["steps"]
        .as_str()
        .expect("steps")
        .contains("certificate-of-incorporation:Open"));
    let j = send(&w.app, get("/tracker.json", None, "en")).await;
    assert_eq!(j.status, StatusCode::OK);
    assert!(
        j.headers.get(header::SET_COOKIE).is_none(),
        "polling starts no session"
    );
    for path in ["/applications/0", "/applications/x", "/nowhere"] {
        let r = send(&w.app, get(path, Some(&cookie), "en")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert!(r.body.contains("PAGE_NOT_FOUND"));
    }
    assert_eq!(w.portal.sessions.len(), 1);
}

#[tokio::test]
async fn a_page_opened_from_another_site_starts_no_session() {
    let w = world();
    let req = Request::get("/")
        .header("sec-fetch-site", "cross-site")
        .body(Body::empty())
        .expect("request");
    let g = send(&w.app, req).await;
    assert_eq!(g.status, StatusCode::OK);
    assert!(g.headers.get(header::SET_COOKIE).is_none());
    assert!(g.body.contains("Continue to your checklist"));
    assert!(w.portal.sessions.is_empty());
}

// ----------------------------------------------------------------------------------------
// Against an agency that answers: a fake applicant API on loopback, for the certificate of
// incorporation (its answers set by each test).

/// What the fake agency answers, and what it was sent.
struct Fake {
    /// The id of the next application it opens (`app-{opened}` when empty).
    id: String,
    /// How long opening an application takes.
    delay: std::time::Duration,
    /// Applications opened.
    opened: usize,
    /// The state its views answer (unless `states` names the application's), and their
    /// note and claims.
    state: String,
    states: std::collections::HashMap<String, String>,
    note: Option<String>,
    claims: serde_json::Value,
    /// Views asked for.
    views: usize,
    /// The application is gone: views answer 403 CAPABILITY_INVALID.
    gone: bool,
    /// The answer to `POST {follow_uri}/claims` when refused (status, body).
    claims_refusal: Option<(u16, serde_json::Value)>,
    /// The bodies sent to `POST {follow_uri}/claims`.
    claims_posted: Vec<serde_json::Value>,
    /// The capabilities withdrawn, with the bodies sent.
    withdrawn: Vec<(String, serde_json::Value)>,
}

type FakeState = Arc<std::sync::Mutex<Fake>>;

fn fake_view(f: &Fake, id: &str) -> serde_json::Value {
    serde_json::json!({
        "application_id": id,
        "credential_configuration_id": "certificate-of-incorporation",
        "state": f.states.get(id).unwrap_or(&f.state),
        "created": NOW - 60,
        "updated": NOW - 30,
        "claims": f.claims,
        "verified_claims": [],
        "applicant_claims": ["legal_name"],
        "note": f.note,
        "offer": null,
        "flags": [],
        "history": [],
    })
}

/// The claim the founder states for `ty` in these tests.
fn claim_of(ty: CredentialType) -> &'static str {
    match ty {
        CredentialType::BusinessNumber => "operating_name",
        _ => "legal_name",
    }
}

/// Starts the fake agency of `ty`; answers its port and its state.
async fn fake_agency(ty: CredentialType) -> (u16, FakeState) {
    use axum::extract::{Path as P, State as S};
    use axum::routing::{get, post};
    use axum::Json;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let port = listener.local_addr().expect("addr").port();
    let state: FakeState = Arc::new(std::sync::Mutex::new(Fake {
        id: String::new(),
        delay: std::time::Duration::ZERO,
        opened: 0,
        state: "awaiting_approval".into(),
        states: std::collections::HashMap::new(),
        note: None,
        claims: serde_json::json!({}),
        views: 0,
        gone: false,
        claims_refusal: None,
        claims_posted: Vec::new(),
        withdrawn: Vec::new(),
    }));
    let base = format!("http://localhost:{port}");
    let types = serde_json::json!({
        "credential_issuer": base,
        "types": [{
            "credential_configuration_id": ty.slug(),
            "vct": ty.vct(),
            "prerequisites": ty.prerequisites().iter().map(|p| p.vct()).collect::<Vec<_>>(),
            "applicant_claims": [claim_of(ty)],
        }],
    });
    let id_of = |cap: &str| cap.split('.').next().unwrap_or("").to_owned();
    let app = Router::new()
        .route("/applicant/types", get(move || async move { Json(types) }))
        .route(
            "/applicant/applications",
            post(|S(st): S<FakeState>| async move {
                let delay = st.lock().expect("fake").delay;
                tokio::time::sleep(delay).await;
                let mut f = st.lock().expect("fake");
                f.opened += 1;
                let id = if f.id.is_empty() {
                    format!("app-{}", f.opened)
                } else {
                    f.id.clone()
                };
                (
                    StatusCode::CREATED,
                    Json(serde_json::json!({
                        "application_id": id,
                        "capability": format!("{id}.secret"),
                        "state": "awaiting_approval",
                    })),
                )
            }),
        )
        .route(
            "/applicant/{cap}",
            get(move |S(st): S<FakeState>, P(cap): P<String>| async move {
                let mut f = st.lock().expect("fake");
                f.views += 1;
                if f.gone {
                    return (
                        StatusCode::FORBIDDEN,
                        Json(serde_json::json!({"error": "invalid_token",
                            "error_description": "No application answers to this link.",
                            "code": "CAPABILITY_INVALID"})),
                    );
                }
                (StatusCode::OK, Json(fake_view(&f, &id_of(&cap))))
            }),
        )
        .route(
            "/applicant/{cap}/claims",
            post(
                move |S(st): S<FakeState>,
                      P(cap): P<String>,
                      Json(body): Json<serde_json::Value>| async move {
                    let mut f = st.lock().expect("fake");
                    f.claims_posted.push(body.clone());
                    if let Some((status, refusal)) = f.claims_refusal.clone() {
                        return (StatusCode::from_u16(status).expect("status"), Json(refusal));
                    }
                    f.claims = body["claims"].clone();
                    f.state = "awaiting_approval".into();
                    (StatusCode::OK, Json(fake_view(&f, &id_of(&cap))))
                },
            ),
        )
        .route(
            "/applicant/{cap}/withdraw",
            post(
                move |S(st): S<FakeState>,
                      P(cap): P<String>,
                      Json(body): Json<serde_json::Value>| async move {
                    let mut f = st.lock().expect("fake");
                    f.withdrawn.push((cap.clone(), body));
                    f.state = "withdrawn".into();
                    Json(fake_view(&f, &id_of(&cap)))
                },
            ),
        )
        .with_state(state.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, state)
}

/// States polled are reused for a quarter of a second: waits them out.
async fn after_poll_cache() {
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
}

/// A world whose Ontario Business Registry answers, and a session holding no application
/// yet (a first post of an unknown type begins it); answers the cookie and token.
async fn answering_world() -> (World, FakeState, String, String) {
    let ty = CredentialType::CertificateOfIncorporation;
    let (port, fake) = fake_agency(ty).await;
    let w = world_at(Limits::default(), false, ty, port);
    let g = send(&w.app, get("/tracker", None, "en")).await;
    let form = form_cookie(&g);
    let csrf = csrf_of(&g.body);
    let r = send(
        &w.app,
        post("/apply", Some(&form), &format!("csrf={csrf}&type=nope")),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let cookie = session_cookie(&r);
    (w, fake, cookie, csrf)
}

fn apply_form(csrf: &str) -> String {
    format!("csrf={csrf}&type=certificate-of-incorporation&claim.legal_name=Caf%C3%A9+du+Nord")
}

/// The tracker's rows as JSON.
async fn rows(w: &World, cookie: &str, lang: &str) -> Vec<serde_json::Value> {
    let j = send(&w.app, get("/tracker.json", Some(cookie), lang)).await;
    let v: serde_json::Value = serde_json::from_str(&j.body).expect("json");
    v["rows"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn the_first_application_changes_the_session_id_and_concurrent_applies_open_one() {
    let (w, fake, cookie, csrf) = answering_world().await;
    let r = send(&w.app, post("/apply", Some(&cookie), &apply_form(&csrf))).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.headers[header::LOCATION], "/applications/0");
    let rotated = session_cookie(&r);
    assert_ne!(rotated, cookie);
    assert!(
        rows(&w, &cookie, "en").await.is_empty(),
        "the old id no longer works"
    );
    assert_eq!(rows(&w, &rotated, "en").await.len(), 1);
    assert_eq!(w.portal.sessions.len(), 1);
    // The agency refuses it: the step is open again. Two posts at once, each slow at the
    // agency: one application is opened, the other post finds the step under way.
    {
        let mut f = fake.lock().expect("fake");
        f.states.insert("app-1".into(), "refused".into());
        f.delay = std::time::Duration::from_millis(300);
    }
    after_poll_cache().await;
    let form = apply_form(&csrf);
    let (a, b) = tokio::join!(
        send(&w.app, post("/apply", Some(&rotated), &form)),
        send(&w.app, post("/apply", Some(&rotated), &form)),
    );
    let mut to: Vec<String> = [&a, &b]
        .iter()
        .map(|g| {
            assert_eq!(g.status, StatusCode::SEE_OTHER, "{}", g.body);
            assert!(
                g.headers.get(header::SET_COOKIE).is_none(),
                "only the first changes it"
            );
            g.headers[header::LOCATION]
                .to_str()
                .expect("location")
                .to_owned()
        })
        .collect();
    to.sort();
    assert_eq!(to, vec!["/", "/applications/1"]);
    assert_eq!(fake.lock().expect("fake").opened, 2);
    assert_eq!(rows(&w, &rotated, "en").await.len(), 2);
}

#[tokio::test]
async fn an_application_the_portal_cannot_keep_is_withdrawn_at_the_agency() {
    let (w, fake, cookie, csrf) = answering_world().await;
    // An id longer than the portal takes: refused, not cut, and withdrawn.
    fake.lock().expect("fake").id = "x".repeat(201);
    let r = send(&w.app, post("/apply", Some(&cookie), &apply_form(&csrf))).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
    assert!(r.body.contains("APPLICANT_API_MALFORMED"), "{}", r.body);
    assert!(rows(&w, &cookie, "en").await.is_empty());
    let f = fake.lock().expect("fake");
    assert_eq!(f.opened, 1);
    assert_eq!(f.withdrawn.len(), 1, "nothing is left behind at the agency");
    assert_eq!(f.withdrawn[0].0, format!("{}.secret", "x".repeat(201)));
    assert!(
        f.withdrawn[0].1["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{:?}",
        f.withdrawn[0].1
    );
}

#[tokio::test]
async fn an_application_the_agency_no_longer_holds_is_final_and_the_step_opens_again() {
    let (w, fake, cookie, csrf) = answering_world().await;
    let r = send(&w.app, post("/apply", Some(&cookie), &apply_form(&csrf))).await;
    let cookie = session_cookie(&r);
    fake.lock().expect("fake").gone = true;
    after_poll_cache().await;
    let rows_en = rows(&w, &cookie, "en").await;
    assert_eq!(rows_en[0]["state"], "removed");
    assert_eq!(rows_en[0]["state_text"], "No longer held by the agency");
    assert!(rows_en[0]["withdraw"].is_null());
    assert!(
        !rows_en[0].to_string().contains("unreachable"),
        "{}",
        rows_en[0]
    );
    let asked = fake.lock().expect("fake").views;
    after_poll_cache().await;
    let rows_fr = rows(&w, &cookie, "fr").await;
    assert_eq!(
        rows_fr[0]["state_text"],
        "N'est plus détenue par l'organisme"
    );
    let g = send(&w.app, get("/", Some(&cookie), "en")).await;
    assert_eq!(fake.lock().expect("fake").views, asked, "not asked again");
    let step = g
        .body
        .split("id=\"step-certificate-of-incorporation\"")
        .nth(1)
        .and_then(|b| b.split("id=\"step-business-number\"").next())
        .expect("the step")
        .to_owned();
    assert!(step.contains("Open: you may apply"), "{step}");
    assert!(step.contains("action=\"/apply\""), "{step}");
    assert!(step.contains("No longer held by the agency"), "{step}");
    // Applying again opens a new one.
    let r = send(&w.app, post("/apply", Some(&cookie), &apply_form(&csrf))).await;
    assert_eq!(r.headers[header::LOCATION], "/applications/1");
}

#[tokio::test]
async fn the_founder_answers_the_agencys_request_for_more_information() {
    let (w, fake, cookie, csrf) = answering_world().await;
    let r = send(&w.app, post("/apply", Some(&cookie), &apply_form(&csrf))).await;
    let cookie = session_cookie(&r);
    // Under review: no form.
    let g = send(&w.app, get("/applications/0", Some(&cookie), "en")).await;
    assert!(!g.body.contains("/applications/0/claims"), "{}", g.body);
    {
        let mut f = fake.lock().expect("fake");
        f.state = "changes_requested".into();
        f.note = Some("Give the name exactly as on the articles.".into());
        f.claims = serde_json::json!({"legal_name": "Cafe du Nord"});
    }
    after_poll_cache().await;
    let g = send(&w.app, get("/applications/0", Some(&cookie), "en")).await;
    let b = &g.body;
    assert!(b.contains("More information requested"), "{b}");
    assert!(
        b.contains("Give the name exactly as on the articles."),
        "{b}"
    );
    assert!(b.contains("action=\"/applications/0/claims\""), "{b}");
    assert!(
        b.contains("id=\"certificate-of-incorporation--legal_name\" name=\"claim.legal_name\" value=\"Cafe du Nord\""),
        "pre-filled from the view's claims: {b}"
    );
    assert!(b.contains("Send to the agency"));
    assert!(!b.contains("name=\"type\""), "{b}");
    // CSRF.
    let r = send(
        &w.app,
        post(
            "/applications/0/claims",
            Some(&cookie),
            "csrf=wrong&claim.legal_name=x",
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A field left blank: the form says so, nothing is sent.
    let r = send(
        &w.app,
        post(
            "/applications/0/claims",
            Some(&cookie),
            &format!("csrf={csrf}&claim.legal_name="),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body.contains("error-summary"));
    assert!(fake.lock().expect("fake").claims_posted.is_empty());
    // The agency refuses the answer: its sentence and code, tied to the field.
    fake.lock().expect("fake").claims_refusal = Some((
        400,
        serde_json::json!({"error": "invalid_request",
            "error_description": "/legal_name: is shorter than 3 characters",
            "code": "CLAIMS_INVALID"}),
    ));
    let r = send(
        &w.app,
        post(
            "/applications/0/claims",
            Some(&cookie),
            &format!("csrf={csrf}&claim.legal_name=C"),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body.contains("CLAIMS_INVALID"), "{}", r.body);
    assert!(r.body.contains("is shorter than 3 characters"));
    assert!(r
        .body
        .contains("href=\"#certificate-of-incorporation--legal_name\""));
    assert!(
        r.body.contains("value=\"C\""),
        "what was posted is shown again"
    );
    // Accepted: sent as the applicant API says, and back to the application.
    fake.lock().expect("fake").claims_refusal = None;
    let r = send(
        &w.app,
        post(
            "/applications/0/claims",
            Some(&cookie),
            &format!("csrf={csrf}&claim.legal_name=Caf%C3%A9+du+Nord+Inc."),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.headers[header::LOCATION], "/applications/0");
    assert_eq!(
        fake.lock().expect("fake").claims_posted.last(),
        Some(&serde_json::json!({"claims": {"legal_name": "Café du Nord Inc."}}))
    );
    let g = send(&w.app, get("/applications/0", Some(&cookie), "en")).await;
    assert!(g.body.contains("Under review"), "{}", g.body);
    assert!(!g.body.contains("/applications/0/claims"));
}

#[tokio::test]
async fn a_step_waiting_for_prerequisites_offers_its_form_with_what_the_wallet_must_hold() {
    let ty = CredentialType::BusinessNumber;
    let (port, fake) = fake_agency(ty).await;
    let w = world_at(Limits::default(), false, ty, port);
    for (lang, badge, note) in [
        (
            "en",
            "Waiting for: Certificate of incorporation",
            "Apply now if your wallet already holds: Certificate of incorporation",
        ),
        (
            "fr",
            "En attente de",
            "Présentez votre demande maintenant si votre portefeuille contient déjà : Certificat de constitution",
        ),
    ] {
        let g = send(&w.app, get("/", None, lang)).await;
        let step = g
            .body
            .split("id=\"step-business-number\"")
            .nth(1)
            .and_then(|b| b.split("id=\"step-municipal-business-licence\"").next())
            .expect("the step")
            .to_owned();
        assert!(step.contains(badge), "{step}");
        assert!(step.contains(note), "{step}");
        assert!(step.contains("action=\"/apply\""), "{step}");
        assert!(step.contains("id=\"business-number--operating_name\""), "{step}");
        assert!(!step.contains("Open: you may apply"), "{step}");
    }
    let g = send(&w.app, get("/", None, "en")).await;
    let form = form_cookie(&g);
    let csrf = csrf_of(&g.body);
    let r = send(
        &w.app,
        post(
            "/apply",
            Some(&form),
            &format!("csrf={csrf}&type=business-number&claim.operating_name=Caf%C3%A9+du+Nord"),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.headers[header::LOCATION], "/applications/0");
    assert_eq!(fake.lock().expect("fake").opened, 1);
    // Under way: the step takes no other application.
    let cookie = session_cookie(&r);
    let r = send(
        &w.app,
        post(
            "/apply",
            Some(&cookie),
            &format!("csrf={csrf}&type=business-number&claim.operating_name=Again"),
        ),
    )
    .await;
    assert_eq!(r.headers[header::LOCATION], "/");
    assert_eq!(fake.lock().expect("fake").opened, 1);
}
