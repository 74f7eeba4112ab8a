//! The public pages over the real repository (sled, tantivy, a trust bundle of an in-memory
//! registry), through the service's router without sockets: the search form, results with
//! filters and paging, refusals tied to their fields (400, SEARCH_QUERY_INVALID), business
//! pages in both languages (name history, every credential with its issuer, verification,
//! status as of the list's time, labelled claims, the download link serving the credential),
//! 404 pages, the language switch, the stylesheet, escaping and the security headers.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use tower::ServiceExt;

use bizcred_core::status_list::Status;
use bizcred_repository::{pages, service, Repository};
use bizcred_web::Lang;

mod common;

use common::{bn9, claims, World, ISSUED};

/// A repository with Éloïse's bakery (renamed, its first certificate revoked), a dissolved
/// namesake, a business named with markup, and 25 plumbers in Toronto (two pages).
fn populated() -> (World, Arc<Repository>) {
    let mut w = World::new();
    let mut batch = vec![
        w.record(
            claims(
                "1000001",
                "Boulangerie Éloïse Inc.",
                "active",
                "Sudbury",
                "123456782",
            ),
            10,
            ISSUED,
        ),
        w.record(
            claims(
                "1000001",
                "Pâtisserie Éloïse Inc.",
                "active",
                "Sudbury",
                "123456782",
            ),
            11,
            ISSUED + 86_400,
        ),
        w.record(
            claims(
                "1000004",
                "Boulangerie Éloïse du Nord Inc.",
                "dissolved",
                "Timmins",
                "100000017",
            ),
            12,
            ISSUED,
        ),
        w.record(
            claims(
                "1000005",
                "<script>alert(1)</script> & Sons Ltd.",
                "active",
                "Kingston",
                "100000025",
            ),
            13,
            ISSUED,
        ),
    ];
    for i in 0..25u32 {
        batch.push(w.record(
            claims(
                &format!("{}", 2_000_000 + i),
                &format!("Plumbing Number {i} Ltd."),
                "active",
                "Toronto",
                &bn9(20_000_000 + i),
            ),
            100 + u64::from(i),
            ISSUED,
        ));
    }
    w.list.set(10, Status::Invalid).expect("revoke");
    let repo = w.open();
    let r = repo.intake(&batch).expect("intake");
    assert_eq!(r.refused, 0, "{r:?}");
    repo.refresh_statuses().expect("refresh");
    repo.commit().expect("commit");
    (w, repo)
}

fn app(repo: &Arc<Repository>) -> Router {
    service::api(repo.clone()).merge(pages::routes(repo.clone()))
}

struct Got {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

async fn get(app: &Router, uri: &str, lang: Option<Lang>) -> Got {
    let mut req = Request::builder().uri(uri);
    if let Some(l) = lang {
        req = req.header(header::COOKIE, format!("bizcred_lang={}", l.code()));
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).expect("request"))
        .await
        .expect("answer");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), 8 * 1024 * 1024)
        .await
        .expect("body");
    Got {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn between<'a>(body: &'a str, from: &str, to: &str) -> &'a str {
    let start = body
        .find(from)
        .unwrap_or_else(|| panic!("{from} not in {body}"));
    let rest = &body[start + from.len()..];
    &rest[..rest.find(to).unwrap_or(rest.len())]
}

#[test]
fn the_catalogue_is_complete_in_both_languages() {
    let c = pages::catalog().expect("every key in both languages");
    for lang in Lang::ALL {
        for key in pages::translated_keys() {
            assert!(c.lookup(lang, &key).is_some(), "{key} in {lang:?}");
        }
    }
}

