//! The verifier's OpenID4VP service through its router (no socket): requests need the
//! operator's token, pending requests are bounded and expire, the response endpoint takes only
//! `direct_post` forms and is no oracle for the presenter.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use rand_core::OsRng;
use serde_json::Value;
use tower::ServiceExt;

use bizcred_core::time::Clock;
use bizcred_core::trust::bundle::TrustAnchor;
use bizcred_verifier::service::{app, ServiceConfig, ServiceState};
use bizcred_verifier::store::VerifierDir;
use bizcred_verifier::Policy;

/// 2026-11-22T12:00:00Z.
const T0: i64 = 1_795_348_800;

/// A clock the test moves forward.
#[derive(Debug)]
struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

struct Setup {
    _tmp: tempfile::TempDir,
    requests: std::path::PathBuf,
    token: String,
    clock: Arc<TestClock>,
    router: axum::Router,
}

fn setup(ttl: i64, max_pending: usize) -> Setup {
    let tmp = tempfile::tempdir().expect("tempdir");
    let anchor: TrustAnchor = serde_json::from_value(serde_json::json!({
        "origin": "registry.bizcred.test/log",
        "log_key_name": "registry.bizcred.test/log",
        "log_key": "AAAA"
    }))
    .expect("anchor");
    let (dir, token) =
        VerifierDir::init(tmp.path(), anchor, None, b"test pass", &mut OsRng).expect("init");
    let key = dir.key(b"test pass").expect("key");
    let policy = Policy::from_toml(include_str!(
        "../../examples/config/policies/loan-application.toml"
    ))
    .expect("policy");
    let clock = Arc::new(TestClock(AtomicI64::new(T0)));
    let state = ServiceState::new(
        dir,
        vec![policy],
        key,
        ServiceConfig {
            public_url: "http://bank.test/".into(),
            request_ttl: ttl,
            max_pending,
            secure_cookies: false,
        },
        clock.clone(),
    )
    .expect("state");
    Setup {
        requests: tmp.path().join("requests"),
        _tmp: tmp,
        token: token.expose().to_owned(),
        clock,
        router: app(Arc::new(state)),
    }
}

async fn call(router: &axum::Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = router.clone().oneshot(req).await.expect("call");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn post_requests(token: Option<&str>) -> Request<Body> {
    let mut b = Request::post("/requests");
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    b.body(Body::empty()).expect("request")
}

fn files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

#[tokio::test]
async fn requests_and_results_need_the_operator_token() {
    let s = setup(600, 10);
    let (st, v) = call(&s.router, post_requests(None)).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(v["error"], "invalid_token");
    let (st, _) = call(&s.router, post_requests(Some("not-the-token"))).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(files(&s.requests), 0, "a refused call writes nothing");
    let (st, v) = call(&s.router, post_requests(Some(&s.token))).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let tx = v["transaction_id"].as_str().expect("tx");
    assert!(v["request_uri"]
        .as_str()
        .expect("uri")
        .starts_with("openid4vp://"));
    let get = |auth: Option<&str>| {
        let mut b = Request::get(format!("/transactions/{tx}"));
        if let Some(t) = auth {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        b.body(Body::empty()).expect("request")
    };
    assert_eq!(call(&s.router, get(None)).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        call(&s.router, get(Some(&s.token))).await.0,
        StatusCode::NOT_FOUND,
        "no answer yet"
    );
}

#[tokio::test]
async fn pending_requests_are_bounded_and_expired_ones_removed() {
    let s = setup(600, 3);
    let mut first = String::new();
    for i in 0..3 {
        let (st, v) = call(&s.router, post_requests(Some(&s.token))).await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        if i == 0 {
            first = v["transaction_id"].as_str().expect("tx").to_owned();
        }
    }
    let (st, v) = call(&s.router, post_requests(Some(&s.token))).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"], "temporarily_unavailable");
    assert_eq!(files(&s.requests), 3);
    let object = |tx: &str| {
        Request::get(format!("/oid4vp/request/{tx}"))
            .body(Body::empty())
            .expect("request")
    };
    let resp = s
        .router
        .clone()
        .oneshot(object(&first))
        .await
        .expect("call");
    assert_eq!(resp.status(), StatusCode::OK);
    // Ten minutes later all three have expired: they are no longer served, and the next
    // request removes them from disk.
    s.clock.0.fetch_add(600, Ordering::SeqCst);
    let (st, v) = call(&s.router, object(&first)).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    let (st, _) = call(&s.router, post_requests(Some(&s.token))).await;
    assert_eq!(st, StatusCode::CREATED);
    assert_eq!(files(&s.requests), 1, "expired requests are deleted");
}

fn response(content_type: &str, body: String) -> Request<Body> {
    Request::post("/oid4vp/response")
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .expect("request")
}

#[tokio::test]
async fn the_response_endpoint_takes_forms_only_and_is_no_oracle() {
    let s = setup(600, 10);
    let (_, v) = call(&s.router, post_requests(Some(&s.token))).await;
    let tx = v["transaction_id"].as_str().expect("tx").to_owned();
    let form = format!("vp_token=%7B%22inc%22%3A%5B%22not-an-sd-jwt%22%5D%7D&state={tx}");
    // The same form as text/plain: refused, and the request is still open.
    let (st, v) = call(&s.router, response("text/plain", form.clone())).await;
    assert_eq!(st, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
    assert_eq!(files(&s.requests), 1);
    let (st, v) = call(&s.router, response("application/json", form.clone())).await;
    assert_eq!(st, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
    // As a form: verified, refused, and the presenter learns only that.
    let (st, v) = call(
        &s.router,
        response(
            "application/x-www-form-urlencoded; charset=UTF-8",
            form.clone(),
        ),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"], "invalid_request");
    let said = v.to_string();
    assert!(
        !said.contains("REJECT") && !said.contains("failures") && !said.contains("MALFORMED"),
        "the presenter is told no reason: {said}"
    );
    // The relying party has the whole verdict and a receipt.
    let (st, r) = call(
        &s.router,
        Request::get(format!("/transactions/{tx}"))
            .header(header::AUTHORIZATION, format!("Bearer {}", s.token))
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["report"]["verdict"], "REJECT", "{r}");
    assert!(!r["report"]["failures"]
        .as_array()
        .expect("failures")
        .is_empty());
    assert!(r["receipt"]["proof"].is_object(), "{r}");
    // The nonce is spent: a second answer is refused.
    let (st, v) = call(
        &s.router,
        response("application/x-www-form-urlencoded", form),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error_description"]
        .as_str()
        .expect("description")
        .contains("expired"));
}
