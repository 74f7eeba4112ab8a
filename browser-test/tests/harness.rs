//! The harness tested on a page of its own, served on loopback under a strict
//! Content-Security-Policy like the desks': forms filled by label and by name, a submission
//! awaited, cookies read, altered and deleted, English and French sessions side by side,
//! screenshots, and axe-core clean on a good page and failing on a deliberately bad one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bizcred_browser_test::{Browser, Error, Lang, Page};

/// What the desks will send: no inline script or style, no eval, nothing from elsewhere.
const CSP: &str = "default-src 'none'; style-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

#[derive(Default)]
struct Site {
    sessions: AtomicU64,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(title: &str, body: &str, cookie: Option<String>) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{title}</title><link rel=\"stylesheet\" href=\"/site.css\"></head>\
         <body><main><h1>{title}</h1>{body}</main></body></html>"
    );
    let mut response = Html(html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    if let Some(cookie) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(header::SET_COOKIE, cookie);
    }
    response
}

async fn form(State(site): State<Arc<Site>>, headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none");
    let n = site.sessions.fetch_add(1, Ordering::Relaxed);
    let body = format!(
        "<p>Accept-Language: <span id=\"accept\">{}</span></p>\
         <p id=\"inline\">Inline scripts are blocked.</p>\
         <script>document.getElementById('inline').textContent = 'Inline script ran';</script>\
         <form method=\"post\" action=\"/submit\">\
         <p><label for=\"legal\">Legal name</label> \
         <input id=\"legal\" name=\"legal_name\" type=\"text\" autocomplete=\"organization\"></p>\
         <p><label for=\"bn\">Business number (9 digits)</label> \
         <input id=\"bn\" name=\"bn\" type=\"text\" inputmode=\"numeric\"></p>\
         <p><label for=\"kind\">Kind</label> <select id=\"kind\" name=\"kind\">\
         <option value=\"corp\">Corporation</option><option value=\"sole\">Sole proprietorship</option>\
         </select></p>\
         <p><input id=\"agree\" name=\"agree\" type=\"checkbox\" value=\"yes\"> \
         <label for=\"agree\">I confirm</label></p>\
         <p><button type=\"submit\">Send the application</button></p></form>",
        escape(accept)
    );
    page(
        "Apply",
        &body,
        Some(format!("session=s{n}; Path=/; HttpOnly; SameSite=Strict")),
    )
}

async fn submit(body: String) -> Response {
    let mut legal = String::new();
    let mut bn = String::new();
    let mut kind = String::new();
    let mut agree = "no".to_string();
    for (k, v) in form_urlencoded::parse(body.as_bytes()) {
        match k.as_ref() {
            "legal_name" => legal = v.into_owned(),
            "bn" => bn = v.into_owned(),
            "kind" => kind = v.into_owned(),
            "agree" => agree = v.into_owned(),
            _ => {}
        }
    }
    let text = format!(
        "<p role=\"status\">Received: {} ({}), {}, confirmed: {}</p>",
        escape(&legal),
        escape(&bn),
        escape(&kind),
        escape(&agree)
    );
    page("Received", &text, None)
}

async fn whoami(headers: HeaderMap) -> Response {
    let session = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| {
            c.split(';')
                .map(str::trim)
                .find_map(|kv| kv.strip_prefix("session="))
        })
        .unwrap_or("none");
    page(
        "Who",
        &format!("<p>Session cookie: {}</p>", escape(session)),
        None,
    )
}

async fn bad() -> Response {
    page(
        "Bad",
        "<p class=\"faint\">This sentence is hard to read.</p>\
         <form method=\"post\" action=\"/submit\"><input type=\"text\" name=\"legal_name\"></form>",
        None,
    )
}

async fn css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css")],
        "body { font-family: sans-serif; color: #1b1b1b; background: #fff; }\n\
         .faint { color: #c8c8c8; }\n",
    )
}

async fn serve() -> String {
    let app = Router::new()
        .route("/form", get(form))
        .route("/submit", axum::routing::post(submit))
        .route("/whoami", get(whoami))
        .route("/bad", get(bad))
        .route("/site.css", get(css))
        .with_state(Arc::new(Site::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("test server");
    });
    format!("http://{addr}")
}

fn is_png(path: &std::path::Path) -> bool {
    std::fs::read(path).is_ok_and(|b| b.starts_with(b"\x89PNG\r\n\x1a\n"))
}