#[tokio::test]
async fn the_home_page_has_the_search_form_in_the_chosen_language() {
    let (_w, repo) = populated();
    let app = app(&repo);
    let en = get(&app, "/", None).await;
    assert_eq!(en.status, StatusCode::OK);
    assert!(en.body.contains("<html lang=\"en-CA\">"));
    assert!(en
        .body
        .contains("<label for=\"q\">Name, business number or corporation number</label>"));
    assert!(en
        .body
        .contains("<option value=\"dissolved\">Dissolved</option>"));
    assert!(en
        .body
        .contains("<option value=\"Toronto\">Toronto</option>"));
    assert!(en.body.contains("Businesses in the repository: 28."));
    let csp = en.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("csp");
    assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"));
    assert_eq!(en.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert!(!en.headers.contains_key(header::SET_COOKIE), "no session");
    // French by the remembered choice, and by Accept-Language.
    let fr = get(&app, "/", Some(Lang::Fr)).await;
    assert!(fr.body.contains("<html lang=\"fr-CA\">"));
    assert!(fr.body.contains("Trouver une entreprise de l"));
    assert!(fr
        .body
        .contains("<option value=\"dissolved\">Dissoute</option>"));
    let req = Request::builder()
        .uri("/")
        .header(header::ACCEPT_LANGUAGE, "fr-CA,fr;q=0.9")
        .body(Body::empty())
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("answer");
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    assert!(String::from_utf8_lossy(&body).contains("Dissoute"));
    // The stylesheet it links to.
    let css = between(&en.body, "<link rel=\"stylesheet\" href=\"", "\"").to_owned();
    let got = get(&app, &css, None).await;
    assert_eq!(got.status, StatusCode::OK);
    assert!(got.headers[header::CONTENT_TYPE]
        .to_str()
        .expect("type")
        .starts_with("text/css"));
}

#[tokio::test]
async fn search_finds_by_misspelt_name_numbers_and_filters_and_pages() {
    let (_w, repo) = populated();
    let app = app(&repo);
    // No accents, one letter missing; active first, the former name shown.
    let r = get(&app, "/search?q=boulangrie+eloise", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.body.contains("2 businesses match this search."),
        "{}",
        r.body
    );
    let first = r.body.find("/business/1000001").expect("the bakery");
    let second = r.body.find("/business/1000004").expect("the dissolved one");
    assert!(first < second);
    assert!(r.body.contains("Formerly: Boulangerie Éloïse Inc."));
    assert!(r
        .body
        .contains("<span class=\"badge bad\">Dissolved</span>"));
    assert!(r.body.contains("Business corporation"));
    // What was searched stays in the form.
    assert!(r.body.contains("value=\"boulangrie eloise\""));
    // By business number and by corporation number.
    let bn = get(&app, "/search?q=123+456+782", Some(Lang::Fr)).await;
    assert!(bn
        .body
        .contains("1 entreprise correspond à cette recherche."));
    assert!(bn.body.contains("/business/1000001"));
    let corp = get(&app, "/search?q=1000004", None).await;
    assert!(corp.body.contains("Boulangerie Éloïse du Nord Inc."));
    // Filters.
    let dissolved = get(&app, "/search?q=eloise&status=dissolved", None).await;
    assert!(dissolved.body.contains("1 business matches"));
    assert!(dissolved
        .body
        .contains("<option value=\"dissolved\" selected>Dissolved</option>"));
    let sudbury = get(&app, "/search?q=eloise&municipality=Sudbury", None).await;
    assert!(
        sudbury.body.contains("/business/1000001") && !sudbury.body.contains("/business/1000004")
    );
    let none = get(&app, "/search?q=eloise&type=cooperative_corporation", None).await;
    assert!(none.body.contains("No business matches this search."));
    // Paging: 25 plumbers, 20 a page.
    let p1 = get(&app, "/search?q=plumbing&municipality=Toronto", None).await;
    assert!(
        p1.body
            .contains("25 businesses match this search. Showing 1 to 20."),
        "{}",
        p1.body
    );
    assert!(p1.body.contains("Page 1 of 2"));
    let next = between(&p1.body, "<a id=\"next-page\" href=\"", "\"").replace("&#38;", "&");
    assert_eq!(next, "/search?q=plumbing&municipality=Toronto&page=2");
    let p2 = get(&app, &next, None).await;
    assert!(p2.body.contains("Showing 21 to 25."));
    assert!(p2.body.contains("rel=\"prev\"") && !p2.body.contains("rel=\"next\""));
    // Operators are words: nothing found, nothing refused.
    let ops = get(
        &app,
        "/search?q=name%3A%22x%22+OR+*+AND+-%28+%7E2+%5E9",
        None,
    )
    .await;
    assert_eq!(ops.status, StatusCode::OK);
    assert!(ops.body.contains("No business matches"));
    // Markup in a name is text.
    let m = get(&app, "/search?q=sons", None).await;
    assert!(
        m.body
            .contains("&#60;script&#62;alert(1)&#60;/script&#62; &#38; Sons Ltd."),
        "{}",
        m.body
    );
    assert!(!m.body.contains("<script>alert"));
}

#[tokio::test]
async fn a_refused_search_is_an_error_summary_tied_to_its_field() {
    let (_w, repo) = populated();
    let app = app(&repo);
    let long = "é".repeat(300);
    let r = get(&app, &format!("/search?q={long}"), None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("<title>Error: search results"));
    assert!(r.body.contains("There is a problem"));
    assert!(r.body.contains("<a href=\"#q\">The search is 300 characters long; at most 200 characters are searched.</a>"));
    assert!(r.body.contains("<code>SEARCH_QUERY_INVALID</code>"));
    assert!(r
        .body
        .contains("aria-describedby=\"q-hint q-error\" aria-invalid=\"true\""));
    assert!(r.body.contains("id=\"q-error\""));
    // In French, for each field.
    let fr = get(
        &app,
        "/search?q=eloise&status=bankrupt&type=llc&page=x",
        Some(Lang::Fr),
    )
    .await;
    assert_eq!(fr.status, StatusCode::BAD_REQUEST);
    assert!(fr
        .body
        .contains("<a href=\"#status\">Choisissez un statut de société dans la liste.</a>"));
    assert!(fr.body.contains("<a href=\"#type\">Choisissez un type d"));
    assert!(fr.body.contains("Cette page de résultats n"));
    assert!(fr
        .body
        .contains("aria-describedby=\"status-error\" aria-invalid=\"true\""));
    for bad in [
        "/search",
        "/search?q=",
        "/search?q=+-+%27+",
        "/search?q=a+b+c+d+e+f+g+h+i",
    ] {
        let r = get(&app, bad, None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(r.body.contains("<a href=\"#q\">"), "{bad}: {}", r.body);
    }
}

#[tokio::test]
async fn a_business_page_shows_every_credential_verified_with_its_download() {
    let (_w, repo) = populated();
    let app = app(&repo);
    let en = get(&app, "/business/1000001", None).await;
    assert_eq!(en.status, StatusCode::OK, "{}", en.body);
    let b = &en.body;
    assert!(b.contains("<h1>Pâtisserie Éloïse Inc.</h1>"));
    assert!(b.contains("<dd class=\"mono\" id=\"business-number\">123456782</dd>"));
    assert!(b.contains("<dd id=\"status\"><span class=\"badge ok\">Active</span></dd>"));
    // The name history with its dates, oldest first.
    let history = between(b, "<table id=\"name-history\">", "</table>");
    let (old, new) = (
        history.find("Boulangerie Éloïse Inc.").expect("old"),
        history.find("Pâtisserie Éloïse Inc.").expect("new"),
    );
    assert!(old < new);
    assert!(
        history.contains("October 23, 2026") && history.contains("October 24, 2026"),
        "{history}"
    );
    // Two credentials: the current one verified, the replaced one revoked with its code.
    assert_eq!(b.matches("<article class=\"panel credential\"").count(), 2);
    assert!(b.contains("<h3 id=\"credential-"));
    assert!(b.contains(">Certificate of incorporation</h3>"));
    assert!(b.contains("<dd>Ontario Business Registry</dd>"));
    assert!(b.contains("<span class=\"badge ok\">Verified</span> <code>ACCEPT</code>"));
    assert!(b.contains("<span class=\"badge bad\">Not valid</span> <code>REJECT</code>"));
    assert!(b.contains("<code>REVOKED</code>"));
    assert!(b.contains("Valid, as of 2026-11-22 11:50 UTC"), "{b}");
    assert!(b.contains("Revoked, as of 2026-11-22 11:50 UTC"));
    // Claims labelled from the type metadata, values in words.
    assert!(b.contains("<th scope=\"row\">Ontario corporation number</th><td>1000001</td>"));
    assert!(b.contains("<th scope=\"row\">Registered office address – City</th><td>Sudbury</td>"));
    assert!(b.contains("<th scope=\"row\">Entity type</th><td>Business corporation</td>"));
    assert!(b.contains("bizcred-verifier --data-dir DIRECTORY verify-record FILE"));
    // The download serves the credential as issued.
    let href = between(b, "<a class=\"download\" href=\"", "\"").to_owned();
    let raw = get(&app, &href, None).await;
    assert_eq!(raw.status, StatusCode::OK);
    assert_eq!(raw.headers[header::CONTENT_TYPE], "application/dc+sd-jwt");
    let id = href.trim_start_matches("/credentials/");
    assert_eq!(
        repo.credential_text(id).expect("read").as_deref(),
        Some(raw.body.as_str())
    );
    // In French: the type, the agency and the statuses in French, the time for the locale.
    let fr = get(&app, "/business/1000001", Some(Lang::Fr)).await;
    let b = &fr.body;
    assert!(b.contains(">Certificat de constitution</h3>"));
    assert!(
        b.contains("Registre des entreprises de l&#39;Ontario"),
        "{b}"
    );
    assert!(b.contains("Valide, en date du 2026-11-22 11 h 50 UTC"));
    assert!(b.contains("<span class=\"badge bad\">Non valide</span>"));
    assert!(b.contains("23 octobre 2026"));
    assert!(b.contains("Type d&#39;entité</th><td>Société par actions"));
    // A dissolved business says so in words.
    let d = get(&app, "/business/1000004", Some(Lang::Fr)).await;
    assert!(d
        .body
        .contains("<dd id=\"status\"><span class=\"badge bad\">Dissoute</span></dd>"));
}

#[tokio::test]
async fn unknown_businesses_and_pages_are_404_pages() {
    let (_w, repo) = populated();
    let app = app(&repo);
    for path in [
        "/business/9999999",
        "/business/..%2F..%2Fetc",
        "/business/%FF",
    ] {
        let r = get(&app, path, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            r.body.contains("<code>BUSINESS_NOT_FOUND</code>"),
            "{path}: {}",
            r.body
        );
        assert!(r.body.contains("<title>No such business"));
    }
    let fr = get(&app, "/business/9999999", Some(Lang::Fr)).await;
    assert!(fr.body.contains("Entreprise introuvable"));
    let other = get(&app, "/nowhere", None).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert!(other.body.contains("<code>PAGE_NOT_FOUND</code>"));
    // The JSON API keeps its own answers.
    let api = get(&app, "/api/businesses/9999999", None).await;
    assert_eq!(api.status, StatusCode::NOT_FOUND);
    assert!(api.body.contains("\"code\":\"BUSINESS_NOT_FOUND\""));
}

#[tokio::test]
async fn the_language_switch_is_remembered_and_returns_to_the_page() {
    let (_w, repo) = populated();
    let app = app(&repo);
    let page = get(&app, "/search?q=eloise&status=active", None).await;
    let switch = between(&page.body, "<a class=\"lang\" href=\"", "\"").replace("&#38;", "&");
    assert_eq!(
        switch,
        "/lang/fr?next=%2Fsearch%3Fq%3Deloise%26status%3Dactive"
    );
    let r = get(&app, &switch, None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers[header::LOCATION],
        "/search?q=eloise&status=active"
    );
    let cookie = r.headers[header::SET_COOKIE].to_str().expect("cookie");
    assert!(cookie.starts_with("bizcred_lang=fr; Path=/;"), "{cookie}");
    for evil in ["//evil.example", "https://evil.example/", "/lang/en"] {
        let r = get(
            &app,
            &format!(
                "/lang/en?next={}",
                form_urlencoded::byte_serialize(evil.as_bytes()).collect::<String>()
            ),
            None,
        )
        .await;
        assert_eq!(r.headers[header::LOCATION], "/", "{evil}");
    }
}
