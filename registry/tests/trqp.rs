//! TRQP v2.0 at the registry's router, without a socket: the authority's did:webvh DID (made
//! by the operator's command, served at its location, naming the TRQP endpoint and the
//! governance framework), authorization and recognition queries under `/trqp/v2` (and the
//! alias), strict input, the statuses the HTTPS binding lists for unknown names, and RFC 9457
//! problem documents for every error, with their reason codes. Then recognition end to end in
//! the library: a second registry's bundle kept, carried in this registry's bundle, and
//! imported offline by a verifier.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use bizcred_core::trust::bundle::{self, TrustAnchor};
use bizcred_core::webvh;
use bizcred_core::ReasonCode;
use bizcred_registry::admin::{self, DataDir, KeyName, Storage};
use bizcred_registry::service::{app, token_hash, AppState};
use bizcred_schemas::CredentialType;
use bizcred_test_support::Agency;
use rand_core::OsRng;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use tower::ServiceExt;

const PASS: &[u8] = b"pass";
const TOKEN: &str = "admin-token-for-tests";

#[derive(Debug)]
struct Wall;

impl bizcred_core::time::Clock for Wall {
    fn now(&self) -> i64 {
        now()
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .expect("clock after 1970")
}

struct Reg {
    _dir: tempfile::TempDir,
    data: DataDir,
    state: Arc<AppState>,
    router: axum::Router,
    did: String,
}

/// A registry made by the operator's commands (init, then its authority DID at `public_url`),
/// with `agency` onboarded for `ty`.
fn registry(origin: &str, public_url: &str, agency: &Agency, ty: CredentialType) -> Reg {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = DataDir::new(dir.path().join("reg"));
    let t = now();
    data.init(origin, PASS, t, &mut OsRng, &Storage::Sled)
        .expect("init");
    let made = data
        .create_authority_did(PASS, public_url, None, t, &mut OsRng)
        .expect("authority DID");
    let again = data.create_authority_did(PASS, public_url, None, t, &mut OsRng);
    assert_eq!(
        again.map(|_| ()).map_err(|e| e.code()),
        Err(ReasonCode::AlreadyInitialized)
    );
    let mut reg = data.open(PASS, t, &Storage::Sled).expect("open");
    assert_eq!(reg.authority_id(), made.did);
    let authority = data.key(KeyName::Authority, PASS).expect("key");
    let (_, plan) = admin::onboard(
        origin,
        &authority,
        &agency.log,
        "Agency",
        "Agence",
        &[ty],
        t - 10,
        &mut OsRng,
    )
    .expect("plan");
    reg.append_all(plan.into_iter().map(|p| p.entry).collect(), t)
        .expect("onboarded");
    let state = Arc::new(AppState {
        registry: Mutex::new(reg),
        admin_token_hashes: vec![token_hash(TOKEN)],
        clock: Arc::new(Wall),
    });
    Reg {
        _dir: dir,
        data,
        router: app(state.clone()),
        state,
        did: made.did,
    }
}

async fn call(router: &axum::Router, req: Request<Body>) -> (StatusCode, String, Value) {
    let resp = router.clone().oneshot(req).await.expect("response");
    let status = resp.status();
    let ct = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = axum::body::to_bytes(resp.into_body(), 64 * 1024 * 1024)
        .await
        .expect("body");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let v = if ct.starts_with("application/") {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    } else {
        Value::String(text)
    };
    (status, ct, v)
}

fn post_json(uri: &str, body: &Value) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("req")
}

/// Asserts an RFC 9457 problem document with `status` and `code`.
fn assert_problem(got: &(StatusCode, String, Value), status: StatusCode, code: ReasonCode) {
    let (s, ct, v) = got;
    assert_eq!(*s, status, "{v}");
    assert_eq!(ct, "application/problem+json", "{v}");
    assert_eq!(v["status"], status.as_u16(), "{v}");
    assert_eq!(v["code"], code.as_str(), "{v}");
    assert_eq!(
        v["type"],
        format!("urn:bizcred:problem:{}", code.as_str()),
        "{v}"
    );
    assert_eq!(v["title"], code.sentence(), "{v}");
    assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()), "{v}");
}

