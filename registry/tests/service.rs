//! Router tests: every endpoint of the registry API, and its refusals, without a socket.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use bizcred_core::keys::{Algorithm, SecretKey, Signer};
use bizcred_core::trust::bundle;
use bizcred_core::trust::entry::build;
use bizcred_core::trust::note::Checkpoint;
use bizcred_registry::service::{app, token_hash, AppState};
use bizcred_registry::store::{MemoryStore, Store};
use bizcred_registry::Registry;
use bizcred_schemas::CredentialType;
use bizcred_test_support::{founding_entries, Agency};
use rand_core::OsRng;
use serde_json::{json, Value};
use tower::ServiceExt;

const ORIGIN: &str = "registry.bizcred.test/log";
const TOKEN: &str = "admin-token-for-tests";

/// The system clock (the registry's answers are compared with real time).
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

struct Fixture {
    router: axum::Router,
    authority: SecretKey,
    state: Arc<AppState>,
}

fn fixture() -> Fixture {
    let authority = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let log_key = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let store: Box<dyn Store> = Box::new(MemoryStore::default());
    let log_pub = log_key.public_key();
    let mut reg = Registry::open(store, ORIGIN, log_key, now()).expect("open");
    let t = now();
    for e in founding_entries(ORIGIN, &authority, &log_pub, t) {
        reg.append(e, t).expect("founding entry");
    }
    let state = Arc::new(AppState {
        registry: Mutex::new(reg),
        admin_token_hashes: vec![token_hash(TOKEN)],
        clock: Arc::new(Wall),
    });
    Fixture {
        router: app(state.clone()),
        authority,
        state,
    }
}

async fn call(f: &Fixture, req: Request<Body>) -> (StatusCode, String) {
    let resp = f.router.clone().oneshot(req).await.expect("response");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 64 * 1024 * 1024)
        .await
        .expect("body");
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).expect("req")
}

fn post_entry(e: &Value, token: Option<&str>) -> Request<Body> {
    let mut b = Request::post("/entries").header(header::CONTENT_TYPE, "application/json");
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    b.body(Body::from(e.to_string())).expect("req")
}

