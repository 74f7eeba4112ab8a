//! The bank page over HTTP, against the real `service::app` on a loopback listener: sign-in,
//! sessions, CSRF, roles, languages, escaping, bounds, and a whole verification (start, the
//! wallet answers, the verdict) and an uploaded presentation file, with the shared fixtures.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use rand_core::OsRng;
use reqwest::header::{HeaderMap, ACCEPT_LANGUAGE, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::{json, Value};

use bizcred_core::time::Clock;
use bizcred_schemas::ReasonCode;
use bizcred_verifier::service::{app, ServiceConfig, ServiceState};
use bizcred_verifier::staff::{self, Actor, Role};
use bizcred_verifier::store::VerifierDir;

mod common;

use common::world::{loan_policy, nonce_of, World, NOW};

const ADMIN_PW: &str = "administrator password";
const OFFICER_PW: &str = "officer password 1";

/// A clock the test moves.
#[derive(Debug)]
struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A verifier serving on loopback, with an administrator `ada` and an officer `olu`.
struct Bank {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    base: String,
    clock: Arc<TestClock>,
    world: World,
}

async fn bank_with(world: World, registry: Option<String>, synced: bool) -> Bank {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (dir, _token) = VerifierDir::init(
        tmp.path(),
        world.reg.anchor(),
        registry,
        b"test pass",
        &mut OsRng,
    )
    .expect("init");
    if synced {
        dir.store_bundle(&world.bundle(), NOW)
            .expect("store")
            .expect("accepted");
    }
    let acc = staff::accounts(tmp.path());
    staff::add(
        &acc,
        &Actor::Operator,
        "ada",
        Role::Administrator,
        ADMIN_PW,
        NOW,
    )
    .expect("ada");
    staff::add(
        &acc,
        &Actor::Operator,
        "olu",
        Role::Officer,
        OFFICER_PW,
        NOW,
    )
    .expect("olu");
    let clock = Arc::new(TestClock(AtomicI64::new(NOW)));
    let base = serve(dir, clock.clone()).await;
    Bank {
        dir: tmp.path().to_owned(),
        _tmp: tmp,
        base,
        clock,
        world,
    }
}

/// Serves the verifier in `dir` on a loopback port; answers its base URL.
async fn serve(dir: VerifierDir, clock: Arc<TestClock>) -> String {
    let key = dir.key(b"test pass").expect("key");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let base = format!("http://{addr}");
    let state = ServiceState::new(
        dir,
        vec![loan_policy()],
        key,
        ServiceConfig {
            public_url: base.clone(),
            request_ttl: 600,
            max_pending: 100,
            secure_cookies: false,
        },
        clock,
    )
    .expect("state");
    let router = app(Arc::new(state));
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    base
}

async fn bank() -> Bank {
    bank_with(World::new(), None, true).await
}

/// An answer: status, headers, body.
struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    /// The body with askama's escapes of quotes and ampersands undone (for sentences).
    fn text(&self) -> String {
        self.body
            .replace("&#39;", "'")
            .replace("&#34;", "\"")
            .replace("&#38;", "&")
    }
    /// The reason code shown on an error page.
    fn code(&self) -> String {
        self.body
            .split("<code>")
            .nth(1)
            .and_then(|s| s.split("</code>").next())
            .unwrap_or("")
            .to_owned()
    }
    /// The value of the first hidden `csrf` field.
    fn csrf(&self) -> String {
        self.body
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("a csrf field")
            .to_owned()
    }
}

/// A browser without script: cookies kept by hand, redirects not followed.
struct Browser {
    client: reqwest::Client,
    base: String,
    cookies: BTreeMap<String, String>,
    lang: Option<&'static str>,
}