/// One user's task on the good page: read the language it was asked in, fill and submit.
async fn apply(page: &Page, base: &str, lang: Lang, by_button: bool) -> Result<(), Error> {
    page.goto(&format!("{base}/form")).await?;
    page.wait_for_text("Legal name").await?;
    let accept = page.text_of("#accept").await?;
    assert!(
        accept.starts_with(lang.locale()),
        "{lang} session sent Accept-Language {accept:?}"
    );
    let navigator = page.execute("return navigator.language;", vec![]).await?;
    assert_eq!(
        navigator,
        lang.locale(),
        "navigator.language of the {lang} session"
    );
    // The page's CSP holds: its inline script did not run.
    assert!(page.text().await?.contains("Inline scripts are blocked."));

    let shot = page.screenshot("harness-form").await?;
    assert!(is_png(&shot), "{} is not a PNG", shot.display());
    let report = page
        .axe_check("harness form")
        .await?
        .expect("axe-core is installed (npm ci --prefix browser-test)");
    report.assert_clean();
    page.assert_accessible("harness form").await?;

    page.fill("Legal name", "Café <b>Rouge</b> & Fils").await?;
    page.fill("bn", "123456789").await?; // by name
    page.select("Kind", "Sole proprietorship").await?;
    page.check("I confirm", true).await?;
    if by_button {
        page.click_button("Send the application").await?;
    } else {
        page.submit("legal").await?; // by id
    }
    page.wait_for_text("Received: Café <b>Rouge</b> & Fils (123456789), sole, confirmed: yes")
        .await?;
    page.wait_for_url("/submit").await?;
    assert!(page.current_url().await?.ends_with("/submit"));
    page.screenshot("harness-received").await?;
    page.assert_accessible("harness received").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_harness_drives_chromium_and_its_checks_can_fail() -> Result<(), Error> {
    let started = Instant::now();
    let base = serve().await;
    let Some(browser) = Browser::start().await? else {
        return Ok(()); // said loudly; an error under CI=true
    };

    // Two independent sessions at once, in each language.
    let (en, fr) = tokio::join!(browser.session(Lang::En), browser.session(Lang::Fr));
    let (en, fr) = (en?, fr?);
    assert_ne!(en.profile_dir(), fr.profile_dir());
    let (a, b) = tokio::join!(
        apply(&en, &base, Lang::En, true),
        apply(&fr, &base, Lang::Fr, false)
    );
    a?;
    b?;

    // Each session has its own cookies; HttpOnly cookies are readable, alterable, deletable.
    let en_cookie = en.cookie("session").await?.expect("en session cookie");
    let fr_cookie = fr.cookie("session").await?.expect("fr session cookie");
    assert_ne!(en_cookie.value(), fr_cookie.value());
    assert_eq!(en_cookie.http_only(), Some(true));
    let mut forged = en_cookie.clone();
    forged.set_value("forged");
    en.set_cookie(forged).await?;
    en.goto(&format!("{base}/whoami")).await?;
    en.wait_for_text("Session cookie: forged").await?;
    fr.goto(&format!("{base}/whoami")).await?;
    fr.wait_for_text(&format!("Session cookie: {}", fr_cookie.value()))
        .await?;
    en.delete_cookie("session").await?;
    assert!(en.cookie("session").await?.is_none());
    en.goto(&format!("{base}/whoami")).await?;
    en.wait_for_text("Session cookie: none").await?;

    // The checks fail when they should: axe runs under the strict CSP and names the rules.
    for page in [&en, &fr] {
        page.goto(&format!("{base}/bad")).await?;
        page.wait_for_text("hard to read").await?;
        page.screenshot("harness-bad").await?;
        let report = page.axe_check("harness bad").await?.expect("axe-core");
        let ids = report.ids();
        assert!(ids.contains(&"label"), "{report}");
        assert!(ids.contains(&"color-contrast"), "{report}");
        let label = report.violation("label").expect("label violation");
        assert_eq!(label.nodes, ["input"], "{report}");
        match page.assert_accessible("harness bad").await {
            Err(Error::Accessibility(r)) => {
                let message = Error::Accessibility(r).to_string();
                assert!(message.contains("label"), "{message}");
                assert!(message.contains("color-contrast"), "{message}");
                assert!(message.contains("/bad"), "{message}");
            }
            other => panic!("the bad page passed the accessibility check: {other:?}"),
        }
    }

    // A wait that cannot succeed ends in time, naming the text and the address.
    let short = fr.with_timeout(Duration::from_millis(500));
    match short.wait_for_text("Nowhere to be seen").await {
        Err(e @ Error::Timeout { .. }) => {
            let message = e.to_string();
            assert!(message.contains("Nowhere to be seen"), "{message}");
            assert!(message.contains("/bad"), "{message}");
            assert!(message.contains("hard to read"), "{message}");
        }
        other => panic!("waiting for absent text: {other:?}"),
    }
    match short.fill("Favourite colour", "blue").await {
        Err(Error::NotFound { what, url }) => {
            assert!(what.contains("Favourite colour"), "{what}");
            assert!(url.ends_with("/bad"), "{url}");
        }
        other => panic!("filling an absent field: {other:?}"),
    }
    match short.click_button("Send the application").await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("clicking an absent button: {other:?}"),
    }

    en.close().await?;
    short.close().await?;
    drop(browser);
    eprintln!("browser harness self-test: {:?}", started.elapsed());
    Ok(())
}
