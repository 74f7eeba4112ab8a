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
        let a = Agency::new(&format!("localhost%3A{}", 9 + i), t);
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
    let portal =
        Arc::new(Portal::open(dir.path(), Arc::new(now), Limits::default()).expect("open"));
    World {
        app: pages::routes(portal.clone(), false),
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

/// The session cookie (`name=value`) a response set.
fn session_cookie(g: &Got) -> String {
    let set = g
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("bizcred_portal="))
        .expect("a session cookie")
        .to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains("Secure"), "no TLS here: {set}");
    set.split(';').next().expect("name=value").to_owned()
}

fn csrf_of(body: &str) -> String {
    let at = body.find("data-csrf=\"").expect("the session's CSRF token") + 11;
    body[at..].split('"').next().expect("value").to_owned()
}

#[tokio::test]
async fn the_checklist_lists_the_four_steps_with_their_agencies() {
    let w = world();
    let g = send(&w.app, get("/", None, "en")).await;
    assert_eq!(g.status, StatusCode::OK);
    let _ = session_cookie(&g);
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
    let g = send(&w.app, get("/tracker", None, "en")).await;
    let cookie = session_cookie(&g);
    // No session at all.
    let r = send(
        &w.app,
        post("/apply", None, "type=certificate-of-incorporation"),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("SESSION_REQUIRED"), "{}", r.body);
    // A session, without or with a wrong token.
    for form in [
        "type=certificate-of-incorporation".to_owned(),
        "csrf=wrong&type=certificate-of-incorporation".to_owned(),
    ] {
        let r = send(&w.app, post("/apply", Some(&cookie), &form)).await;
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
}

#[tokio::test]
async fn applying_to_an_unreachable_agency_says_so_on_the_form() {
    let w = world();
    let g = send(&w.app, get("/tracker", None, "en")).await;
    let cookie = session_cookie(&g);
    let csrf = csrf_of(&g.body);
    let form =
        format!("csrf={csrf}&type=certificate-of-incorporation&claim.legal_name=Caf%C3%A9+du+Nord");
    let r = send(&w.app, post("/apply", Some(&cookie), &form)).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
    assert!(r.body.contains("error-summary"), "{}", r.body);
    assert!(r.body.contains("UNREACHABLE"));
    assert!(r.body.contains("Error: open a restaurant"));
    // A step that is not open takes no application.
    let form = format!("csrf={csrf}&type=liquor-sales-licence");
    let r = send(&w.app, post("/apply", Some(&cookie), &form)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers[header::LOCATION], "/");
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
    let cookie = session_cookie(&g);
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