fn code(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[tokio::test]
async fn onboarding_proofs_resolution_trqp_and_bundles() {
    let f = fixture();
    let t = now();
    let agco = Agency::new("agco.bizcred.test", t - 60);
    let city = Agency::new("toronto.bizcred.test", t - 60);
    for (a, ty) in [
        (&agco, CredentialType::LiquorSalesLicence),
        (&city, CredentialType::MunicipalBusinessLicence),
    ] {
        let e = build::issuer_registered(
            ORIGIN,
            &a.did,
            "Agency",
            "Agence",
            &a.log,
            t,
            &f.authority,
            &mut OsRng,
        )
        .expect("e");
        let (s, body) = call(&f, post_entry(&e, Some(TOKEN))).await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        let e = build::authorization_granted(
            ORIGIN,
            &a.did,
            ty.vct(),
            t - 60,
            None,
            t,
            &f.authority,
            &mut OsRng,
        )
        .expect("e");
        assert_eq!(
            call(&f, post_entry(&e, Some(TOKEN))).await.0,
            StatusCode::CREATED
        );
    }
    // Checkpoint and entries.
    let (s, cp) = call(&f, get("/checkpoint")).await;
    assert_eq!(s, StatusCode::OK);
    let log_key = f.state.registry.lock().expect("lock").log_key();
    let (checkpoint, _) = Checkpoint::open(&cp, ORIGIN, &log_key).expect("signed checkpoint");
    assert_eq!(checkpoint.size, 9);
    let (s, body) = call(&f, get("/entries?start=0&end=9")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<Vec<Value>>(&body)
            .expect("json")
            .len(),
        9
    );
    assert_eq!(
        code(&call(&f, get("/entries?start=0&end=10")).await.1),
        "OUT_OF_RANGE"
    );
    // Proofs verify against the checkpoint.
    let (_, body) = call(&f, get("/proof/inclusion?index=5&size=9")).await;
    let p: Value = serde_json::from_str(&body).expect("json");
    let hash = |v: &Value| -> [u8; 32] {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("s"))
            .expect("b64")
            .try_into()
            .expect("32")
    };
    let proof: Vec<[u8; 32]> = p["proof"].as_array().expect("a").iter().map(hash).collect();
    bizcred_core::trust::merkle::verify_inclusion(
        5,
        9,
        &hash(&p["leaf_hash"]),
        &proof,
        &checkpoint.root,
    )
    .expect("inclusion verifies");
    let (_, body) = call(&f, get("/proof/consistency?first=4&second=9")).await;
    let c: Value = serde_json::from_str(&body).expect("json");
    assert!(!c["proof"].as_array().expect("a").is_empty());
    // DID resolution from the mirror, at a time.
    let (s, body) = call(&f, get(&format!("/dids/{}", agco.did))).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let r: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(r["didDocument"]["id"], agco.did);
    let (s, body) = call(&f, get(&format!("/dids/{}/did.jsonl", agco.did))).await;
    assert_eq!((s, body), (StatusCode::OK, agco.log.clone()));
    assert_eq!(
        call(
            &f,
            get("/dids/did:webvh:QmPFhMuZH9gjY2JZgyyrgRuFTywQ4mDhoKGVoGE8uy7hFD:nobody.test")
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    // The AGCO rotates: its new did:webvh line is mirrored (authenticated by its own proofs).
    let (line, _) = agco.rotation(t - 30);
    let req = Request::post(format!("/dids/{}/log", agco.did))
        .body(Body::from(line.clone()))
        .expect("req");
    let (s, body) = call(&f, req).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (_, body) = call(
        &f,
        get(&format!(
            "/dids/{}?versionTime={}",
            agco.did,
            bizcred_core::time::format_utc(t - 45)
        )),
    )
    .await;
    let r: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(r["didDocumentMetadata"]["versionNumber"], 1);
    // The same line again does not chain.
    let req = Request::post(format!("/dids/{}/log", agco.did))
        .body(Body::from(line))
        .expect("req");
    let (s, body) = call(&f, req).await;
    assert_eq!(
        (s, code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "ENTRY_DID_LOG")
    );
    // TRQP: the AGCO may issue liquor licences, with evidence; the City may not.
    let q = |entity: &str| {
        let body = json!({"entity_id": entity, "authority_id": ORIGIN, "action": "issue", "resource": CredentialType::LiquorSalesLicence.vct(), "context": {"time": bizcred_core::time::format_utc(t)}});
        Request::post("/trqp/authorization")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("req")
    };
    let (_, body) = call(&f, q(&agco.did)).await;
    let yes: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(yes["authorized"], true);
    assert_eq!(
        yes["ext"]["org.bizcred.evidence"]["entry"]["type"],
        "AuthorizationGranted"
    );
    let (_, body) = call(&f, q(&city.did)).await;
    let no: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(no["authorized"], false);
    // The bundle imports into empty verifier state.
    let (s, text) = call(&f, get("/bundle")).await;
    assert_eq!(s, StatusCode::OK);
    let anchor = f
        .state
        .registry
        .lock()
        .expect("lock")
        .anchor()
        .expect("anchor");
    let st = bundle::import(None, &anchor, &text, now())
        .expect("import")
        .state;
    assert!(st
        .authorized(&agco.did, CredentialType::LiquorSalesLicence.vct(), t)
        .is_ok());
    assert!(st
        .authorized(&city.did, CredentialType::LiquorSalesLicence.vct(), t)
        .is_err());
}

#[tokio::test]
async fn refusals() {
    let f = fixture();
    let t = now();
    let a = Agency::new("agco.bizcred.test", t - 60);
    let e = build::issuer_registered(
        ORIGIN,
        &a.did,
        "A",
        "A",
        &a.log,
        t,
        &f.authority,
        &mut OsRng,
    )
    .expect("e");
    // No token: 401; a wrong token: 403; wrong content type: 415.
    assert_eq!(
        call(&f, post_entry(&e, None)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&f, post_entry(&e, Some("guess"))).await.0,
        StatusCode::FORBIDDEN
    );
    let req = Request::post("/entries")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(e.to_string()))
        .expect("r");
    assert_eq!(call(&f, req).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Malformed JSON: 400.
    let req = Request::post("/entries")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{not json"))
        .expect("r");
    assert_eq!(call(&f, req).await.0, StatusCode::BAD_REQUEST);
    // Accepted once, then a replay is a conflict.
    assert_eq!(
        call(&f, post_entry(&e, Some(TOKEN))).await.0,
        StatusCode::CREATED
    );
    let (s, body) = call(&f, post_entry(&e, Some(TOKEN))).await;
    assert_eq!(
        (s, code(&body).as_str()),
        (StatusCode::CONFLICT, "ENTRY_DUPLICATE")
    );
    // Signed by a non-authority key.
    let rogue = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let e2 = build::authorization_granted(
        ORIGIN,
        &a.did,
        CredentialType::LiquorSalesLicence.vct(),
        t,
        None,
        t,
        &rogue,
        &mut OsRng,
    )
    .expect("e");
    let (s, body) = call(&f, post_entry(&e2, Some(TOKEN))).await;
    assert_eq!(
        (s, code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "ENTRY_NOT_AUTHORITY")
    );
    // Oversized body: 413, and nothing appended.
    let size_before = f.state.registry.lock().expect("lock").state().size();
    let huge = json!({"pad": "x".repeat(3 * 1024 * 1024)});
    assert_eq!(
        call(&f, post_entry(&huge, Some(TOKEN))).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(
        f.state.registry.lock().expect("lock").state().size(),
        size_before
    );
    // Bad proofs queries and an unknown status list signer.
    assert_eq!(
        call(&f, get("/proof/inclusion?index=9&size=3")).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        call(&f, get("/proof/consistency?first=0&second=3")).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        call(&f, get("/bundle?from=999")).await.0,
        StatusCode::BAD_REQUEST
    );
    let req = Request::post("/status-lists")
        .body(Body::from("a.b.c"))
        .expect("r");
    let (s, body) = call(&f, req).await;
    assert_eq!(
        (s, code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "STATUS_LIST_MALFORMED")
    );
}