#[tokio::test]
async fn trqp_v2_answers_and_refusals() {
    let t = now();
    let agco = Agency::new("agco.bizcred.test", t - 60);
    let liquor = CredentialType::LiquorSalesLicence.vct();
    let r = registry(
        "registry.on.test/log",
        "http://localhost:8080",
        &agco,
        CredentialType::LiquorSalesLicence,
    );

    // The authority's DID resolves from its log at the did:webvh location, and names the
    // TRQP endpoint and the governance framework.
    let (s, _, log) = call(
        &r.router,
        Request::get("/.well-known/did.jsonl")
            .body(Body::empty())
            .expect("r"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let log = log.as_str().expect("jsonl text").to_owned();
    let verified = webvh::verify_log(&log, None, now());
    assert!(verified.error.is_none());
    let doc = webvh::resolve(&r.did, &verified)
        .expect("resolves")
        .document;
    let services = doc["service"].as_array().expect("services");
    let endpoint = |kind: &str| {
        services
            .iter()
            .find(|s| s["type"] == kind)
            .and_then(|s| s["serviceEndpoint"].as_str())
            .map(str::to_owned)
    };
    assert_eq!(
        endpoint("TRQP").as_deref(),
        Some("http://localhost:8080/trqp/v2")
    );
    assert_eq!(
        endpoint("GovernanceFramework").as_deref(),
        Some("http://localhost:8080/governance")
    );
    assert!(webvh::WebvhDid::parse(&r.did)
        .expect("did")
        .log_url()
        .starts_with("http://localhost:8080/.well-known/did.jsonl"));
    let (s, _, egf) = call(
        &r.router,
        Request::get("/governance").body(Body::empty()).expect("r"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(egf["authority_id"], r.did);
    assert_eq!(egf["trqp"]["endpoint"], "http://localhost:8080/trqp/v2");

    // Authorization under the versioned base and the alias, with the context echoed and the
    // requested time kept as sent.
    let query = json!({"entity_id": agco.did, "authority_id": r.did, "action": "issue",
        "resource": liquor, "context": {"time": bizcred_core::time::format_utc(t).replace('Z', ".250Z"), "locator": "x"}});
    for path in ["/trqp/v2/authorization", "/trqp/authorization"] {
        let (s, ct, yes) = call(&r.router, post_json(path, &query)).await;
        assert_eq!(s, StatusCode::OK, "{yes}");
        assert!(ct.starts_with("application/json"));
        assert_eq!(yes["authorized"], true, "{yes}");
        assert_eq!(yes["authority_id"], r.did);
        assert_eq!(yes["time_requested"], query["context"]["time"]);
        assert_eq!(yes["context"], query["context"]);
        assert!(yes["time_evaluated"].as_str().is_some());
        assert_eq!(
            yes["ext"]["org.bizcred.evidence"]["entry"]["type"],
            "AuthorizationGranted"
        );
    }
    // Known, but not for this type: 200, false.
    let mut other = query.clone();
    other["resource"] = CredentialType::BusinessNumber.vct().into();
    let (s, _, no) = call(&r.router, post_json("/trqp/v2/authorization", &other)).await;
    assert_eq!((s, &no["authorized"]), (StatusCode::OK, &json!(false)));
    // Before the authorization began: false.
    let mut early = query.clone();
    early["context"] = json!({"time": "2020-01-01T00:00:00Z"});
    let (_, _, no) = call(&r.router, post_json("/trqp/v2/authorization", &early)).await;
    assert_eq!(no["authorized"], false);
    assert_eq!(no["time_requested"], "2020-01-01T00:00:00Z");

    // Unknown names: 404 problem documents.
    for (k, v, code) in [
        (
            "authority_id",
            "registry.on.test/log",
            ReasonCode::TrqpAuthorityUnknown,
        ),
        (
            "entity_id",
            "did:web:nobody.test",
            ReasonCode::TrqpEntityUnknown,
        ),
        ("action", "verify", ReasonCode::TrqpActionUnknown),
        ("resource", "urn:nothing:1", ReasonCode::TrqpResourceUnknown),
    ] {
        let mut q = query.clone();
        q[k] = v.into();
        let got = call(&r.router, post_json("/trqp/v2/authorization", &q)).await;
        assert_problem(&got, StatusCode::NOT_FOUND, code);
    }
    // Strict input: 400 problem documents.
    for (k, v) in [
        ("action", json!("")),
        ("resource", json!("")),
        ("entity_id", json!(null)),
        ("context", json!("now")),
        ("context", json!({"time": "2026-13-01T00:00:00Z"})),
        ("context", json!({"time": 5})),
    ] {
        let mut q = query.clone();
        q[k] = v.clone();
        let got = call(&r.router, post_json("/trqp/v2/authorization", &q)).await;
        assert_problem(&got, StatusCode::BAD_REQUEST, ReasonCode::RequestInvalid);
    }
    let got = call(
        &r.router,
        Request::post("/trqp/v2/authorization")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{not json"))
            .expect("r"),
    )
    .await;
    assert_problem(&got, StatusCode::BAD_REQUEST, ReasonCode::RequestInvalid);
    // Not JSON by its media type: 415.
    let got = call(
        &r.router,
        Request::post("/trqp/v2/recognition")
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from(query.to_string()))
            .expect("r"),
    )
    .await;
    assert_problem(
        &got,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ReasonCode::MediaTypeUnsupported,
    );
    // An unknown path and a wrong method have bodies too.
    let got = call(
        &r.router,
        Request::get("/trqp/v2/nothing")
            .body(Body::empty())
            .expect("r"),
    )
    .await;
    assert_problem(&got, StatusCode::NOT_FOUND, ReasonCode::PathNotFound);
    let got = call(
        &r.router,
        Request::get("/trqp/v2/authorization")
            .body(Body::empty())
            .expect("r"),
    )
    .await;
    assert_problem(
        &got,
        StatusCode::METHOD_NOT_ALLOWED,
        ReasonCode::MethodNotAllowed,
    );
    // An extractor's own rejection (a query string that does not parse) is one as well.
    let got = call(
        &r.router,
        Request::get("/entries?start=x")
            .body(Body::empty())
            .expect("r"),
    )
    .await;
    assert_problem(&got, StatusCode::BAD_REQUEST, ReasonCode::RequestInvalid);
    // The admin endpoints: 401 and 403 with their codes.
    let got = call(
        &r.router,
        Request::post("/recognized-bundles")
            .body(Body::from("{}"))
            .expect("r"),
    )
    .await;
    assert_problem(
        &got,
        StatusCode::UNAUTHORIZED,
        ReasonCode::AdminTokenMissing,
    );
    let got = call(
        &r.router,
        Request::post("/recognized-bundles")
            .header(header::AUTHORIZATION, "Bearer guess")
            .body(Body::from("{}"))
            .expect("r"),
    )
    .await;
    assert_problem(&got, StatusCode::FORBIDDEN, ReasonCode::AdminTokenInvalid);

    // Recognition: nobody recognized yet, so any entity is unknown.
    let rq = json!({"entity_id": "did:webvh:QmPFhMuZH9gjY2JZgyyrgRuFTywQ4mDhoKGVoGE8uy7hFD:trust.bc.test",
        "authority_id": r.did, "action": "recognize", "resource": liquor});
    let got = call(&r.router, post_json("/trqp/v2/recognition", &rq)).await;
    assert_problem(&got, StatusCode::NOT_FOUND, ReasonCode::TrqpEntityUnknown);
    let mut wrong = rq.clone();
    wrong["action"] = "issue".into();
    let got = call(&r.router, post_json("/trqp/v2/recognition", &wrong)).await;
    assert_problem(&got, StatusCode::NOT_FOUND, ReasonCode::TrqpActionUnknown);
}

#[tokio::test]
async fn a_recognized_registry_is_answered_carried_and_imported() {
    let t = now();
    let bcreg = Agency::new("bcreg.bizcred.test", t - 60);
    let obr = Agency::new("obr.bizcred.test", t - 60);
    let ty = CredentialType::CertificateOfIncorporation;
    let bc = registry(
        "registry.bc.test/log",
        "https://bc.bizcred.test",
        &bcreg,
        ty,
    );
    let on = registry("registry.on.test/log", "https://on.bizcred.test", &obr, ty);
    let bc_anchor: TrustAnchor = bc
        .state
        .registry
        .lock()
        .expect("lock")
        .anchor()
        .expect("anchor");
    let on_anchor = on
        .state
        .registry
        .lock()
        .expect("lock")
        .anchor()
        .expect("anchor");
    let authority = on.data.key(KeyName::Authority, PASS).expect("key");
    let grant = admin::recognize(
        "registry.on.test/log",
        &authority,
        &on.did,
        &bc.did,
        &bc_anchor,
        ty,
        t - 5,
        None,
        t,
        &mut OsRng,
    )
    .expect("plan");
    let (s, _, _) = call(
        &on.router,
        Request::post("/entries")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(grant.entry.to_string()))
            .expect("r"),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let rq = json!({"entity_id": bc.did, "authority_id": on.did, "action": "recognize",
        "resource": ty.vct(), "context": {"time": bizcred_core::time::format_utc(t)}});
    let (s, _, yes) = call(&on.router, post_json("/trqp/v2/recognition", &rq)).await;
    assert_eq!(s, StatusCode::OK, "{yes}");
    assert_eq!(yes["recognized"], true, "{yes}");
    assert_eq!(
        yes["ext"]["org.bizcred.evidence"]["entry"]["type"],
        "RecognitionGranted"
    );
    let mut other = rq.clone();
    other["resource"] = CredentialType::BusinessNumber.vct().into();
    let (_, _, no) = call(&on.router, post_json("/trqp/v2/recognition", &other)).await;
    assert_eq!(no["recognized"], false, "{no}");

    // BC's bundle is kept (admin), refused when it is not BC's, and carried.
    let (_, _, bc_bundle) = call(
        &bc.router,
        Request::get("/bundle").body(Body::empty()).expect("r"),
    )
    .await;
    let bc_bundle = serde_json::to_string(&bc_bundle).expect("text");
    let submit = |text: String| {
        Request::post("/recognized-bundles")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::from(text))
            .expect("r")
    };
    let (s, _, kept) = call(&on.router, submit(bc_bundle.clone())).await;
    assert_eq!(s, StatusCode::CREATED, "{kept}");
    assert_eq!(kept["authority_id"], bc.did);
    // ON's own bundle is no recognized registry's.
    let (_, _, own) = call(
        &on.router,
        Request::get("/bundle").body(Body::empty()).expect("r"),
    )
    .await;
    let got = call(&on.router, submit(own.to_string())).await;
    assert_problem(
        &got,
        StatusCode::BAD_REQUEST,
        ReasonCode::BundleRecognizedInvalid,
    );
    // A verifier pinning ON imports ON's bundle and holds BC's state.
    let (_, _, text) = call(
        &on.router,
        Request::get("/bundle").body(Body::empty()).expect("r"),
    )
    .await;
    let held = bundle::import(None, &on_anchor, &text.to_string(), now())
        .expect("imported")
        .state;
    let (auth, foreign) = held
        .recognized_registry_of(&bcreg.did)
        .expect("BC's issuer through the recognition");
    assert_eq!(auth, bc.did);
    assert!(foreign.authorized(&bcreg.did, ty.vct(), t).is_ok());
    assert!(held.recognition(&bc.did, ty.vct(), now()).is_ok());

    // Revoked: the recognition query says no.
    let revoke = admin::revoke_recognition(
        "registry.on.test/log",
        &authority,
        &bc.did,
        ty,
        t,
        t,
        &mut OsRng,
    )
    .expect("plan");
    on.state
        .registry
        .lock()
        .expect("lock")
        .append(revoke.entry, t)
        .expect("revoked");
    let mut now_q = rq.clone();
    now_q["context"] = json!({"time": bizcred_core::time::format_utc(t + 1)});
    let (_, _, no) = call(&on.router, post_json("/trqp/v2/recognition", &now_q)).await;
    assert_eq!(no["recognized"], false, "{no}");
    assert!(no["message"].as_str().unwrap_or("").contains("revoked"));
}