impl Browser {
    fn new(base: &str) -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            base: base.to_owned(),
            cookies: BTreeMap::new(),
            lang: None,
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let mut req = req.header(COOKIE, self.cookie_header());
        if let Some(l) = self.lang {
            req = req.header(ACCEPT_LANGUAGE, l);
        }
        let resp = req.send().await.expect("send");
        for c in resp.headers().get_all(SET_COOKIE) {
            let c = c.to_str().expect("cookie");
            let (kv, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = kv.split_once('=').expect("k=v");
            if v.is_empty() || attrs.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.text().await.expect("body");
        Page {
            status,
            headers,
            body,
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let r = self.client.get(format!("{}{path}", self.base));
        self.send(r).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        self.send(r).await
    }

    async fn sign_in(&mut self, name: &str, password: &str) -> Page {
        let login = self.get("/desk/login").await;
        assert_eq!(login.status, StatusCode::OK);
        let csrf = login.csrf();
        self.post(
            "/desk/login",
            &[("csrf", &csrf), ("name", name), ("password", password)],
        )
        .await
    }

    /// Signs in and answers the CSRF token of the session.
    async fn signed_in(&mut self, name: &str, password: &str) -> String {
        let p = self.sign_in(name, password).await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
        let home = self.get("/desk").await;
        assert_eq!(home.status, StatusCode::OK, "{}", home.body);
        home.csrf()
    }
}

#[test]
fn the_catalogue_is_complete_and_says_every_check_and_reason() {
    let c = bizcred_verifier::desk::catalog().expect("every key in both languages");
    for lang in bizcred_web::Lang::ALL {
        for check in bizcred_verifier::verify::CHECKS {
            assert!(
                c.lookup(lang, &format!("check.{check}")).is_some(),
                "check.{check} in {lang:?}"
            );
        }
        for code in ReasonCode::ALL
            .iter()
            .filter(|c| c.components().contains("verifier"))
        {
            assert!(
                c.lookup(lang, &format!("reason.{}", code.as_str()))
                    .is_some(),
                "reason.{} in {lang:?}",
                code.as_str()
            );
        }
    }
    // The English sentences are the codes' own.
    for code in ReasonCode::ALL {
        if let Some(s) = c.lookup(bizcred_web::Lang::En, &format!("reason.{}", code.as_str())) {
            assert_eq!(s, code.sentence(), "{}", code.as_str());
        }
    }
}

#[tokio::test]
async fn sign_in_with_a_good_and_a_bad_password() {
    let b = bank().await;
    let mut br = Browser::new(&b.base);
    let p = br.get("/desk").await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert!(p.location().starts_with("/desk/login"), "{}", p.location());
    let bad = br.sign_in("olu", "not the password").await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert!(
        bad.body.contains("The account name or password is wrong"),
        "{}",
        bad.body
    );
    assert!(!br.cookies.contains_key("bizcred_verifier_desk"));
    let good = br.sign_in("olu", OFFICER_PW).await;
    assert_eq!(good.status, StatusCode::SEE_OTHER);
    assert_eq!(good.location(), "/desk");
    let set = good
        .headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("bizcred_verifier_desk="))
        .expect("a session cookie")
        .to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let home = br.get("/desk").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("Start verification"), "{}", home.body);
    assert!(home.body.contains("name=\"policy\""));
    let csp = home
        .headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(!home.body.contains("style="), "no inline style");
    assert!(!home.body.contains("<script>"), "no inline script");
}

#[tokio::test]
async fn forms_without_the_session_token_are_refused() {
    let b = bank().await;
    let mut br = Browser::new(&b.base);
    let csrf = br.signed_in("olu", OFFICER_PW).await;
    let pending = || std::fs::read_dir(b.dir.join("requests")).map_or(0, |d| d.count());
    for form in [
        vec![("policy", "loan-application")],
        vec![("policy", "loan-application"), ("csrf", "forged")],
    ] {
        let p = br.post("/desk/start", &form).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);
        assert_eq!(p.code(), "CSRF_REJECTED");
    }
    assert_eq!(pending(), 0, "a refused form does nothing");
    // Another member's token is no better.
    let mut other = Browser::new(&b.base);
    let theirs = other.signed_in("ada", ADMIN_PW).await;
    assert_ne!(theirs, csrf);
    let p = br
        .post(
            "/desk/start",
            &[("policy", "loan-application"), ("csrf", &theirs)],
        )
        .await;
    assert_eq!(p.code(), "CSRF_REJECTED");
    let p = br
        .post(
            "/desk/start",
            &[("policy", "loan-application"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_eq!(pending(), 1);
}

#[tokio::test]
async fn an_officer_may_not_manage_staff() {
    let b = bank().await;
    let mut br = Browser::new(&b.base);
    let csrf = br.signed_in("olu", OFFICER_PW).await;
    let home = br.get("/desk").await;
    assert!(
        !home.body.contains("href=\"/desk/staff\""),
        "no link for officers"
    );
    let p = br.get("/desk/staff").await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert_eq!(p.code(), "STAFF_FORBIDDEN");
    let p = br
        .post(
            "/desk/staff",
            &[
                ("csrf", &csrf),
                ("action", "add"),
                ("account", "eve"),
                ("role", "administrator"),
                ("password", "a long enough password"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);
    assert_eq!(p.code(), "STAFF_FORBIDDEN");
    let p = br
        .post(
            "/desk/staff",
            &[("csrf", &csrf), ("action", "disable"), ("account", "ada")],
        )
        .await;
    assert_eq!(p.code(), "STAFF_FORBIDDEN");
    let acc = staff::accounts(&b.dir);
    assert!(acc.get("eve").expect("read").is_none(), "nothing was added");
    assert!(!acc.get("ada").expect("read").expect("ada").disabled);
}

#[tokio::test]
async fn an_administrator_manages_staff_and_html_is_escaped() {
    let b = bank().await;
    let mut br = Browser::new(&b.base);
    let csrf = br.signed_in("ada", ADMIN_PW).await;
    let page = br.get("/desk/staff").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("olu"));
    // A name with markup is refused, shown back escaped, tied to its field.
    let evil = "<script>alert(1)</script>";
    let p = br
        .post(
            "/desk/staff",
            &[
                ("csrf", &csrf),
                ("action", "add"),
                ("account", evil),
                ("role", "officer"),
                ("password", "a long enough password"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
    assert!(p.body.contains("ACCOUNT_NAME"));
    assert!(!p.body.contains(evil), "markup is never echoed raw");
    assert!(p.body.contains("&#60;script&#62;") || p.body.contains("&lt;script&gt;"));
    assert!(p.body.contains("aria-invalid=\"true\""));
    assert!(p.body.contains("href=\"#new-name\""));
    // A weak password is tied to the password field.
    let p = br
        .post(
            "/desk/staff",
            &[
                ("csrf", &csrf),
                ("action", "add"),
                ("account", "eve"),
                ("role", "officer"),
                ("password", "short"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.body.contains("PASSWORD_WEAK") && p.body.contains("href=\"#new-password\""));
    // Add, disable (the officer's session ends), enable, reset.
    let mut olu = Browser::new(&b.base);
    olu.signed_in("olu", OFFICER_PW).await;
    // A change is dated to the second: one made later than the sign-in ends its sessions.
    b.clock.0.fetch_add(1, Ordering::SeqCst);
    let p = br
        .post(
            "/desk/staff",
            &[
                ("csrf", &csrf),
                ("action", "add"),
                ("account", "eve"),
                ("role", "officer"),
                ("password", "a long enough password"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let listed = br.get("/desk/staff").await;
    assert!(
        listed.body.contains("The account eve was added."),
        "{}",
        listed.body
    );
    for action in ["disable", "enable"] {
        let p = br
            .post(
                "/desk/staff",
                &[("csrf", &csrf), ("action", action), ("account", "olu")],
            )
            .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{action}: {}", p.body);
    }
    let gone = olu.get("/desk").await;
    assert_eq!(
        gone.status,
        StatusCode::SEE_OTHER,
        "a changed account's session ends"
    );
    let p = br
        .post(
            "/desk/staff",
            &[
                ("csrf", &csrf),
                ("action", "reset"),
                ("account", "olu"),
                ("password", "a new officer password"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(
        olu.sign_in("olu", OFFICER_PW).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        olu.sign_in("olu", "a new officer password").await.status,
        StatusCode::SEE_OTHER
    );
    // Not one's own account.
    let p = br
        .post(
            "/desk/staff",
            &[("csrf", &csrf), ("action", "disable"), ("account", "ada")],
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert_eq!(p.code(), "STAFF_FORBIDDEN");
}

#[tokio::test]
async fn expired_unknown_and_foreign_sessions_go_to_sign_in() {
    let b = bank().await;
    let mut br = Browser::new(&b.base);
    br.signed_in("olu", OFFICER_PW).await;
    let session = br.cookies["bizcred_verifier_desk"].clone();
    // The issuer's cookie name carries no session here.
    let mut foreign = Browser::new(&b.base);
    foreign
        .cookies
        .insert("bizcred_issuer_desk".into(), session.clone());
    let p = foreign.get("/desk").await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(p.location(), "/desk/login?expired=1");
    // An unknown session.
    let mut unknown = Browser::new(&b.base);
    unknown
        .cookies
        .insert("bizcred_verifier_desk".into(), "not-a-session".into());
    assert_eq!(
        unknown.get("/desk/trust").await.location(),
        "/desk/login?expired=1"
    );
    // Idle past the limit.
    b.clock.0.fetch_add(16 * 60, Ordering::SeqCst);
    let p = br.get("/desk").await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(p.location(), "/desk/login?expired=1");
    let login = br.get(p.location()).await;
    assert!(
        login.body.contains("Your session has ended"),
        "{}",
        login.body
    );
}

#[tokio::test]
async fn an_oversized_form_is_refused() {
    let b = bank().await;
    let mut br = Browser::new(&b.base);
    let csrf = br.signed_in("ada", ADMIN_PW).await;
    let big = "x".repeat(100 * 1024);
    for path in ["/desk/start", "/desk/staff", "/desk/trust/sync"] {
        let p = br.post(path, &[("csrf", &csrf), ("policy", &big)]).await;
        assert_eq!(p.status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        assert_eq!(p.code(), "FORM_TOO_LARGE", "{path}");
    }
}

#[tokio::test]
async fn every_page_answers_in_french() {
    let b = bank().await;
    for by_cookie in [false, true] {
        let mut br = Browser::new(&b.base);
        if by_cookie {
            br.cookies.insert("bizcred_lang".into(), "fr".into());
        } else {
            br.lang = Some("fr-CA,fr;q=0.9,en;q=0.5");
        }
        let login = br.get("/desk/login").await;
        assert!(login.body.contains("lang=\"fr-CA\""), "{}", login.body);
        br.signed_in("ada", ADMIN_PW).await;
        let csrf = br.get("/desk").await.csrf();
        let started = br
            .post(
                "/desk/start",
                &[("csrf", &csrf), ("policy", "loan-application")],
            )
            .await;
        let wait = started.location().to_owned();
        for (path, french) in [
            ("/desk", "Lancer la vérification"),
            (wait.as_str(), "En attente de la réponse du portefeuille"),
            ("/desk/upload", "Vérifier le fichier"),
            ("/desk/history", "Historique des vérifications"),
            ("/desk/trust", "Synchroniser maintenant"),
            ("/desk/staff", "Ajouter le compte"),
            ("/desk/wait/no-such-request", "Aucune demande ouverte"),
            ("/desk/verifications/1-nothing", "Cette page n’existe pas."),
        ] {
            let p = br.get(path).await;
            assert!(p.body.contains("lang=\"fr-CA\""), "{path}");
            assert!(p.body.contains(french), "{path}: {}", p.body);
            assert!(!p.body.contains('⟦'), "{path}: a missing message");
        }
    }
}

#[tokio::test]
async fn an_officer_verifies_a_loan_application() {
    let b = bank().await;
    let mut br = Browser::new(&b.base);
    let csrf = br.signed_in("olu", OFFICER_PW).await;
    let p = br
        .post(
            "/desk/start",
            &[("csrf", &csrf), ("policy", "loan-application")],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let wait = p.location().to_owned();
    let state = wait.rsplit('/').next().expect("state").to_owned();
    let page = br.get(&wait).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains("id=\"request-link\" href=\"openid4vp://"),
        "{}",
        page.body
    );
    assert!(page.body.contains("<svg role=\"img\""), "a QR code");
    assert!(page.body.contains("data-poll=\"/desk/wait/"));
    assert!(page.body.contains("aria-live=\"polite\""));
    assert!(page.body.contains("id=\"check-again\""));
    let status: Value =
        serde_json::from_str(&br.get(&format!("{wait}/status")).await.body).expect("json");
    assert_eq!(status["done"], false);
    // The request as a file is the signed request object.
    let file = br.get(&format!("{wait}/request.jwt")).await;
    assert_eq!(file.status, StatusCode::OK);
    assert!(file
        .headers
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|d| d.starts_with("attachment")));
    // The wallet fetches the request object and answers.
    let jwt = reqwest::get(format!("{}/oid4vp/request/{state}", b.base))
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    assert_eq!(jwt, file.body.trim());
    let (nonce, aud) = nonce_of(&jwt);
    let vp = b.world.vp_token(&loan_policy(), &aud, &nonce);
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("vp_token", &vp.to_string())
        .append_pair("state", &state)
        .finish();
    let answered = reqwest::Client::new()
        .post(format!("{}/oid4vp/response", b.base))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(
        answered.status(),
        StatusCode::OK,
        "{:?}",
        answered.text().await
    );
    // The page learns it, and the verdict is ACCEPT with every check and the claims.
    let status: Value =
        serde_json::from_str(&br.get(&format!("{wait}/status")).await.body).expect("json");
    assert_eq!(status["done"], true, "{status}");
    let verdict_href = status["location"].as_str().expect("location").to_owned();
    let again = br.get(&wait).await;
    assert_eq!(
        again.status,
        StatusCode::SEE_OTHER,
        "check again goes to the verdict"
    );
    assert_eq!(again.location(), verdict_href);
    let v = br.get(&verdict_href).await;
    assert_eq!(v.status, StatusCode::OK, "{}", v.body);
    assert!(v.body.contains("id=\"verdict\""));
    assert!(v.body.contains("data-verdict=\"ACCEPT\""), "{}", v.body);
    assert!(v.body.contains("Accepted"));
    assert!(v
        .text()
        .contains("The issuer's signature, the disclosures and the holder's key binding verify."));
    assert!(v.body.contains("One wallet holds every credential"));
    assert!(v.body.contains("Liquor sales licence") || v.body.contains("licence"));
    assert!(
        v.body.contains("812345676"),
        "the disclosed business number"
    );
    assert!(v.body.contains("id=\"receipt\""));
    assert!(v.body.contains("No check failed."));
    // The receipt downloads and verifies; the history lists it without personal data.
    let receipt_href = format!("{verdict_href}/receipt");
    let r = br.get(&receipt_href).await;
    assert_eq!(r.status, StatusCode::OK);
    let receipt: Value = serde_json::from_str(&r.body).expect("receipt");
    assert_eq!(receipt["verdict"], "ACCEPT");
    assert!(
        !r.body.contains("812345676"),
        "no personal data in the receipt"
    );
    let h = br.get("/desk/history").await;
    assert!(
        h.body.contains(&format!("href=\"{verdict_href}\"")),
        "{}",
        h.body
    );
    assert!(h.body.contains("loan-application") && h.body.contains("Accepted"));
    assert!(!h.body.contains("812345676"));
    // In French, the verdict in words and the claims' labels from the type metadata.
    br.cookies.insert("bizcred_lang".into(), "fr".into());
    let v = br.get(&verdict_href).await;
    assert!(v.body.contains("Acceptée"), "{}", v.body);
    assert!(
        v.text().contains("Numéro d'entreprise"),
        "a label from the metadata"
    );
    assert!(v
        .body
        .contains("Un seul portefeuille détient toutes les attestations"));
}

#[tokio::test]
async fn an_uploaded_presentation_file_gets_the_same_verdict_page() {
    let b = bank().await;
    let mut br = Browser::new(&b.base);
    let csrf = br.signed_in("olu", OFFICER_PW).await;
    let p = br
        .post(
            "/desk/start",
            &[("csrf", &csrf), ("policy", "loan-application")],
        )
        .await;
    let wait = p.location().to_owned();
    let state = wait.rsplit('/').next().expect("state").to_owned();
    let jwt = br.get(&format!("{wait}/request.jwt")).await.body;
    let (nonce, aud) = nonce_of(&jwt);
    let upload = |br: &Browser, csrf: Option<&str>, file: Vec<u8>| {
        let boundary = "----bizcredTestBoundary7MA4YWxk";
        let mut body = Vec::new();
        if let Some(c) = csrf {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{c}\r\n"
                )
                .as_bytes(),
            );
        }
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"presentation\"; filename=\"presentation.json\"\r\nContent-Type: application/json\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(&file);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        br.client
            .post(format!("{}/desk/upload", br.base))
            .header(
                CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
    };
    let receipts = || std::fs::read_dir(b.dir.join("receipts")).map_or(0, |d| d.count());
    // Bad files: refused with their code, nothing stored, the request still open.
    for (file, code, status) in [
        (
            b"not json".to_vec(),
            "REQUEST_MALFORMED",
            StatusCode::BAD_REQUEST,
        ),
        (
            br#"{"vp_token": {}}"#.to_vec(),
            "REQUEST_MALFORMED",
            StatusCode::BAD_REQUEST,
        ),
        (
            br#"{"state": "no-such-request", "vp_token": {}}"#.to_vec(),
            "UNKNOWN_STATE",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let r = upload(&br, Some(&csrf), file);
        let p = br.send(r).await;
        assert_eq!(p.status, status, "{}", p.body);
        assert!(p.body.contains(code), "{code}: {}", p.body);
        assert!(p.body.contains("aria-invalid=\"true\""));
    }
    assert_eq!(receipts(), 0, "nothing stored");
    // Without the session's token: refused before anything is read.
    let vp = b.world.vp_token(&loan_policy(), &aud, &nonce);
    let file = serde_json::to_vec(
        &json!({"state": state, "vp_token": vp, "client_id": aud, "nonce": nonce}),
    )
    .expect("file");
    let r = upload(&br, None, file.clone());
    let p = br.send(r).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert_eq!(p.code(), "CSRF_REJECTED");
    let status: Value =
        serde_json::from_str(&br.get(&format!("{wait}/status")).await.body).expect("json");
    assert_eq!(status["done"], false, "the request is still open");
    // The wallet's file: the verdict page.
    let r = upload(&br, Some(&csrf), file.clone());
    let p = br.send(r).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let v = br.get(p.location()).await;
    assert!(v.body.contains("data-verdict=\"ACCEPT\""), "{}", v.body);
    assert_eq!(receipts(), 1);
    // Answered once: the same file again names no open request.
    let r = upload(&br, Some(&csrf), file);
    let p = br.send(r).await;
    assert!(p.body.contains("UNKNOWN_STATE"));
    // An oversized file.
    let r = upload(&br, Some(&csrf), vec![b' '; 3 * 1024 * 1024]);
    let p = br.send(r).await;
    assert_eq!(p.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(p.body.contains("PRESENTATION_TOO_LARGE"));
}

#[tokio::test]
async fn after_a_restart_the_verdict_page_is_the_receipt() {
    let b = bank().await;
    let mut br = Browser::new(&b.base);
    let csrf = br.signed_in("olu", OFFICER_PW).await;
    let p = br
        .post(
            "/desk/start",
            &[("csrf", &csrf), ("policy", "loan-application")],
        )
        .await;
    let wait = p.location().to_owned();
    let state = wait.rsplit('/').next().expect("state").to_owned();
    let jwt = br.get(&format!("{wait}/request.jwt")).await.body;
    let (nonce, aud) = nonce_of(&jwt);
    let vp = b.world.vp_token(&loan_policy(), &aud, &nonce);
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("vp_token", &vp.to_string())
        .append_pair("state", &state)
        .finish();
    reqwest::Client::new()
        .post(format!("{}/oid4vp/response", b.base))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("post");
    // Another service over the same directory: the results held in memory are gone, the
    // receipts are not.
    let base = serve(VerifierDir::open(&b.dir).expect("open"), b.clock.clone()).await;
    let mut br = Browser::new(&base);
    br.signed_in("olu", OFFICER_PW).await;
    let p = br.get(&wait).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let v = br.get(p.location()).await;
    assert_eq!(v.status, StatusCode::OK);
    assert!(v.body.contains("data-verdict=\"ACCEPT\""), "{}", v.body);
    assert!(v.body.contains("The service keeps the signed receipt"));
    assert!(v.body.contains("Liquor sales licence"), "{}", v.body);
    assert!(!v.body.contains("812345676"), "no claims from a receipt");
    assert!(v.body.contains("id=\"receipt\""));
}

#[tokio::test]
async fn a_rejected_presentation_shows_its_reasons() {
    let b = bank().await;
    let mut br = Browser::new(&b.base);
    let csrf = br.signed_in("olu", OFFICER_PW).await;
    let p = br
        .post(
            "/desk/start",
            &[("csrf", &csrf), ("policy", "loan-application")],
        )
        .await;
    let wait = p.location().to_owned();
    let state = wait.rsplit('/').next().expect("state").to_owned();
    let jwt = br.get(&format!("{wait}/request.jwt")).await.body;
    let (_, aud) = nonce_of(&jwt);
    // Bound to another nonce: every key binding fails.
    let vp = b.world.vp_token(&loan_policy(), &aud, "another-nonce");
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("vp_token", &vp.to_string())
        .append_pair("state", &state)
        .finish();
    let answered = reqwest::Client::new()
        .post(format!("{}/oid4vp/response", b.base))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(answered.status(), StatusCode::BAD_REQUEST);
    let again = br.get(&wait).await;
    let v = br.get(again.location()).await;
    assert!(v.body.contains("data-verdict=\"REJECT\""), "{}", v.body);
    assert!(v.body.contains("KB_NONCE_MISMATCH"));
    assert!(v
        .body
        .contains("The key-binding JWT does not carry the requested nonce."));
    assert!(v.body.contains("Failed"));
    br.cookies.insert("bizcred_lang".into(), "fr".into());
    let v = br.get(again.location()).await;
    assert!(v.body.contains("Rejetée"));
    assert!(v
        .text()
        .contains("Le JWT de liaison à la clé ne porte pas le nonce demandé."));
}

/// A registry that serves `bundle` at `/bundle`.
async fn registry(bundle: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = axum::Router::new().route(
        "/bundle",
        axum::routing::get(move || {
            let b = bundle.clone();
            async move { b }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn trust_shows_freshness_and_syncs() {
    let w = World::new();
    let url = registry(w.bundle()).await;
    let b = bank_with(w, Some(url), false).await;
    let mut br = Browser::new(&b.base);
    let csrf = br.signed_in("olu", OFFICER_PW).await;
    let p = br.get("/desk/trust").await;
    assert!(
        p.body.contains("No trust bundle is held yet."),
        "{}",
        p.body
    );
    assert!(p.body.contains("Too old"));
    let p = br.post("/desk/trust/sync", &[("csrf", &csrf)]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let p = br.get("/desk/trust").await;
    assert!(p.body.contains("Trust bundle synced"), "{}", p.body);
    assert!(p.body.contains("Fresh enough"), "{}", p.body);
    assert!(!p.body.contains("No sync recorded"));
}

#[tokio::test]
async fn a_sync_that_fails_says_why() {
    // The bundle is another registry's: refused, the state held unchanged.
    let other = World::new();
    let url = registry(other.bundle()).await;
    let b = bank_with(World::new(), Some(url), false).await;
    let mut br = Browser::new(&b.base);
    let csrf = br.signed_in("olu", OFFICER_PW).await;
    br.post("/desk/trust/sync", &[("csrf", &csrf)]).await;
    let p = br.get("/desk/trust").await;
    assert!(
        p.text().contains("The registry's bundle was refused"),
        "{}",
        p.body
    );
    assert!(p.body.contains("BUNDLE_BAD_SIGNATURE"));
    assert!(p.body.contains("No trust bundle is held yet."));
    // No registry at all.
    let b = bank_with(World::new(), Some("http://127.0.0.1:9".into()), false).await;
    let mut br = Browser::new(&b.base);
    let csrf = br.signed_in("olu", OFFICER_PW).await;
    br.post("/desk/trust/sync", &[("csrf", &csrf)]).await;
    let p = br.get("/desk/trust").await;
    assert!(p.body.contains("UNREACHABLE"), "{}", p.body);
}
